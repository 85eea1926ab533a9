//! Operator controls: pause and resume (a paused pool lends nothing and opens nothing, callers wait up to their
//! own timeout, connections in use keep working, resume serves the waiters in order), retire (idle
//! connections closed now, those in use when they come back), and the lifetime jitter that keeps a pool built
//! at once from reconnecting at once. Time is Tokio's paused clock.

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
