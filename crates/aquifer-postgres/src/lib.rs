#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod connect;
mod error;
mod helpers;
mod manager;

pub use config::PgConfig;
pub use connect::{connect, connect_env, connect_env_lazy, connect_lazy, warm};
pub use error::PgBuildError;
pub use helpers::{BoxFuture, execute, fetch_all, fetch_one, fetch_optional, transaction};
pub use manager::PgManager;

pub use aquifer_core::{DatabaseUrl, HealthReport, HealthStatus, PoolConfig, RetryPolicy, State, Stats};
/// The sqlx this crate is built on, so a service uses the same version.
pub use sqlx;

/// A pool of sqlx [`PgConnection`](sqlx::postgres::PgConnection)s.
pub type PgPool = aquifer_core::Pool<PgManager>;
/// A connection checked out of a [`PgPool`]; dereferences to [`sqlx::postgres::PgConnection`].
pub type PgPooled = aquifer_core::Pooled<PgManager>;
/// Why a connection could not be acquired, or why a helper failed ([`PgPoolError::Backend`] holds sqlx's error).
pub type PgPoolError = aquifer_core::PoolError<sqlx::Error>;
