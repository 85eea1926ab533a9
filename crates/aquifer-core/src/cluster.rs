//! [`ClusterPool`]: one pool over a primary and its replicas, with a [`Pool`] per host underneath.
//!
//! The API note for adapter authors is on [`ClusterPool`].
//!
//! The per-host pools are plain [`Pool`]s named like the cluster, whose metrics also carry `server.address`
//! and `server.port`; the cluster adds `aquifer.cluster.host.role` and `aquifer.cluster.replica.lag` per host
//! ([`metrics::names`](crate::metrics::names)).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cluster_config::ClusterConfig;
use crate::cluster_errors::{ClusterError, RunError};
use crate::config::PoolConfig;
use crate::errors::{BuildError, ConfigError, PoolError};
use crate::health::HealthRegistry;
use crate::manager::{Descriptor, Manager};
use crate::metrics::names;
use crate::pool::Pool;
use crate::pooled::Pooled;
use crate::replication::{ConnOf, ErrorOf, HostProbe, Replication, WriteScope};
use crate::role::{LoadBalance, Role, Target};

/// What a [`ClusterPool`] knows about one host, from [`ClusterPool::hosts`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HostInfo {
    /// `address:port`.
    pub server: String,
    /// The role of the last successful probe; `None` while down or not yet probed.
    pub role: Option<Role>,
    /// A replica's lag, as last measured.
    #[serde(with = "humantime_serde")]
    pub lag: Option<Duration>,
    /// Whether reads avoid this replica because its lag exceeds `max_replica_lag`.
    pub lagging: bool,
    /// The host's position as last probed, formatted with `Debug`.
    pub position: Option<String>,
    /// Why the last probe failed.
    pub last_error: Option<String>,
    /// When the host was last probed.
    #[serde(serialize_with = "crate::health::as_rfc3339_opt")]
    pub checked_at: Option<SystemTime>,
}

struct HostState<P> {
    probed: bool,
    role: Option<Role>,
    /// When the host took its current role: of two hosts claiming to be primary, the older one keeps the writes.
    role_since: Instant,
    lag: Option<Duration>,
    position: Option<P>,
    last_error: Option<String>,
    checked_at: Option<SystemTime>,
}

struct Host<R: Replication> {
    pool: Pool<R::Manager>,
    descriptor: Descriptor,
    server: Arc<str>,
    state: parking_lot::Mutex<HostState<R::Position>>,
    /// Wakes this host's probe loop for an immediate re-check (a permit is kept if it is busy probing).
    recheck: Notify,
}

struct Inner<R: Replication> {
    name: Arc<str>,
    replication: R,
    config: ClusterConfig,
    acquire_timeout: Duration,
    hosts: Box<[Host<R>]>,
    /// Bumped whenever a host's role, eligibility or first probe changes what a checkout may pick.
    topology: watch::Sender<u64>,
    closing: CancellationToken,
}

/// One pool over the hosts of a replicated cluster: a [`Pool`] per host, roles discovered from the servers
/// and re-checked in the background, checkouts routed by [`Target`]. Cheap to clone; dropping the last clone
/// closes every host's pool and stops the probes.
///
/// A single-host service keeps using [`Pool`]: the cluster is a layer above it, not a path inside it.
///
/// # API note for adapter authors
///
/// A backend supports clusters by implementing [`Replication`] (three methods: `probe` a connection's role,
/// lag and replay position; `write_position` of a primary connection; `is_read_only_error`) and building a
/// [`ClusterPool`] from one [`Manager`] per host:
///
/// ```text
/// let pool = ClusterPool::builder(MyReplication)
///     .hosts(managers)                 // one Manager per host, each with its own Descriptor (address, port)
///     .pool_config(pool_config)        // the engine settings of every host's pool
///     .cluster_config(cluster_config)  // target, load_balance, max_replica_lag, check intervals (serde, env)
///     .build()?;                       // Result<ClusterPool<_>, BuildError>
/// pool.start().await?;                 // optional: waits until every host was probed once
/// let conn = pool.get().await?;                      // the primary (the default target)
/// let conn = pool.get_for(Target::PreferReplica).await?;
/// let scope = WriteScope::new();
/// let mut w = pool.get().await?; /* write */ w.record_write(&scope).await?;
/// let r = pool.get_in(Target::PreferReplica, &scope).await?; // sees the write
/// ```
///
/// The engine does the rest: each host's role is probed on a connection of its own when the pool is built
/// and then every `role_check_interval` (every `failover_check_interval` while no primary is known), and at
/// once after a connection of the host broke or a read-only error was reported
/// ([`ClusterPooled::report_error`]). Roles come from the servers only, never from the order of the hosts.
/// A checkout for a role no host has fails at once with [`ClusterError::NoHost`] (no wait for the acquire
/// timeout), except before the first probe of every host has finished, when it waits for it.
pub struct ClusterPool<R: Replication> {
    handle: Arc<Handle<R>>,
}

