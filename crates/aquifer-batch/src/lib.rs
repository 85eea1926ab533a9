#![doc = include_str!("../README.md")]

mod batch_loader;
mod context;
mod error;
mod loader;
mod lookup;
pub mod metrics;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite", feature = "neo4j"))]
mod bulk_error;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite", feature = "neo4j"))]
mod ident;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "neo4j")]
pub mod neo4j;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use batch_loader::{BatchLoader, BatchLoaderBuilder, DEFAULT_MAX_BATCH_SIZE};
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite", feature = "neo4j"))]
pub use bulk_error::BulkError;
pub use context::{ContextBatchLoader, ContextLoader, InContext};
pub use error::BatchError;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite", feature = "neo4j"))]
pub use ident::IdentError;
pub use loader::Loader;
pub use lookup::{FetchRows, OneToMany, OneToOne, PRELOAD_CHUNK};
pub use metrics::BatchMetrics;
