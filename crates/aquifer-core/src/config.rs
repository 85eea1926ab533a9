//! Pool configuration: one plain struct, readable from code, serde or the environment.
//!
//! All defaults live in [`PoolConfig::default`] with the reason for each. They follow HikariCP and bb8 where those
//! agree, because that is what operators already know.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env::EnvVars;
use crate::errors::ConfigError;

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The largest `max_size` accepted. Far above what any database server accepts from one client (PostgreSQL's
/// and MySQL's defaults are 100 and 151 connections in all), low enough that a typo such as an extra zero or
/// `u64::MAX` is a configuration error instead of an out-of-memory abort.
pub const MAX_POOL_SIZE: usize = 10_000;

/// The largest `max_lifetime_jitter`: beyond half, `max_lifetime` would no longer say how long connections
/// live.
const MAX_LIFETIME_JITTER: f64 = 0.5;

/// Which idle connection a checkout takes.
///
/// ```
/// use aquifer_core::{PoolConfig, Reuse};
///
/// // Spread load over every connection (behind PgBouncer, or with short server-side idle timeouts).
/// let config = PoolConfig { reuse: Reuse::Fifo, ..PoolConfig::default() };
/// assert_eq!(serde_json::to_string(&config.reuse).unwrap(), "\"fifo\"");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reuse {
    /// Last in, first out (the default): the most recently returned connection is reused, so a few hot
    /// connections serve a light load and the rest age out through `idle_timeout`.
    #[default]
    Lifo,
    /// First in, first out: the connection idle longest is reused, so load is spread over every connection
    /// and none sits idle long enough for a server or proxy to cut it (deadpool's `QueueMode::Fifo`).
    Fifo,
}

impl Reuse {
    /// `lifo` or `fifo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reuse::Lifo => "lifo",
            Reuse::Fifo => "fifo",
        }
    }
}

impl std::str::FromStr for Reuse {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lifo" => Ok(Reuse::Lifo),
            "fifo" => Ok(Reuse::Fifo),
            _ => Err("expected lifo or fifo".into()),
        }
    }
}

