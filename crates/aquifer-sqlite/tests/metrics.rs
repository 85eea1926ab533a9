//! Both the async pools and the r2d2 pools record the same OpenTelemetry instruments, with the pool name and
//! `db.system.name = sqlite`.

mod common;

use std::time::Duration;

use aquifer_core::metrics::DURATION_BUCKETS;
use aquifer_sqlite::{MetricsEventHandler, SqlitePool, SqliteSyncPool, SyncMetrics};
use aquifer_testing::{Captured, MetricsCapture};
use common::temp_db;

fn histogram_count(captured: &Captured, name: &str, pool: &str) -> u64 {
    let metric = captured.get(name).unwrap_or_else(|| panic!("{name} was not exported"));
    assert_eq!(metric.unit, "s", "{name}");
    metric
        .points
        .iter()
        .filter(|p| p.attr("db.client.connection.pool.name") == Some(pool))
        .inspect(|p| {
            assert_eq!(p.attr("db.system.name"), Some("sqlite"), "{name}: {p:?}");
            assert_eq!(p.bounds, DURATION_BUCKETS.to_vec(), "{name} bucket boundaries");
        })
        .map(|p| p.count)
        .sum()
}

fn counter(captured: &Captured, name: &str, pool: &str) -> f64 {
    captured.get(name).map_or(0.0, |m| {
        m.points.iter().filter(|p| p.attr("db.client.connection.pool.name") == Some(pool)).map(|p| p.value).sum()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_async_pools_record_connection_and_operation_metrics() {
    let capture = MetricsCapture::new();
    let (_dir, path) = temp_db("metrics_async");
    let pool = SqlitePool::builder(&path).name("books").readers(2).meter(capture.meter()).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (x)")).await.unwrap();
    for _ in 0..3 {
        pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get::<_, i64>(0))).await.unwrap();
    }
    let _ = pool.read(|c| c.execute("INSERT INTO aq_sl_t VALUES (1)", [])).await.unwrap_err();

    let got = capture.collect();
    for pool_name in ["books/writer", "books/readers"] {
        assert!(histogram_count(&got, "db.client.connection.wait_time", pool_name) >= 1, "{pool_name}");
        assert!(histogram_count(&got, "db.client.connection.use_time", pool_name) >= 1, "{pool_name}");
        assert!(histogram_count(&got, "db.client.connection.create_time", pool_name) >= 1, "{pool_name}");
    }
    assert_eq!(histogram_count(&got, "db.client.connection.wait_time", "books/readers"), 5); // warm-up + 4 reads

    let ops = got.get("db.client.operation.duration").expect("db.client.operation.duration");
    let on = |pool: &str| {
        ops.points
            .iter()
            .filter(|p| p.attr("db.client.connection.pool.name") == Some(pool))
            .inspect(|p| assert_eq!(p.attr("db.operation.name"), Some("TRANSACTION"), "{p:?}"))
            .collect::<Vec<_>>()
    };
    let reads = on("books/readers");
    assert_eq!(reads.iter().map(|p| p.count).sum::<u64>(), 4);
    assert!(reads.iter().any(|p| p.attr("error.type") == Some("SQLITE_READONLY")), "{reads:?}");
    let writes = on("books/writer");
    assert_eq!(writes.iter().map(|p| p.count).sum::<u64>(), 1);
    let write = writes[0];
    assert_eq!(write.attr("db.namespace"), Some("main"));
    assert_eq!(write.attr("server.address"), Some(&*path.to_string_lossy()));

    let count = got.get("db.client.connection.count").expect("db.client.connection.count");
    assert!(count.points.iter().any(|p| p.attr("db.client.connection.pool.name") == Some("books/readers")
        && p.attr("db.client.connection.state") == Some("idle")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_wait_for_the_writer_counts_a_timeout() {
    let capture = MetricsCapture::new();
    let pool = SqlitePool::builder(":memory:").name("busy").meter(capture.meter()).connect().await.unwrap();
    let held = pool.writer().get().await.unwrap();
    let err = pool.writer().get_timeout(Duration::from_millis(50)).await.unwrap_err();
    assert!(err.is_timeout());
    drop(held);
    assert_eq!(counter(&capture.collect(), "db.client.connection.timeouts", "busy/writer"), 1.0);
}

#[test]
fn the_sync_pools_record_the_same_instruments() {
    let capture = MetricsCapture::new();
    let (_dir, path) = temp_db("metrics_sync");
    let pool = SqliteSyncPool::builder(&path).name("jobs").readers(2).meter(capture.meter()).open_sync().unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (x)")).unwrap();
    for _ in 0..3 {
        pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get::<_, i64>(0))).unwrap();
    }
    let held = pool.writer().get().unwrap();
    assert!(pool.writer().get_timeout(Duration::from_millis(50)).is_err());
    drop(held);

    let got = capture.collect();
    assert_eq!(histogram_count(&got, "db.client.connection.wait_time", "jobs/readers"), 3);
    assert_eq!(histogram_count(&got, "db.client.connection.use_time", "jobs/readers"), 3);
    assert!(histogram_count(&got, "db.client.connection.create_time", "jobs/readers") >= 1);
    assert_eq!(histogram_count(&got, "db.client.connection.create_time", "jobs/writer"), 1);
    assert_eq!(histogram_count(&got, "db.client.connection.wait_time", "jobs/writer"), 2);
    assert_eq!(counter(&got, "db.client.connection.timeouts", "jobs/writer"), 1.0);
    assert_eq!(counter(&got, "aquifer.pool.connections.created", "jobs/writer"), 1.0);
    let count = got.get("db.client.connection.count").expect("db.client.connection.count");
    let idle = count
        .points
        .iter()
        .find(|p| {
            p.attr("db.client.connection.pool.name") == Some("jobs/writer")
                && p.attr("db.client.connection.state") == Some("idle")
        })
        .expect("writer idle count");
    assert_eq!(idle.value, 1.0);
}

#[test]
fn the_event_handler_works_on_any_r2d2_pool() {
    let capture = MetricsCapture::new();
    let metrics = SyncMetrics::new(&capture.meter(), "plain");
    let pool = r2d2::Pool::builder()
        .max_size(1)
        .event_handler(Box::new(MetricsEventHandler::new(metrics)))
        .build(r2d2_sqlite::SqliteConnectionManager::memory())
        .unwrap();
    let conn = pool.get().unwrap();
    assert!(pool.get_timeout(Duration::from_millis(20)).is_err());
    drop(conn);
    let got = capture.collect();
    assert_eq!(histogram_count(&got, "db.client.connection.wait_time", "plain"), 1);
    assert_eq!(histogram_count(&got, "db.client.connection.use_time", "plain"), 1);
    assert_eq!(counter(&got, "db.client.connection.timeouts", "plain"), 1.0);
}
