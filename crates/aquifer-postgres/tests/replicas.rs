//! A cluster pool over real streaming replication: a private PostgreSQL 15 primary with two replicas
//! (`aquifer_testing::PrivatePgCluster`: `pg_basebackup`, physical replication slots), started and torn down
//! by each test. Routing by target; a replica whose replay is paused beyond `max_replica_lag` gets no reads
//! until replay resumes; 1,000 write-then-read pairs with replay paused at times read no stale row; and a
//! failover under load (the primary crashed, a replica promoted): reads never fail, writes fail fast until
//! the new primary answers, the old primary back as a standby is never written to. The tests print their
//! figures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aquifer_core::{ClusterConfig, ClusterError, Role, Target};
use aquifer_postgres::sqlx;
use aquifer_postgres::{PgClusterError, PgClusterPool, PgConfig, PgWriteScope, sqlstate};
use aquifer_testing::PrivatePgCluster;
use parking_lot::Mutex;

/// Starts a private primary with two replicas, or fails naming what is missing.
async fn cluster() -> PrivatePgCluster {
    tokio::task::spawn_blocking(|| PrivatePgCluster::start(2))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start the private PostgreSQL cluster: {e}"))
}

/// The multi-host URL of `nodes` (indexes into the cluster), in that order.
fn url_of(c: &PrivatePgCluster, nodes: &[usize], params: &str) -> String {
    let hosts: Vec<String> = nodes.iter().map(|&i| format!("127.0.0.1:{}", c.port(i))).collect();
    format!("postgres://postgres@{}/test?sslmode=disable{params}", hosts.join(","))
}

fn server(c: &PrivatePgCluster, i: usize) -> String {
    format!("127.0.0.1:{}", c.port(i))
}

async fn pool(url: &str, cluster: ClusterConfig) -> PgClusterPool {
    let mut config = PgConfig::from_url(url);
    config.pool.max_size = 16;
    config.pool.acquire_timeout = Duration::from_secs(10);
    config.pool.connect_timeout = Duration::from_secs(2);
    // The URL's parameters, when present, win over these.
    config.cluster = cluster;
    config.connect_cluster().await.unwrap_or_else(|e| panic!("connect_cluster: {e}"))
}

async fn in_recovery(pool: &PgClusterPool, target: Target) -> (String, bool) {
    let mut conn = pool.get_for(target).await.unwrap_or_else(|e| panic!("{target}: {e}"));
    let r: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut *conn).await.unwrap();
    (conn.server().to_owned(), r)
}

