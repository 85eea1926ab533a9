//! A pool's life as every backend lives it: checkout and return, `min_idle` at start, the health report, the
//! metrics, and a start the backend refuses.

use std::collections::BTreeSet;

use aquifer_core::{Adapter, AnyPool, HealthCheck, HealthStatus, StartError};
use tokio::time::timeout;

use super::{Checked, Hooks, PoolOf, STEP, Test, not_checked};
use crate::{MetricsCapture, SecretScan};

/// Checks a connection out within [`STEP`].
pub(crate) async fn checkout<H: Hooks>(pool: &PoolOf<H>) -> H::Conn {
    timeout(STEP, H::checkout(pool)).await.expect("checkout in time").unwrap_or_else(|e| panic!("a connection: {e:?}"))
}

/// [`Hooks::config`] for a pool named `name` of at most `max_size` connections.
pub(crate) async fn config<H: Hooks>(name: &str, max_size: usize) -> H::Adapter {
    H::require().await;
    let mut config = H::config(name).await;
    let pool = config.pool_config_mut();
    pool.name = Some(name.to_owned());
    pool.max_size = max_size;
    config
}

/// A started pool of `max_size` from [`Hooks::config`], with `edit` applied.
pub(crate) async fn started<H: Hooks>(name: &str, max_size: usize, edit: impl FnOnce(&mut H::Adapter)) -> PoolOf<H> {
    let mut config = config::<H>(name, max_size).await;
    edit(&mut config);
    timeout(STEP, config.connect()).await.expect("start in time").unwrap_or_else(|e| panic!("start: {e}"))
}

/// A connection checked out is counted in use, goes back idle when dropped, and is reused by the next
/// checkout (no new connect).
pub async fn checkout_and_return<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 2, |_| {}).await;
    let created = pool.stats().created;
    let mut conn = checkout::<H>(&pool).await;
    assert_eq!(H::answer(&mut conn, 41).await.expect("an answer"), 42);
    assert_eq!((pool.state().in_use, pool.state().idle), (1, 0), "{}", pool.state());
    drop(conn);
    assert_eq!((pool.state().in_use, pool.state().idle), (0, 1), "{}", pool.state());
    let mut again = checkout::<H>(&pool).await;
    assert_eq!(H::answer(&mut again, 1).await.expect("an answer"), 2);
    drop(again);
    assert_eq!(pool.stats().created, created, "the returned connection was reused");
    pool.close().await;
    Ok(())
}

/// `min_idle` connections are open when the start returns, and the server sees exactly those.
pub async fn min_idle_connections_exist_after_start<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 5, |c| c.pool_config_mut().min_idle = 3).await;
    assert_eq!(pool.state().idle, 3, "{} {:?}", pool.state(), pool.stats());
    match H::count_sessions(&pool).await {
        Ok(n) => assert_eq!(n, 3, "exactly min_idle sessions: {} {:?}", pool.state(), pool.stats()),
        Err(why) => not_checked(&t, "the server's sessions", &why),
    }
    pool.close().await;
    Ok(())
}

/// The health report of every backend has the same fields, filled: healthy, the pool's name, the backend's
/// `db.system.name`, the server's version, a latency.
pub async fn the_health_report_has_the_same_fields<H: Hooks>(t: Test) -> Checked {
    let name = t.pool();
    let pool = started::<H>(&name, 2, |_| {}).await;
    drop(checkout::<H>(&pool).await);
    let report = timeout(STEP, pool.health()).await.expect("health in time");
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(pool.name(), name);
    assert!(is_pool(&report.pool, &name), "{report:?}");
    assert_eq!(report.system, H::Adapter::SYSTEM);
    assert!(report.server_version.as_deref().is_some_and(|v| !v.is_empty()), "{report:?}");
    assert!(report.latency.is_some(), "{report:?}");
    assert_eq!(report.last_error, None);
    let json = serde_json::to_value(&report).expect("a health report serialises");
    let keys: BTreeSet<&str> = json.as_object().expect("an object").keys().map(String::as_str).collect();
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
    Ok(())
}

/// `name`, or the name of one of the engine pools of a backend made of several (`name/readers`).
fn is_pool(shown: &str, name: &str) -> bool {
    shown == name || shown.strip_prefix(name).is_some_and(|role| role.starts_with('/'))
}

/// Every backend exports the same metric names, units and attributes; only `db.system.name` and the pool's
/// name differ.
pub async fn metrics_have_the_same_names_units_and_attributes<H: Hooks>(t: Test) -> Checked {
    let capture = MetricsCapture::new();
    let name = t.pool();
    let config = config::<H>(&name, 2).await;
    let pool = H::metered(&config, capture.meter()).unwrap_or_else(|e| panic!("a metered pool: {e}"));
    let mut conn = checkout::<H>(&pool).await;
    assert_eq!(H::answer(&mut conn, 41).await.expect("an answer"), 42);
    drop(conn);
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
        let m = metrics.get(metric).unwrap_or_else(|| panic!("{} exports {metric}", H::Adapter::SYSTEM));
        assert_eq!(&m.unit, unit, "{metric}");
        assert!(!m.points.is_empty(), "{metric} has points");
        for p in &m.points {
            let keys: BTreeSet<&str> = p.attributes.keys().map(String::as_str).collect();
            let want: BTreeSet<&str> = base.iter().chain(extra.iter()).copied().collect();
            assert_eq!(keys, want, "{metric} attributes");
            assert_eq!(p.attr("db.system.name"), Some(H::Adapter::SYSTEM), "{metric}");
            let shown = p.attr("db.client.connection.pool.name").unwrap_or_default();
            assert!(is_pool(shown, &name), "{metric}: pool {shown}");
        }
    }
    pool.close().await;
    Ok(())
}

/// A start the backend refuses for good (a wrong password; for an embedded database, one that cannot be
/// opened) fails at once with a typed, permanent error that keeps the driver's error, and neither the error
/// nor the logs show the password.
pub async fn a_refused_start_is_a_typed_permanent_error<H: Hooks>(t: Test) -> Checked {
    H::require().await;
    let mut config = H::refused();
    config.pool_config_mut().name = Some(t.pool());
    let mut scan = SecretScan::start("not-the-password");
    scan.push(format!("{config:?}"));
    // STEP is shorter than the default acquire timeout: a start that waited for it would not end in time.
    assert!(config.pool_config().acquire_timeout > STEP, "{:?}", config.pool_config());
    let err = timeout(STEP, config.connect()).await.expect("a refused start in time").expect_err("a refused start");
    assert!(matches!(err, StartError::Connect { .. }), "{err:?}");
    assert!(err.is_permanent(), "a refused start is permanent: {err:?}");
    assert!(err.backend_error().is_some(), "the driver's error is kept: {err:?}");
    scan.seen(&err);
    scan.assert_clean();
    Ok(())
}
