//! Acquiring a connection. [`Acquire`], the future of `Pool::get()`, is hand-written so that the fast path —
//! an idle connection used within the validation bypass window — is a plain function call: one lock, one
//! clock read, no allocation, no nested async state machines. Anything slower (waiting, validating) continues
//! in a boxed async future, `Shared::acquire_slow`.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::Stamp;
use crate::errors::{ConnectError, PoolError};
use crate::held::Held;
use crate::hooks::{HookError, Hooks};
use crate::internals::{Abandoned, CloseReason, Conn, NO_CHECKOUT, Outcome, Step, Wait};
use crate::manager::Manager;
use crate::pooled::Pooled;
use crate::session::{HookFailure, SessionRef, run_step};
use crate::shared::Shared;

type SlowPath<'a, M> =
    Pin<Box<dyn Future<Output = Result<Option<Pooled<M>>, PoolError<<M as Manager>::Error>>> + Send + 'a>>;

/// The future returned by [`Pool::get`](crate::Pool::get) and [`Pool::get_timeout`](crate::Pool::get_timeout).
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Acquire<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    timeout: Duration,
    leak_caller: Option<&'static Location<'static>>,
    slow: Option<SlowPath<'a, M>>,
    /// The context to apply (`get_with`); taken when the slow path starts.
    session: Option<SessionRef<M::Connection>>,
}

impl<'a, M: Manager> Acquire<'a, M> {
    pub(crate) fn new(
        shared: &'a Arc<Shared<M>>,
        timeout: Duration,
        caller: &'static Location<'static>,
        session: Option<SessionRef<M::Connection>>,
    ) -> Self {
        let leak_caller = shared.config.leak_detection_threshold.map(|_| caller);
        // A context the manager refuses fails here, before a checkout: no door built on `get_with` can put
        // session-level state on a connection whose server side other clients share.
        let slow = session.as_ref().and_then(|ctx| refused(shared, &**ctx));
        Acquire { shared, timeout, leak_caller, slow, session }
    }
}

/// The error of a context the manager refuses ([`Manager::session_context_refusal`]), as an already
/// finished slow path. A panicking manager counts as a refusal.
#[cold]
fn refused<'a, M: Manager>(
    shared: &Arc<Shared<M>>,
    ctx: &dyn crate::SessionContext<M::Connection>,
) -> Option<SlowPath<'a, M>> {
    let manager = &shared.manager;
    let reason = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        manager.session_context_refusal().map(Arc::<str>::from)
    })) {
        Ok(reason) => reason?,
        Err(payload) => {
            let message = crate::hooks::panic_message(&*payload);
            shared.hook_panicked("session_context_refusal", &message);
            message
        }
    };
    let hook = Arc::from(ctx.name());
    Some(Box::pin(std::future::ready(Err(PoolError::Hook { hook, cause: HookFailure::Refused(reason) }))))
}

impl<M: Manager> Future for Acquire<'_, M> {
    type Output = Result<Pooled<M>, PoolError<M::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.slow.is_none() {
            let first = std::task::ready!(this.shared.poll_checkout(cx, Some(this.timeout), true, this.leak_caller));
            // Without hooks or a context (the common case) this is all a checkout costs beyond the engine.
            let prepare = this.shared.conn_hooks.is_some() || this.session.is_some();
            match first {
                Step::Ready(conn, checkout, now) if !prepare => {
                    return Poll::Ready(Ok(Pooled::new(conn, Arc::clone(this.shared), now, checkout)));
                }
                first => this.start_slow(first, prepare),
            }
        }
        let slow = this.slow.as_mut().expect("set above when the first attempt did not finish the checkout");
        slow.as_mut().poll(cx).map(|r| match r {
            Ok(Some(conn)) => Ok(conn),
            Ok(None) => unreachable!("an acquire that may wait never reports a busy pool"),
            Err(e) => Err(e),
        })
    }
}

