//! [`PgConfig`]: the pool settings plus what PostgreSQL sessions need, from code, serde or the environment.

use std::fmt;
use std::time::Duration;

use std::path::PathBuf;

use aquifer_core::{ClusterConfig, ConfigError, Credentials, DatabaseUrl, EnvVars, PoolConfig, RetryPolicy};
use serde::{Deserialize, Serialize};

/// How to build a [`PgPool`](crate::PgPool): the engine's [`PoolConfig`], the connection URL, session
/// settings applied to every new connection, PgBouncer mode and the helpers' retry policy.
///
/// Session settings travel in the startup packet (`options=-c name=value`), so they cost no round trip; a
/// value the server rejects fails the connect, which the engine retries and reports like any failed connect.
///
/// ```
/// use std::time::Duration;
/// use aquifer_postgres::PgConfig;
///
/// let mut config = PgConfig::from_url("postgres://app@db:5432/orders?sslmode=verify-full");
/// config.pool.max_size = 16;
/// config.statement_timeout = Some(Duration::from_secs(5));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgConfig {
    /// Pool sizing and timeouts. Default: [`PoolConfig::default`].
    pub pool: PoolConfig,
    /// The connection URL (`postgres://user:password@host:port/database?sslmode=...`); its password never
    /// appears in `Debug` or errors. Default: none: connecting then fails with a
    /// [`ConfigError::Missing`] unless [`PgConnectOptions`](sqlx::postgres::PgConnectOptions) are given
    /// ([`PgConfig::connect_with_options`]).
    pub url: Option<DatabaseUrl>,
    /// `application_name` of every connection, shown in `pg_stat_activity` and server logs. Default: the
    /// `application_name` of the URL if it has one, otherwise the pool's name.
    pub application_name: Option<String>,
    /// `statement_timeout`: the server cancels a statement running longer (SQLSTATE 57014). Default: `None`
    /// (the server's setting, normally off).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: the server ends a session left idle inside a transaction this
    /// long. A backstop for transactions opened with a raw `BEGIN`, which the pool cannot see. Default: `None`
    /// (the server's setting, normally off).
    #[serde(with = "humantime_serde")]
    pub idle_in_transaction_session_timeout: Option<Duration>,
    /// SQL run on every new connection after the settings above (simple protocol, so one entry may hold
    /// several statements). A failing statement fails the connect. Default: none.
    pub init_sql: Vec<String>,
    /// PgBouncer transaction-pooling mode: no named prepared statements (statement cache off, the helpers
    /// send unnamed statements), no startup `options` or `extra_float_digits` (PgBouncer refuses them), and
    /// the helpers run parameterised statements inside a transaction so the parse and the execution reach
    /// the same server connection. Session settings (`statement_timeout`, `idle_in_transaction_session_timeout`,
    /// `init_sql`) are refused in this mode: set them on the role or database instead. See docs/postgres.md.
    /// Default: `false`.
    pub pgbouncer: bool,
    /// Prepared statements each connection keeps (sqlx's LRU statement cache). Default: `None` (sqlx's 100;
    /// 0 in PgBouncer mode).
    pub statement_cache_capacity: Option<usize>,
    /// How long a returned connection may take to finish a query its user abandoned (a dropped future)
    /// before it is closed instead of reused. Default: 1 s.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// A file holding the password, re-read before a new connection whenever it changes (a Kubernetes secret,
    /// a Vault agent's output): the password in `url` is then ignored. See docs/operations.md, "Rotating
    /// credentials". Default: none.
    pub password_file: Option<PathBuf>,
    /// Where the password comes from when it is not `url`'s or `password_file`'s: a
    /// [`CredentialProvider`](aquifer_core::CredentialProvider) of the service's own (IAM tokens, Vault), set
    /// in code (`Credentials::provider_fn(..)`). Not serialised. Default: the URL's password.
    ///
    /// AWS RDS IAM authentication, with a token generator of the service's own (the AWS SDK's signer, any
    /// SigV4 code), refreshed two minutes before each 15-minute token expires:
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// use aquifer_postgres::{Credential, Credentials, PgConfig};
    /// # async fn generate_rds_auth_token(host: &str, port: u16, user: &str)
    /// #     -> Result<String, Box<dyn std::error::Error + Send + Sync>> { Ok(String::new()) }
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let host = "orders.abc.eu-west-1.rds.amazonaws.com";
    /// let mut config = PgConfig::from_url(format!("postgres://app@{host}:5432/orders?sslmode=verify-full"));
    /// config.credentials = Credentials::provider_fn("rds-iam", Duration::from_secs(120), move || async move {
    ///     let token = generate_rds_auth_token(host, 5432, "app").await?;
    ///     Ok(Credential::expiring(token, SystemTime::now() + Duration::from_secs(15 * 60)))
    /// });
    /// let pool = config.connect().await?;
    /// # Ok(()) }
    /// ```
    #[serde(skip)]
    pub credentials: Credentials,
    /// Retries of the helpers ([`PgPool::fetch_one`](crate::PgPool::fetch_one),
    /// [`PgPool::transaction`](crate::PgPool::transaction), ...) on transient failures. Default: [`RetryPolicy::default`] (3 attempts, 10 ms doubling to 1 s, jitter).
    pub retry: RetryPolicy,
    /// How a pool over several hosts ([`PgConfig::connect_cluster`], a URL such as
    /// `postgres://app@db1:5432,db2:5432/orders`) routes checkouts and watches the hosts' roles. The URL's
    /// `target_session_attrs` and `load_balance_hosts` parameters, when present, win over `target` and
    /// `load_balance` here. Unused by single-host pools. Default: [`ClusterConfig::default`] (checkouts go to
    /// the primary).
    pub cluster: ClusterConfig,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            pool: PoolConfig::default(),
            url: None,
            application_name: None,
            // The server's own settings stay in force unless asked: a pool should not change query semantics.
            statement_timeout: None,
            idle_in_transaction_session_timeout: None,
            init_sql: Vec::new(),
            pgbouncer: false,
            statement_cache_capacity: None,
            // Long enough for a cancelled short query to finish, short enough that a cancelled long one does
            // not hold a pool slot: reconnecting costs a few milliseconds.
            drain_timeout: Duration::from_secs(1),
            password_file: None,
            credentials: Credentials::default(),
            retry: RetryPolicy::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `init_sql` may carry secrets (SET ROLE ... PASSWORD); show only how many statements there are.
        f.debug_struct("PgConfig")
            .field("pool", &self.pool)
            .field("url", &self.url)
            .field("application_name", &self.application_name)
            .field("statement_timeout", &self.statement_timeout)
            .field("idle_in_transaction_session_timeout", &self.idle_in_transaction_session_timeout)
            .field("init_sql", &format_args!("[{} statement(s)]", self.init_sql.len()))
            .field("pgbouncer", &self.pgbouncer)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("drain_timeout", &self.drain_timeout)
            .field("password_file", &self.password_file)
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Longest duration PostgreSQL accepts for its millisecond settings (`INT_MAX` ms, about 24.8 days).
const MAX_SETTING_MS: u128 = i32::MAX as u128;

