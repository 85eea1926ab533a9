//! The soak's CI variant: 1,000 tasks on a pool of 20 per backend (PostgreSQL, MariaDB, Bolt), each behind
//! the chaos proxy with a fault every 10 s, for 60 s (the three run side by side). Memory, connection counts
//! and p99 stay flat, every interval serves requests, no leak is reported and the server holds nothing of the
//! pool once closed. The long run is `cargo run --release --example soak -- --minutes 10`
//! (docs/reliability.md).

use aquifer_chaos_backends::{MySql, Neo4j, Postgres};
use aquifer_testing::chaos::{ChaosBackend, SoakConfig, soak};

async fn soak_60s<B: ChaosBackend>(name: &str) {
    let cfg = SoakConfig::ci();
    let report = soak::<B>(name, cfg).await;
    eprintln!(
        "{}: ok {}, failed {:?}, connections created {}",
        report.backend, report.ok, report.failed, report.created
    );
    report.assert_flat(cfg.max_size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_60s_postgres_stays_flat() {
    soak_60s::<Postgres>("soak_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_60s_mysql_stays_flat() {
    soak_60s::<MySql>("soak_my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_60s_neo4j_stays_flat() {
    soak_60s::<Neo4j>("soak_neo").await;
}
