//! [`Pool`]: the public face of the engine.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::builder::PoolBuilder;
use crate::config::PoolConfig;
use crate::errors::{BuildError, ConfigError, PoolError};
use crate::health::{HealthCheck, HealthReport};
use crate::inner::Shared;
use crate::internals::CloseReason;
use crate::manager::{Descriptor, Manager};
use crate::pooled::{ConnectionInfo, Pooled};
use crate::stats::{State, Stats};

/// A pool of database connections made by a [`Manager`].
///
/// Cheap to clone: clones share one pool. When the last clone is dropped the pool closes (connections in use
/// are closed as they come back).
///
/// Semantics, the same for every backend:
/// - waiters are served first come, first served, with direct hand-off of returned connections;
/// - idle connections are reused last-in first-out, so hot ones stay warm and cold ones age out;
/// - a connection idle longer than `validation_bypass` is validated on checkout;
/// - connects are retried with exponential backoff and jitter; a timeout reports the last connect error;
///   after `fail_fast_after` consecutive failures the pool fails fast with [`PoolError::Unavailable`] until a
///   background probe reaches the server again;
/// - nothing is created beyond what waiters (and `min_idle`) need.
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

    pub(crate) fn from_shared(shared: Arc<Shared<M>>) -> Self {
        Pool { handle: Arc::new(Handle { shared }) }
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
    /// for it finishes in the background into the pool; a connection being validated is closed.
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
        crate::acquire::Acquire::new(self.shared(), timeout, Location::caller())
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
    /// rather than on its first request when the database is unreachable or refuses its credentials.
    ///
    /// Cancel safety: connects already started finish in the background into the pool.
    pub async fn warm_up(&self) -> Result<(), PoolError<M::Error>> {
        let want = self.shared().lock().min_idle.max(1);
        let mut held = Vec::with_capacity(want);
        for _ in 0..want {
            held.push(self.get().await?);
        }
        Ok(())
    }

    /// What the pool holds now.
    pub fn state(&self) -> State {
        self.shared().lock().state()
    }

    /// What the pool has done since it was built.
    pub fn stats(&self) -> Stats {
        self.shared().lock().stats
    }

    /// Checks the pool's health: unhealthy without a round trip while failing fast or closed; otherwise a
    /// pooled connection is validated and timed. Never waits longer than `validation_timeout` for a
    /// connection; an exhausted pool is reported degraded.
    ///
    /// Cancel safety: dropping the future returns the connection it used, like any dropped `get()`.
    pub async fn health(&self) -> HealthReport {
        let report = crate::health::check(self.shared()).await;
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
        let left = shared.wait_drained(Instant::now() + shared.config.close_timeout).await;
        if left > 0 {
            tracing::warn!(pool = %shared.name, left, "close_timeout passed with connections still in use");
        }
        left
    }

    /// Whether [`close`](Pool::close) was called (or every handle dropped).
    pub fn is_closed(&self) -> bool {
        self.shared().lock().closed
    }

    /// Changes the maximum size. Shrinking closes idle connections beyond the new size at once and busy ones
    /// as they come back; growing lets waiters connect.
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        let shared = self.shared();
        let (closed, connects) = {
            let mut g = shared.lock();
            if max_size == 0 {
                return Err(ConfigError::invalid("max_size", 0, "must be at least 1"));
            }
            if g.min_idle > max_size {
                return Err(ConfigError::invalid(
                    "max_size",
                    max_size,
                    format!("must not be below min_idle ({})", g.min_idle),
                ));
            }
            g.max_size = max_size;
            let mut closed = Vec::new();
            while g.size > g.max_size && !g.idle.is_empty() {
                closed.push(g.idle.remove(0));
                g.size -= 1;
                g.count_closed(CloseReason::Discarded);
            }
            (closed, g.reserve_connects())
        };
        shared.metrics.closed(CloseReason::Discarded, closed.len() as u64);
        drop(closed);
        shared.spawn_connects(connects);
        Ok(())
    }

    /// Closes the idle connections for which `keep` returns false; returns how many were closed.
    /// `keep` runs under the pool's lock: it must be quick and must not call into the pool.
    pub fn retain(&self, mut keep: impl FnMut(&M::Connection, ConnectionInfo) -> bool) -> usize {
        let shared = self.shared();
        let now = quanta::Instant::now();
        let (removed, connects) = {
            let mut g = shared.lock();
            let mut removed = Vec::new();
            let mut i = 0;
            while i < g.idle.len() {
                if keep(&g.idle[i].raw, ConnectionInfo::idle(&g.idle[i], now)) {
                    i += 1;
                } else {
                    removed.push(g.idle.remove(i));
                }
            }
            for _ in &removed {
                g.size -= 1;
                g.count_closed(CloseReason::Discarded);
            }
            (removed, g.reserve_connects())
        };
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
