//! The server stopped and started again while 32 tasks run queries through a pool of 8: the pool fails with
//! typed errors while the server is down, recovers on its own once it is back, leaks no slot and hands out
//! no dead connection after.
//!
//! The test runs a PostgreSQL of its own (aquifer_testing::PrivatePostgres: initdb into a temporary directory, a
//! free loopback port), so stopping it never disturbs the shared server the other tests use. The load, the two
//! outages (a clean fast shutdown, then a crash, 2.5 s each, each recovery allowed 30 s, then 3 s of load) and
//! their checks are aquifer_testing::restart_under_load, which the MariaDB test runs too; this file checks what
//! only PostgreSQL shows: its sessions against the pool's count.

use std::time::{Duration, Instant};

use aquifer_postgres::sqlx::{self, Connection, PgConnection};
use aquifer_postgres::{PgConfig, PgOperationError, PgPoolError, sqlstate};
use aquifer_testing::{CallError, PrivatePostgres, restart_under_load};

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The failures an outage may cause, each named by its type; anything else is untyped.
fn classify(e: PgOperationError) -> CallError {
    match e {
        PgOperationError::Acquire(PgPoolError::Unavailable { .. }) => CallError::Outage("unavailable"),
        PgOperationError::Acquire(PgPoolError::Timeout { .. }) => CallError::Outage("timeout"),
        PgOperationError::Backend(sqlx::Error::Io(_)) => CallError::Outage("io"),
        // 57P01 admin_shutdown (fast shutdown ends the session), 57P03 cannot_connect_now (starting up or
        // shutting down).
        PgOperationError::Backend(db) if matches!(sqlstate(&db).as_deref(), Some("57P01" | "57P03")) => {
            CallError::Outage("shutdown")
        }
        other => CallError::Untyped(format!("{other:?}")),
    }
}

/// Sessions of `app` on the private server, seen from a connection of its own.
async fn sessions(url: &str, app: &str) -> i64 {
    let mut admin = PgConnection::connect(&format!("{url}&application_name=aq_admin")).await.expect("admin");
    let n = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(&mut admin)
        .await
        .expect("count sessions");
    admin.close().await.ok();
    n
}

/// Waits (at most 5 s: a backend exits a moment after its client closed the socket) until `app` has `expected`
/// sessions on the private server; returns the last count.
async fn settled_sessions(url: &str, app: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = sessions(url, app).await;
        if n == expected || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_from_server_restarts_under_load() {
    let mut server = tokio::task::block_in_place(PrivatePostgres::start).unwrap_or_else(|e| panic!("{e}"));
    let url = server.url();
    let app = format!("aq_pg_restart_{}", std::process::id());
    let mut config = PgConfig::from_url(&url);
    config.pool.name = Some(app.clone());
    config.pool.max_size = 8;
    config.pool.acquire_timeout = ACQUIRE_TIMEOUT;
    config.pool.connect_timeout = Duration::from_secs(2);
    let pool = config.connect().await.expect("the private server answers");
    pool.warm_up().await.unwrap();

    let calls = pool.clone();
    let report = restart_under_load(&mut server, ACQUIRE_TIMEOUT, move |w| {
        let pool = calls.clone();
        async move {
            pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT $1::int4").bind(w))
                .await
                .map(|(got,)| got)
                .map_err(classify)
        }
    })
    .await;

    // No leaked slot, and the pool's count agrees with the server's.
    let state = pool.state();
    assert_eq!((state.in_use, state.waiting, state.connecting), (0, 0, 0), "{state}");
    assert!(state.size <= 8, "{state}");
    assert_eq!(
        settled_sessions(&url, &app, state.idle as i64).await,
        state.idle as i64,
        "server sessions vs the pool's idle connections ({state})"
    );
    let stats = pool.stats();
    assert!(stats.closed_broken + stats.closed_validation_failed > 0, "the dead connections were discarded: {stats:?}");
    eprintln!("calls by outcome {:?}; {stats:?}", report.kinds);

    pool.close().await;
    assert_eq!(settled_sessions(&url, &app, 0).await, 0, "close() ends every session");
    tokio::task::block_in_place(|| server.stop()).unwrap_or_else(|e| panic!("{e}"));
}
