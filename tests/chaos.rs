//! Chaos tests: each backend's pool (PostgreSQL, MariaDB, Bolt against ArcadeDB) talks to its real server
//! through a fault-injecting proxy ([`aquifer_testing::ChaosProxy`]) while tasks send short requests. Each test
//! counts requests ok and failed by typed error, checks that a connection seen dead is never handed out again,
//! that the pool's state and stats agree once everything is back, and that the server holds none of the pool's
//! connections once it is closed. Every test runs a few seconds; docs/reliability.md lists what each proves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aquifer_chaos_backends::{MySql, Neo4j, Postgres};
use aquifer_testing::chaos::{
    ChaosBackend, Fail, LONG_ROWS, PoolOf, Tally, assert_invariants, assert_server_clean, fill, load, setup,
};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// Pool size and load of every chaos test: 8 connections, 32 tasks (four callers per connection).
const POOL: usize = 8;
const TASKS: usize = 32;
/// Bound on any single step that should finish at once when the pool works.
const STEP: Duration = Duration::from_secs(20);

/// Fills the pool, then runs [`TASKS`] tasks of short requests through it for `length` from now; their
/// outcomes go to the returned tally.
async fn start_load<B: ChaosBackend>(pool: &PoolOf<B>, length: Duration) -> (Arc<Tally>, JoinHandle<()>) {
    fill(pool, POOL).await;
    let tally = Arc::new(Tally::default());
    let end = Instant::now() + length;
    let run = tokio::spawn({
        let (pool, tally) = (pool.clone(), tally.clone());
        async move { load::<B>(&pool, &tally, TASKS, end).await }
    });
    (tally, run)
}

/// Waits (at most [`STEP`]) for the load of [`start_load`] to end, and prints its tally.
async fn end_load<B: ChaosBackend>(run: JoinHandle<()>, tally: &Tally, note: &str) {
    timeout(STEP, run).await.expect("the load ends in time").unwrap();
    eprintln!("{}: {tally} {note}", B::NAME);
}

/// Asserts that every failure of `tally` is one of `allowed` (typed errors the fault explains).
fn assert_failures_only(tally: &Tally, allowed: &[&str], what: &str) {
    let t = tally.snapshot();
    for (label, n) in &t.failed {
        assert!(
            allowed.contains(&label.as_str()),
            "{what}: {n} request(s) failed with {label}, not one of {allowed:?}; {tally}"
        );
    }
}

