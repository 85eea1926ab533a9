//! The sync API, for code without an async runtime: r2d2 pools of r2d2_sqlite connections, tuned by the same
//! pragmas through `with_init`, and an r2d2 [`HandleEvent`] that records the same OpenTelemetry instruments as
//! the async pools.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aquifer_core::metrics::{CONNECTION_STATE, DB_SYSTEM_NAME, DURATION_BUCKETS, ERROR_TYPE, POOL_NAME};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter};
use r2d2::event::{CheckinEvent, CheckoutEvent, TimeoutEvent};
use r2d2::{HandleEvent, ManageConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::checkpoint::{CheckpointMode, CheckpointResult, CheckpointStats, checkpoint};
use crate::config::SqliteConfig;
use crate::error::{ConnectionError, SqliteSyncError, Stage};
use crate::manager::{Role, Target, apply_pragmas};

/// An r2d2 pool of tuned SQLite connections.
pub type SqliteR2d2Pool = r2d2::Pool<SqliteSyncManager>;
/// A connection checked out of a [`SqliteR2d2Pool`]; dereferences to [`rusqlite::Connection`].
pub type SqliteR2d2Pooled = r2d2::PooledConnection<SqliteSyncManager>;

/// The OpenTelemetry instruments of one sync pool: the names, units, bucket boundaries and attributes
/// (`db.client.connection.pool.name`, `db.system.name`) of the async pools'.
pub struct SyncMetrics {
    wait_time: Histogram<f64>,
    use_time: Histogram<f64>,
    create_time: Histogram<f64>,
    timeouts: Counter<u64>,
    created: Counter<u64>,
    connect_errors: Counter<u64>,
    attrs: Arc<[KeyValue]>,
}

impl fmt::Debug for SyncMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncMetrics").field("attributes", &self.attrs).finish()
    }
}

impl SyncMetrics {
    /// The instruments of the pool named `pool_name`, made with `meter`
    /// ([`aquifer_core::metrics::default_meter`] unless you have your own).
    pub fn new(meter: &Meter, pool_name: &str) -> Arc<SyncMetrics> {
        let hist = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit(unit).with_description(description).build()
        };
        use aquifer_core::metrics::names;
        // The async pools' wording (semantic conventions), so a dashboard cannot tell the two pools apart.
        let [wait_time, use_time, create_time] = [
            (names::WAIT_TIME, "The time it took to obtain an open connection from the pool."),
            (names::USE_TIME, "The time between borrowing a connection and returning it to the pool."),
            (names::CREATE_TIME, "The time it took to create a new connection."),
        ]
        .map(|(name, description)| hist(name, description));
        let timed_out =
            "The number of connection timeouts that have occurred trying to obtain a connection from the pool.";
        let [timeouts, created, connect_errors] = [
            (names::TIMEOUTS, "{timeout}", timed_out),
            (names::CREATED, "{connection}", "Connections opened."),
            (names::CONNECT_ERRORS, "{error}", "Failed connect attempts, by error type."),
        ]
        .map(|(name, unit, description)| counter(name, unit, description));
        Arc::new(SyncMetrics {
            wait_time,
            use_time,
            create_time,
            timeouts,
            created,
            connect_errors,
            attrs: Arc::from(vec![
                KeyValue::new(POOL_NAME, pool_name.to_owned()),
                KeyValue::new(DB_SYSTEM_NAME, "sqlite"),
            ]),
        })
    }

    fn attrs(&self) -> &[KeyValue] {
        &self.attrs
    }
}

/// An r2d2 event handler recording `db.client.connection.wait_time` (on checkout), `use_time` (on checkin)
/// and `timeouts`, exactly as the async pools do. `create_time` is recorded by [`SqliteSyncManager`], since r2d2
/// reports no connect duration.
///
/// ```
/// use aquifer_sqlite::{MetricsEventHandler, SyncMetrics};
///
/// let metrics = SyncMetrics::new(&aquifer_core::metrics::default_meter(), "reports");
/// let manager = r2d2_sqlite::SqliteConnectionManager::memory();
/// let pool = r2d2::Pool::builder().event_handler(Box::new(MetricsEventHandler::new(metrics))).build(manager).unwrap();
/// drop(pool.get().unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct MetricsEventHandler {
    metrics: Arc<SyncMetrics>,
}

impl MetricsEventHandler {
    /// A handler feeding `metrics`.
    pub fn new(metrics: Arc<SyncMetrics>) -> Self {
        MetricsEventHandler { metrics }
    }
}

