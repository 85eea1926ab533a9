#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// The public surface, one concept each.
mod builder;
mod clock;
mod config;
mod env;
mod errors;
mod health;
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

// The engine, for maintainers: the locked state machine and the async code around it, one concern a file.
mod acquire;
mod checkin;
mod close;
mod connect;
mod health_check;
mod held;
mod hooks;
mod housekeeping;
mod internals;
mod shared;
mod sync;
mod waiters;

pub use async_trait::async_trait;
pub use builder::PoolBuilder;
pub use clock::Clock;
pub use config::{DatabaseUrl, MAX_POOL_SIZE, PoolConfig, Reuse, redact_url};
pub use env::EnvVars;
pub use errors::{BuildError, ConfigError, ConnectError, PoolError, source_not_in};
pub use health::{HealthCheck, HealthRegistry, HealthReport, HealthStatus, RegistryReport};
pub use leak::LeakReport;
pub use manager::{Descriptor, Manager};
pub use operation::{Attempt, Failure, OperationError, Operations, run_operation};
pub use pool::Pool;
pub use pooled::{ConnectionInfo, Pooled};
pub use retry::RetryPolicy;
pub use start::{StartError, warm};
pub use stats::{State, Stats};
