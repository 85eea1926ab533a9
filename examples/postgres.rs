//! A music library on PostgreSQL with aquifer-postgres: the `audio_tracks` table of a track catalogue
//! (processing status, metadata, technical specs, storage paths), full-text search through a generated
//! `tsvector` column, typo-tolerant search with pg_trgm, CRUD, pagination, a bulk import of 10,000 tracks,
//! tracks by album loaded N+1 against a loader-free aquifer-batch BatchLoader, a preload and one query, and the pool's health
//! report and statistics at the end.
//!
//!     cargo run --example postgres
//!
//! Connects to `POSTGRES_URL` (or `DATABASE_URL`), default `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`
//! (the standard port; for the project's own server, 127.0.0.1:15432, run
//! `bash scripts/dev-services.sh postgres && eval "$(bash scripts/dev-services.sh env)"` first, docs/development.md); pool settings come from `POSTGRES_POOL_*`. The example owns
//! the schema `aquifer_example` and empties its table on every run. Needs the pg_trgm extension in the
//! database (`CREATE EXTENSION pg_trgm`, done by scripts/services/10-postgres.sh).

use std::time::{Duration, Instant};

use aquifer_batch::FetchRows;
use aquifer_batch::postgres::{Columns, PgBulk, PgBulkError, PgRows};

use aquifer_postgres::sqlx::postgres::PgRow;
use aquifer_postgres::sqlx::{self, FromRow, Row};
use aquifer_postgres::{PgConfig, PgOperationError, PgPool};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS aquifer_example;
CREATE TABLE IF NOT EXISTS aquifer_example.audio_tracks (
    id               uuid PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    -- metadata
    title            text NOT NULL,
    artist           text,
    album            text,
    genre            text,
    year             int CHECK (year BETWEEN 1800 AND 2100),
    tags             jsonb NOT NULL DEFAULT '{}',
    -- technical specs
    duration_seconds double precision CHECK (duration_seconds >= 0),
    channels         smallint CHECK (channels > 0),
    sample_rate      int CHECK (sample_rate > 0),
    bitrate          int CHECK (bitrate > 0),
    format           text,
    -- storage paths
    audio_path       text NOT NULL,
    thumbnail_path   text,
    -- full-text search, maintained by PostgreSQL itself
    search_vector    tsvector GENERATED ALWAYS AS (
                         setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
                         setweight(to_tsvector('english', coalesce(artist, '')), 'B') ||
                         setweight(to_tsvector('english', coalesce(album, '')), 'C') ||
                         setweight(to_tsvector('english', coalesce(genre, '')), 'D')) STORED
);
CREATE INDEX IF NOT EXISTS audio_tracks_search_idx ON aquifer_example.audio_tracks USING gin (search_vector);
CREATE INDEX IF NOT EXISTS audio_tracks_title_trgm_idx ON aquifer_example.audio_tracks USING gin (title gin_trgm_ops);
CREATE INDEX IF NOT EXISTS audio_tracks_artist_trgm_idx ON aquifer_example.audio_tracks USING gin (artist gin_trgm_ops);
CREATE INDEX IF NOT EXISTS audio_tracks_status_idx ON aquifer_example.audio_tracks (status);
CREATE INDEX IF NOT EXISTS audio_tracks_created_idx ON aquifer_example.audio_tracks (created_at DESC, id);
"#;

const COLUMNS: &str = "id, status, title, artist, album, genre, year, tags, duration_seconds, channels, \
                       sample_rate, bitrate, format, audio_path, thumbnail_path, created_at::text AS created_at";

/// Where a track is in the processing pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Processing => "PROCESSING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<Status, sqlx::Error> {
        Ok(match s {
            "PENDING" => Status::Pending,
            "PROCESSING" => Status::Processing,
            "COMPLETED" => Status::Completed,
            "FAILED" => Status::Failed,
            other => return Err(sqlx::Error::Decode(format!("unknown track status {other:?}").into())),
        })
    }
}

/// A track as stored.
#[derive(Debug, Clone)]
struct Track {
    id: Uuid,
    status: Status,
    title: String,
    artist: Option<String>,
    album: Option<String>,
    genre: Option<String>,
    year: Option<i32>,
    tags: serde_json::Value,
    duration_seconds: Option<f64>,
    channels: Option<i16>,
    sample_rate: Option<i32>,
    bitrate: Option<i32>,
    format: Option<String>,
    audio_path: String,
    thumbnail_path: Option<String>,
    created_at: String,
}

