//! End-to-end: the examples export their pools' metrics over OTLP (aquifer-otel) to a real receiver,
//! VictoriaMetrics from scripts/dev-services.sh, and what it stores under Prometheus names matches
//! docs/metrics.md and what the example did. Each run has its own `service.name`, so runs never see each other's
//! series.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aquifer_core::metrics::names;
use aquifer_testing::{Sample, Victoria, unique_name};
use common::{Documented, documented_batch_instruments, documented_instruments, label, run_example, succeeded};

const WAIT: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn series(vm: &Victoria, promql: &str) -> Vec<Sample> {
    let got = vm.wait_for(promql, 1, WAIT).await;
    assert!(!got.is_empty(), "{promql} returned nothing");
    got
}

/// The value of the one series `promql` returns, once `done` holds for it (or the wait ends).
async fn value_when(vm: &Victoria, promql: &str, done: impl Fn(f64) -> bool) -> f64 {
    let got = vm.wait_until(promql, WAIT, |got| got.len() == 1 && done(got[0].value)).await;
    assert_eq!(got.len(), 1, "{promql} returned {got:?}");
    got[0].value
}

/// Asserts that the one series `promql` returns reaches `expected`.
async fn assert_value(vm: &Victoria, promql: &str, expected: f64) {
    assert_eq!(value_when(vm, promql, |v| v == expected).await, expected, "{promql}");
}

fn bucket_bounds(samples: &[Sample]) -> Vec<String> {
    let mut les: Vec<f64> = samples.iter().filter_map(|s| s.label("le")?.parse().ok()).collect();
    les.sort_by(f64::total_cmp);
    les.dedup();
    les.iter().map(|l| if l.is_infinite() { "+Inf".into() } else { format!("{l}") }).collect()
}

fn expected_bounds(bounds: &[f64]) -> Vec<String> {
    bounds.iter().map(|b| format!("{b}")).chain(["+Inf".to_owned()]).collect()
}

/// Checks that `doc`'s instrument was exported by the run `service` of pools `pools` with system `system`:
/// present, with the pool and system labels and the documented attributes, and for histograms the buckets
/// aquifer-otel configures.
async fn assert_exported(vm: &Victoria, doc: &Documented, service: &str, pools: &[&str], system: &str) {
    let name = doc.presence_name();
    // The pools' own series (scope `aquifer`); aquifer-batch records `db.client.operation.duration` too, per
    // loader rather than per pool (its attributes are checked in crates/aquifer-batch's metrics tests).
    let got = series(vm, &format!("{name}{{service_name=\"{service}\",scope_name=\"aquifer\"}}")).await;
    let seen_pools: BTreeSet<&str> = got.iter().filter_map(|s| s.label("db_client_connection_pool_name")).collect();
    assert_eq!(seen_pools, pools.iter().copied().collect(), "{name}: pools");
    for s in &got {
        assert_eq!(s.label("db_system_name"), Some(system), "{name}: {s:?}");
        for a in &doc.attributes {
            assert!(s.label(&label(a)).is_some(), "{name} lacks the documented attribute {a}: {s:?}");
        }
    }
    if doc.is_histogram() {
        let buckets = series(vm, &format!("{}_bucket{{service_name=\"{service}\"}}", doc.prometheus)).await;
        let expected = if doc.otel == names::OPERATION_DURATION {
            aquifer_otel::OPERATION_DURATION_BUCKETS
        } else {
            aquifer_otel::POOL_TIME_BUCKETS
        };
        assert_eq!(bucket_bounds(&buckets), expected_bounds(expected), "{name}: bucket boundaries");
    }
}

