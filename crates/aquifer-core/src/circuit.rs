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
//!   connect task makes them. The circuit keeps the run's length, when it became known (the end of its first
//!   failed attempt) and its last error, which a timed-out `get()` and the health report show; a success
//!   forgets them.
//! - **The backoff belongs to one run**: a connect task retries at the delays of [`backoff`] (exponential
//!   with jitter, capped at `connect_backoff_max` jitter included), and any successful connect ends the run,
//!   so every task backing off tries again at once with a fresh backoff (it is woken, and a change of
//!   [`Circuit::successes`] tells it of a success it may have missed). While callers wait or are refused, the
//!   next attempt comes within [`retry_while_waited`] of the last one, whatever the backoff has grown to.
//! - **An attempt is evidence about the moment it began.** A success says the server answered then; a
//!   failure says it did not answer an attempt begun then, and a timeout says so `connect_timeout` late. After
//!   a network black hole heals, the attempts begun during it (their packets lost) still time out one by one,
//!   news that is stale by the time it comes. So the circuit judges a failure by when its attempt began:
//!   - a failure of an attempt begun before the latest successful connect completed is **stale**: it is
//!     counted (stats, `aquifer.pool.connect.errors`) but neither starts nor lengthens a run of failures, and
//!     cannot open the circuit;
//!   - a failure counts towards `fail_fast_after` only from when the run became known: it opens the circuit
//!     when its attempt began `fail_fast_after` or more after the run's first failure was seen. Attempts
//!     already under way when that first failure came in say nothing about the time after it. Against a
//!     server that refuses at once this is the old rule (attempts begin and fail at the same instant); against
//!     a black hole the circuit opens one attempt timeout later than a rule by failure times would, and never
//!     on attempts that were stalled across the heal, as long as a fresh one has since succeeded.
//! - **Hedged attempts**: while a run of failures is on and callers wait (or were refused since the last
//!   attempt), an attempt begins at least every [`retry_while_waited`] pool-wide. A connect task whose attempt
//!   has been pending that long starts another beside it ([`Circuit::hedge_due`]) instead of waiting out
//!   `connect_timeout`: the stalled one may only be slow, so it keeps running to its own timeout, while the
//!   fresh one reaches a server that answers again within one connect. So after a heal the first success
//!   comes within about [`RETRY_WHILE_WAITED`] plus one connect, and it makes every older failure stale.
//! - **The circuit opens** only when the pool holds no live connection (nothing idle, nothing checked out,
//!   nothing being validated or reset) and connects have failed without a break for `fail_fast_after` as
//!   above (zero: never), or at once for a permanent failure (a refused password, an unknown database). A
//!   panicking `connect` is a bug in the manager, not news about the server: it counts as a transient failure.
//!   While live connections remain, waiters keep waiting for them to come back.
//! - **While it is open**, every waiter is failed, and every `get()` that would have to wait for a connect is
//!   refused at once, with [`PoolError::Unavailable`](crate::PoolError::Unavailable) carrying when it opened
//!   and the last connect error; no connect is started; health checks report the pool unhealthy.
//! - **The probe**: the connect task whose failure opened the circuit keeps its slot and retries, at the
//!   backoff's pace, sooner when refused gets show demand; other connect tasks stop at their next failure.
//!   A successful connect (the probe's, a hedge, or one already in flight) closes the circuit, and its
//!   connection goes to the pool, so the first `get()` after that succeeds.
//!
//! What this cannot promise: between a heal and the first attempt begun after it (at most
//! [`RETRY_WHILE_WAITED`]) the pool knows nothing new, so a circuit that was due to open (the outage had
//! already lasted `fail_fast_after` plus an attempt timeout) may still open then, until that attempt succeeds.

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
    /// Consecutive failed connects since the last success (stale ones not counted).
    failures: u32,
    /// When the current run of failures became known: the end of its first failed attempt (Tokio's clock, so
    /// tests can pause it).
    failing_since: Option<tokio::time::Instant>,
    last_error: Option<ConnectError<E>>,
    /// Set while the circuit is open.
    open_since: Option<Instant>,
    /// Successful connects so far: a connect task that sees this change while it backs off knows its run of
    /// failures is over.
    successes: u64,
    /// When the latest successful connect completed: a failure of an attempt begun before it is stale.
    last_success: Option<tokio::time::Instant>,
    /// When the latest attempt of any connect task began: hedged attempts are spaced from it.
    last_attempt: Option<tokio::time::Instant>,
    /// A `get()` was refused by the open circuit since the latest attempt began: someone is asking.
    asked: bool,
}

/// A failed connect attempt, as the connect task reports it ([`Circuit::on_connect_failed`]).
pub(crate) struct FailedAttempt<E> {
    pub(crate) error: ConnectError<E>,
    /// The manager called the error permanent (a refused password, an unknown database): the circuit may open
    /// at once rather than after `fail_fast_after`.
    pub(crate) permanent: bool,
    /// When the attempt began: a failure says nothing about the server's state before then.
    pub(crate) started: tokio::time::Instant,
    /// When it failed.
    pub(crate) failed: tokio::time::Instant,
}

