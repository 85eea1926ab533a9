//! One HTTP service over all four backends, the way an application wires Aquifer: a music library on
//! PostgreSQL, a vocabulary app on MySQL/MariaDB, a music graph on Neo4j and a book-writing app on SQLite, each
//! pool configured from the environment, all registered in one `aquifer_http::Pools` set whose routes serve
//! `/health`, `/health/{pool}` and `/stats`, metrics exported over OTLP by aquifer-otel, endpoints that attach
//! their children with aquifer-batch's `preload` (one statement per page, no hand-written loader), and a
//! graceful shutdown that closes every
//! pool.
//!
//! ```text
//! bash scripts/dev-services.sh        # PostgreSQL, MariaDB, ArcadeDB (Bolt) on 127.0.0.1
//! eval "$(bash scripts/dev-services.sh env)"   # their URLs; the defaults are the standard ports
//! cargo run --example service         # then: curl 127.0.0.1:8080/albums?limit=2, /health, /stats
//! ```
//!
//! Routes:
//!
//! - `GET /albums?limit=N&offset=M`: albums with their tracks (PostgreSQL; one `= ANY($1)` query for the
//!   tracks of the whole page, however many albums it holds); `GET /albums/{id}`: one album, 404 if none;
//! - `GET /learners?limit=N`: learners with their saved words (MySQL); `POST /learners/{id}/words` with
//!   `{"word": "..."}` saves a word (201 when new, 200 when already saved, 404 for an unknown learner);
//! - `GET /artists?limit=N`: artists with their albums (Neo4j);
//! - `GET /plots?limit=N`: plots with their characters (SQLite);
//! - `GET /health`, `GET /health/{pool}`, `GET /stats`: aquifer-http's routes over the five pools (`music`,
//!   `vocab`, `graph`, `books/writer`, `books/readers` by default).
//!
//! Configuration, each variable with a default for the local development servers:
//! `SERVICE_ADDR` (`127.0.0.1:8080`; port 0 picks a free port, printed at start), and every variable the
//! adapters read with their conventional prefixes (docs/configuration.md): `POSTGRES_URL`, `POSTGRES_POOL_*`,
//! `POSTGRES_NAME`...; `MYSQL_URL`, `MYSQL_POOL_*`...; `NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`,
//! `NEO4J_DATABASE`...; `SQLITE_PATH` (default `aquifer-service.db` in the temporary directory),
//! `SQLITE_POOL_*`...; OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` (or another `OTEL_*` exporter variable)
//! is set.
//!
//! Start-up connects every pool (a wrong password or a stopped server stops the service with the cause) and
//! creates and fills the example's own tables if missing (schema `aquifer_service`, tables `svc_*`, labels
//! `AqSvc*`, the SQLite file). On SIGTERM or Ctrl-C the server stops accepting connections, finishes the
//! requests in flight, then every pool is closed (idle connections closed, busy ones as they return) and the
//! last metrics are flushed; the service prints each pool's state after close and exits 0.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_batch::FetchRows;
use aquifer_batch::mysql::MySqlRows;
use aquifer_batch::neo4j::Neo4jRows;
use aquifer_batch::postgres::PgRows;
use aquifer_batch::sqlite::SqliteRows;
use aquifer_http::Pools;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlPool};
use aquifer_neo4j::{BoltType, Neo4jConfig, Neo4jPool, query};
use aquifer_postgres::sqlx;
use aquifer_postgres::{PgConfig, PgPool};
use aquifer_sqlite::{SqliteConfig, SqlitePool};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The example's default for each variable it reads that is not set: the local development servers.
fn default_var(name: &str) -> Option<String> {
    let v = match name {
        "SERVICE_ADDR" => "127.0.0.1:8080",
        "POSTGRES_URL" => "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
        "POSTGRES_NAME" => "music",
        "MYSQL_URL" => "mysql://root@127.0.0.1:3306/test",
        "MYSQL_NAME" => "vocab",
        "NEO4J_URI" => "bolt://127.0.0.1:7687",
        "NEO4J_USER" => "root",
        "NEO4J_PASSWORD" => "aquifer-secret",
        "NEO4J_DATABASE" => "testdb",
        "NEO4J_NAME" => "graph",
        "SQLITE_NAME" => "books",
        "SQLITE_PATH" => return Some(std::env::temp_dir().join("aquifer-service.db").to_string_lossy().into_owned()),
        _ => return None,
    };
    Some(v.to_owned())
}