/// How a pool sizes, times out, validates and recycles its connections.
///
/// Build one with struct-update syntax from [`PoolConfig::default`], deserialize it (durations are written as
/// `"30s"`, `"500ms"`, `"10m"`; `null` disables an optional one), or read it from the environment with
/// [`PoolConfig::from_env`]. [`PoolConfig::validate`] runs whenever a pool is built.
///
/// ```
/// use std::time::Duration;
/// use aquifer_core::PoolConfig;
///
/// let config = PoolConfig { max_size: 16, min_idle: 2, ..PoolConfig::default() };
/// assert!(config.validate().is_ok());
/// assert_eq!(config.acquire_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name in metrics (`db.client.connection.pool.name`), logs and health reports.
    /// Default: `server.address:server.port/db.namespace` from the manager's descriptor.
    pub name: Option<String>,
    /// Most connections the pool opens at once (idle + in use + connecting), at most
    /// [`MAX_POOL_SIZE`]. Default: 10.
    pub max_size: usize,
    /// Idle connections kept ready by a background task, never closed by `idle_timeout`. Default: 0.
    pub min_idle: usize,
    /// Longest a `get()` waits, connects and validation included. Default: 30 s.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Longest a single connect attempt (after-connect steps included) may take. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Idle connections older than this are closed (down to `min_idle`). Default: 10 min; `None` keeps them.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// Connections older than this are closed when idle or when returned, each a little earlier by a random
    /// share of it up to [`max_lifetime_jitter`](PoolConfig::max_lifetime_jitter), so a pool's connections
    /// do not all expire together. Default: 30 min; `None` keeps them forever.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// The largest share of `max_lifetime` by which a connection's lifetime is shortened at random: with
    /// 30 min and `0.025`, each connection lives between 29 min 15 s and 30 min, so connections opened
    /// together (a pool built at once, a burst) reconnect spread over 45 s instead of all at once. A fraction
    /// from 0 (no jitter) to 0.5. Environment: `0.025` or `2.5%`. Default: 0.025 (HikariCP's 2.5 %).
    pub max_lifetime_jitter: f64,
    /// When set, idle connections not known alive for this long are validated in the background (the
    /// manager's `validate`: a ping or `SELECT 1`), within a quarter of it, so a connection a NAT, firewall
    /// or load balancer dropped while idle is found and replaced before a caller is handed it, and the pings
    /// keep such idle cut-offs from firing at all. Set it below the network's idle cut-off (less a quarter).
    /// A ping does not count as use: `idle_timeout` still closes the connection. HikariCP's `keepaliveTime`.
    /// Default: `None` (off: checkout validation after `validation_bypass` already catches dead connections,
    /// at the cost of a round trip on that checkout).
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Option<Duration>,
    /// A connection used within this window is handed out without a validation round trip. Default: 500 ms.
    #[serde(with = "humantime_serde")]
    pub validation_bypass: Duration,
    /// Longest a validation (ping) may take before the connection is discarded. Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub validation_timeout: Duration,
    /// Longest each checkout or return hook ([`PoolBuilder::on_checkout`](crate::PoolBuilder::on_checkout),
    /// [`PoolBuilder::on_return`](crate::PoolBuilder::on_return)) and each step of a
    /// [`SessionContext`](crate::SessionContext) (applying it, clearing it) may take; past it the hook counts as
    /// failed and the connection is discarded. Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub hook_timeout: Duration,
    /// A connection held longer than this is reported once as a possible leak, with the `get()` caller's
    /// file:line. Default: `None` (off, as in HikariCP).
    #[serde(with = "humantime_serde")]
    pub leak_detection_threshold: Option<Duration>,
    /// When set, a background task refreshes the health report this often. Default: `None`.
    #[serde(with = "humantime_serde")]
    pub health_interval: Option<Duration>,
    /// How long `close()` waits for connections in use to come back. Default: 30 s.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// How long connects must have failed without a break, while the pool holds no live connection, before
    /// the pool fails fast ([`PoolError::Unavailable`]) until a background probe reaches the server again.
    /// A refused password or unknown database ([`Manager::is_permanent`]) fails fast at once. Zero disables
    /// failing fast: gets then retry connects until their acquire timeout. Default: 2 s.
    ///
    /// [`PoolError::Unavailable`]: crate::PoolError::Unavailable
    /// [`Manager::is_permanent`]: crate::Manager::is_permanent
    #[serde(with = "humantime_serde")]
    pub fail_fast_after: Duration,
    /// First retry delay after a failed connect; doubles per failure, with jitter. Default: 50 ms.
    #[serde(with = "humantime_serde")]
    pub connect_backoff_min: Duration,
    /// Longest retry delay between connect attempts (jitter included), and the probe interval while failing
    /// fast with nobody asking. While callers wait or are refused, retries come at least every 200 ms (or
    /// this, if shorter). Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_backoff_max: Duration,
    /// Which idle connection a checkout takes: the most recently returned (LIFO) or the longest idle (FIFO).
    /// Default: [`Reuse::Lifo`].
    pub reuse: Reuse,
    /// When the password rotates (a password file rewritten, a provider's new token: the manager's
    /// [`credential_generation`](crate::Manager::credential_generation) moves on), close the connections
    /// opened with an older one: each when it is returned or while it is idle, once its turn in
    /// [`retire_on_rotation_window`](PoolConfig::retire_on_rotation_window) has come, and replace them as
    /// waiters and `min_idle` need. For a revoked secret that must stop being used, and to prove a rotation
    /// complete (the server then holds no session opened with the old secret). Counted in
    /// `aquifer.pool.connections.retired{reason="credential_rotation"}`. Default: `false` (a session keeps
    /// working after its password changes on PostgreSQL, MySQL/MariaDB and Neo4j, so by default connections
    /// live out their `max_lifetime`).
    pub retire_on_rotation: bool,
    /// How long after a rotation is seen the connections of the old secret are all closed: each has its own
    /// turn, spread evenly over the window, so the pool reconnects a few at a time, never all at once. More
    /// than zero. Default: 1 min.
    #[serde(with = "humantime_serde")]
    pub retire_on_rotation_window: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: None,
            // HikariCP and deadpool-style default; a pool should be sized from measurements (docs/configuration.md).
            max_size: 10,
            // Connections are opened on demand unless asked otherwise: no surprise load at start-up.
            min_idle: 0,
            // HikariCP connectionTimeout, bb8 connection_timeout: every wait is bounded.
            acquire_timeout: Duration::from_secs(30),
            // Shorter than the acquire timeout so a hanging connect is retried within one get().
            connect_timeout: Duration::from_secs(10),
            // HikariCP idleTimeout.
            idle_timeout: Some(Duration::from_secs(600)),
            // HikariCP maxLifetime: below typical server/proxy/NAT idle cut-offs.
            max_lifetime: Some(Duration::from_secs(1800)),
            // HikariCP's variance: enough to spread a pool's reconnects, too little to shorten lifetimes much.
            max_lifetime_jitter: 0.025,
            // Off, as in HikariCP before 5.1: pings cost every idle connection a round trip per period, and
            // checkout validation already catches a dead connection; networks that cut idle connections
            // turn it on (docs/operations.md).
            keepalive_interval: None,
            // HikariCP aliveBypassWindowMs: a ping per checkout halves throughput; recent use proves liveness.
            validation_bypass: Duration::from_millis(500),
            // HikariCP validationTimeout.
            validation_timeout: Duration::from_secs(5),
            // A hook is a round trip or two (SET, RESET); as long as a validation may take.
            hook_timeout: Duration::from_secs(5),
            leak_detection_threshold: None,
            health_interval: None,
            close_timeout: Duration::from_secs(30),
            // A blip (a restart, a failover) is usually over within a second or two and is retried inside the
            // waiting gets; two seconds of nothing but failures, with no connection left, means the server is gone.
            fail_fast_after: Duration::from_secs(2),
            connect_backoff_min: Duration::from_millis(50),
            connect_backoff_max: Duration::from_secs(5),
            // Hot connections stay warm; cold ones age out (HikariCP, bb8, deadpool's default).
            reuse: Reuse::Lifo,
            // Off: sessions survive a password change on every server Aquifer supports, and retiring them
            // costs a reconnect each; services that must prove a secret out of use turn it on.
            retire_on_rotation: false,
            // Long enough that a pool of dozens reconnects at a few per second (a rotation is no connect
            // storm), short enough that a rotation is complete within a minute.
            retire_on_rotation_window: Duration::from_secs(60),
        }
    }
}

