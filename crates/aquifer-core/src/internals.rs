//! The pool's locked state machine. Everything here is synchronous and runs under the pool's mutex; it
//! decides and hands out tokens (a connection, a waiter key, a number of connect slots to fill), while the
//! code that awaits lives in `acquire.rs`, `checkin.rs`, `connect.rs`, `housekeeping.rs` and `close.rs`.
//! Keeping the two apart keeps every lock out of await points. The fail-fast circuit and the run of connect
//! failures are a part of this state with a file of their own, `circuit.rs`.
//!
//! Every change of the size, connecting and in-use counts happens in a method of [`Internals`]; its fields are
//! private. The callers hold the results as guards that undo themselves unless completed: a
//! [`ConnectSlot`](crate::connect::ConnectSlot) for a reserved connect, a [`Pooled`](crate::Pooled) or
//! [`Held`](crate::held::Held) for a live connection out of the idle queue.

use std::collections::VecDeque;
use std::panic::Location;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::circuit::{Circuit, FailedAttempt};
use crate::clock::Stamp;
use crate::config::Reuse;
use crate::errors::ConnectError;
use crate::session::SessionRef;
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
    /// When it was last known alive: returned, created, validated, or answered a keepalive ping. Unlike
    /// `last_used`, a keepalive ping moves it, so pings never keep a connection from its `idle_timeout`.
    pub(crate) alive_at: Stamp,
    /// The pool's retirement generation when it was delivered first ([`Internals::retire`]): a connection of an
    /// older generation is closed when it comes back.
    pub(crate) generation: u64,
    /// The manager's credential generation read before the connect that opened it
    /// ([`Manager::credential_generation`](crate::Manager::credential_generation)): with `retire_on_rotation`,
    /// a connection of an older one than the pool has seen since is retired ([`Rotation`]).
    pub(crate) credential: u64,
    /// Until when it may be handed out without validation: `last_used + validation_bypass`, capped by
    /// `expires`. One comparison on the hot path instead of two subtractions.
    pub(crate) fresh_until: Stamp,
    /// The context applied to the current checkout ([`Pool::get_with`](crate::Pool::get_with)), taken on
    /// return. Kept in the boxed connection rather than in the `Pooled` guard, which every checkout and return
    /// moves: the guard stays four words.
    pub(crate) session: Option<SessionRef<C>>,
    /// Set while the checkout hooks or the context are being applied: a `Pooled` dropped then closes the
    /// connection rather than returning it (it may be half-prepared). Here for the same reason as `session`.
    pub(crate) discard_on_drop: bool,
}

impl<C> Conn<C> {
    pub(crate) fn new(raw: C, id: u64, now: Stamp, expires: Option<Stamp>, bypass: Duration) -> Self {
        let mut conn = Conn {
            raw,
            id,
            created: now,
            expires,
            last_used: now,
            alive_at: now,
            generation: 0,
            credential: 0,
            fresh_until: now,
            session: None,
            discard_on_drop: false,
        };
        conn.touch(now, bypass);
        conn
    }

    pub(crate) fn expired(&self, now: Stamp) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// Marks it used at `now`.
    pub(crate) fn touch(&mut self, now: Stamp, bypass: Duration) {
        self.last_used = now;
        self.alive(now, bypass);
    }

    /// Marks it known alive at `now` (validated) without counting as a use: `idle_timeout` still runs from
    /// `last_used`.
    pub(crate) fn alive(&mut self, now: Stamp, bypass: Duration) {
        self.alive_at = now;
        let until = now.saturating_add(bypass);
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
    /// Retired by `Pool::retire`: idle at the time, or lent then and returned since.
    Retired,
    /// Found dead by a keepalive ping (`keepalive_interval`).
    KeepaliveFailed,
    /// Opened with a credential rotated out since (`retire_on_rotation`): also `reason="retired"` in
    /// `aquifer.pool.connections.closed`, told apart in `aquifer.pool.connections.retired`.
    CredentialRotation,
    /// A checkout or return hook, or a session context's apply or clear, failed, panicked or timed out.
    HookFailed,
}

impl CloseReason {
    pub(crate) const ALL: [CloseReason; 10] = [
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Broken,
        CloseReason::ValidationFailed,
        CloseReason::Discarded,
        CloseReason::PoolClosed,
        CloseReason::Retired,
        CloseReason::KeepaliveFailed,
        CloseReason::CredentialRotation,
        CloseReason::HookFailed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxLifetime => "max_lifetime",
            CloseReason::Broken => "broken",
            CloseReason::ValidationFailed => "validation_failed",
            CloseReason::Discarded => "discarded",
            CloseReason::PoolClosed => "pool_closed",
            CloseReason::Retired | CloseReason::CredentialRotation => "retired",
            CloseReason::KeepaliveFailed => "keepalive_failed",
            CloseReason::HookFailed => "hook_failed",
        }
    }

    /// The `reason` of `aquifer.pool.connections.retired`, for the two ways a connection is retired.
    pub(crate) fn retired_reason(self) -> Option<&'static str> {
        match self {
            CloseReason::Retired => Some("operator"),
            CloseReason::CredentialRotation => Some("credential_rotation"),
            _ => None,
        }
    }
}

