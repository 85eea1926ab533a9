//! [`PgManager`]: how the engine opens, checks and recycles sqlx `PgConnection`s.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aquifer_core::{ConfigError, Credentials, Descriptor, Manager, Operations, RetryPolicy, Secret};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::config::PgConfig;

/// Opens sqlx [`PgConnection`]s with the session settings of a [`PgConfig`] and keeps returned ones clean
/// without a round trip per checkout or return.
///
/// How a returned connection is judged (no I/O unless the connection is already dirty):
/// - sqlx tracks every reply it still owes the caller (a query whose future was dropped mid-flight, a
///   `ROLLBACK` queued by a dropped [`sqlx::Transaction`]). The manager polls sqlx's own "wait until ready"
///   step once with a no-op waker: on a clean connection that returns at once without touching the socket.
///   Replies already received are consumed on the spot; if some are still on their way the connection is
///   reset in the background (the replies drained, errors that belonged to the abandoned query swallowed,
///   an open transaction rolled back) within `drain_timeout`, or closed.
/// - A connection whose socket failed or whose server ended the session is discarded (and counted as
///   `broken`); so is one returned inside a transaction sqlx still counts as open (a leaked
///   `Transaction`), because sqlx's transaction depth cannot be repaired from outside.
///
/// A transaction opened with a raw `BEGIN` statement is invisible to sqlx and so to the pool: use
/// [`Connection::begin`], [`PgPool::begin`](crate::PgPool::begin) or
/// [`PgPool::transaction`](crate::PgPool::transaction), and set
/// [`PgConfig::idle_in_transaction_session_timeout`] as a backstop.
pub struct PgManager {
    options: PgConnectOptions,
    init_sql: Vec<String>,
    pgbouncer: bool,
    drain_timeout: Duration,
    retry: RetryPolicy,
    descriptor: Descriptor,
    credentials: Credentials,
}

impl fmt::Debug for PgManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PgConnectOptions' own Debug prints the password: show only what the descriptor holds.
        f.debug_struct("PgManager")
            .field("server", &self.descriptor)
            .field("user", &self.options.get_username())
            .field("ssl_mode", &self.options.get_ssl_mode())
            .field("application_name", &self.options.get_application_name())
            .field("pgbouncer", &self.pgbouncer)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl PgManager {
    /// A manager connecting with `options`, adjusted by `config`: `application_name` (explicit setting, else
    /// the one in `options`, else the pool's name), the session settings, PgBouncer mode and the statement
    /// cache. Fails when `config` is invalid.
    pub fn new(options: PgConnectOptions, config: &PgConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let descriptor = describe(&options);
        let mut options = options;
        let app_name = match (&config.application_name, options.get_application_name()) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(config.pool.name.clone().unwrap_or_else(|| descriptor.default_pool_name())),
        };
        if let Some(name) = app_name {
            // PostgreSQL truncates at 63 bytes; cut on a character boundary so the name stays valid UTF-8.
            let mut end = name.len().min(63);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            options = options.application_name(&name[..end]);
        }
        let mut settings = Vec::new();
        if let Some(d) = config.statement_timeout {
            settings.push(("statement_timeout", d.as_millis()));
        }
        if let Some(d) = config.idle_in_transaction_session_timeout {
            settings.push(("idle_in_transaction_session_timeout", d.as_millis()));
        }
        if !settings.is_empty() {
            options = options.options(settings);
        }
        if config.pgbouncer {
            // PgBouncer 1.18 rejects unknown startup parameters; sqlx's extra_float_digits=2 is one of them.
            options = options.statement_cache_capacity(0).extra_float_digits(None);
        }
        if let Some(n) = config.statement_cache_capacity {
            options = options.statement_cache_capacity(n);
        }
        Ok(PgManager {
            options,
            init_sql: config.init_sql.clone(),
            pgbouncer: config.pgbouncer,
            drain_timeout: config.drain_timeout,
            retry: config.retry,
            descriptor,
            credentials: config.credential_source(),
        })
    }

    /// The connect options in use (session settings applied). Their `Debug` output includes the password.
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Whether PgBouncer transaction-pooling mode is on.
    pub fn pgbouncer(&self) -> bool {
        self.pgbouncer
    }
}

/// The helpers' failures are sqlx errors, classified by SQLSTATE.
impl Operations for PgManager {
    type OperationError = sqlx::Error;

    fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    fn operation_error_type(&self, error: &sqlx::Error) -> Cow<'static, str> {
        crate::error::error_type(error)
    }
}

fn describe(options: &PgConnectOptions) -> Descriptor {
    let address = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_owned(),
    };
    // PostgreSQL's default database is the user's name.
    let database = options.get_database().unwrap_or(options.get_username()).to_owned();
    Descriptor::new("postgresql").address(address).port(options.get_port()).namespace(database)
}

/// What sqlx's protocol state says about a returned connection.
#[derive(Debug, PartialEq, Eq)]
enum Protocol {
    /// Nothing owed: ready for the next query.
    Ready,
    /// Replies to an abandoned query or a queued `ROLLBACK` are still on their way.
    Busy,
    /// The socket failed or the server ended the session.
    Dead,
}

/// Most error replies of abandoned queries consumed in one go before leaving the rest to `reset`.
const MAX_STALE_ERRORS: usize = 8;

/// Polls sqlx's "wait until ready" step once, without waiting. On a clean connection it completes at once with
/// no I/O (empty write buffer, no reply pending); otherwise it sends what is queued and consumes the replies
/// that have already arrived. Error replies consumed here belonged to the abandoned query, not to anyone.
fn protocol_state(conn: &mut PgConnection) -> Protocol {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_STALE_ERRORS {
        // `flush` is sqlx's `wait_until_ready`: cancel-safe by design (its reads keep partial messages).
        let ready = pin!(Connection::flush(&mut *conn)).poll(&mut cx);
        match ready {
            Poll::Ready(Ok(())) => return Protocol::Ready,
            Poll::Ready(Err(e)) if is_stale_reply(&e) => continue,
            Poll::Ready(Err(_)) => return Protocol::Dead,
            Poll::Pending => return Protocol::Busy,
        }
    }
    Protocol::Busy
}

/// An error reply that ends only the abandoned statement, not the session.
fn is_stale_reply(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => !db.code().is_some_and(|c| crate::error::is_session_ending(&c)),
        _ => false,
    }
}

/// Sends what is queued and waits for every owed reply, swallowing the abandoned statements' errors.
async fn drain(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    loop {
        match Connection::flush(&mut *conn).await {
            Ok(()) => return Ok(()),
            Err(e) if is_stale_reply(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[aquifer_core::async_trait]
impl Manager for PgManager {
    type Connection = PgConnection;
    type Error = sqlx::Error;

    async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        let connect = |secret: Option<Secret>| {
            let options = match secret {
                Some(secret) => self.options.clone().password(secret.expose()),
                None => self.options.clone(),
            };
            async move { options.connect().await }
        };
        let mut conn =
            self.credentials.connect(connect, is_refused_password, |e| sqlx::Error::Configuration(Box::new(e))).await?;
        for sql in &self.init_sql {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut conn).await?;
        }
        Ok(conn)
    }

    async fn validate(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        conn.ping().await
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        // A leaked Transaction leaves sqlx's depth counter up; a ROLLBACK from outside cannot lower it. A
        // connection whose socket failed or whose session the server ended is known dead now, without I/O:
        // saying so here (not in a background reset) lets the pool check its idle connections before the
        // next checkout hands one out.
        conn.is_in_transaction() || protocol_state(conn) == Protocol::Dead
    }

    fn needs_reset(&self, conn: &mut PgConnection) -> bool {
        // Polled once per return (is_broken already consumed what had arrived; a clean connection answers
        // at once without touching the socket).
        protocol_state(conn) != Protocol::Ready
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        tokio::time::timeout(self.drain_timeout, drain(conn)).await.map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "an abandoned query did not finish within drain_timeout",
            ))
        })??;
        // The abandoned query may have run inside a transaction sqlx did not open (a raw BEGIN): outside a
        // transaction block now() is this statement's start, inside it is the transaction's.
        let probe = sqlx::raw_sql("SELECT now() <> statement_timestamp()").fetch_one(&mut *conn).await;
        let open = match probe {
            Ok(row) => sqlx::Row::try_get::<bool, _>(&row, 0)?,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("25P02") => true,
            Err(e) => return Err(e),
        };
        if open {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn server_version(&self, conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::raw_sql("SHOW server_version").fetch_one(&mut *conn).await?;
        Ok(Some(sqlx::Row::try_get::<String, _>(&row, 0)?))
    }

    fn descriptor(&self) -> Descriptor {
        self.descriptor.clone()
    }

    /// Behind PgBouncer in transaction mode ([`PgConfig::pgbouncer`]) a session-level setting made for one
    /// checkout would stay on a server connection other clients get between two transactions: every
    /// [`SessionContext`](aquifer_core::SessionContext) is refused ([`PgPool::get_session`](crate::PgPool::get_session),
    /// `get_with`, `get_timeout_with`), before anything is checked out.
    fn session_context_refusal(&self) -> Option<&str> {
        self.pgbouncer.then_some(PGBOUNCER_REFUSAL)
    }

    fn error_type(&self, error: &sqlx::Error) -> Cow<'static, str> {
        crate::error::error_type(error)
    }

    /// The password file's or provider's generation ([`Credentials::generation_now`]), for
    /// `retire_on_rotation`.
    fn credential_generation(&self) -> u64 {
        self.credentials.generation_now()
    }

    /// Refused credentials (class 28: `28P01` wrong password, `28000` no pg_hba entry or role not allowed)
    /// and a missing database (`3D000`) do not fix themselves between two retries.
    /// A refused password or role, or an unknown database: retrying cannot fix them soon. Except a refused
    /// password while the password rotates (a file or a provider): the server may be changed a moment before
    /// or after the file, so the engine retries it with backoff like a transient failure.
    fn is_permanent(&self, error: &sqlx::Error) -> bool {
        if is_refused_password(error) && !self.credentials.is_url() {
            return false;
        }
        match error {
            sqlx::Error::Database(e) => e.code().is_some_and(|c| c.starts_with("28") || c == "3D000"),
            _ => false,
        }
    }
}

