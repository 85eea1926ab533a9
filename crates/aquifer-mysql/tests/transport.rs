//! TCP or unix socket is an explicit choice: TCP by default, even where mysql_async would switch to the socket.

mod common;

use aquifer_core::Manager;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlManager, MySqlPool, PoolConfig, Transport};

/// The project's MariaDB's socket (scripts/services/20-mariadb.sh).
fn socket() -> String {
    aquifer_testing::servers::mariadb_socket().display().to_string()
}

/// How the server sees the pool's connection: `127.0.0.1:<port>` over TCP, `localhost` over the socket.
async fn peer_of(pool: &MySqlPool) -> String {
    let mut conn = pool.get().await.unwrap();
    let host: Option<String> =
        conn.query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()").await.unwrap();
    host.unwrap()
}

async fn pool_for(manager: MySqlManager) -> MySqlPool {
    MySqlPool::from_manager(manager, PoolConfig { max_size: 1, ..PoolConfig::default() })
        .unwrap()
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_default_transport_is_tcp_even_where_the_socket_is_reachable() {
    common::server().await;
    assert!(std::path::Path::new(&socket()).exists(), "this test needs the server's socket on this machine");
    let manager = MySqlManager::from_url(&common::url()).unwrap();
    assert_eq!(manager.transport(), &Transport::Tcp);
    let peer = peer_of(&pool_for(manager).await).await;
    assert!(peer.starts_with("127.0.0.1:"), "expected a TCP peer, the server saw {peer}");
}

#[tokio::test]
async fn the_socket_transport_connects_through_the_unix_socket() {
    common::server().await;
    let config = MySqlConfig { transport: Some(Transport::Socket(socket().into())), ..MySqlConfig::default() };
    let manager = MySqlManager::new(&MySqlConfig { url: MySqlConfig::from_url(common::url()).url, ..config }).unwrap();
    assert_eq!(manager.descriptor().server_address.as_deref(), Some(socket().as_str()));
    assert_eq!(manager.descriptor().server_port, None);
    let peer = peer_of(&pool_for(manager).await).await;
    assert_eq!(peer, "localhost");
}

#[tokio::test]
async fn a_socket_url_parameter_selects_the_socket() {
    common::server().await;
    let manager =
        MySqlManager::from_url(&format!("mysql://root@localhost/test?socket={}", socket().replace('/', "%2F")))
            .unwrap();
    assert_eq!(manager.transport(), &Transport::Socket(socket().into()));
    assert_eq!(peer_of(&pool_for(manager).await).await, "localhost");
}

#[tokio::test]
async fn prefer_socket_keeps_mysql_async_behaviour_when_asked_for() {
    common::server().await;
    let manager = MySqlManager::from_url(&format!("{}?prefer_socket=true", common::url())).unwrap();
    assert_eq!(manager.transport(), &Transport::PreferSocket);
    assert_eq!(peer_of(&pool_for(manager).await).await, "localhost", "TCP first, then the server's @@socket");
}

#[tokio::test]
async fn the_configured_transport_overrides_the_url() {
    common::server().await;
    let url = format!("{}?prefer_socket=true", common::url());
    let config = MySqlConfig { transport: Some(Transport::Tcp), ..MySqlConfig::from_url(url) };
    let manager = MySqlManager::new(&config).unwrap();
    let peer = peer_of(&pool_for(manager).await).await;
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
}
