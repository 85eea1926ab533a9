//! [`SqliteStats`]: both pools' counters and the checkpoints' in one snapshot, read without touching a
//! connection, so a stats endpoint never waits for the work it reports on.

use aquifer_core::{State, Stats};
use serde::Serialize;

use super::SqlitePool;
use crate::checkpoint::CheckpointStats;

/// Both pools' state and what they have done, plus the background checkpoints.
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct SqliteStats {
    /// The writer pool's state.
    pub writer_state: State,
    /// The writer pool's counters.
    pub writer: Stats,
    /// The reader pool's state.
    pub readers_state: State,
    /// The reader pool's counters.
    pub readers: Stats,
    /// The background checkpoints.
    pub checkpoints: CheckpointStats,
}

impl SqlitePool {
    /// Both pools' state and counters, and the background checkpoints'.
    pub fn stats(&self) -> SqliteStats {
        SqliteStats {
            writer_state: self.inner.writer.state(),
            writer: self.inner.writer.stats(),
            readers_state: self.inner.readers.state(),
            readers: self.inner.readers.stats(),
            checkpoints: self.inner.target.checkpointer.stats(),
        }
    }
}
