//! Property tests of what a user feeds an adapter: environment variables, URLs and configuration files.
//! Whatever the input, nothing panics, every error names the variable (or URL) and shows the value as
//! written, and no password shows.

use std::collections::{BTreeSet, HashMap};

use aquifer_core::{Adapter, ConfigError, StartError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Checked, Hooks, Test};
use crate::fuzz::{check_env_error, env_value};

/// The password the inputs carry.
const SECRET: &str = "Zq9secretXy";

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Runs the property, panicking with proptest's minimal failing input.
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{e}");
    }
}

/// `from_lookup` over a map.
fn from_map<A: Adapter>(vars: &HashMap<String, String>) -> Result<A, ConfigError> {
    A::from_lookup(A::ENV_PREFIX, &|k| vars.get(k).cloned())
}

/// Every variable the adapter reads under its own prefix: the names `from_lookup` asks for, with the test
/// server's variables set and with none.
fn known_vars<H: Hooks>() -> Vec<String> {
    let asked = std::cell::RefCell::new(BTreeSet::new());
    let server: HashMap<String, String> = H::server_vars(H::Adapter::ENV_PREFIX).into_iter().collect();
    for vars in [server, HashMap::new()] {
        let _ = H::Adapter::from_lookup(H::Adapter::ENV_PREFIX, &|k| {
            asked.borrow_mut().insert(k.to_owned());
            vars.get(k).cloned()
        });
    }
    asked.into_inner().into_iter().collect()
}

/// A few variables set to what people type, over the test server's: every error names one of the variables
/// set and shows its value as written (redacted when a URL), or is the connection setting missing because a
/// value was blank.
pub async fn every_env_error_names_its_variable_and_value<H: Hooks>(_: Test) -> Checked {
    let known = known_vars::<H>();
    assert!(known.iter().any(|v| v.ends_with("_POOL_MAX_SIZE")), "the pool's variables are read: {known:?}");
    let server: HashMap<String, String> = H::server_vars(H::Adapter::ENV_PREFIX).into_iter().collect();
    let set = prop::collection::vec((prop::sample::select(known), env_value(H::ENV_WORDS)), 1..4);
    check(1_000, set, |set| {
        let mut vars = server.clone();
        let blank = set.iter().any(|(_, v)| v.trim().is_empty());
        vars.extend(set);
        match from_map::<H::Adapter>(&vars) {
            Ok(_) => Ok(()),
            Err(ConfigError::Missing { .. }) if blank => Ok(()),
            Err(e) => check_env_error(&e, &vars, SECRET),
        }
    });
    Ok(())
}

/// The suite's bad values of the pool's variables (each adapter adds its own, [`Hooks::BAD_VALUES`]).
const POOL_BAD_VALUES: &[(&str, &str)] = &[
    ("POOL_MAX_SIZE", "0"),
    ("POOL_IDLE_TIMEOUT", "0ms"),
    ("POOL_MAX_LIFETIME", "11y"),
    ("POOL_VALIDATION_BYPASS", "11y"),
    ("POOL_CLOSE_TIMEOUT", "11y"),
    ("POOL_LEAK_THRESHOLD", "0s"),
    ("POOL_HEALTH_INTERVAL", "0ns"),
    ("RETRY_MAX_ATTEMPTS", "0"),
];

/// One bad value per variable: the error names the variable and shows the value exactly as written. Set
/// alone first; when that is no error or only a missing connection setting, over the test server's variables.
pub async fn each_bad_value_is_named_as_written<H: Hooks>(_: Test) -> Checked {
    let prefix = H::Adapter::ENV_PREFIX;
    let known = known_vars::<H>();
    for (suffix, value) in POOL_BAD_VALUES.iter().chain(H::BAD_VALUES) {
        let var = format!("{prefix}_{suffix}");
        if !known.contains(&var) {
            assert!(!H::BAD_VALUES.contains(&(suffix, value)), "{var} is not a variable the adapter reads");
            continue;
        }
        let alone = HashMap::from([(var.clone(), (*value).to_owned())]);
        let err = match from_map::<H::Adapter>(&alone) {
            Err(e) if !matches!(e, ConfigError::Missing { .. }) => e,
            _ => {
                let mut vars: HashMap<String, String> = H::server_vars(prefix).into_iter().collect();
                vars.insert(var.clone(), (*value).to_owned());
                from_map::<H::Adapter>(&vars).expect_err(&var)
            }
        };
        let msg = err.to_string();
        assert!(msg.contains(&var) && msg.contains(&format!("{value:?}")), "{var}={value}: {msg}");
    }
    Ok(())
}

