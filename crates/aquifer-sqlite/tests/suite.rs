//! The behaviour suite every adapter runs (aquifer_testing::suite), on database files of the test's own.
//! `SqlitePool` is two engine pools: the suite's checkouts and statements use the readers (what
//! `AnyPool::state()` reports), writes the writer; an uncommitted write is seen only by its own connection,
//! so `count` reads on the writer.

use std::path::PathBuf;
use std::time::Duration;

use aquifer_sqlite::{SqliteConfig, SqliteOperationError, SqlitePool, SqlitePooled, SqliteStartError};
use aquifer_testing::CallError;
use aquifer_testing::suite::{self, BoxError, Hooks, Meter, Serde, Unsupported, Write};

/// The directory of the suite's databases; files of test processes that are gone are removed on the way.
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join("aquifer-suite-sqlite");
    std::fs::create_dir_all(&dir).expect("the suite's directory");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    dir
}

/// SQLite has no connection to lose: only a checkout can fail for want of one.
fn classify(e: SqliteOperationError) -> CallError {
    suite::classify(e, |_| None)
}

struct SqliteSuite;

impl Hooks for SqliteSuite {
    type Adapter = SqliteConfig;
    type Conn = SqlitePooled;

    fn server_vars(prefix: &str) -> Vec<(String, String)> {
        let path = dir().join(format!("aqs_{}_env.db", std::process::id()));
        vec![(format!("{prefix}_PATH"), path.to_string_lossy().into_owned())]
    }

    /// A database file of the pool's own.
    async fn config(name: &str) -> SqliteConfig {
        SqliteConfig::new(dir().join(format!("{name}.db")).to_string_lossy())
    }

    /// A `file:` URI carrying a password parameter, in a directory that does not exist.
    fn refused() -> SqliteConfig {
        let missing = dir().join(format!("aqs_{}_missing", std::process::id()));
        SqliteConfig::from_url(format!("file:{}/no/such/dir/x.db?password=not-the-password", missing.display()))
    }

    fn metered(config: &SqliteConfig, meter: Meter) -> Result<SqlitePool, SqliteStartError> {
        config.builder().meter(meter).connect_lazy()
    }

    async fn checkout(pool: &SqlitePool) -> Result<SqlitePooled, CallError> {
        pool.readers().get().await.map_err(|e| classify(e.into()))
    }

    async fn answer(conn: &mut SqlitePooled, n: i64) -> Result<i64, CallError> {
        let e = |e: aquifer_sqlite::rusqlite::Error| CallError::Untyped(format!("{e}: {e:?}"));
        conn.query_row("SELECT ?1 + 1", [n], |r| r.get(0)).map_err(e)
    }

    async fn fetch(pool: &SqlitePool, n: i64) -> Result<i64, CallError> {
        pool.fetch_one::<(i64,), _>("SELECT ?1 + 1", (n,)).await.map(|(got,)| got).map_err(classify)
    }

    /// A reader held for `ms` on the blocking pool (SQLite has no sleep statement).
    async fn sleep(pool: &SqlitePool, ms: u64) -> Result<(), CallError> {
        let hold = move |c: &mut aquifer_sqlite::rusqlite::Connection| {
            std::thread::sleep(Duration::from_millis(ms));
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(drop)
        };
        match pool.interact_read(hold).await.map_err(classify)? {
            Ok(()) => Ok(()),
            Err(e) => Err(CallError::Untyped(e.to_string())),
        }
    }

    async fn fail(pool: &SqlitePool) -> Vec<BoxError> {
        let nonsense = pool.fetch_one::<(i64,), _>("SELECT nonsense", ()).await;
        suite::failures([nonsense, pool.fetch_one::<(i64,), _>("SELECT 1 WHERE 0", ()).await])
    }

    /// SQLite runs a statement to its end inside one call, so a dropped future cannot leave one in flight:
    /// a statement stepped once and never finished nor finalized (as a leaked cursor leaves it) stands in.
    async fn abandon(pool: &SqlitePool) {
        let conn = pool.readers().get().await.expect("a reader");
        let mut stmt = conn
            .prepare("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 10000000) SELECT i FROM n")
            .expect("the statement prepares");
        let mut rows = stmt.query([]).expect("the statement runs");
        assert!(rows.next().expect("a first row").is_some(), "the statement produced its first row");
        std::mem::forget(rows);
        std::mem::forget(stmt);
        assert!(conn.is_busy(), "the statement is still running");
    }

    async fn setup(pool: &SqlitePool) {
        pool.execute("CREATE TABLE IF NOT EXISTS aq_suite (marker TEXT)", ()).await.unwrap();
    }

    async fn write(pool: &SqlitePool, marker: &str, how: Write) -> Result<(), CallError> {
        const INSERT: &str = "INSERT INTO aq_suite VALUES (?1)";
        let marker = marker.to_owned();
        match how {
            Write::Autocommit => pool.execute(INSERT, (marker,)).await.map(drop),
            Write::Transaction => pool.transaction(move |tx| tx.execute(INSERT, [&marker]).map(drop)).await,
        }
        .map_err(classify)
    }

    async fn write_uncommitted(pool: &SqlitePool, marker: &str) {
        let conn = pool.writer().get().await.unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO aq_suite VALUES (?1)", [marker]).unwrap();
    }

    async fn count(pool: &SqlitePool, marker: &str) -> i64 {
        let conn = pool.writer().get().await.unwrap();
        conn.query_row("SELECT count(*) FROM aq_suite WHERE marker = ?1", [marker], |r| r.get(0)).unwrap()
    }

    async fn kill_sessions(_: &SqlitePool) -> Result<usize, Unsupported> {
        Err(Unsupported::new("kill_sessions", "SQLite has no server sessions"))
    }

    async fn count_sessions(_: &SqlitePool) -> Result<i64, Unsupported> {
        Err(Unsupported::new("count_sessions", "SQLite has no server sessions"))
    }

    const ENV_WORDS: &'static [&'static str] = &["wal", "delete", "normal", "memory", "64MiB", ":memory:"];

    const BAD_VALUES: &'static [(&'static str, &'static str)] = &[
        ("JOURNAL_MODE", "sometimes"),
        ("SYNCHRONOUS", "maybe"),
        ("BUSY_TIMEOUT", "soon"),
        ("CACHE_SIZE", "lots"),
        ("MMAP_SIZE", "huge"),
        ("CHECKPOINT_INTERVAL", "often"),
        ("CREATE_IF_MISSING", "perhaps"),
    ];

    const URL_PARAMS: &'static [&'static str] = &["mode", "cache", "immutable", "vfs"];

    /// Only `file:` URIs carry parameters (shown redacted); any other string is a file path.
    const SECRET_SCHEMES: &'static [&'static str] = &["file"];

    /// A database file holds no password (a path is serialised as written): the property test checks that
    /// odd values never panic.
    fn serde() -> Result<Serde<SqliteConfig>, Unsupported> {
        let fields = &["journal_mode", "synchronous", "busy_timeout", "cache_size", "mmap_size", "pool"];
        Ok(Serde::both(r#""path": "/nonexistent/aq_suite.db""#, fields))
    }
}

aquifer_testing::behaviour_suite!(
    SqliteSuite,
    unsupported {
        no_output_contains_the_password: "SQLite has no password to show",
        helpers_fail_no_request_after_idle_sessions_were_killed: "SQLite has no server sessions to kill",
        get_checks_idle_connections_once_one_is_found_dead: "SQLite has no server sessions to kill",
        the_pool_recovers_from_server_restarts_under_load: "SQLite has no server to restart",
    }
);
