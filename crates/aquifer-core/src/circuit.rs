//! The fail-fast circuit and the run of connect failures that may open it: when the pool stops making
//! callers wait for a server that is gone, and when it serves again.
//!
//! [`Circuit`] holds the circuit's state and makes its decisions. It is a field of
//! [`Internals`](crate::internals::Internals), read and changed under the pool's mutex, and synchronous like
//! the rest of that state machine: `Internals::connect_failed` and `Internals::connect_succeeded` call it with
//! what only the pool knows (how many live connections it holds, whether the failed task's connection is
//! still needed) and act on its answers (failing the waiters, giving a slot back). The connect tasks that
//! retry and probe await in `connect.rs`.
//!
//! The rules, as docs/architecture.md states them:
//! - **A run of failures** starts with a failed connect and ends with the next successful one, whichever
//!   connect task makes them. The circuit keeps the run's length, when it began and its last error, which a
//!   timed-out `get()` and the health report show; a success forgets them.
//! - **The backoff belongs to one run**: a connect task retries at the delays of [`backoff`] (exponential
//!   with jitter, capped at `connect_backoff_max` jitter included), and any successful connect ends the run,
//!   so every task backing off tries again at once with a fresh backoff (it is woken, and a change of
//!   [`Circuit::successes`] tells it of a success it may have missed). While callers wait or are refused, the
//!   next attempt comes within [`retry_while_waited`] of the last one, whatever the backoff has grown to.
//! - **The circuit opens** only when the pool holds no live connection (nothing idle, nothing checked out,
//!   nothing being validated or reset) and connects have failed without a break for `fail_fast_after` (zero:
//!   never), or at once for a permanent failure (a refused password, an unknown database). A panicking
//!   `connect` is a bug in the manager, not news about the server: it counts as a transient failure. While live connections remain, waiters keep waiting for them to come back.
//! - **While it is open**, every waiter is failed, and every `get()` that would have to wait for a connect is
//!   refused at once, with [`PoolError::Unavailable`](crate::PoolError::Unavailable) carrying when it opened
//!   and the last connect error; no connect is started; health checks report the pool unhealthy.
//! - **The probe**: the connect task whose failure opened the circuit keeps its slot and retries, at the
//!   backoff's pace, sooner when refused gets show demand; other connect tasks stop at their next failure.
//!   A successful connect (the probe's, or one already in flight) closes the circuit, and its connection
//!   goes to the pool, so the first `get()` after that succeeds.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use crate::errors::ConnectError;

/// While callers wait for a connection (or are refused by the open circuit), a failed connect is retried at
/// least this often, however long the backoff has grown: recovery is then noticed within about this long.
/// Never more often than `connect_backoff_min`, never less often than `connect_backoff_max`.
pub(crate) const RETRY_WHILE_WAITED: Duration = Duration::from_millis(200);

/// Retry delays of one run of failures: exponential from `min` with jitter, never above `max`.
pub(crate) fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        // backon adds its jitter on top of the capped delay; the cap is a promise to operators.
        .map(move |d| d.min(max))
}

/// How soon after an attempt a retry comes while callers wait: [`RETRY_WHILE_WAITED`], bounded by the
/// backoff's `min` and `max`.
pub(crate) fn retry_while_waited(min: Duration, max: Duration) -> Duration {
    RETRY_WHILE_WAITED.min(max).max(min)
}

/// The fail-fast circuit and the run of connect failures that may open it.
pub(crate) struct Circuit<E> {
    /// Consecutive failed connects since the last success.
    failures: u32,
    /// When the current run of failures began (Tokio's clock, so tests can pause it).
    failing_since: Option<tokio::time::Instant>,
    last_error: Option<ConnectError<E>>,
    /// Set while the circuit is open.
    open_since: Option<Instant>,
    /// Successful connects so far: a connect task that sees this change while it backs off knows its run of
    /// failures is over.
    successes: u64,
}

impl<E> Circuit<E> {
    /// Closed, with no failure yet.
    pub(crate) fn new() -> Self {
        Circuit { failures: 0, failing_since: None, last_error: None, open_since: None, successes: 0 }
    }

    /// Whether the pool fails fast.
    pub(crate) fn is_open(&self) -> bool {
        self.open_since.is_some()
    }

    /// When the circuit opened and why, while it is open: what [`PoolError::Unavailable`] carries.
    ///
    /// [`PoolError::Unavailable`]: crate::PoolError::Unavailable
    pub(crate) fn open(&self) -> Option<(Instant, ConnectError<E>)> {
        match (self.open_since, &self.last_error) {
            (Some(since), Some(error)) => Some((since, error.clone())),
            _ => None,
        }
    }

    /// Whether a run of failures is going on (connects fail, and none has succeeded since).
    pub(crate) fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// The most recent connect failure of the current run of failures (none after a success).
    pub(crate) fn last_error(&self) -> Option<&ConnectError<E>> {
        self.last_error.as_ref()
    }

    /// Successful connects so far: a change tells a connect task backing off that its run of failures is
    /// over.
    pub(crate) fn successes(&self) -> u64 {
        self.successes
    }