impl<'a, M: Manager> Acquire<'a, M> {
    /// Everything after a first attempt that did not end the checkout: the hooks or context to apply, the
    /// slow path. Out of line, so that `poll`'s fast path saves and restores fewer registers.
    #[inline(never)]
    fn start_slow(&mut self, first: Step<M::Connection, M::Error>, prepare: bool) {
        let shared = self.shared;
        let next: SlowPath<'a, M> = match first {
            Step::Ready(conn, checkout, now) => {
                let conn = Pooled::new(conn, Arc::clone(shared), now, checkout);
                let session = self.session.take();
                Box::pin(async move { shared.prepare(conn, session).await.map(Some) })
            }
            first => {
                // Polled right after, in the same `poll`: the slow path owns the waiter key or connection.
                let start = shared.clock.now();
                let slow = shared.acquire_slow(first, start, Some(self.timeout), self.leak_caller);
                if prepare {
                    let session = self.session.take();
                    Box::pin(async move {
                        match slow.await? {
                            Some(conn) => shared.prepare(conn, session).await.map(Some),
                            None => Ok(None),
                        }
                    })
                } else {
                    Box::pin(slow)
                }
            }
        };
        self.slow = Some(next);
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
        let now = self.shared.clock.now();
        let mut g = self.shared.lock();
        let Some(outcome) = g.poll_wait(self.key, cx.waker()) else { return Poll::Pending };
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
        let abandoned = self.shared.lock().cancel_wait(self.key);
        match abandoned {
            Abandoned::Passed(waker) => waker.into_iter().for_each(Waker::wake),
            Abandoned::Unwanted(conn, reason, connects) => self.shared.after_close(conn, reason, connects),
        }
    }
}

impl<M: Manager> Shared<M> {
    /// One attempt under the lock, within Tokio's cooperative budget. The budget is checked before anything is
    /// taken, so a task looping on an idle pool yields now and then instead of starving its worker, and never
    /// yields holding a connection (tokio's Semaphore checks after granting, which is what makes pools built on
    /// it slow). `first`: the caller has not waited yet; a connection it gets now counts as a zero wait.
    #[inline]
    pub(crate) fn poll_checkout(
        &self,
        cx: &mut Context<'_>,
        timeout: Option<Duration>,
        first: bool,
        leak_caller: Option<&'static Location<'static>>,
    ) -> Poll<Step<M::Connection, M::Error>> {
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let now = self.clock.now();
        let mut g = self.lock();
        let step = g.checkout(now, leak_caller, self.wait_mode(timeout, first), cx.waker());
        if matches!(step, Step::Ready(..)) {
            if first {
                // Served at once: its zero wait is recorded at the next collection (see `metrics.rs`).
                g.count_zero_wait();
            }
            drop(g);
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
        let conn = match first {
            Step::Ready(conn, checkout, now) => Some(Pooled::new(conn, Arc::clone(self), now, checkout)),
            first => self.acquire_slow(first, self.clock.now(), None, leak_caller).await?,
        };
        match conn {
            Some(conn) if self.conn_hooks.is_some() => self.prepare(conn, None).await.map(Some),
            conn => Ok(conn),
        }
    }

    /// Readies a checked-out connection for its user: the checkout hooks in their order, then the context.
    /// Until both are done the connection is closed rather than returned if the future is dropped: it may be
    /// half-prepared. A failing, panicking or timed-out step closes it and fails the checkout.
    pub(crate) async fn prepare(
        self: &Arc<Self>,
        mut conn: Pooled<M>,
        session: Option<SessionRef<M::Connection>>,
    ) -> Result<Pooled<M>, PoolError<M::Error>> {
        conn.conn_mut().discard_on_drop = true;
        let timeout = self.config.hook_timeout;
        if let Some(hooks) = &self.conn_hooks {
            for hook in &hooks.checkout {
                if let Err(cause) = run_step(timeout, (hook.f)(&mut conn)).await {
                    return Err(self.checkout_hook_failed(conn, Arc::clone(&hook.name), cause));
                }
            }
        }
        if let Some(ctx) = session {
            if let Err(cause) = run_step(timeout, ctx.apply(&mut conn)).await {
                let name = Arc::from(ctx.name());
                return Err(self.checkout_hook_failed(conn, name, cause));
            }
            conn.conn_mut().session = Some(ctx);
        }
        conn.conn_mut().discard_on_drop = false;
        Ok(conn)
    }

    fn checkout_hook_failed(&self, conn: Pooled<M>, hook: Arc<str>, cause: HookFailure) -> PoolError<M::Error> {
        conn.close(CloseReason::HookFailed);
        if let HookFailure::Panicked(message) = &cause {
            self.lock().count_panic();
            tracing::error!(pool = %self.name, hook = %hook, panic = %message, "a checkout hook panicked; the connection was discarded");
        } else {
            tracing::warn!(pool = %self.name, hook = %hook, error = %cause, "a checkout hook failed; the connection was discarded");
        }
        PoolError::Hook { hook, cause }
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
                Step::FailFast { since, error } => {
                    // The probe learns that someone asked: it retries sooner than its backoff.
                    self.demand.notify_waiters();
                    return Err(self.unavailable(since, error));
                }
                Step::Busy => return Ok(None),
                Step::Check(conn) => conn,
                Step::Wait { key, connects, wake_watcher, demand } => {
                    if wake_watcher {
                        self.deadlines.notify_one();
                    }
                    if demand {
                        self.demand.notify_waiters();
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
                            return Err(self.unavailable(since, error));
                        }
                    }
                }
            };

