//! Operator controls: pause and resume (a paused pool lends nothing and opens nothing, callers wait up to their
//! own timeout, connections in use keep working, resume serves the waiters in order), retire (idle
//! connections closed now, those in use when they come back), the lifetime jitter that keeps a pool built
//! at once from reconnecting at once, and keepalive pings of idle connections. Time is Tokio's paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{HealthStatus, Pool, PoolError, Pooled};
use aquifer_testing::{FakeManager, Kind, MetricsCapture};
use common::{assert_quiescent, builder, eventually};
use parking_lot::Mutex;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn hold(pool: &Pool<FakeManager>, n: usize) -> Vec<Pooled<FakeManager>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

/// Spawns a get (the pool's acquire timeout) that resolves to the connection's id.
fn spawn_get(pool: &Pool<FakeManager>) -> tokio::task::JoinHandle<Result<u64, PoolError<aquifer_testing::FakeError>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.map(|c| c.id) })
}

#[tokio::test(start_paused = true)]
async fn a_paused_pool_lends_nothing_and_its_waiters_time_out_saying_it_is_paused() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).acquire_timeout(Duration::from_secs(2)).build().unwrap();
    drop(hold(&pool, 2).await);
    assert!(!pool.is_paused());
    pool.pause();
    pool.pause(); // idempotent
    assert!(pool.is_paused() && pool.state().paused);
    assert!(pool.try_get().await.unwrap().is_none(), "try_get lent a connection of a paused pool");
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2), "waited its own acquire timeout");
    let PoolError::Timeout { state, last_error: None, .. } = &err else { panic!("expected Timeout, got {err:?}") };
    assert!(state.paused, "{state}");
    assert!(err.to_string().contains("the pool is paused"), "{err}");
    assert_eq!((pool.state().idle, pool.stats().acquired), (2, 2), "nothing was lent");
    pool.resume();
    assert!(!pool.is_paused());
    drop(pool.get().await.expect("a resumed pool lends again"));
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_paused_pool_opens_nothing_not_for_waiters_nor_for_min_idle() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(4).min_idle(2).build().unwrap();
    eventually(WAIT, "min_idle is filled", || pool.state().idle == 2).await;
    pool.pause();
    let attempts = fake.stats().attempts;
    // Idle connections closed while paused are not replaced ...
    assert_eq!(pool.retain(|_, _| false), 2);
    // ... and a waiter gets no connect either.
    let waiter = spawn_get(&pool);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.stats().attempts, attempts, "a paused pool opened a connection");
    let state = pool.state();
    assert_eq!((state.size, state.connecting, state.waiting), (0, 0, 1), "{state}");
    pool.resume();
    waiter.await.unwrap().expect("the waiter is served once the pool resumes");
    eventually(WAIT, "min_idle is filled again", || pool.state().idle >= 2).await;
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn connections_in_use_keep_working_while_paused_and_return_to_idle_not_to_waiters() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    pool.pause();
    let waiter = spawn_get(&pool);
    tokio::time::sleep(ms(10)).await;
    conn.uses += 1; // still usable
    let id = conn.id;
    drop(conn);
    let state = pool.state();
    assert_eq!((state.idle, state.waiting), (1, 1), "the returned connection went to a waiter: {state}");
    pool.resume();
    assert_eq!(waiter.await.unwrap().unwrap(), id, "resume hands the idle connection to the waiter");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn resume_serves_the_waiters_in_the_order_they_came() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    drop(hold(&pool, 2).await);
    pool.pause();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..6 {
        let (pool, order) = (pool.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            order.lock().push(i);
            tokio::time::sleep(ms(1)).await;
            drop(conn);
        }));
        tokio::time::sleep(ms(1)).await;
    }
    assert_eq!(pool.state().waiting, 6);
    pool.resume();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock(), [0, 1, 2, 3, 4, 5], "served out of order");
    assert_eq!(fake.stats().created, 2, "resume used the idle connections, opened none");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn resume_opens_connects_for_the_waiters_of_an_empty_pool() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(3).build().unwrap();
    pool.pause();
    let waiters: Vec<_> = (0..3).map(|_| spawn_get(&pool)).collect();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(fake.stats().attempts, 0);
    pool.resume();
    for w in waiters {
        w.await.unwrap().expect("served after resume");
    }
    assert_eq!(fake.stats().created, 3);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_get_dropped_while_the_pool_is_paused_leaves_nothing_behind() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    pool.pause();
    let mut dropped = Box::pin(pool.get());
    assert!(tokio::time::timeout(ms(10), &mut dropped).await.is_err());
    drop(held);
    drop(dropped);
    pool.resume();
    assert_eq!(pool.state().waiting, 0);
    drop(pool.get().await.unwrap());
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn connects_under_way_when_the_pool_pauses_finish_into_the_idle_queue_and_retry_no_more() {
    let fake = FakeManager::new();
    fake.set_connect_delay(ms(100));
    let pool = builder(&fake).max_size(2).build().unwrap();
    let waiter = spawn_get(&pool);
    tokio::time::sleep(ms(10)).await;
    pool.pause();
    tokio::time::sleep(ms(200)).await;
    let state = pool.state();
    assert_eq!((state.idle, state.waiting, state.connecting), (1, 1, 0), "{state}");
    assert!(!waiter.is_finished());
    // A connect task failing while paused gives its slot back instead of retrying.
    fake.set_down(true);
    pool.resume();
    pool.pause();
    let waiter2 = spawn_get(&pool);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.state().connecting, 0, "{}", pool.state());
    fake.set_down(false);
    pool.resume();
    waiter.await.unwrap().unwrap();
    waiter2.await.unwrap().unwrap();
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn the_probe_of_an_open_circuit_waits_while_the_pool_is_paused() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).max_size(2).fail_fast_after(ms(100)).build().unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    pool.pause();
    tokio::time::sleep(ms(100)).await;
    let attempts = fake.stats().attempts;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fake.stats().attempts, attempts, "the probe kept connecting while paused");
    fake.set_down(false);
    pool.resume();
    eventually(WAIT, "the probe reconnected after resume", || pool.state().idle == 1).await;
    drop(pool.get().await.expect("the pool serves again"));
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_paused_pool_reports_degraded_paused_and_the_paused_gauge_is_one() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).meter(capture.meter()).build().unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(pool.health().await.status, HealthStatus::Healthy);
    pool.pause();
    let gauge = |c: &aquifer_testing::Captured, name: &str| {
        let m = c.get(name).unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(m.kind, Kind::Gauge, "{name}");
        m.total()
    };
    let c = capture.collect();
    assert_eq!(gauge(&c, "aquifer.pool.paused"), 1.0);
    assert_eq!(gauge(&c, "aquifer.pool.health"), 0.5, "a paused pool is degraded before any check");
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(report.last_error.as_deref().is_some_and(|e| e.starts_with("paused")), "{report:?}");
    assert!(report.state.paused);
    assert_eq!(pool.state().in_use, 0, "the health check took no connection");
    pool.resume();
    let c = capture.collect();
    assert_eq!(gauge(&c, "aquifer.pool.paused"), 0.0);
    assert_eq!(pool.health().await.status, HealthStatus::Healthy);
}

