#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// The public surface, one concept each.
mod adapter;
mod builder;
mod clock;
mod cluster;
mod cluster_config;
mod cluster_errors;
mod config;
mod credentials;
mod env;
mod errors;
mod health;
mod keyed;
mod leak;
mod manager;
pub mod metrics;
pub mod n_plus_one;
mod operation;
mod pool;
mod pooled;
mod reexports;
mod registry;
mod replication;
mod retry;
mod role;
mod secret;
mod session;
mod start;
mod stats;

// The engine, for maintainers: the locked state machine and the async code around it, one concern a file.
mod acquire;
mod checkin;
mod circuit;
mod close;
mod connect;
mod health_check;
mod held;
mod hooks;
mod housekeeping;
mod internals;
mod keepalive;
mod shared;
mod sync;
mod waiters;

pub use adapter::{Adapter, connect, connect_env, connect_env_lazy, connect_lazy};
pub use async_trait::async_trait;
pub use builder::PoolBuilder;
pub use clock::Clock;
pub use cluster::{ClusterBuilder, ClusterPool, ClusterPooled, HostInfo};
pub use cluster_config::ClusterConfig;
pub use cluster_errors::{ClusterError, ClusterStartError, RunError};
pub use config::{MAX_POOL_SIZE, PoolConfig, Reuse};
pub use credentials::{Credential, CredentialError, CredentialProvider, Credentials, ProviderError, Secret};
pub use env::EnvVars;
pub use errors::{BuildError, ConfigError, ConnectError, PoolError, source_not_in};
pub use health::{HealthCheck, HealthRegistry, HealthReport, HealthStatus, RegistryReport};
pub use keyed::{Capped, CappedConn, KeyedPoolError, KeyedPools, KeyedPoolsBuilder};
pub use leak::LeakReport;
pub use manager::{Descriptor, Manager};
pub use operation::{
    Attempt, CallSite, Failure, OperationError, Operations, run_operation, run_operation_at, run_operation_with,
};
pub use pool::Pool;
pub use pooled::{ConnectionInfo, Pooled};
pub use registry::{AnyConfig, AnyPool, AnyStartError, Driver, Drivers, NoDriver, Ping, PingError};
pub use replication::{ConnOf, ErrorOf, HostProbe, Replication, WriteScope};
pub use retry::RetryPolicy;
pub use role::{LoadBalance, Role, Target};
pub use secret::{DatabaseUrl, redact_url};
pub use session::{BoxError, HookFailure, HookFuture, SessionContext};
pub use start::{StartError, warm};
pub use stats::{State, Stats};
