//! [`RetryPolicy`]: how adapter helpers retry transient failures (serialization failures, deadlocks, a
//! connection lost before the statement was sent), so every backend retries the same way.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};

/// Retries of an operation that failed with a transient error: exponential backoff with jitter.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use aquifer_core::RetryPolicy;
///
/// let mut calls = 0;
/// let result: Result<u32, &str> = RetryPolicy::default()
///     .run(|| { calls += 1; let n = calls; async move { if n < 3 { Err("deadlock") } else { Ok(n) } } }, |e| *e == "deadlock")
///     .await;
/// assert_eq!(result, Ok(3));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries. Default: 3.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per retry, with jitter. Default: 10 ms.
    #[serde(with = "humantime_serde")]
    pub min_delay: Duration,
    /// Longest delay between attempts. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Three attempts clear nearly all serialization failures and deadlocks without hiding a real outage.
        RetryPolicy { max_attempts: 3, min_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1) }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: 1, ..Self::default() }
    }

    /// The delays between attempts.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.builder().build()
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }

    /// Runs `op` until it succeeds, fails with an error `is_transient` rejects, or runs out of attempts; the
    /// last error is returned. Each attempt is a fresh call of `op`, so a transaction is retried whole.
    ///
    /// Cancel safety: dropping the future drops the attempt in flight.
    pub async fn run<T, E, F, Fut>(&self, op: F, is_transient: impl Fn(&E) -> bool) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        op.retry(self.builder())
            .when(is_transient)
            .notify(|_, delay| tracing::debug!(?delay, "transient failure; retrying"))
            .await
    }
}
