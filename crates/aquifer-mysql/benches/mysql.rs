//! aquifer-mysql against mysql_async's own Pool and against bare connections, on the local MariaDB.
//!
//! Two queries: `SELECT 1` (text protocol) and a primary-key lookup (`SELECT ... WHERE id = ?`, a prepared
//! statement from each connection's cache). 16 / 64 / 256 concurrent tasks on a 2-worker Tokio runtime, 16
//! connections, all over TCP to the project's MariaDB. Peers, each measured on a fresh, pre-filled, warmed pool, in one
//! run, interleaved, medians over the repetitions:
//!
//! - `aquifer get+query`: `pool.get()` then the driver's own `query_first` / `exec_first` on the guard;
//! - `aquifer fetch_one`: the helper (timing, `db.client.operation.duration`, retries), N+1 detector in its
//!   default mode (warn) with no scope open;
//! - `aquifer fetch_one n+1 off`: the same with the N+1 detector off;
//! - `aquifer fetch_one n+1 scoped`: the same, detector on (warn), every query in an N+1 scope of its own (its
//!   worst case: a scope set up and torn down per statement);
//! - `aquifer fetch_one n+1 request`: the same, detector on (warn), one scope per request of
//!   [`QUERIES_PER_REQUEST`] queries (below the report threshold of 5, as a request without a loop);
//! - `aquifer reset_on_return`: get+query with `COM_RESET_CONNECTION` on every return (off by default);
//! - `mysql_async Pool (defaults)`: `Pool::get_conn`, `reset_connection = true` (its default: a
//!   `COM_RESET_CONNECTION` on every return), constraints 16..16;
//! - `mysql_async Pool (no reset)`: the same with `reset_connection = false`;
//! - `bare Conn x16 (reference)`: 16 connections without a pool, task `i` uses connection `i % 16` behind a
//!   tokio Mutex: the floor any pool adds to.
//!
//! Latency is per query, acquire included: p50 / p99 / max.
//!
//!     cargo bench -p aquifer-mysql --bench mysql
//!
//! Environment: MYSQL_URL (default the MariaDB of scripts/dev-services.sh, `aquifer_testing::servers::mariadb_url`), BENCH_SECS (seconds per measurement,
//! default 1.5), BENCH_REPS (default 3); for profiling one case: BENCH_PEERS (comma-separated substrings of
//! the peer labels, e.g. `aquifer`), BENCH_TASKS (e.g. `16`), BENCH_QUERIES (`select1`, `pk`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{self, Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts};
use aquifer_mysql::{MySqlConfig, MySqlPool, PoolConfig};

const POOL: usize = 16;
const TASKS: [usize; 3] = [16, 64, 256];
const ROWS: u64 = 10_000;
const TABLE: &str = "aq_my_bench_words";
/// Queries per N+1 scope of the `n+1 request` peer: a request that runs a few statements, none in a loop.
const QUERIES_PER_REQUEST: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Query {
    Select1,
    PkLookup,
}

impl Query {
    fn label(self) -> &'static str {
        match self {
            Query::Select1 => "SELECT 1",
            Query::PkLookup => "PK lookup",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    AquiferGet,
    AquiferHelper,
    AquiferHelperOff,
    AquiferHelperScoped,
    AquiferHelperRequest,
    AquiferReset,
    MysqlAsyncPool,
    MysqlAsyncPoolNoReset,
    Bare,
}

const PEERS: [Peer; 9] = [
    Peer::AquiferGet,
    Peer::AquiferHelper,
    Peer::AquiferHelperOff,
    Peer::AquiferHelperScoped,
    Peer::AquiferHelperRequest,
    Peer::AquiferReset,
    Peer::MysqlAsyncPool,
    Peer::MysqlAsyncPoolNoReset,
    Peer::Bare,
];

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Peer::AquiferGet => "aquifer get+query",
            Peer::AquiferHelper => "aquifer fetch_one",
            Peer::AquiferHelperOff => "aquifer fetch_one n+1 off",
            Peer::AquiferHelperScoped => "aquifer fetch_one n+1 scoped",
            Peer::AquiferHelperRequest => "aquifer fetch_one n+1 request",
            Peer::AquiferReset => "aquifer reset_on_return",
            Peer::MysqlAsyncPool => "mysql_async Pool (defaults)",
            Peer::MysqlAsyncPoolNoReset => "mysql_async Pool (no reset)",
            Peer::Bare => "bare Conn x16 (reference)",
        }
    }
}

