#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod connect;
mod error;
pub mod helpers;
mod hosts;
mod manager;
pub mod replication;
mod session;

pub use cluster::{
    MySqlClusterError, MySqlClusterExt, MySqlClusterPool, MySqlClusterPooled, MySqlClusterStartError, MySqlReplication,
    MySqlWriteScope,
};
pub use config::{DbSystem, MySqlConfig, SslMode, Transport};
pub use error::{RowNotFound, error_type, is_row_not_found};
pub use helpers::{Executed, PacketTooLarge, Tx, TxFuture};
pub use manager::MySqlManager;
pub use session::MySqlSession;

/// The driver, re-exported so a service can use its API (`Queryable`, `params!`, `Row`...) in the version
/// this crate was built with.
pub use mysql_async;

/// The adapter contract [`MySqlConfig`] implements, for code generic over backends.
pub use aquifer_core::Adapter;

/// The cluster settings and routing targets ([`MySqlConfig::cluster`], [`MySqlClusterPool::get_for`]).
pub use aquifer_core::{ClusterConfig, LoadBalance, Role, Target};

aquifer_core::adapter_reexports! {
    config: MySqlConfig,
    manager: MySqlManager,
    pool: MySqlPool,
    pooled: MySqlPooled,
    pool_error: MySqlPoolError,
    start_error: MySqlStartError,
    error: MySqlOperationError,
    adapter: {
        const SYSTEM: &'static str = "mysql";
        const ENV_PREFIX: &'static str = "MYSQL";
        const URL_SCHEMES: &'static [&'static str] = &["mysql", "mariadb"];

        fn is_foreign_env(suffix: &str) -> bool {
            // The official Docker images' variables (MySQL's and MariaDB's), often beside the service's own.
            matches!(
                suffix,
                "ROOT_PASSWORD" | "ROOT_HOST" | "DATABASE" | "USER" | "PASSWORD" | "ALLOW_EMPTY_PASSWORD" | "RANDOM_ROOT_PASSWORD"
            )
        }
    },
}
