//! aquifer-sqlite against the async SQLite peers, and the tuned pragmas against SQLite's defaults.
//!
//!     cargo bench -p aquifer-sqlite --bench sqlite
//!
//! Two scenarios, each on a fresh database file of 10,000 rows per measurement: `mixed`, 8 reader tasks (point
//! lookups by random primary key) and 1 writer task (one-row insert transactions); `single`, 1 reader task
//! alone. Async peers run on a multi-thread Tokio runtime with its default workers (one per core); sync peers on
//! as many OS threads as tasks. Every peer gets aquifer-sqlite's tuned pragmas (WAL, synchronous=NORMAL, 16 MiB
//! cache, 256 MiB mmap, busy_timeout 5 s) except the two "SQLite defaults" rows (mixed only). Peers:
//! - `aquifer async`: `SqlitePool`, `read` and `write` with the default configuration (see docs/sqlite.md:
//!   reads inline on the worker when the gate allows, writes on the blocking pool);
//! - `aquifer async, inline writes`: the same with `inline_writes` on (writes inline too when the gate allows);
//! - `aquifer async, single process`: the default paths with `single_process` on (SQLite's `unix-excl` VFS);
//! - `aquifer async, blocking pool`: the same pool, reads through `interact_read` in a read transaction and
//!   writes through `interact`: the path every call took before inline reads (a hop to Tokio's blocking pool
//!   and back);
//! - `aquifer sync r2d2`: [`SqliteSyncPool`];
//! - `sqlx SqlitePool` 0.9 (9 connections, a worker thread per connection);
//! - `tokio-rusqlite` 0.8 (a thread per connection, one connection per task), `deadpool-sqlite` 0.14
//!   (`interact` on the blocking pool) and `async-sqlite` 0.6 (a thread per connection, round robin): these need
//!   rusqlite 0.40, which cannot share a build with this workspace's rusqlite 0.39, so they live in the crate
//!   `benches/peers` (its own workspace and lockfile), which this bench builds with cargo and runs as a child
//!   process per measurement, interleaved with the others;
//! - `aquifer async, SQLite defaults` and `r2d2_sqlite, SQLite defaults`: rollback journal, synchronous=FULL.
//!
//! Peers are interleaved in every repetition (noise hits all alike); the table shows medians. Set
//! `AQ_BENCH_SECS` (default 3), `AQ_BENCH_REPS` (default 3), and `AQ_BENCH_PEERS` (a comma-separated list of
//! row-name substrings) to change the run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_sqlite::rusqlite::{Connection, TransactionBehavior, params};
use aquifer_sqlite::{JournalMode, SqliteConfig, SqliteSyncPool, Synchronous};

const ROWS: i64 = 10_000;
const READERS: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// 8 readers + 1 writer.
    Mixed,
    /// 1 reader alone.
    Single,
}

impl Scenario {
    fn readers(self) -> usize {
        match self {
            Scenario::Mixed => READERS,
            Scenario::Single => 1,
        }
    }

    fn with_writer(self) -> bool {
        self == Scenario::Mixed
    }

    fn arg(self) -> &'static str {
        match self {
            Scenario::Mixed => "mixed",
            Scenario::Single => "single",
        }
    }
}

/// Which of aquifer's paths the async rows take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paths {
    /// `read` and `write` as shipped.
    Shipped,
    /// Reads and writes on the blocking pool (`interact_read`, `interact`).
    Blocking,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    AquiferAsync,
    AquiferAsyncInlineWrites,
    AquiferAsyncSingleProcess,
    AquiferAsyncBlockingPool,
    AquiferSync,
    Sqlx,
    /// Run by the `benches/peers` binary: its name there.
    Child(&'static str),
    AquiferAsyncDefaults,
    R2d2Defaults,
}

const PEERS: [(&str, Peer); 11] = [
    ("aquifer async (read, write)", Peer::AquiferAsync),
    ("aquifer async, inline writes (inline_writes)", Peer::AquiferAsyncInlineWrites),
    ("aquifer async, single process (single_process)", Peer::AquiferAsyncSingleProcess),
    ("aquifer async, blocking pool (interact_read, interact)", Peer::AquiferAsyncBlockingPool),
    ("aquifer sync r2d2", Peer::AquiferSync),
    ("sqlx SqlitePool 0.9", Peer::Sqlx),
    ("tokio-rusqlite 0.8", Peer::Child("tokio-rusqlite")),
    ("deadpool-sqlite 0.14", Peer::Child("deadpool-sqlite")),
    ("async-sqlite 0.6", Peer::Child("async-sqlite")),
    ("aquifer async, SQLite defaults (DELETE, FULL)", Peer::AquiferAsyncDefaults),
    ("r2d2_sqlite, SQLite defaults (DELETE, FULL)", Peer::R2d2Defaults),
];

