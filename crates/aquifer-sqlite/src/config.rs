//! [`SqliteConfig`]: where the database lives, how every connection is tuned, and the reader pool's settings.
//!
//! All defaults live in [`SqliteConfig::default`], each with the reason for it; docs/sqlite.md explains every
//! pragma's trade-off.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use aquifer_core::{ConfigError, EnvVars, PoolConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

/// How a [`SqlitePool`](crate::SqlitePool) (or [`SqliteSyncPool`](crate::SqliteSyncPool)) opens and tunes its
/// connections.
///
/// Build it with struct-update syntax from [`SqliteConfig::default`] or [`SqliteConfig::new`], deserialize it
/// (durations as `"5s"`, the reader pool's settings under `pool`), or read it from the environment with
/// [`SqliteConfig::from_env`]. [`SqliteConfig::validate`] runs whenever a pool opens.
///
/// ```
/// use aquifer_sqlite::{Synchronous, SqliteConfig};
///
/// let config: SqliteConfig = serde_json::from_value(serde_json::json!({
///     "path": "books.db",
///     "synchronous": "full",
///     "busy_timeout": "2s",
///     "pool": { "max_size": 8 }
/// }))
/// .unwrap();
/// assert_eq!(config.synchronous, Synchronous::Full);
/// assert_eq!(config.pool.max_size, 8);
/// assert_eq!(config.cache_size, SqliteConfig::default().cache_size);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database: a file path, `:memory:` (a private in-memory database shared by this pool's writer and
    /// readers), or an SQLite URI (`file:books.db?mode=rwc`, `file:/name?vfs=memdb`).
    /// Default: `:memory:` (as sqlx's `SqliteConnectOptions`): nothing is written to disk unless asked.
    pub path: String,
    /// Create the database file if it does not exist. Default: true.
    pub create_if_missing: bool,
    /// `PRAGMA journal_mode`, set by the writer when it connects (the mode is stored in the database file).
    /// Default: WAL, so readers never block the writer and the writer never blocks readers.
    pub journal_mode: JournalMode,
    /// `PRAGMA synchronous` on every connection. Default: NORMAL, which in WAL mode never corrupts the
    /// database and loses at most the last transactions on power loss (not on a process crash); FULL syncs the
    /// WAL on every commit.
    pub synchronous: Synchronous,
    /// `PRAGMA busy_timeout`: how long a connection retries when another connection (or process) holds a lock,
    /// before failing with SQLITE_BUSY. Default: 5 s.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// `PRAGMA foreign_keys`. Default: true (SQLite's own default is off, which silently ignores `REFERENCES`).
    pub foreign_keys: bool,
    /// `PRAGMA temp_store`. Default: MEMORY (sorts and temporary indexes never touch the disk).
    pub temp_store: TempStore,
    /// `PRAGMA cache_size`, per connection: negative numbers are KiB, positive numbers are pages.
    /// Default: -16384 (16 MiB per connection, SQLite's own default is 2 MB).
    pub cache_size: i64,
    /// `PRAGMA mmap_size` in bytes: reads of the first `mmap_size` bytes of the file go through a memory map
    /// instead of `read()` calls. Default: 256 MiB; 0 turns memory mapping off.
    pub mmap_size: u64,
    /// `PRAGMA journal_size_limit` in bytes: after a checkpoint resets the WAL, a WAL file larger than this is
    /// truncated to it. Default: 64 MiB; -1 keeps the file at its largest size.
    pub journal_size_limit: i64,
    /// `PRAGMA wal_autocheckpoint` in pages: the writer runs a PASSIVE checkpoint when a commit leaves the WAL
    /// longer than this. Default: 1000 (SQLite's own); 0 turns automatic checkpoints off.
    pub wal_autocheckpoint: u32,
    /// How often the background checkpoint task runs (PASSIVE, or TRUNCATE when the WAL file is larger than
    /// `wal_size_limit`). Default: 1 s; `None` (`off` in the environment) disables the task.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Option<Duration>,
    /// WAL file size in bytes above which the periodic checkpoint runs in TRUNCATE mode: it waits (up to
    /// `busy_timeout`) until no reader uses an old snapshot, holding the writer meanwhile, then empties the WAL.
    /// This is what keeps the WAL bounded under constant reads. Default: 64 MiB.
    pub wal_size_limit: u64,
    /// Run `PRAGMA optimize` on the writer when the pool is closed with `close()`. Default: true.
    pub optimize_on_close: bool,
    /// Run [`SqlitePool::write`](crate::SqlitePool::write) and the writer's helpers inline on the calling
    /// runtime worker when the write lock is free, as reads do, instead of on Tokio's blocking pool. Default:
    /// false: an inline commit holds its worker for the commit's I/O, and while it runs longer than the inline
    /// gate's 100 µs every read leaves the runtime too; measured, blocking-pool writes gave both more reads
    /// and more writes on an idle machine (docs/sqlite.md, "Where writes run").
    pub inline_writes: bool,
    /// The database is used by this process only: the async pool opens it with SQLite's `unix-excl` VFS,
    /// which takes one exclusive file lock for the whole process and keeps the WAL index in heap memory, so
    /// starting and ending a read costs no system call and no lock shared between threads through the kernel.
    /// Reads from many tasks at once scale with the workers (2.4x with 8 readers on 2 workers, measured in
    /// docs/sqlite.md). The price: while the pool is open, every other process (the `sqlite3` shell, a backup
    /// tool, a second instance of the service) gets "database is locked". Ignored for `:memory:`; Unix only;
    /// [`SqliteSyncPool`](crate::SqliteSyncPool) refuses it (r2d2_sqlite cannot choose a VFS). Default: false.
    pub single_process: bool,
    /// The reader pool's settings (`max_size` is the number of readers). The writer pool always has one
    /// connection, kept open, and otherwise the same timeouts. Default: [`PoolConfig::default`].
    pub pool: PoolConfig,
    /// Retries of `SQLITE_BUSY` / `SQLITE_LOCKED` by the helpers ([`SqlitePool::fetch_one`](crate::SqlitePool::fetch_one),
    /// [`execute`](crate::SqlitePool::execute), [`transaction`](crate::SqlitePool::transaction)...), after
    /// `busy_timeout` ran out. Default: 3 attempts, 10 ms doubling to at most 1 s, with jitter.
    pub retry: RetryPolicy,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: MEMORY.to_owned(),
            create_if_missing: true,
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Normal,
            // rusqlite's and sqlx's default; long enough to ride out a checkpoint, short enough to surface a
            // deadlocked process.
            busy_timeout: Duration::from_secs(5),
            foreign_keys: true,
            temp_store: TempStore::Memory,
            // 16 MiB x (1 writer + 10 readers) = 176 MiB at most, reached only by databases that large.
            cache_size: -16_384,
            // Pages in the map are shared with the OS page cache, so this costs address space, not memory.
            mmap_size: 256 * MIB,
            journal_size_limit: 64 * MIB as i64,
            wal_autocheckpoint: 1000,
            // One stat() per second; a PASSIVE checkpoint costs nothing when the WAL is already checkpointed.
            checkpoint_interval: Some(Duration::from_secs(1)),
            wal_size_limit: 64 * MIB,
            optimize_on_close: true,
            inline_writes: false,
            single_process: false,
            pool: PoolConfig::default(),
            retry: RetryPolicy::default(),
        }
    }
}

