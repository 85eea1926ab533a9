//! N+1 against BatchLoader against a hand-written join, and BatchLoader against async-graphql's DataLoader
//! and the `dataloader` crate, in one run.
//!
//! Part 1, per backend (PostgreSQL, MySQL/MariaDB, SQLite, Neo4j's protocol): load the tracks of 10 / 100 /
//! 1,000 / 10,000 albums (album `a` has `a % 4` tracks) on one connection, three ways: one query per album
//! (N+1), every album's `load` through a BatchLoader (`= ANY($1)` / chunked `IN` / `rarray` / `IN $keys`), and
//! one hand-written `LEFT JOIN` (Cypher: `OPTIONAL MATCH`). Methods are interleaved in every round; the table
//! shows the median time and the statements the server saw, counted outside the code under test (a counting
//! proxy for PostgreSQL and Bolt, the session's `Questions` for MariaDB, SQLite's trace hook) in one extra
//! untimed pass.
//!
//! Part 2: 1,000 concurrent resolver tasks, each loading one distinct key, spawned from a request task on a
//! 2-worker runtime; the same loader function behind Aquifer's BatchLoader, async-graphql's DataLoader
//! (default 1 ms delay) and the `dataloader` crate's non-cached Loader (default 10 yields); all with a batch
//! limit of 1,000. Two loader functions: a PostgreSQL `= ANY($1)` query, and an in-memory map (the loaders'
//! own overhead). Throughput is keys per second over a round (median of rounds); latency is each task's time
//! from spawn to value, p50 / p99 / max over all rounds.
//!
//!     bash scripts/dev-services.sh postgres mariadb arcadedb
//!     cargo bench -p aquifer-batch --bench batch --features postgres,mysql,sqlite,neo4j
//!
//! Environment: `BENCH_ROUNDS` (default 5), `BENCH_PARENTS` (default `10,100,1000,10000`),
//! `BENCH_BACKENDS` (default `postgres,memory,mysql,sqlite,neo4j`; `memory` is part 2's in-memory loader),
//! `BENCH_RESOLVER_ROUNDS` (default 30). Not run by CI.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aquifer_batch::{BatchLoader, BulkError, Loader};
use aquifer_testing::servers;
use aquifer_testing::{CountingProxy, WireProtocol};
use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

const ALBUMS: i32 = 10_000;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().to_owned()).collect()
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt_ms(s: f64) -> String {
    if s < 0.01 { format!("{:.3} ms", s * 1e3) } else { format!("{:.1} ms", s * 1e3) }
}

// ---------------------------------------------------------------- part 1: the three ways, per backend

/// One backend's three ways to load `n` albums' tracks; each returns the number of tracks found.
trait Scenario {
    /// The backend's read of tracks for the BatchLoader.
    type Fetch: FetchTracks;

    /// Creates the albums and tracks the three ways read.
    async fn setup(&self);

    /// The ids of albums 1 to `n`, by one query.
    async fn parents(&self, n: i32) -> Vec<i32>;

    /// One album's number of tracks, by one query: a step of the N+1 way.
    async fn tracks_of(&self, album: i32) -> usize;

    /// A [`FetchTracks`] on this backend's connection.
    fn fetcher(&self) -> Self::Fetch;

    /// The albums, then one query per album.
    async fn n_plus_one(&self, n: i32) -> usize {
        let mut found = 0;
        for album in self.parents(n).await {
            found += self.tracks_of(album).await;
        }
        found
    }

    /// Every album's load through a BatchLoader over [`fetcher`](Scenario::fetcher).
    async fn batched(&self, n: i32) -> usize {
        let albums = self.parents(n).await;
        resolve_all(BatchLoader::new(Tracks(self.fetcher())), albums).await
    }

    async fn join(&self, n: i32) -> usize;
    /// Statements seen by the server so far (None when this instance does not count).
    async fn statements(&self) -> Option<u64>;
}

async fn resolve_all<L: Loader<Key = i32, Value = Vec<String>>>(loader: BatchLoader<L>, albums: Vec<i32>) -> usize
where
    L::Error: std::fmt::Debug,
{
    // The albums' resolvers run concurrently in a request task, as a GraphQL server resolves a list field.
    tokio::spawn(async move {
        let loader = &loader;
        let all = join_all(albums.into_iter().map(|a| async move { loader.load(a).await.unwrap() })).await;
        all.into_iter().map(|t| t.map_or(0, |t| t.len())).sum()
    })
    .await
    .unwrap()
}

