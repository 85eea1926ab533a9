//! Eight readers and one writer, for a bounded time, with the default settings: nobody sees SQLITE_BUSY.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aquifer_sqlite::{SqlitePool, SqliteSyncPool};
use common::temp_db;

const RUN_FOR: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_readers_and_one_writer_never_see_sqlite_busy() {
    let (_dir, path) = temp_db("busy");
    let pool = SqlitePool::builder(&path).readers(8).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL)"))
        .await
        .unwrap();
    let deadline = Instant::now() + RUN_FOR;
    let errors = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let reads = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (pool, errors, reads) = (pool.clone(), Arc::clone(&errors), Arc::clone(&reads));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = pool
                    .read(|c| {
                        let n: i64 = c.query_row("SELECT count(*) FROM aq_sl_books", [], |r| r.get(0))?;
                        let last: Option<String> =
                            c.query_row("SELECT max(title) FROM aq_sl_books", [], |r| r.get(0))?;
                        Ok((n, last))
                    })
                    .await;
                match r {
                    Ok(_) => reads.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.lock().push(format!("read: {e}"));
                        0
                    }
                };
            }
        }));
    }
    let writer = {
        let (pool, errors) = (pool.clone(), Arc::clone(&errors));
        tokio::spawn(async move {
            let mut writes = 0u64;
            while Instant::now() < deadline {
                let r = pool
                    .write(move |tx| {
                        for i in 0..10 {
                            tx.execute("INSERT INTO aq_sl_books (title) VALUES (?1)", [format!("book {writes}-{i}")])?;
                        }
                        Ok(())
                    })
                    .await;
                match r {
                    Ok(()) => writes += 1,
                    Err(e) => errors.lock().push(format!("write: {e}")),
                }
            }
            writes
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let writes = writer.await.unwrap();
    let errors = errors.lock().clone();
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    assert!(writes > 0 && reads.load(Ordering::Relaxed) > 0, "writes {writes}, reads {reads:?}");
    let rows =
        pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_books", [], |r| r.get::<_, i64>(0))).await.unwrap();
    assert_eq!(rows as u64, writes * 10);
}

#[test]
fn eight_reader_threads_and_one_writer_thread_never_see_sqlite_busy_on_the_sync_pool() {
    let (_dir, path) = temp_db("busy_sync");
    let pool = SqliteSyncPool::builder(&path).readers(8).open_sync().unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL)"))
        .unwrap();
    let deadline = Instant::now() + RUN_FOR;
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let (mut ok, mut errors) = (0u64, Vec::new());
                while Instant::now() < deadline {
                    match pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_books", [], |r| r.get::<_, i64>(0))) {
                        Ok(_) => ok += 1,
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let mut writes = 0u64;
    let mut errors = Vec::new();
    while Instant::now() < deadline {
        match pool.write(|tx| tx.execute("INSERT INTO aq_sl_books (title) VALUES ('t')", [])) {
            Ok(_) => writes += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut reads = 0;
    for r in readers {
        let (ok, errs) = r.join().unwrap();
        reads += ok;
        errors.extend(errs);
    }
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    assert!(writes > 0 && reads > 0, "writes {writes}, reads {reads}");
}
