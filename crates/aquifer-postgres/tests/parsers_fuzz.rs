//! Property tests of what a user feeds this adapter: environment variables, serde configs and URLs. Whatever
//! the input, nothing panics, every error names the variable (or URL parameter) and shows the value as
//! written, and no password shows.

use std::collections::HashMap;

use aquifer_postgres::{ConfigError, PgConfig, PgStartError};
use aquifer_testing::fuzz::env_value;
use proptest::prelude::*;

/// Every variable `PgConfig::from_env("POSTGRES")` reads (the pool's as well).
const VARS: &[&str] = &[
    "POSTGRES_URL",
    "POSTGRES_APPLICATION_NAME",
    "POSTGRES_STATEMENT_TIMEOUT",
    "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
    "POSTGRES_INIT_SQL",
    "POSTGRES_PGBOUNCER",
    "POSTGRES_STATEMENT_CACHE_CAPACITY",
    "POSTGRES_DRAIN_TIMEOUT",
    "POSTGRES_RETRY_MAX_ATTEMPTS",
    "POSTGRES_NAME",
    "POSTGRES_POOL_MAX_SIZE",
    "POSTGRES_POOL_MIN_IDLE",
    "POSTGRES_POOL_ACQUIRE_TIMEOUT",
    "POSTGRES_POOL_IDLE_TIMEOUT",
    "POSTGRES_POOL_MAX_LIFETIME",
    "POSTGRES_POOL_VALIDATION_BYPASS",
    "POSTGRES_POOL_CLOSE_TIMEOUT",
    "POSTGRES_POOL_LEAK_THRESHOLD",
    "POSTGRES_POOL_HEALTH_INTERVAL",
    "DATABASE_URL",
];

const SECRET: &str = "Zq9secretXy";

/// `vars`, with a URL unless they set one (a missing URL is an error of its own).
fn from(vars: &HashMap<String, String>) -> Result<PgConfig, ConfigError> {
    let url = || Some("postgres://app@db/x".to_owned());
    PgConfig::from_lookup("POSTGRES", |k| vars.get(k).cloned().or_else(|| (k == "POSTGRES_URL").then(url).flatten()))
}

fn value() -> impl Strategy<Value = String> {
    env_value(&[])
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
        key in prop::sample::select(vec!["sslmode", "application_name", "options", "port", "host", "dbname", "x"]),
        v in prop_oneof![Just(String::new()), "[a-z0-9=%-]{0,8}"],
        slashes in prop::sample::select(vec!["//", "/", ""]),
    ) {
        let url = format!("postgres:{slashes}app:{SECRET}@{host}{port}/db?{key}={v}&password={SECRET}");
        match PgConfig::from_url(&url).manager() {
            Ok(m) => {
                let shown = format!("{m:?}");
                prop_assert!(!shown.contains(SECRET), "{}", shown);
            }
            Err(e) => {
                let msg = format!("{e} {e:?}");
                prop_assert!(!msg.contains(SECRET), "{msg}");
                prop_assert!(matches!(e, PgStartError::Url { .. } | PgStartError::Config(_)), "{e:?}");
            }
        }
    }

    #[test]
    fn serde_never_panics_and_never_shows_the_password(
        field in prop::sample::select(vec!["statement_timeout", "drain_timeout", "application_name", "pgbouncer", "pool"]),
        v in prop_oneof![Just("\"25d\"".to_owned()), Just("0".to_owned()), Just("\"0s\"".to_owned()), "\"\\PC{0,8}\"", any::<i64>().prop_map(|n| n.to_string())],
    ) {
        let json = format!(r#"{{"url": "postgres://app:{SECRET}@db/x", "{field}": {v}}}"#);
        match serde_json::from_str::<PgConfig>(&json) {
            Ok(c) => {
                prop_assert!(!serde_json::to_string(&c).unwrap().contains(SECRET));
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
        ("POSTGRES_STATEMENT_TIMEOUT", "25d"),
        ("POSTGRES_STATEMENT_TIMEOUT", "0"),
        ("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "30days"),
        ("POSTGRES_DRAIN_TIMEOUT", "0ms"),
        ("POSTGRES_RETRY_MAX_ATTEMPTS", "0"),
        ("POSTGRES_APPLICATION_NAME", "ünïcode"),
        ("POSTGRES_PGBOUNCER", "perhaps"),
        ("POSTGRES_STATEMENT_CACHE_CAPACITY", "-3"),
        ("POSTGRES_POOL_IDLE_TIMEOUT", "0ms"),
        ("POSTGRES_POOL_MAX_LIFETIME", "11y"),
        ("POSTGRES_POOL_VALIDATION_BYPASS", "11y"),
        ("POSTGRES_POOL_CLOSE_TIMEOUT", "11y"),
        ("POSTGRES_POOL_LEAK_THRESHOLD", "0s"),
        ("POSTGRES_POOL_HEALTH_INTERVAL", "0ns"),
        ("POSTGRES_POOL_MAX_SIZE", "0"),
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
        ("postgres://app@db/x?sslmode=", "sslmode"),
        ("postgres://app@db/x?sslmode=sometimes", "sslmode"),
        ("postgres://app@db/x?statement-cache-capacity=lots", "statement-cache-capacity"),
        ("postgres://app@db/x?application_name=", "application_name"),
    ] {
        let e = PgConfig::from_url(url).manager().expect_err(url);
        assert!(e.to_string().contains(param), "{url}: {e}");
    }
}