struct Handle<R: Replication> {
    inner: Arc<Inner<R>>,
}

impl<R: Replication> Drop for Handle<R> {
    fn drop(&mut self) {
        self.inner.closing.cancel();
    }
}

impl<R: Replication> Clone for ClusterPool<R> {
    fn clone(&self) -> Self {
        ClusterPool { handle: Arc::clone(&self.handle) }
    }
}

impl<R: Replication> fmt::Debug for ClusterPool<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPool").field("name", &self.name()).field("hosts", &self.hosts()).finish()
    }
}

/// Builds a [`ClusterPool`] ([`ClusterPool::builder`]).
#[must_use = "a builder does nothing until build() is called"]
pub struct ClusterBuilder<R: Replication> {
    replication: R,
    managers: Vec<R::Manager>,
    pool_config: PoolConfig,
    cluster_config: ClusterConfig,
    meter: Option<Meter>,
    clock: Clock,
}

impl<R: Replication> ClusterBuilder<R> {
    /// Adds a host (its manager connects to that host only).
    pub fn host(mut self, manager: R::Manager) -> Self {
        self.managers.push(manager);
        self
    }

    /// Adds hosts, in order (the order matters only to [`LoadBalance::Disable`]).
    pub fn hosts(mut self, managers: impl IntoIterator<Item = R::Manager>) -> Self {
        self.managers.extend(managers);
        self
    }

    /// The engine settings of every host's pool (`max_size` is per host). Its `name` names the cluster and
    /// every host pool; default: the hosts' `address:port` joined by commas, then `/namespace`.
    pub fn pool_config(mut self, config: PoolConfig) -> Self {
        self.pool_config = config;
        self
    }

    /// The routing settings.
    pub fn cluster_config(mut self, config: ClusterConfig) -> Self {
        self.cluster_config = config;
        self
    }

    /// Records metrics with this meter instead of [`default_meter`](crate::metrics::default_meter).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// The clock of every host's pool (see [`PoolBuilder::clock`](crate::PoolBuilder::clock)).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings, builds a pool per host and starts probing them. Must be called within a Tokio
    /// runtime. Fails without hosts, or on an invalid setting.
    pub fn build(self) -> Result<ClusterPool<R>, BuildError> {
        if self.managers.is_empty() {
            return Err(ConfigError::Missing {
                field: "hosts".into(),
                reason: "a cluster needs at least one host".into(),
            }
            .into());
        }
        self.cluster_config.validate()?;
        self.pool_config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let descriptors: Vec<Descriptor> = self.managers.iter().map(Manager::descriptor).collect();
        let name: Arc<str> = self.pool_config.name.clone().unwrap_or_else(|| default_name(&descriptors)).into();
        let meter = self.meter.unwrap_or_else(crate::metrics::default_meter);
        let mut hosts = Vec::with_capacity(self.managers.len());
        for (manager, descriptor) in self.managers.into_iter().zip(descriptors) {
            let pool = Pool::builder(manager)
                .config(self.pool_config.clone())
                .name(name.to_string())
                .meter(meter.clone())
                .clock(self.clock.clone())
                .host_attributes()
                .build()?;
            hosts.push(Host {
                pool,
                server: server_of(&descriptor).into(),
                descriptor,
                state: parking_lot::Mutex::new(HostState {
                    probed: false,
                    role: None,
                    role_since: Instant::now(),
                    lag: None,
                    position: None,
                    last_error: None,
                    checked_at: None,
                }),
                recheck: Notify::new(),
            });
        }
        let inner = Arc::new(Inner {
            name,
            replication: self.replication,
            config: self.cluster_config,
            acquire_timeout: self.pool_config.acquire_timeout,
            hosts: hosts.into_boxed_slice(),
            topology: watch::Sender::new(0),
            closing: CancellationToken::new(),
        });
        register_metrics(&meter, &inner);
        for i in 0..inner.hosts.len() {
            runtime.spawn(watch_host(Arc::clone(&inner), i));
        }
        Ok(ClusterPool { handle: Arc::new(Handle { inner }) })
    }
}

