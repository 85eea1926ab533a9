//! No password in any output: every error, `Debug`, `Display`, serialised config, health report and log line
//! (tracing at debug level) this crate produces for configs holding a known password is scanned for it.

mod common;

use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlManager, MySqlPool, PoolConfig};
use aquifer_testing::SecretScan;

const SECRET: &str = "Sekr3t-my-4b2e";

fn env(vars: &[(&str, String)]) -> Result<MySqlConfig, aquifer_mysql::ConfigError> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    MySqlConfig::from_lookup("MYSQL", move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_of_the_adapter_contains_the_password() {
    let mut admin = common::admin().await;
    let user = common::unique("aq_my_secret");
    common::dedicated_user(&mut admin, &user).await;
    admin.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{SECRET}'")).await.unwrap();

    let mut scan = SecretScan::start(SECRET);

    // Configs: Debug (init_sql included) and serde output.
    let good = format!("mysql://{user}:{SECRET}@127.0.0.1:3306/test");
    let mut config = MySqlConfig::from_url(&good);
    config.pool = PoolConfig { name: Some(user.clone()), max_size: 2, ..PoolConfig::default() };
    scan.push(serde_json::to_string(&config).unwrap());
    config.init_sql.push(format!("SET @key = '{SECRET}'"));
    scan.push(format!("{config:?}"));
    let manager = MySqlManager::new(&config).unwrap();
    scan.push(format!("{manager:?}"));

    // Unparseable URLs: every shape of error.
    let bad = [
        format!("mysql://127.0.0.1:notaport/test?password={SECRET}"),
        format!("mysql://{user}:{SECRET}@127.0.0.1:99999/test"),
        format!("mysql://{user}:{SECRET}@127.0.0.1/test?socket="),
        format!("mysql://{user}:{SECRET}@127.0.0.1/test?stmt_cache_size=lots"),
        format!("mysql:/{user}:{SECRET}@127.0.0.1/test"),
        format!("host=127.0.0.1 password={SECRET}"),
        format!("postgres://{user}:{SECRET}@127.0.0.1/test"),
    ];
    for url in &bad {
        match MySqlManager::from_url(url) {
            Ok(m) => scan.push(format!("{m:?}")),
            Err(e) => scan.seen(&e),
        }
    }

    // Environment errors, with the password in the URL.
    let env_cases = [
        vec![("MYSQL_URL", good.clone()), ("MYSQL_POOL_MAX_SIZE", "many".to_owned())],
        vec![("MYSQL_URL", good.clone()), ("MYSQL_WAIT_TIMEOUT", "0s".to_owned())],
        vec![("MYSQL_URL", good.clone()), ("MYSQL_TIME_ZONE", "'UTC".to_owned())],
        vec![("MYSQL_URL", bad[0].clone())],
    ];
    for vars in &env_cases {
        match env(vars) {
            Ok(c) => match c.connect_lazy() {
                Ok(pool) => scan.push(format!("{pool:?}")),
                Err(e) => scan.seen(&e),
            },
            Err(e) => scan.seen(&e),
        }
    }
    let json = format!(r#"{{"url": "{good}", "bogus": 1}}"#);
    scan.seen(&serde_json::from_str::<MySqlConfig>(&json).unwrap_err());

    // A live pool: Debug, stats, health, helper errors, and a killed connection retried (logged at debug).
    let pool: MySqlPool = config.connect().await.unwrap();
    scan.push(format!("{pool:?}"));
    scan.push(format!("{:?}", pool.stats()));
    let health = pool.health().await;
    scan.push(serde_json::to_string(&health).unwrap());
    scan.push(format!("{health:?}"));
    scan.seen(&pool.fetch_one::<i32, _>("SELECT nonsense", ()).await.unwrap_err());
    scan.seen(&pool.fetch_one::<i32, _>("SELECT 1 FROM DUAL WHERE FALSE", ()).await.unwrap_err());
    common::kill_all_of(&mut admin, &user).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _: i32 = pool.fetch_one("SELECT 1", ()).await.unwrap();
    pool.close().await;

    // A refused password and an unreachable server: start errors, timeouts, health.
    let wrong = format!("mysql://{user}:{SECRET}x@127.0.0.1:3306/test");
    scan.seen(&aquifer_mysql::connect(&wrong).await.unwrap_err());
    let mut c = MySqlConfig::from_url(format!("mysql://{user}:{SECRET}@127.0.0.1:1/test"));
    c.pool.acquire_timeout = Duration::from_millis(300);
    scan.seen(&c.connect().await.unwrap_err());
    let lazy = c.connect_lazy().unwrap();
    scan.seen(&lazy.get().await.unwrap_err());
    scan.seen(&lazy.fetch_one::<i32, _>("SELECT 1", ()).await.unwrap_err());
    scan.push(serde_json::to_string(&lazy.health().await).unwrap());
    lazy.close().await;

    scan.assert_clean();
}
