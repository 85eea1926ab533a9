//! [`FakeAdapter`]: the [`Adapter`] contract over the in-memory [`FakeManager`]. It proves that the contract
//! and the behaviour suite are generic (a fifth backend needs nothing more than what this file implements),
//! and gives the registry and env-reading tests a backend without a server.

use aquifer_core::{Adapter, ConfigError, DatabaseUrl, EnvVars, Pool, PoolConfig, StartError, redact_url};

use crate::fake::{FakeError, FakeManager};

/// A backend whose "server" is a [`FakeManager`] shared by every pool built from clones of this
/// configuration. URLs look like `fake://host/database`; `{PREFIX}_URL` and the `{PREFIX}_POOL_*` variables
/// configure it, like every adapter.
///
/// ```
/// use aquifer_core::Adapter;
/// use aquifer_testing::FakeAdapter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = FakeAdapter::from_vars("ORDERS", [("ORDERS_URL", "fake://db/orders"), ("ORDERS_POOL_MAX_SIZE", "3")])
///     .unwrap();
/// let pool = config.connect().await.unwrap();
/// assert_eq!((pool.config().max_size, config.server().stats().created), (3, 1));
/// # }
/// ```
#[derive(Clone)]
pub struct FakeAdapter {
    /// The engine's settings.
    pub pool: PoolConfig,
    /// `fake://host/database`.
    pub url: Option<DatabaseUrl>,
    server: FakeManager,
}

impl std::fmt::Debug for FakeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAdapter").field("pool", &self.pool).field("url", &self.url).finish_non_exhaustive()
    }
}

impl Default for FakeAdapter {
    fn default() -> Self {
        FakeAdapter { pool: PoolConfig::default(), url: None, server: FakeManager::new().with_system("fake") }
    }
}

impl FakeAdapter {
    /// The fake server behind every pool this configuration builds, to inject faults.
    pub fn server(&self) -> &FakeManager {
        &self.server
    }
}

impl Adapter for FakeAdapter {
    type Pool = Pool<FakeManager>;
    type Error = FakeError;

    const SYSTEM: &'static str = "fake";
    const ENV_PREFIX: &'static str = "FAKE";
    const URL_SCHEMES: &'static [&'static str] = &["fake"];

    fn from_url(url: &str) -> Self {
        FakeAdapter { url: Some(DatabaseUrl::new(url)), ..FakeAdapter::default() }
    }

    fn from_lookup(prefix: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = EnvVars::new(prefix, lookup);
        let pool = PoolConfig::from_lookup(prefix, lookup)?;
        let url = env.get("URL").ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: format!("set {} to fake://host/database", env.var("URL")),
        })?;
        Ok(FakeAdapter { pool, url: Some(DatabaseUrl::new(url)), ..FakeAdapter::default() })
    }

    fn pool_config(&self) -> &PoolConfig {
        &self.pool
    }

    fn pool_config_mut(&mut self) -> &mut PoolConfig {
        &mut self.pool
    }

    fn build(&self) -> Result<Pool<FakeManager>, StartError<FakeError>> {
        let url = self.url.as_ref().ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: "set FakeAdapter.url (FakeAdapter::from_url)".into(),
        })?;
        if !url.expose().starts_with("fake://") {
            return Err(StartError::Url {
                system: "fake",
                url: redact_url(url.expose()),
                reason: "expected fake://host/database".into(),
            });
        }
        Ok(Pool::builder(self.server.clone()).config(self.pool.clone()).build()?)
    }

    async fn start(pool: Pool<FakeManager>) -> Result<Pool<FakeManager>, StartError<FakeError>> {
        aquifer_core::warm(pool).await
    }
}
