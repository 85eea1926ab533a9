//! The routes served over a real socket, read with a real HTTP client, with pools on the real servers
//! (start them with `scripts/dev-services.sh`).

use std::time::Duration;

use aquifer_core::{AnyPool, PoolConfig};
use aquifer_http::{Pools, router};
use aquifer_testing::PrivateMariaDb;
use serde_json::Value;

use aquifer_testing::servers;

fn pg() -> String {
    servers::postgres_url_as("postgres:http-secret-1")
}
const SERVERS: &str = "are the servers up? run scripts/dev-services.sh";

fn quick(name: &str, max_size: usize) -> PoolConfig {
    PoolConfig {
        name: Some(name.to_owned()),
        max_size,
        acquire_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        fail_fast_after: Duration::from_secs(1),
        ..PoolConfig::default()
    }
}

fn postgres(name: &str, url: &str, max_size: usize) -> aquifer_postgres::PgPool {
    let mut config = aquifer_postgres::PgConfig::from_url(url);
    config.pool = quick(name, max_size);
    config.connect_lazy().unwrap()
}

/// Serves `pools` on an ephemeral loopback port; returns the base URL.
async fn serve(pools: Pools) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(pools)).await.unwrap() });
    format!("http://{addr}")
}

/// [`serve`] with `pool` the one pool registered.
async fn serve_one<P: AnyPool + Clone + 'static>(pool: &P) -> String {
    let pools = Pools::new();
    pools.register(pool);
    serve(pools).await
}

