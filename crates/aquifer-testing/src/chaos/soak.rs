//! The soak: 1,000 tasks on a pool of 20 behind the chaos proxy for a long time, with a fault at the start of
//! every interval (resets, latency, black hole, refusal, a cut, in turn) and a sample at its end: resident
//! memory, the pool's connections, the server's connections of the pool, p99 of the requests after the fault
//! healed, and requests ok / failed. [`SoakReport::assert_flat`] checks that nothing grows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ChaosBackend, Tally, assert_invariants, assert_server_clean, fill, load_with_think, setup};

/// The shape of a soak run.
#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    /// How long the load runs.
    pub duration: Duration,
    /// A fault at the start of each interval, a sample at its end.
    pub interval: Duration,
    /// How long each fault lasts.
    pub fault: Duration,
    /// Tasks sending requests.
    pub tasks: usize,
    /// Each task's pause after each request.
    pub think: Duration,
    /// The pool's maximum size.
    pub max_size: usize,
}

impl SoakConfig {
    /// The long run: 1,000 tasks each sending a request every second or so (up to 1,000 requests/s, what a
    /// pool of 20 serves on every backend here), a pool of 20, a fault every 30 s.
    pub fn long(minutes: u64) -> SoakConfig {
        SoakConfig {
            duration: Duration::from_secs(minutes * 60),
            interval: Duration::from_secs(30),
            fault: Duration::from_secs(1),
            tasks: 1000,
            think: Duration::from_secs(1),
            max_size: 20,
        }
    }

    /// The CI variant: the same for 60 s with a fault every 10 s, and half the request rate (a debug build
    /// sharing two cores with the servers and the other tests).
    pub fn ci() -> SoakConfig {
        SoakConfig {
            duration: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            think: Duration::from_secs(2),
            ..SoakConfig::long(1)
        }
    }
}

/// The faults, applied in turn.
const FAULTS: [&str; 5] = ["reset", "latency 50ms", "black hole", "refuse", "cut"];

/// One interval's sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the load started.
    pub at: Duration,
    /// The fault at the start of the interval.
    pub fault: &'static str,
    /// Resident memory of the process ([`rss_kib`]).
    pub rss_kib: u64,
    /// The pool's connections.
    pub pool_size: usize,
    /// The pool's idle connections.
    pub pool_idle: usize,
    /// The server's connections of the pool ([`ChaosBackend::server_connections`]).
    pub server_connections: usize,
    /// p99 of the requests from 2 s after the heal to the sample, microseconds.
    pub p99_us: u64,
    /// Requests that succeeded during the interval.
    pub ok: u64,
    /// Requests that failed during the interval.
    pub failed: u64,
}

