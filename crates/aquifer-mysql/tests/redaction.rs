//! The password never shows: not in Debug or Display of the manager, the pool, the configuration or any
//! error, nor in health reports.

mod common;

use std::time::Duration;

use aquifer_mysql::{MySqlConfig, MySqlManager, MySqlPool, MySqlStartError, PoolConfig};

const SECRET: &str = "Sup3rS3cret-pw";

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password: {text}");
}

#[test]
fn the_manager_debug_hides_the_password() {
    let m = MySqlManager::from_url(&format!("mysql://app:{SECRET}@db.internal:3306/orders")).unwrap();
    let text = format!("{m:?}");
    assert_hidden("MySqlManager Debug", &text);
    assert!(text.contains("db.internal") && text.contains("app"), "still useful: {text}");
    // mysql_async's own Opts Debug prints the password: the manager never shows them.
    assert!(format!("{:?}", m.opts()).contains(SECRET), "premise: Opts' Debug leaks");
}

#[test]
fn a_manager_from_opts_hides_the_password() {
    let opts = aquifer_mysql::mysql_async::OptsBuilder::default().user(Some("app")).pass(Some(SECRET));
    assert_hidden("MySqlManager Debug", &format!("{:?}", MySqlManager::from_opts(opts)));
}

#[test]
fn an_invalid_url_error_hides_the_password() {
    for url in [
        format!("mysql://app:{SECRET}@db.internal:notaport/orders"),
        format!("mysql://app:{SECRET}@db.internal/orders?no_such_param=1"),
        format!("postgres://app:{SECRET}@db.internal/orders"),
    ] {
        let err = MySqlManager::from_url(&url).unwrap_err();
        assert!(matches!(err, MySqlStartError::Url { .. }), "{err:?}");
        assert_hidden("Display", &err.to_string());
        assert_hidden("Debug", &format!("{err:?}"));
    }
}

#[tokio::test]
async fn a_refused_password_hides_it_in_errors_pool_debug_and_health() {
    common::server().await;
    let url = aquifer_testing::servers::mariadb_url_as(&format!("aquifer_pw:{SECRET}"));
    let manager = MySqlManager::from_url(&url).unwrap();
    let config = PoolConfig { acquire_timeout: Duration::from_secs(5), ..PoolConfig::default() };
    let pool = MySqlPool::from_manager(manager, config).unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(err.to_string().contains("Access denied"), "{err}");
    assert_hidden("PoolError Display", &err.to_string());
    assert_hidden("PoolError Debug", &format!("{err:?}"));
    assert_hidden("Pool Debug", &format!("{pool:?}"));
    let health = pool.health().await;
    assert_hidden("health report", &serde_json::to_string(&health).unwrap());
    assert_hidden("health Debug", &format!("{health:?}"));
    let setup = aquifer_mysql::connect(&url).await.unwrap_err();
    assert_hidden("MySqlStartError Display", &setup.to_string());
    assert_hidden("MySqlStartError Debug", &format!("{setup:?}"));
}

#[test]
fn configuration_from_the_environment_hides_the_password() {
    let url = format!("mysql://app:{SECRET}@db.internal/orders");
    let pool = PoolConfig::from_lookup("MYSQL", |k| (k == "MYSQL_URL").then(|| url.clone())).unwrap();
    assert_hidden("PoolConfig Debug", &format!("{pool:?}"));
    let mysql = MySqlConfig::from_lookup("MYSQL", |k| (k == "MYSQL_URL").then(|| url.clone())).unwrap();
    assert_hidden("MySqlConfig Debug", &format!("{mysql:?}"));
}
