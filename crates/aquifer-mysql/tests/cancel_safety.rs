//! mysql_async's `Conn` is not cancel-safe: a query future dropped mid-flight leaves its reply on the wire, and
//! the next query on that connection reads it (a wrong result or PacketsOutOfSync). The pool must never hand
//! such a connection out again, and must never hand out a connection inside a transaction.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, PoolConfig};
use tokio::time::timeout;

async fn pool(url: &str, max_size: usize) -> MySqlPool {
    common::server().await;
    let pool = PoolConfig { max_size, ..PoolConfig::default() };
    MySqlConfig { pool, ..MySqlConfig::from_url(url) }.connect().await.unwrap()
}

/// The admin connection, a fresh table (dropped by the test) and a pool of one connection.
async fn table_and_pool_of_one(prefix: &str) -> (aquifer_mysql::mysql_async::Conn, String, MySqlPool) {
    let mut admin = common::admin().await;
    let t = table(&mut admin, prefix).await;
    (admin, t, pool(&common::url(), 1).await)
}

/// Checks that `conn`'s session is in no transaction and sees no row in `t`: what it had written uncommitted
/// was rolled back (the same session would see its own uncommitted row).
async fn assert_no_transaction_and_no_row(conn: &mut aquifer_mysql::mysql_async::Conn, t: &str, why: &str) {
    let (in_tx, rows): (i64, i64) =
        conn.query_first(format!("SELECT @@in_transaction, COUNT(*) FROM {t}")).await.unwrap().unwrap();
    assert_eq!((in_tx, rows), (0, 0), "{why}");
}

async fn table(admin: &mut aquifer_mysql::mysql_async::Conn, prefix: &str) -> String {
    let name = common::unique(prefix);
    admin
        .query_drop(format!("CREATE TABLE {name} (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=InnoDB"))
        .await
        .unwrap();
    name
}

/// A query whose answer proves the reply belongs to it.
async fn echo_is_correct(pool: &MySqlPool, token: u64) -> u32 {
    let mut conn = pool.get().await.unwrap();
    let got: Option<u64> = conn.exec_first("SELECT ? + 0", (token,)).await.unwrap();
    assert_eq!(got, Some(token), "connection {} answered another query's reply", conn.id());
    conn.id()
}

#[tokio::test]
async fn a_dropped_select_sleep_never_poisons_the_next_user() {
    let mut admin = common::admin().await;
    let pool = pool(&common::url(), 1).await;
    for i in 0..40u64 {
        let id = {
            let mut conn = pool.get().await.unwrap();
            let id = conn.id();
            // From "dropped before anything was sent" to "dropped while the server sleeps".
            let limit = Duration::from_micros(i * 250);
            let dropped = timeout(limit, conn.query_drop("SELECT SLEEP(1)")).await;
            assert!(dropped.is_err(), "SLEEP(1) cannot finish within {limit:?}");
            id
        };
        let next = echo_is_correct(&pool, 1_000 + i).await;
        assert_ne!(next, id, "the connection with a dropped query was handed out again");
        // The abandoned server thread would sleep on for up to a second: end it (it is ours).
        common::kill(&mut admin, id).await;
    }
    assert!(pool.stats().closed_broken >= 40, "{:?}", pool.stats());
}

