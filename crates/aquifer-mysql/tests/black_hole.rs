//! A 5 s network black hole in front of MariaDB (the chaos proxy passes no byte either way) under load, with
//! a 1 s deadline on every request, so that requests stuck on the wire are abandoned and their connections
//! closed as broken: the pool is left with nothing but connect attempts, which hang in the black hole until
//! their timeout, and some of which began during the outage and time out just after it heals. None of them may
//! open the circuit once the server answers again (they used to, and the pool refused callers with
//! `Unavailable` after the heal), and the first request after the heal succeeds within 250 ms.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aquifer_core::PoolError;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, PoolConfig};
use aquifer_testing::ChaosProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Unavailable,
    AcquireTimeout,
    QueryFailed,
    Abandoned,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_black_hole_heals_no_caller_is_refused_and_the_first_success_comes_within_250ms() {
    common::server().await;
    let proxy = ChaosProxy::start(format!("{}:{}", common::HOST, common::port()).parse().unwrap()).await.unwrap();
    let config = PoolConfig {
        name: Some(common::unique("aq_my_black_hole")),
        max_size: 8,
        acquire_timeout: Duration::from_secs(2),
        ..PoolConfig::default()
    };
    let url = format!("mysql://root@{}:{}/test", common::HOST, proxy.port());
    let pool = MySqlConfig { pool: config, ..MySqlConfig::from_url(url) }.connect().await.unwrap();

    let start = Instant::now();
    let end = start + Duration::from_secs(9);
    // (began, ended, outcome) of every request.
    let log: Arc<Mutex<Vec<(Instant, Instant, Outcome)>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (pool, log) = (pool.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let began = Instant::now();
                let request = async {
                    match pool.get().await {
                        Err(PoolError::Unavailable { .. }) => Outcome::Unavailable,
                        Err(_) => Outcome::AcquireTimeout,
                        Ok(mut conn) => match conn.query_drop("SELECT 1").await {
                            Ok(()) => Outcome::Ok,
                            Err(_) => Outcome::QueryFailed,
                        },
                    }
                };
                let outcome = tokio::time::timeout(Duration::from_secs(1), request).await.unwrap_or(Outcome::Abandoned);
                log.lock().unwrap().push((began, Instant::now(), outcome));
                if outcome != Outcome::Ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.black_hole(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.heal();
    let heal = Instant::now();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t).await.expect("the load ends in time").unwrap();
    }

    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut after = std::collections::BTreeMap::<Outcome, usize>::new();
    let mut during = std::collections::BTreeMap::<Outcome, usize>::new();
    for (_, ended, outcome) in log.iter() {
        *(if *ended >= heal { &mut after } else { &mut during }).entry(*outcome).or_default() += 1;
    }
    let first_ok = log.iter().filter(|(_, ended, o)| *o == Outcome::Ok && *ended >= heal).map(|(_, e, _)| *e).min();
    eprintln!(
        "until the heal: {during:?}; after: {after:?}; first success {:?} after the heal; {:?}",
        first_ok.map(|t| t - heal),
        pool.stats()
    );
    assert!(during.get(&Outcome::Abandoned).is_some_and(|n| *n > 0), "the black hole stalled requests: {during:?}");
    assert_eq!(after.get(&Outcome::Unavailable), None, "callers refused after the heal: {after:?}");
    let first_ok = first_ok.expect("requests succeed after the heal");
    assert!(first_ok - heal <= Duration::from_millis(250), "first success {:?} after the heal", first_ok - heal);
    assert_eq!(pool.stats().fail_fast, 0, "the circuit never opened: {:?}", pool.stats());
    pool.close().await;
}
