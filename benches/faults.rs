//! The fault table of docs/reliability.md: Aquifer's PostgreSQL and MariaDB pools against sqlx's PgPool,
//! deadpool-postgres and mysql_async's Pool, each behind the same fault-injecting proxy
//! ([`aquifer_testing::ChaosProxy`]) under the same faults: a pool of 8, 32 tasks sending `SELECT 1` back to
//! back, a 2 s acquire timeout in every pool, a fresh proxy and a fresh pool (filled first) per measurement.
//! For each fault and peer it prints requests ok and failed, throughput over the window, and how many of the
//! pool's connections the server still held 2 s after the pool was dropped.
//!
//!     bash scripts/dev-services.sh
//!     cargo bench -p aquifer --bench faults
//!
//! Environment: `BENCH_SECS` (the load window per measurement, default 4; faults start 0.5 s in),
//! `BENCH_PEERS` (a comma list of `aquifer-pg`, `aquifer-pg-helper`, `sqlx`, `deadpool`, `aquifer-my`,
//! `aquifer-my-helper`, `mysql_async`; default all), `BENCH_FAULTS` (a comma list of `none`, `resets-load`,
//! `resets-idle`, `black-hole`, `refuse`, `latency`, `cut`; default all). Not run by CI.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aquifer_chaos_backends::{MySql, Postgres};
use aquifer_mysql::mysql_async::{self, prelude::Queryable};
use aquifer_postgres::sqlx;
use aquifer_testing::ChaosProxy;
use aquifer_testing::chaos::{self, ChaosBackend, PoolOf};

const POOL: usize = 8;
const TASKS: usize = 32;
const ACQUIRE: Duration = chaos::ACQUIRE_TIMEOUT;

type BoxFut = Pin<Box<dyn Future<Output = Result<(), ()>> + Send>>;
type Request = Arc<dyn Fn() -> BoxFut + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Postgres,
    MariaDb,
}

const PEERS: [(&str, Server); 7] = [
    ("aquifer-pg", Server::Postgres),
    ("aquifer-pg-helper", Server::Postgres),
    ("sqlx", Server::Postgres),
    ("deadpool", Server::Postgres),
    ("aquifer-my", Server::MariaDb),
    ("aquifer-my-helper", Server::MariaDb),
    ("mysql_async", Server::MariaDb),
];

const FAULTS: [(&str, &str); 7] = [
    ("none", "no fault (baseline)"),
    ("resets-load", "every connection reset twice under load"),
    ("resets-idle", "every connection reset while all idle; traffic 50 ms later"),
    ("black-hole", "no byte passes for 2.5 s, then heals"),
    ("refuse", "connections reset and refused for 1.5 s, then accepted"),
    ("latency", "100 ms each way for 1.5 s"),
    ("cut", "every open connection cut (FIN) 100 bytes on, mid-message"),
];

/// A pool of one peer behind `port`, as a request function; and what closes it.
struct Target {
    request: Request,
    close: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Target {
    /// `pool` as a target: each request runs `request` on a clone of it, and `close` closes it.
    fn new<P, R, C>(pool: P, request: impl Fn(P) -> R + Send + Sync + 'static, close: impl FnOnce(P) -> C) -> Target
    where
        P: Clone + Send + Sync + 'static,
        R: Future<Output = Result<(), ()>> + Send + 'static,
        C: Future<Output = ()> + Send + 'static,
    {
        let close = Box::pin(close(pool.clone()));
        Target { request: Arc::new(move || Box::pin(request(pool.clone()))), close }
    }
}

/// Checks [`POOL`] connections out of a peer's pool at once (`get` is its checkout) and returns them, so the
/// pool starts full.
async fn fill<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(peer: &str, mut get: impl FnMut() -> F) {
    let mut held = Vec::with_capacity(POOL);
    for _ in 0..POOL {
        held.push(get().await.unwrap_or_else(|e| panic!("{peer} fills: {e:?}")));
    }
}

/// An Aquifer pool of backend `B` behind `port`: a checkout and a short statement per request, or the
/// adapter's helper when `helper`.
async fn aquifer_target<B: ChaosBackend>(port: u16, marker: &str, helper: bool) -> Target {
    let pool = chaos::pool::<B>(port, marker, POOL);
    chaos::fill(&pool, POOL).await;
    let request = move |pool: PoolOf<B>| async move {
        if helper {
            return B::helper_short(&pool).await.map_err(drop);
        }
        let mut c = pool.get().await.map_err(drop)?;
        B::short(&mut c).await.map_err(drop)
    };
    Target::new(pool, request, |pool| async move {
        pool.close().await;
    })
}

async fn target(peer: &str, port: u16, marker: &str) -> Target {
    match peer {
        "aquifer-pg" | "aquifer-pg-helper" => aquifer_target::<Postgres>(port, marker, peer.ends_with("helper")).await,
        "aquifer-my" | "aquifer-my-helper" => aquifer_target::<MySql>(port, marker, peer.ends_with("helper")).await,
        "sqlx" => {
            let options =
                format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=disable&application_name={marker}")
                    .parse::<sqlx::postgres::PgConnectOptions>()
                    .unwrap();
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(POOL as u32)
                .acquire_timeout(ACQUIRE)
                .connect_lazy_with(options);
            fill(peer, || pool.acquire()).await;
            let request = |pool: sqlx::PgPool| async move {
                let v: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.map_err(drop)?;
                if v == 1 { Ok(()) } else { Err(()) }
            };
            Target::new(pool, request, |pool| async move {
                pool.close().await;
            })
        }
        "deadpool" => {
            let mut config = tokio_postgres::Config::new();
            config.host("127.0.0.1").port(port).user("postgres").dbname("test").application_name(marker);
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(POOL)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(ACQUIRE))
                .create_timeout(Some(ACQUIRE))
                .build()
                .expect("deadpool");
            fill(peer, || pool.get()).await;
            let request = |pool: deadpool_postgres::Pool| async move {
                let c = pool.get().await.map_err(drop)?;
                let row = c.query_one("SELECT 1", &[]).await.map_err(drop)?;
                if row.get::<_, i32>(0) == 1 { Ok(()) } else { Err(()) }
            };
            Target::new(pool, request, |pool| async move { pool.close() })
        }
        "mysql_async" => {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname("127.0.0.1")
                .tcp_port(port)
                .user(Some(marker))
                .db_name(Some("test"))
                .prefer_socket(false)
                .pool_opts(
                    mysql_async::PoolOpts::default()
                        .with_constraints(mysql_async::PoolConstraints::new(0, POOL).unwrap()),
                );
            let pool = mysql_async::Pool::new(opts);
            fill(peer, || pool.get_conn()).await;
            let request = |pool: mysql_async::Pool| async move {
                // mysql_async's Pool has no acquire timeout of its own.
                let mut c = tokio::time::timeout(ACQUIRE, pool.get_conn()).await.map_err(drop)?.map_err(drop)?;
                let v: Option<i32> = c.query_first("SELECT 1").await.map_err(drop)?;
                if v == Some(1) { Ok(()) } else { Err(()) }
            };
            Target::new(pool, request, |pool| async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), pool.disconnect()).await;
            })
        }
        other => panic!("BENCH_PEERS: unknown peer {other:?}"),
    }
}

