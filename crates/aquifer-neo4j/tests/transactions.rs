//! Transactions through pooled connections: commit on Ok, rollback on Err, isolation, and whole retries of
//! transactions that hit a transient conflict.

mod common;

use aquifer_neo4j::{Neo4jError, Neo4jOperationError, Neo4jPool, RetryPolicy};
use common::Nodes;

const LABEL: &str = "AqNeoTx";

#[tokio::test]
async fn transaction_commits_when_the_work_returns_ok() {
    let (pool, nodes) = common::pool_and_nodes("tx_commit", 2, LABEL).await;
    let value = common::create_then(&pool, &nodes, |txn, nodes| {
        Box::pin(async move {
            txn.run(nodes.create("n: 2")).await?;
            Ok("done")
        })
    })
    .await
    .unwrap();
    assert_eq!(value, "done");
    assert_eq!(nodes.count(&pool).await, 2);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn transaction_rolls_back_when_the_work_returns_err() {
    let (pool, nodes) = common::pool_and_nodes("tx_rollback", 2, LABEL).await;
    let e = common::create_then(&pool, &nodes, |_, _| {
        Box::pin(async { Err::<(), _>(Neo4jError::abort("the listener is banned")) })
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Neo4jOperationError::Backend(Neo4jError::Aborted(m)) if m.to_string() == "the listener is banned"),
        "{e:?}"
    );
    assert_eq!(nodes.count(&pool).await, 0);
    // Both connections are usable afterwards.
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    a.run("RETURN 1").await.unwrap();
    b.run("RETURN 1").await.unwrap();
}

#[tokio::test]
async fn a_failing_statement_rolls_the_transaction_back() {
    let (pool, nodes) = common::pool_and_nodes("tx_failing_statement", 1, LABEL).await;
    let e =
        common::create_then(&pool, &nodes, |txn, _| Box::pin(async move { Ok(txn.run("THIS IS NOT CYPHER").await?) }))
            .await
            .unwrap_err();
    assert_eq!(e.backend_error().and_then(Neo4jError::code), Some("Neo.ClientError.Statement.SyntaxError"), "{e:?}");
    assert_eq!(nodes.count(&pool).await, 0);
}

#[tokio::test]
async fn uncommitted_writes_are_invisible_to_other_connections() {
    let (pool, nodes) = common::pool_and_nodes("tx_isolation", 2, LABEL).await;
    let other = pool.clone();
    let seen_inside = common::create_then(&pool, &nodes, move |txn, nodes| {
        let other = other.clone();
        Box::pin(async move {
            let mut rows = txn.execute(nodes.matching("RETURN count(n) AS n")).await?;
            let own: i64 = rows.next(&mut *txn).await?.expect("a row").get("n")?;
            rows.finish(&mut *txn).await?;
            Ok((own, nodes.count(&other).await))
        })
    })
    .await
    .unwrap();
    assert_eq!(seen_inside, (1, 0), "(own view, another connection's view) before commit");
    assert_eq!(nodes.count(&pool).await, 1);
    nodes.cleanup(&pool).await;
}

async fn counter(pool: &Neo4jPool, nodes: &Nodes) -> i64 {
    let rows = pool.fetch_all(nodes.matching("RETURN n.counter AS c")).await.unwrap();
    rows[0].get("c").unwrap()
}

#[tokio::test]
async fn a_transient_conflict_retries_the_whole_transaction() {
    let policy = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
    let pool = common::pool_with_retry("tx_retry", 2, None, policy).await;
    let nodes = Nodes::new(LABEL);
    let (results, attempts) = common::conflicting_increments(&pool, &nodes).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(attempts > 2, "expected at least one retry, saw {attempts} attempts");
    assert_eq!(counter(&pool, &nodes).await, 2, "each increment applied exactly once");
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn without_retries_a_transient_conflict_is_a_transient_error() {
    let pool = common::pool_with_retry("tx_no_retry", 2, None, RetryPolicy::never()).await;
    let nodes = Nodes::new(LABEL);
    let (results, attempts) = common::conflicting_increments(&pool, &nodes).await;
    assert_eq!(attempts, 2);
    let failed: Vec<&Neo4jOperationError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let e = failed[0].backend_error().expect("a Neo4j error");
    assert!(e.is_transient(), "{e:?}");
    assert!(e.code().is_some_and(|c| c.starts_with("Neo.TransientError.")), "{e:?}");
    assert_eq!(counter(&pool, &nodes).await, 1);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn the_graph_transaction_api_commits_and_rolls_back_on_pooled_connections() {
    let (pool, nodes) = common::pool_and_nodes("tx_graph_api", 2, LABEL).await;
    let conn = pool.get().await.unwrap();
    let mut txn = conn.start_txn().await.unwrap();
    txn.run(nodes.create("kept: true")).await.unwrap();
    txn.commit().await.unwrap();
    let mut txn = conn.start_txn().await.unwrap();
    txn.run(nodes.create("kept: false")).await.unwrap();
    txn.rollback().await.unwrap();
    drop(conn);
    let rows = pool.fetch_all(nodes.matching("RETURN n.kept AS kept")).await.unwrap();
    let kept: Vec<bool> = rows.iter().map(|r| r.get("kept").unwrap()).collect();
    assert_eq!(kept, vec![true]);
    nodes.cleanup(&pool).await;
}
