//! [`SqlitePool`]: why a struct of two engine pools rather than one newtype like the other adapters'. SQLite
//! lets one connection write at a time, so the writer is a pool of its own with one connection: writes queue in
//! the pool, first come first served, instead of racing for SQLite's lock and failing with `SQLITE_BUSY`; and
//! the readers, `query_only`, are another pool beside it, which in WAL mode the writer never blocks.
//!
//! This file holds the struct and how it comes to be (building both pools, opening their first connections);
//! what it does lives one concept per file below it, so each can be read whole: the [`builder`], the [`read`]
//! and [`write`](mod@write) paths, [`run`] (where any closure runs: inline on the calling worker or on the
//! blocking pool), the WAL [`checkpoint`]s, [`stats`], [`health`] and [`close`].

mod builder;
mod checkpoint;
mod close;
mod health;
mod read;
pub(crate) mod run;
mod stats;
pub(crate) mod write;

use std::sync::Arc;

use aquifer_core::{Manager, Pool, PoolConfig, StartError};

use crate::SqliteStartError;
use crate::config::SqliteConfig;
use crate::inline::InlineGate;
use crate::manager::{Role, SqliteManager, Target};
use checkpoint::checkpoint_task;

pub(crate) use builder::Extras;
pub use builder::SqlitePoolBuilder;
pub use health::SqliteHealth;
pub use stats::SqliteStats;

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
    /// The prefix of both engine pools' names.
    name: String,
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
        let inner = &self.inner;
        inner.target.debug_pool(f, "SqlitePool", &inner.writer.state(), &inner.readers.state())
    }
}

impl SqlitePool {
    /// Validates `config` and builds both pools and the checkpoint task, opening nothing yet.
    pub(crate) fn build(config: SqliteConfig, extras: Extras) -> Result<SqlitePool, SqliteStartError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let target = Target::new(config);
        let config = &target.config;
        let (name, writer_config, reader_config) =
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
        let inner = Arc::new(Inner { name, writer, readers, target, inline, task: parking_lot::Mutex::new(None) });
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

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The pool's name, under which [`HealthCheck`](aquifer_core::HealthCheck) lists it: the prefix of its
    /// engine pools' names, `{name}/writer` and `{name}/readers`. Set with [`SqlitePoolBuilder::name`] (or
    /// `pool.name`); by default the database path followed by `/main`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The writer pool (size 1), for `get()`, `state()`, `health()` and the rest of the engine's API.
    pub fn writer(&self) -> &SqliteConnPool {
        &self.inner.writer
    }

    /// The reader pool.
    pub fn readers(&self) -> &SqliteConnPool {
        &self.inner.readers
    }

    /// What the helpers do about N+1 loops inside a scope ([`aquifer_core::n_plus_one`]), for the writer and
    /// the readers alike. Default: warn.
    pub fn set_n_plus_one(&self, mode: aquifer_core::n_plus_one::NPlusOneMode) {
        self.writer().set_n_plus_one(mode);
        self.readers().set_n_plus_one(mode);
    }

    /// The configuration the pool was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.target.config
    }

    /// The database path as configured (`:memory:` for a private in-memory database).
    pub fn path(&self) -> &str {
        &self.inner.target.display
    }
}

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
}

/// The pool's name and its writer's and readers' pool settings: the writer keeps its single connection open.
fn pool_configs(config: &SqliteConfig, writer: &SqliteManager) -> (String, PoolConfig, PoolConfig) {
    let base = config.pool.name.clone().unwrap_or_else(|| writer.descriptor().default_pool_name());
    let writer = PoolConfig {
        name: Some(format!("{base}/writer")),
        max_size: 1,
        min_idle: 1,
        idle_timeout: None,
        ..config.pool.clone()
    };
    let readers = PoolConfig { name: Some(format!("{base}/readers")), ..config.pool.clone() };
    (base, writer, readers)
}
