//! The behaviour suite on [`FakeAdapter`]: the suite is generic over the adapter contract, and a backend that
//! is nothing but a [`FakeManager`] runs it. Its "server" is the manager every pool of a configuration
//! shares: faults are injected through `FakeAdapter::server()`; its "table" is a map in this file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use aquifer_core::{Adapter, Attempt, Failure, OperationError, Pool, Pooled, StartError, run_operation};
use aquifer_testing::suite::{self, BoxError, BoxFuture, Hooks, Meter, Private, Secret, Unsupported, Write};
use aquifer_testing::{CallError, FakeAdapter, FakeError, FakeManager, PrivateServerError, Restartable};
use parking_lot::Mutex;

/// The rows of a marker: how many were committed, and the connections holding one in an open transaction.
type Rows = (i64, Vec<u64>);

/// The fake's one table: rows by marker.
static ROWS: LazyLock<Mutex<HashMap<String, Rows>>> = LazyLock::new(Mutex::default);

/// One statement of the fake: a round trip, then what it does.
enum Statement {
    /// Answers `n + 1`.
    Answer(i64),
    /// Holds the connection this long, in a "transaction" until it ends.
    Sleep(Duration),
    /// Fails on the server.
    Nonsense,
    /// Commits a row.
    Insert(String),
}

impl Attempt<FakeManager> for Statement {
    type Output = i64;

    async fn run(&mut self, mut conn: Pooled<FakeManager>) -> Result<i64, Failure<FakeError>> {
        // A statement that never reached the server did not run: the runner may retry it.
        conn.round_trip().await.map_err(|e| Failure::new(e, true, true))?;
        match self {
            Statement::Answer(n) => Ok(*n + 1),
            Statement::Sleep(d) => {
                conn.dirty = true;
                tokio::time::sleep(*d).await;
                conn.dirty = false;
                Ok(0)
            }
            Statement::Nonsense => Err(Failure::new(FakeError("syntax error at \"nonsense\"".into()), false, false)),
            Statement::Insert(marker) => {
                ROWS.lock().entry(marker.clone()).or_default().0 += 1;
                Ok(1)
            }
        }
    }
}

fn classify(e: OperationError<FakeError>) -> CallError {
    suite::classify(e, |e| {
        [("refused", "connection_refused"), ("closed", "io")].into_iter().find(|(m, _)| e.0.contains(m)).map(|(_, k)| k)
    })
}

async fn run(pool: &Pool<FakeManager>, statement: Statement) -> Result<i64, CallError> {
    run_operation(pool, "SELECT", statement).await.map_err(classify)
}

/// The fake server of a private-server drill: down is refusing connects with every session killed.
struct FakeServer(FakeManager);

impl Restartable for FakeServer {
    fn stop(&mut self) -> Result<(), PrivateServerError> {
        self.kill();
        Ok(())
    }
    fn kill(&mut self) {
        self.0.set_down(true);
        self.0.kill_all();
    }
    fn restart(&mut self) -> Result<(), PrivateServerError> {
        self.0.set_down(false);
        Ok(())
    }
    fn log(&self) -> &Path {
        Path::new("(the fake server keeps no log)")
    }
}

struct FakeSuite;

impl Hooks for FakeSuite {
    type Adapter = FakeAdapter;
    type Conn = Pooled<FakeManager>;

    fn server_vars(prefix: &str) -> Vec<(String, String)> {
        vec![(format!("{prefix}_URL"), "fake://db/suite".to_owned())]
    }

    fn refused() -> FakeAdapter {
        let config = FakeAdapter::from_url("fake://app:not-the-password@db/suite");
        config.server().set_connect_error(Some("authentication failed for user app"));
        config
    }

    async fn secret_config(_: &str) -> Result<Secret<FakeAdapter>, Unsupported> {
        let secret = "Sekr3t-fake-91d0".to_owned();
        Ok(Secret { config: FakeAdapter::from_url(&format!("fake://app:{secret}@db/suite")), secret })
    }

    /// A server of the drill's own: the sessions of its one pool.
    fn private_server() -> Result<Private<FakeAdapter>, Unsupported> {
        let config = FakeAdapter::from_url("fake://db/restart");
        let server = config.server().clone();
        let sessions = move |_: &str| -> BoxFuture<i64> {
            let n = server.sessions() as i64;
            Box::pin(async move { n })
        };
        let server = Box::new(FakeServer(config.server().clone()));
        Ok(Private { server, config, sessions: Some(Box::new(sessions)) })
    }

    fn metered(config: &FakeAdapter, meter: Meter) -> Result<Pool<FakeManager>, StartError<FakeError>> {
        Ok(Pool::builder(config.server().clone()).config(config.pool.clone()).meter(meter).build()?)
    }

    async fn checkout(pool: &Pool<FakeManager>) -> Result<Pooled<FakeManager>, CallError> {
        pool.get().await.map_err(|e| classify(e.into()))
    }

    async fn answer(conn: &mut Pooled<FakeManager>, n: i64) -> Result<i64, CallError> {
        conn.round_trip().await.map_err(|e| classify(OperationError::Backend(e)))?;
        Ok(n + 1)
    }

    async fn fetch(pool: &Pool<FakeManager>, n: i64) -> Result<i64, CallError> {
        run(pool, Statement::Answer(n)).await
    }

    async fn sleep(pool: &Pool<FakeManager>, ms: u64) -> Result<(), CallError> {
        run(pool, Statement::Sleep(Duration::from_millis(ms))).await.map(drop)
    }

    async fn fail(pool: &Pool<FakeManager>) -> Vec<BoxError> {
        suite::failures([run_operation(pool, "SELECT", Statement::Nonsense).await])
    }

    async fn write(pool: &Pool<FakeManager>, marker: &str, _: Write) -> Result<(), CallError> {
        run(pool, Statement::Insert(marker.to_owned())).await.map(drop)
    }

    async fn write_uncommitted(pool: &Pool<FakeManager>, marker: &str) {
        let mut conn = pool.get().await.expect("a connection");
        conn.round_trip().await.expect("a round trip");
        conn.dirty = true;
        ROWS.lock().entry(marker.to_owned()).or_default().1.push(conn.id);
    }

    /// Committed rows, plus those of a transaction still open on the connection counting (its own writes):
    /// a connection the pool reset is not dirty, and its transaction's rows are gone.
    async fn count(pool: &Pool<FakeManager>, marker: &str) -> i64 {
        let mut conn = pool.get().await.expect("a connection");
        conn.round_trip().await.expect("a round trip");
        let mut rows = ROWS.lock();
        let (committed, open) = rows.entry(marker.to_owned()).or_default();
        if !conn.dirty {
            open.retain(|id| *id != conn.id);
        }
        *committed + open.iter().filter(|id| **id == conn.id).count() as i64
    }

    async fn kill_sessions(pool: &Pool<FakeManager>) -> Result<usize, Unsupported> {
        Ok(pool.manager().kill_all())
    }

    async fn count_sessions(pool: &Pool<FakeManager>) -> Result<i64, Unsupported> {
        Ok(pool.manager().sessions() as i64)
    }
}

aquifer_testing::behaviour_suite!(
    FakeSuite,
    unsupported { serde_never_panics_nor_shows_the_password: "FakeAdapter has no serde form" }
);
