//! The helpers: results, transactions, retries of transient failures, and their metrics.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aquifer_postgres::sqlx::postgres::{PgConnection, PgRow};
use aquifer_postgres::sqlx::{self, FromRow, Row};
use aquifer_postgres::{BoxFuture, PgOperationError, PgPool};
use aquifer_testing::MetricsCapture;
use common::*;

async fn pool(test: &str) -> PgPool {
    connect(test, |_| {}).await.0
}

/// A [`fresh_table`] named for `name` with `columns`, holding `rows` (a VALUES list; none when empty).
async fn table(pool: &PgPool, name: &str, columns: &str, rows: &str) -> String {
    let t = fresh_table(&mut *pool.get().await.unwrap(), name, columns).await;
    if !rows.is_empty() {
        let insert = format!("INSERT INTO {t} VALUES {rows}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert)).execute(&mut *pool.get().await.unwrap()).await.unwrap();
    }
    t
}

/// Runs two [`PgPool::transaction`]s at once, numbered 1 and 2, each running `body(number, conn, meet)`;
/// `meet` makes the first attempts wait for each other (so that they conflict), and lets a retry run alone.
/// Returns what each transaction returned and the attempts they made in all.
async fn race<T, F>(pool: &PgPool, body: F) -> (T, T, usize)
where
    T: Send + 'static,
    F: for<'c> Fn(i32, &'c mut PgConnection, Meet) -> BoxFuture<'c, Result<T, sqlx::Error>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let run = |number: i32| {
        let (pool, barrier, attempts, body) = (pool.clone(), barrier.clone(), attempts.clone(), body.clone());
        tokio::spawn(async move {
            let mut first = true;
            pool.transaction(move |conn| {
                attempts.fetch_add(1, Ordering::SeqCst);
                let meet = Meet(first.then(|| barrier.clone()));
                first = false;
                body(number, conn, meet)
            })
            .await
        })
    };
    let (a, b) = (run(1), run(2));
    let (a, b) = (a.await.unwrap().expect("no error escapes"), b.await.unwrap().expect("no error escapes"));
    (a, b, attempts.load(Ordering::SeqCst))
}

/// Where the two transactions of [`race`] wait for each other: on their first attempt only.
struct Meet(Option<Arc<tokio::sync::Barrier>>);

impl Meet {
    async fn wait(&self) {
        if let Some(barrier) = &self.0 {
            barrier.wait().await;
        }
    }
}

#[derive(Debug, PartialEq)]
struct Item {
    id: i32,
    name: String,
}

impl<'r> FromRow<'r, PgRow> for Item {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Item { id: row.try_get("id")?, name: row.try_get("name")? })
    }
}

#[tokio::test]
async fn fetch_helpers_map_rows_and_execute_counts_them() {
    let pool = pool("helpers_rows").await;
    let t = table(&pool, "helpers_rows", "id int PRIMARY KEY, name text NOT NULL", "").await;

    let insert = format!("INSERT INTO {t} (id, name) VALUES ($1, $2), ($3, $4)");
    let n = pool
        .execute(|| sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(1).bind("one").bind(2).bind("two"))
        .await
        .unwrap();
    assert_eq!(n, 2);

    let by_id = format!("SELECT id, name FROM {t} WHERE id = $1");
    let one: Item = pool.fetch_one(|| sqlx::query(sqlx::AssertSqlSafe(by_id.clone())).bind(1)).await.unwrap();
    assert_eq!(one, Item { id: 1, name: "one".into() });
    let none: Option<Item> =
        pool.fetch_optional(|| sqlx::query(sqlx::AssertSqlSafe(by_id.clone())).bind(3)).await.unwrap();
    assert_eq!(none, None);
    let missing =
        pool.fetch_one::<Item, _>(|| sqlx::query(sqlx::AssertSqlSafe(by_id.clone())).bind(3)).await.unwrap_err();
    assert!(matches!(missing, PgOperationError::Backend(sqlx::Error::RowNotFound)), "{missing:?}");

    let all_sql = format!("SELECT id, name FROM {t} ORDER BY id");
    let all: Vec<Item> = pool.fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(all_sql.clone()))).await.unwrap();
    assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), vec![1, 2]);
    pool.close().await;
}

