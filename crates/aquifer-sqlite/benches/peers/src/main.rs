//! One measurement of one async SQLite peer, run by `cargo bench -p aquifer-sqlite` (benches/sqlite.rs seeds the
//! database, runs every peer in turn and prints the table).
//!
//!     aquifer-sqlite-bench-peers PEER SCENARIO DB SECS
//!
//! PEER is `deadpool-sqlite`, `tokio-rusqlite` or `async-sqlite`; SCENARIO is `mixed` (8 reader tasks and 1
//! writer task) or `single` (1 reader task). Prints one line: reads writes errors secs read_p50 read_p99
//! read_max write_p99 write_max (latencies in ns). The workload and the pragmas are those of benches/sqlite.rs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const ROWS: i64 = 10_000;

/// aquifer-sqlite's tuned defaults (journal_mode=WAL is set once, before the peer opens its connections).
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;";

fn read_one(c: &Connection, id: i64) -> rusqlite::Result<usize> {
    c.prepare_cached("SELECT title, body FROM books WHERE id = ?1")?
        .query_row([id], |r| Ok(r.get::<_, String>(0)?.len() + r.get::<_, String>(1)?.len()))
}

fn write_one(c: &Connection, n: i64) -> rusqlite::Result<usize> {
    c.prepare_cached("INSERT INTO books (author_id, title, body) VALUES (?1, ?2, ?3)")?.execute(params![
        n % 100,
        format!("New book {n}"),
        "x".repeat(200)
    ])
}

#[derive(Default)]
struct Sample {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
    errors: usize,
    secs: f64,
}

/// Runs `readers` reader tasks (and a writer task when `with_writer`) for `secs`, timing every call.
async fn drive<R, RF, W, WF>(readers: usize, with_writer: bool, secs: Duration, read: R, write: W) -> Sample
where
    R: Fn(usize, i64) -> RF + Send + Sync + 'static,
    RF: Future<Output = Result<(), String>> + Send,
    W: Fn(i64) -> WF + Send + Sync + 'static,
    WF: Future<Output = Result<(), String>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let (read, write) = (Arc::new(read), Arc::new(write));
    let mut tasks = Vec::new();
    for task in 0..readers {
        let (stop, read) = (Arc::clone(&stop), Arc::clone(&read));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0);
            while !stop.load(Ordering::Relaxed) {
                let id = fastrand::i64(1..=ROWS);
                let t = Instant::now();
                match read(task, id).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, Vec::new(), errors)
        }));
    }
    if with_writer {
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
        let (r, w, e) = t.await.unwrap();
        sample.reads.extend(r);
        sample.writes.extend(w);
        sample.errors += e;
    }
    sample.secs = started.elapsed().as_secs_f64();
    sample
}

async fn tokio_rusqlite(db: &str, readers: usize, with_writer: bool, secs: Duration) -> Sample {
    // tokio-rusqlite has no pool: one connection (and its thread) per task, as its README shows.
    let mut conns = Vec::new();
    for _ in 0..readers + 1 {
        let c = tokio_rusqlite::Connection::open(db).await.unwrap();
        c.call(|c| c.execute_batch(PRAGMAS)).await.unwrap();
        conns.push(c);
    }
    let writer = conns.pop().unwrap();
    let conns = Arc::new(conns);
    drive(
        readers,
        with_writer,
        secs,
        move |task, id| {
            let conns = Arc::clone(&conns);
            async move { conns[task].call(move |c| read_one(c, id)).await.map(drop).map_err(|e| e.to_string()) }
        },
        move |n| {
            let writer = writer.clone();
            async move { writer.call(move |c| write_one(c, n)).await.map(drop).map_err(|e| e.to_string()) }
        },
    )
    .await
}

async fn deadpool_sqlite(db: &str, readers: usize, with_writer: bool, secs: Duration) -> Sample {
    use deadpool_sqlite::{Config, Hook, HookError, Runtime};
    let pool = Config::new(db)
        .builder(Runtime::Tokio1)
        .unwrap()
        .max_size(readers + 1)
        .post_create(Hook::async_fn(|conn, _| {
            Box::pin(async move {
                conn.interact(|c| c.execute_batch(PRAGMAS))
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(|e| HookError::message(e.to_string()))
            })
        }))
        .build()
        .unwrap();
    let (r, w) = (pool.clone(), pool);
    drive(
        readers,
        with_writer,
        secs,
        move |_, id| deadpool_interact(r.clone(), move |c| read_one(c, id)),
        move |n| deadpool_interact(w.clone(), move |c| write_one(c, n)),
    )
    .await
}

/// One call on a connection checked out of deadpool-sqlite's pool, as its README shows.
async fn deadpool_interact<T: Send + 'static>(
    pool: deadpool_sqlite::Pool,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<(), String> {
    let conn = pool.get().await.map_err(|e| e.to_string())?;
    conn.interact(f).await.map_err(|e| e.to_string())?.map(drop).map_err(|e| e.to_string())
}

async fn async_sqlite(db: &str, readers: usize, with_writer: bool, secs: Duration) -> Sample {
    // async-sqlite's pool hands calls to its connections' threads round robin; it has no writer/reader split.
    let pool = async_sqlite::PoolBuilder::new()
        .path(db)
        .journal_mode(async_sqlite::JournalMode::Wal)
        .num_conns(readers + 1)
        .open()
        .await
        .unwrap();
    for r in pool.conn_for_each(|c| c.execute_batch(PRAGMAS)).await {
        r.unwrap();
    }
    let (r, w) = (pool.clone(), pool);
    drive(
        readers,
        with_writer,
        secs,
        move |_, id| {
            let pool = r.clone();
            async move { pool.conn(move |c| read_one(c, id)).await.map(drop).map_err(|e| e.to_string()) }
        },
        move |n| {
            let pool = w.clone();
            async move { pool.conn(move |c| write_one(c, n)).await.map(drop).map_err(|e| e.to_string()) }
        },
    )
    .await
}

fn pct(v: &[Duration], p: f64) -> u128 {
    if v.is_empty() { 0 } else { v[((v.len() - 1) as f64 * p) as usize].as_nanos() }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, peer, scenario, db, secs] = &args[..] else {
        eprintln!("usage: aquifer-sqlite-bench-peers PEER SCENARIO DB SECS");
        std::process::exit(2);
    };
    let secs = Duration::from_secs_f64(secs.parse().expect("SECS is a number"));
    let (readers, with_writer) = match scenario.as_str() {
        "mixed" => (8, true),
        "single" => (1, false),
        other => panic!("unknown scenario {other:?}"),
    };
    Connection::open(db).unwrap().query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut s = rt.block_on(async {
        match peer.as_str() {
            "tokio-rusqlite" => tokio_rusqlite(db, readers, with_writer, secs).await,
            "deadpool-sqlite" => deadpool_sqlite(db, readers, with_writer, secs).await,
            "async-sqlite" => async_sqlite(db, readers, with_writer, secs).await,
            other => panic!("unknown peer {other:?}"),
        }
    });
    s.reads.sort_unstable();
    s.writes.sort_unstable();
    println!(
        "{} {} {} {} {} {} {} {} {}",
        s.reads.len(),
        s.writes.len(),
        s.errors,
        s.secs,
        pct(&s.reads, 0.5),
        pct(&s.reads, 0.99),
        pct(&s.reads, 1.0),
        pct(&s.writes, 0.99),
        pct(&s.writes, 1.0),
    );
}
