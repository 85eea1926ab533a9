//! The tenant guarantee on MariaDB: a view filtering on the user variable `@tenant_id` (through a function:
//! MariaDB refuses variables in a view's SELECT), 10 tenants and 32
//! tasks making interleaved requests with [`MySqlSession`] (per checkout, `COM_RESET_CONNECTION` on
//! return), cancellations at random await points and panics in user code. No request may read a row of
//! another tenant, and a request without a session must find `@tenant_id` unset. A connection whose reset
//! fails (its session was killed while lent) is discarded.
//!
//! `AQUIFER_TENANT_REQUESTS` scales the number of requests (default 10,000).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, MySqlSession};
use aquifer_testing::TenantTally as Tally;

const TENANTS: u64 = 10;
const ROWS_PER_TENANT: usize = 5;
const TASKS: u64 = 32;

async fn fixture(tag: &str) -> (String, String) {
    let table = format!("aq_tenant_notes_{tag}_{}", std::process::id());
    let view = format!("aq_tenant_my_notes_{tag}_{}", std::process::id());
    let mut admin = common::admin().await;
    admin
        .query_drop(format!(
            "DROP VIEW IF EXISTS {view}; DROP TABLE IF EXISTS {table}; DROP FUNCTION IF EXISTS {view}_tenant; \
             CREATE TABLE {table} (tenant_id INT NOT NULL, body TEXT NOT NULL); \
             CREATE FUNCTION {view}_tenant() RETURNS INT NOT DETERMINISTIC NO SQL RETURN @tenant_id; \
             CREATE VIEW {view} AS SELECT tenant_id, body FROM {table} WHERE tenant_id = {view}_tenant();"
        ))
        .await
        .expect("create the fixture");
    for tenant in 1..=TENANTS {
        for n in 0..ROWS_PER_TENANT {
            admin.exec_drop(format!("INSERT INTO {table} VALUES (?, ?)"), (tenant, format!("note {n}"))).await.unwrap();
        }
    }
    (table, view)
}

async fn drop_fixture(table: &str, view: &str) {
    let mut admin = common::admin().await;
    let sql =
        format!("DROP VIEW IF EXISTS {view}; DROP TABLE IF EXISTS {table}; DROP FUNCTION IF EXISTS {view}_tenant");
    admin.query_drop(sql).await.unwrap();
}

async fn pool(name: &str, max_size: usize) -> MySqlPool {
    common::server().await;
    let mut c = MySqlConfig::from_url(common::url());
    c.pool.name = Some(common::unique(name));
    c.pool.max_size = max_size;
    c.connect().await.expect("pool")
}

fn session(tenant: u64) -> MySqlSession {
    MySqlSession::new().user_var("tenant_id", tenant.to_string()).unwrap()
}

async fn request(pool: MySqlPool, view: Arc<str>, tally: Arc<Tally>, tenant: u64, kind: u64) {
    if kind < 3 {
        let mut conn = pool.get_session(&session(tenant)).await.expect("get_session");
        let rows: Vec<u64> = conn.query(format!("SELECT tenant_id FROM {view}")).await.expect("select");
        let foreign = rows.iter().filter(|t| **t != tenant).count() as u64;
        tally.leaked_rows.fetch_add(foreign, Ordering::Relaxed);
        assert_eq!((foreign, rows.len()), (0, ROWS_PER_TENANT), "tenant {tenant} read {rows:?}");
        if kind == 2 {
            // Changed behind the session's back: the reset on return clears it too.
            conn.query_drop("SET @tenant_id = 999, @other = 1").await.unwrap();
        }
    } else {
        let left: (Option<u64>, Option<u64>) =
            pool.fetch_one("SELECT @tenant_id, @other", ()).await.expect("a plain request");
        if left != (None, None) {
            tally.leaked_settings.fetch_add(1, Ordering::Relaxed);
            panic!("a request without a session found {left:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_another_tenants_rows_through_a_view_on_a_session_variable() {
    let (table, view) = fixture("view").await;
    let pool = pool("tenant_view", 8).await;
    let total: u64 = std::env::var("AQUIFER_TENANT_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let tally = Arc::new(Tally::default());
    let view: Arc<str> = Arc::from(view.as_str());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (pool, view, tally) = (pool.clone(), Arc::clone(&view), Arc::clone(&tally));
        let share = total / TASKS + u64::from(task < total % TASKS);
        tasks.push(tokio::spawn(async move {
            let mut rng = aquifer_testing::TaskRng::for_task(task);
            for _ in 0..share {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let (tenant, kind) = (rng.next(TENANTS) + 1, rng.next(5));
                let req = request(pool.clone(), Arc::clone(&view), Arc::clone(&tally), tenant, kind);
                tally.count(aquifer_testing::run_with_random_fate(&mut rng, req).await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    tally.assert_no_leak(total);
    pool.close().await;
    drop_fixture(&table, &view).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_reset_fails_is_discarded() {
    let pool = pool("tenant_reset", 1).await;
    let mut conn = pool.get_session(&session(3)).await.unwrap();
    let id: u64 = conn.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
    let mut admin = common::admin().await;
    common::kill(&mut admin, id as u32).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    let mut next = pool.get().await.unwrap();
    let (now, tenant): (u64, Option<u64>) =
        next.query_first("SELECT CONNECTION_ID(), @tenant_id").await.unwrap().unwrap();
    assert_ne!(now, id, "the connection whose reset failed was reused");
    assert_eq!(tenant, None);
    drop(next);
    let stats = pool.stats();
    assert_eq!(stats.closed_hook_failed + stats.closed_broken, 1, "{stats:?}");
    pool.close().await;
}
