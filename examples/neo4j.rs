//! A music graph on a Neo4j pool: artists RELEASED albums that CONTAIN tracks, listeners who LISTENED to
//! tracks and FOLLOW each other. It imports 10,000 nodes with aquifer-batch's `unwind` helper on the pool
//! (batched `UNWIND $rows`), recommends tracks from the people a listener follows, loads every artist's albums
//! N+1 against a BatchLoader of aquifer-batch's `Neo4jRows` (no hand-written loader), runs concurrent readers
//! through the pool, and prints health and stats.
//!
//! ```text
//! bash scripts/dev-services.sh arcadedb     # a local Bolt server (ArcadeDB, 127.0.0.1:17687)
//! eval "$(bash scripts/dev-services.sh env)"  # NEO4J_URI for it (docs/development.md)
//! cargo run --example neo4j
//! ```
//!
//! Defaults: bolt://127.0.0.1:7687 (Bolt's standard port), root / aquifer-secret (the ArcadeDB's), database testdb, pool of 8);
//! every `NEO4J_*` variable overrides them: NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE,
//! NEO4J_POOL_MAX_SIZE, ... The example deletes its own nodes (labels `AqMusic*`) before and after.

use std::collections::HashMap;
use std::time::Instant;

use aquifer_batch::FetchRows;
use aquifer_batch::neo4j::{Neo4jBulk, Neo4jRows};
use aquifer_neo4j::{BoltType, Neo4jConfig, Neo4jPool, query};

const ARTISTS: usize = 200;
const ALBUMS_PER_ARTIST: usize = 4;
const TRACKS_PER_ALBUM: usize = 8;
const LISTENERS: usize = 2_600;
const FOLLOWS_PER_LISTENER: usize = 8;
const PLAYS_PER_LISTENER: usize = 12;
const BATCH: usize = 1_000;
const LABELS: [&str; 4] = ["AqMusicArtist", "AqMusicAlbum", "AqMusicTrack", "AqMusicListener"];

/// The example's defaults, used for any `NEO4J_*` variable that is not set.
fn defaults(name: &str) -> Option<String> {
    let v = match name {
        "NEO4J_URI" => "bolt://127.0.0.1:7687",
        "NEO4J_USER" => "root",
        "NEO4J_PASSWORD" => "aquifer-secret",
        "NEO4J_DATABASE" => "testdb",
        "NEO4J_NAME" => "music",
        "NEO4J_POOL_MAX_SIZE" => "8",
        _ => return None,
    };
    Some(v.to_owned())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| defaults(name))
}

/// A small deterministic generator, so every run builds the same graph.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn map<const N: usize>(entries: [(&str, BoltType); N]) -> BoltType {
    BoltType::from(entries.into_iter().collect::<HashMap<_, _>>())
}