impl PgConfig {
    /// Where the manager gets the password of each new connection ([`Credentials::from_config`]); the config
    /// was validated, so the two fields do not conflict.
    pub(crate) fn credential_source(&self) -> Credentials {
        Credentials::from_config(self.password_file.as_deref(), &self.credentials).unwrap_or_default()
    }

    /// The defaults with `url` set.
    pub fn from_url(url: impl Into<String>) -> Self {
        PgConfig { url: Some(DatabaseUrl::new(url)), ..PgConfig::default() }
    }

    /// Reads the configuration from `{prefix}_*` variables through `lookup` ([`PgConfig::from_env`] reads the
    /// process environment; the conventional prefix is `POSTGRES`, which [`connect_env`](crate::connect_env)
    /// uses).
    ///
    /// The URL comes from `{prefix}_URL`. With the prefix `POSTGRES` only, `DATABASE_URL` (sqlx's variable)
    /// is the fallback when `POSTGRES_URL` is unset, and the pool logs that it used it; no other prefix falls
    /// back, so `ORDERS_*` never silently connects to `DATABASE_URL`'s database. A missing URL is a
    /// [`ConfigError::Missing`] naming the variables consulted. The pool settings come from the
    /// `{prefix}_POOL_*` variables and `{prefix}_NAME` ([`PoolConfig::from_lookup`]); the session settings from
    /// `{prefix}_APPLICATION_NAME`, `{prefix}_STATEMENT_TIMEOUT`,
    /// `{prefix}_IDLE_IN_TRANSACTION_SESSION_TIMEOUT` (durations such as `30s`, or `off`), `{prefix}_INIT_SQL`
    /// (one entry), `{prefix}_PGBOUNCER` (`true`/`false`), `{prefix}_STATEMENT_CACHE_CAPACITY`,
    /// `{prefix}_DRAIN_TIMEOUT`, `{prefix}_PASSWORD_FILE` and `{prefix}_RETRY_MAX_ATTEMPTS`; the cluster settings from
    /// `{prefix}_TARGET_SESSION_ATTRS`, `{prefix}_LOAD_BALANCE_HOSTS`, `{prefix}_MAX_REPLICA_LAG`,
    /// `{prefix}_ROLE_CHECK_INTERVAL`, `{prefix}_FAILOVER_CHECK_INTERVAL` and `{prefix}_PROBE_TIMEOUT`
    /// ([`ClusterConfig::read_lookup`]). Unset variables keep their default. Errors
    /// name the variable and show its value as written (passwords redacted).
    pub fn from_lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<PgConfig, ConfigError> {
        let env = EnvVars::new(prefix, &lookup);
        let pool = PoolConfig::from_lookup(prefix, &lookup)?;
        let url = match env.get("URL") {
            Some(url) => url,
            None if prefix == crate::ENV_PREFIX => {
                let url = EnvVars::new("", &lookup).get("DATABASE_URL").ok_or_else(|| ConfigError::Missing {
                    field: env.var("URL"),
                    reason: "set POSTGRES_URL (or DATABASE_URL) to postgres://user:password@host:port/database".into(),
                })?;
                tracing::info!(target: "aquifer::config", "POSTGRES_URL is not set; using DATABASE_URL");
                url
            }
            None => {
                return Err(ConfigError::Missing {
                    field: env.var("URL"),
                    reason: format!("set {} to postgres://user:password@host:port/database", env.var("URL")),
                });
            }
        };
        let mut c = PgConfig { pool, url: Some(DatabaseUrl::new(url)), ..PgConfig::default() };
        c.application_name = env.get("APPLICATION_NAME");
        session_timeout(&env, "STATEMENT_TIMEOUT", &mut c.statement_timeout)?;
        session_timeout(&env, "IDLE_IN_TRANSACTION_SESSION_TIMEOUT", &mut c.idle_in_transaction_session_timeout)?;
        if let Some(sql) = env.get("INIT_SQL") {
            c.init_sql.push(sql);
        }
        env.boolean("PGBOUNCER", &mut c.pgbouncer)?;
        env.optional_number("STATEMENT_CACHE_CAPACITY", &mut c.statement_cache_capacity)?;
        env.duration("DRAIN_TIMEOUT", &mut c.drain_timeout)?;
        c.password_file = env.get("PASSWORD_FILE").map(|p| PathBuf::from(p.trim()));
        env.number("RETRY_MAX_ATTEMPTS", &mut c.retry.max_attempts)?;
        c.cluster.read_lookup(prefix, &lookup)?;
        c.validate().map_err(|e| env.rename(e, env_suffix))?;
        Ok(c)
    }

