//! MySqlConfig: defaults, validation that names the bad field, the environment, serde.

use std::path::PathBuf;
use std::time::Duration;

use aquifer_mysql::{DbSystem, MySqlConfig, SslMode, Transport};
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_are_valid_and_choose_no_transport() {
    let c = MySqlConfig::default();
    c.validate().unwrap();
    assert_eq!(c.transport, None);
    assert!(!c.reset_on_return);
    assert!(c.session_statements().is_empty());
}

#[test]
fn session_settings_become_one_set_statement_before_init_sql() {
    let c = MySqlConfig {
        time_zone: Some("+00:00".into()),
        sql_mode: Some("STRICT_ALL_TABLES".into()),
        wait_timeout: Some(Duration::from_secs(600)),
        init_sql: vec!["SET @a = 1".into()],
        ..MySqlConfig::default()
    };
    assert_eq!(
        c.session_statements(),
        vec![
            "SET SESSION time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES', wait_timeout = 600".to_owned(),
            "SET @a = 1".to_owned()
        ]
    );
}

#[test]
fn a_quote_in_a_session_value_is_refused_naming_the_field() {
    let c = MySqlConfig { sql_mode: Some("ANSI'; DROP TABLE x; --".into()), ..MySqlConfig::default() };
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("sql_mode"), "{e}");
}

#[test]
fn a_fractional_wait_timeout_is_refused() {
    let c = MySqlConfig { wait_timeout: Some(Duration::from_millis(1500)), ..MySqlConfig::default() };
    assert!(c.validate().unwrap_err().to_string().contains("wait_timeout"));
}

#[test]
fn env_reads_every_setting() {
    let c = MySqlConfig::from_lookup(
        "MYSQL",
        env(&[
            ("MYSQL_URL", "mysql://app:pw@db:3306/orders"),
            ("MYSQL_POOL_MAX_SIZE", "7"),
            ("MYSQL_TRANSPORT", "socket:/run/mysqld/mysqld.sock"),
            ("MYSQL_SYSTEM", "mariadb"),
            ("MYSQL_TIME_ZONE", "+00:00"),
            ("MYSQL_SQL_MODE", "TRADITIONAL"),
            ("MYSQL_WAIT_TIMEOUT", "10m"),
            ("MYSQL_INIT_SQL", "SET @a = 1; SET @b = 2"),
            ("MYSQL_RESET_ON_RETURN", "true"),
            ("MYSQL_PROGRAM_NAME", "orders"),
            ("MYSQL_SSL_MODE", "verify-identity"),
            ("MYSQL_SSL_CA", "/etc/ssl/ca.pem"),
            ("MYSQL_STMT_CACHE_SIZE", "64"),
            ("MYSQL_RETRY_MAX_ATTEMPTS", "5"),
        ]),
    )
    .unwrap();
    assert_eq!(c.url.as_ref().map(|u| u.expose()), Some("mysql://app:pw@db:3306/orders"));
    assert_eq!(c.pool.max_size, 7);
    assert!(!format!("{c:?}").contains(":pw@"), "the URL's password is redacted in Debug");
    assert_eq!(c.transport, Some(Transport::Socket("/run/mysqld/mysqld.sock".into())));
    assert_eq!(c.system, Some(DbSystem::MariaDb));
    assert_eq!(c.time_zone.as_deref(), Some("+00:00"));
    assert_eq!(c.sql_mode.as_deref(), Some("TRADITIONAL"));
    assert_eq!(c.wait_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.init_sql, vec!["SET @a = 1", "SET @b = 2"]);
    assert!(c.reset_on_return);
    assert_eq!(c.program_name, "orders");
    assert_eq!(c.ssl_mode, Some(SslMode::VerifyIdentity));
    assert_eq!(c.ssl_ca, Some(PathBuf::from("/etc/ssl/ca.pem")));
    assert_eq!(c.stmt_cache_size, Some(64));
    assert_eq!(c.retry.max_attempts, 5);
}

