//! The tenant guarantee on a real server: a table under a row-level security policy on
//! `current_setting('app.tenant_id')`, read by a non-superuser role (superusers bypass RLS), 10 tenants and
//! 32 tasks making interleaved requests through both forms of [`PgSession`] (per transaction: the helpers,
//! sqlx's `Executor` and `begin` on the scoped pool; per checkout), with cancellations at random await points and panics in user code. No request may read a row
//! of another tenant, and a request without a context must find no tenant and no role left on its
//! connection. The same runs through PgBouncer in transaction mode (per transaction only).
//!
//! `AQUIFER_TENANT_REQUESTS` scales the number of requests (default 10,000, each run).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aquifer_core::{BoxError, HookFailure, SessionContext};
use aquifer_postgres::sqlx::postgres::PgConnection;
use aquifer_postgres::sqlx::{self, Connection, Row};
use aquifer_postgres::{PgConfig, PgPool, PgPoolError, PgSession};
use aquifer_testing::TenantTally as Tally;
use common::*;

const TENANTS: i32 = 10;
const ROWS_PER_TENANT: i64 = 5;
const TASKS: usize = 32;

/// A table with RLS and a role to read it, unique to this test and process; dropped by `cleanup`.
struct Fixture {
    table: String,
    role: String,
}

impl Fixture {
    async fn create(tag: &str) -> Self {
        let f = Fixture {
            table: format!("aq_tenant_notes_{tag}_{}", std::process::id()),
            role: format!("aq_tenant_{tag}_{}", std::process::id()),
        };
        let mut admin = admin().await;
        f.drop_objects(&mut admin).await;
        let (t, r) = (&f.table, &f.role);
        let sql = format!(
            "CREATE ROLE {r} NOLOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE TABLE {t} (tenant_id int NOT NULL, body text NOT NULL); \
             INSERT INTO {t} SELECT tenant, 'note ' || n FROM generate_series(1, {TENANTS}) tenant, \
                 generate_series(1, {ROWS_PER_TENANT}) n; \
             ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY tenant_rows ON {t} USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::int); \
             GRANT SELECT ON {t} TO {r};"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.expect("create the RLS fixture");
        f
    }

    async fn drop_objects(&self, admin: &mut PgConnection) {
        let (t, r) = (&self.table, &self.role);
        let sql = format!(
            "DROP TABLE IF EXISTS {t}; \
             DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{r}') THEN \
                 EXECUTE 'DROP OWNED BY {r}'; EXECUTE 'DROP ROLE {r}'; END IF; END $$;"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(admin).await.expect("drop the RLS fixture");
    }

    async fn cleanup(self) {
        let mut admin = admin().await;
        self.drop_objects(&mut admin).await;
    }

    fn session(&self, tenant: i32) -> PgSession {
        PgSession::new().role(self.role.clone()).unwrap().set("app.tenant_id", tenant.to_string()).unwrap()
    }

    fn select(&self) -> String {
        format!("SELECT tenant_id FROM {}", self.table)
    }
}

fn requests(default: u64) -> u64 {
    std::env::var("AQUIFER_TENANT_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Checks the rows a tenant's request read.
fn check_rows(tally: &Tally, tenant: i32, rows: &[i32]) {
    let foreign = rows.iter().filter(|t| **t != tenant).count() as u64;
    tally.leaked_rows.fetch_add(foreign, Ordering::Relaxed);
    assert_eq!(foreign, 0, "tenant {tenant} read rows of {rows:?}");
    assert_eq!(rows.len() as i64, ROWS_PER_TENANT, "tenant {tenant} read {rows:?}");
}

/// A request without a context: no tenant and no role may be left on its connection.
async fn check_clean(pool: &PgPool, tally: &Tally) {
    let (tenant, role): (Option<String>, String) = pool
        .fetch_one(|| sqlx::query("SELECT current_setting('app.tenant_id', true), current_user::text"))
        .await
        .expect("a plain request");
    if tenant.as_deref().is_some_and(|t| !t.is_empty()) || role != "postgres" {
        tally.leaked_settings.fetch_add(1, Ordering::Relaxed);
        panic!("a request without a context found tenant {tenant:?}, role {role}");
    }
}

/// One request of kind `kind` for `tenant`; `per_checkout` allows the session-level form.
async fn request(pool: PgPool, fx: Arc<Fixture>, tally: Arc<Tally>, tenant: i32, kind: u64, per_checkout: bool) {
    let sql = fx.select();
    match kind {
        // Per transaction, through the helpers.
        0 | 1 => {
            let rows: Vec<(i32,)> = pool
                .with_session(fx.session(tenant))
                .fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())))
                .await
                .expect("scoped fetch_all");
            check_rows(&tally, tenant, &rows.into_iter().map(|r| r.0).collect::<Vec<_>>());
        }
        // Per transaction, a transaction of several statements.
        2 => {
            let rows = pool
                .with_session(fx.session(tenant))
                .transaction(|conn| {
                    let sql = sql.clone();
                    Box::pin(async move {
                        let a: Vec<i32> =
                            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_all(&mut *conn).await?;
                        tokio::task::yield_now().await;
                        let b: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
                        Ok([a, b])
                    })
                })
                .await
                .expect("scoped transaction");
            for rows in rows {
                check_rows(&tally, tenant, &rows);
            }
        }
        // Per checkout, raw driver access; the caller also changes the tenant behind the context's back,
        // which the reset on return clears too.
        3 | 4 if per_checkout => {
            let mut conn = pool.get_session(&fx.session(tenant)).await.expect("get_session");
            let rows: Vec<i32> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await.expect("raw select");
            check_rows(&tally, tenant, &rows);
            if kind == 4 {
                sqlx::raw_sql("SELECT set_config('app.tenant_id', '999', false)").execute(&mut *conn).await.unwrap();
            }
        }
        // Through sqlx's Executor on the scoped pool (per transaction).
        5 => {
            let scoped = pool.with_session(fx.session(tenant));
            let rows: Vec<i32> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&scoped).await.expect("executor fetch_all");
            check_rows(&tally, tenant, &rows);
        }
        // A stream through the Executor, dropped after its first row: the transaction is left open and
        // rolled back by the pool.
        6 => {
            use futures_util::TryStreamExt;
            let scoped = pool.with_session(fx.session(tenant));
            let mut rows = sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(sql)).fetch(&scoped);
            let first = rows.try_next().await.expect("executor stream").expect("a row");
            check_rows(&tally, tenant, &[first; ROWS_PER_TENANT as usize]);
        }
        // sqlx's begin on the scoped pool; committed, or dropped open. Unnamed statements, as raw
        // access behind PgBouncer needs (docs/postgres.md).
        7 => {
            let mut tx = pool.with_session(fx.session(tenant)).begin().await.expect("scoped begin");
            let rows: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .expect("select in tx");
            check_rows(&tally, tenant, &rows);
            if tenant % 2 == 0 {
                tx.commit().await.expect("commit");
            }
        }
        // No context.
        _ => check_clean(&pool, &tally).await,
    }
}

