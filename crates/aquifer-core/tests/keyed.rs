//! Pools per key ([`KeyedPools`]): built on first use, one per key; a cap on the connections open across all
//! of them, made room for by closing another pool's idle connection; pools idle past their timeout closed.
//! Paused clock, fake managers (one per key).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aquifer_core::{ConfigError, KeyedPoolError, KeyedPools, PoolConfig, PoolError};
use aquifer_testing::FakeManager;
use parking_lot::Mutex;

type Fakes = Arc<Mutex<HashMap<u32, FakeManager>>>;

/// A set over one fake manager per key (kept in `Fakes` to watch its connections); key 0 is refused.
fn set(max_connections: usize, idle_pool_timeout: Duration) -> (KeyedPools<u32, FakeManager>, Fakes) {
    let fakes = Fakes::default();
    let make = {
        let fakes = Arc::clone(&fakes);
        move |key: &u32| {
            if *key == 0 {
                return Err(ConfigError::Invalid {
                    field: "tenant",
                    value: "0".into(),
                    reason: "no such tenant".into(),
                });
            }
            Ok(fakes.lock().entry(*key).or_insert_with(FakeManager::new).clone())
        }
    };
    let config = PoolConfig { max_size: 10, ..PoolConfig::default() };
    let set = KeyedPools::builder(make)
        .config(config)
        .max_connections(max_connections)
        .idle_pool_timeout(idle_pool_timeout)
        .name("tenants")
        .build()
        .unwrap();
    (set, fakes)
}

fn live(fakes: &Fakes) -> usize {
    fakes.lock().values().map(FakeManager::live).sum()
}

#[tokio::test(start_paused = true)]
async fn a_pool_is_built_on_first_use_and_reused_for_its_key() {
    let (set, fakes) = set(10, Duration::from_secs(60));
    assert!(set.is_empty());
    let a = set.get(&1).await.unwrap();
    let b = set.get(&2).await.unwrap();
    drop(a);
    let again = set.get(&1).await.unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(fakes.lock()[&1].stats().created, 1, "key 1's connection was reused");
    drop((again, b));
}

#[tokio::test(start_paused = true)]
async fn a_refused_key_fails_with_the_error_naming_it() {
    let (set, _) = set(10, Duration::from_secs(60));
    let err = set.get(&0).await.unwrap_err();
    assert!(matches!(err, KeyedPoolError::Build(_)), "{err:?}");
    assert!(err.to_string().contains("tenant") && err.to_string().contains('0'), "{err}");
    assert!(set.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_across_pools_and_an_idle_connection_elsewhere_makes_room() {
    let (set, fakes) = set(3, Duration::from_secs(600));
    let held: Vec<_> = [1, 2, 3].iter().map(|k| set.get(k)).collect();
    let mut held = futures_util::future::try_join_all(held).await.unwrap();
    assert_eq!((set.connections(), live(&fakes)), (3, 3));

    // Every place under the cap is lent: key 4's checkout waits (its connect cannot start).
    let waiting = tokio::spawn({
        let set = set.clone();
        async move { set.get(&4).await.map(|c| c.id) }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a fourth connection was opened under a cap of 3");
    assert_eq!(live(&fakes), 3);

    // Key 1's connection comes back idle: key 4's connect closes it and takes its place.
    drop(held.remove(0));
    waiting.await.unwrap().expect("key 4 is served once key 1's connection is idle");
    assert_eq!(fakes.lock()[&1].live(), 0, "key 1's idle connection was closed to make room");
    assert_eq!((set.connections(), live(&fakes)), (3, 3));
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_checkout_waiting_for_room_times_out_within_its_acquire_timeout() {
    let fakes = Fakes::default();
    let make = {
        let fakes = Arc::clone(&fakes);
        move |key: &u32| Ok::<_, ConfigError>(fakes.lock().entry(*key).or_insert_with(FakeManager::new).clone())
    };
    let config = PoolConfig { acquire_timeout: Duration::from_secs(2), ..PoolConfig::default() };
    let set = KeyedPools::builder(make).config(config).max_connections(1).build().unwrap();
    let held = set.get(&1).await.unwrap();
    let err = set.get(&2).await.unwrap_err();
    assert!(matches!(err, KeyedPoolError::Pool(PoolError::Timeout { .. })), "{err:?}");
    assert_eq!(live(&fakes), 1);
    drop(held);
    drop(set.get(&2).await.expect("served once the cap has room"));
}

#[tokio::test(start_paused = true)]
async fn a_pool_idle_past_the_timeout_is_closed_and_rebuilt_on_next_use() {
    let (set, fakes) = set(10, Duration::from_secs(60));
    drop(set.get(&1).await.unwrap());
    let lent = set.get(&2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(set.len(), 2, "closed before its timeout");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(set.len(), 1, "key 1's idle pool is closed; key 2's, with a connection lent, is kept");
    assert_eq!(fakes.lock()[&1].live(), 0, "its connections were closed");
    assert_eq!(set.connections(), 1, "their places under the cap were given back");
    drop(lent);
    let again = set.get(&1).await.expect("a new pool for key 1");
    assert_eq!(fakes.lock()[&1].stats().created, 2);
    drop(again);
}

#[tokio::test(start_paused = true)]
async fn the_set_exports_its_connections_its_cap_and_its_pool_count_while_it_lives() {
    let capture = aquifer_testing::MetricsCapture::new();
    let set = KeyedPools::builder(|_: &u32| Ok(FakeManager::new()))
        .max_connections(7)
        .name("tenants")
        .meter(capture.meter())
        .build()
        .unwrap();
    let held = set.get(&1).await.unwrap();
    drop(set.get(&2).await.unwrap());
    let captured = capture.collect();
    // The set's own points: its name and nothing of a server (the pools' points name their server).
    let of_set = |name: &str| -> Vec<aquifer_testing::Point> {
        let metric = captured.get(name).unwrap_or_else(|| panic!("{name} exported"));
        metric.points.iter().filter(|p| p.attr("db.system.name").is_none()).cloned().collect()
    };
    let pools = of_set("aquifer.pool.keyed.pools");
    assert_eq!(
        pools.iter().map(|p| (p.attr("db.client.connection.pool.name"), p.value)).collect::<Vec<_>>(),
        [(Some("tenants"), 2.0)]
    );
    assert_eq!(of_set("db.client.connection.max").iter().map(|p| p.value).collect::<Vec<_>>(), [7.0]);
    let count = of_set("db.client.connection.count");
    let state = |s: &str| count.iter().find(|p| p.attr("db.client.connection.state") == Some(s)).map(|p| p.value);
    assert_eq!((state("used"), state("idle")), (Some(1.0), Some(1.0)));
    drop(held);
    drop(set);
    let after = capture.collect();
    let pools_after = after.get("aquifer.pool.keyed.pools").map_or(0, |m| m.points.len());
    assert_eq!(pools_after, 0, "a dropped set is no longer observed");
}
