#![doc = include_str!("../README.md")]

mod batch_loader;
mod error;
mod loader;
pub mod metrics;

pub use batch_loader::{BatchLoader, BatchLoaderBuilder, DEFAULT_MAX_BATCH_SIZE};
pub use error::BatchError;
pub use loader::Loader;
pub use metrics::BatchMetrics;
