//! Helpers shared by the engine's tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{Clock, Pool, PoolBuilder, PoolError, Pooled};
use aquifer_testing::{FakeError, FakeManager, MetricsCapture};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

/// Polls `cond` every 5 ms until it holds; fails the test after `within`.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A builder over a fresh fake server, with short timeouts suited to tests, on Tokio's clock so that tests
/// can run on paused time (`#[tokio::test(start_paused = true)]`).
pub fn builder(fake: &FakeManager) -> PoolBuilder<FakeManager> {
    Pool::builder(fake.clone())
        .acquire_timeout(Duration::from_secs(5))
        .connect_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .clock(Clock::tokio())
}

/// Checks the accounting invariants once the pool is quiet: every connection the fake server created is
/// either live in the pool or was closed exactly once, and the pool's size matches the live connections.
pub fn assert_quiescent(pool: &Pool<FakeManager>, fake: &FakeManager) {
    let state = pool.state();
    let stats = fake.stats();
    assert_eq!(fake.double_closes(), 0, "a connection was closed twice");
    assert_eq!(stats.created, stats.closed + fake.live() as u64, "created = closed + live ({stats:?})");
    assert_eq!(state.waiting, 0, "no waiter left: {state}");
    assert_eq!(state.connecting, 0, "no connect left: {state}");
    assert_eq!(state.in_use, 0, "nothing checked out: {state}");
    assert_eq!(state.size, fake.live(), "pool size = live connections: {state}");
    assert_eq!(state.idle, state.size, "every live connection is idle: {state}");
    assert!(state.size <= state.max_size, "size <= max: {state}");
}

/// How long a test waits for the pool to reach a state before it fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fresh fake server and a pool of at most `max_size` connections over it, built by [`builder`].
pub fn fake_pool(max_size: usize) -> (FakeManager, Pool<FakeManager>) {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(max_size).build().unwrap();
    (fake, pool)
}

/// Checks out `n` connections, one after the other.
pub async fn hold(pool: &Pool<FakeManager>, n: usize) -> Vec<Pooled<FakeManager>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

/// Spawns a get (the pool's acquire timeout) that resolves to the connection's id.
pub fn spawn_get(pool: &Pool<FakeManager>) -> JoinHandle<Result<u64, PoolError<FakeError>>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.map(|c| c.id) })
}

/// Waits until `n` callers are queued for a connection.
pub async fn queued(pool: &Pool<FakeManager>, n: usize) {
    eventually(WAIT, &format!("{n} callers are queued"), || pool.state().waiting == n).await;
}

/// A fresh fake server and a pool over it, built by [`builder`] as `configure` adjusts it.
pub fn fake_pool_with(
    configure: impl FnOnce(PoolBuilder<FakeManager>) -> PoolBuilder<FakeManager>,
) -> (FakeManager, Pool<FakeManager>) {
    let fake = FakeManager::new();
    let pool = configure(builder(&fake)).build().unwrap();
    (fake, pool)
}

/// [`fake_pool_with`], the pool reporting its metrics to a fresh capture.
pub fn metered_pool(
    configure: impl FnOnce(PoolBuilder<FakeManager>) -> PoolBuilder<FakeManager>,
) -> (FakeManager, MetricsCapture, Pool<FakeManager>) {
    let capture = MetricsCapture::new();
    let (fake, pool) = fake_pool_with(|b| configure(b.meter(capture.meter())));
    (fake, capture, pool)
}

/// [`spawn_get`] `n` times, in order.
pub fn spawn_gets(pool: &Pool<FakeManager>, n: usize) -> Vec<JoinHandle<Result<u64, PoolError<FakeError>>>> {
    (0..n).map(|_| spawn_get(pool)).collect()
}

/// Waits until the pool has opened its `min_idle` connections (`n` of them, all idle).
pub async fn min_idle_filled(pool: &Pool<FakeManager>, n: usize) {
    eventually(WAIT, "min_idle is filled", || pool.state().idle == n).await;
}

/// Checks a connection out and returns it dirty, so that the pool resets it before lending it again; returns
/// its id.
pub async fn return_dirty(pool: &Pool<FakeManager>) -> u64 {
    let mut conn = pool.get().await.unwrap();
    conn.dirty = true;
    let id = conn.id;
    drop(conn);
    id
}

/// A fresh fake server, a pool of one connection over it, and that connection, checked out: the next get
/// waits.
pub async fn pool_of_one_lent() -> (FakeManager, Pool<FakeManager>, Pooled<FakeManager>) {
    let (fake, pool) = fake_pool(1);
    let held = pool.get().await.unwrap();
    (fake, pool, held)
}

/// A pool of at most 4 keeping 2 idle connections, once it has opened them.
pub async fn min_idle_pool() -> (FakeManager, Pool<FakeManager>) {
    let (fake, pool) = fake_pool_with(|b| b.max_size(4).min_idle(2));
    min_idle_filled(&pool, 2).await;
    (fake, pool)
}

/// Spawns a get that, once served, records `i` in `served` (so that a test sees the order callers were served
/// in), then keeps the connection for `keep`, if given, before returning it.
pub fn spawn_recorded_get(
    pool: &Pool<FakeManager>,
    served: &Arc<Mutex<Vec<usize>>>,
    i: usize,
    keep: Option<Duration>,
) -> JoinHandle<()> {
    let (pool, served) = (pool.clone(), Arc::clone(served));
    tokio::spawn(async move {
        let conn = pool.get().await.unwrap();
        served.lock().push(i);
        if let Some(keep) = keep {
            tokio::time::sleep(keep).await;
        }
        drop(conn);
    })
}
