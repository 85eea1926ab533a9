//! `SqlitePool` as a `HealthCheck`: one report for its writer and readers, listed in a `HealthRegistry` like
//! any other backend's pool.

mod common;

use aquifer_sqlite::{HealthCheck, HealthRegistry, HealthStatus, SqlitePool};
use common::temp_db;

#[tokio::test(flavor = "multi_thread")]
async fn health_check_is_the_readers_report_under_the_pools_name() {
    let (_dir, path) = temp_db("readers");
    let pool = SqlitePool::builder(&path).name("lite").readers(3).connect().await.unwrap();
    let report = HealthCheck::health(&pool).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.pool, "lite");
    assert_eq!(report.system, "sqlite");
    assert_eq!(report.state.max_size, 3, "the readers' state, not the writer's (size 1): {report:?}");
    assert!(report.server_version.as_deref().is_some_and(|v| v.starts_with("SQLite 3.")), "{report:?}");
    assert!(report.latency.is_some(), "{report:?}");
    assert_eq!(report.last_error, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_is_named_after_the_path_unless_named() {
    let (_dir, path) = temp_db("unnamed");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    assert_eq!(HealthCheck::name(&pool), format!("{}/main", path.display()));
    let named = SqlitePool::builder(&path).name("lite").connect().await.unwrap();
    assert_eq!(HealthCheck::name(&named), "lite");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_reports_the_worse_of_writer_and_readers() {
    let (_dir, path) = temp_db("worse");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    // The writer's one connection in use: the writer is exhausted, so degraded; the readers are idle.
    let held = pool.writer().get().await.unwrap();
    let detail = pool.health_detail().await;
    assert_eq!((detail.writer.status, detail.readers.status), (HealthStatus::Degraded, HealthStatus::Healthy));
    let report = HealthCheck::health(&pool).await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    drop(held);
}

/// The health report's `last_error` once `close` closed a part of the pool, which makes the report unhealthy.
async fn last_error_once_closed(name: &str, close: impl AsyncFnOnce(&SqlitePool) -> usize) -> Option<String> {
    let (_dir, path) = temp_db(name);
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    close(&pool).await;
    let report = HealthCheck::health(&pool).await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    report.last_error
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_names_the_writer_in_last_error_when_the_writer_is_the_worse() {
    let last_error = last_error_once_closed("writer_closed", async |pool| pool.writer().close().await).await;
    assert_eq!(last_error.as_deref(), Some("writer: the pool is closed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_keeps_the_readers_last_error_when_the_readers_are_the_worse() {
    let last_error = last_error_once_closed("readers_closed", async |pool| pool.readers().close().await).await;
    assert_eq!(last_error.as_deref(), Some("the pool is closed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn inherent_health_is_the_health_check_report() {
    let (_dir, path) = temp_db("inherent");
    let pool = SqlitePool::builder(&path).name("lite").connect().await.unwrap();
    pool.writer().close().await;
    let (inherent, checked) = (pool.health().await, HealthCheck::health(&pool).await);
    assert_eq!(
        (inherent.pool, inherent.status, inherent.last_error),
        (checked.pool, checked.status, checked.last_error)
    );
}

/// A pool named `lite`, registered in a new registry.
async fn registered(name: &str) -> (tempfile::TempDir, SqlitePool, HealthRegistry) {
    let (dir, path) = temp_db(name);
    let pool = SqlitePool::builder(&path).name("lite").connect().await.unwrap();
    let registry = HealthRegistry::new();
    registry.register(pool.clone());
    (dir, pool, registry)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_lists_an_sqlite_pool_once_under_its_name() {
    let (_dir, _pool, registry) = registered("registry").await;
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    let names: Vec<&str> = report.pools.iter().map(|p| p.pool.as_str()).collect();
    assert_eq!(names, ["lite"]);
    assert_eq!(registry.unregister("lite"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_is_unhealthy_when_the_sqlite_writer_is() {
    let (_dir, pool, registry) = registered("registry_writer").await;
    pool.writer().close().await;
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.pools[0].last_error.as_deref(), Some("writer: the pool is closed"));
}
