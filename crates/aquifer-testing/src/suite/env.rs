//! Configuration from the environment: `{PREFIX}_*` variables read the same way by every adapter
//! ([`Adapter::from_vars`], [`Adapter::from_env`]), with the rules that keep a misspelt or missing variable
//! from going unnoticed.

use aquifer_core::{Adapter, AnyPool, ConfigError, HealthCheck};
use tokio::time::timeout;

use super::{Checked, Hooks, STEP, Test};

/// The prefix of the rules below: not any adapter's own, as a service names its pools.
const PREFIX: &str = "LIBRARY";

/// [`Hooks::server_vars`] under `prefix`, plus `extra`.
fn vars<H: Hooks>(prefix: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = H::server_vars(prefix);
    vars.extend(extra.iter().map(|(k, v)| (format!("{prefix}_{k}"), (*v).to_owned())));
    vars
}

/// The pool's name and size and the connection come from `{PREFIX}_*` variables: the pool started from them
/// has that name, that size and the backend's `db.system.name`, and answers on the test server.
pub async fn config_comes_from_the_environment<H: Hooks>(t: Test) -> Checked {
    H::require().await;
    let name = t.pool();
    let config = H::Adapter::from_vars(PREFIX, vars::<H>(PREFIX, &[("NAME", &name), ("POOL_MAX_SIZE", "3")]))
        .unwrap_or_else(|e| panic!("the test server's variables under {PREFIX}: {e}"));
    assert_eq!(config.pool_config().name.as_deref(), Some(name.as_str()));
    assert_eq!(config.pool_config().max_size, 3);
    let pool = timeout(STEP, config.connect()).await.expect("start in time").expect("the variables' server");
    assert_eq!(pool.name(), name);
    assert_eq!(pool.state().max_size, 3);
    assert_eq!(pool.system(), H::Adapter::SYSTEM);
    let mut conn = timeout(STEP, H::checkout(&pool)).await.expect("checkout in time").expect("a connection");
    assert_eq!(H::answer(&mut conn, 41).await.expect("an answer"), 42);
    drop(conn);
    pool.close().await;
    Ok(())
}

/// The variable the child process of [`a_non_utf8_variable_is_an_error_naming_it`] finds set.
const CHILD: &str = "AQUIFER_SUITE_NON_UTF8_CHILD";

/// A `{PREFIX}_*` variable of the process environment whose value is not UTF-8 is an error naming it (not a
/// silent default), showing neither a URL's password nor a password variable's value; other prefixes are
/// not concerned.
///
/// The variables are set for a child process (this test run again, alone): setting them in this process
/// would race with every other thread that reads the environment.
pub async fn a_non_utf8_variable_is_an_error_naming_it<H: Hooks>(t: Test) -> Checked {
    if std::env::var_os(CHILD).is_some() {
        let scheme = H::Adapter::URL_SCHEMES.first().copied().unwrap_or("x");
        for (prefix, var) in
            [("AQSUITE_NONUTF8", "AQSUITE_NONUTF8_URL"), ("AQSUITE_NONUTF8PW", "AQSUITE_NONUTF8PW_PASSWORD")]
        {
            let err = H::Adapter::from_env(prefix).expect_err("a variable that is not UTF-8 is an error");
            let msg = format!("{err} {err:?}");
            assert!(msg.contains(var) && msg.contains("not valid UTF-8"), "{msg}");
            assert!(!msg.contains("secret"), "the value's secret shows: {msg} (scheme {scheme})");
        }
        // A prefix with nothing set fails for a missing setting at most, never for another prefix's bytes.
        if let Err(e) = H::Adapter::from_env("AQSUITE_OTHER") {
            assert!(matches!(e, ConfigError::Missing { .. }), "{e}");
        }
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let scheme = H::Adapter::URL_SCHEMES.first().copied().unwrap_or("x");
        let url = [format!("{scheme}://app:secret").as_bytes(), b"\xff@db/x"].concat();
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", &t.path(), "--nocapture", "--test-threads", "1", "--include-ignored"])
            .env(CHILD, "1")
            .env("AQSUITE_NONUTF8_URL", std::ffi::OsStr::from_bytes(&url))
            .env("AQSUITE_NONUTF8PW_PASSWORD", std::ffi::OsStr::from_bytes(b"secret\xff"))
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the child process failed: {report}");
        assert!(stdout.contains("1 passed"), "the child process did not run this test: {report}");
    }
    Ok(())
}

