//! Errors: [`ConnectionError`] (opening or checking a connection; names the database path; the manager's
//! connect error inside `SqlitePoolError` and `SqliteStartError`), the classification of rusqlite's errors
//! for the helpers (`error.type`, what is retried, caught panics), and [`SqliteSyncError`] for the r2d2 pool.

use std::fmt;

use aquifer_core::ConfigError;
use rusqlite::ErrorCode;

/// What kind of failure a [`ConnectionError`] is, for code that reacts to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file exists but is not an SQLite database (or is encrypted).
    NotADatabase,
    /// The file or its directory cannot be opened or created: a missing directory, a permission, a file
    /// system without room.
    CannotOpen,
    /// The database file does not exist and [`create_if_missing`](crate::SqliteConfig::create_if_missing) is
    /// off, so it was not created (the `aquifer` CLI always opens databases this way).
    Missing,
    /// The database, its directory or its file system is read-only.
    ReadOnly,
    /// Another connection or process holds a lock and `busy_timeout` ran out.
    Locked,
    /// The database file is damaged.
    Corrupt,
    /// The disk is full.
    Full,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A low-cardinality name, used as the `error.type` metric attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotADatabase => "not_a_database",
            ErrorKind::CannotOpen => "cannot_open",
            ErrorKind::Missing => "missing",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Locked => "locked",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Full => "full",
            ErrorKind::Other => "_OTHER",
        }
    }

    /// The kind of a rusqlite error. ([`ErrorKind::Missing`] is never returned here: telling it from
    /// [`ErrorKind::CannotOpen`] takes the path and the configuration, which the pool has.)
    pub fn of(error: &rusqlite::Error) -> ErrorKind {
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => ErrorKind::NotADatabase,
            Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => ErrorKind::CannotOpen,
            Some(ErrorCode::ReadOnly) => ErrorKind::ReadOnly,
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => ErrorKind::Locked,
            Some(ErrorCode::DatabaseCorrupt) => ErrorKind::Corrupt,
            Some(ErrorCode::DiskFull) => ErrorKind::Full,
            _ => ErrorKind::Other,
        }
    }

    fn hint(self) -> &'static str {
        match self {
            ErrorKind::NotADatabase => "the file exists but is not an SQLite database (or is encrypted)",
            ErrorKind::CannotOpen => {
                "the file cannot be opened or created: check that its directory exists and that this process may \
                 write there (SQLite creates the -wal and -shm files beside the database)"
            }
            ErrorKind::Missing => {
                "the file does not exist and is not created: create_if_missing is off (the aquifer CLI always turns \
                 it off, by design, so that a mistyped path never leaves an empty database behind)"
            }
            ErrorKind::ReadOnly => {
                "the database, its directory or its file system is read-only (a WAL database needs its directory \
                 writable for the -wal and -shm files)"
            }
            ErrorKind::Locked => "another connection or process holds a lock on it and busy_timeout ran out",
            ErrorKind::Corrupt => "the database file is damaged",
            ErrorKind::Full => "the disk is full",
            ErrorKind::Other => "",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a [`ConnectionError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the database or applying the pragmas.
    Open,
    /// The liveness check on checkout.
    Validate,
    /// Rolling back a transaction left open by the previous user.
    Reset,
}

/// Opening, tuning, validating or resetting a connection failed. The message names the database path and
/// says what is wrong in plain words, then gives SQLite's own message; [`ConnectionError::kind`] says it for
/// code. Since the message includes the driver's, `source()` returns only causes it leaves out
/// ([`aquifer_core::source_not_in`]); the driver's error is the `source` field.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionError {
    /// The database path, as configured (URI parameters redacted).
    pub path: String,
    /// What went wrong.
    pub kind: ErrorKind,
    /// When.
    pub stage: Stage,
    /// The driver's error.
    pub source: rusqlite::Error,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} SQLite database {:?}: {}{}", stage_text(self.stage), self.path, hint(self.kind), self.source)
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        aquifer_core::source_not_in(&self.to_string(), &self.source)
    }
}

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Open => "cannot open",
        Stage::Validate => "validation failed on",
        Stage::Reset => "rollback of an abandoned transaction failed on",
    }
}

fn hint(kind: ErrorKind) -> String {
    match kind.hint() {
        "" => String::new(),
        h => format!("{h}: "),
    }
}

impl ConnectionError {
    pub(crate) fn new(path: &str, stage: Stage, source: rusqlite::Error) -> Self {
        ConnectionError { path: path.to_owned(), kind: ErrorKind::of(&source), stage, source }
    }

    /// Like `new`, for an error raised while opening `raw`: SQLite's message repeats the path as given, so a
    /// URI's parameters are redacted there too.
    pub(crate) fn opening(raw: &str, path: &str, source: rusqlite::Error) -> Self {
        let source = match source {
            rusqlite::Error::SqliteFailure(code, Some(msg)) if raw != path && msg.contains(raw) => {
                rusqlite::Error::SqliteFailure(code, Some(msg.replace(raw, path)))
            }
            other => other,
        };
        Self::new(path, Stage::Open, source)
    }

    pub(crate) fn panicked(path: &str, join: tokio::task::JoinError) -> Self {
        let message = if join.is_panic() { panic_message(join.into_panic()) } else { join.to_string() };
        let source = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("opening the connection panicked: {message}")),
        );
        ConnectionError { path: path.to_owned(), kind: ErrorKind::Other, stage: Stage::Open, source }
    }

    /// The SQLite result code, when SQLite produced the error.
    pub fn code(&self) -> Option<ErrorCode> {
        self.source.sqlite_error_code()
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// A closure passed to [`SqlitePool::read`](crate::SqlitePool::read), [`write`](crate::SqlitePool::write),
/// [`transaction`](crate::SqlitePool::transaction), [`interact`](crate::SqlitePool::interact) or
/// [`interact_read`](crate::SqlitePool::interact_read) panicked. The panic is caught where the closure ran and
/// returned as `SqliteOperationError::Backend(rusqlite::Error::UserFunctionError(Box<Panicked>))` (rusqlite's
/// error for a failing user closure); [`panicked`] finds it. A write's transaction was rolled back and the
/// connection went back to the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the closure passed to {operation} panicked (its transaction was rolled back): {message}")]
#[non_exhaustive]
pub struct Panicked {
    /// `read`, `write`, `transaction`, `interact`, `interact_read`.
    pub operation: &'static str,
    /// The panic message.
    pub message: String,
}

/// The [`Panicked`] inside a helper's error, when its closure panicked.
///
/// ```
/// # async fn demo(pool: &aquifer_sqlite::SqlitePool) {
/// let err = pool.read(|_| -> aquifer_sqlite::rusqlite::Result<()> { panic!("boom") }).await.unwrap_err();
/// let panic = err.backend_error().and_then(aquifer_sqlite::panicked).expect("a caught panic");
/// assert_eq!(panic.operation, "read");
/// # }
/// ```
pub fn panicked(error: &rusqlite::Error) -> Option<&Panicked> {
    match error {
        rusqlite::Error::UserFunctionError(e) => e.downcast_ref::<Panicked>(),
        _ => None,
    }
}

pub(crate) fn panic_error(operation: &'static str, payload: Box<dyn std::any::Any + Send>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(Panicked { operation, message: panic_message(payload) }))
}

/// True for `SQLITE_BUSY` and `SQLITE_LOCKED`: another connection or process held a lock past
/// `busy_timeout`. The helpers retry these (the statement or transaction did not apply).
pub fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// The `error.type` of an operation's error: the SQLite result code's name (`SQLITE_CONSTRAINT`,
/// `SQLITE_BUSY`...), `panic` for a caught panic, `client` for rusqlite's own errors (a wrong column type, no
/// rows, a wrong parameter count).
pub fn error_type(error: &rusqlite::Error) -> &'static str {
    if panicked(error).is_some() { "panic" } else { code_name(error.sqlite_error_code()) }
}

/// Anything a [`SqliteSyncPool`](crate::SqliteSyncPool) call can return. The sync pool is r2d2's, not the
/// engine's, so its errors are r2d2's and the driver's rather than the engine's `PoolError` and
/// `OperationError`. The message includes the inner error's, so `source()` returns only causes it leaves out
/// ([`aquifer_core::source_not_in`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum SqliteSyncError {
    /// The database could not be opened when the pool was built (a missing directory, a file that is not a
    /// database, a lock held by another process...). Names the path.
    Open(ConnectionError),
    /// A statement failed (including `SQLITE_BUSY` when another process held a lock beyond `busy_timeout`).
    Query(rusqlite::Error),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The r2d2 pool gave no connection within its timeout, or could not open its connections.
    Pool(r2d2::Error),
}

