//! A batch never mixes tenants, on the real server: a table under a row-level security policy on
//! `current_setting('app.tenant_id')` whose ids repeat across tenants (id 7 of tenant 1 is not id 7 of
//! tenant 2), loaded through a [`ContextBatchLoader`] whose context is the tenant and whose loader runs each
//! batch through aquifer-postgres with that tenant applied per transaction. Tenants interleave on 32 tasks,
//! loads are cancelled at random await points (a cancelled creator hands its batch over mid-flight), and
//! every value a load gets must be its own tenant's: a batch or a cache shared across tenants would answer
//! one tenant's id with another's row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aquifer_batch::{ContextBatchLoader, ContextLoader};
use aquifer_postgres::sqlx::{self, AssertSqlSafe, Connection, postgres::PgConnection};
use aquifer_postgres::{PgConfig, PgOperationError, PgPool, PgSession};
use aquifer_testing::{TaskRng, TenantTally};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

const TENANTS: u64 = 10;
const IDS: u64 = 20;
const TASKS: u64 = 32;

/// The RLS table and the role that reads it, unique to this process.
struct Fixture {
    table: String,
    role: String,
}

async fn admin() -> PgConnection {
    aquifer_testing::require_server(
        "PostgreSQL",
        &aquifer_testing::servers::postgres_addr(),
        aquifer_testing::servers::SCRIPT,
    )
    .await;
    PgConnection::connect(&aquifer_testing::servers::postgres_url()).await.expect("admin connection")
}

