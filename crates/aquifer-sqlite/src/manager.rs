//! [`SqliteManager`]: opens and tunes rusqlite connections for the engine, as the writer or as a reader.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use aquifer_core::{Descriptor, Manager, Operations, RetryPolicy};
use rusqlite::{Connection, OpenFlags};

use crate::checkpoint::Checkpointer;
use crate::config::{JournalMode, SqliteConfig, display_path};
use crate::error::{ConnectionError, ErrorKind, Stage};

/// SQLite's VFS for [`SqliteConfig::single_process`](crate::SqliteConfig::single_process): POSIX locking with
/// one exclusive lock per process and the WAL index in heap memory.
const SINGLE_PROCESS_VFS: &str = "unix-excl";

/// The file system path of a database path or `file:` URI; `None` for a URI this cannot read without
/// decoding (an authority other than `localhost`, percent escapes).
fn file_path(path: &str) -> Option<&std::path::Path> {
    let path = path.trim();
    let Some(uri) = path.strip_prefix("file:") else { return Some(std::path::Path::new(path)) };
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let uri = match uri.strip_prefix("//") {
        Some(rest) => {
            let (authority, path) = rest.split_at(rest.find('/')?);
            if !authority.is_empty() && authority != "localhost" {
                return None;
            }
            path
        }
        None => uri,
    };
    (!uri.is_empty() && !uri.contains('%')).then(|| std::path::Path::new(uri))
}

/// True when `path` does not exist but its directory does (a missing directory is `CannotOpen`'s own case).
fn file_missing_from_its_directory(path: &std::path::Path) -> bool {
    let dir_exists = match path.parent() {
        None => true,
        Some(d) => d.as_os_str().is_empty() || d.is_dir(),
    };
    dir_exists && !path.exists()
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The one connection that writes: sets the journal mode, commits, checkpoints.
    Writer,
    /// A `query_only` connection: reads, never writes.
    Reader,
}

impl Role {
    /// `writer` or `reader`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// Where connections go and how they are tuned; shared by the writer's and the readers' managers.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) config: SqliteConfig,
    /// What SQLite is asked to open: the configured path, or a private `memdb` URI for `:memory:`.
    pub(crate) open_path: String,
    /// The path for messages, metrics and health (URI parameters redacted).
    pub(crate) display: String,
    /// The WAL file and the periodic checkpoints' counters; the file is known once the writer has opened.
    pub(crate) checkpointer: Checkpointer,
    /// True once a writer connection has opened: the file exists and is in the configured journal mode.
    prepared: parking_lot::Mutex<bool>,
    /// Keeps an in-memory database alive while the pools live, whatever connections they close.
    keeper: OnceLock<std::sync::Mutex<Connection>>,
}

impl Target {
    /// A pool's `Debug` (the async and the sync pool show the same): the path, the writer's and the readers' state.
    pub(crate) fn debug_pool(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        pool: &str,
        writer: &dyn std::fmt::Debug,
        readers: &dyn std::fmt::Debug,
    ) -> std::fmt::Result {
        f.debug_struct(pool).field("path", &self.display).field("writer", writer).field("readers", readers).finish()
    }

    pub(crate) fn new(config: SqliteConfig) -> Arc<Target> {
        let path = config.path.trim();
        // `:memory:` would give every connection its own database. The memdb VFS shares one database between
        // the connections of this process that name it, with ordinary locking (busy_timeout applies), unlike
        // shared-cache mode whose table locks fail at once with SQLITE_LOCKED.
        let open_path = if path.is_empty() || path == ":memory:" {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("file:/aquifer-memory-{}-{n}?vfs=memdb", std::process::id())
        } else {
            path.to_owned()
        };
        let display = if path.is_empty() || path == ":memory:" { ":memory:".to_owned() } else { display_path(path) };
        let checkpointer = Checkpointer::new(config.wal_size_limit);
        Arc::new(Target {
            config,
            open_path,
            display,
            checkpointer,
            prepared: parking_lot::Mutex::new(false),
            keeper: OnceLock::new(),
        })
    }