async fn get(url: &str) -> (u16, Value, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, json, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_200_when_all_four_backends_are_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres("pg", &pg(), 2);
    let mut my = aquifer_mysql::MySqlConfig::from_url(servers::mariadb_url());
    my.pool = quick("mysql", 2);
    let my = my.connect_lazy().unwrap();
    let mut neo = aquifer_neo4j::Neo4jConfig::new(servers::bolt_uri(), "root", "aquifer-secret").database("testdb");
    neo.pool = quick("neo4j", 2);
    let neo = neo.connect_lazy().unwrap();
    let lite = aquifer_sqlite::SqlitePool::builder(dir.path().join("http.db")).name("lite").connect().await.unwrap();

    let pools = Pools::new();
    pools.register(&pg).register(&my).register(&neo).register(lite.writer()).register(lite.readers());
    let base = serve(pools).await;

    let (status, json, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "{SERVERS}: {body}");
    assert_eq!(json["status"], "healthy");
    let names: Vec<&str> = json["pools"].as_array().unwrap().iter().map(|p| p["pool"].as_str().unwrap()).collect();
    assert_eq!(names, ["pg", "mysql", "neo4j", "lite/writer", "lite/readers"]);
    let systems: Vec<&str> = json["pools"].as_array().unwrap().iter().map(|p| p["system"].as_str().unwrap()).collect();
    assert_eq!(systems, ["postgresql", "mysql", "neo4j", "sqlite", "sqlite"]);
    assert!(!body.contains("aquifer-secret") && !body.contains("http-secret-1"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_one_backends_server_is_stopped_and_200_after_restart() {
    // The second backend is a MariaDB of this test's own, so stopping it disturbs no other test.
    let mut server = tokio::task::block_in_place(PrivateMariaDb::start).unwrap_or_else(|e| panic!("{e}"));
    let up = postgres("up", &pg(), 2);
    let mut my = aquifer_mysql::MySqlConfig::from_url(format!("mysql://root@127.0.0.1:{}/test", server.port()));
    my.pool = quick("down", 2);
    let my = my.connect().await.unwrap_or_else(|e| panic!("the private MariaDB answers: {e}"));
    let pools = Pools::new();
    pools.register(&up).register(&my);
    let base = serve(pools).await;
    let (status, json, body) = get(&format!("{base}/health")).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("healthy")), "{SERVERS}: {body}");

    tokio::task::block_in_place(|| server.stop()).unwrap_or_else(|e| panic!("{e}"));
    let (status, json, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(json["status"], "unhealthy");
    assert_eq!(json["pools"][0]["status"], "healthy", "{SERVERS}: {body}");
    assert_eq!(json["pools"][1]["status"], "unhealthy");
    assert_eq!(json["pools"][1]["system"], "mysql");
    // The pool's idle connection died with the server: the first check finds it closed.
    let cause = json["pools"][1]["last_error"].as_str().unwrap_or_default();
    assert!(cause.contains("connection closed") || cause.contains("Connection refused"), "the cause is named: {body}");

    let (status, json, _) = get(&format!("{base}/health/up")).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("healthy")));
    // With the dead connection gone, the next check connects and is refused.
    let (status, json, body) = get(&format!("{base}/health/down")).await;
    assert_eq!((status, json["status"].as_str()), (503, Some("unhealthy")), "{body}");
    assert!(json["last_error"].as_str().unwrap_or_default().contains("Connection refused"), "{body}");

    // Back: the pool reconnects on its own, and /health follows within a bound.
    tokio::task::block_in_place(|| server.restart()).unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, json, body) = get(&format!("{base}/health")).await;
        if status == 200 {
            assert_eq!(json["status"], "healthy", "{body}");
            assert!(json["pools"][1]["last_error"].is_null(), "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "/health still {status} 30 s after the restart: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, body) = get(&format!("{base}/health/down")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_200_and_degraded_when_a_pool_is_exhausted() {
    let pg = postgres("busy", &pg(), 1);
    let held = pg.get().await.unwrap_or_else(|e| panic!("{SERVERS}: {e}"));
    let base = serve_one(&pg).await;

    let (status, json, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json["status"], "degraded");
    assert!(json["pools"][0]["last_error"].as_str().unwrap().contains("pool exhausted"), "{body}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pool_by_name_even_with_slashes_and_404_for_unknown() {
    // The default name is `host:port/database`.
    let mut config = aquifer_postgres::PgConfig::from_url(pg());
    config.pool.acquire_timeout = Duration::from_secs(2);
    let pg = config.connect_lazy().unwrap();
    let base = serve_one(&pg).await;

    let (status, json, body) = get(&format!("{base}/health/{}/test", servers::postgres_addr())).await;
    assert_eq!(status, 200, "{SERVERS}: {body}");
    assert_eq!(json["pool"], format!("{}/test", servers::postgres_addr()));
    let (status, json, _) = get(&format!("{base}/health/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(json["pools"][0], format!("{}/test", servers::postgres_addr()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_shows_state_counters_and_config_without_password() {
    let pg = postgres("orders", &pg(), 3);
    for _ in 0..3 {
        drop(pg.get().await.unwrap_or_else(|e| panic!("{SERVERS}: {e}")));
    }
    let held = pg.get().await.unwrap();
    let base = serve_one(&pg).await;

    let (status, json, body) = get(&format!("{base}/stats")).await;
    assert_eq!(status, 200);
    let p = &json["pools"][0];
    assert_eq!(p["name"], "orders");
    assert_eq!(p["system"], "postgresql");
    assert_eq!(p["server"], format!("{}/test", servers::postgres_addr()));
    assert_eq!(p["state"]["in_use"], 1);
    assert_eq!(p["state"]["max_size"], 3);
    assert!((p["utilization"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(p["stats"]["acquired"], 4);
    assert_eq!(p["stats"]["created"], 1);
    assert_eq!(p["config"]["max_size"], 3);
    assert_eq!(p["config"]["name"], "orders");
    assert!(json["taken_at"].as_str().unwrap().ends_with('Z'));
    assert!(!body.contains("http-secret") && !body.contains("postgres://"), "{body}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_is_200_while_the_database_is_down_and_health_is_503() {
    // Nothing listens on port 1: the pool cannot connect.
    let down = postgres("down", "postgres://postgres@127.0.0.1:1/test?sslmode=disable", 1);
    let base = serve_one(&down).await;

    let (status, _, _) = get(&format!("{base}/health")).await;
    assert_eq!(status, 503, "the database is down");
    let (status, body, _) = get(&format!("{base}/livez")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    let (status, body, _) = get(&format!("{base}/readyz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "readiness does not follow the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_once_draining_starts_while_the_other_routes_keep_serving() {
    let pg = postgres("pg", &pg(), 2);
    let pools = Pools::new();
    pools.register(&pg);
    let base = serve(pools.clone()).await;
    let (status, _, _) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200);

    pools.start_draining();
    let (status, body, _) = get(&format!("{base}/readyz")).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("draining")));
    let (status, _, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "a draining service still serves and its pools are healthy ({SERVERS}): {body}");
    let (status, _, _) = get(&format!("{base}/livez")).await;
    assert_eq!(status, 200);
    pg.close().await;
}

#[tokio::test(start_paused = true)]
async fn drain_on_marks_the_pools_draining_at_the_signal_and_resolves_after_the_delay() {
    let pools = Pools::new();
    let (send, signal) = tokio::sync::oneshot::channel::<()>();
    let drained = tokio::spawn(aquifer_http::drain_on(signal, pools.clone(), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!pools.is_draining(), "nothing drains before the signal");

    send.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(pools.is_draining(), "readiness turns 503 as soon as the signal arrives");
    tokio::time::sleep(Duration::from_millis(4_900)).await;
    assert!(!drained.is_finished(), "serving goes on during the drain delay");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(drained.is_finished(), "serving stops after the drain delay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_every_registered_pool_and_starts_draining() {
    let dir = tempfile::tempdir().unwrap();
    let pg = postgres("pg", &pg(), 2);
    let lite = aquifer_sqlite::SqlitePool::builder(dir.path().join("close.db")).name("lite").connect().await.unwrap();
    let pools = Pools::new();
    pools.register(&pg).register(lite.writer()).register(lite.readers());
    let held = pg.get().await.unwrap_or_else(|e| panic!("PostgreSQL: {e} ({SERVERS})"));
    drop(held);

    pools.close().await;
    assert!(pools.is_draining());
    assert!(pg.is_closed(), "the PostgreSQL pool is closed");
    assert!(lite.writer().is_closed() && lite.readers().is_closed(), "both SQLite pools are closed");
    assert_eq!(pools.names(), ["pg", "lite/writer", "lite/readers"], "closed pools stay registered");
}
