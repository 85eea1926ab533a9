//! PostgreSQL clusters: libpq-style multi-host URLs (`postgres://h1:p1,h2:p2/db?target_session_attrs=...
//! &load_balance_hosts=...`) turned into a [`ClusterPool`] of one pool per host, and [`PgReplication`], what
//! the engine asks PostgreSQL about roles, lag and positions.

use std::time::Duration;

use aquifer_core::{
    ClusterConfig, ClusterPool, ClusterStartError, ConfigError, DatabaseUrl, Descriptor, HostProbe, LoadBalance,
    Replication, Target, redact_url,
};
use sqlx::postgres::PgConnection;

use crate::{PgConfig, PgManager, PgStartError};

/// A pool over the hosts of a PostgreSQL cluster ([`PgConfig::connect_cluster`]).
pub type PgClusterPool = ClusterPool<PgReplication>;
/// A connection checked out of a [`PgClusterPool`]; dereferences to sqlx's `PgConnection`.
pub type PgClusterPooled = aquifer_core::ClusterPooled<PgReplication>;
/// Why a [`PgClusterPool`] could not lend a connection.
pub type PgClusterError = aquifer_core::ClusterError<sqlx::Error>;
/// Why [`PgConfig::connect_cluster`] failed.
pub type PgClusterStartError = ClusterStartError<sqlx::Error>;
/// Read-your-writes for a [`PgClusterPool`]: carries a commit's WAL position (an LSN).
pub type PgWriteScope = aquifer_core::WriteScope<u64>;

/// The SQLSTATE of "cannot execute ... in a read-only transaction": a write reached a standby or a server set
/// read-only.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// One round trip: recovery state, read-only setting, position (replayed on a standby, inserted on a
/// primary) and lag. The lag is zero while everything received has been replayed, else the time since the
/// last replayed commit (so it grows while replay is paused or slow); unknown (NULL) before the standby has
/// received anything.
const PROBE: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on', \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END \
       - '0/0'::pg_lsn)::int8, \
     CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() IS NULL THEN NULL \
          WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 \
          ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8";

/// What the cluster engine asks PostgreSQL:
/// - role: a server in recovery (`pg_is_in_recovery()`) or whose sessions are read-only
///   (`transaction_read_only`, as libpq's `read-write` test checks) is a [`Replica`](aquifer_core::Role::Replica),
///   any other the primary;
/// - lag: zero while the standby has replayed all the WAL it received, else the time since its last replayed
///   commit (`now() - pg_last_xact_replay_timestamp()`), which grows while replay is paused or behind;
/// - position: an LSN as a byte offset, `pg_last_wal_replay_lsn()` on a standby; a write's position is
///   `pg_current_wal_insert_lsn()` after its commit, which every standby reaches once it has replayed the
///   commit record; `has_replayed` compares the two on the standby in one query;
/// - a read-only error is SQLSTATE 25006.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgReplication;

#[aquifer_core::async_trait]
impl Replication for PgReplication {
    type Manager = PgManager;
    type Position = u64;

    async fn probe(&self, _host: &Descriptor, conn: &mut PgConnection) -> Result<HostProbe<u64>, sqlx::Error> {
        let (in_recovery, read_only, lsn, lag): (bool, bool, Option<i64>, Option<f64>) =
            sqlx::query_as(PROBE).fetch_one(&mut *conn).await?;
        let role = if in_recovery || read_only { aquifer_core::Role::Replica } else { aquifer_core::Role::Primary };
        let lag = lag.filter(|s| s.is_finite()).map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(HostProbe::new(role).lag(lag).position(lsn.map(|l| l as u64)))
    }

    async fn write_position(&self, conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
        let (lsn,): (i64,) =
            sqlx::query_as("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8").fetch_one(&mut *conn).await?;
        Ok(lsn as u64)
    }

    async fn has_replayed(
        &self,
        _host: &Descriptor,
        conn: &mut PgConnection,
        position: &u64,
    ) -> Result<Option<bool>, sqlx::Error> {
        sqlx::query_scalar("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8 >= $1")
            .bind(*position as i64)
            .fetch_one(&mut *conn)
            .await
    }

