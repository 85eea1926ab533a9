//! Transactions through pooled connections: commit on Ok, rollback on Err, isolation, and whole retries of
//! transactions that hit a transient conflict.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aquifer_neo4j::{Neo4jError, Neo4jOperationError, Neo4jPool, RetryPolicy, query};
use tokio::sync::Barrier;

const LABEL: &str = "AqNeoTx";

async fn count(pool: &Neo4jPool, run: &str) -> i64 {
    common::count(pool, query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run RETURN count(n) AS n")).param("run", run))
        .await
}

#[tokio::test]
async fn transaction_commits_when_the_work_returns_ok() {
    let pool = common::pool("tx_commit", 2, None).await;
    let run = common::run_id();
    let r = run.clone();
    let value = pool
        .transaction(move |txn| {
            let run = r.clone();
            Box::pin(async move {
                txn.run(query(&format!("CREATE (:{LABEL} {{run: $run, n: 1}})")).param("run", run.as_str())).await?;
                txn.run(query(&format!("CREATE (:{LABEL} {{run: $run, n: 2}})")).param("run", run.as_str())).await?;
                Ok("done")
            })
        })
        .await
        .unwrap();
    assert_eq!(value, "done");
    assert_eq!(count(&pool, &run).await, 2);
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn transaction_rolls_back_when_the_work_returns_err() {
    let pool = common::pool("tx_rollback", 2, None).await;
    let run = common::run_id();
    let r = run.clone();
    let e = pool
        .transaction(move |txn| {
            let run = r.clone();
            Box::pin(async move {
                txn.run(query(&format!("CREATE (:{LABEL} {{run: $run}})")).param("run", run.as_str())).await?;
                Err::<(), _>(Neo4jError::abort("the listener is banned"))
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Neo4jOperationError::Backend(Neo4jError::Aborted(m)) if m.to_string() == "the listener is banned"),
        "{e:?}"
    );
    assert_eq!(count(&pool, &run).await, 0);
    // Both connections are usable afterwards.
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    a.run("RETURN 1").await.unwrap();
    b.run("RETURN 1").await.unwrap();
}

#[tokio::test]
async fn a_failing_statement_rolls_the_transaction_back() {
    let pool = common::pool("tx_failing_statement", 1, None).await;
    let run = common::run_id();
    let r = run.clone();
    let e = pool
        .transaction(move |txn| {
            let run = r.clone();
            Box::pin(async move {
                txn.run(query(&format!("CREATE (:{LABEL} {{run: $run}})")).param("run", run.as_str())).await?;
                txn.run("THIS IS NOT CYPHER").await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(e.backend_error().and_then(Neo4jError::code), Some("Neo.ClientError.Statement.SyntaxError"), "{e:?}");
    assert_eq!(count(&pool, &run).await, 0);
}

#[tokio::test]
async fn uncommitted_writes_are_invisible_to_other_connections() {
    let pool = common::pool("tx_isolation", 2, None).await;
    let run = common::run_id();
    let (r, p) = (run.clone(), pool.clone());
    let seen_inside = pool
        .transaction(move |txn| {
            let (run, pool) = (r.clone(), p.clone());
            Box::pin(async move {
                txn.run(query(&format!("CREATE (:{LABEL} {{run: $run}})")).param("run", run.as_str())).await?;
                let mut rows = txn
                    .execute(
                        query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run RETURN count(n) AS n"))
                            .param("run", run.as_str()),
                    )
                    .await?;
                let own: i64 = rows.next(&mut *txn).await?.expect("a row").get("n")?;
                rows.finish(&mut *txn).await?;
                let others = count(&pool, &run).await;
                Ok((own, others))
            })
        })
        .await
        .unwrap();
    assert_eq!(seen_inside, (1, 0), "(own view, another connection's view) before commit");
    assert_eq!(count(&pool, &run).await, 1);
    common::cleanup(&pool, LABEL, &run).await;
}

/// Two transactions increment the same counter, both before either commits: ArcadeDB refuses the second
/// commit with `Neo.TransientError.Transaction.DeadlockDetected`.
async fn conflicting_increments(pool: &Neo4jPool, run: &str) -> (Vec<Result<(), Neo4jOperationError>>, usize) {
    pool.execute(query(&format!("CREATE (:{LABEL} {{run: $run, counter: 0}})")).param("run", run)).await.unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (pool, run, barrier, attempts) = (pool.clone(), run.to_owned(), barrier.clone(), attempts.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            pool.transaction(move |txn| {
                let (run, barrier) = (run.clone(), barrier.clone());
                attempts.fetch_add(1, Ordering::SeqCst);
                let wait = std::mem::replace(&mut first, false);
                Box::pin(async move {
                    txn.run(
                        query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run SET n.counter = n.counter + 1"))
                            .param("run", run.as_str()),
                    )
                    .await?;
                    if wait {
                        barrier.wait().await;
                    }
                    Ok(())
                })
            })
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    (results, attempts.load(Ordering::SeqCst))
}

async fn counter(pool: &Neo4jPool, run: &str) -> i64 {
    let rows = pool
        .fetch_all(query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run RETURN n.counter AS c")).param("run", run))
        .await
        .unwrap();
    rows[0].get("c").unwrap()
}

#[tokio::test]
async fn a_transient_conflict_retries_the_whole_transaction() {
    let policy = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
    let pool = common::pool_with_retry("tx_retry", 2, None, policy).await;
    let run = common::run_id();
    let (results, attempts) = conflicting_increments(&pool, &run).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(attempts > 2, "expected at least one retry, saw {attempts} attempts");
    assert_eq!(counter(&pool, &run).await, 2, "each increment applied exactly once");
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn without_retries_a_transient_conflict_is_a_transient_error() {
    let pool = common::pool_with_retry("tx_no_retry", 2, None, RetryPolicy::never()).await;
    let run = common::run_id();
    let (results, attempts) = conflicting_increments(&pool, &run).await;
    assert_eq!(attempts, 2);
    let failed: Vec<&Neo4jOperationError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let e = failed[0].backend_error().expect("a Neo4j error");
    assert!(e.is_transient(), "{e:?}");
    assert!(e.code().is_some_and(|c| c.starts_with("Neo.TransientError.")), "{e:?}");
    assert_eq!(counter(&pool, &run).await, 1);
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn the_graph_transaction_api_commits_and_rolls_back_on_pooled_connections() {
    let pool = common::pool("tx_graph_api", 2, None).await;
    let run = common::run_id();
    let conn = pool.get().await.unwrap();
    let mut txn = conn.start_txn().await.unwrap();
    txn.run(query(&format!("CREATE (:{LABEL} {{run: $run, kept: true}})")).param("run", run.as_str())).await.unwrap();
    txn.commit().await.unwrap();
    let mut txn = conn.start_txn().await.unwrap();
    txn.run(query(&format!("CREATE (:{LABEL} {{run: $run, kept: false}})")).param("run", run.as_str())).await.unwrap();
    txn.rollback().await.unwrap();
    drop(conn);
    let rows = pool
        .fetch_all(
            query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run RETURN n.kept AS kept")).param("run", run.as_str()),
        )
        .await
        .unwrap();
    let kept: Vec<bool> = rows.iter().map(|r| r.get("kept").unwrap()).collect();
    assert_eq!(kept, vec![true]);
    common::cleanup(&pool, LABEL, &run).await;
}
