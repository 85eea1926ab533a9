//! PostgreSQL without a hand-written loader: `PgRows` loaders and preloads, and the bulk helpers on the pool
//! (`PgBulk`). Statements are counted by a proxy reading the wire protocol (Execute and Query messages), never
//! by the code under test.

mod common;

use aquifer_batch::postgres::{Columns, PgBulk, PgRows, ROWS_PER_STATEMENT};
use aquifer_batch::{BatchError, BulkError, FetchRows, IdentError, PRELOAD_CHUNK};
use aquifer_core::OperationError;
use aquifer_core::n_plus_one::{self, NPlusOneMode};
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_testing::CountingProxy;
use common::resolve_in_one_request;
use sqlx::AssertSqlSafe;

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
struct Track {
    album_id: i32,
    title: String,
}

/// A pool of one connection through a counting proxy, and a fresh schema of 1,000 albums where album `a` has
/// `a % 4` tracks (so a quarter have none). Tables live in a schema of this test's own.
async fn music(test: &str) -> (PgPool, CountingProxy, String) {
    let proxy = common::postgres_proxy().await;
    let mut c = PgConfig::from_url(format!("postgres://postgres@{}/test?sslmode=disable", proxy.addr()));
    c.pool.name = Some(format!("aq_lookup_{test}"));
    c.pool.max_size = 1;
    let pool = c.connect().await.expect("pool through the counting proxy");
    let schema = format!("aq_lookup_{test}_{}", std::process::id());
    let sql = format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.albums (id int PRIMARY KEY, title text NOT NULL);
         CREATE TABLE {schema}.tracks (id bigserial PRIMARY KEY, album_id int NOT NULL, title text NOT NULL);
         INSERT INTO {schema}.albums SELECT a, 'album ' || a FROM generate_series(1, 1000) a;
         INSERT INTO {schema}.tracks (album_id, title)
           SELECT a, 'track ' || t || ' of ' || a FROM generate_series(1, 1000) a, generate_series(1, 3) t
           WHERE t <= a % 4 ORDER BY a, t;"
    );
    pool.transaction(|conn| {
        let sql = sql.clone();
        Box::pin(async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await.map(drop) })
    })
    .await
    .expect("music schema");
    (pool, proxy, schema)
}

async fn drop_schema(pool: &PgPool, schema: &str) {
    let sql = format!("DROP SCHEMA {schema} CASCADE");
    pool.execute(|| sqlx::query(AssertSqlSafe(sql.clone()))).await.expect("drop the schema");
    pool.close().await;
}

