//! What only PostgreSQL's adapter does: the URL check and building the manager (which the
//! [`Adapter`](aquifer_core::Adapter) impl generated in lib.rs builds on), and constructors from
//! [`PgConnectOptions`] instead of a URL. The shared constructors (`connect`, `connect_env`, ...) are
//! generated from the contract in lib.rs.

use aquifer_core::{ConfigError, Pool, PoolBuilder, redact_url};
use sqlx::postgres::PgConnectOptions;

use crate::{PgConfig, PgManager, PgPool, PgStartError};

impl PgConfig {
    /// The manager for `url` with these settings.
    pub fn manager(&self) -> Result<PgManager, PgStartError> {
        let url = self.url.as_ref().ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: "set PgConfig.url (PgConfig::from_url), or use PgConfig::connect_with_options".into(),
        })?;
        let bad = |reason: String| PgStartError::Url { system: "postgresql", url: redact_url(url.expose()), reason };
        // `postgres:/user:pw@host` (one slash) parses as a URL without a host whose database is the whole
        // path: sqlx would connect to the default socket with the credentials as the database name.
        if !url.expose().contains("://") {
            return Err(bad("expected postgres://user:password@host:port/database (key=value strings are not                  supported)"
                .into()));
        }
        let authority =
            url.expose().split_once("://").map_or("", |(_, r)| r.split(['/', '?', '#']).next().unwrap_or(""));
        if authority.contains(',') {
            return Err(bad("the URL names several hosts: build a cluster pool (PgConfig::connect_cluster)".into()));
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