#[derive(Default)]
struct Sample {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
    errors: usize,
    secs: f64,
}

type TaskResult = (Vec<Duration>, Vec<Duration>, usize);

impl Sample {
    fn merge(&mut self, (reads, writes, errors): TaskResult) {
        self.reads.extend(reads);
        self.writes.extend(writes);
        self.errors += errors;
    }
}

fn read_one(c: &Connection, id: i64) -> aquifer_sqlite::rusqlite::Result<usize> {
    c.prepare_cached("SELECT title, body FROM books WHERE id = ?1")?
        .query_row([id], |r| Ok(r.get::<_, String>(0)?.len() + r.get::<_, String>(1)?.len()))
}

fn write_one(c: &Connection, n: i64) -> aquifer_sqlite::rusqlite::Result<usize> {
    c.prepare_cached("INSERT INTO books (author_id, title, body) VALUES (?1, ?2, ?3)")?.execute(params![
        n % 100,
        format!("New book {n}"),
        "x".repeat(200)
    ])
}

/// Creates the table and 10,000 rows with plain rusqlite (the same for every peer; the journal mode is left
/// to the peer).
fn seed(path: &Path) {
    let mut c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL);",
    )
    .unwrap();
    let tx = c.transaction().unwrap();
    for n in 0..ROWS {
        write_one(&tx, n).unwrap();
    }
    tx.commit().unwrap();
}

fn tuned(path: &Path) -> SqliteConfig {
    let mut c = SqliteConfig::new(path.to_string_lossy());
    c.pool.max_size = READERS;
    c
}

fn defaults_via_aquifer(path: &Path) -> SqliteConfig {
    SqliteConfig { journal_mode: JournalMode::Delete, synchronous: Synchronous::Full, ..tuned(path) }
}

/// Runs the scenario's reader tasks (and writer task) for `secs`, timing every call, from just before the
/// call to its result.
async fn drive<R, RF, W, WF>(scenario: Scenario, secs: Duration, read: R, write: W) -> Sample
where
    R: Fn(i64) -> RF + Send + Sync + 'static,
    RF: Future<Output = Result<(), String>> + Send,
    W: Fn(i64) -> WF + Send + Sync + 'static,
    WF: Future<Output = Result<(), String>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let (read, write) = (Arc::new(read), Arc::new(write));
    let mut tasks = Vec::new();
    for _ in 0..scenario.readers() {
        let (stop, read) = (Arc::clone(&stop), Arc::clone(&read));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0);
            while !stop.load(Ordering::Relaxed) {
                let id = fastrand::i64(1..=ROWS);
                let t = Instant::now();
                match read(id).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, Vec::new(), errors)
        }));
    }
    if scenario.with_writer() {
        let (stop, write) = (Arc::clone(&stop), Arc::clone(&write));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut n) = (Vec::new(), 0, ROWS);
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                match write(n).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (Vec::new(), lat, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut sample = Sample::default();
    for t in tasks {
        sample.merge(t.await.unwrap());
    }
    sample.secs = started.elapsed().as_secs_f64();
    sample
}

