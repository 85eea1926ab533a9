//! Through a real PgBouncer in transaction-pooling mode (scripts/services/30-pgbouncer.sh: 127.0.0.1:$AQUIFER_PGBOUNCER_PORT,
//! 10 server connections shared by more clients).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aquifer_postgres::{PgConfig, PgPool, sqlx};
use common::*;

async fn bouncer_pool(test: &str, max_size: usize) -> PgPool {
    aquifer_testing::require_server("PgBouncer", &aquifer_testing::servers::pgbouncer_addr(), SCRIPT).await;
    let mut c = PgConfig::from_url(aquifer_testing::servers::pgbouncer_url());
    c.pool.name = Some(unique(test));
    c.pool.max_size = max_size;
    c.pgbouncer = true;
    c.connect().await.expect("pool through PgBouncer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tasks_run_parameterised_queries_through_pgbouncer() {
    // 30 client connections over PgBouncer's 10 server connections: statements of different clients
    // interleave on the same server connections.
    let pool = bouncer_pool("bouncer_params", 30).await;
    let mut tasks = Vec::new();
    for i in 0..100_i64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..5_i64 {
                let (sum, text): (i64, String) = pool
                    .fetch_one(|| {
                        sqlx::query("SELECT $1::int8 + $2::int8, $3::text").bind(i).bind(j).bind(format!("task {i}"))
                    })
                    .await?;
                assert_eq!(sum, i + j);
                assert_eq!(text, format!("task {i}"));
            }
            Ok::<_, aquifer_postgres::PgOperationError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every parameterised query succeeds through PgBouncer");
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_with_the_drivers_own_queries_work_through_pgbouncer() {
    let pool = bouncer_pool("bouncer_tx", 30).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..100_i64 {
        let (pool, done) = (pool.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            pool.transaction(|conn| {
                Box::pin(async move {
                    // Ordinary sqlx queries (named prepared statements): the helper deallocates them before COMMIT.
                    let a: i64 = sqlx::query_scalar("SELECT $1::int8").bind(i).fetch_one(&mut *conn).await?;
                    let b: i64 = sqlx::query_scalar("SELECT $1::int8 * 2").bind(a).fetch_one(&mut *conn).await?;
                    Ok(b)
                })
            })
            .await
            .map(|b| {
                assert_eq!(b, i * 2);
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every transaction succeeds through PgBouncer");
    }
    assert_eq!(done.load(Ordering::Relaxed), 100);
    pool.close().await;
}

#[tokio::test]
async fn session_settings_are_refused_in_pgbouncer_mode() {
    let mut c = PgConfig::from_url(aquifer_testing::servers::pgbouncer_url());
    c.pgbouncer = true;
    c.statement_timeout = Some(std::time::Duration::from_secs(1));
    let err = c.connect_lazy().unwrap_err();
    assert!(err.to_string().contains("statement_timeout") && err.to_string().contains("PgBouncer"), "{err}");
}
