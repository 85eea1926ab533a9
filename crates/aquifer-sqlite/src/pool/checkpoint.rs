//! The async pool's WAL checkpoints: the manual [`SqlitePool::checkpoint`] and the background task that keeps
//! the WAL bounded under constant reads (why it is needed, and its PASSIVE/TRUNCATE policy, are in
//! [`crate::checkpoint`](mod@crate::checkpoint)). The task holds the pool weakly so that dropping the last
//! handle still closes it.

use std::sync::Weak;
use std::time::{Duration, Instant};

use super::run::{Place, run_blocking};
use super::{Inner, SqlitePool};
use crate::SqliteOperationError;
use crate::checkpoint::{CheckpointMode, CheckpointResult, checkpoint};
use crate::manager::Role;

impl SqlitePool {
    /// Runs `PRAGMA wal_checkpoint(mode)` on the writer now, on the blocking pool. FULL, RESTART and TRUNCATE
    /// block writes while they wait (up to `busy_timeout`) for readers to move to the newest snapshot.
    ///
    /// Cancel safety: as for [`write`](SqlitePool::write): once started, the checkpoint runs to its end.
    pub async fn checkpoint(&self, mode: CheckpointMode) -> Result<CheckpointResult, SqliteOperationError> {
        self.once(Place::Blocking, Role::Writer, "checkpoint", "PRAGMA", move |c| checkpoint(c, mode)).await
    }
}

/// Checkpoints the WAL every `every`: PASSIVE, or TRUNCATE once it passed `wal_size_limit`. Holds the pool
/// weakly and ends with it.
pub(super) async fn checkpoint_task(weak: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let Some(mode) = inner.target.checkpointer.plan() else { continue };
        // A writer busy for longer than busy_timeout is doing the work; try again next tick.
        let Ok(conn) = inner.writer.get_timeout(inner.target.config.busy_timeout).await else { continue };
        let started = Instant::now();
        let result = run_blocking("checkpoint", conn, move |c| checkpoint(c, mode)).await.and_then(|r| r);
        let error = result.as_ref().err().map(crate::error::error_type);
        inner.writer.record_operation("PRAGMA", started.elapsed(), error);
        inner.target.checkpointer.record(&result.map_err(|e| e.to_string()));
    }
}
