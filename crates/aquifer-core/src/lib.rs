#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod acquire;
mod builder;
mod config;
mod env;
mod errors;
mod health;
mod inner;
mod internals;
mod leak;
mod manager;
pub mod metrics;
mod operation;
mod pool;
mod pooled;
mod reexports;
mod retry;
mod start;
mod stats;
mod waiters;

pub use async_trait::async_trait;
pub use builder::PoolBuilder;
pub use config::{DatabaseUrl, PoolConfig, redact_url};
pub use env::EnvVars;
pub use errors::{BuildError, ConfigError, ConnectError, PoolError};
pub use health::{HealthCheck, HealthRegistry, HealthReport, HealthStatus, RegistryReport};
pub use leak::LeakReport;
pub use manager::{Descriptor, Manager};
pub use operation::{Attempt, Failure, OperationError, Operations, run_operation};
pub use pool::Pool;
pub use pooled::{ConnectionInfo, Pooled};
pub use retry::RetryPolicy;
pub use start::{StartError, warm};
pub use stats::{State, Stats};
