//! One `HealthRegistry` holds pools of all four backends and reports them together.

use aquifer_core::{Adapter, HealthRegistry, HealthStatus};
use aquifer_testing::servers;

const SCRIPT: &str = "bash scripts/dev-services.sh";

/// A started pool of adapter `A` named `aq_registry_<what>_<pid>`, from `{PREFIX}_*` variables.
async fn pool<A: Adapter>(what: &str, vars: &[(&str, String)]) -> A::Pool {
    let prefix = A::ENV_PREFIX;
    let mut vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (format!("{prefix}_{k}"), v.clone())).collect();
    vars.push((format!("{prefix}_NAME"), format!("aq_registry_{what}_{}", std::process::id())));
    vars.push((format!("{prefix}_POOL_MAX_SIZE"), "2".into()));
    let config = A::from_vars(prefix, vars).unwrap_or_else(|e| panic!("{prefix}: {e}"));
    config.connect().await.unwrap_or_else(|e| panic!("{prefix} pool: {e}"))
}

#[tokio::test]
async fn one_registry_reports_pools_of_all_four_backends() {
    aquifer_testing::require_server("PostgreSQL", &servers::postgres_addr(), SCRIPT).await;
    aquifer_testing::require_server("MariaDB", &servers::mariadb_addr(), SCRIPT).await;
    aquifer_testing::require_server("the Bolt server (ArcadeDB)", &servers::bolt_addr(), SCRIPT).await;

    let pg_url = std::env::var("POSTGRES_URL").unwrap_or_else(|_| servers::postgres_url());
    let pg = pool::<aquifer_postgres::PgConfig>("pg", &[("URL", pg_url)]).await;
    let my_url = std::env::var("MYSQL_URL").unwrap_or_else(|_| servers::mariadb_url());
    let my = pool::<aquifer_mysql::MySqlConfig>("my", &[("URL", my_url)]).await;
    // root's password and database are set by scripts/services/40-arcadedb.sh.
    let neo = pool::<aquifer_neo4j::Neo4jConfig>(
        "neo",
        &[
            ("URI", servers::bolt_uri()),
            ("USER", "root".into()),
            ("PASSWORD", "aquifer-secret".into()),
            ("DATABASE", "testdb".into()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db").to_string_lossy().into_owned();
    let sqlite = pool::<aquifer_sqlite::SqliteConfig>("lite", &[("PATH", path)]).await;

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
