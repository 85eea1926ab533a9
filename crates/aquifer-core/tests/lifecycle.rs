//! A connection's life: validation on checkout, resets and discards on return, idle timeout, max lifetime,
//! min_idle, resize and retain.

mod common;

use std::time::Duration;

use aquifer_testing::FakeManager;
use common::{assert_quiescent, builder, eventually};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn connection_used_within_the_bypass_window_is_not_validated() {
    let fake = FakeManager::new();
    let pool = builder(&fake).validation_bypass(Duration::from_secs(60)).build().unwrap();
    for _ in 0..10 {
        drop(pool.get().await.unwrap());
    }
    assert_eq!(fake.stats().validations, 0);
}

#[tokio::test(start_paused = true)]
async fn connection_idle_past_the_bypass_window_is_validated_on_checkout() {
    let fake = FakeManager::new();
    let pool = builder(&fake).validation_bypass(Duration::from_millis(20)).build().unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(40)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(fake.stats().validations, 1);
}

#[tokio::test(start_paused = true)]
async fn connection_failing_validation_is_replaced_transparently() {
    let fake = FakeManager::new();
    let pool = builder(&fake).validation_bypass(Duration::from_millis(10)).build().unwrap();
    let first = pool.get().await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(30)).await;
    fake.set_fail_validation(true);
    let conn = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(WAIT, "the stale connection was validated", || fake.stats().validations >= 1).await;
    fake.set_fail_validation(false);
    let second = conn.await.unwrap().unwrap();
    assert_ne!(first, second, "the connection that failed validation was handed out");
    assert_eq!(pool.stats().closed_validation_failed, 1);
}

#[tokio::test(start_paused = true)]
async fn broken_connection_is_discarded_on_return_and_its_slot_freed() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let id = conn.id;
    conn.broken = true;
    drop(conn);
    assert_eq!(pool.state().size, 0);
    assert_eq!(pool.stats().closed_broken, 1);
    assert_ne!(pool.get().await.unwrap().id, id);
}

#[tokio::test(start_paused = true)]
async fn a_connection_found_broken_makes_every_idle_one_validate_before_its_next_checkout() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(4).validation_bypass(Duration::from_secs(60)).build().unwrap();
    let mut held = futures_join(&pool, 4).await;
    let mut dead = held.pop().unwrap();
    drop(held);
    // Three idle connections, all used just now: inside the bypass window, checkout would trust them.
    dead.broken = true;
    drop(dead);
    drop(futures_join(&pool, 3).await);
    assert_eq!(fake.stats().validations, 3, "each idle connection is validated once after the death");
    // Validated and returned since: trusted again.
    drop(futures_join(&pool, 3).await);
    assert_eq!(fake.stats().validations, 3);
}

#[tokio::test(start_paused = true)]
async fn broken_connection_on_return_wakes_a_waiter_with_a_new_connection() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(WAIT, "the waiter is queued", || pool.state().waiting == 1).await;
    let id = held.id;
    held.broken = true;
    drop(held);
    let got = tokio::time::timeout(WAIT, waiter).await.expect("waiter woken").unwrap().unwrap();
    assert_ne!(got, id);
}

#[tokio::test(start_paused = true)]
async fn connection_returned_dirty_is_reset_before_the_next_user() {
    let fake = FakeManager::new();
    fake.set_reset_delay(Duration::from_millis(20));
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.dirty = true;
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert!(!conn.dirty, "a dirty connection was handed out before its reset");
    assert_eq!(fake.stats().resets, 1);
    assert_eq!(pool.stats().resets, 1);
}

#[tokio::test(start_paused = true)]
async fn connection_whose_reset_fails_is_discarded() {
    let fake = FakeManager::new();
    fake.set_fail_reset(true);
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let id = conn.id;
    conn.dirty = true;
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.id, id);
    assert!(!conn.dirty);
    drop(conn);
    assert_eq!(pool.stats().closed_broken, 1);
}

