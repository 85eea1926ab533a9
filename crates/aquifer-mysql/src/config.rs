//! [`MySqlConfig`]: the pool settings, the URL, and what aquifer-mysql adds to a mysql_async connection
//! (transport, session settings, TLS, reset policy, helper retries).

use std::path::PathBuf;
use std::time::Duration;

use aquifer_core::{ClusterConfig, ConfigError, Credentials, DatabaseUrl, EnvVars, PoolConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

/// How connections reach the server.
///
/// mysql_async's own default (`prefer_socket=true`) opens a TCP connection, asks the server for `@@socket` and,
/// when that path exists on this machine, silently reconnects through the unix socket. Which transport (and
/// which MySQL account: `root@127.0.0.1` and `root@localhost` are different accounts) a connection ends up
/// with then depends on the machine. Aquifer makes the choice explicit.
///
/// Serialized as `"tcp"`, `"prefer_socket"` or `{ "socket": "/run/mysqld/mysqld.sock" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP to the URL's host and port, and nothing else.
    Tcp,
    /// The unix socket at this path (host and port are then only used for metrics).
    Socket(PathBuf),
    /// mysql_async's behaviour: TCP first, then the socket the server reports in `@@socket` if it can be
    /// opened, falling back to the TCP connection otherwise. One extra connect per connection.
    PreferSocket,
}

/// TLS requirements, named after the MySQL client's `--ssl-mode`. TLS uses rustls (ring).
///
/// There is no `PREFERRED`: mysql_async either requires TLS or does not use it, and a silent downgrade is
/// what `PREFERRED` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// No TLS.
    Disabled,
    /// TLS, without checking the server's certificate (encryption against passive eavesdropping only).
    Required,
    /// TLS, the certificate must chain to a trusted root ([`MySqlConfig::ssl_ca`] or the built-in roots), the
    /// host name is not checked.
    VerifyCa,
    /// TLS, the certificate must chain to a trusted root and name the host connected to.
    VerifyIdentity,
}

/// The OpenTelemetry `db.system.name` of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbSystem {
    /// `mysql`.
    #[serde(rename = "mysql")]
    MySql,
    /// `mariadb`.
    #[serde(rename = "mariadb")]
    MariaDb,
}

impl DbSystem {
    /// The `db.system.name` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DbSystem::MySql => "mysql",
            DbSystem::MariaDb => "mariadb",
        }
    }
}

