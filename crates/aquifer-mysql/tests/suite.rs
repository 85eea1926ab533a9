//! The behaviour suite every adapter runs (aquifer_testing::suite), on the test server and, for the restart
//! drill, on a MariaDB of the test's own. Each pool of the suite connects as a user of its own, named like
//! the pool, so its sessions can be counted and killed without touching other tests' (the server shows no
//! client name).

mod common;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, Opts};
use aquifer_mysql::{MySqlConfig, MySqlOperationError, MySqlPool, MySqlPooled, MySqlStartError, error_type};
use aquifer_testing::suite::{self, BoxError, BoxFuture, Hooks, Meter, Private, Secret, Serde, Unsupported, Write};
use aquifer_testing::{CallError, PrivateMariaDb};

/// The failures an outage or a killed session may cause, each named by its type; anything else is untyped.
fn classify(e: MySqlOperationError) -> CallError {
    suite::classify(e, |db| match error_type(db).as_ref() {
        "connection_lost" => Some("connection_lost"),
        "connection_refused" => Some("connection_refused"),
        // ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED: the server says it is shutting down, or killed us.
        "1053" | "1927" => Some("shutdown"),
        _ => None,
    })
}

fn backend(e: aquifer_mysql::mysql_async::Error) -> CallError {
    classify(MySqlOperationError::Backend(e))
}

/// A user named `name` with password `password` (and the suite's rights) on the test server, after dropping
/// the suite users of test processes that are gone (a failed test skips its clean-up); returns its URL.
async fn user(name: &str, password: &str) -> String {
    let mut admin = common::admin().await;
    let users: Vec<String> = admin.query("SELECT User FROM mysql.user WHERE User LIKE 'aqs\\_%'").await.unwrap();
    for old in users {
        let pid = old.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            common::drop_user(&mut admin, &old).await;
        }
    }
    common::dedicated_user(&mut admin, name).await;
    admin.query_drop(format!("ALTER USER '{name}'@'%' IDENTIFIED BY '{password}'")).await.unwrap();
    format!("mysql://{name}:{password}@{}:{}/test", common::HOST, common::port())
}

struct MySqlSuite;

impl Hooks for MySqlSuite {
    type Adapter = MySqlConfig;
    type Conn = MySqlPooled;

    async fn require() {
        common::server().await;
    }

    fn server_vars(prefix: &str) -> Vec<(String, String)> {
        vec![(format!("{prefix}_URL"), common::url())]
    }

    async fn config(name: &str) -> MySqlConfig {
        MySqlConfig::from_url(user(name, name).await)
    }

    fn refused() -> MySqlConfig {
        // User aquifer_pw (password `aquifer-secret`) is made by scripts/services/20-mariadb.sh.
        MySqlConfig::from_url(aquifer_testing::servers::mariadb_url_as("aquifer_pw:not-the-password"))
    }

    /// A user of its own whose password is the secret.
    async fn secret_config(name: &str) -> Result<Secret<MySqlConfig>, Unsupported> {
        let secret = "Sekr3t-my-4b2e".to_owned();
        let mut config = MySqlConfig::from_url(user(name, &secret).await);
        config.pool.max_size = 2;
        Ok(Secret { config, secret })
    }

    /// The private server is the pool's alone: its sessions are root's.
    fn private_server() -> Result<Private<MySqlConfig>, Unsupported> {
        let server = PrivateMariaDb::start().unwrap_or_else(|e| panic!("{e}"));
        let url = server.url();
        let config = MySqlConfig::from_url(&url);
        let sessions = move |_: &str| -> BoxFuture<i64> { Box::pin(sessions(url.clone())) };
        Ok(Private { server: Box::new(server), config, sessions: Some(Box::new(sessions)) })
    }

    fn metered(config: &MySqlConfig, meter: Meter) -> Result<MySqlPool, MySqlStartError> {
        Ok(config.builder()?.meter(meter).build()?.into())
    }

    async fn checkout(pool: &MySqlPool) -> Result<MySqlPooled, CallError> {
        pool.get().await.map_err(|e| classify(e.into()))
    }

    async fn answer(conn: &mut MySqlPooled, n: i64) -> Result<i64, CallError> {
        let got: Option<i64> = conn.exec_first("SELECT ? + 1", (n,)).await.map_err(backend)?;
        Ok(got.expect("one row"))
    }

