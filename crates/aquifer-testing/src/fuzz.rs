//! What the adapters' property tests of configuration parsing share: the values people type into environment
//! variables, and the check every environment error must pass.

use std::collections::HashMap;

use aquifer_core::ConfigError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Values that look like what people type: numbers, durations, words (the common ones plus `extra_words`, the
/// adapter's own, such as URLs or enum names), and garbage.
pub fn env_value(extra_words: &'static [&'static str]) -> impl Strategy<Value = String> {
    let words: Vec<&'static str> = ["off", "0", "0s", "0ms", "25d", "yes", "-1", " 5s ", "x"]
        .into_iter()
        .chain(extra_words.iter().copied())
        .collect();
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u32>(), prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "y", ""]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        prop::sample::select(words).prop_map(String::from),
        "\\PC{0,16}",
    ]
}

/// Checks that an environment error names one of the variables that were set and shows its value as written
/// (a URL redacted; statements, variables ending in `SQL`, not shown), and that `secret` shows nowhere.
pub fn check_env_error(e: &ConfigError, vars: &HashMap<String, String>, secret: &str) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(!msg.contains(secret), "{msg}");
    let ConfigError::Env { var, value, .. } = e else {
        return Err(TestCaseError::fail(format!("not named after a variable: {e:?} from {vars:?}")));
    };
    let written = vars.get(var).ok_or_else(|| TestCaseError::fail(format!("{var} was not set: {e:?}")))?;
    if !var.ends_with("SQL") {
        let shown = aquifer_core::redact_url(written);
        prop_assert!(value == written || *value == shown, "{var}={written:?} shown as {value:?}");
    }
    Ok(())
}
