//! The behaviour suite every adapter runs (aquifer_testing::suite), on the test server and, for the restart
//! drill, on a PostgreSQL of the test's own. A pool's sessions are the server's backends whose
//! `application_name` is the pool's name.

mod common;

use aquifer_postgres::sqlx::{self, Connection, PgConnection};
use aquifer_postgres::{PgConfig, PgOperationError, PgPool, PgPooled, PgStartError, sqlstate};
use aquifer_testing::suite::{self, BoxError, BoxFuture, Hooks, Meter, Private, Secret, Serde, Unsupported, Write};
use aquifer_testing::{CallError, PrivatePostgres};
use common::*;

/// The failures an outage may cause, each named by its type; anything else is untyped.
fn classify(e: PgOperationError) -> CallError {
    suite::classify(e, |db| match db {
        sqlx::Error::Io(_) => Some("io"),
        // 57P01 admin_shutdown (a terminated backend, a fast shutdown), 57P03 cannot_connect_now (starting up
        // or shutting down).
        db if matches!(sqlstate(db).as_deref(), Some("57P01" | "57P03")) => Some("shutdown"),
        _ => None,
    })
}

fn backend(e: sqlx::Error) -> CallError {
    classify(PgOperationError::Backend(e))
}

struct PgSuite;

impl Hooks for PgSuite {
    type Adapter = PgConfig;
    type Conn = PgPooled;

    async fn require() {
        require_pg().await;
    }

    fn server_vars(prefix: &str) -> Vec<(String, String)> {
        vec![(format!("{prefix}_URL"), url())]
    }

    fn refused() -> PgConfig {
        // Role aquifer_pw has password `aquifer-secret` and scram auth over 127.0.0.1 (scripts/services/10-postgres.sh).
        PgConfig::from_url(aquifer_testing::servers::postgres_url_as("aquifer_pw:not-the-password"))
    }

    /// The test server trusts loopback connections: any password connects.
    async fn secret_config(_: &str) -> Result<Secret<PgConfig>, Unsupported> {
        let secret = "Sekr3t-pg-7f1c".to_owned();
        let config = PgConfig::from_url(aquifer_testing::servers::postgres_url_as(&format!("postgres:{secret}")));
        Ok(Secret { config, secret })
    }

    fn private_server() -> Result<Private<PgConfig>, Unsupported> {
        let server = PrivatePostgres::start().unwrap_or_else(|e| panic!("{e}"));
        let url = server.url();
        let config = PgConfig::from_url(&url);
        let sessions = move |app: &str| -> BoxFuture<i64> { Box::pin(sessions(url.clone(), app.to_owned())) };
        Ok(Private { server: Box::new(server), config, sessions: Some(Box::new(sessions)) })
    }

    fn metered(config: &PgConfig, meter: Meter) -> Result<PgPool, PgStartError> {
        Ok(config.builder()?.meter(meter).build()?.into())
    }

    async fn checkout(pool: &PgPool) -> Result<PgPooled, CallError> {
        pool.get().await.map_err(|e| classify(e.into()))
    }

    async fn answer(conn: &mut PgPooled, n: i64) -> Result<i64, CallError> {
        sqlx::query_scalar("SELECT $1::int8 + 1").bind(n).fetch_one(&mut **conn).await.map_err(backend)
    }

    async fn fetch(pool: &PgPool, n: i64) -> Result<i64, CallError> {
        let (got,) = pool.fetch_one(|| sqlx::query("SELECT $1::int8 + 1").bind(n)).await.map_err(classify)?;
        Ok(got)
    }

    async fn sleep(pool: &PgPool, ms: u64) -> Result<(), CallError> {
        let seconds = ms as f64 / 1000.0;
        pool.execute(|| sqlx::query("SELECT pg_sleep($1)").bind(seconds)).await.map(drop).map_err(classify)
    }

    async fn fail(pool: &PgPool) -> Vec<BoxError> {
        let nonsense = pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT nonsense")).await;
        suite::failures([nonsense, pool.fetch_one::<(i32,), _>(|| sqlx::query("SELECT 1 WHERE false")).await])
    }

    async fn setup(pool: &PgPool) {
        // Concurrent CREATE TABLE IF NOT EXISTS of test processes can collide in the catalog: then it exists.
        if let Err(e) = sqlx::raw_sql("CREATE TABLE IF NOT EXISTS aq_suite (marker text)").execute(pool).await {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('aq_suite')::text").fetch_one(pool).await.unwrap();
            assert!(exists.is_some(), "creating aq_suite: {e}");
        }
    }

    async fn write(pool: &PgPool, marker: &str, how: Write) -> Result<(), CallError> {
        const INSERT: &str = "INSERT INTO aq_suite VALUES ($1)";
        match how {
            Write::Autocommit => pool.execute(|| sqlx::query(INSERT).bind(marker)).await.map(drop),
            Write::Transaction => {
                let marker = marker.to_owned();
                pool.transaction(|tx| {
                    let marker = marker.clone();
                    Box::pin(async move { sqlx::query(INSERT).bind(marker).execute(&mut *tx).await.map(drop) })
                })
                .await
            }
        }
        .map_err(classify)
    }

    async fn write_uncommitted(pool: &PgPool, marker: &str) {
        let mut conn = pool.get().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO aq_suite VALUES ($1)").bind(marker).execute(&mut *tx).await.unwrap();
        // Dropped without commit: sqlx queues the ROLLBACK; the pool must send it before reuse.
        drop(tx);
    }

    async fn count(pool: &PgPool, marker: &str) -> i64 {
        let q = || sqlx::query("SELECT count(*) FROM aq_suite WHERE marker = $1").bind(marker);
        pool.fetch_one::<(i64,), _>(q).await.unwrap().0
    }

    async fn kill_sessions(pool: &PgPool) -> Result<usize, Unsupported> {
        Ok(terminate(&mut admin().await, pool.name()).await as usize)
    }

    async fn count_sessions(pool: &PgPool) -> Result<i64, Unsupported> {
        Ok(backends(&mut admin().await, pool.name()).await)
    }

    const BAD_VALUES: &'static [(&'static str, &'static str)] = &[
        ("STATEMENT_TIMEOUT", "25d"),
        ("STATEMENT_TIMEOUT", "0"),
        ("IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "30days"),
        ("DRAIN_TIMEOUT", "0ms"),
        ("APPLICATION_NAME", "ünïcode"),
        ("PGBOUNCER", "perhaps"),
        ("STATEMENT_CACHE_CAPACITY", "-3"),
    ];

    const URL_PARAMS: &'static [&'static str] =
        &["sslmode", "application_name", "options", "dbname", "statement-cache-capacity"];

    fn serde() -> Result<Serde<PgConfig>, Unsupported> {
        let fields = &["statement_timeout", "drain_timeout", "application_name", "pgbouncer", "pool"];
        Ok(Serde::both(r#""url": "postgres://app:{secret}@db/x""#, fields))
    }
}

/// Sessions of `app` on a private server, seen from a connection of its own.
async fn sessions(url: String, app: String) -> i64 {
    let mut admin = PgConnection::connect(&format!("{url}&application_name=aq_admin")).await.expect("admin");
    let n = backends(&mut admin, &app).await;
    admin.close().await.ok();
    n
}

aquifer_testing::behaviour_suite!(PgSuite);