    pub(crate) fn flags(&self, role: Role) -> OpenFlags {
        let mut flags =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // Readers never create: the writer (opened first) does, so a typo in a reader's path cannot make an
        // empty database.
        if role == Role::Writer && self.config.create_if_missing {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        flags
    }

    /// Opens and tunes one connection. Blocking: call it on a blocking thread.
    ///
    /// A reader's first open opens a writer connection first (and closes it), so that readers of a pool that
    /// has not written yet (a lazy pool) find the file created and in the configured journal mode.
    pub(crate) fn open(&self, role: Role) -> Result<Connection, ConnectionError> {
        if role == Role::Reader {
            let mut prepared = self.prepared.lock();
            if !*prepared {
                let writer = self.open_raw(Role::Writer)?;
                self.writer_opened(&writer)?;
                *prepared = true;
            }
        }
        let conn = self.open_raw(role)?;
        if role == Role::Writer {
            self.writer_opened(&conn)?;
            *self.prepared.lock() = true;
        }
        Ok(conn)
    }

    fn open_raw(&self, role: Role) -> Result<Connection, ConnectionError> {
        let opened = if self.config.single_process && !self.config.is_memory() {
            Connection::open_with_flags_and_vfs(&self.open_path, self.flags(role), SINGLE_PROCESS_VFS)
        } else {
            Connection::open_with_flags(&self.open_path, self.flags(role))
        };
        let mut conn = opened.map_err(|e| self.open_failed(e))?;
        apply_pragmas(&mut conn, &self.config, role)
            .map_err(|e| ConnectionError::opening(&self.open_path, &self.display, e))?;
        Ok(conn)
    }

    /// The error of a failed open: [`ErrorKind::Missing`] rather than `CannotOpen` when the file does not exist
    /// and the configuration says not to create it (the other reasons of `SQLITE_CANTOPEN` are a missing
    /// directory and permissions).
    fn open_failed(&self, e: rusqlite::Error) -> ConnectionError {
        let mut error = ConnectionError::opening(&self.open_path, &self.display, e);
        if error.kind == ErrorKind::CannotOpen
            && !self.config.create_if_missing
            && !self.config.is_memory()
            && file_path(&self.config.path).is_some_and(file_missing_from_its_directory)
        {
            error.kind = ErrorKind::Missing;
        }
        error
    }

    /// Records what only an open writer tells: the database file (for the WAL's size); for an in-memory
    /// database, opens the connection that keeps it alive.
    fn writer_opened(&self, writer: &Connection) -> Result<(), ConnectionError> {
        if self.config.is_memory() {
            if self.keeper.get().is_none() {
                let keeper = Connection::open_with_flags(&self.open_path, self.flags(Role::Writer))
                    .map_err(|e| ConnectionError::opening(&self.open_path, &self.display, e))?;
                let _ = self.keeper.set(std::sync::Mutex::new(keeper));
            }
        } else if let Some(file) = writer.path() {
            self.checkpointer.set_db_file(file);
        }
        Ok(())
    }

    /// True when reads never wait for the writer: a file in WAL mode.
    pub(crate) fn wal(&self) -> bool {
        self.config.journal_mode == JournalMode::Wal && !self.config.is_memory()
    }
}

/// Applies every configured pragma to a fresh connection; readers end `query_only`. The same function tunes
/// the async pools' connections and, through r2d2_sqlite's `with_init`, the sync pool's.
///
/// ```
/// use aquifer_sqlite::{Role, SqliteConfig, apply_pragmas};
///
/// let mut conn = rusqlite::Connection::open_in_memory().unwrap();
/// apply_pragmas(&mut conn, &SqliteConfig::default(), Role::Writer).unwrap();
/// let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
/// assert_eq!(fk, 1);
/// ```
pub fn apply_pragmas(conn: &mut Connection, c: &SqliteConfig, role: Role) -> rusqlite::Result<()> {
    conn.busy_timeout(c.busy_timeout)?;
    if role == Role::Writer {
        // Persistent in the file; readers must not race the writer for the lock this needs. In-memory
        // databases answer "memory" whatever is asked, which is fine.
        let mode: String =
            conn.query_row(&format!("PRAGMA journal_mode = {}", c.journal_mode.as_sql()), [], |r| r.get(0))?;
        if c.journal_mode == JournalMode::Wal
            && !mode.eq_ignore_ascii_case("wal")
            && !mode.eq_ignore_ascii_case("memory")
        {
            tracing::warn!(requested = "wal", got = %mode, "SQLite refused journal_mode=WAL (a file system without shared memory?); concurrent reads will block on writes");
        }
    }
    // Rows returned by some of these pragmas (mmap_size, journal_size_limit) are ignored by execute_batch.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};
         PRAGMA foreign_keys = {};
         PRAGMA temp_store = {};
         PRAGMA cache_size = {};
         PRAGMA mmap_size = {};
         PRAGMA journal_size_limit = {};
         PRAGMA wal_autocheckpoint = {};",
        c.synchronous.as_sql(),
        if c.foreign_keys { "ON" } else { "OFF" },
        c.temp_store.as_sql(),
        c.cache_size,
        c.mmap_size,
        c.journal_size_limit,
        c.wal_autocheckpoint,
    ))?;
    if role == Role::Reader {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    Ok(())
}