    /// Checks the pool settings ([`PoolConfig::validate`]) and the session settings; the error names the
    /// field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.pool.validate()?;
        let settings = [
            ("statement_timeout", self.statement_timeout),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction_session_timeout),
        ];
        for (field, value) in settings {
            let Some(d) = value else { continue };
            if d.as_millis() == 0 {
                return Err(invalid(field, d, "must be at least 1ms; use none to keep the server's setting"));
            }
            if d.as_millis() > MAX_SETTING_MS {
                return Err(invalid(field, d, "must not exceed 2147483647ms (about 24.8 days)"));
            }
            if self.pgbouncer {
                return Err(invalid(field, d, PGBOUNCER_SESSION));
            }
        }
        if self.pgbouncer && !self.init_sql.is_empty() {
            return Err(ConfigError::Invalid {
                field: "init_sql",
                value: format!("[{} statement(s)]", self.init_sql.len()),
                reason: PGBOUNCER_SESSION.to_owned(),
            });
        }
        if let Some(name) = &self.application_name
            && (name.is_empty() || name.len() > 63 || !name.is_ascii())
        {
            return Err(ConfigError::Invalid {
                field: "application_name",
                value: format!("{name:?}"),
                reason: "must be 1 to 63 ASCII characters (PostgreSQL truncates longer names)".to_owned(),
            });
        }
        Credentials::from_config(self.password_file.as_deref(), &self.credentials)?;
        if self.drain_timeout.is_zero() {
            return Err(invalid("drain_timeout", self.drain_timeout, "must be greater than zero"));
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                field: "retry.max_attempts",
                value: "0".to_owned(),
                reason: "must be at least 1 (1 disables retries)".to_owned(),
            });
        }
        Ok(())
    }
}

