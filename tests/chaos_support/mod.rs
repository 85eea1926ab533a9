//! What the chaos tests (tests/chaos.rs), the 60-second soak (tests/soak.rs) and the long soak
//! (examples/soak.rs) share: each backend's pool behind a [`ChaosProxy`], a load of short requests that tallies
//! every outcome by its typed error, the pool invariants, and the count of the pool's connections the server
//! still holds.
#![allow(dead_code)]

pub mod soak;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aquifer_core::{Manager, Pool, PoolError, Pooled};
use aquifer_testing::ChaosProxy;
use parking_lot::Mutex;

pub const SCRIPT: &str = "bash scripts/dev-services.sh";

/// The acquire timeout of every pool under chaos (and of every peer in benches/faults.rs).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A name unique to this process and test: `aq_chaos_<what>_<pid>`.
pub fn marker(what: &str) -> String {
    format!("aq_chaos_{what}_{}", std::process::id())
}

fn lookup(vars: Vec<(String, String)>) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.into_iter().collect();
    move |k| map.get(k).cloned()
}

/// How one request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// No connection: the pool's typed error (`timeout`, `unavailable`, `connect`, `closed`).
    Acquire(&'static str),
    /// The connection was lost during the statement (the adapter's own classification).
    Lost,
    /// Any other error, by its `error.type`.
    Other(String),
}

impl Fail {
    pub fn acquire<E: std::error::Error>(e: &PoolError<E>) -> Fail {
        Fail::Acquire(match e {
            PoolError::Timeout { last_error: Some(_), .. } => "timeout_connecting",
            PoolError::Timeout { .. } => "timeout",
            PoolError::Unavailable { .. } => "unavailable",
            PoolError::Closed => "closed",
            _ => "config",
        })
    }

    fn label(&self) -> String {
        match self {
            Fail::Acquire(k) => format!("acquire:{k}"),
            Fail::Lost => "connection_lost".into(),
            Fail::Other(t) => format!("other:{t}"),
        }
    }
}

/// One backend under chaos.
pub trait ChaosBackend: Send + Sync + 'static {
    type M: Manager;
    /// Shown in messages.
    const NAME: &'static str;

    /// Where the real server listens.
    fn upstream() -> SocketAddr;
    /// Fails the test, naming the services script, unless the server answers.
    fn require() -> impl Future<Output = ()> + Send;
    /// Whatever the server needs before a pool marked `marker` connects (a user of that name).
    fn prepare(marker: &str) -> impl Future<Output = ()> + Send;
    /// A lazy pool of at most `max_size` through `port` whose connections the server can tell by `marker`.
    fn pool(port: u16, marker: &str, max_size: usize) -> Pool<Self::M>;
    /// One short statement on a checked-out connection.
    fn short(conn: &mut Pooled<Self::M>) -> impl Future<Output = Result<(), Fail>> + Send;
    /// A result of many rows (several hundred kilobytes) on a checked-out connection; returns the row count.
    fn long_result(conn: &mut Pooled<Self::M>) -> impl Future<Output = Result<usize, Fail>> + Send;
    /// One short statement through the adapter's helper (which retries what its docs say it retries).
    fn helper_short(pool: &Pool<Self::M>) -> impl Future<Output = Result<(), Fail>> + Send;
    /// The long result through the adapter's helper; returns the row count.
    fn helper_long(pool: &Pool<Self::M>) -> impl Future<Output = Result<usize, Fail>> + Send;
    /// How many connections of the pool marked `marker` the server holds (Bolt: ArcadeDB lists no sessions,
    /// so the proxy's open upstream connections stand in).
    fn server_connections(marker: &str, proxy: &ChaosProxy) -> impl Future<Output = usize> + Send;
}

/// Rows of the long result: enough bytes that a cut after a few kilobytes lands inside it on every backend.
pub const LONG_ROWS: i64 = 20_000;

/// Every outcome of a load, by kind.
#[derive(Default)]
pub struct Tally {
    inner: Mutex<TallyInner>,
}

#[derive(Default, Debug, Clone)]
pub struct TallyInner {
    pub ok: u64,
    pub failed: BTreeMap<String, u64>,
    /// Connections whose last statement failed with a lost connection.
    pub dead: HashSet<u64>,
    /// Checkouts that handed out a connection whose last statement failed as lost (a Bolt connection's
    /// `Graph` reconnects by itself, so this alone is not a failure).
    pub reissued: u64,
    /// Connections that failed as lost on two checkouts in a row: a dead connection handed out again.
    pub dead_reissued: u64,
    /// Latencies of successful requests (checkout to answer), microseconds.
    pub latencies_us: Vec<u64>,
}

