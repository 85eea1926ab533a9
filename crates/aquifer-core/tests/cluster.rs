//! The cluster pool's engine over fake hosts: roles come from the probes (never from host order), checkouts
//! are routed by target, a role no host has fails fast, a promoted replica is found within the failover check
//! interval, a lagging replica gets no reads until it catches up, reads after a write go where the write is
//! visible, a read-only error re-checks roles at once, and the lag is exported per host. Time is Tokio's
//! paused clock.

mod common;

use std::time::Duration;

use aquifer_core::{
    Clock, ClusterConfig, ClusterError, ClusterPool, LoadBalance, PoolConfig, Role, Target, WriteScope,
};
use aquifer_testing::{FakeError, FakeManager, FakeReplication, MetricsCapture};
use common::ms;
use tokio::time::Instant;

/// Three fake hosts on ports 1, 2 and 3 and the replication state behind them; port 2 is the primary, so
/// that the primary is not the first host given.
struct Cluster {
    hosts: [FakeManager; 3],
    replication: FakeReplication,
    pool: ClusterPool<FakeReplication>,
}

fn cluster_with(config: ClusterConfig, meter: Option<opentelemetry::metrics::Meter>) -> Cluster {
    let hosts = [1, 2, 3].map(|port| FakeManager::new().with_host("db", port));
    let replication = FakeReplication::new();
    replication.set_role(1, Role::Replica);
    replication.set_role(2, Role::Primary);
    replication.set_role(3, Role::Replica);
    let mut builder = ClusterPool::builder(replication.clone())
        .hosts(hosts.iter().cloned())
        .pool_config(PoolConfig { acquire_timeout: Duration::from_secs(5), ..PoolConfig::default() })
        .cluster_config(config)
        .clock(Clock::tokio());
    if let Some(meter) = meter {
        builder = builder.meter(meter);
    }
    Cluster { hosts, replication, pool: builder.build().unwrap() }
}

fn cluster() -> Cluster {
    cluster_with(ClusterConfig::default(), None)
}

async fn server_for(c: &Cluster, target: Target) -> String {
    c.pool.get_for(target).await.unwrap_or_else(|e| panic!("{target}: {e}")).server().to_owned()
}

#[tokio::test(start_paused = true)]
async fn checkouts_are_routed_by_the_roles_the_servers_report_not_by_host_order() {
    let c = cluster();
    c.pool.start().await.unwrap();
    let primary = c.pool.get().await.unwrap();
    assert_eq!((primary.server(), primary.role()), ("db:2", Role::Primary), "get() goes to the primary");
    drop(primary);
    assert_eq!(server_for(&c, Target::Primary).await, "db:2");
    assert_eq!(server_for(&c, Target::PreferPrimary).await, "db:2");
    assert_eq!(server_for(&c, Target::Replica).await, "db:1", "load_balance disable: the first replica given");
    assert_eq!(server_for(&c, Target::PreferReplica).await, "db:1");
    assert_eq!(server_for(&c, Target::Any).await, "db:1", "any: the first host given that answers");
    let roles: Vec<_> = c.pool.hosts().iter().map(|h| h.role).collect();
    assert_eq!(roles, [Some(Role::Replica), Some(Role::Primary), Some(Role::Replica)]);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_before_the_first_probes_waits_for_them_instead_of_failing() {
    let c = cluster();
    // No start(): the probes have not run when get() is called.
    let conn = c.pool.get().await.expect("the first probes finish within the acquire timeout");
    assert_eq!(conn.server(), "db:2");
}

#[tokio::test(start_paused = true)]
async fn random_load_balancing_spreads_reads_over_every_replica() {
    let c = cluster_with(ClusterConfig { load_balance: LoadBalance::Random, ..ClusterConfig::default() }, None);
    c.pool.start().await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        seen.insert(server_for(&c, Target::Replica).await);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["db:1", "db:3"]);
}

#[tokio::test(start_paused = true)]
async fn a_role_no_host_has_fails_at_once_with_no_host() {
    let c = cluster();
    c.pool.start().await.unwrap();
    c.replication.set_role(2, Role::Replica);
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    let started = Instant::now();
    let err = c.pool.get().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "failed at once, not after the acquire timeout");
    let ClusterError::NoHost { target: Target::Primary, hosts } = &err else { panic!("expected NoHost, got {err}") };
    assert!(hosts.contains("db:2 replica"), "{hosts}");
    assert!(err.is_no_host());
    assert_eq!(server_for(&c, Target::PreferPrimary).await, "db:1", "prefer-primary falls back to a replica");
}