const MIB: u64 = 1024 * 1024;
const MEMORY: &str = ":memory:";

impl fmt::Debug for SqliteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConfig")
            .field("path", &display_path(&self.path))
            .field("create_if_missing", &self.create_if_missing)
            .field("journal_mode", &self.journal_mode)
            .field("synchronous", &self.synchronous)
            .field("busy_timeout", &self.busy_timeout)
            .field("foreign_keys", &self.foreign_keys)
            .field("temp_store", &self.temp_store)
            .field("cache_size", &self.cache_size)
            .field("mmap_size", &self.mmap_size)
            .field("journal_size_limit", &self.journal_size_limit)
            .field("wal_autocheckpoint", &self.wal_autocheckpoint)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("wal_size_limit", &self.wal_size_limit)
            .field("optimize_on_close", &self.optimize_on_close)
            .field("inline_writes", &self.inline_writes)
            .field("single_process", &self.single_process)
            .field("pool", &self.pool)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A path for messages: URIs may carry parameters, which are shown redacted like database URLs.
pub(crate) fn display_path(path: &str) -> String {
    if path.starts_with("file:") { aquifer_core::redact_url(path) } else { path.to_owned() }
}

impl SqliteConfig {
    /// The defaults with `path` set (a file path, `:memory:` or an SQLite `file:` URI).
    pub fn new(path: impl Into<String>) -> Self {
        SqliteConfig { path: path.into(), ..SqliteConfig::default() }
    }

