//! Constructors: a started pool (fails at start-up when the server is unreachable or refuses the credentials)
//! or a lazy one (connects on first use), from a URL, from mysql_async `Opts` or from the environment. Every
//! one returns a [`MySqlStartError`].

use aquifer_core::{Pool, PoolBuilder};
use mysql_async::Opts;

use crate::{MySqlConfig, MySqlManager, MySqlPool, MySqlStartError};

/// The prefix of the environment variables [`connect_env`] and [`connect_env_lazy`] read.
pub const ENV_PREFIX: &str = "MYSQL";

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

    /// Builds the pool for `url` and waits until `min_idle` connections (at least one) are open, so a wrong
    /// URL, password or database fails here rather than on the first request. Must run in a Tokio runtime.
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it: connects in flight are abandoned
    /// and connections already open are closed.
    pub async fn connect(&self) -> Result<MySqlPool, MySqlStartError> {
        Ok(aquifer_core::warm(self.builder()?.build()?).await?.into())
    }

    /// Builds the pool for `url` without connecting: connections open on first use (and `min_idle` in the
    /// background). Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<MySqlPool, MySqlStartError> {
        Ok(self.builder()?.build()?.into())
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

/// A started pool with default settings for `url` (`mysql://user:password@host:3306/database`).
///
/// Cancel safety: as for [`MySqlConfig::connect`].
pub async fn connect(url: &str) -> Result<MySqlPool, MySqlStartError> {
    MySqlConfig::from_url(url).connect().await
}

/// A lazy pool with default settings for `url`. Must be called within a Tokio runtime.
pub fn connect_lazy(url: &str) -> Result<MySqlPool, MySqlStartError> {
    MySqlConfig::from_url(url).connect_lazy()
}

/// A started pool configured from the `MYSQL_*` variables ([`MySqlConfig::from_env`]: `MYSQL_URL`,
/// `MYSQL_POOL_*`, `MYSQL_TRANSPORT`...). For another prefix: `MySqlConfig::from_env("ORDERS")?.connect()`.
///
/// Cancel safety: as for [`MySqlConfig::connect`].
pub async fn connect_env() -> Result<MySqlPool, MySqlStartError> {
    MySqlConfig::from_env(ENV_PREFIX)?.connect().await
}

/// A lazy pool configured from the `MYSQL_*` variables ([`MySqlConfig::from_env`]). Must be called within a
/// Tokio runtime.
pub fn connect_env_lazy() -> Result<MySqlPool, MySqlStartError> {
    MySqlConfig::from_env(ENV_PREFIX)?.connect_lazy()
}
