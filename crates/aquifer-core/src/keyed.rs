//! [`KeyedPools`]: one pool per key (a tenant's database, schema or file), created on first use, under one
//! cap on the connections open across all of them, with pools idle past a timeout closed.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::PoolConfig;
use crate::errors::{BuildError, ConfigError, PoolError};
use crate::manager::{Descriptor, Manager};
use crate::metrics::{CONNECTION_STATE, POOL_NAME, names, while_alive};
use crate::pool::Pool;
use crate::pooled::Pooled;

/// How often a connect waiting for room under the cap looks again for an idle connection to close in
/// another pool. A pool's return path has no hook that costs nothing, so the wait polls rather than being
/// told; it only runs while every connection under the cap is open.
const EVICT_RETRY: Duration = Duration::from_millis(5);

/// Makes the manager of a key's pool.
type MakeManager<K, M> = dyn Fn(&K) -> Result<M, ConfigError> + Send + Sync;

/// A pool per key, made on first use: for tenants with a database, a schema or a file of their own, where
/// one pool cannot serve them all.
///
/// - [`get(key)`](KeyedPools::get) checks a connection out of the key's pool, building the pool first if
///   the key has none (its manager from the function given to [`builder`](KeyedPools::builder), its
///   settings from [`KeyedPoolsBuilder::config`], `min_idle` 0).
/// - **Global cap**: at most [`max_connections`](KeyedPoolsBuilder::max_connections) connections are open
///   across all the pools. A pool that needs a connection when the cap is reached closes the idle connection
///   of the pool used longest ago; if every connection under the cap is in use, its connect waits for one
///   to close (within the pool's `connect_timeout`; a pool whose connects keep waiting fails like a pool
///   whose server does not answer: a timeout, then fail-fast).
/// - **Idle pools**: a pool with nothing lent, nobody waiting and no checkout for
///   [`idle_pool_timeout`](KeyedPoolsBuilder::idle_pool_timeout) is closed and forgotten; the key's next
///   `get` builds a new one.
/// - **Metrics**: the pools record nothing of their own; the set records `db.client.connection.count`
///   (idle, used: sums over its pools), `db.client.connection.max` (the cap) and `aquifer.pool.keyed.pools`
///   under its own name. The key is not an attribute: one series per tenant would grow the metrics with the
///   tenants (docs/security.md).
///
/// Connections dereference to [`CappedConn`], which dereferences to the driver's connection
/// (`&mut **conn` where a function wants the driver's type).
pub struct KeyedPools<K, M: Manager> {
    inner: Arc<Inner<K, M>>,
}

impl<K, M: Manager> Clone for KeyedPools<K, M> {
    fn clone(&self) -> Self {
        KeyedPools { inner: Arc::clone(&self.inner) }
    }
}

