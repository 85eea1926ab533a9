//! A connection killed while the server is streaming a large result to it (the client holds part of a
//! packet when the socket closes: mysql_async reports "bytes remaining on stream") is a lost connection, like
//! every other way of losing one: `error.type` is `connection_lost`, and the read helpers retry it as
//! docs/mysql.md says.

mod common;

use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, PoolConfig, RetryPolicy};

/// Enough rows that the result is still streaming when the kill lands.
const ROWS: u64 = 1_000_000;

async fn pool_for(user: &str, url: &str, retry: RetryPolicy) -> MySqlPool {
    let config = PoolConfig { max_size: 1, name: Some(user.to_owned()), ..PoolConfig::default() };
    MySqlConfig { pool: config, retry, ..MySqlConfig::from_url(url) }.connect().await.unwrap()
}

/// Kills the first connection of `user` seen running `SELECT seq`, once; returns whether it did.
fn kill_mid_result(user: String) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        let mut admin = common::admin().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            let running: Option<u64> = admin
                .exec_first(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'SELECT seq%'",
                    (&user,),
                )
                .await
                .unwrap();
            if let Some(id) = running {
                // Let the result start flowing, so the cut lands inside a packet stream.
                tokio::time::sleep(Duration::from_millis(30)).await;
                admin.query_drop(format!("KILL CONNECTION {id}")).await.unwrap();
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_result_is_a_lost_connection() {
    let user = common::Dedicated::new("aq_my_cut").await;
    let pool = pool_for(&user.name, &user.url, RetryPolicy::never()).await;
    let killer = kill_mid_result(user.name.clone());
    let sql = format!("SELECT seq FROM seq_1_to_{ROWS}");
    let err = pool.fetch_all::<u64, _>(&sql, ()).await.expect_err("the connection was killed mid-result");
    assert!(killer.await.unwrap(), "the killer saw the query");
    let backend = err.backend_error().expect("a driver error, not a pool error");
    assert_eq!(aquifer_mysql::error_type(backend), "connection_lost", "{backend:?}");
    pool.close().await;
    user.drop_user().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_mid_result_is_retried_by_the_helpers() {
    let user = common::Dedicated::new("aq_my_cut_retry").await;
    let pool = pool_for(&user.name, &user.url, RetryPolicy::default()).await;
    let killer = kill_mid_result(user.name.clone());
    let rows = pool.fetch_all::<u64, _>(&format!("SELECT seq FROM seq_1_to_{ROWS}"), ()).await.unwrap();
    assert!(killer.await.unwrap(), "the killer saw the query");
    assert_eq!(rows.len() as u64, ROWS);
    assert!(pool.stats().closed_broken >= 1, "the killed connection was discarded: {:?}", pool.stats());
    pool.close().await;
    user.drop_user().await;
}
