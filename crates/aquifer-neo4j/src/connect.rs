//! Neo4j's side of the [`Adapter`] contract: its names, building the manager. The constructors (`connect`,
//! `connect_env`, ...) are generated from the contract in lib.rs.

use aquifer_core::{Adapter, ConfigError, Pool, PoolBuilder, PoolConfig, StartError};

use crate::{Neo4jConfig, Neo4jError, Neo4jManager, Neo4jPool, Neo4jStartError};

impl Adapter for Neo4jConfig {
    type Pool = Neo4jPool;
    type Error = Neo4jError;

    const SYSTEM: &'static str = "neo4j";
    const ENV_PREFIX: &'static str = "NEO4J";
    const URL_SCHEMES: &'static [&'static str] = &["bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"];

    fn from_url(url: &str) -> Self {
        Neo4jConfig::from_url(url)
    }

    fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Neo4jConfig::from_lookup(prefix, lookup)
    }

    fn pool_config(&self) -> &PoolConfig {
        &self.pool
    }

    fn pool_config_mut(&mut self) -> &mut PoolConfig {
        &mut self.pool
    }

    fn build(&self) -> Result<Neo4jPool, Neo4jStartError> {
        Ok(self.builder()?.build()?.into())
    }

    async fn start(pool: Neo4jPool) -> Result<Neo4jPool, StartError<Neo4jError>> {
        pool.start().await
    }

    fn is_foreign_env(suffix: &str) -> bool {
        // The official Docker image reads NEO4J_AUTH, NEO4J_PLUGINS, NEO4J_ACCEPT_LICENSE_AGREEMENT and the
        // server's settings as NEO4J_server_memory_heap_max__size (lower case after the prefix).
        matches!(suffix, "AUTH" | "PLUGINS" | "ACCEPT_LICENSE_AGREEMENT" | "EDITION" | "HOME")
            || suffix.starts_with(|c: char| c.is_ascii_lowercase())
    }
}

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
}
