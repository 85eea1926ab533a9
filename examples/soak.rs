//! The long soak (not a CI test): 1,000 tasks on a pool of 20 per backend (PostgreSQL, MariaDB, Bolt against
//! ArcadeDB), each pool behind a fault-injecting proxy with a fault every 30 s, all three at once, sampling
//! resident memory, the pools' and the servers' connection counts and p99 per interval, then asserting they
//! stayed flat. Needs the servers of `bash scripts/dev-services.sh`.
//!
//!     cargo run --release --example soak -- --minutes 10
//!
//! The 60-second variant runs in CI as tests/soak.rs. docs/reliability.md records a run.

use aquifer_chaos_backends::{MySql, Neo4j, Postgres};
use aquifer_testing::chaos::{SoakConfig, soak};

fn minutes() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(10),
        [flag, n] if flag == "--minutes" => n
            .parse::<u64>()
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| format!("--minutes: expected a whole number above 0, got {n:?}")),
        other => Err(format!("usage: soak [--minutes N] (got {other:?})")),
    }
}

#[tokio::main]
async fn main() {
    let minutes = match minutes() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cfg = SoakConfig::long(minutes);
    eprintln!("soak: {minutes} min, {} tasks, pool of {}, a fault every {:?}", cfg.tasks, cfg.max_size, cfg.interval);
    let (pg, my, neo) = tokio::join!(
        soak::<Postgres>("soak_long_pg", cfg),
        soak::<MySql>("soak_long_my", cfg),
        soak::<Neo4j>("soak_long_neo", cfg),
    );
    for r in [&pg, &my, &neo] {
        let first = &r.samples[1];
        let last = r.samples.last().expect("samples");
        let max_p99 = r.samples[1..].iter().map(|s| s.p99_us).max().unwrap_or(0);
        println!(
            "{}: ok {}, failed {:?}; rss {} -> {} KiB; pool {} -> {}; server {} -> {}; p99 {:.2} -> {:.2} ms (max {:.2}); connections created {}; leaks {}; dead connections handed out twice in a row {}",
            r.backend,
            r.ok,
            r.failed,
            first.rss_kib,
            last.rss_kib,
            first.pool_size,
            last.pool_size,
            first.server_connections,
            last.server_connections,
            first.p99_us as f64 / 1000.0,
            last.p99_us as f64 / 1000.0,
            max_p99 as f64 / 1000.0,
            r.created,
            r.leaks,
            r.dead_reissued
        );
    }
    let mut flat = true;
    for r in [&pg, &my, &neo] {
        match r.check_flat(cfg.max_size) {
            Ok(()) => println!("{}: flat", r.backend),
            Err(e) => {
                println!("NOT FLAT: {e}");
                flat = false;
            }
        }
    }
    if !flat {
        std::process::exit(1);
    }
}
