//! [`EnvVars`]: the one reader of `{PREFIX}_{SUFFIX}` environment variables, shared by
//! [`PoolConfig::from_env`](crate::PoolConfig::from_env) and every adapter's `from_env`, so that all of them
//! accept the same spellings and report a bad value the same way.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::errors::ConfigError;

/// Reads `{PREFIX}_{SUFFIX}` variables through a lookup function and parses them into configuration fields.
///
/// Every configuration in Aquifer can be read from the environment; this type keeps the rules the same
/// everywhere: an unset or empty variable leaves the field at its default, values are trimmed before parsing,
/// and a value that does not parse is a [`ConfigError::Env`] naming the variable and showing the value as
/// written. The parsers write into `&mut` fields, so a `from_env` reads as a list of variables:
///
/// ```
/// use std::time::Duration;
/// use aquifer_core::{ConfigError, EnvVars};
///
/// let lookup = |name: &str| match name {
///     "APP_WORKERS" => Some("8".to_owned()),
///     "APP_TIMEOUT" => Some("1500ms".to_owned()),
///     "APP_CACHE_TTL" => Some("off".to_owned()),
///     "APP_VERBOSE" => Some("Yes".to_owned()),
///     "APP_RETRIES" => Some("many".to_owned()),
///     _ => None,
/// };
/// let env = EnvVars::new("APP", &lookup);
/// let (mut workers, mut timeout, mut ttl, mut verbose) = (1_usize, Duration::ZERO, Some(Duration::from_secs(60)), false);
/// env.number("WORKERS", &mut workers)?;
/// env.duration("TIMEOUT", &mut timeout)?;
/// env.optional_duration("CACHE_TTL", &mut ttl)?;
/// env.boolean("VERBOSE", &mut verbose)?;
/// assert_eq!((workers, timeout, ttl, verbose), (8, Duration::from_millis(1500), None, true));
///
/// let mut retries = 3_u32;
/// let err = env.number("RETRIES", &mut retries).unwrap_err();
/// assert!(err.to_string().starts_with(r#"invalid environment variable APP_RETRIES="many": expected a whole number"#));
/// assert_eq!(retries, 3);
/// # Ok::<(), ConfigError>(())
/// ```
pub struct EnvVars<'a> {
    prefix: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for EnvVars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lookup is a closure (and the values may be secrets): only the prefix is worth showing.
        f.debug_struct("EnvVars").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl<'a> EnvVars<'a> {
    /// Reads the variables named `{prefix}_{suffix}` (just `{suffix}` when `prefix` is empty) through `lookup`,
    /// which is `|name| std::env::var(name).ok()` for the process environment and a map in tests.
    pub fn new(prefix: &'a str, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        EnvVars { prefix, lookup }
    }

    /// Fails with [`ConfigError::Env`] naming the first `{prefix}_*` variable of the process environment whose
    /// value is not valid UTF-8. `std::env::var` reports such a variable as if it were unset, which would
    /// silently keep a default; every `from_env` calls this first.
    pub fn reject_non_unicode(prefix: &str) -> Result<(), ConfigError> {
        let start = if prefix.is_empty() { String::new() } else { format!("{prefix}_") };
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&start) && value.to_str().is_none() {
                // Shown lossily (U+FFFD for the bad bytes), never a password: a password variable is hidden
                // whole, a URL has its password redacted.
                let shown = if name.contains("PASSWORD") {
                    "***".to_owned()
                } else {
                    crate::secret::redact_url(&value.to_string_lossy())
                };
                return Err(ConfigError::Env {
                    var: name.to_owned(),
                    value: shown,
                    reason: "is not valid UTF-8".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The full name of the variable for `suffix`, as errors and documentation spell it.
    pub fn var(&self, suffix: &str) -> String {
        if self.prefix.is_empty() { suffix.to_owned() } else { format!("{}_{suffix}", self.prefix) }
    }

    /// The variable's value as written, or `None` when it is unset or empty (only white space counts as
    /// empty too), so that `APP_X=` keeps the default instead of failing to parse.
    pub fn get(&self, suffix: &str) -> Option<String> {
        self.get_raw(suffix).filter(|v| !v.trim().is_empty())
    }

    /// The variable's value even when it is empty, for settings where empty is a value of its own (an empty
    /// password, "send no program name").
    pub fn get_raw(&self, suffix: &str) -> Option<String> {
        (self.lookup)(&self.var(suffix))
    }

    /// An error naming the variable for `suffix` and showing `value`, for a value a parser refused.
    pub fn error(&self, suffix: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Env { var: self.var(suffix), value: value.to_owned(), reason: reason.into() }
    }

    /// Parses the variable with `parse` (given the trimmed value) into `out` when it is set; a parse failure
    /// becomes [`EnvVars::error`] with the parser's message as the reason. The building block for values only
    /// one configuration has (enums, byte sizes); the methods below cover the common shapes.
    pub fn parse<T>(
        &self,
        suffix: &str,
        out: &mut T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = self.get(suffix) {
            *out = parse(v.trim()).map_err(|reason| self.error(suffix, &v, reason))?;
        }
        Ok(())
    }

    /// Parses a number (any [`FromStr`] type, such as `usize` or `u32`) into `out` when the variable is set.
    pub fn number<T: FromStr>(&self, suffix: &str, out: &mut T) -> Result<(), ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.parse(suffix, out, parse_number)
    }

    /// Parses a number into `Some(n)` when the variable is set, for settings whose `None` means "the driver's
    /// own default". There is no spelling for `None`: leave the variable unset.
    pub fn optional_number<T: FromStr>(&self, suffix: &str, out: &mut Option<T>) -> Result<(), ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.parse(suffix, out, |v| parse_number(v).map(Some))
    }

    /// Parses a duration written like `30s`, `500ms`, `10m` or `1h 30m` (humantime) into `out` when the
    /// variable is set.
    pub fn duration(&self, suffix: &str, out: &mut Duration) -> Result<(), ConfigError> {
        self.parse(suffix, out, parse_duration)
    }

    /// Parses a duration that can be turned off: `off`, `none`, `disabled` or `0` (any case) give `None`,
    /// anything else must be a duration as for [`EnvVars::duration`].
    pub fn optional_duration(&self, suffix: &str, out: &mut Option<Duration>) -> Result<(), ConfigError> {
        self.parse(suffix, out, |v| match v.to_ascii_lowercase().as_str() {
            "off" | "none" | "disabled" | "0" => Ok(None),
            _ => parse_duration(v).map(Some),
        })
    }

    /// Parses a boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`, in any case.
    pub fn boolean(&self, suffix: &str, out: &mut bool) -> Result<(), ConfigError> {
        self.parse(suffix, out, |v| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("expected true or false (also yes/no, on/off, 1/0)".to_owned()),
        })
    }

    /// Turns a validation error of a configuration read from the environment ([`ConfigError::Invalid`], which
    /// names a field) into one naming the variable the field came from: `suffix_of` maps a field to its
    /// variable's suffix, `None` leaves the error as it is.
    ///
    /// The value shown is the variable's text as written (`25d`, not the parsed `2160000s`; `0ms`, not
    /// `0ns`), with passwords redacted as by [`redact_url`](crate::redact_url). Variables whose suffix ends in
    /// `SQL` hold statements that may carry secrets no redaction recognises: their errors keep the value the
    /// validation showed (a statement count). When the variable is unset (the field kept a default that the
    /// validation refused in combination with another) the validation's value stays too.
    pub fn rename<S: AsRef<str>>(
        &self,
        e: ConfigError,
        suffix_of: impl FnOnce(&'static str) -> Option<S>,
    ) -> ConfigError {
        let ConfigError::Invalid { field, value, reason } = e else { return e };
        let Some(suffix) = suffix_of(field) else { return ConfigError::Invalid { field, value, reason } };
        let suffix = suffix.as_ref();
        let value = match self.get(suffix) {
            Some(written) if !suffix.ends_with("SQL") => crate::secret::redact_url(&written),
            _ => value,
        };
        ConfigError::Env { var: self.var(suffix), value, reason }
    }
}

fn parse_number<T: FromStr>(v: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    v.parse().map_err(|e| format!("expected a whole number ({e})"))
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| format!("expected a duration such as 30s, 500ms or 10m ({e})"))
}