impl Tally {
    pub fn snapshot(&self) -> TallyInner {
        self.inner.lock().clone()
    }

    /// Takes the latencies recorded since the last call (the soak's per-interval p99).
    pub fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut self.inner.lock().latencies_us)
    }

    pub fn ok(&self) -> u64 {
        self.inner.lock().ok
    }

    pub fn failed(&self) -> u64 {
        self.inner.lock().failed.values().sum()
    }

    pub fn count(&self, label: &str) -> u64 {
        self.inner.lock().failed.get(label).copied().unwrap_or(0)
    }

    pub fn dead_reissued(&self) -> u64 {
        self.inner.lock().dead_reissued
    }

    /// Tallies one outcome; a success records its latency from `started`.
    pub fn record(&self, started: Instant, outcome: Result<(), Fail>) {
        let mut t = self.inner.lock();
        match outcome {
            Ok(()) => {
                t.ok += 1;
                t.latencies_us.push(started.elapsed().as_micros() as u64);
            }
            Err(f) => *t.failed.entry(f.label()).or_default() += 1,
        }
    }

    /// Notes the outcome of a statement on connection `id`.
    fn used(&self, id: u64, lost: bool) {
        let mut t = self.inner.lock();
        let was_dead = t.dead.contains(&id);
        if was_dead {
            t.reissued += 1;
        }
        if lost && was_dead {
            t.dead_reissued += 1;
        }
        if lost {
            t.dead.insert(id);
        } else {
            t.dead.remove(&id);
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.inner.lock();
        write!(
            f,
            "ok {}, failed {:?}, dead connections handed out again {} (reused after a loss: {})",
            t.ok, t.failed, t.dead_reissued, t.reissued
        )
    }
}

