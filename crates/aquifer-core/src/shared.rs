//! [`Shared`]: what a pool's handles, guards and background tasks share. The engine's behaviour is split by
//! concern over `acquire.rs`, `checkin.rs`, `connect.rs`, `housekeeping.rs` and `close.rs`, each an `impl`
//! block of this type; decisions are made under the lock by `internals.rs`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::PoolConfig;
use crate::health::{HealthReport, HealthStatus};
use crate::internals::{CloseReason, Internals};
use crate::leak::LeakReport;
use crate::manager::{Descriptor, Manager};
use crate::metrics::{Observation, Observed, PoolMetrics};
use crate::session::ConnHooks;
use crate::sync::{Mutex, MutexGuard};

pub(crate) type LeakHook = Arc<dyn Fn(&LeakReport) + Send + Sync>;

/// Everything a pool shares between its handles, its guards and its background tasks.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) name: Arc<str>,
    pub(crate) descriptor: Descriptor,
    pub(crate) clock: Clock,
    internals: Mutex<Internals<M::Connection, M::Error>>,
    pub(crate) metrics: PoolMetrics,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Cancelled when the pool closes: stops connects in flight and background tasks.
    pub(crate) closing: CancellationToken,
    /// Notified when a slot is freed while closing, for `close()` to wait on.
    pub(crate) drained: Notify,
    /// Wakes the deadline watcher when a waiter with a watched deadline joins an unwatched queue.
    pub(crate) deadlines: Notify,
    /// Wakes connect tasks that back off after failures: someone is waiting or was refused.
    pub(crate) demand: Notify,
    /// Wakes connect tasks that back off after failures: a connect succeeded, their run of failures is over.
    pub(crate) recovered: Notify,
    /// Wakes the circuit's probe waiting for a paused pool to resume.
    pub(crate) resumed: Notify,
    pub(crate) health: parking_lot::Mutex<Option<HealthReport>>,
    pub(crate) on_leak: Option<LeakHook>,
    /// Checkout and return hooks; `None` when none are registered, so a plain checkout checks one pointer.
    pub(crate) conn_hooks: Option<Box<ConnHooks<M::Connection>>>,
    /// Whether any return hook is registered: read by every return, so one flag instead of a pointer chase.
    pub(crate) has_return_hooks: bool,
    pub(crate) next_id: AtomicU64,
    /// What the helpers do about N+1 loops ([`NPlusOneMode`](crate::n_plus_one::NPlusOneMode)).
    pub(crate) n_plus_one: crate::n_plus_one::ModeCell,
}

