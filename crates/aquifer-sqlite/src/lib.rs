#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod checkpoint;
mod config;
mod error;
mod inline;
mod manager;
mod pool;
mod sync;

pub use checkpoint::{CheckpointMode, CheckpointResult, CheckpointStats, checkpoint};
pub use config::{JournalMode, SqliteConfig, Synchronous, TempStore};
pub use error::{ConnectionError, ErrorKind, SqliteError, Stage};
pub use manager::{Role, SqliteManager, apply_pragmas};
pub use pool::{
    SqliteConnPool, SqliteHealth, SqlitePool, SqlitePoolBuilder, SqlitePoolError, SqlitePooled, SqliteStats,
};
pub use sync::{MetricsEventHandler, SqliteR2d2Pool, SqliteR2d2Pooled, SqliteSyncManager, SqliteSyncPool, SyncMetrics};

/// The engine's types a service needs most, so it never has to depend on `aquifer-core` for the common case.
pub use aquifer_core::{
    ConfigError, HealthCheck, HealthRegistry, HealthReport, HealthStatus, PoolConfig, PoolError, State, Stats,
};
/// The driver, re-exported so its version always matches.
pub use rusqlite;
