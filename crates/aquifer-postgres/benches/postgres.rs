//! Queries per second and latency (the wait for a connection included) of aquifer-postgres against sqlx's
//! own PgPool (defaults), deadpool-postgres (tokio-postgres), 16 bare sqlx connections without a pool, and
//! pgbench as the physical reference. Pool size 16; 16, 64 and 256 tasks; `SELECT 1` and a primary-key
//! lookup. Peers run interleaved (the order rotates every round), each on a fresh pool that is pre-filled and
//! warmed; the table shows medians over the rounds.
//!
//!     bash scripts/dev-services.sh postgres
//!     cargo bench -p aquifer-postgres --bench postgres
//!
//! Environment: `POSTGRES_URL` (default the local test server without TLS), `BENCH_SECS` per measurement
//! (default 2), `BENCH_ROUNDS` (default 3), `BENCH_TASKS` (default `16,64,256`), `BENCH_PEERS` (a comma list
//! of `aquifer`, `helper`, `helper-off`, `helper-scoped`, `helper-request`, `helper-request-off`, `session`, `scoped`, `sqlx`, `deadpool`, `bare`; default all; the helper
//! peers differ only in the N+1 detector: `helper` has the default mode (warn) with no scope open, `helper-off`
//! mode off, `helper-scoped` mode warn with every query in a scope of its own, its worst case, `helper-request` mode warn
//! with one scope per request of 4 queries, below the report threshold, `helper-request-off` the same scopes with
//! the detector off), `BENCH_WORK` (`select1`, `pk`; default
//! both), `BENCH_PGBENCH=0` to skip pgbench. Not run by CI.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_postgres::sqlx::postgres::{PgConnection, PgPoolOptions};
use aquifer_postgres::sqlx::{self, Connection};
use aquifer_postgres::{PgConfig, PgPool, PgSession};
use tokio::sync::Mutex;

const POOL_SIZE: usize = 16;
const ROWS: i32 = 10_000;
const PK_SQL: &str = "SELECT id, name, value FROM aq_pg_bench WHERE id = $1";
/// Queries per N+1 scope of the `helper-request` peer: a request that runs a few statements, none in a loop.
const QUERIES_PER_REQUEST: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Work {
    Select1,
    PkLookup,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Select1 => "SELECT 1",
            Work::PkLookup => "primary-key lookup",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Aquifer,
    AquiferHelper,
    /// `get_session` (a tenant set at session level, `RESET ALL; RESET ROLE` on return) + a sqlx query.
    AquiferSession,
    /// The helper `fetch_one` with a tenant applied per transaction (`with_session`).
    AquiferScoped,
    AquiferHelperOff,
    AquiferHelperScoped,
    AquiferHelperRequest,
    /// As `AquiferHelperRequest` with the detector off: what the scope's wrapping costs without the detector.
    AquiferHelperRequestOff,
    Sqlx,
    Deadpool,
    Bare,
}

impl Peer {
    const ALL: [Peer; 11] = [
        Peer::Aquifer,
        Peer::AquiferHelper,
        Peer::AquiferSession,
        Peer::AquiferScoped,
        Peer::AquiferHelperOff,
        Peer::AquiferHelperScoped,
        Peer::AquiferHelperRequest,
        Peer::AquiferHelperRequestOff,
        Peer::Sqlx,
        Peer::Deadpool,
        Peer::Bare,
    ];

    fn key(self) -> &'static str {
        match self {
            Peer::Aquifer => "aquifer",
            Peer::AquiferHelper => "helper",
            Peer::AquiferSession => "session",
            Peer::AquiferScoped => "scoped",
            Peer::AquiferHelperOff => "helper-off",
            Peer::AquiferHelperScoped => "helper-scoped",
            Peer::AquiferHelperRequest => "helper-request",
            Peer::AquiferHelperRequestOff => "helper-request-off",
            Peer::Sqlx => "sqlx",
            Peer::Deadpool => "deadpool",
            Peer::Bare => "bare",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Peer::Aquifer => "aquifer-postgres (get + sqlx query)",
            Peer::AquiferHelper => "aquifer-postgres helper fetch_one (metrics + retry)",
            Peer::AquiferSession => "aquifer-postgres get_session (tenant per checkout) + sqlx query",
            Peer::AquiferScoped => "aquifer-postgres with_session fetch_one (tenant per transaction)",
            Peer::AquiferHelperOff => "helper fetch_one, N+1 detector off",
            Peer::AquiferHelperScoped => "helper fetch_one, N+1 warn, one scope per query",
            Peer::AquiferHelperRequest => "helper fetch_one, N+1 warn, one scope per 4 queries",
            Peer::AquiferHelperRequestOff => "helper fetch_one, N+1 off, one scope per 4 queries",
            Peer::Sqlx => "sqlx PgPool, defaults",
            Peer::Deadpool => "deadpool-postgres 0.14 (tokio-postgres)",
            Peer::Bare => "16 bare sqlx PgConnections, no pool",
        }
    }
}

