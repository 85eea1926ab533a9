//! Aquifer's quickstart: a book-writing app's data (authors, plots, characters) in SQLite, no server needed.
//!
//!     cargo run --example sqlite
//!
//! It creates a database in a temporary directory, writes 10,000 rows in batched transactions while four
//! readers keep querying, compares an N+1 query loop with aquifer-batch's BatchLoader and one batched query, and
//! prints the pools' stats and health. Set `SQLITE_PATH` to keep the database somewhere else (it is then left in place).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_batch::FetchRows;
use aquifer_batch::sqlite::SqliteRows;
use aquifer_sqlite::rusqlite::params;
use aquifer_sqlite::{SqliteConfig, SqliteOperationError, SqlitePool};

const AUTHORS: usize = 200;
const PLOTS: usize = 1_800;
const CHARACTERS: usize = 8_000;
const BATCH: usize = 500;
const READERS: usize = 4;

const GENRES: [&str; 6] = ["fantasy", "mystery", "science fiction", "romance", "horror", "historical"];
const ROLES: [&str; 4] = ["protagonist", "antagonist", "mentor", "sidekick"];

/// The whole run is one N+1 scope (a service opens one per request, e.g. with aquifer-http's `NPlusOneLayer`):
/// when it ends, each N+1 loop the pool's helpers ran in it is logged once with its `file:line` (target
/// `aquifer::n_plus_one`) and counted in `aquifer.n_plus_one`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Exports the pools' metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see aquifer-otel); kept
    // until after the scope, which counts its findings in `aquifer.n_plus_one` when it ends.
    let _otel = aquifer_otel::init()?;
    aquifer::n_plus_one::scope(run()).await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    // The database: $SQLITE_PATH if set, else a fresh temporary directory removed at the end.
    let keep = std::env::var("SQLITE_PATH").ok();
    let dir = std::env::temp_dir().join(format!("aquifer-quickstart-{}", std::process::id()));
    let path = match &keep {
        Some(p) => p.into(),
        None => {
            std::fs::create_dir_all(&dir)?;
            dir.join("books.db")
        }
    };
    let config = SqliteConfig {
        path: path.to_string_lossy().into_owned(),
        pool: aquifer_sqlite::PoolConfig { max_size: READERS, name: Some("books".into()), ..Default::default() },
        ..SqliteConfig::default()
    };
    let pool = config.connect().await?;
    let c = pool.config();
    println!("Aquifer SQLite quickstart: {}", path.display());
    println!(
        "  1 writer + {READERS} query_only readers; journal_mode={} synchronous={} busy_timeout={:?} cache_size={} \
         mmap_size={} MiB\n",
        c.journal_mode,
        c.synchronous,
        c.busy_timeout,
        c.cache_size,
        c.mmap_size >> 20
    );

    pool.write(|tx| {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS authors (
                 id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS plots (
                 id INTEGER PRIMARY KEY,
                 author_id INTEGER NOT NULL REFERENCES authors(id) ON DELETE CASCADE,
                 title TEXT NOT NULL, genre TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS characters (
                 id INTEGER PRIMARY KEY,
                 plot_id INTEGER NOT NULL REFERENCES plots(id) ON DELETE CASCADE,
                 name TEXT NOT NULL, role TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS plots_author ON plots(author_id);
             CREATE INDEX IF NOT EXISTS characters_plot ON characters(plot_id);
             DELETE FROM authors;",
        )
    })
    .await?;

    // 1. Write 10,000 rows in batched transactions while readers keep querying.
    let writing = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> =
        (0..READERS).map(|_| tokio::spawn(dashboard_reader(pool.clone(), Arc::clone(&done)))).collect();
    let mut batches = 0;
    let mut rows = 0;
    for (table, total) in [("authors", AUTHORS), ("plots", PLOTS), ("characters", CHARACTERS)] {
        for start in (0..total).step_by(BATCH) {
            let end = (start + BATCH).min(total);
            rows += pool.write(move |tx| insert_batch(tx, table, start, end)).await?;
            batches += 1;
        }
    }
    let write_time = writing.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut reads = Vec::new();
    let mut read_errors = 0;
    for r in readers {
        let (lat, errors) = r.await?;
        reads.extend(lat);
        read_errors += errors;
    }
    reads.sort();
    println!("1. Writing while reading");
    println!(
        "   wrote {rows} rows in {batches} transactions in {} ({:.0} rows/s)",
        ms(write_time),
        rows as f64 / write_time.as_secs_f64()
    );
    println!(
        "   meanwhile {READERS} readers ran {} dashboard reads: p50 {}, p99 {}, max {}; errors (SQLITE_BUSY or other): {read_errors}\n",
        reads.len(),
        ms(percentile(&reads, 0.50)),
        ms(percentile(&reads, 0.99)),
        ms(percentile(&reads, 1.0)),
    );

    // 2. N+1: one query for the plots, then one per plot for its characters; versus one batched query.
    let ids: Vec<i64> =
        pool.fetch_all("SELECT id FROM plots ORDER BY id LIMIT 200", ()).await?.into_iter().map(|(id,)| id).collect();
    let (a, n_plus_one) = best_of(5, || n_plus_one_round_trips(&pool, ids.clone())).await?;
    let (b, in_one_read) = best_of(5, || n_plus_one_in_one_read(&pool, ids.clone())).await?;
    let (c, batched) = best_of(5, || one_batched_query(&pool, ids.clone())).await?;
    let (d, loader) = best_of(5, || batch_loader(&pool, ids.clone())).await?;
    assert!(a == b && b == c && c == d, "all strategies must load the same characters");
    println!("2. Loading 200 plots with their characters ({} characters)", a);
    table(
        &["strategy", "queries", "time", "vs batched"],
        &[
            row("N+1, one pool round trip per plot", 201, n_plus_one, batched),
            row("N+1 inside one read closure", 201, in_one_read, batched),
            row("BatchLoader: 200 concurrent loads (aquifer-batch)", 1, loader, batched),
            row("one batched query (IN json_each)", 1, batched, batched),
        ],
    );
    println!(
        "   SQLite runs in-process, so N+1 statements on one connection are cheap; what costs is N trips through\n   \
         the pool (a checkout and a `fetch_all` each). Batch them: one read closure, or one query (which\n   \
         a BatchLoader writes for code that loads one plot at a time, like resolvers)."
    );

    // 3. What the pools did, and their health.
    let s = pool.stats();
    println!("\n3. Pool stats");
    table(
        &["pool", "size/max", "idle", "in use", "acquired", "waited", "timeouts", "created"],
        &[
            [
                "writer".to_owned(),
                format!("{}/{}", s.writer_state.size, s.writer_state.max_size),
                s.writer_state.idle.to_string(),
                s.writer_state.in_use.to_string(),
                s.writer.acquired.to_string(),
                s.writer.waited.to_string(),
                s.writer.timeouts.to_string(),
                s.writer.created.to_string(),
            ],
            [
                "readers".to_owned(),
                format!("{}/{}", s.readers_state.size, s.readers_state.max_size),
                s.readers_state.idle.to_string(),
                s.readers_state.in_use.to_string(),
                s.readers.acquired.to_string(),
                s.readers.waited.to_string(),
                s.readers.timeouts.to_string(),
                s.readers.created.to_string(),
            ],
        ],
    );
    println!(
        "   WAL: {} KiB, {} background checkpoints ({} TRUNCATE)",
        s.checkpoints.wal_bytes / 1024,
        s.checkpoints.runs,
        s.checkpoints.truncates
    );

    let health = pool.health_detail().await;
    println!("\n   Health: {}", health.status);
    table(
        &["pool", "status", "latency", "utilization", "server"],
        &[&health.writer, &health.readers].map(|h| {
            [
                h.pool.clone(),
                h.status.to_string(),
                h.latency.map_or("-".into(), |d| format!("{:.1} µs", d.as_secs_f64() * 1e6)),
                format!("{:.0} %", h.utilization * 100.0),
                h.server_version.clone().unwrap_or_default(),
            ]
        }),
    );

    pool.close().await;
    if keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
        println!("\nDone; removed {}.", dir.display());
    } else {
        println!("\nDone; the database stays at {}.", path.display());
    }
    Ok(())
}

