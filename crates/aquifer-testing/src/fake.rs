//! [`FakeManager`]: an in-memory stand-in for a database, for unit tests of the engine only.
//!
//! It injects the faults the engine must survive — refused, failing, slow and hanging connects, failing
//! validations, broken connections, connections that need a reset — and counts every connection it creates and
//! closes, so tests can check that each one is closed exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use aquifer_core::{Descriptor, Manager, Operations, RetryPolicy};
use parking_lot::Mutex;

/// The error of the fake server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError(pub String);

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FakeError {}

/// What the fake server has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Connect attempts.
    pub attempts: u64,
    /// Connections created.
    pub created: u64,
    /// Connections closed (dropped).
    pub closed: u64,
    /// Validations run.
    pub validations: u64,
    /// Resets run.
    pub resets: u64,
}

/// A hook of the [`Manager`] trait that [`FakeManager::set_panic`] can make panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FakeHook {
    /// `Manager::connect`.
    Connect = 1,
    /// `Manager::validate`.
    Validate = 2,
    /// `Manager::reset`.
    Reset = 4,
    /// `Manager::is_broken`.
    IsBroken = 8,
    /// `Manager::needs_reset`.
    NeedsReset = 16,
    /// `Manager::server_version`.
    ServerVersion = 32,
}

#[derive(Default)]
struct Server {
    panics: AtomicU8,
    down: AtomicBool,
    hang: AtomicBool,
    fail_validation: AtomicBool,
    fail_reset: AtomicBool,
    connect_error: Mutex<Option<String>>,
    connect_delay: Mutex<Duration>,
    validate_delay: Mutex<Duration>,
    reset_delay: Mutex<Duration>,
    next_id: AtomicU64,
    attempts: AtomicU64,
    validations: AtomicU64,
    resets: AtomicU64,
    live: Mutex<HashSet<u64>>,
    killed: Mutex<HashSet<u64>>,
    created: AtomicU64,
    closed: AtomicU64,
    double_closes: AtomicU64,
    credential_generation: AtomicU64,
    /// The credential generation each live connection was opened with.
    opened_with: Mutex<std::collections::HashMap<u64, u64>>,
}

/// A [`Manager`] over an in-memory fake server. Clones share the server.
#[derive(Clone)]
pub struct FakeManager {
    server: Arc<Server>,
    system: &'static str,
    host: Option<(Arc<str>, u16)>,
}

impl Default for FakeManager {
    fn default() -> Self {
        FakeManager { server: Arc::default(), system: "other_sql", host: None }
    }
}

/// A fake connection. Set `broken` or `dirty` to make the pool discard or reset it on return.
pub struct FakeConn {
    /// The server-side id.
    pub id: u64,
    /// The pool must discard it on return.
    pub broken: bool,
    /// The pool must reset it before reuse (an "open transaction").
    pub dirty: bool,
    /// How many times a user marked it used.
    pub uses: u64,
    server: Arc<Server>,
}

impl std::fmt::Debug for FakeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeConn")
            .field("id", &self.id)
            .field("broken", &self.broken)
            .field("dirty", &self.dirty)
            .finish()
    }
}

