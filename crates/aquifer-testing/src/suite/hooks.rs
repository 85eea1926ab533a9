//! [`Hooks`]: what the behaviour suite needs from a backend besides its [`Adapter`]: the test server, the
//! statements (an answer, a sleep, a failure, a write), and the few capabilities not every backend has
//! (killing server sessions, a private server to restart, a serde form), each of which may be
//! [`Unsupported`].

use std::future::Future;
use std::pin::Pin;

use aquifer_core::{Adapter, AnyPool, OperationError, PoolError, StartError};
use opentelemetry::metrics::Meter;

use crate::{CallError, Restartable};

/// An error of any backend, for the outputs the secret scan reads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed future, for the closures of a [`Private`] server.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A capability a backend does not have (SQLite has no server sessions to kill; the fake adapter has no
/// driver that could show a password). Returned by the hooks that are optional; a behaviour that needs one
/// fails with this error, naming the hook, unless the adapter's `behaviour_suite!` call lists the behaviour
/// as unsupported, with its reason (then the test checks that the behaviour does stop at this hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The hook that is not supported.
    pub hook: &'static str,
    /// Why, as the hooks say.
    pub reason: String,
}

impl Unsupported {
    /// `hook` is not supported, because of `reason`.
    pub fn new(hook: &'static str, reason: impl Into<String>) -> Self {
        Unsupported { hook, reason: reason.into() }
    }

    fn default_for(hook: &'static str) -> Self {
        Unsupported::new(hook, "not implemented by this adapter's hooks")
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hook `{}` is not supported: {}", self.hook, self.reason)
    }
}

impl std::error::Error for Unsupported {}

/// How [`Hooks::write`] writes its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// One autocommitted statement (the adapter's `execute` helper).
    Autocommit,
    /// The same statement inside the adapter's `transaction` helper.
    Transaction,
}

/// A configuration whose password is `secret`, for the scan of every output
/// ([`Hooks::secret_config`]).
#[derive(Debug)]
pub struct Secret<A> {
    /// A configuration that connects to the test server with `secret` as its password.
    pub config: A,
    /// The password, as the scan looks for it.
    pub secret: String,
}

/// Counts the sessions of the pool named as given on a server, from an administrator's connection.
pub type Sessions = Box<dyn Fn(&str) -> BoxFuture<i64> + Send + Sync>;

/// A server of the test's own for the restart drill ([`Hooks::private_server`]): a clean shutdown, a crash
/// and a start again never disturb the shared server the other tests use.
pub struct Private<A> {
    /// The server (a [`PrivatePostgres`](crate::PrivatePostgres), a
    /// [`PrivateMariaDb`](crate::PrivateMariaDb), ...).
    pub server: Box<dyn Restartable + Send>,
    /// A configuration of a pool against it (the suite names and sizes the pool).
    pub config: A,
    /// Counts a pool's sessions on that server (`None`: the server cannot tell).
    pub sessions: Option<Sessions>,
}

/// The serde form of a configuration ([`Hooks::serde`]), for the property test of what a configuration file
/// can hold.
pub struct Serde<A> {
    /// `serde_json::from_str::<XConfig>`, its error displayed.
    pub from_json: fn(&str) -> Result<A, String>,
    /// `serde_json::to_string`, when the configuration is `Serialize` too.
    pub to_json: Option<fn(&A) -> String>,
    /// The JSON members, without braces, of a configuration whose password is `{secret}` (replaced by the
    /// secret): `"url": "postgres://app:{secret}@db/x"`.
    pub with_password: &'static str,
    /// Top-level fields the property test sets to odd values.
    pub fields: &'static [&'static str],
}

