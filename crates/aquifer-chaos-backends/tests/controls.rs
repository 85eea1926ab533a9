//! Operator controls on the real servers (PostgreSQL, MariaDB, Bolt against ArcadeDB), each pool behind a
//! [`ChaosProxy`](aquifer_testing::ChaosProxy): pause/resume and retire with real sessions, and keepalive
//! against a network that silently forgets idle connections (a NAT gateway, a firewall, a cloud load
//! balancer). One generic test per behaviour, instantiated per backend; docs/operations.md, "Operator
//! controls", describes what each shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aquifer_chaos_backends::{MySql, Neo4j, Postgres};
use aquifer_core::PoolError;
use aquifer_testing::ChaosProxy;
use aquifer_testing::chaos::{
    ChaosBackend, PoolOf, assert_invariants, assert_server_clean, fill, marker, pool_with, require,
};
use tokio::time::sleep;

/// Connections of every pool here.
const POOL: usize = 4;

/// The network forgets a flow idle this long.
const NAT_IDLE_CUT: Duration = Duration::from_millis(1500);

async fn setup<B: ChaosBackend>(test: &str, extra: Vec<(&'static str, String)>) -> (ChaosProxy, String, PoolOf<B>) {
    require::<B>().await;
    let marker = marker(test);
    B::prepare(&marker).await;
    let proxy = ChaosProxy::start(B::upstream()).await.expect("the proxy starts");
    let pool = pool_with::<B>(proxy.port(), &marker, POOL, extra);
    (proxy, marker, pool)
}

/// `n` requests at once (a checkout and a short statement each); returns how many failed, printing each.
async fn burst<B: ChaosBackend>(pool: &PoolOf<B>, n: usize) -> u64 {
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (pool, failed) = (pool.clone(), failed.clone());
            tokio::spawn(async move {
                let outcome = match pool.get().await {
                    Ok(mut conn) => B::short(&mut conn).await.map_err(|f| format!("{f:?}")),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = outcome {
                    eprintln!("{}: request failed: {e}", B::NAME);
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    failed.load(Ordering::Relaxed)
}

/// Pause holds new work while work in flight finishes; a caller waits up to its own timeout and is served
/// on resume; one whose timeout passes is told the pool is paused; retire closes the idle sessions at the
/// server at once and the lent one when it comes back.
async fn pause_resume_retire<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, Vec::new()).await;
    fill(&pool, 2).await;
    let mut in_use = pool.get().await.unwrap();
    let attempts = proxy.accepted();

    pool.pause();
    assert!(pool.try_get().await.unwrap().is_none(), "{}: a paused pool lent a connection", B::NAME);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let started = Instant::now();
            let mut conn = pool.get_timeout(Duration::from_secs(10)).await?;
            B::short(&mut conn).await.expect("the waiter's statement runs");
            Ok::<_, PoolError<_>>(started.elapsed())
        }
    });
    sleep(Duration::from_millis(300)).await;
    B::short(&mut in_use).await.expect("a connection in use keeps working while paused");
    let timed_out = pool.get_timeout(Duration::from_millis(200)).await.unwrap_err();
    assert!(timed_out.to_string().contains("paused"), "{}: {timed_out}", B::NAME);
    assert_eq!(proxy.accepted(), attempts, "{}: a paused pool opened a connection", B::NAME);
    assert!(!waiter.is_finished(), "{}: a waiter was served while paused", B::NAME);

    pool.resume();
    let waited = waiter.await.unwrap().expect("the waiter is served after resume");
    assert!(waited >= Duration::from_millis(500), "{}: served after {waited:?}, before resume", B::NAME);
    eprintln!("{}: the waiter was served {waited:?} after it asked (resumed after ~500 ms)", B::NAME);

    // Retire: the idle session closes at the server now, the lent one when it comes back.
    let before = B::server_connections(&marker, &proxy).await;
    assert_eq!(before, 2, "{}: the server holds the pool's two sessions", B::NAME);
    assert_eq!(pool.retire(), 1, "{}: one idle connection", B::NAME);
    B::short(&mut in_use).await.expect("a lent connection keeps working after retire");
    drop(in_use);
    let deadline = Instant::now() + Duration::from_secs(10);
    while B::server_connections(&marker, &proxy).await > 0 {
        assert!(Instant::now() < deadline, "{}: retired sessions still open at the server", B::NAME);
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.stats().closed_retired, 2, "{:?}", pool.stats());
    assert_eq!(burst::<B>(&pool, 2).await, 0, "{}: requests after retire", B::NAME);
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// The network forgets connections idle for 1.5 s. With `keepalive_interval` 500 ms the pool pings each idle
/// connection before that, so no flow is ever forgotten, and bursts of requests 2.5 s apart (every
/// connection idle in between) see 0 errors and no connection is found dead.
async fn keepalive_keeps_idle_connections_through_a_nat<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, vec![("POOL_KEEPALIVE_INTERVAL", "500ms".into())]).await;
    proxy.drop_idle_after(Some(NAT_IDLE_CUT));
    fill(&pool, POOL).await;
    let mut failed = 0;
    for _ in 0..3 {
        sleep(Duration::from_millis(2500)).await;
        failed += burst::<B>(&pool, POOL).await;
    }
    let stats = pool.stats();
    eprintln!(
        "{}: keepalive: {failed} failed of {} requests, {} pings, {} flows forgotten, {} connections opened",
        B::NAME,
        3 * POOL,
        stats.keepalives,
        proxy.idle_drops(),
        stats.created
    );
    assert_eq!(failed, 0, "{}: callers saw errors", B::NAME);
    assert_eq!(proxy.idle_drops(), 0, "{}: the network forgot a pinged connection", B::NAME);
    assert!(stats.keepalives >= 3 * POOL as u64, "{}: {stats:?}", B::NAME);
    assert_eq!(
        (stats.closed_validation_failed, stats.closed_keepalive_failed),
        (0, 0),
        "{}: no connection had to be replaced: {stats:?}",
        B::NAME
    );
    proxy.drop_idle_after(None);
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// The control for the test above, without keepalive: the network forgets the idle connections, and a
/// burst after the idle gap gets connections whose validation never answers, so callers fail (their
/// 2 s acquire timeout passes inside the 5 s validation timeout). This is what keepalive prevents.
async fn without_keepalive_forgotten_idle_connections_fail_callers<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, Vec::new()).await;
    proxy.drop_idle_after(Some(NAT_IDLE_CUT));
    fill(&pool, POOL).await;
    sleep(Duration::from_millis(2500)).await;
    let failed = burst::<B>(&pool, POOL).await;
    eprintln!("{}: no keepalive: {failed} failed of {POOL} requests, {} flows forgotten", B::NAME, proxy.idle_drops());
    assert_eq!(proxy.idle_drops(), POOL as u64, "{}: the network forgot every idle connection", B::NAME);
    assert!(failed > 0, "{}: without keepalive a forgotten connection reached a caller", B::NAME);
    proxy.drop_idle_after(None);
    drop(pool);
    let _ = marker;
}