/// A variable from the environment (empty counts as unset), else the example's default.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| default_var(name))
}

/// The service's state: one pool per backend (cheap clones of shared handles).
#[derive(Clone)]
struct App {
    music: PgPool,
    vocab: MySqlPool,
    /// The children the endpoints attach to a page of parents, one statement per page.
    tracks: TrackRows,
    words: WordRows,
    albums: AlbumRows,
    characters: CharacterRows,
    graph: Neo4jPool,
    books: SqlitePool,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();
    // Exports the pools' metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see aquifer-otel); installed
    // before the pools are built, so they record into it.
    let otel = aquifer_otel::init()?;

    // Every pool connects now: a wrong password or a stopped server stops the service here, with the cause.
    let music = PgConfig::from_lookup("POSTGRES", var)?.connect().await?;
    let vocab = MySqlConfig::from_lookup("MYSQL", var)?.connect().await?;
    let graph = Neo4jConfig::from_lookup("NEO4J", var)?.connect().await?;
    let books = SqliteConfig::from_lookup("SQLITE", var)?.connect().await?;
    let app = App {
        tracks: track_rows(&music),
        words: word_rows(&vocab)?,
        albums: album_rows(&graph),
        characters: character_rows(&books)?,
        music,
        vocab,
        graph,
        books,
    };
    seed(&app).await?;

    let pools = Pools::new();
    pools
        .register(&app.music)
        .register(&app.vocab)
        .register(&app.graph)
        .register(app.books.writer())
        .register(app.books.readers());

    let router = Router::new()
        .route("/albums", get(albums))
        .route("/albums/{id}", get(album))
        .route("/learners", get(learners))
        .route("/learners/{id}/words", post(save_word))
        .route("/artists", get(artists))
        .route("/plots", get(plots))
        .with_state(app.clone())
        .merge(aquifer_http::router(pools.clone()));

