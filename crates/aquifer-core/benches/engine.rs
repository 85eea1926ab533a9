//! The engine against its peers: get + drop of a no-op connection, pool of 16, pre-filled and warmed,
//! 1/16/64/256 concurrent tasks on a 2-worker Tokio runtime (r2d2 on as many OS threads). Every pool is
//! measured in the same run, interleaved, and the median of the repetitions is reported, in two modes:
//! throughput (ns per get+drop cycle, nothing else timed) and latency (each get timed: p50 / p99 / max wait,
//! which shows starvation that p50 hides).
//!
//!     cargo bench -p aquifer-core --bench engine                     # metrics recorded unbound
//!     cargo bench -p aquifer-core --bench engine --features otel-bound-instruments
//!
//! Every measurement runs all tasks (threads) for a fixed time, so that every peer reaches its steady state
//! under contention (with a fixed number of cycles, OS threads finish inside one scheduler time slice and
//! never contend at all).
//!
//! Environment: BENCH_REPS (default 7), BENCH_MS (milliseconds per measurement, default 300).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_core::Pool;
use aquifer_testing::NoopManager;

const POOL: usize = 16;
const TASKS: [usize; 4] = [1, 16, 64, 256];

// ---- no-op managers, one per pool crate -------------------------------------------------------------------

struct DeadpoolNoop;

impl deadpool::managed::Manager for DeadpoolNoop {
    type Type = u64;
    type Error = std::io::Error;
    async fn create(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<std::io::Error> {
        Ok(())
    }
}

struct Bb8Noop;

impl bb8::ManageConnection for Bb8Noop {
    type Connection = u64;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    async fn is_valid(&self, _: &mut u64) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

struct MobcNoop;

#[mobc::async_trait]
impl mobc::Manager for MobcNoop {
    type Connection = u64;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    async fn check(&self, conn: u64) -> Result<u64, std::io::Error> {
        Ok(conn)
    }
}

struct R2d2Noop;

impl r2d2::ManageConnection for R2d2Noop {
    type Connection = u64;
    type Error = std::io::Error;
    fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }
    fn is_valid(&self, _: &mut u64) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

// ---- measurement -------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Semaphore,
    Aquifer,
    AquiferSdk,
    Deadpool,
    Bb8,
    Mobc,
    R2d2,
}

impl Peer {
    const ALL: [Peer; 7] =
        [Peer::Semaphore, Peer::Aquifer, Peer::AquiferSdk, Peer::Deadpool, Peer::Bb8, Peer::Mobc, Peer::R2d2];

    fn label(self) -> &'static str {
        match self {
            Peer::Semaphore => "tokio Semaphore alone (floor)",
            Peer::Aquifer => "aquifer, no OTel SDK",
            Peer::AquiferSdk => "aquifer + OTel SDK metrics",
            Peer::Deadpool => "deadpool 0.13",
            Peer::Bb8 => "bb8 0.9",
            Peer::Mobc => "mobc 0.9",
            Peer::R2d2 => "r2d2 0.8 (OS threads)",
        }
    }
}

struct Sample {
    ns_per_cycle: f64,
    waits_ns: Vec<u64>,
}

/// Runs get+drop cycles in each of `tasks` tasks until `run` has passed; with `timed`, records each get's
/// latency.
macro_rules! run_tasks {
    ($pool:expr, $tasks:expr, $run:expr, $timed:expr, |$p:ident| $get:expr) => {{ run_tasks!($pool, $tasks, $run, $timed, false, |$p| $get) }};
    ($pool:expr, $tasks:expr, $run:expr, $timed:expr, $hold:expr, |$p:ident| $get:expr) => {{
        let barrier = Arc::new(tokio::sync::Barrier::new($tasks + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity($tasks);
        for _ in 0..$tasks {
            let ($p, barrier, stop) = ($pool.clone(), barrier.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let mut waits = Vec::new();
                let mut n = 0u64;
                barrier.wait().await;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = $timed.then(Instant::now);
                    let c = $get;
                    if let Some(t0) = t0 {
                        waits.push(t0.elapsed().as_nanos() as u64);
                    }
                    if $hold {
                        tokio::task::yield_now().await;
                    }
                    drop(c);
                    n += 1;
                }
                (n, waits)
            }));
        }
        barrier.wait().await;
        let start = Instant::now();
        stop_after(&stop, $run);
        let (mut total, mut waits_ns) = (0u64, Vec::new());
        for h in handles {
            let (n, w) = h.await.unwrap();
            total += n;
            waits_ns.extend(w);
        }
        Sample { ns_per_cycle: start.elapsed().as_nanos() as f64 / total.max(1) as f64, waits_ns }
    }};
}

