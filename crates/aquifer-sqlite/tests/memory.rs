//! In-memory databases: the writer and every reader see one database, which lives as long as the pool.

use std::time::Duration;

use aquifer_sqlite::{SqliteConfig, SqlitePool, SqliteSyncPool};

#[tokio::test(flavor = "multi_thread")]
async fn an_in_memory_database_is_shared_by_the_writer_and_every_reader() {
    let pool = SqliteConfig::new(":memory:").connect().await.unwrap();
    assert_eq!(pool.path(), ":memory:");
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_m (x INTEGER); INSERT INTO aq_sl_m VALUES (7);"))
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.readers().get().await.unwrap());
    }
    for conn in &held {
        let x: i64 = conn.query_row("SELECT x FROM aq_sl_m", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_in_memory_pools_are_separate_databases() {
    let a = SqlitePool::builder(":memory:").connect().await.unwrap();
    let b = SqlitePool::builder(":memory:").connect().await.unwrap();
    a.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_only_in_a (x)")).await.unwrap();
    let in_b: i64 = b
        .read(|c| c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'aq_sl_only_in_a'", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(in_b, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_memory_database_outlives_all_its_pooled_connections() {
    let pool = SqlitePool::builder(":memory:").readers(2).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_m (x INTEGER); INSERT INTO aq_sl_m VALUES (1);"))
        .await
        .unwrap();
    // Close every pooled connection; the database must survive.
    pool.readers().retain(|_, _| false);
    pool.writer().retain(|_, _| false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let x: i64 = pool.read(|c| c.query_row("SELECT x FROM aq_sl_m", [], |r| r.get(0))).await.unwrap();
    assert_eq!(x, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_and_the_writer_of_an_in_memory_database_work_concurrently() {
    let pool = SqlitePool::builder(":memory:").readers(4).connect().await.unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_m (x INTEGER)")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                while std::time::Instant::now() < deadline {
                    pool.read(|c| c.query_row("SELECT count(*) FROM aq_sl_m", [], |r| r.get::<_, i64>(0))).await?;
                }
                Ok::<_, aquifer_sqlite::SqliteOperationError>(())
            })
        })
        .collect();
    while std::time::Instant::now() < deadline {
        pool.write(|tx| tx.execute("INSERT INTO aq_sl_m VALUES (1)", [])).await.unwrap();
    }
    for r in readers {
        r.await.unwrap().unwrap();
    }
}

#[test]
fn the_sync_pool_shares_an_in_memory_database_too() {
    let pool = SqliteSyncPool::open(SqliteConfig::new(":memory:")).unwrap();
    pool.write(|tx| tx.execute_batch("CREATE TABLE aq_sl_m (x INTEGER); INSERT INTO aq_sl_m VALUES (3);")).unwrap();
    let (a, b) = (pool.readers().get().unwrap(), pool.readers().get().unwrap());
    for c in [&a, &b] {
        assert_eq!(c.query_row("SELECT x FROM aq_sl_m", [], |r| r.get::<_, i64>(0)).unwrap(), 3);
    }
}
