//! OpenTelemetry metrics, checked through the SDK's in-memory exporter: names, units, instrument kinds and
//! attributes exactly as the semantic conventions (and docs/metrics.md) say, values consistent with what happened.

mod common;

use std::time::Duration;

use aquifer_core::metrics::DURATION_BUCKETS;
use aquifer_testing::{Captured, FakeManager, Kind, MetricsCapture};
use common::{builder, eventually};

fn metric<'a>(c: &'a Captured, name: &str, unit: &str, kind: Kind) -> &'a aquifer_testing::CapturedMetric {
    let m = c.get(name).unwrap_or_else(|| panic!("{name} was not exported; got {:?}", c.metrics.keys()));
    assert_eq!(m.unit, unit, "unit of {name}");
    assert_eq!(m.kind, kind, "instrument kind of {name}");
    for p in &m.points {
        assert_eq!(p.attr("db.client.connection.pool.name"), Some("orders"), "{name}: {p:?}");
        assert_eq!(p.attr("db.system.name"), Some("other_sql"), "{name}: {p:?}");
    }
    m
}

#[tokio::test(start_paused = true)]
async fn connection_counts_are_observed_by_state() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").max_size(4).min_idle(1).meter(capture.meter()).build().unwrap();
    let held = [pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap()];
    eventually(Duration::from_secs(5), "min_idle was topped up", || pool.state().idle == 1).await;

    let c = capture.collect();
    let count = metric(&c, "db.client.connection.count", "{connection}", Kind::UpDownCounter);
    assert_eq!(count.point_with("db.client.connection.state", "used").unwrap().value, 3.0);
    assert_eq!(count.point_with("db.client.connection.state", "idle").unwrap().value, 1.0);
    assert_eq!(metric(&c, "db.client.connection.max", "{connection}", Kind::UpDownCounter).total(), 4.0);
    assert_eq!(metric(&c, "db.client.connection.idle.max", "{connection}", Kind::UpDownCounter).total(), 4.0);
    assert_eq!(metric(&c, "db.client.connection.idle.min", "{connection}", Kind::UpDownCounter).total(), 1.0);

    drop(held);
    let c = capture.collect();
    let count = metric(&c, "db.client.connection.count", "{connection}", Kind::UpDownCounter);
    assert_eq!(count.point_with("db.client.connection.state", "used").unwrap().value, 0.0);
    assert_eq!(count.point_with("db.client.connection.state", "idle").unwrap().value, 4.0);
}

#[tokio::test(start_paused = true)]
async fn pending_requests_count_the_waiters() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").max_size(1).meter(capture.meter()).build().unwrap();
    let held = pool.get().await.unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { drop(pool.get().await) })
        })
        .collect();
    eventually(Duration::from_secs(5), "two waiters are queued", || pool.state().waiting == 2).await;
    let c = capture.collect();
    assert_eq!(metric(&c, "db.client.connection.pending_requests", "{request}", Kind::UpDownCounter).total(), 2.0);
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    let c = capture.collect();
    assert_eq!(metric(&c, "db.client.connection.pending_requests", "{request}", Kind::UpDownCounter).total(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn timings_are_histograms_in_seconds_with_fine_buckets() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(5));
    let pool = builder(&fake).name("orders").meter(capture.meter()).build().unwrap();
    for _ in 0..5 {
        let conn = pool.get().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(conn);
    }
    let c = capture.collect();
    let create = metric(&c, "db.client.connection.create_time", "s", Kind::Histogram);
    assert_eq!(create.count(), 1);
    assert!(create.total() >= 0.005, "create_time sum {} s < the 5 ms connect delay", create.total());
    let wait = metric(&c, "db.client.connection.wait_time", "s", Kind::Histogram);
    assert_eq!(wait.count(), 5);
    assert!(wait.total() >= 0.005, "the first get waited for the connect");
    let used = metric(&c, "db.client.connection.use_time", "s", Kind::Histogram);
    assert_eq!(used.count(), 5);
    assert!(used.total() >= 0.010, "five uses of at least 2 ms");
    assert_eq!(used.points[0].bounds, DURATION_BUCKETS.to_vec());
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_counted() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").max_size(1).meter(capture.meter()).build().unwrap();
    let _held = pool.get().await.unwrap();
    for _ in 0..3 {
        assert!(pool.get_timeout(Duration::from_millis(5)).await.is_err());
    }
    let c = capture.collect();
    assert_eq!(metric(&c, "db.client.connection.timeouts", "{timeout}", Kind::Counter).total(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn created_and_closed_connections_are_counted_with_the_close_reason() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").meter(capture.meter()).build().unwrap();
    let mut a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c2 = pool.get().await.unwrap();
    a.broken = true;
    drop(a);
    b.discard();
    drop(c2);
    pool.close().await;
    let c = capture.collect();
    assert_eq!(metric(&c, "aquifer.pool.connections.created", "{connection}", Kind::Counter).total(), 3.0);
    let closed = metric(&c, "aquifer.pool.connections.closed", "{connection}", Kind::Counter);
    assert_eq!(closed.point_with("reason", "broken").unwrap().value, 1.0);
    assert_eq!(closed.point_with("reason", "discarded").unwrap().value, 1.0);
    assert_eq!(closed.point_with("reason", "pool_closed").unwrap().value, 1.0);
}

#[tokio::test(start_paused = true)]
async fn connect_errors_are_counted_by_error_type() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake)
        .name("orders")
        .fail_fast_after(Duration::from_millis(100))
        .meter(capture.meter())
        .build()
        .unwrap();
    assert!(pool.get().await.is_err());
    let c = capture.collect();
    let errors = metric(&c, "aquifer.pool.connect.errors", "{error}", Kind::Counter);
    assert!(errors.point_with("error.type", "connection_refused").unwrap().value >= 3.0);
    assert_eq!(metric(&c, "aquifer.pool.health", "1", Kind::Gauge).total(), 0.0, "failing fast is unhealthy");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_connect_is_counted_as_a_connect_error_of_type_panic() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    fake.set_panic(aquifer_testing::FakeHook::Connect, true);
    let pool = builder(&fake).name("orders").meter(capture.meter()).build().unwrap();
    assert!(pool.get().await.is_err());
    let c = capture.collect();
    let errors = metric(&c, "aquifer.pool.connect.errors", "{error}", Kind::Counter);
    assert!(errors.point_with("error.type", "panic").unwrap().value >= 1.0);
}

