//! Connecting: eager, typed errors for a refused password, a missing database and an unreachable server,
//! all failing fast; passwords never shown.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aquifer_core::Manager;
use aquifer_neo4j::{Neo4jConfig, Neo4jError, Neo4jManager, Neo4jPool, Neo4jStartError, PoolConfig};
use common::{PASSWORD, addr, config, require_bolt};

const WRONG: &str = "Wr0ng-Pa55word-XYZ";

fn pool_config(name: &str) -> PoolConfig {
    PoolConfig {
        name: Some(format!("aq_neo4j_{name}")),
        acquire_timeout: Duration::from_secs(30),
        ..PoolConfig::default()
    }
}

/// Connects through `aquifer_neo4j::connect` and returns the error, asserting it came well before the 30 s
/// acquire timeout.
async fn connect_error(config: Neo4jConfig, name: &str) -> Neo4jStartError {
    let started = Instant::now();
    let e = Neo4jConfig { pool: pool_config(name), ..config }.connect().await.expect_err("connect must fail");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}: not failing fast", started.elapsed());
    e
}

#[tokio::test]
async fn connect_opens_a_working_connection_at_once() {
    require_bolt().await;
    let manager = Neo4jManager::new(config()).unwrap();
    let conn = manager.connect().await.expect("connect");
    let mut rows = conn.execute(aquifer_neo4j::query("RETURN 1 AS one")).await.unwrap();
    let one: i64 = rows.next().await.unwrap().unwrap().get("one").unwrap();
    assert_eq!(one, 1);
}

#[tokio::test]
async fn connect_starts_a_pool_with_its_first_connection_open() {
    require_bolt().await;
    let pool = Neo4jConfig { pool: pool_config("connect_warm"), ..config() }.connect().await.expect("connect");
    assert_eq!(pool.state().idle, 1);
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    require_bolt().await;
    let e = connect_error(common::wrong_password_config(WRONG), "wrong_password").await;
    match e.backend_error() {
        Some(Neo4jError::Authentication { user, .. }) => assert_eq!(user.as_deref(), Some(common::PW_USER)),
        other => panic!("expected an authentication error, got {other:?} ({e})"),
    }
}

#[tokio::test]
async fn manager_connect_with_wrong_password_is_an_authentication_error() {
    require_bolt().await;
    let manager = Neo4jManager::new(common::wrong_password_config(WRONG)).unwrap();
    let e = manager.connect().await.expect_err("must be refused");
    assert!(matches!(e, Neo4jError::Authentication { .. }), "{e:?}");
    assert_eq!(manager.error_type(&e), "authentication");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn unknown_database_is_a_typed_error() {
    require_bolt().await;
    let e = connect_error(config().database("aq_neo4j_no_such_db"), "unknown_db").await;
    match e.backend_error() {
        Some(Neo4jError::UnknownDatabase { database, .. }) => {
            assert_eq!(database.as_deref(), Some("aq_neo4j_no_such_db"))
        }
        other => panic!("expected an unknown-database error, got {other:?} ({e})"),
    }
}

#[tokio::test]
async fn unreachable_server_is_a_typed_error() {
    // Nothing listens on port 1 of the loopback address.
    let e = connect_error(config().uri("bolt://127.0.0.1:1"), "unreachable").await;
    match e.backend_error() {
        Some(Neo4jError::Unreachable { address, .. }) => assert_eq!(address, "127.0.0.1:1"),
        other => panic!("expected an unreachable error, got {other:?} ({e})"),
    }
    // Each cause once in a chain walk (docs/architecture.md, "Errors"): neo4rs's own error repeats its I/O cause.
    let rendered = aquifer_testing::assert_each_cause_once(&e);
    assert!(rendered.contains("cannot reach the Bolt server at 127.0.0.1:1: "), "{rendered}");
}

#[tokio::test]
async fn a_pool_whose_password_is_refused_fails_fast_with_unavailable() {
    require_bolt().await;
    let pool = Neo4jPool::from_manager(
        Neo4jManager::new(common::wrong_password_config(WRONG)).unwrap(),
        pool_config("refused_pool"),
    )
    .unwrap();
    let started = Instant::now();
    let first = pool.get().await.expect_err("refused");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(first.backend_error(), Some(Neo4jError::Authentication { .. })), "{first:?}");
    let started = Instant::now();
    let again = pool.get().await.expect_err("still refused");
    assert!(matches!(again, aquifer_neo4j::Neo4jPoolError::Unavailable { .. }), "{again:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "fail-fast took {:?}", started.elapsed());
}

#[tokio::test]
async fn credentials_in_the_uri_are_used_when_user_and_password_are_left_default() {
    require_bolt().await;
    let c = Neo4jConfig::default().uri(format!("bolt://root:{PASSWORD}@{}", addr())).database("testdb");
    let pool = Neo4jConfig { pool: pool_config("uri_credentials"), ..c }.connect().await.expect("connect");
    assert_eq!(pool.state().idle, 1);
}

/// A writer shared with a tracing subscriber, to read back what was logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passwords_never_appear_in_errors_logs_health_or_metrics() {
    require_bolt().await;
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let capture = aquifer_testing::MetricsCapture::new();

    // A refused password: errors, logs, health and metrics of that pool.
    let refused = Neo4jPool::from(
        aquifer_core::Pool::builder(Neo4jManager::new(common::wrong_password_config(WRONG)).unwrap())
            .name("aq_neo4j_redaction_refused")
            .meter(capture.meter())
            .build()
            .unwrap(),
    );
    let e = refused.get().await.expect_err("refused");
    let again = refused.get().await.expect_err("refused");
    let health = serde_json::to_string(&refused.health().await).unwrap();
    // A working pool: its health report and Debug output.
    let good = common::pool("redaction_good", 2, Some(&capture)).await;
    drop(good.get().await.unwrap());
    let good_health = serde_json::to_string(&good.health().await).unwrap();

    let metrics = format!("{:?}", capture.collect());
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("connect"), "expected connect failures to be logged: {logged}");
    let texts = [
        ("error Display", e.to_string()),
        ("error Debug", format!("{e:?}")),
        ("fail-fast Display", again.to_string()),
        ("fail-fast Debug", format!("{again:?}")),
        ("health", health),
        ("good health", good_health),
        ("pool Debug", format!("{refused:?} {good:?}")),
        ("manager Debug", format!("{:?}", good.manager())),
        ("metrics", metrics),
        ("logs", logged),
    ];
    for (what, text) in texts {
        assert!(!text.contains(WRONG), "{what} shows the wrong password: {text}");
        assert!(!text.contains(PASSWORD), "{what} shows the password: {text}");
    }
}
