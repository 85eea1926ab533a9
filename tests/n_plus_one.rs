//! The N+1 detector on real pools: what it reports (and what it leaves alone) under random interleavings of
//! per-key calls, batched queries and BatchLoader loads; deny mode; sqlx's executor API; the per-request scope
//! of aquifer-http.
//!
//! SQLite runs in-process; the PostgreSQL tests need the project's server (`bash scripts/dev-services.sh start`).

use std::collections::HashMap;
use std::panic::Location;
use std::sync::Arc;

use aquifer::n_plus_one::{NPlusOneMode, Scope};
use aquifer_batch::{BatchLoader, Loader};
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_sqlite::{SqliteConfig, SqliteOperationError, SqlitePool};
use aquifer_testing::servers;
use futures_util::future::join_all;
use proptest::prelude::*;

/// An SQLite pool on a fresh file with `items(id, name)` holding ids 0..100.
async fn items(dir: &tempfile::TempDir) -> SqlitePool {
    let path = dir.path().join("items.db");
    let pool = SqliteConfig::new(path.to_str().expect("a UTF-8 path")).connect().await.expect("sqlite pool");
    pool.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)", ()).await.expect("create");
    pool.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99) \
         INSERT INTO items SELECT i, 'item ' || i FROM n",
        (),
    )
    .await
    .expect("fill");
    pool
}

/// One item by key: the per-key call of the tests, from one call site (returned with the result).
async fn by_key(pool: &SqlitePool, id: i64) -> (Result<Option<(String,)>, SqliteOperationError>, u32) {
    let line = Location::caller().line() + 1;
    let row = pool.fetch_optional("SELECT name FROM items WHERE id = ?1", (id,)).await;
    (row, line)
}