    /// The defaults for `url`: `sqlite://books.db`, `sqlite:books.db`, `sqlite::memory:`, or a plain path or
    /// `file:` URI as [`new`](SqliteConfig::new) takes (an embedded database has a path, not a server URL; the
    /// `sqlite:` forms are those of sqlx and of `DATABASE_URL`s).
    ///
    /// ```
    /// use aquifer_sqlite::SqliteConfig;
    ///
    /// assert_eq!(SqliteConfig::from_url("sqlite://data/books.db").path, "data/books.db");
    /// assert_eq!(SqliteConfig::from_url("sqlite::memory:").path, ":memory:");
    /// assert_eq!(SqliteConfig::from_url("books.db").path, "books.db");
    /// ```
    pub fn from_url(url: impl Into<String>) -> Self {
        SqliteConfig::new(strip_scheme(&url.into()))
    }

    /// True when the database lives in memory (`:memory:`, `mode=memory` or the `memdb` VFS).
    pub fn is_memory(&self) -> bool {
        let p = self.path.trim();
        p.is_empty()
            || p == MEMORY
            || (p.starts_with("file:") && (p.contains("mode=memory") || p.contains("vfs=memdb")))
    }

    /// Checks the values; the error names the field and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pool.validate()?;
        if self.busy_timeout > Duration::from_millis(i32::MAX as u64) {
            return Err(invalid(
                "busy_timeout",
                humantime::format_duration(self.busy_timeout),
                "must be below 24 days",
            ));
        }
        if self.journal_size_limit < -1 {
            return Err(invalid(
                "journal_size_limit",
                self.journal_size_limit,
                "must be -1 (no limit) or a byte count",
            ));
        }
        if self.mmap_size > i64::MAX as u64 {
            return Err(invalid("mmap_size", self.mmap_size, "must fit in a signed 64-bit integer"));
        }
        if self.checkpoint_interval.is_some_and(|d| d.is_zero()) {
            return Err(invalid("checkpoint_interval", "0s", "must be greater than zero; use none to disable it"));
        }
        if self.wal_size_limit == 0 {
            return Err(invalid("wal_size_limit", 0, "must be greater than zero"));
        }
        if self.path.contains('\0') {
            return Err(invalid("path", format!("{:?}", display_path(&self.path)), "must not contain NUL bytes"));
        }
        Ok(())
    }

    /// Reads the configuration from `{prefix}_*` variables through `lookup` ([`SqliteConfig::from_env`] reads
    /// the process environment), starting from the defaults.
    ///
    /// With prefix `SQLITE`: `SQLITE_PATH` (or `SQLITE_URL`, with an optional `sqlite://` or `sqlite:` prefix),
    /// `SQLITE_CREATE_IF_MISSING`, `SQLITE_JOURNAL_MODE`, `SQLITE_SYNCHRONOUS`, `SQLITE_BUSY_TIMEOUT`,
    /// `SQLITE_FOREIGN_KEYS`, `SQLITE_TEMP_STORE`, `SQLITE_CACHE_SIZE`, `SQLITE_MMAP_SIZE`,
    /// `SQLITE_JOURNAL_SIZE_LIMIT`, `SQLITE_WAL_AUTOCHECKPOINT`, `SQLITE_CHECKPOINT_INTERVAL`,
    /// `SQLITE_WAL_SIZE_LIMIT`, `SQLITE_OPTIMIZE_ON_CLOSE`, `SQLITE_INLINE_WRITES`, `SQLITE_SINGLE_PROCESS`,
    /// `SQLITE_RETRY_MAX_ATTEMPTS`, and the reader pool's
    /// settings as
    /// [`PoolConfig::from_env`] reads them (`SQLITE_POOL_MAX_SIZE`, `SQLITE_POOL_ACQUIRE_TIMEOUT`, `SQLITE_NAME`...).
    /// Byte sizes accept a plain number or a `KiB`/`MiB`/`GiB` suffix; booleans `true/false/on/off/1/0`;
    /// durations `5s`, `500ms`. The result is validated; errors name the variable and its value.
    ///
    /// ```
    /// use aquifer_sqlite::SqliteConfig;
    ///
    /// let env = |name: &str| match name {
    ///     "SQLITE_PATH" => Some("books.db".to_owned()),
    ///     "SQLITE_MMAP_SIZE" => Some("1GiB".to_owned()),
    ///     "SQLITE_POOL_MAX_SIZE" => Some("4".to_owned()),
    ///     _ => None,
    /// };
    /// let config = SqliteConfig::from_lookup("SQLITE", env).unwrap();
    /// assert_eq!(config.mmap_size, 1 << 30);
    /// assert_eq!(config.pool.max_size, 4);
    ///
    /// let bad = |name: &str| (name == "SQLITE_SYNCHRONOUS").then(|| "sometimes".to_owned());
    /// let err = SqliteConfig::from_lookup("SQLITE", bad).unwrap_err();
    /// assert!(err.to_string().contains("SQLITE_SYNCHRONOUS"));
    /// ```
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<SqliteConfig, ConfigError> {
        let env = EnvVars::new(prefix, &lookup);
        let mut c = SqliteConfig { pool: PoolConfig::from_lookup(prefix, &lookup)?, ..SqliteConfig::default() };
        // Both are read even when PATH is set, so that neither counts as an unknown variable.
        let (path, url) = (env.get("PATH"), env.get("URL"));
        if let Some(path) = path {
            c.path = path;
        } else if let Some(url) = url {
            c.path = strip_scheme(&url);
        }
        env.boolean("CREATE_IF_MISSING", &mut c.create_if_missing)?;
        env.parse("JOURNAL_MODE", &mut c.journal_mode, str::parse)?;
        env.parse("SYNCHRONOUS", &mut c.synchronous, str::parse)?;
        env.duration("BUSY_TIMEOUT", &mut c.busy_timeout)?;
        env.boolean("FOREIGN_KEYS", &mut c.foreign_keys)?;
        env.parse("TEMP_STORE", &mut c.temp_store, str::parse)?;
        env.parse("CACHE_SIZE", &mut c.cache_size, |v| {
            v.parse::<i64>().map_err(|e| format!("expected a whole number: negative for KiB, positive for pages ({e})"))
        })?;
        env.parse("MMAP_SIZE", &mut c.mmap_size, parse_bytes)?;
        env.parse("JOURNAL_SIZE_LIMIT", &mut c.journal_size_limit, |v| {
            if v == "-1" { Ok(-1) } else { parse_bytes(v).map(|b| b as i64) }
        })?;
        env.parse("WAL_AUTOCHECKPOINT", &mut c.wal_autocheckpoint, |v| {
            v.parse::<u32>().map_err(|e| format!("expected a number of pages ({e})"))
        })?;
        env.optional_duration("CHECKPOINT_INTERVAL", &mut c.checkpoint_interval)?;
        env.parse("WAL_SIZE_LIMIT", &mut c.wal_size_limit, parse_bytes)?;
        env.boolean("OPTIMIZE_ON_CLOSE", &mut c.optimize_on_close)?;
        env.boolean("INLINE_WRITES", &mut c.inline_writes)?;
        env.boolean("SINGLE_PROCESS", &mut c.single_process)?;
        env.parse("RETRY_MAX_ATTEMPTS", &mut c.retry.max_attempts, |v| match v.parse() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("expected a whole number, at least 1".into()),
        })?;
        // Every field validate() checks has the variable of the same name.
        c.validate().map_err(|e| env.rename(e, |field| Some(field.to_ascii_uppercase())))?;
        Ok(c)
    }
}

