//! [`BatchLoader`]: coalesces the loads of concurrently running tasks into one [`Loader::load`] per batch.
//!
//! Maintainer notes. One lock (`Inner::state`) guards the pending batch and its keys, the map from keys to the
//! batch that fetches (or fetched) them, and the key counts; it is never held across an await, and no other
//! lock is taken per key. Each batch is an `Arc<Batch>` with a key count the window reads without the lock,
//! a one-shot result and two `Notify`s (sealed: dispatch now; done: result set). A batch is created by the
//! first key that finds no pending batch; its work (wait for the window, take the keys, call the loader,
//! publish the result) is a boxed future, a `Driver`, owned by the `load`/`load_many` call that created it and
//! polled by that call while it waits. So the batch runs in the caller's own task: no task is spawned and no
//! wake-up crosses to another worker thread on the common path (measured: on a loaded two-core machine each
//! such hand-off could cost milliseconds). If that caller is dropped first, `Driver`'s drop spawns the
//! unfinished work as a task of its own, so dropping a waiter cancels nothing; other waiters only hold the
//! `Arc` and wait on `done`. A guard inside the work publishes `Abandoned` if the work itself is dropped
//! (runtime shutdown), so no waiter hangs.
//!
//! The cache is the same map: with the cache on, a key's entry keeps pointing at its finished batch, whose
//! result map answers later loads, so publishing a result costs no per-key work (no value is copied into a
//! cache). A finished batch's map lives while any of its keys is still cached. Entries of failed batches, and
//! every entry when the cache is off, are removed when the batch finishes.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::Entry as Entry2;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::BatchError;
use crate::loader::Loader;
use crate::metrics::{Attributes, BatchMetrics, KeyCounts, Outcome};

type Key<L> = <L as Loader>::Key;
type Value<L> = <L as Loader>::Value;
type LoadResult<L> = Result<HashMap<Key<L>, Value<L>>, BatchError<<L as Loader>::Error>>;

/// Default [`BatchLoaderBuilder::max_batch_size`]: large enough that one request's keys usually fit one batch,
/// small enough that one statement's result stays modest (async-graphql's default too).
pub const DEFAULT_MAX_BATCH_SIZE: usize = 1_000;

/// On a multi-thread runtime, how long no key must have arrived before a tick-window batch is dispatched:
/// loading tasks on other workers cannot be seen in this worker's queue, and a worker takes a few
/// microseconds to pick up a task that was just spawned. Far below one round trip to a database.
const QUIET: Duration = Duration::from_micros(20);

/// The longest a tick-window batch waits while keys keep arriving (a steady stream of loads).
const MAX_WINDOW: Duration = Duration::from_millis(1);

/// Coalesces loads from concurrently running tasks into batched [`Loader::load`] calls.
///
/// Cheap to create (a handful of small allocations, no metric-instrument lookups) and to clone (an `Arc`):
/// make one per request, so its cache lives as long as the request. A loader shared by many requests is an
/// explicit choice: [`BatchLoader::shared`] builds one without a cache, so it never serves values older than
/// the batch that fetched them.
///
/// **Window.** With no delay configured, a batch is dispatched once the tasks that loaded its keys have
/// yielded, as the JavaScript DataLoader's tick: no fixed latency is added. The call that creates a batch
/// (its first key) runs the batch's work while it waits: the work yields to the scheduler until a turn adds
/// no key; on a multi-thread runtime it also waits until no key arrived for 20 µs, because
/// loading tasks on other workers cannot be seen from its own. It stops waiting after 1 ms while keys keep
/// coming. So loads polled together in one task on a worker (`join!`, `join_all`, a GraphQL list field)
/// share one batch, and tasks spawned together usually do. [`BatchLoaderBuilder::delay`] waits a fixed time
/// instead, for wider batches. A batch that reaches [`max_batch_size`](BatchLoaderBuilder::max_batch_size)
/// is dispatched at once and later keys open a new one.
///
/// **Deduplication.** A key already pending or in flight joins that batch: it is never fetched twice at the
/// same time. With the cache on (the default), a fetched key (found or missing) is answered from the cache
/// until [`clear`](BatchLoader::clear)ed; failed keys are not cached.
///
/// **Errors.** A missing key is `Ok(None)`. A failed batch gives every waiter of that batch the same
/// [`BatchError::Load`]; a panicking loader gives [`BatchError::Panicked`].
///
/// **Where the batch runs.** In the task of the call that created it, so no hand-off to another task or
/// worker thread delays the result; if that call is dropped (a timeout, a cancelled request), the batch
/// moves to a task of its own and finishes for the other waiters. A created-but-unpolled call (a future held
/// without being awaited) holds its batch back until it is polled or dropped.
///
/// Must be used inside a tokio runtime (a batch whose creator is dropped needs a task to move to).
pub struct BatchLoader<L: Loader> {
    inner: Arc<Inner<L>>,
}

