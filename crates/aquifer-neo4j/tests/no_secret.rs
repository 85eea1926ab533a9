//! No password in any output: every error, `Debug`, `Display`, health report and log line (tracing at debug
//! level) this crate produces for configs holding a known password is scanned for it. The live part uses the
//! test server's real root password, so what the driver saw is scanned too.

mod common;

use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jManager, PoolConfig, query};
use aquifer_testing::SecretScan;

fn env(vars: &[(&str, String)]) -> Result<Neo4jConfig, aquifer_neo4j::ConfigError> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Neo4jConfig::from_lookup("NEO4J", move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_of_the_adapter_contains_the_password() {
    common::require_bolt().await;
    const SECRET: &str = common::PASSWORD;
    let mut scan = SecretScan::start(SECRET);

    let addr = common::addr();
    let mut config = common::config();
    config.pool = PoolConfig { name: Some("aq_neo4j_no_secret".into()), max_size: 2, ..PoolConfig::default() };
    scan.push(format!("{config:?}"));
    let in_uri = Neo4jConfig::from_url(format!("bolt://root:{SECRET}@{addr}"));
    scan.push(format!("{in_uri:?}"));
    scan.push(format!("{:?}", Neo4jManager::new(in_uri.clone()).unwrap()));

    // Invalid URIs: every shape of error.
    let bad = [
        format!("bolt://127.0.0.1:notaport?password={SECRET}"),
        format!("bolt://root:{SECRET}@127.0.0.1:99999"),
        format!("bolt:/root:{SECRET}@127.0.0.1"),
        format!("http://root:{SECRET}@127.0.0.1"),
        format!("bolt://root:{SECRET}@127.0.0.1/db?x=1"),
        format!("host=127.0.0.1 password={SECRET}"),
    ];
    for uri in &bad {
        match Neo4jManager::new(Neo4jConfig::from_url(uri.clone())) {
            Ok(m) => scan.push(format!("{m:?}")),
            Err(e) => scan.seen(&e),
        }
        if let Err(e) = Neo4jConfig::from_url(uri.clone()).connect_lazy() {
            scan.seen(&e);
        }
    }
    // Environment errors, with the password in its own variable and in the URI.
    let env_cases = [
        vec![("NEO4J_URI", bad[0].clone())],
        vec![
            ("NEO4J_URI", format!("bolt://{addr}")),
            ("NEO4J_PASSWORD", SECRET.into()),
            ("NEO4J_FETCH_SIZE", "0".into()),
        ],
        vec![("NEO4J_URL", bad[1].clone()), ("NEO4J_READ_TIMEOUT", "soon".into())],
    ];
    for vars in &env_cases {
        match env(vars) {
            Ok(c) => scan.push(format!("{c:?}")),
            Err(e) => scan.seen(&e),
        }
    }
    scan.seen(&serde_json::from_str::<Neo4jConfig>(&format!(r#"{{"password": "{SECRET}", "bogus": 1}}"#)).unwrap_err());

    // A live pool: Debug, stats, health, helper errors.
    let pool = config.connect().await.unwrap();
    scan.push(format!("{pool:?}"));
    scan.push(format!("{:?}", pool.stats()));
    let health = pool.health().await;
    scan.push(serde_json::to_string(&health).unwrap());
    scan.push(format!("{health:?}"));
    scan.seen(&pool.fetch_one(query("RETURN nonsense(")).await.unwrap_err());
    scan.seen(&pool.fetch_one(query("UNWIND [] AS x RETURN x")).await.unwrap_err());
    pool.close().await;

    // A refused password (for the script's own user: root would be locked out) and an unreachable server.
    let wrong = common::wrong_password_config(&format!("{SECRET}-wrong"));
    scan.seen(&wrong.connect().await.unwrap_err());
    let mut gone = config.clone().uri("bolt://127.0.0.1:1");
    gone.pool.acquire_timeout = Duration::from_millis(300);
    scan.seen(&gone.connect().await.unwrap_err());
    let lazy = gone.connect_lazy().unwrap();
    scan.seen(&lazy.get().await.unwrap_err());
    scan.seen(&lazy.fetch_one(query("RETURN 1")).await.unwrap_err());
    scan.push(serde_json::to_string(&lazy.health().await).unwrap());
    lazy.close().await;

    scan.assert_clean();
}