fn server_of(d: &Descriptor) -> String {
    let mut s = d.server_address.clone().unwrap_or_else(|| d.system.to_string());
    if let Some(p) = d.server_port {
        s.push_str(&format!(":{p}"));
    }
    s
}

fn default_name(descriptors: &[Descriptor]) -> String {
    let mut name = descriptors.iter().map(server_of).collect::<Vec<_>>().join(",");
    if let Some(ns) = descriptors.first().and_then(|d| d.namespace.as_ref()) {
        name.push('/');
        name.push_str(ns);
    }
    name
}

impl<R: Replication> ClusterPool<R> {
    /// Starts building a cluster pool whose backend specifics are `replication`.
    pub fn builder(replication: R) -> ClusterBuilder<R> {
        ClusterBuilder {
            replication,
            managers: Vec::new(),
            pool_config: PoolConfig::default(),
            cluster_config: ClusterConfig::default(),
            meter: None,
            clock: Clock::default(),
        }
    }

    fn inner(&self) -> &Arc<Inner<R>> {
        &self.handle.inner
    }

    /// Waits until every host has been probed once (whatever the outcome), up to the acquire timeout, then
    /// fails with [`ClusterError::NoHost`] unless a host serves the configured target. Use it at start-up so
    /// that a cluster without a primary is reported before the first request.
    ///
    /// Cancel safety: dropping the future only stops the wait.
    pub async fn start(&self) -> Result<(), ClusterError<ErrorOf<R>>> {
        let inner = self.inner();
        let mut rx = inner.topology.subscribe();
        let deadline = Instant::now() + inner.acquire_timeout;
        while !inner.all_probed() {
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                break;
            }
        }
        match inner.choose(inner.config.target, None) {
            Some(_) => Ok(()),
            None => Err(inner.no_host(inner.config.target)),
        }
    }

    /// Checks out a connection from a host serving the configured target ([`ClusterConfig::target`], by
    /// default the primary): what writes use.
    ///
    /// Errors: [`ClusterError::NoHost`] at once when no host serves the target (a failover in progress);
    /// [`ClusterError::Pool`] when the host's pool times out; [`ClusterError::Closed`].
    ///
    /// Cancel safety: as for [`Pool::get`]: no connection is lost, no slot leaks.
    pub async fn get(&self) -> Result<ClusterPooled<R>, ClusterError<ErrorOf<R>>> {
        self.route(self.inner().config.target, None).await
    }

    /// Checks out a connection from a host serving `target`. Reads that may go to a replica use
    /// [`Target::PreferReplica`]; a host that fails its checkout (down) is skipped for the next that fits.
    ///
    /// Errors and cancel safety: as for [`get`](ClusterPool::get).
    pub async fn get_for(&self, target: Target) -> Result<ClusterPooled<R>, ClusterError<ErrorOf<R>>> {
        self.route(target, None).await
    }

    /// Like [`get_for`](ClusterPool::get_for) for a read that must see the writes recorded in `scope`
    /// ([`ClusterPooled::record_write`]): a replica qualifies only once its replay position has reached the
    /// scope's position, as last probed or, when no probed position does, as an idle connection of a replica
    /// within `max_replica_lag` answers ([`Replication::has_replayed`], one round trip); otherwise the read
    /// goes to the primary, even for [`Target::Replica`].
    ///
    /// Errors and cancel safety: as for [`get`](ClusterPool::get).
    pub async fn get_in(
        &self,
        target: Target,
        scope: &WriteScope<R::Position>,
    ) -> Result<ClusterPooled<R>, ClusterError<ErrorOf<R>>> {
        let position = scope.position();
        if let Some(p) = &position
            && target.preferred() == Some(Role::Replica)
            && let Some(conn) = self.replayed_replica(p).await
        {
            return Ok(conn);
        }
        self.route(target, position.as_ref()).await
    }

    /// A replica whose probed position does not vouch for `position` yet but which says it has replayed it
    /// now ([`Replication::has_replayed`]), on one of its idle connections: never waits for a connection, so
    /// a read that cannot be served this way goes on to the primary at once.
    async fn replayed_replica(&self, position: &R::Position) -> Option<ClusterPooled<R>> {
        let inner = self.inner();
        if matches!(inner.choose(Target::Replica, Some(position)), Some((_, Role::Replica))) {
            // The probed positions decide: `route` picks that replica.
            return None;
        }
        let (i, _) = inner.choose(Target::Replica, None)?;
        let host = &inner.hosts[i];
        let mut conn = host.pool.try_get().await.ok()??;
        match inner.replication.has_replayed(&host.descriptor, &mut conn, position).await {
            Ok(Some(true)) => {
                // What the replica just said holds from now on: later reads of the same write need no question.
                let mut s = host.state.lock();
                if s.position.as_ref().is_none_or(|p| matches!(p.partial_cmp(position), Some(o) if o.is_lt())) {
                    s.position = Some(position.clone());
                }
                drop(s);
                Some(ClusterPooled { conn: Some(conn), host: i, role: Role::Replica, inner: Arc::clone(inner) })
            }
            Ok(_) => None,
            Err(_) => {
                host.recheck.notify_one();
                None
            }
        }
    }

    async fn route(
        &self,
        target: Target,
        after: Option<&R::Position>,
    ) -> Result<ClusterPooled<R>, ClusterError<ErrorOf<R>>> {
        let inner = self.inner();
        let deadline = Instant::now() + inner.acquire_timeout;
        let mut rx = inner.topology.subscribe();
        loop {
            if inner.closing.is_cancelled() {
                return Err(ClusterError::Closed);
            }
            if Instant::now() >= deadline {
                // Hosts kept failing their checkouts until the acquire timeout: none serves the target.
                return Err(inner.no_host(target));
            }
            rx.borrow_and_update();
            let Some((i, role)) = inner.choose(target, after) else {
                // Before every host was probed once, "no host" only means "not known yet": wait for the probes.
                if inner.all_probed() || tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                    return Err(inner.no_host(target));
                }
                continue;
            };
            let host = &inner.hosts[i];
            let remaining = deadline.saturating_duration_since(Instant::now());
            let got = tokio::select! {
                got = host.pool.get_timeout(remaining) => got,
                () = inner.lost(i, role, &mut rx) => continue,
            };
            match got {
                Ok(conn) => return Ok(ClusterPooled { conn: Some(conn), host: i, role, inner: Arc::clone(inner) }),
                Err(PoolError::Closed) if inner.closing.is_cancelled() => return Err(ClusterError::Closed),
                // The host does not answer: it is down whatever its last probe said. Skip it and re-check.
                Err(e @ (PoolError::Unavailable { .. } | PoolError::Closed)) => inner.mark_down(i, e.to_string()),
                Err(error) => return Err(ClusterError::Pool { server: Arc::clone(&host.server), error }),
            }
        }
    }

    /// Runs `op` on a connection of a host serving `target`, and reports its error, if any, to the cluster
    /// ([`ClusterPooled::report_error`]: a read-only error discards the connection and re-checks roles). The
    /// helpers' form of [`get_for`](ClusterPool::get_for); `op` returns a boxed future borrowing the
    /// connection:
    ///
    /// ```text
    /// let n: i64 = pool.run(Target::PreferReplica, |c| Box::pin(async move {
    ///     sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&mut *c).await
    /// })).await?;
    /// ```
    ///
    /// Cancel safety: dropping the future drops the connection mid-operation, which its pool then resets or
    /// discards as for any interrupted query.
    pub async fn run<T, O>(
        &self,
        target: Target,
        op: impl for<'c> FnOnce(&'c mut ConnOf<R>) -> futures_util::future::BoxFuture<'c, Result<T, O>>,
    ) -> Result<T, RunError<ErrorOf<R>, O>>
    where
        O: std::error::Error + 'static,
    {
        let mut conn = self.get_for(target).await.map_err(RunError::Checkout)?;
        run_on(&mut conn, op).await
    }

    /// Like [`run`](ClusterPool::run) for a read that must see the writes recorded in `scope` (see
    /// [`get_in`](ClusterPool::get_in)).
    ///
    /// Cancel safety: as for [`run`](ClusterPool::run).
    pub async fn run_in<T, O>(
        &self,
        target: Target,
        scope: &WriteScope<R::Position>,
        op: impl for<'c> FnOnce(&'c mut ConnOf<R>) -> futures_util::future::BoxFuture<'c, Result<T, O>>,
    ) -> Result<T, RunError<ErrorOf<R>, O>>
    where
        O: std::error::Error + 'static,
    {
        let mut conn = self.get_in(target, scope).await.map_err(RunError::Checkout)?;
        run_on(&mut conn, op).await
    }

    /// Runs the write `op` on the primary (whatever the configured default target) and, when it succeeds and
    /// `scope` is given, records its position there ([`ClusterPooled::record_write`]) so that the scope's
    /// reads see it. Errors are reported as by [`run`](ClusterPool::run).
    ///
    /// Cancel safety: as for [`run`](ClusterPool::run); a write interrupted before its position was read is
    /// not recorded in the scope.
    pub async fn write<T, O>(
        &self,
        scope: Option<&WriteScope<R::Position>>,
        op: impl for<'c> FnOnce(&'c mut ConnOf<R>) -> futures_util::future::BoxFuture<'c, Result<T, O>>,
    ) -> Result<T, RunError<ErrorOf<R>, O>>
    where
        O: std::error::Error + 'static,
    {
        let mut conn = self.get_for(Target::Primary).await.map_err(RunError::Checkout)?;
        let value = run_on(&mut conn, op).await?;
        if let Some(scope) = scope {
            conn.record_write(scope).await.map_err(RunError::Position)?;
        }
        Ok(value)
    }

    /// What the pool knows about each host, in the order given.
    pub fn hosts(&self) -> Vec<HostInfo> {
        let inner = self.inner();
        inner
            .hosts
            .iter()
            .map(|h| {
                let s = h.state.lock();
                HostInfo {
                    server: h.server.to_string(),
                    role: s.role,
                    lag: s.lag,
                    lagging: inner.lagging(&s),
                    position: s.position.as_ref().map(|p| format!("{p:?}")),
                    last_error: s.last_error.clone(),
                    checked_at: s.checked_at,
                }
            })
            .collect()
    }

    /// Each host's pool, in the order given (for stats, health, retire).
    pub fn pools(&self) -> impl Iterator<Item = &Pool<R::Manager>> + '_ {
        self.inner().hosts.iter().map(|h| &h.pool)
    }

    /// Registers each host's pool in `registry`: one health entry per host, each naming its server.
    pub fn register_health(&self, registry: &HealthRegistry) {
        for pool in self.pools() {
            registry.register(pool.clone());
        }
    }

    /// The cluster's name (`db.client.connection.pool.name` of every host pool).
    pub fn name(&self) -> &str {
        &self.inner().name
    }

    /// The routing settings.
    pub fn cluster_config(&self) -> &ClusterConfig {
        &self.inner().config
    }

    /// The backend part.
    pub fn replication(&self) -> &R {
        &self.inner().replication
    }

    /// Re-checks every host's role now (in the background), as after a reported read-only error.
    pub fn recheck(&self) {
        self.inner().recheck_all();
    }

    /// Closes every host's pool (see [`Pool::close`]) and stops the probes; returns how many connections were
    /// still open at the deadline.
    ///
    /// Cancel safety: the pools are closed when this is first polled; dropping the future only stops the wait.
    pub async fn close(&self) -> usize {
        let inner = self.inner();
        inner.closing.cancel();
        let mut left = 0;
        for h in inner.hosts.iter() {
            left += h.pool.close().await;
        }
        left
    }
}

