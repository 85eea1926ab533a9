//! [`MySqlReplication`]: the MariaDB/MySQL part of a cluster pool ([`MySqlClusterPool`]): roles from
//! `@@read_only` and the replica status, lag from `Seconds_Behind_Master` and a stalled SQL thread, GTID
//! positions for read-your-writes, and the read-only error.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_core::{
    ClusterBuilder, ClusterError, ClusterPool, ClusterPooled, Descriptor, HostProbe, Replication, Role,
};
use mysql_async::{Conn, Error};
use tokio::time::Instant;

use crate::replication::{self, GtidPosition, ServerState};
use crate::{MySqlConfig, MySqlManager, MySqlStartError};

/// One pool over a MariaDB (or MySQL) primary and its replicas; see [`MySqlConfig::build_cluster`].
pub type MySqlClusterPool = ClusterPool<MySqlReplication>;
/// A connection checked out of a [`MySqlClusterPool`].
pub type MySqlClusterPooled = ClusterPooled<MySqlReplication>;
/// Why a [`MySqlClusterPool`] could not lend a connection.
pub type MySqlClusterError = ClusterError<Error>;
/// Why [`MySqlConfig::connect_cluster`] failed: a bad setting, or no host serving the target.
pub type MySqlClusterStartError = aquifer_core::ClusterStartError<Error>;
/// Read-your-writes for a [`MySqlClusterPool`]: the GTID position of the last write recorded in a scope.
pub type MySqlWriteScope = aquifer_core::WriteScope<GtidPosition>;

/// What the cluster engine asks of MariaDB and MySQL servers.
///
/// - Role: a server is the primary when `@@read_only` (on MySQL also `@@super_read_only`) is off and it does
///   not replicate (no replica status row with a running or connecting thread); otherwise a replica.
/// - Lag: `Seconds_Behind_Master`, or, when larger, how long the replica has had received transactions
///   (`Gtid_IO_Pos`) it did not apply while its applied position (`@@gtid_slave_pos`) stood still: a
///   stopped SQL thread reports `Seconds_Behind_Master` as NULL, yet falls further behind with every
///   write on the primary.
/// - Position: `@@gtid_slave_pos` on a replica, `@@gtid_binlog_pos` on the primary; a write's is the
///   session's `@@last_gtid` (MariaDB; MySQL positions are not tracked, so its reads after a write go to the
///   primary).
/// - Read-only error: 1290 (`ER_OPTION_PREVENTS_STATEMENT`) and 1836 (MySQL's `ER_READ_ONLY_MODE`).
#[derive(Debug, Default)]
pub struct MySqlReplication {
    /// Per host (`address:port`): the applied position a replica with pending transactions had, and since
    /// when it has not moved.
    stalls: parking_lot::Mutex<HashMap<String, (GtidPosition, Instant)>>,
}

impl MySqlReplication {
    /// No replica seen yet.
    pub fn new() -> Self {
        MySqlReplication::default()
    }

