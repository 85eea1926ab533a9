//! Cancel safety: a `get()` future dropped at any await point leaks no slot and loses no connection, and no
//! connection is handed out dirty. A fault matrix of single stages, then a randomized stress test.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use aquifer_core::PoolError;
use aquifer_testing::FakeManager;
use common::{assert_quiescent, builder, eventually};

const WAIT: Duration = Duration::from_secs(5);

/// Polls a future once (registering it) and hands it back.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

#[tokio::test(start_paused = true)]
async fn get_dropped_while_queued_leaves_the_queue() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(10), pool.get()).await.is_err());
    assert_eq!(pool.state().waiting, 0);
    drop(held);
    assert_eq!(pool.state().idle, 1, "the returned connection went idle, not to the dropped waiter");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn get_dropped_while_its_connect_is_in_flight_lets_the_connect_finish_into_the_pool() {
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(50));
    let pool = builder(&fake).build().unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(5), pool.get()).await.is_err());
    eventually(WAIT, "the connect finished into the pool", || pool.state().idle == 1).await;
    assert_quiescent(&pool, &fake);
    assert_eq!(fake.stats().created, 1);
}

#[tokio::test(start_paused = true)]
async fn get_dropped_while_its_connect_hangs_releases_the_slot() {
    let fake = FakeManager::new();
    fake.set_hang(true);
    let pool = builder(&fake).max_size(1).connect_timeout(Duration::from_millis(30)).build().unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(5), pool.get()).await.is_err());
    // Nobody needs the connect any more once it times out, so its slot is freed rather than retried forever.
    eventually(WAIT, "the slot was released", || pool.state().size == 0).await;
    fake.set_hang(false);
    assert!(pool.get().await.is_ok(), "the slot is usable again");
}

#[tokio::test(start_paused = true)]
async fn get_dropped_while_validating_closes_the_connection_and_frees_the_slot() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).validation_bypass(Duration::from_millis(1)).build().unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(5)).await;
    fake.set_validate_delay(Duration::from_millis(200));
    assert!(tokio::time::timeout(Duration::from_millis(20), pool.get()).await.is_err());
    assert_eq!(fake.stats().validations, 1);
    assert_eq!(pool.state().size, 0, "a connection interrupted mid-validation must not go back to the pool");
    assert_eq!(fake.live(), 0);
    fake.set_validate_delay(Duration::ZERO);
    assert!(pool.get().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn connection_handed_to_a_dropped_waiter_goes_to_the_next_waiter() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let id = held.id;
    let mut first = Box::pin(pool.get());
    assert!(poll_once(&mut first).is_pending());
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(WAIT, "both waiters are queued", || pool.state().waiting == 2).await;
    drop(held); // handed to `first`, which is never polled again
    drop(first); // ... so it must pass the connection on
    let got = tokio::time::timeout(WAIT, second).await.expect("the second waiter was woken").unwrap().unwrap();
    assert_eq!(got, id);
}

#[test]
fn reset_interrupted_by_runtime_shutdown_closes_the_connection() {
    let fake = FakeManager::new();
    fake.set_reset_delay(Duration::from_secs(60));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pool = rt.block_on(async {
        let pool = builder(&fake).build().unwrap();
        let mut conn = pool.get().await.unwrap();
        conn.dirty = true;
        drop(conn);
        pool
    });
    eventually_blocking(|| fake.stats().resets == 1);
    rt.shutdown_timeout(Duration::from_secs(1));
    assert_eq!(fake.live(), 0, "the connection whose reset was interrupted leaked");
    assert_eq!(pool.state().size, 0);
    assert_eq!(fake.double_closes(), 0);
}

fn eventually_blocking(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition not reached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(start_paused = true)]
async fn dirty_connection_is_never_handed_out_while_its_reset_runs() {
    let fake = FakeManager::new();
    fake.set_reset_delay(Duration::from_millis(30));
    let pool = builder(&fake).max_size(1).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.dirty = true;
    drop(conn);
    assert!(pool.try_get().await.unwrap().is_none(), "the connection is still being reset");
    let conn = pool.get().await.unwrap();
    assert!(!conn.dirty);
}