/// The table, columns and key the loaders read tracks by album from, in every backend.
const TRACKS: &str = "bench_tracks";
const TRACK_COLUMNS: &[&str] = &["album_id", "title"];
const ALBUM_ID: &str = "album_id";

/// Titles grouped by album; an album whose title is `None` (a join's row without tracks) is kept, empty.
fn by_album<A: Eq + std::hash::Hash>(rows: impl IntoIterator<Item = (A, Option<String>)>) -> HashMap<A, Vec<String>> {
    let mut out: HashMap<A, Vec<String>> = HashMap::new();
    for (album, title) in rows {
        out.entry(album).or_default().extend(title);
    }
    out
}

/// One backend's read of the (album, title) pairs of some albums, through the crate's `fetch_by_keys`.
trait FetchTracks: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;
    fn fetch(&self, albums: &[i32]) -> impl Future<Output = Result<Vec<(i32, String)>, Self::Error>> + Send;
}

/// The BatchLoader of tracks by album, over any backend's [`FetchTracks`].
struct Tracks<B>(B);

impl<B: FetchTracks> Loader for Tracks<B> {
    type Key = i32;
    type Value = Vec<String>;
    type Error = B::Error;

    async fn load(&self, albums: &[i32]) -> Result<HashMap<i32, Vec<String>>, B::Error> {
        Ok(by_album(self.0.fetch(albums).await?.into_iter().map(|(album, title)| (album, Some(title)))))
    }
}

// PostgreSQL

struct Pg {
    conn: Arc<Mutex<PgConnection>>,
    proxy: Option<CountingProxy>,
}

struct PgTracks(Arc<Mutex<PgConnection>>);

impl FetchTracks for PgTracks {
    type Error = BulkError<sqlx::Error>;

    async fn fetch(&self, albums: &[i32]) -> Result<Vec<(i32, String)>, Self::Error> {
        let mut conn = self.0.lock().await;
        aquifer_batch::postgres::fetch_by_keys(&mut conn, TRACKS, TRACK_COLUMNS, ALBUM_ID, albums).await
    }
}

impl Pg {
    async fn connect(count: bool) -> Self {
        let proxy = if count {
            Some(CountingProxy::start(&servers::postgres_addr(), WireProtocol::Postgres).await)
        } else {
            None
        };
        let addr = proxy.as_ref().map_or_else(servers::postgres_addr, |p| p.addr().to_string());
        let url = format!("postgres://postgres@{addr}/test?sslmode=disable");
        let conn = PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {} ({e}); start it with `bash scripts/dev-services.sh postgres`",
                servers::postgres_addr()
            )
        });
        Pg { conn: Arc::new(Mutex::new(conn)), proxy }
    }
}

impl Scenario for Pg {
    type Fetch = PgTracks;

    async fn setup(&self) {
        let mut c = self.conn.lock().await;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS bench_tracks, bench_albums;
             CREATE TABLE bench_albums (id int PRIMARY KEY, title text NOT NULL);
             CREATE TABLE bench_tracks (id serial PRIMARY KEY, album_id int NOT NULL, title text NOT NULL);
             INSERT INTO bench_albums SELECT a, 'album ' || a FROM generate_series(1, {ALBUMS}) a;
             INSERT INTO bench_tracks (album_id, title) SELECT a, 'track ' || t FROM generate_series(1, {ALBUMS}) a,
               generate_series(1, 3) t WHERE t <= a % 4;
             CREATE INDEX ON bench_tracks (album_id); ANALYZE bench_albums; ANALYZE bench_tracks;"
        )))
        .execute(&mut *c)
        .await
        .unwrap();
    }

    async fn parents(&self, n: i32) -> Vec<i32> {
        let mut c = self.conn.lock().await;
        sqlx::query_scalar("SELECT id FROM bench_albums WHERE id <= $1 ORDER BY id")
            .bind(n)
            .fetch_all(&mut *c)
            .await
            .unwrap()
    }

    async fn tracks_of(&self, album: i32) -> usize {
        let mut c = self.conn.lock().await;
        let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM bench_tracks WHERE album_id = $1")
            .bind(album)
            .fetch_all(&mut *c)
            .await
            .unwrap();
        titles.len()
    }

    fn fetcher(&self) -> PgTracks {
        PgTracks(Arc::clone(&self.conn))
    }

    async fn join(&self, n: i32) -> usize {
        let mut c = self.conn.lock().await;
        let rows = sqlx::query(
            "SELECT a.id, t.title FROM bench_albums a LEFT JOIN bench_tracks t ON t.album_id = a.id
             WHERE a.id <= $1 ORDER BY a.id",
        )
        .bind(n)
        .fetch_all(&mut *c)
        .await
        .unwrap();
        let by_album = by_album(rows.iter().map(|r| (r.get::<i32, _>(0), r.get(1))));
        by_album.values().map(Vec::len).sum()
    }

    async fn statements(&self) -> Option<u64> {
        self.proxy.as_ref().map(|p| p.statements() as u64)
    }
}