#[tokio::test(start_paused = true)]
async fn a_promoted_replica_is_found_within_the_failover_check_interval() {
    let c = cluster();
    c.pool.start().await.unwrap();
    // The primary dies: its connections fail, connects are refused.
    c.hosts[1].set_down(true);
    c.hosts[1].kill_all();
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert!(c.pool.get().await.unwrap_err().is_no_host(), "writes fail fast while no primary is known");
    assert_eq!(server_for(&c, Target::PreferReplica).await, "db:1", "reads go on");

    c.replication.set_role(3, Role::Primary);
    let promoted = Instant::now();
    loop {
        match c.pool.get().await {
            Ok(conn) => {
                assert_eq!(conn.server(), "db:3");
                break;
            }
            Err(e) => assert!(e.is_no_host(), "{e}"),
        }
        tokio::time::sleep(ms(5)).await;
    }
    let found = promoted.elapsed();
    assert!(found <= ClusterConfig::default().failover_check_interval + ms(5), "found after {found:?}");
    assert_eq!(c.pool.hosts()[1].role, None, "the old primary is down");
    assert!(c.pool.hosts()[1].last_error.as_deref().unwrap_or_default().contains("refused"));
}

#[tokio::test(start_paused = true)]
async fn a_host_that_comes_back_claiming_to_be_primary_does_not_take_the_writes_of_the_established_one() {
    let c = cluster();
    c.pool.start().await.unwrap();
    // Host 1 was a replica; it now reports being primary too (an old primary back read-write).
    tokio::time::sleep(ms(50)).await;
    c.replication.set_role(1, Role::Primary);
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert_eq!(c.pool.hosts()[0].role, Some(Role::Primary));
    for _ in 0..4 {
        assert_eq!(c.pool.get().await.unwrap().server(), "db:2", "the established primary keeps the writes");
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_waiting_on_a_primary_that_goes_down_fails_fast_instead_of_waiting_for_its_timeout() {
    let c = cluster();
    c.pool.start().await.unwrap();
    // Connects to the primary hang: a checkout waits in its pool.
    c.hosts[1].set_hang(true);
    let started = Instant::now();
    let waiting = tokio::spawn({
        let pool = c.pool.clone();
        async move { pool.get().await.map(|c| c.server().to_owned()) }
    });
    tokio::time::sleep(ms(50)).await;
    // The probe finds the primary demoted: the waiting checkout is re-routed, and finds no primary.
    c.replication.set_role(2, Role::Replica);
    c.pool.recheck();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(err.is_no_host(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "failed after {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_replica_beyond_max_replica_lag_gets_no_reads_until_it_catches_up() {
    let config = ClusterConfig { max_replica_lag: Some(Duration::from_secs(1)), ..ClusterConfig::default() };
    let c = cluster_with(config, None);
    c.pool.start().await.unwrap();
    c.replication.set_lag(1, Some(Duration::from_secs(5)));
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert!(c.pool.hosts()[0].lagging);
    for _ in 0..4 {
        assert_eq!(server_for(&c, Target::Replica).await, "db:3", "the lagging replica gets no reads");
    }
    c.replication.set_lag(3, Some(Duration::from_secs(2)));
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert!(c.pool.get_for(Target::Replica).await.unwrap_err().is_no_host());
    assert_eq!(server_for(&c, Target::PreferReplica).await, "db:2", "prefer-replica falls back to the primary");
    c.replication.set_lag(1, Some(Duration::from_millis(10)));
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert_eq!(server_for(&c, Target::Replica).await, "db:1", "caught up: reads again");
}

#[tokio::test(start_paused = true)]
async fn a_read_after_a_write_goes_to_the_primary_until_a_replica_has_replayed_it() {
    let c = cluster();
    c.pool.start().await.unwrap();
    let scope = WriteScope::new();
    assert_eq!(c.pool.get_in(Target::Replica, &scope).await.unwrap().server(), "db:1", "no write yet");

    let mut w = c.pool.get().await.unwrap();
    c.replication.write();
    w.record_write(&scope).await.unwrap();
    drop(w);
    assert_eq!(scope.position(), Some(1));
    for target in [Target::Replica, Target::PreferReplica, Target::Any] {
        assert_eq!(c.pool.get_in(target, &scope).await.unwrap().server(), "db:2", "{target}: not replayed yet");
    }
    c.replication.replay(3);
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    assert_eq!(c.pool.get_in(Target::Replica, &scope).await.unwrap().server(), "db:3", "replayed on db:3 only");
    assert_eq!(server_for(&c, Target::Replica).await, "db:1", "reads outside the scope are unaffected");
}

#[tokio::test(start_paused = true)]
async fn a_read_only_error_discards_the_connection_and_rechecks_roles_at_once() {
    let config = ClusterConfig { role_check_interval: Duration::from_secs(60), ..ClusterConfig::default() };
    let c = cluster_with(config, None);
    c.pool.start().await.unwrap();
    let mut conn = c.pool.get().await.unwrap();
    let id = conn.id;
    // The primary was demoted behind the pool's back; the next write is refused.
    c.replication.set_role(2, Role::Replica);
    let probes = c.replication.probes();
    assert!(!conn.report_error(&FakeError("some other failure".into())));
    assert!(conn.report_error(&FakeError("cannot execute INSERT in a read-only transaction".into())));
    drop(conn);
    tokio::time::sleep(ms(1)).await;
    assert!(c.replication.probes() >= probes + 3, "every host re-checked");
    assert!(c.pool.get().await.unwrap_err().is_no_host(), "no longer written to");
    let pool = c.pool.pools().nth(1).unwrap();
    assert_eq!((pool.stats().closed_discarded, pool.state().idle), (1, 0), "connection {id} was discarded");
}

#[tokio::test(start_paused = true)]
async fn each_host_exports_its_role_and_replica_lag_with_its_server_address_and_port() {
    let capture = MetricsCapture::new();
    let c = cluster_with(ClusterConfig::default(), Some(capture.meter()));
    c.pool.start().await.unwrap();
    c.replication.set_lag(3, Some(Duration::from_millis(250)));
    c.pool.recheck();
    tokio::time::sleep(ms(10)).await;
    drop(c.pool.get().await.unwrap());
    let captured = capture.collect();
    let lag = captured.get("aquifer.cluster.replica.lag").expect("lag exported");
    let p3 = lag.point_with("server.port", "3").expect("db:3's lag");
    assert_eq!((p3.value, p3.attr("server.address")), (0.25, Some("db")));
    assert!(lag.point_with("server.port", "2").is_none(), "a primary has no lag");
    let role = captured.get("aquifer.cluster.host.role").expect("role exported");
    assert_eq!(role.point_with("server.port", "2").unwrap().value, 1.0);
    assert_eq!(role.point_with("server.port", "1").unwrap().value, 0.0);
    let used = captured.get("db.client.connection.count").expect("host pools export their counts");
    assert!(used.points.iter().all(|p| p.attr("server.address") == Some("db")), "host pools carry their server");
    assert!(used.points.iter().all(|p| p.attr("db.client.connection.pool.name") == Some(c.pool.name())));
}

#[test]
fn targets_and_load_balancing_parse_the_values_libpq_accepts_and_name_a_bad_one() {
    for (v, t) in [
        ("any", Target::Any),
        ("read-write", Target::Primary),
        ("primary", Target::Primary),
        ("read-only", Target::Replica),
        ("standby", Target::Replica),
        ("prefer-standby", Target::PreferReplica),
        ("prefer-replica", Target::PreferReplica),
        ("prefer-primary", Target::PreferPrimary),
    ] {
        assert_eq!(v.parse::<Target>().unwrap(), t, "{v}");
    }
    let err = "readwrite".parse::<Target>().unwrap_err().to_string();
    assert!(err.contains("target_session_attrs") && err.contains("readwrite"), "{err}");
    assert_eq!("random".parse::<LoadBalance>().unwrap(), LoadBalance::Random);
    let err = "round-robin".parse::<LoadBalance>().unwrap_err().to_string();
    assert!(err.contains("load_balance_hosts") && err.contains("round-robin"), "{err}");
}

#[test]
fn the_cluster_settings_come_from_the_environment_and_serde_with_errors_naming_the_variable() {
    let vars = |k: &str| match k {
        "APP_TARGET_SESSION_ATTRS" => Some("prefer-standby".to_owned()),
        "APP_MAX_REPLICA_LAG" => Some("2s".to_owned()),
        "APP_FAILOVER_CHECK_INTERVAL" => Some("50ms".to_owned()),
        _ => None,
    };
    let c = ClusterConfig::from_lookup("APP", &vars).unwrap();
    assert_eq!(
        (c.target, c.max_replica_lag, c.failover_check_interval),
        (Target::PreferReplica, Some(Duration::from_secs(2)), ms(50))
    );
    let bad = |k: &str| (k == "APP_LOAD_BALANCE_HOSTS").then(|| "sometimes".to_owned());
    let err = ClusterConfig::from_lookup("APP", &bad).unwrap_err().to_string();
    assert!(err.contains("APP_LOAD_BALANCE_HOSTS") && err.contains("sometimes"), "{err}");
    let c: ClusterConfig =
        serde_json::from_str(r#"{"target": "read-only", "load_balance": "random", "max_replica_lag": "500ms"}"#)
            .unwrap();
    assert_eq!((c.target, c.load_balance, c.max_replica_lag), (Target::Replica, LoadBalance::Random, Some(ms(500))));
    let err = serde_json::from_str::<ClusterConfig>(r#"{"target": "leader"}"#).unwrap_err().to_string();
    assert!(err.contains("leader"), "{err}");
}

fn acquired(c: &Cluster) -> Vec<u64> {
    c.pool.pools().map(|p| p.stats().acquired).collect()
}

#[tokio::test(start_paused = true)]
async fn the_helpers_write_on_the_primary_record_the_position_and_read_where_it_is_visible() {
    let c = cluster();
    c.pool.start().await.unwrap();
    let scope = WriteScope::new();
    let written = c.replication.clone();
    c.pool
        .write(Some(&scope), |conn| {
            Box::pin(async move {
                conn.round_trip().await?;
                written.write();
                Ok::<_, FakeError>(())
            })
        })
        .await
        .unwrap();
    assert_eq!((acquired(&c), scope.position()), (vec![0, 1, 0], Some(1)), "written on the primary, db:2");
    c.pool.run_in(Target::Replica, &scope, |conn| Box::pin(conn.round_trip())).await.unwrap();
    assert_eq!(acquired(&c), [0, 2, 0], "no replica has replayed the write: the primary");
    c.pool.run(Target::Replica, |conn| Box::pin(conn.round_trip())).await.unwrap();
    assert_eq!(acquired(&c), [1, 2, 0], "outside the scope: a replica");
}

#[tokio::test(start_paused = true)]
async fn a_read_only_error_from_a_helper_is_returned_and_rechecks_roles() {
    let config = ClusterConfig { role_check_interval: Duration::from_secs(60), ..ClusterConfig::default() };
    let c = cluster_with(config, None);
    c.pool.start().await.unwrap();
    c.replication.set_role(2, Role::Replica);
    let err = c
        .pool
        .write(None, |_| {
            Box::pin(async { Err::<(), _>(FakeError("cannot execute UPDATE in a read-only transaction".into())) })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, aquifer_core::RunError::Operation(_)), "{err}");
    tokio::time::sleep(ms(1)).await;
    assert!(c.pool.get().await.unwrap_err().is_no_host(), "roles were re-checked at once");
    assert_eq!(c.pool.pools().nth(1).unwrap().stats().closed_discarded, 1);
}

#[tokio::test(start_paused = true)]
async fn a_read_after_a_write_asks_an_idle_replica_when_no_probe_has_seen_the_write_replayed_yet() {
    let config = ClusterConfig { role_check_interval: Duration::from_secs(60), ..ClusterConfig::default() };
    let c = cluster_with(config, None);
    c.pool.start().await.unwrap();
    drop(c.pool.get_for(Target::Replica).await.unwrap()); // db:1 holds an idle connection
    let scope = WriteScope::new();
    let mut w = c.pool.get().await.unwrap();
    c.replication.write();
    w.record_write(&scope).await.unwrap();
    drop(w);
    assert_eq!(c.pool.get_in(Target::Replica, &scope).await.unwrap().server(), "db:2", "not replayed: the primary");
    // db:1 replays the write; no probe runs for a minute, but db:1 says so when asked.
    c.replication.replay(1);
    let probes = c.replication.probes();
    assert_eq!(c.pool.get_in(Target::PreferReplica, &scope).await.unwrap().server(), "db:1");
    assert_eq!(c.replication.probes(), probes, "no probe was needed");
    assert_eq!(c.pool.hosts()[0].position.as_deref(), Some("1"), "what db:1 said is kept for the next reads");
}