impl<R: Replication> Inner<R> {
    fn all_probed(&self) -> bool {
        self.hosts.iter().all(|h| h.state.lock().probed)
    }

    fn primary_known(&self) -> bool {
        self.hosts.iter().any(|h| h.state.lock().role == Some(Role::Primary))
    }

    fn lagging(&self, s: &HostState<R::Position>) -> bool {
        matches!((self.config.max_replica_lag, s.lag), (Some(max), Some(lag)) if lag > max)
    }

    /// Whether host `s` may serve `role` (for a read after a write at `after`, a replica must have replayed it).
    fn serves(&self, s: &HostState<R::Position>, role: Role, after: Option<&R::Position>) -> bool {
        if s.role != Some(role) {
            return false;
        }
        if role == Role::Primary {
            return true;
        }
        if self.lagging(s) {
            return false;
        }
        match after {
            None => true,
            Some(w) => s.position.as_ref().is_some_and(|p| matches!(p.partial_cmp(w), Some(o) if o.is_ge())),
        }
    }

    /// The hosts (index, in the order given) for which `fits`, reading the host's last probe under its lock,
    /// gives a value, with that value.
    fn fitting<T>(&self, fits: impl Fn(&HostState<R::Position>) -> Option<T>) -> Vec<(usize, T)> {
        self.hosts.iter().enumerate().filter_map(|(i, h)| fits(&h.state.lock()).map(|v| (i, v))).collect()
    }

