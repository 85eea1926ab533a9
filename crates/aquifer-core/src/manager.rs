//! The [`Manager`] trait: what a database adapter tells the pool engine.

use std::borrow::Cow;
use std::fmt;

/// Creates, checks and recycles connections of one database for a [`Pool`](crate::Pool).
///
/// An adapter implements this once; the engine supplies sizing, waiting, timeouts, retries, health and metrics.
/// Only [`connect`](Manager::connect), [`validate`](Manager::validate) and [`descriptor`](Manager::descriptor)
/// are required.
///
/// The sync hooks ([`is_broken`](Manager::is_broken), [`needs_reset`](Manager::needs_reset)) run on every
/// return of a connection, so they must only read state the driver already tracks: no I/O.
#[async_trait::async_trait]
pub trait Manager: Send + Sync + 'static {
    /// The driver's connection type, which [`Pooled`](crate::Pooled) dereferences to.
    type Connection: Send + 'static;
    /// The driver's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection, after-connect steps (session settings, init SQL) included. A failing step is a
    /// failed connect: the engine retries it with backoff and reports it in timeouts.
    async fn connect(&self) -> Result<Self::Connection, Self::Error>;

    /// A cheap liveness check (a ping or `SELECT 1`), run on checkout when the connection sat idle longer than
    /// `validation_bypass`.
    async fn validate(&self, conn: &mut Self::Connection) -> Result<(), Self::Error>;

    /// True when the returned connection must not be reused at all (the driver saw the socket die, or a query
    /// was interrupted in a way that cannot be repaired). Runs on every return: no I/O.
    fn is_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// True when the returned connection must go through [`reset`](Manager::reset) before the next user gets
    /// it (an open transaction, state left by an interrupted query). Runs on every return: no I/O.
    fn needs_reset(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Makes a returned connection safe for the next user: rolls back an open transaction, drains an
    /// interrupted query, clears session state. Runs in a background task, only when
    /// [`needs_reset`](Manager::needs_reset) said so; a failure discards the connection.
    async fn reset(&self, _conn: &mut Self::Connection) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The server's version string for health reports, read once per pool.
    async fn server_version(&self, _conn: &mut Self::Connection) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }

    /// The generation of the credentials the next [`connect`](Manager::connect) will use: a number that
    /// grows each time the password or token changes ([`Credentials::generation_now`], 0 for a fixed
    /// password). The engine reads it before each connect attempt and at each housekeeping round, never on
    /// the checkout or return path, and with `retire_on_rotation` closes the connections opened with an older
    /// generation. It may `stat` a local file, nothing slower. Default: 0 (the password never rotates).
    ///
    /// [`Credentials::generation_now`]: crate::Credentials::generation_now
    fn credential_generation(&self) -> u64 {
        0
    }

    /// Why connections of this manager must not carry state from one checkout to the next, if they must not:
    /// `Some(reason)` when the server side of a connection is shared with other clients between
    /// transactions (PostgreSQL behind PgBouncer in transaction mode), so that a setting made at session
    /// level for one checkout would reach them. [`Pool::get_with`](crate::Pool::get_with) (and every door
    /// built on it) then refuses a [`SessionContext`](crate::SessionContext) before checking anything out,
    /// with [`PoolError::Hook`](crate::PoolError::Hook) and [`HookFailure::Refused`](crate::HookFailure)
    /// carrying `reason`. Read once per `get_with`, never on a plain checkout: no I/O. Default: `None`.
    fn session_context_refusal(&self) -> Option<&str> {
        None
    }

    /// What this manager connects to, for metric attributes, logs and health reports. Never credentials.
    fn descriptor(&self) -> Descriptor;

    /// True for connect errors that retrying cannot fix soon (a refused password, an unknown database or role):
    /// the pool then fails fast after the first such failure instead of after `fail_fast_after`. The
    /// background probe still retries, so the pool recovers when the cause is fixed. Default: `false`.
    fn is_permanent(&self, _error: &Self::Error) -> bool {
        false
    }

    /// A low-cardinality name for an error's class, used as the `error.type` metric attribute
    /// (a SQLSTATE, an error code, "io", "tls"...). Default: `_OTHER`, as the OpenTelemetry conventions say.
    fn error_type(&self, _error: &Self::Error) -> Cow<'static, str> {
        Cow::Borrowed("_OTHER")
    }
}

/// What a pool connects to: the OpenTelemetry `db.system.name`, `server.address`, `server.port` and
/// `db.namespace` of its connections. Holds no credentials by construction.
///
/// ```
/// use aquifer_core::Descriptor;
///
/// let d = Descriptor::new("postgresql").address("127.0.0.1").port(5432).namespace("orders");
/// assert_eq!(d.default_pool_name(), "127.0.0.1:5432/orders");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub struct Descriptor {
    /// `db.system.name`: `postgresql`, `mysql`, `mariadb`, `neo4j`, `sqlite`...
    pub system: Cow<'static, str>,
    /// `server.address`: host name, IP address or socket/file path.
    pub server_address: Option<String>,
    /// `server.port`.
    pub server_port: Option<u16>,
    /// `db.namespace`: the database (or schema) name.
    pub namespace: Option<String>,
}

impl Descriptor {
    /// A descriptor for `db.system.name` = `system`.
    pub fn new(system: impl Into<Cow<'static, str>>) -> Self {
        Descriptor { system: system.into(), server_address: None, server_port: None, namespace: None }
    }

    /// Sets `server.address`.
    #[must_use]
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.server_address = Some(address.into());
        self
    }

    /// Sets `server.port`.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.server_port = Some(port);
        self
    }

    /// Sets `db.namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// `server.address:server.port/db.namespace`, leaving out the parts that are unknown.
    pub fn default_pool_name(&self) -> String {
        let mut name = self.server_address.clone().unwrap_or_else(|| self.system.to_string());
        if let Some(port) = self.server_port {
            name.push_str(&format!(":{port}"));
        }
        if let Some(ns) = &self.namespace {
            name.push('/');
            name.push_str(ns);
        }
        name
    }
}

impl fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.system, self.default_pool_name())
    }
}