/// Inserts rows `start..end` of `table`, deterministic so every run writes the same book data.
fn insert_batch(
    tx: &aquifer_sqlite::rusqlite::Transaction<'_>,
    table: &str,
    start: usize,
    end: usize,
) -> aquifer_sqlite::rusqlite::Result<usize> {
    for i in start..end {
        let id = i as i64 + 1;
        match table {
            "authors" => {
                let mut st = tx.prepare_cached("INSERT INTO authors (id, name, country) VALUES (?1, ?2, ?3)")?;
                st.execute(params![id, format!("Author {id}"), ["NZ", "FR", "JP", "BR"][i % 4]])?;
            }
            "plots" => {
                let mut st =
                    tx.prepare_cached("INSERT INTO plots (id, author_id, title, genre) VALUES (?1, ?2, ?3, ?4)")?;
                st.execute(params![id, (i % AUTHORS) as i64 + 1, format!("Plot {id}"), GENRES[i % GENRES.len()]])?;
            }
            _ => {
                let mut st =
                    tx.prepare_cached("INSERT INTO characters (id, plot_id, name, role) VALUES (?1, ?2, ?3, ?4)")?;
                st.execute(params![id, (i * 7 % PLOTS) as i64 + 1, format!("Character {id}"), ROLES[i % ROLES.len()]])?;
            }
        }
    }
    Ok(end - start)
}