/// The server resets every connection twice while 32 tasks run: requests in flight fail as lost connections
/// or (while connects are retried) acquire errors, nothing else; a dead connection is never handed out again;
/// the pool recovers (more requests succeed after the last reset) and ends consistent and clean.
async fn resets_under_load<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    let (tally, run) = start_load::<B>(&pool, Duration::from_millis(3000)).await;
    sleep(Duration::from_millis(700)).await;
    proxy.reset_all();
    sleep(Duration::from_millis(800)).await;
    proxy.reset_all();
    sleep(Duration::from_millis(200)).await;
    let ok_after_resets = tally.ok();
    end_load::<B>(run, &tally, "").await;
    assert!(tally.ok() > ok_after_resets, "requests succeed after the resets: {tally}");
    assert_failures_only(
        &tally,
        &["connection_lost", "acquire:timeout_connecting", "acquire:unavailable"],
        "resets under load",
    );
    assert_eq!(tally.dead_reissued(), 0, "a dead connection was handed out twice in a row: {tally}");
    B::helper_short(&pool).await.expect("the helper works after the resets");
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// The server resets every connection while all eight sit idle; traffic starts 50 ms later. Requests through
/// the adapter's helpers all succeed: a dead idle connection is either noticed at checkout or its first
/// statement, which never reached the server, is retried on a fresh connection. Requests on raw checkouts
/// never get a connection already seen dead.
async fn resets_while_idle<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    fill(&pool, POOL).await;
    assert_eq!(pool.state().idle, POOL);
    proxy.reset_all();
    sleep(Duration::from_millis(50)).await;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, tally) = (pool.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let started = Instant::now();
                let r = B::helper_short(&pool).await;
                tally.record(started, r);
            }
        }));
    }
    for t in tasks {
        timeout(STEP, t).await.expect("the helpers finish in time").unwrap();
    }
    eprintln!("{} helpers: {tally}", B::NAME);
    assert_eq!(tally.failed(), 0, "no helper request fails on a connection that died idle: {tally}");
    assert_eq!(tally.ok(), (TASKS * 5) as u64);
    // Again with raw checkouts: whatever fails, no dead connection comes back.
    fill(&pool, POOL).await;
    proxy.reset_all();
    sleep(Duration::from_millis(50)).await;
    let raw = Arc::new(Tally::default());
    load::<B>(&pool, &raw, TASKS, Instant::now() + Duration::from_millis(500)).await;
    eprintln!("{} raw: {raw}", B::NAME);
    assert_failures_only(&raw, &["connection_lost"], "raw checkouts after idle resets");
    assert!(raw.failed() <= POOL as u64, "at most each dead connection fails once: {raw}");
    assert_eq!(raw.dead_reissued(), 0, "a dead connection was handed out twice in a row: {raw}");
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// No byte passes for 2.5 s (a partition) under load, then the network heals: requests that waited longer
/// than the 2 s acquire timeout fail with a typed timeout, those stuck on the wire finish after the heal, and
/// the pool serves again at once.
async fn black_hole_then_heal<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    let (tally, run) = start_load::<B>(&pool, Duration::from_millis(4000)).await;
    sleep(Duration::from_millis(500)).await;
    proxy.black_hole(true);
    sleep(Duration::from_millis(2500)).await;
    let ok_in_hole = tally.ok();
    proxy.heal();
    end_load::<B>(run, &tally, "").await;
    assert!(tally.count("acquire:timeout") > 0, "waiters time out during the partition: {tally}");
    assert!(tally.ok() > ok_in_hole, "requests succeed after the heal: {tally}");
    assert_failures_only(&tally, &["acquire:timeout", "acquire:timeout_connecting", "connection_lost"], "black hole");
    assert_eq!(tally.dead_reissued(), 0, "{tally}");
    B::helper_short(&pool).await.expect("the helper works after the heal");
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// The server goes away (every connection reset, new ones refused) for 1.5 s under load, then accepts again:
/// failures are lost connections or typed acquire errors (timeout with the connect error, fail-fast
/// unavailable), and the pool reconnects by itself.
async fn refuse_then_accept<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    let (tally, run) = start_load::<B>(&pool, Duration::from_millis(4500)).await;
    sleep(Duration::from_millis(500)).await;
    proxy.refuse(true);
    proxy.reset_all();
    sleep(Duration::from_millis(1500)).await;
    let failed_in_outage = tally.failed();
    proxy.refuse(false);
    // The engine promises the first get after the server is back succeeds within ~250 ms; leave it a second.
    sleep(Duration::from_millis(1000)).await;
    let ok_back = tally.ok();
    end_load::<B>(run, &tally, "").await;
    assert!(failed_in_outage > 0, "the outage fails requests: {tally}");
    assert!(tally.ok() > ok_back, "requests succeed once the server accepts again: {tally}");
    assert_failures_only(
        &tally,
        &["connection_lost", "acquire:timeout", "acquire:timeout_connecting", "acquire:unavailable"],
        "refuse then accept",
    );
    assert_eq!(tally.dead_reissued(), 0, "{tally}");
    B::helper_short(&pool).await.expect("the helper works once the server is back");
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// 100 ms of latency each way for 1.5 s under load: everything slows, nothing fails (a request waits at most
/// about four round trips of 200 ms behind the other tasks, well inside the 2 s acquire timeout).
async fn latency_spike<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    let (tally, run) = start_load::<B>(&pool, Duration::from_millis(3000)).await;
    sleep(Duration::from_millis(500)).await;
    let ok_before = tally.ok();
    proxy.latency(Duration::from_millis(100));
    sleep(Duration::from_millis(1500)).await;
    let ok_spike = tally.ok() - ok_before;
    proxy.heal();
    end_load::<B>(run, &tally, &format!("({ok_spike} during the spike)")).await;
    assert!(ok_spike > 0, "requests still complete during the spike: {tally}");
    assert_eq!(tally.failed(), 0, "latency alone fails nothing: {tally}");
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

