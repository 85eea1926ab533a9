//! Session settings applied to every new connection.

mod common;

use std::time::{Duration, Instant};

use aquifer_postgres::sqlx;
use common::*;

#[tokio::test]
async fn application_name_defaults_to_the_pool_name() {
    let (pool, app) = connect("app_name", |_| {}).await;
    assert_eq!(scalar::<String>(&pool, "SELECT current_setting('application_name')").await, app);
    pool.close().await;
}

#[tokio::test]
async fn statement_timeout_is_enforced() {
    let (pool, _) = connect("stmt_timeout", |c| c.statement_timeout = Some(Duration::from_millis(200))).await;
    let mut conn = pool.get().await.unwrap();

    let started = Instant::now();
    let err = sqlx::query("SELECT pg_sleep(3)").execute(&mut *conn).await.expect_err("cancelled by the server");
    assert!(started.elapsed() < Duration::from_secs(3));
    let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "{err}");
    // The connection stays usable after the server cancelled its statement.
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(one, 1);
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn idle_in_transaction_session_timeout_is_set() {
    let (pool, _) =
        connect("idle_in_tx", |c| c.idle_in_transaction_session_timeout = Some(Duration::from_secs(90))).await;
    assert_eq!(scalar::<String>(&pool, "SHOW idle_in_transaction_session_timeout").await, "90s");
    pool.close().await;
}

#[tokio::test]
async fn init_sql_runs_on_every_new_connection() {
    let (pool, _) = connect("init_sql", |c| {
        c.init_sql.push("SET search_path = aq_pg_nowhere, public; SET work_mem = '7MB'".into());
        c.pool.max_size = 2;
    })
    .await;
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    for conn in [&mut a, &mut b] {
        let v: String = sqlx::query_scalar("SHOW work_mem").fetch_one(&mut **conn).await.unwrap();
        assert_eq!(v, "7MB");
    }
    drop((a, b));
    pool.close().await;
}

#[tokio::test]
async fn a_setting_the_server_rejects_fails_the_connect() {
    require_pg().await;
    let config = config("bad_setting");
    let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
    let err = config
        .connect_with_options(options.options([("statement_timeout", "soon")]))
        .await
        .expect_err("invalid value for statement_timeout");
    assert_eq!(err.backend_error().and_then(aquifer_postgres::sqlstate).as_deref(), Some("22023"), "{err}");
}
