//! Every pragma is applied on connect, read back from live connections: the writer, every reader, and the
//! r2d2 pools' connections.

mod common;

use std::time::Duration;

use aquifer_sqlite::{PoolConfig, SqliteConfig, SqlitePool, SqliteSyncPool, Synchronous, TempStore};
use common::{Pragmas, default_pragmas, read_pragmas, temp_db};

fn custom(path: &std::path::Path) -> SqliteConfig {
    SqliteConfig {
        synchronous: Synchronous::Full,
        busy_timeout: Duration::from_millis(1234),
        foreign_keys: false,
        temp_store: TempStore::File,
        cache_size: 500,
        mmap_size: 0,
        journal_size_limit: -1,
        wal_autocheckpoint: 0,
        pool: PoolConfig { max_size: 3, ..PoolConfig::default() },
        ..SqliteConfig::new(path.to_string_lossy())
    }
}

fn custom_pragmas(query_only: bool) -> Pragmas {
    Pragmas {
        journal_mode: "wal".into(),
        synchronous: 2,
        busy_timeout: 1234,
        foreign_keys: 0,
        temp_store: 1,
        cache_size: 500,
        mmap_size: 0,
        journal_size_limit: -1,
        wal_autocheckpoint: 0,
        query_only: i64::from(query_only),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_pragmas_read_back_on_the_writer() {
    let (_dir, path) = temp_db("pragmas_writer");
    let pool = SqlitePool::builder(&path).connect().await.unwrap();
    let got = pool.interact(|c| read_pragmas(c)).await.unwrap();
    assert_eq!(got, default_pragmas(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn default_pragmas_read_back_on_every_reader() {
    let (_dir, path) = temp_db("pragmas_readers");
    let pool = SqlitePool::builder(&path).readers(4).connect().await.unwrap();
    // Hold all four at once so each is a different connection.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.readers().get().await.unwrap());
    }
    assert_eq!(pool.readers().state().in_use, 4);
    for conn in &held {
        assert_eq!(read_pragmas(conn), default_pragmas(true));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_pragmas_read_back_on_writer_and_readers() {
    let (_dir, path) = temp_db("pragmas_custom");
    let pool = custom(&path).connect().await.unwrap();
    assert_eq!(pool.interact(|c| read_pragmas(c)).await.unwrap(), custom_pragmas(false));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.readers().get().await.unwrap());
    }
    for conn in &held {
        assert_eq!(read_pragmas(conn), custom_pragmas(true));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_journal_is_selectable() {
    let (_dir, path) = temp_db("pragmas_delete");
    let pool = SqlitePool::builder(&path)
        .journal_mode(aquifer_sqlite::JournalMode::Delete)
        .synchronous(Synchronous::Full)
        .connect()
        .await
        .unwrap();
    let got = pool.interact_read(|c| read_pragmas(c)).await.unwrap();
    assert_eq!((got.journal_mode.as_str(), got.synchronous), ("delete", 2));
}

#[test]
fn sync_pool_connections_get_the_same_pragmas() {
    let (_dir, path) = temp_db("pragmas_sync");
    let pool = SqliteSyncPool::builder(&path).readers(2).open_sync().unwrap();
    assert_eq!(read_pragmas(&pool.writer().get().unwrap()), default_pragmas(false));
    let (a, b) = (pool.readers().get().unwrap(), pool.readers().get().unwrap());
    assert_eq!(read_pragmas(&a), default_pragmas(true));
    assert_eq!(read_pragmas(&b), default_pragmas(true));
}

#[test]
fn sync_pool_applies_configured_pragmas() {
    let (_dir, path) = temp_db("pragmas_sync_custom");
    let pool = SqliteSyncPool::open(custom(&path)).unwrap();
    assert_eq!(read_pragmas(&pool.writer().get().unwrap()), custom_pragmas(false));
    assert_eq!(read_pragmas(&pool.readers().get().unwrap()), custom_pragmas(true));
}
