//! Constructors: a started pool (fails at start-up when the database is unreachable or refuses the
//! credentials) or a lazy one (connects on first use), from a URL, from [`PgConnectOptions`] or from the
//! environment. Every one returns a [`PgStartError`].

use aquifer_core::{ConfigError, Pool, PoolBuilder, redact_url};
use sqlx::postgres::PgConnectOptions;

use crate::{PgConfig, PgManager, PgPool, PgStartError};

/// The prefix of the environment variables [`connect_env`] and [`connect_env_lazy`] read.
pub const ENV_PREFIX: &str = "POSTGRES";

impl PgConfig {
    /// The manager for `url` with these settings.
    pub fn manager(&self) -> Result<PgManager, PgStartError> {
        let url = self.url.as_ref().ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: "set PgConfig.url, or POSTGRES_URL or DATABASE_URL in the environment".into(),
        })?;
        let bad = |reason: String| PgStartError::Url { system: "postgresql", url: redact_url(url.expose()), reason };
        // `postgres:/user:pw@host` (one slash) parses as a URL without a host whose database is the whole
        // path: sqlx would connect to the default socket with the credentials as the database name.
        if !url.expose().contains("://") {
            return Err(bad("expected postgres://user:password@host:port/database (key=value strings are not                  supported)"
                .into()));
        }
        // sqlx takes `?sslmode=` or `?application_name=` as an empty value and fails later, if at all, without
        // naming the parameter; no parameter has a meaningful empty value.
        let query = url.expose().split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if value.trim().is_empty() {
                let key = redact_url(key);
                return Err(bad(format!("URL parameter `{key}` is empty; give it a value or leave it out")));
            }
        }
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .map_err(|e: sqlx::Error| bad(e.to_string().replace(url.expose(), &redact_url(url.expose()))))?;
        Ok(PgManager::new(options, self)?)
    }

    /// A pool builder for `url` with these settings, to add a meter or a leak hook before `build()`; the
    /// built pool converts into a [`PgPool`] (`PgPool::from(pool)`), and [`aquifer_core::warm`] starts it.
    pub fn builder(&self) -> Result<PoolBuilder<PgManager>, PgStartError> {
        Ok(Pool::builder(self.manager()?).config(self.pool.clone()))
    }

    /// Builds the pool for `url` and waits until `min_idle` connections (at least one) are open, so a
    /// wrong URL, password or database fails here rather than on the first request. Must run in a Tokio
    /// runtime.
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it: connects in flight are
    /// abandoned and connections already open are closed.
    pub async fn connect(&self) -> Result<PgPool, PgStartError> {
        Ok(aquifer_core::warm(self.builder()?.build()?).await?.into())
    }

    /// Builds the pool for `url` without connecting: connections open on first use (and `min_idle` in
    /// the background). Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<PgPool, PgStartError> {
        Ok(self.builder()?.build()?.into())
    }

    /// Like [`connect`](PgConfig::connect), connecting with `options` instead of `url`: for what a URL
    /// cannot carry (a client certificate held in memory, a password from a secret store).
    ///
    /// Cancel safety: as for [`connect`](PgConfig::connect).
    pub async fn connect_with_options(&self, options: PgConnectOptions) -> Result<PgPool, PgStartError> {
        let pool = Pool::builder(PgManager::new(options, self)?).config(self.pool.clone()).build()?;
        Ok(aquifer_core::warm(pool).await?.into())
    }

    /// Like [`connect_lazy`](PgConfig::connect_lazy), connecting with `options` instead of `url`.
    pub fn connect_lazy_with_options(&self, options: PgConnectOptions) -> Result<PgPool, PgStartError> {
        Ok(Pool::builder(PgManager::new(options, self)?).config(self.pool.clone()).build()?.into())
    }
}

/// A started pool with default settings for `url` (`postgres://user:password@host:port/database?sslmode=...`).
///
/// Cancel safety: as for [`PgConfig::connect`].
pub async fn connect(url: &str) -> Result<PgPool, PgStartError> {
    PgConfig::from_url(url).connect().await
}

/// A lazy pool with default settings for `url`. Must be called within a Tokio runtime.
pub fn connect_lazy(url: &str) -> Result<PgPool, PgStartError> {
    PgConfig::from_url(url).connect_lazy()
}

/// A started pool configured from the `POSTGRES_*` variables ([`PgConfig::from_env`]: `POSTGRES_URL` or
/// `DATABASE_URL`, `POSTGRES_POOL_*`, ...). For another prefix: `PgConfig::from_env("ORDERS")?.connect()`.
///
/// Cancel safety: as for [`PgConfig::connect`].
pub async fn connect_env() -> Result<PgPool, PgStartError> {
    PgConfig::from_env(ENV_PREFIX)?.connect().await
}

/// A lazy pool configured from the `POSTGRES_*` variables ([`PgConfig::from_env`]). Must be called within a
/// Tokio runtime.
pub fn connect_env_lazy() -> Result<PgPool, PgStartError> {
    PgConfig::from_env(ENV_PREFIX)?.connect_lazy()
}
