//! Writes commit on Ok and roll back on Err or panic; readers cannot write; connections left dirty are cleaned
//! before reuse; a dropped future lets its closure finish.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aquifer_sqlite::rusqlite::{ErrorCode, params};
use aquifer_sqlite::{SqliteOperationError, SqlitePool, panicked};
use common::temp_db;

async fn pool_with_table(name: &str) -> (tempfile::TempDir, SqlitePool) {
    let (dir, path) = temp_db(name);
    let pool = SqlitePool::builder(&path).readers(2).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")).await.unwrap();
    (dir, pool)
}

fn code(err: &SqliteOperationError) -> Option<ErrorCode> {
    err.backend_error().and_then(|e| e.sqlite_error_code())
}

async fn count(pool: &SqlitePool) -> i64 {
    pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get(0))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_returns_ok_commits() {
    let (_dir, pool) = pool_with_table("tx_ok").await;
    let id = pool
        .write(|tx| {
            tx.execute("INSERT INTO aq_sl_t (v) VALUES (?1)", ["a"])?;
            Ok(tx.last_insert_rowid())
        })
        .await
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(count(&pool).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_returns_err_rolls_back() {
    let (_dir, pool) = pool_with_table("tx_err").await;
    let err = pool
        .write(|tx| {
            tx.execute("INSERT INTO aq_sl_t (v) VALUES ('kept?')", [])?;
            tx.execute("INSERT INTO aq_sl_t (v) VALUES (NULL)", []) // NOT NULL violation
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::ConstraintViolation), "{err}");
    assert_eq!(count(&pool).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_inside_a_write_rolls_back_and_the_pool_keeps_working() {
    let (_dir, pool) = pool_with_table("tx_panic").await;
    let err = pool
        .write(|tx| -> aquifer_sqlite::rusqlite::Result<()> {
            tx.execute("INSERT INTO aq_sl_t (v) VALUES ('doomed')", [])?;
            panic!("boom in the middle of a transaction");
        })
        .await
        .unwrap_err();
    let panic = err.backend_error().and_then(panicked).unwrap_or_else(|| panic!("expected a panic, got {err:?}"));
    assert_eq!(panic.operation, "write");
    assert!(panic.message.contains("boom"), "{panic}");
    assert_eq!(count(&pool).await, 0, "the panicking transaction must be rolled back");
    // The one writer is usable again, not leaked or stuck in a transaction.
    pool.write(|tx| tx.execute("INSERT INTO aq_sl_t (v) VALUES ('after')", [])).await.unwrap();
    assert_eq!(count(&pool).await, 1);
    assert_eq!(pool.writer().state().size, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_inside_a_read_is_reported_and_the_reader_comes_back_clean() {
    let (_dir, pool) = pool_with_table("read_panic").await;
    let err = pool
        .read(|c| -> aquifer_sqlite::rusqlite::Result<()> {
            c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get::<_, i64>(0))?;
            panic!("boom while reading");
        })
        .await
        .unwrap_err();
    assert!(err.backend_error().and_then(panicked).is_some_and(|p| p.operation == "read"), "{err:?}");
    // Every reader is handed out outside any transaction.
    for _ in 0..4 {
        assert!(pool.interact_read(|c| c.is_autocommit()).await.unwrap());
    }
    assert_eq!(count(&pool).await, 0);
}

#[test]
fn a_panic_inside_a_sync_write_unwinds_rolls_back_and_the_writer_keeps_working() {
    let (_dir, path) = temp_db("sync_panic");
    let pool = aquifer_sqlite::SqliteSyncPool::builder(&path).open_sync().unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")).unwrap();
    let p = pool.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        p.write(|tx| -> aquifer_sqlite::rusqlite::Result<()> {
            tx.execute("INSERT INTO aq_sl_t (v) VALUES ('doomed')", [])?;
            panic!("boom");
        })
    }));
    assert!(caught.is_err(), "sync panics unwind into the caller");
    pool.write(|tx| tx.execute("INSERT INTO aq_sl_t (v) VALUES ('after')", [])).unwrap();
    let n: i64 = pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get(0))).unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_cannot_write() {
    let (_dir, pool) = pool_with_table("ro_readers").await;
    let err = pool.read(|c| c.execute("INSERT INTO aq_sl_t (v) VALUES ('sneaky')", [])).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::ReadOnly), "{err}");
    let err = pool.interact_read(|c| c.execute_batch("CREATE TABLE aq_sl_other (x)")).await.unwrap().unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly), "{err}");
    assert_eq!(count(&pool).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_left_open_by_interact_is_rolled_back_before_reuse() {
    let (_dir, pool) = pool_with_table("left_open").await;
    pool.interact(|c| c.execute_batch("BEGIN; INSERT INTO aq_sl_t (v) VALUES ('abandoned');")).await.unwrap().unwrap();
    // The next user of the single writer gets it clean.
    let autocommit = pool.interact(|c| c.is_autocommit()).await.unwrap();
    assert!(autocommit, "the writer was handed out inside the abandoned transaction");
    assert_eq!(count(&pool).await, 0);
    assert_eq!(pool.writer().stats().resets, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_transaction_left_open_is_rolled_back_before_reuse() {
    let (_dir, pool) = pool_with_table("left_open_read").await;
    pool.interact_read(|c| c.execute_batch("BEGIN; SELECT * FROM aq_sl_t;")).await.unwrap().unwrap();
    for _ in 0..4 {
        assert!(pool.interact_read(|c| c.is_autocommit()).await.unwrap());
    }
}

/// On a current-thread runtime a write runs on the blocking pool, so its future can be dropped while the
/// closure runs (inline, the closure runs inside one poll and cannot be interrupted).
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_write_future_lets_the_closure_finish_and_returns_the_writer() {
    let (_dir, pool) = pool_with_table("dropped").await;
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    let write = pool.write(move |tx| {
        flag.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        tx.execute("INSERT INTO aq_sl_t (v) VALUES (?1)", params!["finished anyway"])
    });
    // Drop the future once the closure is running.
    assert!(tokio::time::timeout(Duration::from_millis(100), write).await.is_err(), "dropped while the closure ran");
    assert!(started.load(Ordering::SeqCst), "the closure should have started within 100 ms");
    // The writer comes back once the closure is done, with its transaction committed.
    let n = pool.write(|tx| tx.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get::<_, i64>(0))).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(pool.writer().state().size, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_sees_one_snapshot_for_all_its_statements() {
    let (dir, pool) = pool_with_table("snapshot").await;
    let path = dir.path().join("snapshot.db");
    let (first, second) = pool
        .read(move |c| {
            let first: i64 = c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get(0))?;
            // A write commits between the two statements of this read, from another connection and thread (a
            // read may run on a runtime worker, where blocking on the pool's own write is not allowed).
            std::thread::spawn(move || {
                let other = aquifer_sqlite::rusqlite::Connection::open(path).unwrap();
                other.busy_timeout(Duration::from_secs(5)).unwrap();
                other.execute("INSERT INTO aq_sl_t (v) VALUES ('x')", []).unwrap();
            })
            .join()
            .unwrap();
            let second: i64 = c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get(0))?;
            Ok((first, second))
        })
        .await
        .unwrap();
    assert_eq!((first, second), (0, 0));
    assert_eq!(count(&pool).await, 1);
}