    let addr = var("SERVICE_ADDR").unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("SERVICE_ADDR={addr}: {e}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("pools: {}", pools.names().join(", "));
    // On SIGTERM, /readyz answers 503 at once; serving goes on for SERVICE_DRAIN_DELAY (default 0 s; 5 s in the
    // Kubernetes manifests), long enough for the load balancer to stop sending, then stops.
    let drain_delay = match var("SERVICE_DRAIN_DELAY") {
        Some(v) => humantime::parse_duration(&v).map_err(|e| format!("SERVICE_DRAIN_DELAY={v:?}: {e}"))?,
        None => Duration::ZERO,
    };
    let signal = async move {
        let signal = aquifer_http::shutdown_signal().await;
        println!("{signal} received; draining for {drain_delay:?}");
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(aquifer_http::drain_on(signal, pools.clone(), drain_delay))
        .await?;

    // In-flight requests are done; the routes' clones of the pools are dropped with the server.
    println!("shutting down");
    for pool in pools.stats().pools {
        println!("pool {} before close: {}", pool.name, pool.state);
    }
    for (name, left) in [
        ("music", app.music.close().await),
        ("vocab", app.vocab.close().await),
        ("graph", app.graph.close().await),
        ("books", app.books.close().await),
    ] {
        // `close` waits up to the pool's close_timeout for connections in use; none are once serving stopped.
        println!("closed pool {name}: {left} connection(s) still open at the deadline");
    }
    for pool in pools.stats().pools {
        println!("pool {} after close: {}", pool.name, pool.state);
    }
    for (name, closed) in [
        ("music", app.music.is_closed()),
        ("vocab", app.vocab.is_closed()),
        ("graph", app.graph.is_closed()),
        ("books/writer", app.books.writer().is_closed()),
        ("books/readers", app.books.readers().is_closed()),
    ] {
        println!("pool {name} closed: {closed}");
    }
    // The last export carries the pools' final counts.
    otel.shutdown()?;
    println!("bye");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Errors: a JSON body with the cause. Database errors name what failed; they carry no password (every
// adapter redacts URLs in its errors).

struct ApiError(StatusCode, String);

/// A database failure is a 503: the pool could not get a connection, or the server failed the statement; either
/// way another attempt (later, or on another instance behind the load balancer) may succeed.
impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

impl Page {
    /// 1..=100, default 10.
    fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(10).clamp(1, 100))
    }

    fn offset(&self) -> i64 {
        i64::from(self.offset.unwrap_or(0))
    }
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL: the music library.

#[derive(Debug, Clone, Serialize)]
struct Track {
    id: i32,
    position: i32,
    title: String,
    seconds: i32,
}

#[derive(Debug, Serialize)]
struct Album {
    id: i32,
    title: String,
    artist: String,
    year: i32,
    tracks: Vec<Track>,
}

/// The tracks of a page of albums, in one `album_id = ANY($1)` statement: `(album_id, id, position, title,
/// seconds)` rows of aquifer-batch's `PgRows`, in position order.
type TrackRows = PgRows<i32, (i32, i32, i32, String, i32)>;

fn track_rows(pool: &PgPool) -> TrackRows {
    PgRows::statement(
        pool,
        "SELECT album_id, id, position, title, seconds FROM aquifer_service.tracks \
         WHERE album_id = ANY($1) ORDER BY album_id, position",
    )
}

async fn with_tracks(app: &App, rows: Vec<(i32, String, String, i32)>) -> Result<Vec<Album>, ApiError> {
    let mut albums: Vec<Album> = rows
        .into_iter()
        .map(|(id, title, artist, year)| Album { id, title, artist, year, tracks: Vec::new() })
        .collect();
    app.tracks
        .preload(
            &mut albums,
            |a| a.id,
            |t| t.0,
            |a, rows| {
                a.tracks = rows
                    .into_iter()
                    .map(|(_, id, position, title, seconds)| Track { id, position, title, seconds })
                    .collect();
            },
        )
        .await?;
    Ok(albums)
}

async fn albums(State(app): State<App>, Query(page): Query<Page>) -> Result<Json<Vec<Album>>, ApiError> {
    let rows: Vec<(i32, String, String, i32)> = app
        .music
        .fetch_all(|| {
            sqlx::query("SELECT id, title, artist, year FROM aquifer_service.albums ORDER BY id LIMIT $1 OFFSET $2")
                .bind(page.limit())
                .bind(page.offset())
        })
        .await?;
    Ok(Json(with_tracks(&app, rows).await?))
}

async fn album(State(app): State<App>, Path(id): Path<i32>) -> Result<Json<Album>, ApiError> {
    let row: Option<(i32, String, String, i32)> = app
        .music
        .fetch_optional(|| {
            sqlx::query("SELECT id, title, artist, year FROM aquifer_service.albums WHERE id = $1").bind(id)
        })
        .await?;
    let row = row.ok_or_else(|| not_found(format!("no album {id}")))?;
    let mut albums = with_tracks(&app, vec![row]).await?;
    Ok(Json(albums.remove(0)))
}

// ---------------------------------------------------------------------------------------------------------
// MySQL / MariaDB: the vocabulary app.

#[derive(Debug, Serialize)]
struct Learner {
    id: u64,
    email: String,
    words: Vec<String>,
}

/// The saved words of a page of learners: aquifer-batch's `MySqlRows`, chunked `learner_id IN (...)` statements
/// sized under the server's placeholder and packet limits, in word order.
type WordRows = MySqlRows<u64, (u64, String)>;

fn word_rows(pool: &MySqlPool) -> Result<WordRows, BoxError> {
    Ok(MySqlRows::statement(
        pool,
        "SELECT learner_id, word FROM svc_words WHERE learner_id IN ({keys}) ORDER BY learner_id, word",
    )?)
}

async fn learners(State(app): State<App>, Query(page): Query<Page>) -> Result<Json<Vec<Learner>>, ApiError> {
    let rows: Vec<(u64, String)> = app
        .vocab
        .fetch_all("SELECT id, email FROM svc_learners ORDER BY id LIMIT ? OFFSET ?", (page.limit(), page.offset()))
        .await?;
    let mut learners: Vec<Learner> =
        rows.into_iter().map(|(id, email)| Learner { id, email, words: Vec::new() }).collect();
    app.words
        .preload(&mut learners, |l| l.id, |w| w.0, |l, words| l.words = words.into_iter().map(|w| w.1).collect())
        .await?;
    Ok(Json(learners))
}

#[derive(Debug, Deserialize)]
struct NewWord {
    word: String,
}

async fn save_word(
    State(app): State<App>,
    Path(id): Path<u64>,
    Json(body): Json<NewWord>,
) -> Result<Response, ApiError> {
    let word = body.word.trim().to_owned();
    if word.is_empty() || word.chars().count() > 100 {
        return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, "word: 1 to 100 characters".into()));
    }
    // The learner's check and the insert in one transaction, retried as a whole on a deadlock or a
    // connection lost before COMMIT.
    let w = word.clone();
    let created = app
        .vocab
        .transaction(move |tx| {
            let w = w.clone();
            Box::pin(async move {
                let exists: Option<u64> = tx.exec_first("SELECT id FROM svc_learners WHERE id = ?", (id,)).await?;
                if exists.is_none() {
                    return Ok(None);
                }
                tx.exec_drop("INSERT IGNORE INTO svc_words (learner_id, word) VALUES (?, ?)", (id, &w)).await?;
                Ok(Some(tx.affected_rows() == 1))
            })
        })
        .await?;
    match created {
        None => Err(not_found(format!("no learner {id}"))),
        Some(created) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(serde_json::json!({ "learner_id": id, "word": word, "created": created })))
                .into_response())
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Neo4j: the music graph.

#[derive(Debug, Clone, Serialize)]
struct GraphAlbum {
    id: i64,
    title: String,
    year: i64,
}

#[derive(Debug, Serialize)]
struct Artist {
    id: i64,
    name: String,
    albums: Vec<GraphAlbum>,
}

/// One RELEASED album with its artist's id, as aquifer-batch's `Neo4jRows` deserializes a row.
#[derive(Debug, Clone, Deserialize)]
struct ReleasedAlbum {
    artist: i64,
    id: i64,
    title: String,
    year: i64,
}

/// The RELEASED albums of a page of artists in one `WHERE a.id IN $keys` statement, in album order.
type AlbumRows = Neo4jRows<i64, ReleasedAlbum>;

fn album_rows(pool: &Neo4jPool) -> AlbumRows {
    Neo4jRows::statement(
        pool,
        "MATCH (a:AqSvcArtist)-[:RELEASED]->(al:AqSvcAlbum) WHERE a.id IN $keys
         RETURN a.id AS artist, al.id AS id, al.title AS title, al.year AS year ORDER BY toInteger(al.id)",
    )
}

async fn artists(State(app): State<App>, Query(page): Query<Page>) -> Result<Json<Vec<Artist>>, ApiError> {
    let rows = app
        .graph
        .fetch_all(
            // `toInteger`: ArcadeDB (the Bolt server of the tests) sorts `ORDER BY a.id` with a LIMIT on an
            // indexed integer property as 1, 10, 2, ...; the expression sorts numerically there and in Neo4j.
            query(
                "MATCH (a:AqSvcArtist) RETURN a.id AS id, a.name AS name
                 ORDER BY toInteger(a.id) SKIP $offset LIMIT $limit",
            )
            .param("offset", page.offset())
            .param("limit", page.limit()),
        )
        .await?;
    let artists: Vec<(i64, String)> =
        rows.iter().filter_map(|r| Some((r.get::<i64>("id").ok()?, r.get::<String>("name").ok()?))).collect();
    let mut artists: Vec<Artist> =
        artists.into_iter().map(|(id, name)| Artist { id, name, albums: Vec::new() }).collect();
    app.albums
        .preload(
            &mut artists,
            |a| a.id,
            |al| al.artist,
            |a, rows| {
                a.albums =
                    rows.into_iter().map(|al| GraphAlbum { id: al.id, title: al.title, year: al.year }).collect();
            },
        )
        .await?;
    Ok(Json(artists))
}

// ---------------------------------------------------------------------------------------------------------
// SQLite: the book-writing app.

#[derive(Debug, Clone, Serialize)]
struct Character {
    name: String,
    role: String,
}

#[derive(Debug, Serialize)]
struct Plot {
    id: i64,
    title: String,
    genre: String,
    characters: Vec<Character>,
}

/// The characters of a page of plots in one `plot_id IN rarray(?1)` statement on a reader: aquifer-batch's
/// `SqliteRows` of `(plot_id, name, role)`.
type CharacterRows = SqliteRows<i64, (i64, String, String)>;

fn character_rows(pool: &SqlitePool) -> Result<CharacterRows, BoxError> {
    Ok(SqliteRows::table(pool, "svc_characters", "plot_id", &["plot_id", "name", "role"])?)
}

async fn plots(State(app): State<App>, Query(page): Query<Page>) -> Result<Json<Vec<Plot>>, ApiError> {
    let (limit, offset) = (page.limit(), page.offset());
    let rows: Vec<(i64, String, String)> = app
        .books
        .read(move |c| {
            c.prepare_cached("SELECT id, title, genre FROM svc_plots ORDER BY id LIMIT ?1 OFFSET ?2")?
                .query_map([limit, offset], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .await?;
    let mut plots: Vec<Plot> =
        rows.into_iter().map(|(id, title, genre)| Plot { id, title, genre, characters: Vec::new() }).collect();
    app.characters
        .preload(
            &mut plots,
            |p| p.id,
            |c| c.0,
            |p, rows| p.characters = rows.into_iter().map(|(_, name, role)| Character { name, role }).collect(),
        )
        .await?;
    Ok(Json(plots))
}

// ---------------------------------------------------------------------------------------------------------
// Schema and data: created if missing, the same on every run (fixed ids), so responses are predictable.

const ALBUMS: i32 = 24;
const TRACKS_PER_ALBUM: i32 = 6;
const LEARNERS: u64 = 12;
const ARTISTS: i64 = 10;
const ALBUMS_PER_ARTIST: i64 = 3;
const PLOTS: i64 = 20;
const WORDS: [&str; 5] = ["Brunnen", "Ebbe", "Flut", "Quelle", "Strom"];
const ROLES: [&str; 3] = ["protagonist", "antagonist", "mentor"];

async fn seed(app: &App) -> Result<(), BoxError> {
    let mut conn = app.music.get().await?;
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS aquifer_service;
         CREATE TABLE IF NOT EXISTS aquifer_service.albums (
             id int PRIMARY KEY, title text NOT NULL, artist text NOT NULL, year int NOT NULL);
         CREATE TABLE IF NOT EXISTS aquifer_service.tracks (
             id int PRIMARY KEY, album_id int NOT NULL REFERENCES aquifer_service.albums (id),
             position int NOT NULL, title text NOT NULL, seconds int NOT NULL);
         CREATE INDEX IF NOT EXISTS tracks_album_idx ON aquifer_service.tracks (album_id);",
    )
    .execute(&mut *conn)
    .await?;
    let ids: Vec<i32> = (1..=ALBUMS).collect();
    sqlx::query(
        "INSERT INTO aquifer_service.albums (id, title, artist, year)
         SELECT id, 'Album ' || id, 'Artist ' || ((id - 1) % 8 + 1), 1970 + id FROM unnest($1::int[]) AS id
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO aquifer_service.tracks (id, album_id, position, title, seconds)
         SELECT a * 100 + p, a, p, 'Track ' || a || '.' || p, 120 + a * 10 + p
         FROM unnest($1::int[]) AS a, generate_series(1, $2) AS p
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(TRACKS_PER_ALBUM)
    .execute(&mut *conn)
    .await?;
    drop(conn);

    let mut conn = app.vocab.get().await?;
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS svc_learners (
             id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE) ENGINE=InnoDB;
         CREATE TABLE IF NOT EXISTS svc_words (
             learner_id BIGINT UNSIGNED NOT NULL, word VARCHAR(100) NOT NULL, PRIMARY KEY (learner_id, word),
             FOREIGN KEY (learner_id) REFERENCES svc_learners (id) ON DELETE CASCADE) ENGINE=InnoDB",
    )
    .await?;
    conn.exec_batch(
        "INSERT IGNORE INTO svc_learners (id, email) VALUES (?, ?)",
        (1..=LEARNERS).map(|id| (id, format!("learner{id}@example.com"))),
    )
    .await?;
    conn.exec_batch(
        "INSERT IGNORE INTO svc_words (learner_id, word) VALUES (?, ?)",
        (1..=LEARNERS).flat_map(|id| WORDS[..(id as usize % WORDS.len()) + 1].iter().map(move |w| (id, *w))),
    )
    .await?;
    drop(conn);

    for label in ["AqSvcArtist", "AqSvcAlbum"] {
        app.graph.execute(format!("CREATE INDEX IF NOT EXISTS FOR (n:{label}) ON (n.id)")).await?;
    }
    let artists: Vec<BoltType> = (1..=ARTISTS)
        .map(|a| {
            let albums: Vec<BoltType> = (1..=ALBUMS_PER_ARTIST)
                .map(|n| {
                    let id = a * 10 + n;
                    let entries: HashMap<&str, BoltType> = HashMap::from([
                        ("id", id.into()),
                        ("title", format!("Graph Album {id}").into()),
                        ("year", (1980 + id).into()),
                    ]);
                    BoltType::from(entries)
                })
                .collect();
            let entries: HashMap<&str, BoltType> = HashMap::from([
                ("id", a.into()),
                ("name", format!("Graph Artist {a}").into()),
                ("albums", albums.into()),
            ]);
            BoltType::from(entries)
        })
        .collect();
    app.graph
        .execute(
            query(
                "UNWIND $artists AS ar
                 MERGE (artist:AqSvcArtist {id: ar.id}) SET artist.name = ar.name
                 WITH artist, ar UNWIND ar.albums AS al
                 MERGE (album:AqSvcAlbum {id: al.id}) SET album.title = al.title, album.year = al.year
                 MERGE (artist)-[:RELEASED]->(album)",
            )
            .param("artists", artists),
        )
        .await?;

    app.books
        .write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS svc_plots (id INTEGER PRIMARY KEY, title TEXT NOT NULL, genre TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS svc_characters (
                     id INTEGER PRIMARY KEY, plot_id INTEGER NOT NULL REFERENCES svc_plots (id),
                     name TEXT NOT NULL, role TEXT NOT NULL);
                 CREATE INDEX IF NOT EXISTS svc_characters_plot ON svc_characters (plot_id);",
            )?;
            let mut plot = tx.prepare("INSERT OR IGNORE INTO svc_plots (id, title, genre) VALUES (?1, ?2, ?3)")?;
            let mut character =
                tx.prepare("INSERT OR IGNORE INTO svc_characters (id, plot_id, name, role) VALUES (?1, ?2, ?3, ?4)")?;
            for p in 1..=PLOTS {
                let genre = if p % 2 == 0 { "mystery" } else { "fantasy" };
                plot.execute(aquifer_sqlite::rusqlite::params![p, format!("Plot {p}"), genre])?;
                for (i, role) in ROLES.iter().enumerate() {
                    let id = p * 10 + i as i64;
                    character.execute(aquifer_sqlite::rusqlite::params![id, p, format!("Character {id}"), role])?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(())
}