/// `max_lifetime_jitter` is the one float: a configuration holding NaN is refused by
/// [`validate`](PoolConfig::validate), so equality is an equivalence on every configuration a pool runs with.
impl Eq for PoolConfig {}

impl PoolConfig {
    /// Checks that the pool can work with these values; the error names the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_max_size(self.max_size)?;
        if self.min_idle > self.max_size {
            return Err(ConfigError::invalid(
                "min_idle",
                self.min_idle,
                format!("must not exceed max_size ({})", self.max_size),
            ));
        }
        let positive = [
            ("acquire_timeout", self.acquire_timeout),
            ("connect_timeout", self.connect_timeout),
            ("validation_timeout", self.validation_timeout),
            ("hook_timeout", self.hook_timeout),
            ("connect_backoff_min", self.connect_backoff_min),
            ("connect_backoff_max", self.connect_backoff_max),
            ("retire_on_rotation_window", self.retire_on_rotation_window),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(field, "0s", "must be greater than zero"));
            }
        }
        let optional = [
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("leak_detection_threshold", self.leak_detection_threshold),
            ("health_interval", self.health_interval),
            ("keepalive_interval", self.keepalive_interval),
        ];
        for (field, value) in optional {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::invalid(field, "0s", "must be greater than zero; use none to disable it"));
            }
        }
        // Bounded so that `Instant + duration` can never overflow anywhere in the engine.
        let all = positive.iter().map(|(f, d)| (*f, Some(*d))).chain(optional).chain([
            ("validation_bypass", Some(self.validation_bypass)),
            ("close_timeout", Some(self.close_timeout)),
            ("fail_fast_after", Some(self.fail_fast_after)),
        ]);
        for (field, value) in all {
            if let Some(d) = value
                && d > MAX_DURATION
            {
                return Err(ConfigError::invalid(field, humantime::format_duration(d), "must be at most 10 years"));
            }
        }
        if self.connect_backoff_min > self.connect_backoff_max {
            return Err(ConfigError::invalid(
                "connect_backoff_min",
                humantime::format_duration(self.connect_backoff_min),
                format!(
                    "must not exceed connect_backoff_max ({})",
                    humantime::format_duration(self.connect_backoff_max)
                ),
            ));
        }
        if !(0.0..=MAX_LIFETIME_JITTER).contains(&self.max_lifetime_jitter) {
            return Err(ConfigError::invalid(
                "max_lifetime_jitter",
                self.max_lifetime_jitter,
                "must be a fraction from 0 (no jitter) to 0.5",
            ));
        }
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(ConfigError::invalid("name", format!("{name:?}"), "must not be empty"));
        }
        Ok(())
    }

    /// Reads the configuration from the environment, starting from the defaults.
    ///
    /// With prefix `APP` it reads `APP_NAME`, `APP_POOL_MAX_SIZE`, `APP_POOL_MIN_IDLE`,
    /// `APP_POOL_ACQUIRE_TIMEOUT`, `APP_POOL_CONNECT_TIMEOUT`, `APP_POOL_IDLE_TIMEOUT`, `APP_POOL_MAX_LIFETIME`,
    /// `APP_POOL_MAX_LIFETIME_JITTER` (`0.025` or `2.5%`), `APP_POOL_KEEPALIVE_INTERVAL`,
    /// `APP_POOL_VALIDATION_BYPASS`, `APP_POOL_VALIDATION_TIMEOUT`, `APP_POOL_LEAK_THRESHOLD`,
    /// `APP_POOL_HEALTH_INTERVAL`, `APP_POOL_CLOSE_TIMEOUT`, `APP_POOL_FAIL_FAST_AFTER`,
    /// `APP_POOL_CONNECT_BACKOFF_MIN`, `APP_POOL_CONNECT_BACKOFF_MAX`, `APP_POOL_REUSE` (`lifo` or `fifo`),
    /// `APP_POOL_RETIRE_ON_ROTATION` (`true`/`false`) and `APP_POOL_RETIRE_ON_ROTATION_WINDOW`.
    /// Unset variables keep their default.
    /// Durations are written like `30s`, `500ms` or `10m`; optional ones also accept `off`/`none`/`0`.
    /// The result is validated; errors name the variable and its value. A variable whose value is not valid
    /// UTF-8 is an error, not a default, and so is an unknown `APP_POOL_*` variable (a misspelt setting), named
    /// with the closest known one.
    pub fn from_env(prefix: &str) -> Result<PoolConfig, ConfigError> {
        crate::env::read_process_env(
            prefix,
            |prefix, lookup| Self::from_lookup(prefix, lookup),
            |suffix| {
                // Only the pool's own namespace is checked here: the adapter that reads the rest of `APP_*` (and
                // knows its names) checks those.
                !suffix.starts_with("POOL_")
            },
        )
    }

    /// Like [`PoolConfig::from_env`], reading variables through `lookup` (for tests and other sources).
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<PoolConfig, ConfigError> {
        let env = EnvVars::new(prefix, &lookup);
        let mut c = PoolConfig::default();
        if let Some(name) = env.get("NAME") {
            c.name = Some(name);
        }
        env.number("POOL_MAX_SIZE", &mut c.max_size)?;
        env.number("POOL_MIN_IDLE", &mut c.min_idle)?;
        env.duration("POOL_FAIL_FAST_AFTER", &mut c.fail_fast_after)?;
        env.parse("POOL_REUSE", &mut c.reuse, str::parse)?;
        env.duration("POOL_ACQUIRE_TIMEOUT", &mut c.acquire_timeout)?;
        env.duration("POOL_CONNECT_TIMEOUT", &mut c.connect_timeout)?;
        env.duration("POOL_VALIDATION_BYPASS", &mut c.validation_bypass)?;
        env.duration("POOL_VALIDATION_TIMEOUT", &mut c.validation_timeout)?;
        env.duration("POOL_HOOK_TIMEOUT", &mut c.hook_timeout)?;
        env.duration("POOL_CLOSE_TIMEOUT", &mut c.close_timeout)?;
        env.duration("POOL_CONNECT_BACKOFF_MIN", &mut c.connect_backoff_min)?;
        env.duration("POOL_CONNECT_BACKOFF_MAX", &mut c.connect_backoff_max)?;
        env.optional_duration("POOL_IDLE_TIMEOUT", &mut c.idle_timeout)?;
        env.optional_duration("POOL_MAX_LIFETIME", &mut c.max_lifetime)?;
        env.parse("POOL_MAX_LIFETIME_JITTER", &mut c.max_lifetime_jitter, parse_fraction)?;
        env.optional_duration("POOL_KEEPALIVE_INTERVAL", &mut c.keepalive_interval)?;
        env.optional_duration("POOL_LEAK_THRESHOLD", &mut c.leak_detection_threshold)?;
        env.optional_duration("POOL_HEALTH_INTERVAL", &mut c.health_interval)?;
        env.boolean("POOL_RETIRE_ON_ROTATION", &mut c.retire_on_rotation)?;
        env.duration("POOL_RETIRE_ON_ROTATION_WINDOW", &mut c.retire_on_rotation_window)?;
        // A pair refused together is blamed on the variable that was set: with only
        // `POOL_CONNECT_BACKOFF_MAX=1ns`, the unset `_MIN` (at its default) is not what the user wrote.
        let blamed = c.validate().map_err(|e| match e {
            ConfigError::Invalid { field: "connect_backoff_min", .. }
                if env.get("POOL_CONNECT_BACKOFF_MIN").is_none() =>
            {
                ConfigError::invalid(
                    "connect_backoff_max",
                    humantime::format_duration(c.connect_backoff_max),
                    format!(
                        "must not be below connect_backoff_min ({})",
                        humantime::format_duration(c.connect_backoff_min)
                    ),
                )
            }
            e => e,
        });
        // Errors show the variable's text as written ("0ms"), not the parsed value ("0s").
        blamed.map_err(|e| env.rename(e, env_suffix))?;
        Ok(c)
    }
}

