//! What the commands point at: a URL (or SQLite path) or a `{PREFIX}_*` environment, the backend chosen from
//! the URL's scheme, and the pool opened for it.

use std::time::Duration;

use aquifer_core::{ConfigError, HealthReport, HealthStatus, PoolConfig, redact_url};
use aquifer_mysql::{MySqlConfig, MySqlPool};
use aquifer_neo4j::{Neo4jConfig, Neo4jPool};
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_sqlite::{SqliteConfig, SqlitePool};

/// The `application_name` (PostgreSQL) the CLI's own sessions carry, so `top` can tell them apart.
pub const APPLICATION_NAME: &str = "aquifer-cli";

/// The four backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    MySql,
    Neo4j,
    Sqlite,
}

/// A database to open, from a URL or an environment prefix; its `Display` never shows a password.
#[derive(Debug, Clone)]
pub struct Target {
    pub backend: Backend,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Url(String),
    Env(String),
}

/// Why a target cannot be opened.
#[derive(Debug)]
pub enum TargetError {
    /// A URL whose scheme names no backend.
    Scheme(String),
    /// An environment prefix without `{PREFIX}_URL` (or `{PREFIX}_PATH`) and not named for a backend.
    Env(String),
    /// A bad setting in the environment.
    Config(ConfigError),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Scheme(url) => write!(
                f,
                "cannot tell the backend of {url:?}: expected postgres://, postgresql://, mysql://, mariadb://, \
                 neo4j://, bolt://, sqlite: or a file path"
            ),
            TargetError::Env(prefix) => write!(
                f,
                "{prefix}_URL is not set (nor {prefix}_PATH for SQLite), and {prefix} is not one of POSTGRES, MYSQL, \
                 NEO4J, SQLITE"
            ),
            TargetError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TargetError {}

impl From<ConfigError> for TargetError {
    fn from(e: ConfigError) -> Self {
        TargetError::Config(e)
    }
}

fn backend_of_url(url: &str) -> Result<Backend, TargetError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(Backend::Postgres),
        Some("mysql" | "mariadb") => Ok(Backend::MySql),
        Some("neo4j" | "neo4j+s" | "neo4j+ssc" | "bolt" | "bolt+s" | "bolt+ssc") => Ok(Backend::Neo4j),
        Some("sqlite" | "file") => Ok(Backend::Sqlite),
        Some(_) => Err(TargetError::Scheme(redact_url(url))),
        None if url.starts_with("sqlite:") || url.starts_with("file:") || !url.contains(':') || url == ":memory:" => {
            Ok(Backend::Sqlite)
        }
        None => Err(TargetError::Scheme(redact_url(url))),
    }
}

impl Target {
    /// A target from a URL (or an SQLite path), the backend chosen by its scheme.
    pub fn from_url(url: &str) -> Result<Target, TargetError> {
        Ok(Target { backend: backend_of_url(url)?, source: Source::Url(url.to_owned()) })
    }

    /// A target from `{prefix}_*` variables: the backend is that of `{prefix}_URL`'s scheme, SQLite when only
    /// `{prefix}_PATH` is set, or the one the prefix is named for (`POSTGRES`, `MYSQL`, `NEO4J`, `SQLITE`).
    pub fn from_env(prefix: &str) -> Result<Target, TargetError> {
        let var = |suffix: &str| std::env::var(format!("{prefix}_{suffix}")).ok().filter(|v| !v.is_empty());
        let backend = if let Some(url) = var("URL") {
            backend_of_url(&url)?
        } else if var("PATH").is_some() {
            Backend::Sqlite
        } else {
            match prefix.to_ascii_uppercase().as_str() {
                "POSTGRES" | "PG" => Backend::Postgres,
                "MYSQL" | "MARIADB" => Backend::MySql,
                "NEO4J" => Backend::Neo4j,
                "SQLITE" => Backend::Sqlite,
                _ => return Err(TargetError::Env(prefix.to_owned())),
            }
        };
        Ok(Target { backend, source: Source::Env(prefix.to_owned()) })
    }

