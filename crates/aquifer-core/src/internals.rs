//! The pool's locked state machine. Everything here is synchronous and runs under the pool's mutex; it
//! decides and hands out tokens (a connection, a waiter key, a number of connects to start), while the code
//! that awaits lives in `inner.rs`. Keeping the two apart keeps every lock out of await points.

use std::panic::Location;
use std::time::{Duration, Instant};

use quanta::Instant as Stamp;

use slab::Slab;

use crate::errors::ConnectError;
use crate::stats::{State, Stats};
use crate::waiters::Waiters;

/// A live connection with the bookkeeping the engine needs.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) id: u64,
    pub(crate) created: Stamp,
    /// `created + max_lifetime - jitter`.
    pub(crate) expires: Option<Stamp>,
    /// When it was last returned (or created).
    pub(crate) last_used: Stamp,
    /// Until when it may be handed out without validation: `last_used + validation_bypass`, capped by
    /// `expires`. One comparison on the hot path instead of two subtractions.
    pub(crate) fresh_until: Stamp,
}

impl<C> Conn<C> {
    pub(crate) fn new(raw: C, id: u64, now: Stamp, expires: Option<Stamp>, bypass: Duration) -> Self {
        let mut conn = Conn { raw, id, created: now, expires, last_used: now, fresh_until: now };
        conn.touch(now, bypass);
        conn
    }

    pub(crate) fn expired(&self, now: Stamp) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// Marks it used at `now`.
    pub(crate) fn touch(&mut self, now: Stamp, bypass: Duration) {
        self.last_used = now;
        let until = now.checked_add(bypass).unwrap_or(now);
        self.fresh_until = match self.expires {
            Some(at) if at < until => at,
            _ => until,
        };
    }

    /// Not expired and used within the validation bypass window.
    #[inline]
    pub(crate) fn fresh(&self, now: Stamp) -> bool {
        now < self.fresh_until
    }
}

/// What a waiting caller is handed.
pub(crate) enum Outcome<C, E> {
    Conn(Box<Conn<C>>),
    /// The deadline watcher found the waiter's deadline passed.
    TimedOut,
    Closed,
    Unavailable {
        since: Instant,
        error: ConnectError<E>,
    },
}

/// Why a connection was closed; the `reason` attribute of `aquifer.pool.connections.closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    IdleTimeout,
    MaxLifetime,
    Broken,
    ValidationFailed,
    Discarded,
    PoolClosed,
}

impl CloseReason {
    pub(crate) const ALL: [CloseReason; 6] = [
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Broken,
        CloseReason::ValidationFailed,
        CloseReason::Discarded,
        CloseReason::PoolClosed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Broken => "broken",
            CloseReason::ValidationFailed => "validation_failed",
            CloseReason::Discarded => "discarded",
            CloseReason::PoolClosed => "pool_closed",
        }
    }
}

/// The fail-fast circuit: closed while connects succeed, open while the server is unreachable.
pub(crate) struct Circuit<E> {
    pub(crate) consecutive_failures: u32,
    pub(crate) last_error: Option<ConnectError<E>>,
    pub(crate) open_since: Option<Instant>,
}

/// A checked-out connection, recorded only when leak detection is on.
pub(crate) struct CheckoutRecord {
    pub(crate) at: Stamp,
    pub(crate) caller: &'static Location<'static>,
    pub(crate) conn_id: u64,
    pub(crate) reported: bool,
}

/// A leak found by [`Internals::find_leaks`].
pub(crate) struct Leak {
    pub(crate) caller: &'static Location<'static>,
    pub(crate) conn_id: u64,
    pub(crate) held_for: Duration,
}

/// What `checkout` decided.
pub(crate) enum Step<C, E> {
    /// An idle connection used within the validation bypass window, checked out under this leak-record key
    /// at this instant.
    Ready(Box<Conn<C>>, usize, Stamp),
    /// An idle connection that must be checked (validated, or found expired) before use.
    Check(Box<Conn<C>>),
    /// The caller was queued under this key; `connects` new connects must be started for it; with
    /// `wake_watcher` the deadline watcher must be told about its deadline.
    Wait {
        key: usize,
        connects: usize,
        wake_watcher: bool,
    },
    /// Nothing idle and the caller would not wait (`try_get`).
    Busy,
    Closed,
    FailFast {
        since: Instant,
        error: ConnectError<E>,
    },
}

/// How a caller of `checkout` is willing to wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (`try_get`).
    Never,
    /// For this long, enforced by the pool's deadline watcher: only for the pool's `acquire_timeout` and a
    /// first wait, so that deadlines (`now + acquire_timeout`, taken under the lock) never decrease along the
    /// queue.
    Watched(Duration),
    /// With a timer of the caller's own (a custom timeout, or a second wait of the same `get()`).
    OwnTimer,
}

