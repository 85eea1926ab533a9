//! A recording loader for the BatchLoader tests: values are `key * 10`, keys divisible by 7 are missing; it
//! records every batch it is called with, can be held in flight by a gate, and can fail or panic.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use aquifer_batch::{BatchError, BatchLoader, Loader};
use aquifer_testing::{CountingProxy, WireProtocol};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
#[error("database unreachable (batch of {0} keys)")]
pub struct Unreachable(pub usize);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Ok,
    Fail,
    Panic,
}

#[derive(Clone)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Vec<u64>>>>,
    /// When set, each call waits for one permit before answering.
    pub gate: Option<Arc<Semaphore>>,
    pub mode: Arc<Mutex<Mode>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { calls: Arc::default(), gate: None, mode: Arc::new(Mutex::new(Mode::Ok)) }
    }

    /// A recorder whose calls wait on the returned semaphore.
    pub fn gated() -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        (Recorder { gate: Some(Arc::clone(&gate)), ..Recorder::new() }, gate)
    }

    pub fn with_mode(mode: Mode) -> Self {
        let r = Recorder::new();
        *r.mode.lock() = mode;
        r
    }

    pub fn calls(&self) -> Vec<Vec<u64>> {
        self.calls.lock().clone()
    }

    /// Each call's keys, sorted, for comparisons that ignore arrival order.
    pub fn sorted_calls(&self) -> Vec<Vec<u64>> {
        self.calls()
            .into_iter()
            .map(|mut c| {
                c.sort_unstable();
                c
            })
            .collect()
    }
}

impl Loader for Recorder {
    type Key = u64;
    type Value = u64;
    type Error = Unreachable;

    async fn load(&self, keys: &[u64]) -> Result<HashMap<u64, u64>, Unreachable> {
        self.calls.lock().push(keys.to_vec());
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate closed").forget();
        }
        let mode = *self.mode.lock();
        match mode {
            Mode::Ok => Ok(keys.iter().filter(|&&k| k % 7 != 0).map(|&k| (k, k * 10)).collect()),
            Mode::Fail => Err(Unreachable(keys.len())),
            Mode::Panic => panic!("loader bug on {} keys", keys.len()),
        }
    }
}

/// A request-scoped loader (cache on) over a fresh recorder, and the recorder to inspect its batches.
pub fn request_loader() -> (Recorder, BatchLoader<Recorder>) {
    let rec = Recorder::new();
    (rec.clone(), BatchLoader::new(rec))
}

/// A shared loader (no cache) over a fresh recorder, and the recorder to inspect its batches.
pub fn shared_loader() -> (Recorder, BatchLoader<Recorder>) {
    let rec = Recorder::new();
    (rec.clone(), BatchLoader::shared(rec))
}

type Answer<T> = Result<T, BatchError<Unreachable>>;

/// Loads `key` from a task of its own, as a concurrently running resolver would.
pub fn spawn_load(loader: &BatchLoader<Recorder>, key: u64) -> JoinHandle<Answer<Option<u64>>> {
    let loader = loader.clone();
    tokio::spawn(async move { loader.load(key).await })
}

/// Loads `keys` from a task of its own, as a concurrently running resolver would.
pub fn spawn_load_many(loader: &BatchLoader<Recorder>, keys: [u64; 2]) -> JoinHandle<Answer<Vec<Option<u64>>>> {
    let loader = loader.clone();
    tokio::spawn(async move { loader.load_many(keys).await })
}

/// A loader whose first batch ends in `mode` (failed or panicked) answers key 1 again once the database is back:
/// nothing of the bad batch sticks. Returns the recorder to count the fetches.
pub async fn assert_recovers_from(mode: Mode) -> Recorder {
    let rec = Recorder::with_mode(mode);
    let loader = BatchLoader::new(rec.clone());
    assert!(loader.load(1).await.is_err());
    *rec.mode.lock() = Mode::Ok;
    assert_eq!(loader.load(1).await.unwrap(), Some(10));
    rec
}

/// A loader of each parent's children (the albums' track titles of the database tests): `fetch` runs one batch's
/// query on the shared connection and returns `(parent, child)` rows, which this groups by parent.
pub struct ChildrenOf<C, K, F> {
    conn: Arc<C>,
    fetch: F,
    _parent: PhantomData<fn() -> K>,
}

impl<C, K, F, Fut> ChildrenOf<C, K, F>
where
    F: Fn(Arc<C>, Vec<K>) -> Fut,
{
    pub fn new(conn: &Arc<C>, fetch: F) -> Self {
        ChildrenOf { conn: Arc::clone(conn), fetch, _parent: PhantomData }
    }
}

impl<C, K, E, F, Fut> Loader for ChildrenOf<C, K, F>
where
    C: Send + Sync + 'static,
    K: Eq + Hash + Clone + Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(Arc<C>, Vec<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(K, String)>, E>> + Send,
{
    type Key = K;
    type Value = Vec<String>;
    type Error = E;

    async fn load(&self, parents: &[K]) -> Result<HashMap<K, Vec<String>>, E> {
        let mut children: HashMap<K, Vec<String>> = HashMap::new();
        for (parent, child) in (self.fetch)(Arc::clone(&self.conn), parents.to_vec()).await? {
            children.entry(parent).or_default().push(child);
        }
        Ok(children)
    }
}

/// Loads every album from one request's task, its resolvers running concurrently as a GraphQL server resolves
/// a list field; each album comes back with its answer.
pub async fn resolve_in_one_request<L: Loader>(
    loader: &BatchLoader<L>,
    keys: &[L::Key],
) -> Vec<(L::Key, Result<Option<L::Value>, BatchError<L::Error>>)> {
    let (keys, loader) = (keys.to_vec(), loader.clone());
    let request = tokio::spawn(async move {
        let loader = &loader;
        futures_util::future::join_all(keys.into_iter().map(|key| async move { (key.clone(), loader.load(key).await) }))
            .await
    });
    request.await.unwrap()
}

/// Lets every ready task run until the runtime is idle (current-thread runtime).
pub async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// A proxy in front of the server at `addr` that counts the statements sent to it in `protocol`, once the
/// server answers; an unreachable server fails the test, naming `script` (the command that starts it).
/// A connection to the project's MariaDB (database `test`, as root), over TCP.
pub async fn mariadb() -> mysql_async::Conn {
    aquifer_testing::require_server(
        "MariaDB",
        &aquifer_testing::servers::mariadb_addr(),
        "bash scripts/dev-services.sh mariadb",
    )
    .await;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(aquifer_testing::servers::MARIADB.get())
        .user(Some("root"))
        .db_name(Some("test"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("connect to MariaDB")
}

/// A counting proxy in front of the project's Bolt server (ArcadeDB).
pub async fn bolt_proxy() -> CountingProxy {
    let addr = aquifer_testing::servers::bolt_addr();
    counting_proxy("the Bolt server (ArcadeDB)", &addr, "bash scripts/dev-services.sh arcadedb", WireProtocol::Bolt)
        .await
}

/// A counting proxy in front of the project's PostgreSQL.
pub async fn postgres_proxy() -> CountingProxy {
    let addr = aquifer_testing::servers::postgres_addr();
    counting_proxy("PostgreSQL", &addr, "bash scripts/dev-services.sh postgres", WireProtocol::Postgres).await
}

pub async fn counting_proxy(server: &str, addr: &str, script: &str, protocol: WireProtocol) -> CountingProxy {
    aquifer_testing::require_server(server, addr, script).await;
    CountingProxy::start(addr, protocol).await
}
