//! Health reports of Neo4j pools.

mod common;

use aquifer_neo4j::{HealthStatus, Neo4jManager, Neo4jPool};

#[tokio::test]
async fn a_working_pool_is_healthy_and_reports_the_server_version() {
    let pool = common::pool("health_ok", 2, None).await;
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.system, "neo4j");
    assert!(report.latency.is_some());
    // ArcadeDB answers dbms.components() as "Neo4j Kernel 5.26.0 (community)".
    let version = report.server_version.expect("a server version");
    assert!(version.chars().any(|c| c.is_ascii_digit()), "{version}");
    let json = serde_json::to_value(pool.health().await).unwrap();
    assert_eq!(json["status"], "healthy");
}

#[tokio::test]
async fn a_pool_whose_password_is_refused_is_unhealthy_and_says_why() {
    common::require_bolt().await;
    let manager = Neo4jManager::new(common::wrong_password_config("Wr0ng-Pa55word-Health")).unwrap();
    let pool = Neo4jPool::from(aquifer_core::Pool::builder(manager).name("aq_neo4j_health_refused").build().unwrap());
    pool.get().await.unwrap_err();
    pool.get().await.unwrap_err();
    let report = pool.health().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let why = report.last_error.expect("a reason");
    assert!(why.contains("authentication failed"), "{why}");
}
