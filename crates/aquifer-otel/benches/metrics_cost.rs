//! What recording and exporting metrics costs: the same pools with the OpenTelemetry SDK installed by
//! aquifer-otel (exporting over OTLP to VictoriaMetrics every second) and with no SDK (every instrument a no-op),
//! measured in one run, interleaved, medians over repetitions.
//!
//!  1. PostgreSQL `SELECT 1` through a pool of 16 (checkout, query, return) at 16, 64 and 256 tasks: queries/s.
//!  2. The engine alone, uncontended: get + drop of a no-op connection from a pool of 16 by one task, ns per
//!     cycle (the figure where per-operation recording weighs most).
//!
//!     bash scripts/dev-services.sh postgres victoria
//!     cargo bench -p aquifer-otel --bench metrics_cost
//!
//! Building through aquifer-otel enables aquifer-core's `otel-bound-instruments` (attributes bound once per
//! pool), as in any application that uses aquifer-otel. Environment: BENCH_REPS (default 5), BENCH_MS
//! (milliseconds per PostgreSQL measurement, default 1000), ENGINE_MS (per engine measurement, default 300),
//! POSTGRES_URL (default the PostgreSQL of scripts/dev-services.sh, `aquifer_testing::servers::postgres_url`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_core::Pool;
use aquifer_otel::OtelBuilder;
use aquifer_postgres::{PgConfig, PgPool, sqlx};
use aquifer_testing::NoopManager;
use opentelemetry::metrics::Meter;

const POOL: usize = 16;
const TASKS: [usize; 3] = [16, 64, 256];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn require(what: &str, addr: &str) {
    let parsed: std::net::SocketAddr = addr.parse().expect("address");
    if std::net::TcpStream::connect_timeout(&parsed, Duration::from_secs(3)).is_err() {
        panic!("{what} is not reachable at {addr}; start it with `bash scripts/dev-services.sh`");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Percentages of the paired repetitions: `median (first quartile .. third quartile, min..max)`.
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:+.1} % ({:+.1} .. {:+.1}, {:+.1} .. {:+.1})", at(0.5), at(0.25), at(0.75), v[0], v[v.len() - 1])
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    NoSdk,
    Sdk,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::NoSdk => "no SDK",
            Variant::Sdk => "SDK, OTLP export every 1 s",
        }
    }
}

// ---- PostgreSQL SELECT 1 --------------------------------------------------------------------------------