/// A path from an `sqlite://` or `sqlite:` URL, or the string itself.
fn strip_scheme(url: &str) -> String {
    url.trim().strip_prefix("sqlite://").or_else(|| url.trim().strip_prefix("sqlite:")).unwrap_or(url.trim()).to_owned()
}

fn invalid(field: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, value: value.to_string(), reason: reason.into() }
}

/// `1048576`, `1024KiB`, `64MiB`, `1GiB` (also `K`, `KB`, `M`, `MB`, `G`, `GB`, all binary).
fn parse_bytes(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().map_err(|_| "expected a byte count such as 268435456 or 256MiB".to_owned())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(scale).ok_or_else(|| "too large".to_owned())
}

macro_rules! pragma_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $sql:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The value as SQLite spells it in the pragma.
            pub fn as_sql(self) -> &'static str {
                match self { $($name::$variant => $sql),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_sql())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                $(if s.eq_ignore_ascii_case($sql) { return Ok($name::$variant); })+
                Err(format!("expected one of {}", [$($sql),+].join(", ")))
            }
        }
    };
}

pragma_enum! {
    /// `PRAGMA journal_mode` values.
    JournalMode {
        /// Write-ahead log: concurrent readers and one writer (the tuned default).
        Wal => "wal",
        /// Rollback journal, deleted after each transaction (SQLite's default).
        Delete => "delete",
        /// Rollback journal, truncated after each transaction.
        Truncate => "truncate",
        /// Rollback journal, header zeroed after each transaction.
        Persist => "persist",
        /// Rollback journal kept in memory (a crash mid-transaction can corrupt the database).
        Memory => "memory",
        /// No journal: no rollback, no atomic commit.
        Off => "off",
    }
}