impl fmt::Display for SqliteSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqliteSyncError::Open(e) => fmt::Display::fmt(e, f),
            SqliteSyncError::Query(e) => fmt::Display::fmt(e, f),
            SqliteSyncError::Config(e) => fmt::Display::fmt(e, f),
            SqliteSyncError::Pool(e) => write!(f, "r2d2 pool: {e}"),
        }
    }
}

impl std::error::Error for SqliteSyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let inner: &(dyn std::error::Error + 'static) = match self {
            SqliteSyncError::Open(e) => e,
            SqliteSyncError::Query(e) => e,
            SqliteSyncError::Config(e) => e,
            SqliteSyncError::Pool(e) => e,
        };
        aquifer_core::source_not_in(&self.to_string(), inner)
    }
}

/// `?` turns each cause into its variant of [`SqliteSyncError`].
macro_rules! sync_error_from {
    ($($cause:ty => $variant:ident),+ $(,)?) => {$(
        impl From<$cause> for SqliteSyncError {
            fn from(e: $cause) -> Self {
                SqliteSyncError::$variant(e)
            }
        }
    )+};
}

sync_error_from! {
    ConnectionError => Open,
    rusqlite::Error => Query,
    ConfigError => Config,
    r2d2::Error => Pool,
}

impl SqliteSyncError {
    /// The SQLite result code, when SQLite produced the error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SqliteSyncError::Query(e) => e.sqlite_error_code(),
            SqliteSyncError::Open(e) => e.code(),
            _ => None,
        }
    }

    /// True for `SQLITE_BUSY` and `SQLITE_LOCKED`, from a statement or a connect.
    pub fn is_busy(&self) -> bool {
        matches!(self.code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
    }

    /// The connection error behind this error, when opening the database failed.
    pub fn connection_error(&self) -> Option<&ConnectionError> {
        match self {
            SqliteSyncError::Open(e) => Some(e),
            _ => None,
        }
    }
}

fn code_name(code: Option<ErrorCode>) -> &'static str {
    match code {
        Some(ErrorCode::ConstraintViolation) => "SQLITE_CONSTRAINT",
        Some(ErrorCode::DatabaseBusy) => "SQLITE_BUSY",
        Some(ErrorCode::DatabaseLocked) => "SQLITE_LOCKED",
        Some(ErrorCode::ReadOnly) => "SQLITE_READONLY",
        Some(ErrorCode::DiskFull) => "SQLITE_FULL",
        Some(ErrorCode::DatabaseCorrupt) => "SQLITE_CORRUPT",
        Some(ErrorCode::NotADatabase) => "SQLITE_NOTADB",
        Some(ErrorCode::SystemIoFailure) => "SQLITE_IOERR",
        Some(ErrorCode::OperationInterrupted) => "SQLITE_INTERRUPT",
        Some(ErrorCode::TypeMismatch) => "SQLITE_MISMATCH",
        Some(ErrorCode::TooBig) => "SQLITE_TOOBIG",
        Some(ErrorCode::Unknown) => "SQLITE_ERROR",
        Some(_) => "_OTHER",
        // rusqlite's own errors: wrong column type, no rows, bad parameter count...
        None => "client",
    }
}
