//! One cross-backend behaviour suite: each test is written once, generically over [`Backend`], and run
//! against all four adapters on their real servers (SQLite on a file).

mod backends;

use std::collections::BTreeSet;

use aquifer_core::{HealthStatus, Pool};
use aquifer_testing::MetricsCapture;
use backends::{Backend, Faults, STEP, unique};
use tokio::time::timeout;

/// A connection checked out is counted in use, goes back idle when dropped, and is reused by the next get
/// (no new connect).
async fn checkout_and_return<B: Backend>(test: &str) {
    B::require().await;
    let pool: Pool<B::M> = B::pool(&B::vars(&unique(test), 2), None);
    let mut conn = timeout(STEP, pool.get()).await.expect("get in time").expect("a connection");
    assert_eq!(B::answer(&mut conn).await, 42);
    assert_eq!((pool.state().in_use, pool.state().idle), (1, 0), "{}", pool.state());
    drop(conn);
    assert_eq!((pool.state().in_use, pool.state().idle), (0, 1), "{}", pool.state());
    let mut again = pool.get().await.unwrap();
    assert_eq!(B::answer(&mut again).await, 42);
    drop(again);
    assert_eq!(pool.stats().created, 1, "the returned connection was reused");
    pool.close().await;
}

/// A connection returned inside a transaction it wrote in is rolled back before anyone gets it again.
async fn dropped_transaction_is_rolled_back<B: Backend>(test: &str) {
    B::require().await;
    let pool: Pool<B::M> = B::pool(&B::vars(&unique(test), 1), None);
    let marker = format!("{}-{}", unique(test), std::process::id());
    let mut conn = pool.get().await.unwrap();
    B::setup(&mut conn).await;
    B::write_uncommitted(&mut conn, &marker).await;
    drop(conn);
    // A pool of one: the next user gets that same connection, after its rollback.
    let mut conn = timeout(STEP, pool.get()).await.expect("get in time").expect("the connection back");
    assert_eq!(B::count(&mut conn, &marker).await, 0, "the dropped transaction's write was rolled back");
    B::write_uncommitted(&mut conn, &marker).await;
    drop(conn);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(B::count(&mut conn, &marker).await, 0, "and again: nothing leaks into autocommit");
    drop(conn);
    pool.close().await;
}

/// The health report of every backend has the same fields, filled.
async fn health_report_fields<B: Backend>(test: &str) {
    B::require().await;
    let name = unique(test);
    let pool: Pool<B::M> = B::pool(&B::vars(&name, 2), None);
    drop(pool.get().await.unwrap());
    let report = timeout(STEP, pool.health()).await.expect("health in time");
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.pool, name);
    assert_eq!(report.system, B::SYSTEM);
    assert!(report.server_version.as_deref().is_some_and(|v| !v.is_empty()), "{report:?}");
    assert!(report.latency.is_some(), "{report:?}");
    assert_eq!(report.last_error, None);
    let json = serde_json::to_value(&report).unwrap();
    let keys: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "status",
        "pool",
        "system",
        "server",
        "server_version",
        "latency_ms",
        "state",
        "utilization",
        "last_error",
        "checked_at",
    ]
    .into();
    assert_eq!(keys, expected, "health JSON keys");
    pool.close().await;
}

/// Every backend exports the same metric names, units and attributes; only `db.system.name` and the pool's
/// name differ.
async fn same_metrics<B: Backend>(test: &str) {
    B::require().await;
    let capture = MetricsCapture::new();
    let name = unique(test);
    let pool: Pool<B::M> = B::pool(&B::vars(&name, 2), Some(&capture));
    drop(timeout(STEP, pool.get()).await.expect("get in time").unwrap());
    let metrics = capture.collect();
    let base = ["db.client.connection.pool.name", "db.system.name"];
    let expected: &[(&str, &str, &[&str])] = &[
        ("db.client.connection.count", "{connection}", &["db.client.connection.state"]),
        ("db.client.connection.idle.max", "{connection}", &[]),
        ("db.client.connection.idle.min", "{connection}", &[]),
        ("db.client.connection.max", "{connection}", &[]),
        ("db.client.connection.pending_requests", "{request}", &[]),
        ("db.client.connection.create_time", "s", &[]),
        ("db.client.connection.wait_time", "s", &[]),
        ("db.client.connection.use_time", "s", &[]),
        ("aquifer.pool.connections.created", "{connection}", &[]),
    ];
    for (metric, unit, extra) in expected {
        let m = metrics.get(metric).unwrap_or_else(|| panic!("{} exports {metric}", B::SYSTEM));
        assert_eq!(&m.unit, unit, "{metric}");
        assert!(!m.points.is_empty(), "{metric} has points");
        for p in &m.points {
            let keys: BTreeSet<&str> = p.attributes.keys().map(String::as_str).collect();
            let want: BTreeSet<&str> = base.iter().chain(extra.iter()).copied().collect();
            assert_eq!(keys, want, "{metric} attributes");
            assert_eq!(p.attr("db.system.name"), Some(B::SYSTEM));
            assert_eq!(p.attr("db.client.connection.pool.name"), Some(name.as_str()));
        }
    }
    pool.close().await;
}

