//! fetch_one, fetch_all, execute and transaction: results, rollbacks, and retries of transient failures.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, Error, Row};
use aquifer_mysql::{MySqlConfig, MySqlOperationError, MySqlPool, PoolConfig};

async fn pool_with(config: MySqlConfig, pool: PoolConfig) -> MySqlPool {
    common::server().await;
    MySqlConfig { pool, url: MySqlConfig::from_url(common::url()).url, ..config }.connect().await.unwrap()
}

async fn pool() -> MySqlPool {
    pool_with(MySqlConfig::default(), PoolConfig { max_size: 4, ..PoolConfig::default() }).await
}

/// A table `aq_my_h_*` with rows (1, 10) and (2, 20).
async fn table(admin: &mut Conn) -> String {
    let t = common::unique("aq_my_h");
    admin
        .query_drop(format!(
            "CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB;
             INSERT INTO {t} (id, n) VALUES (1, 10), (2, 20)"
        ))
        .await
        .unwrap();
    t
}

/// The admin connection, a fresh [`table`] (dropped by the test) and a pool of four connections.
async fn table_and_pool() -> (Conn, String, MySqlPool) {
    let mut admin = common::admin().await;
    let t = table(&mut admin).await;
    (admin, t, pool().await)
}

fn server_code(e: &MySqlOperationError) -> Option<u16> {
    match e.backend_error() {
        Some(Error::Server(s)) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn fetch_one_returns_the_first_row_and_errors_when_there_is_none() {
    let (mut admin, t, pool) = table_and_pool().await;
    let n: i32 = pool.fetch_one(&format!("SELECT n FROM {t} WHERE id = ?"), (2,)).await.unwrap();
    assert_eq!(n, 20);
    let err = pool.fetch_one::<i32, _>(&format!("SELECT n FROM {t} WHERE id = ?"), (99,)).await.unwrap_err();
    assert!(err.backend_error().is_some_and(aquifer_mysql::is_row_not_found), "{err:?}");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn fetch_optional_returns_the_first_row_or_none() {
    let (mut admin, t, pool) = table_and_pool().await;
    let n: Option<i32> = pool.fetch_optional(&format!("SELECT n FROM {t} WHERE id = ?"), (2,)).await.unwrap();
    assert_eq!(n, Some(20));
    let none: Option<i32> = pool.fetch_optional(&format!("SELECT n FROM {t} WHERE id = ?"), (99,)).await.unwrap();
    assert_eq!(none, None);
    let row: Option<(i32, i32)> = pool.fetch_optional(&format!("SELECT id, n FROM {t} ORDER BY id"), ()).await.unwrap();
    assert_eq!(row, Some((1, 10)), "without parameters: a text query");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn fetch_all_returns_every_row_in_order() {
    let (mut admin, t, pool) = table_and_pool().await;
    let rows: Vec<(i32, i32)> =
        pool.fetch_all(&format!("SELECT id, n FROM {t} WHERE n > ? ORDER BY id"), (0,)).await.unwrap();
    assert_eq!(rows, vec![(1, 10), (2, 20)]);
    let rows: Vec<Row> = pool.fetch_all(&format!("SELECT * FROM {t} WHERE n > 100"), ()).await.unwrap();
    assert!(rows.is_empty());
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn execute_reports_affected_rows_and_the_generated_id() {
    let (mut admin, t, pool) = table_and_pool().await;
    let done = pool.execute(&format!("INSERT INTO {t} (n) VALUES (?)"), (30,)).await.unwrap();
    assert_eq!((done.rows_affected, done.last_insert_id), (1, Some(3)));
    let done = pool.execute(&format!("UPDATE {t} SET n = n + 1"), ()).await.unwrap();
    assert_eq!(done.rows_affected, 3);
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_server_error_is_returned_as_is_and_not_retried() {
    let pool = pool().await;
    let calls_before = pool.stats().acquired;
    let err = pool.execute("SELECT * FROM aq_my_no_such_table", ()).await.unwrap_err();
    assert_eq!(server_code(&err), Some(1146), "{err}");
    assert_eq!(pool.stats().acquired, calls_before + 1, "one attempt only");
}

#[tokio::test]
async fn a_transaction_commits_every_statement_together() {
    let (mut admin, t, pool) = table_and_pool().await;
    let t = &t;
    let total = pool
        .transaction(|tx| {
            Box::pin(async move {
                tx.exec_drop(format!("UPDATE {t} SET n = n - ? WHERE id = 1"), (5,)).await?;
                tx.exec_drop(format!("UPDATE {t} SET n = n + ? WHERE id = 2"), (5,)).await?;
                let total: Option<i64> = tx.query_first(format!("SELECT SUM(n) FROM {t}")).await?;
                Ok(total)
            })
        })
        .await
        .unwrap();
    assert_eq!(total, Some(30));
    let rows: Vec<(i32, i32)> = admin.query(format!("SELECT id, n FROM {t} ORDER BY id")).await.unwrap();
    assert_eq!(rows, vec![(1, 5), (2, 25)]);
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn an_error_in_a_transaction_rolls_everything_back() {
    let (mut admin, t, pool) = table_and_pool().await;
    let attempts = AtomicU32::new(0);
    let t = &t;
    let err = pool
        .transaction(|tx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.exec_drop(format!("UPDATE {t} SET n = 0 WHERE id = 1"), ()).await?;
                tx.exec_drop(format!("INSERT INTO {t} (id, n) VALUES (2, 0)"), ()).await?; // duplicate key
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1062), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "a duplicate key is not transient");
    let n: Option<i32> = admin.query_first(format!("SELECT n FROM {t} WHERE id = 1")).await.unwrap();
    assert_eq!(n, Some(10), "the first update was rolled back");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn an_application_error_aborts_the_transaction_and_comes_back_unchanged() {
    #[derive(Debug, thiserror::Error)]
    #[error("insufficient balance")]
    struct Insufficient;

    let (mut admin, t, pool) = table_and_pool().await;
    let t = &t;
    let err = pool
        .transaction(|tx| {
            Box::pin(async move {
                tx.exec_drop(format!("UPDATE {t} SET n = n - 100 WHERE id = 1"), ()).await?;
                Err::<(), _>(Error::Other(Box::new(Insufficient)))
            })
        })
        .await
        .unwrap_err();
    let Some(Error::Other(inner)) = err.backend_error() else { panic!("{err:?}") };
    assert!(inner.downcast_ref::<Insufficient>().is_some());
    let n: Option<i32> = admin.query_first(format!("SELECT n FROM {t} WHERE id = 1")).await.unwrap();
    assert_eq!(n, Some(10));
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_deadlocked_transaction_is_retried_whole_and_both_commit() {
    let (mut admin, t, pool) = table_and_pool().await;
    let attempts = Arc::new(AtomicU32::new(0));
    // Both first attempts lock one row each, meet, then reach for the other's row: InnoDB picks a victim.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for (first, second) in [(1, 2), (2, 1)] {
        let (pool, t, attempts, barrier) = (pool.clone(), t.clone(), Arc::clone(&attempts), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let (t, barrier) = (&t, &barrier);
            pool.transaction(|tx| {
                let first_attempt = attempts.fetch_add(1, Ordering::SeqCst) < 2;
                Box::pin(async move {
                    tx.exec_drop(format!("UPDATE {t} SET n = n + 1 WHERE id = ?"), (first,)).await?;
                    if first_attempt {
                        barrier.wait().await;
                    }
                    tx.exec_drop(format!("UPDATE {t} SET n = n + 1 WHERE id = ?"), (second,)).await?;
                    Ok(())
                })
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "one deadlock victim, retried once");
    let rows: Vec<(i32, i32)> = admin.query(format!("SELECT id, n FROM {t} ORDER BY id")).await.unwrap();
    assert_eq!(rows, vec![(1, 12), (2, 22)], "both transactions committed exactly once");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_lock_wait_timeout_is_retried_until_the_lock_is_free() {
    let mut admin = common::admin().await;
    let t = table(&mut admin).await;
    let config =
        MySqlConfig { init_sql: vec!["SET SESSION innodb_lock_wait_timeout = 1".into()], ..MySqlConfig::default() };
    let pool = pool_with(config, PoolConfig { max_size: 2, ..PoolConfig::default() }).await;
    // Another session holds the row for 1.5 s: the first attempt waits 1 s and fails with 1205.
    admin.query_drop("START TRANSACTION").await.unwrap();
    admin.query_drop(format!("UPDATE {t} SET n = 0 WHERE id = 1")).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        admin.query_drop("COMMIT").await.unwrap();
        admin
    });
    let before = pool.stats().acquired;
    let done = pool.execute(&format!("UPDATE {t} SET n = n + 5 WHERE id = 1"), ()).await.unwrap();
    assert_eq!(done.rows_affected, 1);
    assert_eq!(pool.stats().acquired - before, 2, "one lock wait timeout, one retry");
    let mut admin = release.await.unwrap();
    let n: Option<i32> = admin.query_first(format!("SELECT n FROM {t} WHERE id = 1")).await.unwrap();
    assert_eq!(n, Some(5));
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

/// A pool of one connection that is never pinged on checkout, so a killed connection is found by the helper.
async fn unvalidated_pool() -> MySqlPool {
    pool_with(
        MySqlConfig::default(),
        PoolConfig { max_size: 1, validation_bypass: Duration::from_secs(3600), ..PoolConfig::default() },
    )
    .await
}

async fn id_of(pool: &MySqlPool) -> u32 {
    pool.get().await.unwrap().id()
}

#[tokio::test]
async fn a_read_on_a_connection_killed_while_idle_is_retried_on_a_new_one() {
    let mut admin = common::admin().await;
    let pool = unvalidated_pool().await;
    let old = id_of(&pool).await;
    common::kill(&mut admin, old).await;
    let id: Option<u32> = pool.fetch_optional("SELECT CONNECTION_ID()", ()).await.unwrap();
    assert_ne!(id, Some(old));
    assert_eq!(pool.stats().closed_broken, 1);
}

#[tokio::test]
async fn a_write_on_a_connection_lost_after_sending_is_not_retried() {
    let mut admin = common::admin().await;
    let t = table(&mut admin).await;
    let pool = unvalidated_pool().await;
    let old = id_of(&pool).await;
    common::kill(&mut admin, old).await;
    let err = pool.execute(&format!("UPDATE {t} SET n = n + 1"), ()).await.unwrap_err();
    assert_eq!(aquifer_mysql::error_type(err.backend_error().unwrap()), "connection_lost", "{err:?}");
    // The next call gets a fresh connection.
    pool.execute(&format!("UPDATE {t} SET n = n + 1"), ()).await.unwrap();
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_transaction_whose_connection_dies_before_commit_is_retried_and_commits_once() {
    let (mut admin, t, pool) = table_and_pool().await;
    let attempts = AtomicU32::new(0);
    let killer = tokio::sync::Mutex::new(common::admin().await);
    let (t, killer) = (&t, &killer);
    pool.transaction(|tx| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tx.exec_drop(format!("UPDATE {t} SET n = n + 1 WHERE id = 1"), ()).await?;
            if attempt == 0 {
                let id: Option<u32> = tx.query_first("SELECT CONNECTION_ID()").await?;
                common::kill(&mut *killer.lock().await, id.unwrap()).await;
            }
            tx.exec_drop(format!("UPDATE {t} SET n = n + 1 WHERE id = 2"), ()).await?;
            Ok(())
        })
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let rows: Vec<(i32, i32)> = admin.query(format!("SELECT id, n FROM {t} ORDER BY id")).await.unwrap();
    assert_eq!(rows, vec![(1, 11), (2, 21)], "the killed attempt left nothing, the retry committed once");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn retries_stop_after_the_policy_attempts() {
    let mut admin = common::admin().await;
    let t = table(&mut admin).await;
    let mut config =
        MySqlConfig { init_sql: vec!["SET SESSION innodb_lock_wait_timeout = 1".into()], ..MySqlConfig::default() };
    config.retry.max_attempts = 2;
    let pool = pool_with(config, PoolConfig { max_size: 2, ..PoolConfig::default() }).await;
    admin.query_drop("START TRANSACTION").await.unwrap();
    admin.query_drop(format!("UPDATE {t} SET n = 0 WHERE id = 1")).await.unwrap();
    let before = pool.stats().acquired;
    let err = pool.execute(&format!("UPDATE {t} SET n = 1 WHERE id = 1"), ()).await.unwrap_err();
    assert_eq!(server_code(&err), Some(1205), "{err}");
    assert_eq!(pool.stats().acquired - before, 2);
    admin.query_drop("ROLLBACK").await.unwrap();
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn helper_futures_can_be_spawned() {
    let pool = pool().await;
    let p = pool.clone();
    let one = tokio::spawn(async move { p.fetch_optional::<i64, _>("SELECT 1", ()).await });
    let p = pool.clone();
    let tx = tokio::spawn(async move {
        p.transaction(|tx| Box::pin(async move { tx.query_first::<i64, _>("SELECT 2").await })).await
    });
    assert_eq!(one.await.unwrap().unwrap(), Some(1));
    assert_eq!(tx.await.unwrap().unwrap(), Some(2));
}

#[tokio::test]
async fn a_read_only_transaction_refuses_writes() {
    let (mut admin, t, pool) = table_and_pool().await;
    let mut options = aquifer_mysql::mysql_async::TxOpts::default();
    options.with_readonly(true).with_consistent_snapshot(true);
    let t = &t;
    let err = pool
        .transaction_with_options(options, |tx| {
            Box::pin(async move {
                let n: Option<i32> = tx.query_first(format!("SELECT n FROM {t} WHERE id = 1")).await?;
                assert_eq!(n, Some(10), "reads work");
                tx.query_drop(format!("UPDATE {t} SET n = 0")).await
            })
        })
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(1792), "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: {err}");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_transaction_runs_at_the_isolation_level_asked_for() {
    let (mut admin, t, pool) = table_and_pool().await;
    let mut options = aquifer_mysql::mysql_async::TxOpts::default();
    options.with_isolation_level(aquifer_mysql::mysql_async::IsolationLevel::Serializable);
    let tt = &t;
    let level = pool
        .transaction_with_options(options, |tx| {
            Box::pin(async move {
                // MariaDB lists the running transaction, with its isolation level, in information_schema.INNODB_TRX
                // once it has touched InnoDB; a locking read makes it do so.
                tx.query_drop(format!("SELECT n FROM {tt} WHERE id = 1 FOR UPDATE")).await?;
                // The table is a cache another test may have just read; ask again until it lists this transaction.
                for _ in 0..20 {
                    let level: Option<String> = tx
                        .query_first(
                            "SELECT trx_isolation_level FROM information_schema.INNODB_TRX
                             WHERE trx_mysql_thread_id = CONNECTION_ID()",
                        )
                        .await?;
                    if level.is_some() {
                        return Ok(level);
                    }
                    tokio::time::sleep(common::INNODB_TRX_POLL).await;
                }
                Ok(None)
            })
        })
        .await
        .unwrap();
    assert_eq!(level.as_deref(), Some("SERIALIZABLE"));
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}
