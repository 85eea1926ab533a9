//! [`Drivers`]: the backends a tool knows, found by URL scheme or environment prefix (the way sqlx's
//! `AnyPool` finds its driver), and [`AnyPool`], a pool of any of them with the backend erased. The `aquifer`
//! CLI opens whatever URL or `{PREFIX}_*` environment it is given through one of these, without a `match` per
//! backend; a service with pools chosen by configuration can do the same.

use std::any::Any;
use std::fmt;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::adapter::Adapter;
use crate::config::PoolConfig;
use crate::errors::ConfigError;
use crate::health::HealthCheck;
use crate::manager::Manager;
use crate::pool::Pool;
use crate::secret::redact_url;
use crate::stats::{State, Stats};

/// A pool of any backend: what a tool needs of a pool whose type it does not know.
///
/// Implemented by the engine's [`Pool`] and by every adapter's pool type; [`as_any`](AnyPool::as_any) gives
/// the concrete pool back for what only one backend can do (`pool.as_any().downcast_ref::<PgPool>()`).
#[crate::async_trait]
pub trait AnyPool: HealthCheck + fmt::Debug {
    /// `db.system.name`.
    fn system(&self) -> &str;
    /// What the pool holds now (for a backend of several pools, the one that serves reads).
    fn state(&self) -> State;
    /// What the pool has done since it was built.
    fn stats(&self) -> Stats;
    /// `server.address:server.port/db.namespace` (never credentials).
    fn server(&self) -> String;
    /// The engine's settings the pool runs with (sizes, timeouts; no URL).
    fn pool_config(&self) -> &PoolConfig;
    /// Checks out a connection and runs the backend's validation on it (the driver's ping, `RETURN 1`,
    /// `SELECT 1`): how long the checkout waited and how long the round trip took.
    ///
    /// Cancel safety: dropping the future returns the connection to the pool (reset or discarded like any
    /// connection dropped mid-use).
    async fn ping(&self) -> Result<Ping, PingError>;
    /// Closes the pool ([`Pool::close`]).
    async fn close(&self);
    /// Pauses the pool ([`Pool::pause`]): it lends and opens nothing until [`resume`](AnyPool::resume);
    /// callers wait up to their own acquire timeout. For a backend of several pools, all of them.
    fn pause(&self);
    /// Resumes a paused pool ([`Pool::resume`]).
    fn resume(&self);
    /// Whether the pool is paused.
    fn is_paused(&self) -> bool;
    /// Retires every connection ([`Pool::retire`]): idle ones closed now, lent ones as they come back.
    /// Returns how many were closed now.
    fn retire(&self) -> usize;
    /// Changes the maximum size ([`Pool::resize`]; for a backend of several pools, the one that serves
    /// reads). The error names `max_size` and says why it was refused.
    fn resize(&self, max_size: usize) -> Result<(), ConfigError>;
    /// The concrete pool, to downcast.
    fn as_any(&self) -> &dyn Any;
}

#[crate::async_trait]
impl<M: Manager> AnyPool for Pool<M> {
    fn system(&self) -> &str {
        &self.descriptor().system
    }

    fn state(&self) -> State {
        Pool::state(self)
    }

    fn stats(&self) -> Stats {
        Pool::stats(self)
    }

    fn server(&self) -> String {
        self.descriptor().default_pool_name()
    }

    fn pool_config(&self) -> &PoolConfig {
        self.config()
    }

    async fn ping(&self) -> Result<Ping, PingError> {
        let started = Instant::now();
        let mut conn = self.get().await.map_err(|e| PingError {
            timed_out: matches!(e, crate::PoolError::Timeout { .. }),
            message: e.to_string(),
        })?;
        let got = Instant::now();
        self.manager().validate(&mut conn).await.map_err(|e| PingError { timed_out: false, message: e.to_string() })?;
        Ok(Ping { wait: got - started, round_trip: got.elapsed() })
    }

    async fn close(&self) {
        Pool::close(self).await;
    }

    fn pause(&self) {
        Pool::pause(self);
    }

    fn resume(&self) {
        Pool::resume(self);
    }

    fn is_paused(&self) -> bool {
        Pool::is_paused(self)
    }

    fn retire(&self) -> usize {
        Pool::retire(self)
    }

    fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        Pool::resize(self, max_size)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What [`AnyPool::ping`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ping {
    /// From the request to the checkout.
    pub wait: Duration,
    /// The validation's round trip on the checked-out connection.
    pub round_trip: Duration,
}

/// Why [`AnyPool::ping`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct PingError {
    /// No connection within the acquire timeout ([`PoolError::Timeout`](crate::PoolError::Timeout)).
    pub timed_out: bool,
    /// The pool's or the driver's error, as displayed (never a password).
    pub message: String,
}

/// Why a pool of an erased backend could not be opened: the adapter's [`StartError`](crate::StartError)
/// with its type erased (its message never shows a password).
pub type AnyStartError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A configuration of any backend, from [`Driver::from_url`] or [`Driver::from_env`]: tune it, then open it.
pub trait AnyConfig: Send + Sync + fmt::Debug {
    /// The engine's settings, to change them before opening.
    fn pool_config_mut(&mut self) -> &mut PoolConfig;
    /// [`Adapter::for_inspection`].
    fn for_inspection(&mut self, application_name: &str);
    /// [`Adapter::connect_lazy`], erased.
    fn connect_lazy(&self) -> Result<Box<dyn AnyPool>, AnyStartError>;
    /// [`Adapter::connect`], erased.
    ///
    /// Cancel safety: as for [`Adapter::connect`].
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn AnyPool>, AnyStartError>>;
}

impl<A: Adapter> AnyConfig for A
where
    A::Pool: AnyPool,
{
    fn pool_config_mut(&mut self) -> &mut PoolConfig {
        Adapter::pool_config_mut(self)
    }

    fn for_inspection(&mut self, application_name: &str) {
        Adapter::for_inspection(self, application_name)
    }

    fn connect_lazy(&self) -> Result<Box<dyn AnyPool>, AnyStartError> {
        Ok(Box::new(Adapter::connect_lazy(self)?))
    }

    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn AnyPool>, AnyStartError>> {
        Box::pin(async move { Ok(Box::new(Adapter::connect(self).await?) as Box<dyn AnyPool>) })
    }
}

/// One backend in a [`Drivers`] registry: its names and how to read its configuration.
#[derive(Clone, Copy)]
pub struct Driver {
    system: &'static str,
    env_prefix: &'static str,
    url_schemes: &'static [&'static str],
    accepts_paths: bool,
    from_url: fn(&str) -> Box<dyn AnyConfig>,
    from_env: fn(&str) -> Result<Box<dyn AnyConfig>, ConfigError>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("system", &self.system)
            .field("env_prefix", &self.env_prefix)
            .field("url_schemes", &self.url_schemes)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// The driver of adapter `A`.
    pub fn of<A: Adapter>() -> Driver
    where
        A::Pool: AnyPool,
    {
        Driver {
            system: A::SYSTEM,
            env_prefix: A::ENV_PREFIX,
            url_schemes: A::URL_SCHEMES,
            accepts_paths: A::ACCEPTS_PATHS,
            from_url: |url| Box::new(A::from_url(url)),
            from_env: |prefix| Ok(Box::new(A::from_env(prefix)?)),
        }
    }

    /// [`Adapter::SYSTEM`].
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// [`Adapter::ENV_PREFIX`].
    pub fn env_prefix(&self) -> &'static str {
        self.env_prefix
    }

    /// [`Adapter::URL_SCHEMES`].
    pub fn url_schemes(&self) -> &'static [&'static str] {
        self.url_schemes
    }

    /// [`Adapter::ACCEPTS_PATHS`]: the backend's databases are files.
    pub fn accepts_paths(&self) -> bool {
        self.accepts_paths
    }

    /// [`Adapter::from_url`], erased.
    pub fn from_url(&self, url: &str) -> Box<dyn AnyConfig> {
        (self.from_url)(url)
    }

    /// [`Adapter::from_env`], erased.
    pub fn from_env(&self, prefix: &str) -> Result<Box<dyn AnyConfig>, ConfigError> {
        (self.from_env)(prefix)
    }
}

