//! The async write path: [`SqlitePool::write`] and [`SqlitePool::interact`], and the `BEGIN IMMEDIATE`
//! transactions the helpers' `transaction` shares. Immediate, because taking the write lock up front is what
//! keeps a transaction from failing with `SQLITE_BUSY` halfway, after it has read; and an inline write turns
//! `busy_timeout` off while it begins, because waiting for another process's lock must never happen on a
//! runtime worker.

use std::time::Duration;

use aquifer_core::{Attempt, Failure, run_operation};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::run::{OTHER, Place, TRANSACTION, catch, run_blocking, yield_for};
use super::{Inner, SqlitePool};
use crate::manager::{Role, SqliteManager};
use crate::{SqliteOperationError, SqlitePooled};

impl SqlitePool {
    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer connection: committed when `f` returns `Ok`,
    /// rolled back when it returns `Err` or panics (a panic is returned as an error,
    /// [`Panicked`](crate::Panicked), and the writer stays usable). `BEGIN IMMEDIATE` takes the write lock up
    /// front, so the transaction never fails with `SQLITE_BUSY` when it first writes, as a deferred one can.
    /// Writes queue for the one writer, first come first served, up to `acquire_timeout`. Not retried (`f` runs
    /// once); [`transaction`](SqlitePool::transaction) retries `SQLITE_BUSY`. Recorded as
    /// `db.operation.name = TRANSACTION` on the writer's pool.
    ///
    /// Where `f` runs: on Tokio's blocking pool, so a commit's I/O never holds a runtime worker. With
    /// [`SqliteConfig::inline_writes`](crate::SqliteConfig::inline_writes) it runs like
    /// [`read`](SqlitePool::read)'s closure, inline on the calling worker when the gate allows, provided the
    /// write lock can be taken at once: `BEGIN IMMEDIATE` runs there with `busy_timeout` off, so when another
    /// process holds the lock the write goes to the blocking pool and waits there (up to `busy_timeout`), never
    /// on a worker. Since `f` may run on a worker, it must not block on async work; use
    /// [`interact`](SqlitePool::interact) for that.
    ///
    /// Cancel safety: dropping the future while it waits for the writer gives up the wait (nothing is
    /// written). Once `f` has started, dropping the future does not stop it: `f` runs to its end (inline, the
    /// future cannot be dropped while it runs; on the blocking pool, it finishes there) and the transaction is
    /// committed or rolled back as `f` decides; then the writer returns to the pool. Only the result is lost.
    pub async fn write<T, F>(&self, f: F) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut charge = None;
        let attempt = WriteOnce { inner: &self.inner, f: Some(f), charge: &mut charge };
        let result = run_operation(&self.inner.writer, TRANSACTION, attempt).await;
        yield_for(charge).await;
        result
    }

    /// Runs `f` with the writer connection itself, on Tokio's blocking pool, outside any transaction: for
    /// schema migrations, `VACUUM`, or transactions you drive yourself. A transaction `f` leaves open is rolled
    /// back before the writer is used again. A panic is returned as an error ([`Panicked`](crate::Panicked)).
    /// Recorded as `db.operation.name = _OTHER` (no statement is known).
    ///
    /// Cancel safety: as for [`write`](SqlitePool::write): once started, `f` runs to its end.
    pub async fn interact<R, F>(&self, f: F) -> Result<R, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.once(Place::Blocking, Role::Writer, "interact", OTHER, move |c| Ok(f(c))).await
    }
}

/// [`SqlitePool::write`]'s closure, run once in a `BEGIN IMMEDIATE` transaction on the writer.
struct WriteOnce<'a, F> {
    inner: &'a Inner,
    f: Option<F>,
    charge: &'a mut Option<Duration>,
}

impl<T, F> Attempt<SqliteManager> for WriteOnce<'_, F>
where
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    async fn run(&mut self, mut conn: SqlitePooled) -> Result<T, Failure<rusqlite::Error>> {
        let Some(mut f) = self.f.take() else {
            return Err(Failure::permanent(rusqlite::Error::InvalidQuery));
        };
        if let Some(inline) = self.inner.place(Role::Writer) {
            let busy = self.inner.target.config.busy_timeout;
            match catch("write", &mut conn, |c| write_inline(c, busy, f)) {
                // Another process holds the write lock: wait for it on the blocking pool, not on this worker.
                Ok(Inline::Busy(back)) => f = back,
                Ok(Inline::Done(result)) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    return result.map_err(Failure::permanent);
                }
                Err(panic) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    return Err(Failure::permanent(panic));
                }
            }
        }
        run_blocking("write", conn, move |c| write_transaction(c, f)).await.and_then(|r| r).map_err(Failure::permanent)
    }
}

/// What [`write_inline`] did.
pub(crate) enum Inline<T, B> {
    /// Ran the body in its transaction (committed on `Ok`, rolled back otherwise).
    Done(rusqlite::Result<T>),
    /// Another connection (process) holds the write lock; the body, unused, for the blocking pool.
    Busy(B),
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction here, on a runtime worker, if the write lock can be taken
/// at once: `busy_timeout` is off while `BEGIN IMMEDIATE` runs, so a lock held by another process is never
/// waited for on a worker (the caller sends the write to the blocking pool, where it waits up to
/// `busy_timeout`). Inside this process the one writer connection makes the lock free whenever it is checked
/// out.
pub(crate) fn write_inline<T, B>(c: &mut Connection, busy_timeout: Duration, body: B) -> Inline<T, B>
where
    B: FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
{
    if let Err(e) = c.busy_timeout(Duration::ZERO) {
        return Inline::Done(Err(e));
    }
    let begun = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => Ok(Inline::Done((|| {
            tx.busy_timeout(busy_timeout)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        })())),
        Err(e) => Err((e, body)),
    };
    match begun {
        Ok(done) => done,
        Err((e, body)) => match c.busy_timeout(busy_timeout) {
            Err(restore) => Inline::Done(Err(restore)),
            Ok(()) if crate::error::is_busy(&e) => Inline::Busy(body),
            Ok(()) => Inline::Done(Err(e)),
        },
    }
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction: committed on `Ok`, rolled back on `Err` or panic (rusqlite's
/// `Transaction` rolls back on drop).
pub(crate) fn write_transaction<T>(
    c: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}
