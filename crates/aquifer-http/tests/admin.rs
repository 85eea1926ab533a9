//! The operator's routes over a real socket, with a real HTTP client, on a pool of the real PostgreSQL
//! (start it with `scripts/dev-services.sh`).

use std::time::Duration;

use aquifer_core::PoolConfig;
use aquifer_http::{AdminToken, AdminTokenError, Pools, admin_router, router};
use aquifer_testing::LogBuffer;
use serde_json::Value;

use aquifer_testing::servers;
const TOKEN: &str = "4f1c0b7e9a2d48c3b5e6f70812a9c3d4";
const SERVERS: &str = "is PostgreSQL up? run scripts/dev-services.sh";

fn pool(name: &str) -> aquifer_postgres::PgPool {
    let mut config = aquifer_postgres::PgConfig::from_url(servers::postgres_url());
    config.pool = PoolConfig {
        name: Some(name.to_owned()),
        max_size: 4,
        acquire_timeout: Duration::from_millis(300),
        ..PoolConfig::default()
    };
    config.connect_lazy().unwrap()
}

/// Serves the admin routes (and the plain ones, to show they stay apart) on a loopback port.
async fn serve(pools: Pools) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(pools.clone()).nest("/admin", admin_router(pools, AdminToken::new(TOKEN).unwrap()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A pool named `name`, registered alone and served with the admin routes: the pool and the base URL.
async fn served(name: &str) -> (aquifer_postgres::PgPool, String) {
    let pg = pool(name);
    let pools = Pools::new();
    pools.register(&pg);
    (pg, serve(pools).await)
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

fn post(base: &str, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new().post(format!("{base}/admin{path}"));
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

/// Fills the pool with `n` idle connections.
async fn warm(pool: &aquifer_postgres::PgPool, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap_or_else(|e| panic!("PostgreSQL: {e} ({SERVERS})")));
    }
}

#[tokio::test]
async fn without_a_token_every_admin_route_is_401_and_nothing_changes() {
    let (pg, base) = served("pg").await;

    for action in ["pause", "resume", "retire"] {
        let response = post(&base, &format!("/pools/pg/{action}"), None).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{action}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{action}");
    }
    let (status, _) = send(
        reqwest::Client::new().put(format!("{base}/admin/pools/pg/size")).json(&serde_json::json!({"max_size": 1})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(post(&base, "/pools/pg/pause", None).header("authorization", "Basic cm9vdDo=")).await;
    assert_eq!(status, 401, "another scheme is no bearer token");
    assert!(!pg.is_paused());
    assert_eq!(pg.state().max_size, 4);
}

#[tokio::test]
async fn a_wrong_token_is_403_and_nothing_changes() {
    let (pg, base) = served("pg").await;

    let almost = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    for wrong in [almost.as_str(), "short", &format!("{TOKEN}{TOKEN}")] {
        let (status, body) = send(post(&base, "/pools/pg/pause", Some(wrong))).await;
        assert_eq!(status, 403, "{body}");
    }
    assert!(!pg.is_paused(), "a refused request changed the pool");
}

#[tokio::test]
async fn the_health_router_alone_serves_no_admin_route() {
    let pg = pool("pg");
    let pools = Pools::new();
    pools.register(&pg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(pools)).await.unwrap() });

    let response =
        reqwest::Client::new().post(format!("http://{addr}/pools/pg/pause")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404, "the admin routes exist only where the service mounts them");
    assert!(!pg.is_paused());
}

#[tokio::test]
async fn pause_stops_lending_and_resume_serves_again() {
    let (pg, base) = served("pg").await;
    warm(&pg, 1).await;

    let (status, body) = send(post(&base, "/pools/pg/pause", Some(TOKEN))).await;
    assert_eq!((status, &body["action"], &body["paused"]), (200, &"pause".into(), &true.into()), "{body}");
    let err = pg.get().await.expect_err("a paused pool lends nothing");
    assert!(err.to_string().contains("paused"), "{err}");

    let (status, body) = send(post(&base, "/pools/pg/resume", Some(TOKEN))).await;
    assert_eq!((status, &body["paused"]), (200, &false.into()), "{body}");
    pg.get().await.unwrap_or_else(|e| panic!("a resumed pool lends: {e} ({SERVERS})"));
}

#[tokio::test]
async fn retire_closes_the_idle_connections_and_says_how_many() {
    let (pg, base) = served("pg").await;
    warm(&pg, 3).await;
    assert_eq!(pg.state().idle, 3);

    let (status, body) = send(post(&base, "/pools/pg/retire", Some(TOKEN))).await;
    assert_eq!((status, &body["closed_now"]), (200, &3.into()), "{body}");
    assert_eq!(pg.state().idle, 0);
    assert_eq!(pg.stats().closed_retired, 3);
}

#[tokio::test]
async fn size_changes_max_size_and_a_refused_size_is_400_naming_max_size() {
    let (pg, base) = served("pg").await;
    let put =
        |body: Value| reqwest::Client::new().put(format!("{base}/admin/pools/pg/size")).bearer_auth(TOKEN).json(&body);

    let (status, body) = send(put(serde_json::json!({ "max_size": 7 }))).await;
    assert_eq!((status, &body["max_size"]), (200, &7.into()), "{body}");
    assert_eq!(pg.state().max_size, 7);

    let (status, body) = send(put(serde_json::json!({ "max_size": 0 }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_size"), "{body}");
    let (status, body) = send(put(serde_json::json!({ "max": 3 }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("max_size"), "{body}");
    assert_eq!(pg.state().max_size, 7, "a refused size changes nothing");
}

#[tokio::test]
async fn an_unknown_pool_or_action_is_404_and_names_with_slashes_work() {
    let default_name = format!("{}/test", servers::postgres_addr());
    let (pg, base) = served(&default_name).await;

    let (status, body) = send(post(&base, "/pools/nope/pause", Some(TOKEN))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["pools"][0], default_name);
    let (status, body) = send(post(&base, &format!("/pools/{default_name}/explode"), Some(TOKEN))).await;
    assert_eq!(status, 404, "{body}");
    assert!(!pg.is_paused());

    let (status, body) = send(post(&base, &format!("/pools/{default_name}/pause"), Some(TOKEN))).await;
    assert_eq!((status, &body["pool"]), (200, &default_name.as_str().into()), "{body}");
    assert!(pg.is_paused());
}

#[tokio::test]
async fn every_action_and_refusal_is_logged_with_the_pool_and_never_the_token() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    // A current-thread runtime: the server's tasks log on this thread, to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_orders, base) = served("orders").await;

    send(post(&base, "/pools/orders/pause", Some(TOKEN))).await;
    send(post(&base, "/pools/orders/resume", Some(TOKEN))).await;
    send(post(&base, "/pools/orders/retire", Some("wrong-token-of-some-length-000000"))).await;
    send(post(&base, "/pools/orders/retire", None)).await;

    let text = logs.text();
    assert!(text.contains("admin action") && text.contains("pool=orders action=pause"), "{text}");
    assert!(text.contains("pool=orders action=resume"), "{text}");
    assert!(text.contains("wrong bearer token refused") && text.contains("/pools/orders/retire"), "{text}");
    assert!(text.contains("without a bearer token refused"), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains("wrong-token"), "a log line holds a token: {text}");
}

#[test]
fn a_short_or_unprintable_token_is_refused_and_none_is_shown() {
    assert_eq!(AdminToken::new("").unwrap_err(), AdminTokenError::TooShort { len: 0 });
    assert_eq!(AdminToken::new("  hunter2 \n").unwrap_err(), AdminTokenError::TooShort { len: 7 });
    let spaced = format!("{} {}", &TOKEN[..16], &TOKEN[16..]);
    assert_eq!(AdminToken::new(spaced).unwrap_err(), AdminTokenError::NotPrintable);
    let token = AdminToken::new(format!("{TOKEN}\n")).expect("a trailing newline is trimmed");
    assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    let err = AdminToken::new("hunter2").unwrap_err().to_string();
    assert!(err.contains("32") && !err.contains("hunter2"), "{err}");
}
