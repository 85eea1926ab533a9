//! The checks every chaos run ends with: the pool's state and stats agree once every connection is back, and
//! the server holds none of the pool's connections once it is closed.

use std::time::{Duration, Instant};

use aquifer_core::{Manager, Pool};

use super::{ChaosBackend, PoolOf};
use crate::ChaosProxy;

/// The pool's state and stats agree once every connection is back: nothing checked out or waiting, size within
/// bounds, open connections equal to created minus closed, no leak or panic reported. Waits (bounded) for
/// resets running in the background to finish.
pub async fn assert_invariants<M: Manager>(pool: &Pool<M>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.state();
        if (s.in_use == 0 && s.connecting == 0 && s.waiting == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = pool.state();
    let st = pool.stats();
    assert!(s.size <= s.max_size, "size within max: {s}");
    assert!(s.idle <= s.size, "idle within size: {s}");
    assert_eq!((s.in_use, s.waiting, s.connecting), (0, 0, 0), "nothing held once all returned: {s}");
    assert_eq!(s.idle, s.size, "every slot is an idle connection: {s}");
    assert_eq!(st.created - st.closed - st.detached, s.size as u64, "open = created - closed: {st:?} {s}");
    assert_eq!((st.leaks, st.panics), (0, 0), "no leak or panic reported: {st:?}");
}

/// Closes the pool and waits (bounded) until the server holds none of its connections.
pub async fn assert_server_clean<B: ChaosBackend>(pool: PoolOf<B>, marker: &str, proxy: &ChaosProxy) {
    pool.close().await;
    assert_eq!(pool.state().size, 0, "a closed pool holds nothing: {}", pool.state());
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = usize::MAX;
    while Instant::now() < deadline {
        left = B::server_connections(marker, proxy).await;
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}: the server still holds {left} connection(s) of the closed pool {marker}", B::NAME);
}

/// Checks `n` connections out at once and returns them, so the pool holds `n` idle connections. Each checkout
/// may wait 15 s (`FILL_WAIT`), longer than the pools' acquire timeout: a server just started (ArcadeDB's JVM, cold,
/// on a busy machine) can take longer than one connect timeout to answer its first logins, and the pool retries
/// them; what the tests check begins once the pool is full.
pub async fn fill<M: Manager>(pool: &Pool<M>, n: usize) {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get_timeout(FILL_WAIT).await.expect("a connection while there is no fault"));
    }
}

/// How long [`fill`] waits for each connection.
const FILL_WAIT: Duration = Duration::from_secs(15);
