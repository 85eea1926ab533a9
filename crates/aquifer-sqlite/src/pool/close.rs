//! Closing: an explicit [`SqlitePool::close`] besides drop, because `PRAGMA optimize` needs the writer before
//! the pools close, and an `async` close can wait for connections still in use, which a drop cannot.

use super::SqlitePool;
use super::run::Place;
use crate::manager::Role;

impl SqlitePool {
    /// Closes the database: stops the checkpoint task, runs `PRAGMA optimize` on the writer (when
    /// `optimize_on_close`), then closes both pools, waiting up to `close_timeout` for connections in use.
    /// Later calls fail with [`PoolError::Closed`](aquifer_core::PoolError::Closed) (inside
    /// `OperationError::Acquire`). Returns how many connections were still in use at the deadline.
    ///
    /// Cancel safety: dropping the future stops the waiting, not the closing: pools already marked closed
    /// stay closed, and a running `PRAGMA optimize` finishes on the blocking pool.
    pub async fn close(&self) -> usize {
        if let Some(task) = self.inner.task.lock().take() {
            task.abort();
        }
        if self.config().optimize_on_close && !self.inner.writer.is_closed() {
            let optimize =
                self.once(Place::Blocking, Role::Writer, "close", "PRAGMA", |c| c.execute_batch("PRAGMA optimize"));
            if let Err(error) = optimize.await {
                tracing::warn!(path = %self.path(), %error, "PRAGMA optimize on close failed");
            }
        }
        self.shut().await
    }

    pub(super) async fn shut(&self) -> usize {
        if let Some(task) = self.inner.task.lock().take() {
            task.abort();
        }
        let (readers, writer) = tokio::join!(self.inner.readers.close(), self.inner.writer.close());
        readers + writer
    }
}