    /// Picks a host for `target`: `(index, role it serves as)`, or `None` when no host fits now.
    fn choose(&self, target: Target, after: Option<&R::Position>) -> Option<(usize, Role)> {
        let pick = |role: Role| -> Option<usize> {
            let fitting = self.fitting(|s| self.serves(s, role, after).then_some(s.role_since));
            if role == Role::Primary {
                // Two hosts claiming to be primary (an old primary back read-write while the promoted replica
                // serves): writes stay with the one that has been primary longest, as the pool saw it.
                return fitting.iter().min_by_key(|(_, since)| *since).map(|(i, _)| *i);
            }
            match self.config.load_balance {
                LoadBalance::Disable => fitting.first().map(|(i, _)| *i),
                LoadBalance::Random if fitting.is_empty() => None,
                LoadBalance::Random => Some(fitting[fastrand::usize(..fitting.len())].0),
            }
        };
        let other = |role: Role| if role == Role::Primary { Role::Replica } else { Role::Primary };
        match target.preferred() {
            Some(first) => {
                if let Some(i) = pick(first) {
                    return Some((i, first));
                }
                // A read after a write no replica has replayed yet goes to the primary, whatever the target.
                let fallback = if target.accepts(other(first)) || (first == Role::Replica && after.is_some()) {
                    Some(other(first))
                } else {
                    None
                };
                fallback.and_then(|r| pick(r).map(|i| (i, r)))
            }
            None => {
                // Any: the first fitting host in the order given (or a random one), whatever its role.
                let fitting =
                    self.fitting(|s| [Role::Primary, Role::Replica].into_iter().find(|r| self.serves(s, *r, after)));
                match self.config.load_balance {
                    LoadBalance::Disable => fitting.first().copied(),
                    LoadBalance::Random if fitting.is_empty() => None,
                    LoadBalance::Random => Some(fitting[fastrand::usize(..fitting.len())]),
                }
            }
        }
    }

