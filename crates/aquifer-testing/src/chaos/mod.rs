//! What the chaos tests (the umbrella's tests/chaos.rs), the soak (tests/soak.rs, examples/soak.rs) and the
//! fault table (benches/faults.rs) share, generic over the backend: a pool of the adapter behind a
//! [`ChaosProxy`], a load of short requests that tallies every outcome by its typed error ([`load`]), the
//! pool's invariants once everything is back ([`invariants`]), and the soak with its samples ([`soak`]).
//!
//! What differs by backend (its statements, how its errors read, how the server counts a pool's sessions) is
//! a [`ChaosBackend`], implemented outside this crate: aquifer-testing depends on no adapter, since every
//! adapter's own tests depend on it.
//!
//! [`load`]: crate::chaos::load()
//! [`invariants`]: crate::chaos::assert_invariants
//! [`soak`]: crate::chaos::soak()

mod invariants;
mod load;
mod soak;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use aquifer_core::{Adapter, Manager, Pool, Pooled};

use crate::ChaosProxy;

pub use invariants::{assert_invariants, assert_server_clean, fill};
pub use load::{Counts, Fail, Tally, load, load_with_think, request};
pub use soak::{Sample, SoakConfig, SoakReport, rss_kib, soak};

/// The command that starts the servers, named when one is not reachable.
const SCRIPT: &str = "bash scripts/dev-services.sh";

/// The acquire timeout of every pool under chaos (and of every peer in benches/faults.rs).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The leak threshold of every pool under chaos: far above any request, so a report means a real leak.
const LEAK_THRESHOLD: Duration = Duration::from_secs(10);

/// Rows of [`ChaosBackend::long_result`]: enough bytes that a cut after a few kilobytes lands inside the result
/// on every backend.
pub const LONG_ROWS: i64 = 20_000;

/// One backend under chaos: what the generic load, checks and soak cannot know.
///
/// The pool itself is generic: [`pool`] reads the adapter's configuration from `{ENV_PREFIX}_*` variables
/// ([`Adapter::from_vars`]), the backend's own ones from [`vars`](ChaosBackend::vars) and the pool settings
/// every chaos test uses (name, size, acquire timeout, leak threshold).
pub trait ChaosBackend: Send + Sync + 'static {
    /// The adapter's configuration (`PgConfig`, ...); its pool dereferences to the engine's [`Pool`].
    type Config: Adapter<Pool: Deref<Target = Pool<Self::M>>>;
    /// The adapter's manager.
    type M: Manager;
    /// Shown in messages.
    const NAME: &'static str;
    /// Where the real server listens: one of [`crate::servers`]' ports on 127.0.0.1 (chaos runs on loopback
    /// only).
    const UPSTREAM: crate::servers::Port;

    /// Where the real server listens, as an address.
    fn upstream() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], Self::UPSTREAM.get()))
    }

    /// The adapter's variables for a pool that connects through `port` (the proxy's) and whose connections
    /// the server can tell by `marker`, by suffix: `("URL", ...)` is `{ENV_PREFIX}_URL`. [`pool`] adds
    /// `NAME`, `POOL_MAX_SIZE`, `POOL_ACQUIRE_TIMEOUT` and `POOL_LEAK_THRESHOLD`.
    fn vars(port: u16, marker: &str) -> Vec<(&'static str, String)>;

    /// Whatever the server needs before a pool marked `marker` connects (a user of that name). The default:
    /// nothing.
    fn prepare(marker: &str) -> impl Future<Output = ()> + Send {
        let _ = marker;
        async {}
    }

    /// One short statement on a checked-out connection.
    fn short(conn: &mut Pooled<Self::M>) -> impl Future<Output = Result<(), Fail>> + Send;

    /// A result of [`LONG_ROWS`] rows (several hundred kilobytes) on a checked-out connection; returns the
    /// row count.
    fn long_result(conn: &mut Pooled<Self::M>) -> impl Future<Output = Result<usize, Fail>> + Send;

    /// One short statement through the adapter's helper (which retries what its docs say it retries).
    fn helper_short(pool: &PoolOf<Self>) -> impl Future<Output = Result<(), Fail>> + Send;

    /// The long result through the adapter's helper; returns the row count.
    fn helper_long(pool: &PoolOf<Self>) -> impl Future<Output = Result<usize, Fail>> + Send;

    /// How many connections of the pool marked `marker` the server holds, from the server's own list of
    /// sessions where it has one (otherwise the proxy's open upstream connections stand in).
    fn server_connections(marker: &str, proxy: &ChaosProxy) -> impl Future<Output = usize> + Send;
}

/// The adapter's pool of backend `B` (`PgPool`, ...).
pub type PoolOf<B> = <<B as ChaosBackend>::Config as Adapter>::Pool;

/// A name unique to this process and test: `aq_chaos_<what>_<pid>`.
pub fn marker(what: &str) -> String {
    format!("aq_chaos_{what}_{}", std::process::id())
}

/// Fails the test, naming the services script, unless `B`'s server answers.
pub async fn require<B: ChaosBackend>() {
    crate::require_server(B::NAME, &B::UPSTREAM.addr(), SCRIPT).await;
}

/// A lazy pool of `B` of at most `max_size` connections through `port`, named `marker` (the adapter passes the
/// name on where the server shows it), with the [`ACQUIRE_TIMEOUT`] of every pool under chaos. Panics when
/// the adapter rejects the variables, or outside a Tokio runtime.
pub fn pool<B: ChaosBackend>(port: u16, marker: &str, max_size: usize) -> PoolOf<B> {
    pool_with::<B>(port, marker, max_size, Vec::new())
}

/// [`pool`] with more variables, by suffix (`("POOL_KEEPALIVE_INTERVAL", "500ms".into())`); they override
/// the common ones.
pub fn pool_with<B: ChaosBackend>(
    port: u16,
    marker: &str,
    max_size: usize,
    extra: Vec<(&'static str, String)>,
) -> PoolOf<B> {
    let prefix = B::Config::ENV_PREFIX;
    let common = [
        ("NAME", marker.to_owned()),
        ("POOL_MAX_SIZE", max_size.to_string()),
        ("POOL_ACQUIRE_TIMEOUT", format!("{}ms", ACQUIRE_TIMEOUT.as_millis())),
        ("POOL_LEAK_THRESHOLD", format!("{}ms", LEAK_THRESHOLD.as_millis())),
    ];
    let vars = B::vars(port, marker)
        .into_iter()
        .chain(common)
        .chain(extra)
        .map(|(suffix, v)| (format!("{prefix}_{suffix}"), v));
    let config = B::Config::from_vars(prefix, vars).unwrap_or_else(|e| panic!("{}: {e}", B::NAME));
    config.build().unwrap_or_else(|e| panic!("{}: a pool builds in a runtime: {e}", B::NAME))
}

/// What every chaos run starts with: fails unless the server answers, then a [`marker`] for `test`, the
/// server [prepared](ChaosBackend::prepare) for it, a proxy in front of the server and a lazy [`pool`] of
/// `max_size` through it.
pub async fn setup<B: ChaosBackend>(test: &str, max_size: usize) -> (ChaosProxy, String, PoolOf<B>) {
    require::<B>().await;
    let marker = marker(test);
    B::prepare(&marker).await;
    let proxy = ChaosProxy::start(B::upstream()).await.expect("the proxy starts");
    let pool = pool::<B>(proxy.port(), &marker, max_size);
    (proxy, marker, pool)
}