/// Thousands of `get()` futures dropped at random points, under contention, with short timeouts, while
/// connections are dropped, discarded, broken, dirtied and detached at random and the fake server flaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cancellation_storm_keeps_every_invariant() {
    storm(false).await;
}

/// The same storm while an operator pauses and resumes the pool at random.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cancellation_storm_with_pause_and_resume_keeps_every_invariant() {
    storm(true).await;
}

async fn storm(controls: bool) {
    const TASKS: usize = 48;
    const ROUNDS: usize = 250;
    const MAX: usize = 6;
    let fake = FakeManager::new();
    let pool = builder(&fake)
        .max_size(MAX)
        .min_idle(1)
        .validation_bypass(Duration::from_micros(300))
        .connect_timeout(Duration::from_millis(20))
        .fail_fast_after(Duration::from_millis(200))
        .build()
        .unwrap();

    let dropped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = tokio::spawn({
        let (fake, stop, pool) = (fake.clone(), stop.clone(), pool.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                match fastrand::u8(0..if controls { 8 } else { 6 }) {
                    6 => pool.pause(),
                    7 => pool.resume(),
                    0 => fake.set_connect_delay(Duration::from_micros(fastrand::u64(0..2_000))),
                    1 => fake.set_fail_validation(fastrand::bool()),
                    2 => fake.set_validate_delay(Duration::from_micros(fastrand::u64(0..1_000))),
                    3 => fake.set_reset_delay(Duration::from_micros(fastrand::u64(0..1_000))),
                    4 => fake.set_down(fastrand::u8(0..4) == 0),
                    _ => fake.set_fail_reset(fastrand::u8(0..4) == 0),
                }
                tokio::time::sleep(Duration::from_micros(fastrand::u64(100..2_000))).await;
            }
        }
    });

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, dropped) = (pool.clone(), dropped.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let got = match fastrand::u8(0..3) {
                    0 => pool.get_timeout(Duration::from_micros(fastrand::u64(50..3_000))).await.ok(),
                    1 => match tokio::time::timeout(Duration::from_micros(fastrand::u64(0..2_000)), pool.get()).await {
                        Ok(r) => r.ok(),
                        Err(_) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    },
                    _ => {
                        let mut fut = Box::pin(pool.get());
                        let mut out = None;
                        for _ in 0..fastrand::usize(0..4) {
                            if let Poll::Ready(r) = poll_once(&mut fut) {
                                out = Some(r);
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                        if out.is_none() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(fut);
                        out.and_then(Result::ok)
                    }
                };
                let Some(mut conn) = got else { continue };
                assert!(!conn.dirty, "a dirty connection was handed out");
                assert!(!conn.broken, "a broken connection was handed out");
                if fastrand::bool() {
                    tokio::task::yield_now().await;
                }
                match fastrand::u8(0..10) {
                    0 => conn.discard(),
                    1 => conn.broken = true,
                    2 | 3 => conn.dirty = true,
                    4 => drop(conn.detach()),
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task panicked");
    }
    stop.store(true, Ordering::Relaxed);
    chaos.await.unwrap();
    pool.resume();
    fake.set_down(false);
    fake.set_fail_validation(false);
    fake.set_fail_reset(false);
    fake.set_connect_delay(Duration::ZERO);

    assert!(dropped.load(Ordering::Relaxed) > 1_000, "too few cancellations to mean anything");
    eventually(WAIT, "the pool settled", || {
        let s = pool.state();
        s.in_use == 0 && s.connecting == 0 && s.waiting == 0 && s.idle >= 1
    })
    .await;
    assert_quiescent(&pool, &fake);

    // Still fully usable: every slot can be checked out at once.
    let mut all = Vec::new();
    for _ in 0..MAX {
        all.push(pool.get().await.expect("pool usable after the storm"));
    }
    assert!(matches!(pool.get_timeout(Duration::from_millis(10)).await, Err(PoolError::Timeout { .. })));
    drop(all);
    assert_eq!(pool.close().await, 0);
    assert_eq!(fake.live(), 0, "connections left open after close");
    let stats = fake.stats();
    assert_eq!(stats.created, stats.closed, "every connection created was closed exactly once");
    assert_eq!(fake.double_closes(), 0);
}
