//! Under load: many tasks on a small pool, waiters served in the order they came, and a server stopped,
//! crashed and started again while 32 tasks run statements.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use aquifer_core::{Adapter, AnyPool, HealthCheck, HealthStatus};
use parking_lot::Mutex;
use tokio::time::timeout;

use super::lifecycle::{checkout, started};
use super::{Checked, Hooks, PoolOf, Private, STEP, Test, Write, not_checked};
use crate::restart_under_load;

/// The pool size of the load scenarios.
const SIZE: usize = 8;

/// 200 tasks of a statement that takes 2 ms, a read and (every fourth task) a write, on a pool of 8: every
/// task succeeds with its own answer, tasks queue for connections, and neither the pool nor the server ever
/// sees more than 8 connections.
pub async fn many_tasks_share_a_small_pool<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), SIZE, |_| {}).await;
    H::setup(&pool).await;
    let sessions = H::count_sessions(&pool).await;
    if let Err(why) = &sessions {
        not_checked(&t, "the server's sessions (the pool's size is watched instead)", why);
    }
    let (done, most) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
    let watcher = {
        let (pool, done, most, server) = (pool.clone(), done.clone(), most.clone(), sessions.is_ok());
        tokio::spawn(async move {
            let mut samples = 0;
            // Bounded: at most 60 s of samples even if the tasks hang.
            let end = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < end {
                let n = if server { H::count_sessions(&pool).await.unwrap_or(0) } else { pool.state().size as i64 };
                most.fetch_max(n, Ordering::Relaxed);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };
    let marker = Arc::new(format!("{}_{}", t.pool(), std::process::id()));
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let (pool, marker) = (pool.clone(), marker.clone());
        tasks.push(tokio::spawn(async move {
            // Long enough that the tasks really queue for the eight connections.
            H::sleep(&pool, 2).await?;
            let got = H::fetch(&pool, i).await?;
            if i % 4 == 0 {
                H::write(&pool, &marker, Write::Autocommit).await?;
            }
            Ok::<_, crate::CallError>(got)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let got = timeout(STEP, task).await.expect("the task in time").expect("no task panicked");
        assert_eq!(got.unwrap_or_else(|e| panic!("task {i} failed: {e:?}")), i as i64 + 1);
    }
    done.store(true, Ordering::Relaxed);
    let samples = watcher.await.expect("the watcher ran");
    let (most, stats, state) = (most.load(Ordering::Relaxed), pool.stats(), pool.state());
    assert!(samples > 0 && most >= 1, "the watcher saw the pool's connections ({samples} samples)");
    assert!(most <= SIZE as i64, "{most} connections at once for a pool of {SIZE}");
    assert!(stats.created <= SIZE as u64, "{stats:?}");
    assert!(stats.waited > 0, "tasks queued for connections: {stats:?}");
    assert_eq!(stats.timeouts, 0, "{stats:?}");
    assert!(state.size <= SIZE, "{state}");
    assert_eq!(H::count(&pool, &marker).await, 50, "every write landed once");
    pool.close().await;
    Ok(())
}

/// On a pool of one, callers that wait are served in the order they started waiting (FIFO).
pub async fn waiters_are_served_in_order<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 1, |_| {}).await;
    let held = checkout::<H>(&pool).await;
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for n in 0..5 {
        let (waiter, served) = (pool.clone(), served.clone());
        waiters.push(tokio::spawn(async move {
            let mut conn = checkout::<H>(&waiter).await;
            served.lock().push(n);
            assert_eq!(H::answer(&mut conn, n).await.expect("an answer"), n + 1);
        }));
        // The next waiter starts only once this one waits.
        let deadline = Instant::now() + STEP;
        while pool.state().waiting < n as usize + 1 {
            assert!(Instant::now() < deadline, "waiter {n} never waited: {}", pool.state());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    drop(held);
    for waiter in waiters {
        timeout(STEP, waiter).await.expect("the waiter in time").expect("no waiter panicked");
    }
    assert_eq!(*served.lock(), vec![0, 1, 2, 3, 4], "waiters served first come, first served");
    pool.close().await;
    Ok(())
}

/// How long a call may wait for a connection in the restart drill.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server of the test's own stopped cleanly, then crashed, each time started again, while
/// [`RESTART_TASKS`](crate::RESTART_TASKS) tasks run statements through a pool of 8 ([`restart_under_load`]): while the server is
/// down calls fail with typed errors within bounds, and the pool soon fails fast (a ping fails at once, not
/// by timing out) and reports itself unhealthy; after each restart it recovers on its own, no call fails, and
/// it leaks no slot; where the server can count them, its sessions match the pool's idle connections, and
/// none is left after `close()`.
pub async fn the_pool_recovers_from_server_restarts_under_load<H: Hooks>(t: Test) -> Checked {
    let name = t.pool();
    let Private { mut server, mut config, sessions } = tokio::task::block_in_place(H::private_server)?;
    let c = config.pool_config_mut();
    c.name = Some(name.clone());
    c.max_size = SIZE;
    c.acquire_timeout = ACQUIRE_TIMEOUT;
    c.connect_timeout = Duration::from_secs(2);
    let pool = connected::<H>(&config).await;
    let mut held = Vec::new();
    for _ in 0..SIZE {
        held.push(checkout::<H>(&pool).await);
    }
    drop(held);

    let (calls, checks) = (pool.clone(), pool.clone());
    let report = restart_under_load(
        &mut server,
        ACQUIRE_TIMEOUT,
        move |w| {
            let pool = calls.clone();
            async move { H::fetch(&pool, i64::from(w)).await.map(|got| (got - 1) as i32) }
        },
        move || {
            let pool = checks.clone();
            async move { fails_fast(&pool).await }
        },
    )
    .await;

    // No leaked slot, and the pool's count agrees with the server's.
    let state = pool.state();
    assert_eq!((state.in_use, state.waiting, state.connecting), (0, 0, 0), "{state}");
    assert!(state.size <= SIZE, "{state}");
    if let Some(sessions) = &sessions {
        let idle = state.idle as i64;
        assert_eq!(
            settled(sessions, &name, idle).await,
            idle,
            "server sessions vs the pool's idle connections ({state})"
        );
    }
    let stats = pool.stats();
    assert!(stats.closed_broken + stats.closed_validation_failed > 0, "the dead connections were discarded: {stats:?}");
    assert_eq!(timeout(STEP, pool.health()).await.expect("health in time").status, HealthStatus::Healthy);
    eprintln!("{}: calls by outcome {:?}; {stats:?}", H::Adapter::SYSTEM, report.kinds);

    pool.close().await;
    if let Some(sessions) = &sessions {
        assert_eq!(settled(sessions, &name, 0).await, 0, "close() ends every session");
    }
    tokio::task::block_in_place(|| server.stop()).unwrap_or_else(|e| panic!("{e}"));
    Ok(())
}

/// The pool of `config`, started once the private server accepts it (a server may open its port a moment
/// before it serves).
async fn connected<H: Hooks>(config: &H::Adapter) -> PoolOf<H> {
    let deadline = Instant::now() + crate::START_TIMEOUT;
    loop {
        match config.connect().await {
            Ok(pool) => return pool,
            Err(e) if Instant::now() < deadline => eprintln!("the private server does not serve yet: {e}"),
            Err(e) => panic!("the private server does not serve: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// While the server is down the pool comes to fail fast: a ping fails with the pool's own refusal (the
/// circuit is open), not by waiting out the acquire timeout, and its health report says unhealthy. The
/// deadline only keeps a pool that never opens its circuit from hanging the test.
async fn fails_fast<P: AnyPool>(pool: &P) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match pool.ping().await {
            Err(e) if !e.timed_out => break,
            Ok(_) => panic!("a ping succeeded while the server was down"),
            Err(e) => assert!(Instant::now() < deadline, "the pool never started failing fast: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = timeout(STEP, pool.health()).await.expect("health in time");
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
}

/// Waits (at most 5 s: a server ends a session a moment after its client closed the socket) until the
/// server counts `expected` sessions of the pool `name`; returns the last count.
async fn settled(sessions: &super::Sessions, name: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = sessions(name).await;
        if n == expected || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
