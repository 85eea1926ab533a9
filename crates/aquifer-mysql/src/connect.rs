//! MySQL/MariaDB's side of the [`Adapter`] contract, and the constructors only it has: from mysql_async
//! `Opts` instead of a URL. The shared constructors (`connect`, `connect_env`, ...) are generated from the
//! contract in lib.rs.

use aquifer_core::{Adapter, ConfigError, Pool, PoolBuilder, PoolConfig, StartError};
use mysql_async::Opts;

use crate::{MySqlConfig, MySqlManager, MySqlPool, MySqlStartError};

impl Adapter for MySqlConfig {
    type Pool = MySqlPool;
    type Error = mysql_async::Error;

    const SYSTEM: &'static str = "mysql";
    const ENV_PREFIX: &'static str = "MYSQL";
    const URL_SCHEMES: &'static [&'static str] = &["mysql", "mariadb"];

    fn from_url(url: &str) -> Self {
        MySqlConfig::from_url(url)
    }

    fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        MySqlConfig::from_lookup(prefix, lookup)
    }

    fn pool_config(&self) -> &PoolConfig {
        &self.pool
    }

    fn pool_config_mut(&mut self) -> &mut PoolConfig {
        &mut self.pool
    }

    fn build(&self) -> Result<MySqlPool, MySqlStartError> {
        Ok(self.builder()?.build()?.into())
    }

    async fn start(pool: MySqlPool) -> Result<MySqlPool, StartError<mysql_async::Error>> {
        pool.start().await
    }

    fn is_foreign_env(suffix: &str) -> bool {
        // The official Docker images' variables (MySQL's and MariaDB's), often beside the service's own.
        matches!(
            suffix,
            "ROOT_PASSWORD"
                | "ROOT_HOST"
                | "DATABASE"
                | "USER"
                | "PASSWORD"
                | "ALLOW_EMPTY_PASSWORD"
                | "RANDOM_ROOT_PASSWORD"
        )
    }
}

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
