//! Every connection of the pool is terminated by the server while it sits idle (inside the validation bypass
//! window, so checkout does not ping it), then traffic resumes: the helpers fail no request, and once the
//! pool has seen one of them dead, `get()` hands out none of the others unchecked.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_postgres::sqlx;
use aquifer_postgres::{PgOperationError, PgPool};
use common::*;
use parking_lot::Mutex;

const POOL: usize = 8;

/// A pool of `POOL` connections, all open and all used just now (so all inside the bypass window).
async fn warm_pool(test: &str) -> (PgPool, String) {
    let mut config = config(test);
    config.pool.max_size = POOL;
    config.pool.min_idle = POOL;
    // Wide enough that the scenario below never leaves it: checkout does not validate.
    config.pool.validation_bypass = Duration::from_secs(30);
    let app = config.pool.name.clone().unwrap();
    let pool = config.connect().await.unwrap();
    let held: Vec<_> = futures_util::future::join_all((0..POOL).map(|_| pool.get())).await;
    for mut conn in held.into_iter().map(Result::unwrap) {
        let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.unwrap();
    }
    assert_eq!(pool.state().idle, POOL);
    (pool, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_fail_no_request_after_every_idle_connection_was_terminated() {
    let t = format!("aq_pg_dead_idle_{}", std::process::id());
    let mut admin = admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (task int, i int)")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (pool, app) = warm_pool("dead_idle_helpers").await;
    assert_eq!(terminate(&mut admin, &app).await, POOL as i64);
    // The server's FATAL and FIN reach the client sockets; traffic starts after them, as in the report.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<PgOperationError>::new()));
    let mut tasks = Vec::new();
    for task in 0..32_i32 {
        let (pool, ok, failed, t) = (pool.clone(), ok.clone(), failed.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10_i32 {
                // Reads and autocommitted writes alike: a write on a connection that was dead before it was
                // sent did not run, so retrying it applies it once.
                // Writes first: the dead connections meet writes, which may only be retried if they never ran.
                let r = if i % 2 == 1 {
                    pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT $1::int4").bind(i)).await.map(|_| ())
                } else {
                    let sql = format!("INSERT INTO {t} VALUES ($1, $2)");
                    pool.execute(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(task).bind(i)).await.map(|_| ())
                };
                match r {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failed.lock().push(e);
                        0
                    }
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let failed = std::mem::take(&mut *failed.lock());
    assert!(failed.is_empty(), "{} of 320 requests failed: {:?}", failed.len(), failed);
    assert_eq!(ok.load(Ordering::Relaxed), 320);
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 160, "every write applied exactly once");
    let stats = pool.stats();
    assert!(stats.closed_broken + stats.closed_validation_failed >= POOL as u64, "{stats:?}");
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {t}"))).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn once_one_idle_connection_is_found_dead_get_checks_the_others_before_handing_them_out() {
    let mut admin = admin().await;
    let (pool, app) = warm_pool("dead_idle_get").await;
    assert_eq!(terminate(&mut admin, &app).await, POOL as i64);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // One at a time, as a service with little traffic would: the first checkout cannot know (no round trip
    // was made), every later one must.
    let mut failures = 0;
    for _ in 0..2 * POOL {
        let mut conn = pool.get().await.unwrap();
        if sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut *conn).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 1, "only the connection that revealed the termination fails: {:?}", pool.stats());
    assert!(pool.stats().closed_validation_failed >= POOL as u64 - 1, "{:?}", pool.stats());
    pool.close().await;
}