// ---------------------------------------------------------------------------------------------------------
// retire()

#[tokio::test(start_paused = true)]
async fn retire_closes_idle_connections_at_once() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(3).build().unwrap();
    drop(hold(&pool, 3).await);
    assert_eq!(pool.retire(), 3);
    let state = pool.state();
    assert_eq!((state.size, state.idle), (0, 0), "{state}");
    assert_eq!((fake.live(), pool.stats().closed_retired), (0, 3));
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn retire_closes_lent_connections_when_they_come_back_not_before() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).build().unwrap();
    let mut lent = hold(&pool, 2).await;
    assert_eq!(pool.retire(), 0, "nothing idle");
    assert_eq!(fake.live(), 2, "connections in use are not interrupted");
    lent[0].uses += 1;
    let old: Vec<u64> = lent.iter().map(|c| c.id).collect();
    drop(lent);
    assert_eq!((fake.live(), pool.state().size, pool.stats().closed_retired), (0, 0, 2));
    let fresh = pool.get().await.unwrap();
    assert!(!old.contains(&fresh.id), "a retired connection was reused");
    drop(fresh);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_retired_connection_coming_back_goes_to_no_waiter_and_the_waiter_gets_a_new_one() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let lent = pool.get().await.unwrap();
    let old = lent.id;
    let waiter = spawn_get(&pool);
    tokio::time::sleep(ms(10)).await;
    pool.retire();
    drop(lent);
    let got = waiter.await.unwrap().expect("the waiter is served");
    assert_ne!(got, old, "the waiter was handed the retired connection");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_connection_being_reset_when_the_pool_retires_is_closed_once_reset() {
    let fake = FakeManager::new();
    fake.set_reset_delay(ms(100));
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.dirty = true;
    drop(conn);
    tokio::time::sleep(ms(10)).await;
    pool.retire();
    tokio::time::sleep(ms(200)).await;
    assert_eq!((fake.stats().resets, pool.stats().closed_retired, fake.live()), (1, 1, 0));
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn retire_refills_min_idle_with_new_connections() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(4).min_idle(2).build().unwrap();
    eventually(WAIT, "min_idle is filled", || pool.state().idle == 2).await;
    pool.retire();
    eventually(WAIT, "min_idle is filled again", || pool.state().idle == 2).await;
    assert_eq!(fake.stats().created, 4);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn retiring_a_paused_pool_opens_nothing_until_it_resumes() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(4).min_idle(2).build().unwrap();
    eventually(WAIT, "min_idle is filled", || pool.state().idle == 2).await;
    pool.pause();
    assert_eq!(pool.retire(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((fake.stats().created, pool.state().size), (2, 0), "a paused pool opened a connection");
    pool.resume();
    eventually(WAIT, "min_idle is filled after resume", || pool.state().idle == 2).await;
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn retirements_count_in_closed_by_reason_and_in_retired_by_reason() {
    let capture = MetricsCapture::new();
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(3).meter(capture.meter()).build().unwrap();
    let mut held = hold(&pool, 3).await;
    let lent = held.pop().unwrap();
    drop(held);
    pool.retire();
    drop(lent);
    let c = capture.collect();
    let closed = c.get("aquifer.pool.connections.closed").expect("closed exported");
    assert_eq!(closed.point_with("reason", "retired").map(|p| p.value), Some(3.0));
    let retired = c.get("aquifer.pool.connections.retired").expect("retired exported");
    assert_eq!(retired.kind, Kind::Counter);
    assert_eq!(retired.point_with("reason", "operator").map(|p| p.value), Some(3.0));
}

// ---------------------------------------------------------------------------------------------------------
// max_lifetime jitter

/// Opens `n` connections at once and returns when each of them was closed by `max_lifetime`, from then.
async fn expiries(jitter: f64, n: usize) -> Vec<Duration> {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(n)
        .max_lifetime(Some(Duration::from_secs(100)))
        .max_lifetime_jitter(jitter)
        .idle_timeout(None)
        .build()
        .unwrap();
    drop(hold(&pool, n).await);
    let start = Instant::now();
    let mut closed_at = Vec::new();
    while closed_at.len() < n {
        tokio::time::sleep(ms(100)).await;
        let closed = pool.stats().closed_max_lifetime as usize;
        closed_at.resize(closed, start.elapsed());
    }
    closed_at
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_jitter_spreads_the_expiry_of_connections_opened_together() {
    let at = expiries(0.2, 20).await;
    let (first, last) = (at[0], at[at.len() - 1]);
    assert!(first >= Duration::from_secs(80), "a connection expired before max_lifetime less the jitter: {first:?}");
    assert!(last <= Duration::from_secs(101) + Duration::from_secs(25), "{last:?}");
    assert!(last - first >= Duration::from_secs(5), "20 connections expired within {:?}: {at:?}", last - first);
}

#[tokio::test(start_paused = true)]
async fn without_jitter_connections_opened_together_expire_together() {
    let at = expiries(0.0, 10).await;
    assert!(at[9] - at[0] <= Duration::from_secs(26), "{at:?}");
    assert!(at[0] >= Duration::from_secs(100), "{at:?}");
}

// ---------------------------------------------------------------------------------------------------------
// keepalive_interval

fn keepalive_pool(fake: &FakeManager, every: Duration) -> Pool<FakeManager> {
    builder(fake).max_size(2).keepalive_interval(Some(every)).idle_timeout(None).max_lifetime(None).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn keepalive_validates_idle_connections_on_its_period() {
    let fake = FakeManager::new();
    let pool = keepalive_pool(&fake, Duration::from_secs(60));
    drop(hold(&pool, 2).await);
    let before = fake.stats().validations;
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(fake.stats().validations, before, "pinged before the period");
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(fake.stats().validations, before + 2, "each idle connection is pinged within a quarter period");
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert_eq!(fake.stats().validations, before + 4, "and again a period later");
    assert_eq!((pool.stats().keepalives, pool.stats().acquired), (4, 2), "pings are not checkouts");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn keepalive_is_off_by_default() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).build().unwrap();
    drop(hold(&pool, 2).await);
    let before = fake.stats().validations;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!((fake.stats().validations, pool.stats().keepalives), (before, 0));
}

#[tokio::test(start_paused = true)]
async fn keepalive_closes_dead_idle_connections_before_a_caller_is_handed_one() {
    let fake = FakeManager::new();
    let pool = keepalive_pool(&fake, Duration::from_secs(10));
    drop(hold(&pool, 2).await);
    fake.set_fail_validation(true); // the network dropped them while idle
    tokio::time::sleep(Duration::from_secs(13)).await;
    assert_eq!(pool.stats().closed_keepalive_failed, 2, "{:?}", pool.stats());
    assert_eq!(pool.state().size, 0);
    fake.set_fail_validation(false);
    let validations = fake.stats().validations;
    let conn = pool.get().await.expect("the caller sees no error");
    assert_eq!(fake.stats().validations, validations, "the caller got a new connection, no dead one to check");
    drop(conn);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_ping_that_gets_no_answer_is_cut_at_validation_timeout() {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(1)
        .keepalive_interval(Some(Duration::from_secs(10)))
        .validation_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    fake.set_validate_delay(Duration::from_secs(3600)); // a black hole
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    assert_eq!(pool.stats().keepalives, 1);
    assert_eq!(pool.state().idle, 1, "a connection out for a ping still counts as idle");
    assert_eq!(pool.state().in_use, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((pool.stats().closed_keepalive_failed, pool.state().size), (1, 0));
    fake.set_validate_delay(Duration::ZERO);
    drop(pool.get().await.unwrap());
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_connection_out_for_a_ping_is_not_replaced_for_min_idle() {
    let fake = FakeManager::new();
    fake.set_validate_delay(Duration::from_secs(1));
    let pool =
        builder(&fake).max_size(4).min_idle(2).keepalive_interval(Some(Duration::from_secs(10))).build().unwrap();
    eventually(WAIT, "min_idle is filled", || pool.state().idle == 2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(pool.stats().keepalives >= 2, "{:?}", pool.stats());
    assert_eq!(fake.stats().created, 2, "pings made the pool open connections for min_idle");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_do_not_keep_connections_from_idle_timeout() {
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(1)
        .keepalive_interval(Some(Duration::from_secs(10)))
        .idle_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_secs(80)).await;
    assert!(pool.stats().keepalives >= 4, "{:?}", pool.stats());
    assert_eq!((pool.stats().closed_idle_timeout, pool.state().size), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_ping_answered_after_the_pool_closed_closes_its_connection() {
    let fake = FakeManager::new();
    fake.set_validate_delay(Duration::from_secs(1));
    let pool = keepalive_pool(&fake, Duration::from_secs(10));
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(12_600)).await;
    assert_eq!(pool.stats().keepalives, 1);
    let started = Instant::now();
    assert_eq!(pool.close().await, 0, "close waits for the ping");
    assert!(started.elapsed() <= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(fake.live(), 0);
}

// ---------------------------------------------------------------------------------------------------------
// The controls through AnyPool (what an admin endpoint calls)

#[tokio::test(start_paused = true)]
async fn any_pool_pauses_resumes_retires_and_resizes() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).build().unwrap();
    drop(hold(&pool, 2).await);
    let any: &dyn aquifer_core::AnyPool = &pool;
    any.pause();
    assert!(any.is_paused() && pool.is_paused());
    any.resume();
    assert!(!any.is_paused());
    assert_eq!(any.retire(), 2);
    any.resize(5).unwrap();
    assert_eq!(any.state().max_size, 5);
    let err = any.resize(0).unwrap_err();
    assert!(err.to_string().contains("max_size"), "{err}");
}
