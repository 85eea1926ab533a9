//! [`ContextBatchLoader`]: batching under a per-request context (a tenant), where a batch never mixes two
//! contexts.
//!
//! A [`BatchLoader`] deduplicates and caches by key alone. When what a key loads depends on who asks (a
//! row-level security policy on the tenant, a database per tenant), one loader shared by two tenants would
//! answer tenant B's key from tenant A's batch or cache. A [`ContextBatchLoader`] keeps one [`BatchLoader`]
//! per context: keys loaded under different contexts go to different batches, each [`ContextLoader::load`]
//! call gets the keys of one context only, and each context has its own cache and its own in-flight
//! deduplication. Everything else (the window, `max_batch_size`, detached batches, shared errors) is
//! [`BatchLoader`]'s.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::batch_loader::{BatchLoader, BatchLoaderBuilder};
use crate::error::BatchError;
use crate::loader::Loader;

/// Loads many keys in one round trip under a context: the [`Loader`] of a [`ContextBatchLoader`].
///
/// ```
/// use std::collections::HashMap;
/// use aquifer_batch::ContextLoader;
///
/// /// Notes by id, as tenant `ctx` sees them (a real one runs the query with the tenant applied, e.g.
/// /// aquifer-postgres's `pool.with_session(tenant).fetch_all(..)`).
/// struct Notes;
///
/// impl ContextLoader for Notes {
///     type Context = u32;
///     type Key = u64;
///     type Value = String;
///     type Error = std::io::Error;
///
///     async fn load(&self, tenant: &u32, ids: &[u64]) -> Result<HashMap<u64, String>, std::io::Error> {
///         Ok(ids.iter().map(|&id| (id, format!("note {id} of tenant {tenant}"))).collect())
///     }
/// }
/// ```
pub trait ContextLoader: Send + Sync + 'static {
    /// What a load depends on besides its keys (a tenant, a role, a database name). Loads under equal
    /// contexts may share a batch; loads under different ones never do.
    type Context: Eq + Hash + Clone + Send + Sync + 'static;
    /// The key asked for; deduplicated by `Eq + Hash` within one context.
    type Key: Eq + Hash + Clone + Send + Sync + 'static;
    /// The value of one key (wrap large values in an `Arc`).
    type Value: Clone + Send + Sync + 'static;
    /// The error of a failed batch.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Loads `keys` (distinct, all asked for under `ctx`). Runs detached from the callers, as
    /// [`Loader::load`].
    fn load(
        &self,
        ctx: &Self::Context,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<HashMap<Self::Key, Self::Value>, Self::Error>> + Send;
}

/// A [`ContextLoader`] bound to one context: the [`Loader`] of that context's [`BatchLoader`].
pub struct InContext<L: ContextLoader> {
    loader: Arc<L>,
    ctx: L::Context,
}

impl<L: ContextLoader> InContext<L> {
    /// The context every batch of this loader runs under.
    pub fn context(&self) -> &L::Context {
        &self.ctx
    }
}

impl<L: ContextLoader> Loader for InContext<L> {
    type Key = L::Key;
    type Value = L::Value;
    type Error = L::Error;

    fn load(&self, keys: &[L::Key]) -> impl Future<Output = Result<HashMap<L::Key, L::Value>, L::Error>> + Send {
        self.loader.load(&self.ctx, keys)
    }
}

/// How each context's [`BatchLoader`] is configured.
type Configure<L> = dyn Fn(BatchLoaderBuilder<InContext<L>>) -> BatchLoaderBuilder<InContext<L>> + Send + Sync;

