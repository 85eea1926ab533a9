#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use aquifer_core::*;

/// PostgreSQL on sqlx (feature `postgres`).
#[cfg(feature = "postgres")]
pub use aquifer_postgres as postgres;

/// MySQL and MariaDB on mysql_async (feature `mysql`).
#[cfg(feature = "mysql")]
pub use aquifer_mysql as mysql;

/// Neo4j over Bolt on neo4rs (feature `neo4j`).
#[cfg(feature = "neo4j")]
pub use aquifer_neo4j as neo4j;

/// SQLite on rusqlite, WAL-tuned, with an r2d2 pool for sync code (feature `sqlite`, on by default).
#[cfg(feature = "sqlite")]
pub use aquifer_sqlite as sqlite;

/// `BatchLoader` and the bulk helpers of every backend feature that is on (feature `batch`).
#[cfg(feature = "batch")]
pub use aquifer_batch as batch;