            // A connection that was handed over, or sat idle past the bypass window or was suspected: check it
            // before use.
            let mut now = self.clock.now();
            if conn.expired(now) {
                self.discard(conn, NO_CHECKOUT, CloseReason::MaxLifetime);
                continue;
            }
            // Not fresh: idle past the bypass window, or suspected since a connection was found dead.
            if !conn.fresh(now) {
                // Dropped with the future (cancelled mid-validation): the connection's state is unknown, so
                // the guard closes it and frees its slot.
                let mut held = Held::new(self, conn, NO_CHECKOUT, CloseReason::Discarded);
                let limit = tokio::time::Instant::now() + self.config.validation_timeout;
                let limit = deadline.map_or(limit, |d| limit.min(d));
                let validated = tokio::time::timeout_at(limit, Hooks::validate(&self.manager, held.raw())).await;
                match validated {
                    Ok(Ok(())) => {}
                    Ok(Err(HookError::Panicked(message))) => {
                        self.hook_panicked("validate", &message);
                        held.reason = CloseReason::ValidationFailed;
                        continue;
                    }
                    Ok(Err(HookError::Failed(_))) | Err(_) => {
                        tracing::debug!(pool = %self.name, "connection failed validation on checkout; discarding it");
                        held.reason = CloseReason::ValidationFailed;
                        continue;
                    }
                }
                conn = held.release();
                now = self.clock.now();
                conn.touch(now, bypass);
            }
            let checkout = self.lock().checked_out(&conn, now, leak_caller);
            self.metrics.wait_time(now.duration_since(start));
            return Ok(Some(Pooled::new(conn, Arc::clone(self), now, checkout)));
        }
    }

    /// The error of a caller the failing-fast pool turns away. Call it without the lock: it asks the manager
    /// whether the error is permanent.
    pub(crate) fn unavailable(&self, since: std::time::Instant, error: ConnectError<M::Error>) -> PoolError<M::Error> {
        let permanent = match &error {
            ConnectError::Backend(e) => Hooks::is_permanent(&self.manager, e),
            // A panicking connect is a bug in the manager, retried like a transient failure (docs/reliability.md).
            ConnectError::Panicked(_) | ConnectError::TimedOut(_) => false,
        };
        PoolError::Unavailable { since, permanent, last_error: error }
    }

    fn timed_out(&self, started: Stamp) -> PoolError<M::Error> {
        let (state, last_error) = {
            let mut g = self.lock();
            g.count_timeout();
            (g.state(), g.circuit().last_error().cloned())
        };
        self.metrics.timeout();
        PoolError::Timeout { waited: self.clock.now().duration_since(started), state, last_error }
    }
}