pragma_enum! {
    /// `PRAGMA synchronous` values.
    Synchronous {
        /// Never fsync: fast, a power loss can corrupt the database.
        Off => "off",
        /// In WAL mode: fsync at checkpoints only; a power loss may roll back the last commits (the tuned default).
        Normal => "normal",
        /// fsync the WAL at every commit: a committed transaction survives a power loss (SQLite's default).
        Full => "full",
        /// FULL plus an fsync of the directory after deleting a rollback journal.
        Extra => "extra",
    }
}

pragma_enum! {
    /// `PRAGMA temp_store` values.
    TempStore {
        /// The compile-time default (files for the bundled SQLite).
        Default => "default",
        /// Temporary tables and indexes in files.
        File => "file",
        /// Temporary tables and indexes in memory (the tuned default).
        Memory => "memory",
    }
}

impl Synchronous {
    /// The number `PRAGMA synchronous` reads back as (0 to 3).
    pub fn as_number(self) -> i64 {
        match self {
            Synchronous::Off => 0,
            Synchronous::Normal => 1,
            Synchronous::Full => 2,
            Synchronous::Extra => 3,
        }
    }
}

impl TempStore {
    /// The number `PRAGMA temp_store` reads back as (0 to 2).
    pub fn as_number(self) -> i64 {
        match self {
            TempStore::Default => 0,
            TempStore::File => 1,
            TempStore::Memory => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