#[test]
fn a_bad_env_value_names_the_variable() {
    let e = MySqlConfig::from_lookup("MYSQL", env(&[("MYSQL_TRANSPORT", "carrier-pigeon")])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("MYSQL_TRANSPORT") && msg.contains("carrier-pigeon"), "{msg}");
    let e = MySqlConfig::from_lookup("MYSQL", env(&[("MYSQL_WAIT_TIMEOUT", "500ms")])).unwrap_err();
    assert!(e.to_string().contains("MYSQL_WAIT_TIMEOUT"), "{e}");
}

#[test]
fn config_deserializes_with_humane_durations() {
    let c: MySqlConfig = serde_json::from_str(
        r#"{"transport": {"socket": "/tmp/my.sock"}, "wait_timeout": "10m", "ssl_mode": "verify_ca"}"#,
    )
    .unwrap();
    assert_eq!(c.transport, Some(Transport::Socket("/tmp/my.sock".into())));
    assert_eq!(c.wait_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.ssl_mode, Some(SslMode::VerifyCa));
    let t: Transport = serde_json::from_str(r#""prefer_socket""#).unwrap();
    assert_eq!(t, Transport::PreferSocket);
}

/// An empty or malformed URL parameter is refused when the pool is built, naming the parameter.
#[test]
fn an_empty_or_malformed_url_parameter_is_refused_by_name() {
    for (url, param) in [
        ("mysql://app@db/x?socket=", "socket"),
        ("mysql://app@db/x?stmt_cache_size=", "stmt_cache_size"),
        ("mysql://app@db/x?stmt_cache_size=lots", "stmt_cache_size"),
        ("mysql://app@db/x?require_ssl=perhaps", "require_ssl"),
    ] {
        let e = aquifer_mysql::MySqlManager::from_url(url).expect_err(url);
        assert!(e.to_string().contains(param), "{url}: {e}");
    }
}

#[test]
fn hosts_come_from_the_env_and_serde_and_a_bad_one_is_named() {
    let c = MySqlConfig::from_lookup(
        "MYSQL",
        env(&[("MYSQL_URL", "mysql://app:pw@db/orders"), ("MYSQL_HOSTS", "db1:3306, db2:3307")]),
    )
    .unwrap();
    assert_eq!(c.hosts, ["db1:3306", "db2:3307"]);
    let c: MySqlConfig =
        serde_json::from_str(r#"{"url": "mysql://app@x/db", "hosts": ["db1", "[::1]:3307"]}"#).unwrap();
    c.validate().unwrap();
    assert_eq!(c.hosts, ["db1", "[::1]:3307"]);

    let e = MySqlConfig::from_lookup(
        "MYSQL",
        env(&[("MYSQL_URL", "mysql://app:pw@db/orders"), ("MYSQL_HOSTS", "db1:3306,db2:33o7")]),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("MYSQL_HOSTS") && msg.contains("db2:33o7") && msg.contains("port `33o7`"), "{msg}");
    let e = MySqlConfig::from_url("mysql://app:hunter2@db1:3306,db2:x/orders").validate().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("url") && msg.contains("host 2") && !msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_single_host_pool_refuses_a_host_list_and_points_to_the_cluster_pool() {
    let e = aquifer_mysql::MySqlManager::new(&MySqlConfig::from_url("mysql://app:hunter2@db1:3306,db2:3306/orders"))
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("lists 2 hosts") && msg.contains("build_cluster") && !msg.contains("hunter2"), "{msg}");
    // One host in `hosts` is a single-host pool to that host.
    let config = MySqlConfig { hosts: vec!["db9:3310".into()], ..MySqlConfig::from_url("mysql://app@ignored/orders") };
    let m = aquifer_mysql::MySqlManager::new(&config).unwrap();
    let d = aquifer_core::Manager::descriptor(&m);
    assert_eq!((d.server_address.as_deref(), d.server_port), (Some("db9"), Some(3310)));
}
