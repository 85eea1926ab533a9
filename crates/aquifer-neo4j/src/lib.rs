#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod connect;
mod error;
mod manager;
mod ops;

pub use config::{Neo4jConfig, Password};
pub use error::Neo4jError;
pub use manager::{Neo4jConnection, Neo4jManager};
pub use neo4rs::{self, BoltType, Graph, Query, Row, Txn, query};
pub use ops::TxFuture;

/// The adapter contract [`Neo4jConfig`] implements, for code generic over backends.
pub use aquifer_core::Adapter;

aquifer_core::adapter_reexports! {
    config: Neo4jConfig,
    manager: Neo4jManager,
    pool: Neo4jPool,
    pooled: Neo4jPooled,
    pool_error: Neo4jPoolError,
    start_error: Neo4jStartError,
    error: Neo4jOperationError,
}

// What a service shares between tasks must be Send + Sync; checked at compile time.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Neo4jPool>();
    assert_send_sync::<Neo4jManager>();
    assert_send_sync::<Neo4jConnection>();
    assert_send_sync::<Neo4jConfig>();
    assert_send_sync::<Neo4jError>();
    assert_send_sync::<Neo4jStartError>();
    assert_send_sync::<Neo4jOperationError>();
};