impl<M: Manager> Shared<M> {
    #[allow(clippy::too_many_arguments, reason = "called once, by the builder")]
    pub(crate) fn new(
        manager: M,
        config: PoolConfig,
        name: Arc<str>,
        meter: &opentelemetry::metrics::Meter,
        runtime: tokio::runtime::Handle,
        clock: Clock,
        on_leak: Option<LeakHook>,
        conn_hooks: ConnHooks<M::Connection>,
        host_attributes: bool,
    ) -> Arc<Self> {
        let descriptor = manager.descriptor();
        Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let observed: std::sync::Weak<dyn Observed> = weak.clone();
            Shared {
                metrics: PoolMetrics::new(meter, &name, &descriptor, observed, host_attributes),
                internals: Mutex::new({
                    let mut internals = Internals::new(config.max_size, config.min_idle, config.reuse);
                    if config.retire_on_rotation {
                        internals.retire_on_rotation(config.retire_on_rotation_window);
                    }
                    internals
                }),
                manager,
                config,
                name,
                descriptor,
                clock,
                runtime,
                closing: CancellationToken::new(),
                drained: Notify::new(),
                deadlines: Notify::new(),
                demand: Notify::new(),
                recovered: Notify::new(),
                resumed: Notify::new(),
                health: parking_lot::Mutex::new(None),
                on_leak,
                has_return_hooks: !conn_hooks.on_return.is_empty(),
                conn_hooks: (!conn_hooks.is_empty()).then(|| Box::new(conn_hooks)),
                next_id: AtomicU64::new(1),
                n_plus_one: Default::default(),
            }
        })
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, Internals<M::Connection, M::Error>> {
        self.internals.lock()
    }

    /// Logs and counts a panic caught in a manager hook.
    pub(crate) fn hook_panicked(&self, hook: &'static str, message: &str) {
        self.lock().count_panic();
        tracing::error!(pool = %self.name, hook, panic = message, "the manager's {hook} panicked; the pool recovered");
    }

    /// The health verdict from the pool's state alone (no round trip), for the `aquifer.pool.health` gauge
    /// before the first check. Unhealthy while closed, failing fast, or holding no connection while connects
    /// fail; degraded while paused.
    pub(crate) fn health_status_now(&self) -> HealthStatus {
        let g = self.lock();
        if g.is_closed() || g.circuit().cut_off(g.live()) {
            return HealthStatus::Unhealthy;
        }
        if g.is_paused() {
            return HealthStatus::Degraded;
        }
        HealthStatus::from_state(&g.state())
    }

    /// Pauses the pool (see `Pool::pause`).
    pub(crate) fn pause(&self) {
        let (changed, state) = {
            let mut g = self.lock();
            (g.pause(), g.state())
        };
        if changed {
            // The last report no longer holds; until the next check the verdict comes from the state.
            *self.health.lock() = None;
            tracing::info!(pool = %self.name, %state, "pool paused: it lends and opens no connection until resumed");
        }
    }

    /// Resumes a paused pool (see `Pool::resume`): idle connections go to the waiters in their order, connects
    /// start for the rest and for `min_idle`, and the circuit's probe goes on.
    pub(crate) fn resume(self: &Arc<Self>) {
        let Some((wakers, connects)) = self.lock().resume() else { return };
        let served = wakers.len();
        for w in wakers {
            w.wake();
        }
        self.spawn_connects(connects);
        self.resumed.notify_waiters();
        *self.health.lock() = None;
        tracing::info!(pool = %self.name, served, connects, "pool resumed");
    }

    /// Retires every connection (see `Pool::retire`); returns how many idle ones were closed now.
    pub(crate) fn retire(self: &Arc<Self>) -> usize {
        let (idle, connects, state) = {
            let mut g = self.lock();
            if g.is_closed() {
                return 0;
            }
            let (idle, connects) = g.retire();
            (idle, connects, g.state())
        };
        let n = idle.len();
        drop(idle);
        self.metrics.closed(CloseReason::Retired, n as u64);
        self.spawn_connects(connects);
        tracing::info!(pool = %self.name, closed = n, %state, "pool retired its connections: idle ones closed, lent ones close as they return");
        n
    }

    /// Waits until the pool is not paused; false if it closes first.
    pub(crate) async fn wait_resumed(&self) -> bool {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            {
                let g = self.lock();
                if g.is_closed() {
                    return false;
                }
                if !g.is_paused() {
                    return true;
                }
            }
            tokio::select! {
                biased;
                _ = self.closing.cancelled() => return false,
                _ = &mut resumed => {}
            }
        }
    }
}

impl<M: Manager> Observed for Shared<M> {
    fn observe(&self) -> Option<Observation> {
        let (state, closed) = {
            let g = self.lock();
            (g.state(), g.is_closed())
        };
        let health = match &*self.health.lock() {
            Some(report) => report.status,
            None => self.health_status_now(),
        };
        Some(Observation { state, health: health.as_f64(), closed })
    }

    fn take_zero_waits(&self) -> u64 {
        self.lock().take_zero_waits()
    }
}

impl<M: Manager> Drop for Shared<M> {
    /// Zero waits not collected yet still reach the histogram, and the gauges' last values are left for the
    /// next collection (it exports them once): a program that ends right after dropping its pools still
    /// exports them.
    fn drop(&mut self) {
        let (n, mut state) = {
            let mut g = self.lock();
            (g.take_zero_waits(), g.state())
        };
        self.metrics.zero_waits(n);
        // Whatever the pool still held closes with it.
        state.size = 0;
        state.idle = 0;
        state.in_use = 0;
        state.connecting = 0;
        state.waiting = 0;
        self.metrics.keep_last(Observation { state, health: 0.0, closed: true });
    }
}