    async fn fetch(pool: &MySqlPool, n: i64) -> Result<i64, CallError> {
        pool.fetch_one("SELECT ? + 1", (n,)).await.map_err(classify)
    }

    async fn sleep(pool: &MySqlPool, ms: u64) -> Result<(), CallError> {
        let seconds = ms as f64 / 1000.0;
        pool.fetch_one::<i64, _>("SELECT SLEEP(?)", (seconds,)).await.map(drop).map_err(classify)
    }

    async fn fail(pool: &MySqlPool) -> Vec<BoxError> {
        let nonsense = pool.fetch_one::<i32, _>("SELECT nonsense", ()).await;
        suite::failures([nonsense, pool.fetch_one::<i32, _>("SELECT 1 FROM DUAL WHERE FALSE", ()).await])
    }

    async fn setup(pool: &MySqlPool) {
        pool.execute("CREATE TABLE IF NOT EXISTS aq_suite (marker VARCHAR(64))", ()).await.unwrap();
    }

    async fn write(pool: &MySqlPool, marker: &str, how: Write) -> Result<(), CallError> {
        const INSERT: &str = "INSERT INTO aq_suite VALUES (?)";
        match how {
            Write::Autocommit => pool.execute(INSERT, (marker,)).await.map(drop),
            Write::Transaction => {
                let marker = marker.to_owned();
                pool.transaction(|tx| {
                    let marker = marker.clone();
                    Box::pin(async move { tx.exec_drop(INSERT, (marker,)).await })
                })
                .await
            }
        }
        .map_err(classify)
    }

    async fn write_uncommitted(pool: &MySqlPool, marker: &str) {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("START TRANSACTION").await.unwrap();
        conn.exec_drop("INSERT INTO aq_suite VALUES (?)", (marker,)).await.unwrap();
    }

    async fn count(pool: &MySqlPool, marker: &str) -> i64 {
        pool.fetch_one("SELECT count(*) FROM aq_suite WHERE marker = ?", (marker,)).await.unwrap()
    }

    /// mysql_async cannot tell a session killed before the statement arrived from one lost after it ran
    /// (both end in EOF), so an autocommitted `execute` whose connection died under it is not retried.
    const LOST_WRITES_MAY_FAIL: bool = true;

    async fn kill_sessions(pool: &MySqlPool) -> Result<usize, Unsupported> {
        Ok(common::kill_all_of(&mut common::admin().await, pool.name()).await)
    }

    async fn count_sessions(pool: &MySqlPool) -> Result<i64, Unsupported> {
        Ok(common::connections_of(&mut common::admin().await, pool.name()).await.len() as i64)
    }

    const ENV_WORDS: &'static [&'static str] = &["socket:", "tcp", "'UTC"];

    const BAD_VALUES: &'static [(&'static str, &'static str)] = &[
        ("WAIT_TIMEOUT", "400days"),
        ("WAIT_TIMEOUT", "0s"),
        ("WAIT_TIMEOUT", "1500ms"),
        ("TRANSPORT", "socket:"),
        ("SYSTEM", "oracle"),
        ("TIME_ZONE", "'UTC"),
        ("SQL_MODE", "a\\b"),
        ("SSL_MODE", "sometimes"),
        ("STMT_CACHE_SIZE", "0"),
        ("RESET_ON_RETURN", "perhaps"),
    ];

    const URL_PARAMS: &'static [&'static str] =
        &["socket", "prefer_socket", "require_ssl", "stmt_cache_size", "pool_min"];

    fn serde() -> Result<Serde<MySqlConfig>, Unsupported> {
        let fields = &["wait_timeout", "time_zone", "transport", "ssl_mode", "pool", "init_sql"];
        Ok(Serde::both(r#""url": "mysql://app:{secret}@db/x""#, fields))
    }
}

/// Client sessions on a private server (it is the test's alone), seen from a connection of its own.
async fn sessions(url: String) -> i64 {
    let mut admin = Conn::new(Opts::from_url(&url).expect("url")).await.expect("admin");
    let n: Option<i64> = admin
        .query_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = 'root'",
        )
        .await
        .expect("count sessions");
    admin.disconnect().await.ok();
    n.unwrap_or(0)
}

aquifer_testing::behaviour_suite!(MySqlSuite);
