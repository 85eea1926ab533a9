//! [`StartError`], the one start-up error every adapter's constructors return, and [`warm`], the step that
//! turns a built pool into a started one.

use std::fmt;

use crate::errors::{BuildError, ConfigError, PoolError, source_not_in};
use crate::manager::Manager;
use crate::pool::Pool;

/// Why an adapter could not start a pool (`connect`, `connect_lazy`, `connect_env`, `connect_env_lazy`,
/// `XConfig::connect`). Never shows a password: URLs are redacted.
///
/// The message includes the cause's (the pool error, and the driver's error inside it), so `source()` returns
/// only causes it leaves out (see [`source_not_in`]); [`StartError::backend_error`] reaches the driver error.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError<E: std::error::Error + 'static> {
    /// A setting is missing or invalid; the message names the field or environment variable and the value.
    Config(ConfigError),
    /// The connection URL could not be parsed.
    Url {
        /// The backend (`postgresql`, `mysql`, `neo4j`, `sqlite`).
        system: &'static str,
        /// The URL with its password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pool needs a Tokio runtime for its background tasks.
    NoRuntime,
    /// The first connections failed: the server is unreachable or refused the credentials, the database does
    /// not exist, an after-connect step failed...
    Connect {
        /// The pool's name.
        pool: String,
        /// The adapter says retrying cannot fix the cause soon (a refused password, an unknown database):
        /// [`Manager::is_permanent`] of the last connect error.
        permanent: bool,
        /// The pool's error, with the last connect error inside (boxed: it carries the pool's state).
        source: Box<PoolError<E>>,
    },
}

impl<E: std::error::Error + 'static> fmt::Display for StartError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => fmt::Display::fmt(e, f),
            StartError::Url { system, url, reason } => write!(f, "invalid {system} URL {url}: {reason}"),
            StartError::NoRuntime => f.write_str(
                "aquifer pools must be built inside a Tokio runtime (call connect from async code or within \
                 Runtime::enter)",
            ),
            StartError::Connect { pool, source, .. } => {
                write!(f, "pool {pool} could not open its first connection: {source}")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for StartError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => source_not_in(&self.to_string(), e),
            StartError::Connect { source, .. } => source_not_in(&self.to_string(), &**source),
            StartError::Url { .. } | StartError::NoRuntime => None,
        }
    }
}

impl<E: std::error::Error + 'static> From<ConfigError> for StartError<E> {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

impl<E: std::error::Error + 'static> From<BuildError> for StartError<E> {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Config(c) => StartError::Config(c),
            BuildError::NoRuntime => StartError::NoRuntime,
        }
    }
}

impl<E: std::error::Error + 'static> StartError<E> {
    /// The driver's error behind a failed first connection, if that is what happened.
    pub fn backend_error(&self) -> Option<&E> {
        match self {
            StartError::Connect { source, .. } => source.backend_error(),
            _ => None,
        }
    }

    /// True when the first connection failed for a reason retrying cannot fix soon (a refused password, an
    /// unknown database or role), as the adapter classifies it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StartError::Connect { permanent: true, .. })
    }
}

/// Waits until the pool's first connections are open ([`Pool::warm_up`]: `min_idle`, at least one), so that a
/// wrong URL, password or database fails at start-up rather than on the first request; on failure the pool is
/// closed and the error says whether the cause is permanent. Every adapter's `connect` ends here.
///
/// Cancel safety: dropping the future drops the pool (its last handle), which closes it: connects in flight
/// are abandoned and connections already open are closed.
pub async fn warm<M: Manager>(pool: Pool<M>) -> Result<Pool<M>, StartError<M::Error>> {
    match pool.warm_up().await {
        Ok(()) => Ok(pool),
        Err(source) => {
            let permanent = source.backend_error().is_some_and(|e| pool.manager().is_permanent(e));
            let name = pool.name().to_owned();
            pool.close().await;
            Err(StartError::Connect { pool: name, permanent, source: Box::new(source) })
        }
    }
}
