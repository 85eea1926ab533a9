//! The helpers every adapter has (`fetch_one`, `fetch_optional`, `fetch_all`, `execute`, `transaction`), with
//! the meaning they have everywhere: no row is an error for `fetch_one`, `SQLITE_BUSY` is retried, operations
//! are named after their statement's keyword and timed after checkout.

mod common;

use std::time::Duration;

use aquifer_core::PoolError;
use aquifer_sqlite::rusqlite::{Connection, Error as SqlError, ErrorCode};
use aquifer_sqlite::{RetryPolicy, SqliteConfig, SqliteOperationError, SqlitePool, panicked};
use aquifer_testing::MetricsCapture;
use common::temp_db;

async fn books(path: &std::path::Path, capture: Option<&MetricsCapture>) -> SqlitePool {
    let mut builder = SqlitePool::builder(path).name("books").readers(2);
    if let Some(c) = capture {
        builder = builder.meter(c.meter());
    }
    let pool = builder.connect().await.unwrap();
    pool.execute("CREATE TABLE aq_sl_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER)", ())
        .await
        .unwrap();
    pool
}

fn code(err: &SqliteOperationError) -> Option<ErrorCode> {
    err.backend_error().and_then(|e| e.sqlite_error_code())
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_one_returns_the_row_and_fails_when_there_is_none() {
    let (_dir, path) = temp_db("fetch_one");
    let pool = books(&path, None).await;
    pool.execute("INSERT INTO aq_sl_books (title, year) VALUES (?1, ?2)", ("Dune".to_owned(), 1965)).await.unwrap();
    let (title, year): (String, i64) =
        pool.fetch_one("SELECT title, year FROM aq_sl_books WHERE id = ?1", (1,)).await.unwrap();
    assert_eq!((title.as_str(), year), ("Dune", 1965));
    let err = pool.fetch_one::<(String,), _>("SELECT title FROM aq_sl_books WHERE id = ?1", (2,)).await.unwrap_err();
    assert!(matches!(err.backend_error(), Some(SqlError::QueryReturnedNoRows)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_optional_and_fetch_all_convert_rows() {
    let (_dir, path) = temp_db("fetch_all");
    let pool = books(&path, None).await;
    for (title, year) in [("Dune", 1965), ("Solaris", 1961), ("Kindred", 1979)] {
        pool.execute("INSERT INTO aq_sl_books (title, year) VALUES (?1, ?2)", (title, year)).await.unwrap();
    }
    let none: Option<(String,)> =
        pool.fetch_optional("SELECT title FROM aq_sl_books WHERE year > ?1", (2000,)).await.unwrap();
    assert_eq!(none, None);
    let some: Option<(String,)> =
        pool.fetch_optional("SELECT title FROM aq_sl_books WHERE year = ?1", (1961,)).await.unwrap();
    assert_eq!(some, Some(("Solaris".to_owned(),)));
    let all: Vec<(String, Option<i64>)> =
        pool.fetch_all("SELECT title, year FROM aq_sl_books ORDER BY year", ()).await.unwrap();
    let titles: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Solaris", "Dune", "Kindred"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_reports_rows_affected_and_the_new_rowid() {
    let (_dir, path) = temp_db("execute");
    let pool = books(&path, None).await;
    let done = pool.execute("INSERT INTO aq_sl_books (title) VALUES (?1)", ("Beloved",)).await.unwrap();
    assert_eq!((done.rows_affected, done.last_insert_rowid), (1, 1));
    pool.execute("INSERT INTO aq_sl_books (title) VALUES (?1)", ("Ubik",)).await.unwrap();
    let done = pool.execute("UPDATE aq_sl_books SET year = 1 WHERE id > ?1", (0,)).await.unwrap();
    assert_eq!(done.rows_affected, 2);
    let err = pool.execute("INSERT INTO aq_sl_books (title) VALUES (NULL)", ()).await.unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::ConstraintViolation), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_helper_never_writes() {
    let (_dir, path) = temp_db("fetch_ro");
    let pool = books(&path, None).await;
    let err = pool.fetch_all::<(i64,), _>("INSERT INTO aq_sl_books (title) VALUES ('x') RETURNING id", ()).await;
    assert_eq!(code(&err.unwrap_err()), Some(ErrorCode::ReadOnly), "fetch helpers run on query_only readers");
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_commits_on_ok_and_rolls_back_on_err_and_panic() {
    let (_dir, path) = temp_db("transaction");
    let pool = books(&path, None).await;
    let id = pool
        .transaction(|tx| {
            tx.execute("INSERT INTO aq_sl_books (title) VALUES ('kept')", [])?;
            Ok(tx.last_insert_rowid())
        })
        .await
        .unwrap();
    assert_eq!(id, 1);
    let err = pool
        .transaction(|tx| {
            tx.execute("INSERT INTO aq_sl_books (title) VALUES ('rolled back')", [])?;
            tx.execute("INSERT INTO aq_sl_books (title) VALUES (NULL)", [])
        })
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(ErrorCode::ConstraintViolation));
    let err = pool
        .transaction(|tx| -> aquifer_sqlite::rusqlite::Result<()> {
            tx.execute("INSERT INTO aq_sl_books (title) VALUES ('doomed')", [])?;
            panic!("boom in a transaction");
        })
        .await
        .unwrap_err();
    assert_eq!(err.backend_error().and_then(panicked).map(|p| p.operation), Some("transaction"), "{err:?}");
    let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM aq_sl_books", ()).await.unwrap();
    assert_eq!(n, 1);
    assert!(pool.interact(|c| c.is_autocommit()).await.unwrap(), "the writer comes back outside a transaction");
}

/// Another process holds the write lock longer than `busy_timeout`, then lets go: the helper's first attempt
/// fails with SQLITE_BUSY (recorded with that `error.type`), a retry succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_busy_is_retried_with_the_retry_policy() {
    let (_dir, path) = temp_db("busy_retry");
    let capture = MetricsCapture::new();
    let config = SqliteConfig {
        busy_timeout: Duration::from_millis(50),
        retry: RetryPolicy {
            max_attempts: 20,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
        },
        ..SqliteConfig::new(path.to_string_lossy())
    };
    let pool = config.builder().name("busy").meter(capture.meter()).connect().await.unwrap();
    pool.execute("CREATE TABLE aq_sl_t (x INTEGER)", ()).await.unwrap();

    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; INSERT INTO aq_sl_t VALUES (0);").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let done = pool.execute("INSERT INTO aq_sl_t VALUES (1)", ()).await.expect("retried until the lock was free");
    assert_eq!(done.rows_affected, 1);
    release.join().unwrap();

    // And a transaction body runs again, whole, after SQLITE_BUSY at BEGIN IMMEDIATE.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        other.execute_batch("ROLLBACK").unwrap();
    });
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = std::sync::Arc::clone(&attempts);
    pool.transaction(move |tx| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tx.execute("INSERT INTO aq_sl_t VALUES (2)", [])
    })
    .await
    .unwrap();
    release.join().unwrap();
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1, "the body runs once BEGIN IMMEDIATE succeeded");

    let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM aq_sl_t", ()).await.unwrap();
    assert_eq!(n, 3, "every write applied exactly once");
    let got = capture.collect();
    let ops = got.get("db.client.operation.duration").unwrap();
    let busy: u64 = ops
        .points
        .iter()
        .filter(|p| p.attr("error.type") == Some("SQLITE_BUSY"))
        .inspect(|p| assert!(matches!(p.attr("db.operation.name"), Some("INSERT" | "TRANSACTION")), "{p:?}"))
        .map(|p| p.count)
        .sum();
    assert!(busy >= 2, "each retried attempt is recorded with error.type SQLITE_BUSY: {busy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_policy_of_one_attempt_returns_sqlite_busy() {
    let (_dir, path) = temp_db("busy_never");
    let config = SqliteConfig {
        busy_timeout: Duration::from_millis(20),
        retry: RetryPolicy::never(),
        ..SqliteConfig::new(path.to_string_lossy())
    };
    let pool = config.connect().await.unwrap();
    pool.execute("CREATE TABLE aq_sl_t (x INTEGER)", ()).await.unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = pool.execute("INSERT INTO aq_sl_t VALUES (1)", ()).await.unwrap_err();
    assert!(err.backend_error().is_some_and(aquifer_sqlite::is_busy), "{err:?}");
    other.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_are_named_after_the_statement_and_acquire_failures_are_not_operations() {
    let (_dir, path) = temp_db("op_names");
    let capture = MetricsCapture::new();
    let pool = books(&path, Some(&capture)).await;
    pool.execute("INSERT INTO aq_sl_books (title) VALUES ('a')", ()).await.unwrap();
    let _: Vec<(i64,)> = pool.fetch_all("SELECT id FROM aq_sl_books", ()).await.unwrap();
    pool.transaction(|tx| tx.execute("DELETE FROM aq_sl_books", [])).await.unwrap();
    // The writer is held: a helper that cannot check it out fails with Acquire and records no operation.
    let held = pool.writer().get().await.unwrap();
    let err = tokio::time::timeout(Duration::from_millis(100), pool.execute("DELETE FROM aq_sl_books", ())).await;
    assert!(err.is_err(), "the helper waits for the writer");
    drop(held);
    pool.close().await;
    let err = pool.execute("DELETE FROM aq_sl_books", ()).await.unwrap_err();
    assert!(matches!(err, SqliteOperationError::Acquire(PoolError::Closed)), "{err:?}");

    let got = capture.collect();
    let ops = got.get("db.client.operation.duration").unwrap();
    let count = |pool: &str, name: &str| -> u64 {
        ops.points
            .iter()
            .filter(|p| {
                p.attr("db.client.connection.pool.name") == Some(pool) && p.attr("db.operation.name") == Some(name)
            })
            .map(|p| p.count)
            .sum()
    };
    assert_eq!(count("books/writer", "CREATE"), 1);
    assert_eq!(count("books/writer", "INSERT"), 1);
    assert_eq!(count("books/readers", "SELECT"), 1);
    assert_eq!(count("books/writer", "TRANSACTION"), 1);
    assert_eq!(count("books/writer", "DELETE"), 0, "neither the abandoned nor the refused call ran a statement");
    assert_eq!(count("books/writer", "PRAGMA"), 1, "close runs PRAGMA optimize");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_pool_opens_on_first_use_and_reads_before_any_write() {
    let (_dir, path) = temp_db("lazy");
    let pool = aquifer_sqlite::connect_lazy(&format!("sqlite://{}", path.display())).unwrap();
    // A read first (the writer's min_idle connection opens in the background meanwhile): the reader's first
    // connect makes sure the file exists, in WAL mode, through a writer connection.
    let tables: Vec<(String,)> = pool.fetch_all("SELECT name FROM sqlite_master", ()).await.unwrap();
    assert!(tables.is_empty());
    assert!(path.exists());
    let mode: (String,) = pool.fetch_one("PRAGMA journal_mode", ()).await.unwrap();
    assert_eq!(mode.0, "wal");
    pool.execute("CREATE TABLE aq_sl_t (x)", ()).await.unwrap();
    pool.close().await;

    // Lazy: a database that cannot be opened fails on use, with the typed connect error inside.
    let (dir, _) = temp_db("lazy_bad");
    let bad = dir.path().join("no/such/dir/x.db");
    let pool = aquifer_sqlite::connect_lazy(&bad.to_string_lossy()).expect("nothing is opened yet");
    let err = pool.fetch_all::<(i64,), _>("SELECT 1", ()).await.unwrap_err();
    let cause = err.pool_error().and_then(PoolError::backend_error).unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(cause.kind, aquifer_sqlite::ErrorKind::CannotOpen, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_in_memory_pool_keeps_its_database() {
    let pool = SqliteConfig::new(":memory:").connect_lazy().unwrap();
    pool.execute("CREATE TABLE aq_sl_m (x INTEGER)", ()).await.unwrap();
    pool.execute("INSERT INTO aq_sl_m VALUES (5)", ()).await.unwrap();
    pool.writer().retain(|_, _| false);
    pool.readers().retain(|_, _| false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (x,): (i64,) = pool.fetch_one("SELECT x FROM aq_sl_m", ()).await.unwrap();
    assert_eq!(x, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_env_reads_the_sqlite_variables() {
    let (_dir, path) = temp_db("env");
    let vars = [
        ("BOOKS_URL".to_owned(), format!("sqlite:{}", path.display())),
        ("BOOKS_NAME".to_owned(), "from_env".to_owned()),
        ("BOOKS_POOL_MAX_SIZE".to_owned(), "3".to_owned()),
        ("BOOKS_RETRY_MAX_ATTEMPTS".to_owned(), "7".to_owned()),
    ];
    let config =
        SqliteConfig::from_lookup("BOOKS", |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    assert_eq!(config.retry.max_attempts, 7);
    let pool = config.connect().await.unwrap();
    assert_eq!(pool.readers().name(), "from_env/readers");
    assert_eq!(pool.readers().state().max_size, 3);
    assert_eq!(pool.path(), path.to_string_lossy());
    let bad = SqliteConfig::from_lookup("BOOKS", |k| (k == "BOOKS_RETRY_MAX_ATTEMPTS").then(|| "0".to_owned()));
    assert!(bad.unwrap_err().to_string().contains("BOOKS_RETRY_MAX_ATTEMPTS"));
    assert_eq!(aquifer_sqlite::ENV_PREFIX, "SQLITE");
}

/// `db.client.operation.duration` starts once the connection is in hand: a write that waited 300 ms for the
/// writer records the statement's time, not the wait (the wait is `db.client.connection.wait_time`).
#[tokio::test(flavor = "multi_thread")]
async fn an_operation_is_timed_from_checkout_not_from_the_call() {
    let (_dir, path) = temp_db("timed");
    let capture = MetricsCapture::new();
    let pool = books(&path, Some(&capture)).await;
    let held = pool.writer().get().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
    });
    let started = std::time::Instant::now();
    pool.execute("INSERT INTO aq_sl_books (title) VALUES ('waited')", ()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300), "the call waited for the writer");
    release.await.unwrap();
    let got = capture.collect();
    let insert = got
        .get("db.client.operation.duration")
        .and_then(|m| m.point_with("db.operation.name", "INSERT"))
        .expect("the INSERT was recorded")
        .clone();
    assert_eq!(insert.count, 1);
    assert!(insert.value < 0.25, "the operation excludes the 300 ms wait: {} s", insert.value);
}