impl<L: Loader> Clone for BatchLoader<L> {
    fn clone(&self) -> Self {
        BatchLoader { inner: Arc::clone(&self.inner) }
    }
}

impl<L: Loader> std::fmt::Debug for BatchLoader<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.state.lock();
        let in_flight =
            st.entries.values().filter(|e| matches!(e, Entry::Batch(b) if b.result.get().is_none())).count();
        f.debug_struct("BatchLoader")
            .field("max_batch_size", &self.inner.max_batch_size)
            .field("delay", &self.inner.delay)
            .field("cached_keys", &self.inner.cache.then(|| st.entries.len() - in_flight))
            .field("keys_in_flight", &in_flight)
            .finish_non_exhaustive()
    }
}

/// Builds a [`BatchLoader`]; from [`BatchLoader::builder`].
#[must_use]
pub struct BatchLoaderBuilder<L: Loader> {
    loader: L,
    max_batch_size: usize,
    delay: Option<Duration>,
    cache: bool,
    name: opentelemetry::StringValue,
    system: Option<opentelemetry::StringValue>,
    metrics: Option<BatchMetrics>,
}

impl<L: Loader> BatchLoaderBuilder<L> {
    /// Most distinct keys per [`Loader::load`] call; larger requests (a big `load_many` included) are split.
    /// `0` means no limit. Default: [`DEFAULT_MAX_BATCH_SIZE`] (1,000).
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = if n == 0 { usize::MAX } else { n };
        self
    }

    /// Wait this long after a batch's first key before dispatching it, instead of one scheduler tick.
    /// Default: none (tick semantics, no added latency).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Keep fetched values (found and missing) and answer later loads of the same keys from them.
    /// Default: on for [`BatchLoader::new`]/[`builder`](BatchLoader::builder), off for
    /// [`BatchLoader::shared`].
    pub fn cache(mut self, on: bool) -> Self {
        self.cache = on;
        self
    }

    /// The `aquifer.batch.loader` attribute of this loader's metrics. Default: the loader type's name.
    pub fn name(mut self, name: impl Into<opentelemetry::StringValue>) -> Self {
        self.name = name.into();
        self
    }

    /// The `db.system.name` of the database the loader queries (`postgresql`, `mysql`, `mariadb`, `neo4j`,
    /// `sqlite`), added to every data point of this loader's metrics. The semantic conventions require it on
    /// `db.client.operation.duration`, so set it for a loader that queries a database. Default: none.
    pub fn system(mut self, system: impl Into<opentelemetry::StringValue>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Record into these instruments. Default: [`BatchMetrics::global`].
    pub fn metrics(mut self, metrics: BatchMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The loader.
    #[must_use]
    pub fn build(self) -> BatchLoader<L> {
        BatchLoader {
            inner: Arc::new(Inner {
                loader: self.loader,
                max_batch_size: self.max_batch_size,
                delay: self.delay,
                cache: self.cache,
                attrs: Attributes::new(self.name, self.system),
                metrics: self.metrics.unwrap_or_else(BatchMetrics::global),
                state: Mutex::new(State { pending: None, entries: HashMap::new(), counts: KeyCounts::default() }),
            }),
        }
    }
}

struct Inner<L: Loader> {
    loader: L,
    max_batch_size: usize,
    delay: Option<Duration>,
    cache: bool,
    attrs: Attributes,
    metrics: BatchMetrics,
    state: Mutex<State<L>>,
}

impl<L: Loader> Drop for Inner<L> {
    fn drop(&mut self) {
        let counts = self.state.get_mut().counts.take();
        self.metrics.add_counts(&self.attrs, counts);
    }
}

struct State<L: Loader> {
    /// The batch new keys join, until it is dispatched or full.
    pending: Option<Pending<L>>,
    /// Every key of a pending or running batch, to that batch; with the cache on, also every fetched key, to
    /// its finished batch (whose result answers it), and every primed key.
    entries: HashMap<Key<L>, Entry<L>>,
    counts: KeyCounts,
}

/// The batch still collecting keys, and its keys so far.
struct Pending<L: Loader> {
    batch: Arc<Batch<L>>,
    keys: Vec<Key<L>>,
}

enum Entry<L: Loader> {
    /// Being fetched by this batch (no result yet), or fetched by it (the cache).
    Batch(Arc<Batch<L>>),
    /// Put in the cache by [`BatchLoader::prime`].
    Primed(Value<L>),
}

impl<L: Loader> Entry<L> {
    /// Whether the entry answers loads from the cache (a primed value or a successfully finished batch).
    fn is_cached(&self) -> bool {
        match self {
            Entry::Primed(_) => true,
            Entry::Batch(b) => matches!(b.result.get(), Some(Ok(_))),
        }
    }
}

struct Batch<L: Loader> {
    /// Keys joined so far: the window watches it without taking the state lock.
    len: AtomicUsize,
    /// The keys of a batch that was sealed (full) before its task took them from the pending slot.
    sealed_keys: Mutex<Vec<Key<L>>>,
    /// Notified when the batch is full: dispatch without waiting out the window.
    sealed: Notify,
    result: OnceLock<LoadResult<L>>,
    done: Notify,
}

impl<L: Loader> Batch<L> {
    fn new() -> Self {
        Batch {
            len: AtomicUsize::new(0),
            sealed_keys: Mutex::new(Vec::new()),
            sealed: Notify::new(),
            result: OnceLock::new(),
            done: Notify::new(),
        }
    }

    /// This batch's result, polling `drivers` (the batches this call created) while it waits, so they run.
    async fn wait(&self, drivers: &mut [Driver]) -> &LoadResult<L> {
        loop {
            if let Some(r) = self.result.get() {
                return r;
            }
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Register before checking again, so a result published in between still wakes us.
            notified.as_mut().enable();
            std::future::poll_fn(|cx| {
                for d in drivers.iter_mut() {
                    d.poll(cx);
                }
                if self.result.get().is_some() {
                    return Poll::Ready(());
                }
                notified.as_mut().poll(cx)
            })
            .await;
        }
    }

    fn value(result: &LoadResult<L>, key: &Key<L>) -> Result<Option<Value<L>>, BatchError<L::Error>> {
        match result {
            Ok(map) => Ok(map.get(key).cloned()),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Where one requested key's answer comes from.
enum Lookup<L: Loader> {
    Cached(Option<Value<L>>),
    Batch(Arc<Batch<L>>),
}

impl<L: Loader> BatchLoader<L> {
    /// A request-scoped loader with the defaults: tick window, [`DEFAULT_MAX_BATCH_SIZE`], cache on.
    pub fn new(loader: L) -> Self {
        Self::builder(loader).build()
    }

    /// A loader meant to be shared by many requests: the same as [`new`](Self::new) with the cache off.
    pub fn shared(loader: L) -> Self {
        Self::builder(loader).cache(false).build()
    }

    /// A builder with the defaults of [`new`](Self::new).
    pub fn builder(loader: L) -> BatchLoaderBuilder<L> {
        let full = std::any::type_name::<L>();
        let short = full.rsplit("::").next().unwrap_or(full);
        BatchLoaderBuilder {
            loader,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            delay: None,
            cache: true,
            name: short.into(),
            system: None,
            metrics: None,
        }
    }

    /// The wrapped loader.
    pub fn loader(&self) -> &L {
        &self.inner.loader
    }

    /// The value of `key`: `Ok(None)` when the loader returned none for it.
    ///
    /// Cancellation: dropping the returned future only stops waiting; the batch the key joined still runs and,
    /// with the cache on, its values are cached for later calls.
    pub async fn load(&self, key: Key<L>) -> Result<Option<Value<L>>, BatchError<L::Error>> {
        let mut created = Vec::new();
        let lookup = {
            let mut st = self.inner.state.lock();
            st.counts.requested += 1;
            self.inner.lookup(&mut st, &key, &mut created)
        };
        let mut drivers = self.drivers(created)?;
        match lookup {
            Lookup::Cached(v) => Ok(v),
            Lookup::Batch(batch) => Batch::<L>::value(batch.wait(&mut drivers).await, &key),
        }
    }

    /// The values of `keys`, in their order (`None` where the loader returned none). Repeated keys are fetched
    /// once; more keys than `max_batch_size` are split over several batches, which run concurrently. Fails
    /// with the error of the first failed batch among them.
    ///
    /// Cancellation: as [`load`](Self::load); every batch the keys joined still runs.
    pub async fn load_many(
        &self,
        keys: impl IntoIterator<Item = Key<L>>,
    ) -> Result<Vec<Option<Value<L>>>, BatchError<L::Error>> {
        let keys: Vec<Key<L>> = keys.into_iter().collect();
        let mut created = Vec::new();
        let lookups: Vec<Lookup<L>> = {
            let mut st = self.inner.state.lock();
            st.counts.requested += keys.len() as u64;
            keys.iter().map(|k| self.inner.lookup(&mut st, k, &mut created)).collect()
        };
        // Every created batch is polled while any key is awaited, so they all run concurrently; on an early
        // return (a failed batch) the unfinished ones move to tasks of their own.
        let mut drivers = self.drivers(created)?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, lookup) in keys.iter().zip(lookups) {
            out.push(match lookup {
                Lookup::Cached(v) => v,
                Lookup::Batch(batch) => Batch::<L>::value(batch.wait(&mut drivers).await, key)?,
            });
        }
        Ok(out)
    }

    /// Puts `value` in the cache for `key` unless the key is cached or being fetched already (as the
    /// JavaScript DataLoader's `prime`: use [`clear`](Self::clear) first to overwrite). Returns whether it was
    /// stored; always `false` with the cache off.
    pub fn prime(&self, key: Key<L>, value: Value<L>) -> bool {
        if !self.inner.cache {
            return false;
        }
        let mut st = self.inner.state.lock();
        match st.entries.entry(key) {
            Entry2::Vacant(v) => {
                v.insert(Entry::Primed(value));
                true
            }
            // A failed batch's entry is about to be removed: it holds no value.
            Entry2::Occupied(mut o) if matches!(o.get(), Entry::Batch(b) if matches!(b.result.get(), Some(Err(_)))) => {
                o.insert(Entry::Primed(value));
                true
            }
            Entry2::Occupied(_) => false,
        }
    }

    /// Forgets the cached value of `key`, so the next load fetches it again. Returns whether one was cached.
    /// A key being fetched is left alone: its batch is already answering it.
    pub fn clear(&self, key: &Key<L>) -> bool {
        let mut st = self.inner.state.lock();
        if st.entries.get(key).is_some_and(Entry::is_cached) {
            st.entries.remove(key);
            true
        } else {
            false
        }
    }

    /// Forgets every cached value (keys being fetched are left to their batches).
    pub fn clear_all(&self) {
        self.inner.state.lock().entries.retain(|_, e| !e.is_cached());
    }

    /// The work of each batch this call created, for the call to drive while it waits.
    fn drivers(&self, batches: Vec<Arc<Batch<L>>>) -> Result<Vec<Driver>, BatchError<L::Error>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // Nothing could take these batches over from a dropped caller: fail their waiters instead.
            for b in &batches {
                let keys = self.inner.take_keys(b);
                self.inner.complete(b, &keys, Err(BatchError::NoRuntime));
            }
            return Err(BatchError::NoRuntime);
        };
        Ok(batches
            .into_iter()
            .map(|batch| {
                // The guard is in the future before it first runs, so work dropped unpolled (a runtime shut
                // down before the task it was handed to ran) still fails its waiters.
                let work = run_batch(Publish {
                    inner: Arc::clone(&self.inner),
                    batch,
                    keys: Vec::new(),
                    dispatched: false,
                    done: false,
                });
                Driver { work: Some(Box::pin(work)), handle: handle.clone() }
            })
            .collect())
    }
}

/// One batch's work (window, [`Loader::load`], publishing the result), owned by the call that created the
/// batch and polled by it while it waits: the work runs in the caller's own task, with no hand-off to another
/// task or worker thread on the way. If the caller is dropped first, the work moves to a task of its own and
/// goes on for the other waiters.
struct Driver {
    work: Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>,
    handle: tokio::runtime::Handle,
}

impl Driver {
    fn poll(&mut self, cx: &mut Context<'_>) {
        if let Some(work) = self.work.as_mut()
            && work.as_mut().poll(cx).is_ready()
        {
            self.work = None;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            // On a runtime that is shutting down the task is dropped unpolled: its guard publishes Abandoned.
            drop(self.handle.spawn(work));
        }
    }
}

impl<L: Loader> Inner<L> {
    /// Under the lock: the cache's answer, the batch already fetching `key`, or the pending batch (new ones
    /// are pushed to `created`, for the caller to drive after releasing the lock).
    fn lookup(&self, st: &mut State<L>, key: &Key<L>, created: &mut Vec<Arc<Batch<L>>>) -> Lookup<L> {
        match st.entries.get(key) {
            Some(Entry::Primed(v)) => {
                let v = v.clone();
                st.counts.cached += 1;
                return Lookup::Cached(Some(v));
            }
            Some(Entry::Batch(b)) => match b.result.get() {
                None => {
                    let b = Arc::clone(b);
                    st.counts.deduplicated += 1;
                    return Lookup::Batch(b);
                }
                Some(Ok(map)) if self.cache => {
                    let v = map.get(key).cloned();
                    st.counts.cached += 1;
                    return Lookup::Cached(v);
                }
                // Failed, or finished with the cache off: its entry is on its way out; fetch anew.
                Some(_) => {}
            },
            None => {}
        }
        let pending = st.pending.get_or_insert_with(|| {
            let batch = Arc::new(Batch::new());
            created.push(Arc::clone(&batch));
            Pending { batch, keys: Vec::new() }
        });
        pending.keys.push(key.clone());
        let batch = Arc::clone(&pending.batch);
        let joined = pending.keys.len();
        batch.len.store(joined, Ordering::Relaxed);
        if joined >= self.max_batch_size {
            let full = st.pending.take().expect("the pending batch was just used");
            *full.batch.sealed_keys.lock() = full.keys;
            full.batch.sealed.notify_one();
        }
        st.entries.insert(key.clone(), Entry::Batch(Arc::clone(&batch)));
        Lookup::Batch(batch)
    }

    /// Takes `batch`'s keys for dispatch: from the pending slot while it still collects, else those it was
    /// sealed with. No key joins a batch once it left the pending slot, so the list is final.
    fn take_keys(&self, batch: &Arc<Batch<L>>) -> Vec<Key<L>> {
        let mut st = self.state.lock();
        match st.pending.take_if(|p| Arc::ptr_eq(&p.batch, batch)) {
            Some(p) => p.keys,
            None => std::mem::take(&mut *batch.sealed_keys.lock()),
        }
    }

    /// Publishes a batch's result, drops the entries that must not outlive it, then wakes the waiters.
    fn complete(&self, batch: &Arc<Batch<L>>, keys: &[Key<L>], result: LoadResult<L>) {
        let result = batch.result.get_or_init(|| result);
        if !self.cache || result.is_err() {
            let mut st = self.state.lock();
            for k in keys {
                if st.entries.get(k).is_some_and(|e| matches!(e, Entry::Batch(b) if Arc::ptr_eq(b, batch))) {
                    st.entries.remove(k);
                }
            }
        }
        batch.done.notify_waiters();
    }

    /// The window: a fixed delay, or scheduler turns until keys stop arriving (see [`BatchLoader`]).
    async fn window(&self, batch: &Batch<L>) {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
            return;
        }
        let other_threads = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread);
        let started = Instant::now();
        let mut last_key = started;
        let mut seen = batch.len.load(Ordering::Relaxed);
        loop {
            tokio::task::yield_now().await;
            let now = batch.len.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                last_key = Instant::now();
            } else if !other_threads || last_key.elapsed() >= QUIET {
                return;
            }
            if started.elapsed() >= MAX_WINDOW {
                return;
            }
        }
    }
}

