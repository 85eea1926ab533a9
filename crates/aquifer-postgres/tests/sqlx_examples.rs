//! The shapes of sqlx's own PostgreSQL examples (a todo list built on `migrate!`, transactions committed and
//! rolled back, JSON columns read into `#[derive(FromRow)]` structs), run on an Aquifer `PgPool` with only the
//! edits docs/migrating.md lists: the pool comes from `aquifer_postgres::PgPool::connect`, and a function that
//! took `sqlx::Transaction<'_, Postgres>` takes `&mut aquifer_postgres::PgTransaction`. sqlx's macros are used
//! through a dependency named `sqlx`, as the guide says. (sqlx's example sources themselves are not on
//! crates.io and this CI reaches only the package registries, so these are written for this test; the
//! compile-time checked `query!` macros, which need a database while compiling, are left out.)
//!
//! Each test runs in a database of its own, created and dropped here, so migrations and fixed table names
//! do not meet other test processes.

mod common;

use aquifer_postgres::{PgPool, PgTransaction};
use common::*;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

/// A database of this test's own on the test server; dropped by [`Scratch::drop_now`].
struct Scratch {
    name: String,
    url: String,
}

impl Scratch {
    async fn create(test: &str) -> Scratch {
        require_pg().await;
        let name = unique(test);
        let admin = PgPool::connect(&url()).await.unwrap_or_else(|e| panic!("PostgreSQL: {e} ({SCRIPT})"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let base = url();
        let (server, params) = base.rsplit_once('/').expect("a URL with a database");
        let params = params.split_once('?').map(|(_, p)| format!("?{p}")).unwrap_or_default();
        Scratch { url: format!("{server}/{name}{params}"), name }
    }

    async fn drop_now(self) {
        let admin = PgPool::connect(&url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
}

// --- the todo list ------------------------------------------------------------------------------------------

async fn add_todo(pool: &PgPool, description: &str) -> Result<i64, sqlx::Error> {
    let (id,): (i64,) = sqlx::query_as("INSERT INTO todos (description) VALUES ($1) RETURNING id")
        .bind(description)
        .fetch_one(pool)
        .await?;
    Ok(id)
}

async fn complete_todo(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let rows = sqlx::query("UPDATE todos SET done = TRUE WHERE id = $1").bind(id).execute(pool).await?;
    Ok(rows.rows_affected() > 0)
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Todo {
    id: i64,
    description: String,
    done: bool,
}

async fn list_todos(pool: &PgPool) -> Result<Vec<Todo>, sqlx::Error> {
    sqlx::query_as::<_, Todo>("SELECT id, description, done FROM todos ORDER BY id").fetch_all(pool).await
}

#[tokio::test]
async fn the_todo_list_runs_its_migrations_and_queries_on_the_pool() {
    let db = Scratch::create("sqlx_todos").await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("tests/sqlx_examples_migrations").run(&pool).await.expect("migrate!().run(&pool)");
    // Run again: already applied, nothing to do.
    sqlx::migrate!("tests/sqlx_examples_migrations").run(&pool).await.unwrap();

    let first = add_todo(&pool, "water the plants").await.unwrap();
    let second = add_todo(&pool, "file the taxes").await.unwrap();
    assert!(complete_todo(&pool, first).await.unwrap());
    assert!(!complete_todo(&pool, 9_999).await.unwrap(), "no such todo");
    assert_eq!(
        list_todos(&pool).await.unwrap(),
        [
            Todo { id: first, description: "water the plants".into(), done: true },
            Todo { id: second, description: "file the taxes".into(), done: false },
        ]
    );
    pool.close().await;
    db.drop_now().await;
}

// --- transactions -------------------------------------------------------------------------------------------

/// Was `transaction: &mut sqlx::Transaction<'_, Postgres>` in sqlx; the one documented edit.
async fn insert_todo(tx: &mut PgTransaction, description: &str) -> Result<i64, sqlx::Error> {
    let (id,): (i64,) = sqlx::query_as("INSERT INTO todos (description) VALUES ($1) RETURNING id")
        .bind(description)
        .fetch_one(&mut **tx)
        .await?;
    Ok(id)
}

#[tokio::test]
async fn transactions_commit_and_roll_back_on_the_pool() {
    let db = Scratch::create("sqlx_tx").await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("tests/sqlx_examples_migrations").run(&pool).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let rolled_back = insert_todo(&mut tx, "never seen").await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let committed = insert_todo(&mut tx, "seen").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    insert_todo(&mut tx, "dropped, so rolled back").await.unwrap();
    drop(tx);

    let ids: Vec<i64> = list_todos(&pool).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, [committed], "only the committed insert stays (rolled back: {rolled_back})");
    pool.close().await;
    db.drop_now().await;
}

// --- JSON ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Person {
    name: String,
    age: u16,
    favourite_fruit: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    person: Json<Person>,
}

#[tokio::test]
async fn json_columns_round_trip_through_derived_rows_on_the_pool() {
    let db = Scratch::create("sqlx_json").await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::migrate!("tests/sqlx_examples_migrations").run(&pool).await.unwrap();

    let ada = Person { name: "Ada".into(), age: 36, favourite_fruit: Some("quince".into()) };
    let (id,): (i64,) = sqlx::query_as("INSERT INTO people (person) VALUES ($1) RETURNING id")
        .bind(Json(&ada))
        .fetch_one(&pool)
        .await
        .unwrap();
    let rows: Vec<Row> = sqlx::query_as("SELECT id, person FROM people ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, &rows[0].person.0), (id, &ada));
    let (name,): (String,) =
        sqlx::query_as("SELECT person->>'name' FROM people WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    assert_eq!(name, "Ada");
    pool.close().await;
    db.drop_now().await;
}