/// Why no driver of a [`Drivers`] registry fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoDriver {
    /// A URL whose scheme no registered backend accepts.
    #[error("cannot tell the backend of {url}: expected {expected}")]
    Scheme {
        /// The URL, its password redacted.
        url: String,
        /// The accepted forms, such as `postgres://, mysql://, or a file path`.
        expected: String,
    },
    /// An environment prefix without `{prefix}_URL` (or a path variable) and not a backend's own prefix.
    #[error("{prefix}_URL is not set{paths}, and {prefix} is not one of {known}")]
    Env {
        /// The prefix.
        prefix: String,
        /// ` (nor {prefix}_PATH)` when a registered backend takes file paths.
        paths: String,
        /// The backends' own prefixes, comma separated.
        known: String,
    },
}

/// The backends a tool knows: register each adapter once, then find one by URL or environment prefix.
///
/// ```
/// use aquifer_core::Drivers;
/// use aquifer_testing::FakeAdapter;
///
/// let drivers = Drivers::new().with::<FakeAdapter>();
/// assert_eq!(drivers.find_url("fake://db/orders").unwrap().system(), "fake");
/// let err = drivers.find_url("redis://cache").unwrap_err();
/// assert_eq!(err.to_string(), "cannot tell the backend of redis://cache: expected fake://");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Drivers {
    drivers: Vec<Driver>,
}

impl Drivers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers adapter `A`.
    #[must_use]
    pub fn with<A: Adapter>(mut self) -> Self
    where
        A::Pool: AnyPool,
    {
        self.drivers.push(Driver::of::<A>());
        self
    }

    /// The registered drivers, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Driver> {
        self.drivers.iter()
    }

    /// The driver for `url`: the one whose [`URL_SCHEMES`](Adapter::URL_SCHEMES) holds its scheme (any case;
    /// `scheme://...` or `scheme:...`), or, for a string without a scheme (a file path, `:memory:`), the one
    /// that [accepts paths](Adapter::ACCEPTS_PATHS).
    pub fn find_url(&self, url: &str) -> Result<&Driver, NoDriver> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).filter(|s| !s.is_empty());
        let by_scheme = scheme.as_deref().and_then(|s| self.drivers.iter().find(|d| d.url_schemes.contains(&s)));
        if let Some(driver) = by_scheme {
            return Ok(driver);
        }
        // A colon elsewhere (`host:5432/db`) is more likely a URL missing its scheme than a file name.
        let is_path = !url.contains(':') || url == ":memory:";
        match self.drivers.iter().find(|d| d.accepts_paths) {
            Some(driver) if is_path && !url.is_empty() => Ok(driver),
            _ => Err(NoDriver::Scheme { url: redact_url(url), expected: self.expected() }),
        }
    }

    /// The driver for the `{prefix}_*` variables read through `lookup`: the one of `{prefix}_URL`'s scheme,
    /// the path-taking one when only `{prefix}_PATH` is set, or the one whose own prefix is `prefix`.
    pub fn find_env(&self, prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<&Driver, NoDriver> {
        let var = |suffix: &str| lookup(&format!("{prefix}_{suffix}")).filter(|v| !v.trim().is_empty());
        if let Some(url) = var("URL").or_else(|| var("URI")) {
            return self.find_url(url.trim());
        }
        let path_driver = self.drivers.iter().find(|d| d.accepts_paths);
        if let Some(driver) = path_driver.filter(|_| var("PATH").is_some()) {
            return Ok(driver);
        }
        self.drivers.iter().find(|d| d.env_prefix.eq_ignore_ascii_case(prefix)).ok_or_else(|| NoDriver::Env {
            prefix: prefix.to_owned(),
            paths: if path_driver.is_some() { format!(" (nor {prefix}_PATH)") } else { String::new() },
            known: self.drivers.iter().map(|d| d.env_prefix).collect::<Vec<_>>().join(", "),
        })
    }

    fn expected(&self) -> String {
        let mut forms: Vec<String> =
            self.drivers.iter().flat_map(|d| d.url_schemes.iter().map(|s| format!("{s}://"))).collect();
        if self.drivers.iter().any(|d| d.accepts_paths) {
            forms.push("a file path".to_owned());
        }
        match forms.len() {
            0 => "a registered backend".to_owned(),
            1 => forms.remove(0),
            _ => {
                let last = forms.pop().unwrap_or_default();
                format!("{}, or {last}", forms.join(", "))
            }
        }
    }
}
