//! [`SqlitePoolBuilder`]: SQLite's own builder, because the engine's `PoolBuilder` builds one pool and this
//! one builds two from one configuration; what it adds besides the configuration (a meter, a leak hook) goes to
//! both pools alike, so the writer's and the readers' metrics and leaks are reported the same way.

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{LeakReport, PoolConfig, RetryPolicy};
use opentelemetry::metrics::Meter;

use super::SqlitePool;
use crate::SqliteStartError;
use crate::config::{JournalMode, SqliteConfig, Synchronous, TempStore};
use crate::error::SqliteSyncError;

/// Builds a [`SqlitePool`] (or a [`SqliteSyncPool`](crate::SqliteSyncPool)); every setter overrides one field
/// of [`SqliteConfig`] (see there for defaults and trade-offs).
#[must_use = "a builder does nothing until connect() is called"]
#[derive(Debug, Clone)]
pub struct SqlitePoolBuilder {
    config: SqliteConfig,
    extras: Extras,
}

/// A leak hook shared by both engine pools.
type LeakHook = Arc<dyn Fn(&LeakReport) + Send + Sync>;

/// What a builder adds to both engine pools besides the configuration.
#[derive(Clone, Default)]
pub(crate) struct Extras {
    pub(crate) meter: Option<Meter>,
    pub(crate) on_leak: Option<LeakHook>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("meter", &self.meter.is_some())
            .field("on_leak", &self.on_leak.is_some())
            .finish()
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )+
    };
}

impl SqlitePoolBuilder {
    /// A builder for the database at `path` with the tuned defaults.
    pub fn new(path: impl AsRef<std::path::Path>) -> Self {
        SqlitePoolBuilder { config: SqliteConfig::new(path.as_ref().to_string_lossy()), extras: Extras::default() }
    }

    pub(crate) fn from_config(config: SqliteConfig) -> Self {
        SqlitePoolBuilder { config, extras: Extras::default() }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: SqliteConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the reader pool's maximum size (`pool.max_size`).
    pub fn readers(mut self, n: usize) -> Self {
        self.config.pool.max_size = n;
        self
    }

    /// Sets the pool name prefix: the pools are named `{name}/writer` and `{name}/readers`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.pool.name = Some(name.into());
        self
    }

    setters! {
        /// Sets [`SqliteConfig::create_if_missing`].
        create_if_missing: bool,
        /// Sets [`SqliteConfig::journal_mode`].
        journal_mode: JournalMode,
        /// Sets [`SqliteConfig::synchronous`].
        synchronous: Synchronous,
        /// Sets [`SqliteConfig::busy_timeout`].
        busy_timeout: Duration,
        /// Sets [`SqliteConfig::foreign_keys`].
        foreign_keys: bool,
        /// Sets [`SqliteConfig::temp_store`].
        temp_store: TempStore,
        /// Sets [`SqliteConfig::cache_size`] (negative: KiB; positive: pages).
        cache_size: i64,
        /// Sets [`SqliteConfig::mmap_size`] in bytes.
        mmap_size: u64,
        /// Sets [`SqliteConfig::journal_size_limit`] in bytes (-1: no limit).
        journal_size_limit: i64,
        /// Sets [`SqliteConfig::wal_autocheckpoint`] in pages.
        wal_autocheckpoint: u32,
        /// Sets [`SqliteConfig::checkpoint_interval`] (`None`: no background checkpoints).
        checkpoint_interval: Option<Duration>,
        /// Sets [`SqliteConfig::wal_size_limit`] in bytes.
        wal_size_limit: u64,
        /// Sets [`SqliteConfig::optimize_on_close`].
        optimize_on_close: bool,
        /// Sets [`SqliteConfig::inline_writes`].
        inline_writes: bool,
        /// Sets [`SqliteConfig::single_process`].
        single_process: bool,
        /// Sets the reader pool's settings (and the writer's timeouts).
        pool: PoolConfig,
        /// Sets [`SqliteConfig::retry`], the helpers' retries of `SQLITE_BUSY`.
        retry: RetryPolicy,
    }

    /// Records metrics with this meter instead of the global one.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.extras.meter = Some(meter);
        self
    }

    /// Calls `hook` for each leak report of either async pool (see `PoolConfig::leak_detection_threshold`),
    /// besides logging it. The sync pool (r2d2) has no leak detection and ignores it.
    pub fn on_leak(mut self, hook: impl Fn(&LeakReport) + Send + Sync + 'static) -> Self {
        self.extras.on_leak = Some(Arc::new(hook));
        self
    }

    /// The configuration built so far.
    pub fn config_ref(&self) -> &SqliteConfig {
        &self.config
    }

    /// Opens the database and both pools and waits for their first connections: see
    /// [`SqliteConfig::connect`]. Must run in a Tokio runtime.
    ///
    /// Cancel safety: dropping the future drops the pools, which closes them: connects in flight are abandoned
    /// (one already running on the blocking pool finishes there and its connection is closed).
    pub async fn connect(self) -> Result<SqlitePool, SqliteStartError> {
        SqlitePool::build(self.config, self.extras)?.start().await
    }

    /// Builds both pools without opening anything: see [`SqliteConfig::connect_lazy`]. Must be called within
    /// a Tokio runtime.
    pub fn connect_lazy(self) -> Result<SqlitePool, SqliteStartError> {
        SqlitePool::build(self.config, self.extras)
    }

    /// Opens the database with a synchronous r2d2 pool pair instead: see
    /// [`SqliteSyncPool::open`](crate::SqliteSyncPool::open).
    pub fn open_sync(self) -> Result<crate::SqliteSyncPool, SqliteSyncError> {
        crate::sync::SqliteSyncPool::open_with(self.config, self.extras.meter)
    }
}

impl SqlitePool {
    /// Starts building a pool for the database at `path` (a file, `:memory:` or an SQLite URI), to set a meter
    /// or single settings before [`connect`](SqlitePoolBuilder::connect).
    pub fn builder(path: impl AsRef<std::path::Path>) -> SqlitePoolBuilder {
        SqlitePoolBuilder::new(path)
    }
}
