//! Where a closure runs, decided in one place for reads, writes, raw access and the helpers: inline on the
//! calling worker when [`crate::inline`]'s gate allows it (a point read costs less than a hop to another
//! thread), else on Tokio's blocking pool. Wherever it ran, a panic comes back as an error and the connection
//! goes back to its pool; an inline call then pays the runtime back for the worker time it took
//! ([`yield_for`]), since it never returned `Pending` while it ran.

use std::time::Duration;

use aquifer_core::{Attempt, Failure, run_operation};
use rusqlite::Connection;

use super::{Inner, SqlitePool};
use crate::error::panic_error;
use crate::inline::{InlineRead, LONG_READ, budget_units};
use crate::manager::{Role, SqliteManager};
use crate::{SqliteOperationError, SqlitePooled};

/// `db.operation.name` of the closures that run a transaction (`read`, `write`, `transaction`), as every
/// adapter's `transaction` helper records.
pub(crate) const TRANSACTION: &str = "TRANSACTION";
/// `db.operation.name` of raw access (`interact`, `interact_read`): no statement is known.
pub(super) const OTHER: &str = "_OTHER";

impl Inner {
    /// Where a call on `role`'s connection runs: inline on this worker (`Some`), or on the blocking pool.
    pub(crate) fn place(&self, role: Role) -> Option<InlineRead<'_>> {
        match role {
            Role::Reader => self.inline.enter(),
            Role::Writer if self.target.config.inline_writes => self.inline.enter(),
            Role::Writer => None,
        }
    }
}

/// An operation's closure, run once: closures are `FnOnce`, so a failure is never retried.
struct Once<'a, F> {
    /// `None`: always on the blocking pool.
    inner: Option<&'a Inner>,
    role: Role,
    call: &'static str,
    f: Option<F>,
    charge: &'a mut Option<Duration>,
}

impl<T, F> Attempt<SqliteManager> for Once<'_, F>
where
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    async fn run(&mut self, mut conn: SqlitePooled) -> Result<T, Failure<rusqlite::Error>> {
        let Some(f) = self.f.take() else {
            // The runner only calls again after a retryable failure, which this attempt never reports.
            return Err(Failure::permanent(rusqlite::Error::InvalidQuery));
        };
        let result = match self.inner.and_then(|inner| inner.place(self.role)) {
            Some(inline) => {
                let result = catch(self.call, &mut conn, f);
                drop(conn);
                *self.charge = Some(inline.finish());
                result
            }
            None => run_blocking(self.call, conn, f).await,
        };
        result.and_then(|r| r).map_err(Failure::permanent)
    }
}

/// Where [`SqlitePool::once`] may run its closure.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Place {
    /// Where [`Inner::place`] says: inline on the calling worker when its gate allows, else the blocking pool.
    AsPlaced,
    /// Always on the blocking pool, which leaves nothing to yield for.
    Blocking,
}

impl SqlitePool {
    /// Runs `f` once, through the operation runner, where `place` says.
    pub(crate) async fn once<T, F>(
        &self,
        place: Place,
        role: Role,
        call: &'static str,
        operation: &'static str,
        f: F,
    ) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let placer = match place {
            Place::AsPlaced => Some(&*self.inner),
            Place::Blocking => None,
        };
        let mut charge = None;
        let attempt = Once { inner: placer, role, call, f: Some(f), charge: &mut charge };
        let result = run_operation(self.inner.pool(role), operation, attempt).await;
        yield_for(charge).await;
        result
    }
}

/// Gives the worker back to the scheduler after an inline call, in proportion to how long the call held it.
///
/// The call never returned to the scheduler while it ran: charge the task's coop budget for the time it
/// took, so a task calling in a loop hands its worker back after ~32 µs of SQLite work and the tasks queued
/// behind it (a write's completion, a request) wait no longer than that. A long call yields at once. Runs after
/// the operation was recorded, so its duration does not include the yield.
pub(crate) async fn yield_for(inline: Option<Duration>) {
    let Some(elapsed) = inline else { return };
    if elapsed > LONG_READ {
        tokio::task::yield_now().await;
    } else {
        for _ in 0..budget_units(elapsed) {
            tokio::task::coop::consume_budget().await;
        }
    }
}

/// Runs `f` with the checked-out connection right here, on the calling thread (see [`crate::inline`]). A
/// panic in `f` is caught and returned as an error, as on the blocking pool.
pub(crate) fn catch<R>(
    call: &'static str,
    conn: &mut SqlitePooled,
    f: impl FnOnce(&mut Connection) -> R,
) -> rusqlite::Result<R> {
    // The connection is returned (and rolled back if `f` left a transaction open) whether `f` panics or not;
    // nothing else is touched by `f`, so observing its state after a panic is sound.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).map_err(|payload| panic_error(call, payload))
}

/// Moves the checked-out connection onto the blocking pool with `f`; the connection returns to its pool there
/// when `f` is done, whether or not anyone still awaits the result. A panic in `f` is returned as an error.
pub(crate) async fn run_blocking<R: Send + 'static>(
    call: &'static str,
    mut conn: SqlitePooled,
    f: impl FnOnce(&mut Connection) -> R + Send + 'static,
) -> rusqlite::Result<R> {
    let task = tokio::task::spawn_blocking(move || {
        let result = f(&mut conn);
        drop(conn);
        result
    });
    match task.await {
        Ok(result) => Ok(result),
        Err(join) if join.is_panic() => Err(panic_error(call, join.into_panic())),
        Err(join) => Err(panic_error(call, Box::new(join.to_string()))),
    }
}
