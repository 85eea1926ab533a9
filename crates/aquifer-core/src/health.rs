//! Health reports of one pool ([`HealthReport`]) and of many ([`HealthRegistry`]), ready to serve as JSON
//! from a `/health` endpoint.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::stats::State;

/// Above this utilization (in use / max size) a pool reports itself degraded.
pub(crate) const DEGRADED_UTILIZATION: f64 = 0.8;

/// How a pool is doing. Ordered from best to worst, so the worst of several is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Validation passes and there is headroom.
    Healthy,
    /// Working, but above 80 % utilization or with callers waiting.
    Degraded,
    /// Validation fails, the server is unreachable (the pool fails fast) or the pool is closed.
    Unhealthy,
}

impl HealthStatus {
    /// 1 healthy, 0.5 degraded, 0 unhealthy: the value of the `aquifer.pool.health` gauge.
    pub fn as_f64(self) -> f64 {
        match self {
            HealthStatus::Healthy => 1.0,
            HealthStatus::Degraded => 0.5,
            HealthStatus::Unhealthy => 0.0,
        }
    }

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// Degraded when above 80 % utilization or with waiters, healthy otherwise.
    pub fn from_state(state: &State) -> HealthStatus {
        if state.utilization() > DEGRADED_UTILIZATION || state.waiting > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One pool's health, from [`Pool::health`](crate::Pool::health).
///
/// Serializes to JSON with `latency_ms` as a number and `checked_at` as RFC 3339. Never holds credentials.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// The pool's name.
    pub pool: String,
    /// `db.system.name`.
    pub system: String,
    /// `server.address:server.port/db.namespace`.
    pub server: String,
    /// The server's version string, when the manager reports one.
    pub server_version: Option<String>,
    /// Round trip of a validation query on a pooled connection.
    #[serde(rename = "latency_ms", serialize_with = "as_millis")]
    pub latency: Option<Duration>,
    /// The pool's state when checked.
    pub state: State,
    /// `in_use / max_size`.
    pub utilization: f64,
    /// Why the pool is not healthy, or the last connect error.
    pub last_error: Option<String>,
    /// When the check ran.
    #[serde(serialize_with = "as_rfc3339")]
    pub checked_at: SystemTime,
}

fn as_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

pub(crate) fn as_rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

pub(crate) fn as_rfc3339_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
        None => s.serialize_none(),
    }
}

/// Anything that can report its health: every [`Pool`](crate::Pool), whatever its backend.
#[async_trait::async_trait]
pub trait HealthCheck: Send + Sync {
    /// The name under which the report is listed.
    fn name(&self) -> &str;
    /// Runs the check.
    async fn health(&self) -> HealthReport;
}

/// Many pools' health in one report, for a service's `/health` endpoint.
///
/// ```
/// # async fn demo(pg: impl aquifer_core::HealthCheck + 'static, cache: impl aquifer_core::HealthCheck + 'static) {
/// use aquifer_core::HealthRegistry;
///
/// let registry = HealthRegistry::new();
/// registry.register(pg);
/// registry.register(cache);
/// let report = registry.check().await;
/// println!("{}", serde_json::to_string_pretty(&report).unwrap());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct HealthRegistry {
    checks: Arc<parking_lot::RwLock<Vec<Arc<dyn HealthCheck>>>>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.checks.read().iter().map(|c| c.name().to_owned()).collect();
        f.debug_struct("HealthRegistry").field("pools", &names).finish()
    }
}

/// The aggregated report of a [`HealthRegistry`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RegistryReport {
    /// The worst status of all pools (healthy when there are none).
    pub status: HealthStatus,
    /// Each pool's report, in registration order.
    pub pools: Vec<HealthReport>,
    /// When the check ran.
    #[serde(serialize_with = "as_rfc3339")]
    pub checked_at: SystemTime,
}

impl HealthRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool (a clone of the handle: the registry keeps the pool open until unregistered).
    pub fn register(&self, check: impl HealthCheck + 'static) {
        self.checks.write().push(Arc::new(check));
    }

    /// Adds a check already shared (a pool of any backend opened through [`Drivers`](crate::Drivers)).
    pub fn register_shared(&self, check: Arc<dyn HealthCheck>) {
        self.checks.write().push(check);
    }

    /// Removes the pools registered under `name`; returns how many were removed.
    pub fn unregister(&self, name: &str) -> usize {
        let mut checks = self.checks.write();
        let before = checks.len();
        checks.retain(|c| c.name() != name);
        before - checks.len()
    }

    /// Checks every pool concurrently and aggregates the reports.
    ///
    /// Cancel safety: dropping the future stops waiting; checks already started finish in the background.
    pub async fn check(&self) -> RegistryReport {
        let checks: Vec<Arc<dyn HealthCheck>> = self.checks.read().clone();
        let handles: Vec<_> = checks.into_iter().map(|c| tokio::spawn(async move { c.health().await })).collect();
        let mut pools = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(report) = h.await {
                pools.push(report);
            }
        }
        RegistryReport {
            status: pools.iter().map(|p| p.status).max().unwrap_or(HealthStatus::Healthy),
            pools,
            checked_at: SystemTime::now(),
        }
    }
}