/// Connections are cut (FIN) a few kilobytes into a long result. On a raw checkout the read fails as a lost
/// connection (the adapter's classification, so its helpers' retry rules apply), and every checkout after it
/// works; through the helper, the same cut read is retried on a fresh connection and returns every row.
async fn cut_mid_result<B: ChaosBackend>(test: &str) {
    let (proxy, marker, pool) = setup::<B>(test, POOL).await;
    // Raw: one connection, cut 5,000 bytes (not a packet boundary) into its result.
    let mut conn = timeout(STEP, pool.get()).await.unwrap().expect("a connection");
    B::short(&mut conn).await.expect("the connection works before the cut");
    proxy.cut_after(5_000);
    let r = timeout(STEP, B::long_result(&mut conn)).await.expect("the cut read ends in time");
    assert_eq!(r, Err(Fail::Lost), "{}: a result cut part-way is a lost connection", B::NAME);
    assert_eq!(proxy.cuts(), 1);
    drop(conn);
    proxy.heal();
    for _ in 0..POOL {
        let mut c = timeout(STEP, pool.get()).await.unwrap().expect("a connection after the cut");
        B::short(&mut c).await.expect("no checkout after the cut gets a dead connection");
    }
    // Helper: one warm connection, cut mid-result; the helper retries the read on a new one and gets every row.
    pool.retain(|_, _| false);
    drop(timeout(STEP, pool.get()).await.unwrap().expect("a connection"));
    assert_eq!(pool.state().size, 1, "{}", pool.state());
    proxy.cut_after(5_000);
    let rows = timeout(STEP, B::helper_long(&pool)).await.expect("the helper ends in time");
    assert_eq!(rows, Ok(LONG_ROWS as usize), "{}: the helper retries a read cut part-way", B::NAME);
    assert!(proxy.cuts() >= 2, "the helper's first attempt was cut");
    proxy.heal();
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
}

macro_rules! chaos_tests {
    ($backend:ty, $prefix:ident) => {
        mod $prefix {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn resets_under_load_fail_only_as_lost_and_recover() {
                resets_under_load::<$backend>(concat!(stringify!($prefix), "_rul")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn resets_while_idle_fail_no_helper_request() {
                resets_while_idle::<$backend>(concat!(stringify!($prefix), "_rwi")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn black_hole_times_out_waiters_then_heals() {
                black_hole_then_heal::<$backend>(concat!(stringify!($prefix), "_bh")).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn latency_spike_fails_nothing() {
                latency_spike::<$backend>(concat!(stringify!($prefix), "_lat")).await;
            }
        }
    };
}

chaos_tests!(Postgres, postgres);
chaos_tests!(MySql, mysql);
chaos_tests!(Neo4j, neo4j);

// The two faults whose outcome differs by backend today, written out so each can carry its own marker.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refused_server_fails_typed_then_reconnects() {
    refuse_then_accept::<Postgres>("postgres_rta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refused_server_fails_typed_then_reconnects() {
    refuse_then_accept::<MySql>("mysql_rta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_refused_server_fails_typed_then_reconnects() {
    refuse_then_accept::<Neo4j>("neo4j_rta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_result_cut_midway_is_a_lost_connection_and_retried() {
    cut_mid_result::<Postgres>("postgres_cut").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_result_cut_midway_is_a_lost_connection_and_retried() {
    cut_mid_result::<MySql>("mysql_cut").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_result_cut_midway_is_a_lost_connection_and_retried() {
    cut_mid_result::<Neo4j>("neo4j_cut").await;
}