impl<'r> FromRow<'r, PgRow> for Track {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Track {
            id: row.try_get("id")?,
            status: Status::parse(row.try_get("status")?)?,
            title: row.try_get("title")?,
            artist: row.try_get("artist")?,
            album: row.try_get("album")?,
            genre: row.try_get("genre")?,
            year: row.try_get("year")?,
            tags: row.try_get("tags")?,
            duration_seconds: row.try_get("duration_seconds")?,
            channels: row.try_get("channels")?,
            sample_rate: row.try_get("sample_rate")?,
            bitrate: row.try_get("bitrate")?,
            format: row.try_get("format")?,
            audio_path: row.try_get("audio_path")?,
            thumbnail_path: row.try_get("thumbnail_path")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// What an upload tells us about a new track.
#[derive(Debug, Clone)]
struct NewTrack {
    title: String,
    artist: Option<String>,
    album: Option<String>,
    genre: Option<String>,
    year: Option<i32>,
    tags: serde_json::Value,
    duration_seconds: f64,
    channels: i16,
    sample_rate: i32,
    bitrate: i32,
    format: String,
}

/// The catalogue's queries. Each goes through an aquifer-postgres helper: timed as
/// `db.client.operation.duration`, retried on serialization failures, deadlocks and lost connections.
struct Library {
    pool: PgPool,
}

impl Library {
    async fn insert(&self, t: &NewTrack) -> Result<Track, PgOperationError> {
        let id = Uuid::new_v4();
        let sql = format!(
            "INSERT INTO aquifer_example.audio_tracks (id, title, artist, album, genre, year, tags, duration_seconds, \
             channels, sample_rate, bitrate, format, audio_path, thumbnail_path) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
        );
        self.pool
            .fetch_one(|| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(id)
                    .bind(&t.title)
                    .bind(&t.artist)
                    .bind(&t.album)
                    .bind(&t.genre)
                    .bind(t.year)
                    .bind(&t.tags)
                    .bind(t.duration_seconds)
                    .bind(t.channels)
                    .bind(t.sample_rate)
                    .bind(t.bitrate)
                    .bind(&t.format)
                    .bind(format!("audio/{id}.{}", t.format))
                    .bind(format!("thumbnails/{id}.jpg"))
            })
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Track>, PgOperationError> {
        let sql = format!("SELECT {COLUMNS} FROM aquifer_example.audio_tracks WHERE id = $1");
        self.pool.fetch_optional(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id)).await
    }

    /// Full-text search over title, artist, album and genre (weighted in that order), best matches first.
    async fn search(&self, text: &str, limit: i64) -> Result<Vec<(Track, f32)>, PgOperationError> {
        let sql = format!(
            "SELECT {COLUMNS}, ts_rank(search_vector, q) AS rank \
             FROM aquifer_example.audio_tracks, websearch_to_tsquery('english', $1) q \
             WHERE search_vector @@ q ORDER BY rank DESC, id LIMIT $2"
        );
        let rows: Vec<Ranked> =
            self.pool.fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(text).bind(limit)).await?;
        Ok(rows.into_iter().map(|r| (r.track, r.score)).collect())
    }

