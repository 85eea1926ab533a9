//! Constructors: a started pool (fails at start-up when the server is unreachable or refuses the credentials)
//! or a lazy one (connects on first use), from a URI, a [`Neo4jConfig`] or the environment. Every one
//! returns a [`Neo4jStartError`].

use aquifer_core::{Pool, PoolBuilder};

use crate::{Neo4jConfig, Neo4jManager, Neo4jPool, Neo4jStartError};

/// The prefix of the environment variables [`connect_env`] and [`connect_env_lazy`] read.
pub const ENV_PREFIX: &str = "NEO4J";

impl Neo4jConfig {
    /// The manager for these connection settings.
    pub fn manager(&self) -> Result<Neo4jManager, Neo4jStartError> {
        Ok(Neo4jManager::new(self.clone())?)
    }

    /// A pool builder with these settings, to add a meter or a leak hook before `build()`; the built pool
    /// converts into a [`Neo4jPool`] (`Neo4jPool::from(pool)`), and [`aquifer_core::warm`] starts it.
    pub fn builder(&self) -> Result<PoolBuilder<Neo4jManager>, Neo4jStartError> {
        Ok(Pool::builder(self.manager()?).config(self.pool.clone()))
    }

    /// Builds the pool and opens its first connection (`min_idle`, at least one) before returning, so an
    /// unreachable server, a wrong password or a missing database fails here, at start-up. Must run in a
    /// Tokio runtime.
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it: connects in flight are abandoned
    /// and connections already open are closed.
    pub async fn connect(&self) -> Result<Neo4jPool, Neo4jStartError> {
        Ok(aquifer_core::warm(self.builder()?.build()?).await?.into())
    }

    /// Builds the pool without connecting: connections open on first use (and `min_idle` in the
    /// background). Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<Neo4jPool, Neo4jStartError> {
        Ok(self.builder()?.build()?.into())
    }
}

/// A started pool with default settings for `uri` (`bolt://user:password@host:7687`, credentials
/// percent-encoded).
///
/// Cancel safety: as for [`Neo4jConfig::connect`].
pub async fn connect(uri: &str) -> Result<Neo4jPool, Neo4jStartError> {
    Neo4jConfig::from_url(uri).connect().await
}

/// A lazy pool with default settings for `uri`. Must be called within a Tokio runtime.
pub fn connect_lazy(uri: &str) -> Result<Neo4jPool, Neo4jStartError> {
    Neo4jConfig::from_url(uri).connect_lazy()
}

/// A started pool configured from the `NEO4J_*` variables ([`Neo4jConfig::from_env`]: `NEO4J_URI`,
/// `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_POOL_*`...). For another prefix:
/// `Neo4jConfig::from_env("GRAPH")?.connect()`.
///
/// Cancel safety: as for [`Neo4jConfig::connect`].
pub async fn connect_env() -> Result<Neo4jPool, Neo4jStartError> {
    Neo4jConfig::from_env(ENV_PREFIX)?.connect().await
}

/// A lazy pool configured from the `NEO4J_*` variables. Must be called within a Tokio runtime.
pub fn connect_env_lazy() -> Result<Neo4jPool, Neo4jStartError> {
    Neo4jConfig::from_env(ENV_PREFIX)?.connect_lazy()
}