#[tokio::test]
async fn dropped_helper_futures_never_poison_concurrent_users() {
    let mut admin = common::admin().await;
    let user = common::unique("aq_my_cx");
    let url = common::dedicated_user(&mut admin, &user).await;
    let pool = pool(&url, 4).await;
    let stop = Arc::new(AtomicUsize::new(0));
    // Every SLEEP(1) of this user is abandoned by design: end them so they do not pile up on the shared server.
    let janitor = {
        let (user, stop) = (user.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut admin = common::admin().await;
            while stop.load(Ordering::Relaxed) == 0 {
                for id in common::connections_running(&mut admin, &user, "SELECT SLEEP").await {
                    let _ = admin.query_drop(format!("KILL CONNECTION {id}")).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let dropped = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (pool, dropped) = (pool.clone(), Arc::clone(&dropped));
        tasks.push(tokio::spawn(async move {
            for i in 0..15u64 {
                let limit = Duration::from_micros(200 + (t * 15 + i) * 37 % 3000);
                let sleep = pool.fetch_optional::<i64, _>("SELECT SLEEP(1)", ());
                if timeout(limit, sleep).await.is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                let token = t * 1_000 + i;
                let got: Option<u64> = pool.fetch_optional("SELECT ? + 0", (token,)).await.unwrap();
                assert_eq!(got, Some(token));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(1, Ordering::Relaxed);
    janitor.await.unwrap();
    assert!(dropped.load(Ordering::Relaxed) > 60, "most SLEEPs were dropped mid-flight");
    assert!(pool.state().size <= 4);
    drop(pool);
    common::drop_user(&mut admin, &user).await;
}

#[tokio::test]
async fn a_result_set_dropped_mid_stream_is_drained_before_the_next_command() {
    common::server().await;
    let pool = pool(&common::url(), 1).await;
    let id = {
        let mut conn = pool.get().await.unwrap();
        let mut rows = conn.query_iter("SELECT seq FROM seq_1_to_100000").await.unwrap();
        let first: Option<u64> = rows.next().await.unwrap().map(aquifer_mysql::mysql_async::from_row);
        assert_eq!(first, Some(1));
        conn.id()
        // `rows` and the guard are dropped with 99,999 rows unread.
    };
    assert_eq!(echo_is_correct(&pool, 77).await, id, "an unread result set does not cost the connection");
}

#[tokio::test]
async fn a_future_dropped_while_reading_rows_never_poisons_the_next_user() {
    let mut admin = common::admin().await;
    let pool = pool(&common::url(), 1).await;
    for i in 0..20u64 {
        let id = {
            let mut conn = pool.get().await.unwrap();
            let id = conn.id();
            // From "dropped while sending" through "dropped between rows".
            let limit = Duration::from_micros(200 + i * 150);
            let _ = timeout(limit, conn.query::<u64, _>("SELECT seq FROM seq_1_to_20000")).await;
            id
        };
        let next = echo_is_correct(&pool, i).await;
        if next != id {
            common::kill(&mut admin, id).await;
        }
    }
}

#[tokio::test]
async fn a_guard_returned_inside_a_transaction_is_rolled_back_before_reuse() {
    let (mut admin, t, pool) = table_and_pool_of_one("aq_my_tx").await;
    let id = {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("START TRANSACTION").await.unwrap();
        conn.query_drop(format!("INSERT INTO {t} VALUES (1, 'uncommitted')")).await.unwrap();
        conn.id()
    };
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), id, "rolled back and reused, not discarded");
    assert_no_transaction_and_no_row(&mut conn, &t, "the same session would see its own uncommitted row").await;
    assert_eq!(pool.stats().resets, 1);
    drop(conn);
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_dropped_mysql_async_transaction_is_rolled_back_before_reuse() {
    let (mut admin, t, pool) = table_and_pool_of_one("aq_my_tx").await;
    {
        let mut conn = pool.get().await.unwrap();
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        tx.query_drop(format!("INSERT INTO {t} VALUES (1, 'uncommitted')")).await.unwrap();
        // Neither commit nor rollback: the Transaction and the guard are dropped.
    }
    let mut conn = pool.get().await.unwrap();
    assert_no_transaction_and_no_row(&mut conn, &t, "no transaction left open, its row rolled back").await;
    // And the next transaction on it works (mysql_async's own bookkeeping is clean too).
    let tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.commit().await.unwrap();
    drop(conn);
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_connection_returned_after_an_error_inside_a_transaction_is_rolled_back() {
    let (mut admin, t, pool) = table_and_pool_of_one("aq_my_tx").await;
    {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("BEGIN").await.unwrap();
        conn.query_drop(format!("INSERT INTO {t} VALUES (1, 'first')")).await.unwrap();
        // A failing statement leaves the transaction open; the last reply is an error packet.
        conn.query_drop(format!("INSERT INTO {t} VALUES (1, 'duplicate')")).await.unwrap_err();
    }
    let mut conn = pool.get().await.unwrap();
    assert_no_transaction_and_no_row(&mut conn, &t, "no transaction left open, its row rolled back").await;
    drop(conn);
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_transaction_helper_dropped_mid_statement_leaves_nothing_behind() {
    let (mut admin, t, pool) = table_and_pool_of_one("aq_my_tx").await;
    let server_id = Arc::new(AtomicU32::new(0));
    let work = {
        let (t, server_id) = (t.clone(), Arc::clone(&server_id));
        let pool = pool.clone();
        async move {
            let (t, server_id) = (&t, &server_id);
            pool.transaction(|tx| {
                Box::pin(async move {
                    let id: Option<u32> = tx.query_first("SELECT CONNECTION_ID()").await?;
                    server_id.store(id.unwrap(), Ordering::SeqCst);
                    tx.query_drop(format!("INSERT INTO {t} VALUES (1, 'uncommitted')")).await?;
                    tx.query_drop("SELECT SLEEP(1)").await?;
                    Ok(())
                })
            })
            .await
        }
    };
    assert!(timeout(Duration::from_millis(300), work).await.is_err());
    let old = server_id.load(Ordering::SeqCst);
    assert_ne!(old, 0);
    let mut conn = pool.get().await.unwrap();
    assert_ne!(conn.id(), old, "the connection with a statement in flight was closed");
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_tx, Some(0));
    drop(conn);
    // The abandoned server thread still sleeps; once it ends, its transaction is rolled back.
    common::kill(&mut admin, old).await;
    let gone = common::eventually_every(Duration::from_secs(5), common::INNODB_TRX_POLL, async || {
        let open: Option<i64> = admin
            .exec_first("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?", (old,))
            .await
            .unwrap();
        open == Some(0)
    })
    .await;
    assert!(gone, "the abandoned transaction was rolled back");
    let rows: Option<i64> = admin.query_first(format!("SELECT COUNT(*) FROM {t}")).await.unwrap();
    assert_eq!(rows, Some(0), "nothing was committed");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn a_connection_returned_with_autocommit_off_is_put_back_in_autocommit_mode() {
    let (mut admin, t, pool) = table_and_pool_of_one("aq_my_ac").await;
    let id = {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("SET autocommit = 0").await.unwrap();
        conn.id()
    };
    // The next user writes in what it takes for autocommit mode; the write must be committed.
    let done = pool.execute(&format!("INSERT INTO {t} VALUES (1, 'committed')"), ()).await.unwrap();
    assert_eq!(done.rows_affected, 1);
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), id, "restored, not discarded");
    let autocommit: Option<i64> = conn.query_first("SELECT @@autocommit").await.unwrap();
    assert_eq!(autocommit, Some(1));
    drop(conn);
    let rows: Option<i64> = admin.query_first(format!("SELECT COUNT(*) FROM {t}")).await.unwrap();
    assert_eq!(rows, Some(1), "visible to another session: committed");
    admin.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}
