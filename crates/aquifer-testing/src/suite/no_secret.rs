//! No password in any output: every error, `Debug`, `Display`, serialised configuration, health report and
//! log line (tracing down to TRACE) an adapter produces for configurations holding a known password.

use std::time::Duration;

use aquifer_core::{Adapter, AnyPool, HealthCheck};
use tokio::time::timeout;

use super::{Checked, Hooks, STEP, Test, not_checked};
use crate::SecretScan;

/// Scans the outputs of configurations, URLs and variables of every shape holding the password, of a live
/// pool (its `Debug`, state, health report, failed statements, a session killed under it and retried) and of
/// a pool whose server does not answer.
pub async fn no_output_contains_the_password<H: Hooks>(t: Test) -> Checked {
    H::require().await;
    let name = t.pool();
    let secret = H::secret_config(&name).await?;
    let (mut config, secret) = (secret.config, secret.secret);
    config.pool_config_mut().name = Some(name);
    let mut scan = SecretScan::start(&secret);
    scan.push(format!("{config:?}"));
    if let Ok(serde) = H::serde() {
        if let Some(to_json) = serde.to_json {
            scan.push(to_json(&config));
        }
        // A configuration file with the password, refused for an unknown field.
        let base = serde.with_password.replace("{secret}", &secret);
        scan.push((serde.from_json)(&format!("{{{base}, \"bogus\": 1}}")).map(drop).expect_err("an unknown field"));
    }

    // URLs of every shape: odd forms, another scheme, and each of the adapter's parameters empty or bad.
    let scheme = H::SECRET_SCHEMES.first().copied().unwrap_or("x");
    let mut urls = vec![
        format!("{scheme}://127.0.0.1:notaport/test?password={secret}"),
        format!("{scheme}://app:{secret}@127.0.0.1:99999/test"),
        format!("{scheme}:/app:{secret}@127.0.0.1"),
        format!("host=127.0.0.1 password={secret} user=app"),
        format!("unknown://app:{secret}@127.0.0.1/test"),
        format!("http://app:{secret}@127.0.0.1"),
    ];
    for param in H::URL_PARAMS.iter().chain(&["x"]) {
        urls.push(format!("{scheme}://app:{secret}@127.0.0.1/test?{param}="));
        urls.push(format!("{scheme}://app:{secret}@127.0.0.1/test?{param}=lots"));
    }
    for url in &urls {
        match H::Adapter::from_url(url).connect_lazy() {
            Ok(pool) => {
                scan.push(format!("{pool:?}"));
                pool.close().await;
            }
            Err(e) => scan.seen(&e),
        }
    }

    // Environment errors: the password in a URL (also sqlx's `DATABASE_URL`), in a variable of its own and
    // in statements, next to every bad value of the adapter's variables.
    let prefix = H::Adapter::ENV_PREFIX;
    let unreachable = format!("{scheme}://app:{secret}@127.0.0.1:1/test");
    let mut cases = vec![
        vec![("URL", urls[0].clone())],
        vec![("URL", urls[1].clone()), ("POOL_MAX_SIZE", "many".into())],
        vec![("URL", unreachable.clone()), ("POOL_MAX_SZIE", "3".into())],
        vec![("PASSWORD", secret.clone()), ("NAEM", secret.clone())],
        // init_sql is serialised as written (it is the application's SQL), but never shown in Debug.
        vec![("URL", unreachable.clone()), ("INIT_SQL", format!("SELECT 1 /* {secret} */"))],
    ];
    cases.extend(H::BAD_VALUES.iter().map(|(k, v)| vec![("URL", unreachable.clone()), (*k, (*v).to_owned())]));
    let prefixed = |vars: Vec<(&str, String)>| vars.into_iter().map(|(k, v)| (format!("{prefix}_{k}"), v)).collect();
    let mut cases: Vec<Vec<(String, String)>> = cases.into_iter().map(prefixed).collect();
    cases.push(vec![("DATABASE_URL".to_owned(), urls[0].clone())]);
    for vars in cases {
        match H::Adapter::from_vars(prefix, vars) {
            Ok(c) => {
                scan.push(format!("{c:?}"));
                match c.connect_lazy() {
                    Ok(pool) => scan.push(format!("{pool:?}")),
                    Err(e) => scan.seen(&e),
                }
            }
            Err(e) => scan.seen(&e),
        }
    }

    // A live pool: Debug, state, stats, health, failed statements, and a killed session retried (the
    // retry is logged at debug level).
    let pool =
        timeout(STEP, config.connect()).await.expect("start in time").expect("the test server accepts the password");
    scan.push(format!("{pool:?}"));
    scan.push(format!("{:?} {:?}", pool.state(), pool.stats()));
    let health = timeout(STEP, pool.health()).await.expect("health in time");
    scan.push(serde_json::to_string(&health).expect("a health report serialises"));
    scan.push(format!("{health:?}"));
    for e in H::fail(&pool).await {
        scan.seen(&*e);
    }
    match H::kill_sessions(&pool).await {
        Ok(_) => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(H::fetch(&pool, 1).await.expect("the helpers retry a killed session"), 2);
        }
        Err(why) => not_checked(&t, "a killed session's retry", &why),
    }
    pool.close().await;

    // A server that does not answer: the start error, a checkout's and a ping's, the health report.
    let mut gone = H::Adapter::from_url(&format!("{scheme}://app:{secret}@127.0.0.1:1/test"));
    gone.pool_config_mut().acquire_timeout = Duration::from_millis(300);
    if let Err(e) = timeout(STEP, gone.connect()).await.expect("a refused start in time") {
        scan.seen(&e);
    }
    if let Ok(lazy) = gone.connect_lazy() {
        if let Err(e) = timeout(STEP, lazy.ping()).await.expect("a ping in time") {
            scan.seen(&e);
        }
        scan.push(serde_json::to_string(&lazy.health().await).expect("a health report serialises"));
        lazy.close().await;
    }
    scan.assert_clean();
    Ok(())
}
