#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod connect;
mod error;
mod executor;
mod helpers;
mod manager;
mod session;

pub use cluster::{
    PgClusterError, PgClusterPool, PgClusterPooled, PgClusterStartError, PgReplication, PgWriteScope,
    READ_ONLY_SQL_TRANSACTION,
};
pub use config::PgConfig;
pub use error::sqlstate;
pub use executor::PgTransaction;
pub use helpers::BoxFuture;
pub use manager::PgManager;
pub use session::{PgScoped, PgSession};

/// The sqlx this crate is built on, so a service uses the same version.
pub use sqlx;

/// The adapter contract [`PgConfig`] implements, for code generic over backends.
pub use aquifer_core::Adapter;

aquifer_core::adapter_reexports! {
    config: PgConfig,
    manager: PgManager,
    pool: PgPool,
    pooled: PgPooled,
    pool_error: PgPoolError,
    start_error: PgStartError,
    error: PgOperationError,
    adapter: {
        const SYSTEM: &'static str = "postgresql";
        const ENV_PREFIX: &'static str = "POSTGRES";
        const URL_SCHEMES: &'static [&'static str] = &["postgres", "postgresql"];

        fn for_inspection(&mut self, application_name: &str) {
            self.application_name.get_or_insert_with(|| application_name.to_owned());
        }

        fn is_foreign_env(suffix: &str) -> bool {
            // The official Docker image's variables, often in the same environment as the service's.
            matches!(suffix, "PASSWORD" | "USER" | "DB" | "INITDB_ARGS" | "INITDB_WALDIR" | "HOST_AUTH_METHOD")
        }
    },
}
