//! What every test of aquifer-neo4j shares: the local ArcadeDB from `bash scripts/dev-services.sh`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_neo4j::{
    Neo4jConfig, Neo4jOperationError, Neo4jPool, PoolConfig, Query, RetryPolicy, TxFuture, Txn, query,
};
use aquifer_testing::MetricsCapture;
use tokio::sync::Barrier;

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

/// The nodes one test creates: each carries `label` and a tag unique to the test's run, so the test counts, reads
/// and deletes only its own (tests of other runs may share the server and the label).
#[derive(Clone, Debug)]
pub struct Nodes {
    /// The label of every node the test creates.
    pub label: &'static str,
    /// The tag in each node's `run` property.
    pub run: String,
}

impl Nodes {
    /// Nodes labelled `label`, tagged with a new [`run_id`].
    pub fn new(label: &'static str) -> Self {
        Self { label, run: run_id() }
    }

    /// `cypher` with `$run` bound to this run's tag.
    pub fn query(&self, cypher: &str) -> Query {
        query(cypher).param("run", self.run.as_str())
    }

    /// `CREATE (:label {run: $run, <props>})`, `$run` bound: one tagged node with the properties `props`
    /// (Cypher map entries, may be empty).
    pub fn create(&self, props: &str) -> Query {
        let sep = if props.is_empty() { "" } else { ", " };
        self.query(&format!("CREATE (:{} {{run: $run{sep}{props}}})", self.label))
    }

    /// `MATCH (n:label) WHERE n.run = $run <rest>`, `$run` bound: this run's nodes, then `rest` (a RETURN...).
    pub fn matching(&self, rest: &str) -> Query {
        self.query(&format!("MATCH (n:{}) WHERE n.run = $run {rest}", self.label))
    }

    /// How many of this run's nodes there are.
    pub async fn count(&self, pool: &Neo4jPool) -> i64 {
        count(pool, self.matching("RETURN count(n) AS n")).await
    }

    /// Deletes this run's nodes and their relationships.
    pub async fn cleanup(&self, pool: &Neo4jPool) {
        pool.execute(self.matching("DETACH DELETE n")).await.expect("cleanup");
    }
}

/// A pool of `max` connections named `name` and the [`Nodes`] labelled `label` of a test that writes.
pub async fn pool_and_nodes(name: &str, max: usize, label: &'static str) -> (Neo4jPool, Nodes) {
    (pool(name, max, None).await, Nodes::new(label))
}

/// Runs one transaction on `pool` that creates a node of `nodes`, then runs `then` (given the nodes) on the
/// same transaction: the transaction tests start theirs with a write whose fate it checks.
pub async fn create_then<T, F>(pool: &Neo4jPool, nodes: &Nodes, then: F) -> Result<T, Neo4jOperationError>
where
    T: Send,
    F: for<'t> Fn(&'t mut Txn, Nodes) -> TxFuture<'t, T> + Clone + Send + 'static,
{
    let nodes = nodes.clone();
    pool.transaction(move |txn| {
        let (nodes, then) = (nodes.clone(), then.clone());
        Box::pin(async move {
            txn.run(nodes.create("")).await?;
            then(txn, nodes).await
        })
    })
    .await
}

/// Two transactions increment the same `counter` property of a new node of `nodes`, both before either commits: ArcadeDB refuses the second
/// commit with `Neo.TransientError.Transaction.DeadlockDetected`.
pub async fn conflicting_increments(pool: &Neo4jPool, nodes: &Nodes) -> (Vec<Result<(), Neo4jOperationError>>, usize) {
    pool.execute(nodes.create("counter: 0")).await.unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (pool, nodes, barrier, attempts) = (pool.clone(), nodes.clone(), barrier.clone(), attempts.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            pool.transaction(move |txn| {
                let (nodes, barrier) = (nodes.clone(), barrier.clone());
                attempts.fetch_add(1, Ordering::SeqCst);
                let wait = std::mem::replace(&mut first, false);
                Box::pin(async move {
                    txn.run(nodes.matching("SET n.counter = n.counter + 1")).await?;
                    if wait {
                        barrier.wait().await;
                    }
                    Ok(())
                })
            })
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    (results, attempts.load(Ordering::SeqCst))
}

/// The first column of the single row `q` returns, as i64.
pub async fn count(pool: &Neo4jPool, q: Query) -> i64 {
    let rows = pool.fetch_all(q).await.expect("count query");
    assert_eq!(rows.len(), 1, "expected one row");
    rows[0].get::<i64>("n").expect("column n")
}