/// One measurement: queries per second and per-query latencies.
struct Sample {
    qps: f64,
    /// This process's CPU time (user + system) per query, in microseconds: the client's cost, which does not
    /// depend on how busy the server or the other processes on the machine are.
    cpu_us: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// What the tasks of one measurement share.
enum Target {
    Aquifer(MySqlPool),
    MysqlAsync(mysql_async::Pool),
    Bare(Arc<Vec<tokio::sync::Mutex<Conn>>>),
}

fn sql(query: Query) -> String {
    match query {
        Query::Select1 => "SELECT 1".to_owned(),
        Query::PkLookup => format!("SELECT id, word, score FROM {TABLE} WHERE id = ?"),
    }
}

async fn run_query(conn: &mut Conn, query: Query, sql: &str, id: u64) {
    match query {
        Query::Select1 => {
            let v: Option<i64> = conn.query_first(sql).await.unwrap();
            assert_eq!(v, Some(1));
        }
        Query::PkLookup => {
            let v: Option<(u64, String, i64)> = conn.exec_first(sql, (id,)).await.unwrap();
            assert_eq!(v.map(|r| r.0), Some(id));
        }
    }
}

async fn one(target: &Target, peer: Peer, query: Query, sql: &str, task: usize, id: u64) {
    match target {
        Target::Aquifer(pool) if peer == Peer::AquiferHelperScoped => match query {
            Query::Select1 => {
                let v: Option<i64> = aquifer_core::n_plus_one::scope(pool.fetch_optional(sql, ())).await.unwrap();
                assert_eq!(v, Some(1));
            }
            Query::PkLookup => {
                let v: Option<(u64, String, i64)> =
                    aquifer_core::n_plus_one::scope(pool.fetch_optional(sql, (id,))).await.unwrap();
                assert_eq!(v.map(|r| r.0), Some(id));
            }
        },
        Target::Aquifer(pool)
            if matches!(peer, Peer::AquiferHelper | Peer::AquiferHelperOff | Peer::AquiferHelperRequest) =>
        {
            match query {
                Query::Select1 => {
                    let v: Option<i64> = pool.fetch_optional(sql, ()).await.unwrap();
                    assert_eq!(v, Some(1));
                }
                Query::PkLookup => {
                    let v: Option<(u64, String, i64)> = pool.fetch_optional(sql, (id,)).await.unwrap();
                    assert_eq!(v.map(|r| r.0), Some(id));
                }
            }
        }
        Target::Aquifer(pool) => {
            let mut conn = pool.get().await.unwrap();
            run_query(&mut conn, query, sql, id).await;
        }
        Target::MysqlAsync(pool) => {
            let mut conn = pool.get_conn().await.unwrap();
            run_query(&mut conn, query, sql, id).await;
        }
        Target::Bare(conns) => {
            let mut conn = conns[task % conns.len()].lock().await;
            run_query(&mut conn, query, sql, id).await;
        }
    }
}

fn opts(url: &str) -> OptsBuilder {
    // TCP for every peer: mysql_async's default prefer_socket would move some of them to the unix socket.
    OptsBuilder::from_opts(Opts::from_url(url).expect("MYSQL_URL")).prefer_socket(false)
}

async fn target(peer: Peer, url: &str, query: Query) -> Target {
    let sql = sql(query);
    let target = match peer {
        Peer::AquiferGet
        | Peer::AquiferHelper
        | Peer::AquiferHelperOff
        | Peer::AquiferHelperScoped
        | Peer::AquiferHelperRequest
        | Peer::AquiferReset => {
            let pool = PoolConfig { max_size: POOL, min_idle: POOL, ..PoolConfig::default() };
            let config =
                MySqlConfig { pool, reset_on_return: peer == Peer::AquiferReset, ..MySqlConfig::from_url(url) };
            let pool = config.connect().await.unwrap();
            if peer == Peer::AquiferHelperOff {
                pool.set_n_plus_one(aquifer_core::n_plus_one::NPlusOneMode::Off);
            }
            Target::Aquifer(pool)
        }
        Peer::MysqlAsyncPool | Peer::MysqlAsyncPoolNoReset => {
            let pool_opts = PoolOpts::default()
                .with_constraints(PoolConstraints::new(POOL, POOL).unwrap())
                .with_reset_connection(peer == Peer::MysqlAsyncPool);
            Target::MysqlAsync(mysql_async::Pool::new(opts(url).pool_opts(pool_opts)))
        }
        Peer::Bare => {
            let mut conns = Vec::with_capacity(POOL);
            for _ in 0..POOL {
                conns.push(tokio::sync::Mutex::new(Conn::new(opts(url)).await.unwrap()));
            }
            Target::Bare(Arc::new(conns))
        }
    };
    // Pre-fill and warm: every connection opened and its statement prepared before timing starts.
    let target = Arc::new(target);
    let mut warm = Vec::new();
    for task in 0..POOL {
        let (target, sql) = (Arc::clone(&target), sql.clone());
        warm.push(tokio::spawn(async move {
            for i in 0..20u64 {
                one(&target, peer, query, &sql, task, 1 + (task as u64 * 20 + i) % ROWS).await;
            }
        }));
    }
    for w in warm {
        w.await.unwrap();
    }
    Arc::into_inner(target).expect("warm-up tasks are done")
}

async fn measure(peer: Peer, url: &str, query: Query, tasks: usize, secs: f64) -> Sample {
    let target = Arc::new(target(peer, url, query).await);
    let sql: Arc<str> = sql(query).into();
    let cpu_before = aquifer_testing::process_cpu_time();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (target, sql) = (Arc::clone(&target), Arc::clone(&sql));
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 14);
            let mut id = 1 + (task as u64 * 7919) % ROWS;
            while Instant::now() < end {
                let per_scope = if peer == Peer::AquiferHelperRequest { QUERIES_PER_REQUEST } else { 1 };
                let request = async {
                    for _ in 0..per_scope {
                        let t = Instant::now();
                        one(&target, peer, query, &sql, task, id).await;
                        lat.push(t.elapsed().as_nanos() as u64);
                        id = 1 + (id * 31 + 17) % ROWS;
                    }
                };
                if peer == Peer::AquiferHelperRequest {
                    aquifer_core::n_plus_one::scope(request).await;
                } else {
                    request.await;
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = aquifer_testing::process_cpu_time() - cpu_before;
    match Arc::into_inner(target).expect("tasks are done") {
        Target::Aquifer(pool) => {
            if std::env::var("BENCH_DEBUG").is_ok() {
                eprintln!("    {:?} {}", pool.stats(), pool.state());
            }
            pool.close().await;
        }
        Target::MysqlAsync(pool) => pool.disconnect().await.unwrap(),
        Target::Bare(conns) => {
            for c in Arc::into_inner(conns).unwrap() {
                c.into_inner().disconnect().await.unwrap();
            }
        }
    }
    all.sort_unstable();
    let pct = |p: f64| Duration::from_nanos(all[((all.len() as f64 * p) as usize).min(all.len() - 1)]);
    let cpu_us = cpu.as_secs_f64() * 1e6 / all.len() as f64;
    Sample { qps: all.len() as f64 / elapsed, cpu_us, p50: pct(0.50), p99: pct(0.99), max: pct(1.0) }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn median_d(v: Vec<Duration>) -> Duration {
    Duration::from_secs_f64(median(v.into_iter().map(|d| d.as_secs_f64()).collect()))
}

async fn setup(url: &str) {
    let mut conn =
        Conn::new(opts(url)).await.expect("MariaDB at MYSQL_URL; start it with `bash scripts/dev-services.sh`");
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT UNSIGNED PRIMARY KEY, word VARCHAR(64) NOT NULL, score BIGINT NOT NULL)"
    ))
    .await
    .unwrap();
    let have: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {TABLE}")).await.unwrap();
    if have != Some(ROWS) {
        conn.query_drop(format!("TRUNCATE {TABLE}")).await.unwrap();
        conn.query_drop(format!(
            "INSERT INTO {TABLE} (id, word, score) SELECT seq, CONCAT('word-', seq), seq % 97 FROM seq_1_to_{ROWS}"
        ))
        .await
        .unwrap();
    }
    conn.disconnect().await.unwrap();
}