    /// Typo-tolerant search on title and artist with pg_trgm similarity.
    async fn fuzzy_search(
        &self,
        text: &str,
        threshold: f32,
        limit: i64,
    ) -> Result<Vec<(Track, f32)>, PgOperationError> {
        let sql = format!(
            "SELECT {COLUMNS}, greatest(similarity(title, $1), similarity(coalesce(artist, ''), $1)) AS rank \
             FROM aquifer_example.audio_tracks \
             WHERE greatest(similarity(title, $1), similarity(coalesce(artist, ''), $1)) >= $2 \
             ORDER BY rank DESC, id LIMIT $3"
        );
        let rows: Vec<Ranked> = self
            .pool
            .fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(text).bind(threshold).bind(limit))
            .await?;
        Ok(rows.into_iter().map(|r| (r.track, r.score)).collect())
    }

    async fn update_status(&self, id: Uuid, status: Status) -> Result<bool, PgOperationError> {
        let n = self
            .pool
            .execute(|| {
                sqlx::query("UPDATE aquifer_example.audio_tracks SET status = $2, updated_at = now() WHERE id = $1")
                    .bind(id)
                    .bind(status.as_str())
            })
            .await?;
        Ok(n == 1)
    }

    async fn delete(&self, id: Uuid) -> Result<bool, PgOperationError> {
        let n = self
            .pool
            .execute(|| sqlx::query("DELETE FROM aquifer_example.audio_tracks WHERE id = $1").bind(id))
            .await?;
        Ok(n == 1)
    }

    /// One page, newest first (keyed on created_at then id so pages never overlap).
    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Track>, PgOperationError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM aquifer_example.audio_tracks ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
        );
        self.pool.fetch_all(|| sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(limit).bind(offset)).await
    }

    async fn count(&self, status: Option<Status>) -> Result<i64, PgOperationError> {
        let (n,): (i64,) = self
            .pool
            .fetch_one(|| {
                sqlx::query("SELECT count(*) FROM aquifer_example.audio_tracks WHERE $1::text IS NULL OR status = $1")
                    .bind(status.map(Status::as_str))
            })
            .await?;
        Ok(n)
    }

    /// Imports tracks with aquifer-batch's `PgBulk::insert`: one `INSERT … SELECT * FROM UNNEST($1, …)`
    /// statement, one array parameter per column whatever the row count, through the pool's operation runner
    /// (timed, and retried when it cannot have applied).
    async fn bulk_insert(&self, tracks: &[NewTrack]) -> Result<u64, PgBulkError> {
        let rows: Vec<(Uuid, &NewTrack)> = tracks.iter().map(|t| (Uuid::new_v4(), t)).collect();
        let columns = Columns::from_rows(&rows)
            .column("id", |(id, _)| *id)
            .column("title", |(_, t)| t.title.clone())
            .column("artist", |(_, t)| t.artist.clone())
            .column("album", |(_, t)| t.album.clone())
            .column("genre", |(_, t)| t.genre.clone())
            .column("year", |(_, t)| t.year)
            .column("duration_seconds", |(_, t)| t.duration_seconds)
            .column("channels", |(_, t)| t.channels)
            .column("sample_rate", |(_, t)| t.sample_rate)
            .column("bitrate", |(_, t)| t.bitrate)
            .column("format", |(_, t)| t.format.clone())
            .column("audio_path", |(id, t)| format!("audio/{id}.{}", t.format))
            .column("status", |_| Status::Completed.as_str());
        self.pool.insert("aquifer_example.audio_tracks", &columns).await
    }
}

/// A track with a search score.
struct Ranked {
    track: Track,
    score: f32,
}

impl<'r> FromRow<'r, PgRow> for Ranked {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Ranked { track: Track::from_row(row)?, score: row.try_get("rank")? })
    }
}

fn new_track(title: &str, artist: &str, album: &str, genre: &str, year: i32) -> NewTrack {
    NewTrack {
        title: title.into(),
        artist: Some(artist.into()),
        album: Some(album.into()),
        genre: Some(genre.into()),
        year: Some(year),
        tags: serde_json::json!({ "source": "example", "explicit": false }),
        duration_seconds: 180.0 + f64::from(year % 120),
        channels: 2,
        sample_rate: 44_100,
        bitrate: 320,
        format: "mp3".into(),
    }
}

fn show(t: &Track) -> String {
    format!(
        "{} - {} ({}, {}, {}) [{}] {:.0}s {}ch {}Hz {}kbps {} at {} thumb {} tags {} added {}",
        t.artist.as_deref().unwrap_or("?"),
        t.title,
        t.album.as_deref().unwrap_or("?"),
        t.genre.as_deref().unwrap_or("?"),
        t.year.map_or("?".into(), |y| y.to_string()),
        t.status.as_str(),
        t.duration_seconds.unwrap_or_default(),
        t.channels.unwrap_or_default(),
        t.sample_rate.unwrap_or_default(),
        t.bitrate.unwrap_or_default(),
        t.format.as_deref().unwrap_or("?"),
        t.audio_path,
        t.thumbnail_path.as_deref().unwrap_or("-"),
        t.tags,
        t.created_at,
    )
}