    /// The lag of a replica in `state`: the larger of `Seconds_Behind_Master` and how long its applied
    /// position has stood still with transactions pending; `None` when neither is known.
    fn lag(&self, host: &Descriptor, state: &ServerState) -> Option<Duration> {
        let key = format!("{}:{}", host.server_address.as_deref().unwrap_or(""), host.server_port.unwrap_or(0));
        let mut stalls = self.stalls.lock();
        let stalled = match (&state.position, state.has_pending()) {
            (Some(applied), true) => {
                let now = Instant::now();
                let entry = stalls.entry(key).or_insert_with(|| (applied.clone(), now));
                if entry.0 != *applied {
                    *entry = (applied.clone(), now);
                }
                Some(now.duration_since(entry.1))
            }
            _ => {
                stalls.remove(&key);
                None
            }
        };
        match (state.seconds_behind, stalled) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[aquifer_core::async_trait]
impl Replication for MySqlReplication {
    type Manager = MySqlManager;
    type Position = GtidPosition;

    /// `SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos` and `SHOW REPLICA STATUS` (see
    /// [`replication::probe`]).
    async fn probe(&self, host: &Descriptor, conn: &mut Conn) -> Result<HostProbe<GtidPosition>, Error> {
        let state = replication::probe(conn).await?;
        if state.is_primary() {
            return Ok(HostProbe::new(Role::Primary).position(state.position));
        }
        let lag = self.lag(host, &state);
        Ok(HostProbe::new(Role::Replica).lag(lag).position(state.position))
    }

    /// The session's `@@last_gtid` (the last transaction it wrote); when it wrote none, the server's
    /// `@@gtid_binlog_pos` (every transaction so far: safe, if more than needed).
    async fn write_position(&self, conn: &mut Conn) -> Result<GtidPosition, Error> {
        if let Some(gtid) = replication::last_gtid(conn).await? {
            return Ok(gtid);
        }
        use mysql_async::prelude::Queryable;
        let pos: Option<String> = conn.query_first("SELECT @@gtid_binlog_pos").await?;
        Ok(pos.and_then(|p| GtidPosition::parse(&p)).unwrap_or_default())
    }

    /// `SELECT @@gtid_slave_pos` on the replica: whether it includes `position` now (no wait; see
    /// [`MySqlClusterExt::get_after_write`] for a read that may wait a little). `None` when the server has no
    /// MariaDB GTID position (MySQL).
    async fn has_replayed(
        &self,
        _host: &Descriptor,
        conn: &mut Conn,
        position: &GtidPosition,
    ) -> Result<Option<bool>, Error> {
        use mysql_async::prelude::Queryable;
        match conn.query_first::<String, _>("SELECT @@gtid_slave_pos").await {
            Ok(applied) => Ok(applied.and_then(|a| GtidPosition::parse(&a)).map(|a| a.includes(position))),
            Err(Error::Server(s)) if s.code == 1193 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A mysql_async error 1290 or 1836 anywhere in `error`'s source chain.
    fn is_read_only_error(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if e.downcast_ref::<Error>().is_some_and(replication::is_read_only_error) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

impl MySqlConfig {
    /// One manager per server of the host list ([`hosts`](MySqlConfig::hosts), or the URL's
    /// `host1:port1,host2:port2`), each with these settings and its own `server.address`/`server.port`.
    pub fn host_managers(&self) -> Result<Vec<MySqlManager>, MySqlStartError> {
        let url = self.url.as_ref().ok_or_else(|| aquifer_core::ConfigError::Missing {
            field: "url".into(),
            reason: "set MySqlConfig.url: it gives the user, password and database of every host".into(),
        })?;
        crate::hosts::host_urls(url.expose(), &self.hosts)?
            .into_iter()
            .map(|u| {
                MySqlManager::new(&MySqlConfig {
                    url: Some(aquifer_core::DatabaseUrl::new(u)),
                    hosts: Vec::new(),
                    ..self.clone()
                })
            })
            .collect()
    }

    /// A cluster pool builder over [`host_managers`](MySqlConfig::host_managers), with these pool and
    /// cluster settings, to add a meter before `build()`.
    pub fn cluster_builder(&self) -> Result<ClusterBuilder<MySqlReplication>, MySqlStartError> {
        Ok(ClusterPool::builder(MySqlReplication::new())
            .hosts(self.host_managers()?)
            .pool_config(self.pool.clone())
            .cluster_config(self.cluster.clone()))
    }

    /// Builds a [`MySqlClusterPool`] over every server of the host list and starts probing their roles
    /// (must run inside a Tokio runtime). Connections open on demand; `pool.start().await` waits for the
    /// first probe of every host and fails when no host serves the configured target (no primary).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use aquifer_mysql::{MySqlConfig, Target, mysql_async::prelude::Queryable};
    ///
    /// let pool = MySqlConfig::from_url("mysql://app@db1:3306,db2:3306/orders").connect_cluster().await?;
    /// let mut write = pool.get().await?; // the primary
    /// write.query_drop("INSERT INTO orders (item) VALUES ('book')").await?;
    /// let mut read = pool.get_for(Target::PreferReplica).await?;
    /// let n: Option<u64> = read.query_first("SELECT COUNT(*) FROM orders").await?;
    /// # Ok(()) }
    /// ```
    pub fn build_cluster(&self) -> Result<MySqlClusterPool, MySqlStartError> {
        Ok(self.cluster_builder()?.build()?)
    }

    /// [`build_cluster`](MySqlConfig::build_cluster), then waits until every host has been probed once and
    /// fails when none serves the configured target ([`ClusterPool::start`]).
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it.
    pub async fn connect_cluster(&self) -> Result<MySqlClusterPool, MySqlClusterStartError> {
        let pool = self.build_cluster()?;
        pool.start().await?;
        Ok(pool)
    }
}

/// Read-your-writes that waits on a replica (`MASTER_GTID_WAIT`) instead of giving up on it.
///
/// [`ClusterPool::get_in`] sends a read to a replica only when the replica's position, as last probed
/// (every `role_check_interval`), already includes the scope's write; right after the write it usually does
/// not yet, and the read goes to the primary. [`get_after_write`](MySqlClusterExt::get_after_write) then
/// asks a replica to wait up to `wait` for the write (`SELECT MASTER_GTID_WAIT(gtid, wait)`, MariaDB) and
/// reads there when it arrives, on the primary otherwise.
#[aquifer_core::async_trait]
pub trait MySqlClusterExt {
    /// A connection for a read of `target` that sees every write recorded in `scope`: a replica whose probed
    /// position includes the write, else a replica that applied it within `wait`, else the primary (as
    /// [`ClusterPool::get_in`] would). Without a recorded write, what [`ClusterPool::get_for`] gives.
    ///
    /// Errors: as for [`ClusterPool::get_in`].
    ///
    /// Cancel safety: dropping the future returns any connection it held to its pool (one dropped during the
    /// wait is closed by the pool, its reply still in flight).
    async fn get_after_write(
        &self,
        target: aquifer_core::Target,
        scope: &MySqlWriteScope,
        wait: Duration,
    ) -> Result<MySqlClusterPooled, MySqlClusterError>;
}

#[aquifer_core::async_trait]
impl MySqlClusterExt for MySqlClusterPool {
    async fn get_after_write(
        &self,
        target: aquifer_core::Target,
        scope: &MySqlWriteScope,
        wait: Duration,
    ) -> Result<MySqlClusterPooled, MySqlClusterError> {
        use aquifer_core::Target;
        let Some(position) = scope.position() else { return self.get_for(target).await };
        let conn = self.get_in(target, scope).await?;
        let wants_replica = matches!(target, Target::Replica | Target::PreferReplica);
        if conn.role() == Role::Replica || !wants_replica || wait.is_zero() {
            return Ok(conn);
        }
        // The primary was chosen because no replica's probed position includes the write yet: ask one.
        let Ok(mut replica) = self.get_for(Target::Replica).await else { return Ok(conn) };
        match replication::wait_for_position(&mut replica, &position, wait).await {
            Ok(true) => Ok(replica),
            Ok(false) => Ok(conn),
            Err(e) => {
                replica.report_error(&e);
                Ok(conn)
            }
        }
    }
}
