//! The rest of the sqlx drop-in: `&PgPool` is an `sqlx::Acquire`, so sqlx's `Migrator` (what
//! `sqlx::migrate!().run(&pool)` calls) and code generic over `Acquire` take an Aquifer pool; sqlx's
//! constructors and counters (`PgPool::connect`, `connect_lazy`, `connect_with`, `connect_lazy_with`, `size()`,
//! `num_idle()`) exist on it.

mod common;

use aquifer_postgres::sqlx::migrate::Migrator;
use aquifer_postgres::sqlx::postgres::{PgConnectOptions, Postgres};
use aquifer_postgres::sqlx::{self, Acquire};
use aquifer_postgres::{PgPool, PgTransaction};
use common::*;

/// sqlx-style code generic over `Acquire`: writes a row and counts the table's rows on one connection.
async fn insert_and_count<'c, A>(conn: A, table: &str) -> Result<i64, sqlx::Error>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut conn = conn.acquire().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {table} VALUES (1)"))).execute(&mut *conn).await?;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(&mut *conn).await
}

/// The way generic code gets a transaction from any `Acquire`, `&PgPool` included: acquire, then begin on the
/// connection.
async fn insert_in_a_transaction<'c, A>(conn: A, table: &str, commit: bool) -> Result<(), sqlx::Error>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut conn = conn.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {table} VALUES (2)"))).execute(&mut *tx).await?;
    if commit { tx.commit().await } else { tx.rollback().await }
}

fn test_options() -> PgConnectOptions {
    url().parse().expect("the test URL parses")
}

#[tokio::test]
async fn sqlx_migrator_runs_migrations_through_a_pg_pool() {
    require_pg().await;
    // A schema of this test's own holds the migrations table too, so runs never see each other's migrations.
    let schema = unique("migrate");
    let admin = PgPool::connect(&url()).await.expect("the test server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let pool = PgPool::connect_with(test_options().options([("search_path", schema.as_str())])).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1_tracks.sql"), "CREATE TABLE tracks (id int PRIMARY KEY, title text NOT NULL);")
        .unwrap();
    std::fs::write(dir.path().join("2_seed.sql"), "INSERT INTO tracks VALUES (1, 'So What'), (2, 'Blue in Green');")
        .unwrap();
    let migrator = Migrator::new(dir.path()).await.expect("the migrations directory");
    // What `sqlx::migrate!().run(&pool)` does, with the migrations read at run time instead of compile time.
    migrator.run(&pool).await.expect("the migrations apply");
    migrator.run(&pool).await.expect("a second run applies nothing and succeeds");

    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM tracks ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(titles, ["So What", "Blue in Green"]);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(&pool).await.unwrap();
    assert_eq!(applied, [1, 2]);
    assert_eq!(pool.state().in_use, 0, "the migrator returned its connection");

    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
    admin.close().await;
}

#[tokio::test]
async fn code_generic_over_acquire_takes_the_pool_its_connections_and_its_transactions() {
    require_pg().await;
    let pool = config("acquire_generic").connect().await.unwrap();
    let table = unique("acquire_generic");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v int)")))
        .execute(&pool)
        .await
        .unwrap();

    // The pool.
    assert_eq!(insert_and_count(&pool, &table).await.unwrap(), 1);
    // A connection of the pool (sqlx's own `Acquire` for `&mut PgConnection`).
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(insert_and_count(&mut *conn, &table).await.unwrap(), 2);
    drop(conn);
    // A transaction of the pool: its rows are gone after the rollback.
    let mut tx: PgTransaction = pool.begin().await.unwrap();
    assert_eq!(insert_and_count(&mut tx, &table).await.unwrap(), 3);
    // `begin` through the transaction is a savepoint: rolled back on its own, the outer row stays.
    let mut savepoint = (&mut tx).begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {table} VALUES (9)"))).execute(&mut *savepoint).await.unwrap();
    savepoint.rollback().await.unwrap();
    let inside: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 3);
    tx.rollback().await.unwrap();

    // A transaction from any `Acquire`, the pool included: acquire, then begin on the connection.
    insert_in_a_transaction(&pool, &table, true).await.unwrap();
    insert_in_a_transaction(&pool, &table, false).await.unwrap();
    let rows: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT v FROM {table} ORDER BY v")))
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, [1, 1, 2], "the two direct inserts and the committed transaction's");

    // `Acquire::begin` on the pool itself cannot hand out an sqlx Transaction over an Aquifer connection: it
    // says what to call instead, and holds no connection.
    let err = Acquire::begin(&pool).await.expect_err("documented as unsupported");
    assert!(matches!(err, sqlx::Error::Configuration(_)), "{err:?}");
    assert!(err.to_string().contains("PgPool::begin()"), "{err}");
    assert_eq!(pool.state().in_use, 0, "every connection came back");

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn sqlx_constructors_and_counters() {
    require_pg().await;
    let pool = PgPool::connect(&url()).await.expect("a started pool");
    assert!(pool.size() >= 1, "connect opens the first connection: {}", pool.state());
    assert_eq!(pool.num_idle(), pool.state().idle);
    let size = pool.size();
    let conn = pool.acquire().await.unwrap();
    assert_eq!(pool.num_idle(), pool.state().idle);
    assert_eq!(pool.size() as usize, pool.state().size);
    assert!(pool.size() >= size);
    drop(conn);
    pool.close().await;

    let lazy = PgPool::connect_lazy(&url()).expect("a lazy pool");
    assert_eq!((lazy.size(), lazy.num_idle()), (0, 0), "nothing connects before the first use");
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&lazy).await.unwrap();
    assert_eq!((one, lazy.size(), lazy.num_idle()), (1, 1, 1));
    lazy.close().await;

    let lazy = PgPool::connect_lazy_with(test_options()).expect("a lazy pool");
    assert_eq!(lazy.size(), 0);
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&lazy).await.unwrap();
    assert_eq!(one, 1);
    lazy.close().await;
}
