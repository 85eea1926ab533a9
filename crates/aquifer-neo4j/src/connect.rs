//! What only Neo4j's adapter does: building the manager, which the [`Adapter`](aquifer_core::Adapter) impl
//! generated in lib.rs builds on. The constructors (`connect`, `connect_env`, ...) are generated from the
//! contract in lib.rs.

use aquifer_core::{Pool, PoolBuilder};

use crate::{Neo4jConfig, Neo4jManager, Neo4jStartError};

impl Neo4jConfig {
    /// The manager for these connection settings.
    pub fn manager(&self) -> Result<Neo4jManager, Neo4jStartError> {
        Ok(Neo4jManager::new(self.clone())?)
    }

    /// A pool builder with these settings, to add a meter or a leak hook before `build()`; the built pool
    /// converts into a [`Neo4jPool`](crate::Neo4jPool) (`Neo4jPool::from(pool)`), and [`aquifer_core::warm`] starts it.
    pub fn builder(&self) -> Result<PoolBuilder<Neo4jManager>, Neo4jStartError> {
        Ok(Pool::builder(self.manager()?).config(self.pool.clone()))
    }
}
