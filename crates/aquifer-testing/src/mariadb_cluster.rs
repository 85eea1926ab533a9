//! [`PrivateMariaDbCluster`]: a MariaDB primary and a replica of it over GTID replication, both private servers
//! ([`PrivateMariaDb`]) of a test's own, for the replica and failover tests.

use crate::private::error;
use crate::{PrivateMariaDb, PrivateServerError, START_TIMEOUT};

/// The user the pools connect as: all privileges on `test.*`, and the monitoring ones a role probe needs
/// (`SHOW SLAVE STATUS`, `@@gtid_binlog_pos`), but not `READ_ONLY ADMIN`: `read_only=1` refuses its writes
/// (root, which holds every privilege, would write to a read-only replica).
pub const APP_USER: &str = "aquifer";

/// Options both servers start with: binary log with GTIDs in row format, and `log_slave_updates`, so that a
/// promoted replica's binary log holds everything and another server could replicate from it.
const REPLICATION_OPTIONS: [&str; 3] = ["--log-bin=mariadb-bin", "--binlog-format=ROW", "--log-slave-updates"];

/// A MariaDB primary (`server_id=1`, read-write) and its replica (`server_id=2`, `read_only=1`, replicating with
/// `CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos`), each on its own free port of 127.0.0.1 in its own
/// temporary directory, killed and removed on drop. Both have the database `test`, `root` without a password
/// (through the socket and 127.0.0.1) and [`APP_USER`] without a password from 127.0.0.1.
///
/// The fields keep the roles the servers started with: after [`promote_replica`](Self::promote_replica) the
/// `replica` server is the read-write one.
///
/// ```no_run
/// let cluster = aquifer_testing::PrivateMariaDbCluster::start().unwrap();
/// let url = cluster.url(); // mysql://aquifer@127.0.0.1:P1,127.0.0.1:P2/test
/// cluster.primary.run_sql("INSERT INTO test.t VALUES (1)").unwrap();
/// cluster.wait_for_replica().unwrap(); // the replica has applied it
/// ```
pub struct PrivateMariaDbCluster {
    /// The server started as the primary (`server_id=1`).
    pub primary: PrivateMariaDb,
    /// The server started as the replica of `primary` (`server_id=2`, `read_only=1`).
    pub replica: PrivateMariaDb,
}

impl PrivateMariaDbCluster {
    /// Starts both servers, creates [`APP_USER`] on the primary, points the replica at the primary and waits
    /// until it has applied everything (each step bounded by [`START_TIMEOUT`]).
    pub fn start() -> Result<Self, PrivateServerError> {
        let mut primary_options = vec!["--server-id=1"];
        primary_options.extend(REPLICATION_OPTIONS);
        let primary = PrivateMariaDb::start_with_options(&primary_options)?;
        let mut replica_options = vec!["--server-id=2", "--read-only=1"];
        replica_options.extend(REPLICATION_OPTIONS);
        let replica = PrivateMariaDb::start_with_options(&replica_options)?;
        // Created on the primary only: the replica gets the user through replication, as it gets every write.
        primary.run_sql(&format!(
            "CREATE USER '{APP_USER}'@'127.0.0.1';
             GRANT ALL ON test.* TO '{APP_USER}'@'127.0.0.1';
             GRANT BINLOG MONITOR, SLAVE MONITOR ON *.* TO '{APP_USER}'@'127.0.0.1';"
        ))?;
        // The replica's own start-up statements (the init file's CREATE DATABASE) are in its binary log under
        // its server id; its slave position starts empty, so it replays the primary's log from the beginning.
        replica.run_sql(&format!(
            "SET GLOBAL gtid_slave_pos = '';
             CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root',
               MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos;
             START SLAVE;",
            primary.port()
        ))?;
        let cluster = PrivateMariaDbCluster { primary, replica };
        cluster.wait_for_replica()?;
        Ok(cluster)
    }

    /// `mysql://aquifer@127.0.0.1:PRIMARY,127.0.0.1:REPLICA/test`: the host list of both servers, as
    /// [`APP_USER`].
    pub fn url(&self) -> String {
        format!("mysql://{APP_USER}@127.0.0.1:{},127.0.0.1:{}/test", self.primary.port(), self.replica.port())
    }

    /// `mysql://aquifer@127.0.0.1:PORT/test` for one server.
    pub fn app_url(server: &PrivateMariaDb) -> String {
        format!("mysql://{APP_USER}@127.0.0.1:{}/test", server.port())
    }

    /// Waits (at most [`START_TIMEOUT`]) until the replica has applied every transaction the primary has
    /// written so far (`MASTER_GTID_WAIT` on the primary's `@@gtid_binlog_pos`).
    pub fn wait_for_replica(&self) -> Result<(), PrivateServerError> {
        let position = self.primary.run_sql("SELECT @@GLOBAL.gtid_binlog_pos")?;
        let position = position.trim();
        let waited =
            self.replica.run_sql(&format!("SELECT MASTER_GTID_WAIT('{position}', {})", START_TIMEOUT.as_secs()))?;
        match waited.trim() {
            "0" => Ok(()),
            other => Err(error(format!(
                "the replica did not reach the primary's position {position} within {START_TIMEOUT:?} \
                 (MASTER_GTID_WAIT returned {other}); replica status: {}",
                self.replica.run_sql("SHOW SLAVE STATUS\\G").unwrap_or_default()
            ))),
        }
    }

    /// Pauses the replica's SQL thread (`STOP SLAVE SQL_THREAD`): it keeps receiving the primary's binary log
    /// but applies nothing, so its data and `Seconds_Behind_Master` fall behind.
    pub fn stop_sql_thread(&self) -> Result<(), PrivateServerError> {
        self.replica.run_sql("STOP SLAVE SQL_THREAD").map(drop)
    }

    /// Resumes the replica's SQL thread (`START SLAVE SQL_THREAD`).
    pub fn start_sql_thread(&self) -> Result<(), PrivateServerError> {
        self.replica.run_sql("START SLAVE SQL_THREAD").map(drop)
    }

    /// Promotes the replica: `STOP SLAVE; SET GLOBAL read_only = 0` (what an operator or a failover tool does
    /// once the primary is gone).
    pub fn promote_replica(&self) -> Result<(), PrivateServerError> {
        self.replica.run_sql(PROMOTE_SQL).map(drop)
    }
}

/// The statements that promote a replica: stop replicating, accept writes.
pub const PROMOTE_SQL: &str = "STOP SLAVE; SET GLOBAL read_only = 0";
