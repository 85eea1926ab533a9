//! Constructors: start-up failures are fast and say what went wrong; the lazy constructor does not connect.

mod common;

use std::time::{Duration, Instant};

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlManager, MySqlStartError, PoolConfig};

#[tokio::test]
async fn connect_opens_a_connection_at_start_up() {
    common::server().await;
    let pool = aquifer_mysql::connect(&common::url()).await.unwrap();
    assert_eq!(pool.state().size, 1, "the first connection is open before connect returns");
    let mut conn = pool.get().await.unwrap();
    let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}

#[tokio::test]
async fn connect_lazy_opens_nothing_until_the_first_get() {
    common::server().await;
    let pool = aquifer_mysql::connect_lazy(&common::url()).unwrap();
    assert_eq!(pool.state().size, 0);
    let mut conn = pool.get().await.unwrap();
    conn.ping().await.unwrap();
    assert_eq!(pool.state().size, 1);
}

#[tokio::test]
async fn connect_with_warms_up_min_idle_connections() {
    common::server().await;
    let config = PoolConfig { min_idle: 3, max_size: 4, ..PoolConfig::default() };
    let pool = MySqlConfig { pool: config, ..MySqlConfig::from_url(common::url()) }.connect().await.unwrap();
    assert_eq!(pool.state().idle, 3, "{}", pool.state());
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_within_a_second() {
    common::server().await;
    let started = Instant::now();
    let err = aquifer_mysql::connect(&aquifer_testing::servers::mariadb_url_as("aquifer_pw:not-the-password"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let Some(aquifer_mysql::mysql_async::Error::Server(server)) = err.backend_error() else {
        panic!("expected the server's refusal, got {err:?}");
    };
    assert_eq!(server.code, 1045, "ER_ACCESS_DENIED_ERROR: {server}");
    assert!(err.to_string().contains("Access denied"), "{err}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn a_refused_password_is_tried_once_then_the_pool_fails_fast() {
    common::server().await;
    let pool =
        aquifer_mysql::connect_lazy(&aquifer_testing::servers::mariadb_url_as("aquifer_pw:not-the-password")).unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, aquifer_mysql::MySqlPoolError::Unavailable { .. }), "{err:?}");
    assert_eq!(pool.stats().connect_errors, 1, "1045 is permanent: no retry before failing fast");
    assert!(pool.get().await.unwrap_err().to_string().contains("Access denied"));
}

#[tokio::test]
async fn the_right_password_is_accepted() {
    common::server().await;
    let pool =
        aquifer_mysql::connect(&aquifer_testing::servers::mariadb_url_as("aquifer_pw:aquifer-secret")).await.unwrap();
    let user: Option<String> = pool.get().await.unwrap().query_first("SELECT CURRENT_USER()").await.unwrap();
    assert!(user.unwrap().starts_with("aquifer_pw@"));
}

#[tokio::test]
async fn nothing_listening_fails_fast_instead_of_waiting_the_acquire_timeout() {
    // Port 1 on loopback: nothing listens, connects are refused at once.
    let config = PoolConfig { acquire_timeout: Duration::from_secs(30), ..PoolConfig::default() };
    let started = Instant::now();
    let err = MySqlConfig { pool: config, ..MySqlConfig::from_url("mysql://root@127.0.0.1:1/test") }
        .connect()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let MySqlStartError::Connect { source: pool_err, .. } = &err else {
        panic!("expected a connect error, got {err:?}")
    };
    assert!(
        matches!(**pool_err, aquifer_mysql::MySqlPoolError::Unavailable { .. }),
        "expected fail-fast, got {pool_err:?}"
    );
    assert_eq!(aquifer_mysql::error_type(pool_err.backend_error().unwrap()), "connection_refused");
}

#[tokio::test]
async fn a_lazy_pool_to_nothing_fails_fast_on_get() {
    let pool = aquifer_mysql::connect_lazy("mysql://root@127.0.0.1:1/test").unwrap();
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(err.to_string().contains("refused"), "{err}");
    let rendered = aquifer_testing::assert_each_cause_once(&err);
    assert!(rendered.starts_with("database unavailable for "), "a refused TCP connect is an outage: {rendered}");
}

#[tokio::test]
async fn an_unknown_database_is_reported_by_name() {
    common::server().await;
    let err =
        aquifer_mysql::connect(&format!("mysql://root@{}/aq_my_no_such_db", aquifer_testing::servers::mariadb_addr()))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("aq_my_no_such_db"), "{err}");
    // Each cause once in a chain walk (docs/architecture.md, "Errors"), and worded as permanent.
    assert!(err.is_permanent(), "{err:?}");
    let rendered = aquifer_testing::assert_each_cause_once(&err);
    assert!(rendered.contains("database refused the connection (permanent error): "), "{rendered}");
}

/// Serializes the tests that set `MYSQL_*` variables (`cargo test` runs tests as threads of one process).
static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_environment_constructor_reads_mysql_url_and_pool_settings() {
    common::server().await;
    let _env = ENV.lock().await;
    unsafe {
        std::env::set_var("MYSQL_URL", common::url());
        std::env::set_var("MYSQL_POOL_MAX_SIZE", "3");
        std::env::set_var("MYSQL_POOL_MIN_IDLE", "2");
        std::env::set_var("MYSQL_NAME", "aq_my_env_pool");
        std::env::set_var("MYSQL_TIME_ZONE", "+03:00");
    }
    let pool = aquifer_mysql::connect_env().await.unwrap();
    assert_eq!(pool.name(), "aq_my_env_pool");
    assert_eq!(pool.state().max_size, 3);
    assert_eq!(pool.state().idle, 2, "{}", pool.state());
    let tz: Option<String> = pool.get().await.unwrap().query_first("SELECT @@session.time_zone").await.unwrap();
    assert_eq!(tz.as_deref(), Some("+03:00"));
    unsafe {
        std::env::remove_var("MYSQL_URL");
    }
    let err = aquifer_mysql::connect_env_lazy().unwrap_err();
    assert!(err.to_string().contains("MYSQL_URL"), "{err}");
    unsafe {
        for var in ["MYSQL_POOL_MAX_SIZE", "MYSQL_POOL_MIN_IDLE", "MYSQL_NAME", "MYSQL_TIME_ZONE"] {
            std::env::remove_var(var);
        }
    }
}

#[tokio::test]
async fn a_bad_pool_setting_in_the_environment_names_the_variable() {
    let _env = ENV.lock().await;
    unsafe {
        std::env::set_var("MYSQL_URL", common::url());
        std::env::set_var("MYSQL_POOL_MAX_SIZE", "lots");
    }
    let err = aquifer_mysql::connect_env_lazy().unwrap_err();
    assert!(err.to_string().contains("MYSQL_POOL_MAX_SIZE") && err.to_string().contains("lots"), "{err}");
    unsafe {
        std::env::remove_var("MYSQL_URL");
        std::env::remove_var("MYSQL_POOL_MAX_SIZE");
    }
}

#[test]
fn an_unsupported_scheme_is_a_url_error() {
    let err = MySqlManager::from_url("postgres://root@127.0.0.1/test").unwrap_err();
    assert!(matches!(err, MySqlStartError::Url { .. }), "{err:?}");
    assert!(err.to_string().contains("postgres"), "{err}");
}

#[test]
fn an_unknown_url_parameter_is_named() {
    let err = MySqlManager::from_url("mysql://root@127.0.0.1/test?pool_colour=blue").unwrap_err();
    assert!(err.to_string().contains("pool_colour"), "{err}");
}

#[test]
fn a_mariadb_url_reports_db_system_mariadb() {
    use aquifer_core::Manager;
    let m = MySqlManager::from_url("mariadb://root@127.0.0.1:3306/test").unwrap();
    let d = m.descriptor();
    assert_eq!(d.system, "mariadb");
    assert_eq!(d.server_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(d.server_port, Some(3306));
    assert_eq!(d.namespace.as_deref(), Some("test"));
    let m = MySqlManager::from_url("mysql://root@db.internal/orders").unwrap();
    assert_eq!(m.descriptor().system, "mysql");
    assert_eq!(m.descriptor().default_pool_name(), "db.internal:3306/orders");
}

#[tokio::test]
async fn a_pool_from_mysql_async_opts_connects_over_tcp() {
    common::server().await;
    let opts = aquifer_mysql::mysql_async::OptsBuilder::default()
        .ip_or_hostname(common::HOST)
        .tcp_port(common::port())
        .user(Some("root"))
        .db_name(Some("test"));
    let pool = MySqlConfig::default().connect_with_options(opts).await.unwrap();
    let host: Option<String> = pool
        .get()
        .await
        .unwrap()
        .query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .await
        .unwrap();
    assert!(host.unwrap().starts_with("127.0.0.1:"), "Opts' default prefer_socket must not switch to the socket");
}