#[tokio::test(start_paused = true)]
async fn discard_closes_the_connection_instead_of_returning_it() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    let conn = pool.get().await.unwrap();
    conn.discard();
    let state = pool.state();
    assert_eq!((state.size, state.idle), (0, 0));
    assert_eq!(fake.live(), 0);
    assert_eq!(pool.stats().closed_discarded, 1);
}

#[tokio::test(start_paused = true)]
async fn detach_hands_over_the_connection_and_frees_the_slot() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let raw = conn.detach();
    assert_eq!(pool.state().size, 0);
    assert_eq!(fake.live(), 1, "the detached connection is still open");
    let other = pool.get().await.unwrap();
    assert_ne!(other.id, raw.id);
    assert_eq!(pool.stats().detached, 1);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_idle_connections() {
    let fake = FakeManager::new();
    let pool = builder(&fake).idle_timeout(Some(Duration::from_millis(50))).build().unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop((a, b));
    assert_eq!(pool.state().idle, 2);
    eventually(WAIT, "idle connections were closed", || pool.state().size == 0).await;
    assert_eq!(pool.stats().closed_idle_timeout, 2);
    assert_eq!(fake.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_never_closes_connections_below_min_idle() {
    let fake = FakeManager::new();
    let pool = builder(&fake).min_idle(2).idle_timeout(Some(Duration::from_millis(30))).build().unwrap();
    let held: Vec<_> = futures_join(&pool, 4).await;
    // While all four are busy the pool tops idle up to min_idle (as HikariCP does), so more than four exist.
    eventually(WAIT, "min_idle was topped up", || pool.state().idle == 2).await;
    drop(held);
    let opened = pool.state().size;
    assert_eq!(opened, 6);
    eventually(WAIT, "extra idle connections were closed", || pool.state().idle == 2).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(pool.state().idle, 2, "idle_timeout closed connections below min_idle");
    assert_eq!(pool.stats().closed_idle_timeout, opened as u64 - 2);
}

#[tokio::test(start_paused = true)]
async fn min_idle_connections_are_opened_at_start_and_replaced_when_closed() {
    let fake = FakeManager::new();
    let pool = builder(&fake).min_idle(3).max_size(5).build().unwrap();
    eventually(WAIT, "min_idle connections were opened", || pool.state().idle == 3).await;
    let conn = pool.get().await.unwrap();
    conn.discard();
    eventually(WAIT, "the pool topped up min_idle", || pool.state().idle == 3).await;
    assert!(pool.state().size <= 5);
}

#[tokio::test(start_paused = true)]
async fn warm_up_opens_min_idle_connections_before_returning() {
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(10));
    let pool = builder(&fake).min_idle(3).build().unwrap();
    pool.warm_up().await.unwrap();
    assert_eq!(pool.state().idle, 3, "{}", pool.state());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fake.stats().created, 3, "warm_up opened more than min_idle");
}

#[tokio::test(start_paused = true)]
async fn a_warm_up_that_times_out_is_counted_as_a_timeout() {
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_secs(10));
    let pool = builder(&fake).min_idle(2).acquire_timeout(Duration::from_millis(50)).build().unwrap();
    let err = pool.warm_up().await.expect_err("the connects take longer than the acquire timeout");
    assert!(matches!(err, aquifer_core::PoolError::Timeout { .. }), "{err}");
    assert_eq!(pool.stats().timeouts, 1, "{:?}", pool.stats());
}

