//! A cluster pool over a real MariaDB primary and its GTID replica (aquifer_testing::PrivateMariaDbCluster,
//! started by each test): routing by target, lag exclusion with a stopped SQL thread, read-your-writes, and
//! failover under load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aquifer_mysql::mysql_async::Conn;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{
    MySqlClusterError, MySqlClusterExt, MySqlClusterPool, MySqlConfig, MySqlWriteScope, Role, Target, error_type,
};
use aquifer_testing::{PrivateMariaDbCluster, poll_until};
use tokio::time::Instant;

fn start_cluster() -> PrivateMariaDbCluster {
    PrivateMariaDbCluster::start().unwrap_or_else(|e| panic!("starting the private MariaDB pair: {e}"))
}

/// The cluster's settings for the tests: probes every 100 ms (50 ms while no primary is known).
fn config(cluster: &PrivateMariaDbCluster) -> MySqlConfig {
    let mut config = MySqlConfig::from_url(cluster.url());
    config.cluster.role_check_interval = Duration::from_millis(100);
    config.cluster.failover_check_interval = Duration::from_millis(50);
    config.cluster.probe_timeout = Duration::from_millis(500);
    config.pool.max_size = 40;
    config.pool.acquire_timeout = Duration::from_secs(10);
    config
}

async fn started(config: &MySqlConfig) -> MySqlClusterPool {
    let pool = config.build_cluster().unwrap_or_else(|e| panic!("{e}"));
    pool.start().await.unwrap_or_else(|e| panic!("{e}"));
    pool
}

/// `@@server_id` of the server a checkout for `target` lands on (1: the primary, 2: the replica).
async fn server_id(pool: &MySqlClusterPool, target: Target) -> Result<u32, MySqlClusterError> {
    let mut conn = pool.get_for(target).await?;
    Ok(conn.query_first("SELECT @@server_id").await.unwrap().unwrap())
}

/// Waits (10 s at most) until the pool's probes see host `i` in `role`; fails with `what` and the hosts if not.
async fn wait_for_role(pool: &MySqlClusterPool, i: usize, role: Role, what: &str) {
    let seen =
        poll_until(Duration::from_secs(10), Duration::from_millis(10), async || pool.hosts()[i].role == Some(role))
            .await;
    assert!(seen, "{what}: {:?}", pool.hosts());
}