/// An unknown `{PREFIX}_POOL_*` variable (a setting spelt as another pool spells it) is an error naming the
/// closest known variable, not a setting silently ignored.
pub async fn an_unknown_pool_variable_names_the_closest_known_one<H: Hooks>(_: Test) -> Checked {
    for (var, closest) in [
        ("POOL_MAX_CONNECTIONS", "POOL_MAX_SIZE"),
        ("POOL_MAX_SZIE", "POOL_MAX_SIZE"),
        ("POOL_AQUIRE_TIMEOUT", "POOL_ACQUIRE_TIMEOUT"),
    ] {
        let err = H::Adapter::from_vars(PREFIX, vars::<H>(PREFIX, &[(var, "5")])).expect_err(var);
        let want =
            ConfigError::UnknownEnv { var: format!("{PREFIX}_{var}"), closest: Some(format!("{PREFIX}_{closest}")) };
        assert_eq!(err, want, "{err}");
    }
    let err = H::Adapter::from_vars(PREFIX, vars::<H>(PREFIX, &[("POOL_COLOUR", "blue")])).expect_err("POOL_COLOUR");
    assert!(matches!(&err, ConfigError::UnknownEnv { var, .. } if var == "LIBRARY_POOL_COLOUR"), "{err}");
    Ok(())
}

/// A `{PREFIX}_*` variable a typo away from a known one is an error naming it, also when the typo leaves the
/// connection setting missing; a variable far from every known one (another tool's) is left alone.
pub async fn a_near_miss_variable_names_the_closest_known_one<H: Hooks>(_: Test) -> Checked {
    let err = H::Adapter::from_vars(PREFIX, vars::<H>(PREFIX, &[("NAEM", "orders")])).expect_err("NAEM");
    let want = ConfigError::UnknownEnv { var: format!("{PREFIX}_NAEM"), closest: Some(format!("{PREFIX}_NAME")) };
    assert_eq!(err, want, "{err}");
    // Only the misspelt URL: the error is the typo, not the missing URL.
    let scheme = H::Adapter::URL_SCHEMES.first().copied().unwrap_or("x");
    let err = H::Adapter::from_vars(PREFIX, [(format!("{PREFIX}_ULR"), format!("{scheme}://db/x"))]).expect_err("ULR");
    let want = ConfigError::UnknownEnv { var: format!("{PREFIX}_ULR"), closest: Some(format!("{PREFIX}_URL")) };
    assert_eq!(err, want, "{err}");
    // A second pool's variables and another tool's share the prefix: not ours, not errors.
    H::Adapter::from_vars(PREFIX, vars::<H>(PREFIX, &[("RO_HOSTNAME", "replica"), ("LOG_FORMAT", "json")]))
        .unwrap_or_else(|e| panic!("variables far from every known name are left alone: {e}"));
    Ok(())
}

/// With the connection setting of a prefix unset, no variable of another prefix is used instead (the
/// adapter's own prefix, `DATABASE_URL`): the error names the prefix's own variables and only those; an
/// adapter with a default connection uses its default.
pub async fn no_variable_of_another_prefix_is_used<H: Hooks>(_: Test) -> Checked {
    let own = H::Adapter::ENV_PREFIX;
    let scheme = H::Adapter::URL_SCHEMES.first().copied().unwrap_or("x");
    let url = format!("{scheme}://decoy@decoy.invalid/decoy");
    // The test server's variables under the adapter's own prefix, every value a decoy.
    let mut decoys: Vec<(String, String)> = H::server_vars(own)
        .into_iter()
        .map(|(k, _)| {
            let value = if k.ends_with("_URL") || k.ends_with("_URI") { url.clone() } else { "decoy".to_owned() };
            (k, value)
        })
        .collect();
    decoys.push(("DATABASE_URL".to_owned(), url.clone()));
    decoys.push((format!("{own}_URL"), url));
    decoys.push((format!("{PREFIX}_POOL_MAX_SIZE"), "2".to_owned()));
    match H::Adapter::from_vars(PREFIX, decoys) {
        Err(ConfigError::Missing { field, reason }) => {
            let msg = format!("{field}: {reason}");
            assert!(msg.contains(&format!("{PREFIX}_")), "the error names {PREFIX}'s variables: {msg}");
            assert!(!msg.contains(&format!("{own}_")) && !msg.contains("DATABASE_URL"), "{msg}");
        }
        Err(other) => panic!("expected the {PREFIX} connection setting missing, got: {other}"),
        Ok(config) => assert!(!format!("{config:?}").contains("decoy"), "{config:?}"),
    }
    Ok(())
}
