//! Export to a real OTLP receiver (VictoriaMetrics from scripts/dev-services.sh), set up inside and outside a
//! tokio runtime, and the guard's bounded shutdown.

use std::time::Duration;

use aquifer_otel::{OtelBuilder, OtelError, OtelGuard};
use aquifer_testing::servers::victoria_otlp_endpoint;
use aquifer_testing::{Victoria, unique_name};
use opentelemetry::KeyValue;

const WAIT: Duration = Duration::from_secs(10);

fn builder(service: &str) -> OtelBuilder {
    OtelBuilder::new().endpoint(victoria_otlp_endpoint()).service_name(service).export_interval(Duration::from_secs(60))
}

/// Records 3 on a counter named for the test.
fn record(guard: &OtelGuard) {
    let counter = guard.meter().u64_counter("aquifer_otel_test.records").build();
    counter.add(3, &[KeyValue::new("case", "export")]);
}

async fn exported_total(service: &str) -> f64 {
    let vm = Victoria::require().await;
    let q = format!("aquifer_otel_test_records_total{{service_name=\"{service}\"}}");
    let got = vm.wait_for(&q, 1, WAIT).await;
    assert_eq!(got.len(), 1, "{q} returned {got:?}");
    got[0].value
}

#[test]
fn set_up_and_dropped_outside_any_runtime_exports() {
    let service = unique_name("otel-no-runtime");
    let guard = builder(&service).build().expect("build outside a runtime");
    record(&guard);
    drop(guard);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(exported_total(&service)), 3.0);
}

/// Sets the pipeline up inside the test's runtime for a service named after `name`, records, drops the guard,
/// and checks that what was recorded reached the receiver.
async fn set_up_record_and_drop_then_find_the_export(name: &str) {
    let service = unique_name(name);
    let guard = builder(&service).build().expect("build inside the runtime");
    record(&guard);
    drop(guard);
    assert_eq!(exported_total(&service).await, 3.0);
}

#[tokio::test(flavor = "current_thread")]
async fn set_up_and_dropped_inside_a_current_thread_runtime_exports() {
    set_up_record_and_drop_then_find_the_export("otel-current-thread").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_up_and_dropped_inside_a_multi_thread_runtime_exports() {
    set_up_record_and_drop_then_find_the_export("otel-multi-thread").await;
}

#[tokio::test(flavor = "current_thread")]
async fn periodic_exports_run_while_the_runtime_is_busy_elsewhere() {
    let service = unique_name("otel-periodic");
    let guard = builder(&service).export_interval(Duration::from_millis(200)).build().unwrap();
    record(&guard);
    // No flush: the periodic reader's own thread exports while this runtime's only thread waits on VM.
    assert_eq!(exported_total(&service).await, 3.0);
    drop(guard);
}

#[tokio::test(flavor = "current_thread")]
async fn pool_time_histograms_get_microsecond_buckets_and_operations_the_semantic_conventions_ones() {
    let service = unique_name("otel-views");
    let guard = builder(&service).build().unwrap();
    let meter = guard.meter();
    // Built without boundaries: the buckets come from the views alone.
    meter.f64_histogram("db.client.connection.wait_time").with_unit("s").build().record(0.000_003, &[]);
    meter.f64_histogram("db.client.operation.duration").with_unit("s").build().record(0.003, &[]);
    guard.force_flush().unwrap();

    let vm = Victoria::require().await;
    let wait = vm
        .wait_for(&format!("db_client_connection_wait_time_seconds_bucket{{service_name=\"{service}\"}}"), 24, WAIT)
        .await;
    let les: Vec<f64> =
        wait.iter().filter_map(|s| s.label("le")?.parse().ok()).filter(|l: &f64| l.is_finite()).collect();
    let mut expected = aquifer_otel::POOL_TIME_BUCKETS.to_vec();
    let mut got = les.clone();
    got.sort_by(f64::total_cmp);
    expected.sort_by(f64::total_cmp);
    assert_eq!(got, expected);
    let bucket = |samples: &[aquifer_testing::Sample], le: &str| {
        samples.iter().find(|s| s.label("le") == Some(le)).map(|s| s.value)
    };
    assert_eq!(bucket(&wait, "0.0000025"), Some(0.0));
    assert_eq!(bucket(&wait, "0.000005"), Some(1.0));

    let op = vm
        .wait_for(&format!("db_client_operation_duration_seconds_bucket{{service_name=\"{service}\"}}"), 10, WAIT)
        .await;
    let mut les: Vec<f64> =
        op.iter().filter_map(|s| s.label("le")?.parse().ok()).filter(|l: &f64| l.is_finite()).collect();
    les.sort_by(f64::total_cmp);
    assert_eq!(les, aquifer_otel::OPERATION_DURATION_BUCKETS);
    assert_eq!(bucket(&op, "0.001"), Some(0.0));
    assert_eq!(bucket(&op, "0.005"), Some(1.0));
    drop(guard);
}

#[test]
fn shutdown_gives_up_after_its_timeout_when_the_collector_never_answers() {
    // Accepts connections and never answers them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let guard = OtelBuilder::new()
        .endpoint(format!("http://{addr}"))
        .timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    record(&guard);
    match guard.shutdown() {
        Err(OtelError::Timeout { what, timeout }) => {
            assert_eq!(what, "shut down");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("expected a shutdown timeout, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn install_makes_the_provider_global_for_pools_default_meter() {
    let service = unique_name("otel-global");
    let guard = builder(&service).install().unwrap();
    let meter = aquifer_core::metrics::default_meter();
    meter.u64_counter("aquifer_otel_test.records").build().add(3, &[]);
    drop(guard);
    assert_eq!(exported_total(&service).await, 3.0);
}
