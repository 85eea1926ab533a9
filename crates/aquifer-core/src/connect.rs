//! Opening connections: one background task per reserved slot, which retries with backoff and, when its
//! failure opened the fail-fast circuit, is the circuit's probe. When to retry, how long to wait and when the
//! circuit opens and closes is decided in `circuit.rs`; this file awaits.
//!
//! The rules, as docs/architecture.md states them:
//! - a connect runs in a task of the pool, never in the caller's future, and owns its slot through a
//!   [`ConnectSlot`] that frees the slot if the task ends any way but with a connection (failure, close,
//!   panic, runtime shutdown);
//! - an attempt lasts at most `connect_timeout`, or the acquire timeout if that is shorter: a connect never
//!   outlives the demand that asked for it;
//! - while a run of failures is on and callers wait, a task whose attempt has been pending for
//!   [`RETRY_WHILE_WAITED`](circuit::RETRY_WHILE_WAITED) starts a hedged attempt beside it (spaced pool-wide,
//!   at most [`MAX_HEDGES`] per task, the oldest hedge given up for a new one), so that after a network
//!   partition heals a fresh attempt reaches the server while the stalled ones wait out their timeout; the
//!   first attempt of the task to succeed wins and the others are dropped;
//! - failures are retried at the delays of [`circuit::backoff`], starting over when any connect succeeds,
//!   and within [`RETRY_WHILE_WAITED`](circuit::RETRY_WHILE_WAITED) of the last attempt while callers wait
//!   or are refused; the rules of the run of failures, the circuit and its probe are in `circuit.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::circuit::{self, FailedAttempt};
use crate::errors::ConnectError;
use crate::hooks::{HookError, Hooks};
use crate::internals::{Begin, Conn};
use crate::manager::Manager;
use crate::shared::Shared;

/// A reserved connect slot (`size` and `connecting` counted by `Internals::reserve_connects`). Completed by
/// a successful connect, which turns it into a live connection; dropped any other way, it gives the slot
/// back.
pub(crate) struct ConnectSlot<M: Manager> {
    shared: Arc<Shared<M>>,
    armed: bool,
}

impl<M: Manager> Drop for ConnectSlot<M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().release_connect();
            self.shared.slot_freed();
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Starts a connect task for each of `n` slots reserved under the lock.
    pub(crate) fn spawn_connects(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            let slot = ConnectSlot { shared: Arc::clone(self), armed: true };
            // A runtime that is shutting down drops the task at once, and the slot with it.
            self.runtime.spawn(connect_task(slot));
        }
    }

    /// Retry delays of one run of failures ([`circuit::backoff`]).
    fn backoff(&self) -> impl Iterator<Item = Duration> + use<M> {
        circuit::backoff(self.config.connect_backoff_min, self.config.connect_backoff_max)
    }

    /// The longest an attempt may take: a connect is bounded by the gets it serves.
    fn attempt_timeout(&self) -> Duration {
        self.config.connect_timeout.min(self.config.acquire_timeout)
    }

    /// How soon after an attempt a waited-for retry comes ([`circuit::retry_while_waited`]).
    fn retry_while_waited(&self) -> Duration {
        circuit::retry_while_waited(self.config.connect_backoff_min, self.config.connect_backoff_max)
    }

    /// `credential`: the manager's credential generation read before the attempt that opened `raw`.
    fn connected(self: &Arc<Self>, mut slot: ConnectSlot<M>, raw: M::Connection, credential: u64, was_probing: bool) {
        let now = self.clock.now();
        let expires =
            self.config.max_lifetime.map(|l| now.saturating_add(lifetime(l, self.config.max_lifetime_jitter)));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conn = Box::new(Conn::new(raw, id, now, expires, self.config.validation_bypass));
        conn.credential = credential;
        let mut g = self.lock();
        g.adopt(&mut conn);
        g.observe_credential(credential, now);
        let (ended_failures, _) = g.connect_succeeded(tokio::time::Instant::now());
        slot.armed = false;
        self.deliver(g, conn, true);
        if ended_failures {
            self.recovered.notify_waiters();
        }
        if was_probing {
            tracing::info!(pool = %self.name, "server answers again; no longer failing fast");
        }
    }
}

/// One connection's lifetime: `max_lifetime` shortened by a random share of it, up to `jitter` (a fraction,
/// `PoolConfig::max_lifetime_jitter`), so connections opened together do not expire together.
fn lifetime(max_lifetime: Duration, jitter: f64) -> Duration {
    max_lifetime.mul_f64(1.0 - fastrand::f64() * jitter)
}