/// [`Adapter::from_env`](crate::Adapter::from_env): the process environment, with its non-UTF-8 and
/// unknown-name checks.
pub(crate) fn read_process_env<C>(
    prefix: &str,
    from_lookup: impl FnOnce(&str, &dyn Fn(&str) -> Option<String>) -> Result<C, ConfigError>,
    is_foreign: fn(&str) -> bool,
) -> Result<C, ConfigError> {
    EnvVars::reject_non_unicode(prefix)?;
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    read_checked(prefix, names, &|name| std::env::var(name).ok(), from_lookup, is_foreign)
}

/// [`Adapter::from_vars`](crate::Adapter::from_vars): a list of variables, with the unknown-name check.
pub(crate) fn read_vars<C>(
    prefix: &str,
    vars: std::collections::BTreeMap<String, String>,
    from_lookup: impl FnOnce(&str, &dyn Fn(&str) -> Option<String>) -> Result<C, ConfigError>,
    is_foreign: fn(&str) -> bool,
) -> Result<C, ConfigError> {
    let names = vars.keys().cloned().collect();
    read_checked(prefix, names, &|name| vars.get(name).cloned(), from_lookup, is_foreign)
}

/// Runs `from_lookup`, recording every variable it asks for: those are the known names. Then each set
/// `{prefix}_*` variable that was never asked for is checked against them ([`unknown_variable`]). A
/// misspelling also explains a missing setting (`LIBRARY_ULR` set, `LIBRARY_URL` missing), so it is reported
/// instead of the [`ConfigError::Missing`].
fn read_checked<C>(
    prefix: &str,
    names: Vec<String>,
    get: &dyn Fn(&str) -> Option<String>,
    from_lookup: impl FnOnce(&str, &dyn Fn(&str) -> Option<String>) -> Result<C, ConfigError>,
    is_foreign: fn(&str) -> bool,
) -> Result<C, ConfigError> {
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let lookup = |name: &str| {
        asked.borrow_mut().insert(name.to_owned());
        get(name)
    };
    let result = from_lookup(prefix, &lookup);
    let unknown = unknown_variable(prefix, &names, &asked.borrow(), is_foreign);
    match (result, unknown) {
        (Ok(config), None) => Ok(config),
        (Ok(_) | Err(ConfigError::Missing { .. }), Some(unknown)) => Err(unknown),
        (Err(e), _) => Err(e),
    }
}