/// The pool settings and the connection come from `{PREFIX}_*` variables, read by the adapter's
/// `XConfig::from_lookup(prefix, ..)` the same way in every crate.
async fn config_from_the_environment<B: Backend>(test: &str) {
    B::require().await;
    let name = unique(test);
    let pool: Pool<B::M> = B::pool(&B::vars(&name, 3), None);
    assert_eq!(pool.name(), name);
    assert_eq!(pool.state().max_size, 3);
    assert_eq!(pool.descriptor().system, B::SYSTEM);
    let mut conn = timeout(STEP, pool.get()).await.expect("get in time").expect("the variables' server");
    assert_eq!(B::answer(&mut conn).await, 42);
    drop(conn);
    pool.close().await;
}

/// A start the backend refuses for good (a wrong password; for SQLite, a database that cannot be opened) fails
/// at once with a typed, permanent error that names the cause and never shows the secret.
async fn refused_start_is_a_typed_permanent_error<B: Faults>(test: &str) {
    B::require().await;
    let started = std::time::Instant::now();
    let err = B::start_refused(&unique(test)).await;
    assert!(started.elapsed() < STEP, "a refused start must not wait for the acquire timeout");
    assert!(matches!(err, aquifer_core::StartError::Connect { .. }), "{err:?}");
    assert!(err.is_permanent(), "a refused start is permanent: {err:?}");
    assert!(err.backend_error().is_some(), "the driver's error is kept: {err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-password"), "the password leaked: {text}");
}

/// A query whose future was dropped mid-flight leaves nothing behind: the next user of the (only)
/// connection slot gets an answer to its own query.
async fn dropped_in_flight_query_is_never_handed_out_dirty<B: Faults>(test: &str) {
    B::require().await;
    let pool: Pool<B::M> = B::pool(&B::vars(&unique(test), 1), None);
    let mut conn = pool.get().await.unwrap();
    B::abandon_slow_query(&mut conn).await;
    drop(conn);
    for _ in 0..3 {
        let mut conn = timeout(STEP, pool.get()).await.expect("get in time").expect("a clean connection");
        assert_eq!(timeout(STEP, B::answer(&mut conn)).await.expect("answer in time"), 42);
    }
    pool.close().await;
}

macro_rules! faults_suite {
    ($($module:ident: $backend:ty),+ $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn a_refused_start_is_a_typed_permanent_error() {
                let _scratch = backends::scratch();
                super::refused_start_is_a_typed_permanent_error::<$backend>(concat!(stringify!($module), "_pw")).await;
            }

            #[tokio::test]
            async fn a_dropped_in_flight_query_is_never_handed_out_dirty() {
                let _scratch = backends::scratch();
                super::dropped_in_flight_query_is_never_handed_out_dirty::<$backend>(concat!(stringify!($module), "_abandon")).await;
            }
        }
    )+};
}

faults_suite!(
    postgres_faults: backends::Postgres,
    mysql_faults: backends::MySql,
    neo4j_faults: backends::Neo4j,
    sqlite_faults: backends::Sqlite,
);

macro_rules! suite {
    ($($module:ident: $backend:ty),+ $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test]
            async fn checkout_and_return() {
                let _scratch = backends::scratch();
                super::checkout_and_return::<$backend>(concat!(stringify!($module), "_checkout")).await;
            }

            #[tokio::test]
            async fn a_dropped_transaction_is_rolled_back() {
                let _scratch = backends::scratch();
                super::dropped_transaction_is_rolled_back::<$backend>(concat!(stringify!($module), "_tx")).await;
            }

            #[tokio::test]
            async fn the_health_report_has_the_same_fields() {
                let _scratch = backends::scratch();
                super::health_report_fields::<$backend>(concat!(stringify!($module), "_health")).await;
            }

            #[tokio::test]
            async fn metrics_have_the_same_names_units_and_attributes() {
                let _scratch = backends::scratch();
                super::same_metrics::<$backend>(concat!(stringify!($module), "_metrics")).await;
            }

            #[tokio::test]
            async fn config_comes_from_the_environment() {
                let _scratch = backends::scratch();
                super::config_from_the_environment::<$backend>(concat!(stringify!($module), "_env")).await;
            }
        }
    )+};
}

suite!(postgres: backends::Postgres, mysql: backends::MySql, neo4j: backends::Neo4j, sqlite: backends::Sqlite);