const PGBOUNCER_SESSION: &str = "session settings cannot be used behind PgBouncer in transaction mode (they would \
     leak to other clients' server connections); set them with ALTER ROLE/ALTER DATABASE ... SET instead";

fn invalid(field: &'static str, d: Duration, reason: &str) -> ConfigError {
    // Written as the config and the environment spell durations ("25days", "0s"), not Debug's "2160000s".
    ConfigError::Invalid {
        field,
        value: humantime_serde::re::humantime::format_duration(d).to_string(),
        reason: reason.to_owned(),
    }
}

/// The `POSTGRES_` variable suffix of each session field [`PgConfig::validate`] can refuse.
fn env_suffix(field: &str) -> Option<&'static str> {
    Some(match field {
        "statement_timeout" => "STATEMENT_TIMEOUT",
        "idle_in_transaction_session_timeout" => "IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        "init_sql" => "INIT_SQL",
        "application_name" => "APPLICATION_NAME",
        "drain_timeout" => "DRAIN_TIMEOUT",
        "password_file" => "PASSWORD_FILE",
        "retry.max_attempts" => "RETRY_MAX_ATTEMPTS",
        _ => return None,
    })
}

/// A session timeout: a duration, or `off`/`none`/`disabled` to keep the server's setting. Unlike the pool's
/// optional durations, `0` is not "off" here: PostgreSQL reads a zero timeout as "no timeout", which is not the
/// same as keeping the server's setting, so it is kept as zero for [`PgConfig::validate`] to refuse with a hint.
fn session_timeout(env: &EnvVars<'_>, suffix: &str, out: &mut Option<Duration>) -> Result<(), ConfigError> {
    if env.get(suffix).is_some_and(|v| v.trim() == "0") {
        *out = Some(Duration::ZERO);
        return Ok(());
    }
    env.optional_duration(suffix, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `vars`, with a URL unless they name one.
    fn env(vars: &[(&str, &str)]) -> Result<PgConfig, ConfigError> {
        let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if !map.contains_key("DATABASE_URL") {
            map.entry("POSTGRES_URL".into()).or_insert_with(|| "postgres://a@x/db".into());
        }
        PgConfig::from_lookup("POSTGRES", |k| map.get(k).cloned())
    }

    fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn only_the_postgres_prefix_falls_back_to_database_url() {
        let vars = [("DATABASE_URL", "postgres://a@x/other")];
        let e = PgConfig::from_lookup("LIBRARY", lookup_in(&vars)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Missing {
                field: "LIBRARY_URL".into(),
                reason: "set LIBRARY_URL to postgres://user:password@host:port/database".into()
            }
        );
    }

    #[test]
    fn a_missing_url_names_the_variables_consulted() {
        let e = PgConfig::from_lookup("POSTGRES", lookup_in(&[])).unwrap_err().to_string();
        assert!(e.contains("POSTGRES_URL (or DATABASE_URL)"), "{e}");
    }

    #[test]
    fn postgres_url_wins_over_database_url() {
        let c = env(&[("POSTGRES_URL", "postgres://a@x/one"), ("DATABASE_URL", "postgres://a@x/two")]).unwrap();
        assert_eq!(c.url.unwrap().expose(), "postgres://a@x/one");
    }

    #[test]
    fn database_url_is_the_fallback() {
        let c = env(&[("DATABASE_URL", "postgres://a@x/two"), ("POSTGRES_POOL_MAX_SIZE", "7")]).unwrap();
        assert_eq!(c.url.unwrap().expose(), "postgres://a@x/two");
        assert_eq!(c.pool.max_size, 7);
    }

    #[test]
    fn any_prefix_works() {
        let c = env(&[("POSTGRES_URL", "postgres://a@x/one")]).unwrap();
        assert_eq!(c.url.unwrap().expose(), "postgres://a@x/one");
        let map: HashMap<String, String> = [("ORDERS_URL", "postgres://a@x/orders"), ("ORDERS_POOL_MAX_SIZE", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = PgConfig::from_lookup("ORDERS", |k| map.get(k).cloned()).unwrap();
        assert_eq!((c.url.unwrap().expose(), c.pool.max_size), ("postgres://a@x/orders", 3));
    }

    #[test]
    fn session_settings_are_read_from_the_environment() {
        let c = env(&[
            ("POSTGRES_STATEMENT_TIMEOUT", "5s"),
            ("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "1m"),
            ("POSTGRES_APPLICATION_NAME", "orders"),
            ("POSTGRES_INIT_SQL", "SET search_path = app"),
            ("POSTGRES_STATEMENT_CACHE_CAPACITY", "50"),
        ])
        .unwrap();
        assert_eq!(c.statement_timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.idle_in_transaction_session_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.application_name.as_deref(), Some("orders"));
        assert_eq!(c.init_sql, vec!["SET search_path = app".to_owned()]);
        assert_eq!(c.statement_cache_capacity, Some(50));
    }

    #[test]
    fn a_bad_duration_names_the_variable_and_value() {
        let e = env(&[("POSTGRES_STATEMENT_TIMEOUT", "soon")]).unwrap_err().to_string();
        assert!(e.contains("POSTGRES_STATEMENT_TIMEOUT") && e.contains("soon"), "{e}");
    }

    #[test]
    fn a_bad_pool_variable_names_the_variable() {
        let e = env(&[("POSTGRES_POOL_MAX_SIZE", "many")]).unwrap_err().to_string();
        assert!(e.contains("POSTGRES_POOL_MAX_SIZE") && e.contains("many"), "{e}");
    }

    #[test]
    fn a_zero_session_timeout_variable_is_refused_rather_than_read_as_off() {
        let e = env(&[("POSTGRES_STATEMENT_TIMEOUT", "0")]).unwrap_err().to_string();
        assert!(e.contains("POSTGRES_STATEMENT_TIMEOUT") && e.contains("use none"), "{e}");
        let c = env(&[("POSTGRES_STATEMENT_TIMEOUT", "OFF"), ("POSTGRES_PGBOUNCER", "yes")]).unwrap();
        assert_eq!((c.statement_timeout, c.pgbouncer), (None, true));
    }

    #[test]
    fn a_zero_statement_timeout_is_refused() {
        let c = PgConfig { statement_timeout: Some(Duration::ZERO), ..PgConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("statement_timeout"));
    }

    #[test]
    fn session_settings_are_refused_in_pgbouncer_mode() {
        let c = PgConfig { pgbouncer: true, statement_timeout: Some(Duration::from_secs(1)), ..PgConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("PgBouncer"));
        let c = PgConfig { pgbouncer: true, init_sql: vec!["SET x = 1".into()], ..PgConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("init_sql"));
    }

    #[test]
    fn debug_hides_the_password_and_init_sql() {
        let mut c = PgConfig::from_url("postgres://app:hunter2@db/orders");
        c.init_sql.push("ALTER ROLE x PASSWORD 'hunter3'".into());
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && !s.contains("hunter3"), "{s}");
    }

    #[test]
    fn deserializes_from_json_with_durations() {
        let c: PgConfig = serde_json::from_str(
            r#"{"url": "postgres://a@b/c", "pool": {"max_size": 4}, "statement_timeout": "250ms", "pgbouncer": false}"#,
        )
        .unwrap();
        assert_eq!(c.pool.max_size, 4);
        assert_eq!(c.url.unwrap().expose(), "postgres://a@b/c");
        assert_eq!(c.statement_timeout, Some(Duration::from_millis(250)));
    }
}
