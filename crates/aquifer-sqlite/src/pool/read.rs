//! The async read path: [`SqlitePool::read`] and [`SqlitePool::interact_read`]. Reads take a reader, never
//! the writer, so they do not queue behind writes; a `read` closure runs in one read transaction because that
//! gives all its statements one snapshot, which a run of autocommit statements would not, and in WAL mode it
//! blocks no one. Where the closure runs (inline or on the blocking pool) is [`super::run`]'s decision.

use rusqlite::Connection;

use super::SqlitePool;
use super::run::{OTHER, Place, TRANSACTION};
use crate::SqliteOperationError;
use crate::manager::Role;

impl SqlitePool {
    /// Runs `f` on a reader connection, inside a read transaction (one consistent snapshot for all its
    /// statements). Readers are `query_only`: a write fails with `SQLITE_READONLY`. Waits for a free reader up to
    /// `acquire_timeout`. Not retried (`f` runs once); [`fetch_one`](SqlitePool::fetch_one) and friends retry.
    /// Recorded as `db.operation.name = TRANSACTION` on the readers' pool.
    ///
    /// Where `f` runs: on a WAL database and a multi-thread runtime, right here on the calling worker thread,
    /// because a WAL reader never waits for the writer and a point read costs a few µs, far less than a hop to
    /// another thread. While all workers but one are already inside reads that have run longer than 100 µs,
    /// `f` goes to Tokio's blocking pool instead, so long reads never occupy every worker; on a current-thread
    /// runtime, or without WAL, it always does. Because `f` may run on a runtime worker, it must not block on
    /// async work (`Handle::block_on` panics there); use [`interact_read`](SqlitePool::interact_read), which
    /// always runs on the blocking pool, for that or for reads known to be long (reports, scans).
    ///
    /// A panic in `f` is returned as an error ([`Panicked`](crate::Panicked), found by
    /// [`panicked`](crate::panicked)); the read transaction is rolled back and the reader returns to the pool.
    ///
    /// Cancel safety: dropping the future while it waits for a reader gives up the wait (nothing is lost).
    /// Once `f` has started, dropping the future does not stop it: `f` runs to its end (inline, the future
    /// cannot be dropped while it runs; on the blocking pool, it finishes there), the connection then returns to
    /// the pool, and the result is discarded.
    pub async fn read<T, F>(&self, f: F) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.once(Place::AsPlaced, Role::Reader, "read", TRANSACTION, move |c| read_transaction(c, f)).await
    }

    /// Runs `f` with a reader connection itself (`query_only`, autocommit), on Tokio's blocking pool. A
    /// transaction `f` leaves open is rolled back before the reader is used again. Recorded as
    /// `db.operation.name = _OTHER`.
    ///
    /// Cancel safety: as for [`read`](SqlitePool::read): once started, `f` runs to its end.
    pub async fn interact_read<R, F>(&self, f: F) -> Result<R, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.once(Place::Blocking, Role::Reader, "interact_read", OTHER, move |c| Ok(f(c))).await
    }
}

/// Runs `f` in a read transaction: one snapshot for all its statements.
fn read_transaction<T>(c: &mut Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    // Cached BEGIN/COMMIT statements: a point read is a few µs, parsing these each time would add more.
    // If `f` panics the connection returns inside the transaction and the pool rolls it back.
    c.prepare_cached("BEGIN")?.execute([])?;
    match f(c) {
        Ok(value) => {
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(value)
        }
        Err(e) => {
            let _ = c.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
            Err(e)
        }
    }
}
