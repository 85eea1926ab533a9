//! Shared by the integration tests: the server's address, unique names, an admin connection, dedicated users
//! (so a test counts and kills only its own connections on the shared server).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, OptsBuilder};

pub use aquifer_testing::servers::{HOST, SCRIPT};

/// The project's MariaDB (scripts/services/20-mariadb.sh; `aquifer_testing::servers`).
pub fn port() -> u16 {
    aquifer_testing::servers::MARIADB.get()
}

/// root over TCP, empty password, database `test` (scripts/services/20-mariadb.sh).
pub fn url() -> String {
    aquifer_testing::servers::mariadb_url()
}

/// Fails the test, naming the script that starts MariaDB, when nothing answers on its address.
pub async fn server() {
    aquifer_testing::require_server("MariaDB", &aquifer_testing::servers::mariadb_addr(), SCRIPT).await;
}

/// A name unique to this test process and call: `prefix_<pid>_<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A plain mysql_async connection as root over TCP, outside any pool: the test's own view of the server.
pub async fn admin() -> Conn {
    server().await;
    let opts = OptsBuilder::default()
        .ip_or_hostname(HOST)
        .tcp_port(port())
        .user(Some("root"))
        .db_name(Some("test"))
        .prefer_socket(false);
    Conn::new(opts).await.expect("admin connection to MariaDB")
}

/// Creates (or re-creates) a user `name` with password `name` and every right on `test`, so the test can count
/// and kill exactly its own pool's connections. Returns its URL.
pub async fn dedicated_user(admin: &mut Conn, name: &str) -> String {
    assert!(name.len() <= 32 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
    drop_leftover_users(admin).await;
    admin.query_drop(format!("DROP USER IF EXISTS '{name}'@'%'")).await.unwrap();
    admin.query_drop(format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{name}'")).await.unwrap();
    admin.query_drop(format!("GRANT ALL ON test.* TO '{name}'@'%'")).await.unwrap();
    admin.query_drop(format!("GRANT PROCESS ON *.* TO '{name}'@'%'")).await.unwrap();
    format!("mysql://{name}:{name}@{HOST}:{}/test", port())
}

/// A user of the test's own ([`dedicated_user`]), and the admin connection that made it.
pub struct Dedicated {
    pub admin: Conn,
    pub name: String,
    pub url: String,
}

impl Dedicated {
    /// A fresh user named `prefix_<pid>_<n>`.
    pub async fn new(prefix: &str) -> Dedicated {
        let mut admin = admin().await;
        let name = unique(prefix);
        let url = dedicated_user(&mut admin, &name).await;
        Dedicated { admin, name, url }
    }

    /// Drops the user and kills whatever connections it still has.
    pub async fn drop_user(mut self) {
        drop_user(&mut self.admin, &self.name).await;
    }
}

/// Drops the `aq_my_*_<pid>_<n>` users of test processes that are gone (a failed test skips its clean-up).
async fn drop_leftover_users(admin: &mut Conn) {
    let users: Vec<String> = admin.query("SELECT User FROM mysql.user WHERE User LIKE 'aq\\_my\\_%'").await.unwrap();
    for user in users {
        let pid = user.rsplit('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            drop_user(admin, &user).await;
        }
    }
}

/// Drops the user and kills whatever connections it still has.
pub async fn drop_user(admin: &mut Conn, name: &str) {
    kill_all_of(admin, name).await;
    let _ = admin.query_drop(format!("DROP USER IF EXISTS '{name}'@'%'")).await;
}

/// Server-side connections of `user`.
pub async fn connections_of(admin: &mut Conn, user: &str) -> Vec<u64> {
    admin.exec("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", (user,)).await.unwrap()
}

/// The ids of `user`'s connections running a statement that begins with `statement`.
pub async fn connections_running(admin: &mut Conn, user: &str, statement: &str) -> Vec<u64> {
    admin
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE CONCAT(?, '%')",
            (user, statement),
        )
        .await
        .unwrap()
}

/// Kills every connection of `user` (and only those); returns how many.
pub async fn kill_all_of(admin: &mut Conn, user: &str) -> usize {
    let ids = connections_of(admin, user).await;
    for id in &ids {
        // It may have gone by itself in the meantime.
        let _ = admin.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    ids.len()
}

/// Kills one connection by id (a connection this test opened).
pub async fn kill(admin: &mut Conn, id: u32) {
    let _ = admin.query_drop(format!("KILL CONNECTION {id}")).await;
}

/// Waits up to `limit` for `cond` to hold, polling.
pub async fn eventually<F: AsyncFnMut() -> bool>(limit: Duration, cond: F) -> bool {
    eventually_every(limit, Duration::from_millis(20), cond).await
}

/// How often a test may poll `information_schema.INNODB_TRX`. InnoDB refreshes that table's cache only when it has
/// not been read for 100 ms, so polling it faster keeps showing a stale snapshot for as long as the polling goes on
/// (seen here: a transaction killed seconds earlier still listed as running).
pub const INNODB_TRX_POLL: Duration = Duration::from_millis(250);

/// Waits up to `limit` for `cond` to hold, polling every `every`.
pub async fn eventually_every<F: AsyncFnMut() -> bool>(limit: Duration, every: Duration, cond: F) -> bool {
    aquifer_testing::poll_until(limit, every, cond).await
}