/// A reader running the app's dashboard queries until the writer is done, timing each read.
async fn dashboard_reader(pool: SqlitePool, done: Arc<AtomicBool>) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut i = 0i64;
    while !done.load(Ordering::Relaxed) {
        i += 1;
        let t = Instant::now();
        let r = pool
            .read(move |c| {
                let per_genre: Vec<(String, i64)> = c
                    .prepare_cached("SELECT genre, count(*) FROM plots GROUP BY genre")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let author: Option<String> = c
                    .prepare_cached("SELECT a.name FROM authors a JOIN plots p ON p.author_id = a.id WHERE p.id = ?1")?
                    .query_row([i % PLOTS as i64 + 1], |r| r.get(0))
                    .ok();
                Ok((per_genre.len(), author))
            })
            .await;
        latencies.push(t.elapsed());
        if r.is_err() {
            errors += 1;
        }
    }
    (latencies, errors)
}

async fn n_plus_one_round_trips(pool: &SqlitePool, plot_ids: Vec<i64>) -> Result<usize, SqliteOperationError> {
    let mut n = 0;
    for id in plot_ids {
        // The N+1 loop: aquifer::n_plus_one reports the `fetch_all` call below once, when the scope ends.
        let names: Vec<(String,)> = pool.fetch_all("SELECT name FROM characters WHERE plot_id = ?1", (id,)).await?;
        n += names.len();
    }
    Ok(n)
}

async fn n_plus_one_in_one_read(pool: &SqlitePool, plot_ids: Vec<i64>) -> Result<usize, SqliteOperationError> {
    pool.read(move |c| {
        let mut st = c.prepare_cached("SELECT name FROM characters WHERE plot_id = ?1")?;
        let mut n = 0;
        for id in plot_ids {
            n += st.query_map([id], |r| r.get::<_, String>(0))?.count();
        }
        Ok(n)
    })
    .await
}

async fn one_batched_query(pool: &SqlitePool, plot_ids: Vec<i64>) -> Result<usize, SqliteOperationError> {
    // The ids travel as one JSON array parameter: one statement whatever their number.
    let ids = format!("[{}]", plot_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    pool.read(move |c| {
        c.prepare_cached(
            "SELECT ch.plot_id, ch.name FROM characters ch WHERE ch.plot_id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([ids], |r| r.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.len())
    })
    .await
}

async fn batch_loader(pool: &SqlitePool, plot_ids: Vec<i64>) -> Result<usize, Box<dyn std::error::Error>> {
    // One loader per request, with no Loader to write: `SqliteRows` fetches a plot's characters by key, and
    // `one_to_many` groups them by the plot id read from each row. The plots' resolvers load concurrently in
    // the request's task, and the loader turns their 200 loads into one `IN rarray(?1)` query on a reader.
    let characters = SqliteRows::<i64, (i64, String)>::table(pool, "characters", "plot_id", &["plot_id", "name"])?;
    let loader = characters.one_to_many(|(plot, _)| *plot);
    let loaded = tokio::spawn(async move {
        let loader = &loader;
        futures_util::future::join_all(plot_ids.into_iter().map(|id| async move { loader.load(id).await })).await
    })
    .await?;
    let mut n = 0;
    for characters in loaded {
        n += characters?.map_or(0, |c| c.len());
    }
    Ok(n)
}

/// Runs `f` `n` times; returns its result and the fastest time (the least disturbed by other work).
async fn best_of<F, Fut, E>(n: usize, mut f: F) -> Result<(usize, Duration), E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
{
    let mut best = Duration::MAX;
    let mut value = 0;
    for _ in 0..n {
        let t = Instant::now();
        value = f().await?;
        best = best.min(t.elapsed());
    }
    Ok((value, best))
}

fn row(name: &str, queries: usize, time: Duration, batched: Duration) -> [String; 4] {
    let factor = time.as_secs_f64() / batched.as_secs_f64();
    [name.to_owned(), queries.to_string(), ms(time), format!("{factor:.1}x")]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints a table with columns as wide as their widest cell.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("   | {} |", padded.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!("   |{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
    for r in rows {
        line(r.to_vec());
    }
}