impl HandleEvent for MetricsEventHandler {
    fn handle_checkout(&self, event: CheckoutEvent) {
        self.metrics.wait_time.record(event.duration().as_secs_f64(), self.metrics.attrs());
    }

    fn handle_checkin(&self, event: CheckinEvent) {
        self.metrics.use_time.record(event.duration().as_secs_f64(), self.metrics.attrs());
    }

    fn handle_timeout(&self, _event: TimeoutEvent) {
        self.metrics.timeouts.add(1, self.metrics.attrs());
    }
}

/// r2d2_sqlite's [`SqliteConnectionManager`], built with `with_init` applying the configured pragmas, wrapped
/// to time connects (`db.client.connection.create_time`), to name the database path in connect errors, and to
/// never hand out a connection left inside a transaction (r2d2 cannot reset one, so it is discarded).
pub struct SqliteSyncManager {
    inner: SqliteConnectionManager,
    raw: String,
    path: String,
    metrics: Option<Arc<SyncMetrics>>,
}

impl fmt::Debug for SqliteSyncManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSyncManager").field("path", &self.path).finish()
    }
}

impl SqliteSyncManager {
    /// A manager for `config`'s database in `role`, recording into `metrics` when given.
    ///
    /// `:memory:` opens a private in-memory database per manager, so build the writer and the readers of one
    /// database through [`SqliteSyncPool`], which shares it.
    pub fn new(config: &SqliteConfig, role: Role, metrics: Option<Arc<SyncMetrics>>) -> Self {
        Self::with_target(&Target::new(config.clone()), role, metrics)
    }

    pub(crate) fn with_target(target: &Arc<Target>, role: Role, metrics: Option<Arc<SyncMetrics>>) -> Self {
        let config = target.config.clone();
        let inner = SqliteConnectionManager::file(&target.open_path)
            .with_flags(target.flags(role))
            .with_init(move |c| apply_pragmas(c, &config, role));
        SqliteSyncManager { inner, raw: target.open_path.clone(), path: target.display.clone(), metrics }
    }
}

impl ManageConnection for SqliteSyncManager {
    type Connection = Connection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<Connection, ConnectionError> {
        let started = Instant::now();
        let result = self.inner.connect().map_err(|e| ConnectionError::opening(&self.raw, &self.path, e));
        if let Some(m) = &self.metrics {
            match &result {
                Ok(_) => {
                    m.create_time.record(started.elapsed().as_secs_f64(), m.attrs());
                    m.created.add(1, m.attrs());
                }
                Err(e) => {
                    let mut attrs = m.attrs().to_vec();
                    attrs.push(KeyValue::new(ERROR_TYPE, e.kind.as_str()));
                    m.connect_errors.add(1, &attrs);
                }
            }
        }
        result
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), ConnectionError> {
        conn.prepare_cached("SELECT 1")
            .and_then(|mut s| s.query_row([], |_| Ok(())))
            .map_err(|e| ConnectionError::new(&self.path, Stage::Validate, e))
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        !conn.is_autocommit() || conn.is_busy()
    }
}

/// A WAL-tuned SQLite database for code without an async runtime: the same one-writer / N-readers split and
/// pragmas as [`SqlitePool`](crate::SqlitePool), on two r2d2 pools, with the same metrics. A background thread
/// checkpoints the WAL.
///
/// Cheap to clone. Panics in closures unwind into the caller as usual in sync code; a write's transaction is
/// rolled back on the way.
///
/// ```
/// use aquifer_sqlite::SqliteSyncPool;
///
/// let dir = tempfile::tempdir().unwrap();
/// let pool = SqliteSyncPool::builder(dir.path().join("jobs.db")).readers(2).open_sync()?;
/// pool.write(|tx| tx.execute_batch("CREATE TABLE jobs (id INTEGER PRIMARY KEY, done INTEGER NOT NULL)"))?;
/// pool.write(|tx| tx.execute("INSERT INTO jobs (done) VALUES (0)", []))?;
/// let open: i64 = pool.read(|c| c.query_row("SELECT count(*) FROM jobs WHERE done = 0", [], |r| r.get(0)))?;
/// assert_eq!(open, 1);
/// # Ok::<(), aquifer_sqlite::SqliteSyncError>(())
/// ```
#[derive(Clone)]
pub struct SqliteSyncPool {
    inner: Arc<SyncInner>,
}

struct SyncInner {
    writer: SqliteR2d2Pool,
    readers: SqliteR2d2Pool,
    target: Arc<Target>,
    stop: AtomicBool,
    thread: parking_lot::Mutex<Option<std::thread::Thread>>,
}

