//! Pools per tenant on the real server: a schema per tenant (its `search_path` in each pool's connect
//! options), a [`KeyedPools`] over them with a cap of 4 connections across 6 tenants. 32 tasks ask for
//! random tenants; each reads its tenant's schema through its tenant's pool. The set never holds more than
//! 4 connections (checked by every request; the server's `pg_stat_activity` is sampled too and reported),
//! and idle pools are closed, their sessions with them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_core::{KeyedPools, PoolConfig};
use aquifer_postgres::sqlx::postgres::PgConnectOptions;
use aquifer_postgres::sqlx::{self, AssertSqlSafe};
use aquifer_postgres::{PgConfig, PgManager};
use common::*;

const TENANTS: u32 = 6;
const CAP: usize = 4;

fn schema(tenant: u32) -> String {
    format!("aq_keyed_t{tenant}_{}", std::process::id())
}

async fn sessions(app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(&mut admin().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_per_tenant_schema_stays_under_the_global_cap_and_idle_pools_close() {
    require_pg().await;
    let mut admin = admin().await;
    for t in 1..=TENANTS {
        let s = schema(t);
        let sql = format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}; \
             CREATE TABLE {s}.notes (tenant int NOT NULL); INSERT INTO {s}.notes VALUES ({t});"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await.unwrap();
    }
    let app = unique("keyed");
    let make = {
        let app = app.clone();
        move |tenant: &u32| {
            let options: PgConnectOptions = url().parse().expect("the test URL");
            let options = options.options([("search_path", schema(*tenant))]);
            let config = PgConfig { application_name: Some(app.clone()), ..PgConfig::default() };
            PgManager::new(options, &config)
        }
    };
    let config = PoolConfig { max_size: CAP, acquire_timeout: Duration::from_secs(30), ..PoolConfig::default() };
    let set = KeyedPools::builder(make)
        .config(config)
        .max_connections(CAP)
        .idle_pool_timeout(Duration::from_millis(500))
        .name("tenants")
        .build()
        .unwrap();

    // Samples the server's sessions of the set while the load runs.
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn({
        let (done, most, app) = (Arc::clone(&done), Arc::clone(&most), app.clone());
        async move {
            let mut watch = common::admin().await;
            while !done.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&app)
                    .fetch_one(&mut watch)
                    .await
                    .unwrap();
                most.fetch_max(n as usize, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let set = set.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = aquifer_testing::TaskRng::for_task(task);
            for _ in 0..100 {
                let tenant = rng.next(u64::from(TENANTS)) as u32 + 1;
                let mut conn = set.get(&tenant).await.expect("a connection of the tenant's pool");
                let seen: i32 = sqlx::query_scalar("SELECT tenant FROM notes").fetch_one(&mut **conn).await.unwrap();
                assert_eq!(seen, tenant as i32, "tenant {tenant}'s pool read another schema");
                assert!(set.connections() <= CAP, "{} connections under a cap of {CAP}", set.connections());
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let most = most.load(Ordering::Relaxed);
    // The cap counts the connections the pools hold: one closed to make room is gone from the client at
    // once and from the server when its backend reads the end of the stream, so a sample may catch it.
    eprintln!("at most {most} sessions of the set seen on the server (cap {CAP}); {} pools", set.len());
    assert!(most > 0, "the sampler saw no session: it proves nothing");

    // Nothing uses the pools any more: they are closed, and their sessions end.
    assert!(eventually(Duration::from_secs(10), || async { set.is_empty() }).await, "{set:?}");
    assert!(eventually(Duration::from_secs(10), || async { sessions(&app).await == 0 }).await);
    for t in 1..=TENANTS {
        sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", schema(t)))).execute(&mut admin).await.unwrap();
    }
}
