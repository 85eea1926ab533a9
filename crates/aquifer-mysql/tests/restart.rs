//! The server stopped and started again while 32 tasks run queries through a pool of 8: the pool fails with
//! typed errors while the server is down, recovers on its own once it is back, leaks no slot and hands out
//! no dead connection after.
//!
//! The test runs a MariaDB of its own (aquifer_testing::PrivateMariaDb: mariadb-install-db into a temporary
//! directory, a free loopback port), so stopping it never disturbs the shared server the other tests use. The
//! load, the two outages (a clean shutdown, then a crash, 2.5 s each, each recovery allowed 30 s, then 3 s of
//! load) and their checks are aquifer_testing::restart_under_load, which the PostgreSQL test runs too; this
//! file checks what only MariaDB shows: its sessions against the pool's count.

use std::time::{Duration, Instant};

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, Opts};
use aquifer_mysql::{MySqlConfig, MySqlOperationError, MySqlPoolError, error_type};
use aquifer_testing::{CallError, PrivateMariaDb, restart_under_load};

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The failures an outage may cause, each named by its type; anything else is untyped.
fn classify(e: MySqlOperationError) -> CallError {
    match &e {
        MySqlOperationError::Acquire(MySqlPoolError::Unavailable { .. }) => CallError::Outage("unavailable"),
        MySqlOperationError::Acquire(MySqlPoolError::Timeout { .. }) => CallError::Outage("timeout"),
        MySqlOperationError::Backend(db) => match error_type(db).as_ref() {
            "connection_lost" => CallError::Outage("connection_lost"),
            "connection_refused" => CallError::Outage("connection_refused"),
            // ER_SERVER_SHUTDOWN: the server says it is shutting down.
            "1053" => CallError::Outage("shutdown"),
            _ => CallError::Untyped(format!("{e:?}")),
        },
        other => CallError::Untyped(format!("{other:?}")),
    }
}

/// Client sessions on the private server (it is this test's alone), seen from a connection of its own.
async fn sessions(url: &str) -> i64 {
    let mut admin = Conn::new(Opts::from_url(url).expect("url")).await.expect("admin");
    let n: Option<i64> = admin
        .query_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = 'root'",
        )
        .await
        .expect("count sessions");
    admin.disconnect().await.ok();
    n.unwrap_or(0)
}

/// Waits (at most 5 s: the server ends a session a moment after its client closed the socket) until the
/// private server has `expected` client sessions; returns the last count.
async fn settled_sessions(url: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = sessions(url).await;
        if n == expected || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_from_server_restarts_under_load() {
    let mut server = tokio::task::block_in_place(PrivateMariaDb::start).unwrap_or_else(|e| panic!("{e}"));
    let url = server.url();
    let mut config = MySqlConfig::from_url(&url);
    config.pool.name = Some("aq_mysql_restart".into());
    config.pool.max_size = 8;
    config.pool.acquire_timeout = ACQUIRE_TIMEOUT;
    config.pool.connect_timeout = Duration::from_secs(2);
    let pool = config.connect().await.expect("the private server answers");
    pool.warm_up().await.unwrap();

    let calls = pool.clone();
    let report = restart_under_load(&mut server, ACQUIRE_TIMEOUT, move |w| {
        let pool = calls.clone();
        async move { pool.fetch_one::<i32, _>("SELECT ?", (w,)).await.map_err(classify) }
    })
    .await;

    // No leaked slot, and the pool's count agrees with the server's.
    let state = pool.state();
    assert_eq!((state.in_use, state.waiting, state.connecting), (0, 0, 0), "{state}");
    assert!(state.size <= 8, "{state}");
    assert_eq!(
        settled_sessions(&url, state.idle as i64).await,
        state.idle as i64,
        "server sessions vs the pool's idle connections ({state})"
    );
    let stats = pool.stats();
    assert!(stats.closed_broken + stats.closed_validation_failed > 0, "the dead connections were discarded: {stats:?}");
    eprintln!("calls by outcome {:?}; {stats:?}", report.kinds);

    pool.close().await;
    assert_eq!(settled_sessions(&url, 0).await, 0, "close() ends every session");
    tokio::task::block_in_place(|| server.stop()).unwrap_or_else(|e| panic!("{e}"));
}
