//! [`Role`], [`Target`] and [`LoadBalance`]: what a host of a replicated cluster is, which hosts a caller asks
//! for, and how a pool picks among several that fit. The names and the accepted spellings follow libpq's
//! `target_session_attrs` and `load_balance_hosts` (pgx reads the same two URL parameters; Npgsql spells
//! them `Target Session Attributes` and `Load Balance Hosts`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::errors::ConfigError;

/// The string forms of a libpq setting's enum, from its `as_str` and `parse_field`: `Display`, `FromStr`
/// (naming `$field` in the error), and the `String` conversions serde goes through.
macro_rules! libpq_setting {
    ($setting:ident, $field:literal) => {
        impl fmt::Display for $setting {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $setting {
            type Err = ConfigError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $setting::parse_field($field, s)
            }
        }

        impl TryFrom<String> for $setting {
            type Error = ConfigError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$setting> for String {
            fn from(value: $setting) -> String {
                value.as_str().to_owned()
            }
        }
    };
}

/// The role a host of a cluster has, as its server reports it (never assumed from the order of hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts writes (PostgreSQL: not in recovery and not `default_transaction_read_only`; MariaDB:
    /// `@@read_only = 0`).
    Primary,
    /// Serves reads only (a streaming or GTID replica, or a server set read-only).
    Replica,
}

impl Role {
    /// `primary` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which hosts of a cluster a checkout may go to.
///
/// | `Target` | libpq / pgx `target_session_attrs` | Npgsql `Target Session Attributes` |
/// |---|---|---|
/// | `Primary` (default) | `read-write`, `primary` | `ReadWrite`, `Primary` |
/// | `PreferPrimary` | (none) | `PreferPrimary` |
/// | `Replica` | `read-only`, `standby` | `ReadOnly`, `Standby` |
/// | `PreferReplica` | `prefer-standby` | `PreferStandby` |
/// | `Any` | `any` (libpq's default) | `Any` |
///
/// Unlike libpq, whose default is `any`, a cluster pool's default is `Primary`, so that code written for
/// one server (writes through `get()`) stays correct when replicas are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// The primary only: writes, and reads that must see every committed write.
    #[default]
    Primary,
    /// The primary, or a replica while no primary is known (reads that prefer fresh data but must survive a
    /// failover).
    PreferPrimary,
    /// A replica only (within `max_replica_lag`); fails fast when none qualifies.
    Replica,
    /// A replica within `max_replica_lag`, else the primary.
    PreferReplica,
    /// Any host that answers, primary or replica (within `max_replica_lag`).
    Any,
}

impl Target {
    /// The spellings accepted by [`FromStr`]: libpq's `target_session_attrs` values plus this crate's names.
    pub const ACCEPTED: &'static str =
        "any, read-write, primary, prefer-primary, read-only, standby, replica, prefer-standby, prefer-replica";

    /// The name this crate gives the target: `primary`, `prefer-primary`, `replica`, `prefer-replica`, `any`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::PreferPrimary => "prefer-primary",
            Target::Replica => "replica",
            Target::PreferReplica => "prefer-replica",
            Target::Any => "any",
        }
    }

    /// Parses a libpq `target_session_attrs` value (or this crate's own name), naming `field` in the error.
    pub fn parse_field(field: &'static str, value: &str) -> Result<Target, ConfigError> {
        match value.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "read-write" | "primary" => Ok(Target::Primary),
            "prefer-primary" => Ok(Target::PreferPrimary),
            "read-only" | "standby" | "replica" => Ok(Target::Replica),
            "prefer-standby" | "prefer-replica" => Ok(Target::PreferReplica),
            "any" => Ok(Target::Any),
            _ => Err(ConfigError::invalid(field, value, format!("expected one of: {}", Target::ACCEPTED))),
        }
    }

    /// Whether a host of `role` may serve this target when the target's first choice is not available.
    pub(crate) fn accepts(self, role: Role) -> bool {
        match self {
            Target::Primary => role == Role::Primary,
            Target::Replica => role == Role::Replica,
            Target::PreferPrimary | Target::PreferReplica | Target::Any => true,
        }
    }

    /// The role served first, when the target has a preference.
    pub(crate) fn preferred(self) -> Option<Role> {
        match self {
            Target::Primary | Target::PreferPrimary => Some(Role::Primary),
            Target::Replica | Target::PreferReplica => Some(Role::Replica),
            Target::Any => None,
        }
    }
}

libpq_setting!(Target, "target_session_attrs");

/// How a cluster pool picks among several hosts that fit a [`Target`]: libpq's and pgx's `load_balance_hosts`
/// (Npgsql: `Load Balance Hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LoadBalance {
    /// The first fitting host in the order the hosts were given (libpq's `disable`, its default).
    #[default]
    Disable,
    /// A host picked at random among those that fit, per checkout (libpq's `random`).
    Random,
}

impl LoadBalance {
    /// `disable` or `random`, as libpq spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalance::Disable => "disable",
            LoadBalance::Random => "random",
        }
    }

    /// Parses a libpq `load_balance_hosts` value, naming `field` in the error.
    pub fn parse_field(field: &'static str, value: &str) -> Result<LoadBalance, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(LoadBalance::Disable),
            "random" => Ok(LoadBalance::Random),
            _ => Err(ConfigError::invalid(field, value, "expected disable or random")),
        }
    }
}

libpq_setting!(LoadBalance, "load_balance_hosts");