/// The whole run is one N+1 scope (a service opens one per request, e.g. with aquifer-http's `NPlusOneLayer`):
/// when it ends, each N+1 loop the pool's helpers ran in it is logged once with its `file:line` (target
/// `aquifer::n_plus_one`) and counted in `aquifer.n_plus_one`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Exports the pools' metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see aquifer-otel); kept
    // until after the scope, which counts its findings in `aquifer.n_plus_one` when it ends.
    let _otel = aquifer_otel::init()?;
    // Boxed: the run's future type is deep enough to overflow the compiler's layout query limit when nested.
    aquifer::n_plus_one::scope(Box::pin(run())).await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();

    let config = Neo4jConfig::from_lookup("NEO4J", env)?;
    println!("connecting to {} as {} (pool of {})", config.uri, config.user, config.pool.max_size);
    let started = Instant::now();
    let pool = config.connect().await?;
    println!("connected in {:?}", started.elapsed());

    clear(&pool).await?;
    for label in LABELS {
        pool.execute(format!("CREATE INDEX IF NOT EXISTS FOR (n:{label}) ON (n.id)")).await?;
    }
    let nodes = import(&pool).await?;
    println!("imported {nodes} nodes");

    // One recommendation, shown in full.
    let listener = 42;
    let started = Instant::now();
    let recs = recommend(&pool, listener).await?;
    println!(
        "\ntracks for listener {listener} ({:?}): what the people they follow play and they don't",
        started.elapsed()
    );
    for (title, artist, score) in &recs {
        println!("  {score:>2} followees  {title} by {artist}");
    }

    albums_per_artist(&pool).await?;

    // Concurrent readers: more tasks than connections, all served by the pool.
    let tasks = 32;
    let per_task = 20;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let q = Instant::now();
                recommend(&pool, (t * per_task + i) * 7 % LISTENERS).await?;
                latencies.push(q.elapsed());
            }
            Ok::<_, aquifer_neo4j::Neo4jOperationError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "\n{} recommendations from {tasks} tasks in {elapsed:.2?}: {:.0}/s, p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1]
    );

    let health = pool.health().await;
    println!("\nhealth: {}", serde_json::to_string_pretty(&health)?);
    println!("state: {:?}", pool.state());
    println!("stats: {:?}", pool.stats());

    clear(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Deletes the example's nodes (and their relationships), in bounded batches.
async fn clear(pool: &Neo4jPool) -> Result<(), aquifer_neo4j::Neo4jOperationError> {
    for label in LABELS {
        loop {
            let rows = pool
                .fetch_all(format!("MATCH (n:{label}) WITH n LIMIT 2000 DETACH DELETE n RETURN count(*) AS deleted"))
                .await?;
            if rows.first().and_then(|r| r.get::<i64>("deleted").ok()).unwrap_or(0) == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// Imports the catalogue and the listeners with aquifer-batch's `unwind` helper on the pool (`UNWIND $rows AS
/// row …` in batches, one statement shape per step, each step in one transaction); returns the number of nodes.
async fn import(pool: &Neo4jPool) -> Result<usize, Box<dyn std::error::Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();

    // Artists with their albums and tracks: one row per artist, nested lists, so no lookups are needed.
    let artists: Vec<BoltType> = (0..ARTISTS)
        .map(|a| {
            let albums: Vec<BoltType> = (0..ALBUMS_PER_ARTIST)
                .map(|b| {
                    let album = a * ALBUMS_PER_ARTIST + b;
                    let tracks: Vec<BoltType> = (0..TRACKS_PER_ALBUM)
                        .map(|t| {
                            let track = (album * TRACKS_PER_ALBUM + t) as i64;
                            map([
                                ("id", track.into()),
                                ("title", format!("Track {track}").into()),
                                ("seconds", (120 + rng.below(300) as i64).into()),
                            ])
                        })
                        .collect();
                    map([
                        ("id", (album as i64).into()),
                        ("title", format!("Album {album}").into()),
                        ("year", (1960 + rng.below(64) as i64).into()),
                        ("tracks", tracks.into()),
                    ])
                })
                .collect();
            map([("id", (a as i64).into()), ("name", format!("Artist {a}").into()), ("albums", albums.into())])
        })
        .collect();
    // Each artist row creates this many nodes: batches of about BATCH nodes.
    let per_artist = 1 + ALBUMS_PER_ARTIST * (1 + TRACKS_PER_ALBUM);
    let mut statements = pool
        .unwind(
            "CREATE (artist:AqMusicArtist {id: row.id, name: row.name})
         WITH artist, row UNWIND row.albums AS al
         CREATE (artist)-[:RELEASED]->(album:AqMusicAlbum {id: al.id, title: al.title, year: al.year})
         WITH album, al UNWIND al.tracks AS tr
         CREATE (album)-[:CONTAINS]->(:AqMusicTrack {id: tr.id, title: tr.title, seconds: tr.seconds})",
            &artists,
            (BATCH / per_artist).max(1),
        )
        .await?;
    let mut nodes = artists.len() * per_artist;

    let listeners: Vec<BoltType> =
        (0..LISTENERS as i64).map(|l| map([("id", l.into()), ("name", format!("listener{l}").into())])).collect();
    statements += pool.unwind("CREATE (:AqMusicListener {id: row.id, name: row.name})", &listeners, BATCH).await?;
    nodes += listeners.len();
    println!("  {nodes} nodes in {statements} UNWIND statements, {:.2?}", started.elapsed());

    let started = Instant::now();
    let tracks = ARTISTS * ALBUMS_PER_ARTIST * TRACKS_PER_ALBUM;
    let mut follows = Vec::new();
    let mut plays = Vec::new();
    for l in 0..LISTENERS {
        for _ in 0..FOLLOWS_PER_LISTENER {
            let other = rng.below(LISTENERS);
            if other != l {
                follows.push(BoltType::from(vec![l as i64, other as i64]));
            }
        }
        // Listeners cluster around a favourite part of the catalogue, so recommendations have overlap.
        let base = rng.below(tracks);
        for _ in 0..PLAYS_PER_LISTENER {
            let track = (base + rng.below(64)) % tracks;
            plays.push(BoltType::from(vec![l as i64, track as i64, 1 + rng.below(20) as i64]));
        }
    }
    let mut statements = pool
        .unwind(
            "MATCH (a:AqMusicListener {id: row[0]}), (b:AqMusicListener {id: row[1]}) MERGE (a)-[:FOLLOWS]->(b)",
            &follows,
            BATCH,
        )
        .await?;
    statements += pool
        .unwind(
        "MATCH (l:AqMusicListener {id: row[0]}), (t:AqMusicTrack {id: row[1]}) CREATE (l)-[:LISTENED {times: row[2]}]->(t)",
        &plays,
        BATCH,
    )
    .await?;
    println!(
        "  {} FOLLOWS and {} LISTENED relationships in {statements} UNWIND statements, {:.2?}",
        follows.len(),
        plays.len(),
        started.elapsed()
    );
    Ok(nodes)
}

/// Tracks played by the people `listener` follows that `listener` has not played, best first.
async fn recommend(
    pool: &Neo4jPool,
    listener: usize,
) -> Result<Vec<(String, String, i64)>, aquifer_neo4j::Neo4jOperationError> {
    let rows = pool
        .fetch_all(
            query(
                "MATCH (me:AqMusicListener {id: $id})
                 OPTIONAL MATCH (me)-[:LISTENED]->(played:AqMusicTrack)
                 WITH me, collect(played.id) AS played
                 MATCH (me)-[:FOLLOWS]->(:AqMusicListener)-[:LISTENED]->(t:AqMusicTrack)
                 WHERE NOT t.id IN played
                 WITH t, count(*) AS score
                 ORDER BY score DESC, t.id
                 LIMIT 5
                 MATCH (t)<-[:CONTAINS]-(:AqMusicAlbum)<-[:RELEASED]-(artist:AqMusicArtist)
                 RETURN t.title AS title, artist.name AS artist, score",
            )
            .param("id", listener as i64),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get("title").unwrap_or_default(),
                r.get("artist").unwrap_or_default(),
                r.get("score").unwrap_or_default(),
            )
        })
        .collect())
}