impl FakeConn {
    /// A statement's round trip: fails, marking the connection broken, when the server is down or killed
    /// the connection ([`FakeManager::kill_all`]).
    pub async fn round_trip(&mut self) -> Result<(), FakeError> {
        tokio::task::yield_now().await;
        if self.server.down.load(Ordering::SeqCst) || self.server.killed.lock().contains(&self.id) {
            self.broken = true;
            return Err(FakeError("server closed the connection".into()));
        }
        Ok(())
    }
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        if self.server.live.lock().remove(&self.id) {
            self.server.closed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.server.double_closes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl FakeManager {
    /// A fake server that is up and fast.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes connects fail with "connection refused" (`true`) or succeed again (`false`).
    pub fn set_down(&self, down: bool) {
        self.server.down.store(down, Ordering::SeqCst);
    }

    /// The same server, reporting `system` as its `db.system.name` (default `other_sql`).
    pub fn with_system(mut self, system: &'static str) -> Self {
        self.system = system;
        self
    }

    /// The same server, described as `address:port` (default `fake.local:1`): the hosts of a fake cluster
    /// ([`FakeReplication`](crate::FakeReplication)) are told apart by their port.
    pub fn with_host(mut self, address: &str, port: u16) -> Self {
        self.host = Some((address.into(), port));
        self
    }

    /// Ends every open connection on the server side, as an administrator killing every session would: the
    /// pool is not told, but each connection fails its next [`round_trip`](FakeConn::round_trip) or
    /// validation.
    /// Returns how many there were.
    pub fn kill_all(&self) -> usize {
        let live = self.server.live.lock().clone();
        let n = live.len();
        self.server.killed.lock().extend(live);
        n
    }

    /// Rotates the server's password: connections opened from now on hold the new one
    /// ([`Manager::credential_generation`] moves on); those open keep working, as on a real server. Returns
    /// the new generation.
    pub fn rotate_credentials(&self) -> u64 {
        self.server.credential_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Live connections opened with a credential generation older than the current one.
    pub fn sessions_of_old_credentials(&self) -> usize {
        let current = self.server.credential_generation.load(Ordering::SeqCst);
        let live = self.server.live.lock();
        self.server.opened_with.lock().iter().filter(|(id, g)| live.contains(id) && **g < current).count()
    }

    /// Makes connects hang forever (`true`).
    pub fn set_hang(&self, hang: bool) {
        self.server.hang.store(hang, Ordering::SeqCst);
    }

    /// Makes connects fail with this message (e.g. a refused password), or succeed again with `None`.
    pub fn set_connect_error(&self, error: Option<&str>) {
        *self.server.connect_error.lock() = error.map(str::to_owned);
    }

    /// Makes `hook` panic (`true`) on every call, or behave again (`false`).
    pub fn set_panic(&self, hook: FakeHook, panic: bool) {
        if panic {
            self.server.panics.fetch_or(hook as u8, Ordering::SeqCst);
        } else {
            self.server.panics.fetch_and(!(hook as u8), Ordering::SeqCst);
        }
    }

    fn maybe_panic(&self, hook: FakeHook) {
        if self.server.panics.load(Ordering::SeqCst) & hook as u8 != 0 {
            panic!("injected panic in {hook:?}");
        }
    }

    /// The start of a delayable step (connect, validate, reset): counts it, panics if `hook` is set to, then
    /// waits the step's delay, if any.
    async fn step(&self, count: &AtomicU64, hook: FakeHook, delay: &Mutex<Duration>) {
        count.fetch_add(1, Ordering::SeqCst);
        self.maybe_panic(hook);
        let delay = *delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Delays every connect.
    pub fn set_connect_delay(&self, d: Duration) {
        *self.server.connect_delay.lock() = d;
    }

    /// Delays every validation.
    pub fn set_validate_delay(&self, d: Duration) {
        *self.server.validate_delay.lock() = d;
    }

    /// Delays every reset.
    pub fn set_reset_delay(&self, d: Duration) {
        *self.server.reset_delay.lock() = d;
    }

    /// Makes validations fail.
    pub fn set_fail_validation(&self, fail: bool) {
        self.server.fail_validation.store(fail, Ordering::SeqCst);
    }

    /// Makes resets fail.
    pub fn set_fail_reset(&self, fail: bool) {
        self.server.fail_reset.store(fail, Ordering::SeqCst);
    }

    /// Counters of what the server saw.
    pub fn stats(&self) -> FakeStats {
        let s = &self.server;
        FakeStats {
            attempts: s.attempts.load(Ordering::SeqCst),
            created: s.created.load(Ordering::SeqCst),
            closed: s.closed.load(Ordering::SeqCst),
            validations: s.validations.load(Ordering::SeqCst),
            resets: s.resets.load(Ordering::SeqCst),
        }
    }

    /// Connections created and not yet closed.
    pub fn live(&self) -> usize {
        self.server.live.lock().len()
    }

    /// Connections the server still serves: created, not closed and not killed ([`kill_all`](Self::kill_all)).
    pub fn sessions(&self) -> usize {
        let killed = self.server.killed.lock();
        self.server.live.lock().iter().filter(|id| !killed.contains(id)).count()
    }

    /// Connections dropped more than once (must stay 0).
    pub fn double_closes(&self) -> u64 {
        self.server.double_closes.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Manager for FakeManager {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        let s = &self.server;
        self.step(&s.attempts, FakeHook::Connect, &s.connect_delay).await;
        if s.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if s.down.load(Ordering::SeqCst) {
            return Err(FakeError("connection refused".into()));
        }
        if let Some(e) = s.connect_error.lock().clone() {
            return Err(FakeError(e));
        }
        let id = s.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        s.live.lock().insert(id);
        s.opened_with.lock().insert(id, s.credential_generation.load(Ordering::SeqCst));
        s.created.fetch_add(1, Ordering::SeqCst);
        Ok(FakeConn { id, broken: false, dirty: false, uses: 0, server: Arc::clone(s) })
    }

    async fn validate(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.server;
        self.step(&s.validations, FakeHook::Validate, &s.validate_delay).await;
        let killed = s.killed.lock().contains(&conn.id);
        if conn.broken || killed || s.fail_validation.load(Ordering::SeqCst) || s.down.load(Ordering::SeqCst) {
            return Err(FakeError("server closed the connection".into()));
        }
        Ok(())
    }

    fn is_broken(&self, conn: &mut FakeConn) -> bool {
        self.maybe_panic(FakeHook::IsBroken);
        conn.broken
    }

    fn needs_reset(&self, conn: &mut FakeConn) -> bool {
        self.maybe_panic(FakeHook::NeedsReset);
        conn.dirty
    }

    async fn reset(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.server;
        self.step(&s.resets, FakeHook::Reset, &s.reset_delay).await;
        if s.fail_reset.load(Ordering::SeqCst) {
            return Err(FakeError("reset failed".into()));
        }
        conn.dirty = false;
        Ok(())
    }

    async fn server_version(&self, _conn: &mut FakeConn) -> Result<Option<String>, FakeError> {
        self.maybe_panic(FakeHook::ServerVersion);
        Ok(Some("fake 1.0".into()))
    }

    fn descriptor(&self) -> Descriptor {
        let (address, port) = self.host.as_ref().map_or(("fake.local", 1), |(a, p)| (&**a, *p));
        Descriptor::new(self.system).address(address).port(port).namespace("test")
    }

    fn credential_generation(&self) -> u64 {
        self.server.credential_generation.load(Ordering::SeqCst)
    }

    fn is_permanent(&self, error: &FakeError) -> bool {
        error.0.contains("authentication")
    }

    fn error_type(&self, error: &FakeError) -> std::borrow::Cow<'static, str> {
        if error.0.contains("refused") { "connection_refused".into() } else { "_OTHER".into() }
    }
}

/// The helpers' retry policy of the fake: three attempts, 1 ms apart, so runner tests stay fast.
const FAKE_RETRY: RetryPolicy =
    RetryPolicy { max_attempts: 3, min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(1) };

/// Operations on the fake fail with a [`FakeError`]; its `error.type` is its message.
impl Operations for FakeManager {
    type OperationError = FakeError;

    fn retry_policy(&self) -> &RetryPolicy {
        &FAKE_RETRY
    }

    fn operation_error_type(&self, error: &FakeError) -> std::borrow::Cow<'static, str> {
        error.0.clone().into()
    }
}
