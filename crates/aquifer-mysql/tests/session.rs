//! Session settings and init SQL are applied to every new connection, and again after a reset.

mod common;

use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, PoolConfig};

async fn pool_with(config: MySqlConfig, max_size: usize) -> MySqlPool {
    common::server().await;
    MySqlConfig {
        pool: PoolConfig { max_size, ..PoolConfig::default() },
        url: MySqlConfig::from_url(common::url()).url,
        ..config
    }
    .connect()
    .await
    .unwrap()
}

fn settings() -> MySqlConfig {
    MySqlConfig {
        time_zone: Some("+02:00".into()),
        sql_mode: Some("STRICT_ALL_TABLES,NO_ZERO_DATE".into()),
        wait_timeout: Some(Duration::from_secs(1234)),
        init_sql: vec!["SET @aq_my_init = 1".into(), "SET @aq_my_init = @aq_my_init * 10 + 2".into()],
        ..MySqlConfig::default()
    }
}

#[tokio::test]
async fn session_settings_and_init_sql_are_applied_to_every_connection_in_order() {
    let pool = pool_with(settings(), 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    for conn in &mut held {
        let row: Option<(String, String, u64, i64)> = conn
            .query_first("SELECT @@session.time_zone, @@session.sql_mode, @@session.wait_timeout, @aq_my_init")
            .await
            .unwrap();
        let (tz, mode, wait, init) = row.unwrap();
        assert_eq!(tz, "+02:00");
        assert_eq!(mode, "STRICT_ALL_TABLES,NO_ZERO_DATE");
        assert_eq!(wait, 1234);
        assert_eq!(init, 12, "init statements run in the order given");
    }
}

#[tokio::test]
async fn a_failing_init_statement_fails_the_connect_with_the_server_error() {
    common::server().await;
    let config = MySqlConfig { init_sql: vec!["SELECT * FROM aq_my_no_such_table".into()], ..MySqlConfig::default() };
    let err = MySqlConfig { pool: PoolConfig::default(), url: MySqlConfig::from_url(common::url()).url, ..config }
        .connect()
        .await
        .unwrap_err();
    let Some(aquifer_mysql::mysql_async::Error::Server(e)) = err.backend_error() else { panic!("{err:?}") };
    assert_eq!(e.code, 1146, "ER_NO_SUCH_TABLE: {e}");
}

#[tokio::test]
async fn an_unknown_time_zone_fails_the_connect_naming_it() {
    common::server().await;
    let config = MySqlConfig { time_zone: Some("Mars/Olympus_Mons".into()), ..MySqlConfig::default() };
    let err = MySqlConfig { pool: PoolConfig::default(), url: MySqlConfig::from_url(common::url()).url, ..config }
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
}

#[tokio::test]
async fn reset_on_return_clears_session_state_and_applies_the_settings_again() {
    let pool = pool_with(MySqlConfig { reset_on_return: true, ..settings() }, 1).await;
    let resets_before = pool.stats().resets;
    let id = {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("SET @aq_my_leftover = 'x', @aq_my_init = 99, SESSION time_zone = '+05:00'").await.unwrap();
        conn.id()
    };
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), id, "COM_RESET_CONNECTION keeps the connection");
    let row: Option<(Option<String>, i64, String)> =
        conn.query_first("SELECT @aq_my_leftover, @aq_my_init, @@session.time_zone").await.unwrap();
    assert_eq!(row, Some((None, 12, "+02:00".to_owned())));
    assert_eq!(pool.stats().resets, resets_before + 1);
}

#[tokio::test]
async fn without_reset_on_return_session_state_outlives_the_checkout() {
    let pool = pool_with(MySqlConfig::default(), 1).await;
    pool.get().await.unwrap().query_drop("SET @aq_my_leftover = 'kept'").await.unwrap();
    let v: Option<String> = pool.get().await.unwrap().query_first("SELECT @aq_my_leftover").await.unwrap();
    assert_eq!(v.as_deref(), Some("kept"), "documented: only transactions are cleaned up by default");
    assert_eq!(pool.stats().resets, 0, "a clean return costs no round trip");
}

#[tokio::test]
async fn autocommit_off_from_init_sql_is_the_mode_connections_are_returned_to() {
    let config = MySqlConfig { init_sql: vec!["SET autocommit = 0".into()], ..MySqlConfig::default() };
    let pool = pool_with(config, 1).await;
    for _ in 0..2 {
        let mut conn = pool.get().await.unwrap();
        let autocommit: Option<i64> = conn.query_first("SELECT @@autocommit").await.unwrap();
        assert_eq!(autocommit, Some(0));
        conn.query_drop("SET autocommit = 1").await.unwrap();
    }
}
