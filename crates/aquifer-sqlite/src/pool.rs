//! [`SqlitePool`]: one writer connection and N `query_only` readers, used from async code through the helpers
//! (`fetch_one`, `execute`, `transaction`... in [`crate::helpers`]) and through closures (`read`, `write`,
//! `interact`). Every call goes through the engine's operation runner ([`aquifer_core::run_operation`]);
//! short reads and writes run inline on the calling worker (see [`crate::inline`]), raw access and everything
//! the gate turns away on Tokio's blocking pool.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aquifer_core::{
    Attempt, Failure, HealthReport, HealthStatus, LeakReport, Manager, Pool, PoolConfig, RetryPolicy, StartError,
    State, Stats, run_operation,
};
use opentelemetry::metrics::Meter;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::checkpoint::{CheckpointMode, CheckpointResult, CheckpointStats, checkpoint};
use crate::config::{JournalMode, SqliteConfig, Synchronous, TempStore};
use crate::error::{SqliteSyncError, panic_error};
use crate::inline::{InlineGate, InlineRead, LONG_READ, budget_units};
use crate::manager::{Role, SqliteManager, Target};
use crate::{SqliteOperationError, SqlitePooled, SqliteStartError};

/// The engine's pool of SQLite connections (the writer's or the readers').
pub type SqliteConnPool = Pool<SqliteManager>;

/// A WAL-tuned SQLite database for async code: one writer connection (a pool of size 1, so writes queue in
/// the pool, first come first served, instead of fighting over SQLite's lock) and a pool of `query_only`
/// readers that never block it and that it never blocks.
///
/// Every connection is tuned on connect (see [`SqliteConfig`]). Work runs through the helpers every Aquifer
/// adapter has ([`fetch_one`](SqlitePool::fetch_one), [`fetch_optional`](SqlitePool::fetch_optional),
/// [`fetch_all`](SqlitePool::fetch_all) on a reader; [`execute`](SqlitePool::execute) and
/// [`transaction`](SqlitePool::transaction) on the writer, retried on `SQLITE_BUSY`), or through closures:
/// [`read`](SqlitePool::read) (a read transaction; on a WAL database it runs inline on the calling worker, a
/// few µs, unless the runtime has no worker to spare), [`write`](SqlitePool::write) (a `BEGIN IMMEDIATE`
/// transaction, committed on `Ok`, rolled back on `Err` or panic; inline too when the write lock is free), and
/// [`interact`](SqlitePool::interact) /
/// [`interact_read`](SqlitePool::interact_read) for raw access on the blocking pool. A background task
/// checkpoints the WAL so it stays bounded under constant reads; [`close`](SqlitePool::close) runs
/// `PRAGMA optimize`.
///
/// Cheap to clone: clones share the pools. Dropping the last clone closes them (without `PRAGMA optimize`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir().unwrap();
/// let pool = aquifer_sqlite::connect(&dir.path().join("books.db").to_string_lossy()).await?;
/// pool.execute("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)", ()).await?;
/// pool.execute("INSERT INTO authors (name) VALUES (?1)", ("Ursula",)).await?;
/// let (n,): (i64,) = pool.fetch_one("SELECT count(*) FROM authors", ()).await?;
/// assert_eq!(n, 1);
/// pool.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlitePool {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    writer: SqliteConnPool,
    readers: SqliteConnPool,
    target: Arc<Target>,
    /// Which calls run inline on the calling worker (see [`crate::inline`]).
    inline: InlineGate,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("path", &self.inner.target.display)
            .field("writer", &self.inner.writer.state())
            .field("readers", &self.inner.readers.state())
            .finish()
    }
}

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
    on_leak: Option<LeakHook>,
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

/// The health of both pools; `status` is the worse of the two.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SqliteHealth {
    /// The worse of the two pools' statuses.
    pub status: HealthStatus,
    /// The writer pool's report.
    pub writer: HealthReport,
    /// The reader pool's report.
    pub readers: HealthReport,
}

impl SqlitePool {
    /// Starts building a pool for the database at `path` (a file, `:memory:` or an SQLite URI), to set a meter
    /// or single settings before [`connect`](SqlitePoolBuilder::connect).
    pub fn builder(path: impl AsRef<std::path::Path>) -> SqlitePoolBuilder {
        SqlitePoolBuilder::new(path)
    }