#[test]
fn docs_list_exactly_the_instruments_pools_record() {
    let documented: BTreeSet<String> = documented_instruments().into_iter().map(|d| d.otel).collect();
    let recorded: BTreeSet<String> = [
        names::CONNECTION_COUNT,
        names::IDLE_MAX,
        names::IDLE_MIN,
        names::MAX,
        names::PENDING_REQUESTS,
        names::TIMEOUTS,
        names::CREATE_TIME,
        names::WAIT_TIME,
        names::USE_TIME,
        names::OPERATION_DURATION,
        names::CREATED,
        names::CLOSED,
        names::CONNECT_ERRORS,
        names::LEAKS,
        names::HEALTH,
        names::PAUSED,
        names::RETIRED,
        names::N_PLUS_ONE,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(documented, recorded);
}

#[test]
fn docs_list_exactly_the_instruments_batch_loaders_record() {
    use aquifer_batch::metrics::names as batch;
    let documented: BTreeSet<String> = documented_batch_instruments().into_iter().map(|d| d.otel).collect();
    let recorded: BTreeSet<String> =
        [batch::BATCH_SIZE, batch::BATCH_KEYS, batch::OPERATION_DURATION].into_iter().map(str::to_owned).collect();
    assert_eq!(documented, recorded);
}

/// Checks that the BatchLoader of the run `service` (built with `.system(system)`) exported `doc`'s
/// instrument under its documented Prometheus name: loader and system labels, the documented attributes, no
/// pool name.
async fn assert_batch_exported(vm: &Victoria, doc: &Documented, service: &str, system: &str) {
    let name = doc.presence_name();
    let got = series(vm, &format!("{name}{{service_name=\"{service}\",aquifer_batch_loader!=\"\"}}")).await;
    assert!(!got.is_empty(), "{name}: no BatchLoader series");
    for s in &got {
        assert_eq!(s.label("db_system_name"), Some(system), "{name}: {s:?}");
        assert_eq!(s.label("db_client_connection_pool_name"), None, "{name}: {s:?}");
        for a in &doc.attributes {
            assert!(s.label(&label(a)).is_some(), "{name} lacks the documented attribute {a}: {s:?}");
        }
    }
}

#[test]
fn sqlite_example_exports_every_documented_instrument_under_its_prometheus_name() {
    let service = unique_name("e2e-sqlite");
    succeeded("sqlite", &run_example("sqlite", &service, &[]));
    runtime().block_on(async {
        let vm = Victoria::require().await;
        for doc in documented_instruments() {
            // Recorded only when a connect fails: see a_refused_password_exports_connect_errors_by_sqlstate.
            if doc.otel == names::CONNECT_ERRORS {
                continue;
            }
            // Recorded only when an operator retires connections: aquifer-core's tests/controls.rs
            // (retirements_count_in_closed_by_reason_and_in_retired_by_reason).
            if doc.otel == names::RETIRED {
                continue;
            }
            // Recorded only for the pool whose helpers ran the example's N+1 loop (the readers).
            if doc.otel == names::N_PLUS_ONE {
                assert_exported(&vm, &doc, &service, &["books/readers"], "sqlite").await;
                continue;
            }
            assert_exported(&vm, &doc, &service, &["books/readers", "books/writer"], "sqlite").await;
        }
        let states = series(&vm, &format!("db_client_connection_count{{service_name=\"{service}\"}}")).await;
        let states: BTreeSet<&str> = states.iter().filter_map(|s| s.label("db_client_connection_state")).collect();
        assert_eq!(states, BTreeSet::from(["idle", "used"]));
    });
}

/// The per-pool figures the sqlite example prints in its stats table.
struct SqliteRow {
    max: f64,
    acquired: f64,
    timeouts: f64,
    created: f64,
}

fn sqlite_row(stdout: &str, pool: &str) -> SqliteRow {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("| {pool} ")))
        .unwrap_or_else(|| panic!("no stats row for {pool} in:\n{stdout}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    // pool | size/max | idle | in use | acquired | waited | timeouts | created
    let num = |i: usize| cells[i].parse::<f64>().unwrap_or_else(|_| panic!("cell {i} of {line}"));
    SqliteRow {
        max: cells[1].split('/').nth(1).and_then(|m| m.parse().ok()).expect("size/max"),
        acquired: num(4),
        timeouts: num(6),
        created: num(7),
    }
}

#[test]
fn sqlite_example_values_match_what_it_did() {
    let service = unique_name("e2e-sqlite-values");
    let stdout = succeeded("sqlite", &run_example("sqlite", &service, &[]));
    let transactions: f64 = stdout
        .split_once(" rows in ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .expect("the example prints its transaction count");
    runtime().block_on(async {
        let vm = Victoria::require().await;
        let mut checkouts = 0.0;
        for (short, pool) in [("writer", "books/writer"), ("readers", "books/readers")] {
            let row = sqlite_row(&stdout, short);
            checkouts += row.acquired;
            let sel = format!("{{service_name=\"{service}\",db_client_connection_pool_name=\"{pool}\"}}");
            assert_value(&vm, &format!("db_client_connection_max{sel}"), row.max).await;
            assert_value(&vm, &format!("db_client_connection_idle_max{sel}"), row.max).await;
            assert_value(&vm, &format!("aquifer_pool_connections_created_total{sel}"), row.created).await;
            assert_value(&vm, &format!("db_client_connection_create_time_seconds_count{sel}"), row.created).await;
            assert_value(&vm, &format!("db_client_connection_timeouts_total{sel}"), row.timeouts).await;
            // The example closes its pools at the end: every connection it opened is closed as pool_closed.
            let closed = format!("aquifer_pool_connections_closed_total{{service_name=\"{service}\",db_client_connection_pool_name=\"{pool}\",reason=\"pool_closed\"}}");
            assert_value(&vm, &closed, row.created).await;
            // Every checkout waited once and came back once. After the table the example checks both pools'
            // health (one checkout each) and closes them (the writer runs `PRAGMA optimize`: one more).
            let extra = if short == "writer" { 2.0 } else { 1.0 };
            let waits_q = format!("db_client_connection_wait_time_seconds_count{sel}");
            assert_value(&vm, &waits_q, row.acquired + extra).await;
            assert_value(&vm, &format!("db_client_connection_use_time_seconds_count{sel}"), row.acquired + extra).await;
            let health = value_when(&vm, &format!("aquifer_pool_health_ratio{sel}"), |_| true).await;
            assert!([0.0, 0.5, 1.0].contains(&health), "{pool} health {health}");
        }
        // Every checkout of the table was one operation of the pool's own scope (a helper or a closure; the
        // statement's keyword for helpers, TRANSACTION for closures), and the writes alone (the schema write
        // plus one per insert transaction) are TRANSACTION operations.
        let pool_ops = format!("db_client_operation_duration_seconds_count{{service_name=\"{service}\",scope_name=\"aquifer\"}}");
        assert_value(&vm, &format!("sum({pool_ops})"), checkouts).await;
        let closures = format!(
            "db_client_operation_duration_seconds_count{{service_name=\"{service}\",scope_name=\"aquifer\",db_operation_name=\"TRANSACTION\"}}"
        );
        let closures = value_when(&vm, &format!("sum({closures})"), |v| v >= transactions + 1.0).await;
        assert!(closures >= transactions + 1.0, "{closures} closures for {transactions} insert transactions");
    });
}

/// A program that ends before its first periodic export (the interval here is 10 minutes) exports once, when
/// its OpenTelemetry guard shuts down, after its pools were dropped (the guard was created first, as the docs
/// say): that one export still carries every pool's gauges.
#[test]
fn a_program_shorter_than_one_export_interval_still_exports_its_pool_gauges() {
    let service = unique_name("e2e-short-lived");
    let stdout = succeeded("sqlite", &run_example("sqlite", &service, &[("OTEL_METRIC_EXPORT_INTERVAL", "600000")]));
    runtime().block_on(async {
        let vm = Victoria::require().await;
        for (short, pool) in [("writer", "books/writer"), ("readers", "books/readers")] {
            let row = sqlite_row(&stdout, short);
            let sel = format!("{{service_name=\"{service}\",db_client_connection_pool_name=\"{pool}\"}}");
            assert_value(&vm, &format!("db_client_connection_max{sel}"), row.max).await;
            assert_value(&vm, &format!("db_client_connection_pending_requests{sel}"), 0.0).await;
            assert_value(&vm, &format!("sum(db_client_connection_count{sel})"), 0.0).await;
            assert_value(&vm, &format!("aquifer_pool_connections_created_total{sel}"), row.created).await;
        }
    });
}

/// `field: N` from the postgres example's `stats: Stats { ... }` line.
fn pg_stat(stdout: &str, field: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("stats: ")).expect("the example prints its stats");
    line.split(&format!(" {field}: "))
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

#[test]
fn postgres_example_exports_server_attributes_and_its_counts() {
    let service = unique_name("e2e-postgres");
    // A 2 ms leak threshold: the example's searches hold connections longer, so leaks are reported.
    let stdout = succeeded("postgres", &run_example("postgres", &service, &[("POSTGRES_POOL_LEAK_THRESHOLD", "2ms")]));
    runtime().block_on(async {
        let vm = Victoria::require().await;
        for doc in documented_instruments() {
            if doc.otel == names::CONNECT_ERRORS {
                continue;
            }
            assert_exported(&vm, &doc, &service, &["music-library"], "postgresql").await;
        }
        let sel = format!("{{service_name=\"{service}\"}}");
        assert_value(&vm, &format!("aquifer_pool_connections_created_total{sel}"), pg_stat(&stdout, "created")).await;
        assert_value(&vm, &format!("aquifer_pool_leaks_total{sel}"), pg_stat(&stdout, "leaks")).await;
        assert!(pg_stat(&stdout, "leaks") > 0.0, "the 2 ms threshold reports leaks");
        assert_value(&vm, &format!("db_client_connection_max{sel}"), 10.0).await;
        // The stats line comes after the health check and before close(): the counts match exactly.
        assert_value(&vm, &format!("db_client_connection_wait_time_seconds_count{sel}"), pg_stat(&stdout, "acquired"))
            .await;
        // The helpers' operations, recorded per pool with the server's attributes (not the BatchLoader's).
        let pool_sel = format!("{{service_name=\"{service}\",scope_name=\"aquifer\"}}");
        let ops = series(&vm, &format!("db_client_operation_duration_seconds_count{pool_sel}")).await;
        assert!(!ops.is_empty(), "no operation recorded by the pool's helpers");
        for s in &ops {
            assert_eq!(s.label("server_address"), Some("127.0.0.1"), "{s:?}");
            assert_eq!(
                s.label("server_port"),
                Some(aquifer_testing::servers::POSTGRES.get().to_string().as_str()),
                "{s:?}"
            );
            assert_eq!(s.label("db_namespace"), Some("test"), "{s:?}");
        }
        let operations: BTreeSet<&str> = ops.iter().filter_map(|s| s.label("db_operation_name")).collect();
        assert!(operations.contains("SELECT") && operations.contains("INSERT"), "{operations:?}");
        // The example's BatchLoader (built with `.system("postgresql")`) records aquifer-batch's instruments.
        for doc in documented_batch_instruments() {
            assert_batch_exported(&vm, &doc, &service, "postgresql").await;
        }
        let outcomes = series(&vm, &format!("aquifer_batch_keys_total{sel}")).await;
        let outcomes: BTreeSet<&str> = outcomes.iter().filter_map(|s| s.label("outcome")).collect();
        assert!(outcomes.contains("requested") && outcomes.contains("loaded"), "{outcomes:?}");
    });
}

#[test]
fn a_refused_password_exports_connect_errors_by_sqlstate() {
    let service = unique_name("e2e-postgres-password");
    // aquifer_pw is the scram-sha-256 role of scripts/services/10-postgres.sh; its password is not "wrong".
    let url = aquifer_testing::servers::postgres_url_as("aquifer_pw:wrong");
    let out = run_example("postgres", &service, &[("POSTGRES_URL", &url)]);
    assert!(!out.status.success(), "the example must fail to start with a wrong password");
    assert!(String::from_utf8_lossy(&out.stderr).contains("password authentication failed"));
    runtime().block_on(async {
        let vm = Victoria::require().await;
        let got = series(&vm, &format!("aquifer_pool_connect_errors_total{{service_name=\"{service}\"}}")).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].label("error_type"), Some("28P01"), "invalid_password's SQLSTATE");
        assert_eq!(got[0].label("db_system_name"), Some("postgresql"));
        assert!(got[0].value >= 1.0);
    });
}

#[test]
fn acquire_timeouts_are_exported() {
    let service = unique_name("e2e-postgres-timeouts");
    // Two connections and a 20 ms acquire timeout for the example's 64 concurrent trigram searches over 10,000
    // rows: the last of 32 waiters per connection waits 31 searches, far more than 20 ms.
    let env = [("POSTGRES_POOL_MAX_SIZE", "2"), ("POSTGRES_POOL_ACQUIRE_TIMEOUT", "20ms")];
    let out = run_example("postgres", &service, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stderr.contains("Timeout"),
        "expected the example to time out ({}):\n{stderr}\n{stdout}",
        out.status
    );
    runtime().block_on(async {
        let vm = Victoria::require().await;
        let timeouts =
            value_when(&vm, &format!("db_client_connection_timeouts_total{{service_name=\"{service}\"}}"), |v| {
                v >= 1.0
            })
            .await;
        assert!(timeouts >= 1.0, "{timeouts}");
    });
}
