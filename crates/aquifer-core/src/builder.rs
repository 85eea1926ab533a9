//! [`PoolBuilder`]: configures and builds a [`Pool`](crate::Pool).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::Meter;

use crate::clock::Clock;
use crate::config::{PoolConfig, Reuse};
use crate::errors::BuildError;
use crate::leak::LeakReport;
use crate::manager::Manager;
use crate::session::{ConnHooks, HookFuture, NamedHook};
use crate::shared::{LeakHook, Shared};

/// Builds a [`Pool`](crate::Pool); every setter overrides one field of [`PoolConfig`] (see there for defaults).
///
/// ```
/// # use aquifer_core::{Descriptor, Manager, Pool};
/// # struct Db;
/// # #[async_trait::async_trait]
/// # impl Manager for Db {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn validate(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// #     fn descriptor(&self) -> Descriptor { Descriptor::new("other_sql") }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
///
/// let pool = Pool::builder(Db)
///     .name("orders")
///     .max_size(16)
///     .min_idle(2)
///     .acquire_timeout(Duration::from_secs(5))
///     .build()?;
/// let conn = pool.get().await?;
/// assert_eq!(pool.state().in_use, 1);
/// drop(conn);
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder<M: Manager> {
    manager: M,
    config: PoolConfig,
    meter: Option<Meter>,
    on_leak: Option<LeakHook>,
    clock: Clock,
    conn_hooks: ConnHooks<M::Connection>,
    host_attributes: bool,
}

