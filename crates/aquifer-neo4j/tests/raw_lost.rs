//! A query sent straight through a pooled connection (`conn.run(..)`, `conn.execute(..)`, `conn.start_txn()`,
//! not a helper) that fails because the Bolt connection is gone marks the connection broken, so the pool
//! discards it instead of handing the same dead connection out again.

mod common;

use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jPool, PoolConfig, query};
use aquifer_testing::ChaosProxy;

/// A warm pool of one connection through `proxy`, never validated on checkout (a long bypass window), so
/// only the connection's own broken mark can keep a dead connection out of the next checkout.
async fn pool(proxy: &ChaosProxy, name: &str) -> Neo4jPool {
    let pool = PoolConfig {
        name: Some(format!("aq_neo4j_{name}")),
        max_size: 1,
        validation_bypass: Duration::from_secs(600),
        acquire_timeout: Duration::from_secs(10),
        ..PoolConfig::default()
    };
    let config = Neo4jConfig { pool, ..common::config() }.uri(format!("bolt://127.0.0.1:{}", proxy.port()));
    let pool = config.connect().await.unwrap();
    pool.warm_up().await.unwrap();
    pool
}

/// A chaos proxy in front of the Bolt server and a warm [`pool`] named `name` through it.
async fn proxied_pool(name: &str) -> (ChaosProxy, Neo4jPool) {
    common::require_bolt().await;
    let proxy = ChaosProxy::start(common::addr().parse().unwrap()).await.unwrap();
    let pool = pool(&proxy, name).await;
    (proxy, pool)
}

/// Cuts the pool's Bolt connection and keeps the server refusing, so neo4rs cannot quietly reconnect; returns
/// once the reset has had time to reach the client's socket.
async fn lose_the_connection(proxy: &ChaosProxy) {
    proxy.refuse(true);
    proxy.reset_all();
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_execute_failing_as_lost_marks_the_connection_broken_and_the_pool_discards_it() {
    let (proxy, pool) = proxied_pool("raw_lost_execute").await;
    lose_the_connection(&proxy).await;

    let conn = pool.get().await.unwrap();
    assert!(!conn.is_broken());
    let err = conn.execute(query("RETURN 1")).await.err().expect("the Bolt connection is gone");
    assert!(conn.is_broken(), "a lost connection ({err}) is marked broken");
    drop(conn);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.stats().closed_broken, 1, "{:?}", pool.stats());

    proxy.heal();
    let conn = pool.get().await.expect("a new connection once the server accepts again");
    conn.run(query("RETURN 1")).await.expect("the new connection works");
    assert!(!conn.is_broken());
    drop(conn);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_run_and_start_txn_failing_as_lost_mark_the_connection_broken() {
    let (proxy, pool) = proxied_pool("raw_lost_run").await;
    lose_the_connection(&proxy).await;
    let conn = pool.get().await.unwrap();
    assert!(conn.run(query("RETURN 1")).await.is_err());
    assert!(conn.is_broken(), "run");
    drop(conn);

    proxy.heal();
    let conn = pool.get().await.unwrap();
    conn.run(query("RETURN 1")).await.unwrap();
    lose_the_connection(&proxy).await;
    assert!(conn.start_txn().await.is_err());
    assert!(conn.is_broken(), "start_txn");
    drop(conn);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_query_the_server_rejects_leaves_the_connection_in_the_pool() {
    let (_proxy, pool) = proxied_pool("raw_lost_rejected").await;
    let conn = pool.get().await.unwrap();
    assert!(conn.run(query("THIS IS NOT CYPHER")).await.is_err());
    assert!(!conn.is_broken(), "a server error says nothing about the connection");
    drop(conn);
    let conn = pool.get().await.unwrap();
    conn.run(query("RETURN 1")).await.unwrap();
    drop(conn);
    assert_eq!(pool.stats().closed_broken, 0);
    assert_eq!(pool.stats().created, 1, "the same connection was kept");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_run_on_and_execute_on_failing_as_lost_mark_the_connection_broken() {
    let (proxy, pool) = proxied_pool("raw_lost_on").await;
    let conn = pool.get().await.unwrap();
    conn.run_on("testdb", query("RETURN 1")).await.expect("run_on works while the connection is up");
    lose_the_connection(&proxy).await;
    assert!(conn.run_on("testdb", query("RETURN 1")).await.is_err());
    assert!(conn.is_broken(), "run_on");
    drop(conn);

    proxy.heal();
    let conn = pool.get().await.unwrap();
    assert!(!conn.is_broken(), "a new connection");
    lose_the_connection(&proxy).await;
    assert!(conn.execute_on("testdb", query("RETURN 1")).await.is_err());
    assert!(conn.is_broken(), "execute_on");
    drop(conn);
    pool.close().await;
}