// MySQL / MariaDB

struct My {
    conn: Arc<Mutex<mysql_async::Conn>>,
    limits: aquifer_batch::mysql::MySqlLimits,
}

struct MyTracks(Arc<Mutex<mysql_async::Conn>>, aquifer_batch::mysql::MySqlLimits);

impl FetchTracks for MyTracks {
    type Error = BulkError<mysql_async::Error>;

    async fn fetch(&self, albums: &[i32]) -> Result<Vec<(i32, String)>, Self::Error> {
        let mut conn = self.0.lock().await;
        let limits = &self.1;
        aquifer_batch::mysql::fetch_by_keys(&mut conn, limits, TRACKS, TRACK_COLUMNS, ALBUM_ID, albums).await
    }
}

impl My {
    async fn connect() -> Self {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(servers::MARIADB.get())
            .user(Some("root"))
            .db_name(Some("test"))
            .prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
            panic!(
                "MariaDB is not reachable at {} ({e}); start it with `bash scripts/dev-services.sh mariadb`",
                servers::mariadb_addr()
            )
        });
        let limits = aquifer_batch::mysql::MySqlLimits::read(&mut conn).await.unwrap();
        My { conn: Arc::new(Mutex::new(conn)), limits }
    }
}

impl Scenario for My {
    type Fetch = MyTracks;

    async fn setup(&self) {
        let mut c = self.conn.lock().await;
        c.query_drop(format!(
            "DROP TABLE IF EXISTS bench_tracks, bench_albums;
             CREATE TABLE bench_albums (id INT PRIMARY KEY, title VARCHAR(32) NOT NULL);
             CREATE TABLE bench_tracks (id INT AUTO_INCREMENT PRIMARY KEY, album_id INT NOT NULL,
               title VARCHAR(32) NOT NULL, KEY (album_id));
             INSERT INTO bench_albums SELECT seq, CONCAT('album ', seq) FROM seq_1_to_{ALBUMS};
             INSERT INTO bench_tracks (album_id, title) SELECT a.seq, CONCAT('track ', t.seq)
               FROM seq_1_to_{ALBUMS} a, seq_1_to_3 t WHERE t.seq <= a.seq % 4;"
        ))
        .await
        .unwrap();
    }

    async fn parents(&self, n: i32) -> Vec<i32> {
        let mut c = self.conn.lock().await;
        c.exec("SELECT id FROM bench_albums WHERE id <= ? ORDER BY id", (n,)).await.unwrap()
    }

    async fn tracks_of(&self, album: i32) -> usize {
        let mut c = self.conn.lock().await;
        let titles: Vec<String> = c.exec("SELECT title FROM bench_tracks WHERE album_id = ?", (album,)).await.unwrap();
        titles.len()
    }

    fn fetcher(&self) -> MyTracks {
        MyTracks(Arc::clone(&self.conn), self.limits)
    }

    async fn join(&self, n: i32) -> usize {
        let mut c = self.conn.lock().await;
        let rows: Vec<(i32, Option<String>)> = c
            .exec(
                "SELECT a.id, t.title FROM bench_albums a LEFT JOIN bench_tracks t ON t.album_id = a.id
                 WHERE a.id <= ? ORDER BY a.id",
                (n,),
            )
            .await
            .unwrap();
        by_album(rows).values().map(Vec::len).sum()
    }

    async fn statements(&self) -> Option<u64> {
        let mut c = self.conn.lock().await;
        let row: Option<(String, u64)> = c.query_first("SHOW SESSION STATUS LIKE 'Questions'").await.unwrap();
        // The reading itself is one question.
        Some(row.unwrap().1)
    }
}

// SQLite

static SQLITE_STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn count_sqlite(_e: rusqlite::trace::TraceEvent<'_>) {
    SQLITE_STATEMENTS.fetch_add(1, Ordering::Relaxed);
}

struct Lite {
    conn: Arc<std::sync::Mutex<rusqlite::Connection>>,
    _dir: tempfile::TempDir,
}

