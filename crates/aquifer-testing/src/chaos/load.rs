//! The load of the chaos tests and the soak: tasks sending short requests through the pool, each outcome
//! tallied by its typed error, and each connection that failed as lost watched on its next checkout.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aquifer_core::{OperationError, Pool, PoolError};
use parking_lot::Mutex;

use super::ChaosBackend;

/// How one request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// No connection: the pool's typed error (`timeout`, `timeout_connecting` when connects were failing,
    /// `unavailable`, `closed`, `config`).
    Acquire(&'static str),
    /// The connection was lost during the statement (the adapter's own classification).
    Lost,
    /// Any other error, by its `error.type`.
    Other(String),
}

impl Fail {
    /// The failure of a checkout.
    pub fn acquire<E: std::error::Error>(e: &PoolError<E>) -> Fail {
        Fail::Acquire(match e {
            PoolError::Timeout { last_error: Some(_), .. } => "timeout_connecting",
            PoolError::Timeout { .. } => "timeout",
            PoolError::Unavailable { .. } => "unavailable",
            PoolError::Closed => "closed",
            _ => "config",
        })
    }

    /// The failure of an adapter's helper: its checkout's, or the driver error's as `backend` classifies it.
    pub fn operation<E, C>(e: &OperationError<E, C>, backend: impl FnOnce(&E) -> Fail) -> Fail
    where
        E: std::error::Error + 'static,
        C: std::error::Error + 'static,
    {
        match e {
            OperationError::Acquire(p) => Fail::acquire(p),
            OperationError::Backend(b) => backend(b),
            _ => Fail::Other("unknown".into()),
        }
    }

    /// How the failure is counted in a [`Tally`]: `acquire:<kind>`, `connection_lost` or `other:<type>`.
    fn label(&self) -> String {
        match self {
            Fail::Acquire(k) => format!("acquire:{k}"),
            Fail::Lost => "connection_lost".into(),
            Fail::Other(t) => format!("other:{t}"),
        }
    }
}

/// Every outcome of a load, by kind.
#[derive(Default)]
pub struct Tally {
    inner: Mutex<Counts>,
}

/// What a [`Tally`] counted, at one moment.
#[derive(Default, Debug, Clone)]
pub struct Counts {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed, by [`Fail`] label (`acquire:timeout`, `connection_lost`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Connections whose last statement failed with a lost connection.
    pub dead: HashSet<u64>,
    /// Checkouts that handed out a connection whose last statement failed as lost (a Bolt connection's
    /// `Graph` reconnects by itself, so this alone is not a failure).
    pub reissued: u64,
    /// Connections that failed as lost on two checkouts in a row: a dead connection handed out again.
    pub dead_reissued: u64,
    /// Latencies of successful requests (checkout to answer), microseconds.
    pub latencies_us: Vec<u64>,
}

impl Tally {
    /// Everything counted so far.
    pub fn snapshot(&self) -> Counts {
        self.inner.lock().clone()
    }

    /// Takes the latencies recorded since the last call (the soak's per-interval p99).
    pub fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut self.inner.lock().latencies_us)
    }

    /// Requests that succeeded so far.
    pub fn ok(&self) -> u64 {
        self.inner.lock().ok
    }

    /// Requests that failed so far, whatever the failure.
    pub fn failed(&self) -> u64 {
        self.inner.lock().failed.values().sum()
    }

    /// Requests that failed with `label` so far (`acquire:timeout`, `connection_lost`, ...).
    pub fn count(&self, label: &str) -> u64 {
        self.inner.lock().failed.get(label).copied().unwrap_or(0)
    }

    /// Connections that failed as lost on two checkouts in a row so far: a dead connection handed out again.
    pub fn dead_reissued(&self) -> u64 {
        self.inner.lock().dead_reissued
    }

    /// Tallies one outcome; a success records its latency from `started`.
    pub fn record(&self, started: Instant, outcome: Result<(), Fail>) {
        let mut t = self.inner.lock();
        match outcome {
            Ok(()) => {
                t.ok += 1;
                t.latencies_us.push(started.elapsed().as_micros() as u64);
            }
            Err(f) => *t.failed.entry(f.label()).or_default() += 1,
        }
    }

    /// Notes the outcome of a statement on connection `id`.
    fn used(&self, id: u64, lost: bool) {
        let mut t = self.inner.lock();
        let was_dead = t.dead.contains(&id);
        if was_dead {
            t.reissued += 1;
        }
        if lost && was_dead {
            t.dead_reissued += 1;
        }
        if lost {
            t.dead.insert(id);
        } else {
            t.dead.remove(&id);
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.inner.lock();
        write!(
            f,
            "ok {}, failed {:?}, dead connections handed out again {} (reused after a loss: {})",
            t.ok, t.failed, t.dead_reissued, t.reissued
        )
    }
}

/// One request: check out, run the short statement, tally. A connection whose statement lost its connection
/// is remembered; failing as lost again on its next checkout is counted as a dead connection handed out again.
pub async fn request<B: ChaosBackend>(pool: &Pool<B::M>, tally: &Tally) {
    let started = Instant::now();
    let outcome = match pool.get().await {
        Err(e) => Err(Fail::acquire(&e)),
        Ok(mut conn) => {
            let id = conn.info().id;
            let r = B::short(&mut conn).await;
            tally.used(id, r == Err(Fail::Lost));
            r
        }
    };
    let failed = outcome.is_err();
    tally.record(started, outcome);
    if failed {
        // A failing pool answers at once (fail-fast); a short pause keeps the counts about requests, not spins.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tasks` tasks sending requests back to back until `until`.
pub async fn load<B: ChaosBackend>(pool: &Pool<B::M>, tally: &Arc<Tally>, tasks: usize, until: Instant) {
    load_with_think::<B>(pool, tally, tasks, until, Duration::ZERO).await;
}

/// `tasks` tasks sending requests until `until`, each pausing `think` after each request (a service's clients
/// rather than a benchmark's); their starts are spread over one `think` so they do not arrive together.
pub async fn load_with_think<B: ChaosBackend>(
    pool: &Pool<B::M>,
    tally: &Arc<Tally>,
    tasks: usize,
    until: Instant,
    think: Duration,
) {
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let pool = pool.clone();
        let tally = tally.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(think.mul_f64(i as f64 / tasks as f64)).await;
            while Instant::now() < until {
                request::<B>(&pool, &tally).await;
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("a load task does not panic");
    }
}
