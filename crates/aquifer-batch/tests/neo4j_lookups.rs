//! Neo4j (ArcadeDB's Bolt server) lookups without a hand-written loader: `Neo4jRows` with `one_to_one`,
//! `one_to_many` and `preload`, and the `Neo4jBulk` helpers on the pool. Statements are counted by a proxy
//! reading the Bolt protocol (RUN messages), never by the code under test.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aquifer_batch::neo4j::{Neo4jBulk, Neo4jBulkError, Neo4jRows};
use aquifer_batch::{BatchError, BulkError, FetchRows, IdentError};
use aquifer_core::OperationError;
use aquifer_core::n_plus_one::{NPlusOneMode, Scope};
use aquifer_neo4j::{BoltType, Neo4jConfig, Neo4jError, Neo4jPool, PoolConfig, query};
use aquifer_testing::CountingProxy;
use futures_util::future::join_all;
use serde::Deserialize;

/// A pool of at most 2 connections to the Bolt server through a counting proxy. Checkouts are never validated
/// (a validation ping is a RUN too) and the pool is warmed up, so the proxy counts only the statements of the
/// code under test.
async fn connect() -> (Neo4jPool, CountingProxy) {
    let proxy = common::bolt_proxy().await;
    let config = Neo4jConfig {
        pool: PoolConfig {
            max_size: 2,
            validation_bypass: Duration::from_secs(3600),
            acquire_timeout: Duration::from_secs(30),
            ..PoolConfig::default()
        },
        ..Neo4jConfig::new(format!("bolt://{}", proxy.addr()), "root", "aquifer-secret").database("testdb")
    };
    let pool = config.connect().await.expect("pool of the Bolt server");
    pool.execute("RETURN 1").await.expect("warm-up");
    (pool, proxy)
}

/// A label unique to this test: tests run concurrently on one server.
fn label(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("AqLk{name}{}x{nanos}", std::process::id())
}

/// Deletes the nodes of `labels` (and their relationships).
async fn clear(pool: &Neo4jPool, labels: &[&str]) {
    for label in labels {
        pool.execute(format!("MATCH (n:`{label}`) DETACH DELETE n")).await.expect("cleanup");
    }
}

