#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod connect;
mod error;
mod executor;
mod helpers;
mod manager;

pub use config::PgConfig;
pub use error::sqlstate;
pub use executor::PgTransaction;
pub use helpers::BoxFuture;
pub use manager::PgManager;

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
}

// What a service shares between tasks must be Send + Sync; checked at compile time.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PgPool>();
    assert_send_sync::<PgConfig>();
    assert_send_sync::<PgOperationError>();
    assert_send_sync::<PgStartError>();
};
