//! [`PgBuildError`]: why a [`PgPool`](crate::PgPool) could not be built.

use aquifer_core::{BuildError, ConfigError};

use crate::PgPoolError;

/// Building a [`PgPool`](crate::PgPool) failed. Never shows a password: URLs are redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgBuildError {
    /// No URL was given: neither `pool.url` nor, from the environment, `POSTGRES_URL` or `DATABASE_URL`.
    #[error("no PostgreSQL URL: set PgConfig.pool.url, or POSTGRES_URL or DATABASE_URL in the environment")]
    MissingUrl,
    /// The URL could not be parsed by sqlx.
    #[error("invalid PostgreSQL URL {url}: {source}")]
    InvalidUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        /// What sqlx objected to.
        #[source]
        source: sqlx::Error,
    },
    /// A configuration value is invalid; the message names the field or variable and the value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool could not start (no Tokio runtime, invalid pool settings).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The warm-up connects failed: the server is unreachable or refused the credentials.
    #[error("pool {pool} could not open its first connections: {source}")]
    WarmUp {
        /// The pool's name.
        pool: String,
        /// The pool's error; [`PgBuildError::backend_error`] digs out the driver's.
        #[source]
        source: PgPoolError,
    },
}

impl PgBuildError {
    /// The sqlx error behind this error, if any (a refused password is a
    /// [`sqlx::Error::Database`] with SQLSTATE `28P01`).
    pub fn backend_error(&self) -> Option<&sqlx::Error> {
        match self {
            PgBuildError::InvalidUrl { source, .. } => Some(source),
            PgBuildError::WarmUp { source, .. } => source.backend_error(),
            _ => None,
        }
    }

    /// The SQLSTATE of the server error behind this error, if any (`28P01`: wrong password, `3D000`: no such
    /// database, ...).
    pub fn sqlstate(&self) -> Option<String> {
        match self.backend_error()? {
            sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}
