//! The Bolt server stopped and restarted under load: the pool fails fast while it is down, recovers on its
//! own after, and hands out no dead connection.
//!
//! The test runs its own ArcadeDB (the package installed by scripts/services/40-arcadedb.sh) on free ports
//! under a temporary directory, and kills and restarts it by PID, so it never disturbs the shared server that
//! the other tests use.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_core::Manager;
use aquifer_neo4j::{HealthStatus, Neo4jManager, Neo4jPool, Neo4jPoolError, Neo4jPoolExt, query};
use parking_lot::Mutex;
use tokio::process::{Child, Command};

/// An ArcadeDB server of this test's own.
struct ArcadeDb {
    root: PathBuf,
    bolt: u16,
    http: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn java() -> PathBuf {
    let dir = std::env::var("AQUIFER_SERVICES_DIR").unwrap_or_else(|_| "/tmp/aquifer-services".to_owned());
    let java = PathBuf::from(dir).join("arcadedb/pkg/arcadedb_embedded/jre/bin/java");
    assert!(java.exists(), "ArcadeDB is not installed at {}; install it with `{}`", java.display(), common::SCRIPT);
    java
}

impl ArcadeDb {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("aq-neo4j-restart-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        ArcadeDb { root, bolt: free_port(), http: free_port(), child: None }
    }

    fn start(&mut self) {
        let java = java();
        let jars = java.parent().unwrap().parent().unwrap().parent().unwrap().join("jars/*");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("server.log")).unwrap();
        let child = Command::new(java)
            .arg("-Xms64m")
            .arg("-Xmx384m")
            .arg(format!("-Darcadedb.server.rootPath={}", self.root.display()))
            .arg(format!("-Darcadedb.server.databaseDirectory={}", self.root.join("databases").display()))
            .arg(format!("-Darcadedb.server.rootPassword={}", common::PASSWORD))
            .arg("-Darcadedb.server.httpIncomingHost=127.0.0.1")
            .arg(format!("-Darcadedb.server.httpIncomingPort={}", self.http))
            .arg("-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin")
            .arg("-Darcadedb.bolt.host=127.0.0.1")
            .arg(format!("-Darcadedb.bolt.port={}", self.bolt))
            .arg("-Darcadedb.server.defaultDatabases=testdb[root]")
            .arg("-cp")
            .arg(jars)
            .arg("com.arcadedb.server.ArcadeDBServer")
            // ArcadeDB writes ./log/ under its working directory.
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start ArcadeDB");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL: a crash, not a clean shutdown) and waits until it is gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    fn manager(&self) -> Neo4jManager {
        Neo4jManager::new(common::config().uri(format!("bolt://127.0.0.1:{}", self.bolt))).unwrap()
    }

    /// Waits (at most 90 s) until a connection to this server runs `RETURN 1`.
    async fn wait_ready(&self) {
        let manager = self.manager();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), manager.connect()).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ArcadeDB did not start; see {}",
                self.root.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ArcadeDb {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

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

    let pool = Neo4jPool::builder(server.manager())
        .name("aq_neo4j_restart")
        .max_size(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build()
        .unwrap();
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
                let result = pool.fetch(query("RETURN $w AS w").param("w", w)).await;
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
    let e = pool.fetch("RETURN 1").await.expect_err("helpers fail fast too");
    assert!(matches!(e, Neo4jPoolError::Unavailable { .. }), "{e:?}");
    assert_eq!(pool.health().await.status, HealthStatus::Unhealthy);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Up again.
    server.start();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(90);
    let recovered = loop {
        let t = Instant::now();
        if pool.fetch("RETURN 1").await.is_ok() {
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