struct Outcome {
    ok: u64,
    failed: u64,
    secs: f64,
    left: usize,
}

async fn measure(peer: &str, server: Server, fault: &str, window: Duration, n: usize) -> Outcome {
    let marker = format!("aq_faults_{}_{n}", std::process::id());
    if server == Server::MariaDb {
        MySql::prepare(&marker).await;
    }
    let upstream = if server == Server::Postgres { Postgres::upstream() } else { MySql::upstream() };
    let proxy = ChaosProxy::start(upstream).await.expect("proxy");
    let t = target(peer, proxy.port(), &marker).await;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    if fault == "resets-idle" {
        proxy.reset_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    let until = start + window;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (request, ok, failed) = (t.request.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match request().await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(()) => {
                        let n = failed.fetch_add(1, Ordering::Relaxed);
                        // The same pause for every peer: a pool that fails at once does not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        n
                    }
                };
            }
        }));
    }
    let at = |ms| tokio::time::sleep_until((start + Duration::from_millis(ms)).into());
    match fault {
        "resets-load" => {
            at(500).await;
            proxy.reset_all();
            at(1500).await;
            proxy.reset_all();
        }
        "black-hole" => {
            at(500).await;
            proxy.black_hole(true);
            at(3000).await;
            proxy.heal();
        }
        "refuse" => {
            at(500).await;
            proxy.refuse(true);
            proxy.reset_all();
            at(2000).await;
            proxy.refuse(false);
        }
        "latency" => {
            at(500).await;
            proxy.latency(Duration::from_millis(100));
            at(2000).await;
            proxy.heal();
        }
        "cut" => {
            at(500).await;
            proxy.cut_after(100);
        }
        _ => {}
    }
    for task in tasks {
        // A request stuck past the window (a peer without timeouts on a black-holed socket) is abandoned.
        let _ = tokio::time::timeout(window + Duration::from_secs(10), task).await;
    }
    let secs = start.elapsed().as_secs_f64();
    proxy.heal();
    t.close.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = match server {
        Server::Postgres => Postgres::server_connections(&marker, &proxy).await,
        Server::MariaDb => MySql::server_connections(&marker, &proxy).await,
    };
    Outcome { ok: ok.load(Ordering::Relaxed), failed: failed.load(Ordering::Relaxed), secs, left }
}

fn list(var: &str) -> Option<Vec<String>> {
    std::env::var(var).ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

fn main() {
    let window = Duration::from_secs_f64(
        std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4.0_f64).max(3.5),
    );
    let peers = list("BENCH_PEERS");
    let faults = list("BENCH_FAULTS");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        chaos::require::<Postgres>().await;
        chaos::require::<MySql>().await;
        println!("pool {POOL}, {TASKS} tasks of SELECT 1, acquire timeout {ACQUIRE:?}, window {window:?}\n");
        println!("| fault | peer | ok | failed | requests/s | server connections left |");
        println!("|---|---|---:|---:|---:|---:|");
        let mut n = 0;
        for (fault, what) in FAULTS {
            if faults.as_ref().is_some_and(|f| !f.iter().any(|x| x == fault)) {
                continue;
            }
            for (peer, server) in PEERS {
                if peers.as_ref().is_some_and(|p| !p.iter().any(|x| x == peer)) {
                    continue;
                }
                n += 1;
                let o = measure(peer, server, fault, window, n).await;
                println!("| {what} | {peer} | {} | {} | {:.0} | {} |", o.ok, o.failed, o.ok as f64 / o.secs, o.left);
            }
        }
    });
}