    /// Consecutive failed connects since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a pool holding `live` connections is cut off from its server as far as it knows: the circuit
    /// is open, or no live connection is left while connects fail (before the circuit opens, or with it
    /// disabled). Health reports such a pool unhealthy without a round trip.
    pub(crate) fn cut_off(&self, live: usize) -> bool {
        self.is_open() || (live == 0 && self.is_failing())
    }

    /// Records a failed connect at `now` while the pool holds `live` connections, and opens the circuit when
    /// that is due: no live connection, and connects failing without a break for `fail_fast_after` (zero:
    /// never), or at once when the failure is `permanent`. Returns when and why the circuit opened, if this
    /// failure opened it: every waiter must then be failed with that, and the failed task becomes the probe.
    pub(crate) fn on_connect_failed(
        &mut self,
        error: ConnectError<E>,
        permanent: bool,
        fail_fast_after: Duration,
        now: tokio::time::Instant,
        live: usize,
    ) -> Option<(Instant, ConnectError<E>)> {
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        self.last_error = Some(error.clone());
        let due = permanent || now.saturating_duration_since(since) >= fail_fast_after;
        if self.open_since.is_none() && !fail_fast_after.is_zero() && due && live == 0 {
            let at = Instant::now();
            self.open_since = Some(at);
            return Some((at, error));
        }
        None
    }

    /// Whether a connect task that just failed should try again: the probe always does (until the pool
    /// closes); any other task only while the circuit is closed and its connection is still `needed`.
    pub(crate) fn keeps_trying(&self, probing: bool, needed: bool) -> bool {
        probing || (self.open_since.is_none() && needed)
    }

    /// Records a successful connect: the run of failures ends, its last error is forgotten and the circuit
    /// closes. Returns whether this ended a run of failures (connect tasks backing off should try again now)
    /// and whether the circuit was open.
    pub(crate) fn on_connect_succeeded(&mut self) -> (bool, bool) {
        let ended_failures = self.failures > 0;
        let was_open = self.open_since.is_some();
        self.failures = 0;
        self.failing_since = None;
        self.last_error = None;
        self.open_since = None;
        self.successes += 1;
        (ended_failures, was_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(2);

    fn error() -> ConnectError<std::io::Error> {
        ConnectError::TimedOut(Duration::from_secs(1))
    }

    #[test]
    fn opens_only_without_live_connections_after_fail_fast_after() {
        let mut c = Circuit::new();
        let t0 = tokio::time::Instant::now();
        assert!(c.on_connect_failed(error(), false, AFTER, t0, 0).is_none(), "too early");
        assert!(c.on_connect_failed(error(), false, AFTER, t0 + AFTER, 1).is_none(), "a live connection is left");
        assert!(c.is_failing() && !c.is_open());
        assert!(c.on_connect_failed(error(), false, AFTER, t0 + AFTER, 0).is_some());
        assert!(c.is_open() && c.open().is_some());
        assert_eq!(c.failures(), 3);
        assert!(c.on_connect_failed(error(), false, AFTER, t0 + AFTER * 2, 0).is_none(), "opens once");
    }

    #[test]
    fn a_permanent_failure_opens_at_once_unless_disabled() {
        let now = tokio::time::Instant::now();
        let mut c = Circuit::new();
        assert!(c.on_connect_failed(error(), true, AFTER, now, 1).is_none(), "a live connection is left");
        assert!(c.on_connect_failed(error(), true, AFTER, now, 0).is_some());
        let mut disabled = Circuit::new();
        assert!(disabled.on_connect_failed(error(), true, Duration::ZERO, now, 0).is_none());
        assert!(disabled.on_connect_failed(error(), false, Duration::ZERO, now + AFTER * 100, 0).is_none());
        assert!(disabled.cut_off(0) && !disabled.cut_off(1));
    }

    #[test]
    fn a_success_ends_the_run_and_closes_the_circuit() {
        let mut c = Circuit::new();
        assert_eq!(c.on_connect_succeeded(), (false, false));
        let t0 = tokio::time::Instant::now();
        c.on_connect_failed(error(), true, AFTER, t0, 0);
        assert!(c.keeps_trying(true, false) && !c.keeps_trying(false, true), "only the probe retries");
        assert_eq!(c.on_connect_succeeded(), (true, true));
        assert!(!c.is_open() && !c.is_failing() && c.last_error().is_none() && !c.cut_off(0));
        assert_eq!(c.successes(), 2);
        // A new run starts its own clock: the failures before the success do not count.
        assert!(c.on_connect_failed(error(), false, AFTER, t0 + AFTER * 10, 0).is_none());
        assert!(c.keeps_trying(false, true) && !c.keeps_trying(false, false));
    }

    #[test]
    fn backoff_never_exceeds_its_cap_and_waited_retries_stay_within_it() {
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(300));
        assert!(backoff(min, max).take(50).all(|d| d <= max));
        assert_eq!(retry_while_waited(min, Duration::from_secs(5)), RETRY_WHILE_WAITED);
        assert_eq!(retry_while_waited(min, Duration::from_millis(100)), Duration::from_millis(100));
        assert_eq!(retry_while_waited(Duration::from_millis(500), Duration::from_secs(5)), Duration::from_millis(500));
    }
}
