#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod error;
mod manager;
mod ops;

use aquifer_core::{Pool, PoolError, Pooled};

pub use aquifer_core::{ConfigError, HealthReport, HealthStatus, PoolConfig, RetryPolicy};
pub use config::{Neo4jConfig, Password};
pub use error::{Neo4jError, StartError};
pub use manager::{Neo4jConnection, Neo4jManager};
pub use neo4rs::{self, BoltType, Graph, Query, Row, Txn, query};
pub use ops::{Neo4jPoolExt, TxFuture};

/// A pool of Bolt connections.
pub type Neo4jPool = Pool<Neo4jManager>;
/// A Bolt connection checked out of a [`Neo4jPool`]; it dereferences to [`Neo4jConnection`] and so to the
/// neo4rs [`Graph`].
pub type Neo4jPooled = Pooled<Neo4jManager>;
/// Why a connection could not be had, or a helper failed.
pub type Neo4jPoolError = PoolError<Neo4jError>;

/// Builds a pool from both configurations and opens its first connection (`min_idle`, at least one) before
/// returning, so an unreachable server, a wrong password or a missing database fails here, at start-up.
///
/// Cancel safety: connects already started finish in the background into the pool, which is dropped (and so
/// closed) with the future.
pub async fn connect(config: Neo4jConfig, pool: PoolConfig) -> Result<Neo4jPool, StartError> {
    let pool = Neo4jPool::new(Neo4jManager::new(config)?, pool)?;
    pool.warm_up().await?;
    Ok(pool)
}

/// [`connect`] with both configurations read from `NEO4J_*` variables: [`Neo4jConfig::from_env`] and
/// [`PoolConfig::from_env`] (`NEO4J_POOL_MAX_SIZE`, `NEO4J_POOL_ACQUIRE_TIMEOUT`...).
///
/// Cancel safety: as for [`connect`].
pub async fn connect_from_env() -> Result<Neo4jPool, StartError> {
    connect(Neo4jConfig::from_env("NEO4J")?, PoolConfig::from_env("NEO4J")?).await
}

// What a service shares between tasks must be Send + Sync; checked at compile time.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Neo4jPool>();
    assert_send_sync::<Neo4jManager>();
    assert_send_sync::<Neo4jConnection>();
    assert_send_sync::<Neo4jConfig>();
    assert_send_sync::<Neo4jError>();
    assert_send_sync::<StartError>();
};
