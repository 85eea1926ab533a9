//! The behaviour suite every adapter runs (aquifer_testing::suite), on the test server (ArcadeDB's Bolt) and,
//! for the restart drill, on an ArcadeDB of the test's own. ArcadeDB has no command that ends another
//! session, nor a list of sessions: each pool of the suite connects through a proxy of its own
//! ([`ChaosProxy`]), whose connections are the pool's sessions and which resets them all at once (as a
//! server or a proxy that restarts would).

mod common;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use aquifer_neo4j::{Neo4jConfig, Neo4jError, Neo4jOperationError, Neo4jPool, Neo4jPooled, Neo4jStartError, query};
use aquifer_testing::suite::{self, BoxError, Hooks, Meter, Private, Secret, Serde, Unsupported, Write};
use aquifer_testing::{CallError, ChaosProxy, PrivateArcadeDb};
use parking_lot::Mutex;

/// The proxy in front of each pool of the suite, by pool name.
static PROXIES: LazyLock<Mutex<HashMap<String, ChaosProxy>>> = LazyLock::new(Mutex::default);

/// The test server's configuration for a pool named `name`, through a proxy of its own.
async fn proxied(name: &str) -> Neo4jConfig {
    common::require_bolt().await;
    let proxy = ChaosProxy::start(common::addr().parse().expect("a socket address")).await.expect("the proxy starts");
    let config = common::config().uri(format!("bolt://127.0.0.1:{}", proxy.port()));
    PROXIES.lock().insert(name.to_owned(), proxy);
    config
}

/// The failures an outage or a lost session may cause, each named by its type; anything else is untyped.
fn classify(e: Neo4jOperationError) -> CallError {
    suite::classify(e, |e| match e {
        Neo4jError::Unreachable { .. } => Some("unreachable"),
        Neo4jError::ConnectionLost { .. } => Some("connection_lost"),
        // ArcadeDB answers the sessions it is closing on a clean shutdown with these (their authentication is
        // gone before their socket): not a refused password nor a client's protocol error.
        e if shutting_down(e) => Some("shutdown"),
        _ => None,
    })
}

/// What ArcadeDB says to a session it is closing on a clean shutdown.
fn shutting_down(e: &Neo4jError) -> bool {
    let text = e.to_string();
    text.contains("credentials of this connection are no longer valid")
        || text.contains("not expected in state: AUTHENTICATION")
}

const MARKED: &str = "MATCH (n:AqSuite) WHERE n.marker = $m RETURN count(n) AS c";

struct Neo4jSuite;

impl Hooks for Neo4jSuite {
    type Adapter = Neo4jConfig;
    type Conn = Neo4jPooled;

    async fn require() {
        common::require_bolt().await;
    }

    fn server_vars(prefix: &str) -> Vec<(String, String)> {
        // root's password and database are set by scripts/services/40-arcadedb.sh.
        let var = |suffix: &str, value: String| (format!("{prefix}_{suffix}"), value);
        vec![
            var("URI", format!("bolt://{}", common::addr())),
            var("USER", "root".into()),
            var("PASSWORD", common::PASSWORD.into()),
            var("DATABASE", "testdb".into()),
        ]
    }

    async fn config(name: &str) -> Neo4jConfig {
        proxied(name).await
    }

    fn refused() -> Neo4jConfig {
        // A user of its own (scripts/services/40-arcadedb.sh): ArcadeDB locks a user out after 5 failed logins,
        // so refusing root's password would break the other tests.
        common::wrong_password_config("not-the-password")
    }

    /// root's real password: what the driver saw is scanned too.
    async fn secret_config(name: &str) -> Result<Secret<Neo4jConfig>, Unsupported> {
        Ok(Secret { config: proxied(name).await, secret: common::PASSWORD.to_owned() })
    }

    fn private_server() -> Result<Private<Neo4jConfig>, Unsupported> {
        let server = PrivateArcadeDb::start(common::PASSWORD).unwrap_or_else(|e| panic!("{e}"));
        let config = common::config().uri(server.uri());
        Ok(Private { server: Box::new(server), config, sessions: None })
    }

    fn metered(config: &Neo4jConfig, meter: Meter) -> Result<Neo4jPool, Neo4jStartError> {
        Ok(config.builder()?.meter(meter).build()?.into())
    }

    async fn checkout(pool: &Neo4jPool) -> Result<Neo4jPooled, CallError> {
        pool.get().await.map_err(|e| classify(e.into()))
    }