/// One [`BatchLoader`] per context, made on first use: a batch never mixes contexts, and a value loaded
/// under one context is never answered to another (caches and in-flight deduplication are per context).
///
/// Request-scoped like [`BatchLoader`] ([`new`](Self::new), cache on); [`shared`](Self::shared) has the
/// cache off. Each context seen keeps its (small) loader until [`forget`](Self::forget) or the drop of the
/// last clone: a loader shared by a service holds one per tenant. Every context's loader records under the
/// same `aquifer.batch.loader` name: the context is not a metric attribute (one series per tenant would
/// make the metrics' cardinality grow with the tenants).
///
/// ```
/// # use std::collections::HashMap;
/// # use aquifer_batch::ContextLoader;
/// # struct Notes;
/// # impl ContextLoader for Notes {
/// #     type Context = u32; type Key = u64; type Value = String; type Error = std::io::Error;
/// #     async fn load(&self, t: &u32, ids: &[u64]) -> Result<HashMap<u64, String>, std::io::Error> {
/// #         Ok(ids.iter().map(|&id| (id, format!("note {id} of tenant {t}"))).collect())
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), aquifer_batch::BatchError<std::io::Error>> {
/// use aquifer_batch::ContextBatchLoader;
///
/// let notes = ContextBatchLoader::new(Notes);
/// // The same key under two tenants: two batches, two answers.
/// let (a, b) = tokio::join!(notes.load(&1, 7), notes.load(&2, 7));
/// assert_eq!(a?.as_deref(), Some("note 7 of tenant 1"));
/// assert_eq!(b?.as_deref(), Some("note 7 of tenant 2"));
/// # Ok(()) }
/// ```
pub struct ContextBatchLoader<L: ContextLoader> {
    inner: Arc<Inner<L>>,
}

struct Inner<L: ContextLoader> {
    loader: Arc<L>,
    configure: Box<Configure<L>>,
    name: opentelemetry::StringValue,
    loaders: Mutex<HashMap<L::Context, BatchLoader<InContext<L>>>>,
}

impl<L: ContextLoader> Clone for ContextBatchLoader<L> {
    fn clone(&self) -> Self {
        ContextBatchLoader { inner: Arc::clone(&self.inner) }
    }
}

impl<L: ContextLoader> std::fmt::Debug for ContextBatchLoader<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextBatchLoader")
            .field("name", &self.inner.name.as_str())
            .field("contexts", &self.inner.loaders.lock().len())
            .finish_non_exhaustive()
    }
}

impl<L: ContextLoader> ContextBatchLoader<L> {
    /// Request-scoped: each context's loader has [`BatchLoader::new`]'s defaults (cache on).
    pub fn new(loader: L) -> Self {
        Self::configured(loader, |b| b)
    }

    /// Shared by many requests: each context's loader has the cache off, as [`BatchLoader::shared`].
    pub fn shared(loader: L) -> Self {
        Self::configured(loader, |b| b.cache(false))
    }

    /// Each context's loader built with `configure` applied to [`BatchLoader::builder`]'s defaults
    /// (`|b| b.max_batch_size(100).system("postgresql")`). The default loader name is `L`'s type name.
    pub fn configured(
        loader: L,
        configure: impl Fn(BatchLoaderBuilder<InContext<L>>) -> BatchLoaderBuilder<InContext<L>> + Send + Sync + 'static,
    ) -> Self {
        let full = std::any::type_name::<L>();
        let name: opentelemetry::StringValue = full.rsplit("::").next().unwrap_or(full).to_owned().into();
        ContextBatchLoader {
            inner: Arc::new(Inner {
                loader: Arc::new(loader),
                configure: Box::new(configure),
                name,
                loaders: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The loader of `ctx`, made on first use: loads through it batch with other loads under `ctx` only.
    pub fn context(&self, ctx: &L::Context) -> BatchLoader<InContext<L>> {
        if let Some(loader) = self.inner.loaders.lock().get(ctx) {
            return loader.clone();
        }
        // Built outside the lock (the user's `configure` runs here); a race builds two and keeps the first.
        let bound = InContext { loader: Arc::clone(&self.inner.loader), ctx: ctx.clone() };
        let built = (self.inner.configure)(BatchLoader::builder(bound).name(self.inner.name.clone())).build();
        self.inner.loaders.lock().entry(ctx.clone()).or_insert(built).clone()
    }

    /// The value of `key` as `ctx` sees it: [`BatchLoader::load`] on `ctx`'s loader.
    ///
    /// Cancellation: as [`BatchLoader::load`]: dropping the future only stops waiting; the batch runs on
    /// (under `ctx`) for its other waiters.
    pub async fn load(&self, ctx: &L::Context, key: L::Key) -> Result<Option<L::Value>, BatchError<L::Error>> {
        self.context(ctx).load(key).await
    }

    /// The values of `keys` as `ctx` sees them: [`BatchLoader::load_many`] on `ctx`'s loader.
    ///
    /// Cancellation: as [`BatchLoader::load_many`].
    pub async fn load_many(
        &self,
        ctx: &L::Context,
        keys: impl IntoIterator<Item = L::Key>,
    ) -> Result<Vec<Option<L::Value>>, BatchError<L::Error>> {
        self.context(ctx).load_many(keys).await
    }

    /// Drops `ctx`'s loader (its cache with it); batches in flight finish for their waiters. Returns whether
    /// there was one.
    pub fn forget(&self, ctx: &L::Context) -> bool {
        self.inner.loaders.lock().remove(ctx).is_some()
    }

    /// How many contexts have a loader.
    pub fn contexts(&self) -> usize {
        self.inner.loaders.lock().len()
    }

    /// The wrapped loader.
    pub fn loader(&self) -> &L {
        &self.inner.loader
    }
}
