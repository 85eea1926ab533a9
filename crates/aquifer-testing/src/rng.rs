//! A small reproducible random source for load tests, and what a tenant-isolation load does with it.

use std::sync::atomic::{AtomicU64, Ordering};

/// xorshift64: a sequence of numbers, reproducible per load task and needing no dependency, for choosing what a
/// test's load does next (never for anything that must be unpredictable).
#[derive(Debug, Clone)]
pub struct TaskRng(u64);

impl TaskRng {
    /// The sequence of load task `task`: each task its own, the same on every run.
    pub fn for_task(task: u64) -> Self {
        TaskRng(0x9E37_79B9_7F4A_7C15 ^ (task + 1).wrapping_mul(0x2545_F491_4F6C_DD1D))
    }

    /// The next number, below `n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What became of a request run by [`run_with_random_fate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It ran to its end.
    Completed,
    /// It was dropped at whatever await point its deadline found it.
    Cancelled,
    /// It ran to its end in a task that then panicked (user code panicking while it held a connection).
    Panicked,
}

/// Runs `request` with a fate drawn from `rng`: 2 in 10 are cancelled after a random deadline below 3 ms, 1 in
/// 10 runs in a task that panics after it, the rest run to their end. What a tenant-isolation load does to its
/// requests: every way a checkout can end early must leave nothing behind.
pub async fn run_with_random_fate(
    rng: &mut TaskRng,
    request: impl std::future::Future<Output = ()> + Send + 'static,
) -> Fate {
    match rng.next(10) {
        0 | 1 => {
            let deadline = std::time::Duration::from_micros(rng.next(3_000));
            match tokio::time::timeout(deadline, request).await {
                Ok(()) => Fate::Completed,
                Err(_) => Fate::Cancelled,
            }
        }
        2 => {
            let panicking = tokio::spawn(async move {
                request.await;
                panic!("user code panics after its request");
            });
            assert!(panicking.await.unwrap_err().is_panic());
            Fate::Panicked
        }
        _ => {
            request.await;
            Fate::Completed
        }
    }
}

/// What a tenant-isolation load counted: its requests, what became of them ([`Fate`]) and the leaks its
/// requests found. Shared by the load's tasks.
#[derive(Debug, Default)]
pub struct TenantTally {
    /// Requests started.
    pub requests: AtomicU64,
    /// Requests that ran to their end.
    pub completed: AtomicU64,
    /// Requests dropped before their end.
    pub cancelled: AtomicU64,
    /// Requests whose task panicked after them.
    pub panicked: AtomicU64,
    /// Rows of another tenant a request read: must stay 0.
    pub leaked_rows: AtomicU64,
    /// Requests without a context that found a tenant or role left on their connection: must stay 0.
    pub leaked_settings: AtomicU64,
}

impl TenantTally {
    /// Counts what became of one request.
    pub fn count(&self, fate: Fate) {
        let counter = match fate {
            Fate::Completed => &self.completed,
            Fate::Cancelled => &self.cancelled,
            Fate::Panicked => &self.panicked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks the load's outcome: `total` requests ran, none saw another tenant's rows or a setting left
    /// behind, and some were cancelled and some panicked (so those paths were exercised).
    pub fn assert_no_leak(&self, total: u64) {
        eprintln!("{self}");
        assert_eq!(self.requests.load(Ordering::Relaxed), total);
        assert_eq!(self.leaked_rows.load(Ordering::Relaxed), 0, "{self}");
        assert_eq!(self.leaked_settings.load(Ordering::Relaxed), 0, "{self}");
        assert!(self.cancelled.load(Ordering::Relaxed) > 0 && self.panicked.load(Ordering::Relaxed) > 0, "{self}");
    }
}

impl std::fmt::Display for TenantTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        write!(
            f,
            "{} requests: {} completed, {} cancelled, {} panicked; leaked rows {}, leaked settings {}",
            g(&self.requests),
            g(&self.completed),
            g(&self.cancelled),
            g(&self.panicked),
            g(&self.leaked_rows),
            g(&self.leaked_settings)
        )
    }
}
