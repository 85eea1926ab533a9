//! Waiting for a condition that a test can only poll (a server's view of its sessions, say).

use std::time::Duration;

/// Polls `cond` every `every` until it holds or `within` has passed; returns whether it held. It is checked
/// once more at the deadline, so a condition that holds by then is not missed.
pub async fn poll_until<F: AsyncFnMut() -> bool>(within: Duration, every: Duration, mut cond: F) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}
