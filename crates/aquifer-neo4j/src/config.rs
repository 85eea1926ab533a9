//! [`Neo4jConfig`]: where and how each pooled Bolt connection connects.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aquifer_core::{ConfigError, Credentials, EnvVars, PoolConfig, RetryPolicy, redact_url};
use serde::Deserialize;

/// How to build a [`Neo4jPool`](crate::Neo4jPool): the engine's [`PoolConfig`], how each pooled connection
/// reaches the Bolt server, and the helpers' retry policy.
///
/// Build it with struct-update syntax from [`Neo4jConfig::default`] or the setters, deserialize it (serde), or
/// read it from `NEO4J_*` variables with [`Neo4jConfig::from_env`]. The password never appears in `Debug`,
/// errors or logs.
///
/// ```
/// use aquifer_neo4j::Neo4jConfig;
///
/// let config = Neo4jConfig::new("bolt://127.0.0.1:7687", "neo4j", "s3cret-pw").database("music").fetch_size(500);
/// assert!(config.validate().is_ok());
/// assert!(!format!("{config:?}").contains("s3cret-pw"));
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Neo4jConfig {
    /// Pool sizing and timeouts. Default: [`PoolConfig::default`].
    pub pool: PoolConfig,
    /// The server (named `uri`, as in every Neo4j driver): `bolt://host:port` (plain), `bolt+s://` (TLS, verified), `bolt+ssc://` (TLS, self-signed
    /// accepted); `neo4j://`, `neo4j+s://`, `neo4j+ssc://` are accepted too but every connection goes to this
    /// host (neo4rs does no client-side routing). `host:port` alone means `bolt://`; the port defaults to 7687.
    /// A user and password written in the URI (`bolt://user:pw@host`, percent-encoded) are used when
    /// [`user`](Self::user) and [`password`](Self::password) are left at their defaults; the driver gets the
    /// URI without them.
    /// Default: `bolt://127.0.0.1:7687`.
    pub uri: String,
    /// The user name sent in Bolt's HELLO. Default: `neo4j` (Neo4j's built-in administrator).
    pub user: String,
    /// The password sent in Bolt's HELLO. Default: empty.
    pub password: Password,
    /// The database every query and transaction runs in. Default: none (the server's default database).
    pub database: Option<String>,
    /// Records requested per PULL when a result is streamed. Default: 200 (neo4rs's default: a few round
    /// trips for typical results without buffering huge ones).
    pub fetch_size: usize,
    /// Longest wait for the TCP connect and for each single Bolt response (neo4rs's `connection_timeout`),
    /// so a query whose first record takes longer than this fails. Default: 30 s (neo4rs's default).
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// A file holding the password, re-read before a new connection whenever it changes (a Kubernetes secret,
    /// a Vault agent's output): [`password`](Self::password) is then ignored. See docs/operations.md,
    /// "Rotating credentials". Default: none.
    pub password_file: Option<PathBuf>,
    /// Where the password comes from when it is not [`password`](Self::password) or `password_file`: a
    /// [`CredentialProvider`](aquifer_core::CredentialProvider) of the service's own (tokens, Vault), set in
    /// code (`Credentials::provider_fn(..)`). Not serialised. Default: the configured password.
    #[serde(skip)]
    pub credentials: Credentials,
    /// Retries of the helpers ([`Neo4jPool::transaction`](crate::Neo4jPool::transaction), ...) on transient
    /// failures. Default: [`RetryPolicy::default`] (3 attempts, 10 ms doubling to 1 s, jitter).
    pub retry: RetryPolicy,
}