/// A network that forgets idle connections faster than the keepalive period: the pings find them dead
/// (`validation_timeout` 500 ms), the pool closes them, and the callers that come next see 0 errors (they
/// get new connections instead of forgotten ones).
async fn keepalive_finds_connections_the_network_forgot<B: ChaosBackend>(test: &str) {
    let extra = vec![("POOL_KEEPALIVE_INTERVAL", "1s".into()), ("POOL_VALIDATION_TIMEOUT", "500ms".into())];
    let (proxy, marker, pool) = setup::<B>(test, extra).await;
    proxy.drop_idle_after(Some(Duration::from_millis(300)));
    fill(&pool, POOL).await;
    let started = Instant::now();
    while pool.stats().closed_keepalive_failed < POOL as u64 {
        assert!(started.elapsed() < Duration::from_secs(10), "{}: {:?}", B::NAME, pool.stats());
        sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{}: keepalive closed {POOL} forgotten connections {:?} after they went idle",
        B::NAME,
        started.elapsed()
    );
    proxy.drop_idle_after(None);
    let failed = burst::<B>(&pool, POOL).await;
    assert_eq!(failed, 0, "{}: callers saw errors", B::NAME);
    assert_eq!(pool.stats().closed_validation_failed, 0, "{}: a caller was handed a dead connection", B::NAME);
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

macro_rules! controls_tests {
    ($module:ident, $backend:ty, $prefix:ident) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pause_holds_new_work_and_retire_closes_sessions() {
                pause_resume_retire::<$backend>(concat!(stringify!($prefix), "_pause")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keepalive_keeps_idle_connections_through_a_nat_with_0_errors() {
                keepalive_keeps_idle_connections_through_a_nat::<$backend>(concat!(stringify!($prefix), "_ka")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_keepalive_a_nat_idle_cut_fails_callers() {
                without_keepalive_forgotten_idle_connections_fail_callers::<$backend>(concat!(
                    stringify!($prefix),
                    "_noka"
                ))
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn keepalive_finds_forgotten_connections_before_callers_do() {
                keepalive_finds_connections_the_network_forgot::<$backend>(concat!(stringify!($prefix), "_kaf")).await;
            }
        }
    };
}

controls_tests!(postgres, Postgres, pg);
controls_tests!(mariadb, MySql, my);
controls_tests!(bolt, Neo4j, bolt);