#[tokio::test(start_paused = true)]
async fn warm_up_without_min_idle_opens_one_connection() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    pool.warm_up().await.unwrap();
    assert_eq!((pool.state().idle, fake.stats().created), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn warm_up_reports_an_unreachable_server_fast() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).min_idle(2).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.warm_up().await.unwrap_err();
    assert!(matches!(err, aquifer_core::PoolError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn warm_up_reports_a_refused_connect() {
    let fake = FakeManager::new();
    fake.set_connect_error(Some("password authentication failed"));
    let pool = builder(&fake).min_idle(1).build().unwrap();
    let err = pool.warm_up().await.unwrap_err();
    assert!(err.to_string().contains("password authentication failed"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_closes_idle_connections() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_lifetime(Some(Duration::from_millis(40))).idle_timeout(None).build().unwrap();
    drop(pool.get().await.unwrap());
    eventually(WAIT, "the expired connection was closed", || pool.state().size == 0).await;
    assert_eq!(pool.stats().closed_max_lifetime, 1);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_is_enforced_when_a_busy_connection_returns() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_lifetime(Some(Duration::from_millis(40))).build().unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    drop(conn);
    assert_eq!(pool.state().size, 0, "an expired connection went back to the pool");
    assert_eq!(pool.stats().closed_max_lifetime, 1);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_has_jitter_below_the_configured_value() {
    let fake = FakeManager::new();
    let lifetime = Duration::from_millis(400);
    let pool = builder(&fake).max_size(20).max_lifetime(Some(lifetime)).idle_timeout(None).build().unwrap();
    let conns = futures_join(&pool, 20).await;
    let opened = tokio::time::Instant::now();
    drop(conns);
    // 5 % jitter: all expire within [380 ms, 400 ms] of creation, and not all at the same instant.
    eventually(WAIT, "all connections expired", || pool.state().size == 0).await;
    assert!(opened.elapsed() >= lifetime.mul_f64(0.95) - Duration::from_millis(20));
    assert_eq!(pool.stats().closed_max_lifetime, 20);
}

#[tokio::test(start_paused = true)]
async fn resize_refuses_a_size_beyond_the_bound() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    let err = pool.resize(aquifer_core::MAX_POOL_SIZE + 1).unwrap_err();
    assert!(err.to_string().contains("max_size"), "{err}");
    assert_eq!(pool.state().max_size, 10);
}

#[tokio::test(start_paused = true)]
async fn resize_down_closes_idle_connections_beyond_the_new_size() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(4).build().unwrap();
    drop(futures_join(&pool, 4).await);
    pool.resize(2).unwrap();
    let state = pool.state();
    assert_eq!((state.size, state.max_size), (2, 2));
    assert_eq!(fake.live(), 2);
}

#[tokio::test(start_paused = true)]
async fn resize_down_closes_busy_connections_as_they_return() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(3).build().unwrap();
    let held = futures_join(&pool, 3).await;
    pool.resize(1).unwrap();
    drop(held);
    assert_eq!(pool.state().size, 1);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn resize_up_lets_waiters_connect() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let _held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(WAIT, "the waiter is queued", || pool.state().waiting == 1).await;
    pool.resize(2).unwrap();
    assert!(tokio::time::timeout(WAIT, waiter).await.expect("waiter served").unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn resize_rejects_zero_and_sizes_below_min_idle() {
    let fake = FakeManager::new();
    let pool = builder(&fake).min_idle(2).build().unwrap();
    let err = pool.resize(0).unwrap_err();
    assert!(err.to_string().contains("max_size = 0"), "{err}");
    let err = pool.resize(1).unwrap_err();
    assert!(err.to_string().contains("min_idle (2)"), "{err}");
    assert_eq!(pool.state().max_size, 10);
}

#[tokio::test(start_paused = true)]
async fn retain_closes_the_idle_connections_the_predicate_rejects() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    drop(futures_join(&pool, 4).await);
    let removed = pool.retain(|conn, info| {
        assert_eq!(conn.id, info.id);
        conn.id % 2 == 0
    });
    assert_eq!(removed, 2);
    assert_eq!(pool.state().idle, 2);
    assert_eq!(fake.live(), 2);
    assert_eq!(pool.stats().closed_discarded, 2);
}

#[tokio::test(start_paused = true)]
async fn connection_info_reports_id_and_age() {
    let fake = FakeManager::new();
    let pool = builder(&fake).build().unwrap();
    let conn = pool.get().await.unwrap();
    let info = conn.info();
    assert_eq!(info.id, 1);
    assert!(info.age >= info.checked_out_for);
    assert_eq!(conn.pool_name(), "fake.local:1/test");
}

/// Checks out `n` connections at once.
async fn futures_join(pool: &aquifer_core::Pool<FakeManager>, n: usize) -> Vec<aquifer_core::Pooled<FakeManager>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}