struct LiteTracks(Arc<std::sync::Mutex<rusqlite::Connection>>);

impl FetchTracks for LiteTracks {
    type Error = BulkError<rusqlite::Error>;

    async fn fetch(&self, albums: &[i32]) -> Result<Vec<(i32, String)>, Self::Error> {
        let conn = self.0.lock().unwrap();
        aquifer_batch::sqlite::fetch_by_keys(&conn, TRACKS, TRACK_COLUMNS, ALBUM_ID, albums, |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }
}

impl Lite {
    fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("bench.db")).unwrap();
        conn.trace_v2(rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT, Some(count_sqlite));
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").unwrap();
        Lite { conn: Arc::new(std::sync::Mutex::new(conn)), _dir: dir }
    }
}

impl Scenario for Lite {
    type Fetch = LiteTracks;

    async fn setup(&self) {
        let c = self.conn.lock().unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE bench_albums (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
             CREATE TABLE bench_tracks (id INTEGER PRIMARY KEY, album_id INTEGER NOT NULL, title TEXT NOT NULL);
             CREATE INDEX bench_tracks_album ON bench_tracks (album_id);
             WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ALBUMS})
               INSERT INTO bench_albums SELECT n, 'album ' || n FROM s;
             WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3)
               INSERT INTO bench_tracks (album_id, title) SELECT a.id, 'track ' || t.n FROM bench_albums a, t
               WHERE t.n <= a.id % 4;
             ANALYZE;"
        ))
        .unwrap();
    }

    async fn parents(&self, n: i32) -> Vec<i32> {
        let c = self.conn.lock().unwrap();
        let mut stmt = c.prepare_cached("SELECT id FROM bench_albums WHERE id <= ?1 ORDER BY id").unwrap();
        stmt.query_map([n], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    async fn tracks_of(&self, album: i32) -> usize {
        let c = self.conn.lock().unwrap();
        let mut stmt = c.prepare_cached("SELECT title FROM bench_tracks WHERE album_id = ?1").unwrap();
        stmt.query_map([album], |r| r.get::<_, String>(0)).unwrap().count()
    }

    fn fetcher(&self) -> LiteTracks {
        LiteTracks(Arc::clone(&self.conn))
    }

    async fn join(&self, n: i32) -> usize {
        let c = self.conn.lock().unwrap();
        let mut stmt = c
            .prepare_cached(
                "SELECT a.id, t.title FROM bench_albums a LEFT JOIN bench_tracks t ON t.album_id = a.id
                 WHERE a.id <= ?1 ORDER BY a.id",
            )
            .unwrap();
        let rows = stmt.query_map([n], |r| Ok((r.get::<_, i32>(0)?, r.get(1)?))).unwrap();
        by_album(rows.map(Result::unwrap)).values().map(Vec::len).sum()
    }

    async fn statements(&self) -> Option<u64> {
        Some(SQLITE_STATEMENTS.load(Ordering::Relaxed))
    }
}

// Neo4j (a Bolt server: ArcadeDB here)

struct Neo {
    graph: neo4rs::Graph,
    proxy: Option<CountingProxy>,
}

/// Tracks by album through the crate's helper: `MATCH (n:BenchTrack) WHERE n.album_id IN $keys`.
struct NeoTracks(neo4rs::Graph);

impl FetchTracks for NeoTracks {
    type Error = BulkError<neo4rs::Error>;

    async fn fetch(&self, albums: &[i32]) -> Result<Vec<(i32, String)>, Self::Error> {
        let keys = albums.iter().map(|&a| neo4rs::BoltType::from(i64::from(a))).collect();
        let nodes = aquifer_batch::neo4j::fetch_by_keys(&self.0, "BenchTrack", ALBUM_ID, keys).await?;
        let field = |e: neo4rs::DeError| BulkError::Database(e.into());
        nodes
            .iter()
            .map(|n| Ok((n.get::<i64>(ALBUM_ID).map_err(field)? as i32, n.get("title").map_err(field)?)))
            .collect()
    }
}

impl Neo {
    async fn connect(count: bool) -> Self {
        let proxy =
            if count { Some(CountingProxy::start(&servers::bolt_addr(), WireProtocol::Bolt).await) } else { None };
        let addr = proxy.as_ref().map_or_else(servers::bolt_addr, |p| p.addr().to_string());
        let config = neo4rs::ConfigBuilder::default()
            .uri(format!("bolt://{addr}"))
            .user("root")
            .password("aquifer-secret")
            .db("testdb")
            .max_connections(1)
            .build()
            .unwrap();
        let graph = neo4rs::Graph::connect(config).unwrap();
        if let Err(e) = graph.run(neo4rs::query("RETURN 1")).await {
            panic!(
                "the Bolt server is not reachable at {} ({e}); start it with `bash scripts/dev-services.sh arcadedb`",
                servers::bolt_addr()
            )
        }
        Neo { graph, proxy }
    }

    async fn rows(&self, q: neo4rs::Query) -> Vec<neo4rs::Row> {
        let mut stream = self.graph.execute(q).await.unwrap();
        let mut rows = Vec::new();
        while let Some(r) = stream.next().await.unwrap() {
            rows.push(r);
        }
        rows
    }
}

impl Scenario for Neo {
    type Fetch = NeoTracks;

    /// The same data as the SQL backends, written with the crate's `unwind` helper.
    async fn setup(&self) {
        for label in ["BenchAlbum", "BenchTrack"] {
            loop {
                let q = format!("MATCH (n:{label}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS deleted");
                let rows = self.rows(neo4rs::query(&q)).await;
                if rows.first().and_then(|r| r.get::<i64>("deleted").ok()).unwrap_or(0) == 0 {
                    break;
                }
            }
            self.graph
                .run(neo4rs::query(&format!("CREATE INDEX IF NOT EXISTS FOR (n:{label}) ON (n.id)")))
                .await
                .unwrap();
        }
        self.graph.run(neo4rs::query("CREATE INDEX IF NOT EXISTS FOR (n:BenchTrack) ON (n.album_id)")).await.unwrap();
        let row = |pairs: [(&str, neo4rs::BoltType); 2]| {
            neo4rs::BoltType::from(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<HashMap<_, _>>())
        };
        let albums: Vec<neo4rs::BoltType> =
            (1..=i64::from(ALBUMS)).map(|a| row([("id", a.into()), ("title", format!("album {a}").into())])).collect();
        aquifer_batch::neo4j::unwind(&self.graph, "CREATE (:BenchAlbum {id: row.id, title: row.title})", &albums, 0)
            .await
            .unwrap();
        let tracks: Vec<neo4rs::BoltType> = (1..=i64::from(ALBUMS))
            .flat_map(|a| (1..=a % 4).map(move |t| (a, t)))
            .map(|(a, t)| row([("album_id", a.into()), ("title", format!("track {t}").into())]))
            .collect();
        aquifer_batch::neo4j::unwind(
            &self.graph,
            "CREATE (:BenchTrack {album_id: row.album_id, title: row.title})",
            &tracks,
            0,
        )
        .await
        .unwrap();
    }

    async fn parents(&self, n: i32) -> Vec<i32> {
        let q = neo4rs::query("MATCH (a:BenchAlbum) WHERE a.id <= $n RETURN a.id AS id ORDER BY id")
            .param("n", i64::from(n));
        self.rows(q).await.iter().map(|r| r.get::<i64>("id").unwrap() as i32).collect()
    }

    async fn tracks_of(&self, album: i32) -> usize {
        let q = neo4rs::query("MATCH (t:BenchTrack) WHERE t.album_id = $a RETURN t.title AS title")
            .param("a", i64::from(album));
        self.rows(q).await.len()
    }

    fn fetcher(&self) -> NeoTracks {
        NeoTracks(self.graph.clone())
    }

    /// The one hand-written query: albums and their tracks (an OPTIONAL MATCH, Cypher's left join).
    async fn join(&self, n: i32) -> usize {
        let q = neo4rs::query(
            "MATCH (a:BenchAlbum) WHERE a.id <= $n OPTIONAL MATCH (t:BenchTrack) WHERE t.album_id = a.id
             RETURN a.id AS a, t.title AS t",
        )
        .param("n", i64::from(n));
        let rows = self.rows(q).await;
        by_album(rows.iter().map(|r| (r.get::<i64>("a").unwrap(), r.get("t").unwrap()))).values().map(Vec::len).sum()
    }

    async fn statements(&self) -> Option<u64> {
        self.proxy.as_ref().map(|p| p.statements() as u64)
    }
}

const METHODS: [&str; 3] = ["N+1", "BatchLoader", "join"];

async fn run_method<S: Scenario>(s: &S, method: usize, n: i32) -> usize {
    match method {
        0 => s.n_plus_one(n).await,
        1 => s.batched(n).await,
        _ => s.join(n).await,
    }
}

/// Times every method at every size (methods interleaved, rotating order), then counts statements with
/// `counting` in one untimed pass. Prints one table.
async fn three_ways<S: Scenario, C: Scenario>(name: &str, timed: &S, counting: &C, parents: &[i32], rounds: usize) {
    println!("\n### {name}: tracks of N albums on one connection\n");
    println!("| albums | method | statements | median time | vs N+1 | vs join |");
    println!("|---|---|---|---|---|---|");
    for &n in parents {
        // Warm-up: statement caches, buffer pool.
        for m in 0..3 {
            run_method(timed, m, n).await;
        }
        let mut times: [Vec<f64>; 3] = Default::default();
        let mut found = [0usize; 3];
        let reps = if n >= 10_000 { rounds.min(3) } else { rounds };
        for r in 0..reps {
            for i in 0..3 {
                let m = (i + r) % 3;
                let start = Instant::now();
                found[m] = run_method(timed, m, n).await;
                times[m].push(start.elapsed().as_secs_f64());
            }
        }
        assert!(found.iter().all(|&f| f == found[0]), "methods disagree at {n}: {found:?}");
        let mut statements = [0u64; 3];
        for (m, s) in statements.iter_mut().enumerate() {
            let before = counting.statements().await.unwrap();
            run_method(counting, m, n).await;
            let after = counting.statements().await.unwrap();
            // MariaDB's Questions counts the reading itself.
            *s = after - before - u64::from(name.starts_with("MariaDB"));
        }
        let med: Vec<f64> = times.iter().map(|t| median(t.clone())).collect();
        for m in 0..3 {
            println!(
                "| {n} | {} | {} | {} | {:.1}x | {:.2}x |",
                METHODS[m],
                statements[m],
                fmt_ms(med[m]),
                med[0] / med[m],
                med[m] / med[2]
            );
        }
    }
}

/// Where the time of each method goes at `n` parents on PostgreSQL: each step timed alone, medians of
/// `rounds` interleaved rounds.
async fn pg_breakdown(pg: &Pg, n: i32, rounds: usize) {
    const STEPS: [&str; 8] = [
        "parents query alone (`SELECT id … WHERE id <= $1`)",
        "N+1 without the parents query: one `WHERE album_id = $1` per album",
        "one `= ANY($1)` query through `fetch_by_keys`, rows only",
        "the same query, rows grouped by album (the loader function)",
        "the loader function in a task of the runtime (as `load`s run it)",
        "BatchLoader without the parents query (1,000 `load`s, window, fan-out)",
        "BatchLoader, whole path (parents + loads)",
        "hand-written join",
    ];
    let albums = pg.parents(n).await;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    for r in 0..rounds + 2 {
        for (step, step_times) in times.iter_mut().enumerate() {
            let start = Instant::now();
            match step {
                0 => drop(pg.parents(n).await),
                1 => {
                    let mut c = pg.conn.lock().await;
                    for &a in &albums {
                        let t: Vec<String> = sqlx::query_scalar("SELECT title FROM bench_tracks WHERE album_id = $1")
                            .bind(a)
                            .fetch_all(&mut *c)
                            .await
                            .unwrap();
                        drop(t);
                    }
                }
                2 => {
                    let mut c = pg.conn.lock().await;
                    let rows: Vec<(i32, String)> =
                        aquifer_batch::postgres::fetch_by_keys(&mut c, TRACKS, TRACK_COLUMNS, ALBUM_ID, &albums)
                            .await
                            .unwrap();
                    drop(rows);
                }
                3 => drop(Tracks(PgTracks(Arc::clone(&pg.conn))).load(&albums).await.unwrap()),
                4 => {
                    let (conn, albums) = (Arc::clone(&pg.conn), albums.clone());
                    tokio::spawn(async move { drop(Tracks(PgTracks(conn)).load(&albums).await.unwrap()) })
                        .await
                        .unwrap();
                }
                5 => drop(resolve_all(BatchLoader::new(Tracks(PgTracks(Arc::clone(&pg.conn)))), albums.clone()).await),
                6 => drop(pg.batched(n).await),
                _ => drop(pg.join(n).await),
            }
            // The first two rounds warm up.
            if r >= 2 {
                step_times.push(start.elapsed().as_secs_f64());
            }
        }
    }
    println!("\n### PostgreSQL 15: where the time goes at {n} albums (median of {rounds})\n");
    println!("| step | median time |");
    println!("|---|---|");
    for (step, t) in STEPS.iter().zip(times) {
        println!("| {step} | {} |", fmt_ms(median(t)));
    }
}

// ---------------------------------------------------------------- part 2: 1,000 concurrent resolvers

const RESOLVERS: i32 = 1000;

/// The loader function shared by the three loaders: tracks per album from PostgreSQL, or from memory.
#[derive(Clone)]
enum Source {
    Pg(Arc<Mutex<PgConnection>>),
    /// The map, and how many times the loader function was called (batches).
    Memory(Arc<HashMap<i32, Vec<String>>>, Arc<AtomicU64>),
}

impl Source {
    async fn fetch(&self, keys: &[i32]) -> Result<HashMap<i32, Vec<String>>, Arc<BulkError<sqlx::Error>>> {
        match self {
            Source::Pg(conn) => Tracks(PgTracks(Arc::clone(conn))).load(keys).await.map_err(Arc::new),
            Source::Memory(map, calls) => {
                calls.fetch_add(1, Ordering::Relaxed);
                Ok(keys.iter().filter_map(|k| map.get(k).map(|v| (*k, v.clone()))).collect())
            }
        }
    }
}

struct AqSource(Source);

impl Loader for AqSource {
    type Key = i32;
    type Value = Vec<String>;
    type Error = std::io::Error;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Vec<String>>, std::io::Error> {
        self.0.fetch(keys).await.map_err(|e| std::io::Error::other(e.to_string()))
    }
}

struct AgSource(Source);

impl async_graphql::dataloader::Loader<i32> for AgSource {
    type Value = Vec<String>;
    type Error = Arc<BulkError<sqlx::Error>>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Vec<String>>, Self::Error> {
        self.0.fetch(keys).await
    }
}

struct DlSource(Source);

impl dataloader::BatchFn<i32, Option<Vec<String>>> for DlSource {
    async fn load(&mut self, keys: &[i32]) -> HashMap<i32, Option<Vec<String>>> {
        // The crate's batch function cannot fail: an error can only become "no value" for every key.
        let found = self.0.fetch(keys).await.unwrap_or_default();
        keys.iter().map(|k| (*k, found.get(k).cloned())).collect()
    }
}

#[derive(Clone, Copy)]
enum Peer {
    Aquifer,
    AsyncGraphql,
    Dataloader,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::Aquifer, Peer::AsyncGraphql, Peer::Dataloader];

    fn name(self) -> &'static str {
        match self {
            Peer::Aquifer => "aquifer BatchLoader",
            Peer::AsyncGraphql => "async-graphql DataLoader 7.2",
            Peer::Dataloader => "dataloader 0.18 (non-cached)",
        }
    }
}