/// The rotations of the manager's credentials the pool has seen, for `retire_on_rotation`.
///
/// A connection opened with generation `g` became stale when the first generation above `g` was seen; it is
/// due for retirement a share of the window after that: `stale_since + window * turn(id)`, where `turn` is
/// the fractional part of `id` times the golden ratio, so the connections of a pool (consecutive ids) take
/// turns spread evenly over the window, and no two rotations close them together.
pub(crate) struct Rotation {
    window: Duration,
    /// The newest generation seen.
    current: u64,
    /// Generations seen within the last window, oldest first, with when each was seen.
    seen: VecDeque<(u64, Stamp)>,
    /// Connections of a generation below this became stale more than a window ago: due at once.
    overdue_below: u64,
}

impl Rotation {
    pub(crate) fn new(window: Duration) -> Self {
        Rotation { window, current: 0, seen: VecDeque::new(), overdue_below: 0 }
    }

    /// Records the generation the manager reports at `now`; true when it is a new one.
    fn observe(&mut self, generation: u64, now: Stamp) -> bool {
        if generation <= self.current {
            return false;
        }
        self.current = generation;
        self.seen.push_back((generation, now));
        true
    }

    /// Forgets rotations seen more than a window before `now`: what they made stale is due by now.
    fn prune(&mut self, now: Stamp) {
        while let Some(&(generation, at)) = self.seen.front()
            && at.saturating_add(self.window) <= now
        {
            self.overdue_below = generation;
            self.seen.pop_front();
        }
    }

    /// When a connection of `credential` opened as connection `id` is to be retired; `None` while its
    /// credential is the newest.
    pub(crate) fn due_at(&self, credential: u64, id: u64) -> Option<Stamp> {
        if credential >= self.current {
            return None;
        }
        if credential < self.overdue_below {
            return Some(Stamp::ZERO);
        }
        let stale_since = self.seen.iter().find(|(g, _)| *g > credential).map_or(Stamp::ZERO, |(_, at)| *at);
        Some(stale_since.saturating_add(self.window.mul_f64(turn(id))))
    }

    #[inline]
    fn due(&self, conn_credential: u64, id: u64, now: Stamp) -> bool {
        conn_credential < self.current && self.due_at(conn_credential, id).is_some_and(|at| at <= now)
    }
}

/// A connection's turn within the rotation window, in `[0, 1)`: the fractional part of `id` times the
/// golden ratio, the low-discrepancy sequence that spreads any run of consecutive ids evenly.
fn turn(id: u64) -> f64 {
    const PHI: f64 = 0.618_033_988_749_894_9;
    ((id % (1 << 40)) as f64 * PHI).fract()
}

/// A checked-out connection, recorded only when leak detection is on.
pub(crate) struct CheckoutRecord {
    pub(crate) at: Stamp,
    pub(crate) caller: &'static Location<'static>,
    pub(crate) conn_id: u64,
    pub(crate) reported: bool,
}