fn run_aquifer_async(
    rt: &tokio::runtime::Runtime,
    config: SqliteConfig,
    scenario: Scenario,
    secs: Duration,
    paths: Paths,
) -> Sample {
    rt.block_on(async move {
        let pool = config.connect().await.unwrap();
        let (r, w) = (pool.clone(), pool.clone());
        let sample = drive(
            scenario,
            secs,
            move |id| {
                let pool = r.clone();
                async move {
                    if paths == Paths::Blocking {
                        // What `read` did before it ran inline: the same read transaction, on the blocking pool.
                        pool.interact_read(move |c| {
                            let tx = c.transaction()?;
                            read_one(&tx, id)?;
                            tx.commit()
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())
                    } else {
                        pool.read(move |c| read_one(c, id)).await.map(drop).map_err(|e| e.to_string())
                    }
                }
            },
            move |n| {
                let pool = w.clone();
                async move {
                    if paths == Paths::Shipped {
                        pool.write(move |tx| write_one(tx, n)).await.map(drop).map_err(|e| e.to_string())
                    } else {
                        // The same transaction through `interact`, on the blocking pool.
                        pool.interact(move |c| {
                            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                            write_one(&tx, n)?;
                            tx.commit()
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())
                    }
                }
            },
        )
        .await;
        pool.close().await;
        sample
    })
}

fn run_sqlx(rt: &tokio::runtime::Runtime, path: &Path, scenario: Scenario, secs: Duration) -> Sample {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .pragma("temp_store", "MEMORY")
        .pragma("cache_size", "-16384")
        .pragma("mmap_size", "268435456");
    rt.block_on(async move {
        let size = scenario.readers() as u32 + 1;
        let pool =
            SqlitePoolOptions::new().max_connections(size).min_connections(size).connect_with(options).await.unwrap();
        let (r, w) = (pool.clone(), pool.clone());
        let sample = drive(scenario, secs, move |id| sqlx_read(r.clone(), id), move |n| sqlx_write(w.clone(), n)).await;
        pool.close().await;
        sample
    })
}

/// The read of the scenarios through sqlx's pool.
async fn sqlx_read(pool: sqlx::SqlitePool, id: i64) -> Result<(), String> {
    sqlx::query_as::<_, (String, String)>("SELECT title, body FROM books WHERE id = ?1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The write of the scenarios through sqlx's pool.
async fn sqlx_write(pool: sqlx::SqlitePool, n: i64) -> Result<(), String> {
    sqlx::query("INSERT INTO books (author_id, title, body) VALUES (?1, ?2, ?3)")
        .bind(n % 100)
        .bind(format!("New book {n}"))
        .bind("x".repeat(200))
        .execute(&pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The scenario's reader threads (and writer thread) over `read`/`write` functions.
fn run_threads<R, W>(scenario: Scenario, secs: Duration, read: R, write: W) -> Sample
where
    R: Fn(i64) -> Result<(), String> + Send + Sync + 'static,
    W: Fn(i64) -> Result<(), String> + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(read);
    let mut threads = Vec::new();
    for _ in 0..scenario.readers() {
        let (stop, read) = (Arc::clone(&stop), Arc::clone(&read));
        threads.push(std::thread::spawn(move || {
            let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0);
            while !stop.load(Ordering::Relaxed) {
                let id = fastrand::i64(1..=ROWS);
                let t = Instant::now();
                match read(id) {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, Vec::new(), errors)
        }));
    }
    if scenario.with_writer() {
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            let (mut lat, mut errors, mut n) = (Vec::new(), 0, ROWS);
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = Instant::now();
                match write(n) {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (Vec::new(), lat, errors)
        }));
    }
    let started = Instant::now();
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    let mut sample = Sample::default();
    for t in threads {
        sample.merge(t.join().unwrap());
    }
    sample.secs = started.elapsed().as_secs_f64();
    sample
}

fn run_sync_tuned(path: &Path, scenario: Scenario, secs: Duration) -> Sample {
    let pool = SqliteSyncPool::open(tuned(path)).unwrap();
    let (r, w) = (pool.clone(), pool.clone());
    let sample = run_threads(
        scenario,
        secs,
        move |id| r.read(|c| read_one(c, id)).map(drop).map_err(|e| e.to_string()),
        move |n| w.write(|tx| write_one(tx, n)).map(drop).map_err(|e| e.to_string()),
    );
    pool.close();
    sample
}

fn run_r2d2_defaults(path: &Path, scenario: Scenario, secs: Duration) -> Sample {
    let pool = r2d2::Pool::builder()
        .max_size(READERS as u32 + 1)
        .build(r2d2_sqlite::SqliteConnectionManager::file(path))
        .unwrap();
    let (r, w) = (pool.clone(), pool);
    run_threads(
        scenario,
        secs,
        move |id| {
            let c = r.get().map_err(|e| e.to_string())?;
            read_one(&c, id).map(drop).map_err(|e| e.to_string())
        },
        move |n| {
            let c = w.get().map_err(|e| e.to_string())?;
            write_one(&c, n).map(drop).map_err(|e| e.to_string())
        },
    )
}

/// Builds the `benches/peers` crate (its own workspace and lockfile) into this workspace's target directory
/// and returns its binary.
fn build_child_peers() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/Cargo.toml");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/sqlite-peers");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building {} (first time: a few minutes)", manifest.display());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo to build benches/peers");
    assert!(
        status.success(),
        "building benches/peers failed: the tokio-rusqlite/deadpool-sqlite/async-sqlite rows need it"
    );
    target.join("release/aquifer-sqlite-bench-peers")
}