    fn no_host(&self, target: Target) -> ClusterError<ErrorOf<R>> {
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                let s = h.state.lock();
                match (s.role, &s.last_error) {
                    (Some(role), _) if self.lagging(&s) => {
                        format!("{} {role} lagging {:?}", h.server, s.lag.unwrap_or_default())
                    }
                    (Some(role), _) => format!("{} {role}", h.server),
                    (None, Some(e)) => format!("{} down: {e}", h.server),
                    (None, None) => format!("{} not probed yet", h.server),
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        ClusterError::NoHost { target, hosts }
    }

    /// Resolves when host `i` no longer serves as `role` (its role changed, or it went down).
    async fn lost(&self, i: usize, role: Role, rx: &mut watch::Receiver<u64>) {
        loop {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self.hosts[i].state.lock().role != Some(role) {
                return;
            }
        }
    }

    fn bump(&self) {
        self.topology.send_modify(|g| *g = g.wrapping_add(1));
    }

    fn recheck_all(&self) {
        for h in self.hosts.iter() {
            h.recheck.notify_one();
        }
    }

    /// Host `i` failed a checkout: down until its next probe says otherwise, which runs now.
    fn mark_down(&self, i: usize, error: String) {
        self.record(i, Err(error));
        self.hosts[i].recheck.notify_one();
    }

    /// Applies a probe's outcome to host `i`, telling waiting checkouts when what they may pick changed.
    fn record(&self, i: usize, outcome: Result<HostProbe<R::Position>, String>) {
        let host = &self.hosts[i];
        let (was, now, changed) = {
            let mut s = host.state.lock();
            let was = s.role;
            let was_lagging = self.lagging(&s);
            let first = !s.probed;
            s.probed = true;
            s.checked_at = Some(SystemTime::now());
            match outcome {
                Ok(p) => {
                    s.role = Some(p.role);
                    s.lag = p.lag;
                    if p.position.is_some() {
                        s.position = p.position;
                    }
                    s.last_error = None;
                }
                Err(e) => {
                    s.role = None;
                    s.lag = None;
                    s.last_error = Some(e);
                }
            }
            if s.role != was {
                s.role_since = Instant::now();
            }
            let changed = first || s.role != was || self.lagging(&s) != was_lagging || s.role == Some(Role::Replica);
            (was, s.role, changed)
        };
        if was != now {
            if now == Some(Role::Primary) && self.hosts.iter().filter(|h| h.state.lock().role == now).count() > 1 {
                tracing::warn!(pool = %self.name, server = %host.server, "two hosts report being primary");
            }
            match now {
                Some(role) => tracing::info!(pool = %self.name, server = %host.server, %role, "cluster host role"),
                None => tracing::warn!(pool = %self.name, server = %host.server, "cluster host down"),
            }
            if was == Some(Role::Primary) {
                // Sessions opened on a primary must not serve writes once it is not one.
                host.pool.retire();
                // Find the new primary fast.
                self.recheck_all();
            }
        }
        if changed {
            // Replicas' positions move on every probe: reads waiting on read-your-writes look again.
            self.bump();
        }
    }
}

/// Probes host `i` until the cluster closes, on a connection of its own (so a busy pool never delays it).
async fn watch_host<R: Replication>(inner: Arc<Inner<R>>, i: usize) {
    let host = &inner.hosts[i];
    let mut conn: Option<ConnOf<R>> = None;
    loop {
        let outcome = tokio::select! {
            () = inner.closing.cancelled() => return,
            outcome = probe(&inner, host, &mut conn) => outcome,
        };
        inner.record(i, outcome);
        let interval =
            if inner.primary_known() { inner.config.role_check_interval } else { inner.config.failover_check_interval };
        tokio::select! {
            () = inner.closing.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = host.recheck.notified() => {}
        }
    }
}

async fn probe<R: Replication>(
    inner: &Inner<R>,
    host: &Host<R>,
    conn: &mut Option<ConnOf<R>>,
) -> Result<HostProbe<R::Position>, String> {
    let deadline = Instant::now() + inner.config.probe_timeout;
    if conn.is_none() {
        let connect = std::panic::AssertUnwindSafe(host.pool.manager().connect()).catch_unwind();
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(Ok(c))) => *conn = Some(c),
            Ok(Ok(Err(e))) => return Err(e.to_string()),
            Ok(Err(_)) => return Err("the manager's connect panicked".into()),
            Err(_) => return Err(format!("probe connect timed out after {:?}", inner.config.probe_timeout)),
        }
    }
    let c = conn.as_mut().expect("connected above");
    let probe = std::panic::AssertUnwindSafe(inner.replication.probe(&host.descriptor, c)).catch_unwind();
    let result = match tokio::time::timeout_at(deadline, probe).await {
        Ok(Ok(Ok(p))) => Ok(p),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(_)) => Err("the role probe panicked".into()),
        Err(_) => Err(format!("role probe timed out after {:?}", inner.config.probe_timeout)),
    };
    if result.is_err() {
        // A failed probe leaves the session in an unknown state: the next probe reconnects.
        *conn = None;
    }
    result
}