/// Spawns a resolver task per key (1 to [`RESOLVERS`]) running the future `load` makes for its key; each task
/// returns its time from spawn to value.
fn spawn_resolvers<F: Future<Output = ()> + Send + 'static>(load: impl Fn(i32) -> F) -> Vec<JoinHandle<f64>> {
    (1..=RESOLVERS)
        .map(|k| {
            let load = load(k);
            let t0 = Instant::now();
            tokio::spawn(async move {
                load.await;
                t0.elapsed().as_secs_f64()
            })
        })
        .collect()
}

/// Spawns 1,000 resolver tasks from a request task; returns the round's wall time and every task's latency.
async fn resolvers_round(peer: Peer, source: &Source) -> (f64, Vec<f64>) {
    let source = source.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        let tasks = match peer {
            Peer::Aquifer => {
                let loader = BatchLoader::new(AqSource(source));
                spawn_resolvers(|k| {
                    let loader = loader.clone();
                    async move { drop(loader.load(k).await.unwrap()) }
                })
            }
            Peer::AsyncGraphql => {
                let loader = Arc::new(async_graphql::dataloader::DataLoader::new(AgSource(source), tokio::spawn));
                spawn_resolvers(|k| {
                    let loader = Arc::clone(&loader);
                    async move { drop(loader.load_one(k).await.unwrap()) }
                })
            }
            Peer::Dataloader => {
                let loader = dataloader::non_cached::Loader::new(DlSource(source)).with_max_batch_size(1000);
                spawn_resolvers(|k| {
                    let loader = loader.clone();
                    async move { drop(loader.load(k).await) }
                })
            }
        };
        let mut latencies = Vec::with_capacity(tasks.len());
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
        (start.elapsed().as_secs_f64(), latencies)
    })
    .await
    .unwrap()
}