async fn run_workload(pool: &PgPool, fx: &Arc<Fixture>, total: u64, per_checkout: bool) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (pool, fx, tally) = (pool.clone(), Arc::clone(fx), Arc::clone(&tally));
        let share = total / TASKS as u64 + u64::from((task as u64) < total % TASKS as u64);
        tasks.push(tokio::spawn(async move {
            let mut rng = aquifer_testing::TaskRng::for_task(task as u64);
            for _ in 0..share {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let tenant = rng.next(TENANTS as u64) as i32 + 1;
                let kind = rng.next(9);
                let req = request(pool.clone(), Arc::clone(&fx), Arc::clone(&tally), tenant, kind, per_checkout);
                // Cancelled at whatever await point the deadline finds it (checkout, set, query, commit), or user
                // code panicking while it holds the connection, or run to its end.
                tally.count(aquifer_testing::run_with_random_fate(&mut rng, req).await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_another_tenants_rows_directly() {
    let fx = Arc::new(Fixture::create("direct").await);
    let mut c = config("tenant_direct");
    c.pool.max_size = 8;
    let pool = c.connect().await.expect("pool");
    let total = requests(10_000);
    let tally = run_workload(&pool, &fx, total, true).await;
    // After everything settled, every connection is clean.
    for _ in 0..pool.state().max_size {
        check_clean(&pool, &tally).await;
    }
    tally.assert_no_leak(total);
    pool.close().await;
    Arc::into_inner(fx).expect("no task holds the fixture").cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_another_tenants_rows_through_pgbouncer_in_transaction_mode() {
    aquifer_testing::require_server("PgBouncer", &aquifer_testing::servers::pgbouncer_addr(), SCRIPT).await;
    let fx = Arc::new(Fixture::create("bouncer").await);
    let mut c = PgConfig::from_url(aquifer_testing::servers::pgbouncer_url());
    c.pool.name = Some(unique("tenant_bouncer"));
    // More clients than PgBouncer's 10 server connections: transactions of different tenants interleave on
    // the same server connections.
    c.pool.max_size = 24;
    c.pgbouncer = true;
    let pool = c.connect().await.expect("pool through PgBouncer");
    assert_every_per_checkout_door_refused(&pool, &fx).await;
    let total = requests(10_000);
    let tally = run_workload(&pool, &fx, total, false).await;
    tally.assert_no_leak(total);
    pool.close().await;
    Arc::into_inner(fx).expect("no task holds the fixture").cleanup().await;
}

/// A context that is not a `PgSession`: the caller's own, setting the tenant at session level.
struct RawTenant(i32);

#[aquifer_core::async_trait]
impl SessionContext<PgConnection> for RawTenant {
    async fn apply(&self, conn: &mut PgConnection) -> Result<(), BoxError> {
        sqlx::query("SELECT set_config('app.tenant_id', $1, false)").bind(self.0.to_string()).execute(conn).await?;
        Ok(())
    }

    async fn clear(&self, conn: &mut PgConnection) -> Result<(), BoxError> {
        sqlx::raw_sql("RESET ALL").execute(conn).await?;
        Ok(())
    }
}

/// Behind PgBouncer in transaction mode, session-level state would stay on a server connection other
/// clients share: every door to a per-checkout context is refused before a checkout, the engine's own
/// (`get_with`, `get_timeout_with`, with a context of the caller's making) as well as `get_session`.
async fn assert_every_per_checkout_door_refused(pool: &PgPool, fx: &Fixture) {
    let before = pool.stats();
    let doors: [(&str, Result<aquifer_postgres::PgPooled, PgPoolError>); 4] = [
        ("get_session", pool.get_session(&fx.session(1)).await),
        ("get_with", pool.get_with(Arc::new(fx.session(2))).await),
        ("get_timeout_with", pool.get_timeout_with(Duration::from_secs(5), Arc::new(fx.session(3))).await),
        ("get_with, own context", pool.get_with(Arc::new(RawTenant(4))).await),
    ];
    for (door, result) in doors {
        let err = result.map(|_| ()).expect_err(door);
        assert!(
            matches!(&err, PgPoolError::Hook { cause: HookFailure::Refused(_), .. })
                && err.to_string().contains("PgBouncer in transaction mode"),
            "{door}: {err}"
        );
    }
    let after = pool.stats();
    assert_eq!(after.acquired, before.acquired, "a refused context checked a connection out");
    assert_eq!(after.closed_hook_failed, before.closed_hook_failed);
}

/// The refusal holds on a pool of its own, before anything else ran on it (no connection ever opened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_checkout_context_is_refused_behind_pgbouncer_through_every_door() {
    aquifer_testing::require_server("PgBouncer", &aquifer_testing::servers::pgbouncer_addr(), SCRIPT).await;
    let fx = Fixture::create("refused").await;
    let mut c = PgConfig::from_url(aquifer_testing::servers::pgbouncer_url());
    c.pool.name = Some(unique("tenant_refused"));
    c.pgbouncer = true;
    let pool = c.connect_lazy().expect("lazy pool through PgBouncer");
    assert_every_per_checkout_door_refused(&pool, &fx).await;
    assert_eq!(pool.state().size, 0, "a refused context opened a connection");
    // The per-transaction form works on the same pool.
    let rows: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(fx.select()))
        .fetch_all(&pool.with_session(fx.session(5)))
        .await
        .expect("per transaction through PgBouncer");
    check_rows(&Tally::default(), 5, &rows);
    pool.close().await;
    fx.cleanup().await;
}

/// A connection whose reset on return fails is discarded: the caller left it in a failed transaction opened
/// with a raw `BEGIN` (which the pool cannot see), so `RESET ALL` fails; or its backend was terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_reset_fails_is_discarded() {
    let fx = Fixture::create("reset").await;
    let mut c = config("tenant_reset");
    c.pool.max_size = 1;
    let pool = c.connect().await.expect("pool");
    // 1. An aborted raw transaction: RESET ALL fails with 25P02.
    let mut conn = pool.get_session(&fx.session(3)).await.unwrap();
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    // Two exchanges, each read to its end: the pool sees a clean protocol state and no sqlx transaction.
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.unwrap();
    let _ = sqlx::query("SELECT 1/0").execute(&mut *conn).await.unwrap_err();
    // Read the error's ReadyForQuery, so the return finds nothing owed and no reset is needed.
    Connection::flush(&mut *conn).await.unwrap();
    drop(conn);
    assert!(
        eventually(Duration::from_secs(5), || async { pool.stats().closed_hook_failed == 1 }).await,
        "{:?}",
        pool.stats()
    );
    let mut next = pool.get().await.unwrap();
    let row = sqlx::raw_sql("SELECT pg_backend_pid(), current_setting('app.tenant_id', true), current_user::text")
        .fetch_one(&mut *next)
        .await
        .unwrap();
    let (pid, tenant, user): (i32, Option<String>, String) = (row.get(0), row.get(1), row.get(2));
    assert_ne!(pid, first, "the connection whose reset failed was reused");
    assert!(tenant.as_deref().unwrap_or("").is_empty() && user == "postgres", "{tenant:?} {user}");
    drop(next);

    // 2. The backend is terminated while the connection is lent: the reset cannot run.
    let mut conn = pool.get_session(&fx.session(4)).await.unwrap();
    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    let mut admin = admin().await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(second).execute(&mut admin).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    let mut next = pool.get().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *next).await.unwrap();
    assert_ne!(pid, second);
    drop(next);
    admin.close().await.ok();
    pool.close().await;
    fx.cleanup().await;
}
