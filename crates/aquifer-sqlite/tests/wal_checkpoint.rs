//! The WAL file stays bounded under constant overlapping reads, where SQLite's automatic (PASSIVE)
//! checkpoints alone let it grow without bound.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aquifer_sqlite::{CheckpointMode, SqlitePool};
use common::temp_db;

const LIMIT: u64 = 1024 * 1024;
/// LIMIT plus what the writer (at most 1000 writes/s of ~20 KiB of WAL each) can add in one checkpoint
/// interval and while TRUNCATE waits for the 20 ms readers, with a wide margin.
const BOUND: u64 = 4 * 1024 * 1024;

/// Runs 8 readers that each hold a read snapshot for 20 ms, back to back and staggered, so one is always open,
/// and a writer adding a 16 KiB row every millisecond, for `run_for`. Returns the largest WAL size seen.
async fn max_wal_under_constant_reads(pool: &SqlitePool, wal: PathBuf, run_for: Duration) -> u64 {
    pool.write(|tx| tx.execute_batch("CREATE TABLE IF NOT EXISTS aq_sl_blobs (id INTEGER PRIMARY KEY, b BLOB)"))
        .await
        .unwrap();
    let deadline = Instant::now() + run_for;
    let max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let max = Arc::clone(&max);
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                max.fetch_max(size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let readers: Vec<_> = (0..8u64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(2500 * i)).await;
                while Instant::now() < deadline {
                    pool.read(|c| {
                        c.query_row("SELECT count(*) FROM aq_sl_blobs", [], |r| r.get::<_, i64>(0))?;
                        std::thread::sleep(Duration::from_millis(20));
                        Ok(())
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    while Instant::now() < deadline {
        pool.write(|tx| tx.execute("INSERT INTO aq_sl_blobs (b) VALUES (zeroblob(16384))", [])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for r in readers {
        r.await.unwrap();
    }
    sampler.await.unwrap();
    max.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_constant_reads() {
    // Control: without the checkpoint task this workload starves SQLite's own checkpoints.
    let (_dir, path) = temp_db("wal_control");
    let control = SqlitePool::builder(&path).readers(8).checkpoint_interval(None).connect().await.unwrap();
    let control_max = max_wal_under_constant_reads(&control, wal_of(&path), Duration::from_millis(2500)).await;
    control.close().await;
    assert!(
        control_max > BOUND,
        "the control run did not reproduce checkpoint starvation (WAL reached only {control_max} bytes), so this \
         test would prove nothing"
    );

    let (_dir, path) = temp_db("wal_bounded");
    let pool = SqlitePool::builder(&path)
        .readers(8)
        .checkpoint_interval(Some(Duration::from_millis(50)))
        .wal_size_limit(LIMIT)
        .connect()
        .await
        .unwrap();
    let max = max_wal_under_constant_reads(&pool, wal_of(&path), Duration::from_millis(2500)).await;
    let stats = pool.stats().checkpoints;
    assert!(max <= BOUND, "WAL reached {max} bytes (bound {BOUND}, control run {control_max}); {stats:?}");
    assert!(stats.truncates > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_truncate_checkpoint_empties_the_wal() {
    let (_dir, path) = temp_db("wal_manual");
    let pool = SqlitePool::builder(&path).checkpoint_interval(None).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (x); INSERT INTO aq_sl_t VALUES (zeroblob(100000));"))
        .await
        .unwrap();
    assert!(std::fs::metadata(wal_of(&path)).unwrap().len() > 0);
    let result = pool.checkpoint(CheckpointMode::Truncate).await.unwrap();
    assert!(!result.busy, "{result:?}");
    assert_eq!(std::fs::metadata(wal_of(&path)).unwrap().len(), 0);
}

fn wal_of(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}