/// Creates and checks the writer's or the readers' connections for an [`aquifer_core::Pool`].
///
/// Connects run on Tokio's blocking pool (opening a file and setting the journal mode may wait for locks).
/// Returns are checked without I/O: a connection left inside a transaction (`!is_autocommit()`) is rolled back
/// before anyone else gets it, and one with a statement still running is discarded.
#[derive(Debug, Clone)]
pub struct SqliteManager {
    target: Arc<Target>,
    role: Role,
}

impl SqliteManager {
    /// A manager for `config`'s database in `role`. [`SqlitePool`](crate::SqlitePool) builds both for you.
    pub fn new(config: SqliteConfig, role: Role) -> SqliteManager {
        SqliteManager { target: Target::new(config), role }
    }

    pub(crate) fn with_target(target: Arc<Target>, role: Role) -> SqliteManager {
        SqliteManager { target, role }
    }

    /// The role of this manager's connections.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The database path (as given; `:memory:` for a private in-memory database).
    pub fn path(&self) -> &str {
        &self.target.display
    }
}

#[aquifer_core::async_trait]
impl Manager for SqliteManager {
    type Connection = Connection;
    type Error = ConnectionError;

    async fn connect(&self) -> Result<Connection, ConnectionError> {
        let target = Arc::clone(&self.target);
        let role = self.role;
        match tokio::task::spawn_blocking(move || target.open(role)).await {
            Ok(result) => result,
            Err(join) => Err(ConnectionError::panicked(&self.target.display, join)),
        }
    }

    async fn validate(&self, conn: &mut Connection) -> Result<(), ConnectionError> {
        // No I/O: SQLite answers from the connection itself, so this runs inline.
        conn.prepare_cached("SELECT 1")
            .and_then(|mut s| s.query_row([], |_| Ok(())))
            .map_err(|e| ConnectionError::new(&self.target.display, Stage::Validate, e))
    }

    fn is_broken(&self, conn: &mut Connection) -> bool {
        // A statement still stepping (a leaked Statement) cannot be repaired from here.
        conn.is_busy()
    }

    fn needs_reset(&self, conn: &mut Connection) -> bool {
        !conn.is_autocommit()
    }

    async fn reset(&self, conn: &mut Connection) -> Result<(), ConnectionError> {
        // Rolling back only drops locks and cached pages (WAL) or replays a journal the writer just wrote:
        // quick enough to run inline in this background task.
        conn.execute_batch("ROLLBACK").map_err(|e| ConnectionError::new(&self.target.display, Stage::Reset, e))
    }

    async fn server_version(&self, _conn: &mut Connection) -> Result<Option<String>, ConnectionError> {
        Ok(Some(format!("SQLite {}", rusqlite::version())))
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor::new("sqlite").address(self.target.display.clone()).namespace("main")
    }

    fn error_type(&self, error: &ConnectionError) -> Cow<'static, str> {
        Cow::Borrowed(error.kind.as_str())
    }

    /// A file that is not a database, that cannot be opened or created (a missing directory, a permission), a
    /// missing file the pool may not create, a read-only or a damaged database: retrying does not fix these
    /// soon. A lock held by another process (`Locked`) and a full disk are not permanent.
    fn is_permanent(&self, error: &ConnectionError) -> bool {
        matches!(
            error.kind,
            ErrorKind::NotADatabase
                | ErrorKind::CannotOpen
                | ErrorKind::Missing
                | ErrorKind::ReadOnly
                | ErrorKind::Corrupt
        )
    }
}

impl Operations for SqliteManager {
    type OperationError = rusqlite::Error;

    fn retry_policy(&self) -> &RetryPolicy {
        &self.target.config.retry
    }

    fn operation_error_type(&self, error: &rusqlite::Error) -> Cow<'static, str> {
        Cow::Borrowed(crate::error::error_type(error))
    }
}
