//! A statement larger than the server's max_allowed_packet: a clear error, and the pool stays healthy.

mod common;

use aquifer_core::HealthStatus;
use aquifer_mysql::mysql_async::Error;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool, PacketTooLarge, PoolConfig};

async fn pool() -> MySqlPool {
    common::server().await;
    let config = PoolConfig { max_size: 2, ..PoolConfig::default() };
    MySqlConfig { pool: config, ..MySqlConfig::from_url(common::url()) }.connect().await.unwrap()
}

#[tokio::test]
async fn a_helper_refuses_a_statement_over_max_allowed_packet_before_sending_it() {
    let pool = pool().await;
    let max = pool.manager().max_allowed_packet().expect("read on the first connect");
    let blob = vec![b'x'; max as usize + 1];
    let err = pool.fetch_optional::<u64, _>("SELECT LENGTH(?)", (blob,)).await.unwrap_err();
    let Some(Error::Other(inner)) = err.backend_error() else { panic!("{err:?}") };
    let too_large = inner.downcast_ref::<PacketTooLarge>().expect("a PacketTooLarge");
    assert_eq!(too_large.max, max);
    let text = err.to_string();
    assert!(text.contains("max_allowed_packet") && text.contains(&max.to_string()), "{text}");
    assert_eq!(pool.stats().closed, 0, "nothing was sent, no connection was lost");
    let len: Option<u64> = pool.fetch_optional("SELECT LENGTH(?)", (vec![b'y'; 1 << 20],)).await.unwrap();
    assert_eq!(len, Some(1 << 20), "a large statement below the limit still works");
    assert_eq!(pool.health().await.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn an_oversized_query_on_a_pooled_connection_is_a_clear_error_and_the_pool_replaces_the_connection() {
    let pool = pool().await;
    let max = pool.manager().max_allowed_packet().unwrap();
    let sql = format!("SELECT LENGTH('{}')", "x".repeat(max as usize + 1));
    let err = {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop(sql).await.unwrap_err()
    };
    assert!(err.to_string().contains("max_allowed_packet"), "mysql_async says: {err}");
    assert_eq!(aquifer_mysql::error_type(&err), "packet_too_large");
    assert_eq!(pool.stats().closed_broken, 1, "the driver closed that connection; the pool dropped it");
    let one: Option<i64> = pool.fetch_optional("SELECT 1", ()).await.unwrap();
    assert_eq!(one, Some(1));
    assert_eq!(pool.health().await.status, HealthStatus::Healthy);
}
