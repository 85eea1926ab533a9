//! [`Pool`]: the public face of the engine.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::PoolBuilder;
use crate::config::{PoolConfig, check_max_size};
use crate::errors::{BuildError, ConfigError, PoolError};
use crate::health::{HealthCheck, HealthReport};
use crate::internals::CloseReason;
use crate::manager::{Descriptor, Manager};
use crate::pooled::{ConnectionInfo, Pooled};
use crate::shared::Shared;
use crate::stats::{State, Stats};

/// A pool of database connections made by a [`Manager`].
///
/// Cheap to clone: clones share one pool. When the last clone is dropped the pool closes (connections in use
/// are closed as they come back).
///
/// Semantics, the same for every backend:
/// - waiters are served first come, first served, with direct hand-off of returned connections;
/// - idle connections are reused last-in first-out (or first-in first-out, see [`Reuse`](crate::Reuse)), so
///   hot ones stay warm and cold ones age out;
/// - a connection idle longer than `validation_bypass` is validated on checkout;
/// - connects are retried with exponential backoff and jitter inside the waiting gets; a timeout reports the
///   last connect error; when the pool holds no connection and connects have failed for `fail_fast_after`,
///   it fails fast with [`PoolError::Unavailable`] until a background probe reaches the server again;
/// - nothing is created beyond what waiters (and `min_idle`) need;
/// - a panic in any [`Manager`] hook is caught, logged and counted; the pool keeps serving.
pub struct Pool<M: Manager> {
    handle: Arc<Handle<M>>,
}

/// Counts user handles separately from the engine's own references, so dropping the last one closes the pool.
struct Handle<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Drop for Handle<M> {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

impl<M: Manager> PoolBuilder<M> {
    /// Validates the configuration and builds the pool, starting its background tasks and the connects for
    /// `min_idle`. Must be called within a Tokio runtime. Logs a warning when `connect_timeout` exceeds
    /// `acquire_timeout` (attempts are then cut at the acquire timeout).
    pub fn build(self) -> Result<Pool<M>, BuildError> {
        Ok(Pool { handle: Arc::new(Handle { shared: self.start()? }) })
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool { handle: Arc::clone(&self.handle) }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("descriptor", &self.shared().descriptor)
            .field("state", &self.state())
            .finish()
    }
}

impl<M: Manager> Pool<M> {
    /// Starts building a pool over `manager`.
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder::new(manager)
    }

    /// Builds a pool from a configuration. Must be called within a Tokio runtime.
    pub fn new(manager: M, config: PoolConfig) -> Result<Self, BuildError> {
        PoolBuilder::new(manager).config(config).build()
    }

    #[inline]
    fn shared(&self) -> &Arc<Shared<M>> {
        &self.handle.shared
    }