#[tokio::test]
async fn a_transaction_commits_on_ok_and_rolls_back_on_err_without_retrying_it() {
    let pool = pool("helpers_tx").await;
    let t = table(&pool, "helpers_tx", "id int PRIMARY KEY", "").await;
    let insert = format!("INSERT INTO {t} VALUES ($1)");

    let ins = insert.clone();
    pool.transaction(|conn| {
        let ins = ins.clone();
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(ins)).bind(1).execute(&mut *conn).await?;
            Ok(())
        })
    })
    .await
    .unwrap();

    let attempts = Arc::new(AtomicUsize::new(0));
    let err = pool
        .transaction(|conn| {
            let (ins, attempts) = (insert.clone(), attempts.clone());
            Box::pin(async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                sqlx::query(sqlx::AssertSqlSafe(ins.clone())).bind(2).execute(&mut *conn).await?;
                // A duplicate key is not transient: the whole transaction rolls back, once.
                sqlx::query(sqlx::AssertSqlSafe(ins)).bind(1).execute(&mut *conn).await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.backend_error().and_then(|e| e.as_database_error()).and_then(|e| e.code()).as_deref(),
        Some("23505")
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    let ids: Vec<(i32,)> =
        pool.fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} ORDER BY id")))).await.unwrap();
    assert_eq!(ids, vec![(1,)], "row 2 was rolled back with its transaction");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried_by_running_the_whole_transaction_again() {
    let pool = pool("helpers_serializable").await;
    let t = table(&pool, "helpers_ser", "id int PRIMARY KEY, on_call bool NOT NULL", "(1, true), (2, true)").await;

    // Write skew: both doctors see two on call and each takes one off. Under SERIALIZABLE one must fail with
    // 40001; the helper runs its closure again, which then sees one on call and leaves it.
    let table = t.clone();
    let (a, b, attempts) = race(&pool, move |id, conn, meet| {
        let t = table.clone();
        Box::pin(async move {
            sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").execute(&mut *conn).await?;
            let on_call: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t} WHERE on_call")))
                    .fetch_one(&mut *conn)
                    .await?;
            meet.wait().await;
            if on_call >= 2 {
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {t} SET on_call = false WHERE id = $1")))
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                return Ok(true);
            }
            Ok(false)
        })
    })
    .await;
    assert!(a ^ b, "exactly one doctor went off call ({a}, {b})");
    assert!(attempts >= 3, "the loser ran again");
    let on_call: (i64,) = pool
        .fetch_one(|| sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t} WHERE on_call"))))
        .await
        .unwrap();
    assert_eq!(on_call, (1,));
    pool.close().await;
}

#[tokio::test]
async fn helpers_record_db_client_operation_duration() {
    require_pg().await;
    let capture = MetricsCapture::new();
    let config = config("helpers_metrics");
    let pool = PgPool::from(config.builder().unwrap().meter(capture.meter()).build().unwrap());

    let _: (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.unwrap();
    let _: Vec<(i32,)> = pool.fetch_all(|| sqlx::query("SELECT 1")).await.unwrap();
    let err = pool.execute(|| sqlx::query("INSERT INTO aq_pg_no_such_table VALUES (1)")).await;
    assert!(err.is_err());
    pool.transaction(|_| Box::pin(async { Ok(()) })).await.unwrap();

    let metrics = capture.collect();
    let m = metrics.get("db.client.operation.duration").expect("db.client.operation.duration exported");
    assert_eq!(m.unit, "s");
    let select = m
        .points
        .iter()
        .find(|p| p.attr("db.operation.name") == Some("SELECT") && p.attr("error.type").is_none())
        .expect("a SELECT point without error.type");
    assert_eq!(select.count, 2);
    assert_eq!(select.attr("db.client.connection.pool.name"), config.pool.name.as_deref());
    assert_eq!(select.attr("db.system.name"), Some("postgresql"));
    let failed = m.point_with("error.type", "42P01").expect("the failed INSERT, with its SQLSTATE");
    assert_eq!(failed.attr("db.operation.name"), Some("INSERT"));
    assert_eq!(failed.count, 1, "a non-transient error is not retried");
    assert!(m.point_with("db.operation.name", "TRANSACTION").is_some());
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_retried_by_running_the_whole_transaction_again() {
    let pool = pool("helpers_deadlock").await;
    let t = table(&pool, "helpers_deadlock", "id int PRIMARY KEY, n int NOT NULL", "(1, 0), (2, 0)").await;

    // Two transactions lock the rows in opposite order; PostgreSQL breaks the deadlock (40P01, after
    // deadlock_timeout, 1 s by default) by aborting one, which the helper runs again.
    let update = format!("UPDATE {t} SET n = n + 1 WHERE id = $1");
    let ((), (), attempts) = race(&pool, move |first, conn, meet| {
        let update = update.clone();
        Box::pin(async move {
            sqlx::query(sqlx::AssertSqlSafe(update.clone())).bind(first).execute(&mut *conn).await?;
            meet.wait().await;
            sqlx::query(sqlx::AssertSqlSafe(update)).bind(3 - first).execute(&mut *conn).await?;
            Ok(())
        })
    })
    .await;
    assert_eq!(attempts, 3, "exactly one transaction ran twice");
    let rows: Vec<(i32,)> =
        pool.fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(format!("SELECT n FROM {t} ORDER BY id")))).await.unwrap();
    assert_eq!(rows, vec![(2,), (2,)], "both transactions committed once each");
    pool.close().await;
}