/// How to build a [`MySqlPool`](crate::MySqlPool): the engine's [`PoolConfig`], the connection URL, and the
/// MySQL/MariaDB settings applied to every connection.
///
/// ```
/// use std::time::Duration;
/// use aquifer_mysql::{MySqlConfig, Transport};
///
/// let config = MySqlConfig {
///     time_zone: Some("+00:00".into()),
///     sql_mode: Some("STRICT_ALL_TABLES,NO_ZERO_DATE".into()),
///     wait_timeout: Some(Duration::from_secs(600)),
///     ..MySqlConfig::from_url("mysql://app@db:3306/orders")
/// };
/// assert_eq!(config.transport, None); // the URL decides; TCP unless it says otherwise
/// config.validate().unwrap();
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MySqlConfig {
    /// Pool sizing and timeouts. Default: [`PoolConfig::default`].
    pub pool: PoolConfig,
    /// The connection URL (`mysql://user:password@host:3306/database` or `mariadb://...`; mysql_async's URL
    /// parameters apply); its password never appears in `Debug` or errors. Default: none: connecting then
    /// fails with a [`ConfigError::Missing`] unless mysql_async `Opts` are given
    /// ([`MySqlConfig::connect_with_options`]).
    pub url: Option<DatabaseUrl>,
    /// The servers of a replicated cluster, `host:port` each (`[v6]:port` for IPv6; the port defaults to
    /// 3306), in place of the URL's host; the URL still gives the user, password, database and parameters.
    /// A URL may also list them itself: `mysql://app@db1:3306,db2:3306/orders`. With more than one server
    /// the pool is a cluster pool (see docs/replicas.md): roles come from each server's `@@read_only` and
    /// replica status, never from the order. Default: empty (the URL's host or hosts).
    pub hosts: Vec<String>,
    /// How a cluster pool ([`MySqlConfig::build_cluster`]) routes and watches its hosts: target,
    /// `max_replica_lag`, check intervals. Not used by a single-host pool. Default: [`ClusterConfig::default`].
    pub cluster: ClusterConfig,
    /// TCP, a unix socket, or mysql_async's prefer-socket behaviour. Default: `None`, which means what the URL
    /// says — `socket=/path` selects that socket, `prefer_socket=true` the prefer-socket behaviour — and plain
    /// TCP otherwise (mysql_async's own default would be prefer-socket). When building from
    /// [`mysql_async::Opts`], their `socket` is honoured and their `prefer_socket` ignored.
    pub transport: Option<Transport>,
    /// `db.system.name` for metrics and health. Default: `None`: `mariadb` for a `mariadb://` URL, `mysql`
    /// otherwise (the server's flavour is only known after connecting; the pool's attributes are fixed before).
    pub system: Option<DbSystem>,
    /// Session `time_zone` set on every new connection (and again after a reset), e.g. `+00:00`; named zones
    /// need the server's time zone tables. Default: `None` (the server's default).
    pub time_zone: Option<String>,
    /// Session `sql_mode` set on every new connection (and after a reset). Default: `None` (the server's
    /// default).
    pub sql_mode: Option<String>,
    /// Session `wait_timeout`: the server closes a connection idle longer than this. Keep it above the pool's
    /// `idle_timeout` so the pool, not the server, retires idle connections. Whole seconds. Default: `None`
    /// (the server's default, 8 hours).
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Option<Duration>,
    /// More statements run, in order, on every new connection (and after a reset), after the settings above.
    /// Default: none.
    pub init_sql: Vec<String>,
    /// Run `COM_RESET_CONNECTION` on every returned connection (clears user variables, temporary tables, locks,
    /// prepared statements and session settings; the settings above are then applied again). Costs a round
    /// trip or two per return, and the prepared statement cache: about 3x less throughput for short queries.
    /// Default: `false`: an open transaction is rolled back on return, session state is kept.
    pub reset_on_return: bool,
    /// The `program_name` connection attribute (shown in `performance_schema.session_connect_attrs` on MySQL
    /// 8); empty to send none. Default: `aquifer`.
    pub program_name: String,
    /// TLS. Default: `None`: what the URL says (`require_ssl=true`, `verify_ca`, `verify_identity`), no TLS
    /// otherwise.
    pub ssl_mode: Option<SslMode>,
    /// A PEM or DER file with the root certificate(s) to trust for TLS, besides the built-in roots.
    /// Default: `None`.
    pub ssl_ca: Option<PathBuf>,
    /// Prepared statements cached per connection (mysql_async's LRU cache). Default: `None` (mysql_async's
    /// default, 32).
    pub stmt_cache_size: Option<usize>,
    /// A file holding the password, re-read before a new connection whenever it changes (a Kubernetes secret,
    /// a Vault agent's output): the password in the URL is then ignored. See docs/operations.md, "Rotating
    /// credentials". Default: none.
    pub password_file: Option<PathBuf>,
    /// Where the password comes from when it is not the URL's or `password_file`'s: a
    /// [`CredentialProvider`](aquifer_core::CredentialProvider) of the service's own (IAM tokens, Vault), set
    /// in code (`Credentials::provider_fn(..)`). Not serialised. Default: the URL's password.
    #[serde(skip)]
    pub credentials: Credentials,
    /// Retries of transient failures by the helpers ([`MySqlPool::fetch_one`](crate::MySqlPool::fetch_one)
    /// and friends).
    /// Default: 3 attempts, 10 ms doubling to at most 1 s, with jitter.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `init_sql` may carry secrets (`SET PASSWORD`, keys for encryption functions): only its length shows.
        f.debug_struct("MySqlConfig")
            .field("pool", &self.pool)
            .field("url", &self.url)
            .field("hosts", &self.hosts)
            .field("cluster", &self.cluster)
            .field("transport", &self.transport)
            .field("system", &self.system)
            .field("time_zone", &self.time_zone)
            .field("sql_mode", &self.sql_mode)
            .field("wait_timeout", &self.wait_timeout)
            .field("init_sql", &format_args!("[{} statement(s)]", self.init_sql.len()))
            .field("reset_on_return", &self.reset_on_return)
            .field("program_name", &self.program_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_ca", &self.ssl_ca)
            .field("stmt_cache_size", &self.stmt_cache_size)
            .field("password_file", &self.password_file)
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for MySqlConfig {
    fn default() -> Self {
        MySqlConfig {
            pool: PoolConfig::default(),
            url: None,
            hosts: Vec::new(),
            cluster: ClusterConfig::default(),
            // Explicit over clever: TCP unless asked, so the account and the path are the ones in the URL.
            transport: None,
            system: None,
            time_zone: None,
            sql_mode: None,
            wait_timeout: None,
            init_sql: Vec::new(),
            // mysql_async's Pool resets on every return and loses 3x throughput; state tracking keeps returned
            // connections safe without a round trip (see docs/mysql.md).
            reset_on_return: false,
            program_name: "aquifer".to_owned(),
            ssl_mode: None,
            ssl_ca: None,
            stmt_cache_size: None,
            password_file: None,
            credentials: Credentials::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl MySqlConfig {
    /// The defaults with `url` set.
    pub fn from_url(url: impl Into<String>) -> Self {
        MySqlConfig { url: Some(DatabaseUrl::new(url)), ..MySqlConfig::default() }
    }

    /// Checks the pool settings ([`PoolConfig::validate`]) and the MySQL settings; the error names the field
    /// and the value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pool.validate()?;
        self.validate_connection()
    }

    /// Checks the MySQL settings only (what a manager uses).
    pub(crate) fn validate_connection(&self) -> Result<(), ConfigError> {
        Credentials::from_config(self.password_file.as_deref(), &self.credentials)?;
        for (field, value) in [("time_zone", &self.time_zone), ("sql_mode", &self.sql_mode)] {
            if let Some(v) = value {
                check_literal(field, v)?;
            }
        }
        if let Some(t) = self.wait_timeout {
            if t < Duration::from_secs(1) || t.subsec_nanos() != 0 {
                return Err(ConfigError::Invalid {
                    field: "wait_timeout",
                    value: humantime_serde::re::humantime::format_duration(t).to_string(),
                    reason: "must be a whole number of seconds, at least 1s".into(),
                });
            }
            if t.as_secs() > 31_536_000 {
                return Err(ConfigError::Invalid {
                    field: "wait_timeout",
                    value: humantime_serde::re::humantime::format_duration(t).to_string(),
                    reason: "must not exceed one year (the server's maximum)".into(),
                });
            }
        }
        for (i, sql) in self.init_sql.iter().enumerate() {
            if sql.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    field: "init_sql",
                    value: format!("[{i}] = {sql:?}"),
                    reason: "statements must not be empty".into(),
                });
            }
        }
        if let Some(Transport::Socket(p)) = &self.transport
            && p.as_os_str().is_empty()
        {
            return Err(ConfigError::Invalid {
                field: "transport",
                value: "socket \"\"".into(),
                reason: "the socket path must not be empty".into(),
            });
        }
        if self.program_name.len() > 256 || self.program_name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                field: "program_name",
                value: format!("{:?}", self.program_name),
                reason: "must be at most 256 printable characters".into(),
            });
        }
        if let Some(url) = &self.url {
            crate::hosts::host_urls(url.expose(), &self.hosts)?;
        } else if let Some((i, entry, why)) =
            self.hosts.iter().enumerate().find_map(|(i, h)| crate::hosts::parse_host(h).err().map(|why| (i, h, why)))
        {
            return Err(ConfigError::Invalid { field: "hosts", value: format!("[{i}] = {entry:?}"), reason: why });
        }
        if self.stmt_cache_size == Some(0) {
            // mysql_async treats 0 as "no cache"; say so rather than guess what was meant.
            return Err(ConfigError::Invalid {
                field: "stmt_cache_size",
                value: "0".into(),
                reason: "must be at least 1; leave it unset for the default".into(),
            });
        }
        Ok(())
    }

    /// Reads the configuration from `{prefix}_*` variables through `lookup` ([`MySqlConfig::from_env`] reads the
    /// process environment; the conventional prefix is `MYSQL`, which [`connect_env`](crate::connect_env)
    /// uses): `{prefix}_URL` (required: a missing URL is a [`ConfigError::Missing`] naming it), `{prefix}_HOSTS`
    /// (`db1:3306,db2:3306`, see [`hosts`](MySqlConfig::hosts)), the cluster settings
    /// ([`ClusterConfig::read_lookup`]: `{prefix}_TARGET_SESSION_ATTRS`, `{prefix}_MAX_REPLICA_LAG`...), the pool
    /// settings from `{prefix}_POOL_*` and `{prefix}_NAME` ([`PoolConfig::from_lookup`]),
    /// `{prefix}_TRANSPORT` (`tcp`, `prefer_socket` or `socket:/path`), `{prefix}_SYSTEM` (`mysql`,
    /// `mariadb`), `{prefix}_TIME_ZONE`, `{prefix}_SQL_MODE`, `{prefix}_WAIT_TIMEOUT` (`600s`, `10m`),
    /// `{prefix}_INIT_SQL` (statements separated by `;`), `{prefix}_RESET_ON_RETURN` (`true`/`false`),
    /// `{prefix}_PROGRAM_NAME`, `{prefix}_SSL_MODE` (`disabled`, `required`, `verify_ca`, `verify_identity`),
    /// `{prefix}_SSL_CA` (a path), `{prefix}_STMT_CACHE_SIZE`, `{prefix}_PASSWORD_FILE`, `{prefix}_RETRY_MAX_ATTEMPTS`. Unset or empty
    /// variables keep their default. Errors name the variable and show its value as written (passwords
    /// redacted).
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<MySqlConfig, ConfigError> {
        let env = EnvVars::new(prefix, &lookup);
        let mut c = MySqlConfig { pool: PoolConfig::from_lookup(prefix, &lookup)?, ..MySqlConfig::default() };
        c.url = env.get("URL").map(|u| DatabaseUrl::new(u.trim()));
        if let Some(v) = env.get("HOSTS") {
            c.hosts = v.split(',').map(|h| h.trim().to_owned()).collect();
        }
        c.cluster.read_lookup(prefix, &lookup)?;
        env.parse("TRANSPORT", &mut c.transport, |t| {
            Ok(Some(match t.to_ascii_lowercase().as_str() {
                "tcp" => Transport::Tcp,
                "prefer_socket" => Transport::PreferSocket,
                _ => match t.strip_prefix("socket:") {
                    Some(path) if !path.is_empty() => Transport::Socket(PathBuf::from(path)),
                    _ => return Err("expected tcp, prefer_socket or socket:/path/to/socket".into()),
                },
            }))
        })?;
        env.parse("SYSTEM", &mut c.system, |v| match v.to_ascii_lowercase().as_str() {
            "mysql" => Ok(Some(DbSystem::MySql)),
            "mariadb" => Ok(Some(DbSystem::MariaDb)),
            _ => Err("expected mysql or mariadb".into()),
        })?;
        c.time_zone = env.get("TIME_ZONE").map(|v| v.trim().to_owned());
        c.sql_mode = env.get("SQL_MODE").map(|v| v.trim().to_owned());
        // No `off`: unset keeps the server's default, and 0 is refused by validate().
        env.parse("WAIT_TIMEOUT", &mut c.wait_timeout, |v| {
            humantime::parse_duration(v).map(Some).map_err(|e| format!("expected a duration such as 600s or 10m ({e})"))
        })?;
        if let Some(v) = env.get("INIT_SQL") {
            c.init_sql = v.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        }
        env.boolean("RESET_ON_RETURN", &mut c.reset_on_return)?;
        // Empty is a value here: send no program name.
        if let Some(v) = env.get_raw("PROGRAM_NAME") {
            c.program_name = v.trim().to_owned();
        }
        env.parse("SSL_MODE", &mut c.ssl_mode, |v| match v.to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" => Ok(Some(SslMode::Disabled)),
            "required" => Ok(Some(SslMode::Required)),
            "verify_ca" => Ok(Some(SslMode::VerifyCa)),
            "verify_identity" => Ok(Some(SslMode::VerifyIdentity)),
            _ => Err("expected disabled, required, verify_ca or verify_identity".into()),
        })?;
        c.ssl_ca = env.get("SSL_CA").map(|v| PathBuf::from(v.trim()));
        env.optional_number("STMT_CACHE_SIZE", &mut c.stmt_cache_size)?;
        c.password_file = env.get("PASSWORD_FILE").map(|p| PathBuf::from(p.trim()));
        env.parse("RETRY_MAX_ATTEMPTS", &mut c.retry.max_attempts, |v| match v.parse() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("expected a whole number, at least 1".into()),
        })?;
        // Every field validate_connection() checks has the variable of the same name.
        c.validate_connection().map_err(|e| env.rename(e, |field| Some(field.to_ascii_uppercase())))?;
        if c.url.is_none() {
            return Err(ConfigError::Missing {
                field: env.var("URL"),
                reason: format!("set {} to mysql://user:password@host:3306/database", env.var("URL")),
            });
        }
        Ok(c)
    }

    /// The statements run on every new connection (and after a reset), in order: one `SET` for the session
    /// settings, then [`init_sql`](MySqlConfig::init_sql).
    pub fn session_statements(&self) -> Vec<String> {
        let mut sets = Vec::new();
        if let Some(tz) = &self.time_zone {
            sets.push(format!("time_zone = '{tz}'"));
        }
        if let Some(mode) = &self.sql_mode {
            sets.push(format!("sql_mode = '{mode}'"));
        }
        if let Some(t) = self.wait_timeout {
            sets.push(format!("wait_timeout = {}", t.as_secs()));
        }
        let mut out = Vec::with_capacity(1 + self.init_sql.len());
        if !sets.is_empty() {
            // One statement, one round trip per connect.
            out.push(format!("SET SESSION {}", sets.join(", ")));
        }
        out.extend(self.init_sql.iter().cloned());
        out
    }
}

/// Session values are spliced into a `SET` as string literals: refuse anything that could end the literal,
/// whatever the session's `NO_BACKSLASH_ESCAPES` says.
fn check_literal(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() && field == "time_zone" {
        return Err(ConfigError::Invalid { field, value: format!("{value:?}"), reason: "must not be empty".into() });
    }
    if value.chars().any(|c| c == '\'' || c == '\\' || c == '"' || c.is_control()) {
        return Err(ConfigError::Invalid {
            field,
            value: format!("{value:?}"),
            reason: "must not contain quotes, backslashes or control characters".into(),
        });
    }
    Ok(())
}
