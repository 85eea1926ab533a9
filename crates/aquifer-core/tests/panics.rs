//! A panicking Manager hook never wedges the pool: the slot is freed, the counters stay true, the panic is
//! logged and counted, and the pool keeps serving.

mod common;

use std::time::Duration;

use aquifer_core::{ConnectError, PoolError};
use aquifer_testing::{FakeHook, FakeManager};
use common::{assert_quiescent, builder, eventually};

#[tokio::test(start_paused = true)]
async fn a_panicking_connect_frees_its_slot_and_fails_the_get_with_a_typed_error() {
    let fake = FakeManager::new();
    fake.set_panic(FakeHook::Connect, true);
    let pool = builder(&fake).max_size(1).build().unwrap();
    // It keeps panicking: the get fails once fail_fast_after (2 s) of panics has passed with no connection.
    let err = pool.get().await.unwrap_err();
    let PoolError::Unavailable { last_error: ConnectError::Panicked(message), .. } = &err else {
        panic!("expected Unavailable with the panic, got {err:?}");
    };
    assert!(message.contains("injected panic in Connect"), "{message}");
    assert!(!err.is_permanent(), "a panicking connect is retried like a transient failure: {err:?}");
    let shown = aquifer_testing::assert_each_cause_once(&err);
    assert!(shown.starts_with("database unavailable for "), "{shown}");
    assert!(shown.contains("the manager's connect panicked"), "{shown}");
    assert!(pool.stats().panics >= 2, "retried with backoff: {:?}", pool.stats());
    assert_eq!(pool.state().in_use, 0, "{}", pool.state());
}

/// A panic in `connect` is a bug in the manager, not news about the server: it is retried like a transient
/// failure, so a caller never sees it when the next attempt works, and the circuit stays closed.
#[tokio::test(start_paused = true)]
async fn a_connect_panic_does_not_open_the_circuit() {
    let fake = FakeManager::new();
    fake.set_panic(FakeHook::Connect, true);
    let pool = builder(&fake).max_size(1).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(Duration::from_secs(1), "connect panicked", || fake.stats().attempts >= 1).await;
    assert_eq!(pool.stats().fail_fast, 0, "a single panic opened the circuit");
    fake.set_panic(FakeHook::Connect, false);
    get.await.unwrap().expect("the get after a panic succeeds once the manager is healthy");
    let stats = pool.stats();
    assert_eq!((stats.fail_fast, stats.panics), (0, 1), "{stats:?}");
    // And again after another burst of panics shorter than fail_fast_after, with the pool empty.
    pool.retain(|_, _| false);
    fake.set_panic(FakeHook::Connect, true);
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.set_panic(FakeHook::Connect, false);
    get.await.unwrap().expect("the next get after the panics succeeds");
    assert_eq!(pool.stats().fail_fast, 0, "{:?}", pool.stats());
    assert!(pool.stats().panics >= 3, "{:?}", pool.stats());
}

#[tokio::test(start_paused = true)]
async fn the_pool_serves_again_once_connect_stops_panicking() {
    let fake = FakeManager::new();
    fake.set_panic(FakeHook::Connect, true);
    let pool = builder(&fake).max_size(1).build().unwrap();
    assert!(pool.get().await.is_err());
    fake.set_panic(FakeHook::Connect, false);
    eventually(Duration::from_secs(10), "the probe connected", || pool.state().idle == 1).await;
    drop(pool.get().await.expect("the pool recovered from the panic"));
    assert!(pool.stats().panics >= 1);
    assert_eq!(pool.close().await, 0, "no connection left behind by the panic");
    assert_quiescent_after_close(&fake);
}

fn assert_quiescent_after_close(fake: &FakeManager) {
    assert_eq!(fake.live(), 0, "every connection closed");
    assert_eq!(fake.double_closes(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_validate_discards_the_connection_and_the_get_goes_on() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).validation_bypass(Duration::from_millis(1)).build().unwrap();
    let first = pool.get().await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(10)).await;
    fake.set_panic(FakeHook::Validate, true);
    let conn = pool.get().await.expect("a fresh connection replaces the one whose validation panicked");
    assert_ne!(conn.id, first);
    drop(conn);
    let stats = pool.stats();
    assert_eq!((stats.panics, stats.closed_validation_failed), (1, 1), "{stats:?}");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_is_broken_closes_the_connection_and_frees_its_slot() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    fake.set_panic(FakeHook::IsBroken, true);
    drop(conn);
    assert_eq!(pool.state().size, 0, "{}", pool.state());
    fake.set_panic(FakeHook::IsBroken, false);
    drop(pool.get_timeout(Duration::from_millis(100)).await.expect("the slot was freed"));
    assert_eq!(pool.stats().panics, 1);
    assert_eq!(pool.stats().closed_broken, 1);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_needs_reset_closes_the_connection_and_frees_its_slot() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    fake.set_panic(FakeHook::NeedsReset, true);
    drop(conn);
    assert_eq!(pool.state().size, 0, "{}", pool.state());
    fake.set_panic(FakeHook::NeedsReset, false);
    drop(pool.get_timeout(Duration::from_millis(100)).await.expect("the slot was freed"));
    assert_eq!(pool.stats().panics, 1);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reset_closes_the_connection_and_frees_its_slot() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.dirty = true;
    fake.set_panic(FakeHook::Reset, true);
    drop(conn);
    eventually(Duration::from_secs(1), "the reset task ended", || pool.state().size == 0).await;
    fake.set_panic(FakeHook::Reset, false);
    drop(pool.get_timeout(Duration::from_millis(100)).await.expect("the slot was freed"));
    assert_eq!(pool.stats().panics, 1);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_server_version_leaves_a_passing_health_check_healthy() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    fake.set_panic(FakeHook::ServerVersion, true);
    let report = pool.health().await;
    assert_eq!(report.status, aquifer_core::HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.server_version, None);
    assert_eq!(pool.stats().panics, 1);
    assert_quiescent(&pool, &fake);
}
