//! A returned connection is clean for the next user: no open transaction, no reply of someone else's query,
//! no late error, no dead socket. Pools of one connection make "the next user" the same connection.

mod common;

use std::time::{Duration, Instant};

use aquifer_postgres::sqlx::{self, Connection};
use aquifer_postgres::{PgConfig, PgPool};
use common::*;

async fn pool_of_one(test: &str, edit: impl FnOnce(&mut PgConfig)) -> (PgPool, String) {
    connect(test, |config| {
        config.pool.max_size = 1;
        edit(config);
    })
    .await
}

/// A [`fresh_table`] named for `name`, created outside the pool under test.
async fn table(name: &str) -> String {
    fresh_table(&mut admin().await, name, "id int PRIMARY KEY").await
}

/// A fresh table named after `test`, and a pool of one connection for `test` ([`pool_of_one`]).
async fn table_and_pool_of_one(test: &str) -> (String, PgPool, String) {
    let t = table(test).await;
    let (pool, app) = pool_of_one(test, |_| {}).await;
    (t, pool, app)
}

/// Inserts row 1 into `t` (inside a transaction when `conn` is one).
async fn insert_one(conn: &mut sqlx::PgConnection, t: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {t} VALUES (1)"))).execute(conn).await.unwrap();
}

/// How a test ends a transaction without commit or rollback.
enum Abandon {
    /// Dropped, as after an early return or a panic in real code.
    Drop,
    /// Leaked (`mem::forget`): its guard never runs.
    Leak,
}

/// Inserts row 1 into `t` inside a transaction on a connection of `pool`, abandons the transaction as `how`
/// says, and drops the connection.
async fn abandon_an_insert(pool: &PgPool, t: &str, how: Abandon) {
    let mut conn = pool.get().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    insert_one(&mut tx, t).await;
    match how {
        Abandon::Drop => drop(tx),
        Abandon::Leak => std::mem::forget(tx),
    }
}

async fn rows(name: &str) -> i64 {
    let mut admin = admin().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}"))).fetch_one(&mut admin).await.unwrap()
}

#[tokio::test]
async fn a_dropped_guard_inside_a_transaction_leaves_no_open_transaction_and_no_row() {
    let (t, pool, app) = table_and_pool_of_one("dropped_tx").await;
    abandon_an_insert(&pool, &t, Abandon::Drop).await;
    assert!(no_open_transaction(&app, Duration::from_secs(5)).await, "the pool left a transaction open");
    assert_eq!(rows(&t).await, 0, "the uncommitted row must not survive");
    // The next user of the same connection is outside any transaction.
    let mut conn = pool.get().await.unwrap();
    let in_tx = in_transaction(&mut conn).await;
    assert!(!in_tx);
    assert_eq!(pool.stats().created, 1, "the connection was reset and reused, not replaced");
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn a_query_future_dropped_during_pg_sleep_never_poisons_the_next_user() {
    let (pool, _) = pool_of_one("dropped_sleep", |_| {}).await;
    let mut conn = pool.get().await.unwrap();
    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), sqlx::query("SELECT pg_sleep(0.4)").execute(&mut *conn)).await;
    assert!(abandoned.is_err(), "the sleep outlives the timeout");
    drop(conn);

    let mut conn = pool.get().await.unwrap();
    let v: i32 = sqlx::query_scalar("SELECT 7").fetch_one(&mut *conn).await.expect("the next user's own answer");
    assert_eq!(v, 7);
    let v: String = sqlx::query_scalar("SELECT 'again'").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(v, "again");
    drop(conn);
    assert!(pool.stats().resets >= 1, "the pool reset the connection: {:?}", pool.stats());
    pool.close().await;
}

