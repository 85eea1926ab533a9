//! Errors of a [`ClusterPool`](crate::ClusterPool): a checkout ([`ClusterError`]), its helpers ([`RunError`])
//! and an adapter's start ([`ClusterStartError`]).

use std::fmt;
use std::sync::Arc;

use crate::errors::PoolError;
use crate::role::Target;

/// Why a [`ClusterPool`](crate::ClusterPool) could not lend a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError<E: std::error::Error + 'static> {
    /// No host has the role the target asks for right now (during a failover: no primary): returned at once,
    /// without waiting for the acquire timeout. `hosts` says what each host was at the time.
    NoHost {
        /// What the caller asked for.
        target: Target,
        /// Each host as `address:port role` or `address:port down (last error)`.
        hosts: String,
    },
    /// The chosen host's pool failed the checkout (a timeout while every connection was in use, a checkout
    /// hook).
    Pool {
        /// `address:port` of the host.
        server: Arc<str>,
        /// The host pool's error.
        error: PoolError<E>,
    },
    /// The cluster pool was closed.
    Closed,
}

impl<E: std::error::Error + 'static> ClusterError<E> {
    /// True for [`ClusterError::NoHost`]: no host has the asked role now (retry later, or ask another target).
    pub fn is_no_host(&self) -> bool {
        matches!(self, ClusterError::NoHost { .. })
    }
}

impl<E: std::error::Error + 'static> fmt::Display for ClusterError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::NoHost { target, hosts } => write!(f, "no host serves target {target} now ({hosts})"),
            ClusterError::Pool { server, error } => write!(f, "host {server}: {error}"),
            ClusterError::Closed => f.write_str("the cluster pool is closed"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ClusterError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClusterError::Pool { error, .. } => crate::errors::source_not_in(&self.to_string(), error),
            ClusterError::NoHost { .. } | ClusterError::Closed => None,
        }
    }
}

/// Why an adapter could not build and start a [`ClusterPool`](crate::ClusterPool): a bad setting or URL (before anything
/// connects), or no host serving the configured target once every host was probed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterStartError<E: std::error::Error + 'static> {
    /// Building failed: a bad setting or URL (naming it), or no Tokio runtime.
    Build(crate::start::StartError<E>),
    /// Every host was probed and none serves the configured target ([`ClusterPool::start`](crate::ClusterPool::start)).
    Start(ClusterError<E>),
}

impl<E: std::error::Error + 'static> fmt::Display for ClusterStartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterStartError::Build(e) => fmt::Display::fmt(e, f),
            ClusterStartError::Start(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ClusterStartError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClusterStartError::Build(e) => e.source(),
            ClusterStartError::Start(e) => e.source(),
        }
    }
}

impl<E: std::error::Error + 'static> From<crate::start::StartError<E>> for ClusterStartError<E> {
    fn from(e: crate::start::StartError<E>) -> Self {
        ClusterStartError::Build(e)
    }
}

impl<E: std::error::Error + 'static> From<ClusterError<E>> for ClusterStartError<E> {
    fn from(e: ClusterError<E>) -> Self {
        ClusterStartError::Start(e)
    }
}

/// Why [`ClusterPool::run`](crate::ClusterPool::run), [`run_in`](crate::ClusterPool::run_in) or [`write`](crate::ClusterPool::write) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError<E: std::error::Error + 'static, O> {
    /// No connection could be checked out (see [`ClusterError`]).
    Checkout(ClusterError<E>),
    /// The operation failed (a read-only error among them was reported: the connection discarded, roles
    /// re-checked).
    Operation(O),
    /// The write succeeded but its position could not be read, so the scope does not carry it.
    Position(E),
}

impl<E: std::error::Error + 'static, O: fmt::Display> fmt::Display for RunError<E, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Checkout(e) => fmt::Display::fmt(e, f),
            RunError::Operation(e) => fmt::Display::fmt(e, f),
            RunError::Position(e) => write!(f, "the write succeeded but its replication position is unknown: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static, O: std::error::Error + 'static> std::error::Error for RunError<E, O> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Checkout(e) => e.source(),
            RunError::Operation(e) => e.source(),
            RunError::Position(e) => crate::errors::source_not_in(&self.to_string(), e),
        }
    }
}