/// A root connection to one server, for what the test does behind the pool's back.
async fn root(server: &aquifer_testing::PrivateMariaDb) -> Conn {
    Conn::from_url(server.url()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_target_goes_to_the_host_whose_server_has_that_role() {
    let cluster = start_cluster();
    let pool = started(&config(&cluster)).await;
    for (target, id) in
        [(Target::Primary, 1), (Target::PreferPrimary, 1), (Target::Replica, 2), (Target::PreferReplica, 2)]
    {
        assert_eq!(server_id(&pool, target).await.unwrap(), id, "{target}");
    }
    let hosts = pool.hosts();
    assert_eq!((hosts[0].role, hosts[1].role), (Some(Role::Primary), Some(Role::Replica)), "{hosts:?}");

    // Roles come from the servers, not from the order: the replica listed first changes nothing.
    let mut reversed = config(&cluster);
    reversed.hosts =
        vec![format!("127.0.0.1:{}", cluster.replica.port()), format!("127.0.0.1:{}", cluster.primary.port())];
    let pool = started(&reversed).await;
    assert_eq!(server_id(&pool, Target::Primary).await.unwrap(), 1);
    assert_eq!(server_id(&pool, Target::Replica).await.unwrap(), 2);
    assert_eq!(server_id(&pool, Target::Any).await.unwrap(), 2, "any: the first host that answers, in order");

    // A write that reaches the read-only replica is refused with 1290, which the pool recognises.
    let mut replica = pool.get_for(Target::Replica).await.unwrap();
    let e = replica.query_drop("CREATE TABLE test.nope (id INT)").await.unwrap_err();
    assert_eq!(error_type(&e), "1290", "{e}");
    assert!(replica.report_error(&e), "a read-only error is reported as one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_beyond_max_replica_lag_gets_no_reads_until_it_catches_up() {
    let cluster = start_cluster();
    let mut config = config(&cluster);
    config.cluster.max_replica_lag = Some(Duration::from_millis(500));
    let pool = started(&config).await;
    let mut primary = pool.get().await.unwrap();
    primary.query_drop("CREATE TABLE test.lag (id INT AUTO_INCREMENT PRIMARY KEY, at TEXT)").await.unwrap();
    cluster.wait_for_replica().unwrap();

    cluster.stop_sql_thread().unwrap();
    // Writes pile up on the primary; the replica receives them but applies none.
    let lagging = poll_until(Duration::from_secs(20), Duration::from_millis(50), async || {
        primary.query_drop("INSERT INTO test.lag (at) VALUES ('while paused')").await.unwrap();
        pool.hosts()[1].lagging
    })
    .await;
    assert!(lagging, "the replica was never found lagging: {:?}", pool.hosts());
    let lag = pool.hosts()[1].lag;
    println!("replica lag measured while its SQL thread was stopped: {lag:?}");
    let e = pool.get_for(Target::Replica).await.unwrap_err();
    assert!(e.is_no_host(), "{e}");
    assert_eq!(server_id(&pool, Target::PreferReplica).await.unwrap(), 1, "reads fall back to the primary");
    assert_eq!(server_id(&pool, Target::Any).await.unwrap(), 1);

    cluster.start_sql_thread().unwrap();
    let caught_up = poll_until(Duration::from_secs(20), Duration::from_millis(50), async || {
        let h = &pool.hosts()[1];
        h.role == Some(Role::Replica) && !h.lagging
    })
    .await;
    assert!(caught_up, "the replica never came back: {:?}", pool.hosts());
    let written: i64 = primary.query_first("SELECT COUNT(*) FROM test.lag").await.unwrap().unwrap();
    let mut replica = pool.get_for(Target::Replica).await.unwrap();
    assert_eq!(replica.query_first::<u32, _>("SELECT @@server_id").await.unwrap(), Some(2));
    cluster.wait_for_replica().unwrap();
    let applied: i64 = replica.query_first("SELECT COUNT(*) FROM test.lag").await.unwrap().unwrap();
    assert_eq!(applied, written, "the replica applied what piled up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_reads_after_writes_see_their_write_while_the_replica_pauses_at_times() {
    const PAIRS: i64 = 1000;
    let cluster = start_cluster();
    let pool = started(&config(&cluster)).await;
    pool.get().await.unwrap().query_drop("CREATE TABLE test.ryw (id BIGINT PRIMARY KEY, v BIGINT)").await.unwrap();
    let (mut stale, mut on_replica, mut paused_pairs) = (0, 0, 0);
    let mut paused = false;
    let started_at = Instant::now();
    for i in 0..PAIRS {
        // The SQL thread is stopped for pairs 100-199, 350-449, 600-699 and 850-949.
        let pause = (i % 250) >= 100 && (i % 250) < 200;
        if pause != paused {
            if pause { cluster.stop_sql_thread() } else { cluster.start_sql_thread() }.unwrap();
            paused = pause;
        }
        paused_pairs += i64::from(paused);
        let scope = MySqlWriteScope::new();
        let mut w = pool.get().await.unwrap();
        w.exec_drop("INSERT INTO test.ryw VALUES (?, ?)", (i, i * 7)).await.unwrap();
        w.record_write(&scope).await.unwrap();
        drop(w);
        let mut r = pool.get_after_write(Target::PreferReplica, &scope, Duration::from_millis(20)).await.unwrap();
        let v: Option<i64> = r.exec_first("SELECT v FROM test.ryw WHERE id = ?", (i,)).await.unwrap();
        if v != Some(i * 7) {
            stale += 1;
        }
        on_replica += i64::from(r.role() == Role::Replica);
    }
    if paused {
        cluster.start_sql_thread().unwrap();
    }
    println!(
        "read-your-writes: {PAIRS} pairs in {:?} ({paused_pairs} with the SQL thread stopped): {stale} stale, \
         {on_replica} read on the replica, {} on the primary",
        started_at.elapsed(),
        PAIRS - on_replica
    );
    assert_eq!(stale, 0, "a read after a write did not see it");
    assert!(on_replica > 0, "no read ever went to the replica: the test would not show anything");
}

/// What one task's call ended with.
#[derive(Default)]
struct Tally {
    reads: u64,
    failed_reads: BTreeMap<String, u64>,
    writes: u64,
    failed_writes: BTreeMap<String, u64>,
    /// The longest time a failed write took.
    slowest_failure: Duration,
    /// When writes succeeded.
    write_times: Vec<Instant>,
}

fn cluster_error_type(e: &MySqlClusterError) -> String {
    match e {
        MySqlClusterError::NoHost { .. } => "no_host".into(),
        MySqlClusterError::Pool { error, .. } => format!("pool: {error}"),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_primary_dies_and_the_replica_is_promoted_reads_never_fail_and_writes_resume() {
    const TASKS: usize = 32;
    let mut cluster = start_cluster();
    let pool = started(&config(&cluster)).await;
    pool.get()
        .await
        .unwrap()
        .query_drop("CREATE TABLE test.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, task INT, n INT)")
        .await
        .unwrap();
    cluster.wait_for_replica().unwrap();
    let mut promoter = root(&cluster.replica).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (pool, stop) = (pool.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if n % 2 == 0 {
                        let begun = Instant::now();
                        let outcome = match pool.get().await {
                            Ok(mut conn) => {
                                match conn.exec_drop("INSERT INTO test.load (task, n) VALUES (?, ?)", (task, n)).await {
                                    Ok(()) => Ok(()),
                                    Err(e) => {
                                        conn.report_error(&e);
                                        Err(error_type(&e).into_owned())
                                    }
                                }
                            }
                            Err(e) => Err(cluster_error_type(&e)),
                        };
                        match outcome {
                            Ok(()) => {
                                tally.writes += 1;
                                tally.write_times.push(Instant::now());
                            }
                            Err(kind) => {
                                *tally.failed_writes.entry(kind).or_default() += 1;
                                tally.slowest_failure = tally.slowest_failure.max(begun.elapsed());
                                // A client backing off a little after a failure, as a real one would.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    } else {
                        let outcome = match pool.get_for(Target::PreferReplica).await {
                            Ok(mut conn) => match conn.query_first::<i64, _>("SELECT COUNT(*) FROM test.load").await {
                                Ok(_) => Ok(()),
                                Err(e) => {
                                    conn.report_error(&e);
                                    Err(error_type(&e).into_owned())
                                }
                            },
                            Err(e) => Err(cluster_error_type(&e)),
                        };
                        match outcome {
                            Ok(()) => tally.reads += 1,
                            Err(kind) => *tally.failed_reads.entry(kind).or_default() += 1,
                        }
                    }
                }
                tally
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    cluster.primary.kill();
    // The failover tool's delay: writes have nowhere to go meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    promoter.query_drop(aquifer_testing::MARIADB_PROMOTE_SQL).await.unwrap();
    let promoted_at = Instant::now();
    let found = poll_until(Duration::from_secs(10), Duration::from_millis(5), async || {
        pool.hosts()[1].role == Some(Role::Primary)
    })
    .await;
    let found_after = promoted_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.unwrap();
        total.reads += t.reads;
        total.writes += t.writes;
        for (k, v) in t.failed_reads {
            *total.failed_reads.entry(k).or_default() += v;
        }
        for (k, v) in t.failed_writes {
            *total.failed_writes.entry(k).or_default() += v;
        }
        total.slowest_failure = total.slowest_failure.max(t.slowest_failure);
        total.write_times.extend(t.write_times);
    }
    let first_write = total.write_times.iter().filter(|t| **t > promoted_at).min().map(|t| *t - promoted_at);
    let last_before = total.write_times.iter().filter(|t| **t < killed_at + Duration::from_millis(100)).count();
    println!(
        "failover under load ({TASKS} tasks): {} reads, failed reads {:?}; {} writes ({last_before} before the kill), \
         failed writes by type {:?}, slowest failed write {:?}; the pool saw the promoted replica as primary {:?} \
         after the promotion, first successful write {:?} after it",
        total.reads,
        total.failed_reads,
        total.writes,
        total.failed_writes,
        total.slowest_failure,
        found_after,
        first_write
    );
    assert!(found, "the promoted replica was never seen as the primary: {:?}", pool.hosts());
    assert!(total.failed_reads.is_empty(), "reads failed: {:?}", total.failed_reads);
    assert!(first_write.is_some(), "no write succeeded after the promotion: {:?}", total.failed_writes);
    assert!(
        total.failed_writes.contains_key("no_host"),
        "writes during the outage fail with NoHost: {:?}",
        total.failed_writes
    );
    assert!(
        total.slowest_failure < config(&cluster).pool.acquire_timeout,
        "a failed write waited for the acquire timeout: {:?}",
        total.slowest_failure
    );
    let mut new_primary = pool.get().await.unwrap();
    assert_eq!(
        new_primary.query_first::<u32, _>("SELECT @@server_id").await.unwrap(),
        Some(2),
        "writes go to the promoted server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_set_read_only_is_not_written_to_once_a_write_is_refused() {
    let cluster = start_cluster();
    let mut config = config(&cluster);
    // Probes too rare to notice the demotion by themselves within the test: the refused write must.
    config.cluster.role_check_interval = Duration::from_secs(3600);
    let pool = started(&config).await;
    let mut write = pool.get().await.unwrap();
    write.query_drop("CREATE TABLE test.demoted (id INT)").await.unwrap();

    root(&cluster.primary).await.query_drop("SET GLOBAL read_only = 1").await.unwrap();
    let e = write.query_drop("INSERT INTO test.demoted VALUES (1)").await.unwrap_err();
    assert!(write.report_error(&e), "1290 is a read-only error: {e}");
    drop(write);
    wait_for_role(&pool, 0, Role::Replica, "the roles were not re-checked").await;
    let e = pool.get().await.unwrap_err();
    assert!(e.is_no_host(), "no primary left, and the pool says so at once: {e}");
    assert_eq!(server_id(&pool, Target::PreferPrimary).await.unwrap(), 1, "reads still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_primary_restarted_read_only_after_a_failover_gets_no_writes() {
    let mut cluster = start_cluster();
    let pool = started(&config(&cluster)).await;
    pool.get().await.unwrap().query_drop("CREATE TABLE test.back (id INT)").await.unwrap();
    cluster.wait_for_replica().unwrap();
    cluster.primary.kill();
    cluster.promote_replica().unwrap();
    wait_for_role(&pool, 1, Role::Primary, "the replica is not seen promoted").await;

    // Brought back as an operator should: read-only, until it is made a replica of the new primary.
    let mut options: Vec<String> = cluster.primary.options().to_vec();
    options.push("--read-only=1".into());
    cluster.primary.set_options(&options.iter().map(String::as_str).collect::<Vec<_>>());
    cluster.primary.restart().unwrap();
    wait_for_role(&pool, 0, Role::Replica, "the old primary is not seen back as a replica").await;
    for _ in 0..20 {
        let mut conn = pool.get().await.unwrap();
        assert_eq!(
            conn.query_first::<u32, _>("SELECT @@server_id").await.unwrap(),
            Some(2),
            "writes go to the new primary"
        );
        conn.query_drop("INSERT INTO test.back VALUES (1)").await.unwrap();
    }
    // Even a write sent there on purpose is refused, and recognised as a read-only error.
    let mut old = pool.get_for(Target::Replica).await.unwrap();
    assert_eq!(old.query_first::<u32, _>("SELECT @@server_id").await.unwrap(), Some(1));
    let e = old.query_drop("INSERT INTO test.back VALUES (2)").await.unwrap_err();
    assert!(old.report_error(&e), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_primary_back_read_write_after_a_failover_does_not_take_the_writes() {
    let mut cluster = start_cluster();
    let pool = started(&config(&cluster)).await;
    cluster.primary.kill();
    cluster.promote_replica().unwrap();
    wait_for_role(&pool, 1, Role::Primary, "the replica is not seen promoted").await;

    // Restarted as it was, read-write: a second primary, which a failover tool should have prevented.
    cluster.primary.restart().unwrap();
    wait_for_role(&pool, 0, Role::Primary, "the old primary is not seen back as a primary").await;
    for _ in 0..20 {
        assert_eq!(server_id(&pool, Target::Primary).await.unwrap(), 2, "writes stay with the promoted server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_host_reports_its_role_lag_and_connections_under_its_own_server_port() {
    use aquifer_core::metrics::names;
    let cluster = start_cluster();
    let capture = aquifer_testing::MetricsCapture::new();
    let pool = config(&cluster).cluster_builder().unwrap().meter(capture.meter()).build().unwrap();
    pool.start().await.unwrap();
    let (primary_port, replica_port) = (cluster.primary.port().to_string(), cluster.replica.port().to_string());
    let mut primary = pool.get().await.unwrap();
    primary.query_drop("CREATE TABLE test.metered (id INT AUTO_INCREMENT PRIMARY KEY)").await.unwrap();
    let _replica = pool.get_for(Target::Replica).await.unwrap();

    let captured = capture.collect();
    let role = captured.get(names::HOST_ROLE).expect("the role gauge");
    assert_eq!(role.point_with("server.port", &primary_port).map(|p| p.value), Some(1.0), "{role:?}");
    assert_eq!(role.point_with("server.port", &replica_port).map(|p| p.value), Some(0.0), "{role:?}");
    let used = captured.get("db.client.connection.count").expect("the connection count");
    for port in [&primary_port, &replica_port] {
        assert!(used.point_with("server.port", port).is_some(), "no connection point for port {port}: {used:?}");
    }

    cluster.wait_for_replica().unwrap();
    cluster.stop_sql_thread().unwrap();
    let lag_seen = poll_until(Duration::from_secs(20), Duration::from_millis(50), async || {
        primary.query_drop("INSERT INTO test.metered () VALUES ()").await.unwrap();
        let captured = capture.collect();
        let lag = captured.get(names::REPLICA_LAG).and_then(|m| m.point_with("server.port", &replica_port).cloned());
        lag.is_some_and(|p| p.value >= 0.3)
    })
    .await;
    cluster.start_sql_thread().unwrap();
    assert!(lag_seen, "the replica's lag never reached 0.3 s in the metric: {:?}", pool.hosts());
}