/// What the pool holds; guarded by the pool's mutex.
pub(crate) struct Internals<C, E> {
    /// Idle connections, most recently used last (LIFO reuse keeps hot connections warm, lets cold ones age out).
    pub(crate) idle: Vec<Box<Conn<C>>>,
    pub(crate) waiters: Waiters<Outcome<C, E>>,
    /// Live connections (idle, in use, being validated or reset) plus connects in flight.
    pub(crate) size: usize,
    pub(crate) connecting: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) closed: bool,
    pub(crate) circuit: Circuit<E>,
    pub(crate) checkouts: Slab<CheckoutRecord>,
    pub(crate) stats: Stats,
    pub(crate) server_version: Option<String>,
    /// Whether the deadline watcher is sleeping until a deadline (rather than waiting for one to appear).
    pub(crate) watcher_armed: bool,
}

/// Marks "no leak record" in a [`Pooled`](crate::Pooled).
pub(crate) const NO_CHECKOUT: usize = usize::MAX;

impl<C, E> Internals<C, E> {
    pub(crate) fn new(max_size: usize, min_idle: usize) -> Self {
        Internals {
            idle: Vec::with_capacity(max_size),
            waiters: Waiters::new(),
            size: 0,
            connecting: 0,
            max_size,
            min_idle,
            closed: false,
            circuit: Circuit { consecutive_failures: 0, last_error: None, open_since: None },
            checkouts: Slab::new(),
            stats: Stats::default(),
            server_version: None,
            watcher_armed: false,
        }
    }

    pub(crate) fn state(&self) -> State {
        State {
            size: self.size,
            idle: self.idle.len(),
            in_use: self.size - self.connecting - self.idle.len(),
            connecting: self.connecting,
            waiting: self.waiters.len(),
            max_size: self.max_size,
            min_idle: self.min_idle,
        }
    }

    /// How many connects to start now, reserving a slot for each: one per waiter not already covered by a
    /// connect in flight, plus what `min_idle` lacks. Never more than `max_size` allows, and none while closed
    /// or failing fast, so bursts never create connections nobody waits for.
    pub(crate) fn reserve_connects(&mut self) -> usize {
        if self.closed || self.circuit.open_since.is_some() {
            return 0;
        }
        let want = self.waiters.len() + self.min_idle.saturating_sub(self.idle.len());
        let mut n = 0;
        while self.connecting < want && self.size < self.max_size {
            self.size += 1;
            self.connecting += 1;
            n += 1;
        }
        n
    }

    /// Takes an idle connection when nobody is queued ahead (no barging), otherwise queues the caller (or,
    /// when it would not wait, says the pool is busy). While failing fast, a caller that would have to wait for
    /// a connect is refused at once.
    pub(crate) fn checkout(
        &mut self,
        now: Stamp,
        leak_caller: Option<&'static Location<'static>>,
        wait: Wait,
        waker: &std::task::Waker,
    ) -> Step<C, E> {
        if self.closed {
            return Step::Closed;
        }
        if self.waiters.is_empty()
            && let Some(conn) = self.idle.pop()
        {
            if !conn.fresh(now) {
                return Step::Check(conn);
            }
            let checkout = self.checked_out(&conn, now, leak_caller);
            return Step::Ready(conn, checkout, now);
        }
        if matches!(wait, Wait::Never) {
            return Step::Busy;
        }
        if let (Some(since), Some(error)) = (self.circuit.open_since, &self.circuit.last_error) {
            self.stats.fail_fast += 1;
            return Step::FailFast { since, error: error.clone() };
        }
        // Read under the lock, so deadlines along the queue never decrease (the watcher relies on it).
        let deadline = match wait {
            Wait::Watched(timeout) => Instant::now().checked_add(timeout),
            _ => None,
        };
        let wake_watcher = deadline.is_some() && !std::mem::replace(&mut self.watcher_armed, true);
        let key = self.waiters.push_back(deadline, Some(waker));
        self.stats.waited += 1;
        Step::Wait { key, connects: self.reserve_connects(), wake_watcher }
    }

    /// Counts a successful checkout and, with leak detection on, records who holds the connection.
    pub(crate) fn checked_out(
        &mut self,
        conn: &Conn<C>,
        now: Stamp,
        leak_caller: Option<&'static Location<'static>>,
    ) -> usize {
        self.stats.acquired += 1;
        match leak_caller {
            Some(caller) => {
                self.checkouts.insert(CheckoutRecord { at: now, caller, conn_id: conn.id, reported: false })
            }
            None => NO_CHECKOUT,
        }
    }

