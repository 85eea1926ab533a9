//! No password in any output: every error, `Debug`, `Display`, serialised config, health report and log line
//! (tracing at debug level) this crate produces for configs holding a known password is scanned for it.

mod common;

use std::time::Duration;

use aquifer_postgres::sqlx;
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_testing::SecretScan;
use common::*;

const SECRET: &str = "Sekr3t-pg-7f1c";

fn env(vars: &[(&str, String)]) -> Result<PgConfig, aquifer_postgres::ConfigError> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    PgConfig::from_lookup("POSTGRES", move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_of_the_adapter_contains_the_password() {
    require_pg().await;
    let mut scan = SecretScan::start(SECRET);

    // Configs: Debug and serde output.
    let good = format!("postgres://postgres:{SECRET}@127.0.0.1:5432/test?sslmode=disable");
    let mut config = PgConfig::from_url(&good);
    config.pool.name = Some(unique("no_secret"));
    scan.push(serde_json::to_string(&config).unwrap());
    scan.push(serde_json::to_string(&config.url).unwrap());
    // init_sql is serialised as written (it is the application's SQL), but never shown in Debug.
    config.init_sql.push(format!("SET application_name = 'x' /* {SECRET} */"));
    scan.push(format!("{config:?}"));
    scan.push(format!("{:?}", config.manager().unwrap()));

    // Unparseable URLs and connection strings: every shape of error.
    let bad = [
        format!("postgres://127.0.0.1:notaport/test?password={SECRET}"),
        format!("host=127.0.0.1 password={SECRET} user=postgres"),
        format!("postgres://postgres:{SECRET}@127.0.0.1:99999/test"),
        format!("postgres://postgres:{SECRET}@/test?sslmode=nonsense"),
        format!("postgres://postgres:{SECRET}@127.0.0.1/test?sslmode="),
        format!("postgres:/{SECRET}@127.0.0.1"),
        format!("mysql://postgres:{SECRET}@127.0.0.1/test"),
    ];
    for url in &bad {
        match PgConfig::from_url(url).connect_lazy() {
            Ok(pool) => {
                scan.push(format!("{pool:?}"));
                pool.close().await;
            }
            Err(e) => scan.seen(&e),
        }
    }

    // Environment errors, with the password in the URL and in other variables.
    let env_cases = [
        vec![("POSTGRES_URL", good.clone()), ("POSTGRES_POOL_MAX_SIZE", "many".to_owned())],
        vec![("POSTGRES_URL", good.clone()), ("POSTGRES_STATEMENT_TIMEOUT", "0".to_owned())],
        vec![("POSTGRES_URL", good.clone()), ("POSTGRES_PGBOUNCER", "1".into()), ("POSTGRES_INIT_SQL", SECRET.into())],
        vec![("DATABASE_URL", bad[0].clone()), ("POSTGRES_APPLICATION_NAME", String::new())],
    ];
    for vars in &env_cases {
        match env(vars) {
            Ok(c) => scan.push(format!("{c:?}")),
            Err(e) => scan.seen(&e),
        }
    }
    // A config file with the password, refused for an unknown field.
    let json = format!(r#"{{"url": "{good}", "bogus": 1}}"#);
    scan.seen(&serde_json::from_str::<PgConfig>(&json).unwrap_err());

    // A live pool: its Debug, stats, health report, the helpers' errors and the pool's own logs.
    let pool: PgPool = config.connect().await.unwrap();
    scan.push(format!("{pool:?}"));
    scan.push(format!("{:?}", pool.stats()));
    scan.push(format!("{:?}", pool.state()));
    let health = pool.health().await;
    scan.push(serde_json::to_string(&health).unwrap());
    scan.push(format!("{health:?}"));
    let e = pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT nonsense")).await.unwrap_err();
    scan.seen(&e);
    let e = pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT 1 WHERE false")).await.unwrap_err();
    scan.seen(&e);
    {
        // A connection killed under the helpers: the retry is logged at debug level.
        let mut admin = admin().await;
        terminate(&mut admin, config.pool.name.as_deref().unwrap()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _: (i32,) = pool.fetch_one(|| sqlx::query("SELECT 1")).await.unwrap();
    }
    pool.close().await;

    // A server that refuses the connection, and one that does not answer: start errors and timeouts.
    let refused = format!("postgres://postgres:{SECRET}@127.0.0.1:1/test?sslmode=disable");
    let mut c = PgConfig::from_url(&refused);
    c.pool.acquire_timeout = Duration::from_millis(300);
    scan.seen(&c.connect().await.unwrap_err());
    let lazy = c.connect_lazy().unwrap();
    scan.seen(&lazy.get().await.unwrap_err());
    scan.seen(&lazy.fetch_one::<(i32,), _>(|| sqlx::query("SELECT 1")).await.unwrap_err());
    scan.push(serde_json::to_string(&lazy.health().await).unwrap());
    lazy.close().await;

    scan.assert_clean();
}