/// Many items in one statement, with a list parameter.
async fn by_keys(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<(i64, String)>, SqliteOperationError> {
    let ids = serde_json::to_string(ids).expect("json");
    pool.fetch_all("SELECT id, name FROM items WHERE id IN (SELECT value FROM json_each(?1))", (ids,)).await
}

/// A BatchLoader of item names over [`by_keys`].
struct Names(SqlitePool);

impl Loader for Names {
    type Key = i64;
    type Value = String;
    type Error = SqliteOperationError;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, String>, SqliteOperationError> {
        Ok(by_keys(&self.0, ids).await?.into_iter().collect())
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One per-key call.
    PerKey(i64),
    /// One statement for many keys.
    Batched(Vec<i64>),
    /// Concurrent loads of a BatchLoader, coalesced into one statement per batch.
    Loader(Vec<i64>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..100_i64).prop_map(Op::PerKey),
        prop::collection::vec(0..100_i64, 1..20).prop_map(Op::Batched),
        prop::collection::vec(0..100_i64, 1..20).prop_map(Op::Loader),
    ]
}

/// Runs `ops` in one scope and returns its findings as `(line, count)`, and the per-key call's line.
async fn run_ops(pool: &SqlitePool, ops: Vec<Op>) -> (Vec<(u32, u32)>, u32) {
    let loader = BatchLoader::new(Names(pool.clone()));
    let (line, found) = Scope::new()
        .run_and_report(async {
            let mut line = 0;
            for op in ops {
                match op {
                    Op::PerKey(id) => {
                        let (row, at) = by_key(pool, id).await;
                        row.expect("per-key call");
                        line = at;
                    }
                    Op::Batched(ids) => {
                        by_keys(pool, &ids).await.expect("batched call");
                    }
                    Op::Loader(ids) => {
                        for got in join_all(ids.into_iter().map(|id| loader.load(id))).await {
                            got.expect("loader");
                        }
                    }
                }
            }
            line
        })
        .await;
    (found.into_iter().map(|f| (f.line, f.count)).collect(), line)
}

#[test]
fn only_per_key_calls_repeated_one_after_another_are_reported_whatever_the_interleaving() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = rt.block_on(items(&dir));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
    runner
        .run(&prop::collection::vec(op(), 0..40), |ops| {
            let per_key = ops.iter().filter(|o| matches!(o, Op::PerKey(_))).count() as u32;
            let (found, line) = rt.block_on(run_ops(&pool, ops));
            let expected = if per_key >= 5 { vec![(line, per_key)] } else { Vec::new() };
            prop_assert_eq!(found, expected);
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_mode_fails_the_call_that_makes_the_loop_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = items(&dir).await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let outcomes = aquifer::n_plus_one::scope(async {
        let mut outcomes = Vec::new();
        for id in 0..6 {
            outcomes.push(by_key(&pool, id).await.0);
        }
        outcomes
    })
    .await;
    assert!(outcomes[..4].iter().all(Result::is_ok), "the first four calls run: {outcomes:?}");
    let e = outcomes[4].as_ref().expect_err("the fifth call makes the loop");
    let finding = &e.n_plus_one_error().expect("an N+1 error").finding;
    assert_eq!((finding.count, finding.shape.as_str()), (5, "SELECT name FROM items WHERE id = ?"));
    assert!(finding.file.ends_with("tests/n_plus_one.rs"), "{finding:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn off_mode_and_calls_outside_a_scope_report_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = items(&dir).await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    for id in 0..10 {
        by_key(&pool, id).await.0.expect("outside a scope nothing is watched");
    }
    pool.set_n_plus_one(NPlusOneMode::Off);
    let (_, found) = Scope::new()
        .run_and_report(async {
            for id in 0..10 {
                by_key(&pool, id).await.0.expect("mode off");
            }
        })
        .await;
    assert!(found.is_empty(), "{found:?}");
}

async fn postgres() -> PgPool {
    let url = servers::postgres_url();
    PgConfig::from_url(&url)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}; start it with `bash scripts/dev-services.sh start`"))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_deny_mode_fails_a_helper_loop() {
    let pool = postgres().await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let result = aquifer::n_plus_one::scope(async {
        for i in 0..10_i64 {
            let _: (i64,) = pool.fetch_one(|| sqlx::query("SELECT $1::int8").bind(i)).await?;
        }
        Ok::<(), aquifer_postgres::PgOperationError>(())
    })
    .await;
    let e = result.expect_err("the loop is denied");
    let finding = &e.n_plus_one_error().expect("an N+1 error").finding;
    assert_eq!((finding.count, finding.shape.as_str()), (5, "SELECT ?::int8"));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sqlx_executor_loop_is_reported_at_the_callers_line() {
    let pool = postgres().await;
    let (line, found) = Scope::new()
        .run_and_report(async {
            let mut line = 0;
            for i in 0..7_i64 {
                line = Location::caller().line() + 1;
                let _: (i64,) = sqlx::query_as("SELECT $1::int8 + 1").bind(i).fetch_one(&pool).await.expect("query");
            }
            line
        })
        .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].count, found[0].shape.as_str()), (7, "SELECT ?::int8 + ?"));
    assert!(found[0].file.ends_with("tests/n_plus_one.rs"), "{:?}", found[0]);
    assert_eq!(found[0].line, line, "{:?}", found[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_layer_opens_one_scope_per_request() {
    use axum::routing::get;
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = items(&dir).await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let state = Arc::new(pool);
    // `/calls/4`: four per-key calls, under the threshold in each request's own scope (eight in a row over two
    // requests); `/calls/6`: a loop within one request, denied at its fifth call.
    let app = axum::Router::new()
        .route(
            "/calls/{n}",
            get(
                |axum::extract::State(pool): axum::extract::State<Arc<SqlitePool>>,
                 axum::extract::Path(n): axum::extract::Path<i64>| async move {
                    let in_scope = aquifer::n_plus_one::in_scope();
                    for id in 0..n {
                        if let Err(e) = by_key(&pool, id).await.0 {
                            return format!("call {}: {}", id + 1, e.n_plus_one_error().map_or(0, |e| e.finding.count));
                        }
                    }
                    format!("in scope: {in_scope}")
                },
            ),
        )
        .layer(aquifer_http::NPlusOneLayer::new())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |n: i64| async move {
        reqwest::get(format!("http://{addr}/calls/{n}")).await.expect("request").text().await.expect("body")
    };
    assert_eq!(get(4).await, "in scope: true");
    assert_eq!(get(4).await, "in scope: true");
    assert_eq!(get(6).await, "call 5: 5", "the loop inside one request is denied at its fifth call");
}