/// Sets `stop` after `run`, from a thread of its own (the runtime's workers are busy).
fn stop_after(stop: &Arc<AtomicBool>, run: Duration) {
    let stop = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
}

/// `hold`: keep the connection across a yield, so tasks beyond the pool size really wait for each other
/// (measured with `timed`: the wait of every get).
fn measure(rt: &tokio::runtime::Runtime, peer: Peer, tasks: usize, run: Duration, hold: bool) -> Sample {
    let timed = hold;
    let per_task = run;
    let warm = Duration::from_millis(20);
    match peer {
        Peer::R2d2 => {
            let pool = r2d2::Pool::builder().max_size(POOL as u32).build(R2d2Noop).unwrap();
            let run = |per: Duration| {
                let barrier = Arc::new(std::sync::Barrier::new(tasks + 1));
                let stop = Arc::new(AtomicBool::new(false));
                let threads: Vec<_> = (0..tasks)
                    .map(|_| {
                        let (pool, barrier, stop) = (pool.clone(), barrier.clone(), stop.clone());
                        std::thread::spawn(move || {
                            let mut waits = Vec::new();
                            let mut n = 0u64;
                            barrier.wait();
                            while !stop.load(Ordering::Relaxed) {
                                let t0 = timed.then(Instant::now);
                                let c = pool.get().unwrap();
                                if let Some(t0) = t0 {
                                    waits.push(t0.elapsed().as_nanos() as u64);
                                }
                                if hold {
                                    std::thread::yield_now();
                                }
                                drop(c);
                                n += 1;
                            }
                            (n, waits)
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                stop_after(&stop, per);
                let (mut total, mut waits_ns) = (0u64, Vec::new());
                for t in threads {
                    let (n, w) = t.join().unwrap();
                    total += n;
                    waits_ns.extend(w);
                }
                Sample { ns_per_cycle: start.elapsed().as_nanos() as f64 / total.max(1) as f64, waits_ns }
            };
            run(warm);
            run(per_task)
        }
        _ => rt.block_on(async {
            match peer {
                Peer::Semaphore => {
                    let sem = Arc::new(tokio::sync::Semaphore::new(POOL));
                    run_tasks!(sem, tasks, warm, false, |s| s.acquire().await.unwrap());
                    run_tasks!(sem, tasks, per_task, timed, hold, |s| s.acquire().await.unwrap())
                }
                Peer::Aquifer | Peer::AquiferSdk => {
                    let capture = (peer == Peer::AquiferSdk).then(aquifer_testing::MetricsCapture::new);
                    let mut builder = Pool::builder(NoopManager::new("bench")).max_size(POOL).min_idle(POOL);
                    if let Some(c) = &capture {
                        builder = builder.meter(c.meter());
                    }
                    let pool = builder.build().unwrap();
                    pool.warm_up().await.unwrap();
                    run_tasks!(pool, tasks, warm, false, |p| p.get().await.unwrap());
                    let s = run_tasks!(pool, tasks, per_task, timed, hold, |p| p.get().await.unwrap());
                    if let Some(c) = &capture {
                        // The SDK really aggregated every acquisition (the measurement is not of a no-op).
                        let m = c.collect();
                        let n = m.get("db.client.connection.wait_time").map(|w| w.count()).unwrap_or(0);
                        assert!(n > 0, "the SDK saw no waits");
                    }
                    pool.close().await;
                    s
                }
                Peer::Deadpool => {
                    let pool = deadpool::managed::Pool::builder(DeadpoolNoop).max_size(POOL).build().unwrap();
                    let held: Vec<_> = futures_fill(&pool).await;
                    drop(held);
                    run_tasks!(pool, tasks, warm, false, |p| p.get().await.unwrap());
                    run_tasks!(pool, tasks, per_task, timed, hold, |p| p.get().await.unwrap())
                }
                Peer::Bb8 => {
                    let pool = bb8::Pool::builder()
                        .max_size(POOL as u32)
                        .min_idle(Some(POOL as u32))
                        .build(Bb8Noop)
                        .await
                        .unwrap();
                    run_tasks!(pool, tasks, warm, false, |p| p.get().await.unwrap());
                    run_tasks!(pool, tasks, per_task, timed, hold, |p| p.get().await.unwrap())
                }
                Peer::Mobc => {
                    let pool = mobc::Pool::builder().max_open(POOL as u64).max_idle(POOL as u64).build(MobcNoop);
                    run_tasks!(pool, tasks, warm, false, |p| p.get().await.unwrap());
                    run_tasks!(pool, tasks, per_task, timed, hold, |p| p.get().await.unwrap())
                }
                Peer::R2d2 => unreachable!(),
            }
        }),
    }
}

async fn futures_fill(pool: &deadpool::managed::Pool<DeadpoolNoop>) -> Vec<deadpool::managed::Object<DeadpoolNoop>> {
    let mut v = Vec::new();
    for _ in 0..POOL {
        v.push(pool.get().await.unwrap());
    }
    v
}

/// Prints `ns` (per peer, per task count: the repetitions' ns per cycle) as a table of medians under `title`.
fn print_ns_table(title: &str, ns: &[Vec<Vec<f64>>]) {
    println!("\n{title}:\n");
    println!("| pool | 1 task | 16 | 64 | 256 |");
    println!("|---|---|---|---|---|");
    for (pi, peer) in Peer::ALL.iter().enumerate() {
        let cells: Vec<String> = ns[pi].iter().map(|v| format!("{:.0}", median(v.clone()))).collect();
        println!("| {} | {} |", peer.label(), cells.join(" | "));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let run = Duration::from_millis(std::env::var("BENCH_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(300));
    let bound = cfg!(feature = "otel-bound-instruments");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    eprintln!("engine bench: pool {POOL}, {run:?} per measurement, {reps} repetitions, bound instruments: {bound}");

    // Interleaved: every peer once per repetition and task count, in both modes.
    let mut cycles = vec![vec![Vec::new(); TASKS.len()]; Peer::ALL.len()];
    let mut held = vec![vec![Vec::new(); TASKS.len()]; Peer::ALL.len()];
    let mut waits = vec![vec![(Vec::new(), Vec::new(), Vec::new()); TASKS.len()]; Peer::ALL.len()];
    // For profiling one case: BENCH_ONLY=aquifer BENCH_TASKS=64 BENCH_MODE=held (or drop).
    let only = std::env::var("BENCH_ONLY").ok();
    let only_tasks: Option<usize> = std::env::var("BENCH_TASKS").ok().and_then(|v| v.parse().ok());
    let mode = std::env::var("BENCH_MODE").unwrap_or_default();
    if let Some(only) = only {
        let peer = *Peer::ALL.iter().find(|p| p.label().starts_with(&only)).expect("BENCH_ONLY names no peer");
        let tasks = only_tasks.unwrap_or(64);
        for _ in 0..reps {
            let s = measure(&rt, peer, tasks, run, mode == "held");
            println!("{} {tasks} tasks {mode}: {:.0} ns per cycle", peer.label(), s.ns_per_cycle);
        }
        return;
    }
    for rep in 0..reps {
        for (ti, &tasks) in TASKS.iter().enumerate() {
            for (pi, &peer) in Peer::ALL.iter().enumerate() {
                cycles[pi][ti].push(measure(&rt, peer, tasks, run, false).ns_per_cycle);
                let s = measure(&rt, peer, tasks, run, true);
                held[pi][ti].push(s.ns_per_cycle);
                let mut w = s.waits_ns;
                w.sort_unstable();
                let (p50, p99, max) = &mut waits[pi][ti];
                p50.push(percentile(&w, 0.50) as f64);
                p99.push(percentile(&w, 0.99) as f64);
                max.push(*w.last().unwrap() as f64);
            }
        }
        eprintln!("  repetition {}/{reps} done", rep + 1);
        std::thread::sleep(Duration::from_millis(10));
    }

    print_ns_table(&format!("get + drop, ns per cycle (median of {reps}), pool {POOL}"), &cycles);
    print_ns_table(
        &format!("get + yield + drop (the connection is held across a yield), ns per cycle (median of {reps})"),
        &held,
    );
    println!("\nget + yield + drop: wait for get(), p50 / p99 / max in µs (median of {reps}):\n");
    println!("| pool | 16 tasks | 64 | 256 |");
    println!("|---|---|---|---|");
    for (pi, peer) in Peer::ALL.iter().enumerate() {
        let cells: Vec<String> = (1..TASKS.len())
            .map(|ti| {
                let (p50, p99, max) = &waits[pi][ti];
                format!(
                    "{:.1} / {:.1} / {:.0}",
                    median(p50.clone()) / 1e3,
                    median(p99.clone()) / 1e3,
                    median(max.clone()) / 1e3
                )
            })
            .collect();
        println!("| {} | {} |", peer.label(), cells.join(" | "));
    }
}
