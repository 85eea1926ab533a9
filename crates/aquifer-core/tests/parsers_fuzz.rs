//! Property tests of the parsers a user feeds: the environment reader, serde and URL redaction. Whatever the
//! input, nothing panics, every error names its input, and no password survives redaction.

use std::collections::HashMap;

use aquifer_core::{PoolConfig, redact_url};
use proptest::prelude::*;

const VARS: &[&str] = &[
    "POOL_MAX_SIZE",
    "POOL_MIN_IDLE",
    "POOL_ACQUIRE_TIMEOUT",
    "POOL_CONNECT_TIMEOUT",
    "POOL_IDLE_TIMEOUT",
    "POOL_MAX_LIFETIME",
    "POOL_VALIDATION_BYPASS",
    "POOL_VALIDATION_TIMEOUT",
    "POOL_HOOK_TIMEOUT",
    "POOL_LEAK_THRESHOLD",
    "POOL_HEALTH_INTERVAL",
    "POOL_CLOSE_TIMEOUT",
    "POOL_FAIL_FAST_AFTER",
    "POOL_CONNECT_BACKOFF_MIN",
    "POOL_CONNECT_BACKOFF_MAX",
    "POOL_REUSE",
    "NAME",
];

/// Values that look like what people type: numbers, durations, words, and garbage.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u32>(), prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "y", "years", ""]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        prop::sample::select(vec!["off", "none", "0", "lifo", "FIFO", "-1", "1e9", " 5s ", ""]).prop_map(String::from),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_env_error_names_its_variable_and_value(var in prop::sample::select(VARS), v in value()) {
        let name = format!("APP_{var}");
        let map: HashMap<String, String> = HashMap::from([(name.clone(), v.clone())]);
        if let Err(e) = PoolConfig::from_lookup("APP", |k| map.get(k).cloned()) {
            let msg = e.to_string();
            prop_assert!(msg.contains(&name), "{name}={v:?}: {msg}");
            // The value is shown quoted as written (`Debug`), so that white space and odd characters are visible.
            prop_assert!(msg.contains(&format!("{v:?}")), "{name}={v:?}: {msg}");
        }
    }

    #[test]
    fn serde_never_panics_and_a_valid_config_validates(max in any::<u64>(), idle in any::<u64>(), t in "\\PC{0,8}") {
        let json = format!(r#"{{"max_size": {max}, "min_idle": {idle}, "acquire_timeout": {t:?}}}"#);
        if let Ok(c) = serde_json::from_str::<PoolConfig>(&json) {
            let _ = c.validate();
        }
    }

    #[test]
    fn a_password_never_survives_redaction(
        scheme in prop::sample::select(vec!["postgres", "mysql", "neo4j", "bolt+s", "x"]),
        user in "[a-z]{1,8}",
        host in "[a-z0-9.]{1,12}",
        port in prop_oneof![Just(String::new()), (0u32..200_000).prop_map(|p| format!(":{p}")), Just(":notaport".to_owned())],
        form in 0..6u8,
    ) {
        let secret = "Zq9secretXy";
        let url = match form {
            0 => format!("{scheme}://{user}:{secret}@{host}{port}/db"),
            1 => format!("{scheme}://{host}{port}/db?user={user}&password={secret}"),
            2 => format!("host={host} user={user} password={secret} dbname=db"),
            3 => format!("{scheme}:/{user}:{secret}@{host}{port}/db?password={secret}"),
            4 => format!("{scheme}:{user}:{secret}@{host}{port}/db"),
            _ => format!("{scheme}://{user}:{secret}@@{host}{port}/db?sslmode=disable"),
        };
        let shown = redact_url(&url);
        prop_assert!(!shown.contains(secret), "{url} -> {shown}");
    }

    #[test]
    fn redaction_never_panics(s in "\\PC{0,64}") {
        let _ = redact_url(&s);
    }
}