/// The whole run is one N+1 scope (a service opens one per request, e.g. with aquifer-http's `NPlusOneLayer`):
/// when it ends, each N+1 loop the pool's helpers ran in it is logged once with its `file:line` (target
/// `aquifer::n_plus_one`) and counted in `aquifer.n_plus_one`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Exports the pools' metrics over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see aquifer-otel); kept
    // until after the scope, which counts its findings in `aquifer.n_plus_one` when it ends.
    let _otel = aquifer_otel::init()?;
    aquifer::n_plus_one::scope(run()).await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();

    // The `POSTGRES_*` variables, with the local server as the default URL when neither POSTGRES_URL nor
    // DATABASE_URL is set (`from_env` alone would report the missing URL).
    let lookup = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let with_default = |name: &str| {
        lookup(name)
            .or_else(|| (name == "POSTGRES_URL" && lookup("DATABASE_URL").is_none()).then(|| DEFAULT_URL.to_owned()))
    };
    let mut config = PgConfig::from_lookup("POSTGRES", with_default)?;
    config.pool.name.get_or_insert_with(|| "music-library".into());
    config.pool.min_idle = config.pool.min_idle.max(2);
    config.statement_timeout.get_or_insert(Duration::from_secs(30));
    println!("connecting to {} ...", config.url.as_ref().expect("set above"));
    // Warm: a wrong URL or password fails here, not on the first request.
    let pool = config.connect().await?;

    let mut conn = pool.get().await?;
    sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
    sqlx::raw_sql("TRUNCATE aquifer_example.audio_tracks").execute(&mut *conn).await?;
    drop(conn);
    let library = Library { pool: pool.clone() };

    // Insert and read back.
    let seeds = [
        new_track("Strawberry Fields Forever", "The Beatles", "Magical Mystery Tour", "Rock", 1967),
        new_track("Here Comes the Sun", "The Beatles", "Abbey Road", "Rock", 1969),
        new_track("Bohemian Rhapsody", "Queen", "A Night at the Opera", "Rock", 1975),
        new_track("So What", "Miles Davis", "Kind of Blue", "Jazz", 1959),
        new_track("Clair de Lune", "Claude Debussy", "Suite bergamasque", "Classical", 1905),
    ];
    let mut inserted = Vec::new();
    for s in &seeds {
        inserted.push(library.insert(s).await?);
    }
    println!("\ninserted {} tracks", inserted.len());
    let first = &inserted[0];
    let fetched = library.get(first.id).await?.expect("just inserted");
    println!("get by id {}: {}", first.id, show(&fetched));
    assert!(library.get(Uuid::new_v4()).await?.is_none());

    // Full-text search: stemming ("fields" matches "field"), weights rank title hits first.
    println!("\nfull-text search \"beatles sun\":");
    for (t, rank) in library.search("beatles sun", 10).await? {
        println!("  {rank:.3}  {} - {}", t.artist.as_deref().unwrap_or("?"), t.title);
    }
    println!("full-text search \"strawberry field\":");
    for (t, rank) in library.search("strawberry field", 10).await? {
        println!("  {rank:.3}  {} - {}", t.artist.as_deref().unwrap_or("?"), t.title);
    }

    // Typo-tolerant search.
    for typo in ["beatls", "bohemian rapsody", "mils davis"] {
        println!("fuzzy search {typo:?}:");
        for (t, score) in library.fuzzy_search(typo, 0.3, 5).await? {
            println!("  {score:.3}  {} - {}", t.artist.as_deref().unwrap_or("?"), t.title);
        }
    }

    // Status pipeline, delete.
    assert!(library.update_status(first.id, Status::Processing).await?);
    assert!(library.update_status(first.id, Status::Completed).await?);
    println!("\nstatus of {}: {:?}", first.title, library.get(first.id).await?.map(|t| t.status));
    let gone = &inserted[4];
    assert!(library.delete(gone.id).await?);
    assert!(!library.delete(gone.id).await?, "deleting twice finds nothing");
    println!("deleted {}", gone.title);

    // Bulk import.
    let artists = ["Aurora Lane", "The Midnight Owls", "Kofi & the Rivers", "Sofia Brandt", "Neon Harbor"];
    let genres = ["Rock", "Jazz", "Electronic", "Folk", "Hip-Hop"];
    let bulk: Vec<NewTrack> = (0..10_000)
        .map(|i| {
            new_track(
                &format!("Track {i:05}"),
                artists[i % artists.len()],
                &format!("Volume {}", i / 100),
                genres[(i / 7) % genres.len()],
                1960 + (i % 65) as i32,
            )
        })
        .collect();
    let started = Instant::now();
    let n = library.bulk_insert(&bulk).await?;
    println!("\nbulk insert: {n} tracks in {:.0?} (one INSERT … UNNEST statement)", started.elapsed());

    // Tracks by album: N+1 against a BatchLoader against one query.
    let albums: Vec<String> = (0..100).map(|v| format!("Volume {v}")).collect();
    tracks_by_album(&pool, &albums).await?;

    // Counts and pages.
    println!(
        "count: {} tracks, {} completed, {} pending",
        library.count(None).await?,
        library.count(Some(Status::Completed)).await?,
        library.count(Some(Status::Pending)).await?
    );
    for page in 0..2 {
        let tracks = library.list(3, page * 3).await?;
        println!("page {}: {:?}", page + 1, tracks.iter().map(|t| t.title.as_str()).collect::<Vec<_>>());
    }
    println!("fuzzy search \"midnight owl\" among 10,000:");
    for (t, score) in library.fuzzy_search("midnight owl", 0.4, 3).await? {
        println!("  {score:.3}  {} - {}", t.artist.as_deref().unwrap_or("?"), t.title);
    }

    // Concurrency: 64 readers share the pool's connections.
    let started = Instant::now();
    let readers: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                Library { pool }.search(["rock", "jazz", "folk", "electronic"][i % 4], 5).await.map(|r| r.len())
            })
        })
        .collect();
    for r in readers {
        r.await??;
    }
    println!("64 concurrent searches in {:.0?}", started.elapsed());

    // Health and statistics.
    let health = pool.health().await;
    println!("\nhealth:\n{}", serde_json::to_string_pretty(&health)?);
    println!("state: {:?}", pool.state());
    println!("stats: {:?}", pool.stats());
    pool.close().await;
    Ok(())
}