    /// Validates `config` and builds both pools and the checkpoint task, opening nothing yet.
    pub(crate) fn build(config: SqliteConfig, extras: Extras) -> Result<SqlitePool, SqliteStartError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let target = Target::new(config);
        let config = &target.config;
        let (writer_config, reader_config) =
            pool_configs(config, &SqliteManager::with_target(Arc::clone(&target), Role::Writer));
        let mut writer =
            Pool::builder(SqliteManager::with_target(Arc::clone(&target), Role::Writer)).config(writer_config);
        let mut readers =
            Pool::builder(SqliteManager::with_target(Arc::clone(&target), Role::Reader)).config(reader_config);
        if let Some(m) = &extras.meter {
            writer = writer.meter(m.clone());
            readers = readers.meter(m.clone());
        }
        if let Some(hook) = &extras.on_leak {
            let (w, r) = (Arc::clone(hook), Arc::clone(hook));
            writer = writer.on_leak(move |report| w(report));
            readers = readers.on_leak(move |report| r(report));
        }
        let writer = writer.build()?;
        let readers = readers.build()?;
        // Only WAL readers never wait for a lock; with a rollback journal (or the in-memory VFS) a reader waits
        // in SQLite's busy handler while the writer commits, which must not happen on a runtime worker.
        let inline = InlineGate::new(&runtime, target.wal());
        let interval = config.checkpoint_interval.filter(|_| !config.is_memory());
        let inner = Arc::new(Inner { writer, readers, target, inline, task: parking_lot::Mutex::new(None) });
        if let Some(every) = interval {
            *inner.task.lock() = Some(tokio::spawn(checkpoint_task(Arc::downgrade(&inner), every)));
        }
        Ok(SqlitePool { inner })
    }

    /// Opens the first connections, the writer's first (it creates the file and sets the journal mode the
    /// readers rely on); on failure closes both pools and says whether the cause is permanent.
    pub(crate) async fn start(self) -> Result<SqlitePool, SqliteStartError> {
        for pool in [&self.inner.writer, &self.inner.readers] {
            if let Err(source) = pool.warm_up().await {
                let permanent = source.backend_error().is_some_and(|e| pool.manager().is_permanent(e));
                let name = pool.name().to_owned();
                self.shut().await;
                return Err(StartError::Connect { pool: name, permanent, source: Box::new(source) });
            }
        }
        Ok(self)
    }

    async fn shut(&self) -> usize {
        if let Some(task) = self.inner.task.lock().take() {
            task.abort();
        }
        let (readers, writer) = tokio::join!(self.inner.readers.close(), self.inner.writer.close());
        readers + writer
    }

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
        self.once(Role::Reader, "read", TRANSACTION, move |c| read_transaction(c, f)).await
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer connection: committed when `f` returns `Ok`,
    /// rolled back when it returns `Err` or panics (a panic is returned as an error,
    /// [`Panicked`](crate::Panicked), and the writer stays usable). `BEGIN IMMEDIATE` takes the write lock up
    /// front, so the transaction never fails with `SQLITE_BUSY` when it first writes, as a deferred one can.
    /// Writes queue for the one writer, first come first served, up to `acquire_timeout`. Not retried (`f` runs
    /// once); [`transaction`](SqlitePool::transaction) retries `SQLITE_BUSY`. Recorded as
    /// `db.operation.name = TRANSACTION` on the writer's pool.
    ///
    /// Where `f` runs: on Tokio's blocking pool, so a commit's I/O never holds a runtime worker. With
    /// [`SqliteConfig::inline_writes`] it runs like [`read`](SqlitePool::read)'s closure, inline on the calling
    /// worker when the gate allows, provided the write lock can be taken at once: `BEGIN IMMEDIATE` runs there
    /// with `busy_timeout` off, so when another process holds the lock the write goes to the blocking pool and
    /// waits there (up to `busy_timeout`), never on a worker. Since `f` may run on a worker, it must not block
    /// on async work; use [`interact`](SqlitePool::interact) for that.
    ///
    /// Cancel safety: dropping the future while it waits for the writer gives up the wait (nothing is
    /// written). Once `f` has started, dropping the future does not stop it: `f` runs to its end (inline, the
    /// future cannot be dropped while it runs; on the blocking pool, it finishes there) and the transaction is
    /// committed or rolled back as `f` decides; then the writer returns to the pool. Only the result is lost.
    pub async fn write<T, F>(&self, f: F) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut charge = None;
        let attempt = WriteOnce { inner: &self.inner, f: Some(f), charge: &mut charge };
        let result = run_operation(&self.inner.writer, TRANSACTION, attempt).await;
        yield_for(charge).await;
        result
    }

    /// Runs `f` with the writer connection itself, on Tokio's blocking pool, outside any transaction: for
    /// schema migrations, `VACUUM`, or transactions you drive yourself. A transaction `f` leaves open is rolled
    /// back before the writer is used again. A panic is returned as an error ([`Panicked`](crate::Panicked)).
    /// Recorded as `db.operation.name = _OTHER` (no statement is known).
    ///
    /// Cancel safety: as for [`write`](SqlitePool::write): once started, `f` runs to its end.
    pub async fn interact<R, F>(&self, f: F) -> Result<R, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.blocking(Role::Writer, "interact", OTHER, move |c| Ok(f(c))).await
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
        self.blocking(Role::Reader, "interact_read", OTHER, move |c| Ok(f(c))).await
    }

    /// Runs `PRAGMA wal_checkpoint(mode)` on the writer now, on the blocking pool. FULL, RESTART and TRUNCATE
    /// block writes while they wait (up to `busy_timeout`) for readers to move to the newest snapshot.
    ///
    /// Cancel safety: as for [`write`](SqlitePool::write): once started, the checkpoint runs to its end.
    pub async fn checkpoint(&self, mode: CheckpointMode) -> Result<CheckpointResult, SqliteOperationError> {
        self.blocking(Role::Writer, "checkpoint", "PRAGMA", move |c| checkpoint(c, mode)).await
    }

    /// Runs `f` once, through the operation runner, where [`Inner::place`] says.
    pub(crate) async fn once<T, F>(
        &self,
        role: Role,
        call: &'static str,
        operation: &'static str,
        f: F,
    ) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_once(Some(&*self.inner), role, call, operation, f).await
    }

    /// Runs `f` once on the blocking pool, through the operation runner.
    async fn blocking<T, F>(
        &self,
        role: Role,
        call: &'static str,
        operation: &'static str,
        f: F,
    ) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_once(None, role, call, operation, f).await
    }

    /// [`once`](SqlitePool::once) and [`blocking`](SqlitePool::blocking): `placer` decides where `f` runs
    /// (`None`: always on the blocking pool, which leaves nothing to yield for).
    async fn run_once<T, F>(
        &self,
        placer: Option<&Inner>,
        role: Role,
        call: &'static str,
        operation: &'static str,
        f: F,
    ) -> Result<T, SqliteOperationError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let mut charge = None;
        let attempt = Once { inner: placer, role, call, f: Some(f), charge: &mut charge };
        let result = run_operation(self.inner.pool(role), operation, attempt).await;
        yield_for(charge).await;
        result
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The writer pool (size 1), for `get()`, `state()`, `health()` and the rest of the engine's API.
    pub fn writer(&self) -> &SqliteConnPool {
        &self.inner.writer
    }

    /// The reader pool.
    pub fn readers(&self) -> &SqliteConnPool {
        &self.inner.readers
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.target.config
    }

    /// The database path as configured (`:memory:` for a private in-memory database).
    pub fn path(&self) -> &str {
        &self.inner.target.display
    }

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

    /// Checks both pools (a validation query on each).
    ///
    /// Cancel safety: dropping the future returns the connections it used, like any dropped `get()`.
    pub async fn health(&self) -> SqliteHealth {
        let (writer, readers) = tokio::join!(self.inner.writer.health(), self.inner.readers.health());
        SqliteHealth { status: writer.status.max(readers.status), writer, readers }
    }

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
            let optimize = self.blocking(Role::Writer, "close", "PRAGMA", |c| c.execute_batch("PRAGMA optimize"));
            if let Err(error) = optimize.await {
                tracing::warn!(path = %self.path(), %error, "PRAGMA optimize on close failed");
            }
        }
        self.shut().await
    }
}

