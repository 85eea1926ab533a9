//! Every connection of the pool is killed by the server (`KILL CONNECTION`) while it sits idle inside the
//! validation bypass window, then traffic resumes: the helpers fail no request (reads and writes), and once
//! the pool has seen one of them dead, `get()` hands out none of the others unchecked.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlOperationError, MySqlPool, PoolConfig};

const POOL: usize = 8;

/// A pool of `POOL` connections for a user of its own, all open and used just now.
async fn warm_pool(admin: &mut aquifer_mysql::mysql_async::Conn, user: &str) -> MySqlPool {
    let url = common::dedicated_user(admin, user).await;
    let config = PoolConfig {
        max_size: POOL,
        min_idle: POOL,
        // Wide enough that the scenario never leaves it: checkout does not ping.
        validation_bypass: Duration::from_secs(30),
        name: Some(user.to_owned()),
        ..PoolConfig::default()
    };
    let pool = MySqlConfig { pool: config, ..MySqlConfig::from_url(url) }.connect().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(pool.get().await.unwrap());
    }
    for conn in &mut held {
        conn.query_drop("SELECT 1").await.unwrap();
    }
    drop(held);
    assert_eq!(pool.state().idle, POOL);
    pool
}

/// Reads and transactions are retried on a fresh connection whatever the loss; an autocommitted `execute`
/// whose connection died under it is not (mysql_async cannot tell a session killed before the statement
/// arrived from one lost after it ran: both end in EOF), so a write may fail, once per dead connection at
/// most, with a typed `connection_lost`, and is never applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_fail_no_read_or_transaction_after_every_idle_connection_was_killed() {
    let mut admin = common::admin().await;
    let user = common::unique("aq_my_dead_idle");
    let table = format!("{user}_t");
    admin.query_drop(format!("DROP TABLE IF EXISTS {table}")).await.unwrap();
    admin.query_drop(format!("CREATE TABLE {table} (task INT, i INT)")).await.unwrap();
    let pool = warm_pool(&mut admin, &user).await;
    assert_eq!(common::kill_all_of(&mut admin, &user).await, POOL);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let ok = Arc::new(AtomicUsize::new(0));
    // (operation kind, error)
    let failed = Arc::new(Mutex::new(Vec::<(&'static str, MySqlOperationError)>::new()));
    let mut tasks = Vec::new();
    for task in 0..32_i32 {
        let (pool, ok, failed, table) = (pool.clone(), ok.clone(), failed.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..9_i32 {
                // Writes first, so the dead connections meet every kind of operation.
                let (kind, r) = match i % 3 {
                    0 => (
                        "execute",
                        pool.execute(&format!("INSERT INTO {table} VALUES (?, ?)"), (task, i)).await.map(|_| ()),
                    ),
                    1 => {
                        let sql = format!("INSERT INTO {table} VALUES (?, ?)");
                        let r = pool
                            .transaction(|tx| {
                                let sql = sql.clone();
                                Box::pin(async move { tx.exec_drop(sql, (task, i)).await })
                            })
                            .await;
                        ("transaction", r)
                    }
                    _ => ("read", pool.fetch_one::<i32, _>("SELECT ?", (i,)).await.map(|_| ())),
                };
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed.lock().unwrap().push((kind, e)),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    eprintln!("failed requests: {} of 288 ({:?})", failed.len(), failed.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    for (kind, e) in &failed {
        assert_eq!(*kind, "execute", "a {kind} failed: {e:?}");
        let backend = e.backend_error().expect("a driver error");
        assert_eq!(aquifer_mysql::error_type(backend), "connection_lost", "{e:?}");
    }
    assert!(failed.len() <= POOL, "at most one failure per dead connection: {}", failed.len());
    assert_eq!(ok.load(Ordering::Relaxed) + failed.len(), 288);
    let rows: Option<i64> = admin.query_first(format!("SELECT COUNT(*) FROM {table}")).await.unwrap();
    assert_eq!(rows, Some(192 - failed.len() as i64), "every successful write applied exactly once");
    pool.close().await;
    admin.query_drop(format!("DROP TABLE {table}")).await.unwrap();
    common::drop_user(&mut admin, &user).await;
}

#[tokio::test]
async fn once_one_idle_connection_is_found_dead_get_checks_the_others_before_handing_them_out() {
    let mut admin = common::admin().await;
    let user = common::unique("aq_my_dead_get");
    let pool = warm_pool(&mut admin, &user).await;
    assert_eq!(common::kill_all_of(&mut admin, &user).await, POOL);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut failures = 0;
    for _ in 0..2 * POOL {
        let mut conn = pool.get().await.unwrap();
        if conn.query_drop("SELECT 1").await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 1, "only the connection that revealed the kill fails: {:?}", pool.stats());
    assert!(pool.stats().closed_validation_failed >= POOL as u64 - 1, "{:?}", pool.stats());
    pool.close().await;
    common::drop_user(&mut admin, &user).await;
}