    /// Gives a connection to the longest waiter, or to the idle stack; returns the waiter's waker.
    /// Returns the connection itself when the pool no longer wants it (closed, or shrunk below its size).
    pub(crate) fn deliver(&mut self, conn: Box<Conn<C>>) -> Result<Option<std::task::Waker>, Box<Conn<C>>> {
        if self.closed || self.size > self.max_size {
            return Err(conn);
        }
        if self.waiters.is_empty() {
            self.idle.push(conn);
            return Ok(None);
        }
        match self.waiters.fulfill_front(Outcome::Conn(conn)) {
            Ok(waker) => Ok(waker),
            Err(Outcome::Conn(conn)) => {
                self.idle.push(conn);
                Ok(None)
            }
            Err(_) => unreachable!("fulfill_front gives back what it was given"),
        }
    }

    /// Frees the slot of a connection that is gone and returns how many connects to start in its place.
    pub(crate) fn release_slot(&mut self, reason: Option<CloseReason>) -> usize {
        self.size -= 1;
        if let Some(reason) = reason {
            self.count_closed(reason);
        }
        self.reserve_connects()
    }

    pub(crate) fn count_closed(&mut self, reason: CloseReason) {
        let s = &mut self.stats;
        s.closed += 1;
        match reason {
            CloseReason::IdleTimeout => s.closed_idle_timeout += 1,
            CloseReason::MaxLifetime => s.closed_max_lifetime += 1,
            CloseReason::Broken => s.closed_broken += 1,
            CloseReason::ValidationFailed => s.closed_validation_failed += 1,
            CloseReason::Discarded => s.closed_discarded += 1,
            CloseReason::PoolClosed => s.closed_pool_closed += 1,
        }
    }

    pub(crate) fn end_checkout(&mut self, key: usize) -> Option<CheckoutRecord> {
        if key == NO_CHECKOUT { None } else { self.checkouts.try_remove(key) }
    }

    /// Removes idle connections that outlived `max_lifetime`, and those idle longer than `idle_timeout` beyond
    /// `min_idle` (oldest first: they sit at the bottom of the LIFO stack).
    pub(crate) fn reap(&mut self, now: Stamp, idle_timeout: Option<Duration>) -> Vec<(Box<Conn<C>>, CloseReason)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.idle.len() {
            if self.idle[i].expired(now) {
                out.push((self.idle.remove(i), CloseReason::MaxLifetime));
            } else {
                i += 1;
            }
        }
        if let Some(timeout) = idle_timeout {
            while self.idle.len() > self.min_idle && now.duration_since(self.idle[0].last_used) >= timeout {
                out.push((self.idle.remove(0), CloseReason::IdleTimeout));
            }
        }
        for (_, reason) in &out {
            self.size -= 1;
            self.count_closed(*reason);
        }
        out
    }

    /// Checkouts held longer than `threshold` and not yet reported; each is reported once.
    pub(crate) fn find_leaks(&mut self, now: Stamp, threshold: Duration) -> Vec<Leak> {
        let mut leaks = Vec::new();
        for (_, c) in self.checkouts.iter_mut() {
            let held_for = now.duration_since(c.at);
            if !c.reported && held_for >= threshold {
                c.reported = true;
                leaks.push(Leak { caller: c.caller, conn_id: c.conn_id, held_for });
            }
        }
        self.stats.leaks += leaks.len() as u64;
        leaks
    }

    /// Records a failed connect. Opens the circuit after `threshold` consecutive failures and returns the
    /// wakers of every waiter, which are failed with [`Outcome::Unavailable`].
    pub(crate) fn connect_failed(
        &mut self,
        error: ConnectError<E>,
        threshold: u32,
        now: Instant,
    ) -> (bool, Vec<std::task::Waker>) {
        self.stats.connect_errors += 1;
        self.circuit.consecutive_failures = self.circuit.consecutive_failures.saturating_add(1);
        self.circuit.last_error = Some(error.clone());
        if self.circuit.open_since.is_none() && self.circuit.consecutive_failures >= threshold {
            self.circuit.open_since = Some(now);
            let wakers = self.waiters.fulfill_all(|| Outcome::Unavailable { since: now, error: error.clone() });
            return (true, wakers);
        }
        (false, Vec::new())
    }

    /// Records a successful connect: closes the circuit and forgets the last error.
    pub(crate) fn connect_succeeded(&mut self) {
        self.connecting -= 1;
        self.stats.created += 1;
        self.circuit = Circuit { consecutive_failures: 0, last_error: None, open_since: None };
    }

    /// Whether a connect that just failed should try again: while waiters or `min_idle` still need it.
    pub(crate) fn connect_still_needed(&self) -> bool {
        !self.closed && self.waiters.len() + self.min_idle.saturating_sub(self.idle.len()) >= self.connecting
    }
}

