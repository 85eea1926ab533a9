#![doc = include_str!("../README.md")]

mod adapter;
mod chain;
pub mod chaos;
mod counting_proxy;
mod cpu;
mod fake;
#[cfg(feature = "fuzz")]
pub mod fuzz;
mod logs;
mod mariadb_cluster;
mod metrics;
mod noop;
mod operation;
mod pg_cluster;
mod poll;
mod private;
mod proxy;
mod replication;
mod restart;
mod rng;
mod rotation;
mod secrets;
mod server;
pub mod servers;
#[cfg(feature = "suite")]
pub mod suite;
#[cfg(feature = "victoria")]
mod victoria;

pub use adapter::FakeAdapter;
pub use chain::{assert_each_cause_once, error_chain, render_chain};
pub use counting_proxy::{CountingProxy, WireProtocol};
pub use cpu::process_cpu_time;
pub use fake::{FakeConn, FakeError, FakeHook, FakeManager, FakeStats};
pub use logs::LogBuffer;
pub use mariadb_cluster::{APP_USER as MARIADB_APP_USER, PROMOTE_SQL as MARIADB_PROMOTE_SQL, PrivateMariaDbCluster};
pub use metrics::{Captured, CapturedMetric, Kind, MetricsCapture, Point};
pub use noop::NoopManager;
pub use operation::check_operation_names;
pub use pg_cluster::PrivatePgCluster;
pub use poll::poll_until;
pub use private::{
    PrivateArcadeDb, PrivateMariaDb, PrivatePostgres, PrivateServerError, START_TIMEOUT, STOP_TIMEOUT, free_port,
};
pub use proxy::ChaosProxy;
pub use replication::FakeReplication;
pub use restart::{CallError, OUTAGE, RECOVERY, RESTART_TASKS, RestartReport, Restartable, restart_under_load};
pub use rng::{Fate, TaskRng, TenantTally, run_with_random_fate};
pub use rotation::{
    Order, PasswordFile, RETIRE_DRILL_FOR, ROTATION_EVERY, ROTATION_FOR, ROTATION_TASKS, RetirementWatch,
    RotationReport, SAMPLE_EVERY, Spread, rotate_under_load,
};
pub use secrets::SecretScan;
pub use server::{require_server, require_server_blocking};
#[cfg(feature = "victoria")]
pub use victoria::{Sample, Victoria, unique_name};
