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
pub use ops::{Neo4jScoped, TxFuture};

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
    adapter: {
        const SYSTEM: &'static str = "neo4j";
        const ENV_PREFIX: &'static str = "NEO4J";
        const URL_SCHEMES: &'static [&'static str] = &["bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"];

        fn is_foreign_env(suffix: &str) -> bool {
            // The official Docker image reads NEO4J_AUTH, NEO4J_PLUGINS, NEO4J_ACCEPT_LICENSE_AGREEMENT and the
            // server's settings as NEO4J_server_memory_heap_max__size (lower case after the prefix).
            matches!(suffix, "AUTH" | "PLUGINS" | "ACCEPT_LICENSE_AGREEMENT" | "EDITION" | "HOME")
                || suffix.starts_with(|c: char| c.is_ascii_lowercase())
        }
    },
}

// Beyond what the macro checks: the connection a checkout lends.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Neo4jConnection>();
};
