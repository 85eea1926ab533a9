//! Many tasks, few connections: the server never sees more connections than `max_size`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_mysql::{MySqlConfig, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tasks_on_a_pool_of_eight_never_open_more_than_eight_connections() {
    let mut admin = common::admin().await;
    let user = common::unique("aq_my_conc");
    let url = common::dedicated_user(&mut admin, &user).await;
    let config = PoolConfig { max_size: 8, name: Some(user.clone()), ..PoolConfig::default() };
    let pool = MySqlConfig { pool: config, ..MySqlConfig::from_url(&url) }.connect_lazy().unwrap();

    // The server's own count of this user's connections, sampled while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let most_seen = Arc::new(AtomicUsize::new(0));
    let monitor = {
        let (done, most_seen, user) = (Arc::clone(&done), Arc::clone(&most_seen), user.clone());
        tokio::spawn(async move {
            let mut admin = common::admin().await;
            let mut samples = 0;
            while !done.load(Ordering::SeqCst) {
                let n = common::connections_of(&mut admin, &user).await.len();
                most_seen.fetch_max(n, Ordering::SeqCst);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };

    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5u64 {
                // Long enough that the tasks really queue for the eight connections.
                let got: Option<u64> =
                    pool.fetch_optional("SELECT ? + 0 FROM (SELECT SLEEP(0.002)) s", (i * 10 + j,)).await.unwrap();
                assert_eq!(got, Some(i * 10 + j));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let samples = monitor.await.unwrap();

    let most = most_seen.load(Ordering::SeqCst);
    assert!(samples > 10, "the monitor sampled the server {samples} times");
    assert!(most <= 8, "the server saw {most} connections of this pool at once");
    assert!(most >= 2, "the load did run concurrently ({most} connections)");
    assert!(pool.stats().waited > 0, "tasks queued for connections");
    assert_eq!(pool.stats().acquired, 1_000);
    assert!(pool.state().size <= 8);
    pool.close().await;
    common::drop_user(&mut admin, &user).await;
}
