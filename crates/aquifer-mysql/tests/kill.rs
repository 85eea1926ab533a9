//! `KILL` of every connection of a pool under load: each dead connection fails at most one user, the pool
//! replaces them, and the helpers hide the failures by retrying reads.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, PoolConfig};
use tokio::time::Instant;

const LOAD: Duration = Duration::from_millis(2500);
const KILLS_AT: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1300)];

async fn pool_for(user: &str, url: &str) -> MySqlPool {
    let config = PoolConfig { max_size: 8, name: Some(user.to_owned()), ..PoolConfig::default() };
    MySqlConfig { pool: config, ..MySqlConfig::from_url(url) }.connect().await.unwrap()
}

/// Kills every connection of `user` at each of `KILLS_AT`; returns how many were killed.
fn killer(user: String) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut admin = common::admin().await;
        let start = Instant::now();
        let mut killed = 0;
        for at in KILLS_AT {
            tokio::time::sleep_until(start + at).await;
            killed += common::kill_all_of(&mut admin, &user).await;
        }
        killed
    })
}

/// 32 tasks calling `op` with the pool and a token unique to the call, back to back until `LOAD` has passed
/// since `start`.
async fn under_load<F, Fut>(pool: &MySqlPool, start: Instant, op: F)
where
    F: Fn(MySqlPool, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let (pool, op) = (pool.clone(), op.clone());
            tokio::spawn(async move {
                for i in 1u64.. {
                    if start.elapsed() >= LOAD {
                        break;
                    }
                    op(pool.clone(), t * 1_000_000 + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[derive(Default)]
struct Seen {
    /// Connections that failed a user, by server thread id.
    failed: HashSet<u32>,
    /// Checkouts of a connection that had already failed someone (must stay 0).
    dead_reused: u64,
    failures: u64,
    successes_after_kills: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_connection_under_load_never_hands_a_dead_connection_out_twice() {
    let mut user = common::Dedicated::new("aq_my_kill").await;
    let pool = pool_for(&user.name, &user.url).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let killer = killer(user.name.clone());
    let start = Instant::now();
    let load_seen = Arc::clone(&seen);
    under_load(&pool, start, move |pool, token| {
        let seen = Arc::clone(&load_seen);
        async move {
            let mut conn = pool.get().await.expect("the pool replaces killed connections");
            let id = conn.id();
            if seen.lock().unwrap().failed.contains(&id) {
                seen.lock().unwrap().dead_reused += 1;
            }
            match conn.exec_first::<u64, _, _>("SELECT ? + 0", (token,)).await {
                Ok(got) => {
                    assert_eq!(got, Some(token));
                    if start.elapsed() > KILLS_AT[1] + Duration::from_millis(200) {
                        seen.lock().unwrap().successes_after_kills += 1;
                    }
                }
                Err(_) => {
                    let mut s = seen.lock().unwrap();
                    s.failures += 1;
                    assert!(s.failed.insert(id), "connection {id} failed a second user");
                }
            }
        }
    })
    .await;
    let killed = killer.await.unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(killed >= 8, "killed {killed} connections");
    assert_eq!(seen.dead_reused, 0, "a connection that failed a user was handed out again");
    assert!(seen.failures <= killed as u64, "{} failures for {killed} killed connections", seen.failures);
    assert!(seen.successes_after_kills > 100, "the pool recovered ({} successes)", seen.successes_after_kills);
    assert!(pool.state().size <= 8);
    assert!(common::connections_of(&mut user.admin, &user.name).await.len() <= 8);
    pool.close().await;
    user.drop_user().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_helpers_survive_killing_every_connection() {
    let user = common::Dedicated::new("aq_my_kill").await;
    let pool = pool_for(&user.name, &user.url).await;
    let killer = killer(user.name.clone());
    let start = Instant::now();
    let reads = Arc::new(AtomicU64::new(0));
    let load_reads = Arc::clone(&reads);
    under_load(&pool, start, move |pool, token| {
        let reads = Arc::clone(&load_reads);
        async move {
            let got: Option<u64> = pool
                .fetch_optional("SELECT ? + 0", (token,))
                .await
                .expect("a read on a killed connection is retried on a new one");
            assert_eq!(got, Some(token));
            reads.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    let killed = killer.await.unwrap();
    assert!(killed >= 8, "killed {killed} connections");
    assert!(pool.stats().closed_broken + pool.stats().closed_validation_failed >= 1);
    assert!(reads.load(Ordering::Relaxed) > 100);
    pool.close().await;
    user.drop_user().await;
}
