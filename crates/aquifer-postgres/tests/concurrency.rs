//! Many tasks, few connections: every task succeeds and the server never sees more backends than max_size.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use aquifer_postgres::sqlx;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_on_a_pool_of_eight_all_succeed_within_eight_backends() {
    let mut admin = admin().await;
    let mut config = config("two_hundred");
    config.pool.max_size = 8;
    let app = config.pool.name.clone().unwrap();
    let pool = config.connect().await.expect("pool");

    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (done, most, app) = (done.clone(), most.clone(), app.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let n = backends(&mut admin, &app).await;
                most.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            // A few milliseconds of server time so that tasks really queue for the 8 connections.
            let v: i64 =
                sqlx::query_scalar("SELECT $1::int8 FROM pg_sleep(0.002)").bind(i).fetch_one(&mut *conn).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(v)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().expect("every task succeeds"), i as i64);
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let most = most.load(Ordering::Relaxed);
    assert!(most >= 1, "the watcher saw the pool's backends");
    assert!(most <= 8, "pg_stat_activity showed {most} backends for a pool of 8");
    assert!(pool.stats().created <= 8, "{:?}", pool.stats());
    pool.close().await;
}

#[tokio::test]
async fn min_idle_connections_exist_right_after_start() {
    let mut admin = admin().await;
    let mut config = config("min_idle");
    config.pool.max_size = 5;
    config.pool.min_idle = 3;
    let app = config.pool.name.clone().unwrap();
    let pool = config.connect().await.expect("pool");

    assert_eq!(pool.state().idle, 3, "{:?}", pool.state());
    let n = backends(&mut admin, &app).await;
    assert_eq!(n, 3, "exactly min_idle backends: {:?} {:?}", pool.state(), pool.stats());
    pool.close().await;
}