impl Fixture {
    async fn create(tag: &str) -> Self {
        let pid = std::process::id();
        let f = Fixture { table: format!("aq_batch_tenant_{tag}_{pid}"), role: format!("aq_batch_tenant_{tag}_{pid}") };
        let mut admin = admin().await;
        f.drop_objects(&mut admin).await;
        let (t, r) = (&f.table, &f.role);
        let sql = format!(
            "CREATE ROLE {r} NOLOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE TABLE {t} (tenant_id int NOT NULL, id int NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id)); \
             INSERT INTO {t} SELECT tenant, id, 't' || tenant || ':' || id \
                 FROM generate_series(1, {TENANTS}) tenant, generate_series(1, {IDS}) id; \
             ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY tenant_rows ON {t} USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::int); \
             GRANT SELECT ON {t} TO {r};"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await.expect("create the RLS fixture");
        f
    }

    async fn drop_objects(&self, admin: &mut PgConnection) {
        let (t, r) = (&self.table, &self.role);
        let sql = format!(
            "DROP TABLE IF EXISTS {t}; \
             DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{r}') THEN \
                 EXECUTE 'DROP OWNED BY {r}'; EXECUTE 'DROP ROLE {r}'; END IF; END $$;"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(admin).await.expect("drop the RLS fixture");
    }

    async fn cleanup(self) {
        self.drop_objects(&mut admin().await).await;
    }
}

/// Bodies by id as a tenant sees them: one `= ANY($1)` statement per batch, the tenant applied for that
/// statement's transaction only. Records the context and keys of every batch.
struct Bodies {
    pool: PgPool,
    table: String,
    role: String,
    /// Closed while a test holds batches inside `load`.
    gate: Semaphore,
    calls: Mutex<Vec<(u64, Vec<i32>)>>,
}

impl ContextLoader for Bodies {
    type Context = u64;
    type Key = i32;
    type Value = String;
    type Error = PgOperationError;

    async fn load(&self, tenant: &u64, ids: &[i32]) -> Result<HashMap<i32, String>, PgOperationError> {
        self.calls.lock().push((*tenant, ids.to_vec()));
        drop(self.gate.acquire().await.expect("the gate is never closed"));
        let session = PgSession::new()
            .role(self.role.clone())
            .and_then(|s| s.set("app.tenant_id", tenant.to_string()))
            .expect("a valid session");
        let sql = format!("SELECT id, body FROM {} WHERE id = ANY($1)", self.table);
        let ids = ids.to_vec();
        let rows: Vec<(i32, String)> = self
            .pool
            .with_session(session)
            .fetch_all(|| sqlx::query(AssertSqlSafe(sql.clone())).bind(ids.clone()))
            .await?;
        Ok(rows.into_iter().collect())
    }
}

async fn bodies(fx: &Fixture, test: &str, gate_open: bool) -> Bodies {
    let mut c = PgConfig::from_url(aquifer_testing::servers::postgres_url());
    c.pool.name = Some(format!("aq_batch_{test}_{}", std::process::id()));
    c.pool.max_size = 8;
    let pool = c.connect().await.expect("pool");
    let gate = Semaphore::new(if gate_open { Semaphore::MAX_PERMITS } else { 0 });
    Bodies { pool, table: fx.table.clone(), role: fx.role.clone(), gate, calls: Mutex::default() }
}

fn expected(tenant: u64, id: i32) -> String {
    format!("t{tenant}:{id}")
}

/// Counts the values of another tenant (or missing ones) in what `tenant` got for `ids`.
fn check(tally: &TenantTally, tenant: u64, ids: &[i32], got: &[Option<String>]) {
    let wrong: Vec<_> =
        ids.iter().zip(got).filter(|(id, v)| v.as_deref() != Some(expected(tenant, **id).as_str())).collect();
    tally.leaked_rows.fetch_add(wrong.len() as u64, Ordering::Relaxed);
    assert!(wrong.is_empty(), "tenant {tenant} got {wrong:?}");
}

fn requests() -> u64 {
    std::env::var("AQUIFER_TENANT_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_tenants_never_share_a_batch_or_a_value() {
    let fx = Fixture::create("interleaved").await;
    // Cache off: every load goes through a batch (in flight or new), where a mix would happen.
    let loader = ContextBatchLoader::shared(bodies(&fx, "interleaved", true).await);
    let tally = Arc::new(TenantTally::default());
    let total = requests();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (loader, tally) = (loader.clone(), Arc::clone(&tally));
        let share = total / TASKS + u64::from(task < total % TASKS);
        tasks.push(tokio::spawn(async move {
            let mut rng = TaskRng::for_task(task);
            for _ in 0..share {
                tally.requests.fetch_add(1, Ordering::Relaxed);
                let tenant = rng.next(TENANTS) + 1;
                // Few distinct ids, so tenants ask for the same ids at the same time.
                let ids: Vec<i32> = (0..=rng.next(3)).map(|_| rng.next(6) as i32 + 1).collect();
                let (loader, tally2) = (loader.clone(), Arc::clone(&tally));
                let request = async move {
                    let got = if ids.len() == 1 {
                        vec![loader.load(&tenant, ids[0]).await.expect("load")]
                    } else {
                        loader.load_many(&tenant, ids.clone()).await.expect("load_many")
                    };
                    check(&tally2, tenant, &ids, &got);
                };
                tally.count(aquifer_testing::run_with_random_fate(&mut rng, request).await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a task failed its checks");
    }
    tally.assert_no_leak(total);
    let calls = loader.loader().calls.lock().clone();
    let keys: usize = calls.iter().map(|(_, k)| k.len()).sum();
    eprintln!("{} batches for {keys} keys over {} contexts", calls.len(), loader.contexts());
    assert!(calls.iter().any(|(_, k)| k.len() > 1), "no batch coalesced two keys: the test proves nothing");
    assert_eq!(loader.contexts() as u64, TENANTS);
    loader.loader().pool.close().await;
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_cancelled_mid_batch_hands_its_batch_to_its_own_tenant_only() {
    let fx = Fixture::create("cancelled").await;
    let loader = ContextBatchLoader::new(bodies(&fx, "cancelled", false).await);
    let spawn = |tenant: u64, ids: Vec<i32>| {
        let loader = loader.clone();
        tokio::spawn(async move { loader.load_many(&tenant, ids).await })
    };
    // Tenant 1's first load creates its batch; tenant 1's second load and tenant 2's load ask for the
    // same ids while it is held inside `load` by the gate.
    let creator = spawn(1, vec![1, 2, 3]);
    let wait_calls = |n: usize| {
        let loader = loader.clone();
        async move {
            for _ in 0..5_000 {
                if loader.loader().calls.lock().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("{n} batches never reached the loader: {:?}", loader.loader().calls.lock());
        }
    };
    wait_calls(1).await;
    let same_tenant = spawn(1, vec![2, 3]);
    let other_tenant = spawn(2, vec![2, 3]);
    wait_calls(2).await;
    // The creator is cancelled while its batch is in the loader: the batch moves to a task of its own.
    creator.abort();
    assert!(creator.await.unwrap_err().is_cancelled());
    loader.loader().gate.add_permits(Semaphore::MAX_PERMITS);

    let tally = TenantTally::default();
    let got: Vec<Option<String>> = same_tenant.await.unwrap().expect("same tenant");
    check(&tally, 1, &[2, 3], &got);
    let got = other_tenant.await.unwrap().expect("other tenant");
    check(&tally, 2, &[2, 3], &got);
    // Tenant 1's cache answers tenant 1 only; tenant 2's ids 1 come from a batch of tenant 2.
    let (one, two) = tokio::join!(loader.load(&1, 1), loader.load(&2, 1));
    assert_eq!(one.expect("tenant 1").as_deref(), Some("t1:1"));
    assert_eq!(two.expect("tenant 2").as_deref(), Some("t2:1"));

    let calls = loader.loader().calls.lock().clone();
    let asked: HashMap<u64, HashSet<i32>> =
        HashMap::from([(1, HashSet::from([1, 2, 3])), (2, HashSet::from([1, 2, 3]))]);
    for (tenant, keys) in &calls {
        assert!(keys.iter().all(|k| asked[tenant].contains(k)), "a batch of tenant {tenant} had {keys:?}");
    }
    let tenant_two: Vec<_> = calls.iter().filter(|(t, _)| *t == 2).collect();
    assert_eq!(tenant_two.len(), 2, "tenant 2 was answered from tenant 1's batch or cache: {calls:?}");
    assert!(calls.iter().filter(|(t, _)| *t == 1).count() == 1, "tenant 1's later load came from its cache: {calls:?}");
    loader.loader().pool.close().await;
    fx.cleanup().await;
}