    /// Opens a lazy pool (nothing connects until used) of at most `max_size` connections whose waits and
    /// connects are bounded by `timeout`. The pool settings of a `{PREFIX}_*` environment are kept, except
    /// these bounds, which the command line sets.
    pub async fn open(&self, max_size: usize, timeout: Duration) -> Result<Opened, String> {
        let tune = |pool: &mut PoolConfig| {
            pool.max_size = max_size;
            pool.min_idle = pool.min_idle.min(max_size);
            pool.acquire_timeout = timeout;
            pool.connect_timeout = timeout;
            pool.fail_fast_after = timeout;
        };
        let result = match (&self.source, self.backend) {
            (Source::Url(url), Backend::Postgres) => pg(PgConfig::from_url(url.as_str()), tune),
            (Source::Env(prefix), Backend::Postgres) => {
                PgConfig::from_env(prefix).map_err(err).and_then(|c| pg(c, tune))
            }
            (Source::Url(url), Backend::MySql) => mysql(MySqlConfig::from_url(url.as_str()), tune),
            (Source::Env(prefix), Backend::MySql) => {
                MySqlConfig::from_env(prefix).map_err(err).and_then(|c| mysql(c, tune))
            }
            (Source::Url(url), Backend::Neo4j) => neo4j(neo4j_config(url), tune),
            (Source::Env(prefix), Backend::Neo4j) => {
                Neo4jConfig::from_env(prefix).map_err(err).and_then(|c| neo4j(c, tune))
            }
            (Source::Url(url), Backend::Sqlite) => {
                let mut config = SqliteConfig::from_url(url);
                // An operator's check must not create an empty database where a typo points.
                config.create_if_missing = false;
                sqlite(config, tune).await
            }
            (Source::Env(prefix), Backend::Sqlite) => match SqliteConfig::from_env(prefix) {
                Ok(c) => sqlite(c, tune).await,
                Err(e) => Err(err(e)),
            },
        };
        result.map_err(|e| e.replace(self.secret().unwrap_or("\u{0}"), "***"))
    }

    /// The password written in the URL, to scrub it from driver messages that might quote the URL.
    fn secret(&self) -> Option<&str> {
        let Source::Url(url) = &self.source else { return None };
        let rest = url.split_once("://")?.1;
        let userinfo = rest.split_once('@')?.0;
        userinfo.split_once(':').map(|(_, pw)| pw).filter(|pw| !pw.is_empty())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Url(url) => f.write_str(&redact_url(url)),
            Source::Env(prefix) => write!(f, "${prefix}_*"),
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn pg(mut c: PgConfig, tune: impl Fn(&mut PoolConfig)) -> Result<Opened, String> {
    tune(&mut c.pool);
    c.application_name.get_or_insert_with(|| APPLICATION_NAME.to_owned());
    c.connect_lazy().map(Opened::Postgres).map_err(err)
}

fn mysql(mut c: MySqlConfig, tune: impl Fn(&mut PoolConfig)) -> Result<Opened, String> {
    tune(&mut c.pool);
    c.connect_lazy().map(Opened::MySql).map_err(err)
}

/// A Neo4j config from a URI that may name the database as its path (`bolt://host:7687/movies`), the way
/// the other backends' URLs do; the driver itself takes the database separately.
fn neo4j_config(url: &str) -> Neo4jConfig {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.split_once('/') {
        Some((authority, database)) if !database.is_empty() && !database.contains(['/', '?', '#']) => {
            Neo4jConfig::from_url(format!("{scheme}://{authority}")).database(database)
        }
        Some((authority, "")) => Neo4jConfig::from_url(format!("{scheme}://{authority}")),
        _ => Neo4jConfig::from_url(url),
    }
}

fn neo4j(mut c: Neo4jConfig, tune: impl Fn(&mut PoolConfig)) -> Result<Opened, String> {
    tune(&mut c.pool);
    c.connect_lazy().map(Opened::Neo4j).map_err(err)
}

async fn sqlite(mut c: SqliteConfig, tune: impl Fn(&mut PoolConfig)) -> Result<Opened, String> {
    tune(&mut c.pool);
    c.connect().await.map(Opened::Sqlite).map_err(err)
}

/// An open pool of one of the four backends.
pub enum Opened {
    Postgres(PgPool),
    MySql(MySqlPool),
    Neo4j(Neo4jPool),
    /// SQLite's writer and reader pools; the CLI reads through the readers.
    Sqlite(SqlitePool),
}

impl Opened {
    /// The pool's health report (for SQLite, the readers' report with the worse status of both pools).
    pub async fn health(&self) -> HealthReport {
        match self {
            Opened::Postgres(p) => p.health().await,
            Opened::MySql(p) => p.health().await,
            Opened::Neo4j(p) => p.health().await,
            Opened::Sqlite(p) => aquifer_core::HealthCheck::health(p).await,
        }
    }

    /// The engine's counters (the readers' for SQLite).
    pub fn stats(&self) -> aquifer_core::Stats {
        match self {
            Opened::Postgres(p) => p.stats(),
            Opened::MySql(p) => p.stats(),
            Opened::Neo4j(p) => p.stats(),
            Opened::Sqlite(p) => p.readers().stats(),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Opened::Postgres(p) => drop(p.close().await),
            Opened::MySql(p) => drop(p.close().await),
            Opened::Neo4j(p) => drop(p.close().await),
            Opened::Sqlite(p) => drop(p.close().await),
        }
    }
}

/// The exit status of a health verdict: 0 healthy, 1 degraded, 2 unhealthy.
pub fn exit_code(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy => 2,
    }
}