impl<A: serde::de::DeserializeOwned> Serde<A> {
    /// The serde form of a configuration that is `Deserialize` only.
    pub fn deserialize(with_password: &'static str, fields: &'static [&'static str]) -> Self {
        Serde {
            from_json: |json| serde_json::from_str(json).map_err(|e| e.to_string()),
            to_json: None,
            with_password,
            fields,
        }
    }
}

impl<A: serde::de::DeserializeOwned + serde::Serialize> Serde<A> {
    /// The serde form of a configuration that is `Deserialize` and `Serialize`.
    pub fn both(with_password: &'static str, fields: &'static [&'static str]) -> Self {
        let to_json: fn(&A) -> String = |config| serde_json::to_string(config).expect("a configuration serialises");
        Serde { to_json: Some(to_json), ..Serde::deserialize(with_password, fields) }
    }
}

/// Classifies a helper's error for the suite: a checkout that timed out or met a pool failing fast is an
/// outage (`timeout`, `unavailable`); a driver error is what `backend` names it (`Some(kind)`: an outage of
/// that kind), or untyped.
pub fn classify<E, C>(e: OperationError<E, C>, backend: impl FnOnce(&E) -> Option<&'static str>) -> CallError
where
    E: std::error::Error + 'static,
    C: std::error::Error + 'static,
{
    let kind = match &e {
        OperationError::Acquire(PoolError::Timeout { .. }) => Some("timeout"),
        OperationError::Acquire(PoolError::Unavailable { .. }) => Some("unavailable"),
        OperationError::Backend(b) => backend(b),
        _ => None,
    };
    kind.map_or_else(|| CallError::Untyped(format!("{e}: {e:?}")), CallError::Outage)
}

/// The errors among `results`, boxed: what [`Hooks::fail`] returns.
pub fn failures<T, E: std::error::Error + Send + Sync + 'static>(
    results: impl IntoIterator<Item = Result<T, E>>,
) -> Vec<BoxError> {
    results.into_iter().filter_map(Result::err).map(|e| Box::new(e) as BoxError).collect()
}

/// The pool of a [`Hooks`] implementation's adapter.
pub type PoolOf<H> = <<H as Hooks>::Adapter as Adapter>::Pool;

/// What differs from one backend to the next, for the behaviour suite (`aquifer_testing::behaviour_suite!`).
///
/// Everything else the suite does through the [`Adapter`] and [`AnyPool`] traits. The statement hooks
/// classify their failures as a [`CallError`]: `Outage(kind)` for a failure an outage may cause (a timeout,
/// a refused or lost connection: named, so the restart drill can count them), `Untyped` for anything else.
/// Methods with a default are optional; the defaults of the capabilities return [`Unsupported`].
pub trait Hooks: 'static {
    /// The adapter under test (its pool is an [`AnyPool`]).
    type Adapter: Adapter<Pool: AnyPool>;
    /// A connection checked out of it (`PgPooled`, ...): returned to the pool when dropped.
    type Conn: Send + 'static;

    // The test server.

    /// Fails the test, naming `bash scripts/dev-services.sh`, when the test server does not answer
    /// ([`require_server`](crate::require_server)). Default: nothing to wait for (an embedded database).
    fn require() -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The variables that point `prefix`'s configuration at the test server (`{prefix}_URL`, credentials,
    /// a database file), as a service would set them.
    fn server_vars(prefix: &str) -> Vec<(String, String)>;

    /// The configuration of a pool named `name` against the test server (the suite sets the name and the
    /// sizes on it). Default: [`Adapter::from_vars`] over [`server_vars`](Hooks::server_vars). Override when
    /// a pool needs server-side set-up (a user of its own whose sessions can be counted, a proxy in front of
    /// the server).
    fn config(name: &str) -> impl Future<Output = Self::Adapter> + Send {
        let _ = name;
        let prefix = <Self::Adapter as Adapter>::ENV_PREFIX;
        let vars = Self::server_vars(prefix);
        let config =
            Self::Adapter::from_vars(prefix, vars).unwrap_or_else(|e| panic!("the test server's variables: {e}"));
        async move { config }
    }

    /// A configuration the backend refuses for good, holding the password `not-the-password` somewhere in
    /// its settings: on a server, a user that exists with a wrong password; for an embedded database, one
    /// that cannot be opened.
    fn refused() -> Self::Adapter;

    /// A configuration of a pool named `name` whose password is a known secret and that connects to the test
    /// server, for the scan of every output (the suite sets the name on it).
    fn secret_config(name: &str) -> impl Future<Output = Result<Secret<Self::Adapter>, Unsupported>> + Send {
        let _ = name;
        async { Err(Unsupported::default_for("secret_config")) }
    }

    /// Starts a server of the test's own and returns it with the configuration of a pool against it.
    /// Blocking (runs `initdb` and the like).
    fn private_server() -> Result<Private<Self::Adapter>, Unsupported> {
        Err(Unsupported::default_for("private_server"))
    }

    // Pools and connections.

    /// Builds `config`'s pool without connecting, recording its metrics with `meter` (through the adapter's
    /// builder).
    fn metered(
        config: &Self::Adapter,
        meter: Meter,
    ) -> Result<PoolOf<Self>, StartError<<Self::Adapter as Adapter>::Error>>;

    /// Checks a connection out (`pool.get()`).
    fn checkout(pool: &PoolOf<Self>) -> impl Future<Output = Result<Self::Conn, CallError>> + Send;