/// How many single-character edits (insert, delete, replace, swap neighbours) make a name a likely typo of
/// a known one. Two catches `ULR`/`URL` and `MAX_SZIE`/`MAX_SIZE` while leaving other software's variables
/// that share a prefix (`ORDERS_RO_URL` of a second pool, `POSTGRES_DB` of the Docker image) alone.
const TYPO_DISTANCE: usize = 2;

/// The first set `{prefix}_*` variable (by name) that `from_lookup` never asked for and that is ours: every
/// `{prefix}_POOL_*` name (that namespace is the engine's), and any other name a typo away from a known one;
/// names `is_foreign` claims for other software are skipped. Without a prefix every variable of the process
/// would qualify, so nothing is checked.
fn unknown_variable(
    prefix: &str,
    names: &[String],
    asked: &std::collections::BTreeSet<String>,
    is_foreign: fn(&str) -> bool,
) -> Option<ConfigError> {
    if prefix.is_empty() {
        return None;
    }
    let start = format!("{prefix}_");
    let known: Vec<&str> = asked.iter().filter_map(|n| n.strip_prefix(&start)).collect();
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let suffix = name.strip_prefix(&start)?;
        if asked.contains(name) || is_foreign(suffix) {
            return None;
        }
        let pool_namespace = suffix.starts_with("POOL_");
        // Another pool's name for a setting is a better hint than the nearest spelling.
        if let Some(k) = peer_name(suffix).filter(|k| known.contains(k)) {
            return Some(ConfigError::UnknownEnv { var: name.clone(), closest: Some(format!("{start}{k}")) });
        }
        let closest = known
            .iter()
            .filter(|k| !pool_namespace || k.starts_with("POOL_"))
            .map(|k| (strsim::osa_distance(suffix, k), *k))
            .min();
        match closest {
            Some((distance, k)) if distance <= TYPO_DISTANCE || pool_namespace => {
                Some(ConfigError::UnknownEnv { var: name.clone(), closest: Some(format!("{start}{k}")) })
            }
            None if pool_namespace => Some(ConfigError::UnknownEnv { var: name.clone(), closest: None }),
            _ => None,
        }
    })
}