/// `db.operation.name` of the closures that run a transaction (`read`, `write`, `transaction`), as every
/// adapter's `transaction` helper records.
pub(crate) const TRANSACTION: &str = "TRANSACTION";
/// `db.operation.name` of raw access (`interact`, `interact_read`): no statement is known.
const OTHER: &str = "_OTHER";

impl Inner {
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn pool(&self, role: Role) -> &SqliteConnPool {
        match role {
            Role::Writer => &self.writer,
            Role::Reader => &self.readers,
        }
    }

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

/// [`SqlitePool::write`]'s closure, run once in a `BEGIN IMMEDIATE` transaction on the writer.
struct WriteOnce<'a, F> {
    inner: &'a Inner,
    f: Option<F>,
    charge: &'a mut Option<Duration>,
}

impl<T, F> Attempt<SqliteManager> for WriteOnce<'_, F>
where
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    async fn run(&mut self, mut conn: SqlitePooled) -> Result<T, Failure<rusqlite::Error>> {
        let Some(mut f) = self.f.take() else {
            return Err(Failure::permanent(rusqlite::Error::InvalidQuery));
        };
        if let Some(inline) = self.inner.place(Role::Writer) {
            let busy = self.inner.target.config.busy_timeout;
            match catch("write", &mut conn, |c| write_inline(c, busy, f)) {
                // Another process holds the write lock: wait for it on the blocking pool, not on this worker.
                Ok(Inline::Busy(back)) => f = back,
                Ok(Inline::Done(result)) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    return result.map_err(Failure::permanent);
                }
                Err(panic) => {
                    drop(conn);
                    *self.charge = Some(inline.finish());
                    return Err(Failure::permanent(panic));
                }
            }
        }
        run_blocking("write", conn, move |c| write_transaction(c, f)).await.and_then(|r| r).map_err(Failure::permanent)
    }
}