fn tracks(pool: &PgPool, schema: &str) -> PgRows<i32, Track> {
    PgRows::table(pool, &format!("{schema}.tracks"), "album_id", &["album_id", "title"]).expect("valid names")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_many_answers_a_thousand_concurrent_loads_with_one_statement() {
    let (pool, proxy, schema) = music("one_to_many").await;
    let loader = tracks(&pool, &schema).one_to_many(|t| t.album_id);
    let albums: Vec<i32> = (1..=1000).collect();

    let before = proxy.statements();
    let resolved = resolve_in_one_request(&loader, &albums).await;
    assert_eq!(proxy.statements() - before, 1, "every album's tracks in one statement");
    for (album, tracks) in resolved {
        let tracks = tracks.expect("load").unwrap_or_default();
        assert_eq!(tracks.len(), (album % 4) as usize, "album {album}");
        assert!(tracks.iter().all(|t| t.album_id == album && t.title.ends_with(&format!(" of {album}"))));
    }
    drop_schema(&pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_loads_a_row_per_key_and_none_for_a_missing_key() {
    let (pool, proxy, schema) = music("one_to_one").await;
    let albums = PgRows::<i32, (i32, String)>::table(&pool, &format!("{schema}.albums"), "id", &["id", "title"])
        .expect("valid names")
        .one_to_one(|a| a.0);

    let before = proxy.statements();
    let (found, missing) = tokio::join!(albums.load(7), albums.load(5000));
    assert_eq!(proxy.statements() - before, 1);
    assert_eq!(found.expect("load"), Some((7, "album 7".to_owned())));
    assert_eq!(missing.expect("load"), None);
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn preload_attaches_children_with_one_statement_per_chunk_of_keys() {
    let (pool, proxy, schema) = music("preload").await;
    // 3,000 parents over 2,500 distinct albums (those above 1,000 have no tracks): three chunks of keys, and
    // parents that share an album.
    struct Album {
        id: i32,
        tracks: Vec<Track>,
    }
    let mut parents: Vec<Album> = (0..3000).map(|i| Album { id: i % 2500 + 1, tracks: Vec::new() }).collect();
    let distinct: usize = 2500;

    let before = proxy.statements();
    tracks(&pool, &schema).preload(&mut parents, |a| a.id, |t| t.album_id, |a, t| a.tracks = t).await.expect("preload");
    assert_eq!(proxy.statements() - before, distinct.div_ceil(PRELOAD_CHUNK));
    assert_eq!(distinct.div_ceil(PRELOAD_CHUNK), 3);
    for album in &parents {
        let expected = if album.id <= 1000 { (album.id % 4) as usize } else { 0 };
        assert_eq!(album.tracks.len(), expected, "album {}", album.id);
        assert!(album.tracks.iter().all(|t| t.album_id == album.id));
    }
    assert_eq!(parents[2].tracks.len(), 3);
    assert_eq!(parents[2].tracks, parents[2502].tracks, "parents sharing a key get the same children");
    drop_schema(&pool, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_lookup_binds_the_keys_as_its_one_array_parameter() {
    let (pool, proxy, schema) = music("statement").await;
    // A join no table-and-column lookup can describe: track titles with their album's title.
    let sql = format!(
        "SELECT t.album_id, a.title || ': ' || t.title AS title FROM {schema}.tracks t \
         JOIN {schema}.albums a ON a.id = t.album_id WHERE t.album_id = ANY($1)"
    );
    let loader = PgRows::<i32, Track>::statement(&pool, sql).one_to_many(|t| t.album_id);
    let before = proxy.statements();
    let (three, none) = tokio::join!(loader.load(3), loader.load(4));
    assert_eq!(proxy.statements() - before, 1);
    let three = three.expect("load").expect("album 3 has tracks");
    assert_eq!(three.len(), 3);
    assert!(three.iter().all(|t| t.title.starts_with("album 3: track ")), "{three:?}");
    assert_eq!(none.expect("load"), None);
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn insert_returning_on_the_pool_gives_the_generated_ids_in_input_order() {
    let (pool, proxy, schema) = music("returning").await;
    let new: Vec<Track> = (0..1000).map(|i| Track { album_id: 5000 + i, title: format!("new {i}") }).collect();
    let rows = Columns::from_rows(&new).column("album_id", |t| t.album_id).column("title", |t| t.title.clone());

    let before = proxy.statements();
    let returned: Vec<(i64, i32)> =
        pool.insert_returning(&format!("{schema}.tracks"), &rows, &["id", "album_id"]).await.expect("insert");
    assert_eq!(proxy.statements() - before, 1);
    let stored: Vec<(i64, i32)> = pool
        .fetch_by_keys(
            &format!("{schema}.tracks"),
            &["id", "album_id"],
            "album_id",
            &new.iter().map(|t| t.album_id).collect::<Vec<_>>(),
        )
        .await
        .expect("read back");
    let mut by_id = stored.clone();
    by_id.sort();
    assert_eq!(returned.iter().map(|r| r.1).collect::<Vec<_>>(), new.iter().map(|t| t.album_id).collect::<Vec<_>>());
    let mut returned_sorted = returned.clone();
    returned_sorted.sort();
    assert_eq!(returned_sorted, by_id, "every generated id, each with its own row");
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn insert_on_the_pool_above_rows_per_statement_is_one_transaction() {
    let (pool, proxy, schema) = music("many_rows").await;
    let n = ROWS_PER_STATEMENT as i32 + 1;
    let rows = Columns::new()
        .column("album_id", (0..n).map(|i| 10_000 + i).collect::<Vec<i32>>())
        .column("title", vec!["bulk"; n as usize]);
    let before = proxy.statements();
    assert_eq!(pool.insert(&format!("{schema}.tracks"), &rows).await.expect("insert"), n as u64);
    assert_eq!(proxy.statements() - before, 4, "BEGIN, two INSERTs, COMMIT");
    let (count,): (i64,) = pool
        .fetch_one(|| sqlx::query(AssertSqlSafe(format!("SELECT count(*) FROM {schema}.tracks WHERE title = 'bulk'"))))
        .await
        .expect("count");
    assert_eq!(count, i64::from(n));
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn a_bad_name_is_refused_by_name_before_anything_is_sent() {
    let (pool, proxy, schema) = music("bad_name").await;
    let long = "k".repeat(64);
    let before = proxy.statements();
    let err = PgRows::<i32, Track>::table(&pool, "tracks", &long, &[]).expect_err("64-byte column");
    assert!(matches!(err, IdentError::TooLong { what: "column", len: 64, .. }), "{err}");
    let err = pool.insert("tracks", &Columns::new()).await.expect_err("no columns");
    assert!(matches!(err, BulkError::Ident(IdentError::NoneGiven { what: "column" })), "{err}");
    let err = pool.upsert("tracks", &Columns::new().column("id", vec![1]), &[""]).await.expect_err("empty name");
    assert!(err.to_string().contains("conflict column name is empty"), "{err}");
    assert_eq!(proxy.statements(), before);
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn a_closed_pools_error_reaches_the_helper_and_the_loader_as_an_acquire_error() {
    let (pool, _proxy, schema) = music("closed").await;
    let rows = tracks(&pool, &schema);
    let loader = rows.clone().one_to_one(|t| t.album_id);
    drop_schema(&pool, &schema).await; // closes the pool

    let err = pool.fetch_by_keys::<i32, Track>("tracks", &["album_id"], "album_id", &[1]).await.expect_err("closed");
    assert!(matches!(err, BulkError::Database(OperationError::Acquire(_))), "{err:?}");
    match loader.load(1).await.expect_err("closed") {
        BatchError::Load(e) => assert!(matches!(*e, OperationError::Acquire(_)), "{e:?}"),
        other => panic!("expected the pool's error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaders_and_preloads_never_trip_the_n_plus_one_detector_in_deny_mode() {
    let (pool, _proxy, schema) = music("n_plus_one").await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let rows = tracks(&pool, &schema);
    let per_key = format!("SELECT title FROM {schema}.tracks WHERE album_id = $1");
    let (lookups, per_key_calls) = n_plus_one::scope(async {
        let mut lookups = Vec::new();
        for album in 1..=10 {
            // Sequential loads of distinct keys: each is its own `= ANY($1)` statement, a batched shape.
            let loader = rows.clone().one_to_many(|t| t.album_id);
            lookups.push(loader.load(album).await.map(drop).map_err(|e| e.to_string()));
            let mut parents = vec![(album, Vec::new())];
            lookups.push(
                rows.preload(&mut parents, |p| p.0, |t| t.album_id, |p, t| p.1 = t).await.map_err(|e| e.to_string()),
            );
        }
        // The control: the same scope does report a per-key loop.
        let mut per_key_calls = Vec::new();
        for album in 1..=5 {
            per_key_calls
                .push(pool.fetch_all::<(String,), _>(|| sqlx::query(AssertSqlSafe(per_key.clone())).bind(album)).await);
        }
        (lookups, per_key_calls)
    })
    .await;
    assert!(lookups.iter().all(Result::is_ok), "{lookups:?}");
    assert!(per_key_calls[..4].iter().all(Result::is_ok));
    assert!(
        per_key_calls[4].as_ref().is_err_and(|e| e.n_plus_one_error().is_some()),
        "the fifth per-key call is denied"
    );
    drop_schema(&pool, &schema).await;
}
