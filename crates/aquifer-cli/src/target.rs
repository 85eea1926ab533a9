//! What the commands point at: a URL (or SQLite path) or a `{PREFIX}_*` environment, the backend found for
//! it in the registry of [`drivers`], and the pool opened for it.

use std::time::Duration;

use aquifer_core::{AnyConfig, AnyPool, Driver, Drivers, HealthStatus, NoDriver, redact_url};

/// The `application_name` (PostgreSQL) the CLI's own sessions carry, so `top` can tell them apart.
pub const APPLICATION_NAME: &str = "aquifer-cli";

/// The backends the CLI knows: one line each; everything else finds them here.
pub fn drivers() -> Drivers {
    Drivers::new()
        .with::<aquifer_postgres::PgConfig>()
        .with::<aquifer_mysql::MySqlConfig>()
        .with::<aquifer_neo4j::Neo4jConfig>()
        .with::<aquifer_sqlite::SqliteConfig>()
}

/// A database to open, from a URL or an environment prefix; its `Display` never shows a password.
#[derive(Debug, Clone)]
pub struct Target {
    driver: Driver,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Url(String),
    Env(String),
}

/// The pool a target opened, whatever its backend.
pub type Opened = Box<dyn AnyPool>;

impl Target {
    /// A target from a URL (or an SQLite path), the backend chosen by its scheme.
    pub fn from_url(url: &str) -> Result<Target, NoDriver> {
        Ok(Target { driver: *drivers().find_url(url)?, source: Source::Url(url.to_owned()) })
    }

    /// A target from `{prefix}_*` variables: the backend is that of `{prefix}_URL`'s scheme, SQLite when only
    /// `{prefix}_PATH` is set, or the one the prefix is named for (`POSTGRES`, `MYSQL`, `NEO4J`, `SQLITE`).
    pub fn from_env(prefix: &str) -> Result<Target, NoDriver> {
        let driver = *drivers().find_env(prefix, |name| std::env::var(name).ok())?;
        Ok(Target { driver, source: Source::Env(prefix.to_owned()) })
    }

    /// `db.system.name` of the target's backend.
    pub fn system(&self) -> &'static str {
        self.driver.system()
    }

    /// Opens a pool of at most `max_size` connections whose waits and connects are bounded by `timeout`:
    /// lazy (nothing connects until used), except SQLite's, which opens at once so that a missing file fails
    /// here. The pool settings of a `{PREFIX}_*` environment are kept, except these bounds, which the command
    /// line sets.
    pub async fn open(&self, max_size: usize, timeout: Duration) -> Result<Opened, String> {
        let mut config: Box<dyn AnyConfig> = match &self.source {
            Source::Url(url) => self.driver.from_url(url),
            Source::Env(prefix) => self.driver.from_env(prefix).map_err(|e| e.to_string())?,
        };
        let pool = config.pool_config_mut();
        pool.max_size = max_size;
        pool.min_idle = pool.min_idle.min(max_size);
        pool.acquire_timeout = timeout;
        pool.connect_timeout = timeout;
        pool.fail_fast_after = timeout;
        config.for_inspection(APPLICATION_NAME);
        // A server pool connects on first use (the command's own first check reports the cause); a file
        // database has nothing to wait for, and opening it at once names a missing file.
        let result = if self.driver.accepts_paths() { config.connect().await } else { config.connect_lazy() };
        result.map_err(|e| e.to_string().replace(self.secret().unwrap_or("\u{0}"), "***"))
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

/// The exit status of a health verdict: 0 healthy, 1 degraded, 2 unhealthy.
pub fn exit_code(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy => 2,
    }
}