async fn run_on<R: Replication, T, O: std::error::Error + 'static>(
    conn: &mut ClusterPooled<R>,
    op: impl for<'c> FnOnce(&'c mut ConnOf<R>) -> futures_util::future::BoxFuture<'c, Result<T, O>>,
) -> Result<T, RunError<ErrorOf<R>, O>> {
    match op(&mut **conn).await {
        Ok(value) => Ok(value),
        Err(e) => {
            conn.report_error(&e);
            Err(RunError::Operation(e))
        }
    }
}

fn register_metrics<R: Replication>(meter: &Meter, inner: &Arc<Inner<R>>) {
    let attrs: Arc<[Vec<KeyValue>]> = inner
        .hosts
        .iter()
        .map(|h| {
            let mut a = vec![
                KeyValue::new(crate::metrics::POOL_NAME, inner.name.to_string()),
                KeyValue::new(crate::metrics::DB_SYSTEM_NAME, h.descriptor.system.to_string()),
            ];
            if let Some(addr) = &h.descriptor.server_address {
                a.push(KeyValue::new("server.address", addr.clone()));
            }
            if let Some(port) = h.descriptor.server_port {
                a.push(KeyValue::new("server.port", i64::from(port)));
            }
            a
        })
        .collect();
    meter
        .i64_observable_gauge(names::HOST_ROLE)
        .with_unit("1")
        .with_description("The role of a cluster host: 1 primary, 0 replica, -1 down or not yet probed.")
        .with_callback(per_host(inner, Arc::clone(&attrs), |s| {
            Some(match s.role {
                Some(Role::Primary) => 1,
                Some(Role::Replica) => 0,
                None => -1,
            })
        }))
        .build();
    meter
        .f64_observable_gauge(names::REPLICA_LAG)
        .with_unit("s")
        .with_description("A replica's replication lag, as last measured.")
        .with_callback(per_host(inner, attrs, |s| match (s.role, s.lag) {
            (Some(Role::Replica), Some(lag)) => Some(lag.as_secs_f64()),
            _ => None,
        }))
        .build();
}

