//! `retire_on_rotation`: connections opened with a password that has rotated out since are closed when they
//! come back or while idle, each at its own turn within `retire_on_rotation_window`, never all at once; the
//! replacements use the new password. The fake server rotates its password with
//! `FakeManager::rotate_credentials` (the manager's credential generation moves on, as a rewritten password
//! file's does). Time is Tokio's paused clock.

mod common;

use std::time::Duration;

use aquifer_core::PoolBuilder;
use aquifer_testing::FakeManager;
use common::{assert_quiescent, fake_pool_with, hold, metered_pool, min_idle_filled};

const WINDOW: Duration = Duration::from_secs(8);

/// A pool retiring old-secret connections over [`WINDOW`] (housekeeping then runs every second).
fn rotating(builder: PoolBuilder<FakeManager>) -> PoolBuilder<FakeManager> {
    builder.retire_on_rotation(true, WINDOW)
}

/// Past the window and the housekeeping round that sees the rotation (one tick) and the one after it.
async fn past_the_window() {
    tokio::time::sleep(WINDOW + Duration::from_secs(3)).await;
}

#[tokio::test(start_paused = true)]
async fn connections_of_an_old_secret_are_retired_on_return() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(2));
    let lent = hold(&pool, 2).await;
    fake.rotate_credentials();
    past_the_window().await;
    assert_eq!(fake.live(), 2, "connections in use are not interrupted");
    drop(lent);
    assert_eq!((pool.state().size, pool.stats().closed_rotated), (0, 2), "{}", pool.state());
    assert_eq!(fake.sessions_of_old_credentials(), 0);
    drop(pool.get().await.expect("a new connection, with the new secret"));
    assert_eq!(fake.sessions_of_old_credentials(), 0);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_of_an_old_secret_are_retired_while_idle() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(3));
    drop(hold(&pool, 3).await);
    fake.rotate_credentials();
    past_the_window().await;
    assert_eq!((pool.state().size, pool.stats().closed_rotated, fake.live()), (0, 3, 0), "{}", pool.state());
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_connection_returned_before_its_turn_goes_back_to_the_pool() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(1));
    let lent = pool.get().await.unwrap();
    let id = lent.id;
    fake.rotate_credentials();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the rotation is seen; no turn has come yet
    drop(lent);
    assert_eq!(pool.stats().closed_rotated, 0);
    assert_eq!(pool.get().await.unwrap().id, id, "returned before its turn, it is lent again");
}

#[tokio::test(start_paused = true)]
async fn retirements_are_spread_over_the_window() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(8));
    drop(hold(&pool, 8).await);
    fake.rotate_credentials();
    // Housekeeping runs every second (WINDOW / 8): count what each round closes.
    let mut per_second = Vec::new();
    let mut before = 0;
    for _ in 0..WINDOW.as_secs() + 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let closed = pool.stats().closed_rotated;
        per_second.push(closed - before);
        before = closed;
    }
    eprintln!("closed per second after the rotation: {per_second:?}");
    assert_eq!(before, 8, "all retired within the window: {per_second:?}");
    assert!(per_second.iter().all(|&n| n <= 2), "never more than two at once: {per_second:?}");
    assert!(per_second.iter().filter(|&&n| n > 0).count() >= 5, "spread over the window: {per_second:?}");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_second_rotation_does_not_postpone_the_first_ones_retirements() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(4));
    let lent = hold(&pool, 4).await;
    fake.rotate_credentials();
    tokio::time::sleep(WINDOW / 2).await;
    fake.rotate_credentials();
    tokio::time::sleep(WINDOW / 2 + Duration::from_secs(2)).await;
    drop(lent);
    assert_eq!(pool.stats().closed_rotated, 4, "every connection of the first secret was due: {}", pool.state());
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn no_retirement_without_rotation() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(3).idle_timeout(None));
    let lent = hold(&pool, 3).await;
    let ids: Vec<u64> = lent.iter().map(|c| c.id).collect();
    drop(lent);
    tokio::time::sleep(WINDOW * 3).await;
    assert_eq!((pool.stats().closed, pool.state().idle), (0, 3));
    let again = hold(&pool, 3).await;
    assert!(again.iter().all(|c| ids.contains(&c.id)), "the same connections serve");
    drop(again);
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn no_retirement_when_retire_on_rotation_is_off() {
    let (fake, pool) = fake_pool_with(|b| b.max_size(2).idle_timeout(None));
    assert!(!pool.config().retire_on_rotation, "off by default");
    let lent = hold(&pool, 2).await;
    fake.rotate_credentials();
    tokio::time::sleep(pool.config().retire_on_rotation_window * 2).await;
    drop(lent);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!((pool.stats().closed, pool.state().idle, fake.sessions_of_old_credentials()), (0, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_with_connections_of_the_new_secret_which_stay() {
    let (fake, pool) = fake_pool_with(|b| rotating(b).max_size(4).min_idle(2));
    min_idle_filled(&pool, 2).await;
    fake.rotate_credentials();
    past_the_window().await;
    assert_eq!((pool.stats().closed_rotated, pool.state().idle), (2, 2), "{}", pool.state());
    assert_eq!(fake.sessions_of_old_credentials(), 0);
    past_the_window().await;
    assert_eq!(pool.stats().closed_rotated, 2, "the new secret's connections are kept");
    assert_quiescent(&pool, &fake);
}

#[tokio::test(start_paused = true)]
async fn a_rotation_retirement_counts_as_retired_for_credential_rotation() {
    let (fake, capture, pool) = metered_pool(|b| rotating(b).max_size(2));
    drop(hold(&pool, 2).await);
    fake.rotate_credentials();
    past_the_window().await;
    let c = capture.collect();
    let closed = c.get("aquifer.pool.connections.closed").expect("closed exported");
    assert_eq!(closed.point_with("reason", "retired").map(|p| p.value), Some(2.0));
    let retired = c.get("aquifer.pool.connections.retired").expect("retired exported");
    assert_eq!(retired.point_with("reason", "credential_rotation").map(|p| p.value), Some(2.0));
    // Absent, or 0 where the counters are bound at build (the `otel-bound-instruments` feature).
    assert_eq!(retired.point_with("reason", "operator").map_or(0.0, |p| p.value), 0.0);
}