/// Model checks of the hand-off protocol with loom: every interleaving of the critical sections of a waiter
/// being queued, a connection being returned, and the waiter giving up, on several threads. Run with
/// `RUSTFLAGS="--cfg aquifer_loom" cargo test -p aquifer-core --lib loom --release`.
///
/// The engine keeps all shared state under one mutex, so what can go wrong is the order of critical
/// sections and the wake-ups between them: a connection handed to a waiter that gives up must not be lost, a
/// waiter handed a connection must be woken, and accounting must balance.
#[cfg(all(test, aquifer_loom))]
mod loom_tests {
    use std::task::{Wake, Waker};

    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::{Arc, Mutex};
    use quanta::Instant as Stamp;

    use super::*;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn conn(id: u64) -> Box<Conn<u64>> {
        Box::new(Conn::new(id, id, Stamp::now(), None, Duration::from_secs(60)))
    }

    /// A pool of one busy connection, a queued waiter, and a concurrent return and cancellation.
    #[test]
    fn returned_connection_is_never_lost_when_the_waiter_gives_up() {
        loom::model(|| {
            let pool: Arc<Mutex<Internals<u64, std::io::Error>>> = Arc::new(Mutex::new(Internals::new(1, 0)));
            pool.lock().unwrap().size = 1; // the one connection is checked out
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let key = match pool.lock().unwrap().checkout(Stamp::now(), None, Wait::OwnTimer, &waker) {
                Step::Wait { key, connects: 0, .. } => key,
                _ => panic!("the waiter must queue: the pool is full"),
            };

            let returner = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let woken =
                        pool.lock().unwrap().deliver(conn(1)).unwrap_or_else(|_| panic!("the pool wants it back"));
                    if let Some(w) = woken {
                        w.wake();
                    }
                })
            };
            let canceller = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let handed = pool.lock().unwrap().waiters.cancel(key);
                    if let Some(Outcome::Conn(c)) = handed {
                        // What a dropped `get()` does with a connection handed to it: pass it on.
                        let _ = pool.lock().unwrap().deliver(c);
                    }
                })
            };
            returner.join().unwrap();
            canceller.join().unwrap();

            let g = pool.lock().unwrap();
            assert_eq!(g.idle.len(), 1, "the returned connection was lost");
            assert!(g.waiters.is_empty());
            assert_eq!(g.size, 1);
        });
    }

    /// Two waiters and two returns racing: both waiters get a connection, each is woken, none is lost.
    #[test]
    fn every_queued_waiter_is_handed_a_connection_and_woken() {
        loom::model(|| {
            let pool: Arc<Mutex<Internals<u64, std::io::Error>>> = Arc::new(Mutex::new(Internals::new(2, 0)));
            pool.lock().unwrap().size = 2;
            let flags: Vec<_> = (0..2).map(|_| std::sync::Arc::new(Flag(AtomicBool::new(false)))).collect();
            let keys: Vec<usize> = flags
                .iter()
                .map(|f| {
                    let waker = Waker::from(f.clone());
                    match pool.lock().unwrap().checkout(Stamp::now(), None, Wait::OwnTimer, &waker) {
                        Step::Wait { key, .. } => key,
                        _ => panic!("must queue"),
                    }
                })
                .collect();

            let returners: Vec<_> = (0..2u64)
                .map(|id| {
                    let pool = pool.clone();
                    loom::thread::spawn(move || {
                        let woken = pool.lock().unwrap().deliver(conn(id)).unwrap_or_else(|_| panic!("wanted"));
                        if let Some(w) = woken {
                            w.wake();
                        }
                    })
                })
                .collect();
            for r in returners {
                r.join().unwrap();
            }

            let mut g = pool.lock().unwrap();
            let noop = Waker::noop();
            let mut got = Vec::new();
            for (key, flag) in keys.into_iter().zip(&flags) {
                assert!(flag.0.load(Ordering::SeqCst), "a waiter handed a connection was not woken");
                match g.waiters.poll(key, noop) {
                    Some(Outcome::Conn(c)) => got.push(c.id),
                    _ => panic!("a waiter was not handed a connection"),
                }
            }
            got.sort_unstable();
            assert_eq!(got, [0, 1]);
            assert!(g.idle.is_empty());
        });
    }
}
