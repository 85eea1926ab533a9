//! A database file per tenant, each with a pool of its own in a [`KeyedPools`] (the choice over `ATTACH` is
//! explained in docs/sqlite.md, "Tenants"): 8 tenant files under a cap of 3 connections across them, 16 tasks
//! reading and writing random tenants. Every request sees its own file only, the cap holds, and pools idle
//! past their timeout are closed.

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{KeyedPools, PoolConfig};
use aquifer_sqlite::{Role, SqliteConfig, SqliteManager};
use aquifer_testing::TaskRng;

const TENANTS: u64 = 8;
const CAP: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_file_has_its_own_pool_under_one_cap() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let make = {
        let dir = Arc::clone(&dir);
        move |tenant: &u64| {
            let path = dir.path().join(format!("tenant_{tenant}.db"));
            Ok(SqliteManager::new(SqliteConfig::new(path.to_string_lossy().into_owned()), Role::Writer))
        }
    };
    let config = PoolConfig { max_size: 2, acquire_timeout: Duration::from_secs(30), ..PoolConfig::default() };
    let set = KeyedPools::builder(make)
        .config(config)
        .max_connections(CAP)
        .idle_pool_timeout(Duration::from_millis(200))
        .name("tenant_files")
        .build()
        .unwrap();
    for t in 1..=TENANTS {
        let conn = set.get(&t).await.expect("the tenant's file");
        conn.execute_batch(&format!("CREATE TABLE notes (tenant INTEGER NOT NULL); INSERT INTO notes VALUES ({t});"))
            .unwrap();
    }
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let set = set.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = TaskRng::for_task(task);
            for _ in 0..200 {
                let tenant = rng.next(TENANTS) + 1;
                let conn = set.get(&tenant).await.expect("a connection of the tenant's file");
                if rng.next(4) == 0 {
                    conn.execute("INSERT INTO notes VALUES (?1)", [tenant as i64]).unwrap();
                }
                let foreign: i64 = conn
                    .query_row("SELECT count(*) FROM notes WHERE tenant <> ?1", [tenant as i64], |r| r.get(0))
                    .unwrap();
                assert_eq!(foreign, 0, "tenant {tenant}'s file holds another tenant's rows");
                assert!(set.connections() <= CAP, "{} connections under a cap of {CAP}", set.connections());
                drop(conn);
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    assert!(set.connections() <= CAP);
    // Unused, the pools close and their files' connections with them.
    let closed =
        aquifer_testing::poll_until(Duration::from_secs(10), Duration::from_millis(20), async || set.is_empty()).await;
    assert!(closed, "idle pools were not closed: {set:?}");
    assert_eq!(set.connections(), 0);
}