/// `max_size` must be between 1 and [`MAX_POOL_SIZE`] (also checked by `Pool::resize`).
pub(crate) fn check_max_size(max_size: usize) -> Result<(), ConfigError> {
    if max_size == 0 {
        return Err(ConfigError::invalid("max_size", 0, "must be at least 1"));
    }
    if max_size > MAX_POOL_SIZE {
        return Err(ConfigError::invalid("max_size", max_size, format!("must be at most {MAX_POOL_SIZE}")));
    }
    Ok(())
}

/// A fraction written as `0.025` or as a percentage, `2.5%`.
fn parse_fraction(v: &str) -> Result<f64, String> {
    let (number, scale) = match v.strip_suffix('%') {
        Some(percent) => (percent.trim(), 100.0),
        None => (v, 1.0),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n / scale),
        _ => Err("expected a fraction such as 0.025 or a percentage such as 2.5%".to_owned()),
    }
}

/// The variable suffix of each field [`PoolConfig::validate`] can refuse.
fn env_suffix(field: &str) -> Option<&'static str> {
    Some(match field {
        "max_size" => "POOL_MAX_SIZE",
        "min_idle" => "POOL_MIN_IDLE",
        "acquire_timeout" => "POOL_ACQUIRE_TIMEOUT",
        "connect_timeout" => "POOL_CONNECT_TIMEOUT",
        "validation_timeout" => "POOL_VALIDATION_TIMEOUT",
        "hook_timeout" => "POOL_HOOK_TIMEOUT",
        "connect_backoff_min" => "POOL_CONNECT_BACKOFF_MIN",
        "connect_backoff_max" => "POOL_CONNECT_BACKOFF_MAX",
        "fail_fast_after" => "POOL_FAIL_FAST_AFTER",
        "idle_timeout" => "POOL_IDLE_TIMEOUT",
        "max_lifetime" => "POOL_MAX_LIFETIME",
        "max_lifetime_jitter" => "POOL_MAX_LIFETIME_JITTER",
        "keepalive_interval" => "POOL_KEEPALIVE_INTERVAL",
        "validation_bypass" => "POOL_VALIDATION_BYPASS",
        "close_timeout" => "POOL_CLOSE_TIMEOUT",
        "leak_detection_threshold" => "POOL_LEAK_THRESHOLD",
        "health_interval" => "POOL_HEALTH_INTERVAL",
        "retire_on_rotation_window" => "POOL_RETIRE_ON_ROTATION_WINDOW",
        "name" => "NAME",
        _ => return None,
    })
}