    fn is_read_only_error(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>()
                && db.code().as_deref() == Some(READ_ONLY_SQL_TRANSACTION)
            {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// A multi-host URL taken apart: one single-host URL per host (without the cluster parameters) and the
/// cluster parameters libpq reads.
#[derive(Debug)]
pub(crate) struct HostUrls {
    pub(crate) urls: Vec<String>,
    pub(crate) target: Option<Target>,
    pub(crate) load_balance: Option<LoadBalance>,
}

/// Splits `scheme://[user[:password]@]host[:port][,host[:port]...][/database][?params]` into one URL per host,
/// taking out `target_session_attrs` and `load_balance_hosts`.
pub(crate) fn split_hosts(url: &str) -> Result<HostUrls, PgStartError> {
    let bad = |reason: String| PgStartError::Url { system: "postgresql", url: redact_url(url), reason };
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| bad("expected postgres://user:password@host:port,...".into()))?;
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let (userinfo, host_list) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q.split('#').next().unwrap_or("")),
        None => (tail.split('#').next().unwrap_or(""), ""),
    };
    let mut target = None;
    let mut load_balance = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "target_session_attrs" => target = Some(Target::parse_field("target_session_attrs", value)?),
            "load_balance_hosts" => load_balance = Some(LoadBalance::parse_field("load_balance_hosts", value)?),
            _ => kept.push(pair),
        }
    }
    let mut urls = Vec::new();
    for host in host_list.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(bad("the host list has an empty entry (expected host:port,host:port)".into()));
        }
        let mut u = format!("{scheme}://");
        if let Some(userinfo) = userinfo {
            u.push_str(userinfo);
            u.push('@');
        }
        u.push_str(host);
        u.push_str(path);
        if !kept.is_empty() {
            u.push('?');
            u.push_str(&kept.join("&"));
        }
        urls.push(u);
    }
    Ok(HostUrls { urls, target, load_balance })
}

impl PgConfig {
    /// The routing settings: [`PgConfig::cluster`], with the URL's `target_session_attrs` and
    /// `load_balance_hosts` (libpq's spellings; they win over the field and the environment) applied.
    pub fn cluster_config(&self) -> Result<ClusterConfig, PgStartError> {
        let mut config = self.cluster.clone();
        if let Some(url) = &self.url {
            let hosts = split_hosts(url.expose())?;
            config.target = hosts.target.unwrap_or(config.target);
            config.load_balance = hosts.load_balance.unwrap_or(config.load_balance);
        }
        config.validate()?;
        Ok(config)
    }

    /// One manager per host of the URL (a single-host URL gives one), each connecting to its host only with
    /// these settings.
    pub fn cluster_managers(&self) -> Result<Vec<PgManager>, PgStartError> {
        let url = self.url.as_ref().ok_or_else(|| ConfigError::Missing {
            field: "url".into(),
            reason: "set PgConfig.url to postgres://user@host1:port1,host2:port2/database".into(),
        })?;
        let hosts = split_hosts(url.expose())?;
        hosts.urls.into_iter().map(|u| PgConfig { url: Some(DatabaseUrl::new(u)), ..self.clone() }.manager()).collect()
    }

    /// Builds a [`PgClusterPool`] over every host of the URL without waiting for anything: the hosts' roles are
    /// probed in the background, and checkouts made before the first probes finish wait for them. Must be
    /// called within a Tokio runtime.
    pub fn build_cluster(&self) -> Result<PgClusterPool, PgStartError> {
        let config = self.cluster_config()?;
        Ok(ClusterPool::builder(PgReplication)
            .hosts(self.cluster_managers()?)
            .pool_config(self.pool.clone())
            .cluster_config(config)
            .build()?)
    }