    async fn answer(conn: &mut Neo4jPooled, n: i64) -> Result<i64, CallError> {
        // What a raw query's failure is does not matter to the suite: it counts them.
        let lost = |e: aquifer_neo4j::neo4rs::Error| CallError::Untyped(format!("{e}: {e:?}"));
        let mut rows = conn.execute(query("RETURN $n + 1 AS a").param("n", n)).await.map_err(lost)?;
        let row = rows.next().await.map_err(lost)?.expect("one row");
        Ok(row.get::<i64>("a").expect("column a"))
    }

    async fn fetch(pool: &Neo4jPool, n: i64) -> Result<i64, CallError> {
        let row = pool.fetch_one(query("RETURN $n + 1 AS a").param("n", n)).await.map_err(classify)?;
        Ok(row.get::<i64>("a").expect("column a"))
    }

    /// ArcadeDB has no sleep function: the connection is held for `ms`, then runs a statement.
    async fn sleep(pool: &Neo4jPool, ms: u64) -> Result<(), CallError> {
        let conn = pool.get().await.map_err(|e| classify(e.into()))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        conn.run(query("RETURN 1")).await.map(drop).map_err(|e| CallError::Untyped(format!("{e}: {e:?}")))
    }

    async fn fail(pool: &Neo4jPool) -> Vec<BoxError> {
        let nonsense = pool.fetch_one(query("RETURN nonsense(")).await;
        suite::failures([nonsense, pool.fetch_one(query("UNWIND [] AS x RETURN x")).await])
    }

    /// A query that streams two million rows, dropped after its first milliseconds.
    async fn abandon(pool: &Neo4jPool) {
        let conn = pool.get().await.expect("a connection");
        let slow = async {
            let mut rows = conn.execute(query("UNWIND range(1, 2000000) AS i RETURN i, toString(i) AS s")).await?;
            while rows.next().await?.is_some() {}
            Ok::<_, aquifer_neo4j::neo4rs::Error>(())
        };
        let slow = tokio::time::timeout(Duration::from_millis(50), slow).await;
        assert!(slow.is_err(), "the query was still running when it was dropped: {slow:?}");
    }

    async fn write(pool: &Neo4jPool, marker: &str, how: Write) -> Result<(), CallError> {
        let create = query("CREATE (:AqSuite {marker: $m})").param("m", marker);
        match how {
            Write::Autocommit => pool.execute(create).await,
            Write::Transaction => {
                pool.transaction(|txn| {
                    let create = create.clone();
                    Box::pin(async move { Ok(txn.run(create).await?) })
                })
                .await
            }
        }
        .map_err(classify)
    }

    async fn write_uncommitted(pool: &Neo4jPool, marker: &str) {
        let conn = pool.get().await.unwrap();
        let mut txn = conn.start_txn().await.unwrap();
        txn.run(query("CREATE (:AqSuite {marker: $m})").param("m", marker)).await.unwrap();
        // Dropped without commit: the server rolls it back when the connection is reset.
        drop(txn);
    }

    async fn count(pool: &Neo4jPool, marker: &str) -> i64 {
        let row = pool.fetch_one(query(MARKED).param("m", marker)).await.unwrap();
        row.get::<i64>("c").unwrap()
    }

    /// Resets every connection through the pool's proxy and waits (bounded) until the proxy has let go of
    /// them.
    async fn kill_sessions(pool: &Neo4jPool) -> Result<usize, Unsupported> {
        let live = |name: &str| PROXIES.lock().get(name).map(ChaosProxy::live).expect("the pool's proxy");
        let open = live(pool.name());
        PROXIES.lock().get(pool.name()).expect("the pool's proxy").reset_all();
        for _ in 0..400 {
            if live(pool.name()) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(live(pool.name()), 0, "the proxy still holds connections after a reset");
        Ok(open)
    }

    async fn count_sessions(pool: &Neo4jPool) -> Result<i64, Unsupported> {
        Ok(PROXIES.lock().get(pool.name()).map(ChaosProxy::live).expect("the pool's proxy") as i64)
    }

    const ENV_WORDS: &'static [&'static str] = &["bolt://h:1/db", "http://x", ":"];

    const BAD_VALUES: &'static [(&'static str, &'static str)] = &[
        ("URI", "http://db:7474"),
        ("URI", "bolt://db/neo4j"),
        ("URL", "bolt://db:notaport"),
        ("FETCH_SIZE", "0"),
        ("FETCH_SIZE", "many"),
        ("READ_TIMEOUT", "0ms"),
    ];

    /// The password is a `Password`, which does not serialise: the config is Deserialize only.
    fn serde() -> Result<Serde<Neo4jConfig>, Unsupported> {
        let fields = &["read_timeout", "uri", "user", "fetch_size", "pool", "database"];
        Ok(Serde::deserialize(r#""password": "{secret}""#, fields))
    }
}

aquifer_testing::behaviour_suite!(Neo4jSuite);
