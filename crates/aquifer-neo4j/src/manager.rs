//! [`Neo4jManager`]: one neo4rs `Graph` limited to one Bolt connection per pooled connection.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aquifer_core::{ConfigError, Credentials, Descriptor, Manager, Secret};
use neo4rs::{DetachedRowStream, Graph, Query, RunResult, Txn};

use crate::config::Neo4jConfig;
use crate::error::{Context, Neo4jError, Phase, breaks_connection, classify};

/// The cheapest query every Bolt server answers.
const PING: &str = "RETURN 1";

/// Opens, checks and recycles Bolt connections for a [`Neo4jPool`](crate::Neo4jPool).
///
/// neo4rs has no single-connection type: its `Graph` keeps its own pool. Each connection made here is a
/// `Graph` whose pool holds exactly one Bolt connection, so Aquifer's pool does the sizing, waiting, timeouts,
/// health and metrics, and the `Graph` API is used as is. `Graph` connects lazily, so
/// [`connect`](Manager::connect) runs `RETURN 1` at once: a wrong password or missing database fails the
/// connect instead of the first query.
pub struct Neo4jManager {
    config: Neo4jConfig,
    // Holds the password: neo4rs's `Config` prints it in `Debug`, so it is never formatted.
    driver: neo4rs::Config,
    ctx: Context,
    descriptor: Descriptor,
    /// Where each new connection's password comes from (the config's own by default).
    credentials: Credentials,
    /// The resolved URI, for a driver config with another password.
    uri: String,
}

impl fmt::Debug for Neo4jManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Neo4jManager").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Neo4jManager {
    /// A manager for `config`'s connection settings, which are validated here (the error names the field and
    /// its value); `config.pool` is the pool's business, not the manager's.
    pub fn new(config: Neo4jConfig) -> Result<Self, ConfigError> {
        let r = config.resolve()?;
        let credentials = Credentials::from_config(config.password_file.as_deref(), &config.credentials)?;
        let driver = driver_config(&config, &r.uri, &r.user, &r.password)?;
        let address =
            if r.host.contains(':') { format!("[{}]:{}", r.host, r.port) } else { format!("{}:{}", r.host, r.port) };
        let mut descriptor = Descriptor::new("neo4j").address(r.host).port(r.port);
        if let Some(db) = &config.database {
            descriptor = descriptor.namespace(db.clone());
        }
        if let Some(scheme) = routing_scheme(&r.uri) {
            // neo4rs routes only with its unstable `unstable-bolt-protocol-impl-v2` feature, which Aquifer
            // does not enable: say so once, when the pool is built, instead of silently using one server.
            tracing::warn!(
                scheme,
                server.address = %address,
                "{scheme}:// is a routing scheme, but Aquifer's Neo4j pool does no cluster routing: every \
                 connection goes to {address}, reads are not spread over the cluster and writes fail when \
                 that server is not the leader; use bolt:// (or bolt+s://) for one server, or a \
                 load balancer that forwards to the leader (see docs/neo4j.md, \"Clusters\")"
            );
        }
        let ctx = Context { user: r.user, database: config.database.clone(), address };
        Ok(Neo4jManager { config, driver, ctx, descriptor, credentials, uri: r.uri })
    }

    /// The configuration (its `Debug` redacts the password).
    pub fn config(&self) -> &Neo4jConfig {
        &self.config
    }

    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    pub(crate) fn classify(&self, error: neo4rs::Error) -> Neo4jError {
        classify(error, Some(&self.ctx), Phase::Use)
    }

    /// One `Graph` holding one Bolt connection, checked with `RETURN 1`, with `driver`'s settings.
    async fn open(&self, driver: neo4rs::Config) -> Result<Neo4jConnection, Neo4jError> {
        let graph = Graph::connect(driver).map_err(|e| classify(e, Some(&self.ctx), Phase::Connect))?;
        graph.run(PING).await.map_err(|e| classify(e, Some(&self.ctx), Phase::Connect))?;
        Ok(Neo4jConnection { graph, interrupted: false, broken: AtomicBool::new(false) })
    }
}

/// The scheme of `uri` when it is one of Neo4j's routing schemes (`neo4j`, `neo4j+s`, `neo4j+ssc`).
fn routing_scheme(uri: &str) -> Option<&str> {
    let scheme = uri.split_once("://")?.0;
    matches!(scheme, "neo4j" | "neo4j+s" | "neo4j+ssc").then_some(scheme)
}

