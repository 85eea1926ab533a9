//! Shared by the integration tests: the server's URL, unique pool names, and an admin connection outside
//! any pool to watch `pg_stat_activity` and terminate backends.
#![allow(dead_code)]

use std::time::Duration;

use aquifer_postgres::sqlx::postgres::{PgConnection, Postgres};
use aquifer_postgres::sqlx::{self, Connection};
use aquifer_postgres::{PgConfig, PgPool};

pub use aquifer_testing::servers::SCRIPT;

/// The test server: `POSTGRES_URL`, or the project's (`aquifer_testing::servers`) without TLS (sslmode=prefer costs ~90 ms per connect on
/// loopback here, see docs/postgres.md).
pub fn url() -> String {
    std::env::var("POSTGRES_URL").unwrap_or_else(|_| aquifer_testing::servers::postgres_url())
}

/// Fails the test, naming the script that starts it, unless PostgreSQL answers.
pub async fn require_pg() {
    aquifer_testing::require_server("PostgreSQL", &aquifer_testing::servers::postgres_addr(), SCRIPT).await;
}

/// A name unique to this test and process, used as pool name and so as `application_name`.
pub fn unique(test: &str) -> String {
    format!("aq_pg_{test}_{}", std::process::id())
}

/// A config for the test server with a unique pool name; the acquire timeout stays generous so a hang shows
/// up as a failure rather than a pass.
pub fn config(test: &str) -> PgConfig {
    let mut c = PgConfig::from_url(url());
    c.pool.name = Some(unique(test));
    c.pool.acquire_timeout = Duration::from_secs(20);
    c
}

/// A pool on the test server named for `test` (see [`config`]) once `edit` has adjusted its configuration, and
/// that name, which is also its connections' `application_name`.
pub async fn connect(test: &str, edit: impl FnOnce(&mut PgConfig)) -> (PgPool, String) {
    require_pg().await;
    let mut config = config(test);
    edit(&mut config);
    let app = config.pool.name.clone().expect("config names the pool");
    (config.connect().await.expect("pool"), app)
}

/// The one value `sql` returns, read on a connection of `pool`.
pub async fn scalar<T>(pool: &PgPool, sql: &'static str) -> T
where
    T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(&mut *pool.get().await.unwrap()).await.unwrap()
}

/// Creates the table `aq_pg_<name>_<pid>` with `columns` through `executor`, dropping first the one a previous
/// run may have left; returns its name (unique to this process, so parallel test runs do not share it).
pub async fn fresh_table<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    name: &str,
    columns: &str,
) -> String {
    let table = unique(name);
    let sql = format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns})");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(executor).await.expect("fresh table");
    table
}

/// A connection of its own (not pooled) for watching and killing the pool's backends.
pub async fn admin() -> PgConnection {
    require_pg().await;
    let url = format!("{}&application_name=aq_pg_admin", url());
    PgConnection::connect(&url).await.expect("admin connection to the test server")
}

/// Backends whose application_name is `app`.
pub async fn backends(admin: &mut PgConnection, app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(admin)
        .await
        .expect("count backends")
}

/// Backends of `app` that are inside a transaction (idle in transaction, or active in one).
pub async fn backends_in_transaction(admin: &mut PgConnection, app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(app)
    .fetch_one(admin)
    .await
    .expect("count backends in transaction")
}

/// Terminates every backend of `app` (only this pool's); returns how many.
pub async fn terminate(admin: &mut PgConnection, app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()) t",
    )
    .bind(app)
    .fetch_one(admin)
    .await
    .expect("terminate backends")
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F: AsyncFnMut() -> bool>(within: Duration, check: F) -> bool {
    aquifer_testing::poll_until(within, Duration::from_millis(20), check).await
}

/// Waits up to `within` until no backend of `app` is inside a transaction; returns whether that happened.
pub async fn no_open_transaction(app: &str, within: Duration) -> bool {
    let mut admin = admin().await;
    eventually(within, async || backends_in_transaction(&mut admin, app).await == 0).await
}

/// Whether `conn` is inside a transaction block. A simple-protocol query runs as one message, so outside a
/// block its statement start is the transaction start; inside one, `now()` is the block's start.
pub async fn in_transaction(conn: &mut PgConnection) -> bool {
    use sqlx::Row;
    let row = sqlx::raw_sql("SELECT now() <> statement_timestamp()").fetch_one(conn).await.expect("probe");
    row.get::<bool, _>(0)
}
