//! The Bolt server stopped and restarted under load: the pool fails fast while it is down, recovers on its
//! own after, and hands out no dead connection.
//!
//! The test runs its own ArcadeDB (the package installed by scripts/services/40-arcadedb.sh) on free ports
//! under a temporary directory, and kills and restarts it by PID, so it never disturbs the shared server that
//! the other tests use.

mod common;

use common::arcadedb::ArcadeDb;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_neo4j::{HealthStatus, Neo4jPool, Neo4jPoolError, query};
use parking_lot::Mutex;

/// One worker call: when it started, how long it took, and how it ended.
#[derive(Debug)]
struct Outcome {
    started: Instant,
    took: Duration,
    result: Result<(), String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_fails_fast_while_the_server_is_down_and_recovers_after() {
    let mut server = ArcadeDb::new();
    server.start();
    server.wait_ready().await;

    let pool = Neo4jPool::from(
        aquifer_core::Pool::builder(server.manager())
            .name("aq_neo4j_restart")
            .max_size(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_backoff(Duration::from_millis(50), Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    pool.warm_up().await.unwrap();

    // Load: four workers querying in a loop, bounded in time, each call recorded.
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4i64 {
        let (pool, outcomes, stop) = (pool.clone(), outcomes.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                let started = Instant::now();
                let result = pool.fetch_all(query("RETURN $w AS w").param("w", w)).await;
                let result = match result {
                    Ok(rows) if rows[0].get::<i64>("w").ok() == Some(w) => Ok(()),
                    Ok(rows) => Err(format!("wrong answer {rows:?}")),
                    Err(e) => Err(e.to_string()),
                };
                let failed = result.is_err();
                outcomes.lock().push(Outcome { started, took: started.elapsed(), result });
                // Errors come back at once while the server is down; don't spin.
                tokio::time::sleep(Duration::from_millis(if failed { 20 } else { 2 })).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(outcomes.lock().iter().any(|o| o.result.is_ok()), "the load runs");

    // Down.
    server.kill().await;
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(30);
    loop {
        if matches!(pool.get().await, Err(Neo4jPoolError::Unavailable { .. })) {
            break;
        }
        assert!(Instant::now() < deadline, "the pool never started failing fast");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let e = pool.get().await.expect_err("the server is down");
    assert!(t.elapsed() < Duration::from_secs(1), "fail-fast took {:?}", t.elapsed());
    assert!(matches!(e, Neo4jPoolError::Unavailable { .. }), "{e:?}");
    assert!(matches!(e.backend_error(), Some(aquifer_neo4j::Neo4jError::Unreachable { .. })), "{e:?}");
    let e = pool.fetch_all("RETURN 1").await.expect_err("helpers fail fast too");
    assert!(matches!(e.pool_error(), Some(Neo4jPoolError::Unavailable { .. })), "{e:?}");
    assert_eq!(pool.health().await.status, HealthStatus::Unhealthy);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Up again.
    server.start();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(90);
    let recovered = loop {
        let t = Instant::now();
        if pool.fetch_all("RETURN 1").await.is_ok() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the pool did not recover; see {}",
            server.root.join("server.log").display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every connection the pool hands out now works: hold all of them at once.
    for _ in 0..3 {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get().await.expect("a connection after recovery"));
        }
        for conn in &held {
            conn.run("RETURN 1").await.expect("no dead connection after recovery");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock());
    let down: Vec<&Outcome> = outcomes.iter().filter(|o| o.started > killed && o.started < restarted).collect();
    assert!(!down.is_empty());
    for o in &down {
        assert!(o.result.is_err(), "a query succeeded while the server was down: {o:?}");
        assert!(o.took < Duration::from_secs(5), "a call waited {:?} instead of failing fast: {o:?}", o.took);
    }
    // Once the pool has recovered, no call fails (a call started before then may have hit the old server).
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.started >= recovered).collect();
    assert!(after.iter().filter(|o| o.result.is_ok()).count() >= 4, "the load resumed");
    for o in &after {
        assert!(o.result.is_ok(), "a call after recovery failed: {o:?}");
    }
    assert!(pool.stats().closed_broken + pool.stats().closed_validation_failed > 0, "{:?}", pool.stats());
    assert_eq!(pool.health().await.status, HealthStatus::Healthy);
    eprintln!(
        "calls: {} in all, {} while down, {} after recovery ({:?} after the restart); {:?}",
        outcomes.len(),
        down.len(),
        after.len(),
        recovered - restarted,
        pool.stats()
    );
    pool.close().await;
    server.kill().await;
}