/// One of an artist's albums (its RELEASED neighbours), as the loader's statement returns it.
#[derive(Clone, serde::Deserialize)]
struct AlbumOf {
    artist_id: i64,
    title: String,
}

/// Every artist's albums: one query per artist (N+1) against a BatchLoader serving every artist's concurrent
/// load. Prints the table with the fastest of 3 runs each.
async fn albums_per_artist(pool: &Neo4jPool) -> Result<(), Box<dyn std::error::Error>> {
    let ids: Vec<i64> = (0..ARTISTS as i64).collect();
    let albums = Neo4jRows::<i64, AlbumOf>::statement(
        pool,
        "MATCH (a:AqMusicArtist)-[:RELEASED]->(al:AqMusicAlbum) WHERE a.id IN $keys \
         RETURN a.id AS artist_id, al.title AS title",
    );
    let mut best = [std::time::Duration::MAX; 2];
    let mut found: [Vec<String>; 2] = Default::default();
    for _ in 0..3 {
        let t = Instant::now();
        let mut titles = Vec::new();
        for &id in &ids {
            // The N+1 loop: aquifer::n_plus_one reports the `fetch_all` call below once, when the scope ends.
            let rows = pool
                .fetch_all(
                    query("MATCH (a:AqMusicArtist {id: $id})-[:RELEASED]->(al:AqMusicAlbum) RETURN al.title AS t")
                        .param("id", id),
                )
                .await?;
            for row in rows {
                titles.push(row.get::<String>("t")?);
            }
        }
        found[0] = titles;
        best[0] = best[0].min(t.elapsed());

        let t = Instant::now();
        // One loader per request; the artists' resolvers load concurrently in the request's task, and their
        // loads become one `WHERE a.id IN $keys` statement.
        let loader = albums.clone().one_to_many(|al| al.artist_id);
        let keys = ids.clone();
        let loaded = tokio::spawn(async move {
            let loader = &loader;
            futures_util::future::join_all(keys.into_iter().map(|id| async move { loader.load(id).await })).await
        })
        .await?;
        let mut titles = Vec::new();
        for albums in loaded {
            titles.extend(albums?.into_iter().flatten().map(|al| al.title));
        }
        found[1] = titles;
        best[1] = best[1].min(t.elapsed());
    }
    found.iter_mut().for_each(|titles| titles.sort());
    assert_eq!(found[0], found[1], "both load the same albums");
    println!("\nalbums of {} artists ({} albums), fastest of 3:", ids.len(), found[0].len());
    println!("  | strategy                               | statements | time      | vs N+1 |");
    println!("  |----------------------------------------|------------|-----------|--------|");
    for (i, (name, statements)) in
        [("N+1: one query per artist", ids.len()), ("BatchLoader: concurrent loads, batched", 1)]
            .into_iter()
            .enumerate()
    {
        println!(
            "  | {name:<38} | {statements:>10} | {:>6.1} ms | {:>5.1}x |",
            best[i].as_secs_f64() * 1e3,
            best[0].as_secs_f64() / best[i].as_secs_f64()
        );
    }
    Ok(())
}
