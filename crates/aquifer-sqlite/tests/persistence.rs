//! Data survives closing and reopening; foreign keys are enforced.

mod common;

use aquifer_sqlite::rusqlite::ErrorCode;
use aquifer_sqlite::{SqlitePool, SqliteSyncPool};
use common::temp_db;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS aq_sl_authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS aq_sl_plots (
        id INTEGER PRIMARY KEY,
        author_id INTEGER NOT NULL REFERENCES aq_sl_authors(id),
        title TEXT NOT NULL
    );";

/// A new database with the schema and one author, written through the async pool.
async fn with_author(name: &str, author: &'static str) -> (tempfile::TempDir, std::path::PathBuf, SqlitePool) {
    let (dir, path) = temp_db(name);
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    pool.write(move |tx| {
        tx.execute_batch(SCHEMA)?;
        tx.execute("INSERT INTO aq_sl_authors (name) VALUES (?1)", [author])
    })
    .await
    .unwrap();
    (dir, path, pool)
}

#[tokio::test(flavor = "multi_thread")]
async fn data_persists_across_close_and_reopen() {
    let (_dir, path, pool) = with_author("persist", "Le Guin").await;
    assert_eq!(pool.close().await, 0);
    drop(pool);

    let reopened = SqlitePool::builder(&path).connect().await.unwrap();
    let name: String =
        reopened.read(|c| c.query_row("SELECT name FROM aq_sl_authors WHERE id = 1", [], |r| r.get(0))).await.unwrap();
    assert_eq!(name, "Le Guin");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_written_by_the_async_pool_is_read_by_the_sync_pool() {
    let (_dir, path, pool) = with_author("persist_sync", "Jemisin").await;
    pool.close().await;
    let path2 = path.clone();
    let name = tokio::task::spawn_blocking(move || {
        let sync = SqliteSyncPool::builder(&path2).open_sync().unwrap();
        sync.read(|c| c.query_row("SELECT name FROM aq_sl_authors", [], |r| r.get::<_, String>(0))).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(name, "Jemisin");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_keys_are_enforced() {
    let (_dir, path) = temp_db("fk");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch(SCHEMA)).await.unwrap();
    let err = pool
        .write(|tx| tx.execute("INSERT INTO aq_sl_plots (author_id, title) VALUES (42, 'Orphan')", []))
        .await
        .unwrap_err();
    assert_eq!(err.backend_error().and_then(|e| e.sqlite_error_code()), Some(ErrorCode::ConstraintViolation), "{err}");
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_keys_can_be_turned_off() {
    let (_dir, path) = temp_db("fk_off");
    let pool = SqlitePool::builder(&path).foreign_keys(false).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch(SCHEMA)).await.unwrap();
    pool.write(|tx| tx.execute("INSERT INTO aq_sl_plots (author_id, title) VALUES (42, 'Orphan')", [])).await.unwrap();
}
