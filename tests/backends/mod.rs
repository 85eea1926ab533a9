//! The four backends behind one interface, so the cross-backend behaviour tests are written once: each
//! backend builds an engine pool of its manager from `{PREFIX}_*` variables (the same way services do) and
//! supplies the few steps that need its driver (write inside a transaction, count, abandon a query).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aquifer_core::{Manager, Pool, Pooled};
use aquifer_testing::MetricsCapture;

pub const SCRIPT: &str = "bash scripts/dev-services.sh";

/// A name unique to this test process: `aq_cross_<what>_<pid>`.
pub fn unique(what: &str) -> String {
    format!("aq_cross_{what}_{}", std::process::id())
}

/// A lookup over fixed variables, as `XConfig::from_lookup` takes.
pub fn lookup(vars: &[(String, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars.iter().cloned().collect();
    move |k| map.get(k).cloned()
}

/// One backend under test.
pub trait Backend {
    /// Its manager.
    type M: Manager;
    /// `db.system.name`.
    const SYSTEM: &'static str;
    /// The conventional environment prefix.
    const PREFIX: &'static str;

    /// Fails the test, naming the services script, unless the server answers.
    async fn require();
    /// The variables of a pool named `name` of at most `max_size` connections against the test server.
    fn vars(name: &str, max_size: usize) -> Vec<(String, String)>;
    /// A lazy engine pool from `vars` (through `XConfig::from_lookup` and `XConfig::builder`), recording into
    /// `capture` when given.
    fn pool(vars: &[(String, String)], capture: Option<&MetricsCapture>) -> Pool<Self::M>;
    /// Creates what [`write_uncommitted`](Backend::write_uncommitted) writes into.
    async fn setup(conn: &mut Pooled<Self::M>);
    /// Starts a transaction on `conn`, writes `marker` in it, and returns without committing.
    async fn write_uncommitted(conn: &mut Pooled<Self::M>, marker: &str);
    /// How many `marker` rows (nodes) are visible on `conn`.
    async fn count(conn: &mut Pooled<Self::M>, marker: &str) -> i64;
    /// A trivial query whose answer proves the connection is in sync: returns 41 + 1.
    async fn answer(conn: &mut Pooled<Self::M>) -> i64;
}

/// The engine pool of a backend from its own config, built the way `XConfig::builder` documents.
macro_rules! build {
    ($config:expr, $capture:expr) => {{
        let mut b = $config.builder().expect("valid config");
        if let Some(c) = $capture {
            b = b.meter(c.meter());
        }
        b.build().expect("a pool builds in a runtime")
    }};
}

pub struct Postgres;

impl Backend for Postgres {
    type M = aquifer_postgres::PgManager;
    const SYSTEM: &'static str = "postgresql";
    const PREFIX: &'static str = "POSTGRES";

    async fn require() {
        aquifer_testing::require_server("PostgreSQL", "127.0.0.1:5432", SCRIPT).await;
    }

    fn vars(name: &str, max_size: usize) -> Vec<(String, String)> {
        let url = std::env::var("POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into());
        vec![
            ("POSTGRES_URL".into(), url),
            ("POSTGRES_NAME".into(), name.into()),
            ("POSTGRES_POOL_MAX_SIZE".into(), max_size.to_string()),
        ]
    }

    fn pool(vars: &[(String, String)], capture: Option<&MetricsCapture>) -> Pool<Self::M> {
        build!(aquifer_postgres::PgConfig::from_lookup(Self::PREFIX, lookup(vars)).unwrap(), capture)
    }

    async fn setup(conn: &mut Pooled<Self::M>) {
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS aq_cross (marker text)").execute(&mut **conn).await.unwrap();
    }

    async fn write_uncommitted(conn: &mut Pooled<Self::M>, marker: &str) {
        use sqlx::Connection;
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO aq_cross VALUES ($1)").bind(marker).execute(&mut *tx).await.unwrap();
        // Dropped without commit: sqlx queues the ROLLBACK; the pool must send it before reuse.
        drop(tx);
    }

    async fn count(conn: &mut Pooled<Self::M>, marker: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM aq_cross WHERE marker = $1")
            .bind(marker)
            .fetch_one(&mut **conn)
            .await
            .unwrap()
    }

    async fn answer(conn: &mut Pooled<Self::M>) -> i64 {
        sqlx::query_scalar("SELECT 41::int8 + 1").fetch_one(&mut **conn).await.unwrap()
    }
}

pub struct MySql;

impl Backend for MySql {
    type M = aquifer_mysql::MySqlManager;
    const SYSTEM: &'static str = "mysql";
    const PREFIX: &'static str = "MYSQL";

    async fn require() {
        aquifer_testing::require_server("MariaDB", "127.0.0.1:3306", SCRIPT).await;
    }

    fn vars(name: &str, max_size: usize) -> Vec<(String, String)> {
        let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        vec![
            ("MYSQL_URL".into(), url),
            ("MYSQL_NAME".into(), name.into()),
            ("MYSQL_POOL_MAX_SIZE".into(), max_size.to_string()),
        ]
    }

    fn pool(vars: &[(String, String)], capture: Option<&MetricsCapture>) -> Pool<Self::M> {
        build!(aquifer_mysql::MySqlConfig::from_lookup(Self::PREFIX, lookup(vars)).unwrap(), capture)
    }

    async fn setup(conn: &mut Pooled<Self::M>) {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        conn.query_drop("CREATE TABLE IF NOT EXISTS aq_cross (marker VARCHAR(64))").await.unwrap();
    }

    async fn write_uncommitted(conn: &mut Pooled<Self::M>, marker: &str) {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        conn.query_drop("START TRANSACTION").await.unwrap();
        conn.exec_drop("INSERT INTO aq_cross VALUES (?)", (marker,)).await.unwrap();
    }

    async fn count(conn: &mut Pooled<Self::M>, marker: &str) -> i64 {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        conn.exec_first("SELECT count(*) FROM aq_cross WHERE marker = ?", (marker,)).await.unwrap().unwrap()
    }

    async fn answer(conn: &mut Pooled<Self::M>) -> i64 {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        conn.query_first("SELECT 41 + 1").await.unwrap().unwrap()
    }
}

pub struct Neo4j;

impl Backend for Neo4j {
    type M = aquifer_neo4j::Neo4jManager;
    const SYSTEM: &'static str = "neo4j";
    const PREFIX: &'static str = "NEO4J";

    async fn require() {
        aquifer_testing::require_server("the Bolt server (ArcadeDB)", "127.0.0.1:7687", SCRIPT).await;
    }

    fn vars(name: &str, max_size: usize) -> Vec<(String, String)> {
        // root's password and database are set by scripts/services/40-arcadedb.sh.
        vec![
            ("NEO4J_URI".into(), "bolt://127.0.0.1:7687".into()),
            ("NEO4J_USER".into(), "root".into()),
            ("NEO4J_PASSWORD".into(), "aquifer-secret".into()),
            ("NEO4J_DATABASE".into(), "testdb".into()),
            ("NEO4J_NAME".into(), name.into()),
            ("NEO4J_POOL_MAX_SIZE".into(), max_size.to_string()),
        ]
    }

    fn pool(vars: &[(String, String)], capture: Option<&MetricsCapture>) -> Pool<Self::M> {
        build!(aquifer_neo4j::Neo4jConfig::from_lookup(Self::PREFIX, lookup(vars)).unwrap(), capture)
    }

    async fn setup(_conn: &mut Pooled<Self::M>) {}

    async fn write_uncommitted(conn: &mut Pooled<Self::M>, marker: &str) {
        let mut txn = conn.start_txn().await.unwrap();
        txn.run(aquifer_neo4j::query("CREATE (:AqCross {marker: $m})").param("m", marker)).await.unwrap();
        // Dropped without commit: the server rolls it back when the connection is reset.
        drop(txn);
    }

    async fn count(conn: &mut Pooled<Self::M>, marker: &str) -> i64 {
        let q = aquifer_neo4j::query("MATCH (n:AqCross) WHERE n.marker = $m RETURN count(n) AS c").param("m", marker);
        let mut rows = conn.execute(q).await.unwrap();
        let row = rows.next().await.unwrap().expect("count returns a row");
        row.get::<i64>("c").unwrap()
    }

    async fn answer(conn: &mut Pooled<Self::M>) -> i64 {
        let mut rows = conn.execute(aquifer_neo4j::query("RETURN 41 + 1 AS a")).await.unwrap();
        rows.next().await.unwrap().expect("one row").get::<i64>("a").unwrap()
    }
}

pub struct Sqlite;

/// The directory of the SQLite test database while some test holds it (see [`scratch`]).
static SCRATCH: Mutex<Weak<tempfile::TempDir>> = Mutex::new(Weak::new());

/// Keeps the directory of the SQLite test database: a [`tempfile::TempDir`], removed with the database and its
/// `-wal` and `-shm` files once the last test holding it ends. Every test that may use [`Sqlite`] takes one
/// first and holds it to the end.
pub fn scratch() -> Arc<tempfile::TempDir> {
    let mut dir = SCRATCH.lock().unwrap();
    if let Some(d) = dir.upgrade() {
        return d;
    }
    let d = Arc::new(tempfile::Builder::new().prefix("aq_cross_").tempdir().expect("a temporary directory"));
    *dir = Arc::downgrade(&d);
    d
}

/// The SQLite database of the running tests (a file, so every connection of the pool sees it), in the
/// directory of [`scratch`].
fn sqlite_path() -> String {
    let dir = SCRATCH.lock().unwrap().upgrade().expect("hold backends::scratch() for the whole test");
    dir.path().join("cross.db").to_string_lossy().into_owned()
}

impl Backend for Sqlite {
    type M = aquifer_sqlite::SqliteManager;
    const SYSTEM: &'static str = "sqlite";
    const PREFIX: &'static str = "SQLITE";

    async fn require() {}

    fn vars(name: &str, max_size: usize) -> Vec<(String, String)> {
        vec![
            ("SQLITE_PATH".into(), sqlite_path()),
            ("SQLITE_NAME".into(), name.into()),
            ("SQLITE_POOL_MAX_SIZE".into(), max_size.to_string()),
        ]
    }

    /// SQLite's pool is a writer pool plus a reader pool; the engine-level behaviours are the same for both,
    /// so the suite uses a writer-role pool of the engine (what `SqlitePool::writer()` holds).
    fn pool(vars: &[(String, String)], capture: Option<&MetricsCapture>) -> Pool<Self::M> {
        let config = aquifer_sqlite::SqliteConfig::from_lookup(Self::PREFIX, lookup(vars)).unwrap();
        let manager = aquifer_sqlite::SqliteManager::new(config.clone(), aquifer_sqlite::Role::Writer);
        let mut b = Pool::builder(manager).config(config.pool);
        if let Some(c) = capture {
            b = b.meter(c.meter());
        }
        b.build().expect("a pool builds in a runtime")
    }

    async fn setup(conn: &mut Pooled<Self::M>) {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS aq_cross (marker TEXT)").unwrap();
    }

    async fn write_uncommitted(conn: &mut Pooled<Self::M>, marker: &str) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute("INSERT INTO aq_cross VALUES (?1)", [marker]).unwrap();
    }

    async fn count(conn: &mut Pooled<Self::M>, marker: &str) -> i64 {
        conn.query_row("SELECT count(*) FROM aq_cross WHERE marker = ?1", [marker], |r| r.get(0)).unwrap()
    }

    async fn answer(conn: &mut Pooled<Self::M>) -> i64 {
        conn.query_row("SELECT 41 + 1", [], |r| r.get(0)).unwrap()
    }
}

/// The variables of a small pool named after `what`, for any backend.
pub trait VarsFor: Backend {
    /// [`Backend::vars`] for a unique pool name made from `what`, 2 connections.
    fn vars_for(what: &str) -> Vec<(String, String)> {
        Self::vars(&unique(what), 2)
    }
}

impl<B: Backend> VarsFor for B {}

/// The longest any single step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(20);

/// The faults every backend meets in its own form.
pub trait Faults: Backend {
    /// Starts a pool (`XConfig::connect`) the backend refuses for good, with a secret (`not-the-password`) in
    /// its settings: on a server, a user that exists with a wrong password; for SQLite (no authentication), a
    /// `file:` URI carrying a `password` parameter in a directory that does not exist.
    async fn start_refused(name: &str) -> aquifer_core::StartError<<Self::M as Manager>::Error>;
    /// Leaves a query unfinished on `conn`: on a server, a query that takes seconds whose future is dropped
    /// after a few milliseconds; for SQLite (whose statements run synchronously to their end inside one call),
    /// a statement stepped once and never finished or finalized, as a leaked cursor leaves it.
    async fn abandon_slow_query(conn: &mut Pooled<Self::M>);
}

const ABANDON_AFTER: Duration = Duration::from_millis(50);

impl Faults for Postgres {
    async fn start_refused(name: &str) -> aquifer_core::StartError<sqlx::Error> {
        // Role aquifer_pw has password `aquifer-secret` and scram auth over 127.0.0.1 (scripts/services/10-postgres.sh).
        let mut config = aquifer_postgres::PgConfig::from_url(
            "postgres://aquifer_pw:not-the-password@127.0.0.1:5432/test?sslmode=disable",
        );
        config.pool.name = Some(name.into());
        config.connect().await.expect_err("a wrong password must fail")
    }

    async fn abandon_slow_query(conn: &mut Pooled<Self::M>) {
        let slow = sqlx::query("SELECT pg_sleep(3)").execute(&mut **conn);
        assert!(tokio::time::timeout(ABANDON_AFTER, slow).await.is_err(), "the query was still running");
    }
}

impl Faults for MySql {
    async fn start_refused(name: &str) -> aquifer_core::StartError<aquifer_mysql::mysql_async::Error> {
        // User aquifer_pw (password `aquifer-secret`) is made by scripts/services/20-mariadb.sh.
        let mut config =
            aquifer_mysql::MySqlConfig::from_url("mysql://aquifer_pw:not-the-password@127.0.0.1:3306/test");
        config.pool.name = Some(name.into());
        config.connect().await.expect_err("a wrong password must fail")
    }

    async fn abandon_slow_query(conn: &mut Pooled<Self::M>) {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        let slow = conn.query_drop("SELECT SLEEP(3)");
        assert!(tokio::time::timeout(ABANDON_AFTER, slow).await.is_err(), "the query was still running");
    }
}

impl Faults for Neo4j {
    async fn start_refused(name: &str) -> aquifer_core::StartError<aquifer_neo4j::Neo4jError> {
        // A user of its own (scripts/services/40-arcadedb.sh): ArcadeDB locks a user out after 5 failed logins,
        // so refusing root's password would break the other tests.
        let mut config = aquifer_neo4j::Neo4jConfig::new("bolt://127.0.0.1:7687", "aq_neo4j_pw", "not-the-password")
            .database("testdb");
        config.pool.name = Some(name.into());
        config.connect().await.expect_err("a wrong password must fail")
    }

    async fn abandon_slow_query(conn: &mut Pooled<Self::M>) {
        let slow = async {
            let q = aquifer_neo4j::query("UNWIND range(1, 2000000) AS i RETURN i, toString(i) AS s");
            let mut rows = conn.execute(q).await?;
            while rows.next().await?.is_some() {}
            Ok::<_, aquifer_neo4j::neo4rs::Error>(())
        };
        assert!(tokio::time::timeout(ABANDON_AFTER, slow).await.is_err(), "the query was still running");
    }
}

impl Faults for Sqlite {
    async fn start_refused(name: &str) -> aquifer_core::StartError<aquifer_sqlite::ConnectionError> {
        let dir = std::env::temp_dir().join(format!("aq_cross_missing_{}", std::process::id()));
        let uri = format!("file:{}/no/such/dir/x.db?password=not-the-password", dir.display());
        let mut config = aquifer_sqlite::SqliteConfig::from_url(uri);
        config.pool.name = Some(name.into());
        config.connect().await.expect_err("a database in a missing directory cannot be opened")
    }

    async fn abandon_slow_query(conn: &mut Pooled<Self::M>) {
        let mut stmt = conn
            .prepare("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 10000000) SELECT i FROM n")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        assert!(rows.next().unwrap().is_some(), "the query produced its first row");
        // Never finished nor finalized: the statement stays in flight on the connection.
        std::mem::forget(rows);
        std::mem::forget(stmt);
        assert!(conn.is_busy(), "the statement is still running");
    }
}