/// One request: check out, run the short statement, tally. A connection whose statement lost its connection
/// is remembered; failing as lost again on its next checkout is counted as a dead connection handed out again.
pub async fn request<B: ChaosBackend>(pool: &Pool<B::M>, tally: &Tally) {
    let started = Instant::now();
    let outcome = match pool.get().await {
        Err(e) => Err(Fail::acquire(&e)),
        Ok(mut conn) => {
            let id = conn.info().id;
            let r = B::short(&mut conn).await;
            tally.used(id, r == Err(Fail::Lost));
            r
        }
    };
    let failed = outcome.is_err();
    tally.record(started, outcome);
    if failed {
        // A failing pool answers at once (fail-fast); a short pause keeps the counts about requests, not spins.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tasks` tasks sending requests back to back until `until`.
pub async fn load<B: ChaosBackend>(pool: &Pool<B::M>, tally: &Arc<Tally>, tasks: usize, until: Instant) {
    load_with_think::<B>(pool, tally, tasks, until, Duration::ZERO).await;
}

/// `tasks` tasks sending requests until `until`, each pausing `think` after each request (a service's clients
/// rather than a benchmark's); their starts are spread over one `think` so they do not arrive together.
pub async fn load_with_think<B: ChaosBackend>(
    pool: &Pool<B::M>,
    tally: &Arc<Tally>,
    tasks: usize,
    until: Instant,
    think: Duration,
) {
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let pool = pool.clone();
        let tally = tally.clone();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(think.mul_f64(i as f64 / tasks as f64)).await;
            while Instant::now() < until {
                request::<B>(&pool, &tally).await;
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("a load task does not panic");
    }
}

/// The pool's state and stats agree once every connection is back: nothing checked out or waiting, size within
/// bounds, open connections equal to created minus closed, no leak or panic reported. Waits (bounded) for
/// resets running in the background to finish.
pub async fn assert_invariants<M: Manager>(pool: &Pool<M>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.state();
        if (s.in_use == 0 && s.connecting == 0 && s.waiting == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = pool.state();
    let st = pool.stats();
    assert!(s.size <= s.max_size, "size within max: {s}");
    assert!(s.idle <= s.size, "idle within size: {s}");
    assert_eq!((s.in_use, s.waiting, s.connecting), (0, 0, 0), "nothing held once all returned: {s}");
    assert_eq!(s.idle, s.size, "every slot is an idle connection: {s}");
    assert_eq!(st.created - st.closed - st.detached, s.size as u64, "open = created - closed: {st:?} {s}");
    assert_eq!((st.leaks, st.panics), (0, 0), "no leak or panic reported: {st:?}");
}

/// Closes the pool and waits (bounded) until the server holds none of its connections.
pub async fn assert_server_clean<B: ChaosBackend>(pool: Pool<B::M>, marker: &str, proxy: &ChaosProxy) {
    pool.close().await;
    assert_eq!(pool.state().size, 0, "a closed pool holds nothing: {}", pool.state());
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = usize::MAX;
    while Instant::now() < deadline {
        left = B::server_connections(marker, proxy).await;
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}: the server still holds {left} connection(s) of the closed pool {marker}", B::NAME);
}

/// Checks `n` connections out at once and returns them, so the pool holds `n` idle connections.
pub async fn fill<M: Manager>(pool: &Pool<M>, n: usize) {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.expect("a connection while there is no fault"));
    }
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------------------
// The backends.

pub struct Postgres;

fn pg_lost(e: &sqlx::Error) -> bool {
    // The session is gone: a socket error, or the server ended it (class 08, 57P01-03, FATAL).
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

fn pg_fail(e: &sqlx::Error) -> Fail {
    if pg_lost(e) {
        Fail::Lost
    } else {
        Fail::Other(match e {
            sqlx::Error::Protocol(m) => format!("protocol: {m}"),
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
            other => other.to_string(),
        })
    }
}

fn pg_op_fail(e: &aquifer_postgres::PgOperationError) -> Fail {
    match e {
        aquifer_core::OperationError::Acquire(p) => Fail::acquire(p),
        aquifer_core::OperationError::Backend(b) => pg_fail(b),
        _ => Fail::Other("unknown".into()),
    }
}

impl ChaosBackend for Postgres {
    type M = aquifer_postgres::PgManager;
    const NAME: &'static str = "PostgreSQL";

    fn upstream() -> SocketAddr {
        "127.0.0.1:5432".parse().unwrap()
    }

    async fn require() {
        aquifer_testing::require_server("PostgreSQL", "127.0.0.1:5432", SCRIPT).await;
    }

    async fn prepare(_marker: &str) {}

    fn pool(port: u16, marker: &str, max_size: usize) -> Pool<Self::M> {
        let vars = vec![
            ("POSTGRES_URL".into(), format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable")),
            ("POSTGRES_NAME".into(), marker.into()),
            ("POSTGRES_APPLICATION_NAME".into(), marker.into()),
            ("POSTGRES_POOL_MAX_SIZE".into(), max_size.to_string()),
            ("POSTGRES_POOL_ACQUIRE_TIMEOUT".into(), "2s".into()),
            ("POSTGRES_POOL_LEAK_THRESHOLD".into(), "10s".into()),
        ];
        let config = aquifer_postgres::PgConfig::from_lookup("POSTGRES", lookup(vars)).unwrap();
        config.builder().expect("valid config").build().expect("a pool builds in a runtime")
    }

    async fn short(conn: &mut Pooled<Self::M>) -> Result<(), Fail> {
        let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut **conn).await.map_err(|e| pg_fail(&e))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn long_result(conn: &mut Pooled<Self::M>) -> Result<usize, Fail> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT i, repeat('x', 40) FROM generate_series(1, $1::int8) AS i")
                .bind(LONG_ROWS)
                .fetch_all(&mut **conn)
                .await
                .map_err(|e| pg_fail(&e))?;
        Ok(rows.len())
    }

    async fn helper_short(pool: &Pool<Self::M>) -> Result<(), Fail> {
        let pool = aquifer_postgres::PgPool::from(pool.clone());
        let (v,): (i32,) =
            pool.fetch_one(|| sqlx::query_as::<_, (i32,)>("SELECT 1")).await.map_err(|e| pg_op_fail(&e))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn helper_long(pool: &Pool<Self::M>) -> Result<usize, Fail> {
        let pool = aquifer_postgres::PgPool::from(pool.clone());
        let rows: Vec<(i64, String)> = pool
            .fetch_all(|| {
                sqlx::query_as::<_, (i64, String)>("SELECT i, repeat('x', 40) FROM generate_series(1, $1::int8) AS i")
                    .bind(LONG_ROWS)
            })
            .await
            .map_err(|e| pg_op_fail(&e))?;
        Ok(rows.len())
    }

    async fn server_connections(marker: &str, _proxy: &ChaosProxy) -> usize {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
            .await
            .expect("a direct connection to PostgreSQL");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(marker)
            .fetch_one(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
        n as usize
    }
}

pub struct MySql;

fn my_fail(e: &aquifer_mysql::mysql_async::Error) -> Fail {
    match aquifer_mysql::error_type(e) {
        t if t == "connection_lost" => Fail::Lost,
        t => Fail::Other(format!("{t}: {e}")),
    }
}

fn my_op_fail(e: &aquifer_mysql::MySqlOperationError) -> Fail {
    match e {
        aquifer_core::OperationError::Acquire(p) => Fail::acquire(p),
        aquifer_core::OperationError::Backend(b) => my_fail(b),
        _ => Fail::Other("unknown".into()),
    }
}

async fn mysql_root() -> aquifer_mysql::mysql_async::Conn {
    aquifer_mysql::mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test?prefer_socket=false")
        .await
        .expect("a direct connection to MariaDB")
}

impl ChaosBackend for MySql {
    type M = aquifer_mysql::MySqlManager;
    const NAME: &'static str = "MariaDB";

    fn upstream() -> SocketAddr {
        "127.0.0.1:3306".parse().unwrap()
    }

    async fn require() {
        aquifer_testing::require_server("MariaDB", "127.0.0.1:3306", SCRIPT).await;
    }

    /// A user named after the marker, so `information_schema.processlist` tells this pool's connections apart.
    async fn prepare(marker: &str) {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        let mut c = mysql_root().await;
        c.query_drop(format!("CREATE USER IF NOT EXISTS '{marker}'@'%'")).await.unwrap();
        c.query_drop(format!("GRANT ALL ON test.* TO '{marker}'@'%'")).await.unwrap();
        let _ = c.disconnect().await;
    }

    fn pool(port: u16, marker: &str, max_size: usize) -> Pool<Self::M> {
        let vars = vec![
            ("MYSQL_URL".into(), format!("mysql://{marker}@127.0.0.1:{port}/test")),
            ("MYSQL_TRANSPORT".into(), "tcp".into()),
            ("MYSQL_NAME".into(), marker.into()),
            ("MYSQL_POOL_MAX_SIZE".into(), max_size.to_string()),
            ("MYSQL_POOL_ACQUIRE_TIMEOUT".into(), "2s".into()),
            ("MYSQL_POOL_LEAK_THRESHOLD".into(), "10s".into()),
        ];
        let config = aquifer_mysql::MySqlConfig::from_lookup("MYSQL", lookup(vars)).unwrap();
        config.builder().expect("valid config").build().expect("a pool builds in a runtime")
    }

    async fn short(conn: &mut Pooled<Self::M>) -> Result<(), Fail> {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        let v: Option<i32> = conn.query_first("SELECT 1").await.map_err(|e| my_fail(&e))?;
        assert_eq!(v, Some(1));
        Ok(())
    }

    async fn long_result(conn: &mut Pooled<Self::M>) -> Result<usize, Fail> {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        let rows: Vec<(i64, String)> = conn.exec(LONG_SQL_MYSQL, (LONG_ROWS,)).await.map_err(|e| my_fail(&e))?;
        Ok(rows.len())
    }

    async fn helper_short(pool: &Pool<Self::M>) -> Result<(), Fail> {
        let pool = aquifer_mysql::MySqlPool::from(pool.clone());
        let v: i32 = pool.fetch_one("SELECT 1", ()).await.map_err(|e| my_op_fail(&e))?;
        assert_eq!(v, 1);
        Ok(())
    }

    async fn helper_long(pool: &Pool<Self::M>) -> Result<usize, Fail> {
        let pool = aquifer_mysql::MySqlPool::from(pool.clone());
        let rows: Vec<(i64, String)> =
            pool.fetch_all(LONG_SQL_MYSQL, (LONG_ROWS,)).await.map_err(|e| my_op_fail(&e))?;
        Ok(rows.len())
    }

    async fn server_connections(marker: &str, _proxy: &ChaosProxy) -> usize {
        use aquifer_mysql::mysql_async::prelude::Queryable;
        let mut c = mysql_root().await;
        let n: Option<i64> = c
            .exec_first("SELECT count(*) FROM information_schema.processlist WHERE user = ?", (marker,))
            .await
            .unwrap();
        let _ = c.disconnect().await;
        n.unwrap_or(0) as usize
    }
}

/// MariaDB's sequence engine makes the rows.
const LONG_SQL_MYSQL: &str = "SELECT seq, REPEAT('x', 40) FROM seq_1_to_1000000 WHERE seq <= ?";

pub struct Neo4j;

fn neo_fail(e: &aquifer_neo4j::Neo4jError) -> Fail {
    if matches!(e, aquifer_neo4j::Neo4jError::ConnectionLost { .. }) {
        Fail::Lost
    } else {
        Fail::Other(e.error_type().into_owned())
    }
}

fn neo_raw_fail(e: &aquifer_neo4j::neo4rs::Error) -> Fail {
    match e {
        aquifer_neo4j::neo4rs::Error::IOError { .. } | aquifer_neo4j::neo4rs::Error::ConnectionError => Fail::Lost,
        other => Fail::Other(format!("{other}")),
    }
}

fn neo_op_fail(e: &aquifer_neo4j::Neo4jOperationError) -> Fail {
    match e {
        aquifer_core::OperationError::Acquire(p) => Fail::acquire(p),
        aquifer_core::OperationError::Backend(b) => neo_fail(b),
        _ => Fail::Other("unknown".into()),
    }
}

impl ChaosBackend for Neo4j {
    type M = aquifer_neo4j::Neo4jManager;
    const NAME: &'static str = "Bolt (ArcadeDB)";

    fn upstream() -> SocketAddr {
        "127.0.0.1:7687".parse().unwrap()
    }

    async fn require() {
        aquifer_testing::require_server("the Bolt server (ArcadeDB)", "127.0.0.1:7687", SCRIPT).await;
    }

    async fn prepare(_marker: &str) {}

    fn pool(port: u16, marker: &str, max_size: usize) -> Pool<Self::M> {
        let vars = vec![
            ("NEO4J_URI".into(), format!("bolt://127.0.0.1:{port}")),
            ("NEO4J_USER".into(), "root".into()),
            ("NEO4J_PASSWORD".into(), "aquifer-secret".into()),
            ("NEO4J_DATABASE".into(), "testdb".into()),
            ("NEO4J_NAME".into(), marker.into()),
            ("NEO4J_POOL_MAX_SIZE".into(), max_size.to_string()),
            ("NEO4J_POOL_ACQUIRE_TIMEOUT".into(), "2s".into()),
            ("NEO4J_POOL_LEAK_THRESHOLD".into(), "10s".into()),
        ];
        let config = aquifer_neo4j::Neo4jConfig::from_lookup("NEO4J", lookup(vars)).unwrap();
        config.builder().expect("valid config").build().expect("a pool builds in a runtime")
    }

    async fn short(conn: &mut Pooled<Self::M>) -> Result<(), Fail> {
        let mut rows = conn.execute(aquifer_neo4j::query("RETURN 1 AS a")).await.map_err(|e| neo_raw_fail(&e))?;
        let row = rows.next().await.map_err(|e| neo_raw_fail(&e))?.ok_or(Fail::Other("no row".into()))?;
        assert_eq!(row.get::<i64>("a").unwrap(), 1);
        Ok(())
    }

    async fn long_result(conn: &mut Pooled<Self::M>) -> Result<usize, Fail> {
        let q = aquifer_neo4j::query(LONG_CYPHER).param("n", LONG_ROWS);
        let mut rows = conn.execute(q).await.map_err(|e| neo_raw_fail(&e))?;
        let mut n = 0;
        while rows.next().await.map_err(|e| neo_raw_fail(&e))?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    async fn helper_short(pool: &Pool<Self::M>) -> Result<(), Fail> {
        let pool = aquifer_neo4j::Neo4jPool::from(pool.clone());
        let row = pool.fetch_one(aquifer_neo4j::query("RETURN 1 AS a")).await.map_err(|e| neo_op_fail(&e))?;
        assert_eq!(row.get::<i64>("a").unwrap(), 1);
        Ok(())
    }

    async fn helper_long(pool: &Pool<Self::M>) -> Result<usize, Fail> {
        let q = aquifer_neo4j::query(LONG_CYPHER).param("n", LONG_ROWS);
        let pool = aquifer_neo4j::Neo4jPool::from(pool.clone());
        Ok(pool.fetch_all(q).await.map_err(|e| neo_op_fail(&e))?.len())
    }

    async fn server_connections(_marker: &str, proxy: &ChaosProxy) -> usize {
        proxy.live()
    }
}

const LONG_CYPHER: &str = "UNWIND range(1, $n) AS i RETURN i, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' AS s";
