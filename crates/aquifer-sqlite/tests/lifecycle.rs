//! Health, stats, descriptors and closing.

mod common;

use aquifer_core::PoolError;
use aquifer_sqlite::{HealthStatus, SqliteOperationError, SqlitePool};
use common::temp_db;

#[tokio::test(flavor = "multi_thread")]
async fn both_pools_report_healthy_with_the_sqlite_version_and_path() {
    let (_dir, path) = temp_db("health");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    let health = pool.health_detail().await;
    assert_eq!(health.status, HealthStatus::Healthy, "{health:?}");
    for report in [&health.writer, &health.readers] {
        assert_eq!(report.system, "sqlite");
        assert_eq!(report.server, format!("{}/main", path.display()));
        assert!(report.server_version.as_deref().is_some_and(|v| v.starts_with("SQLite 3.")), "{report:?}");
        assert!(report.latency.is_some());
    }
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["writer"]["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_are_named_after_the_path_unless_named() {
    let (_dir, path) = temp_db("names");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    assert_eq!(pool.writer().name(), format!("{}/main/writer", path.display()));
    assert_eq!(pool.readers().name(), format!("{}/main/readers", path.display()));
    let d = pool.writer().descriptor();
    assert_eq!((d.system.as_ref(), d.namespace.as_deref()), ("sqlite", Some("main")));
    assert_eq!(d.server_address.as_deref(), Some(&*path.to_string_lossy()));
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_both_pools() {
    let pool = SqlitePool::builder(":memory:").readers(3).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (x)")).await.unwrap();
    pool.write(|tx| tx.execute("INSERT INTO aq_sl_t VALUES (1)", [])).await.unwrap();
    for _ in 0..2 {
        pool.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await.unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.writer_state.max_size, 1);
    assert_eq!(s.readers_state.max_size, 3);
    assert!(s.writer.acquired >= 2 && s.readers.acquired >= 2, "{s:?}");
    assert_eq!(s.checkpoints.runs, 0, "no WAL in memory, no checkpoints");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_close_operations_fail_with_closed() {
    let (_dir, path) = temp_db("closed");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (x)")).await.unwrap();
    assert_eq!(pool.close().await, 0);
    let err = pool.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await.unwrap_err();
    assert!(matches!(err, SqliteOperationError::Acquire(PoolError::Closed)), "{err:?}");
    let err = pool.write(|tx| tx.execute("INSERT INTO aq_sl_t VALUES (1)", [])).await.unwrap_err();
    assert!(matches!(err, SqliteOperationError::Acquire(PoolError::Closed)), "{err:?}");
    assert_eq!(pool.health().await.status, HealthStatus::Unhealthy);
    // Closing twice is harmless.
    assert_eq!(pool.close().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn close_runs_optimize_and_leaves_no_wal_behind() {
    let (_dir, path) = temp_db("optimize");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    pool.write(|tx| {
        tx.execute_batch("CREATE TABLE aq_sl_t (x INTEGER); CREATE INDEX aq_sl_t_x ON aq_sl_t (x);")?;
        for i in 0..1000 {
            tx.execute("INSERT INTO aq_sl_t VALUES (?1)", [i % 10])?;
        }
        Ok(())
    })
    .await
    .unwrap();
    // Queries that would benefit from statistics: PRAGMA optimize analyzes the table they used.
    for _ in 0..3 {
        pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t WHERE x = 3", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap();
    }
    pool.interact(|c| c.query_row("SELECT count(*) FROM aq_sl_t WHERE x = 3", [], |r| r.get::<_, i64>(0)))
        .await
        .unwrap()
        .unwrap();
    pool.close().await;
    drop(pool);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert!(!std::path::Path::new(&wal).exists(), "the last connection to close removes the WAL");
    let conn = aquifer_sqlite::rusqlite::Connection::open(&path).unwrap();
    let analyzed: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'", [], |r| r.get(0)).unwrap();
    assert_eq!(analyzed, 1, "PRAGMA optimize should have run ANALYZE");
}

#[test]
fn the_pools_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<SqlitePool>();
    check::<aquifer_sqlite::SqliteSyncPool>();
    fn send<T: Send>() {}
    send::<aquifer_sqlite::SqlitePooled>();
    send::<SqliteOperationError>();
    send::<aquifer_sqlite::SqliteStartError>();
    send::<aquifer_sqlite::SqliteSyncError>();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leak_hook_sees_connections_of_both_pools_held_too_long() {
    let (_dir, path) = temp_db("leaks");
    let reports = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let config = aquifer_sqlite::SqliteConfig {
        pool: aquifer_sqlite::PoolConfig {
            name: Some("leaky".into()),
            leak_detection_threshold: Some(std::time::Duration::from_millis(50)),
            ..Default::default()
        },
        ..aquifer_sqlite::SqliteConfig::new(path.to_string_lossy())
    };
    let seen = std::sync::Arc::clone(&reports);
    let pool = config.builder().on_leak(move |r| seen.lock().push(r.pool.to_string())).connect().await.unwrap();
    let (writer, reader) = (pool.writer().get().await.unwrap(), pool.readers().get().await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reports.lock().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop((writer, reader));
    let mut pools = reports.lock().clone();
    pools.sort();
    assert_eq!(pools, ["leaky/readers", "leaky/writer"]);
}