    /// Builds a [`PgClusterPool`] over every host of the URL and waits until each host's role is known
    /// ([`ClusterPool::start`]); fails when no host serves the configured target (by default: no primary).
    ///
    /// ```no_run
    /// use aquifer_postgres::{PgConfig, PgWriteScope};
    /// use aquifer_core::Target;
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = PgConfig::from_url(
    ///     "postgres://app@db1:5432,db2:5432,db3:5432/orders?load_balance_hosts=random",
    /// );
    /// let pool = config.connect_cluster().await?;
    /// let scope = PgWriteScope::new();
    /// let mut w = pool.get().await?; // the primary
    /// sqlx::query("INSERT INTO orders (id) VALUES (1)").execute(&mut *w).await?;
    /// w.record_write(&scope).await?;
    /// drop(w);
    /// // A replica that has replayed the insert, else the primary.
    /// let mut r = pool.get_in(Target::PreferReplica, &scope).await?;
    /// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&mut *r).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancel safety: dropping the future drops the pool, which closes it.
    pub async fn connect_cluster(&self) -> Result<PgClusterPool, PgClusterStartError> {
        let pool = self.build_cluster()?;
        pool.start().await?;
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_gives_one_url_per_host_without_the_cluster_parameters() {
        let h = split_hosts(
            "postgres://app:pw@db1:5432,db2:5433/orders?sslmode=disable&target_session_attrs=prefer-standby&load_balance_hosts=random",
        )
        .unwrap();
        assert_eq!(
            h.urls,
            ["postgres://app:pw@db1:5432/orders?sslmode=disable", "postgres://app:pw@db2:5433/orders?sslmode=disable"]
        );
        assert_eq!((h.target, h.load_balance), (Some(Target::PreferReplica), Some(LoadBalance::Random)));
        let one = split_hosts("postgres://db1").unwrap();
        assert_eq!((one.urls, one.target), (vec!["postgres://db1".to_owned()], None));
    }

    #[test]
    fn a_bad_cluster_parameter_is_an_error_naming_it_and_its_value() {
        let e = split_hosts("postgres://a@h1,h2/db?target_session_attrs=leader").unwrap_err().to_string();
        assert!(e.contains("target_session_attrs") && e.contains("leader"), "{e}");
        let e = split_hosts("postgres://a@h1,h2/db?load_balance_hosts=yes").unwrap_err().to_string();
        assert!(e.contains("load_balance_hosts") && e.contains("yes"), "{e}");
        let e = split_hosts("postgres://a:secret@h1,,h2/db").unwrap_err().to_string();
        assert!(e.contains("empty entry") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn the_cluster_settings_are_read_from_the_environment() {
        let vars = [
            ("POSTGRES_URL", "postgres://a@h1,h2/db"),
            ("POSTGRES_TARGET_SESSION_ATTRS", "prefer-standby"),
            ("POSTGRES_MAX_REPLICA_LAG", "2s"),
        ];
        let c = PgConfig::from_lookup("POSTGRES", |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
            .unwrap();
        assert_eq!(
            (c.cluster.target, c.cluster.max_replica_lag),
            (Target::PreferReplica, Some(Duration::from_secs(2)))
        );
        let bad = [("POSTGRES_URL", "postgres://a@h1,h2/db"), ("POSTGRES_TARGET_SESSION_ATTRS", "leader")];
        let e = PgConfig::from_lookup("POSTGRES", |k| bad.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("POSTGRES_TARGET_SESSION_ATTRS") && e.contains("leader"), "{e}");
    }

    #[test]
    fn a_single_host_pool_refuses_a_url_with_several_hosts() {
        let e = PgConfig::from_url("postgres://a:secret@h1,h2/db").manager().unwrap_err().to_string();
        assert!(e.contains("connect_cluster") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn the_url_parameters_win_over_the_cluster_field() {
        let mut c = PgConfig::from_url("postgres://a@h1,h2/db?target_session_attrs=any");
        c.cluster.target = Target::Replica;
        c.cluster.load_balance = LoadBalance::Random;
        let cc = c.cluster_config().unwrap();
        assert_eq!((cc.target, cc.load_balance), (Target::Any, LoadBalance::Random));
    }
}