/// Hedged attempts a connect task keeps beside its own: beyond this, starting a new one gives up the oldest
/// hedge (which has had `MAX_HEDGES - 1` spacings to answer). The task's own attempt always runs to its
/// timeout, so a server that is merely slow to accept still gets connected.
pub(crate) const MAX_HEDGES: usize = 3;

type AttemptOutcome<M> =
    Result<Result<<M as Manager>::Connection, HookError<<M as Manager>::Error>>, tokio::time::error::Elapsed>;

/// One connect attempt in flight.
struct Attempt<M: Manager> {
    /// When it began: what its outcome is evidence of (see `circuit.rs`).
    started: tokio::time::Instant,
    /// The manager's credential generation when it began: the connection it opens holds that one or a newer.
    credential: u64,
    hedge: bool,
    future: Pin<Box<dyn Future<Output = AttemptOutcome<M>> + Send>>,
}

/// The attempts of one connect task in flight: its own and its hedges. Few (at most `1 + MAX_HEDGES`), so
/// each wake-up polls them all.
struct Attempts<M: Manager> {
    list: Vec<Attempt<M>>,
}

impl<M: Manager> Attempts<M> {
    fn new() -> Self {
        Attempts { list: Vec::with_capacity(1) }
    }

    /// Starts an attempt that began at `started`, bounded by the attempt timeout; a hedge beyond
    /// [`MAX_HEDGES`] replaces the oldest hedge.
    fn start(&mut self, shared: &Arc<Shared<M>>, started: tokio::time::Instant, hedge: bool) {
        if hedge && self.list.iter().filter(|a| a.hedge).count() >= MAX_HEDGES {
            let oldest = self.list.iter().enumerate().filter(|(_, a)| a.hedge).min_by_key(|(_, a)| a.started);
            if let Some((i, _)) = oldest {
                // Dropped mid-way, like an attempt that timed out: nothing to report.
                self.list.swap_remove(i);
            }
        }
        let limit = shared.attempt_timeout();
        let credential = if shared.config.retire_on_rotation {
            Hooks::credential_generation(&shared.manager).unwrap_or(0)
        } else {
            0
        };
        let shared = Arc::clone(shared);
        let future = Box::pin(async move { tokio::time::timeout(limit, Hooks::connect(&shared.manager)).await });
        self.list.push(Attempt { started, credential, hedge, future });
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first attempt to finish: when it began, its credential generation, and how it ended.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(tokio::time::Instant, u64, AttemptOutcome<M>)> {
        for i in 0..self.list.len() {
            if let Poll::Ready(outcome) = self.list[i].future.as_mut().poll(cx) {
                let attempt = self.list.swap_remove(i);
                return Poll::Ready((attempt.started, attempt.credential, outcome));
            }
        }
        Poll::Pending
    }
}

/// What a connect task waits for while attempts are in flight.
enum Event<M: Manager> {
    Closing,
    Finished(tokio::time::Instant, u64, AttemptOutcome<M>),
    HedgeDue,
}

/// Opens one connection for `slot`, retrying with backoff while someone still needs it (or while it is the
/// circuit's probe), and hedging attempts that stall while connects fail.
async fn connect_task<M: Manager>(slot: ConnectSlot<M>) {
    let shared = Arc::clone(&slot.shared);
    let mut delays = shared.backoff();
    let mut probing = false;
    let spacing = shared.retry_while_waited();
    loop {
        let first = tokio::time::Instant::now();
        let begin = shared.lock().begin_attempt(first, probing);
        match begin {
            Begin::Attempt => {}
            Begin::Stop => return, // the slot is given back as it drops
            Begin::WaitResume => {
                if !shared.wait_resumed().await {
                    return;
                }
                continue;
            }
        }
        let mut attempts = Attempts::new();
        attempts.start(&shared, first, false);
        let mut newest = first;
        let mut hedge_at = first + spacing;
        // Until an attempt succeeds (the task ends) or every attempt has failed (then the last failure decides).
        let failure = loop {
            let event = tokio::select! {
                biased;
                _ = shared.closing.cancelled() => Event::<M>::Closing,
                (started, credential, outcome) = std::future::poll_fn(|cx| attempts.poll_next(cx)) => {
                    Event::Finished(started, credential, outcome)
                }
                _ = tokio::time::sleep_until(hedge_at) => Event::HedgeDue,
            };
            let (started, credential, outcome) = match event {
                Event::Closing => return,
                Event::HedgeDue => {
                    let now = tokio::time::Instant::now();
                    let due = shared.lock().hedge(now, spacing);
                    match due {
                        Ok(()) => {
                            attempts.start(&shared, now, true);
                            newest = now;
                            hedge_at = now + spacing;
                        }
                        Err(at) => hedge_at = at.max(now + Duration::from_millis(1)),
                    }
                    continue;
                }
                Event::Finished(started, credential, outcome) => (started, credential, outcome),
            };
            let (error, permanent) = match outcome {
                Ok(Ok(raw)) => {
                    shared.metrics.create_time(started.elapsed());
                    return shared.connected(slot, raw, credential, probing);
                }
                Ok(Err(HookError::Failed(e))) => {
                    shared.metrics.connect_error(Hooks::error_type(&shared.manager, &e));
                    let permanent = Hooks::is_permanent(&shared.manager, &e);
                    (ConnectError::Backend(Arc::new(e)), permanent)
                }
                Ok(Err(HookError::Panicked(message))) => {
                    shared.hook_panicked("connect", &message);
                    shared.metrics.connect_error("panic".into());
                    // A bug in the manager, which says nothing about the server: retried with backoff like any
                    // transient failure, so the circuit opens only if panics go on for `fail_fast_after`.
                    (ConnectError::Panicked(message), false)
                }
                Err(_) => {
                    shared.metrics.connect_error("timeout".into());
                    (ConnectError::TimedOut(shared.attempt_timeout()), false)
                }
            };
            let attempt =
                FailedAttempt { error: error.clone(), permanent, started, failed: tokio::time::Instant::now() };
            let failure = shared.lock().connect_failed(attempt, shared.config.fail_fast_after, probing);
            for w in &failure.wakers {
                w.wake_by_ref();
            }
            if failure.opened {
                probing = true;
                tracing::error!(
                    pool = %shared.name, error = %error, failures = failure.failures,
                    "connects keep failing and no connection is left; failing fast until the server answers again"
                );
            } else if failure.stale {
                tracing::debug!(
                    pool = %shared.name, error = %error,
                    "a connect attempt begun before the latest successful connect failed; not counted"
                );
            } else if !probing {
                tracing::warn!(pool = %shared.name, error = %error, failures = failure.failures, "connect failed");
            }
            if attempts.is_empty() {
                break failure;
            }
        };
        if !failure.retry {
            return; // the slot is given back as it drops
        }
        let delay = delays.next().unwrap_or(shared.config.connect_backoff_max);
        match pause(&shared, delay, newest, failure.demand, failure.successes).await {
            Resume::Closing => return,
            Resume::Backoff => {}
            Resume::Recovered => delays = shared.backoff(),
        }
    }
}

enum Resume {
    /// The backoff delay passed (or callers asked and a waited-for retry is due).
    Backoff,
    /// A connect succeeded meanwhile: this run of failures is over.
    Recovered,
    Closing,
}

/// Sleeps between two attempts: `delay` after `last_attempt`, cut short when a connect succeeds elsewhere
/// (then at once) or when callers ask (then [`RETRY_WHILE_WAITED`](circuit::RETRY_WHILE_WAITED) after the
/// last attempt).
async fn pause<M: Manager>(
    shared: &Arc<Shared<M>>,
    delay: Duration,
    last_attempt: tokio::time::Instant,
    demand: bool,
    successes: u64,
) -> Resume {
    let soon = last_attempt + shared.retry_while_waited();
    let mut wake_at = tokio::time::Instant::now() + delay;
    if demand {
        wake_at = wake_at.min(soon);
    }
    loop {
        let recovered = shared.recovered.notified();
        let asked = shared.demand.notified();
        tokio::pin!(recovered, asked);
        recovered.as_mut().enable();
        asked.as_mut().enable();
        // A success between the failure and the registration above would be missed otherwise.
        if shared.lock().circuit().successes() != successes {
            return Resume::Recovered;
        }
        tokio::select! {
            biased;
            _ = shared.closing.cancelled() => return Resume::Closing,
            _ = &mut recovered => return Resume::Recovered,
            _ = &mut asked => wake_at = wake_at.min(soon),
            _ = tokio::time::sleep_until(wake_at) => return Resume::Backoff,
        }
    }
}