    // Statements.

    /// Runs one statement on `conn` that returns `n + 1` computed by the server (`SELECT $1 + 1`): the
    /// answer proves the connection is in sync. Not retried: what a user of `get()` sees.
    fn answer(conn: &mut Self::Conn, n: i64) -> impl Future<Output = Result<i64, CallError>> + Send;

    /// The same statement through the adapter's helpers (`fetch_one`), which retry what they may.
    fn fetch(pool: &PoolOf<Self>, n: i64) -> impl Future<Output = Result<i64, CallError>> + Send;

    /// A statement (through the helpers) that keeps its connection busy for `ms` milliseconds.
    fn sleep(pool: &PoolOf<Self>, ms: u64) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Statements that fail (through the helpers: a syntax error, a `fetch_one` that finds no row), and
    /// their errors, for the secret scan.
    fn fail(pool: &PoolOf<Self>) -> impl Future<Output = Vec<BoxError>> + Send;

    /// Leaves a statement unfinished on one of the pool's connections and returns that connection to the
    /// pool. Default: [`sleep`](Hooks::sleep) for 3 s, dropped after 50 ms (the future of a statement in
    /// flight dropped). Override when dropping a future cannot leave a statement in flight (SQLite's run to
    /// their end inside one call).
    fn abandon(pool: &PoolOf<Self>) -> impl Future<Output = ()> + Send {
        async move {
            let slow = tokio::time::timeout(std::time::Duration::from_millis(50), Self::sleep(pool, 3_000)).await;
            assert!(slow.is_err(), "the statement was still running when it was dropped: {slow:?}");
        }
    }

    // Rows.

    /// Creates what [`write`](Hooks::write), [`write_uncommitted`](Hooks::write_uncommitted) and
    /// [`count`](Hooks::count) use (idempotent). Default: nothing.
    fn setup(pool: &PoolOf<Self>) -> impl Future<Output = ()> + Send {
        let _ = pool;
        async {}
    }

    /// Writes one row (node, ...) holding `marker`, through the helpers.
    fn write(pool: &PoolOf<Self>, marker: &str, how: Write) -> impl Future<Output = Result<(), CallError>> + Send;

    /// Checks a connection out, opens a transaction on it, writes `marker` in it, and returns the connection
    /// to the pool without committing.
    fn write_uncommitted(pool: &PoolOf<Self>, marker: &str) -> impl Future<Output = ()> + Send;

    /// How many rows holding `marker` a new statement sees.
    fn count(pool: &PoolOf<Self>, marker: &str) -> impl Future<Output = i64> + Send;

    /// Whether an autocommitted write whose connection was killed under it may fail (with a typed loss)
    /// rather than be retried: true where the driver cannot tell a session killed before the statement
    /// arrived from one lost after it ran (mysql_async). Reads and transactions are retried regardless.
    const LOST_WRITES_MAY_FAIL: bool = false;

    // Server sessions.

    /// Ends every server session of `pool` from an administrator's connection (a kill, a terminate, a proxy
    /// resetting them), as a server restart or a failover would; returns how many were open.
    fn kill_sessions(pool: &PoolOf<Self>) -> impl Future<Output = Result<usize, Unsupported>> + Send {
        let _ = pool;
        async { Err(Unsupported::default_for("kill_sessions")) }
    }

    /// How many sessions of `pool` the server has open, seen from an administrator's connection.
    fn count_sessions(pool: &PoolOf<Self>) -> impl Future<Output = Result<i64, Unsupported>> + Send {
        let _ = pool;
        async { Err(Unsupported::default_for("count_sessions")) }
    }

    // What users feed the adapter.

    /// Words the adapter's variables take (enum names, URLs), for the property test of the environment.
    const ENV_WORDS: &'static [&'static str] = &[];

    /// `(suffix, value)`: one bad value per adapter variable; the error must name `{PREFIX}_{suffix}` and show
    /// the value as written. The pool's variables are the suite's own cases.
    const BAD_VALUES: &'static [(&'static str, &'static str)] = &[];

    /// URL parameters the adapter reads, for the property test of URLs.
    const URL_PARAMS: &'static [&'static str] = &[];

    /// The URL schemes whose URLs can carry a password, for the property test of URLs. Default: every one
    /// the adapter accepts.
    const SECRET_SCHEMES: &'static [&'static str] = <Self::Adapter as Adapter>::URL_SCHEMES;

    /// The configuration's serde form.
    fn serde() -> Result<Serde<Self::Adapter>, Unsupported> {
        Err(Unsupported::default_for("serde"))
    }
}