impl<K, M: Manager> fmt::Debug for KeyedPools<K, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedPools")
            .field("name", &self.inner.name)
            .field("pools", &self.inner.pools.lock().len())
            .field("max_connections", &self.inner.max_connections)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedPools`]; from [`KeyedPools::builder`].
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedPoolsBuilder<K, M: Manager> {
    make: Box<MakeManager<K, M>>,
    config: PoolConfig,
    max_connections: usize,
    idle_pool_timeout: Duration,
    name: String,
    meter: Option<Meter>,
}

impl<K, M: Manager> KeyedPoolsBuilder<K, M> {
    /// The settings of every key's pool (`max_size` is per pool; `min_idle` is forced to 0, so an unused
    /// pool holds nothing). Default: [`PoolConfig::default`].
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// The most connections open across all pools. Default: 100.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long a pool may go without a checkout (nothing lent, nobody waiting) before it is closed.
    /// Default: 5 minutes.
    pub fn idle_pool_timeout(mut self, d: Duration) -> Self {
        self.idle_pool_timeout = d;
        self
    }

    /// The name of the set (the `db.client.connection.pool.name` of its metrics and of every pool's logs).
    /// Default: `keyed`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Record the set's metrics here. Default: [`default_meter`](crate::metrics::default_meter).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Validates the settings and starts the idle-pool reaper. Must be called within a Tokio runtime.
    /// Fails when `max_connections` or `idle_pool_timeout` is 0, or the pool settings are invalid.
    pub fn build(self) -> Result<KeyedPools<K, M>, BuildError>
    where
        K: Eq + Hash + Clone + Send + Sync + 'static,
    {
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("max_connections", 0, "must be at least 1").into());
        }
        if self.idle_pool_timeout.is_zero() {
            return Err(ConfigError::invalid("idle_pool_timeout", "0s", "must be more than 0").into());
        }
        let mut config = self.config;
        config.min_idle = 0;
        config.name = Some(self.name.clone());
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let inner = Arc::new_cyclic(|weak: &Weak<Inner<K, M>>| {
            let evict: Weak<dyn Evict> = weak.clone();
            Inner {
                make: self.make,
                config,
                max_connections: self.max_connections,
                idle_pool_timeout: self.idle_pool_timeout,
                cap: Arc::new(Cap { permits: Arc::new(Semaphore::new(self.max_connections)), evict }),
                pools: Mutex::new(HashMap::new()),
                name: self.name,
            }
        });
        register_observers(&self.meter.unwrap_or_else(crate::metrics::default_meter), &inner);
        runtime.spawn(reap_idle_pools(Arc::downgrade(&inner)));
        Ok(KeyedPools { inner })
    }
}

/// Why [`KeyedPools::get`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyedPoolError<E: std::error::Error + 'static> {
    /// The key's pool could not be built (its manager refused the key, or a setting is invalid).
    #[error("the pool for this key could not be built: {0}")]
    Build(#[source] BuildError),
    /// The key's pool could not lend a connection.
    #[error(transparent)]
    Pool(PoolError<E>),
}

struct Inner<K, M: Manager> {
    make: Box<MakeManager<K, M>>,
    config: PoolConfig,
    max_connections: usize,
    idle_pool_timeout: Duration,
    cap: Arc<Cap>,
    pools: Mutex<HashMap<K, Member<M>>>,
    name: String,
}

/// One key's pool and when it was last asked for.
struct Member<M: Manager> {
    pool: Pool<Capped<M>>,
    last_used: Instant,
}

impl<K, M> KeyedPools<K, M>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    M: Manager,
{
    /// A set whose pool for key `k` connects through `make(k)`'s manager (a connect URL with the tenant's
    /// database, a file path...); `make` runs once per pool built and may refuse a key with a
    /// [`ConfigError`].
    pub fn builder(make: impl Fn(&K) -> Result<M, ConfigError> + Send + Sync + 'static) -> KeyedPoolsBuilder<K, M> {
        KeyedPoolsBuilder {
            make: Box::new(make),
            config: PoolConfig::default(),
            max_connections: 100,
            idle_pool_timeout: Duration::from_secs(300),
            name: "keyed".to_owned(),
            meter: None,
        }
    }

    /// The pool of `key`, built now if it has none. Counts as a use of the pool (for the idle timeout).
    pub fn pool(&self, key: &K) -> Result<Pool<Capped<M>>, BuildError> {
        let now = Instant::now();
        if let Some(member) = self.inner.pools.lock().get_mut(key) {
            member.last_used = now;
            return Ok(member.pool.clone());
        }
        // Built outside the lock (`make` is the caller's code); a race builds two and keeps the first.
        let manager = Capped { manager: (self.inner.make)(key)?, cap: Arc::clone(&self.inner.cap) };
        let pool = Pool::builder(manager)
            .config(self.inner.config.clone())
            .meter(opentelemetry::metrics::noop::NoopMeterProvider::new().meter("aquifer"))
            .build()?;
        let mut pools = self.inner.pools.lock();
        let member = pools.entry(key.clone()).or_insert(Member { pool, last_used: now });
        member.last_used = now;
        Ok(member.pool.clone())
    }

    /// Checks a connection out of `key`'s pool (built first if the key has none), waiting up to the pool's
    /// `acquire_timeout`.
    ///
    /// Cancel safety: as for [`Pool::get`]; a pool built for a dropped call stays in the set (and is closed
    /// after `idle_pool_timeout` if nobody uses it).
    pub async fn get(&self, key: &K) -> Result<Pooled<Capped<M>>, KeyedPoolError<M::Error>> {
        let pool = self.pool(key).map_err(KeyedPoolError::Build)?;
        match pool.get().await {
            // The reaper closed it between the lookup and the checkout: once more, on a new pool.
            Err(PoolError::Closed) => {
                self.forget_closed(key);
                let pool = self.pool(key).map_err(KeyedPoolError::Build)?;
                pool.get().await.map_err(KeyedPoolError::Pool)
            }
            other => other.map_err(KeyedPoolError::Pool),
        }
    }

    fn forget_closed(&self, key: &K) {
        let mut pools = self.inner.pools.lock();
        if pools.get(key).is_some_and(|m| m.pool.is_closed()) {
            pools.remove(key);
        }
    }

    /// How many pools the set holds.
    pub fn len(&self) -> usize {
        self.inner.pools.lock().len()
    }

    /// Whether the set holds no pool.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections open (or opening) across all pools; never above `max_connections`.
    pub fn connections(&self) -> usize {
        self.inner.max_connections - self.inner.cap.permits.available_permits()
    }

    /// Closes every pool and forgets it (waiting for their connections up to each pool's `close_timeout`).
    /// Later `get`s build new pools.
    pub async fn close(&self) {
        let pools: Vec<_> = self.inner.pools.lock().drain().map(|(_, m)| m.pool).collect();
        for pool in pools {
            pool.close().await;
        }
    }
}

/// The room under the cap, and the set to evict from when there is none.
struct Cap {
    permits: Arc<Semaphore>,
    evict: Weak<dyn Evict>,
}

impl Cap {
    /// A place under the cap: free now, or made by closing an idle connection of another pool, or waited
    /// for.
    async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return permit;
            }
            if self.evict.upgrade().is_some_and(|set| set.evict_one_idle()) {
                continue;
            }
            let wait = Arc::clone(&self.permits).acquire_owned();
            if let Ok(Ok(permit)) = tokio::time::timeout(EVICT_RETRY, wait).await {
                return permit;
            }
        }
    }
}

/// Closing an idle connection somewhere in a set, without knowing the set's key type.
trait Evict: Send + Sync {
    /// Closes one idle connection of the pool used longest ago that has one; false if none has.
    fn evict_one_idle(&self) -> bool;
}

impl<K: Send + Sync, M: Manager> Evict for Inner<K, M> {
    fn evict_one_idle(&self) -> bool {
        let mut candidates: Vec<(Instant, Pool<Capped<M>>)> = self
            .pools
            .lock()
            .values()
            .filter(|m| m.pool.state().idle > 0)
            .map(|m| (m.last_used, m.pool.clone()))
            .collect();
        candidates.sort_by_key(|(used, _)| *used);
        candidates.into_iter().any(|(_, pool)| {
            let mut left = 1_usize;
            // Dropping the closed connection gives its place under the cap back at once.
            pool.retain(|_, _| {
                let keep = left == 0;
                left = left.saturating_sub(1);
                keep
            }) > 0
        })
    }
}

/// Closes the pools idle past `idle_pool_timeout`; ends when the set is dropped.
async fn reap_idle_pools<K: Send + Sync + 'static, M: Manager>(set: Weak<Inner<K, M>>) {
    let Some(period) = set.upgrade().map(|s| (s.idle_pool_timeout / 4).max(Duration::from_millis(1))) else {
        return;
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(set) = set.upgrade() else { return };
        let now = Instant::now();
        let mut closed = Vec::new();
        set.pools.lock().retain(|_, m| {
            let s = m.pool.state();
            let idle = s.in_use == 0 && s.waiting == 0 && s.connecting == 0;
            let keep = !idle || now.duration_since(m.last_used) < set.idle_pool_timeout;
            if !keep {
                closed.push(m.pool.clone());
            }
            keep
        });
        drop(set);
        for pool in closed {
            // Closes its idle connections at once (giving their places under the cap back).
            pool.close().await;
        }
    }
}

/// The set's metrics, observed from its pools at collection time.
fn register_observers<K: Send + Sync + 'static, M: Manager>(meter: &Meter, set: &Arc<Inner<K, M>>) {
    let name = KeyValue::new(POOL_NAME, set.name.clone());
    let idle = [name.clone(), KeyValue::new(CONNECTION_STATE, "idle")];
    let used = [name.clone(), KeyValue::new(CONNECTION_STATE, "used")];
    meter
        .i64_observable_up_down_counter(names::CONNECTION_COUNT)
        .with_unit("{connection}")
        .with_callback(while_alive(set, move |set, o| {
            let (i, u) = set.pools.lock().values().fold((0, 0), |(i, u), m| {
                let s = m.pool.state();
                (i + s.idle as i64, u + s.in_use as i64)
            });
            o.observe(i, &idle);
            o.observe(u, &used);
        }))
        .build();
    let attrs = [name.clone()];
    meter
        .i64_observable_up_down_counter(names::MAX)
        .with_unit("{connection}")
        .with_callback(while_alive(set, move |set, o| o.observe(set.max_connections as i64, &attrs)))
        .build();
    let attrs = [name];
    meter
        .i64_observable_up_down_counter(names::KEYED_POOLS)
        .with_unit("{pool}")
        .with_description("Pools a keyed set holds.")
        .with_callback(while_alive(set, move |set, o| o.observe(set.pools.lock().len() as i64, &attrs)))
        .build();
}

/// The manager of a key's pool in a [`KeyedPools`]: the key's own manager, whose connects first take a
/// place under the set's cap. Every other call goes to the key's manager unchanged.
pub struct Capped<M> {
    manager: M,
    cap: Arc<Cap>,
}

impl<M> Capped<M> {
    /// The key's own manager.
    pub fn inner(&self) -> &M {
        &self.manager
    }
}

/// A connection of a [`KeyedPools`] pool: the driver's connection and its place under the cap, given back
/// when the connection is closed. Dereferences to the driver's connection.
pub struct CappedConn<C> {
    conn: C,
    _place: OwnedSemaphorePermit,
}

impl<C> Deref for CappedConn<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> DerefMut for CappedConn<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C: fmt::Debug> fmt::Debug for CappedConn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.fmt(f)
    }
}

#[async_trait::async_trait]
impl<M: Manager> Manager for Capped<M> {
    type Connection = CappedConn<M::Connection>;
    type Error = M::Error;

    async fn connect(&self) -> Result<Self::Connection, M::Error> {
        let place = self.cap.acquire().await;
        let conn = self.manager.connect().await?;
        Ok(CappedConn { conn, _place: place })
    }

    async fn validate(&self, conn: &mut Self::Connection) -> Result<(), M::Error> {
        self.manager.validate(&mut conn.conn).await
    }

    fn is_broken(&self, conn: &mut Self::Connection) -> bool {
        self.manager.is_broken(&mut conn.conn)
    }

    fn needs_reset(&self, conn: &mut Self::Connection) -> bool {
        self.manager.needs_reset(&mut conn.conn)
    }

    async fn reset(&self, conn: &mut Self::Connection) -> Result<(), M::Error> {
        self.manager.reset(&mut conn.conn).await
    }

    async fn server_version(&self, conn: &mut Self::Connection) -> Result<Option<String>, M::Error> {
        self.manager.server_version(&mut conn.conn).await
    }

    fn credential_generation(&self) -> u64 {
        self.manager.credential_generation()
    }

    fn session_context_refusal(&self) -> Option<&str> {
        self.manager.session_context_refusal()
    }

    fn descriptor(&self) -> Descriptor {
        self.manager.descriptor()
    }

    fn is_permanent(&self, error: &M::Error) -> bool {
        self.manager.is_permanent(error)
    }

    fn error_type(&self, error: &M::Error) -> std::borrow::Cow<'static, str> {
        self.manager.error_type(error)
    }
}