/// Whether a connect task may begin an attempt ([`Internals::begin_attempt`]).
pub(crate) enum Begin {
    Attempt,
    /// The pool is paused and the task is the circuit's probe: wait for `resume`.
    WaitResume,
    /// Closed, or paused (a task that is not the probe gives its slot back).
    Stop,
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
    /// The caller was queued under this key; `connects` connect slots were reserved for it; with
    /// `wake_watcher` the deadline watcher must be told about its deadline; with `demand` the connect tasks
    /// backing off after failures must be told someone is waiting.
    Wait {
        key: usize,
        connects: usize,
        wake_watcher: bool,
        demand: bool,
    },
    /// Nothing idle and the caller would not wait (`try_get`).
    Busy,
    Closed,
    /// The circuit is open: refused at once (the probe must be told someone asked).
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

/// What became of a waiter that gave up ([`Internals::cancel_wait`]).
pub(crate) enum Abandoned<C> {
    /// Nothing was handed to it, or what was handed to it went on to the next waiter (wake it) or to idle.
    Passed(Option<Waker>),
    /// It had been handed a connection the pool no longer wants (closed or shrunk): close it for this
    /// reason. Its slot is already freed; `connects` slots were reserved in its place.
    Unwanted(Box<Conn<C>>, CloseReason, usize),
}

/// What a failed connect means ([`Internals::connect_failed`]).
pub(crate) struct Failure {
    /// Its attempt began before the latest successful connect: not counted against the server.
    pub(crate) stale: bool,
    /// This failure opened the circuit (waiters were failed: wake them).
    pub(crate) opened: bool,
    pub(crate) wakers: Vec<Waker>,
    /// The task should try again (someone still needs the connection, or it is the circuit's probe);
    /// otherwise its slot must be released.
    pub(crate) retry: bool,
    /// Consecutive failures, this one included.
    pub(crate) failures: u32,
    /// Whether callers are waiting now (retries then come sooner than the backoff).
    pub(crate) demand: bool,
    /// [`Circuit::successes`] at this failure.
    pub(crate) successes: u64,
}

/// What closing the pool leaves to do outside the lock ([`Internals::close`]).
pub(crate) struct Closing<C> {
    /// Idle connections, already out of the accounting: drop them.
    pub(crate) idle: VecDeque<Box<Conn<C>>>,
    /// Every waiter, failed with `Closed`: wake them.
    pub(crate) wakers: Vec<Waker>,
}

/// What the pool holds; guarded by the pool's mutex.
pub(crate) struct Internals<C, E> {
    /// Idle connections, least recently returned first: LIFO reuse takes from the back, FIFO from the front,
    /// and reaping always starts at the front (the longest idle).
    idle: VecDeque<Box<Conn<C>>>,
    reuse: Reuse,
    waiters: Waiters<Outcome<C, E>>,
    /// Live connections (idle, in use, being validated or reset) plus connects in flight.
    size: usize,
    connecting: usize,
    max_size: usize,
    min_idle: usize,
    closed: bool,
    /// Set by `Pool::pause`: nothing is lent (checkouts queue, returned connections go idle) and nothing is
    /// opened (no connect is reserved, connect tasks stop at their next attempt, the probe waits).
    paused: bool,
    /// Bumped by `Pool::retire`; connections of an older generation are closed as they come back.
    generation: u64,
    /// With `retire_on_rotation`: the credential rotations seen, which retire connections of older secrets.
    rotation: Option<Rotation>,
    /// Idle connections out of the idle queue for a keepalive ping: still idle to `state()` and `min_idle`.
    pinging: usize,
    circuit: Circuit<E>,
    checkouts: Slab<CheckoutRecord>,
    stats: Stats,
    server_version: Option<String>,
    /// Whether the deadline watcher is sleeping until a deadline (rather than waiting for one to appear).
    watcher_armed: bool,
    /// Checkouts served at once from the idle queue whose zero wait is not yet in the `wait_time` histogram:
    /// counted here, under the lock the checkout holds anyway, and recorded when metrics are collected (see
    /// `metrics.rs`), which takes one SDK record off the fast path.
    unrecorded_zero_waits: u64,
}

/// Marks "no leak record" in a [`Pooled`](crate::Pooled).
pub(crate) const NO_CHECKOUT: usize = usize::MAX;

impl<C, E> Internals<C, E> {
    /// Allocates nothing in proportion to `max_size`: the idle queue grows with the connections.
    pub(crate) fn new(max_size: usize, min_idle: usize, reuse: Reuse) -> Self {
        Internals {
            idle: VecDeque::new(),
            reuse,
            waiters: Waiters::new(),
            size: 0,
            connecting: 0,
            max_size,
            min_idle,
            closed: false,
            paused: false,
            generation: 0,
            rotation: None,
            pinging: 0,
            circuit: Circuit::new(),
            checkouts: Slab::new(),
            stats: Stats::default(),
            server_version: None,
            watcher_armed: false,
            unrecorded_zero_waits: 0,
        }
    }

    /// Turns `retire_on_rotation` on, spreading retirements over `window`.
    pub(crate) fn retire_on_rotation(&mut self, window: Duration) {
        self.rotation = Some(Rotation::new(window));
    }

    /// Records the manager's credential generation, read at `now`; true when a rotation was seen (with
    /// `retire_on_rotation` on).
    pub(crate) fn observe_credential(&mut self, generation: u64, now: Stamp) -> bool {
        self.rotation.as_mut().is_some_and(|r| r.observe(generation, now))
    }

    /// Whether a connection back from its user at `now` is to be closed for an old credential.
    #[inline]
    pub(crate) fn rotated_out(&self, conn: &Conn<C>, now: Stamp) -> bool {
        self.rotation.as_ref().is_some_and(|r| r.due(conn.credential, conn.id, now))
    }

    /// Closes the idle connections of a rotated-out credential whose turn has come by `now` and returns them
    /// (already out of the accounting; the caller reserves connects for what waiters and `min_idle` need).
    pub(crate) fn retire_rotated(&mut self, now: Stamp) -> Vec<Box<Conn<C>>> {
        let Some(rotation) = self.rotation.as_mut() else { return Vec::new() };
        rotation.prune(now);
        let mut out = Vec::new();
        if self.closed || rotation.current == 0 {
            return out;
        }
        let mut i = 0;
        while i < self.idle.len() {
            if rotation.due(self.idle[i].credential, self.idle[i].id, now) {
                out.extend(self.idle.remove(i));
            } else {
                i += 1;
            }
        }
        for _ in &out {
            self.size -= 1;
            self.count_closed(CloseReason::CredentialRotation);
        }
        out
    }

