//! The tuned pools against SQLite's defaults on a mixed workload: 8 readers and 1 writer for a fixed time.
//!
//!     cargo bench -p aquifer-sqlite --bench sqlite
//!
//! Peers, each on a fresh database file of 10,000 rows, measured in turn and repeated (interleaved, so noise
//! hits all alike); medians are reported:
//! - `aquifer async, tuned`: [`SqlitePool`] (WAL, synchronous=NORMAL, mmap...), reads and writes through
//!   `read`/`write` closures on Tokio's blocking pool;
//! - `aquifer sync r2d2, tuned`: [`SqliteSyncPool`], the same pragmas, 9 OS threads;
//! - `aquifer async, SQLite defaults`: [`SqlitePool`] with a rollback journal and synchronous=FULL (isolates
//!   the pragmas from the pool);
//! - `r2d2_sqlite, SQLite defaults`: a plain r2d2 pool of 9 `SqliteConnectionManager::file` connections
//!   (rollback journal, synchronous=FULL, rusqlite's 5 s busy_timeout), 9 OS threads.
//!
//! A read is a point lookup by random primary key; a write inserts one row in its own transaction. Set
//! `AQ_BENCH_SECS` (default 3) and `AQ_BENCH_REPS` (default 3) to change the run length.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_sqlite::rusqlite::{Connection, params};
use aquifer_sqlite::{JournalMode, SqliteConfig, SqlitePool, SqliteSyncPool, Synchronous};

const ROWS: i64 = 10_000;
const READERS: usize = 8;

#[derive(Default)]
struct Sample {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
    errors: usize,
    secs: f64,
}

impl Sample {
    fn merge(&mut self, (reads, writes, errors): (Vec<Duration>, Vec<Duration>, usize)) {
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

fn run_async(rt: &tokio::runtime::Runtime, config: SqliteConfig, secs: Duration) -> Sample {
    rt.block_on(async move {
        let pool = SqlitePool::open(config).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..READERS {
            let (pool, stop) = (pool.clone(), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0);
                while !stop.load(Ordering::Relaxed) {
                    let id = fastrand::i64(1..=ROWS);
                    let t = Instant::now();
                    match pool.read(move |c| read_one(c, id)).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (lat, Vec::new(), errors)
            }));
        }
        let writer = {
            let (pool, stop) = (pool.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut lat, mut errors, mut n) = (Vec::new(), 0, ROWS);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    match pool.write(move |tx| write_one(tx, n)).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (Vec::new(), lat, errors)
            })
        };
        let started = Instant::now();
        tokio::time::sleep(secs).await;
        stop.store(true, Ordering::Relaxed);
        let mut sample = Sample::default();
        for t in tasks {
            sample.merge(t.await.unwrap());
        }
        sample.merge(writer.await.unwrap());
        sample.secs = started.elapsed().as_secs_f64();
        pool.close().await;
        sample
    })
}

/// 8 reader threads and 1 writer thread over `read`/`write` functions.
fn run_threads<R, W>(secs: Duration, read: R, write: W) -> Sample
where
    R: Fn(i64) -> Result<(), String> + Send + Sync + 'static,
    W: Fn(i64) -> Result<(), String> + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(read);
    let mut threads = Vec::new();
    for _ in 0..READERS {
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
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
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
        })
    };
    let started = Instant::now();
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    let mut sample = Sample::default();
    for t in threads {
        sample.merge(t.join().unwrap());
    }
    sample.merge(writer.join().unwrap());
    sample.secs = started.elapsed().as_secs_f64();
    sample
}

fn run_sync_tuned(path: &Path, secs: Duration) -> Sample {
    let pool = SqliteSyncPool::open(tuned(path)).unwrap();
    let (r, w) = (pool.clone(), pool.clone());
    let sample = run_threads(
        secs,
        move |id| r.read(|c| read_one(c, id)).map(drop).map_err(|e| e.to_string()),
        move |n| w.write(|tx| write_one(tx, n)).map(drop).map_err(|e| e.to_string()),
    );
    pool.close();
    sample
}

fn run_r2d2_defaults(path: &Path, secs: Duration) -> Sample {
    let pool = r2d2::Pool::builder()
        .max_size(READERS as u32 + 1)
        .build(r2d2_sqlite::SqliteConnectionManager::file(path))
        .unwrap();
    let (r, w) = (pool.clone(), pool);
    run_threads(
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

fn main() {
    let secs = Duration::from_secs(std::env::var("AQ_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let reps: usize = std::env::var("AQ_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let names = [
        "aquifer async, tuned (WAL, NORMAL)",
        "aquifer sync r2d2, tuned (WAL, NORMAL)",
        "aquifer async, SQLite defaults (DELETE, FULL)",
        "r2d2_sqlite, SQLite defaults (DELETE, FULL)",
    ];
    let mut rows: Vec<Vec<Row>> = names.iter().map(|_| Vec::new()).collect();
    for rep in 0..reps {
        for (i, name) in names.iter().enumerate() {
            let dir = tempfile::Builder::new().prefix("aq_sqlite_bench_").tempdir().unwrap();
            let path = dir.path().join("bench.db");
            seed(&path);
            let sample = match i {
                0 => run_async(&rt, tuned(&path), secs),
                1 => run_sync_tuned(&path, secs),
                2 => run_async(&rt, defaults_via_aquifer(&path), secs),
                _ => run_r2d2_defaults(&path, secs),
            };
            let row = summarize(sample);
            eprintln!(
                "rep {}/{reps} {name}: {:.0} reads/s, {:.0} writes/s, read p99 {}, errors {}",
                rep + 1,
                row.reads_per_s,
                row.writes_per_s,
                fmt_d(row.read_p99),
                row.errors
            );
            rows[i].push(row);
        }
    }
    println!(
        "\n8 readers (point lookups) + 1 writer (one-row transactions), {} s per run, median of {reps} runs\n",
        secs.as_secs()
    );
    println!(
        "| peer | reads/s | writes/s | read p50 | read p99 | read max | write p99 | write max | errors |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mut read_rates = Vec::new();
    for (name, rs) in names.iter().zip(rows) {
        let reads = median(rs.iter().map(|r| r.reads_per_s).collect());
        read_rates.push(reads);
        println!(
            "| {name} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            reads,
            median(rs.iter().map(|r| r.writes_per_s).collect()),
            fmt_d(median_d(rs.iter().map(|r| r.read_p50).collect())),
            fmt_d(median_d(rs.iter().map(|r| r.read_p99).collect())),
            fmt_d(median_d(rs.iter().map(|r| r.read_max).collect())),
            fmt_d(median_d(rs.iter().map(|r| r.write_p99).collect())),
            fmt_d(median_d(rs.iter().map(|r| r.write_max).collect())),
            rs.iter().map(|r| r.errors).sum::<usize>(),
        );
    }
    println!(
        "\nread throughput, tuned vs defaults: async {:.1}x (vs aquifer async with defaults), {:.1}x (vs r2d2_sqlite defaults); sync r2d2 tuned vs r2d2_sqlite defaults {:.1}x",
        read_rates[0] / read_rates[2],
        read_rates[0] / read_rates[3],
        read_rates[1] / read_rates[3],
    );
}