/// A URL of any shape carrying a password (in the user part and as a parameter): building its pool never
/// panics; it fails with a typed error (`Url` or `Config`) that never shows the password, or builds a pool
/// whose `Debug` does not. (For a backend that takes file paths, a string of another scheme is a path: only
/// its [`SECRET_SCHEMES`](Hooks::SECRET_SCHEMES) are tried. Pools are built for inspection, so that none
/// creates a file.)
pub async fn a_url_never_panics_nor_shows_its_password<H: Hooks>(_: Test) -> Checked {
    let others: &[&str] = if H::Adapter::ACCEPTS_PATHS { &[] } else { &["http", ""] };
    let schemes: Vec<&str> = H::SECRET_SCHEMES.iter().chain(others).copied().collect();
    let keys: Vec<&str> = H::URL_PARAMS.iter().copied().chain(["x", "port", "host", "password"]).collect();
    let url = (
        prop::sample::select(schemes),
        prop::sample::select(vec!["//", "/", ""]),
        prop_oneof![Just("127.0.0.1".to_owned()), "[a-z0-9.:\\[\\]]{0,12}"],
        prop_oneof![Just(String::new()), (0u32..100_000).prop_map(|p| format!(":{p}")), Just(":x".to_owned())],
        prop::sample::select(keys),
        prop_oneof![Just(String::new()), "[a-z0-9=%/-]{0,8}"],
        prop::sample::select(vec!["/db?", "?", "/", "", "#f"]),
    )
        .prop_map(|(scheme, slashes, host, port, key, v, tail)| {
            let query = if tail.ends_with('?') { format!("{key}={v}&password={SECRET}") } else { String::new() };
            format!("{scheme}:{slashes}app:{SECRET}@{host}{port}{tail}{query}")
        });
    check(1_000, url, |url| {
        let mut config = H::Adapter::from_url(&url);
        config.for_inspection("aquifer-suite");
        match config.build() {
            Ok(pool) => {
                let shown = format!("{pool:?}");
                prop_assert!(!shown.contains(SECRET), "{url}: {shown}");
            }
            Err(e) => {
                let msg = format!("{e} {e:?}");
                prop_assert!(!msg.contains(SECRET), "{url}: {msg}");
                prop_assert!(matches!(e, StartError::Url { .. } | StartError::Config(_)), "{url}: {e:?}");
            }
        }
        Ok(())
    });
    Ok(())
}

/// A configuration file holding the password, with odd values in its fields: reading it never panics and
/// never shows the password, nor does writing it back or building its pool.
pub async fn serde_never_panics_nor_shows_the_password<H: Hooks>(_: Test) -> Checked {
    let serde = H::serde()?;
    let values = prop_oneof![
        Just("\"25d\"".to_owned()),
        Just("0".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("{\"socket\": \"\"}".to_owned()),
        "\"\\PC{0,8}\"",
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let base = serde.with_password.replace("{secret}", SECRET);
    check(1_000, (prop::sample::select(serde.fields), values), |(field, v)| {
        let json = format!("{{{base}, \"{field}\": {v}}}");
        match (serde.from_json)(&json) {
            Ok(c) => {
                prop_assert!(!format!("{c:?}").contains(SECRET), "{c:?}");
                if let Some(to_json) = serde.to_json {
                    prop_assert!(!to_json(&c).contains(SECRET), "{json}");
                }
                if let Err(e) = c.build() {
                    prop_assert!(!format!("{e} {e:?}").contains(SECRET), "{e:?}");
                }
            }
            Err(e) => prop_assert!(!e.contains(SECRET), "{e}"),
        }
        Ok(())
    });
    // A file with a field the configuration does not have is refused, without the password.
    let e = (serde.from_json)(&format!("{{{base}, \"bogus\": 1}}")).map(drop).expect_err("an unknown field is refused");
    assert!(!e.contains(SECRET), "{e}");
    Ok(())
}
