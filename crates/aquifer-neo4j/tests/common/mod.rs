//! What every test of aquifer-neo4j shares: the local ArcadeDB from `bash scripts/dev-services.sh`.
#![allow(dead_code)]

use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jPool, PoolConfig, RetryPolicy, query};
use aquifer_testing::MetricsCapture;

/// The script that starts the server these tests need.
pub const SCRIPT: &str = "bash scripts/dev-services.sh";
/// The root password set by scripts/services/40-arcadedb.sh.
pub const PASSWORD: &str = "aquifer-secret";

/// A user made for wrong-password tests by the script: ArcadeDB locks a user out for 30 s after 5 failed
/// logins, so refusing root's password would break every other test running at the same time.
pub const PW_USER: &str = "aq_neo4j_pw";

/// The configuration of [`PW_USER`] with a wrong password.
pub fn wrong_password_config(wrong: &str) -> Neo4jConfig {
    config().user(PW_USER).password(wrong)
}

/// The Bolt address under test: `AQUIFER_NEO4J_ADDR` or the project's ArcadeDB (`aquifer_testing::servers`).
pub fn addr() -> String {
    std::env::var("AQUIFER_NEO4J_ADDR").unwrap_or_else(|_| aquifer_testing::servers::bolt_addr())
}

/// Fails the test (naming the script) unless the Bolt server answers.
pub async fn require_bolt() {
    aquifer_testing::require_server("the Bolt server (ArcadeDB)", &addr(), SCRIPT).await;
}

/// The configuration of the local test server (user root, database testdb).
pub fn config() -> Neo4jConfig {
    Neo4jConfig::new(format!("bolt://{}", addr()), "root", PASSWORD).database("testdb")
}

/// A pool of `max` connections named `name`, recording into `capture` when given.
pub async fn pool(name: &str, max: usize, capture: Option<&MetricsCapture>) -> Neo4jPool {
    pool_with_retry(name, max, capture, RetryPolicy::default()).await
}

/// [`pool`] whose helpers retry with `retry`.
pub async fn pool_with_retry(
    name: &str,
    max: usize,
    capture: Option<&MetricsCapture>,
    retry: RetryPolicy,
) -> Neo4jPool {
    require_bolt().await;
    let pool = PoolConfig {
        name: Some(format!("aq_neo4j_{name}")),
        max_size: max,
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    };
    let mut b = Neo4jConfig { pool, retry, ..config() }.builder().expect("valid config");
    if let Some(c) = capture {
        b = b.meter(c.meter());
    }
    Neo4jPool::from(b.build().expect("pool builds"))
}

/// A value unique to this test run, to tag the nodes it creates (tests of other runs may share the server).
pub fn run_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// Deletes the nodes with `label` tagged with `run`, and their relationships.
pub async fn cleanup(pool: &Neo4jPool, label: &str, run: &str) {
    pool.execute(query(&format!("MATCH (n:{label}) WHERE n.run = $run DETACH DELETE n")).param("run", run))
        .await
        .expect("cleanup");
}

/// The first column of the single row `q` returns, as i64.
pub async fn count(pool: &Neo4jPool, q: aquifer_neo4j::Query) -> i64 {
    let rows = pool.fetch_all(q).await.expect("count query");
    assert_eq!(rows.len(), 1, "expected one row");
    rows[0].get::<i64>("n").expect("column n")
}
