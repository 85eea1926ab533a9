//! The async half of the engine: acquiring (waiting, validating), returning, connecting with retries and the
//! fail-fast circuit, resets, housekeeping and closing. Decisions are made by the locked state machine in
//! `internals.rs`; this file awaits and never holds the lock across an await point.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quanta::Instant as Stamp;

use backon::BackoffBuilder;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::PoolConfig;
use crate::errors::{ConnectError, PoolError};
use crate::health::{HealthReport, HealthStatus};
use crate::internals::{CheckoutRecord, CloseReason, Conn, Internals, NO_CHECKOUT, Outcome, Step, Wait};
use crate::leak::LeakReport;
use crate::manager::{Descriptor, Manager};
use crate::metrics::{Observation, Observed, PoolMetrics};
use crate::pooled::Pooled;

pub(crate) type LeakHook = Arc<dyn Fn(&LeakReport) + Send + Sync>;

/// Everything a pool shares between its handles, its guards and its background tasks.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: PoolConfig,
    pub(crate) name: Arc<str>,
    pub(crate) descriptor: Descriptor,
    pub(crate) internals: Mutex<Internals<M::Connection, M::Error>>,
    pub(crate) metrics: PoolMetrics,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Cancelled when the pool closes: stops connects in flight and background tasks.
    pub(crate) closing: CancellationToken,
    /// Notified when a slot is freed while closing, for `close()` to wait on.
    pub(crate) drained: Notify,
    /// Wakes the deadline watcher when a waiter with a watched deadline joins an unwatched queue.
    pub(crate) deadlines: Notify,
    pub(crate) health: Mutex<Option<HealthReport>>,
    pub(crate) on_leak: Option<LeakHook>,
    next_id: AtomicU64,
}

/// Owns a connection that is out of the pool's hands for a while (being validated or reset). Dropping it —
/// the caller's future was cancelled, the reset task was dropped — discards the connection and frees its slot.
struct Held<M: Manager> {
    shared: Arc<Shared<M>>,
    conn: Option<Box<Conn<M::Connection>>>,
    checkout: usize,
    reason: CloseReason,
}

impl<M: Manager> Held<M> {
    fn raw(&mut self) -> &mut M::Connection {
        &mut self.conn.as_mut().expect("a Held owns its connection until released").raw
    }

    fn release(mut self) -> Box<Conn<M::Connection>> {
        self.conn.take().expect("a Held owns its connection until released")
    }
}

impl<M: Manager> Drop for Held<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.discard(conn, self.checkout, self.reason);
        }
    }
}

/// A queued caller. Polling takes what was handed over; dropping it leaves the queue and passes on a
/// connection that was handed over but not taken, so a cancelled `get()` never swallows a wake-up.
struct Waiting<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    key: usize,
    /// The waker was registered when the caller was queued, in the same poll: the first poll can return
    /// `Pending` without locking, since a hand-off in between has already woken the task.
    registered: bool,
    done: bool,
    leak_caller: Option<&'static Location<'static>>,
}

/// What a waiter got.
enum Taken<C, E> {
    /// A connection ready to use, already checked out (leak record key) at this instant.
    Ready(Box<Conn<C>>, usize, Stamp),
    /// A connection that must be checked first (expired, or idle past the bypass window).
    Check(Box<Conn<C>>),
    /// No connection: timed out, closed or failing fast.
    Failed(Outcome<C, E>),
}

impl<M: Manager> Future for Waiting<'_, M> {
    type Output = Taken<M::Connection, M::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if std::mem::take(&mut self.registered) {
            return Poll::Pending;
        }
        let now = Stamp::now();
        let mut g = self.shared.lock();
        let Some(outcome) = g.waiters.poll(self.key, cx.waker()) else { return Poll::Pending };
        // Counting the checkout under the same lock saves a second one on the contended path.
        let taken = match outcome {
            Outcome::Conn(conn) if conn.fresh(now) => {
                let checkout = g.checked_out(&conn, now, self.leak_caller);
                Taken::Ready(conn, checkout, now)
            }
            Outcome::Conn(conn) => Taken::Check(conn),
            other => Taken::Failed(other),
        };
        drop(g);
        self.done = true;
        Poll::Ready(taken)
    }
}