    pub(crate) fn state(&self) -> State {
        State {
            size: self.size,
            idle: self.idle.len() + self.pinging,
            in_use: self.size - self.connecting - self.idle.len() - self.pinging,
            connecting: self.connecting,
            waiting: self.waiters.len(),
            max_size: self.max_size,
            min_idle: self.min_idle,
            paused: self.paused,
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn min_idle(&self) -> usize {
        self.min_idle
    }

    /// Open connections: idle, checked out, or being validated or reset (connects in flight excluded).
    pub(crate) fn live(&self) -> usize {
        self.size - self.connecting
    }

    /// The fail-fast circuit and the current run of connect failures (changed only by
    /// [`connect_failed`](Self::connect_failed) and [`connect_succeeded`](Self::connect_succeeded)).
    pub(crate) fn circuit(&self) -> &Circuit<E> {
        &self.circuit
    }

    pub(crate) fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    pub(crate) fn set_server_version(&mut self, version: String) {
        self.server_version = Some(version);
    }

    pub(crate) fn count_timeout(&mut self) {
        self.stats.timeouts += 1;
    }

    pub(crate) fn count_reset(&mut self) {
        self.stats.resets += 1;
    }

    pub(crate) fn count_panic(&mut self) {
        self.stats.panics += 1;
    }

    /// Reserves a slot for each connect to start now: one per waiter not already covered by a connect in
    /// flight, plus what `min_idle` lacks. Never more than `max_size` allows, and none while closed, paused or
    /// failing fast, so bursts never create connections nobody waits for. Returns how many were reserved;
    /// the caller must fill each with a [`ConnectSlot`](crate::connect::ConnectSlot).
    pub(crate) fn reserve_connects(&mut self) -> usize {
        if self.closed || self.paused || self.circuit.is_open() {
            return 0;
        }
        let want = self.waiters.len() + self.min_idle.saturating_sub(self.idle.len() + self.pinging);
        let mut n = 0;
        while self.connecting < want && self.size < self.max_size {
            self.size += 1;
            self.connecting += 1;
            n += 1;
        }
        n
    }

    /// Gives back the slot of a connect that failed, was abandoned, or whose task was dropped.
    pub(crate) fn release_connect(&mut self) {
        self.connecting -= 1;
        self.size -= 1;
    }

    #[inline]
    fn take_idle(&mut self) -> Option<Box<Conn<C>>> {
        match self.reuse {
            Reuse::Lifo => self.idle.pop_back(),
            Reuse::Fifo => self.idle.pop_front(),
        }
    }

    /// Takes an idle connection when nobody is queued ahead (no barging) and the pool is not paused, otherwise
    /// queues the caller (or, when it would not wait, says the pool is busy). While the circuit is open, a
    /// caller that would have to wait for a connect is refused at once.
    pub(crate) fn checkout(
        &mut self,
        now: Stamp,
        leak_caller: Option<&'static Location<'static>>,
        wait: Wait,
        waker: &Waker,
    ) -> Step<C, E> {
        if self.closed {
            return Step::Closed;
        }
        if self.waiters.is_empty()
            && !self.paused
            && let Some(conn) = self.take_idle()
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
        if let Some((since, error)) = self.circuit.open() {
            self.stats.fail_fast += 1;
            self.circuit.refused();
            return Step::FailFast { since, error };
        }
        // Read under the lock, so deadlines along the queue never decrease (the watcher relies on it).
        let deadline = match wait {
            Wait::Watched(timeout) => tokio::time::Instant::now().checked_add(timeout),
            _ => None,
        };
        let wake_watcher = deadline.is_some() && !std::mem::replace(&mut self.watcher_armed, true);
        let key = self.waiters.push_back(deadline, Some(waker));
        self.stats.waited += 1;
        let connects = self.reserve_connects();
        let demand = connects == 0 && self.circuit.is_failing();
        Step::Wait { key, connects, wake_watcher, demand }
    }

    /// Counts a checkout that waited for nothing, for the `wait_time` histogram.
    #[inline]
    pub(crate) fn count_zero_wait(&mut self) {
        self.unrecorded_zero_waits += 1;
    }

    /// The zero waits counted since the last call, for recording now.
    pub(crate) fn take_zero_waits(&mut self) -> u64 {
        std::mem::take(&mut self.unrecorded_zero_waits)
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

    /// Takes what was handed to a waiter, or registers its waker.
    pub(crate) fn poll_wait(&mut self, key: usize, waker: &Waker) -> Option<Outcome<C, E>> {
        self.waiters.poll(key, waker)
    }

    /// Gives a connection to the longest waiter, or to the idle queue (always while paused); returns the
    /// waiter's waker. Returns the connection itself, with the reason to close it, when the pool no longer
    /// wants it (closed, shrunk below its size, or retired since the connection was delivered first).
    pub(crate) fn deliver(&mut self, conn: Box<Conn<C>>) -> Result<Option<Waker>, (Box<Conn<C>>, CloseReason)> {
        if self.closed {
            return Err((conn, CloseReason::PoolClosed));
        }
        if self.size > self.max_size {
            return Err((conn, CloseReason::Discarded));
        }
        if conn.generation != self.generation {
            return Err((conn, CloseReason::Retired));
        }
        if self.waiters.is_empty() || self.paused {
            self.push_idle(conn);
            return Ok(None);
        }
        match self.waiters.fulfill_front(Outcome::Conn(conn)) {
            Ok(waker) => Ok(waker),
            Err(Outcome::Conn(conn)) => {
                self.push_idle(conn);
                Ok(None)
            }
            Err(_) => unreachable!("fulfill_front gives back what it was given"),
        }
    }

    /// Stamps a new connection with the current retirement generation, before its first [`deliver`].
    ///
    /// [`deliver`]: Self::deliver
    pub(crate) fn adopt(&self, conn: &mut Conn<C>) {
        conn.generation = self.generation;
    }

    /// Puts a connection on the idle queue, which stays ordered by `last_used` (reaping relies on it): a
    /// returned connection goes at the back (one comparison), one back from a keepalive ping where its
    /// `last_used` belongs.
    #[inline]
    fn push_idle(&mut self, conn: Box<Conn<C>>) {
        if self.idle.back().is_none_or(|b| b.last_used <= conn.last_used) {
            self.idle.push_back(conn);
        } else {
            let at = self.idle.partition_point(|c| c.last_used <= conn.last_used);
            self.idle.insert(at, conn);
        }
    }

    /// A waiter gives up (its `get()` was dropped or timed out on its own timer). A connection handed to it
    /// meanwhile is passed on in the same critical section, so a cancelled `get()` never swallows a wake-up.
    pub(crate) fn cancel_wait(&mut self, key: usize) -> Abandoned<C> {
        match self.waiters.cancel(key) {
            Some(Outcome::Conn(conn)) => match self.deliver(conn) {
                Ok(waker) => Abandoned::Passed(waker),
                Err((conn, reason)) => {
                    let connects = self.release(Some(reason));
                    Abandoned::Unwanted(conn, reason, connects)
                }
            },
            _ => Abandoned::Passed(None),
        }
    }

    /// Frees the slot of a live connection that is gone and returns how many connect slots were reserved in
    /// its place.
    pub(crate) fn release(&mut self, reason: Option<CloseReason>) -> usize {
        self.size -= 1;
        match reason {
            Some(reason) => self.count_closed(reason),
            None => self.stats.detached += 1,
        }
        if matches!(reason, Some(CloseReason::Broken | CloseReason::ValidationFailed | CloseReason::KeepaliveFailed)) {
            self.suspect_idle();
        }
        self.reserve_connects()
    }

    /// A connection was found dead: the idle ones may have died with it (a server restart, a failover, an
    /// administrator killing every session, a proxy resetting its connections), and nothing on their sockets
    /// says so until they are used. Each loses its validation bypass, so its next checkout validates it
    /// instead of handing it out unchecked. Connections returned after this are trusted again.
    fn suspect_idle(&mut self) {
        for conn in self.idle.iter_mut() {
            conn.fresh_until = conn.last_used;
        }
    }

    fn count_closed(&mut self, reason: CloseReason) {
        let s = &mut self.stats;
        s.closed += 1;
        match reason {
            CloseReason::IdleTimeout => s.closed_idle_timeout += 1,
            CloseReason::MaxLifetime => s.closed_max_lifetime += 1,
            CloseReason::Broken => s.closed_broken += 1,
            CloseReason::ValidationFailed => s.closed_validation_failed += 1,
            CloseReason::Discarded => s.closed_discarded += 1,
            CloseReason::PoolClosed => s.closed_pool_closed += 1,
            CloseReason::Retired => s.closed_retired += 1,
            CloseReason::KeepaliveFailed => s.closed_keepalive_failed += 1,
            CloseReason::CredentialRotation => s.closed_rotated += 1,
            CloseReason::HookFailed => s.closed_hook_failed += 1,
        }
    }

    pub(crate) fn end_checkout(&mut self, key: usize) -> Option<CheckoutRecord> {
        if key == NO_CHECKOUT { None } else { self.checkouts.try_remove(key) }
    }

    /// Removes idle connections that outlived `max_lifetime`, and those idle longer than `idle_timeout` beyond
    /// `min_idle` (longest idle first: they sit at the front).
    pub(crate) fn reap(&mut self, now: Stamp, idle_timeout: Option<Duration>) -> Vec<(Box<Conn<C>>, CloseReason)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.idle.len() {
            if self.idle[i].expired(now) {
                out.extend(self.idle.remove(i).map(|c| (c, CloseReason::MaxLifetime)));
            } else {
                i += 1;
            }
        }
        if let Some(timeout) = idle_timeout {
            while self.idle.len() > self.min_idle
                && self.idle.front().is_some_and(|c| now.duration_since(c.last_used) >= timeout)
            {
                out.extend(self.idle.pop_front().map(|c| (c, CloseReason::IdleTimeout)));
            }
        }
        for (_, reason) in &out {
            self.size -= 1;
            self.count_closed(*reason);
        }
        out
    }

    /// Closes idle connections for which `keep` is false; returns them and the connect slots reserved in their
    /// place.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Conn<C>) -> bool) -> (Vec<Box<Conn<C>>>, usize) {
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.idle.len() {
            if keep(&self.idle[i]) {
                i += 1;
            } else {
                removed.extend(self.idle.remove(i));
            }
        }
        for _ in &removed {
            self.size -= 1;
            self.count_closed(CloseReason::Discarded);
        }
        (removed, self.reserve_connects())
    }

    /// Retires every connection (HikariCP's `softEvictConnections`): the idle ones are returned to close now,
    /// and the generation moves on, so the ones lent, being validated, reset or pinged are closed when they
    /// come back. Returns the idle connections (already out of the accounting) and the connect slots reserved
    /// in their place (for waiters and `min_idle`).
    pub(crate) fn retire(&mut self) -> (Vec<Box<Conn<C>>>, usize) {
        self.generation += 1;
        let idle: Vec<_> = self.idle.drain(..).collect();
        for _ in &idle {
            self.size -= 1;
            self.count_closed(CloseReason::Retired);
        }
        (idle, self.reserve_connects())
    }

    /// Takes the idle connections due for a keepalive ping (not known alive for `interval`, not expired) out
    /// of the idle queue; they stay counted as idle until [`end_keepalive`](Self::end_keepalive).
    pub(crate) fn take_for_keepalive(&mut self, now: Stamp, interval: Duration) -> Vec<Box<Conn<C>>> {
        let mut due = Vec::new();
        if self.closed {
            return due;
        }
        let mut i = 0;
        while i < self.idle.len() {
            let c = &self.idle[i];
            if !c.expired(now) && now.duration_since(c.alive_at) >= interval {
                due.extend(self.idle.remove(i));
            } else {
                i += 1;
            }
        }
        self.pinging += due.len();
        self.stats.keepalives += due.len() as u64;
        due
    }

    /// A keepalive ping ended; the caller then delivers the connection (alive) or releases its slot (dead).
    pub(crate) fn end_keepalive(&mut self) {
        self.pinging -= 1;
    }

    /// Sets the maximum size; closes idle connections beyond it (longest idle first) and returns them with the
    /// connect slots reserved for waiters the new size lets in.
    pub(crate) fn resize(&mut self, max_size: usize) -> (Vec<Box<Conn<C>>>, usize) {
        self.max_size = max_size;
        let mut closed = Vec::new();
        while self.size > self.max_size
            && let Some(conn) = self.idle.pop_front()
        {
            closed.push(conn);
            self.size -= 1;
            self.count_closed(CloseReason::Discarded);
        }
        (closed, self.reserve_connects())
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

    /// Whether a connect task may begin an attempt (its first or a retry) at `now`; if so it is recorded as
    /// begun. Nothing is opened while the pool is paused: the circuit's probe waits for `resume`, any other
    /// task gives its slot back (what waits when the pool resumes gets a connect of its own then).
    pub(crate) fn begin_attempt(&mut self, now: tokio::time::Instant, probing: bool) -> Begin {
        if self.closed {
            return Begin::Stop;
        }
        if self.paused {
            return if probing { Begin::WaitResume } else { Begin::Stop };
        }
        self.circuit.attempt_started(now);
        Begin::Attempt
    }

    /// Pauses the pool; false when it was paused already.
    pub(crate) fn pause(&mut self) -> bool {
        !std::mem::replace(&mut self.paused, true)
    }

    /// Resumes a paused pool: idle connections go to the waiters in their order, and connects are reserved
    /// for the waiters left and what `min_idle` lacks. Returns the wakers of the served waiters (to wake in
    /// that order) and the connects reserved; `None` when the pool was not paused.
    pub(crate) fn resume(&mut self) -> Option<(Vec<Waker>, usize)> {
        if !std::mem::replace(&mut self.paused, false) {
            return None;
        }
        let mut wakers = Vec::new();
        while !self.waiters.is_empty()
            && let Some(conn) = self.take_idle()
        {
            match self.waiters.fulfill_front(Outcome::Conn(conn)) {
                Ok(waker) => wakers.extend(waker),
                Err(Outcome::Conn(conn)) => self.idle.push_back(conn),
                Err(_) => unreachable!("fulfill_front gives back what it was given"),
            }
        }
        Some((wakers, self.reserve_connects()))
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether a connect task whose attempt has been pending should start a hedged attempt beside it now
    /// ([`Circuit::hedge_due`]: a run of failures is on, someone asks, and no attempt began within
    /// `spacing`); if so, the attempt is recorded as begun. Otherwise when to ask again.
    pub(crate) fn hedge(&mut self, now: tokio::time::Instant, spacing: Duration) -> Result<(), tokio::time::Instant> {
        if self.closed || self.paused {
            return Err(now + spacing);
        }
        self.circuit.hedge_due(now, spacing, !self.waiters.is_empty())?;
        self.circuit.attempt_started(now);
        Ok(())
    }

    /// Records the failure of `attempt` by a task that holds a connect slot
    /// (`probing`: the task is the open circuit's probe). The circuit decides whether the failure counts and
    /// whether it opens the circuit ([`Circuit::on_connect_failed`], given the pool's live connections), and
    /// whether the task tries again ([`Circuit::keeps_trying`]); when it opens, every waiter is failed with
    /// [`Outcome::Unavailable`], since nothing could serve it.
    pub(crate) fn connect_failed(
        &mut self,
        attempt: FailedAttempt<E>,
        fail_fast_after: Duration,
        probing: bool,
    ) -> Failure {
        self.stats.connect_errors += 1;
        let live = self.live();
        let mut wakers = Vec::new();
        let judged = self.circuit.on_connect_failed(attempt, fail_fast_after, live);
        if let Some((since, error)) = &judged.opened {
            wakers = self.waiters.fulfill_all(|| Outcome::Unavailable { since: *since, error: error.clone() });
        }
        let opened = judged.opened.is_some();
        let retry = !self.closed && self.circuit.keeps_trying(probing || opened, self.connect_still_needed());
        Failure {
            stale: judged.stale,
            opened,
            wakers,
            retry,
            failures: self.circuit.failures(),
            demand: !self.waiters.is_empty(),
            successes: self.circuit.successes(),
        }
    }

    /// Records a successful connect at `now`: its slot now holds a live connection, and the circuit hears of
    /// it ([`Circuit::on_connect_succeeded`]: it closes and forgets the last error). Returns whether this
    /// ended a run of failures (connect tasks backing off should try again now) and whether the circuit was
    /// open.
    pub(crate) fn connect_succeeded(&mut self, now: tokio::time::Instant) -> (bool, bool) {
        self.connecting -= 1;
        self.stats.created += 1;
        self.circuit.on_connect_succeeded(now)
    }

    /// Whether a connect that just failed should try again: while waiters or `min_idle` still need it, and the
    /// pool is not paused.
    fn connect_still_needed(&self) -> bool {
        !self.closed
            && !self.paused
            && self.waiters.len() + self.min_idle.saturating_sub(self.idle.len() + self.pinging) >= self.connecting
    }

    /// Fails waiters whose watched deadline passed by `now`; returns their wakers and the next deadline.
    pub(crate) fn expire_waiters(&mut self, now: tokio::time::Instant) -> (Vec<Waker>, Option<tokio::time::Instant>) {
        let (wakers, next) = self.waiters.expire(now, || Outcome::TimedOut);
        self.watcher_armed = next.is_some();
        (wakers, next)
    }

    /// Marks the pool closed; returns the idle connections to close and the wakers of every waiter (failed
    /// with [`Outcome::Closed`]). `None` when it was closed already.
    pub(crate) fn close(&mut self) -> Option<Closing<C>> {
        if self.closed {
            return None;
        }
        self.closed = true;
        let idle = std::mem::take(&mut self.idle);
        for _ in &idle {
            self.size -= 1;
            self.count_closed(CloseReason::PoolClosed);
        }
        Some(Closing { idle, wakers: self.waiters.fulfill_all(|| Outcome::Closed) })
    }

    /// Open connections and connects in flight.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

/// Model checks of the hand-off protocol with loom: every interleaving of the critical sections of a waiter
/// being queued, a connection being returned, the waiter giving up, and a paused pool resuming, on several
/// threads. Run with
/// `RUSTFLAGS="--cfg aquifer_loom" cargo test -p aquifer-core --lib loom --release`.
///
/// The models drive the engine's own code: the pool's mutex is the `sync.rs` shim (loom's mutex here), and
/// each thread calls the same `Internals` methods as the engine's futures and guards do (`checkout` when a
/// `get()` queues, `deliver` when a connection comes back, `cancel_wait` when a `get()` is dropped,
/// `poll_wait` when it is woken). What they do not cover: the async code around those critical sections
/// (timers, connect tasks), which the cancellation tests exercise instead.
#[cfg(all(test, aquifer_loom))]
mod loom_tests {
    use std::task::{Wake, Waker};

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::sync::Mutex;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn conn(id: u64) -> Box<Conn<u64>> {
        Box::new(Conn::new(id, id, Stamp::ZERO, None, Duration::from_secs(60)))
    }

    type Pool = Arc<Mutex<Internals<u64, std::io::Error>>>;

    /// A pool of `n` checked-out connections (what `reserve_connects` + `connect_succeeded` leave behind).
    fn busy_pool(n: usize) -> Pool {
        let pool = Arc::new(Mutex::new(Internals::new(n, 0, Reuse::Lifo)));
        {
            let mut g = pool.lock();
            g.min_idle = n;
            assert_eq!(g.reserve_connects(), n);
            g.min_idle = 0;
            for _ in 0..n {
                g.connect_succeeded(tokio::time::Instant::now());
            }
        }
        pool
    }

    fn queue(pool: &Pool, flag: &std::sync::Arc<Flag>) -> usize {
        let waker = Waker::from(flag.clone());
        match pool.lock().checkout(Stamp::ZERO, None, Wait::OwnTimer, &waker) {
            Step::Wait { key, connects: 0, .. } => key,
            _ => panic!("the waiter must queue: the pool is full"),
        }
    }

    fn give_back(pool: &Pool, c: Box<Conn<u64>>) {
        let woken = pool.lock().deliver(c).unwrap_or_else(|_| panic!("the pool wants it back"));
        if let Some(w) = woken {
            w.wake();
        }
    }

    /// A pool of one busy connection, a queued waiter, and a concurrent return and cancellation.
    #[test]
    fn returned_connection_is_never_lost_when_the_waiter_gives_up() {
        loom::model(|| {
            let pool = busy_pool(1);
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let key = queue(&pool, &flag);

            let returner = {
                let pool = pool.clone();
                loom::thread::spawn(move || give_back(&pool, conn(1)))
            };
            let canceller = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let abandoned = pool.lock().cancel_wait(key);
                    match abandoned {
                        Abandoned::Passed(Some(w)) => w.wake(),
                        Abandoned::Passed(None) => {}
                        Abandoned::Unwanted(..) => panic!("an open pool wants its connection"),
                    }
                })
            };
            returner.join().unwrap();
            canceller.join().unwrap();

            let g = pool.lock();
            assert_eq!(g.state().idle, 1, "the returned connection was lost");
            assert_eq!(g.state().waiting, 0);
            assert_eq!(g.size(), 1);
        });
    }

    /// Two waiters and two returns racing: both waiters get a connection, each is woken, none is lost.
    #[test]
    fn every_queued_waiter_is_handed_a_connection_and_woken() {
        loom::model(|| {
            let pool = busy_pool(2);
            let flags: Vec<_> = (0..2).map(|_| std::sync::Arc::new(Flag(AtomicBool::new(false)))).collect();
            let keys: Vec<usize> = flags.iter().map(|f| queue(&pool, f)).collect();

            let returners: Vec<_> = (0..2u64)
                .map(|id| {
                    let pool = pool.clone();
                    loom::thread::spawn(move || give_back(&pool, conn(id)))
                })
                .collect();
            for r in returners {
                r.join().unwrap();
            }

            let mut g = pool.lock();
            let noop = Waker::noop();
            let mut got = Vec::new();
            for (key, flag) in keys.into_iter().zip(&flags) {
                assert!(flag.0.load(Ordering::SeqCst), "a waiter handed a connection was not woken");
                match g.poll_wait(key, noop) {
                    Some(Outcome::Conn(c)) => got.push(c.id),
                    _ => panic!("a waiter was not handed a connection"),
                }
            }
            got.sort_unstable();
            assert_eq!(got, [0, 1]);
            assert_eq!(g.state().idle, 0);
        });
    }

    /// A paused pool with one busy connection and a queued waiter: the connection comes back (to the idle
    /// queue, the pool being paused) while the pool resumes. Whatever the order, the waiter is handed the
    /// connection and woken exactly by whoever handed it over; nothing stays idle behind a waiting caller.
    #[test]
    fn a_connection_returned_while_the_pool_resumes_reaches_the_waiter() {
        loom::model(|| {
            let pool = busy_pool(1);
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            assert!(pool.lock().pause());
            let key = queue(&pool, &flag);

            let returner = {
                let pool = pool.clone();
                loom::thread::spawn(move || give_back(&pool, conn(1)))
            };
            let resumer = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let (wakers, connects) = pool.lock().resume().expect("the pool was paused");
                    assert_eq!(connects, 0, "a full pool reserves no connect");
                    wakers.into_iter().for_each(Waker::wake);
                })
            };
            returner.join().unwrap();
            resumer.join().unwrap();

            let mut g = pool.lock();
            assert!(flag.0.load(Ordering::SeqCst), "the waiter was handed the connection but not woken");
            assert!(matches!(g.poll_wait(key, Waker::noop()), Some(Outcome::Conn(_))), "the waiter got nothing");
            assert_eq!((g.state().idle, g.state().waiting, g.size()), (0, 0, 1));
        });
    }

    /// The same with the waiter giving up meanwhile: the connection ends idle, never held by nobody.
    #[test]
    fn a_waiter_giving_up_while_the_pool_resumes_loses_no_connection() {
        loom::model(|| {
            let pool = busy_pool(1);
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            assert!(pool.lock().pause());
            let key = queue(&pool, &flag);

            let returner = {
                let pool = pool.clone();
                loom::thread::spawn(move || give_back(&pool, conn(1)))
            };
            let resumer = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let (wakers, _) = pool.lock().resume().expect("the pool was paused");
                    wakers.into_iter().for_each(Waker::wake);
                })
            };
            let canceller = {
                let pool = pool.clone();
                loom::thread::spawn(move || match pool.lock().cancel_wait(key) {
                    Abandoned::Passed(w) => w.into_iter().for_each(Waker::wake),
                    Abandoned::Unwanted(..) => panic!("an open pool wants its connection"),
                })
            };
            returner.join().unwrap();
            resumer.join().unwrap();
            canceller.join().unwrap();

            let g = pool.lock();
            assert_eq!((g.state().idle, g.state().waiting, g.size()), (1, 0, 1), "{}", g.state());
        });
    }

    /// A waiter gives up while the pool closes and its connection comes back: the connection is either
    /// refused by the closed pool (and its slot freed) or passed on, never kept by nobody.
    #[test]
    fn connection_handed_to_a_waiter_that_gives_up_during_close_is_closed_or_idle() {
        loom::model(|| {
            let pool = busy_pool(1);
            let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let key = queue(&pool, &flag);

            let returner = {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let refused = pool.lock().deliver(conn(1)).err().map(|(c, _)| c);
                    if refused.is_some() {
                        pool.lock().release(Some(CloseReason::PoolClosed));
                    }
                })
            };
            let closer = {
                let pool = pool.clone();
                loom::thread::spawn(move || drop(pool.lock().close()))
            };
            let canceller = {
                let pool = pool.clone();
                loom::thread::spawn(move || drop(pool.lock().cancel_wait(key)))
            };
            returner.join().unwrap();
            closer.join().unwrap();
            canceller.join().unwrap();

            let g = pool.lock();
            assert_eq!(g.size(), 0, "a connection is neither closed nor freed: {}", g.state());
            assert_eq!(g.state().waiting, 0);
        });
    }
}
