//! `RETURN 1` and a small MATCH through aquifer-neo4j versus a plain neo4rs `Graph` whose own pool has the
//! same size, at 16 and 64 concurrent tasks. Peers run in turn within each round, rounds repeat, and the
//! medians over rounds are printed as a Markdown table (queries per second, p50 / p99 / max latency).
//!
//! ```text
//! bash scripts/dev-services.sh arcadedb
//! cargo bench -p aquifer-neo4j --bench neo4j
//! ```
//!
//! `AQ_BENCH_SECS` (default 2) sets the length of one measurement, `AQ_BENCH_ROUNDS` (default 3) the rounds;
//! `NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE` point it at another server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aquifer_neo4j::{Graph, Neo4jConfig, Neo4jManager, Neo4jPool, Query, query};

const POOL_SIZE: usize = 16;
const TASKS: [usize; 2] = [16, 64];
const NODES: i64 = 100;

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    /// `pool.fetch_all(q)`: the helper (checkout, query, rows, operation metric).
    AquiferFetch,
    /// `pool.get()` then the Graph API on the pooled connection.
    AquiferGet,
    /// A neo4rs `Graph` with `max_connections(POOL_SIZE)`, used directly.
    Neo4rs,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::AquiferFetch => "aquifer-neo4j `pool.fetch`",
            Peer::AquiferGet => "aquifer-neo4j `pool.get` + Graph",
            Peer::Neo4rs => "neo4rs Graph (its own pool)",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Return1,
    SmallMatch,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Return1 => "`RETURN 1`",
            Work::SmallMatch => "small MATCH",
        }
    }

    fn query(self, i: u64) -> Query {
        match self {
            Work::Return1 => query("RETURN 1 AS one"),
            Work::SmallMatch => {
                query("MATCH (n:AqNeoBench {id: $id}) RETURN n.name AS name").param("id", (i % NODES as u64) as i64)
            }
        }
    }
}

#[derive(Clone)]
struct Peers {
    pool: Neo4jPool,
    graph: Graph,
}

async fn one(peers: &Peers, peer: Peer, work: Work, i: u64) -> usize {
    let q = work.query(i);
    match peer {
        Peer::AquiferFetch => peers.pool.fetch_all(q).await.expect("query").len(),
        Peer::AquiferGet => {
            let conn = peers.pool.get().await.expect("connection");
            let mut rows = conn.execute(q).await.expect("query");
            let mut n = 0;
            while rows.next().await.expect("row").is_some() {
                n += 1;
            }
            n
        }
        Peer::Neo4rs => {
            let mut rows = peers.graph.execute(q).await.expect("query");
            let mut n = 0;
            while rows.next().await.expect("row").is_some() {
                n += 1;
            }
            n
        }
    }
}

struct Sample {
    qps: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn measure(peers: &Peers, peer: Peer, work: Work, tasks: usize, secs: f64) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (peers, stop) = (peers.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut i = t as u64;
            while !stop.load(Ordering::Relaxed) {
                let q = Instant::now();
                let rows = one(&peers, peer, work, i).await;
                lat.push(q.elapsed());
                assert_eq!(rows, 1, "every query returns one row");
                i += tasks as u64;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Sample { qps: lat.len() as f64 / elapsed.as_secs_f64(), p50: pct(0.50), p99: pct(0.99), max: lat[lat.len() - 1] }
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        let v = match name {
            "NEO4J_URI" => return Some(aquifer_testing::servers::bolt_uri()),
            "NEO4J_USER" => "root",
            "NEO4J_PASSWORD" => "aquifer-secret",
            "NEO4J_DATABASE" => "testdb",
            _ => return None,
        };
        Some(v.to_owned())
    })
}

#[tokio::main]
async fn main() {
    let secs: f64 = std::env::var("AQ_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let rounds: usize = std::env::var("AQ_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let config = Neo4jConfig::from_lookup("NEO4J", env).expect("NEO4J_* configuration");

    let pool = Neo4jPool::from(
        aquifer_core::Pool::builder(Neo4jManager::new(config.clone()).unwrap())
            .name("aq_neo4j_bench")
            .max_size(POOL_SIZE)
            .min_idle(POOL_SIZE)
            .build()
            .unwrap(),
    );
    pool.warm_up().await.expect("the Bolt server answers (start it with `bash scripts/dev-services.sh`)");
    let mut builder = aquifer_neo4j::neo4rs::ConfigBuilder::default()
        .uri(config.uri.clone())
        .user(config.user.clone())
        .password(config.password.expose())
        .fetch_size(config.fetch_size)
        .max_connections(POOL_SIZE);
    if let Some(db) = &config.database {
        builder = builder.db(db.as_str());
    }
    let graph = Graph::connect(builder.build().unwrap()).unwrap();
    let peers = Peers { pool, graph };

    // Data for the MATCH: NODES small nodes with an index on id.
    peers.pool.execute("MATCH (n:AqNeoBench) DETACH DELETE n").await.unwrap();
    peers.pool.execute("CREATE INDEX IF NOT EXISTS FOR (n:AqNeoBench) ON (n.id)").await.unwrap();
    let rows: Vec<HashMap<&str, aquifer_neo4j::BoltType>> =
        (0..NODES).map(|i| [("id", i.into()), ("name", format!("node {i}").into())].into_iter().collect()).collect();
    peers
        .pool
        .execute(query("UNWIND $rows AS r CREATE (:AqNeoBench {id: r.id, name: r.name})").param("rows", rows))
        .await
        .unwrap();

    // Fill the neo4rs pool and warm the JVM (its first queries are slow) with every peer and workload.
    for work in [Work::Return1, Work::SmallMatch] {
        for peer in [Peer::AquiferFetch, Peer::AquiferGet, Peer::Neo4rs] {
            measure(&peers, peer, work, 64, 1.0).await;
        }
    }

    println!("pool size {POOL_SIZE}, {rounds} rounds of {secs} s per cell, medians over rounds\n");
    println!("| query | tasks | peer | queries/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for work in [Work::Return1, Work::SmallMatch] {
        for tasks in TASKS {
            let order = [Peer::AquiferFetch, Peer::AquiferGet, Peer::Neo4rs];
            let mut samples: Vec<Vec<Sample>> = order.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                // Rotate who goes first, so drift in the server hits every peer alike.
                for k in 0..order.len() {
                    let idx = (k + round) % order.len();
                    samples[idx].push(measure(&peers, order[idx], work, tasks, secs).await);
                }
            }
            for (peer, s) in order.iter().zip(samples) {
                let qps = median(s.iter().map(|x| x.qps).collect());
                let ms = |d: Vec<Duration>| format!("{:.2} ms", median(d).as_secs_f64() * 1000.0);
                println!(
                    "| {} | {tasks} | {} | {:.0} | {} | {} | {} |",
                    work.name(),
                    peer.name(),
                    qps,
                    ms(s.iter().map(|x| x.p50).collect()),
                    ms(s.iter().map(|x| x.p99).collect()),
                    ms(s.iter().map(|x| x.max).collect()),
                );
            }
        }
    }
    peers.pool.execute("MATCH (n:AqNeoBench) DETACH DELETE n").await.unwrap();
}
