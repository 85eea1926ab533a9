//! Every Bolt connection of the pool is cut while it sits idle inside the validation bypass window, then
//! traffic resumes: neither the helpers nor a plain `get()` fail a request.
//!
//! ArcadeDB has no command that ends another session, so the connections go through
//! [`aquifer_testing::ChaosProxy`], which resets all of them at once (as a server or a proxy that restarts
//! would).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jOperationError, Neo4jPool, PoolConfig, query};
use aquifer_testing::ChaosProxy;
use parking_lot::Mutex;

async fn proxy() -> ChaosProxy {
    ChaosProxy::start(common::addr().parse().expect("a socket address")).await.expect("the proxy starts")
}

/// Resets every connection open through `proxy` and waits (bounded) until the proxy has let go of them;
/// returns how many were open.
async fn cut_all(proxy: &ChaosProxy) -> usize {
    let open = proxy.live();
    proxy.reset_all();
    for _ in 0..400 {
        if proxy.live() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(proxy.live(), 0, "the proxy still holds connections after a reset");
    open
}

const POOL: usize = 8;

async fn warm_pool(relay: &ChaosProxy, name: &str) -> Neo4jPool {
    let pool = PoolConfig {
        name: Some(format!("aq_neo4j_{name}")),
        max_size: POOL,
        min_idle: POOL,
        validation_bypass: Duration::from_secs(30),
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    };
    let config = Neo4jConfig { pool, ..common::config() }.uri(format!("bolt://127.0.0.1:{}", relay.port()));
    let pool = config.connect().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(pool.get().await.unwrap());
    }
    for conn in &held {
        conn.graph().run(query("RETURN 1")).await.unwrap();
    }
    drop(held);
    assert_eq!(pool.state().idle, POOL);
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_fail_no_request_after_every_idle_connection_was_cut() {
    common::require_bolt().await;
    let relay = proxy().await;
    let pool = warm_pool(&relay, "dead_idle_helpers").await;
    assert!(cut_all(&relay).await >= POOL);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let run = common::run_id();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<Neo4jOperationError>::new()));
    let mut tasks = Vec::new();
    for task in 0..32_i64 {
        let (pool, ok, failed, run) = (pool.clone(), ok.clone(), failed.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..4_i64 {
                // Writes first: the dead connections meet writes, which may only be retried if they never ran.
                let r = if i % 2 == 1 {
                    pool.fetch_one(query("RETURN $i AS i").param("i", i)).await.map(|_| ())
                } else {
                    let q = query("CREATE (:AqDeadIdle {run: $run, task: $task, i: $i})");
                    pool.execute(q.param("run", run.clone()).param("task", task).param("i", i)).await
                };
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed.lock().push(e),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock());
    assert!(failed.is_empty(), "{} of 128 requests failed: {:?}", failed.len(), failed);
    assert_eq!(ok.load(Ordering::Relaxed), 128);
    let q = query("MATCH (n:AqDeadIdle) WHERE n.run = $run RETURN count(n) AS n").param("run", run.clone());
    assert_eq!(common::count(&pool, q).await, 64, "every write applied exactly once");
    common::cleanup(&pool, "AqDeadIdle", &run).await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_hands_out_no_connection_that_was_cut_while_idle() {
    common::require_bolt().await;
    let relay = proxy().await;
    let pool = warm_pool(&relay, "dead_idle_get").await;
    assert!(cut_all(&relay).await >= POOL);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut failures = Vec::new();
    for _ in 0..2 * POOL {
        let conn = pool.get().await.unwrap();
        if let Err(e) = conn.graph().run(query("RETURN 1")).await {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{} of {} queries failed: {failures:?}", failures.len(), 2 * POOL);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_query_that_finds_the_bolt_connection_gone_marks_it_broken() {
    common::require_bolt().await;
    let relay = proxy().await;
    let pool = warm_pool(&relay, "dead_raw").await;
    let conn = pool.get().await.unwrap();
    // The server is gone and stays gone: neo4rs's own reconnect inside the Graph is refused too.
    relay.refuse(true);
    cut_all(&relay).await;

    let err = conn.run(query("RETURN 1")).await.expect_err("the Bolt connection is gone");
    assert!(conn.is_broken(), "a raw query that lost its connection marks it broken ({err})");
    drop(conn);
    assert_eq!(pool.stats().closed_broken, 1, "the pool discarded it on return: {:?}", pool.stats());

    relay.heal();
    let conn = pool.get().await.unwrap();
    conn.run(query("RETURN 1")).await.expect("a fresh or validated connection once the server is back");
    assert!(!conn.is_broken());
    drop(conn);
    pool.close().await;
}