/// Why a per-checkout context is refused behind PgBouncer in transaction mode.
const PGBOUNCER_REFUSAL: &str = "session-level settings are unsafe behind PgBouncer in transaction mode \
    (pgbouncer = true): they would stay on a server connection other clients share; apply them per \
    transaction with PgPool::with_session";

/// The server refused the password (`28P01`, invalid_password).
fn is_refused_password(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("28P01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_name_defaults_to_the_pool_name() {
        let mut config = PgConfig::default();
        config.pool.name = Some("orders-api".into());
        let options: PgConnectOptions = "postgres://app@db:5433/orders".parse().unwrap();
        let m = PgManager::new(options, &config).unwrap();
        assert_eq!(m.connect_options().get_application_name(), Some("orders-api"));
    }

    #[test]
    fn application_name_without_a_pool_name_is_the_descriptor() {
        let options: PgConnectOptions = "postgres://app@db:5433/orders".parse().unwrap();
        let m = PgManager::new(options, &PgConfig::default()).unwrap();
        assert_eq!(m.connect_options().get_application_name(), Some("db:5433/orders"));
    }

    #[test]
    fn the_url_application_name_is_kept() {
        let options: PgConnectOptions = "postgres://app@db/orders?application_name=mine".parse().unwrap();
        let m = PgManager::new(options, &PgConfig::default()).unwrap();
        assert_eq!(m.connect_options().get_application_name(), Some("mine"));
    }

    #[test]
    fn session_settings_go_into_the_startup_options() {
        let config = PgConfig {
            statement_timeout: Some(Duration::from_millis(1500)),
            idle_in_transaction_session_timeout: Some(Duration::from_secs(60)),
            ..PgConfig::default()
        };
        let options: PgConnectOptions = "postgres://app@db/orders?options=-c%20search_path%3Dapp".parse().unwrap();
        let m = PgManager::new(options, &config).unwrap();
        let startup = m.connect_options().get_options().unwrap();
        assert!(startup.contains("search_path=app"), "{startup}");
        assert!(startup.contains("-c statement_timeout=1500"), "{startup}");
        assert!(startup.contains("-c idle_in_transaction_session_timeout=60000"), "{startup}");
    }

    #[test]
    fn the_descriptor_names_host_port_and_database_but_no_credentials() {
        let options: PgConnectOptions = "postgres://app:hunter2@db.internal:6543/orders".parse().unwrap();
        let m = PgManager::new(options, &PgConfig::default()).unwrap();
        let d = m.descriptor();
        assert_eq!(d.system, "postgresql");
        assert_eq!(d.server_address.as_deref(), Some("db.internal"));
        assert_eq!(d.server_port, Some(6543));
        assert_eq!(d.namespace.as_deref(), Some("orders"));
        assert!(!format!("{m:?}").contains("hunter2"));
    }
}
