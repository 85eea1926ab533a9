#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod connect;
mod error;
pub mod helpers;
mod manager;

pub use config::{DbSystem, MySqlConfig, SslMode, Transport};
pub use error::{RowNotFound, error_type, is_row_not_found};
pub use helpers::{Executed, PacketTooLarge, Tx, TxFuture};
pub use manager::MySqlManager;

/// The driver, re-exported so a service can use its API (`Queryable`, `params!`, `Row`...) in the version
/// this crate was built with.
pub use mysql_async;

/// The adapter contract [`MySqlConfig`] implements, for code generic over backends.
pub use aquifer_core::Adapter;

aquifer_core::adapter_reexports! {
    config: MySqlConfig,
    manager: MySqlManager,
    pool: MySqlPool,
    pooled: MySqlPooled,
    pool_error: MySqlPoolError,
    start_error: MySqlStartError,
    error: MySqlOperationError,
}

// What a service shares between tasks must be Send + Sync; checked at compile time.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MySqlPool>();
    assert_send_sync::<MySqlConfig>();
    assert_send_sync::<MySqlOperationError>();
    assert_send_sync::<MySqlStartError>();
};