/// The engine's variable for a setting spelt the way another pool names it (sqlx's `max_connections`,
/// HikariCP's `maximumPoolSize`, deadpool's `timeouts.wait`), which edit distance alone would not find.
fn peer_name(suffix: &str) -> Option<&'static str> {
    let setting = suffix.strip_prefix("POOL_").unwrap_or(suffix);
    Some(match setting {
        "MAX_CONNECTIONS" | "MAXIMUM_POOL_SIZE" | "MAX_POOL_SIZE" | "SIZE" | "MAX" => "POOL_MAX_SIZE",
        "MIN_CONNECTIONS" | "MINIMUM_IDLE" | "MIN_SIZE" | "MIN_POOL_SIZE" | "MIN" => "POOL_MIN_IDLE",
        "CONNECTION_TIMEOUT" | "WAIT_TIMEOUT" | "TIMEOUT" | "CHECKOUT_TIMEOUT" => "POOL_ACQUIRE_TIMEOUT",
        "CREATE_TIMEOUT" | "CONNECTION_CREATE_TIMEOUT" => "POOL_CONNECT_TIMEOUT",
        "LEAK_DETECTION_THRESHOLD" | "LEAK_DETECTION" => "POOL_LEAK_THRESHOLD",
        "MAX_IDLE_TIME" | "IDLE" => "POOL_IDLE_TIMEOUT",
        "LIFETIME" | "MAX_AGE" => "POOL_MAX_LIFETIME",
        "KEEPALIVE_TIME" | "KEEPALIVE" | "KEEP_ALIVE" | "KEEPALIVE_PERIOD" => "POOL_KEEPALIVE_INTERVAL",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error for the unknown variable `var`, naming `closest`.
    fn unknown(var: &str, closest: &str) -> ConfigError {
        ConfigError::UnknownEnv { var: var.into(), closest: Some(closest.into()) }
    }

    fn check(vars: &[(&str, &str)]) -> Result<(), ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read_vars("LIB", vars, |prefix, lookup| crate::PoolConfig::from_lookup(prefix, lookup).map(drop), |_| false)
    }

    #[test]
    fn misspelt_pool_variable_names_the_closest_known_one() {
        let err = check(&[("LIB_POOL_MAX_CONNECTIONS", "5")]).unwrap_err();
        assert_eq!(err, unknown("LIB_POOL_MAX_CONNECTIONS", "LIB_POOL_MAX_SIZE"));
        assert_eq!(
            err.to_string(),
            "unknown environment variable LIB_POOL_MAX_CONNECTIONS: did you mean LIB_POOL_MAX_SIZE?"
        );
    }

    #[test]
    fn hikaricp_keepalive_time_names_the_keepalive_interval() {
        let err = check(&[("LIB_POOL_KEEPALIVE_TIME", "2m")]).unwrap_err();
        assert_eq!(err, unknown("LIB_POOL_KEEPALIVE_TIME", "LIB_POOL_KEEPALIVE_INTERVAL"));
    }

    #[test]
    fn typo_outside_the_pool_namespace_is_an_error() {
        let err = check(&[("LIB_NAEM", "orders")]).unwrap_err();
        assert_eq!(err, unknown("LIB_NAEM", "LIB_NAME"));
    }

    #[test]
    fn other_software_sharing_the_prefix_is_left_alone() {
        // A second pool's prefix (LIB_RO) and an unrelated setting are far from every known name.
        check(&[("LIB_RO_URL", "postgres://h/db"), ("LIB_LOG_FORMAT", "json"), ("LIB_POOL_MAX_SIZE", "3")]).unwrap();
        check(&[("LIBRARY_POOL_MAX_CONNECTIONS", "3")]).unwrap();
    }

    #[test]
    fn unknown_value_is_never_shown() {
        let err = check(&[("LIB_POOL_PASSWORD", "hunter2")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn misspelling_is_reported_instead_of_the_setting_it_left_missing() {
        let vars = [("LIB_ULR".to_owned(), "x".to_owned())].into_iter().collect();
        let err = read_vars(
            "LIB",
            vars,
            |prefix, lookup| match lookup(&format!("{prefix}_URL")) {
                Some(_) => Ok(()),
                None => Err(ConfigError::Missing { field: "url".into(), reason: "set LIB_URL".into() }),
            },
            |_| false,
        )
        .unwrap_err();
        assert_eq!(err, unknown("LIB_ULR", "LIB_URL"));
    }

    #[test]
    fn foreign_variables_are_skipped() {
        let vars = [("LIB_POOL_X".to_owned(), "1".to_owned())].into_iter().collect();
        read_vars("LIB", vars, |p, l| crate::PoolConfig::from_lookup(p, l).map(drop), |s| s == "POOL_X").unwrap();
    }
}