/// One measurement: queries per second and latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    qps: f64,
    /// This process's CPU time per query in microseconds (the client's cost; other processes on the machine
    /// disturb it far less than throughput).
    cpu_us: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Something that runs one query, waiting for a connection first.
enum Target {
    Aquifer(PgPool),
    AquiferHelper(PgPool),
    AquiferSession(PgPool, PgSession),
    AquiferScoped(PgPool, PgSession),
    /// Each query in an N+1 scope of its own.
    AquiferHelperScoped(PgPool),
    /// The helper, [`QUERIES_PER_REQUEST`] queries per N+1 scope.
    AquiferHelperRequest(PgPool),
    Sqlx(sqlx::PgPool),
    Deadpool(deadpool_postgres::Pool),
    Bare(Arc<Vec<Mutex<PgConnection>>>),
}

impl Target {
    async fn query(&self, work: Work, task: usize, key: i32) {
        match (self, work) {
            (Target::Aquifer(pool), Work::Select1) => {
                let mut conn = pool.get().await.expect("get");
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.expect("query");
            }
            (Target::Aquifer(pool), Work::PkLookup) => {
                let mut conn = pool.get().await.expect("get");
                let _: (i32, String, i32) = sqlx::query_as(PK_SQL).bind(key).fetch_one(&mut *conn).await.expect("q");
            }
            (Target::AquiferHelper(pool) | Target::AquiferHelperRequest(pool), Work::Select1) => {
                let _: (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.expect("query");
            }
            (Target::AquiferHelper(pool) | Target::AquiferHelperRequest(pool), Work::PkLookup) => {
                let _: (i32, String, i32) = pool.fetch_one(|| sqlx::query(PK_SQL).bind(key)).await.expect("query");
            }
            (Target::AquiferSession(pool, session), Work::Select1) => {
                let mut conn = pool.get_session(session).await.expect("get_session");
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.expect("query");
            }
            (Target::AquiferSession(pool, session), Work::PkLookup) => {
                let mut conn = pool.get_session(session).await.expect("get_session");
                let _: (i32, String, i32) = sqlx::query_as(PK_SQL).bind(key).fetch_one(&mut *conn).await.expect("q");
            }
            (Target::AquiferScoped(pool, session), Work::Select1) => {
                let scoped = pool.with_session(session.clone());
                let _: (i32,) = scoped.fetch_one(|| sqlx::query("SELECT 1")).await.expect("query");
            }
            (Target::AquiferScoped(pool, session), Work::PkLookup) => {
                let scoped = pool.with_session(session.clone());
                let _: (i32, String, i32) = scoped.fetch_one(|| sqlx::query(PK_SQL).bind(key)).await.expect("query");
            }
            (Target::AquiferHelperScoped(pool), Work::Select1) => {
                let query = pool.fetch_one(|| sqlx::query("SELECT 1"));
                let _: (i32,) = aquifer_core::n_plus_one::scope(query).await.expect("query");
            }
            (Target::AquiferHelperScoped(pool), Work::PkLookup) => {
                let query = pool.fetch_one(|| sqlx::query(PK_SQL).bind(key));
                let _: (i32, String, i32) = aquifer_core::n_plus_one::scope(query).await.expect("query");
            }
            (Target::Sqlx(pool), Work::Select1) => {
                let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(pool).await.expect("query");
            }
            (Target::Sqlx(pool), Work::PkLookup) => {
                let _: (i32, String, i32) = sqlx::query_as(PK_SQL).bind(key).fetch_one(pool).await.expect("query");
            }
            (Target::Deadpool(pool), work) => {
                let client = pool.get().await.expect("get");
                match work {
                    Work::Select1 => {
                        let stmt = client.prepare_cached("SELECT 1").await.expect("prepare");
                        let row = client.query_one(&stmt, &[]).await.expect("query");
                        let _: i32 = row.get(0);
                    }
                    Work::PkLookup => {
                        let stmt = client.prepare_cached(PK_SQL).await.expect("prepare");
                        let row = client.query_one(&stmt, &[&key]).await.expect("query");
                        let _: (i32, String, i32) = (row.get(0), row.get(1), row.get(2));
                    }
                }
            }
            (Target::Bare(conns), work) => {
                // 16 connections; with more tasks than that, tasks take turns on "their" connection.
                let mut conn = conns[task % conns.len()].lock().await;
                match work {
                    Work::Select1 => {
                        let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.expect("query");
                    }
                    Work::PkLookup => {
                        let _: (i32, String, i32) =
                            sqlx::query_as(PK_SQL).bind(key).fetch_one(&mut *conn).await.expect("query");
                    }
                }
            }
        }
    }

    async fn close(self) {
        match self {
            Target::Aquifer(pool)
            | Target::AquiferHelper(pool)
            | Target::AquiferHelperScoped(pool)
            | Target::AquiferHelperRequest(pool)
            | Target::AquiferSession(pool, _)
            | Target::AquiferScoped(pool, _) => {
                pool.close().await;
            }
            Target::Sqlx(pool) => pool.close().await,
            Target::Deadpool(pool) => pool.close(),
            Target::Bare(conns) => {
                if let Ok(conns) = Arc::try_unwrap(conns) {
                    for c in conns {
                        let _ = c.into_inner().close().await;
                    }
                }
            }
        }
    }
}

fn url() -> String {
    std::env::var("POSTGRES_URL").unwrap_or_else(|_| aquifer_testing::servers::postgres_url())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A fresh, pre-filled pool of 16 for `peer`.
async fn open(peer: Peer) -> Target {
    match peer {
        Peer::Aquifer
        | Peer::AquiferHelper
        | Peer::AquiferHelperOff
        | Peer::AquiferHelperScoped
        | Peer::AquiferHelperRequest
        | Peer::AquiferHelperRequestOff
        | Peer::AquiferSession
        | Peer::AquiferScoped => {
            let mut c = PgConfig::from_url(url());
            c.pool.name = Some("aq_pg_bench".into());
            c.pool.max_size = POOL_SIZE;
            c.pool.min_idle = POOL_SIZE;
            let pool = c.connect().await.expect("aquifer pool");
            // warm_up opens min_idle connections; wait until all 16 are idle.
            while pool.state().idle < POOL_SIZE {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let tenant = || PgSession::new().set("app.tenant_id", "7").expect("a valid setting");
            match peer {
                Peer::Aquifer => Target::Aquifer(pool),
                Peer::AquiferSession => Target::AquiferSession(pool, tenant()),
                Peer::AquiferScoped => Target::AquiferScoped(pool, tenant()),
                Peer::AquiferHelperOff => {
                    pool.set_n_plus_one(aquifer_core::n_plus_one::NPlusOneMode::Off);
                    Target::AquiferHelper(pool)
                }
                Peer::AquiferHelperScoped => Target::AquiferHelperScoped(pool),
                Peer::AquiferHelperRequest => Target::AquiferHelperRequest(pool),
                Peer::AquiferHelperRequestOff => {
                    pool.set_n_plus_one(aquifer_core::n_plus_one::NPlusOneMode::Off);
                    Target::AquiferHelperRequest(pool)
                }
                _ => Target::AquiferHelper(pool),
            }
        }
        Peer::Sqlx => {
            let pool = PgPoolOptions::new()
                .max_connections(POOL_SIZE as u32)
                .min_connections(POOL_SIZE as u32)
                .connect(&url())
                .await
                .expect("sqlx pool");
            Target::Sqlx(pool)
        }
        Peer::Deadpool => {
            let options: sqlx::postgres::PgConnectOptions = url().parse().expect("url");
            let mut config = tokio_postgres::Config::new();
            config
                .host(options.get_host())
                .port(options.get_port())
                .user(options.get_username())
                .dbname(options.get_database().unwrap_or("test"));
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
            );
            let pool = deadpool_postgres::Pool::builder(manager).max_size(POOL_SIZE).build().expect("deadpool");
            Target::Deadpool(pool)
        }
        Peer::Bare => {
            let mut conns = Vec::new();
            for _ in 0..POOL_SIZE {
                conns.push(Mutex::new(PgConnection::connect(&url()).await.expect("connect")));
            }
            Target::Bare(Arc::new(conns))
        }
    }
}

/// Runs `tasks` tasks against `target` for `secs`, after a short warm-up that also fills every pool and
/// prepares the statements on every connection.
async fn measure(target: Arc<Target>, work: Work, tasks: usize, secs: f64) -> Sample {
    let warm = Duration::from_millis(300);
    let run = Duration::from_secs_f64(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let measure_from = start + warm;
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (target, stop) = (target.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut key = (task as i32 * 7919) % ROWS;
            // Every peer runs its queries in requests of the same size, so that the N+1 scope (opened per
            // request for `helper-request`) is the only difference in how the tasks' futures are built.
            let in_scope = matches!(*target, Target::AquiferHelperRequest(_));
            while !stop.load(Ordering::Relaxed) {
                let request = async {
                    for _ in 0..QUERIES_PER_REQUEST {
                        key = (key + 104_729) % ROWS;
                        let t0 = Instant::now();
                        target.query(work, task, key + 1).await;
                        if t0 >= measure_from {
                            lat.push(t0.elapsed().as_nanos() as u64);
                        }
                    }
                };
                if in_scope {
                    aquifer_core::n_plus_one::scope(request).await;
                } else {
                    request.await;
                }
            }
            lat
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = aquifer_testing::process_cpu_time();
    tokio::time::sleep_until((measure_from + run).into()).await;
    let cpu = aquifer_testing::process_cpu_time() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    let cpu_us = cpu.as_secs_f64() * 1e6 / all.len().max(1) as f64;
    Sample {
        qps: all.len() as f64 / secs,
        cpu_us,
        p50: pct(0.50),
        p99: pct(0.99),
        max: *all.last().unwrap() as f64 / 1000.0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn setup() {
    let mut conn = PgConnection::connect(&url()).await.expect("connect to the benchmark server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS aq_pg_bench (id int PRIMARY KEY, name text NOT NULL, value int NOT NULL);
         INSERT INTO aq_pg_bench SELECT g, 'name ' || g, g * 7 FROM generate_series(1, {ROWS}) g
         ON CONFLICT (id) DO NOTHING;
         ANALYZE aq_pg_bench;"
    )))
    .execute(&mut conn)
    .await
    .expect("benchmark table");
}

/// pgbench `SELECT 1`, prepared protocol, 16 clients on 2 threads.
fn pgbench(secs: u64) -> Option<f64> {
    let dir = std::env::temp_dir().join("aq_pg_bench_select1.sql");
    std::fs::write(&dir, "SELECT 1;\n").ok()?;
    let options: sqlx::postgres::PgConnectOptions = url().parse().ok()?;
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", &secs.to_string(), "-f"])
        .arg(&dir)
        .args(["-h", options.get_host(), "-p", &options.get_port().to_string(), "-U", options.get_username()])
        .arg(options.get_database().unwrap_or("test"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("tps = "))?;
    line.trim_start_matches("tps = ").split_whitespace().next()?.parse().ok()
}

fn main() {
    let secs: f64 = env_or("BENCH_SECS", 2.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let task_counts: Vec<usize> = std::env::var("BENCH_TASKS")
        .unwrap_or_else(|_| "16,64,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let wanted = |var: &str, key: &str| std::env::var(var).map_or(true, |v| v.split(',').any(|k| k.trim() == key));
    let peers: Vec<Peer> = Peer::ALL.into_iter().filter(|p| wanted("BENCH_PEERS", p.key())).collect();
    let works: Vec<Work> = [(Work::Select1, "select1"), (Work::PkLookup, "pk")]
        .into_iter()
        .filter(|(_, k)| wanted("BENCH_WORK", k))
        .map(|(w, _)| w)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(setup());

    println!("pool size {POOL_SIZE}, {secs} s per measurement, median of {rounds} rounds, peers interleaved\n");
    for work in works {
        println!("### {}\n", work.name());
        println!("| peer | tasks | queries/s | client CPU µs/query | p50 µs | p99 µs | max µs |");
        println!("|---|---|---|---|---|---|---|");
        for &tasks in &task_counts {
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); peers.len()];
            for round in 0..rounds {
                for k in 0..peers.len() {
                    let i = (k + round) % peers.len();
                    let target = Arc::new(runtime.block_on(open(peers[i])));
                    let s = runtime.block_on(measure(target.clone(), work, tasks, secs));
                    samples[i].push(s);
                    let target = Arc::try_unwrap(target).ok().expect("tasks finished");
                    runtime.block_on(target.close());
                }
            }
            for (i, peer) in peers.iter().enumerate() {
                let s = &samples[i];
                println!(
                    "| {} | {tasks} | {:.1}k | {:.1} | {:.0} | {:.0} | {:.0} |",
                    peer.name(),
                    median(s.iter().map(|x| x.qps).collect()) / 1000.0,
                    median(s.iter().map(|x| x.cpu_us).collect()),
                    median(s.iter().map(|x| x.p50).collect()),
                    median(s.iter().map(|x| x.p99).collect()),
                    median(s.iter().map(|x| x.max).collect()),
                );
            }
        }
        println!();
    }
    if std::env::var("BENCH_PGBENCH").is_ok_and(|v| v == "0") {
        return;
    }
    match pgbench(secs.ceil() as u64 + 3) {
        Some(tps) => println!("pgbench -M prepared -c 16 -j 2, SELECT 1: {:.1}k tps", tps / 1000.0),
        None => println!("pgbench not available"),
    }
}