impl Default for Neo4jConfig {
    fn default() -> Self {
        Neo4jConfig {
            pool: PoolConfig::default(),
            uri: "bolt://127.0.0.1:7687".to_owned(),
            user: "neo4j".to_owned(),
            password: Password::default(),
            database: None,
            fetch_size: 200,
            read_timeout: Duration::from_secs(30),
            password_file: None,
            credentials: Credentials::default(),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for Neo4jConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Neo4jConfig")
            .field("pool", &self.pool)
            .field("uri", &redact_url(&self.uri))
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("fetch_size", &self.fetch_size)
            .field("read_timeout", &self.read_timeout)
            .field("password_file", &self.password_file)
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Neo4jConfig {
    /// The defaults with [`uri`](Self::uri) set (credentials from the URI, if it holds them). A path names
    /// the [`database`](Self::database), the way the other backends' URLs name theirs:
    /// `bolt://host:7687/movies` is `bolt://host:7687` with database `movies`.
    pub fn from_url(uri: impl Into<String>) -> Self {
        let uri = uri.into();
        let Some((scheme, rest)) = uri.split_once("://") else { return Neo4jConfig { uri, ..Self::default() } };
        // Only a plain one-segment path is a database name; anything else stays in the URI for validate() to
        // refuse with the reason.
        match rest.split_once('/') {
            Some((authority, database)) if !database.is_empty() && !database.contains(['/', '?', '#']) => Neo4jConfig {
                uri: format!("{scheme}://{authority}"),
                database: Some(database.to_owned()),
                ..Self::default()
            },
            Some((authority, "")) => Neo4jConfig { uri: format!("{scheme}://{authority}"), ..Self::default() },
            _ => Neo4jConfig { uri, ..Self::default() },
        }
    }

    /// A configuration for `uri` with these credentials; everything else at its default.
    pub fn new(uri: impl Into<String>, user: impl Into<String>, password: impl Into<Password>) -> Self {
        Neo4jConfig { uri: uri.into(), user: user.into(), password: password.into(), ..Self::default() }
    }

    /// Sets [`uri`](Self::uri).
    #[must_use]
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// Sets [`user`](Self::user).
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Sets [`password`](Self::password).
    #[must_use]
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.password = password.into();
        self
    }

    /// Sets [`database`](Self::database).
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Sets [`fetch_size`](Self::fetch_size).
    #[must_use]
    pub fn fetch_size(mut self, fetch_size: usize) -> Self {
        self.fetch_size = fetch_size;
        self
    }

    /// Sets [`read_timeout`](Self::read_timeout).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Checks every field; the error names the field and its value (a URI with its password redacted).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pool.validate()?;
        Credentials::from_config(self.password_file.as_deref(), &self.credentials)?;
        self.resolve().map(|_| ())
    }

    /// Reads the configuration from `{prefix}_*` variables through `lookup` ([`Neo4jConfig::from_env`] reads
    /// the process environment; the conventional prefix is `NEO4J`, which [`connect_env`](crate::connect_env)
    /// uses): `{prefix}_URI` (or `{prefix}_URL`; default `bolt://127.0.0.1:7687`), `{prefix}_USER` (or
    /// `{prefix}_USERNAME`), `{prefix}_PASSWORD`, `{prefix}_DATABASE`, `{prefix}_FETCH_SIZE`,
    /// `{prefix}_READ_TIMEOUT` (`30s`, `500ms`...), `{prefix}_PASSWORD_FILE`, `{prefix}_RETRY_MAX_ATTEMPTS`, and the pool settings from
    /// `{prefix}_POOL_*` and `{prefix}_NAME` ([`PoolConfig::from_lookup`]). Unset or empty variables keep their
    /// default. The result is validated; errors name the variable and show its value as written (never a
    /// password).
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Neo4jConfig, ConfigError> {
        let env = EnvVars::new(prefix, &lookup);
        let mut c = Neo4jConfig { pool: PoolConfig::from_lookup(prefix, &lookup)?, ..Neo4jConfig::default() };
        // Errors name the variable the URI came from.
        // Both spellings are read even when the first is set, so that neither counts as an unknown variable.
        let (uri, url) = (env.get("URI"), env.get("URL"));
        let uri_var = if uri.is_some() || url.is_none() { "URI" } else { "URL" };
        if let Some(uri) = uri.or(url) {
            c.uri = uri.trim().to_owned();
        }
        let (user, username) = (env.get("USER"), env.get("USERNAME"));
        let user_var = if user.is_some() || username.is_none() { "USER" } else { "USERNAME" };
        if let Some(user) = user.or(username) {
            c.user = user;
        }
        // An empty password is a password (and a password in the URI then applies).
        if let Some(password) = env.get_raw("PASSWORD") {
            c.password = Password::new(password);
        }
        if let Some(db) = env.get("DATABASE") {
            c.database = Some(db);
        }
        env.number("FETCH_SIZE", &mut c.fetch_size)?;
        c.password_file = env.get("PASSWORD_FILE").map(|p| PathBuf::from(p.trim()));
        env.duration("READ_TIMEOUT", &mut c.read_timeout)?;
        env.number("RETRY_MAX_ATTEMPTS", &mut c.retry.max_attempts)?;
        // The uri's value in a validation error is already redacted.
        c.resolve().map(|_| ()).map_err(|e| {
            env.rename(e, |field| match field {
                "uri" => Some(uri_var),
                "user" => Some(user_var),
                "database" => Some("DATABASE"),
                "fetch_size" => Some("FETCH_SIZE"),
                "password_file" => Some("PASSWORD_FILE"),
                "read_timeout" => Some("READ_TIMEOUT"),
                "retry.max_attempts" => Some("RETRY_MAX_ATTEMPTS"),
                _ => None,
            })
        })?;
        Ok(c)
    }

    /// Validates and splits the configuration into what the driver needs.
    pub(crate) fn resolve(&self) -> Result<Resolved, ConfigError> {
        let invalid = |field: &'static str, value: String, reason: &str| ConfigError::Invalid {
            field,
            value,
            reason: reason.to_owned(),
        };
        let shown = || redact_url(&self.uri);
        let raw = self.uri.trim();
        if raw.is_empty() {
            return Err(invalid("uri", String::new(), "must not be empty (e.g. bolt://127.0.0.1:7687)"));
        }
        let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("bolt://{raw}") };
        let mut url = url::Url::parse(&with_scheme)
            .map_err(|e| invalid("uri", shown(), &format!("not a valid URI ({e}); expected bolt://host:port")))?;
        const SCHEMES: [&str; 6] = ["bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"];
        if !SCHEMES.contains(&url.scheme()) {
            return Err(invalid(
                "uri",
                shown(),
                &format!("unsupported scheme {:?}; expected one of {}", url.scheme(), SCHEMES.join(", ")),
            ));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            _ => return Err(invalid("uri", shown(), "has no host; expected bolt://host:port")),
        };
        let port = url.port().unwrap_or(7687);
        let uri_user = percent_decode(url.username());
        let uri_password = url.password().map(percent_decode);
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("uri", shown(), "must not have a path, query or fragment; set database instead"));
        }
        // The driver gets the URI without credentials: neo4rs ignores them, and they must not travel further.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        let user = if self.user.is_empty() || (self.user == "neo4j" && !uri_user.is_empty()) {
            uri_user
        } else {
            self.user.clone()
        };
        if user.is_empty() {
            return Err(invalid("user", String::new(), "must not be empty"));
        }
        let password = match (self.password.expose().is_empty(), uri_password) {
            (true, Some(p)) => p,
            _ => self.password.expose().to_owned(),
        };
        if let Some(db) = &self.database
            && db.trim().is_empty()
        {
            return Err(invalid(
                "database",
                format!("{db:?}"),
                "must not be empty; leave it unset for the server's default",
            ));
        }
        if self.fetch_size == 0 {
            return Err(invalid("fetch_size", "0".into(), "must be at least 1"));
        }
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "0".into(), "must be at least 1 (1 disables retries)"));
        }
        if self.fetch_size > i64::MAX as usize {
            return Err(invalid("fetch_size", self.fetch_size.to_string(), "must fit in a signed 64-bit integer"));
        }
        if self.read_timeout.is_zero() {
            return Err(invalid("read_timeout", "0s".into(), "must be greater than zero"));
        }
        Ok(Resolved { uri: url.to_string(), host, port, user, password })
    }
}

/// The checked parts of a [`Neo4jConfig`]: the URI without credentials, and the credentials.
pub(crate) struct Resolved {
    pub(crate) uri: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A password: `Debug` prints `***`, and it has no `Display`. [`Password::expose`] hands it to the driver.
///
/// ```
/// use aquifer_neo4j::Password;
///
/// let pw = Password::from("hunter2-hunter2");
/// assert_eq!(format!("{pw:?}"), "Password(***)");
/// assert_eq!(pw.expose(), "hunter2-hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password(s.to_owned())
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(s)
    }
}
