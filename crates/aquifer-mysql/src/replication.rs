//! What a MariaDB (or MySQL) server says about its place in a replicated cluster: its role (`@@read_only` and
//! its replica status), how far behind it is, and GTID positions for read-your-writes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error, Row, Value};

/// ER_OPTION_PREVENTS_STATEMENT: "The MariaDB server is running with the --read-only option so it cannot
/// execute this statement": a write reached a read-only server (a replica, or a demoted primary).
pub const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
/// ER_UNKNOWN_SYSTEM_VARIABLE: MySQL has no `@@gtid_binlog_pos`.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// ER_PARSE_ERROR: a server older than `SHOW REPLICA STATUS` (MariaDB < 10.5.1, MySQL < 8.0.22).
const ER_PARSE_ERROR: u16 = 1064;

/// ER_READ_ONLY_MODE (MySQL): "Running in read-only mode".
const ER_READ_ONLY_MODE: u16 = 1836;

/// True when `e` is the server refusing a write because it is read-only ([`ER_OPTION_PREVENTS_STATEMENT`],
/// or MySQL's 1836 `ER_READ_ONLY_MODE`): the connection's server is not (or no longer) the primary.
pub fn is_read_only_error(e: &Error) -> bool {
    matches!(e, Error::Server(s) if s.code == ER_OPTION_PREVENTS_STATEMENT || s.code == ER_READ_ONLY_MODE)
}

/// A MariaDB GTID position: per replication domain, the highest sequence number (`0-1-42,1-2-7`: domain 0,
/// server 1, sequence 42; domain 1...). MySQL's GTID sets are not parsed (their positions are `None`).
///
/// Ordered by inclusion: `a >= b` when `a` includes every transaction of `b`; two positions each ahead in a
/// different domain do not compare (`partial_cmp` is `None`). Server ids are kept for display only.
#[derive(Clone, Default)]
pub struct GtidPosition {
    /// domain → (server id, sequence number).
    domains: BTreeMap<u32, (u32, u64)>,
}

impl GtidPosition {
    /// Parses MariaDB's `domain-server-sequence` list (empty is the empty position); `None` when it is not
    /// one.
    pub fn parse(text: &str) -> Option<Self> {
        let mut domains = BTreeMap::new();
        for gtid in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let mut parts = gtid.split('-');
            let (Some(d), Some(s), Some(n), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return None;
            };
            let (domain, server, seq) = (d.parse().ok()?, s.parse().ok()?, n.parse().ok()?);
            // A list names each domain once; keep the highest if not.
            let entry = domains.entry(domain).or_insert((server, seq));
            if seq > entry.1 {
                *entry = (server, seq);
            }
        }
        Some(GtidPosition { domains })
    }

    /// Whether every transaction up to `other` is in this position: for each of `other`'s domains, this
    /// position's sequence number in that domain is at least as high.
    pub fn includes(&self, other: &GtidPosition) -> bool {
        other.domains.iter().all(|(d, (_, seq))| self.domains.get(d).is_some_and(|(_, mine)| mine >= seq))
    }

    /// No transaction at all.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// How many transactions `other` has that this position lacks, summed over domains (0 when this
    /// includes `other`): the replica's lag in transactions.
    pub fn behind(&self, other: &GtidPosition) -> u64 {
        other
            .domains
            .iter()
            .map(|(d, (_, seq))| seq.saturating_sub(self.domains.get(d).map_or(0, |(_, mine)| *mine)))
            .sum()
    }
}

/// As MariaDB writes it (`0-1-42,1-2-7`): what health and [`HostInfo`](aquifer_core::HostInfo) show.
impl fmt::Debug for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for GtidPosition {
    fn eq(&self, other: &Self) -> bool {
        self.domains.len() == other.domains.len() && self.includes(other) && other.includes(self)
    }
}

impl Eq for GtidPosition {}

impl PartialOrd for GtidPosition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self.includes(other), other.includes(self)) {
            (true, true) => Some(Equal),
            (true, false) => Some(Greater),
            (false, true) => Some(Less),
            (false, false) => None,
        }
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (domain, (server, seq)) in &self.domains {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{domain}-{server}-{seq}")?;
        }
        Ok(())
    }
}

/// A server's replication state, as [`probe`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// `@@read_only` (or `@@super_read_only` on MySQL): the server refuses ordinary users' writes.
    pub read_only: bool,
    /// The server replicates from another: `SHOW REPLICA STATUS` has a row whose IO thread runs (or tries to
    /// connect) or whose SQL thread runs.
    pub replicating: bool,
    /// The replica's SQL thread applies what it receives (`Slave_SQL_Running: Yes`); `false` when it is
    /// stopped (`STOP SLAVE SQL_THREAD`) or the server does not replicate.
    pub sql_thread_running: bool,
    /// `Seconds_Behind_Master`: `None` when the server does not replicate or the value is NULL (a stopped
    /// thread).
    pub seconds_behind: Option<Duration>,
    /// What the server has applied: `@@gtid_slave_pos` on a replica, `@@gtid_binlog_pos` otherwise (MariaDB
    /// only).
    pub position: Option<GtidPosition>,
    /// What a replica has received from its primary (`Gtid_IO_Pos`), applied or not: more than `position`
    /// while transactions wait in the relay log.
    pub received: Option<GtidPosition>,
}

impl ServerState {
    /// Whether a replica has received transactions it has not applied yet.
    pub fn has_pending(&self) -> bool {
        match (&self.received, &self.position) {
            (Some(received), Some(applied)) => !applied.includes(received),
            _ => false,
        }
    }
}