    /// Checks out a connection, waiting up to `acquire_timeout`.
    ///
    /// Served from the idle connections when one is free and nobody waits ahead; otherwise the caller is
    /// queued (first come, first served) and a connect starts if the pool has room. Errors:
    /// [`PoolError::Timeout`] (with the last connect error, if connects were failing),
    /// [`PoolError::Unavailable`] while the server is unreachable, [`PoolError::Closed`].
    ///
    /// Cancel safety: dropping the future at any point loses no connection and leaks no slot. A connection
    /// handed over just as the future is dropped goes to the next waiter (or back to idle); a connect started
    /// for it goes on in the background (within `connect_timeout`, or the acquire timeout if shorter) and its
    /// connection goes to the next waiter or to idle; a connection being validated is closed.
    ///
    /// The caller's location is recorded for leak reports.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Pooled<M>, PoolError<M::Error>>> + Send + '_ {
        self.get_timeout(self.shared().config.acquire_timeout)
    }

    /// Like [`get`](Pool::get) with a different timeout for this call.
    ///
    /// Cancel safety: as for [`get`](Pool::get).
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Pooled<M>, PoolError<M::Error>>> + Send + '_ {
        crate::acquire::Acquire::new(self.shared(), timeout, Location::caller(), None)
    }

    /// Checks out a connection like [`get`](Pool::get), then applies `ctx` to it (after the checkout
    /// hooks); `ctx` is cleared when the connection comes back, before anyone else can get it.
    ///
    /// A context that fails, panics or exceeds `hook_timeout` fails the checkout with
    /// [`PoolError::Hook`] and the connection is discarded; a clear that fails discards the connection.
    /// See [`SessionContext`](crate::SessionContext) for the guarantee and its limits.
    ///
    /// Cancel safety: as for [`get`](Pool::get); in addition, a future dropped while the context is being
    /// applied closes the connection (its settings are half-applied), and a connection dropped in any
    /// state, including by a panic, has its context cleared (or is closed) before it is reused.
    #[track_caller]
    pub fn get_with(
        &self,
        ctx: Arc<dyn crate::SessionContext<M::Connection>>,
    ) -> impl Future<Output = Result<Pooled<M>, PoolError<M::Error>>> + Send + '_ {
        let timeout = self.shared().config.acquire_timeout;
        crate::acquire::Acquire::new(self.shared(), timeout, Location::caller(), Some(ctx))
    }

    /// Like [`get_with`](Pool::get_with) with a different timeout for this call.
    ///
    /// Cancel safety: as for [`get_with`](Pool::get_with).
    #[track_caller]
    pub fn get_timeout_with(
        &self,
        timeout: Duration,
        ctx: Arc<dyn crate::SessionContext<M::Connection>>,
    ) -> impl Future<Output = Result<Pooled<M>, PoolError<M::Error>>> + Send + '_ {
        crate::acquire::Acquire::new(self.shared(), timeout, Location::caller(), Some(ctx))
    }

    /// Checks out an idle connection if one is free right now (nobody waiting ahead), without waiting for a
    /// connection to be returned or opened. Returns `Ok(None)` otherwise. It still awaits the validation of a
    /// connection that sat idle longer than `validation_bypass`.
    ///
    /// Cancel safety: as for [`get`](Pool::get).
    #[track_caller]
    pub fn try_get(&self) -> impl Future<Output = Result<Option<Pooled<M>>, PoolError<M::Error>>> + Send + '_ {
        let caller = Location::caller();
        let shared = self.shared();
        async move { shared.try_acquire(caller).await }
    }

    /// Opens `min_idle` connections (at least one) now and waits for them, so a service fails at start-up
    /// rather than on its first request when the database is unreachable or refuses its credentials. Opens
    /// no more than that: it waits for the `min_idle` connects the pool starts on its own, rather than
    /// checking connections out (which would make the pool open more to keep `min_idle` idle).
    ///
    /// Fails with [`PoolError::Unavailable`] as soon as the pool fails fast (the connect error inside), or
    /// with [`PoolError::Timeout`] (with the last connect error) after `acquire_timeout`, counted in
    /// `Stats::timeouts` and `db.client.connection.timeouts` like a `get()` that timed out.
    ///
    /// Cancel safety: connects already started finish in the background into the pool.
    pub async fn warm_up(&self) -> Result<(), PoolError<M::Error>> {
        let shared = self.shared();
        if shared.lock().min_idle() == 0 {
            drop(self.get().await?);
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        loop {
            {
                let mut g = shared.lock();
                if g.is_closed() {
                    return Err(PoolError::Closed);
                }
                if let Some((since, error)) = g.circuit().open() {
                    drop(g);
                    return Err(shared.unavailable(since, error));
                }
                if g.live() >= g.min_idle() {
                    return Ok(());
                }
                if started.elapsed() >= shared.config.acquire_timeout {
                    // A start-up that timed out is a caller that timed out: counted like one.
                    g.count_timeout();
                    let error = PoolError::Timeout {
                        waited: started.elapsed(),
                        state: g.state(),
                        last_error: g.circuit().last_error().cloned(),
                    };
                    drop(g);
                    shared.metrics.timeout();
                    return Err(error);
                }
            }
            // Start-up only: polling keeps the engine free of a notification nobody else needs.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// What the pool holds now.
    pub fn state(&self) -> State {
        self.shared().lock().state()
    }

    /// What the pool has done since it was built.
    pub fn stats(&self) -> Stats {
        self.shared().lock().stats()
    }

    /// Checks the pool's health: unhealthy without a round trip while failing fast or closed; otherwise a
    /// pooled connection is validated and timed. Never waits longer than `validation_timeout` for a
    /// connection; an exhausted pool is reported degraded.
    ///
    /// Cancel safety: dropping the future returns the connection it used, like any dropped `get()`.
    pub async fn health(&self) -> HealthReport {
        let report = crate::health_check::check(self.shared()).await;
        *self.shared().health.lock() = Some(report.clone());
        report
    }

    /// The most recent health report (from [`health`](Pool::health) or the background refresh every
    /// `health_interval`), without running a check.
    pub fn last_health(&self) -> Option<HealthReport> {
        self.shared().health.lock().clone()
    }

    /// Closes the pool: new and waiting `get()` calls fail with [`PoolError::Closed`], idle connections are
    /// closed at once, connections in use are closed as they come back; waits for them up to `close_timeout`.
    /// Returns how many connections were still open at the deadline (0 when the pool drained).
    ///
    /// Cancel safety: the pool is closed as soon as this is first polled; dropping the future only stops the
    /// wait for connections in use.
    pub async fn close(&self) -> usize {
        let shared = self.shared();
        shared.begin_close();
        let left = shared.wait_drained(tokio::time::Instant::now() + shared.config.close_timeout).await;
        if left > 0 {
            tracing::warn!(pool = %shared.name, left, "close_timeout passed with connections still in use");
        }
        left
    }

    /// Whether [`close`](Pool::close) was called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        self.shared().lock().is_closed()
    }

    /// Changes the maximum size (1 to [`MAX_POOL_SIZE`](crate::MAX_POOL_SIZE), not below `min_idle`).
    /// Shrinking closes idle connections beyond the new size at once (longest idle first) and busy ones as
    /// they come back; growing lets waiters connect.
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        let shared = self.shared();
        check_max_size(max_size)?;
        let (closed, connects) = {
            let mut g = shared.lock();
            if g.min_idle() > max_size {
                return Err(ConfigError::invalid(
                    "max_size",
                    max_size,
                    format!("must not be below min_idle ({})", g.min_idle()),
                ));
            }
            g.resize(max_size)
        };
        shared.metrics.closed(CloseReason::Discarded, closed.len() as u64);
        drop(closed);
        shared.spawn_connects(connects);
        Ok(())
    }

    /// Pauses the pool, as HikariCP's `suspendPool` and PgBouncer's `PAUSE` do, for a planned failover or
    /// maintenance: while paused it lends nothing and opens nothing. `get()` calls queue and wait up to their
    /// own acquire timeout (then [`PoolError::Timeout`], whose message says the pool is paused), `try_get`
    /// returns `Ok(None)`; no connect starts (not for waiters, not for `min_idle`; connect tasks stop at their
    /// next attempt, and the fail-fast probe waits). Connections in use keep working and come back to the idle
    /// queue as usual; idle connections are still reaped (`idle_timeout`, `max_lifetime`) and pinged
    /// (`keepalive_interval`). Health reports the pool degraded, "paused", and the `aquifer.pool.paused`
    /// gauge is 1. Idempotent.
    ///
    /// ```
    /// # use aquifer_testing::FakeManager;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use aquifer_core::{Pool, PoolError};
    ///
    /// let pool = Pool::builder(FakeManager::new()).build().unwrap();
    /// let in_use = pool.get().await.unwrap();
    ///
    /// // A planned switchover: hold new work, let what runs finish.
    /// pool.pause();
    /// assert!(pool.try_get().await.unwrap().is_none(), "a paused pool lends nothing");
    /// let waiter = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.get_timeout(Duration::from_secs(5)).await.map(|c| c.id) }
    /// });
    /// drop(in_use); // connections in use keep working and come back as usual
    ///
    /// // The new primary is up.
    /// pool.retire();
    /// pool.resume();
    /// waiter.await.unwrap().expect("the waiter is served after resume, within its own timeout");
    ///
    /// // A caller whose own timeout passes while paused is told why.
    /// pool.pause();
    /// let err = pool.get_timeout(Duration::from_millis(10)).await.unwrap_err();
    /// assert!(matches!(err, PoolError::Timeout { .. }) && err.to_string().contains("paused"), "{err}");
    /// # }
    /// ```
    pub fn pause(&self) {
        self.shared().pause();
    }

    /// Resumes a paused pool: idle connections go to the waiting callers in the order they came (each validated
    /// first if it sat idle past `validation_bypass`), and connects start for the callers still waiting and
    /// for `min_idle`. Does nothing if the pool is not paused.
    pub fn resume(&self) {
        self.shared().resume();
    }

    /// Retires every connection the pool holds, gracefully (HikariCP's `softEvictConnections`), after a
    /// failover, a DNS change or a server-side setting that only new sessions pick up: idle connections are
    /// closed now, and connections lent (or being validated, reset or pinged) are closed when they come back
    /// instead of being reused; callers using them are not interrupted. New connections are opened as callers
    /// and `min_idle` need them (not while [paused](Pool::pause)). A connect already under way when `retire`
    /// is called delivers a connection that counts as new. Returns how many idle connections were closed now.
    ///
    /// Each retired connection counts once in `aquifer.pool.connections.closed{reason="retired"}` and in
    /// `aquifer.pool.connections.retired{reason="operator"}`, and in [`Stats::closed_retired`].
    ///
    /// ```
    /// # use aquifer_testing::FakeManager;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use aquifer_core::Pool;
    ///
    /// let pool = Pool::builder(FakeManager::new()).build().unwrap();
    /// let idle = pool.get().await.unwrap();
    /// let lent = pool.get().await.unwrap();
    /// let (idle_id, lent_id) = (idle.id, lent.id);
    /// drop(idle);
    ///
    /// // The primary moved: drop every session to the old one without failing a caller.
    /// assert_eq!(pool.retire(), 1, "the idle connection is closed at once");
    /// assert_eq!(lent.id, lent_id, "the lent one keeps working ...");
    /// drop(lent); // ... and is closed as it comes back
    /// assert_eq!(pool.stats().closed_retired, 2);
    ///
    /// let fresh = pool.get().await.unwrap();
    /// assert!(fresh.id != idle_id && fresh.id != lent_id, "a new connection");
    /// # }
    /// ```
    ///
    /// [`Stats::closed_retired`]: crate::Stats::closed_retired
    pub fn retire(&self) -> usize {
        self.shared().retire()
    }

    /// Whether the pool is paused ([`pause`](Pool::pause)).
    pub fn is_paused(&self) -> bool {
        self.shared().lock().is_paused()
    }

    /// Closes the idle connections for which `keep` returns false; returns how many were closed.
    /// `keep` runs under the pool's lock: it must be quick and must not call into the pool.
    pub fn retain(&self, mut keep: impl FnMut(&M::Connection, ConnectionInfo) -> bool) -> usize {
        let shared = self.shared();
        let now = shared.clock.now();
        let (removed, connects) = shared.lock().retain(|c| keep(&c.raw, ConnectionInfo::idle(c, now)));
        let n = removed.len();
        shared.metrics.closed(CloseReason::Discarded, n as u64);
        drop(removed);
        shared.spawn_connects(connects);
        n
    }

    /// The pool's name (`db.client.connection.pool.name`).
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// What the pool connects to.
    pub fn descriptor(&self) -> &Descriptor {
        &self.shared().descriptor
    }

    /// The configuration the pool was built with (`resize` changes only the live maximum, see
    /// [`state`](Pool::state)).
    pub fn config(&self) -> &PoolConfig {
        &self.shared().config
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared().manager
    }

    /// Records one `db.client.operation.duration` measurement for an operation run on this pool's
    /// connections (adapters' helpers call this), with the pool's attributes plus `db.operation.name` and,
    /// on failure, `error.type`.
    pub fn record_operation(&self, operation: &str, duration: Duration, error_type: Option<&str>) {
        self.shared().metrics.operation(operation, duration, error_type);
    }

    /// What this pool's helpers do about N+1 loops inside a [scope](crate::n_plus_one). Default:
    /// [`NPlusOneMode::Warn`](crate::n_plus_one::NPlusOneMode::Warn).
    pub fn set_n_plus_one(&self, mode: crate::n_plus_one::NPlusOneMode) {
        self.shared().n_plus_one.set(mode);
    }

    /// The mode set with [`set_n_plus_one`](Pool::set_n_plus_one).
    pub fn n_plus_one(&self) -> crate::n_plus_one::NPlusOneMode {
        self.shared().n_plus_one.get()
    }

    /// Notes a call of `statement` from `caller` for N+1 detection, for adapters whose calls do not go
    /// through [`run_operation_at`](crate::run_operation_at) (an sqlx executor); keep the returned watch until
    /// the call completes. `caller` is `None` when the adapter cannot know it (a call through a driver's API):
    /// such calls are keyed by shape alone, and the call site of a loop is read from a backtrace once the loop
    /// is found. `Ok(None)` when the mode is off (checked first: no task-local lookup), outside a scope, or for
    /// a batched statement; an error when the mode is deny and this call makes a loop.
    #[inline]
    pub fn n_plus_one_watch(
        &self,
        statement: &str,
        caller: Option<&'static Location<'static>>,
    ) -> Result<Option<crate::n_plus_one::Watch>, crate::n_plus_one::NPlusOneError> {
        let mode = self.shared().n_plus_one.get();
        if mode == crate::n_plus_one::NPlusOneMode::Off {
            return Ok(None);
        }
        let shared = self.shared();
        crate::n_plus_one::watch(mode, statement, caller, || {
            shared.metrics.n_plus_one_sink(&shared.name, shared.descriptor.system.clone())
        })
    }
}

#[async_trait::async_trait]
impl<M: Manager> HealthCheck for Pool<M> {
    fn name(&self) -> &str {
        Pool::name(self)
    }

    async fn health(&self) -> HealthReport {
        Pool::health(self).await
    }
}