/// One measurement by the child binary: it prints reads writes errors secs read_p50 read_p99 read_max
/// write_p99 write_max (ns).
fn run_child(binary: &Path, peer: &str, path: &Path, scenario: Scenario, secs: Duration) -> Row {
    let out = std::process::Command::new(binary)
        .arg(peer)
        .arg(scenario.arg())
        .arg(path)
        .arg(secs.as_secs_f64().to_string())
        .output()
        .expect("run the peers binary");
    assert!(out.status.success(), "{peer}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let ns = |x: f64| Duration::from_nanos(x as u64);
    Row {
        reads_per_s: v[0] / v[3],
        writes_per_s: v[1] / v[3],
        errors: v[2] as usize,
        read_p50: ns(v[4]),
        read_p99: ns(v[5]),
        read_max: ns(v[6]),
        write_p99: ns(v[7]),
        write_max: ns(v[8]),
    }
}

struct Row {
    reads_per_s: f64,
    writes_per_s: f64,
    read_p50: Duration,
    read_p99: Duration,
    read_max: Duration,
    write_p99: Duration,
    write_max: Duration,
    errors: usize,
}

fn summarize(mut s: Sample) -> Row {
    s.reads.sort_unstable();
    s.writes.sort_unstable();
    let pct =
        |v: &[Duration], p: f64| if v.is_empty() { Duration::ZERO } else { v[((v.len() - 1) as f64 * p) as usize] };
    Row {
        reads_per_s: s.reads.len() as f64 / s.secs,
        writes_per_s: s.writes.len() as f64 / s.secs,
        read_p50: pct(&s.reads, 0.5),
        read_p99: pct(&s.reads, 0.99),
        read_max: pct(&s.reads, 1.0),
        write_p99: pct(&s.writes, 0.99),
        write_max: pct(&s.writes, 1.0),
        errors: s.errors,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_d(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt_d(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// The medians of one peer in one scenario.
struct Summary {
    reads: f64,
    writes: f64,
    read_p99: Duration,
}

fn main() {
    let secs = Duration::from_secs(std::env::var("AQ_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let reps: usize = std::env::var("AQ_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let only: Option<Vec<String>> =
        std::env::var("AQ_BENCH_PEERS").ok().map(|s| s.split(',').map(|p| p.trim().to_owned()).collect());
    let peers: Vec<(&str, Peer)> = PEERS
        .iter()
        .copied()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o.iter().any(|p| name.contains(p.as_str()))))
        .collect();
    let child = peers.iter().any(|(_, p)| matches!(p, Peer::Child(_))).then(build_child_peers);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let workers = rt.metrics().num_workers();
    for scenario in [Scenario::Mixed, Scenario::Single] {
        let peers: Vec<_> = peers
            .iter()
            .filter(|(_, p)| {
                scenario == Scenario::Mixed
                    || !matches!(p, Peer::AquiferAsyncDefaults | Peer::R2d2Defaults | Peer::AquiferAsyncInlineWrites)
            })
            .collect();
        let mut rows: Vec<Vec<Row>> = peers.iter().map(|_| Vec::new()).collect();
        for rep in 0..reps {
            for (i, (name, peer)) in peers.iter().enumerate() {
                let dir = tempfile::Builder::new().prefix("aq_sqlite_bench_").tempdir().unwrap();
                let path = dir.path().join("bench.db");
                seed(&path);
                let row = match *peer {
                    Peer::AquiferAsync => {
                        summarize(run_aquifer_async(&rt, tuned(&path), scenario, secs, Paths::Shipped))
                    }
                    Peer::AquiferAsyncInlineWrites => {
                        let config = SqliteConfig { inline_writes: true, ..tuned(&path) };
                        summarize(run_aquifer_async(&rt, config, scenario, secs, Paths::Shipped))
                    }
                    Peer::AquiferAsyncSingleProcess => {
                        let config = SqliteConfig { single_process: true, ..tuned(&path) };
                        summarize(run_aquifer_async(&rt, config, scenario, secs, Paths::Shipped))
                    }
                    Peer::AquiferAsyncBlockingPool => {
                        summarize(run_aquifer_async(&rt, tuned(&path), scenario, secs, Paths::Blocking))
                    }
                    Peer::AquiferSync => summarize(run_sync_tuned(&path, scenario, secs)),
                    Peer::Sqlx => summarize(run_sqlx(&rt, &path, scenario, secs)),
                    Peer::Child(name) => run_child(child.as_deref().unwrap(), name, &path, scenario, secs),
                    Peer::AquiferAsyncDefaults => {
                        summarize(run_aquifer_async(&rt, defaults_via_aquifer(&path), scenario, secs, Paths::Shipped))
                    }
                    Peer::R2d2Defaults => summarize(run_r2d2_defaults(&path, scenario, secs)),
                };
                eprintln!(
                    "{} rep {}/{reps} {name}: {:.0} reads/s, {:.0} writes/s, read p99 {}, errors {}",
                    scenario.arg(),
                    rep + 1,
                    row.reads_per_s,
                    row.writes_per_s,
                    fmt_d(row.read_p99),
                    row.errors
                );
                rows[i].push(row);
            }
        }
        match scenario {
            Scenario::Mixed => println!(
                "\n8 readers (point lookups) + 1 writer (one-row transactions), {} s per run, median of {reps} runs, {workers} Tokio workers\n",
                secs.as_secs()
            ),
            Scenario::Single => println!(
                "\n1 reader alone (point lookups), {} s per run, median of {reps} runs, {workers} Tokio workers\n",
                secs.as_secs()
            ),
        }
        println!(
            "| peer | reads/s | writes/s | read p50 | read p99 | read max | write p99 | write max | errors |\n|---|---|---|---|---|---|---|---|---|"
        );
        let mut summaries = Vec::new();
        for ((name, _), rs) in peers.iter().zip(rows) {
            let summary = Summary {
                reads: median(rs.iter().map(|r| r.reads_per_s).collect()),
                writes: median(rs.iter().map(|r| r.writes_per_s).collect()),
                read_p99: median_d(rs.iter().map(|r| r.read_p99).collect()),
            };
            println!(
                "| {name} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
                summary.reads,
                summary.writes,
                fmt_d(median_d(rs.iter().map(|r| r.read_p50).collect())),
                fmt_d(summary.read_p99),
                fmt_d(median_d(rs.iter().map(|r| r.read_max).collect())),
                fmt_d(median_d(rs.iter().map(|r| r.write_p99).collect())),
                fmt_d(median_d(rs.iter().map(|r| r.write_max).collect())),
                rs.iter().map(|r| r.errors).sum::<usize>(),
            );
            summaries.push((peer_of(name), summary));
        }
        report_targets(scenario, &summaries);
    }
}

fn peer_of(name: &str) -> Peer {
    PEERS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// Prints the targets against this run's medians, for the peers that ran.
fn report_targets(scenario: Scenario, s: &[(Peer, Summary)]) {
    let get = |p: Peer| s.iter().find(|(q, _)| *q == p).map(|(_, x)| x);
    let Some(inline) = get(Peer::AquiferAsync) else { return };
    println!();
    if let Some(sync) = get(Peer::AquiferSync) {
        println!(
            "async reads / sync reads: {:.0} % (target >= 50 %); async writes / sync writes: {}",
            inline.reads / sync.reads * 100.0,
            if scenario.with_writer() { format!("{:.0} %", inline.writes / sync.writes * 100.0) } else { "-".into() }
        );
    }
    println!("async read p99: {} (target < 100 µs)", fmt_d(inline.read_p99));
    if scenario.with_writer()
        && let Some(inline_writes) = get(Peer::AquiferAsyncInlineWrites)
    {
        println!(
            "inline writes vs the default: reads {:.0} %, writes {:.0} %",
            inline_writes.reads / inline.reads * 100.0,
            inline_writes.writes / inline.writes * 100.0
        );
    }
    if let (Some(single), Some(sync)) = (get(Peer::AquiferAsyncSingleProcess), get(Peer::AquiferSync)) {
        println!(
            "single_process async reads / sync reads: {:.0} %, read p99 {}",
            single.reads / sync.reads * 100.0,
            fmt_d(single.read_p99)
        );
    }
    if let Some(before) = get(Peer::AquiferAsyncBlockingPool) {
        println!(
            "vs the blocking-pool path: reads {:.1}x{}",
            inline.reads / before.reads,
            if scenario.with_writer() {
                format!(", writes {:.0} % (target: not slower)", inline.writes / before.writes * 100.0)
            } else {
                String::new()
            }
        );
    }
    for (peer, other) in s {
        if matches!(peer, Peer::Sqlx | Peer::Child(_)) {
            println!(
                "vs {}: reads {:.1}x, read p99 {} vs {}",
                PEERS.iter().find(|(_, p)| p == peer).unwrap().0,
                inline.reads / other.reads,
                fmt_d(inline.read_p99),
                fmt_d(other.read_p99)
            );
        }
    }
    if scenario.with_writer()
        && let (Some(d), Some(r)) = (get(Peer::AquiferAsyncDefaults), get(Peer::R2d2Defaults))
    {
        println!(
            "tuned vs SQLite defaults, read throughput: {:.0}x (vs aquifer async with defaults), {:.0}x (vs r2d2_sqlite defaults)",
            inline.reads / d.reads,
            inline.reads / r.reads
        );
    }
}