async fn concurrent_resolvers(label: &str, source: Source, counting: Option<(&CountingProxy, Source)>, rounds: usize) {
    println!("\n### 1,000 concurrent resolver tasks, one key each: {label}\n");
    println!("| loader | keys/s (median) | p50 | p99 | max | batches per 1,000 keys |");
    println!("|---|---|---|---|---|---|");
    for peer in Peer::ALL {
        resolvers_round(peer, &source).await;
    }
    let mut throughput: [Vec<f64>; 3] = Default::default();
    let mut latencies: [Vec<f64>; 3] = Default::default();
    for r in 0..rounds {
        for i in 0..3 {
            let p = (i + r) % 3;
            let (wall, lat) = resolvers_round(Peer::ALL[p], &source).await;
            throughput[p].push(f64::from(RESOLVERS) / wall);
            latencies[p].extend(lat);
        }
    }
    for (p, peer) in Peer::ALL.into_iter().enumerate() {
        let statements = match &counting {
            Some((proxy, counted)) => {
                let mut per_round = Vec::new();
                for _ in 0..5 {
                    let before = proxy.statements();
                    resolvers_round(peer, counted).await;
                    per_round.push((proxy.statements() - before) as f64);
                }
                format!("{:.0} (median of 5)", median(per_round))
            }
            None => match &source {
                Source::Memory(_, calls) => {
                    let mut per_round = Vec::new();
                    for _ in 0..5 {
                        let before = calls.load(Ordering::Relaxed);
                        resolvers_round(peer, &source).await;
                        per_round.push((calls.load(Ordering::Relaxed) - before) as f64);
                    }
                    format!("{:.0} (median of 5)", median(per_round))
                }
                Source::Pg(_) => "-".into(),
            },
        };
        let mut lat = std::mem::take(&mut latencies[p]);
        lat.sort_by(f64::total_cmp);
        let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
        println!(
            "| {} | {:.0} | {} | {} | {} | {} |",
            peer.name(),
            median(std::mem::take(&mut throughput[p])),
            fmt_ms(pct(0.5)),
            fmt_ms(pct(0.99)),
            fmt_ms(*lat.last().unwrap()),
            statements
        );
    }
}

