//! What a dropped query, stream or transaction leaves behind on the one Bolt connection of a pooled Graph,
//! and that the next user of that connection is never affected by it.

mod common;

use std::time::Duration;

use aquifer_neo4j::{Neo4jError, Neo4jPool, query};
use common::Nodes;

const LABEL: &str = "AqNeoCancel";
const BIG: &str = "UNWIND range(1, 200000) AS i RETURN i, 'padding padding padding padding' AS p";

async fn answer(pool: &Neo4jPool) -> i64 {
    let rows = pool.fetch_all("RETURN 42 AS answer").await.expect("the next user's query");
    assert_eq!(rows.len(), 1, "exactly the next query's rows, nothing left over");
    rows[0].get("answer").unwrap()
}

/// A pool of one connection, already open, so a timeout below cuts the query rather than the connect.
async fn pool(name: &str) -> Neo4jPool {
    let pool = common::pool(name, 1, None).await;
    pool.warm_up().await.expect("connect");
    assert_eq!(answer(&pool).await, 42);
    pool
}

#[tokio::test]
async fn a_fetch_dropped_mid_stream_is_reset_before_the_next_user_gets_the_connection() {
    let pool = pool("cancel_fetch").await;
    let dropped = tokio::time::timeout(Duration::from_millis(20), pool.fetch_all(BIG)).await;
    assert!(dropped.is_err(), "the fetch should still have been streaming when dropped");
    assert_eq!(answer(&pool).await, 42);
    assert_eq!(pool.stats().resets, 1, "the interrupted connection went through a reset");
    assert_eq!(pool.stats().created, 1, "and was kept");
}

#[tokio::test]
async fn a_write_dropped_in_flight_is_applied_whole_or_not_at_all() {
    let pool = pool("cancel_write").await;
    let nodes = Nodes::new(LABEL);
    let write = pool.execute(nodes.query(&format!("UNWIND range(1, 5000) AS i CREATE (:{LABEL} {{run: $run, i: i}})")));
    let _ = tokio::time::timeout(Duration::from_millis(5), write).await;
    assert_eq!(answer(&pool).await, 42);
    // The server may still be applying the abandoned statement: wait until the count settles.
    let mut n = nodes.count(&pool).await;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = nodes.count(&pool).await;
        if again == n {
            break;
        }
        n = again;
    }
    assert!(n == 0 || n == 5000, "a partial write is visible: {n} nodes");
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn a_transaction_dropped_before_commit_is_rolled_back_and_its_connection_reused() {
    let pool = pool("cancel_tx").await;
    let nodes = Nodes::new(LABEL);
    // Never finishes after its write: the caller gives up on it.
    let tx = common::create_then(&pool, &nodes, |_, _| Box::pin(std::future::pending::<Result<(), _>>()));
    assert!(tokio::time::timeout(Duration::from_millis(500), tx).await.is_err());
    assert_eq!(answer(&pool).await, 42);
    assert_eq!(nodes.count(&pool).await, 0, "the dropped transaction was not committed");
    assert_eq!(pool.stats().created, 1, "the same connection served the next user");
    // And it can run a transaction of its own.
    common::create_then(&pool, &nodes, |_, _| Box::pin(async { Ok(()) })).await.unwrap();
    assert_eq!(nodes.count(&pool).await, 1);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn a_graph_stream_dropped_half_read_does_not_leak_rows_to_the_next_user() {
    let pool = common::pool("cancel_graph_stream", 1, None).await;
    {
        let conn = pool.get().await.unwrap();
        let mut stream = conn.execute(query(BIG)).await.unwrap();
        let first = stream.next().await.unwrap().expect("a row");
        assert_eq!(first.get::<i64>("i").unwrap(), 1);
        // Dropped with most of the result unread, while a PULL may still be in flight.
    }
    assert_eq!(answer(&pool).await, 42);
}

#[tokio::test]
async fn a_graph_query_future_dropped_mid_read_does_not_leak_to_the_next_user() {
    let pool = pool("cancel_graph_future").await;
    {
        let conn = pool.get().await.unwrap();
        let read_all = async {
            let mut stream = conn.execute(query(BIG)).await?;
            while stream.next().await?.is_some() {}
            Ok::<_, aquifer_neo4j::neo4rs::Error>(())
        };
        assert!(tokio::time::timeout(Duration::from_millis(20), read_all).await.is_err());
    }
    assert_eq!(answer(&pool).await, 42);
}

#[tokio::test]
async fn a_graph_transaction_dropped_uncommitted_is_rolled_back() {
    let (pool, nodes) = common::pool_and_nodes("cancel_graph_tx", 1, LABEL).await;
    {
        let conn = pool.get().await.unwrap();
        let mut txn = conn.start_txn().await.unwrap();
        txn.run(nodes.create("")).await.unwrap();
        // Neither committed nor rolled back.
    }
    assert_eq!(answer(&pool).await, 42);
    assert_eq!(nodes.count(&pool).await, 0);
}

#[tokio::test]
async fn a_stream_kept_after_its_connection_returned_makes_the_pool_discard_that_connection() {
    let pool = common::pool("cancel_kept_stream", 1, None).await;
    let conn = pool.get().await.unwrap();
    let kept = conn.execute(query("RETURN 1")).await.unwrap();
    drop(conn);
    let e = pool.fetch_all("RETURN 42 AS answer").await.expect_err("the only Bolt connection is still held");
    assert!(matches!(e.backend_error(), Some(Neo4jError::ConnectionBusy { .. })), "{e:?}");
    assert_eq!(pool.stats().closed_broken, 1, "the connection was discarded");
    assert_eq!(answer(&pool).await, 42, "a new connection serves the next user");
    drop(kept);
}
