#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod pools;
mod routes;

pub use pools::{PoolStats, Pools, StatsReport};
pub use routes::router;