/// How the circuit took a failed connect ([`Circuit::on_connect_failed`]).
pub(crate) struct Judged<E> {
    /// The attempt began before the latest success: the failure was not counted against the server.
    pub(crate) stale: bool,
    /// When and why the circuit opened, if this failure opened it.
    pub(crate) opened: Option<(Instant, ConnectError<E>)>,
}

impl<E> Circuit<E> {
    /// Closed, with no failure yet.
    pub(crate) fn new() -> Self {
        Circuit {
            failures: 0,
            failing_since: None,
            last_error: None,
            open_since: None,
            successes: 0,
            last_success: None,
            last_attempt: None,
            asked: false,
        }
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

    /// Records that a connect attempt begins at `now`.
    pub(crate) fn attempt_started(&mut self, now: tokio::time::Instant) {
        self.last_attempt = Some(now);
        self.asked = false;
    }

    /// Records that the open circuit refused a `get()`.
    pub(crate) fn refused(&mut self) {
        self.asked = true;
    }

    /// Whether a connect task whose attempt is pending should start a hedged attempt beside it at `now`: a run
    /// of failures is on, callers wait (`waiting`) or were refused since the latest attempt began, and no
    /// attempt began within `spacing`. Otherwise when to ask again.
    pub(crate) fn hedge_due(
        &self,
        now: tokio::time::Instant,
        spacing: Duration,
        waiting: bool,
    ) -> Result<(), tokio::time::Instant> {
        if !self.is_failing() || !(waiting || self.asked) {
            return Err(now + spacing);
        }
        match self.last_attempt {
            Some(at) if now < at + spacing => Err(at + spacing),
            _ => Ok(()),
        }
    }

    /// Records the failure of `attempt` while the pool holds `live` connections, and opens the circuit when that is due (see the module's rules): not stale, no live
    /// connection, and the attempt began `fail_fast_after` (zero: never) or more after the run of failures
    /// became known, or at once when the failure is `permanent`. When it opens, every waiter must be failed
    /// with what [`Judged::opened`] holds, and the failed task becomes the probe.
    pub(crate) fn on_connect_failed(
        &mut self,
        attempt: FailedAttempt<E>,
        fail_fast_after: Duration,
        live: usize,
    ) -> Judged<E> {
        let FailedAttempt { error, permanent, started, failed: now } = attempt;
        if self.last_success.is_some_and(|at| started < at) {
            return Judged { stale: true, opened: None };
        }
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        self.last_error = Some(error.clone());
        let due = permanent || started.saturating_duration_since(since) >= fail_fast_after;
        if self.open_since.is_none() && !fail_fast_after.is_zero() && due && live == 0 {
            let at = Instant::now();
            self.open_since = Some(at);
            return Judged { stale: false, opened: Some((at, error)) };
        }
        Judged { stale: false, opened: None }
    }

    /// Whether a connect task that just failed should try again: the probe always does (until the pool
    /// closes); any other task only while the circuit is closed and its connection is still `needed`.
    pub(crate) fn keeps_trying(&self, probing: bool, needed: bool) -> bool {
        probing || (self.open_since.is_none() && needed)
    }

    /// Records a successful connect at `now`: the run of failures ends, its last error is forgotten and the
    /// circuit closes; failures of attempts begun before now are stale from here on. Returns whether this
    /// ended a run of failures (connect tasks backing off should try again now) and whether the circuit was
    /// open.
    pub(crate) fn on_connect_succeeded(&mut self, now: tokio::time::Instant) -> (bool, bool) {
        let ended_failures = self.failures > 0;
        let was_open = self.open_since.is_some();
        self.failures = 0;
        self.failing_since = None;
        self.last_error = None;
        self.open_since = None;
        self.successes += 1;
        self.last_success = Some(self.last_success.map_or(now, |at| at.max(now)));
        (ended_failures, was_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(2);

    /// An attempt begun at `started` that failed at `failed`, `permanent` or not.
    fn attempt(
        permanent: bool,
        started: tokio::time::Instant,
        failed: tokio::time::Instant,
    ) -> FailedAttempt<std::io::Error> {
        FailedAttempt { error: ConnectError::TimedOut(Duration::from_secs(1)), permanent, started, failed }
    }

    /// A failure of an attempt that began and ended at `at`.
    fn fail_at(c: &mut Circuit<std::io::Error>, at: tokio::time::Instant, live: usize) -> bool {
        c.on_connect_failed(attempt(false, at, at), AFTER, live).opened.is_some()
    }

    #[test]
    fn opens_only_without_live_connections_after_fail_fast_after() {
        let mut c = Circuit::new();
        let t0 = tokio::time::Instant::now();
        assert!(!fail_at(&mut c, t0, 0), "too early");
        assert!(!fail_at(&mut c, t0 + AFTER, 1), "a live connection is left");
        assert!(c.is_failing() && !c.is_open());
        assert!(fail_at(&mut c, t0 + AFTER, 0));
        assert!(c.is_open() && c.open().is_some());
        assert_eq!(c.failures(), 3);
        assert!(!fail_at(&mut c, t0 + AFTER * 2, 0), "opens once");
    }

    #[test]
    fn a_permanent_failure_opens_at_once_unless_disabled() {
        let now = tokio::time::Instant::now();
        let mut c = Circuit::new();
        assert!(c.on_connect_failed(attempt(true, now, now), AFTER, 1).opened.is_none(), "a live connection is left");
        assert!(c.on_connect_failed(attempt(true, now, now), AFTER, 0).opened.is_some());
        let mut disabled = Circuit::new();
        assert!(disabled.on_connect_failed(attempt(true, now, now), Duration::ZERO, 0).opened.is_none());
        let later = now + AFTER * 100;
        assert!(disabled.on_connect_failed(attempt(false, later, later), Duration::ZERO, 0).opened.is_none());
        assert!(disabled.cut_off(0) && !disabled.cut_off(1));
    }

    #[test]
    fn a_success_ends_the_run_and_closes_the_circuit() {
        let mut c = Circuit::new();
        let t0 = tokio::time::Instant::now();
        assert_eq!(c.on_connect_succeeded(t0), (false, false));
        c.on_connect_failed(attempt(true, t0, t0), AFTER, 0);
        assert!(c.keeps_trying(true, false) && !c.keeps_trying(false, true), "only the probe retries");
        assert_eq!(c.on_connect_succeeded(t0), (true, true));
        assert!(!c.is_open() && !c.is_failing() && c.last_error().is_none() && !c.cut_off(0));
        assert_eq!(c.successes(), 2);
        // A new run starts its own clock: the failures before the success do not count.
        assert!(!fail_at(&mut c, t0 + AFTER * 10, 0));
        assert!(c.keeps_trying(false, true) && !c.keeps_trying(false, false));
    }

    /// Attempts stalled in a black hole time out `connect_timeout` after they began. Those already under way
    /// when the run became known never open the circuit; those begun `fail_fast_after` later do.
    #[test]
    fn a_failure_counts_from_when_its_attempt_began() {
        let mut c = Circuit::new();
        let t0 = tokio::time::Instant::now();
        let timeout = Duration::from_secs(3);
        // Begun at 0, timed out at 3: the run is known from 3.
        assert!(c.on_connect_failed(attempt(false, t0, t0 + timeout), AFTER, 0).opened.is_none());
        // Begun at 2.5 (before the run was known), timed out at 5.5: two and a half seconds into the run, but no
        // news about the time after 2.5.
        let begun = t0 + Duration::from_millis(2500);
        assert!(c.on_connect_failed(attempt(false, begun, begun + timeout), AFTER, 0).opened.is_none());
        // Begun at 5 (2 s after the run became known), timed out at 8: the server did not answer for 2 s.
        let begun = t0 + Duration::from_secs(5);
        assert!(c.on_connect_failed(attempt(false, begun, begun + timeout), AFTER, 0).opened.is_some());
    }

    #[test]
    fn a_failure_of_an_attempt_begun_before_the_latest_success_is_stale() {
        let mut c = Circuit::new();
        let t0 = tokio::time::Instant::now();
        assert!(!fail_at(&mut c, t0, 0));
        c.on_connect_succeeded(t0 + Duration::from_secs(5));
        // Begun at 4, before the success at 5, timed out at 7: stale, whatever its age.
        let judged = c.on_connect_failed(attempt(true, t0 + Duration::from_secs(4), t0 + AFTER * 4), AFTER, 0);
        assert!(judged.stale && judged.opened.is_none());
        assert!(!c.is_failing() && c.last_error().is_none(), "a stale failure starts no run");
        // Begun after the success: counted.
        let judged = c.on_connect_failed(attempt(true, t0 + Duration::from_secs(6), t0 + AFTER * 4), AFTER, 0);
        assert!(!judged.stale && judged.opened.is_some());
    }

    #[test]
    fn hedges_are_due_only_while_failing_with_demand_and_spaced_pool_wide() {
        let spacing = Duration::from_millis(200);
        let mut c: Circuit<std::io::Error> = Circuit::new();
        let t0 = tokio::time::Instant::now();
        c.attempt_started(t0);
        assert!(c.hedge_due(t0 + spacing, spacing, true).is_err(), "no failure yet: a slow connect is no outage");
        fail_at(&mut c, t0, 1);
        assert!(c.hedge_due(t0 + spacing, spacing, false).is_err(), "nobody asks");
        assert_eq!(c.hedge_due(t0 + spacing / 2, spacing, true), Err(t0 + spacing), "too soon after the last attempt");
        assert_eq!(c.hedge_due(t0 + spacing, spacing, true), Ok(()));
        c.attempt_started(t0 + spacing);
        assert!(c.hedge_due(t0 + spacing * 2, spacing, false).is_err());
        c.refused();
        assert_eq!(c.hedge_due(t0 + spacing * 2, spacing, false), Ok(()), "a refused get is demand");
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
