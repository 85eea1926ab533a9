#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod checkpoint;
mod config;
mod connect;
mod error;
pub mod helpers;
mod inline;
mod manager;
mod pool;
mod sync;

pub use checkpoint::{CheckpointMode, CheckpointResult, CheckpointStats, checkpoint};
pub use config::{JournalMode, SqliteConfig, Synchronous, TempStore};
pub use error::{ConnectionError, ErrorKind, Panicked, SqliteSyncError, Stage, error_type, is_busy, panicked};
pub use helpers::{Executed, FromRow};
pub use manager::{Role, SqliteManager, apply_pragmas};
pub use pool::{SqliteConnPool, SqliteHealth, SqlitePool, SqlitePoolBuilder, SqliteStats};
pub use sync::{MetricsEventHandler, SqliteR2d2Pool, SqliteR2d2Pooled, SqliteSyncManager, SqliteSyncPool, SyncMetrics};

/// The driver, re-exported so its version always matches.
pub use rusqlite;

/// The adapter contract [`SqliteConfig`] implements, for code generic over backends.
pub use aquifer_core::Adapter;

// The pool is a struct of its own (a writer pool and a reader pool), so the macro makes no `pool` newtype.
aquifer_core::adapter_reexports! {
    config: SqliteConfig,
    manager: SqliteManager,
    pool_type: SqlitePool,
    pooled: SqlitePooled,
    pool_error: SqlitePoolError,
    start_error: SqliteStartError,
    error: SqliteOperationError,
}
