#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod error;
pub mod helpers;
mod manager;

pub use config::{DbSystem, MySqlConfig, SslMode, Transport};
pub use error::{SetupError, error_type};
pub use helpers::{
    Executed, PacketTooLarge, Tx, TxFuture, execute, fetch_all, fetch_one, transaction, transaction_with,
};
pub use manager::MySqlManager;

/// The driver, re-exported so a service can use its API (`Queryable`, `params!`, `Row`...) in the version
/// this crate was built with.
pub use mysql_async;

pub use aquifer_core::{PoolConfig, RetryPolicy};

/// A pool of MySQL/MariaDB connections.
pub type MySqlPool = aquifer_core::Pool<MySqlManager>;
/// A connection checked out of a [`MySqlPool`]; dereferences to [`mysql_async::Conn`].
pub type MySqlPooled = aquifer_core::Pooled<MySqlManager>;
/// The error of [`MySqlPool::get`](aquifer_core::Pool::get) and of the helpers.
pub type MySqlPoolError = aquifer_core::PoolError<mysql_async::Error>;

/// Builds a pool for `url` with default settings and opens its first connection, so a wrong password or an
/// unreachable server fails here, at start-up.
///
/// Cancel safety: dropping the future drops the pool; a connect in flight finishes in the background and is
/// closed.
pub async fn connect(url: &str) -> Result<MySqlPool, SetupError> {
    connect_with(MySqlManager::from_url(url)?, PoolConfig::default()).await
}

/// Builds a pool for `url` with default settings without connecting: the first `get()` connects. Must be
/// called within a Tokio runtime.
pub fn connect_lazy(url: &str) -> Result<MySqlPool, SetupError> {
    connect_lazy_with(MySqlManager::from_url(url)?, PoolConfig::default())
}

/// Builds a pool over `manager` with `config` (its `url` is ignored: the manager has its own) and opens
/// `min_idle` connections (at least one), failing at start-up when the server refuses or cannot be reached.
///
/// Cancel safety: as for [`connect`].
pub async fn connect_with(manager: MySqlManager, config: PoolConfig) -> Result<MySqlPool, SetupError> {
    let pool = connect_lazy_with(manager, config)?;
    pool.warm_up().await?;
    Ok(pool)
}

/// Builds a pool over `manager` with `config` without connecting. Must be called within a Tokio runtime.
pub fn connect_lazy_with(manager: MySqlManager, config: PoolConfig) -> Result<MySqlPool, SetupError> {
    Ok(MySqlPool::builder(manager).config(config).build()?)
}

/// Builds a pool from the environment and opens its first connection(s): the URL from `MYSQL_URL`, the pool
/// settings from `MYSQL_POOL_*` and `MYSQL_NAME` ([`PoolConfig::from_env`]), the MySQL settings from
/// `MYSQL_TRANSPORT`, `MYSQL_TIME_ZONE`... ([`MySqlConfig::from_env`]).
///
/// Cancel safety: as for [`connect`].
pub async fn connect_env() -> Result<MySqlPool, SetupError> {
    let pool = connect_env_lazy()?;
    pool.warm_up().await?;
    Ok(pool)
}

/// [`connect_env`] without connecting. Must be called within a Tokio runtime.
pub fn connect_env_lazy() -> Result<MySqlPool, SetupError> {
    let config = PoolConfig::from_env("MYSQL")?;
    connect_lazy_with(MySqlManager::from_env("MYSQL")?, config)
}