async fn pg_pool(name: &str, meter: Option<Meter>) -> PgPool {
    let url = std::env::var("POSTGRES_URL").unwrap_or_else(|_| aquifer_testing::servers::postgres_url());
    let mut c = PgConfig::from_url(url);
    c.pool.name = Some(name.into());
    c.pool.max_size = POOL;
    c.pool.min_idle = POOL;
    let mut builder = c.builder().expect("pool builder");
    if let Some(m) = meter {
        builder = builder.meter(m);
    }
    let pool = PgPool::from(builder.build().expect("pool"));
    while pool.state().idle < POOL {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool
}

/// Queries/s of `tasks` tasks running `SELECT 1` through `pool` for `run`, after a 200 ms warm-up.
async fn select1(pool: &PgPool, tasks: usize, run: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let measure_from = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let mut conn = pool.get().await.expect("get");
                    let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.expect("SELECT 1");
                    if t0 >= measure_from {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    tokio::time::sleep_until((measure_from + run).into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.await.expect("task");
    }
    total as f64 / run.as_secs_f64()
}

// ---- engine, uncontended ---------------------------------------------------------------------------------

async fn engine_pool(meter: Option<Meter>) -> Pool<NoopManager> {
    let mut builder = Pool::builder(NoopManager::new("bench")).max_size(POOL).min_idle(POOL);
    if let Some(m) = meter {
        builder = builder.meter(m);
    }
    let pool = builder.build().expect("pool");
    while pool.state().idle < POOL {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    pool
}

/// ns per get + drop by one task for `run`.
async fn get_drop(pool: &Pool<NoopManager>, run: Duration) -> f64 {
    for _ in 0..10_000 {
        drop(pool.get().await.expect("get"));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        for _ in 0..1_000 {
            drop(pool.get().await.expect("get"));
        }
        n += 1_000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let reps: usize = env_or("BENCH_REPS", 5);
    let pg_run = Duration::from_millis(env_or("BENCH_MS", 1000));
    let engine_run = Duration::from_millis(env_or("ENGINE_MS", 300));
    require("PostgreSQL", &aquifer_testing::servers::postgres_addr());
    require("VictoriaMetrics (the OTLP receiver)", &aquifer_testing::servers::victoria_addr());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let guard = OtelBuilder::new()
        .endpoint(aquifer_testing::servers::victoria_otlp_endpoint())
        .service_name("aquifer-metrics-cost-bench")
        .export_interval(Duration::from_secs(1))
        .build()
        .expect("aquifer-otel");

    rt.block_on(async {
        let plain = pg_pool("bench_no_sdk", None).await;
        let with_sdk = pg_pool("bench_sdk", Some(guard.meter())).await;
        let mut qps = vec![vec![Vec::new(); 2]; TASKS.len()];
        for rep in 0..reps {
            for (i, &tasks) in TASKS.iter().enumerate() {
                // Alternate which variant goes first, so neither always runs on a warmer machine.
                let order =
                    if (rep + i) % 2 == 0 { [Variant::NoSdk, Variant::Sdk] } else { [Variant::Sdk, Variant::NoSdk] };
                for v in order {
                    let pool = if v == Variant::Sdk { &with_sdk } else { &plain };
                    qps[i][v as usize].push(select1(pool, tasks, pg_run).await);
                }
            }
            eprintln!("postgres rep {}/{reps} done", rep + 1);
        }
        println!(
            "\nPostgreSQL SELECT 1, pool of 16, queries/s (median of {reps}, {} ms each, interleaved)\n",
            pg_run.as_millis()
        );
        // The spread shows whether a difference is signal: each repetition's two measurements ran back to back,
        // so their ratio cancels slow swings of the machine's load; its quartiles show what is left.
        println!(
            "| tasks | no SDK | SDK, OTLP export every 1 s | SDK vs no SDK | per repetition: median (quartiles, min..max) |"
        );
        println!("|---|---|---|---|---|");
        for (i, tasks) in TASKS.iter().enumerate() {
            let (a, b) = (median(qps[i][0].clone()), median(qps[i][1].clone()));
            let ratios: Vec<f64> = qps[i][0].iter().zip(&qps[i][1]).map(|(a, b)| (b / a - 1.0) * 100.0).collect();
            println!(
                "| {tasks} | {:.1}k | {:.1}k | {:+.1} % | {} |",
                a / 1e3,
                b / 1e3,
                (b / a - 1.0) * 100.0,
                spread(ratios)
            );
        }
        plain.close().await;
        with_sdk.close().await;

        let plain = engine_pool(None).await;
        let with_sdk = engine_pool(Some(guard.meter())).await;
        let mut ns = [Vec::new(), Vec::new()];
        for rep in 0..reps * 2 {
            let order = if rep % 2 == 0 { [Variant::NoSdk, Variant::Sdk] } else { [Variant::Sdk, Variant::NoSdk] };
            for v in order {
                let pool = if v == Variant::Sdk { &with_sdk } else { &plain };
                // One task, spawned so that it runs on a worker like application code.
                let pool = pool.clone();
                let r = tokio::spawn(async move { get_drop(&pool, engine_run).await }).await.expect("task");
                ns[v as usize].push(r);
            }
        }
        let (a, b) = (median(ns[0].clone()), median(ns[1].clone()));
        println!(
            "\nEngine get + drop, 1 task, pool of 16, ns per cycle (median of {}, {} ms each)\n",
            reps * 2,
            engine_run.as_millis()
        );
        let ratios: Vec<f64> = ns[0].iter().zip(&ns[1]).map(|(a, b)| (b / a - 1.0) * 100.0).collect();
        println!(
            "| {} | {} | overhead | per repetition: median (quartiles, min..max) |",
            Variant::NoSdk.name(),
            Variant::Sdk.name()
        );
        println!("|---|---|---|---|");
        println!("| {a:.0} | {b:.0} | {:+.1} % | {} |", (b / a - 1.0) * 100.0, spread(ratios));
    });
    drop(guard);
}