/// A gauge's callback: while the cluster is open, observes for each host (with its attributes) the value
/// `value` reads from its last probe, if any. It holds the cluster weakly, so the meter does not keep it alive.
fn per_host<R: Replication, T>(
    inner: &Arc<Inner<R>>,
    attrs: Arc<[Vec<KeyValue>]>,
    value: impl Fn(&HostState<R::Position>) -> Option<T> + Send + Sync + 'static,
) -> impl Fn(&dyn AsyncInstrument<T>) + Send + Sync + 'static {
    let weak = Arc::downgrade(inner);
    move |o| {
        let Some(inner) = weak.upgrade() else { return };
        if inner.closing.is_cancelled() {
            return;
        }
        for (h, a) in inner.hosts.iter().zip(attrs.iter()) {
            // Read under the lock, observed after it.
            let v = value(&h.state.lock());
            if let Some(v) = v {
                o.observe(v, a);
            }
        }
    }
}

/// A connection checked out of a [`ClusterPool`]: dereferences to the driver's connection like
/// [`Pooled`]; dropping it returns it to its host's pool.
pub struct ClusterPooled<R: Replication> {
    conn: Option<Pooled<R::Manager>>,
    host: usize,
    role: Role,
    inner: Arc<Inner<R>>,
}

impl<R: Replication> ClusterPooled<R> {
    /// The role the host had when it was picked.
    pub fn role(&self) -> Role {
        self.role
    }

    /// `address:port` of the host.
    pub fn server(&self) -> &str {
        &self.inner.hosts[self.host].server
    }

    /// The pooled connection underneath.
    pub fn pooled(&mut self) -> &mut Pooled<R::Manager> {
        self.conn.as_mut().expect("held until dropped")
    }

    /// Tells the cluster about an error this connection returned. A read-only error
    /// ([`Replication::is_read_only_error`]: the host is no longer the primary) discards the connection and
    /// re-checks every host's role now. Returns whether the error was a read-only error. The cluster's
    /// helpers ([`ClusterPool::run`] and its siblings) call this on every failure. (A connection the driver
    /// found broken re-checks its host when it is dropped, whether or not its error was reported.)
    pub fn report_error(&mut self, error: &(dyn std::error::Error + 'static)) -> bool {
        if self.inner.replication.is_read_only_error(error) {
            if let Some(conn) = self.conn.take() {
                conn.discard();
            }
            tracing::warn!(pool = %self.inner.name, server = %self.server(), "read-only error: re-checking roles");
            self.inner.recheck_all();
            return true;
        }
        false
    }

    /// Records the position of the writes made so far on this connection in `scope`
    /// ([`Replication::write_position`]), so reads through [`ClusterPool::get_in`] see them. Call it after the
    /// commit.
    ///
    /// Cancel safety: dropping the future leaves the scope as it was; the connection is handled like any
    /// connection whose query was interrupted.
    pub async fn record_write(&mut self, scope: &WriteScope<R::Position>) -> Result<(), ErrorOf<R>> {
        let inner = Arc::clone(&self.inner);
        let position = inner.replication.write_position(&mut **self).await?;
        scope.observe(position);
        Ok(())
    }
}

impl<R: Replication> Deref for ClusterPooled<R> {
    type Target = ConnOf<R>;

    fn deref(&self) -> &ConnOf<R> {
        self.conn.as_deref().expect("held until dropped")
    }
}

impl<R: Replication> DerefMut for ClusterPooled<R> {
    fn deref_mut(&mut self) -> &mut ConnOf<R> {
        self.conn.as_deref_mut().expect("held until dropped")
    }
}

impl<R: Replication> Drop for ClusterPooled<R> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let host = &self.inner.hosts[self.host];
            // A broken connection may be the first sign its server died: probe the host now rather than at the
            // next interval. The pool makes the same (cheap, I/O-free) check when it takes the connection back.
            let manager = host.pool.manager();
            let broken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| manager.is_broken(&mut conn)));
            if broken.unwrap_or(true) {
                host.recheck.notify_one();
            }
            drop(conn);
        }
    }
}

impl<R: Replication> fmt::Debug for ClusterPooled<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPooled").field("server", &self.server()).field("role", &self.role).finish()
    }
}