impl<M: Manager> Drop for Waiting<'_, M> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let outcome = self.shared.lock().waiters.cancel(self.key);
        if let Some(Outcome::Conn(conn)) = outcome {
            self.shared.put_back(conn, NO_CHECKOUT);
        }
    }
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(
        manager: M,
        config: PoolConfig,
        name: Arc<str>,
        meter: &opentelemetry::metrics::Meter,
        runtime: tokio::runtime::Handle,
        on_leak: Option<LeakHook>,
    ) -> Arc<Self> {
        let descriptor = manager.descriptor();
        Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let observed: std::sync::Weak<dyn Observed> = weak.clone();
            Shared {
                metrics: PoolMetrics::new(meter, &name, &descriptor, observed),
                internals: Mutex::new(Internals::new(config.max_size, config.min_idle)),
                manager,
                config,
                name,
                descriptor,
                runtime,
                closing: CancellationToken::new(),
                drained: Notify::new(),
                deadlines: Notify::new(),
                health: Mutex::new(None),
                on_leak,
                next_id: AtomicU64::new(1),
            }
        })
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, Internals<M::Connection, M::Error>> {
        self.internals.lock()
    }

    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            self.runtime.spawn(Arc::clone(self).connect_task());
        }
    }

    /// One attempt under the lock, within Tokio's cooperative budget. The budget is checked before anything is
    /// taken, so a task looping on an idle pool yields now and then instead of starving its worker, and never
    /// yields holding a connection (tokio's Semaphore checks after granting, which is what makes pools built on
    /// it slow). `first`: the caller has not waited yet.
    pub(crate) fn poll_checkout(
        &self,
        cx: &mut Context<'_>,
        timeout: Option<Duration>,
        first: bool,
        leak_caller: Option<&'static Location<'static>>,
    ) -> Poll<Step<M::Connection, M::Error>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let now = Stamp::now();
        let step = self.lock().checkout(now, leak_caller, self.wait_mode(timeout, first), cx.waker());
        if matches!(step, Step::Ready(..)) {
            coop.made_progress();
        }
        Poll::Ready(step)
    }

    /// The default timeout of a first wait is enforced by the pool's deadline watcher (one timer for the whole
    /// queue); anything else brings its own timer.
    fn wait_mode(&self, timeout: Option<Duration>, first: bool) -> Wait {
        match timeout {
            None => Wait::Never,
            Some(t) if first && t == self.config.acquire_timeout => Wait::Watched(t),
            Some(_) => Wait::OwnTimer,
        }
    }

    /// Acquires a connection without waiting for another caller or a connect (`try_get`).
    pub(crate) async fn try_acquire(
        self: &Arc<Self>,
        caller: &'static Location<'static>,
    ) -> Result<Option<Pooled<M>>, PoolError<M::Error>> {
        let leak_caller = self.config.leak_detection_threshold.map(|_| caller);
        let first = std::future::poll_fn(|cx| self.poll_checkout(cx, None, true, leak_caller)).await;
        if let Step::Ready(conn, checkout, now) = first {
            self.metrics.wait_time(Duration::ZERO);
            return Ok(Some(Pooled::new(conn, Arc::clone(self), now, checkout)));
        }
        self.acquire_slow(first, Stamp::now(), None, leak_caller).await
    }

    /// Everything but the fast path: waiting, validating, retrying. Must be polled as soon as it is made: it
    /// owns the waiter key or the connection in `first`, which only its body knows how to give back.
    pub(crate) async fn acquire_slow(
        self: &Arc<Self>,
        first: Step<M::Connection, M::Error>,
        start: Stamp,
        timeout: Option<Duration>,
        leak_caller: Option<&'static Location<'static>>,
    ) -> Result<Option<Pooled<M>>, PoolError<M::Error>> {
        let bypass = self.config.validation_bypass;
        // Tokio timers run on tokio's clock; everything else on the pool's.
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut next = Some((first, true));
        loop {
            let (step, first_wait) = match next.take() {
                Some(first) => first,
                None => (std::future::poll_fn(|cx| self.poll_checkout(cx, timeout, false, leak_caller)).await, false),
            };
            let mut conn = match step {
                Step::Ready(conn, checkout, now) => {
                    self.metrics.wait_time(now.duration_since(start));
                    return Ok(Some(Pooled::new(conn, Arc::clone(self), now, checkout)));
                }
                Step::Closed => return Err(PoolError::Closed),
                Step::FailFast { since, error } => return Err(PoolError::Unavailable { since, last_error: error }),
                Step::Busy => return Ok(None),
                Step::Check(conn) => conn,
                Step::Wait { key, connects, wake_watcher } => {
                    if wake_watcher {
                        self.deadlines.notify_one();
                    }
                    self.spawn_connects(connects);
                    let wait = Waiting { shared: self, key, registered: true, done: false, leak_caller };
                    let taken = match (self.wait_mode(timeout, first_wait), deadline) {
                        (Wait::OwnTimer, Some(d)) => {
                            tokio::time::timeout_at(d, wait).await.unwrap_or(Taken::Failed(Outcome::TimedOut))
                        }
                        _ => wait.await,
                    };
                    match taken {
                        Taken::Ready(conn, checkout, at) => {
                            self.metrics.wait_time(at.duration_since(start));
                            return Ok(Some(Pooled::new(conn, Arc::clone(self), at, checkout)));
                        }
                        Taken::Check(conn) => conn,
                        Taken::Failed(Outcome::Conn(_)) => unreachable!("connections are taken, not failed"),
                        Taken::Failed(Outcome::TimedOut) => return Err(self.timed_out(start)),
                        Taken::Failed(Outcome::Closed) => return Err(PoolError::Closed),
                        Taken::Failed(Outcome::Unavailable { since, error }) => {
                            return Err(PoolError::Unavailable { since, last_error: error });
                        }
                    }
                }
            };

            // A connection that was handed over, or sat idle past the bypass window: check it before use.
            let mut now = Stamp::now();
            if conn.expired(now) {
                self.discard(conn, NO_CHECKOUT, CloseReason::MaxLifetime);
                continue;
            }
            if now.duration_since(conn.last_used) > bypass {
                let mut held = Held {
                    shared: Arc::clone(self),
                    conn: Some(conn),
                    checkout: NO_CHECKOUT,
                    reason: CloseReason::Discarded,
                };
                let limit = tokio::time::Instant::now() + self.config.validation_timeout;
                let limit = deadline.map_or(limit, |d| limit.min(d));
                let validated = tokio::time::timeout_at(limit, self.manager.validate(held.raw())).await;
                if !matches!(validated, Ok(Ok(()))) {
                    held.reason = CloseReason::ValidationFailed;
                    tracing::debug!(pool = %self.name, "connection failed validation on checkout; discarding it");
                    drop(held);
                    continue;
                }
                conn = held.release();
                now = Stamp::now();
                conn.touch(now, bypass);
            }
            let checkout = self.lock().checked_out(&conn, now, leak_caller);
            self.metrics.wait_time(now.duration_since(start));
            return Ok(Some(Pooled::new(conn, Arc::clone(self), now, checkout)));
        }
    }

    fn timed_out(&self, started: Stamp) -> PoolError<M::Error> {
        let (state, last_error) = {
            let mut g = self.lock();
            g.stats.timeouts += 1;
            (g.state(), g.circuit.last_error.clone())
        };
        self.metrics.timeout();
        PoolError::Timeout { waited: started.elapsed(), state, last_error }
    }

    /// A connection comes back from its user.
    pub(crate) fn checkin(self: &Arc<Self>, mut conn: Box<Conn<M::Connection>>, checkout: usize, checked_out: Stamp) {
        let now = Stamp::now();
        self.metrics.use_time(now.duration_since(checked_out));
        if self.manager.is_broken(&mut conn.raw) {
            tracing::debug!(pool = %self.name, conn = conn.id, "returned connection is broken; discarding it");
            return self.discard(conn, checkout, CloseReason::Broken);
        }
        if conn.expired(now) {
            return self.discard(conn, checkout, CloseReason::MaxLifetime);
        }
        conn.touch(now, self.config.validation_bypass);
        if self.manager.needs_reset(&mut conn.raw) {
            return self.spawn_reset(conn, checkout);
        }
        self.put_back(conn, checkout);
    }

    /// Hands a clean connection to the longest waiter, or to the idle stack.
    pub(crate) fn put_back(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize) {
        let mut g = self.lock();
        let record = g.end_checkout(checkout);
        self.deliver(g, conn, false);
        if let Some(record) = record {
            self.returned_after_leak(&record);
        }
    }

    /// Under `g`: hands `conn` to the longest waiter or the idle stack, or closes it when the pool no longer
    /// wants it (closed, or shrunk below its size). With `top_up`, also starts connects that `min_idle` or
    /// waiters still need (after a new connection; a plain return changes neither).
    fn deliver(
        self: &Arc<Self>,
        mut g: MutexGuard<'_, Internals<M::Connection, M::Error>>,
        conn: Box<Conn<M::Connection>>,
        top_up: bool,
    ) {
        match g.deliver(conn) {
            Ok(waker) => {
                let connects = if top_up { g.reserve_connects() } else { 0 };
                drop(g);
                if let Some(w) = waker {
                    w.wake();
                }
                self.spawn_connects(connects);
            }
            Err(conn) => {
                let reason = if g.closed { CloseReason::PoolClosed } else { CloseReason::Discarded };
                let connects = g.release_slot(Some(reason));
                let closed = g.closed;
                drop(g);
                self.after_close(conn, reason, connects, closed);
            }
        }
    }

    /// Closes a connection and frees its slot.
    pub(crate) fn discard(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize, reason: CloseReason) {
        let (record, connects, closed) = {
            let mut g = self.lock();
            let record = g.end_checkout(checkout);
            (record, g.release_slot(Some(reason)), g.closed)
        };
        self.after_close(conn, reason, connects, closed);
        if let Some(record) = record {
            self.returned_after_leak(&record);
        }
    }

    /// Takes a connection out of the pool for good (`Pooled::detach`).
    pub(crate) fn detach(self: &Arc<Self>, checkout: usize) {
        let (connects, closed) = {
            let mut g = self.lock();
            g.end_checkout(checkout);
            g.stats.detached += 1;
            (g.release_slot(None), g.closed)
        };
        self.spawn_connects(connects);
        if closed {
            self.drained.notify_waiters();
        }
    }

    fn after_close(
        self: &Arc<Self>,
        conn: Box<Conn<M::Connection>>,
        reason: CloseReason,
        connects: usize,
        closed: bool,
    ) {
        drop(conn);
        self.metrics.closed(reason, 1);
        self.spawn_connects(connects);
        if closed {
            self.drained.notify_waiters();
        }
    }

    fn returned_after_leak(&self, record: &CheckoutRecord) {
        if record.reported {
            tracing::info!(
                pool = %self.name,
                conn = record.conn_id,
                caller = %record.caller,
                held_for = ?record.at.elapsed(),
                "connection reported as a possible leak was returned"
            );
        }
    }

    /// Resets a returned connection in the background, then puts it back; a failed or dropped reset discards it.
    fn spawn_reset(self: &Arc<Self>, conn: Box<Conn<M::Connection>>, checkout: usize) {
        self.lock().stats.resets += 1;
        let mut held = Held { shared: Arc::clone(self), conn: Some(conn), checkout, reason: CloseReason::Broken };
        let timeout = self.config.validation_timeout;
        self.runtime.spawn(async move {
            let shared = Arc::clone(&held.shared);
            let reset = tokio::time::timeout(timeout, shared.manager.reset(held.raw())).await;
            match reset {
                Ok(Ok(())) => {
                    let checkout = held.checkout;
                    let mut conn = held.release();
                    conn.touch(Stamp::now(), shared.config.validation_bypass);
                    shared.put_back(conn, checkout);
                }
                Ok(Err(e)) => {
                    tracing::debug!(pool = %shared.name, error = %e, "reset of a returned connection failed; discarding it");
                }
                Err(_) => {
                    tracing::debug!(pool = %shared.name, "reset of a returned connection timed out; discarding it");
                }
            }
        });
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.config.connect_backoff_min)
            .with_max_delay(self.config.connect_backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Opens one connection for the slot reserved when this task was spawned, retrying with backoff while
    /// someone still needs it. After `fail_fast_after` consecutive failures it opens the circuit, fails every
    /// waiter, and keeps probing until the server answers or the pool closes.
    async fn connect_task(self: Arc<Self>) {
        let mut delays = self.backoff();
        let mut probing = false;
        loop {
            let started = Instant::now();
            let attempt = tokio::select! {
                biased;
                _ = self.closing.cancelled() => return self.abandon_connect(),
                r = tokio::time::timeout(self.config.connect_timeout, self.manager.connect()) => r,
            };
            let (error, permanent) = match attempt {
                Ok(Ok(raw)) => {
                    self.metrics.create_time(started.elapsed());
                    return self.connected(raw, probing);
                }
                Ok(Err(e)) => {
                    self.metrics.connect_error(self.manager.error_type(&e));
                    let permanent = self.manager.is_permanent(&e);
                    (ConnectError::Backend(Arc::new(e)), permanent)
                }
                Err(_) => {
                    self.metrics.connect_error("timeout".into());
                    (ConnectError::TimedOut(self.config.connect_timeout), false)
                }
            };
            // A refused password will be refused again: fail fast at once rather than after the threshold.
            let threshold = if permanent { 1 } else { self.config.fail_fast_after };
            let (opened, wakers, retry, failures) = {
                let mut g = self.lock();
                let (opened, wakers) = g.connect_failed(error.clone(), threshold, Instant::now());
                probing |= opened;
                let retry = !g.closed && (probing || (g.circuit.open_since.is_none() && g.connect_still_needed()));
                if !retry {
                    g.connecting -= 1;
                    g.size -= 1;
                }
                (opened, wakers, retry, g.circuit.consecutive_failures)
            };
            for w in wakers {
                w.wake();
            }
            if opened {
                tracing::error!(
                    pool = %self.name, error = %error, failures,
                    "connects keep failing; failing fast until the server answers again"
                );
            } else if !probing {
                tracing::warn!(pool = %self.name, error = %error, failures, "connect failed");
            }
            if !retry {
                self.drained.notify_waiters();
                return;
            }
            let delay = delays.next().unwrap_or(self.config.connect_backoff_max);
            tokio::select! {
                biased;
                _ = self.closing.cancelled() => return self.abandon_connect(),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn abandon_connect(&self) {
        {
            let mut g = self.lock();
            g.connecting -= 1;
            g.size -= 1;
        }
        self.drained.notify_waiters();
    }

    fn connected(self: &Arc<Self>, raw: M::Connection, was_probing: bool) {
        let now = Stamp::now();
        let expires = self.config.max_lifetime.and_then(|l| now.checked_add(l.mul_f64(1.0 - fastrand::f64() * 0.05)));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Box::new(Conn::new(raw, id, now, expires, self.config.validation_bypass));
        if was_probing {
            tracing::info!(pool = %self.name, "server answers again; no longer failing fast");
        }
        let mut g = self.lock();
        g.connect_succeeded();
        self.deliver(g, conn, true);
    }

    /// Background task: fails waiters whose `acquire_timeout` passed. One timer serves the whole queue because
    /// first-time waiters with the default timeout join it in deadline order, so only the earliest matters;
    /// this spares every waiting `get()` a timer registration of its own.
    /// Holds the pool until it closes (closing does not wait for this task).
    pub(crate) async fn watch_deadlines(self: Arc<Self>, closing: CancellationToken) {
        let shared = self;
        loop {
            let (wakers, next) = {
                let mut g = shared.lock();
                let (wakers, next) = g.waiters.expire(Instant::now(), || Outcome::TimedOut);
                g.watcher_armed = next.is_some();
                (wakers, next)
            };
            for w in wakers {
                w.wake();
            }
            let notified = shared.deadlines.notified();
            match next {
                Some(at) => tokio::select! {
                    biased;
                    _ = closing.cancelled() => return,
                    _ = tokio::time::sleep_until(at.into()) => {}
                },
                None => tokio::select! {
                    biased;
                    _ = closing.cancelled() => return,
                    _ = notified => {}
                },
            }
        }
    }

    /// One round of housekeeping: reap idle connections, report leaks, top up `min_idle`.
    pub(crate) fn housekeep(self: &Arc<Self>, now: Stamp) {
        let (reaped, leaks, connects) = {
            let mut g = self.lock();
            if g.closed {
                return;
            }
            let reaped = g.reap(now, self.config.idle_timeout);
            let leaks = match self.config.leak_detection_threshold {
                Some(t) => g.find_leaks(now, t),
                None => Vec::new(),
            };
            (reaped, leaks, g.reserve_connects())
        };
        for (conn, reason) in reaped {
            tracing::debug!(pool = %self.name, conn = conn.id, reason = reason.as_str(), "closing idle connection");
            drop(conn);
            self.metrics.closed(reason, 1);
        }
        for leak in leaks {
            let report = LeakReport {
                pool: self.name.to_string(),
                conn_id: leak.conn_id,
                caller: leak.caller,
                held_for: leak.held_for,
            };
            tracing::warn!(
                pool = %self.name, conn = leak.conn_id, caller = %leak.caller, held_for = ?leak.held_for,
                "connection held longer than leak_detection_threshold: possible leak (acquired at {})", leak.caller
            );
            self.metrics.leak();
            if let Some(hook) = &self.on_leak {
                hook(&report);
            }
        }
        self.spawn_connects(connects);
    }

    /// Background task: housekeeping every `tick`, health refresh every `health_interval`. Holds the pool
    /// weakly and stops when it closes.
    pub(crate) async fn maintain(weak: std::sync::Weak<Self>, tick: Duration, closing: CancellationToken) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        let mut last_health: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = closing.cancelled() => return,
                _ = interval.tick() => {}
            }
            let Some(shared) = weak.upgrade() else { return };
            let now = Instant::now();
            shared.housekeep(Stamp::now());
            if let Some(every) = shared.config.health_interval
                && last_health.is_none_or(|t| now.duration_since(t) >= every)
            {
                last_health = Some(now);
                let report = crate::health::check(&shared).await;
                *shared.health.lock() = Some(report);
            }
        }
    }

    /// Marks the pool closed, fails every waiter with `Closed` and closes idle connections. Connections in use
    /// are closed as they come back.
    pub(crate) fn begin_close(&self) {
        let (idle, wakers) = {
            let mut g = self.lock();
            if g.closed {
                return;
            }
            g.closed = true;
            let idle = std::mem::take(&mut g.idle);
            for _ in &idle {
                g.size -= 1;
                g.count_closed(CloseReason::PoolClosed);
            }
            (idle, g.waiters.fulfill_all(|| Outcome::Closed))
        };
        self.closing.cancel();
        for w in wakers {
            w.wake();
        }
        self.metrics.closed(CloseReason::PoolClosed, idle.len() as u64);
        drop(idle);
        self.drained.notify_waiters();
        tracing::debug!(pool = %self.name, "pool closed");
    }

    /// Waits until every connection is closed, up to `deadline`; returns how many were still open.
    pub(crate) async fn wait_drained(&self, deadline: Instant) -> usize {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let size = self.lock().size;
            if size == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return self.lock().size;
            }
        }
    }

    pub(crate) fn health_status_now(&self) -> HealthStatus {
        let g = self.lock();
        if g.closed || g.circuit.open_since.is_some() {
            return HealthStatus::Unhealthy;
        }
        HealthStatus::from_state(&g.state())
    }
}

impl<M: Manager> Observed for Shared<M> {
    fn observe(&self) -> Option<Observation> {
        let state = self.lock().state();
        let health = match &*self.health.lock() {
            Some(report) => report.status,
            None => self.health_status_now(),
        };
        Some(Observation { state, health: health.as_f64() })
    }
}
