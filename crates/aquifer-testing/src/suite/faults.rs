//! What a pool must survive without handing a user a broken or dirty connection: a statement or a
//! transaction abandoned mid-flight, a failed statement, and every idle session killed by the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_core::{Adapter, AnyPool};
use parking_lot::Mutex;
use tokio::time::timeout;

use super::lifecycle::{checkout, started};
use super::{Checked, Hooks, PoolOf, STEP, Test, Write};
use crate::CallError;

/// A marker unique to this test run, for the rows it writes.
fn marker(t: &Test) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{nanos}", t.pool())
}

/// A statement whose future was dropped mid-flight leaves nothing behind: the next users of the (only)
/// connection slot get answers to their own statements.
pub async fn a_dropped_in_flight_query_is_never_handed_out_dirty<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 1, |_| {}).await;
    H::abandon(&pool).await;
    for n in 0..3 {
        let mut conn = checkout::<H>(&pool).await;
        let answer = timeout(STEP, H::answer(&mut conn, n)).await.expect("an answer in time");
        assert_eq!(answer.expect("a clean connection"), n + 1);
    }
    pool.close().await;
    Ok(())
}

/// A connection returned inside a transaction it wrote in is rolled back before anyone gets it again, twice
/// in a row; a committed write is seen.
pub async fn a_dropped_transaction_is_rolled_back<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 1, |_| {}).await;
    H::setup(&pool).await;
    let marker = marker(&t);
    for _ in 0..2 {
        timeout(STEP, H::write_uncommitted(&pool, &marker)).await.expect("the write in time");
        // A pool of one: the next user gets that same connection, after its rollback.
        let seen = timeout(STEP, H::count(&pool, &marker)).await.expect("the count in time");
        assert_eq!(seen, 0, "the dropped transaction's write was rolled back");
    }
    H::write(&pool, &marker, Write::Autocommit).await.expect("a committed write");
    assert_eq!(H::count(&pool, &marker).await, 1, "the committed write is seen (the count sees writes)");
    pool.close().await;
    Ok(())
}

/// A statement that fails on the server is a typed error of the helpers, and leaves its connection in use:
/// the next statement on the only connection answers, without a new connect.
pub async fn a_failed_statement_leaves_the_connection_usable<H: Hooks>(t: Test) -> Checked {
    let pool = started::<H>(&t.pool(), 1, |_| {}).await;
    let created = pool.stats().created;
    let errors = timeout(STEP, H::fail(&pool)).await.expect("the failures in time");
    assert!(!errors.is_empty(), "the failing statements fail");
    let mut conn = checkout::<H>(&pool).await;
    assert_eq!(H::answer(&mut conn, 41).await.expect("an answer after the failures"), 42);
    drop(conn);
    assert_eq!(pool.stats().created, created, "the failures did not cost the connection: {:?}", pool.stats());
    pool.close().await;
    Ok(())
}

/// How many connections the dead-idle scenarios kill.
const POOL: usize = 8;

/// A pool of [`POOL`] connections, all open and all used just now, inside a validation bypass window the
/// scenario never leaves (so checkout does not validate them), with [`Hooks::setup`] done; then every
/// session killed by the server.
async fn killed_while_idle<H: Hooks>(t: &Test) -> Result<PoolOf<H>, super::Unsupported> {
    let pool = started::<H>(&t.pool(), POOL, |c| {
        let pool = c.pool_config_mut();
        pool.min_idle = POOL;
        pool.validation_bypass = Duration::from_secs(30);
        pool.acquire_timeout = Duration::from_secs(30);
    })
    .await;
    H::setup(&pool).await;
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(checkout::<H>(&pool).await);
    }
    for (n, conn) in held.iter_mut().enumerate() {
        assert_eq!(H::answer(conn, n as i64).await.expect("an answer"), n as i64 + 1);
    }
    drop(held);
    assert_eq!(pool.state().idle, POOL, "{}", pool.state());
    let killed = H::kill_sessions(&pool).await?;
    assert!(killed >= POOL, "{killed} sessions killed for a pool of {POOL}");
    // The server's notice and FIN reach the client sockets; traffic starts after them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(pool)
}

/// Every idle session killed, then 32 tasks of reads and writes: reads and transactions never fail; an
/// autocommitted write fails only where the driver cannot tell whether a lost statement ran
/// ([`Hooks::LOST_WRITES_MAY_FAIL`]), with a typed loss, once per killed session at most; every write that
/// succeeded is applied exactly once.
pub async fn helpers_fail_no_request_after_idle_sessions_were_killed<H: Hooks>(t: Test) -> Checked {
    let pool = killed_while_idle::<H>(&t).await?;
    let marker = Arc::new(marker(&t));
    let (writes, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let mut tasks = Vec::new();
    for task in 0..32_i64 {
        let (pool, marker, writes, failed) = (pool.clone(), marker.clone(), writes.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            // Writes first: the dead connections meet writes, which may only be retried if they never ran.
            for i in 0..6_i64 {
                let (kind, result) = match i % 3 {
                    0 => ("write", H::write(&pool, &marker, Write::Autocommit).await),
                    1 => ("transaction", H::write(&pool, &marker, Write::Transaction).await),
                    _ => ("read", H::fetch(&pool, task * 10 + i).await.map(|got| assert_eq!(got, task * 10 + i + 1))),
                };
                match result {
                    Ok(()) if kind != "read" => {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(()) => {}
                    Err(e) => failed.lock().push((kind, e)),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }
    let failed = std::mem::take(&mut *failed.lock());
    for (kind, e) in &failed {
        let lost = matches!(e, CallError::Outage(_));
        assert!(H::LOST_WRITES_MAY_FAIL && *kind == "write" && lost, "a {kind} failed: {e:?} (all: {failed:?})");
    }
    assert!(failed.len() <= POOL, "at most one failure per killed session: {failed:?}");
    let applied = H::count(&pool, &marker).await;
    assert_eq!(applied, writes.load(Ordering::Relaxed) as i64, "every successful write applied exactly once");
    pool.close().await;
    Ok(())
}

/// Every idle session killed, then one checkout at a time, as a service with little traffic makes them: the
/// first checkout cannot know (no round trip was made), but once one connection is found dead, the others
/// are validated before they are handed out: at most one statement fails, and holding every connection at
/// once afterwards (so each idle one is handed out) finds none dead.
pub async fn get_checks_idle_connections_once_one_is_found_dead<H: Hooks>(t: Test) -> Checked {
    let pool = killed_while_idle::<H>(&t).await?;
    let mut failures = Vec::new();
    for n in 0..2 * POOL as i64 {
        let mut conn = checkout::<H>(&pool).await;
        if let Err(e) = H::answer(&mut conn, n).await {
            failures.push(e);
        }
    }
    assert!(failures.len() <= 1, "only the connection that revealed the kill fails: {failures:?} {:?}", pool.stats());
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(checkout::<H>(&pool).await);
    }
    for (n, conn) in held.iter_mut().enumerate() {
        let answer = H::answer(conn, n as i64).await;
        assert_eq!(answer.unwrap_or_else(|e| panic!("a dead connection was handed out: {e:?}")), n as i64 + 1);
    }
    drop(held);
    let stats = pool.stats();
    if !failures.is_empty() {
        assert!(stats.closed_validation_failed >= POOL as u64 - 1, "the others were validated: {stats:?}");
    }
    pool.close().await;
    Ok(())
}