impl<M: Manager> PoolBuilder<M> {
    pub(crate) fn new(manager: M) -> Self {
        PoolBuilder {
            manager,
            config: PoolConfig::default(),
            meter: None,
            on_leak: None,
            clock: Clock::default(),
            conn_hooks: ConnHooks::default(),
            host_attributes: false,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets [`PoolConfig::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// Sets [`PoolConfig::max_size`].
    pub fn max_size(mut self, n: usize) -> Self {
        self.config.max_size = n;
        self
    }

    /// Sets [`PoolConfig::min_idle`].
    pub fn min_idle(mut self, n: usize) -> Self {
        self.config.min_idle = n;
        self
    }

    /// Sets [`PoolConfig::acquire_timeout`].
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.config.acquire_timeout = d;
        self
    }

    /// Sets [`PoolConfig::connect_timeout`].
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// Sets [`PoolConfig::idle_timeout`] (`None` keeps idle connections).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.config.idle_timeout = d;
        self
    }

    /// Sets [`PoolConfig::max_lifetime`] (`None`: no limit).
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.config.max_lifetime = d;
        self
    }

    /// Sets [`PoolConfig::max_lifetime_jitter`] (a fraction from 0 to 0.5).
    pub fn max_lifetime_jitter(mut self, fraction: f64) -> Self {
        self.config.max_lifetime_jitter = fraction;
        self
    }

    /// Sets [`PoolConfig::keepalive_interval`] (`None`: no keepalive pings).
    pub fn keepalive_interval(mut self, d: Option<Duration>) -> Self {
        self.config.keepalive_interval = d;
        self
    }

    /// Sets [`PoolConfig::retire_on_rotation`] and [`PoolConfig::retire_on_rotation_window`].
    pub fn retire_on_rotation(mut self, on: bool, window: Duration) -> Self {
        self.config.retire_on_rotation = on;
        self.config.retire_on_rotation_window = window;
        self
    }

    /// Sets [`PoolConfig::validation_bypass`].
    pub fn validation_bypass(mut self, d: Duration) -> Self {
        self.config.validation_bypass = d;
        self
    }

    /// Sets [`PoolConfig::validation_timeout`].
    pub fn validation_timeout(mut self, d: Duration) -> Self {
        self.config.validation_timeout = d;
        self
    }

    /// Sets [`PoolConfig::leak_detection_threshold`] (`None`: off).
    pub fn leak_detection_threshold(mut self, d: Option<Duration>) -> Self {
        self.config.leak_detection_threshold = d;
        self
    }

    /// Sets [`PoolConfig::health_interval`] (`None`: no background refresh).
    pub fn health_interval(mut self, d: Option<Duration>) -> Self {
        self.config.health_interval = d;
        self
    }

    /// Sets [`PoolConfig::close_timeout`].
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.config.close_timeout = d;
        self
    }

    /// Sets [`PoolConfig::fail_fast_after`] (zero: never fail fast).
    pub fn fail_fast_after(mut self, d: Duration) -> Self {
        self.config.fail_fast_after = d;
        self
    }

    /// Sets [`PoolConfig::reuse`].
    pub fn reuse(mut self, reuse: Reuse) -> Self {
        self.config.reuse = reuse;
        self
    }

    /// Reads timestamps from `clock` instead of the CPU's time-stamp counter; [`Clock::tokio`] lets tests
    /// drive idle timeouts, lifetimes and leak detection with Tokio's paused clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`PoolConfig::connect_backoff_min`] and [`PoolConfig::connect_backoff_max`].
    pub fn connect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.connect_backoff_min = min;
        self.config.connect_backoff_max = max;
        self
    }

    /// Records metrics with this meter instead of [`default_meter`](crate::metrics::default_meter).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Calls `hook` for each leak report, besides logging it.
    pub fn on_leak(mut self, hook: impl Fn(&LeakReport) + Send + Sync + 'static) -> Self {
        self.on_leak = Some(Arc::new(hook));
        self
    }

    /// Adds a hook that runs on every checkout, after validation and before the connection is lent
    /// (sqlx's `before_acquire`, pgx's `PrepareConn`). Hooks run in the order they were added; adding one
    /// never replaces another. Each runs within [`PoolConfig::hook_timeout`], behind `catch_unwind`.
    ///
    /// A hook that fails, panics or times out discards the connection (it is never lent) and the checkout
    /// fails with [`PoolError::Hook`](crate::PoolError::Hook) naming it. A checkout cancelled while its hooks
    /// run discards the connection too.
    ///
    /// ```
    /// # use aquifer_testing::FakeManager;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use aquifer_core::Pool;
    ///
    /// let pool = Pool::builder(FakeManager::new())
    ///     .on_checkout("count uses", |conn| Box::pin(async move {
    ///         conn.uses += 1; // a real hook runs `SET statement_timeout = ..`
    ///         Ok(())
    ///     }))
    ///     .build()?;
    /// assert_eq!(pool.get().await?.uses, 1);
    /// # Ok(()) }
    /// ```
    pub fn on_checkout(
        mut self,
        name: impl Into<Arc<str>>,
        hook: impl for<'c> Fn(&'c mut M::Connection) -> HookFuture<'c> + Send + Sync + 'static,
    ) -> Self {
        self.conn_hooks.checkout.push(NamedHook::new(name, hook));
        self
    }

    /// Adds a hook that runs on every return, after the manager's reset (when one is needed) and after the
    /// checkout's [`SessionContext`](crate::SessionContext) was cleared, before anyone else can get the
    /// connection (sqlx's `after_release`, pgx's `AfterRelease`). Hooks run in the background, in the order
    /// they were added; adding one never replaces another. Each runs within [`PoolConfig::hook_timeout`],
    /// behind `catch_unwind`; one that fails, panics or times out discards the connection.
    pub fn on_return(
        mut self,
        name: impl Into<Arc<str>>,
        hook: impl for<'c> Fn(&'c mut M::Connection) -> HookFuture<'c> + Send + Sync + 'static,
    ) -> Self {
        self.conn_hooks.on_return.push(NamedHook::new(name, hook));
        self
    }

    /// Sets [`PoolConfig::hook_timeout`].
    pub fn hook_timeout(mut self, d: Duration) -> Self {
        self.config.hook_timeout = d;
        self
    }

    /// Adds `server.address` and `server.port` to every metric's attributes: the host pools of a
    /// [`ClusterPool`](crate::ClusterPool) share the cluster's name and are told apart by their server.
    pub(crate) fn host_attributes(mut self) -> Self {
        self.host_attributes = true;
        self
    }

    /// Validates the configuration and starts the engine: its background tasks and the connects for
    /// `min_idle` (what [`build`](PoolBuilder::build) wraps in a [`Pool`](crate::Pool)).
    pub(crate) fn start(self) -> Result<Arc<Shared<M>>, BuildError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let descriptor = self.manager.descriptor();
        let name: Arc<str> = self.config.name.clone().unwrap_or_else(|| descriptor.default_pool_name()).into();
        if self.config.connect_timeout > self.config.acquire_timeout {
            tracing::warn!(
                pool = %name,
                connect_timeout = ?self.config.connect_timeout,
                acquire_timeout = ?self.config.acquire_timeout,
                "connect_timeout exceeds acquire_timeout: connect attempts are cut at the acquire timeout"
            );
        }
        let meter = self.meter.unwrap_or_else(crate::metrics::default_meter);
        let tick = housekeeping_interval(&self.config);
        let shared = Shared::new(
            self.manager,
            self.config,
            name,
            &meter,
            runtime.clone(),
            self.clock,
            self.on_leak,
            self.conn_hooks,
            self.host_attributes,
        );
        runtime.spawn(Shared::maintain(Arc::downgrade(&shared), tick, shared.closing.clone()));
        runtime.spawn(Arc::clone(&shared).watch_deadlines(shared.closing.clone()));
        let connects = shared.lock().reserve_connects();
        shared.spawn_connects(connects);
        Ok(shared)
    }
}

/// How often housekeeping runs: often enough to honour the shortest configured timer within a quarter of it,
/// and to close idle connections expiring over the `max_lifetime` jitter window in about eight steps rather
/// than one (and the idle connections of a rotated-out secret over `retire_on_rotation_window` likewise), at
/// most every 30 s (HikariCP's housekeeper period) and at least every 5 ms.
fn housekeeping_interval(c: &PoolConfig) -> Duration {
    let jitter_window = c.max_lifetime.map(|l| l.mul_f64(c.max_lifetime_jitter) / 2).filter(|d| !d.is_zero());
    let rotation_window = c.retire_on_rotation.then(|| c.retire_on_rotation_window / 2);
    [c.idle_timeout, c.max_lifetime, c.leak_detection_threshold, c.keepalive_interval, jitter_window, rotation_window]
        .into_iter()
        .flatten()
        .map(|d| d / 4)
        .chain(c.health_interval)
        .fold(Duration::from_secs(30), Duration::min)
        .max(Duration::from_millis(5))
}