impl ServerState {
    /// A primary: writable and not replicating.
    pub fn is_primary(&self) -> bool {
        !self.read_only && !self.replicating
    }
}

/// Reads `conn`'s server state: one `SELECT` of the variables and one `SHOW REPLICA STATUS` (`SHOW SLAVE
/// STATUS` on older servers). Needs the `SLAVE MONITOR` privilege (MariaDB; `REPLICATION CLIENT` on MySQL) for
/// the replica status; without it the server counts as not replicating.
pub async fn probe(conn: &mut Conn) -> Result<ServerState, Error> {
    let (read_only, binlog_pos, slave_pos) = match conn
        .query_first::<(bool, String, String), _>("SELECT @@read_only, @@gtid_binlog_pos, @@gtid_slave_pos")
        .await
    {
        Ok(row) => row.unwrap_or_default(),
        Err(Error::Server(s)) if s.code == ER_UNKNOWN_SYSTEM_VARIABLE => {
            // MySQL: `super_read_only` also refuses SUPER users; its GTID sets are not compared here.
            let row: Option<(bool, bool)> = conn.query_first("SELECT @@read_only, @@super_read_only").await?;
            let (ro, sro) = row.unwrap_or_default();
            (ro || sro, String::new(), String::new())
        }
        Err(e) => return Err(e),
    };
    let status = match conn.query_first::<Row, _>("SHOW REPLICA STATUS").await {
        Err(Error::Server(s)) if s.code == ER_PARSE_ERROR => conn.query_first::<Row, _>("SHOW SLAVE STATUS").await,
        other => other,
    };
    let status = match status {
        Ok(row) => row,
        // No privilege to see it (1227 ER_SPECIFIC_ACCESS_DENIED_ERROR): read it as "not replicating".
        Err(Error::Server(s)) if s.code == 1227 => None,
        Err(e) => return Err(e),
    };
    let (replicating, sql_thread_running, seconds_behind, received) = match &status {
        None => (false, false, None, None),
        Some(row) => {
            let text = |names: &[&str]| names.iter().find_map(|n| column_text(row, n));
            let sql = text(&["Slave_SQL_Running", "Replica_SQL_Running"]).is_some_and(|v| v == "Yes");
            // `Connecting` (its primary is down) still counts: it is a replica waiting for its primary. After
            // `STOP SLAVE` (a promotion) both threads say `No`, but the row stays until `RESET SLAVE ALL`.
            let io = text(&["Slave_IO_Running", "Replica_IO_Running"]).is_some_and(|v| v != "No");
            let behind = text(&["Seconds_Behind_Master", "Seconds_Behind_Source"])
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let received = column_text(row, "Gtid_IO_Pos").and_then(|p| GtidPosition::parse(&p));
            (io || sql, sql, behind, received)
        }
    };
    let position = if replicating { GtidPosition::parse(&slave_pos) } else { GtidPosition::parse(&binlog_pos) };
    Ok(ServerState { read_only, replicating, sql_thread_running, seconds_behind, position, received })
}

/// A column of a `SHOW ... STATUS` row as text; `None` when absent or NULL.
fn column_text(row: &Row, name: &str) -> Option<String> {
    let i = row.columns_ref().iter().position(|c| c.name_str() == name)?;
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// The GTID of the last transaction `conn`'s session wrote (`@@last_gtid`, MariaDB); `None` when it wrote
/// none or the server is not MariaDB.
pub async fn last_gtid(conn: &mut Conn) -> Result<Option<GtidPosition>, Error> {
    match conn.query_first::<Option<String>, _>("SELECT @@last_gtid").await {
        Ok(v) => Ok(v.flatten().and_then(|t| GtidPosition::parse(&t)).filter(|p| !p.is_empty())),
        Err(Error::Server(s)) if s.code == ER_UNKNOWN_SYSTEM_VARIABLE => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits on `conn`'s server (a replica) until it has applied `position`, at most `timeout`
/// (`MASTER_GTID_WAIT`): `true` when it has, `false` on timeout.
pub async fn wait_for_position(conn: &mut Conn, position: &GtidPosition, timeout: Duration) -> Result<bool, Error> {
    let waited: Option<i64> =
        conn.exec_first("SELECT MASTER_GTID_WAIT(?, ?)", (position.to_string(), timeout.as_secs_f64())).await?;
    Ok(waited == Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_compare_per_domain() {
        let p = |t| GtidPosition::parse(t).unwrap();
        assert!(p("0-1-10,1-2-5").includes(&p("0-1-10")));
        assert!(p("0-2-11").includes(&p("0-1-10")), "the server id does not matter, the sequence does");
        assert!(!p("0-1-9").includes(&p("0-1-10")));
        assert!(!p("0-1-10").includes(&p("1-1-1")), "a domain it has never seen");
        assert!(p("").includes(&p("")) && p("0-1-1").includes(&p("")));
        assert!(p("0-1-10") > p("0-1-9") && p("0-2-10") == p("0-1-10") && p("0-1-9") < p("0-1-9,1-1-1"));
        assert_eq!(p("0-1-10").partial_cmp(&p("0-1-9,1-1-1")), None, "ahead in different domains");
        assert_eq!(p("0-1-7").behind(&p("0-1-10,1-1-2")), 5);
        assert_eq!(p("0-1-10,1-1-2").to_string(), "0-1-10,1-1-2");
        for bad in ["0-1", "a-b-c", "0-1-2-3", "x"] {
            assert_eq!(GtidPosition::parse(bad), None, "{bad}");
        }
    }
}