/// The track titles of `albums`: one query per album through the pool (N+1), a loader-free BatchLoader serving
/// every album's concurrent load, a preload of every album's tracks, or one hand-written query. Prints the
/// table with the fastest of 5 runs each.
async fn tracks_by_album(pool: &PgPool, albums: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let n_plus_one = || async {
        let mut found = 0;
        for album in albums {
            // The N+1 loop: aquifer::n_plus_one reports the `fetch_all` call below once, when the scope ends.
            let titles: Vec<(String,)> = pool
                .fetch_all(|| {
                    sqlx::query("SELECT title FROM aquifer_example.audio_tracks WHERE album = $1").bind(album)
                })
                .await?;
            found += titles.len();
        }
        Ok::<usize, Box<dyn std::error::Error>>(found)
    };
    // Tracks keyed by album, read as typed rows: no hand-written Loader.
    let tracks =
        PgRows::<String, (String, String)>::table(pool, "aquifer_example.audio_tracks", "album", &["album", "title"])?;
    let batched = || async {
        // One loader per request; the albums' resolvers load concurrently in the request's task.
        let loader = tracks.clone().one_to_many(|(album, _)| album.clone());
        let albums = albums.to_vec();
        let loaded = tokio::spawn(async move {
            let loader = &loader;
            futures_util::future::join_all(albums.into_iter().map(|a| async move { loader.load(a).await })).await
        })
        .await?;
        let mut found = 0;
        for titles in loaded {
            found += titles?.map_or(0, |t| t.len());
        }
        Ok::<usize, Box<dyn std::error::Error>>(found)
    };
    let preload = || async {
        // Parents get their children in one statement per 1,000 albums.
        let mut parents: Vec<(String, Vec<(String, String)>)> =
            albums.iter().map(|a| (a.clone(), Vec::new())).collect();
        tracks.preload(&mut parents, |p| p.0.clone(), |t| t.0.clone(), |p, t| p.1 = t).await?;
        Ok::<usize, Box<dyn std::error::Error>>(parents.iter().map(|p| p.1.len()).sum())
    };
    let join = || async {
        let rows: Vec<(String, String)> = pool
            .fetch_all(|| {
                sqlx::query("SELECT album, title FROM aquifer_example.audio_tracks WHERE album = ANY($1)").bind(albums)
            })
            .await?;
        Ok::<usize, Box<dyn std::error::Error>>(rows.len())
    };
    let mut best = [Duration::MAX; 4];
    let mut found = [0; 4];
    for _ in 0..5 {
        let t = Instant::now();
        found[0] = n_plus_one().await?;
        best[0] = best[0].min(t.elapsed());
        let t = Instant::now();
        found[1] = batched().await?;
        best[1] = best[1].min(t.elapsed());
        let t = Instant::now();
        found[2] = preload().await?;
        best[2] = best[2].min(t.elapsed());
        let t = Instant::now();
        found[3] = join().await?;
        best[3] = best[3].min(t.elapsed());
    }
    assert!(found.iter().all(|&n| n == found[0]), "all four load the same tracks: {found:?}");
    println!("\ntracks of {} albums ({} tracks), fastest of 5:", albums.len(), found[0]);
    println!("  | strategy                               | statements | time      | vs N+1 |");
    println!("  |----------------------------------------|------------|-----------|--------|");
    let names = [
        "N+1: one query per album",
        "BatchLoader: concurrent loads, batched",
        "preload: children of every album",
        "one hand-written query",
    ];
    let statements = [albums.len(), 1, 1, 1];
    for i in 0..4 {
        println!(
            "  | {:<38} | {:>10} | {:>6.2} ms | {:>5.1}x |",
            names[i],
            statements[i],
            best[i].as_secs_f64() * 1e3,
            best[0].as_secs_f64() / best[i].as_secs_f64()
        );
    }
    Ok(())
}
