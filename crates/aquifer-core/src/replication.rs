//! [`Replication`]: what a backend tells a [`ClusterPool`](crate::ClusterPool) about replication (a host's role,
//! lag and replay position; the position of a write; which errors mean "this server is read-only"), and
//! [`WriteScope`], the value that carries a write's position to the reads that must see it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::manager::{Descriptor, Manager};
use crate::role::Role;

/// The connection type of a [`Replication`]'s manager.
pub type ConnOf<R> = <<R as Replication>::Manager as Manager>::Connection;
/// The error type of a [`Replication`]'s manager.
pub type ErrorOf<R> = <<R as Replication>::Manager as Manager>::Error;

/// What one probe of a host found: its role and, for a replica, how far behind it is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HostProbe<P> {
    /// The role the server reports.
    pub role: Role,
    /// How far a replica is behind its primary, when the backend can tell (PostgreSQL: the time since the
    /// last replayed transaction while WAL waits to be replayed, else zero; MariaDB: `Seconds_Behind_Master`).
    /// `None` for a primary, or when unknown (an unknown lag never excludes a replica).
    pub lag: Option<Duration>,
    /// The host's replication position: on a replica, how far it has replayed (PostgreSQL
    /// `pg_last_wal_replay_lsn()`); on a primary, how far it has written. Read-your-writes compares a write's
    /// position against the replicas' replay positions. `None` when unknown.
    pub position: Option<P>,
}

impl<P> HostProbe<P> {
    /// A probe result with `role`, no lag and no position.
    pub fn new(role: Role) -> Self {
        HostProbe { role, lag: None, position: None }
    }

    /// Sets the lag.
    #[must_use]
    pub fn lag(mut self, lag: Option<Duration>) -> Self {
        self.lag = lag;
        self
    }

    /// Sets the position.
    #[must_use]
    pub fn position(mut self, position: Option<P>) -> Self {
        self.position = position;
        self
    }
}

/// The per-backend part of a [`ClusterPool`](crate::ClusterPool): everything else (the per-host pools, role
/// discovery in the background, routing, lag exclusion, fail-fast, read-your-writes, metrics) is written once
/// in the engine. See the API note at the top of [`ClusterPool`](crate::ClusterPool)'s docs.
#[async_trait::async_trait]
pub trait Replication: Send + Sync + 'static {
    /// The manager of each host's pool (one manager per host, each with its own [`Descriptor`]).
    type Manager: Manager;
    /// A replication position (PostgreSQL: an LSN as `u64`; MariaDB: a GTID position). A replica has
    /// replayed a write when its position is `>=` the write's; positions that do not compare
    /// (`partial_cmp` is `None`) count as not replayed, so the read goes to the primary.
    type Position: Clone + PartialOrd + fmt::Debug + Send + Sync + 'static;

    /// Asks the server behind `conn` (a connection of the host `host`, opened by the engine for probes and kept
    /// between them) its role, lag and position. Runs at every role check, within `probe_timeout`; an error
    /// or a timeout marks the host down until a later probe succeeds.
    async fn probe(
        &self,
        host: &Descriptor,
        conn: &mut ConnOf<Self>,
    ) -> Result<HostProbe<Self::Position>, ErrorOf<Self>>;

    /// The position of the writes made so far on `conn`, a connection to the primary (PostgreSQL:
    /// `pg_current_wal_lsn()` after the commit), for [`ClusterPooled::record_write`](crate::ClusterPooled::record_write).
    async fn write_position(&self, conn: &mut ConnOf<Self>) -> Result<Self::Position, ErrorOf<Self>>;

    /// Whether the server behind `conn` (a connection of the replica `host`) has replayed `position` now: one
    /// round trip, which [`ClusterPool::get_in`](crate::ClusterPool::get_in) makes on an idle replica
    /// connection when no replica's probed position vouches for the write yet. `Ok(None)` means the backend
    /// cannot tell, and the read goes to the primary. Default: `Ok(None)`.
    async fn has_replayed(
        &self,
        host: &Descriptor,
        conn: &mut ConnOf<Self>,
        position: &Self::Position,
    ) -> Result<Option<bool>, ErrorOf<Self>> {
        let _ = (host, conn, position);
        Ok(None)
    }

    /// True when `error` (a driver error, or any error wrapping one: walk [`source`](std::error::Error::source))
    /// says the server refused a write because it is read-only (PostgreSQL SQLSTATE 25006; MariaDB 1290 /
    /// 1836). The cluster then discards the connection and re-checks every host's role at once.
    fn is_read_only_error(&self, error: &(dyn std::error::Error + 'static)) -> bool;
}

/// Read-your-writes: carries the position of the last write recorded in a scope (a request, a session) to the
/// reads of the same scope, which then go to a replica only once it has replayed that position, else to the
/// primary. Cheap to clone; clones share the position.
///
/// ```
/// use aquifer_core::WriteScope;
///
/// let scope = WriteScope::<u64>::new();
/// assert_eq!(scope.position(), None);
/// scope.observe(42);
/// scope.observe(7); // an older position never moves the scope back
/// assert_eq!(scope.position(), Some(42));
/// ```
#[derive(Clone)]
pub struct WriteScope<P> {
    position: Arc<parking_lot::Mutex<Option<P>>>,
}

impl<P> Default for WriteScope<P> {
    fn default() -> Self {
        WriteScope { position: Arc::new(parking_lot::Mutex::new(None)) }
    }
}

impl<P: fmt::Debug> fmt::Debug for WriteScope<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteScope").field("position", &*self.position.lock()).finish()
    }
}

impl<P: Clone + PartialOrd> WriteScope<P> {
    /// A scope with no write yet: its reads go wherever their target says.
    pub fn new() -> Self {
        WriteScope::default()
    }

    /// The position of the latest write recorded.
    pub fn position(&self) -> Option<P> {
        self.position.lock().clone()
    }

    /// Records a write at `position`; keeps the later of it and the position already held (one that does not
    /// compare replaces it: the newest write wins).
    pub fn observe(&self, position: P) {
        let mut held = self.position.lock();
        let older = match &*held {
            Some(h) => !matches!(h.partial_cmp(&position), Some(std::cmp::Ordering::Greater)),
            None => true,
        };
        if older {
            *held = Some(position);
        }
    }

    /// Forgets the recorded write: later reads go wherever their target says.
    pub fn clear(&self) {
        *self.position.lock() = None;
    }
}