/// Polls `cond` every 20 ms until it holds; fails after `within` naming `what`.
async fn until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn psql(c: &Arc<PrivatePgCluster>, node: usize, sql: &'static str) {
    let c = Arc::clone(c);
    tokio::task::spawn_blocking(move || c.psql(node, "test", sql)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_go_to_the_role_each_server_reports_whatever_the_host_order() {
    let c = cluster().await;
    // The primary (node 0) is listed second: roles come from the servers, not from the order.
    let pool = pool(&url_of(&c, &[1, 0, 2], ""), ClusterConfig::default()).await;
    let roles: Vec<_> = pool.hosts().iter().map(|h| h.role).collect();
    assert_eq!(roles, [Some(Role::Replica), Some(Role::Primary), Some(Role::Replica)]);

    assert_eq!(in_recovery(&pool, Target::Primary).await, (server(&c, 0), false));
    let w = pool.get().await.unwrap();
    assert_eq!((w.server(), w.role()), (server(&c, 0).as_str(), Role::Primary), "get() goes to the primary");
    drop(w);
    assert_eq!(in_recovery(&pool, Target::Replica).await, (server(&c, 1), true), "the first replica listed");
    assert_eq!(in_recovery(&pool, Target::PreferReplica).await, (server(&c, 1), true));
    assert_eq!(in_recovery(&pool, Target::Any).await, (server(&c, 1), true), "any: the first host listed");

    // A write that reaches a replica is refused with 25006: the connection is discarded, roles re-checked.
    let mut r = pool.get_for(Target::Replica).await.unwrap();
    let err = sqlx::query("CREATE TABLE nope (id int)").execute(&mut *r).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("25006"), "{err}");
    assert!(r.report_error(&err), "25006 is a read-only error");
    drop(r);
    let replica_pool = pool.pools().next().unwrap();
    until(Duration::from_secs(5), "the connection is discarded", || replica_pool.stats().closed_discarded == 1).await;

    // A URL parameter picks the default target of get().
    let pool = pool_url_target(&c).await;
    assert!(pool.get().await.unwrap().role() == Role::Replica, "target_session_attrs=standby");
}

async fn pool_url_target(c: &PrivatePgCluster) -> PgClusterPool {
    pool(&url_of(c, &[0, 1, 2], "&target_session_attrs=standby&load_balance_hosts=random"), ClusterConfig::default())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_replay_is_paused_beyond_max_replica_lag_gets_no_reads_until_replay_resumes() {
    let c = Arc::new(cluster().await);
    let config = ClusterConfig {
        max_replica_lag: Some(Duration::from_millis(500)),
        role_check_interval: Duration::from_millis(100),
        ..ClusterConfig::default()
    };
    let pool = pool(&url_of(&c, &[1, 2, 0], ""), config).await;
    let mut w = pool.get().await.unwrap();
    sqlx::query("CREATE TABLE ticks (n bigint)").execute(&mut *w).await.unwrap();
    drop(w);

    // Writes keep coming, so a paused replica falls behind.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Load only, to make WAL for the replicas: the assertions are on the routing below.
                if let Err(e) = pool
                    .write(None, |c| Box::pin(sqlx::query("INSERT INTO ticks VALUES ($1)").bind(n).execute(c)))
                    .await
                {
                    eprintln!("write {n} failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    assert_eq!(in_recovery(&pool, Target::Replica).await.0, server(&c, 1), "node 1 serves reads first");

    psql(&c, 1, "SELECT pg_wal_replay_pause()").await;
    let paused = Instant::now();
    until(Duration::from_secs(10), "node 1 counts as lagging", || pool.hosts()[0].lagging).await;
    let excluded_after = paused.elapsed();
    for _ in 0..20 {
        assert_eq!(in_recovery(&pool, Target::Replica).await.0, server(&c, 2), "the lagging replica got a read");
    }
    let lag = pool.hosts()[0].lag;

    psql(&c, 1, "SELECT pg_wal_replay_resume()").await;
    let resumed = Instant::now();
    until(Duration::from_secs(10), "node 1 caught up", || !pool.hosts()[0].lagging).await;
    let back_after = resumed.elapsed();
    assert_eq!(in_recovery(&pool, Target::Replica).await.0, server(&c, 1), "node 1 serves reads again");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    println!(
        "replay paused: node 1 excluded from reads {excluded_after:?} after the pause (lag then {lag:?}, \
         max_replica_lag 500ms); back {back_after:?} after the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_reads_after_writes_in_the_same_scope_see_their_write_with_replay_paused_at_times() {
    const TASKS: i64 = 10;
    const PAIRS: i64 = 100;
    let c = Arc::new(cluster().await);
    // Frequent probes, so replicas qualify for reads soon after they replay.
    let config = ClusterConfig { role_check_interval: Duration::from_millis(20), ..ClusterConfig::default() };
    let pool = pool(&url_of(&c, &[0, 1, 2], "&load_balance_hosts=random"), config).await;
    let mut w = pool.get().await.unwrap();
    sqlx::query("CREATE TABLE ryw (task bigint PRIMARY KEY, v bigint NOT NULL)").execute(&mut *w).await.unwrap();
    sqlx::query("INSERT INTO ryw SELECT t, 0 FROM generate_series(0, $1) t")
        .bind(TASKS)
        .execute(&mut *w)
        .await
        .unwrap();
    drop(w);
    // Both replicas have the table before the reads start (the unscoped reads below may go to either).
    for node in [1, 2] {
        until(Duration::from_secs(10), "the replicas replayed the table", || {
            c.psql(node, "test", "SELECT count(*) FROM ryw").is_ok()
        })
        .await;
    }

    // Replay on both replicas is paused and resumed at times, so replicas are often behind.
    let stop = Arc::new(AtomicBool::new(false));
    let slower = tokio::spawn({
        let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
        async move {
            let mut node = 1;
            while !stop.load(Ordering::Relaxed) {
                psql(&c, node, "SELECT pg_wal_replay_pause()").await;
                tokio::time::sleep(Duration::from_millis(150)).await;
                psql(&c, node, "SELECT pg_wal_replay_resume()").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                node = 3 - node;
            }
            for node in [1, 2] {
                psql(&c, node, "SELECT pg_wal_replay_resume()").await;
            }
        }
    });

    let stale = Arc::new(AtomicU64::new(0));
    let by_replica = Arc::new(AtomicU64::new(0));
    let unscoped_stale = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (1..=TASKS)
        .map(|task| {
            let (pool, stale, by_replica, unscoped_stale) =
                (pool.clone(), Arc::clone(&stale), Arc::clone(&by_replica), Arc::clone(&unscoped_stale));
            tokio::spawn(async move {
                let scope = PgWriteScope::new();
                for v in 1..=PAIRS {
                    // The write helper: on the primary, its commit's position recorded in the scope.
                    pool.write(Some(&scope), |c| {
                        Box::pin(async move {
                            sqlx::query("UPDATE ryw SET v = $2 WHERE task = $1")
                                .bind(task)
                                .bind(v)
                                .execute(&mut *c)
                                .await
                        })
                    })
                    .await
                    .unwrap();
                    let mut r = pool.get_in(Target::PreferReplica, &scope).await.unwrap();
                    let read: i64 = sqlx::query_scalar("SELECT v FROM ryw WHERE task = $1")
                        .bind(task)
                        .fetch_one(&mut *r)
                        .await
                        .unwrap();
                    if r.role() == Role::Replica {
                        by_replica.fetch_add(1, Ordering::Relaxed);
                    }
                    if read != v {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(r);
                    // The same read outside the scope, to show that replicas were behind at times.
                    let mut r = pool.get_for(Target::Replica).await.unwrap();
                    let read: i64 = sqlx::query_scalar("SELECT v FROM ryw WHERE task = $1")
                        .bind(task)
                        .fetch_one(&mut *r)
                        .await
                        .unwrap();
                    if read != v {
                        unscoped_stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    slower.await.unwrap();
    let (stale, by_replica, unscoped) =
        (stale.load(Ordering::Relaxed), by_replica.load(Ordering::Relaxed), unscoped_stale.load(Ordering::Relaxed));
    println!(
        "read-your-writes: {} pairs, {stale} stale reads, {by_replica} served by a replica, {} by the primary; \
         the same reads without the scope on a replica: {unscoped} stale",
        TASKS * PAIRS,
        TASKS * PAIRS - by_replica as i64
    );
    assert_eq!(stale, 0, "a read in the scope of a write missed it");
    assert!(unscoped > 0, "replicas were never behind: the test did not exercise anything");
}

/// What the load of the failover test saw.
#[derive(Default)]
struct Tally {
    reads_ok: u64,
    writes_ok: u64,
    failed_reads: BTreeMap<String, u64>,
    failed_writes: BTreeMap<String, u64>,
    first_write_after_promotion: Option<Instant>,
    /// Writes that went to the old primary after it came back as a standby (must stay 0).
    writes_to_old_primary: u64,
}

fn checkout_error(e: &PgClusterError) -> String {
    match e {
        ClusterError::NoHost { .. } => "checkout: no_host".into(),
        ClusterError::Pool { error, .. } if error.is_timeout() => "checkout: timeout".into(),
        ClusterError::Pool { error, .. } => format!("checkout: {error}"),
        other => format!("checkout: {other}"),
    }
}

fn query_error(e: &sqlx::Error) -> String {
    match (sqlstate(e), e) {
        (Some(code), _) => format!("query: {code}"),
        (None, sqlx::Error::Io(io)) => format!("query: io {:?}", io.kind()),
        (None, other) => format!("query: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_under_load_loses_no_read_and_fails_writes_fast_until_the_promoted_replica_answers() {
    const TASKS: usize = 32;
    let c = Arc::new(Mutex::new(cluster().await));
    let (url, old_primary, promoted) = {
        let c = c.lock();
        (url_of(&c, &[0, 1, 2], "&load_balance_hosts=random"), server(&c, 0), server(&c, 1))
    };
    let pool = pool(&url, ClusterConfig::default()).await;
    let mut w = pool.get().await.unwrap();
    sqlx::query("CREATE TABLE events (id bigserial PRIMARY KEY, task int NOT NULL)").execute(&mut *w).await.unwrap();
    drop(w);
    // Let the replicas replay the table before reads start.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let promoted_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let rejoined = Arc::new(AtomicBool::new(false));
    let slowest_failed_write = Arc::new(Mutex::new(Duration::ZERO));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (pool, tally, stop, promoted_at, rejoined, slowest, old_primary) = (
                pool.clone(),
                Arc::clone(&tally),
                Arc::clone(&stop),
                Arc::clone(&promoted_at),
                Arc::clone(&rejoined),
                Arc::clone(&slowest_failed_write),
                old_primary.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    if (i + task as u64).is_multiple_of(2) {
                        let started = Instant::now();
                        let rejoined_before = rejoined.load(Ordering::SeqCst);
                        let outcome = match pool.get().await {
                            Err(e) => Err(checkout_error(&e)),
                            Ok(mut w) => {
                                let server = w.server().to_owned();
                                match sqlx::query("INSERT INTO events (task) VALUES ($1)")
                                    .bind(task as i32)
                                    .execute(&mut *w)
                                    .await
                                {
                                    Ok(_) => Ok(server),
                                    Err(e) => {
                                        w.report_error(&e);
                                        Err(query_error(&e))
                                    }
                                }
                            }
                        };
                        let failed = {
                            let mut t = tally.lock();
                            match outcome {
                                Ok(server) => {
                                    t.writes_ok += 1;
                                    if rejoined_before && server == old_primary {
                                        t.writes_to_old_primary += 1;
                                    }
                                    if promoted_at.lock().is_some() && t.first_write_after_promotion.is_none() {
                                        t.first_write_after_promotion = Some(Instant::now());
                                    }
                                    false
                                }
                                Err(kind) => {
                                    *t.failed_writes.entry(kind).or_default() += 1;
                                    let mut s = slowest.lock();
                                    *s = (*s).max(started.elapsed());
                                    true
                                }
                            }
                        };
                        if failed {
                            // A failed write backs off a little, as a service would.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    } else {
                        let outcome = match pool.get_for(Target::PreferReplica).await {
                            Err(e) => Err(checkout_error(&e)),
                            Ok(mut r) => sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
                                .fetch_one(&mut *r)
                                .await
                                .map_err(|e| {
                                    r.report_error(&e);
                                    query_error(&e)
                                }),
                        };
                        let mut t = tally.lock();
                        match outcome {
                            Ok(_) => t.reads_ok += 1,
                            Err(kind) => *t.failed_reads.entry(kind).or_default() += 1,
                        }
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let crash = Instant::now();
    let cc = Arc::clone(&c);
    tokio::task::spawn_blocking(move || cc.lock().crash(0)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let no_primary_seen = pool.hosts()[0].role.is_none();

    let promote = Instant::now();
    let cc = Arc::clone(&c);
    tokio::task::spawn_blocking(move || cc.lock().promote(1)).await.unwrap().unwrap();
    let promoted_done = Instant::now();
    *promoted_at.lock() = Some(promote);
    until(Duration::from_secs(10), "a write succeeds on the promoted replica", || {
        tally.lock().first_write_after_promotion.is_some()
    })
    .await;
    let cc = Arc::clone(&c);
    let retargeted = tokio::task::spawn_blocking(move || cc.lock().retarget(2, 1)).await.unwrap();

    tokio::time::sleep(Duration::from_secs(1)).await;
    // The old primary comes back as a standby of the new one: read-only, and never written to.
    let cc = Arc::clone(&c);
    tokio::task::spawn_blocking(move || cc.lock().start_as_replica_of(0, 1)).await.unwrap().unwrap();
    until(Duration::from_secs(10), "the old primary is probed as a replica", || {
        pool.hosts()[0].role == Some(Role::Replica)
    })
    .await;
    rejoined.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let t = tally.lock();
    let first_write = t.first_write_after_promotion.expect("checked above");
    let hosts = pool.hosts();
    println!(
        "failover under load ({TASKS} tasks): reads ok {}, writes ok {}; failed reads {:?}; failed writes by type \
         {:?}; slowest failed write {:?}; no primary known 500 ms after the crash: {no_primary_seen}; \
         pg_ctl promote took {:?}; first successful write {:?} after the promote command started ({:?} after it \
         returned); other replica retargeted: {}; writes to the old primary after it came back: {}; hosts at \
         the end: {:?}",
        t.reads_ok,
        t.writes_ok,
        t.failed_reads,
        t.failed_writes,
        *slowest_failed_write.lock(),
        promoted_done - promote,
        first_write - promote,
        first_write.saturating_duration_since(promoted_done),
        retargeted.map_or_else(|e| format!("no ({e})"), |()| "yes".into()),
        t.writes_to_old_primary,
        hosts.iter().map(|h| (h.server.clone(), h.role)).collect::<Vec<_>>(),
    );
    let _ = crash;
    assert!(t.failed_reads.is_empty(), "reads failed: {:?}", t.failed_reads);
    assert!(t.reads_ok > 0 && t.writes_ok > 0);
    assert_eq!(t.failed_writes.get("checkout: timeout"), None, "a write waited for the acquire timeout");
    assert_eq!(t.writes_to_old_primary, 0, "a write went to the old primary after it came back read-only");
    assert_eq!(
        (hosts[0].role, hosts[1].role, hosts[1].server.as_str()),
        (Some(Role::Replica), Some(Role::Primary), promoted.as_str())
    );
}
