//! Code written for sqlx's `PgPool` works on aquifer's: the pool is an sqlx `Executor`, and `begin()` /
//! `acquire()` behave as sqlx's do.

mod common;

use aquifer_postgres::PgPool;
use aquifer_postgres::sqlx::postgres::Postgres;
use aquifer_postgres::sqlx::{self, Executor, Row};
use common::*;
use futures_util::TryStreamExt;

async fn pool(test: &str) -> PgPool {
    connect(test, |_| {}).await.0
}

/// sqlx-style code, generic over any executor: it must accept `&PgPool`.
async fn count_rows<'e>(executor: impl Executor<'e, Database = Postgres>, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(executor).await
}

#[tokio::test]
async fn queries_run_directly_on_the_pool() {
    let pool = pool("dropin_queries").await;
    let t = fresh_table(&pool, "dropin", "id int").await;
    let done = sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {t} SELECT generate_series(1, $1)")))
        .bind(5)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 5);

    let all =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} ORDER BY id"))).fetch_all(&pool).await.unwrap();
    assert_eq!(all.iter().map(|r| r.get::<i32, _>(0)).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let streamed: Vec<i32> =
        sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} ORDER BY id")))
            .fetch(&pool)
            .try_collect()
            .await
            .unwrap();
    assert_eq!(streamed.len(), 5);
    let none: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} WHERE id > 9")))
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(none, None);
    let missing = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} WHERE id > 9"))).fetch_one(&pool).await;
    assert!(matches!(missing, Err(sqlx::Error::RowNotFound)), "{missing:?}");
    assert_eq!(count_rows(&pool, &t).await.unwrap(), 5);
    let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} WHERE id = $1")));
    let statement = (&pool).prepare(sql).await.unwrap();
    assert!(matches!(sqlx::Statement::parameters(&statement), Some(sqlx::Either::Left(p)) if p.len() == 1));
    assert_eq!(pool.state().in_use, 0, "every query returned its connection");
    pool.close().await;
}

#[tokio::test]
async fn begin_commits_rolls_back_and_rolls_back_on_drop() {
    let pool = pool("dropin_begin").await;
    let t = fresh_table(&pool, "dropin_tx", "id int").await;
    let insert = format!("INSERT INTO {t} VALUES ($1)");

    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(1).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(2).execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(insert)).bind(3).execute(&mut *tx).await.unwrap();
    drop(tx);

    assert_eq!(count_rows(&pool, &t).await.unwrap(), 1, "only the committed row stays");
    let mut conn = pool.acquire().await.unwrap();
    assert!(!in_transaction(&mut conn).await, "the dropped transaction was rolled back before reuse");
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn a_closed_pool_is_sqlx_pool_closed() {
    let pool = pool("dropin_closed").await;
    pool.close().await;
    let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolClosed), "{err:?}");
}
