//! [`FakeReplication`]: the [`Replication`] contract over [`FakeManager`] hosts, for the cluster engine's unit
//! tests: each host (a `FakeManager` made [`with_host`](FakeManager::with_host)) gets the role, lag and replay
//! position the test sets, by port.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aquifer_core::{Descriptor, HostProbe, Replication, Role};
use parking_lot::Mutex;

use crate::fake::{FakeConn, FakeError, FakeManager};

#[derive(Debug, Clone, Copy)]
struct FakeHost {
    role: Role,
    lag: Option<Duration>,
    position: u64,
}

/// A fake cluster's replication state. Clones share it.
///
/// Probes of a host fail when its `FakeManager` is down or killed its connections (as a query would), or
/// when the test never set its role. `write_position` returns the primary's position, which
/// [`write`](FakeReplication::write) moves on; replicas replay only when told
/// ([`replay`](FakeReplication::replay)). An error whose message contains `read-only` is a read-only error.
#[derive(Clone, Default)]
pub struct FakeReplication {
    hosts: Arc<Mutex<HashMap<u16, FakeHost>>>,
    written: Arc<AtomicU64>,
    probes: Arc<AtomicU64>,
}

impl FakeReplication {
    /// No host has a role yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the host on `port` its role (a primary's position follows the writes).
    pub fn set_role(&self, port: u16, role: Role) {
        let mut hosts = self.hosts.lock();
        let h = hosts.entry(port).or_insert(FakeHost { role, lag: None, position: 0 });
        h.role = role;
    }

    /// Sets the lag the host's probes report.
    pub fn set_lag(&self, port: u16, lag: Option<Duration>) {
        if let Some(h) = self.hosts.lock().get_mut(&port) {
            h.lag = lag;
        }
    }

    /// A write on the primary: moves the cluster's write position on and returns it.
    pub fn write(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The replica on `port` replays every write made so far.
    pub fn replay(&self, port: u16) {
        let written = self.written.load(Ordering::SeqCst);
        if let Some(h) = self.hosts.lock().get_mut(&port) {
            h.position = written;
        }
    }

    /// Probes run so far, on every host.
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Replication for FakeReplication {
    type Manager = FakeManager;
    type Position = u64;

    async fn probe(&self, host: &Descriptor, conn: &mut FakeConn) -> Result<HostProbe<u64>, FakeError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        conn.round_trip().await?;
        let port = host.server_port.unwrap_or_default();
        let h = self.hosts.lock().get(&port).copied().ok_or_else(|| FakeError(format!("no role set for {port}")))?;
        let position = match h.role {
            Role::Primary => self.written.load(Ordering::SeqCst),
            Role::Replica => h.position,
        };
        Ok(HostProbe::new(h.role).lag(h.lag).position(Some(position)))
    }

    async fn write_position(&self, conn: &mut FakeConn) -> Result<u64, FakeError> {
        conn.round_trip().await?;
        Ok(self.written.load(Ordering::SeqCst))
    }

    async fn has_replayed(
        &self,
        host: &Descriptor,
        conn: &mut FakeConn,
        position: &u64,
    ) -> Result<Option<bool>, FakeError> {
        conn.round_trip().await?;
        let port = host.server_port.unwrap_or_default();
        Ok(self.hosts.lock().get(&port).map(|h| h.role == Role::Replica && h.position >= *position))
    }

    fn is_read_only_error(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.downcast_ref::<FakeError>().is_some_and(|f| f.0.contains("read-only")) {
                return true;
            }
            next = e.source();
        }
        false
    }
}