/// What [`write_inline`] did.
pub(crate) enum Inline<T, B> {
    /// Ran the body in its transaction (committed on `Ok`, rolled back otherwise).
    Done(rusqlite::Result<T>),
    /// Another connection (process) holds the write lock; the body, unused, for the blocking pool.
    Busy(B),
}

/// Runs `body` in a `BEGIN IMMEDIATE` transaction here, on a runtime worker, if the write lock can be taken
/// at once: `busy_timeout` is off while `BEGIN IMMEDIATE` runs, so a lock held by another process is never
/// waited for on a worker (the caller sends the write to the blocking pool, where it waits up to
/// `busy_timeout`). Inside this process the one writer connection makes the lock free whenever it is checked
/// out.
pub(crate) fn write_inline<T, B>(c: &mut Connection, busy_timeout: Duration, body: B) -> Inline<T, B>
where
    B: FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
{
    if let Err(e) = c.busy_timeout(Duration::ZERO) {
        return Inline::Done(Err(e));
    }
    let begun = match c.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => Ok(Inline::Done((|| {
            tx.busy_timeout(busy_timeout)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        })())),
        Err(e) => Err((e, body)),
    };
    match begun {
        Ok(done) => done,
        Err((e, body)) => match c.busy_timeout(busy_timeout) {
            Err(restore) => Inline::Done(Err(restore)),
            Ok(()) if crate::error::is_busy(&e) => Inline::Busy(body),
            Ok(()) => Inline::Done(Err(e)),
        },
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

/// The writer's and the readers' pool settings: the writer keeps its single connection open.
fn pool_configs(config: &SqliteConfig, writer: &SqliteManager) -> (PoolConfig, PoolConfig) {
    let base = config.pool.name.clone().unwrap_or_else(|| writer.descriptor().default_pool_name());
    let writer = PoolConfig {
        name: Some(format!("{base}/writer")),
        max_size: 1,
        min_idle: 1,
        idle_timeout: None,
        ..config.pool.clone()
    };
    let readers = PoolConfig { name: Some(format!("{base}/readers")), ..config.pool.clone() };
    (writer, readers)
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

/// Runs `f` in a `BEGIN IMMEDIATE` transaction: committed on `Ok`, rolled back on `Err` or panic (rusqlite's
/// `Transaction` rolls back on drop).
pub(crate) fn write_transaction<T>(
    c: &mut Connection,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
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

/// Checkpoints the WAL every `every`: PASSIVE, or TRUNCATE once it passed `wal_size_limit`. Holds the pool
/// weakly and ends with it.
async fn checkpoint_task(weak: Weak<Inner>, every: Duration) {
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
