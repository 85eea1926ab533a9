//! What only the MySQL/MariaDB adapter does: building the manager (which the
//! [`Adapter`](aquifer_core::Adapter) impl generated in lib.rs builds on), and constructors from mysql_async
//! `Opts` instead of a URL. The shared constructors (`connect`, `connect_env`, ...) are generated from the
//! contract in lib.rs.

use aquifer_core::{Pool, PoolBuilder};
use mysql_async::Opts;

use crate::{MySqlConfig, MySqlManager, MySqlPool, MySqlStartError};

impl MySqlConfig {
    /// The manager for `url` with these settings.
    pub fn manager(&self) -> Result<MySqlManager, MySqlStartError> {
        MySqlManager::new(self)
    }

    /// A pool builder for `url` with these settings, to add a meter or a leak hook before `build()`; the
    /// built pool converts into a [`MySqlPool`] (`MySqlPool::from(pool)`), and [`aquifer_core::warm`] starts
    /// it.
    pub fn builder(&self) -> Result<PoolBuilder<MySqlManager>, MySqlStartError> {
        Ok(Pool::builder(self.manager()?).config(self.pool.clone()))
    }

    /// Like [`connect`](MySqlConfig::connect), connecting with mysql_async `opts` instead of `url` (for what a
    /// URL cannot carry); see [`MySqlManager::with_opts`].
    ///
    /// Cancel safety: as for [`connect`](MySqlConfig::connect).
    pub async fn connect_with_options(&self, opts: impl Into<Opts>) -> Result<MySqlPool, MySqlStartError> {
        let pool = Pool::builder(MySqlManager::with_opts(opts, self)?).config(self.pool.clone()).build()?;
        Ok(aquifer_core::warm(pool).await?.into())
    }

    /// Like [`connect_lazy`](MySqlConfig::connect_lazy), connecting with mysql_async `opts` instead of `url`.
    pub fn connect_lazy_with_options(&self, opts: impl Into<Opts>) -> Result<MySqlPool, MySqlStartError> {
        Ok(Pool::builder(MySqlManager::with_opts(opts, self)?).config(self.pool.clone()).build()?.into())
    }
}
