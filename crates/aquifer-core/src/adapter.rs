//! [`Adapter`]: the contract every backend crate fulfils, as a type. An adapter's configuration (`PgConfig`,
//! `MySqlConfig`, `Neo4jConfig`, `SqliteConfig`) implements it, and everything that is the same for every
//! backend is written once here against it: the four constructors ([`connect`], [`connect_lazy`],
//! [`connect_env`], [`connect_env_lazy`]), reading a configuration from the environment
//! ([`Adapter::from_env`], with its checks for misspelt variables), and the type-erased pools the registry
//! ([`Drivers`](crate::Drivers)) opens for tools that pick a backend at run time.

use std::future::Future;

use crate::config::PoolConfig;
use crate::errors::ConfigError;
use crate::start::StartError;

/// A backend adapter, implemented by its configuration type.
///
/// The associated constants say what the backend is called and how it is found; the required methods are
/// the few things only the adapter knows (reading its own settings, building its pool); the provided methods
/// are the behaviour every backend shares, so they cannot drift apart. An adapter crate's free functions
/// (`aquifer_postgres::connect`, ...) and its configuration's `from_env`, `connect` and `connect_lazy` are
/// generated from this trait by [`adapter_reexports!`](crate::adapter_reexports).
///
/// Writing a fifth backend means implementing [`Manager`](crate::Manager) (how to open, check, reset and
/// close one connection) and this trait (how to configure and build a pool of them), then running the
/// behaviour suite of `aquifer-testing` against a real server: docs/adapters.md walks through it.
///
/// ```
/// # use aquifer_core::Adapter;
/// # use aquifer_testing::FakeAdapter;
/// // A configuration from the adapter's own URL form, then its lazy pool: nothing connects yet.
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = FakeAdapter::from_url("fake://local/orders");
/// config.pool_config_mut().max_size = 4;
/// let pool = config.connect_lazy()?;
/// assert_eq!(pool.config().max_size, 4);
/// # Ok(()) }
/// ```
pub trait Adapter: Sized + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The pool the constructors return (`PgPool`, `SqlitePool`, ...).
    type Pool: Clone + Send + Sync + 'static;
    /// The driver's connect error, inside [`StartError`] and [`PoolError`](crate::PoolError).
    type Error: std::error::Error + Send + Sync + 'static;

    /// `db.system.name` of the backend, as the OpenTelemetry semantic conventions spell it (`postgresql`,
    /// `mysql`, `mariadb`, `neo4j`, `sqlite`); for a backend that serves several systems (MySQL and MariaDB),
    /// the one its URLs default to.
    const SYSTEM: &'static str;
    /// The prefix of the environment variables the crate's `connect_env` reads (`POSTGRES` for
    /// `POSTGRES_URL`, `POSTGRES_POOL_MAX_SIZE`, ...).
    const ENV_PREFIX: &'static str;
    /// The URL schemes the backend accepts, lower case, without `://` (`postgres`, `postgresql`). A tool that
    /// picks the backend from a URL ([`Drivers::find_url`](crate::Drivers::find_url)) matches on these.
    const URL_SCHEMES: &'static [&'static str];
    /// True when a string without a scheme (a file path, `:memory:`) names a database of this backend
    /// (SQLite). Default: `false`.
    const ACCEPTS_PATHS: bool = false;

    /// The defaults with the connection URL set. Never fails: a URL the backend cannot use is reported by
    /// [`build`](Adapter::build), naming the URL with its password redacted.
    fn from_url(url: &str) -> Self;

    /// Reads the configuration from `{prefix}_*` variables through `lookup` (a map in tests; the process
    /// environment in [`from_env`](Adapter::from_env)). Every variable is read through `lookup`, so that
    /// [`from_env`](Adapter::from_env) knows which names are known. Unset variables keep their defaults; a
    /// missing URL is a [`ConfigError::Missing`] naming the variables consulted.
    fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError>;

    /// The engine's settings (sizes, timeouts) inside the configuration.
    fn pool_config(&self) -> &PoolConfig;

    /// The engine's settings, to change them before building.
    fn pool_config_mut(&mut self) -> &mut PoolConfig;

    /// Builds the pool without connecting: connections open on first use (and `min_idle` in the background).
    /// Fails on a bad setting or URL, or outside a Tokio runtime.
    fn build(&self) -> Result<Self::Pool, StartError<Self::Error>>;

    /// Waits until a built pool's first connections are open ([`warm`](crate::warm)), so that a wrong URL,
    /// password or database fails at start-up rather than on the first request; on failure the pool is
    /// closed.
    fn start(pool: Self::Pool) -> impl Future<Output = Result<Self::Pool, StartError<Self::Error>>> + Send;

    /// Readies the configuration for an operator's tool that inspects a database rather than serving an
    /// application: where the server shows a client name, sessions carry `application_name`; nothing is
    /// created that did not exist (SQLite opens no new file). The default changes nothing.
    fn for_inspection(&mut self, application_name: &str) {
        let _ = application_name;
    }

    /// True for a `{prefix}_{suffix}` variable that belongs to other software sharing the backend's
    /// conventional prefix (the official Docker images read `POSTGRES_PASSWORD`, `MYSQL_ROOT_PASSWORD`,
    /// `NEO4J_AUTH`): [`from_env`](Adapter::from_env) never reports those as misspelt. The default: none.
    fn is_foreign_env(suffix: &str) -> bool {
        let _ = suffix;
        false
    }

    /// Reads the configuration from the process environment: [`from_lookup`](Adapter::from_lookup) over
    /// `std::env::var`, plus the checks a lookup function cannot make ([`read_env`](crate::EnvVars) rules):
    /// a `{prefix}_*` variable that is not valid UTF-8 is an error, not a default; an unknown
    /// `{prefix}_POOL_*` variable is an error naming the closest known one; an unknown `{prefix}_*`
    /// variable a typo away from a known one is an error naming it (others are left to the software they
    /// belong to).
    fn from_env(prefix: &str) -> Result<Self, ConfigError> {
        crate::env::read_process_env(prefix, Self::from_lookup, Self::is_foreign_env)
    }

    /// Like [`from_env`](Adapter::from_env), from a list of variables instead of the process environment
    /// (the same checks, including unknown names): for tests and configuration stores.
    fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        prefix: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let vars = vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())).collect();
        crate::env::read_vars(prefix, vars, Self::from_lookup, Self::is_foreign_env)
    }

    /// Builds the pool and waits until its first connections are open ([`build`](Adapter::build) then
    /// [`start`](Adapter::start)). Must run in a Tokio runtime.
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it: connects in flight are abandoned
    /// and connections already open are closed.
    fn connect(&self) -> impl Future<Output = Result<Self::Pool, StartError<Self::Error>>> + Send {
        let built = self.build();
        async move { Self::start(built?).await }
    }

    /// Builds the pool without connecting ([`build`](Adapter::build)). Must be called within a Tokio runtime.
    fn connect_lazy(&self) -> Result<Self::Pool, StartError<Self::Error>> {
        self.build()
    }
}

/// A started pool of adapter `A` with default settings for `url`: what every adapter crate's `connect(url)`
/// calls.
///
/// Cancel safety: as for [`Adapter::connect`].
pub async fn connect<A: Adapter>(url: &str) -> Result<A::Pool, StartError<A::Error>> {
    A::from_url(url).connect().await
}

/// A lazy pool of adapter `A` with default settings for `url`. Must be called within a Tokio runtime.
pub fn connect_lazy<A: Adapter>(url: &str) -> Result<A::Pool, StartError<A::Error>> {
    A::from_url(url).connect_lazy()
}

/// A started pool of adapter `A` configured from its `{A::ENV_PREFIX}_*` variables ([`Adapter::from_env`]).
///
/// Cancel safety: as for [`Adapter::connect`].
pub async fn connect_env<A: Adapter>() -> Result<A::Pool, StartError<A::Error>> {
    A::from_env(A::ENV_PREFIX)?.connect().await
}

/// A lazy pool of adapter `A` configured from its `{A::ENV_PREFIX}_*` variables. Must be called within a
/// Tokio runtime.
pub fn connect_env_lazy<A: Adapter>() -> Result<A::Pool, StartError<A::Error>> {
    A::from_env(A::ENV_PREFIX)?.connect_lazy()
}