#[tokio::test(start_paused = true)]
async fn leaks_are_counted() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .name("orders")
        .leak_detection_threshold(Some(Duration::from_millis(10)))
        .meter(capture.meter())
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();
    eventually(Duration::from_secs(5), "the leak was reported", || pool.stats().leaks == 1).await;
    let c = capture.collect();
    assert_eq!(metric(&c, "aquifer.pool.leaks", "{connection}", Kind::Counter).total(), 1.0);
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn health_gauge_is_one_when_healthy() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").meter(capture.meter()).build().unwrap();
    drop(pool.get().await.unwrap());
    let c = capture.collect();
    assert_eq!(metric(&c, "aquifer.pool.health", "1", Kind::Gauge).total(), 1.0);
}

#[tokio::test(start_paused = true)]
async fn operation_duration_carries_the_operation_and_server_attributes() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").meter(capture.meter()).build().unwrap();
    pool.record_operation("SELECT", Duration::from_millis(3), None);
    pool.record_operation("INSERT", Duration::from_millis(1), Some("23505"));
    let c = capture.collect();
    let ops = metric(&c, "db.client.operation.duration", "s", Kind::Histogram);
    let select = ops.point_with("db.operation.name", "SELECT").unwrap();
    assert_eq!(select.count, 1);
    assert_eq!(select.attr("server.address"), Some("fake.local"));
    assert_eq!(select.attr("server.port"), Some("1"));
    assert_eq!(select.attr("db.namespace"), Some("test"));
    assert_eq!(select.attr("error.type"), None);
    assert_eq!(ops.point_with("db.operation.name", "INSERT").unwrap().attr("error.type"), Some("23505"));
}

#[tokio::test(start_paused = true)]
async fn default_pool_name_is_address_port_and_namespace() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).meter(capture.meter()).build().unwrap();
    drop(pool.get().await.unwrap());
    let c = capture.collect();
    let count = c.get("db.client.connection.count").unwrap();
    assert_eq!(count.points[0].attr("db.client.connection.pool.name"), Some("fake.local:1/test"));
}

/// A histogram data point as the SDK exports it: (count, bucket counts, sum, min, max).
type HistogramPoint = (u64, Vec<u64>, f64, Option<f64>, Option<f64>);

/// The `wait_time` data point of the newest export.
fn wait_time_point(exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter) -> Option<HistogramPoint> {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let exports = exporter.get_finished_metrics().expect("in-memory metrics");
    let last = exports.last()?;
    let m = last.scope_metrics().flat_map(|s| s.metrics()).find(|m| m.name() == "db.client.connection.wait_time")?;
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() else {
        panic!("wait_time is not an f64 histogram")
    };
    let p = h.data_points().next()?;
    Some((p.count(), p.bucket_counts().collect(), p.sum(), p.min(), p.max()))
}

