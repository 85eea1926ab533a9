//! Property tests of what a user feeds this adapter: environment variables, serde configs and URLs. Whatever
//! the input, nothing panics, every error names the variable (or URL parameter) and shows the value as
//! written, and no password shows.

use std::collections::HashMap;

use aquifer_neo4j::{ConfigError, Neo4jConfig, Neo4jManager};
use aquifer_testing::fuzz::env_value;
use proptest::prelude::*;

/// Every variable `Neo4jConfig::from_env("NEO4J")` reads (the pool's as well).
const VARS: &[&str] = &[
    "NEO4J_URI",
    "NEO4J_URL",
    "NEO4J_USER",
    "NEO4J_USERNAME",
    "NEO4J_PASSWORD",
    "NEO4J_DATABASE",
    "NEO4J_FETCH_SIZE",
    "NEO4J_READ_TIMEOUT",
    "NEO4J_RETRY_MAX_ATTEMPTS",
    "NEO4J_NAME",
    "NEO4J_POOL_MAX_SIZE",
    "NEO4J_POOL_IDLE_TIMEOUT",
    "NEO4J_POOL_MAX_LIFETIME",
    "NEO4J_POOL_VALIDATION_BYPASS",
    "NEO4J_POOL_CLOSE_TIMEOUT",
    "NEO4J_POOL_LEAK_THRESHOLD",
    "NEO4J_POOL_HEALTH_INTERVAL",
];

const SECRET: &str = "Zq9secretXy";

fn from(vars: &HashMap<String, String>) -> Result<Neo4jConfig, ConfigError> {
    Neo4jConfig::from_lookup("NEO4J", |k| vars.get(k).cloned())
}

fn value() -> impl Strategy<Value = String> {
    env_value(&["bolt://h:1/db", "http://x"])
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
    fn a_uri_never_panics_and_its_errors_never_show_the_password(
        host in prop_oneof![Just("127.0.0.1".to_owned()), "[a-z0-9.:\\[\\]]{0,12}"],
        port in prop_oneof![Just(String::new()), (0u32..100_000).prop_map(|p| format!(":{p}")), Just(":x".to_owned())],
        tail in prop::sample::select(vec!["", "/", "/db", "?x=1", "#f"]),
        slashes in prop::sample::select(vec!["//", "/", ""]),
        scheme in prop::sample::select(vec!["bolt", "neo4j+s", "bolt+ssc", "http", ""]),
    ) {
        let uri = format!("{scheme}:{slashes}app:{SECRET}@{host}{port}{tail}");
        match Neo4jManager::new(Neo4jConfig::from_url(&uri)) {
            Ok(m) => {
                let shown = format!("{m:?}");
                prop_assert!(!shown.contains(SECRET), "{}", shown);
            }
            Err(e) => {
                let msg = format!("{e} {e:?}");
                prop_assert!(!msg.contains(SECRET), "{msg}");
                prop_assert!(matches!(e, ConfigError::Invalid { field: "uri" | "user", .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn serde_never_panics_and_never_shows_the_password(
        field in prop::sample::select(vec!["read_timeout", "uri", "user", "fetch_size", "pool", "database"]),
        v in prop_oneof![Just("\"25d\"".to_owned()), Just("0".to_owned()), Just("\"0s\"".to_owned()), "\"\\PC{0,8}\"", any::<i64>().prop_map(|n| n.to_string())],
    ) {
        let json = format!(r#"{{"password": "{SECRET}", "{field}": {v}}}"#);
        match serde_json::from_str::<Neo4jConfig>(&json) {
            Ok(c) => {
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
        ("NEO4J_URI", "http://db:7474"),
        ("NEO4J_URI", "bolt://db/neo4j"),
        ("NEO4J_URL", "bolt://db:notaport"),
        ("NEO4J_FETCH_SIZE", "0"),
        ("NEO4J_FETCH_SIZE", "many"),
        ("NEO4J_READ_TIMEOUT", "0ms"),
        ("NEO4J_RETRY_MAX_ATTEMPTS", "0"),
        ("NEO4J_POOL_IDLE_TIMEOUT", "0ms"),
        ("NEO4J_POOL_MAX_LIFETIME", "11y"),
        ("NEO4J_POOL_VALIDATION_BYPASS", "11y"),
        ("NEO4J_POOL_CLOSE_TIMEOUT", "11y"),
        ("NEO4J_POOL_LEAK_THRESHOLD", "0s"),
        ("NEO4J_POOL_HEALTH_INTERVAL", "0ns"),
    ];
    for (var, v) in cases {
        let vars = HashMap::from([(var.to_owned(), v.to_owned())]);
        let e = from(&vars).expect_err(var);
        let msg = e.to_string();
        assert!(msg.contains(var) && msg.contains(&format!("{v:?}")), "{var}={v}: {msg}");
    }
}
