//! A database per tenant on the Bolt server (ArcadeDB): [`Neo4jPool::with_database`] sends each query and
//! transaction to the tenant's database (the `db` field of Bolt's `RUN` and `BEGIN`). Three tenant databases
//! and the configured one share a pool of 4 connections; 32 tasks make interleaved requests (queries,
//! transactions, writes rolled back), a fifth of them cancelled at random await points and a tenth
//! panicking after their request. No request may see another tenant's nodes, and the configured database
//! never sees any.
//!
//! `AQUIFER_TENANT_REQUESTS` scales the number of requests (default 10,000).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use aquifer_neo4j::{Neo4jPool, query};
use aquifer_testing::{TaskRng, TenantTally};
use common::*;

const TENANTS: u64 = 3;

fn database(tenant: u64) -> String {
    format!("aq_tenant_{tenant}_{}", std::process::id())
}

/// Runs an ArcadeDB server command over its HTTP API as root; returns whether it succeeded.
fn server_command(command: &str) -> bool {
    let body = serde_json::json!({ "command": command }).to_string();
    let url = format!("{}/api/v1/server", aquifer_testing::servers::arcadedb_http_url());
    let out = Command::new("curl")
        .args(["-sf", "-u", &format!("root:{PASSWORD}"), "-X", "POST", &url, "-d"])
        .arg(&body)
        .output()
        .expect("curl runs");
    out.status.success()
}

/// The tenants' databases, each with 3 nodes of its own, dropped on drop.
struct Databases;

impl Databases {
    async fn create(pool: &Neo4jPool) -> Self {
        for t in 1..=TENANTS {
            server_command(&format!("drop database {}", database(t)));
            assert!(server_command(&format!("create database {}", database(t))), "create database {}", database(t));
            pool.with_database(database(t))
                .execute(
                    query("UNWIND range(1, 3) AS i CREATE (:AqTenantNote {tenant: $t, i: i})").param("t", t as i64),
                )
                .await
                .expect("seed the tenant's database");
        }
        Databases
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for t in 1..=TENANTS {
            server_command(&format!("drop database {}", database(t)));
        }
    }
}

fn check(tally: &TenantTally, tenant: u64, seen: &[i64]) {
    let foreign = seen.iter().filter(|t| **t != tenant as i64).count() as u64;
    tally.leaked_rows.fetch_add(foreign, Ordering::Relaxed);
    assert_eq!(foreign, 0, "tenant {tenant} saw nodes of {seen:?}");
    assert_eq!(seen.len(), 3, "tenant {tenant} saw {seen:?}");
}

async fn request(pool: Neo4jPool, tally: Arc<TenantTally>, tenant: u64, kind: u64) {
    let scoped = pool.with_database(database(tenant));
    let read = "MATCH (n:AqTenantNote) RETURN n.tenant AS t";
    match kind {
        0 | 1 => {
            let rows = scoped.fetch_all(read).await.expect("scoped fetch_all");
            let seen: Vec<i64> = rows.iter().map(|r| r.get("t").unwrap()).collect();
            check(&tally, tenant, &seen);
        }
        // A transaction that writes a node of another tenant's number, reads, and rolls back.
        2 => {
            let out = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let err = scoped
                .transaction(|txn| {
                    let out = Arc::clone(&out);
                    Box::pin(async move {
                        txn.run(query("CREATE (:AqTenantNote {tenant: -1, i: 0})")).await?;
                        let read = query("MATCH (n:AqTenantNote) WHERE n.tenant > 0 RETURN n.tenant AS t");
                        let mut rows = txn.execute(read).await?;
                        let mut seen = Vec::new();
                        while let Some(row) = rows.next(&mut *txn).await? {
                            seen.push(row.get::<i64>("t")?);
                        }
                        *out.lock() = seen;
                        Err::<(), _>(aquifer_neo4j::Neo4jError::abort("roll back"))
                    })
                })
                .await
                .unwrap_err();
            assert!(err.to_string().contains("roll back"), "{err}");
            let seen = out.lock().clone();
            check(&tally, tenant, &seen);
        }
        // The configured database sees no tenant's node, and no rolled-back write reached a tenant.
        _ => {
            let n: i64 = pool.fetch_one("MATCH (n:AqTenantNote) RETURN count(n) AS n").await.unwrap().get("n").unwrap();
            if n != 0 {
                tally.leaked_settings.fetch_add(1, Ordering::Relaxed);
                panic!("the configured database sees {n} tenant nodes");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_sees_another_tenants_database() {
    let pool = pool("tenants", 4, None).await;
    let dbs = Databases::create(&pool).await;
    let total: u64 = std::env::var("AQUIFER_TENANT_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let tally = Arc::new(TenantTally::default());
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let (pool, tally) = (pool.clone(), Arc::clone(&tally));
        let share = total / 32 + u64::from(task < total % 32);
        tasks.push(tokio::spawn(async move {
            let mut rng = TaskRng::for_task(task);
            for _ in 0..share {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let (tenant, kind) = (rng.next(TENANTS) + 1, rng.next(4));
                let req = request(pool.clone(), Arc::clone(&tally), tenant, kind);
                tally.count(aquifer_testing::run_with_random_fate(&mut rng, req).await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    tally.assert_no_leak(total);
    for t in 1..=TENANTS {
        let rows =
            pool.with_database(database(t)).fetch_all("MATCH (n:AqTenantNote) RETURN n.tenant AS t").await.unwrap();
        let seen: Vec<i64> = rows.iter().map(|r| r.get("t").unwrap()).collect();
        check(&tally, t, &seen);
    }
    pool.close().await;
    drop(dbs);
}