/// Publishes `Abandoned` if the batch's work is dropped before it published a result.
struct Publish<L: Loader> {
    inner: Arc<Inner<L>>,
    batch: Arc<Batch<L>>,
    keys: Vec<Key<L>>,
    /// The keys were taken for dispatch (into `keys`).
    dispatched: bool,
    done: bool,
}

impl<L: Loader> Drop for Publish<L> {
    fn drop(&mut self) {
        if !self.done {
            if !self.dispatched {
                self.keys = self.inner.take_keys(&self.batch);
            }
            self.inner.complete(&self.batch, &self.keys, Err(BatchError::Abandoned));
        }
    }
}

async fn run_batch<L: Loader>(mut publish: Publish<L>) {
    let inner = Arc::clone(&publish.inner);
    let batch = Arc::clone(&publish.batch);
    tokio::select! {
        biased;
        () = batch.sealed.notified() => {}
        () = inner.window(&batch) => {}
    }
    publish.keys = inner.take_keys(&batch);
    publish.dispatched = true;
    let counts = inner.state.lock().counts.take();
    inner.metrics.add_counts(&inner.attrs, counts);
    inner.metrics.size.record(publish.keys.len() as u64, &inner.attrs.loader);

    let started = Instant::now();
    let outcome = AssertUnwindSafe(inner.loader.load(&publish.keys)).catch_unwind().await;
    let elapsed = started.elapsed().as_secs_f64();
    let result = match outcome {
        Ok(Ok(map)) => Ok(map),
        Ok(Err(e)) => Err(BatchError::Load(Arc::new(e))),
        Err(panic) => Err(BatchError::Panicked(panic_message(panic))),
    };
    match &result {
        Ok(map) => {
            inner.metrics.duration.record(elapsed, &inner.attrs.loader);
            let loaded = publish.keys.iter().filter(|k| map.contains_key(k)).count() as u64;
            let missing = publish.keys.len() as u64 - loaded;
            if loaded > 0 {
                inner.metrics.keys.add(loaded, inner.attrs.outcome(Outcome::Loaded));
            }
            if missing > 0 {
                inner.metrics.keys.add(missing, inner.attrs.outcome(Outcome::Missing));
            }
        }
        Err(e) => inner.metrics.duration.record(elapsed, inner.attrs.error(e.kind())),
    }
    inner.complete(&batch, &publish.keys, result);
    publish.done = true;
}

/// A panic's message, when its payload is a string.
pub(crate) fn panic_message(panic: Box<dyn Any + Send>) -> Arc<str> {
    if let Some(s) = panic.downcast_ref::<&str>() {
        Arc::from(*s)
    } else if let Some(s) = panic.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("non-string panic payload")
    }
}
