//! [`Pools`]: the set of pools a service exposes over HTTP, whatever their backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use aquifer_core::{AnyPool, HealthCheck, HealthRegistry, HealthReport, PoolConfig, RegistryReport, State, Stats};
use serde::{Serialize, Serializer};

fn snapshot(pool: &dyn AnyPool) -> PoolStats {
    let state = pool.state();
    PoolStats {
        name: pool.name().to_owned(),
        system: pool.system().to_owned(),
        server: pool.server(),
        utilization: state.utilization(),
        state,
        stats: pool.stats(),
        config: pool.pool_config().clone(),
    }
}

/// The pools a service exposes: register each once; clones share the set.
///
/// Registering a pool keeps a clone of its handle, so the pool stays open until it is
/// [unregistered](Pools::unregister) or every clone of this set is dropped. An adapter's pool type (`PgPool`,
/// `MySqlPool`, `Neo4jPool`, `SqlitePool`) is an [`AnyPool`]: register it as `pools.register(&pg)`.
#[derive(Clone, Default)]
pub struct Pools {
    health: HealthRegistry,
    pools: Arc<parking_lot::RwLock<Vec<Arc<dyn AnyPool>>>>,
    draining: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.pools.read().iter().map(|p| p.name().to_owned()).collect();
        f.debug_struct("Pools").field("pools", &names).field("draining", &self.is_draining()).finish()
    }
}

impl Pools {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `pool` under its name; the routes list pools in registration order. Any pool of any backend
    /// ([`AnyPool`]): the engine's `Pool`, an adapter's `PgPool`, `SqlitePool` (listed as its readers; register
    /// `writer()` and `readers()` instead to list both).
    pub fn register<P: AnyPool + Clone + 'static>(&self, pool: &P) -> &Self {
        self.register_shared(Arc::new(pool.clone()))
    }

    /// Adds a pool whose backend was chosen at run time (opened through
    /// [`Drivers`](aquifer_core::Drivers)).
    pub fn register_shared(&self, pool: Arc<dyn AnyPool>) -> &Self {
        self.health.register_shared(Arc::clone(&pool) as Arc<dyn HealthCheck>);
        self.pools.write().push(pool);
        self
    }

    /// Removes the pools registered under `name`; returns how many were removed.
    pub fn unregister(&self, name: &str) -> usize {
        self.health.unregister(name);
        let mut pools = self.pools.write();
        let before = pools.len();
        pools.retain(|p| p.name() != name);
        before - pools.len()
    }

    /// The names of the registered pools, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.pools.read().iter().map(|p| p.name().to_owned()).collect()
    }

    /// Checks every pool concurrently (what `GET /health` serves).
    ///
    /// Cancel safety: dropping the future stops waiting; checks already started finish in the background.
    pub async fn health(&self) -> RegistryReport {
        self.health.check().await
    }

    /// The pool registered under `name` (the first, if several share it).
    pub(crate) fn find(&self, name: &str) -> Option<Arc<dyn AnyPool>> {
        self.pools.read().iter().find(|p| p.name() == name).cloned()
    }

    /// Checks the pool registered under `name` (the first, if several share it); `None` when there is none.
    ///
    /// Cancel safety: dropping the future abandons the check; a connection it had checked out returns to its
    /// pool.
    pub async fn health_of(&self, name: &str) -> Option<HealthReport> {
        let pool = self.find(name)?;
        Some(pool.health().await)
    }

    /// Marks the service as draining: from now on `GET /readyz` answers `503`, so a load balancer or
    /// Kubernetes stops sending new requests, while every other route (and every pool) keeps serving.
    /// Irreversible; [`drain_on`](crate::drain_on) calls it when the shutdown signal arrives.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether [`start_draining`](Pools::start_draining) was called on this set or a clone of it.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Closes every registered pool, all at once: each closes its idle connections now and waits up to its
    /// own `close_timeout` for the ones in use. Also [starts draining](Pools::start_draining). The pools stay
    /// registered, reported as closed.
    ///
    /// Cancel safety: dropping the future stops waiting; the pools go on closing in the background.
    pub async fn close(&self) {
        self.start_draining();
        let pools: Vec<Arc<dyn AnyPool>> = self.pools.read().clone();
        let mut closing = tokio::task::JoinSet::new();
        for pool in pools {
            closing.spawn(async move { pool.close().await });
        }
        while closing.join_next().await.is_some() {}
    }

    /// State, counters and configuration of every pool, without touching a connection (what `GET /stats`
    /// serves).
    pub fn stats(&self) -> StatsReport {
        StatsReport { pools: self.pools.read().iter().map(|p| snapshot(&**p)).collect(), taken_at: SystemTime::now() }
    }
}

/// One pool in a [`StatsReport`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// `db.system.name`.
    pub system: String,
    /// `server.address:server.port/db.namespace`: never credentials.
    pub server: String,
    /// What the pool holds now.
    pub state: State,
    /// `in_use / max_size`.
    pub utilization: f64,
    /// What the pool has done since it was built.
    pub stats: Stats,
    /// The pool's configuration (sizes and timeouts; it holds no URL or password).
    pub config: PoolConfig,
}

/// The body of `GET /stats`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatsReport {
    /// Each pool, in registration order.
    pub pools: Vec<PoolStats>,
    /// When the snapshot was taken (RFC 3339).
    #[serde(serialize_with = "as_rfc3339")]
    pub taken_at: SystemTime,
}

fn as_rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}