/// neo4rs's config for one Bolt connection per `Graph`, with `password`.
fn driver_config(config: &Neo4jConfig, uri: &str, user: &str, password: &str) -> Result<neo4rs::Config, ConfigError> {
    let mut builder = neo4rs::ConfigBuilder::default()
        .uri(uri)
        .user(user)
        .password(password)
        .fetch_size(config.fetch_size)
        .max_connections(1)
        .connection_timeout(config.read_timeout)
        // neo4rs 0.9 wires `max_lifetime` to its pool's wait timeout. With one Bolt connection per Graph,
        // a query issued while a stream or transaction of the same Graph still holds it would wait for
        // ever (nothing else will release it); zero makes that an immediate error instead of a hang.
        .max_lifetime(Some(Duration::ZERO));
    if let Some(db) = &config.database {
        builder = builder.db(db.as_str());
    }
    builder.build().map_err(|e| ConfigError::Invalid {
        field: "uri",
        value: aquifer_core::redact_url(&config.uri),
        reason: e.to_string(),
    })
}

#[aquifer_core::async_trait]
impl Manager for Neo4jManager {
    type Connection = Neo4jConnection;
    type Error = Neo4jError;

    /// Cancel safety: dropping the future drops the half-open `Graph` and its socket.
    async fn connect(&self) -> Result<Neo4jConnection, Neo4jError> {
        let connect = |secret: Option<Secret>| async move {
            let driver = match secret {
                Some(secret) => driver_config(&self.config, &self.uri, &self.ctx.user, secret.expose())
                    .map_err(|e| Neo4jError::Aborted(Box::new(e)))?,
                None => self.driver.clone(),
            };
            self.open(driver).await
        };
        let refused = |e: &Neo4jError| matches!(e, Neo4jError::Authentication { .. });
        self.credentials.connect(connect, refused, Neo4jError::Credentials).await
    }

    /// Cancel safety: a dropped validation leaves at most a `RETURN 1` in flight, which neo4rs drains (or
    /// replaces the Bolt connection) on the next use; the engine discards the connection anyway.
    async fn validate(&self, conn: &mut Neo4jConnection) -> Result<(), Neo4jError> {
        conn.graph.run(PING).await.map_err(|e| self.classify(e))
    }

    fn is_broken(&self, conn: &mut Neo4jConnection) -> bool {
        conn.is_broken()
    }

    fn needs_reset(&self, conn: &mut Neo4jConnection) -> bool {
        conn.interrupted
    }

    /// A helper's future was dropped mid-exchange. neo4rs would repair the Bolt connection on the next use
    /// (drain what is in flight, send RESET, or reconnect if a read was cut in half); doing it now, in the
    /// background, also ends at once a transaction the server still holds open with its locks.
    ///
    /// Cancel safety: as for `validate`.
    async fn reset(&self, conn: &mut Neo4jConnection) -> Result<(), Neo4jError> {
        conn.graph.run(PING).await.map_err(|e| self.classify(e))?;
        conn.interrupted = false;
        Ok(())
    }

    /// Cancel safety: as for `validate`.
    async fn server_version(&self, conn: &mut Neo4jConnection) -> Result<Option<String>, Neo4jError> {
        let q = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition";
        let row = match conn.graph.execute(q).await {
            Ok(mut rows) => rows.next().await,
            Err(e) => Err(e),
        };
        match row {
            Ok(Some(row)) => {
                let name: String = row.get("name").unwrap_or_default();
                let versions: Vec<String> = row.get("versions").unwrap_or_default();
                let edition: String = row.get("edition").unwrap_or_default();
                let mut v = format!("{name} {}", versions.join(", ")).trim().to_owned();
                if !edition.is_empty() {
                    v.push_str(&format!(" ({edition})"));
                }
                Ok(Some(v))
            }
            Ok(None) => Ok(None),
            Err(e) => match self.classify(e) {
                // A server without dbms.components() still works; only a broken connection is an error.
                e if e.is_connection_error() => Err(e),
                _ => Ok(None),
            },
        }
    }

    fn descriptor(&self) -> Descriptor {
        self.descriptor.clone()
    }

    /// The password file's or provider's generation ([`Credentials::generation_now`]), for
    /// `retire_on_rotation`.
    fn credential_generation(&self) -> u64 {
        self.credentials.generation_now()
    }

    /// Refused credentials and an unknown database do not fix themselves between two retries.
    /// A refused password or an unknown database: retrying cannot fix them soon. Except a refused password
    /// while the password rotates (a file or a provider): the server may be changed a moment before or after
    /// the file, so the engine retries it with backoff like a transient failure.
    fn is_permanent(&self, error: &Neo4jError) -> bool {
        match error {
            Neo4jError::Authentication { .. } => self.credentials.is_url(),
            Neo4jError::UnknownDatabase { .. } => true,
            _ => false,
        }
    }