/// What a soak run saw.
#[derive(Debug)]
pub struct SoakReport {
    /// [`ChaosBackend::NAME`].
    pub backend: &'static str,
    /// One per interval.
    pub samples: Vec<Sample>,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed, by [`Fail`](super::Fail) label.
    pub failed: std::collections::BTreeMap<String, u64>,
    /// Connections that failed as lost on two checkouts in a row.
    pub dead_reissued: u64,
    /// Leaks the pool reported.
    pub leaks: u64,
    /// Panics the pool reported.
    pub panics: u64,
    /// Connections the pool opened.
    pub created: u64,
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn p99(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs the soak on backend `B` and returns its samples; checks the pool's invariants and that the server holds
/// none of its connections once closed.
pub async fn soak<B: ChaosBackend>(name: &str, cfg: SoakConfig) -> SoakReport {
    let (proxy, marker, pool) = setup::<B>(name, cfg.max_size).await;
    fill(&pool, cfg.max_size).await;
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + cfg.duration;
    let run = tokio::spawn({
        let (pool, tally) = (pool.clone(), tally.clone());
        async move { load_with_think::<B>(&pool, &tally, cfg.tasks, end, cfg.think).await }
    });
    let mut samples = Vec::new();
    let (mut ok_before, mut failed_before) = (0, 0);
    let mut k = 0;
    while start.elapsed() + cfg.interval <= cfg.duration + Duration::from_millis(100) {
        let interval_start = Instant::now();
        let fault = FAULTS[k % FAULTS.len()];
        match fault {
            "reset" => proxy.reset_all(),
            "latency 50ms" => proxy.latency(Duration::from_millis(50)),
            "black hole" => proxy.black_hole(true),
            "refuse" => {
                proxy.refuse(true);
                proxy.reset_all();
            }
            _ => proxy.cut_after(3_000),
        }
        tokio::time::sleep(cfg.fault).await;
        proxy.heal();
        // The requests slowed by the fault and by the backlog it left are not the steady state.
        tokio::time::sleep(Duration::from_secs(2)).await;
        tally.take_latencies();
        tokio::time::sleep(cfg.interval.saturating_sub(interval_start.elapsed())).await;
        let state = pool.state();
        let (ok, failed) = (tally.ok(), tally.failed());
        let sample = Sample {
            at: start.elapsed(),
            fault,
            rss_kib: rss_kib(),
            pool_size: state.size,
            pool_idle: state.idle,
            server_connections: B::server_connections(&marker, &proxy).await,
            p99_us: p99(tally.take_latencies()),
            ok: ok - ok_before,
            failed: failed - failed_before,
        };
        (ok_before, failed_before) = (ok, failed);
        eprintln!(
            "{:>16} {:>6.0}s after {:<12} rss {:>7} KiB  pool {:>2} ({:>2} idle)  server {:>2}  p99 {:>7.2} ms  ok {:>7}  failed {:>5}",
            B::NAME,
            sample.at.as_secs_f64(),
            sample.fault,
            sample.rss_kib,
            sample.pool_size,
            sample.pool_idle,
            sample.server_connections,
            sample.p99_us as f64 / 1000.0,
            sample.ok,
            sample.failed
        );
        samples.push(sample);
        k += 1;
    }
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the load ends").unwrap();
    let t = tally.snapshot();
    let stats = pool.stats();
    assert_invariants(&pool).await;
    assert_server_clean::<B>(pool, &marker, &proxy).await;
    SoakReport {
        backend: B::NAME,
        samples,
        ok: t.ok,
        failed: t.failed,
        dead_reissued: t.dead_reissued,
        leaks: stats.leaks,
        panics: stats.panics,
        created: stats.created,
    }
}

impl SoakReport {
    /// Panics unless [`check_flat`](SoakReport::check_flat) passes.
    pub fn assert_flat(&self, max_size: usize) {
        if let Err(e) = self.check_flat(max_size) {
            panic!("{e}");
        }
    }

    /// Nothing grows: memory, connections (pool and server side) and p99 stay within bounds of the first
    /// steady sample; every interval served requests; no leak report, no panic, no dead connection handed out
    /// twice in a row. The first failed check, described.
    pub fn check_flat(&self, max_size: usize) -> Result<(), String> {
        let b = self.backend;
        let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(format!("{b}: {what}")) };
        check(self.samples.len() >= 3, format!("at least three samples: {:?}", self.samples))?;
        for s in &self.samples {
            check(s.pool_size <= max_size, format!("pool within its maximum: {s:?}"))?;
            check(s.server_connections <= max_size, format!("the server holds no more than the pool: {s:?}"))?;
            check(s.ok > 0, format!("every interval serves requests: {s:?}"))?;
        }
        // The first sample includes the warm-up; the second is the baseline.
        let base = &self.samples[1];
        let last = self.samples.last().expect("samples");
        let rss_bound = (base.rss_kib + base.rss_kib / 4).max(base.rss_kib + 32 * 1024);
        check(last.rss_kib <= rss_bound, format!("memory flat: {} KiB after {} KiB", last.rss_kib, base.rss_kib))?;
        let mut p99s: Vec<u64> = self.samples[1..].iter().map(|s| s.p99_us).collect();
        p99s.sort_unstable();
        let median = p99s[p99s.len() / 2];
        // A shared two-core machine: bounds loose enough for noise, tight enough for a trend.
        let p99_bound = 4 * median + 50_000;
        for s in &self.samples[1..] {
            check(s.p99_us <= p99_bound, format!("p99 flat ({} us, median {median} us): {s:?}", s.p99_us))?;
        }
        check(
            (self.leaks, self.panics) == (0, 0),
            format!("no leak report ({}), no panic ({})", self.leaks, self.panics),
        )?;
        check(
            self.dead_reissued == 0,
            format!("no dead connection handed out twice in a row ({} were)", self.dead_reissued),
        )
    }
}
