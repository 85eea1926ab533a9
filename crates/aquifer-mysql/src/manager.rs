//! [`MySqlManager`]: how the pool opens, checks and recycles mysql_async connections.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use aquifer_core::{ConfigError, Credentials, Descriptor, Manager, Operations, RetryPolicy, Secret, redact_url};
use mysql_async::consts::StatusFlags;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error, Opts, OptsBuilder, SslOpts};

use crate::MySqlStartError;
use crate::config::{DbSystem, MySqlConfig, SslMode, Transport};

/// A [`Manager`] of mysql_async [`Conn`]ections to one MySQL 8 or MariaDB server.
///
/// How returned connections are kept clean without a round trip per return (see docs/mysql.md):
/// - mysql_async marks a connection *disconnected* while a command is in flight and clears the mark when the
///   exchange completes. A connection returned with the mark still set had its query dropped mid-flight (or
///   lost its socket): its replies are still on the wire, so it is closed, never reused
///   ([`is_broken`](Manager::is_broken)).
/// - The server reports in every OK packet whether a transaction is open and whether autocommit is on. A
///   connection returned inside a transaction, with autocommit switched, or whose last reply was an error (the
///   transaction state is then unknown), is rolled back (and its autocommit mode restored) in the background
///   before reuse ([`needs_reset`](Manager::needs_reset)).
/// - A result set left unread is drained by mysql_async itself before the next command on the connection.
/// - With [`MySqlConfig::reset_on_return`], every return runs `COM_RESET_CONNECTION` and the session settings.
#[derive(Clone)]
pub struct MySqlManager {
    inner: Arc<Inner>,
}

struct Inner {
    /// The redacted URL, for Debug.
    shown: String,
    config: MySqlConfig,
    /// The URL's or caller's `Opts` with the config applied: what every connect uses.
    opts: Opts,
    transport: Transport,
    session: Vec<String>,
    descriptor: Descriptor,
    /// Where each new connection's password comes from (the URL's by default).
    credentials: Credentials,
    /// The server's `max_allowed_packet`, read on the first connect (0 until then); the helpers refuse larger
    /// statements with a clear error instead of letting the server cut the connection.
    max_allowed_packet: AtomicU64,
    /// Whether a fresh connection (after the session statements) is in autocommit mode: `AUTOCOMMIT_UNKNOWN`
    /// until the first connect. A connection returned in the other mode is put back the way it came.
    autocommit: AtomicU8,
}

const AUTOCOMMIT_UNKNOWN: u8 = 0;
const AUTOCOMMIT_ON: u8 = 1;
const AUTOCOMMIT_OFF: u8 = 2;

