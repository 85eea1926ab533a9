//! SQLite's side of the [`Adapter`] contract: its names, building the writer and reader pools, opening for
//! inspection without creating a file, and the type-erased view of its pool. The constructors (`connect`,
//! `connect_env`, ...) are generated from the contract in lib.rs.

use aquifer_core::{Adapter, AnyPool, ConfigError, Ping, PingError, PoolConfig, State, Stats};

use crate::{ConnectionError, SqliteConfig, SqlitePool, SqlitePoolBuilder, SqliteStartError};

impl SqliteConfig {
    /// A builder with these settings, to add a meter or a leak hook before
    /// [`connect`](SqlitePoolBuilder::connect).
    pub fn builder(&self) -> SqlitePoolBuilder {
        SqlitePoolBuilder::from_config(self.clone())
    }
}

impl Adapter for SqliteConfig {
    type Pool = SqlitePool;
    type Error = ConnectionError;

    const SYSTEM: &'static str = "sqlite";
    const ENV_PREFIX: &'static str = "SQLITE";
    const URL_SCHEMES: &'static [&'static str] = &["sqlite", "file"];
    const ACCEPTS_PATHS: bool = true;

    fn from_url(url: &str) -> Self {
        SqliteConfig::from_url(url)
    }

    fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        SqliteConfig::from_lookup(prefix, lookup)
    }

    fn pool_config(&self) -> &PoolConfig {
        &self.pool
    }

    fn pool_config_mut(&mut self) -> &mut PoolConfig {
        &mut self.pool
    }

    /// Builds the writer and reader pools without opening anything: the writer opens (and creates the file)
    /// on first use, and the first reader to open opens a writer connection first, so reads of a database
    /// nobody wrote yet find it created. Must be called within a Tokio runtime.
    fn build(&self) -> Result<SqlitePool, SqliteStartError> {
        SqlitePool::build(self.clone(), Default::default())
    }

    /// Waits until the writer's and the readers' first connections are open (the writer's first: it creates
    /// the file and sets the journal mode), so a missing directory, a file that is not a database or a
    /// read-only location fails here, at once, as [`StartError::Connect`](aquifer_core::StartError::Connect)
    /// with `is_permanent()` and the [`ConnectionError`] naming the path inside; a lock another process holds
    /// past `busy_timeout` fails after the pool's `fail_fast_after`. Starts the checkpoint task.
    ///
    /// Cancel safety: dropping the future drops the pools, which closes them: connects in flight are
    /// abandoned (one already running on the blocking pool finishes there and its connection is closed).
    async fn start(pool: SqlitePool) -> Result<SqlitePool, SqliteStartError> {
        pool.start().await
    }

    fn for_inspection(&mut self, _application_name: &str) {
        // An operator's check must not create an empty database where a typo points.
        self.create_if_missing = false;
    }
}

#[aquifer_core::async_trait]
impl AnyPool for SqlitePool {
    fn system(&self) -> &str {
        AnyPool::system(self.readers())
    }

    /// The readers' state: the pool that serves reads (the writer holds one connection).
    fn state(&self) -> State {
        self.readers().state()
    }

    /// The readers' counters.
    fn stats(&self) -> Stats {
        self.readers().stats()
    }

    /// A validation query on a reader.
    /// The readers' server (the database path).
    fn server(&self) -> String {
        AnyPool::server(self.readers())
    }

    /// The readers' settings.
    fn pool_config(&self) -> &PoolConfig {
        self.readers().config()
    }

    async fn ping(&self) -> Result<Ping, PingError> {
        AnyPool::ping(self.readers()).await
    }

    async fn close(&self) {
        SqlitePool::close(self).await;
    }

    /// Pauses the writer and the readers.
    fn pause(&self) {
        self.writer().pause();
        self.readers().pause();
    }

    /// Resumes the writer and the readers.
    fn resume(&self) {
        self.writer().resume();
        self.readers().resume();
    }

    /// Whether the readers are paused (`pause` and `resume` act on both pools).
    fn is_paused(&self) -> bool {
        self.readers().is_paused()
    }

    /// Retires the writer's and the readers' connections; returns how many idle ones were closed now.
    fn retire(&self) -> usize {
        self.writer().retire() + self.readers().retire()
    }

    /// Resizes the readers (the writer is one connection by design).
    fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        self.readers().resize(max_size)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
