//! Closing a pool: waiters woken with Closed, idle connections closed, busy ones closed as they return.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use aquifer_core::PoolError;
use common::{WAIT, eventually, fake_pool_with, queued, spawn_gets};

#[tokio::test(start_paused = true)]
async fn close_wakes_every_waiter_with_closed() {
    let (_fake, pool) = fake_pool_with(|b| b.max_size(1).acquire_timeout(Duration::from_secs(30)));
    let held = pool.get().await.unwrap();
    let waiters = spawn_gets(&pool, 10);
    queued(&pool, 10).await;
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    for w in waiters {
        let res = tokio::time::timeout(WAIT, w).await.expect("waiter woken").unwrap();
        assert!(matches!(res, Err(PoolError::Closed)), "{res:?}");
    }
    drop(held);
    assert_eq!(closing.await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn get_after_close_fails_with_closed() {
    let (_fake, pool) = fake_pool_with(|b| b);
    pool.close().await;
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert!(matches!(pool.try_get().await, Err(PoolError::Closed)));
    assert!(pool.is_closed());
}

#[tokio::test(start_paused = true)]
async fn close_closes_idle_connections_at_once() {
    let (fake, pool) = fake_pool_with(|b| b);
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b));
    assert_eq!(pool.close().await, 0);
    assert_eq!(fake.live(), 0);
    assert_eq!(pool.stats().closed_pool_closed, 2);
}

#[tokio::test(start_paused = true)]
async fn close_waits_for_busy_connections_and_closes_each_as_it_returns() {
    let (fake, pool) = fake_pool_with(|b| b);
    let busy = pool.get().await.unwrap();
    let returner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(busy);
    });
    let started = Instant::now();
    assert_eq!(pool.close().await, 0, "close drained");
    assert!(started.elapsed() >= Duration::from_millis(40), "close returned before the busy connection came back");
    returner.await.unwrap();
    assert_eq!(fake.live(), 0, "the returned connection was closed, not pooled");
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_at_close_timeout_and_reports_what_is_still_open() {
    let (fake, pool) = fake_pool_with(|b| b.close_timeout(Duration::from_millis(30)));
    let busy = pool.get().await.unwrap();
    assert_eq!(pool.close().await, 1);
    drop(busy);
    assert_eq!(fake.live(), 0, "closed as it came back, even after the deadline");
}

#[tokio::test(start_paused = true)]
async fn close_stops_connects_in_flight() {
    let (fake, pool) = fake_pool_with(|b| b.connect_timeout(Duration::from_secs(60)));
    fake.set_hang(true);
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    eventually(WAIT, "a connect is in flight", || pool.state().connecting == 1).await;
    assert_eq!(pool.close().await, 0, "close waited for a hanging connect");
    assert!(matches!(get.await.unwrap(), Err(PoolError::Closed)));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_the_pool() {
    let (fake, pool) = fake_pool_with(|b| b);
    let clone = pool.clone();
    drop(pool.get().await.unwrap());
    drop(pool);
    assert_eq!(fake.live(), 1, "a clone still holds the pool open");
    drop(clone);
    assert_eq!(fake.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn connection_outliving_its_pool_is_closed_on_drop() {
    let (fake, pool) = fake_pool_with(|b| b);
    let conn = pool.get().await.unwrap();
    drop(pool);
    assert_eq!(fake.live(), 1);
    drop(conn);
    assert_eq!(fake.live(), 0);
}
