//! OpenTelemetry metrics of Neo4j pools: operation durations from the helpers, connect errors by class, pool
//! gauges, all with the pool's attributes.

mod common;

use aquifer_neo4j::{Neo4jManager, Neo4jPool};
use aquifer_testing::MetricsCapture;
use common::Nodes;

const OP: &str = "db.client.operation.duration";
const LABEL: &str = "AqNeoMetrics";

/// A pool of `max` connections named `name` whose metrics go to the returned capture.
async fn metered(name: &str, max: usize) -> (MetricsCapture, Neo4jPool) {
    let capture = MetricsCapture::new();
    let pool = common::pool(name, max, Some(&capture)).await;
    (capture, pool)
}

#[tokio::test]
async fn helpers_record_operation_duration_named_by_clause() {
    let (capture, pool) = metered("metrics_ops", 2).await;
    let nodes = Nodes::new(LABEL);
    pool.execute(nodes.create("")).await.unwrap();
    pool.fetch_all(nodes.matching("RETURN n")).await.unwrap();
    pool.fetch_all("RETURN 1").await.unwrap();
    pool.transaction(|txn| Box::pin(async move { Ok(txn.run("RETURN 1").await?) })).await.unwrap();
    nodes.cleanup(&pool).await; // a MATCH ... DETACH DELETE: one more MATCH

    let m = capture.collect();
    let op = m.get(OP).expect("operation duration exported");
    assert_eq!(op.unit, "s");
    let count = |name: &str| {
        op.points.iter().filter(|p| p.attr("db.operation.name") == Some(name)).map(|p| p.count).sum::<u64>()
    };
    assert_eq!(count("CREATE"), 1);
    assert_eq!(count("MATCH"), 2);
    assert_eq!(count("RETURN"), 1);
    assert_eq!(count("TRANSACTION"), 1);
    for p in &op.points {
        assert_eq!(p.attr("db.system.name"), Some("neo4j"));
        assert_eq!(p.attr("db.client.connection.pool.name"), Some("aq_neo4j_metrics_ops"));
        assert_eq!(p.attr("server.port"), common::addr().rsplit_once(':').map(|(_, port)| port));
        assert_eq!(p.attr("db.namespace"), Some("testdb"));
        assert_eq!(p.attr("error.type"), None);
        assert!(p.value >= 0.0);
    }
}

#[tokio::test]
async fn a_failed_operation_is_recorded_with_its_error_type() {
    let (capture, pool) = metered("metrics_error", 1).await;
    pool.execute("THIS IS NOT CYPHER").await.unwrap_err();
    let m = capture.collect();
    let op = m.get(OP).unwrap();
    let p = op.point_with("db.operation.name", "_OTHER").expect("the failed query");
    assert_eq!(p.attr("error.type"), Some("Neo.ClientError.Statement.SyntaxError"));
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn each_attempt_of_a_retried_transaction_is_recorded() {
    let (capture, pool) = metered("metrics_retry", 2).await;
    let nodes = Nodes::new(LABEL);
    let (results, _) = common::conflicting_increments(&pool, &nodes).await;
    for r in results {
        r.unwrap();
    }
    let m = capture.collect();
    let op = m.get(OP).unwrap();
    let tx: Vec<_> = op.points.iter().filter(|p| p.attr("db.operation.name") == Some("TRANSACTION")).collect();
    let ok: u64 = tx.iter().filter(|p| p.attr("error.type").is_none()).map(|p| p.count).sum();
    let failed: u64 = tx
        .iter()
        .filter(|p| p.attr("error.type").is_some_and(|e| e.starts_with("Neo.TransientError.")))
        .map(|p| p.count)
        .sum();
    assert_eq!(ok, 2);
    assert!(failed >= 1, "{tx:?}");
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn refused_connects_are_counted_by_error_type() {
    common::require_bolt().await;
    let capture = MetricsCapture::new();
    let manager = Neo4jManager::new(common::wrong_password_config("Wr0ng-Pa55word-Metrics")).unwrap();
    let pool = Neo4jPool::from(
        aquifer_core::Pool::builder(manager).name("aq_neo4j_metrics_refused").meter(capture.meter()).build().unwrap(),
    );
    pool.get().await.unwrap_err();
    let m = capture.collect();
    let errors = m.get("aquifer.pool.connect.errors").expect("connect errors exported");
    let p = errors.point_with("error.type", "authentication").expect("counted as authentication");
    assert!(p.value >= 1.0);
}

#[tokio::test]
async fn pool_gauges_report_idle_and_used_connections() {
    let capture = MetricsCapture::new();
    let pool = common::pool("metrics_gauges", 4, Some(&capture)).await;
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap());
    let m = capture.collect();
    let count = m.get("db.client.connection.count").expect("connection count exported");
    assert_eq!(count.point_with("db.client.connection.state", "used").unwrap().value, 1.0);
    assert_eq!(count.point_with("db.client.connection.state", "idle").unwrap().value, 1.0);
    assert_eq!(m.get("db.client.connection.max").unwrap().total(), 4.0);
    assert_eq!(m.get("aquifer.pool.connections.created").unwrap().total(), 2.0);
    drop(held);
}
