//! Health reports of one pool and of a registry of pools.

mod common;

use std::time::Duration;

use aquifer_core::{HealthRegistry, HealthStatus};
use aquifer_testing::FakeManager;
use common::{builder, eventually, fake_pool, fake_pool_with, hold};

#[tokio::test(start_paused = true)]
async fn healthy_pool_reports_latency_version_and_state() {
    let (fake, pool) = fake_pool_with(|b| b.name("orders").max_size(4));
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.pool, "orders");
    assert_eq!(report.system, "other_sql");
    assert_eq!(report.server, "fake.local:1/test");
    assert_eq!(report.server_version.as_deref(), Some("fake 1.0"));
    assert!(report.latency.is_some());
    assert_eq!(report.state.max_size, 4);
    assert!(report.last_error.is_none());
    assert_eq!(fake.stats().validations, 1, "health always validates, ignoring the bypass window");
}

#[tokio::test(start_paused = true)]
async fn health_report_serializes_to_json() {
    let (_fake, pool) = fake_pool_with(|b| b);
    let json = serde_json::to_value(pool.health().await).unwrap();
    assert_eq!(json["status"], "healthy");
    assert!(json["latency_ms"].is_f64(), "{json}");
    assert_eq!(json["state"]["max_size"], 10);
    assert!(json["checked_at"].as_str().unwrap().ends_with('Z'), "{json}");
    assert_eq!(json["utilization"], 0.0);
}

#[tokio::test(start_paused = true)]
async fn pool_above_80_percent_utilization_is_degraded() {
    let (_fake, pool) = fake_pool(5);
    let held = hold(&pool, 5).await;
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.utilization, 1.0);
    drop(held);
}

/// Checks that the pool's health check finds it unhealthy, its last error saying `why`.
async fn assert_unhealthy_because(pool: &aquifer_core::Pool<FakeManager>, why: &str) {
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(report.last_error.unwrap().contains(why));
}

#[tokio::test(start_paused = true)]
async fn failing_validation_makes_the_pool_unhealthy() {
    let (fake, pool) = fake_pool_with(|b| b);
    drop(pool.get().await.unwrap());
    fake.set_fail_validation(true);
    assert_unhealthy_because(&pool, "server closed the connection").await;
}

#[tokio::test(start_paused = true)]
async fn unreachable_server_makes_the_pool_unhealthy_with_the_connect_error() {
    let (fake, pool) = fake_pool_with(|b| b.fail_fast_after(Duration::from_millis(100)));
    fake.set_down(true);
    assert_unhealthy_because(&pool, "connection refused").await;
}

#[tokio::test(start_paused = true)]
async fn closed_pool_is_unhealthy() {
    let (_fake, pool) = fake_pool_with(|b| b);
    pool.close().await;
    assert_eq!(pool.health().await.status, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn health_interval_refreshes_the_report_in_the_background() {
    let (fake, pool) = fake_pool_with(|b| b.health_interval(Some(Duration::from_millis(20))));
    eventually(Duration::from_secs(5), "a background report exists", || pool.last_health().is_some()).await;
    fake.set_fail_validation(true);
    eventually(Duration::from_secs(5), "the report turned unhealthy", || {
        pool.last_health().is_some_and(|r| r.status == HealthStatus::Unhealthy)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn registry_aggregates_pools_with_the_worst_status() {
    let good = FakeManager::new();
    let bad = FakeManager::new();
    bad.set_down(true);
    let registry = HealthRegistry::new();
    registry.register(builder(&good).name("good").build().unwrap());
    registry.register(builder(&bad).name("bad").fail_fast_after(Duration::from_millis(1)).build().unwrap());
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    let names: Vec<_> = report.pools.iter().map(|p| (p.pool.as_str(), p.status)).collect();
    assert_eq!(names, [("good", HealthStatus::Healthy), ("bad", HealthStatus::Unhealthy)]);
    assert_eq!(registry.unregister("bad"), 1);
    assert_eq!(registry.check().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn empty_registry_is_healthy() {
    assert_eq!(HealthRegistry::new().check().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_pool_that_cannot_reach_its_server_is_unhealthy_and_says_why() {
    let fake = FakeManager::new();
    fake.set_hang(true);
    // A black hole, with the circuit disabled: the pool can only keep trying.
    let pool = builder(&fake)
        .max_size(2)
        .connect_timeout(Duration::from_millis(100))
        .acquire_timeout(Duration::from_secs(30))
        .fail_fast_after(Duration::ZERO)
        .build()
        .unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let pool = pool.clone();
                async move { pool.get().await.is_ok() }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert_eq!(report.state.in_use, 0);
    let message = report.last_error.unwrap();
    assert!(message.contains("connect timed out"), "{message}");
    assert!(!message.contains("in use"), "the message contradicts the state it reports: {message}");
    for w in waiters {
        w.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_pool_says_what_holds_its_connections() {
    let (fake, pool) = fake_pool_with(|b| b.max_size(2).acquire_timeout(Duration::from_secs(30)));
    fake.set_connect_delay(Duration::from_secs(10));
    drop(pool.get_timeout(Duration::from_secs(20)).await.unwrap());
    let held = pool.get().await.unwrap();
    // One connection in use, one slow connect in flight for a waiter.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.is_ok() }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    let message = report.last_error.unwrap();
    assert_eq!(message, "pool exhausted: 1 of 2 connections in use, 1 connecting");
    assert_eq!((report.state.in_use, report.state.connecting), (1, 1));
    drop(held);
    waiter.abort();
}
