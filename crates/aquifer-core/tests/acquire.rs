//! Checking connections out and back in: reuse order, waiting order, timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::PoolError;
use aquifer_testing::FakeManager;
use common::{
    eventually, fake_pool, fake_pool_with, pool_of_one_lent, queued, spawn_get, spawn_gets, spawn_recorded_get,
};
use parking_lot::Mutex;

#[tokio::test(start_paused = true)]
async fn get_opens_a_connection_and_drop_returns_it() {
    let (fake, pool) = fake_pool(4);
    let conn = pool.get().await.unwrap();
    assert_eq!(pool.state().in_use, 1);
    drop(conn);
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.in_use), (1, 1, 0));
    assert_eq!(fake.stats().created, 1);
}

#[tokio::test(start_paused = true)]
async fn pooled_derefs_to_the_driver_connection() {
    let (_fake, pool) = fake_pool_with(|b| b);
    let mut conn = pool.get().await.unwrap();
    conn.uses += 1;
    let id = conn.id;
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!((conn.id, conn.uses), (id, 1));
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_reused_last_in_first_out() {
    let (_fake, pool) = fake_pool(3);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    let (ida, idc) = (a.id, c.id);
    drop(a);
    drop(b);
    drop(c);
    assert_eq!(pool.get().await.unwrap().id, idc, "the most recently returned comes out first");
    let c = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let a = pool.get().await.unwrap();
    assert_eq!(a.id, ida, "the coldest comes out last");
    drop((a, b, c));
}

#[tokio::test(start_paused = true)]
async fn fifo_reuse_hands_out_the_longest_idle_connection_first() {
    let (_fake, pool) = fake_pool_with(|b| b.max_size(3).reuse(aquifer_core::Reuse::Fifo));
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let c = pool.get().await.unwrap();
    let ids = [a.id, b.id, c.id];
    drop(a);
    drop(b);
    drop(c);
    // Each checkout takes the connection idle longest, so the three rotate.
    for expected in ids.into_iter().cycle().take(7) {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.id, expected);
    }
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_size_connections_are_opened() {
    let (fake, pool) = fake_pool_with(|b| b.max_size(3));
    fake.set_connect_delay(Duration::from_millis(5));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let _c = pool.get().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(fake.stats().created, 3);
    assert_eq!(pool.state().size, 3);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let (_fake, pool, held) = pool_of_one_lent().await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(spawn_recorded_get(&pool, &order, i, None));
        // Let task i queue before task i + 1 starts.
        queued(&pool, i + 1).await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_later_get_does_not_barge_ahead_of_a_waiter() {
    let (_fake, pool, held) = pool_of_one_lent().await;
    let id = held.id;
    let waiter = spawn_get(&pool);
    queued(&pool, 1).await;
    // The connection is handed straight to the waiter on drop, so a get() right after finds nothing idle.
    drop(held);
    assert!(pool.try_get().await.unwrap().is_none(), "try_get must not take the waiter's connection");
    assert_eq!(waiter.await.unwrap().unwrap(), id);
}

#[tokio::test(start_paused = true)]
async fn returned_connection_is_handed_to_the_waiter_not_a_new_one() {
    let (fake, pool, held) = pool_of_one_lent().await;
    let waiter = spawn_get(&pool);
    queued(&pool, 1).await;
    let id = held.id;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), id);
    assert_eq!(fake.stats().created, 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_reports_how_long_it_waited_and_the_pool_state() {
    let (_fake, pool, _held) = pool_of_one_lent().await;
    let err = pool.get_timeout(Duration::from_millis(50)).await.unwrap_err();
    match &err {
        PoolError::Timeout { waited, state, last_error } => {
            assert!(*waited >= Duration::from_millis(50));
            assert_eq!((state.size, state.in_use, state.max_size), (1, 1, 1));
            assert!(last_error.is_none(), "connects did not fail: {last_error:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(pool.stats().timeouts, 1);
    assert_eq!(pool.state().waiting, 0, "the timed-out waiter left the queue");
}

#[tokio::test(start_paused = true)]
async fn try_get_returns_none_instead_of_waiting() {
    let (_fake, pool) = fake_pool(1);
    assert!(pool.try_get().await.unwrap().is_none(), "nothing idle yet, and try_get does not connect");
    drop(pool.get().await.unwrap());
    let c = pool.try_get().await.unwrap().expect("an idle connection");
    assert!(pool.try_get().await.unwrap().is_none());
    drop(c);
}

#[tokio::test(start_paused = true)]
async fn pool_handles_are_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    fn assert_send<T: Send + 'static>() {}
    assert_send_sync::<aquifer_core::Pool<FakeManager>>();
    assert_send::<aquifer_core::Pooled<FakeManager>>();
    let (_fake, pool) = fake_pool_with(|b| b);
    fn assert_send_future<F: std::future::Future + Send>(_: &F) {}
    let fut = pool.get();
    assert_send_future(&fut);
    drop(fut);
}

#[tokio::test(start_paused = true)]
async fn stats_count_acquisitions_and_waits() {
    let (_fake, pool) = fake_pool(2);
    for _ in 0..5 {
        drop(pool.get().await.unwrap());
    }
    let stats = pool.stats();
    assert_eq!(stats.acquired, 5);
    assert_eq!(stats.created, 1);
    assert_eq!(stats.waited, 1, "only the first get had to wait for a connect");
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let fake = FakeManager::new();
    let err = aquifer_core::Pool::builder(fake).build().unwrap_err();
    assert!(matches!(err, aquifer_core::BuildError::NoRuntime), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_fails_every_queued_waiter_in_time() {
    let (_fake, pool) = fake_pool_with(|b| b.max_size(1).acquire_timeout(Duration::from_millis(50)));
    let _held = pool.get().await.unwrap();
    let started = tokio::time::Instant::now();
    let waiters = spawn_gets(&pool, 5);
    for w in waiters {
        let res = tokio::time::timeout(Duration::from_secs(5), w).await.expect("the waiter timed out").unwrap();
        let Err(PoolError::Timeout { waited, .. }) = res else { panic!("expected a timeout, got {res:?}") };
        assert!(waited >= Duration::from_millis(50), "timed out early: {waited:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "timeouts were late: {:?}", started.elapsed());
    assert_eq!(pool.state().waiting, 0);
    assert_eq!(pool.stats().timeouts, 5);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_custom_timeout_behind_default_waiters_still_fires_first() {
    let (_fake, pool) = fake_pool_with(|b| b.max_size(1).acquire_timeout(Duration::from_secs(30)));
    let _held = pool.get().await.unwrap();
    let slow = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    eventually(Duration::from_secs(5), "the default waiter is queued", || pool.state().waiting == 1).await;
    let started = tokio::time::Instant::now();
    let err = pool.get_timeout(Duration::from_millis(30)).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(pool.state().waiting, 1, "the default waiter is still waiting");
    slow.abort();
}

#[tokio::test(start_paused = true)]
async fn waiters_still_time_out_after_the_queue_drained_and_refilled() {
    let (_fake, pool) = fake_pool_with(|b| b.max_size(1).acquire_timeout(Duration::from_millis(40)));
    for _ in 0..3 {
        let held = pool.get().await.unwrap();
        assert!(pool.get().await.unwrap_err().is_timeout());
        drop(held);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