impl Drop for SyncInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.get_mut().take() {
            t.unpark();
        }
    }
}

impl fmt::Debug for SqliteSyncPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        inner.target.debug_pool(f, "SqliteSyncPool", &inner.writer.state(), &inner.readers.state())
    }
}

impl SqliteSyncPool {
    /// Starts building a pool for the database at `path`; finish with
    /// [`open_sync`](crate::SqlitePoolBuilder::open_sync).
    pub fn builder(path: impl AsRef<std::path::Path>) -> crate::SqlitePoolBuilder {
        crate::SqlitePoolBuilder::new(path)
    }

    /// Opens the database described by `config`: one tuned connection first (so a bad path fails at once with
    /// [`SqliteSyncError::Open`] naming it), then the writer pool (one connection) and the reader pool
    /// (`pool.max_size` connections, `pool.min_idle` opened now), and the checkpoint thread. Recording into the
    /// global meter provider's instruments.
    pub fn open(config: SqliteConfig) -> Result<SqliteSyncPool, SqliteSyncError> {
        Self::open_with(config, None)
    }

    pub(crate) fn open_with(config: SqliteConfig, meter: Option<Meter>) -> Result<SqliteSyncPool, SqliteSyncError> {
        config.validate()?;
        if config.single_process && !config.is_memory() {
            return Err(aquifer_core::ConfigError::Invalid {
                field: "single_process",
                value: "true".into(),
                reason: "is for the async SqlitePool only: the sync pool opens connections through r2d2_sqlite, \
                         which cannot choose SQLite's unix-excl VFS"
                    .into(),
            }
            .into());
        }
        let target = Target::new(config);
        // Creates the file and sets the journal mode (and keeps an in-memory database alive) before the r2d2
        // pools open their connections.
        drop(target.open(Role::Writer)?);
        let c = &target.config;
        let meter = meter.unwrap_or_else(aquifer_core::metrics::default_meter);
        let base = c.pool.name.clone().unwrap_or_else(|| format!("{}/main", target.display));
        let (writer_name, readers_name) = (format!("{base}/writer"), format!("{base}/readers"));

        let build = |role: Role, name: &str, max: usize, min_idle: usize, idle: Option<Duration>| {
            let metrics = SyncMetrics::new(&meter, name);
            r2d2::Pool::builder()
                .max_size(u32::try_from(max).unwrap_or(u32::MAX))
                .min_idle(Some(u32::try_from(min_idle).unwrap_or(u32::MAX)))
                .connection_timeout(c.pool.acquire_timeout)
                .idle_timeout(idle)
                .max_lifetime(c.pool.max_lifetime)
                // SQLite connections do not go stale like sockets; broken ones are caught on return.
                .test_on_check_out(false)
                .event_handler(Box::new(MetricsEventHandler::new(Arc::clone(&metrics))))
                .build(SqliteSyncManager::with_target(&target, role, Some(metrics)))
        };
        let writer = build(Role::Writer, &writer_name, 1, 1, None)?;
        let readers = build(Role::Reader, &readers_name, c.pool.max_size, c.pool.min_idle, c.pool.idle_timeout)?;

        let interval = c.checkpoint_interval.filter(|_| !c.is_memory());
        let inner = Arc::new(SyncInner {
            writer,
            readers,
            target,
            stop: AtomicBool::new(false),
            thread: parking_lot::Mutex::new(None),
        });
        register_observers(&meter, &writer_name, &inner, |i| &i.writer);
        register_observers(&meter, &readers_name, &inner, |i| &i.readers);
        if let Some(every) = interval {
            let weak = Arc::downgrade(&inner);
            let handle = std::thread::Builder::new()
                .name("aquifer-sqlite-checkpoint".into())
                .spawn(move || checkpoint_thread(weak, every))
                .map_err(|e| {
                    SqliteSyncError::Query(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(format!("cannot start the checkpoint thread: {e}")),
                    ))
                })?;
            *inner.thread.lock() = Some(handle.thread().clone());
        }
        Ok(SqliteSyncPool { inner })
    }

    /// Runs `f` on a reader inside a read transaction (one snapshot), waiting up to `acquire_timeout` for a
    /// free reader. Readers are `query_only`.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, SqliteSyncError> {
        let conn = self.inner.readers.get()?;
        // Cached BEGIN/COMMIT, as in the async pool. A panic in `f` leaves the transaction open, so the
        // connection is discarded on return (`has_broken`).
        conn.prepare_cached("BEGIN")?.execute([])?;
        match f(&conn) {
            Ok(value) => {
                conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(value)
            }
            Err(e) => {
                let _ = conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
                Err(e.into())
            }
        }
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer: committed on `Ok`, rolled back on `Err` or
    /// panic (the panic then continues to unwind).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T, SqliteSyncError> {
        let mut conn = self.inner.writer.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `PRAGMA wal_checkpoint(mode)` on the writer now.
    pub fn checkpoint(&self, mode: CheckpointMode) -> Result<CheckpointResult, SqliteSyncError> {
        let conn = self.inner.writer.get()?;
        Ok(checkpoint(&conn, mode)?)
    }

    /// The writer's r2d2 pool (size 1).
    pub fn writer(&self) -> &SqliteR2d2Pool {
        &self.inner.writer
    }

    /// The readers' r2d2 pool.
    pub fn readers(&self) -> &SqliteR2d2Pool {
        &self.inner.readers
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.target.config
    }

    /// The background checkpoints' counters.
    pub fn checkpoint_stats(&self) -> CheckpointStats {
        self.inner.target.checkpointer.stats()
    }

    /// Runs `PRAGMA optimize` on the writer (when `optimize_on_close`) and stops the checkpoint thread. The
    /// r2d2 pools close their connections when the last clone of this pool is dropped.
    pub fn close(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.inner.thread.lock().take() {
            t.unpark();
        }
        if self.config().optimize_on_close {
            match self.inner.writer.get() {
                Ok(conn) => {
                    if let Err(e) = conn.execute_batch("PRAGMA optimize") {
                        tracing::warn!(path = %self.inner.target.display, error = %e, "PRAGMA optimize on close failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %self.inner.target.display, error = %e, "PRAGMA optimize on close: no writer")
                }
            }
        }
    }
}

fn checkpoint_thread(weak: Weak<SyncInner>, every: Duration) {
    loop {
        std::thread::park_timeout(every);
        let Some(inner) = weak.upgrade() else { return };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(mode) = inner.target.checkpointer.plan() else { continue };
        let Ok(conn) = inner.writer.get_timeout(inner.target.config.busy_timeout) else { continue };
        let result = checkpoint(&conn, mode).map_err(|e| e.to_string());
        drop(conn);
        inner.target.checkpointer.record(&result);
    }
}

/// `db.client.connection.count` (idle / used) and the size limits, observed from r2d2's state at collection.
fn register_observers(meter: &Meter, name: &str, inner: &Arc<SyncInner>, pick: fn(&SyncInner) -> &SqliteR2d2Pool) {
    let base = vec![KeyValue::new(POOL_NAME, name.to_owned()), KeyValue::new(DB_SYSTEM_NAME, "sqlite")];
    let with = |state: &'static str| {
        let mut v = base.clone();
        v.push(KeyValue::new(CONNECTION_STATE, state));
        v
    };
    let (idle, used) = (with("idle"), with("used"));
    meter
        .i64_observable_up_down_counter(aquifer_core::metrics::names::CONNECTION_COUNT)
        .with_unit("{connection}")
        .with_description("The number of connections that are currently in state described by the state attribute.")
        .with_callback(on_pool(inner, pick, move |pool, o| {
            let s = pool.state();
            o.observe(i64::from(s.idle_connections), &idle);
            o.observe(i64::from(s.connections - s.idle_connections), &used);
        }))
        .build();
    let attrs = base;
    meter
        .i64_observable_up_down_counter(aquifer_core::metrics::names::MAX)
        .with_unit("{connection}")
        .with_description("The maximum number of open connections allowed.")
        .with_callback(on_pool(inner, pick, move |pool, o| o.observe(i64::from(pool.max_size()), &attrs)))
        .build();
}

/// An instrument's callback: `observe` on the pool `pick` selects, while the pool is alive (held weakly, so
/// the meter does not keep it open).
fn on_pool(
    inner: &Arc<SyncInner>,
    pick: fn(&SyncInner) -> &SqliteR2d2Pool,
    observe: impl Fn(&SqliteR2d2Pool, &dyn AsyncInstrument<i64>) + Send + Sync + 'static,
) -> impl Fn(&dyn AsyncInstrument<i64>) + Send + Sync + 'static {
    let weak = Arc::downgrade(inner);
    move |o| {
        if let Some(inner) = weak.upgrade() {
            observe(pick(&inner), o);
        }
    }
}