fn main() {
    let rounds = env_num("BENCH_ROUNDS", 5);
    let resolver_rounds = env_num("BENCH_RESOLVER_ROUNDS", 30);
    let parents: Vec<i32> =
        env_list("BENCH_PARENTS", "10,100,1000,10000").iter().map(|s| s.parse().expect("BENCH_PARENTS")).collect();
    let backends = env_list("BENCH_BACKENDS", "postgres,memory,mysql,sqlite,neo4j");
    let on = |b: &str| backends.iter().any(|x| x == b);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        println!("aquifer-batch bench: rounds {rounds}, resolver rounds {resolver_rounds}, parents {parents:?}");
        if on("postgres") {
            let timed = Pg::connect(false).await;
            timed.setup().await;
            let counting = Pg::connect(true).await;
            three_ways("PostgreSQL 15", &timed, &counting, &parents, rounds).await;
            pg_breakdown(&timed, 1000, rounds.max(10)).await;
            concurrent_resolvers(
                "PostgreSQL `= ANY($1)` loader",
                Source::Pg(Arc::clone(&timed.conn)),
                Some((counting.proxy.as_ref().unwrap(), Source::Pg(Arc::clone(&counting.conn)))),
                resolver_rounds,
            )
            .await;
        }
        if on("memory") {
            let memory: HashMap<i32, Vec<String>> =
                (1..=RESOLVERS).map(|a| (a, (0..a % 4).map(|t| format!("track {t}")).collect())).collect();
            concurrent_resolvers(
                "in-memory loader (loader overhead only)",
                Source::Memory(Arc::new(memory), Arc::new(AtomicU64::new(0))),
                None,
                resolver_rounds,
            )
            .await;
        }
        if on("mysql") {
            let timed = My::connect().await;
            timed.setup().await;
            let counting = My::connect().await;
            three_ways("MariaDB 10.11", &timed, &counting, &parents, rounds).await;
        }
        if on("sqlite") {
            let lite = Lite::open();
            lite.setup().await;
            three_ways("SQLite (file, WAL)", &lite, &lite, &parents, rounds).await;
        }
        if on("neo4j") {
            let timed = Neo::connect(false).await;
            timed.setup().await;
            let counting = Neo::connect(true).await;
            three_ways("Neo4j protocol (ArcadeDB 26.10 over Bolt)", &timed, &counting, &parents, rounds).await;
        }
    });
}
