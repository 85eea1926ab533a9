//! Connect failures: retries, the last error in timeouts, failing fast while the server is down, recovery.

mod common;

use std::error::Error as _;
use std::time::{Duration, Instant};

use aquifer_core::{ConnectError, PoolError};
use aquifer_testing::FakeManager;
use common::{builder, eventually};

#[tokio::test]
async fn timeout_reports_last_connect_error() {
    let fake = FakeManager::new();
    fake.set_connect_error(Some("no pg_hba.conf entry for host \"10.0.0.7\""));
    let pool = builder(&fake).fail_fast_after(1_000).build().unwrap();
    let err = pool.get_timeout(Duration::from_millis(200)).await.unwrap_err();
    let PoolError::Timeout { last_error: Some(ConnectError::Backend(e)), .. } = &err else {
        panic!("expected a timeout with the last connect error, got {err:?}");
    };
    assert_eq!(e.0, "no pg_hba.conf entry for host \"10.0.0.7\"");
    assert!(err.to_string().contains("no pg_hba.conf entry"), "Display hides the cause: {err}");
    assert!(err.source().is_some_and(|s| s.to_string().contains("pg_hba")), "source() is the connect error");
    assert_eq!(err.backend_error().map(|e| e.0.as_str()), Some("no pg_hba.conf entry for host \"10.0.0.7\""));
}

#[tokio::test]
async fn a_permanent_connect_error_fails_fast_at_the_first_attempt() {
    let fake = FakeManager::new();
    fake.set_connect_error(Some("password authentication failed for user \"app\""));
    let pool = builder(&fake)
        .fail_fast_after(5)
        .connect_backoff(Duration::from_secs(1), Duration::from_secs(5))
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err:?}");
    assert_eq!(fake.stats().attempts, 1, "a refused password must not be retried before failing fast");
    assert!(err.to_string().contains("password authentication failed"), "{err}");
}

#[tokio::test]
async fn connect_is_retried_with_backoff_until_it_succeeds() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(1_000).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(Duration::from_secs(5), "a few connects failed", || fake.stats().attempts >= 3).await;
    fake.set_down(false);
    assert!(get.await.unwrap().is_ok());
    assert!(pool.stats().connect_errors >= 3);
}

#[tokio::test]
async fn hanging_connect_is_cut_by_connect_timeout_and_reported() {
    let fake = FakeManager::new();
    fake.set_hang(true);
    let pool = builder(&fake).connect_timeout(Duration::from_millis(30)).fail_fast_after(1_000).build().unwrap();
    let err = pool.get_timeout(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        matches!(&err, PoolError::Timeout { last_error: Some(ConnectError::TimedOut(d)), .. } if *d == Duration::from_millis(30)),
        "{err:?}"
    );
    assert!(err.to_string().contains("connect timed out after 30ms"), "{err}");
}

#[tokio::test]
async fn unreachable_server_fails_fast_instead_of_waiting_the_full_timeout() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).acquire_timeout(Duration::from_secs(30)).fail_fast_after(3).build().unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let PoolError::Unavailable { last_error, .. } = &err else { panic!("expected Unavailable, got {err:?}") };
    assert_eq!(last_error.backend().map(|e| e.0.as_str()), Some("connection refused"));
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn while_failing_fast_new_gets_fail_at_once_without_connecting() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake)
        .fail_fast_after(2)
        .connect_backoff(Duration::from_millis(5), Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    let attempts = fake.stats().attempts;
    for _ in 0..100 {
        assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    }
    // Only the background probe connects meanwhile (a few attempts at most), not each of the 100 callers.
    let probe_attempts = fake.stats().attempts - attempts;
    assert!(probe_attempts <= 5, "callers tried to connect while the circuit was open: {probe_attempts} attempts");
    assert_eq!(pool.stats().fail_fast, 100);
}

#[tokio::test]
async fn every_queued_waiter_fails_fast_when_the_circuit_opens() {
    let fake = FakeManager::new();
    fake.set_connect_delay(Duration::from_millis(20));
    fake.set_down(true);
    let pool = builder(&fake).max_size(2).fail_fast_after(3).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(|_| ()) })
        })
        .collect();
    for w in waiters {
        let res = tokio::time::timeout(Duration::from_secs(5), w).await.expect("waiter woken").unwrap();
        assert!(matches!(res, Err(PoolError::Unavailable { .. })), "{res:?}");
    }
    assert_eq!(pool.state().waiting, 0);
}

#[tokio::test]
async fn gets_succeed_again_once_the_server_is_back() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).fail_fast_after(2).build().unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Unavailable { .. })));
    fake.set_down(false);
    // The background probe reconnects on its own; no caller has to trigger it.
    eventually(Duration::from_secs(5), "the probe reconnected", || pool.state().idle == 1).await;
    let conn = pool.get().await.expect("the pool recovered");
    drop(conn);
    assert_eq!(pool.health().await.status, aquifer_core::HealthStatus::Healthy);
}

#[tokio::test]
async fn idle_connections_are_still_served_while_failing_fast() {
    let fake = FakeManager::new();
    let pool =
        builder(&fake).max_size(2).fail_fast_after(2).validation_bypass(Duration::from_secs(60)).build().unwrap();
    let a = pool.get().await.unwrap();
    fake.set_down(true);
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err:?}");
    let id = a.id;
    drop(a);
    assert_eq!(pool.get().await.unwrap().id, id, "an idle connection is still handed out");
}

#[tokio::test]
async fn a_returned_connection_still_goes_to_a_waiter_while_connects_fail() {
    let fake = FakeManager::new();
    let pool = builder(&fake).max_size(2).fail_fast_after(1_000).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.set_down(true);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    eventually(Duration::from_secs(5), "the waiter's connect failed", || fake.stats().attempts >= 3).await;
    let id = held.id;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), id);
}

#[tokio::test]
async fn a_successful_connect_clears_the_last_error() {
    let fake = FakeManager::new();
    fake.set_down(true);
    let pool = builder(&fake).max_size(1).fail_fast_after(1_000).build().unwrap();
    let get = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await }
    });
    eventually(Duration::from_secs(5), "a connect failed", || fake.stats().attempts >= 2).await;
    fake.set_down(false);
    let _held = get.await.unwrap().unwrap();
    let err = pool.get_timeout(Duration::from_millis(30)).await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout { last_error: None, .. }), "stale connect error reported: {err:?}");
}