#[tokio::test]
async fn the_late_error_of_an_abandoned_query_is_not_reported_to_the_next_user() {
    // Without the pool's drain, sqlx would hand the next query the abandoned query's statement_timeout error.
    let (pool, _) = pool_of_one("late_error", |c| c.statement_timeout = Some(Duration::from_millis(150))).await;
    let mut conn = pool.get().await.unwrap();
    let abandoned =
        tokio::time::timeout(Duration::from_millis(30), sqlx::query("SELECT pg_sleep(1)").execute(&mut *conn)).await;
    assert!(abandoned.is_err());
    drop(conn);
    // Let the server's error arrive before the next user asks.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut conn = pool.get().await.unwrap();
    let v: i32 = sqlx::query_scalar("SELECT 8").fetch_one(&mut *conn).await.expect("no inherited 57014");
    assert_eq!(v, 8);
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn an_abandoned_long_query_is_discarded_after_the_drain_timeout() {
    let (pool, app) = pool_of_one("long_abandoned", |c| c.drain_timeout = Duration::from_millis(300)).await;
    let mut conn = pool.get().await.unwrap();
    let _ =
        tokio::time::timeout(Duration::from_millis(50), sqlx::query("SELECT pg_sleep(30)").execute(&mut *conn)).await;
    drop(conn);

    let started = Instant::now();
    let mut conn = pool.get().await.unwrap();
    let v: i32 = sqlx::query_scalar("SELECT 9").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(v, 9);
    assert!(started.elapsed() < Duration::from_secs(10), "the next user must not wait for the 30 s query");
    assert_eq!(pool.stats().created, 2, "the busy connection was replaced: {:?}", pool.stats());
    drop(conn);
    pool.close().await;
    // The abandoned backend still sleeps; end it so the test leaves nothing behind.
    let mut admin = admin().await;
    terminate(&mut admin, &app).await;
}

#[tokio::test]
async fn a_leaked_transaction_is_discarded() {
    let (t, pool, _) = table_and_pool_of_one("leaked_tx").await;
    abandon_an_insert(&pool, &t, Abandon::Leak).await;
    let mut conn = pool.get().await.unwrap();
    let in_tx = in_transaction(&mut conn).await;
    assert!(!in_tx);
    assert_eq!(pool.stats().closed_broken, 1, "{:?}", pool.stats());
    drop(conn);
    assert!(eventually(Duration::from_secs(5), || async { rows(&t).await == 0 }).await);
    pool.close().await;
}

#[tokio::test]
async fn a_cancelled_transaction_helper_commits_nothing() {
    let (t, pool, app) = table_and_pool_of_one("cancelled_helper").await;
    let insert = format!("INSERT INTO {t} VALUES (1)");
    let cancelled = tokio::time::timeout(
        Duration::from_millis(200),
        pool.transaction(|conn| {
            let insert = insert.clone();
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&mut *conn).await?;
                sqlx::query("SELECT pg_sleep(0.5)").execute(&mut *conn).await?;
                Ok(())
            })
        }),
    )
    .await;
    assert!(cancelled.is_err());
    assert!(no_open_transaction(&app, Duration::from_secs(5)).await);
    assert_eq!(rows(&t).await, 0);
    let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *pool.get().await.unwrap()).await.unwrap();
    assert_eq!(v, 1);
    pool.close().await;
}

#[tokio::test]
async fn a_raw_begin_before_an_abandoned_query_is_rolled_back() {
    let (t, pool, _) = table_and_pool_of_one("raw_begin").await;
    let mut conn = pool.get().await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    insert_one(&mut conn, &t).await;
    let _ =
        tokio::time::timeout(Duration::from_millis(50), sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *conn)).await;
    drop(conn);

    let mut conn = pool.get().await.unwrap();
    let in_tx = in_transaction(&mut conn).await;
    assert!(!in_tx, "the reset rolled the raw transaction back");
    drop(conn);
    assert_eq!(rows(&t).await, 0);
    pool.close().await;
}

#[tokio::test]
async fn a_partly_read_stream_is_drained_for_the_next_user() {
    use futures_util::StreamExt;
    let (pool, _) = pool_of_one("partial_stream", |_| {}).await;
    let mut conn = pool.get().await.unwrap();
    {
        let mut rows = sqlx::query_scalar::<_, i32>("SELECT generate_series(1, 50000)").fetch(&mut *conn);
        assert_eq!(rows.next().await.unwrap().unwrap(), 1);
    }
    drop(conn);
    let mut conn = pool.get().await.unwrap();
    let v: i64 = sqlx::query_scalar("SELECT 123::int8").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(v, 123);
    drop(conn);
    pool.close().await;
}
