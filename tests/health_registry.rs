//! One `HealthRegistry` holds pools of all four backends and reports them together.

mod backends;

use aquifer_core::{HealthRegistry, HealthStatus};
use backends::VarsFor;

#[tokio::test]
async fn one_registry_reports_pools_of_all_four_backends() {
    let _scratch = backends::scratch();
    aquifer_testing::require_server("PostgreSQL", "127.0.0.1:5432", backends::SCRIPT).await;
    aquifer_testing::require_server("MariaDB", "127.0.0.1:3306", backends::SCRIPT).await;
    aquifer_testing::require_server("the Bolt server (ArcadeDB)", "127.0.0.1:7687", backends::SCRIPT).await;

    let pg = aquifer_postgres::PgConfig::from_lookup("POSTGRES", backends::lookup(&backends::Postgres::vars_for("pg")))
        .unwrap()
        .connect()
        .await
        .expect("PostgreSQL pool");
    let my = aquifer_mysql::MySqlConfig::from_lookup("MYSQL", backends::lookup(&backends::MySql::vars_for("my")))
        .unwrap()
        .connect()
        .await
        .expect("MariaDB pool");
    let neo = aquifer_neo4j::Neo4jConfig::from_lookup("NEO4J", backends::lookup(&backends::Neo4j::vars_for("neo")))
        .unwrap()
        .connect()
        .await
        .expect("Bolt pool");
    let sqlite =
        aquifer_sqlite::SqliteConfig::from_lookup("SQLITE", backends::lookup(&backends::Sqlite::vars_for("lite")))
            .unwrap()
            .connect()
            .await
            .expect("SQLite pool");

    let registry = HealthRegistry::new();
    registry.register(pg.clone());
    registry.register(my.clone());
    registry.register(neo.clone());
    registry.register(sqlite.writer().clone());
    registry.register(sqlite.readers().clone());
    let report = registry.check().await;

    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    let systems: std::collections::BTreeSet<&str> = report.pools.iter().map(|p| p.system.as_str()).collect();
    assert_eq!(systems, ["mysql", "neo4j", "postgresql", "sqlite"].into());
    assert_eq!(report.pools.len(), 5, "SQLite's writer and reader pools are two entries");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("aquifer-secret"), "no password in the health JSON");

    pg.close().await;
    my.close().await;
    neo.close().await;
    sqlite.close().await;
}