    fn error_type(&self, error: &Neo4jError) -> Cow<'static, str> {
        error.error_type()
    }
}

/// A pooled Bolt connection: a neo4rs [`Graph`] holding one Bolt connection. It dereferences to the `Graph`,
/// so the whole `Graph` API works as usual.
///
/// `run`, `run_on`, `execute`, `execute_read`, `execute_on`, `start_txn` and `start_txn_on` are also methods of this type, with the
/// `Graph`'s signatures (they take precedence over the dereferenced ones, so code written for a `Graph` compiles
/// unchanged): they call the `Graph`'s and, when the error says the Bolt connection is gone (I/O error, cut
/// exchange, refused reconnect) or still held by a stream or transaction, mark the connection broken, so the
/// pool discards it when it comes back instead of handing it out again. Errors inside a [`Txn`] are not seen
/// here; the pool's validation and the helpers catch those.
///
/// Drop a stream (`DetachedRowStream`) or transaction (`Txn`) before the next query on the same connection:
/// they hold its only Bolt connection, so a query issued meanwhile fails at once with neo4rs's
/// `Error::ConnectionError` (through the helpers: [`Neo4jError::ConnectionBusy`]). Do not keep them after
/// the pooled connection is returned either: the next user's queries would fail the same way, and the pool
/// then discards the connection.
pub struct Neo4jConnection {
    graph: Graph,
    /// Set while a helper's exchange is in flight; still set on return means its future was dropped.
    pub(crate) interrupted: bool,
    /// A call saw the Bolt connection break. Atomic because the pooled connection hands out `&Neo4jConnection`
    /// (through `Deref`) to the methods that set it.
    pub(crate) broken: AtomicBool,
}

impl Neo4jConnection {
    /// The neo4rs `Graph` of this connection.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Whether a call on this connection saw its Bolt connection break (the pool discards it on return).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    fn watch<T>(&self, result: neo4rs::Result<T>) -> neo4rs::Result<T> {
        if let Err(e) = &result
            && breaks_connection(e)
        {
            self.mark_broken();
        }
        result
    }

    /// [`Graph::run`], marking the connection broken when the Bolt connection is gone.
    pub async fn run(&self, q: impl Into<Query>) -> neo4rs::Result<RunResult> {
        self.watch(self.graph.run(q).await)
    }

    /// [`Graph::run_on`], marking the connection broken when the Bolt connection is gone.
    pub async fn run_on(&self, db: impl Into<neo4rs::Database>, q: impl Into<Query>) -> neo4rs::Result<()> {
        self.watch(self.graph.run_on(db, q).await)
    }

    /// [`Graph::execute_on`], marking the connection broken when the Bolt connection is gone.
    pub async fn execute_on(
        &self,
        db: impl Into<neo4rs::Database>,
        q: impl Into<Query>,
    ) -> neo4rs::Result<DetachedRowStream> {
        self.watch(self.graph.execute_on(db, q).await)
    }

    /// [`Graph::execute`], marking the connection broken when the Bolt connection is gone.
    pub async fn execute(&self, q: impl Into<Query>) -> neo4rs::Result<DetachedRowStream> {
        self.watch(self.graph.execute(q).await)
    }

    /// [`Graph::execute_read`], marking the connection broken when the Bolt connection is gone.
    pub async fn execute_read(&self, q: impl Into<Query>) -> neo4rs::Result<DetachedRowStream> {
        self.watch(self.graph.execute_read(q).await)
    }

    /// [`Graph::start_txn`], marking the connection broken when the Bolt connection is gone.
    pub async fn start_txn(&self) -> neo4rs::Result<Txn> {
        self.watch(self.graph.start_txn().await)
    }

    /// [`Graph::start_txn_on`], marking the connection broken when the Bolt connection is gone.
    pub async fn start_txn_on(&self, db: impl Into<neo4rs::Database>) -> neo4rs::Result<Txn> {
        self.watch(self.graph.start_txn_on(db).await)
    }
}

impl Deref for Neo4jConnection {
    type Target = Graph;

    fn deref(&self) -> &Graph {
        &self.graph
    }
}

impl fmt::Debug for Neo4jConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Neo4jConnection")
            .field("interrupted", &self.interrupted)
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}

/// The helpers' failures are [`Neo4jError`]s, classified by [`Neo4jError::error_type`].
impl aquifer_core::Operations for Neo4jManager {
    type OperationError = Neo4jError;

    fn retry_policy(&self) -> &aquifer_core::RetryPolicy {
        &self.config.retry
    }

    fn operation_error_type(&self, error: &Neo4jError) -> Cow<'static, str> {
        error.error_type()
    }
}
