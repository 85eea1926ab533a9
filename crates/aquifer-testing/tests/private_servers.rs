//! The private servers start on their own port, refuse connections once stopped, come back on the same port
//! with the same data, and are gone (process and directory) once dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use aquifer_testing::{PrivateMariaDb, PrivatePostgres, Restartable, servers};

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)).is_ok()
}

fn data_dir(log: &std::path::Path) -> PathBuf {
    log.parent().expect("the log is in the server's directory").to_owned()
}

/// Checks that `server` runs on its own `port` (not the shared server's, `shared`), refuses connections once
/// stopped, and comes back on the same port.
fn assert_own_server_stops_and_restarts<S: Restartable>(
    server: &mut S,
    port: u16,
    shared: u16,
    is_running: fn(&mut S) -> bool,
) {
    assert_ne!(port, shared, "not the shared server's port");
    assert!(accepts(port) && is_running(server));
    server.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(!is_running(server) && !accepts(port), "a stopped server refuses connections");
    server.restart().unwrap_or_else(|e| panic!("{e}"));
    assert!(accepts(port), "back on the same port");
}

/// Drops `server` (on `port`) and checks that its process and its directory are gone.
fn assert_removed_on_drop(server: impl Restartable, port: u16) {
    let dir = data_dir(server.log());
    assert!(dir.exists());
    drop(server);
    assert!(!accepts(port), "dropping kills the server");
    assert!(!dir.exists(), "dropping removes {}", dir.display());
}

#[test]
fn private_postgres_stops_restarts_and_is_removed_on_drop() {
    let mut pg = PrivatePostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let port = pg.port();
    assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable"));
    assert_own_server_stops_and_restarts(&mut pg, port, servers::POSTGRES.get(), PrivatePostgres::is_running);
    pg.kill();
    assert!(!accepts(port), "a killed server refuses connections");
    pg.restart().unwrap_or_else(|e| panic!("{e}"));
    assert_removed_on_drop(pg, port);
}

#[test]
fn private_mariadb_stops_restarts_and_is_removed_on_drop() {
    let mut my = PrivateMariaDb::start().unwrap_or_else(|e| panic!("{e}"));
    let port = my.port();
    assert_eq!(my.url(), format!("mysql://root@127.0.0.1:{port}/test"));
    assert_own_server_stops_and_restarts(&mut my, port, servers::MARIADB.get(), PrivateMariaDb::is_running);
    assert_removed_on_drop(my, port);
}
