//! [`ClusterConfig`]: how a [`ClusterPool`](crate::ClusterPool) routes checkouts and watches its hosts, from
//! code, serde or the environment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env::EnvVars;
use crate::errors::ConfigError;
use crate::role::{LoadBalance, Target};

/// How a [`ClusterPool`](crate::ClusterPool) routes and watches its hosts. From code, serde (durations as `"1s"`) or the
/// environment ([`ClusterConfig::from_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Where [`ClusterPool::get`](crate::ClusterPool::get) goes (libpq's `target_session_attrs`). Default: [`Target::Primary`].
    pub target: Target,
    /// How a host is picked among several that fit (libpq's `load_balance_hosts`). Default:
    /// [`LoadBalance::Disable`] (the first that fits, in the order given).
    pub load_balance: LoadBalance,
    /// A replica whose measured lag exceeds this gets no reads until it catches up (ProxySQL's
    /// `max_replication_lag`). Default: `None` (no limit).
    #[serde(with = "humantime_serde")]
    pub max_replica_lag: Option<Duration>,
    /// How often each host's role, lag and position are probed while a primary is known. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub role_check_interval: Duration,
    /// How often they are probed while no primary is known (after a failure, during a failover), so that a
    /// promoted replica is found within this. Default: 100 ms.
    #[serde(with = "humantime_serde")]
    pub failover_check_interval: Duration,
    /// How long one probe (its connect included) may take before the host counts as down. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            target: Target::Primary,
            load_balance: LoadBalance::Disable,
            max_replica_lag: None,
            // One cheap query per host per second keeps lag figures fresh without load worth measuring.
            role_check_interval: Duration::from_secs(1),
            // Fast enough to find a promoted replica well within a second.
            failover_check_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_secs(1),
        }
    }
}

impl ClusterConfig {
    /// Checks the values: the intervals and the probe timeout must be positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, d) in [
            ("role_check_interval", self.role_check_interval),
            ("failover_check_interval", self.failover_check_interval),
            ("probe_timeout", self.probe_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::invalid(field, "0s", "must be positive"));
            }
        }
        Ok(())
    }

    /// Reads `{prefix}_TARGET_SESSION_ATTRS`, `{prefix}_LOAD_BALANCE_HOSTS`, `{prefix}_MAX_REPLICA_LAG`
    /// (`off` for none), `{prefix}_ROLE_CHECK_INTERVAL`, `{prefix}_FAILOVER_CHECK_INTERVAL` and
    /// `{prefix}_PROBE_TIMEOUT` over `self`; unset variables leave the value as it is. Errors name the
    /// variable and its value.
    pub fn read_lookup(&mut self, prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let env = EnvVars::new(prefix, lookup);
        env.parse("TARGET_SESSION_ATTRS", &mut self.target, |v| v.parse().map_err(|e: ConfigError| reason(&e)))?;
        env.parse("LOAD_BALANCE_HOSTS", &mut self.load_balance, |v| v.parse().map_err(|e: ConfigError| reason(&e)))?;
        env.optional_duration("MAX_REPLICA_LAG", &mut self.max_replica_lag)?;
        env.duration("ROLE_CHECK_INTERVAL", &mut self.role_check_interval)?;
        env.duration("FAILOVER_CHECK_INTERVAL", &mut self.failover_check_interval)?;
        env.duration("PROBE_TIMEOUT", &mut self.probe_timeout)?;
        self.validate().map_err(|e| {
            env.rename(e, |field| match field {
                "role_check_interval" => Some("ROLE_CHECK_INTERVAL"),
                "failover_check_interval" => Some("FAILOVER_CHECK_INTERVAL"),
                "probe_timeout" => Some("PROBE_TIMEOUT"),
                _ => None,
            })
        })
    }

    /// The defaults overridden by the `{prefix}_*` variables [`read_lookup`](ClusterConfig::read_lookup)
    /// reads.
    pub fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = ClusterConfig::default();
        c.read_lookup(prefix, lookup)?;
        Ok(c)
    }
}

fn reason(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}