fn map<const N: usize>(entries: [(&str, BoltType); N]) -> BoltType {
    entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<HashMap<_, _>>().into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Artist {
    id: i64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Album {
    artist_id: i64,
    title: String,
}

/// Artists `ids`, named `a<id>`.
async fn artists(pool: &Neo4jPool, label: &str, ids: impl IntoIterator<Item = i64>) {
    let rows: Vec<BoltType> =
        ids.into_iter().map(|i| map([("id", i.into()), ("name", format!("a{i}").into())])).collect();
    pool.merge_nodes(label, "id", &rows, 0).await.expect("artists");
}

/// Artists `0..n` whose artist `i` RELEASED `i % 3` albums (`t<i>.<k>`), so every third artist has none.
async fn discography(pool: &Neo4jPool, artist: &str, album: &str, n: i64) {
    artists(pool, artist, 0..n).await;
    let rows: Vec<BoltType> = (0..n)
        .flat_map(|i| (0..i % 3).map(move |k| map([("a", i.into()), ("t", format!("t{i}.{k}").into())])))
        .collect();
    let body = format!("MATCH (a:`{artist}` {{id: row.a}}) CREATE (a)-[:RELEASED]->(:`{album}` {{title: row.t}})");
    pool.unwind(&body, &rows, 0).await.expect("albums");
}

/// The albums of artists, by a statement of the caller's.
/// Attaches to each parent the titles of its artist's albums, through a preload.
async fn preload_titles(pool: &Neo4jPool, artist: &str, album: &str, parents: &mut [Page]) {
    albums_of(pool, artist, album)
        .preload(
            parents,
            |p| p.artist,
            |al| al.artist_id,
            |p, al| p.albums = al.into_iter().map(|al| al.title).collect(),
        )
        .await
        .unwrap();
}

fn albums_of(pool: &Neo4jPool, artist: &str, album: &str) -> Neo4jRows<i64, Album> {
    Neo4jRows::statement(
        pool,
        format!(
            "MATCH (a:`{artist}`)-[:RELEASED]->(al:`{album}`) WHERE a.id IN $keys \
             RETURN a.id AS artist_id, al.title AS title ORDER BY title"
        ),
    )
}

/// What artist `i` of [`discography`] released.
fn titles(i: i64) -> Vec<String> {
    (0..i % 3).map(|k| format!("t{i}.{k}")).collect()
}

#[tokio::test]
async fn one_to_one_loads_nodes_by_property_and_none_for_a_missing_key() {
    let (pool, _proxy) = connect().await;
    let label = label("Artist");
    artists(&pool, &label, [1, 2]).await;
    let loader = Neo4jRows::<i64, Artist>::nodes(&pool, &label, "id").unwrap().one_to_one(|a| a.id);
    let (one, two, three) = tokio::join!(loader.load(1), loader.load(2), loader.load(3));
    assert_eq!(one.unwrap(), Some(Artist { id: 1, name: "a1".into() }));
    assert_eq!(two.unwrap(), Some(Artist { id: 2, name: "a2".into() }));
    assert_eq!(three.unwrap(), None);
    clear(&pool, &[&label]).await;
}

#[tokio::test]
async fn one_to_many_through_a_statement_groups_neighbours_by_key() {
    let (pool, _proxy) = connect().await;
    let (artist, album) = (label("Artist"), label("Album"));
    discography(&pool, &artist, &album, 6).await;
    let loader = albums_of(&pool, &artist, &album).one_to_many(|al| al.artist_id);
    let loaded = join_all((0..6).map(|i| loader.load(i))).await;
    for (i, albums) in (0..6).zip(loaded) {
        let albums = albums.unwrap().map(|a| a.into_iter().map(|al| al.title).collect::<Vec<_>>());
        assert_eq!(albums, Some(titles(i)).filter(|t| !t.is_empty()), "artist {i}");
    }
    clear(&pool, &[&artist, &album]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_loads_are_one_statement() {
    let (pool, proxy) = connect().await;
    let label = label("Artist");
    artists(&pool, &label, (0..200).filter(|i| i % 5 != 0)).await;
    let loader = Neo4jRows::<i64, Artist>::nodes(&pool, &label, "id").unwrap().one_to_one(|a| a.id);
    let before = proxy.statements();
    let keys: Vec<i64> = (0..200).collect();
    let resolved = common::resolve_in_one_request(&loader, &keys).await.into_iter().map(|(i, v)| (i, v.unwrap()));
    assert_eq!(proxy.statements() - before, 1);
    for (i, artist) in resolved {
        assert_eq!(artist.map(|a| a.name), (i % 5 != 0).then(|| format!("a{i}")), "artist {i}");
    }
    clear(&pool, &[&label]).await;
}

/// A page of an artist's albums, for the preloads.
struct Page {
    artist: i64,
    albums: Vec<String>,
}

fn pages(artists: impl IntoIterator<Item = i64>) -> Vec<Page> {
    artists.into_iter().map(|artist| Page { artist, albums: vec!["stale".into()] }).collect()
}

#[tokio::test]
async fn preload_attaches_children_to_hundreds_of_parents_in_one_statement() {
    let (pool, proxy) = connect().await;
    let (artist, album) = (label("Artist"), label("Album"));
    discography(&pool, &artist, &album, 300).await;
    let mut parents = pages(0..300);
    let before = proxy.statements();
    preload_titles(&pool, &artist, &album, &mut parents).await;
    assert_eq!(proxy.statements() - before, 1);
    for p in &parents {
        assert_eq!(p.albums, titles(p.artist), "artist {}", p.artist);
    }
    clear(&pool, &[&artist, &album]).await;
}

#[tokio::test]
async fn preload_gives_parents_sharing_a_key_copies_and_childless_parents_nothing() {
    let (pool, _proxy) = connect().await;
    let (artist, album) = (label("Artist"), label("Album"));
    discography(&pool, &artist, &album, 6).await;
    // 2 and 5 have two albums, 3 has none; 2 appears three times.
    let mut parents = pages([2, 3, 2, 5, 2]);
    preload_titles(&pool, &artist, &album, &mut parents).await;
    let got: Vec<Vec<String>> = parents.into_iter().map(|p| p.albums).collect();
    assert_eq!(got, [titles(2), vec![], titles(2), titles(5), titles(2)]);
    clear(&pool, &[&artist, &album]).await;
}

#[tokio::test]
async fn preload_of_no_parents_sends_nothing() {
    let (pool, proxy) = connect().await;
    let rows = albums_of(&pool, &label("Artist"), &label("Album"));
    let mut parents: Vec<Page> = Vec::new();
    let before = proxy.statements();
    rows.preload(
        &mut parents,
        |p| p.artist,
        |al| al.artist_id,
        |p, al| p.albums = al.into_iter().map(|al| al.title).collect(),
    )
    .await
    .unwrap();
    assert_eq!(proxy.statements() - before, 0);
}

#[tokio::test]
async fn pool_fetch_by_keys_returns_typed_nodes_in_one_statement() {
    let (pool, proxy) = connect().await;
    let label = label("Artist");
    artists(&pool, &label, [1, 2, 3]).await;
    let before = proxy.statements();
    let mut found: Vec<Artist> = pool.fetch_by_keys(&label, "id", &[3_i64, 1, 9]).await.unwrap();
    assert_eq!(proxy.statements() - before, 1);
    found.sort_by_key(|a| a.id);
    assert_eq!(found, [Artist { id: 1, name: "a1".into() }, Artist { id: 3, name: "a3".into() }]);
    clear(&pool, &[&label]).await;
}

#[tokio::test]
async fn pool_merge_nodes_updates_existing_nodes_in_batches() {
    let (pool, proxy) = connect().await;
    let label = label("Artist");
    artists(&pool, &label, [1]).await;
    let rows: Vec<BoltType> =
        (1..=250).map(|i: i64| map([("id", i.into()), ("name", format!("new{i}").into())])).collect();
    let before = proxy.statements();
    assert_eq!(pool.merge_nodes(&label, "id", &rows, 100).await.unwrap(), 3);
    assert_eq!(proxy.statements() - before, 3, "RUN per batch of 100");
    let keys: Vec<i64> = (1..=250).collect();
    let found: Vec<Artist> = pool.fetch_by_keys(&label, "id", &keys).await.unwrap();
    assert_eq!(found.len(), 250, "node 1 updated, not duplicated");
    assert!(found.iter().all(|a| a.name == format!("new{}", a.id)));
    clear(&pool, &[&label]).await;
}

#[tokio::test]
async fn pool_unwind_failing_batch_rolls_back_the_earlier_ones() {
    let (pool, _proxy) = connect().await;
    let label = label("Artist");
    // One row per statement; the third divides by a string, which the server rejects.
    let rows: Vec<BoltType> = vec![map([("id", 1.into())]), map([("id", 2.into())]), map([("id", "x".into())])];
    let body = format!("CREATE (n:`{label}` {{id: row.id}}) RETURN 1 / row.id AS q");
    let count = || async {
        let row = pool.fetch_one(format!("MATCH (n:`{label}`) RETURN count(n) AS c")).await.unwrap();
        row.get::<i64>("c").unwrap()
    };
    let failed = pool.unwind(&body, &rows, 1).await;
    assert!(matches!(failed, Err(BulkError::Database(OperationError::Backend(Neo4jError::Server(_))))), "{failed:?}");
    assert_eq!(count().await, 0, "nothing of the failed transaction committed");
    // The first two statements alone succeed: it was the third that failed the transaction.
    assert_eq!(pool.unwind(&body, &rows[..2], 1).await.unwrap(), 2);
    assert_eq!(count().await, 2);
    clear(&pool, &[&label]).await;
}

#[tokio::test]
async fn bad_label_or_property_is_a_typed_error_naming_it() {
    let (pool, proxy) = connect().await;
    let before = proxy.statements();
    let empty = Neo4jRows::<i64, Artist>::nodes(&pool, "", "id").unwrap_err();
    assert_eq!(empty, IdentError::Empty { what: "label" });
    let nul = Neo4jRows::<i64, Artist>::nodes(&pool, "Artist", "i\0d").unwrap_err();
    assert_eq!(nul, IdentError::Invalid { what: "property", name: "i\0d".into(), reason: "a NUL character" });
    let fetch: Result<Vec<Artist>, _> = pool.fetch_by_keys("Ar\0tist", "id", &[1_i64]).await;
    assert!(
        matches!(&fetch, Err(BulkError::Ident(IdentError::Invalid { what: "label", name, .. })) if name == "Ar\0tist"),
        "{fetch:?}"
    );
    let merge = pool.merge_nodes("Artist", "", &[map([("id", 1.into())])], 0).await;
    assert!(matches!(merge, Err(BulkError::Ident(IdentError::Empty { what: "property" }))), "{merge:?}");
    assert_eq!(proxy.statements() - before, 0, "nothing sent");
}

#[tokio::test]
async fn node_that_does_not_deserialize_is_a_driver_error_naming_the_field() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WithYear {
        id: i64,
        year: i64,
    }
    let (pool, _proxy) = connect().await;
    let label = label("Artist");
    artists(&pool, &label, [1]).await;
    let fetch: Result<Vec<WithYear>, Neo4jBulkError> = pool.fetch_by_keys(&label, "id", &[1_i64]).await;
    let err = fetch.unwrap_err();
    assert!(
        matches!(
            &err,
            BulkError::Database(OperationError::Backend(Neo4jError::Driver(neo4rs::Error::DeserializationError(_))))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("year"), "{err}");
    clear(&pool, &[&label]).await;
}

#[tokio::test]
async fn closed_pool_is_an_acquire_error() {
    let (pool, _proxy) = connect().await;
    let rows = Neo4jRows::<i64, Artist>::nodes(&pool, "AqLkClosed", "id").unwrap();
    pool.close().await;
    let fetch: Result<Vec<Artist>, Neo4jBulkError> = pool.fetch_by_keys("AqLkClosed", "id", &[1_i64]).await;
    assert!(matches!(fetch, Err(BulkError::Database(OperationError::Acquire(_)))), "{fetch:?}");
    let merge = pool.merge_nodes("AqLkClosed", "id", &[map([("id", 1.into())])], 0).await;
    assert!(matches!(merge, Err(BulkError::Database(OperationError::Acquire(_)))), "{merge:?}");
    let loaded = rows.one_to_one(|a| a.id).load(1).await;
    assert!(matches!(&loaded, Err(BatchError::Load(e)) if matches!(**e, OperationError::Acquire(_))), "{loaded:?}");
}

#[tokio::test]
async fn deny_mode_never_reports_the_loaders_or_preloads_statements() {
    let (pool, _proxy) = connect().await;
    let (artist, album) = (label("Artist"), label("Album"));
    discography(&pool, &artist, &album, 10).await;
    pool.set_n_plus_one(NPlusOneMode::Deny);
    let nodes = Neo4jRows::<i64, Artist>::nodes(&pool, &artist, "id").unwrap();
    let albums = albums_of(&pool, &artist, &album);
    let ((), findings) = Scope::new()
        .run_and_report(async {
            // One key at a time, one after another: each a statement of its own from the same call site, the
            // shape an N+1 loop has, twice the threshold.
            for i in 0..10 {
                let loader = nodes.clone().one_to_one(|a| a.id);
                assert_eq!(loader.load(i).await.unwrap().map(|a| a.id), Some(i));
                let mut one = pages([i]);
                albums
                    .preload(
                        &mut one,
                        |p| p.artist,
                        |al| al.artist_id,
                        |p, al| p.albums = al.into_iter().map(|al| al.title).collect(),
                    )
                    .await
                    .unwrap();
                assert_eq!(one[0].albums, titles(i));
            }
            // The detector is on in this scope: the same lookups one key per statement are denied.
            let denied = async {
                for i in 0..10_i64 {
                    pool.fetch_all(query(&format!("MATCH (n:`{artist}`) WHERE n.id = $id RETURN n")).param("id", i))
                        .await?;
                }
                Ok::<_, aquifer_neo4j::Neo4jOperationError>(())
            };
            assert!(matches!(denied.await, Err(OperationError::NPlusOne(_))));
        })
        .await;
    assert_eq!(findings.len(), 1, "only the per-key loop: {findings:?}");
    assert!(findings[0].shape.contains("n.id = "), "{findings:?}");
    pool.set_n_plus_one(NPlusOneMode::Warn);
    clear(&pool, &[&artist, &album]).await;
}
