//! Property tests of what a user feeds this adapter: environment variables, serde configs and URLs. Whatever
//! the input, nothing panics, every error names the variable (or URL parameter) and shows the value as
//! written, and no password shows.

use std::collections::HashMap;

use aquifer_mysql::{ConfigError, MySqlConfig, MySqlManager, MySqlStartError};
use aquifer_testing::fuzz::env_value;
use proptest::prelude::*;

/// Every variable `MySqlConfig::from_env("MYSQL")` reads (the pool's as well).
const VARS: &[&str] = &[
    "MYSQL_URL",
    "MYSQL_TRANSPORT",
    "MYSQL_SYSTEM",
    "MYSQL_TIME_ZONE",
    "MYSQL_SQL_MODE",
    "MYSQL_WAIT_TIMEOUT",
    "MYSQL_INIT_SQL",
    "MYSQL_RESET_ON_RETURN",
    "MYSQL_PROGRAM_NAME",
    "MYSQL_SSL_MODE",
    "MYSQL_SSL_CA",
    "MYSQL_STMT_CACHE_SIZE",
    "MYSQL_RETRY_MAX_ATTEMPTS",
    "MYSQL_NAME",
    "MYSQL_POOL_MAX_SIZE",
    "MYSQL_POOL_MIN_IDLE",
    "MYSQL_POOL_IDLE_TIMEOUT",
    "MYSQL_POOL_MAX_LIFETIME",
    "MYSQL_POOL_VALIDATION_BYPASS",
    "MYSQL_POOL_CLOSE_TIMEOUT",
    "MYSQL_POOL_LEAK_THRESHOLD",
    "MYSQL_POOL_HEALTH_INTERVAL",
];

const SECRET: &str = "Zq9secretXy";

/// `vars`, with a URL unless they set one (a missing URL is an error of its own).
fn from(vars: &HashMap<String, String>) -> Result<MySqlConfig, ConfigError> {
    let url = || Some("mysql://app@db/x".to_owned());
    MySqlConfig::from_lookup("MYSQL", |k| vars.get(k).cloned().or_else(|| (k == "MYSQL_URL").then(url).flatten()))
}

fn value() -> impl Strategy<Value = String> {
    env_value(&["socket:", "tcp", "'UTC"])
}

fn check_env_error(e: &ConfigError, vars: &HashMap<String, String>) -> Result<(), TestCaseError> {
    aquifer_testing::fuzz::check_env_error(e, vars, SECRET)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn every_env_error_names_its_variable_and_the_value_as_written(
        set in prop::collection::vec((prop::sample::select(VARS), value()), 1..4),
    ) {
        let vars: HashMap<String, String> = set.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if let Err(e) = from(&vars) {
            check_env_error(&e, &vars)?;
        }
    }

    #[test]
    fn a_url_never_panics_and_its_errors_name_it_without_the_password(
        host in prop_oneof![Just("127.0.0.1".to_owned()), "[a-z0-9.:]{0,12}"],
        port in prop_oneof![Just(String::new()), (0u32..100_000).prop_map(|p| format!(":{p}")), Just(":x".to_owned())],
        key in prop::sample::select(vec!["socket", "prefer_socket", "require_ssl", "stmt_cache_size", "pool_min", "x"]),
        v in prop_oneof![Just(String::new()), "[a-z0-9=%/-]{0,8}"],
        slashes in prop::sample::select(vec!["//", "/", ""]),
        scheme in prop::sample::select(vec!["mysql", "mariadb", "postgres"]),
    ) {
        let url = format!("{scheme}:{slashes}app:{SECRET}@{host}{port}/db?{key}={v}");
        match MySqlManager::from_url(&url) {
            Ok(m) => {
                let shown = format!("{m:?}");
                prop_assert!(!shown.contains(SECRET), "{}", shown);
            }
            Err(e) => {
                let msg = format!("{e} {e:?}");
                prop_assert!(!msg.contains(SECRET), "{msg}");
                prop_assert!(matches!(e, MySqlStartError::Url { .. } | MySqlStartError::Config(_)), "{e:?}");
            }
        }
    }

    #[test]
    fn serde_never_panics_and_never_shows_the_password(
        field in prop::sample::select(vec!["wait_timeout", "time_zone", "transport", "ssl_mode", "pool", "init_sql"]),
        v in prop_oneof![Just("\"25d\"".to_owned()), Just("0".to_owned()), Just("\"0s\"".to_owned()), Just("{\"socket\": \"\"}".to_owned()), "\"\\PC{0,8}\"", any::<i64>().prop_map(|n| n.to_string())],
    ) {
        let json = format!(r#"{{"url": "mysql://app:{SECRET}@db/x", "{field}": {v}}}"#);
        match serde_json::from_str::<MySqlConfig>(&json) {
            Ok(c) => {
                prop_assert!(!serde_json::to_string(&c).unwrap().contains(SECRET));
                let shown = format!("{c:?}");
                prop_assert!(!shown.contains(SECRET), "{}", shown);
                if let Err(e) = c.validate() {
                    prop_assert!(!e.to_string().contains(SECRET));
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains(SECRET), "{e}"),
        }
    }
}

/// One bad value per variable: the error names the variable and shows the value exactly as written.
#[test]
fn each_variable_is_named_with_its_value_as_written() {
    let cases = [
        ("MYSQL_WAIT_TIMEOUT", "400days"),
        ("MYSQL_WAIT_TIMEOUT", "0s"),
        ("MYSQL_WAIT_TIMEOUT", "1500ms"),
        ("MYSQL_TRANSPORT", "socket:"),
        ("MYSQL_SYSTEM", "oracle"),
        ("MYSQL_TIME_ZONE", "'UTC"),
        ("MYSQL_SQL_MODE", "a\\b"),
        ("MYSQL_SSL_MODE", "sometimes"),
        ("MYSQL_STMT_CACHE_SIZE", "0"),
        ("MYSQL_RETRY_MAX_ATTEMPTS", "0"),
        ("MYSQL_RESET_ON_RETURN", "perhaps"),
        ("MYSQL_POOL_IDLE_TIMEOUT", "0ms"),
        ("MYSQL_POOL_MAX_LIFETIME", "11y"),
        ("MYSQL_POOL_VALIDATION_BYPASS", "11y"),
        ("MYSQL_POOL_CLOSE_TIMEOUT", "11y"),
        ("MYSQL_POOL_LEAK_THRESHOLD", "0s"),
        ("MYSQL_POOL_HEALTH_INTERVAL", "0ns"),
    ];
    for (var, v) in cases {
        let vars = HashMap::from([(var.to_owned(), v.to_owned())]);
        let e = from(&vars).expect_err(var);
        let msg = e.to_string();
        assert!(msg.contains(var) && msg.contains(&format!("{v:?}")), "{var}={v}: {msg}");
    }
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
        let e = MySqlManager::from_url(url).expect_err(url);
        assert!(e.to_string().contains(param), "{url}: {e}");
    }
}
