//! WAL checkpoints: the manual [`checkpoint`] call and the periodic policy both pools run in the background.
//!
//! SQLite checkpoints automatically (PASSIVE, after a commit leaves the WAL longer than `wal_autocheckpoint`),
//! but a PASSIVE checkpoint never waits for readers: it copies frames up to the oldest snapshot still in use, and
//! the WAL restarts from its beginning only once every frame was copied while no reader used it. Under constant
//! overlapping reads that never happens and the WAL grows without bound (checkpoint starvation). The periodic
//! task runs PASSIVE normally and TRUNCATE once the file passes `wal_size_limit`: TRUNCATE blocks new writes
//! (it holds the writer), waits up to `busy_timeout` for readers to move to the newest snapshot, copies
//! everything and empties the file.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use serde::Serialize;

/// `PRAGMA wal_checkpoint` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointMode {
    /// Copy what can be copied without waiting for anyone.
    Passive,
    /// Wait for the writer, then copy everything readers allow.
    Full,
    /// FULL, then wait until readers use the newest snapshot so the next write restarts the WAL.
    Restart,
    /// RESTART, then truncate the WAL file to zero bytes.
    Truncate,
}

impl CheckpointMode {
    /// The mode as the pragma spells it.
    pub fn as_sql(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Full => "FULL",
            CheckpointMode::Restart => "RESTART",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

/// What one checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckpointResult {
    /// The mode that ran.
    pub mode: CheckpointMode,
    /// True when a FULL/RESTART/TRUNCATE checkpoint could not finish within `busy_timeout` (readers kept an
    /// old snapshot, or another process wrote).
    pub busy: bool,
    /// Frames in the WAL (-1 when the database is not in WAL mode).
    pub wal_frames: i64,
    /// Frames copied into the database (-1 when the database is not in WAL mode).
    pub checkpointed_frames: i64,
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`. Blocking: it may wait up to `busy_timeout` for readers.
///
/// ```
/// use aquifer_sqlite::{CheckpointMode, checkpoint};
///
/// let dir = tempfile::tempdir().unwrap();
/// let conn = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
/// conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
/// let result = checkpoint(&conn, CheckpointMode::Truncate).unwrap();
/// assert!(!result.busy);
/// assert_eq!(result.wal_frames, 0);
/// ```
pub fn checkpoint(conn: &Connection, mode: CheckpointMode) -> rusqlite::Result<CheckpointResult> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({})", mode.as_sql()), [], |r| {
        Ok(CheckpointResult {
            mode,
            busy: r.get::<_, i64>(0)? != 0,
            wal_frames: r.get(1)?,
            checkpointed_frames: r.get(2)?,
        })
    })
}

/// Counters of the background checkpoints of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CheckpointStats {
    /// Checkpoints run by the background task.
    pub runs: u64,
    /// Of those, TRUNCATE checkpoints (the WAL had passed `wal_size_limit`).
    pub truncates: u64,
    /// Checkpoints that could not finish (readers or another process held on past `busy_timeout`).
    pub busy: u64,
    /// Checkpoints that failed with an error (logged).
    pub errors: u64,
    /// The WAL file's size in bytes when last looked at.
    pub wal_bytes: u64,
}

/// The periodic checkpoint policy and its counters; one per pool.
#[derive(Debug, Default)]
pub(crate) struct Checkpointer {
    /// The WAL file, once the writer has opened the database (never, in memory).
    wal_path: OnceLock<PathBuf>,
    limit: u64,
    runs: AtomicU64,
    truncates: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
    wal_bytes: AtomicU64,
}

impl Checkpointer {
    /// Checkpoints truncating the WAL above `limit` bytes; the WAL file is set by [`set_db_file`](Self::set_db_file).
    pub(crate) fn new(limit: u64) -> Self {
        Checkpointer { limit, ..Checkpointer::default() }
    }

    /// `db_file` is the main database file as SQLite resolved it (`Connection::path`; empty for a temporary
    /// database, which has no WAL file to watch).
    pub(crate) fn set_db_file(&self, db_file: &str) {
        if !db_file.is_empty() {
            let _ = self.wal_path.set(PathBuf::from(format!("{db_file}-wal")));
        }
    }

    /// The WAL file's current size (0 when absent).
    pub(crate) fn wal_bytes(&self) -> u64 {
        let bytes = self.wal_path.get().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
        self.wal_bytes.store(bytes, Ordering::Relaxed);
        bytes
    }

    /// What to run now: nothing for an empty WAL, TRUNCATE past the limit, PASSIVE otherwise.
    pub(crate) fn plan(&self) -> Option<CheckpointMode> {
        match self.wal_bytes() {
            0 => None,
            n if n > self.limit => Some(CheckpointMode::Truncate),
            _ => Some(CheckpointMode::Passive),
        }
    }

    pub(crate) fn record(&self, result: &Result<CheckpointResult, String>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(r) => {
                if r.mode == CheckpointMode::Truncate {
                    self.truncates.fetch_add(1, Ordering::Relaxed);
                }
                if r.busy {
                    self.busy.fetch_add(1, Ordering::Relaxed);
                    if r.mode != CheckpointMode::Passive {
                        tracing::warn!(
                            mode = r.mode.as_sql(),
                            wal_frames = r.wal_frames,
                            "WAL checkpoint could not finish within busy_timeout: readers keep old snapshots; \
                             the WAL keeps growing until they let go"
                        );
                    }
                }
                tracing::debug!(mode = r.mode.as_sql(), busy = r.busy, wal_frames = r.wal_frames, "WAL checkpoint");
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }

    pub(crate) fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            runs: self.runs.load(Ordering::Relaxed),
            truncates: self.truncates.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            wal_bytes: self.wal_bytes(),
        }
    }
}
