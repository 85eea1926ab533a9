#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod n_plus_one;
mod pools;
mod routes;
mod shutdown;

pub use admin::{AdminToken, AdminTokenError, MIN_TOKEN_LEN, admin_router};
pub use n_plus_one::{NPlusOneLayer, NPlusOneService};
pub use pools::{PoolStats, Pools, StatsReport};
pub use routes::router;
pub use shutdown::{Signal, drain_on, shutdown_signal};
