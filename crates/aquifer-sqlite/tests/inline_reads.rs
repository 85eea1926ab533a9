//! Where `read` runs its closure: inline on the calling worker for short WAL reads, on the blocking pool when
//! the runtime has no worker to spare, and never in a way that starves the other tasks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::ThreadId;
use std::time::Duration;

use aquifer_sqlite::{JournalMode, SqlitePool, panicked};
use common::temp_db;

async fn pool_at(path: &std::path::Path) -> SqlitePool {
    prepared(SqlitePool::builder(path).readers(4).connect().await.unwrap()).await
}

/// A pool whose writes run inline too ([`aquifer_sqlite::SqliteConfig::inline_writes`]).
async fn inline_writes_pool_at(path: &std::path::Path) -> SqlitePool {
    prepared(SqlitePool::builder(path).readers(4).inline_writes(true).connect().await.unwrap()).await
}

async fn prepared(pool: SqlitePool) -> SqlitePool {
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_t (id INTEGER PRIMARY KEY, v TEXT)")).await.unwrap();
    pool
}

/// The thread the task runs on before `read`, and the thread `read` ran the closure on.
async fn threads_of_a_read(pool: &SqlitePool) -> (ThreadId, ThreadId) {
    let caller = std::thread::current().id();
    let inside = pool.read(|_| Ok(std::thread::current().id())).await.unwrap();
    (caller, inside)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_read_runs_on_the_calling_worker_thread() {
    let (_dir, path) = temp_db("inline_short");
    let pool = pool_at(&path).await;
    let (caller, inside) = tokio::spawn(async move { threads_of_a_read(&pool).await }).await.unwrap();
    assert_eq!(caller, inside, "a short WAL read should not leave the worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_long_read_holds_one_of_two_workers_new_reads_run_off_the_runtime() {
    let (_dir, path) = temp_db("inline_long");
    let pool = pool_at(&path).await;
    let started = Arc::new(AtomicBool::new(false));
    let (release, released) = std::sync::mpsc::channel::<()>();
    let long = {
        let (pool, started) = (pool.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            let caller = std::thread::current().id();
            let inside = pool
                .read(move |_| {
                    started.store(true, Ordering::SeqCst);
                    // Holds this worker until the test lets go (bounded, should the test fail first).
                    let _ = released.recv_timeout(Duration::from_secs(10));
                    Ok(std::thread::current().id())
                })
                .await
                .unwrap();
            (caller, inside)
        })
    };
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Past the 100 µs after which a running read counts as long.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reader = pool.clone();
    let (caller, inside) = tokio::spawn(async move { threads_of_a_read(&reader).await }).await.unwrap();
    release.send(()).unwrap();
    let (long_caller, long_inside) = long.await.unwrap();
    assert_eq!(long_caller, long_inside, "the first read started inline");
    assert_ne!(caller, inside, "with one worker left, a new read must go to the blocking pool");
    // Once the long read is over, reads run inline again.
    let (caller, inside) = tokio::spawn(async move { threads_of_a_read(&pool).await }).await.unwrap();
    assert_eq!(caller, inside);
}

/// What the thread each call ran on was, against the caller's: write, transaction, interact, interact_read.
async fn threads_of_writes(pool: SqlitePool) -> (ThreadId, ThreadId, ThreadId, ThreadId, ThreadId) {
    tokio::spawn(async move {
        let caller = std::thread::current().id();
        let write = pool.write(|_| Ok(std::thread::current().id())).await.unwrap();
        let transaction = pool.transaction(|_| Ok(std::thread::current().id())).await.unwrap();
        let raw = pool.interact(|_| std::thread::current().id()).await.unwrap();
        let raw_read = pool.interact_read(|_| std::thread::current().id()).await.unwrap();
        (caller, write, transaction, raw, raw_read)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_writes_and_raw_access_run_off_the_runtime() {
    let (_dir, path) = temp_db("inline_default_writes");
    let (caller, write, transaction, raw, raw_read) = threads_of_writes(pool_at(&path).await).await;
    assert_ne!(caller, write, "a commit's I/O does not hold a runtime worker");
    assert_ne!(caller, transaction);
    assert_ne!(caller, raw);
    assert_ne!(caller, raw_read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_inline_writes_a_free_write_lock_runs_on_the_worker_and_raw_access_still_does_not() {
    let (_dir, path) = temp_db("inline_others");
    let (caller, write, transaction, raw, raw_read) = threads_of_writes(inline_writes_pool_at(&path).await).await;
    assert_eq!(caller, write, "a write whose lock is free runs on the calling worker");
    assert_eq!(caller, transaction);
    assert_ne!(caller, raw, "interact is the way to run long or blocking work off the runtime");
    assert_ne!(caller, raw_read, "interact_read is the way to run a long read off the runtime");
}

/// With inline writes, another process holds the write lock: an inline write does not wait for it on the worker (busy_timeout is
/// off for its `BEGIN IMMEDIATE`) but goes to the blocking pool, where it waits up to `busy_timeout`, while
/// the worker keeps serving other tasks; afterwards the writer has its busy_timeout back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_lock_another_process_holds_waits_off_the_runtime() {
    let (_dir, path) = temp_db("inline_write_busy");
    let pool = inline_writes_pool_at(&path).await;
    let other = aquifer_sqlite::rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; INSERT INTO aq_sl_t (v) VALUES ('other');").unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            for _ in 0..40 {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let writer = pool.clone();
    let (caller, inside) = tokio::spawn(async move {
        let caller = std::thread::current().id();
        let inside = writer
            .write(|tx| {
                tx.execute("INSERT INTO aq_sl_t (v) VALUES ('mine')", [])?;
                Ok(std::thread::current().id())
            })
            .await
            .unwrap();
        (caller, inside)
    })
    .await
    .unwrap();
    release.join().unwrap();
    ticker.await.unwrap();
    assert_ne!(caller, inside, "the write waited for the lock on the blocking pool");
    assert_eq!(ticks.load(Ordering::SeqCst), 40, "the other tasks kept running meanwhile");
    let timeout: i64 = pool.interact(|c| c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))).await.unwrap().unwrap();
    assert_eq!(timeout, 5000, "the writer's busy_timeout is back after the inline attempt");
    let rows: Vec<(String,)> = pool.fetch_all("SELECT v FROM aq_sl_t ORDER BY id", ()).await.unwrap();
    assert_eq!(rows, [("other".to_owned(),), ("mine".to_owned(),)]);
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_reads_run_off_the_runtime() {
    let (_dir, path) = temp_db("inline_current");
    let pool = pool_at(&path).await;
    let (caller, inside) = threads_of_a_read(&pool).await;
    assert_ne!(caller, inside, "the only thread of the runtime must not run SQLite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wal_reads_run_off_the_runtime() {
    // With a rollback journal a reader waits (sleeping in SQLite's busy handler) while the writer commits.
    let (_dir, path) = temp_db("inline_delete");
    let pool = SqlitePool::builder(&path).journal_mode(JournalMode::Delete).connect().await.unwrap();
    let (caller, inside) = tokio::spawn(async move { threads_of_a_read(&pool).await }).await.unwrap();
    assert_ne!(caller, inside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_reading_in_a_loop_let_other_tasks_run() {
    // Inline reads never return Pending; unless they charge Tokio's cooperative budget (each checkout and each
    // inline read does), two tasks reading in a loop would keep both workers until they finished, and the task
    // that stops them would only run afterwards.
    const MAX_READS: usize = 20_000;
    let (_dir, path) = temp_db("inline_coop");
    let pool = pool_at(&path).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reading = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop, reading) = (pool.clone(), Arc::clone(&stop), Arc::clone(&reading));
            tokio::spawn(async move {
                let mut reads = 0;
                while reads < MAX_READS && !stop.load(Ordering::Relaxed) {
                    pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_t", [], |r| r.get::<_, i64>(0)))
                        .await
                        .unwrap();
                    if reads == 0 {
                        reading.fetch_add(1, Ordering::SeqCst);
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // Both workers are reading before the stopper is spawned (this test body runs outside the workers, so
    // sleeping here blocks no worker; a timer might never fire if the workers never yielded).
    while reading.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    tokio::spawn(async move { stop.store(true, Ordering::Relaxed) });
    for r in readers {
        let reads = r.await.unwrap();
        assert!(reads < MAX_READS, "a reader did all its {reads} reads before the stopper task could run");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panic_inside_a_read_on_the_blocking_pool_is_reported() {
    let (_dir, path) = temp_db("inline_panic_blocking");
    let pool = pool_at(&path).await;
    let err =
        pool.read(|_| -> aquifer_sqlite::rusqlite::Result<()> { panic!("boom off the runtime") }).await.unwrap_err();
    assert!(
        err.backend_error().and_then(panicked).is_some_and(|p| p.operation == "read" && p.message.contains("boom")),
        "{err:?}"
    );
    assert!(pool.interact_read(|c| c.is_autocommit()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_an_inline_read_is_reported_and_the_worker_keeps_serving() {
    let (_dir, path) = temp_db("inline_panic");
    let pool = pool_at(&path).await;
    let task_pool = pool.clone();
    let err = tokio::spawn(async move {
        task_pool.read(|_| -> aquifer_sqlite::rusqlite::Result<()> { panic!("boom on the worker") }).await
    })
    .await
    .expect("the panic is caught inside read, not in the task")
    .unwrap_err();
    assert!(
        err.backend_error().and_then(panicked).is_some_and(|p| p.operation == "read" && p.message.contains("boom")),
        "{err:?}"
    );
    for _ in 0..8 {
        let (caller, inside) = {
            let pool = pool.clone();
            tokio::spawn(async move { threads_of_a_read(&pool).await }).await.unwrap()
        };
        assert_eq!(caller, inside);
    }
    assert!(pool.interact_read(|c| c.is_autocommit()).await.unwrap());
}
