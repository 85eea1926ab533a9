//! aquifer.batch.size, aquifer.batch.keys by outcome and db.client.operation.duration, as exported by the SDK.

mod common;

use aquifer_batch::metrics::names;
use aquifer_batch::{BatchLoader, BatchMetrics};
use aquifer_testing::{Kind, MetricsCapture};
use common::{Mode, Recorder};

fn outcome(captured: &aquifer_testing::Captured, outcome: &str) -> f64 {
    let keys = captured.get(names::BATCH_KEYS).expect("aquifer.batch.keys exported");
    keys.point_with(names::OUTCOME, outcome).map_or(0.0, |p| p.value)
}

#[tokio::test]
async fn keys_are_counted_by_outcome() {
    let capture = MetricsCapture::new();
    let loader =
        BatchLoader::builder(Recorder::new()).name("albums").metrics(BatchMetrics::new(&capture.meter())).build();
    loader.load_many([1, 2, 2, 7]).await.unwrap();
    loader.load(1).await.unwrap();
    drop(loader);
    let captured = capture.collect();
    assert_eq!(captured.get(names::BATCH_KEYS).unwrap().kind, Kind::Counter);
    assert_eq!(outcome(&captured, "requested"), 5.0);
    assert_eq!(outcome(&captured, "deduplicated"), 1.0);
    assert_eq!(outcome(&captured, "cached"), 1.0);
    assert_eq!(outcome(&captured, "loaded"), 2.0);
    assert_eq!(outcome(&captured, "missing"), 1.0);
    let keys = captured.get(names::BATCH_KEYS).unwrap();
    assert!(keys.points.iter().all(|p| p.attr(names::LOADER) == Some("albums")));
}

#[tokio::test]
async fn batch_size_records_distinct_keys_per_dispatch() {
    let capture = MetricsCapture::new();
    let loader =
        BatchLoader::builder(Recorder::new()).max_batch_size(3).metrics(BatchMetrics::new(&capture.meter())).build();
    loader.load_many([1, 2, 3, 4, 4]).await.unwrap();
    let captured = capture.collect();
    let size = captured.get(names::BATCH_SIZE).expect("aquifer.batch.size exported");
    assert_eq!(size.kind, Kind::Histogram);
    assert_eq!(size.count(), 2);
    assert_eq!(size.total(), 4.0);
    assert_eq!(size.points[0].attr(names::LOADER), Some("Recorder"));
}

#[tokio::test]
async fn each_dispatch_records_an_operation_duration() {
    let capture = MetricsCapture::new();
    let loader = BatchLoader::builder(Recorder::new()).metrics(BatchMetrics::new(&capture.meter())).build();
    loader.load(1).await.unwrap();
    loader.load(2).await.unwrap();
    let captured = capture.collect();
    let duration = captured.get(names::OPERATION_DURATION).expect("db.client.operation.duration exported");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.count(), 2);
    assert!(duration.points.iter().all(|p| p.attr(names::ERROR_TYPE).is_none()));
}

#[tokio::test]
async fn failed_dispatch_records_its_error_type() {
    let capture = MetricsCapture::new();
    let loader =
        BatchLoader::builder(Recorder::with_mode(Mode::Fail)).metrics(BatchMetrics::new(&capture.meter())).build();
    loader.load(1).await.unwrap_err();
    let panicking =
        BatchLoader::builder(Recorder::with_mode(Mode::Panic)).metrics(BatchMetrics::new(&capture.meter())).build();
    panicking.load(1).await.unwrap_err();
    let captured = capture.collect();
    let duration = captured.get(names::OPERATION_DURATION).unwrap();
    assert_eq!(duration.point_with(names::ERROR_TYPE, "load").map(|p| p.count), Some(1));
    assert_eq!(duration.point_with(names::ERROR_TYPE, "panic").map(|p| p.count), Some(1));
}