#[tokio::test(start_paused = true)]
async fn zero_waits_of_checkouts_served_at_once_are_in_every_collection() {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(3));
    let pool = builder(&fake).name("orders").meter(provider.meter("aquifer")).build().unwrap();
    // The first get waits 3 ms for the connect; the next ones find it idle.
    for _ in 0..4 {
        drop(pool.get().await.unwrap());
    }
    assert!(pool.try_get().await.unwrap().is_some());
    provider.force_flush().unwrap();
    let (count, buckets, sum, min, max) = wait_time_point(&exporter).expect("wait_time exported");
    assert_eq!(count, 5, "one wait for the connect, three gets and a try_get served at once");
    assert_eq!(buckets.iter().sum::<u64>(), 5);
    assert_eq!(buckets[0], 4, "the zero waits are in the first bucket: {buckets:?}");
    assert!(sum >= 0.003, "the sum is the one real wait: {sum}");
    assert_eq!(min, Some(0.0));
    assert_eq!(max, Some(sum));

    for _ in 0..3 {
        drop(pool.get().await.unwrap());
    }
    exporter.reset();
    provider.force_flush().unwrap();
    let (count, buckets, later_sum, ..) = wait_time_point(&exporter).expect("wait_time exported");
    assert_eq!((count, buckets[0], later_sum), (8, 7, sum), "cumulative: three more zero waits");
}

#[tokio::test(start_paused = true)]
async fn zero_waits_not_yet_collected_still_reach_the_histogram_when_the_pool_is_dropped() {
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(3));
    let pool = builder(&fake).name("orders").meter(provider.meter("aquifer")).build().unwrap();
    for _ in 0..6 {
        drop(pool.get().await.unwrap());
    }
    pool.close().await;
    drop(pool);
    // Give the background task a moment to let go of the pool.
    tokio::time::sleep(Duration::from_millis(20)).await;
    provider.force_flush().unwrap();
    let (count, buckets, ..) = wait_time_point(&exporter).expect("wait_time exported");
    assert_eq!((count, buckets[0]), (6, 5), "five zero waits and the wait for the first connect");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_pool_reports_its_last_gauges_at_the_next_collection_and_then_nothing() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").max_size(4).min_idle(1).meter(capture.meter()).build().unwrap();
    drop(pool.get().await.unwrap());
    drop(pool);
    // The background tasks see the pool closed and end; with them goes the last reference.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // As in a short-lived program: the pool is gone before the exporter's last collection.
    let c = capture.collect();
    let count = metric(&c, "db.client.connection.count", "{connection}", Kind::UpDownCounter);
    assert_eq!(count.total(), 0.0, "a dropped pool holds no connection: {count:?}");
    assert_eq!(metric(&c, "db.client.connection.max", "{connection}", Kind::UpDownCounter).total(), 4.0);
    assert_eq!(metric(&c, "db.client.connection.idle.min", "{connection}", Kind::UpDownCounter).total(), 1.0);
    assert_eq!(metric(&c, "db.client.connection.pending_requests", "{request}", Kind::UpDownCounter).total(), 0.0);
    assert_eq!(metric(&c, "aquifer.pool.paused", "1", Kind::Gauge).total(), 0.0);
    assert!(c.get("aquifer.pool.health").is_none_or(|m| m.points.is_empty()), "a closed pool exports no health");

    let c = capture.collect();
    for name in ["db.client.connection.count", "db.client.connection.max", "aquifer.pool.paused"] {
        assert!(c.get(name).is_none_or(|m| m.points.is_empty()), "{name} is exported once after the drop: {c:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_closed_pool_exports_its_counts_but_no_health() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).name("orders").max_size(3).meter(capture.meter()).build().unwrap();
    drop(pool.get().await.unwrap());
    let c = capture.collect();
    assert_eq!(metric(&c, "aquifer.pool.health", "1", Kind::Gauge).total(), 1.0, "healthy while open");

    pool.close().await;
    let c = capture.collect();
    assert_eq!(metric(&c, "db.client.connection.max", "{connection}", Kind::UpDownCounter).total(), 3.0);
    assert_eq!(metric(&c, "db.client.connection.count", "{connection}", Kind::UpDownCounter).total(), 0.0);
    assert!(
        c.get("aquifer.pool.health").is_none_or(|m| m.points.is_empty()),
        "closing is not a fault to alert on: no health point for a closed pool"
    );
}
