//! Constructors: a warm pool (fails at start-up when the database is unreachable or refuses the credentials)
//! or a lazy one (connects on first use), from a URL, from [`PgConnectOptions`] or from the environment.

use aquifer_core::{Pool, PoolBuilder, redact_url};
use sqlx::postgres::PgConnectOptions;

use crate::{PgBuildError, PgConfig, PgManager, PgPool};

impl PgConfig {
    /// The manager for `pool.url` with these settings.
    pub fn manager(&self) -> Result<PgManager, PgBuildError> {
        let url = self.pool.url.as_ref().ok_or(PgBuildError::MissingUrl)?;
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .map_err(|source| PgBuildError::InvalidUrl { url: redact_url(url.expose()), source })?;
        Ok(PgManager::new(options, self)?)
    }

    /// A pool builder for `pool.url` with these settings, to add a meter or a leak hook before `build()`.
    pub fn builder(&self) -> Result<PoolBuilder<PgManager>, PgBuildError> {
        Ok(Pool::builder(self.manager()?).config(self.pool.clone()))
    }

    /// A pool builder connecting with `options` (`pool.url` is ignored) and these settings.
    pub fn builder_with(&self, options: PgConnectOptions) -> Result<PoolBuilder<PgManager>, PgBuildError> {
        Ok(Pool::builder(PgManager::new(options, self)?).config(self.pool.clone()))
    }

    /// Builds the pool for `pool.url` and waits until `min_idle` connections (at least one) are open, so a
    /// wrong URL, password or database fails here rather than on the first request. Must run in a Tokio
    /// runtime.
    ///
    /// Cancel safety: dropping the future leaves no pool behind; connects already started finish in the
    /// background and are closed.
    pub async fn connect(&self) -> Result<PgPool, PgBuildError> {
        warm(self.builder()?.build()?).await
    }

    /// Builds the pool for `pool.url` without connecting: connections open on first use (and `min_idle` in
    /// the background). Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<PgPool, PgBuildError> {
        Ok(self.builder()?.build()?)
    }

    /// Like [`connect`](PgConfig::connect), connecting with `options`.
    ///
    /// Cancel safety: as for [`connect`](PgConfig::connect).
    pub async fn connect_with(&self, options: PgConnectOptions) -> Result<PgPool, PgBuildError> {
        warm(self.builder_with(options)?.build()?).await
    }

    /// Like [`connect_lazy`](PgConfig::connect_lazy), connecting with `options`.
    pub fn connect_lazy_with(&self, options: PgConnectOptions) -> Result<PgPool, PgBuildError> {
        Ok(self.builder_with(options)?.build()?)
    }
}

/// Waits until the pool's first connections are open (see [`PgConfig::connect`]).
///
/// Cancel safety: connects already started finish in the background into the pool.
pub async fn warm(pool: PgPool) -> Result<PgPool, PgBuildError> {
    match pool.warm_up().await {
        Ok(()) => Ok(pool),
        Err(source) => {
            let name = pool.name().to_owned();
            pool.close().await;
            Err(PgBuildError::WarmUp { pool: name, source })
        }
    }
}

/// A warm pool with default settings for `url` (`postgres://user:password@host:port/database?sslmode=...`).
///
/// Cancel safety: as for [`PgConfig::connect`].
pub async fn connect(url: &str) -> Result<PgPool, PgBuildError> {
    PgConfig::from_url(url).connect().await
}

/// A lazy pool with default settings for `url`. Must be called within a Tokio runtime.
pub fn connect_lazy(url: &str) -> Result<PgPool, PgBuildError> {
    PgConfig::from_url(url).connect_lazy()
}

/// A warm pool configured from the environment ([`PgConfig::from_env`]: `POSTGRES_URL` or `DATABASE_URL`,
/// `POSTGRES_POOL_*`, ...).
///
/// Cancel safety: as for [`PgConfig::connect`].
pub async fn connect_env() -> Result<PgPool, PgBuildError> {
    PgConfig::from_env()?.connect().await
}

/// A lazy pool configured from the environment ([`PgConfig::from_env`]). Must be called within a Tokio
/// runtime.
pub fn connect_env_lazy() -> Result<PgPool, PgBuildError> {
    PgConfig::from_env()?.connect_lazy()
}