impl MySqlManager {
    /// A manager for `config.url` (a `mysql://` or `mariadb://` URL such as `mysql://app:secret@db:3306/orders`)
    /// with `config`'s MySQL settings (its `pool` is the pool's business, not the manager's). mysql_async's URL
    /// parameters apply (`socket`, `prefer_socket`, `require_ssl`, `stmt_cache_size`...); without `socket` or
    /// `prefer_socket=true` connections use TCP.
    pub fn new(config: &MySqlConfig) -> Result<Self, MySqlStartError> {
        let url = config.url.as_ref().ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: "set MySqlConfig.url (MySqlConfig::from_url), or use MySqlConfig::connect_with_options".into(),
        })?;
        let hosts = crate::hosts::host_urls(url.expose(), &config.hosts)?;
        if hosts.len() > 1 {
            return Err(ConfigError::Invalid {
                field: if config.hosts.is_empty() { "url" } else { "hosts" },
                value: if config.hosts.is_empty() { url.redacted() } else { format!("{:?}", config.hosts) },
                reason: format!(
                    "lists {} hosts, and a MySqlPool connects to one: build a cluster pool \
                     (MySqlConfig::build_cluster, see docs/replicas.md)",
                    hosts.len()
                ),
            }
            .into());
        }
        let single = hosts.into_iter().next().unwrap_or_default();
        let url = single.as_str();
        let bad = |reason: String| MySqlStartError::Url { system: "mysql", url: redact_url(url), reason };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (system, rewritten) = match parsed.scheme() {
            "mysql" => (DbSystem::MySql, url.to_owned()),
            "mariadb" => (DbSystem::MariaDb, format!("mysql{}", &url["mariadb".len()..])),
            other => return Err(bad(format!("unsupported scheme `{other}` (expected mysql:// or mariadb://)"))),
        };
        let mut transport = Transport::Tcp;
        for (k, v) in parsed.query_pairs() {
            // mysql_async reads an empty `socket=` as the path "" and fails only on connect, with "Invalid
            // argument (os error 22)"; no parameter has a meaningful empty value.
            if v.trim().is_empty() {
                return Err(bad(format!("URL parameter `{k}` is empty; give it a value or leave it out")));
            }
            match &*k {
                "socket" => transport = Transport::Socket(v.into_owned().into()),
                "prefer_socket" if v == "true" && !matches!(transport, Transport::Socket(_)) => {
                    transport = Transport::PreferSocket;
                }
                _ => {}
            }
        }
        let opts = Opts::from_url(&rewritten).map_err(|e| bad(e.to_string()))?;
        Ok(Self::build(opts, transport, system, redact_url(url), config.clone())?)
    }

    /// A manager for `url` with the default settings (see [`MySqlManager::new`]).
    pub fn from_url(url: &str) -> Result<Self, MySqlStartError> {
        Self::new(&MySqlConfig::from_url(url))
    }

    /// A manager for mysql_async [`Opts`] (for what a URL cannot carry) with `config`'s MySQL settings
    /// (`config.url` is ignored). The `Opts`' `socket` is honoured; their `prefer_socket` (true unless set
    /// otherwise) is not: connections use TCP unless [`MySqlConfig::transport`] says otherwise.
    pub fn with_opts(opts: impl Into<Opts>, config: &MySqlConfig) -> Result<Self, ConfigError> {
        let opts = opts.into();
        let transport = match opts.socket() {
            Some(path) => Transport::Socket(path.into()),
            None => Transport::Tcp,
        };
        let shown = describe_opts(&opts);
        Self::build(opts, transport, DbSystem::MySql, shown, config.clone())
    }

    /// A manager for mysql_async [`Opts`] with the default settings (see [`MySqlManager::with_opts`]).
    pub fn from_opts(opts: impl Into<Opts>) -> Self {
        Self::with_opts(opts, &MySqlConfig::default()).expect("the default MySqlConfig is valid")
    }

    fn build(
        base: Opts,
        base_transport: Transport,
        base_system: DbSystem,
        shown: String,
        config: MySqlConfig,
    ) -> Result<Self, ConfigError> {
        config.validate_connection()?;
        let transport = config.transport.clone().unwrap_or_else(|| base_transport.clone());
        let mut b = OptsBuilder::from_opts(base.clone());
        b = match &transport {
            Transport::Tcp => b.prefer_socket(false).socket(None::<String>),
            Transport::PreferSocket => b.prefer_socket(true).socket(None::<String>),
            Transport::Socket(path) => {
                let path = path.to_str().ok_or_else(|| ConfigError::Invalid {
                    field: "transport",
                    value: format!("socket {path:?}"),
                    reason: "the socket path must be valid UTF-8".into(),
                })?;
                b.prefer_socket(false).socket(Some(path))
            }
        };
        if !config.program_name.is_empty() {
            b = b.connect_attribute("program_name", config.program_name.clone());
        }
        match config.ssl_mode {
            None => {
                if let (Some(ca), Some(ssl)) = (&config.ssl_ca, base.ssl_opts()) {
                    b = b.ssl_opts(ssl.clone().with_root_certs(vec![ca.clone().into()]));
                }
            }
            Some(SslMode::Disabled) => b = b.ssl_opts(None::<SslOpts>),
            Some(mode) => {
                let mut ssl = base
                    .ssl_opts()
                    .cloned()
                    .unwrap_or_default()
                    .with_danger_accept_invalid_certs(mode == SslMode::Required)
                    .with_danger_skip_domain_validation(mode != SslMode::VerifyIdentity);
                if let Some(ca) = &config.ssl_ca {
                    ssl = ssl.with_root_certs(vec![ca.clone().into()]);
                }
                b = b.ssl_opts(ssl);
            }
        }
        if let Some(n) = config.stmt_cache_size {
            b = b.stmt_cache_size(n);
        }
        let opts: Opts = b.into();
        let system = config.system.unwrap_or(base_system);
        let mut descriptor = Descriptor::new(system.as_str());
        descriptor = match &transport {
            Transport::Socket(path) => descriptor.address(path.display().to_string()),
            _ => descriptor.address(opts.ip_or_hostname()).port(opts.tcp_port()),
        };
        if let Some(db) = opts.db_name() {
            descriptor = descriptor.namespace(db);
        }
        let session = config.session_statements();
        let credentials = Credentials::from_config(config.password_file.as_deref(), &config.credentials)?;
        Ok(MySqlManager {
            inner: Arc::new(Inner {
                shown,
                credentials,
                config,
                opts,
                transport,
                session,
                descriptor,
                max_allowed_packet: AtomicU64::new(0),
                autocommit: AtomicU8::new(AUTOCOMMIT_UNKNOWN),
            }),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &MySqlConfig {
        &self.inner.config
    }

    /// The transport connections use (the config's, else the URL's, else TCP).
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The mysql_async options every connect uses (they contain the password: do not log them).
    pub fn opts(&self) -> &Opts {
        &self.inner.opts
    }

    /// The server's `max_allowed_packet` in bytes, once a connection has been opened.
    pub fn max_allowed_packet(&self) -> Option<u64> {
        match self.inner.max_allowed_packet.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// True when `flags` show a different autocommit mode than a fresh connection has (a user ran
    /// `SET autocommit = 0` and returned the connection: the next user's writes would never be committed).
    fn autocommit_changed(&self, flags: StatusFlags) -> bool {
        let on = flags.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        match self.inner.autocommit.load(Ordering::Relaxed) {
            AUTOCOMMIT_ON => !on,
            AUTOCOMMIT_OFF => on,
            _ => false,
        }
    }

    pub(crate) async fn apply_session(&self, conn: &mut Conn) -> Result<(), Error> {
        for statement in &self.inner.session {
            conn.query_drop(statement).await?;
        }
        Ok(())
    }
}

/// Host, port, user and database of `Opts`, without the password (mysql_async's own `Debug` shows it).
fn describe_opts(opts: &Opts) -> String {
    let user = opts.user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = opts.db_name().unwrap_or_default();
    match opts.socket() {
        Some(socket) => format!("mysql://{user}localhost/{db}?socket={socket}"),
        None => format!("mysql://{user}{}:{}/{db}", opts.ip_or_hostname(), opts.tcp_port()),
    }
}

impl fmt::Debug for MySqlManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("MySqlManager")
            .field("url", &i.shown)
            .field("transport", &i.transport)
            .field("descriptor", &i.descriptor)
            .field("config", &i.config)
            .finish()
    }
}

#[aquifer_core::async_trait]
impl Manager for MySqlManager {
    type Connection = Conn;
    type Error = Error;

    /// Opens a connection with the chosen transport and TLS, then runs the session statements (time zone,
    /// sql_mode, wait_timeout, init SQL). A failing statement fails the connect.
    async fn connect(&self) -> Result<Conn, Error> {
        let connect = |secret: Option<Secret>| {
            let opts = match secret {
                Some(secret) => Opts::from(OptsBuilder::from_opts(self.inner.opts.clone()).pass(Some(secret.expose()))),
                None => self.inner.opts.clone(),
            };
            Conn::new(opts)
        };
        let other = |e: aquifer_core::CredentialError| Error::Other(Box::new(e));
        let mut conn = self.inner.credentials.connect(connect, is_refused_password, other).await?;
        self.apply_session(&mut conn).await?;
        if let Some(ok) = conn.last_ok_packet() {
            let on = ok.status_flags().contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
            self.inner.autocommit.store(if on { AUTOCOMMIT_ON } else { AUTOCOMMIT_OFF }, Ordering::Relaxed);
        }
        if self.inner.max_allowed_packet.load(Ordering::Relaxed) == 0 {
            let max: Option<u64> = conn.query_first("SELECT @@max_allowed_packet").await?;
            self.inner.max_allowed_packet.store(max.unwrap_or(0), Ordering::Relaxed);
        }
        Ok(conn)
    }

    /// `COM_PING`.
    async fn validate(&self, conn: &mut Conn) -> Result<(), Error> {
        conn.ping().await
    }

    /// A connection mysql_async still marks as disconnected was returned with a command in flight (its
    /// future was dropped) or lost its socket: it cannot be brought back in sync, so it is closed.
    fn is_broken(&self, conn: &mut Conn) -> bool {
        conn.is_disconnected()
    }

    /// Reset when a transaction is open, when autocommit was switched, when the last reply was an error (the
    /// transaction state is then unknown), or on every return with `reset_on_return`.
    fn needs_reset(&self, conn: &mut Conn) -> bool {
        if self.inner.config.reset_on_return {
            return true;
        }
        match conn.last_ok_packet() {
            Some(ok) => {
                let flags = ok.status_flags();
                flags.contains(StatusFlags::SERVER_STATUS_IN_TRANS) || self.autocommit_changed(flags)
            }
            None => true,
        }
    }

    /// `ROLLBACK` (and `SET autocommit` back if it was switched); with `reset_on_return`,
    /// `COM_RESET_CONNECTION` (or `COM_CHANGE_USER` on servers without it) followed by the session statements.
    async fn reset(&self, conn: &mut Conn) -> Result<(), Error> {
        if self.inner.config.reset_on_return {
            if !conn.reset().await? {
                conn.change_user(Default::default()).await?;
            }
            return self.apply_session(conn).await;
        }
        conn.query_drop("ROLLBACK").await?;
        if conn.last_ok_packet().is_some_and(|ok| self.autocommit_changed(ok.status_flags())) {
            let on = self.inner.autocommit.load(Ordering::Relaxed) == AUTOCOMMIT_ON;
            conn.query_drop(if on { "SET autocommit = 1" } else { "SET autocommit = 0" }).await?;
        }
        Ok(())
    }

    async fn server_version(&self, conn: &mut Conn) -> Result<Option<String>, Error> {
        conn.query_first("SELECT VERSION()").await
    }

    fn descriptor(&self) -> Descriptor {
        self.inner.descriptor.clone()
    }

    fn error_type(&self, error: &Error) -> Cow<'static, str> {
        crate::error::error_type(error)
    }

    /// The password file's or provider's generation ([`Credentials::generation_now`]), for
    /// `retire_on_rotation`.
    fn credential_generation(&self) -> u64 {
        self.inner.credentials.generation_now()
    }

    /// Refused credentials (1045 access denied, 1044 no access to the database, 1698 plugin refused) and an
    /// unknown database (1049) do not fix themselves between two retries.
    /// Access denied, an unknown database or user: retrying cannot fix them soon. Except a refused password
    /// while the password rotates (a file or a provider): the server may be changed a moment before or after
    /// the file, so the engine retries it with backoff like a transient failure.
    fn is_permanent(&self, error: &Error) -> bool {
        if is_refused_password(error) && !self.inner.credentials.is_url() {
            return false;
        }
        matches!(error, Error::Server(s) if matches!(s.code, 1044 | 1045 | 1049 | 1698))
    }
}

/// The server refused the user's password (ER_ACCESS_DENIED_ERROR, 1045).
fn is_refused_password(error: &Error) -> bool {
    matches!(error, Error::Server(s) if s.code == 1045)
}

/// The helpers' failures are mysql_async errors, classified by server error number.
impl Operations for MySqlManager {
    type OperationError = Error;

    fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.config.retry
    }

    fn operation_error_type(&self, error: &Error) -> Cow<'static, str> {
        crate::error::error_type(error)
    }
}