fn main() {
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| aquifer_testing::servers::mariadb_url());
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(1.5);
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let list = |var: &str| -> Option<Vec<String>> {
        std::env::var(var).ok().map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect())
    };
    let peers: Vec<Peer> = match list("BENCH_PEERS") {
        Some(want) => {
            PEERS.into_iter().filter(|p| want.iter().any(|w| p.label().to_ascii_lowercase().contains(w))).collect()
        }
        None => PEERS.to_vec(),
    };
    let tasks: Vec<usize> = match list("BENCH_TASKS") {
        Some(want) => TASKS.into_iter().filter(|t| want.contains(&t.to_string())).collect(),
        None => TASKS.to_vec(),
    };
    let queries: Vec<Query> = match list("BENCH_QUERIES") {
        Some(want) => [Query::Select1, Query::PkLookup]
            .into_iter()
            .filter(|q| want.iter().any(|w| (w == "pk") == (*q == Query::PkLookup)))
            .collect(),
        None => vec![Query::Select1, Query::PkLookup],
    };
    rt.block_on(async {
        setup(&url).await;
        // (query, tasks, peer) -> samples
        let mut samples: Vec<((Query, usize, Peer), Vec<Sample>)> = Vec::new();
        for &q in &queries {
            for &t in &tasks {
                for &p in &peers {
                    samples.push(((q, t, p), Vec::new()));
                }
            }
        }
        for rep in 0..reps {
            eprintln!("repetition {}/{reps}", rep + 1);
            for &q in &queries {
                for &t in &tasks {
                    for &p in &peers {
                        let s = measure(p, &url, q, t, secs).await;
                        eprintln!(
                            "  {:<10} {:>3} tasks {:<28} {:>8.0} q/s {:>6.1} µs CPU/q",
                            q.label(),
                            t,
                            p.label(),
                            s.qps,
                            s.cpu_us
                        );
                        samples.iter_mut().find(|(k, _)| *k == (q, t, p)).unwrap().1.push(s);
                    }
                }
            }
        }
        println!("pool {POOL}, 2 Tokio workers, medians of {reps} interleaved repetitions of {secs} s each");
        for &q in &queries {
            println!("\n{}: queries/s (% of bare), p50 / p99 / max latency, client CPU per query\n", q.label());
            print!("| peer |");
            for t in &tasks {
                print!(" {t} tasks |");
            }
            println!();
            print!("|---|");
            for _ in &tasks {
                print!("---|");
            }
            println!();
            let bare: Vec<Option<f64>> = tasks
                .iter()
                .map(|&t| {
                    let s = &samples.iter().find(|(k, _)| *k == (q, t, Peer::Bare))?.1;
                    Some(median(s.iter().map(|s| s.qps).collect()))
                })
                .collect();
            for &p in &peers {
                print!("| {} |", p.label());
                for (i, &t) in tasks.iter().enumerate() {
                    let s = &samples.iter().find(|(k, _)| *k == (q, t, p)).unwrap().1;
                    let qps = median(s.iter().map(|s| s.qps).collect());
                    let p50 = median_d(s.iter().map(|s| s.p50).collect());
                    let p99 = median_d(s.iter().map(|s| s.p99).collect());
                    let max = median_d(s.iter().map(|s| s.max).collect());
                    let cpu = median(s.iter().map(|s| s.cpu_us).collect());
                    let share = bare[i].map(|b| format!(" ({:.0}%)", 100.0 * qps / b)).unwrap_or_default();
                    print!(
                        " {:.1}k{share}, {:.0} / {:.0} / {:.0} µs, {cpu:.1} µs CPU |",
                        qps / 1000.0,
                        p50.as_secs_f64() * 1e6,
                        p99.as_secs_f64() * 1e6,
                        max.as_secs_f64() * 1e6
                    );
                }
                println!();
            }
        }
    });
}
