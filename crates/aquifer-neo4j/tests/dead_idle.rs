//! Every Bolt connection of the pool is cut while it sits idle inside the validation bypass window, then
//! traffic resumes: neither the helpers nor a plain `get()` fail a request.
//!
//! ArcadeDB has no command that ends another session, so the connections go through a small TCP relay of
//! this test's own that can drop all of them at once (both sockets closed, as a server or a proxy that
//! restarts would); the relay is hand-written because it needs nothing but accept, copy and abort.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jOperationError, Neo4jPool, PoolConfig, query};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP relay to the Bolt server whose connections can all be dropped at once.
struct Relay {
    port: u16,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let accept = tokio::spawn({
            let links = links.clone();
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { return };
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    links.lock().push(link.abort_handle());
                }
            }
        })
        .abort_handle();
        Relay { port, links, accept }
    }

    /// Closes every connection relayed so far; returns how many were open.
    async fn cut_all(&self) -> usize {
        let links = std::mem::take(&mut *self.links.lock());
        let open = links.iter().filter(|l| !l.is_finished()).count();
        for link in &links {
            link.abort();
        }
        // Aborted tasks drop their sockets when the runtime gets to them.
        while links.iter().any(|l| !l.is_finished()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        open
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.links.lock().iter().for_each(AbortHandle::abort);
    }
}

const POOL: usize = 8;

async fn warm_pool(relay: &Relay, name: &str) -> Neo4jPool {
    let pool = PoolConfig {
        name: Some(format!("aq_neo4j_{name}")),
        max_size: POOL,
        min_idle: POOL,
        validation_bypass: Duration::from_secs(30),
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    };
    let config = Neo4jConfig { pool, ..common::config() }.uri(format!("bolt://127.0.0.1:{}", relay.port));
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
    let relay = Relay::start(common::addr()).await;
    let pool = warm_pool(&relay, "dead_idle_helpers").await;
    assert!(relay.cut_all().await >= POOL);
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
    let relay = Relay::start(common::addr()).await;
    let pool = warm_pool(&relay, "dead_idle_get").await;
    assert!(relay.cut_all().await >= POOL);
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
