//! `pg_terminate_backend` of every connection of the pool (and only of this pool) while it is under load.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aquifer_postgres::sqlx::{self, Connection};
use aquifer_postgres::{PgOperationError, PgPool};
use common::*;
use parking_lot::Mutex;

/// Kills every backend of `app` at each of `at` (offsets from now); returns how many were killed in all.
fn killer(app: String, at: Vec<Duration>) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut admin = admin().await;
        let start = Instant::now();
        let mut killed = 0;
        for t in at {
            tokio::time::sleep((start + t).saturating_duration_since(Instant::now())).await;
            killed += terminate(&mut admin, &app).await;
        }
        killed
    })
}

fn session_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P01"),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_discarded_and_never_handed_out_twice() {
    let (pool, app) = connect("terminate_raw", |c| c.pool.max_size = 8).await;
    let seq = Arc::new(AtomicU64::new(0));
    // (sequence, connection id, ok) for every use.
    let uses = Arc::new(Mutex::new(Vec::<(u64, u64, bool)>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    let kills = killer(app.clone(), vec![Duration::from_millis(300), Duration::from_millis(800)]);
    let deadline = Instant::now() + Duration::from_millis(1300);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (pool, seq, uses, errors) = (pool.clone(), seq.clone(), uses.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut conn = pool.get().await.expect("the pool keeps handing out connections");
                let id = conn.info().id;
                let r: Result<i32, _> = sqlx::query_scalar("SELECT 1 FROM pg_sleep(0.001)").fetch_one(&mut *conn).await;
                uses.lock().push((seq.fetch_add(1, Ordering::SeqCst), id, r.is_ok()));
                if let Err(e) = r
                    && !session_lost(&e)
                {
                    errors.lock().push(e.to_string());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let killed = kills.await.unwrap();
    assert!(killed >= 8, "the killer found the pool's backends ({killed})");
    assert!(errors.lock().is_empty(), "every failure is a lost session: {:?}", errors.lock());

    let uses = uses.lock().clone();
    let mut failed_at: HashMap<u64, u64> = HashMap::new();
    for &(s, id, ok) in &uses {
        if !ok {
            assert!(failed_at.insert(id, s).is_none(), "connection {id} failed twice: handed out again after dying");
        }
    }
    for &(s, id, _) in &uses {
        if let Some(&f) = failed_at.get(&id) {
            assert!(s <= f, "connection {id} was used after it died");
        }
    }
    assert!(!failed_at.is_empty(), "the kills hit connections in use");
    assert!(pool.stats().closed_broken >= failed_at.len() as u64, "{:?}", pool.stats());

    // After the kills the pool serves every query.
    for _ in 0..16 {
        let v: i32 = sqlx::query_scalar("SELECT 2").fetch_one(&mut *pool.get().await.unwrap()).await.unwrap();
        assert_eq!(v, 2);
    }
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helpers_retry_queries_whose_connection_was_terminated() {
    let (pool, app) = connect("terminate_helpers", |c| c.pool.max_size = 8).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(Vec::<PgOperationError>::new()));

    let kills = killer(app.clone(), vec![Duration::from_millis(300), Duration::from_millis(800)]);
    let deadline = Instant::now() + Duration::from_millis(1300);
    let mut tasks = Vec::new();
    for i in 0..16_i64 {
        let (pool, ok, failed) = (pool.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r: Result<(i64,), _> =
                    pool.fetch_one(|| sqlx::query("SELECT $1::int8 FROM pg_sleep(0.001)").bind(i)).await;
                match r {
                    Ok((v,)) => {
                        assert_eq!(v, i);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed.lock().push(e),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(kills.await.unwrap() >= 8);
    let failed = std::mem::take(&mut *failed.lock());
    // The documented retry (3 attempts, the later ones on a verified connection) absorbs the kills; anything
    // that still fails must be the typed lost-session error, never a hang or a protocol error.
    for e in failed.iter() {
        assert!(matches!(e, PgOperationError::Backend(b) if session_lost(b)), "untyped failure: {e:?}");
    }
    assert!(failed.is_empty(), "{} helper calls failed despite the retries: {:?}", failed.len(), &failed[..]);
    assert!(ok.load(Ordering::Relaxed) > 100);
    pool.close().await;
}

#[tokio::test]
async fn a_transaction_whose_connection_is_terminated_is_retried_whole() {
    let mut admin = admin().await;
    let t = fresh_table(&mut admin, "tx_retry", "id int PRIMARY KEY").await;
    let mut config = config("terminate_tx");
    config.pool.max_size = 1;
    let pool: PgPool = config.connect().await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));

    let inserted = pool
        .transaction(|conn| {
            let (t, attempts) = (t.clone(), attempts.clone());
            Box::pin(async move {
                let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {t} VALUES (1)"))).execute(&mut *conn).await?;
                if n == 1 {
                    // Kill this very backend from a second connection, mid-transaction.
                    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await?;
                    let mut killer = sqlx::PgConnection::connect(&url()).await?;
                    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&mut killer).await?;
                    sqlx::query("SELECT 1").execute(&mut *conn).await?;
                }
                Ok(n)
            })
        })
        .await
        .expect("the second attempt commits");

    assert_eq!(inserted, 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the first attempt's insert died with its session; only the retry's row exists");
    pool.close().await;
}

#[tokio::test]
async fn connections_terminated_while_idle_are_replaced_on_checkout() {
    require_pg().await;
    let mut config = config("terminate_idle");
    config.pool.max_size = 4;
    config.pool.min_idle = 4;
    config.pool.validation_bypass = Duration::from_millis(50);
    let app = config.pool.name.clone().unwrap();
    let pool = config.connect().await.unwrap();
    let mut admin = admin().await;
    assert!(terminate(&mut admin, &app).await >= 4);
    // Past the bypass window, checkout validates the idle connections, finds them dead and opens new ones:
    // no caller sees the termination.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.get().await.unwrap();
        let v: i32 = sqlx::query_scalar("SELECT 3").fetch_one(&mut *conn).await.expect("a live connection");
        assert_eq!(v, 3);
        held.push(conn);
    }
    drop(held);
    assert!(pool.stats().closed_validation_failed >= 4, "{:?}", pool.stats());
    pool.close().await;
}
