//! A vocabulary app on MySQL/MariaDB: users save words and review them; each review is one transaction that
//! records the answer, reschedules the word and marks the user active. Shows the aquifer-mysql helpers
//! (`fetch_one`, `fetch_all`, `execute`, `transaction`), the driver's own API on a pooled connection,
//! concurrent use of a small pool, 200 users' saved words written with aquifer-batch's bulk helpers on the pool
//! and loaded N+1 against a loader aquifer-batch builds from the table (no hand-written `Loader`), and the
//! pool's health report and statistics.
//!
//!     cargo run --example mysql           # default mysql://root@127.0.0.1:3306/test, or MYSQL_URL=mysql://user:pass@host:3306/db
//!
//! Against the project's MariaDB (127.0.0.1:13306, docs/development.md):
//!
//!     bash scripts/dev-services.sh mariadb && eval "$(bash scripts/dev-services.sh env)" && cargo run --example mysql
//!
//! Tables (created if missing, in the URL's database): vocab_users, vocab_saved_words, vocab_reviews.

use std::time::{Duration, Instant};

use aquifer_batch::mysql::{MySqlBulk, MySqlRows};
use aquifer_batch::{BulkError, FetchRows};
use aquifer_mysql::mysql_async::Value;
use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::{MySqlConfig, MySqlOperationError, MySqlPool, PoolConfig};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vocab_users (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    native_language CHAR(2) NOT NULL,
    learning_language CHAR(2) NOT NULL,
    last_active_at DATETIME NULL
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS vocab_saved_words (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT UNSIGNED NOT NULL,
    word VARCHAR(100) NOT NULL,
    review_count INT NOT NULL DEFAULT 0,
    correct_streak INT NOT NULL DEFAULT 0,
    is_known BOOLEAN NOT NULL DEFAULT FALSE,
    next_review_at DATETIME NOT NULL,
    UNIQUE KEY (user_id, word),
    FOREIGN KEY (user_id) REFERENCES vocab_users (id) ON DELETE CASCADE
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS vocab_reviews (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    saved_word_id BIGINT UNSIGNED NOT NULL,
    correct BOOLEAN NOT NULL,
    reviewed_at DATETIME NOT NULL,
    FOREIGN KEY (saved_word_id) REFERENCES vocab_saved_words (id) ON DELETE CASCADE
) ENGINE=InnoDB";

const WORDS: [&str; 8] = ["Wasserlauf", "Quelle", "Brunnen", "Grundwasser", "Tropfen", "Flut", "Ebbe", "Strom"];

/// A user by email, created on first sight.
async fn upsert_user(pool: &MySqlPool, email: &str) -> Result<u64, MySqlOperationError> {
    pool.execute(
        "INSERT INTO vocab_users (email, native_language, learning_language) VALUES (?, 'en', 'de')
         ON DUPLICATE KEY UPDATE email = email",
        (email,),
    )
    .await?;
    let id: Option<u64> = pool.fetch_optional("SELECT id FROM vocab_users WHERE email = ?", (email,)).await?;
    Ok(id.expect("the user was just inserted"))
}

/// Saves a word for a user (a word saved twice stays one row).
async fn save_word(pool: &MySqlPool, user_id: u64, word: &str) -> Result<(), MySqlOperationError> {
    pool.execute(
        "INSERT IGNORE INTO vocab_saved_words (user_id, word, next_review_at) VALUES (?, ?, UTC_TIMESTAMP())",
        (user_id, word),
    )
    .await?;
    Ok(())
}

/// Words due for review, oldest first.
async fn due_words(pool: &MySqlPool, user_id: u64, limit: u32) -> Result<Vec<(u64, String)>, MySqlOperationError> {
    pool.fetch_all(
        "SELECT id, word FROM vocab_saved_words
         WHERE user_id = ? AND NOT is_known AND next_review_at <= UTC_TIMESTAMP()
         ORDER BY next_review_at, id LIMIT ?",
        (user_id, limit),
    )
    .await
}

/// Records one answer in a single transaction: the review row, the word's schedule (1, 2, 4, 8... days after
/// each correct answer in a row, again tomorrow after a miss, known after 3 in a row), the user's activity.
/// A deadlock or lost connection before COMMIT re-runs the whole transaction.
async fn record_review(
    pool: &MySqlPool,
    user_id: u64,
    saved_word_id: u64,
    correct: bool,
) -> Result<bool, MySqlOperationError> {
    pool.transaction(|tx| {
        Box::pin(async move {
            tx.exec_drop(
                "INSERT INTO vocab_reviews (saved_word_id, correct, reviewed_at) VALUES (?, ?, UTC_TIMESTAMP())",
                (saved_word_id, correct),
            )
            .await?;
            tx.exec_drop(
                "UPDATE vocab_saved_words
                 SET review_count = review_count + 1,
                     correct_streak = IF(?, correct_streak + 1, 0),
                     is_known = correct_streak >= 3,
                     next_review_at = UTC_TIMESTAMP() + INTERVAL POW(2, correct_streak) DAY
                 WHERE id = ? AND user_id = ?",
                (correct, saved_word_id, user_id),
            )
            .await?;
            tx.exec_drop("UPDATE vocab_users SET last_active_at = UTC_TIMESTAMP() WHERE id = ?", (user_id,)).await?;
            let known: Option<bool> =
                tx.exec_first("SELECT is_known FROM vocab_saved_words WHERE id = ?", (saved_word_id,)).await?;
            Ok(known.unwrap_or(false))
        })
    })
    .await
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
    tracing_subscriber::fmt().with_env_filter("warn,aquifer_core=info").init();
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());

    // Session settings on every connection; TCP as written in the URL (see docs/mysql.md for the socket).
    let config = MySqlConfig {
        pool: PoolConfig { name: Some("vocab".into()), max_size: 8, min_idle: 2, ..PoolConfig::default() },
        time_zone: Some("+00:00".into()),
        sql_mode: Some("STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION".into()),
        wait_timeout: Some(Duration::from_secs(3600)),
        program_name: "vocab-example".into(),
        ..MySqlConfig::from_url(url)
    };
    // Connects now: a wrong password or a stopped server fails here, with the server's own message.
    let pool = config.connect().await?;
    println!("connected: {pool:?}");

    pool.execute(SCHEMA, ()).await?;
    // Every run starts alice afresh (her words and reviews go with her: ON DELETE CASCADE).
    let gone = pool.execute("DELETE FROM vocab_users WHERE email = ?", ("alice@example.com",)).await?;
    println!("removed {} earlier user(s)", gone.rows_affected);

    let alice = upsert_user(&pool, "alice@example.com").await?;
    for word in WORDS {
        save_word(&pool, alice, word).await?;
    }
    let due = due_words(&pool, alice, 20).await?;
    println!("alice (user {alice}) has {} words due: {:?}", due.len(), due.iter().map(|(_, w)| w).collect::<Vec<_>>());

    // A review session: 40 answers from 8 concurrent tasks (think: 8 devices) through a pool of 8.
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (pool, due) = (pool.clone(), due.clone());
        tasks.push(tokio::spawn(async move {
            let mut learned = 0;
            for i in 0..5usize {
                let (word_id, _) = &due[(task + i) % due.len()];
                let correct = (task + i) % 4 != 0;
                if record_review(&pool, alice, *word_id, correct).await? {
                    learned += 1;
                }
            }
            Ok::<_, MySqlOperationError>(learned)
        }));
    }
    for t in tasks {
        t.await??;
    }

    // The driver's own API on a pooled connection, for what the helpers do not cover.
    {
        let mut conn = pool.get().await?;
        let stats: Vec<(String, i64, i64, bool)> = conn
            .exec(
                "SELECT w.word, w.review_count, w.correct_streak, w.is_known FROM vocab_saved_words w
                 WHERE w.user_id = ? ORDER BY w.word",
                (alice,),
            )
            .await?;
        println!("\nword            reviews  streak  known");
        for (word, reviews, streak, known) in stats {
            println!("{word:<15} {reviews:>7} {streak:>7}  {known}");
        }
        let (reviews, tz): (i64, String) = conn
            .exec_first(
                "SELECT COUNT(*), @@session.time_zone FROM vocab_reviews r
                 JOIN vocab_saved_words w ON w.id = r.saved_word_id WHERE w.user_id = ?",
                (alice,),
            )
            .await?
            .expect("one row");
        println!("{reviews} reviews recorded so far (session time zone {tz})");
    }

    saved_words_per_user(&pool).await?;

    let health = pool.health().await;
    println!("\nhealth: {}", serde_json::to_string_pretty(&health)?);
    println!("state:  {}", pool.state());
    println!("stats:  {:?}", pool.stats());
    pool.close().await;
    Ok(())
}

/// 200 users with 5 saved words each, written with the pool's chunked multi-row inserts (aquifer-batch's
/// `MySqlBulk`); then their words loaded N+1 (one query per user) against a loader aquifer-batch builds from the
/// table (`MySqlRows` + `one_to_many`, no hand-written `Loader`) serving every user's concurrent load.
async fn saved_words_per_user(pool: &MySqlPool) -> Result<(), Box<dyn std::error::Error>> {
    pool.execute("DELETE FROM vocab_users WHERE email LIKE ?", ("batch-user-%",)).await?;
    let users: Vec<Vec<Value>> = (0..200)
        .map(|i| vec![Value::from(format!("batch-user-{i}@example.com")), Value::from("en"), Value::from("de")])
        .collect();
    let columns = ["email", "native_language", "learning_language"];
    // `None`: chunked under the max_allowed_packet the pool read when it connected.
    let ids: Vec<u64> = match pool.insert_returning(None, "vocab_users", &columns, &users, &["id"]).await {
        // MariaDB 10.5+: the generated ids, in the order of `users`.
        Ok(ids) => ids,
        // MySQL has no INSERT … RETURNING: insert, then read the ids back.
        Err(BulkError::Unsupported { .. }) => {
            pool.insert(None, "vocab_users", &columns, &users).await?;
            pool.fetch_all("SELECT id FROM vocab_users WHERE email LIKE ? ORDER BY id", ("batch-user-%",)).await?
        }
        Err(e) => return Err(e.into()),
    };
    let words: Vec<Vec<Value>> = ids
        .iter()
        .flat_map(|&id| {
            WORDS[..5].iter().map(move |w| vec![Value::from(id), Value::from(*w), Value::from("2026-01-01")])
        })
        .collect();
    pool.insert(None, "vocab_saved_words", &["user_id", "word", "next_review_at"], &words).await?;
    // `(user_id, word)` rows of a user's saved words; names checked here, before anything is sent.
    let saved_words =
        MySqlRows::<u64, (u64, String)>::table(pool, "vocab_saved_words", "user_id", &["user_id", "word"])?;

    let mut best = [Duration::MAX; 2];
    let mut found = [0usize; 2];
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0;
        for &id in &ids {
            // The N+1 loop: aquifer::n_plus_one reports the `fetch_all` call below once, when the scope ends.
            let words: Vec<String> =
                pool.fetch_all("SELECT word FROM vocab_saved_words WHERE user_id = ?", (id,)).await?;
            n += words.len();
        }
        found[0] = n;
        best[0] = best[0].min(t.elapsed());

        let t = Instant::now();
        // One loader per request (`one_to_many`: every row of a user); the users' resolvers load concurrently in
        // the request's task.
        let loader = saved_words.clone().one_to_many(|w| w.0);
        let keys = ids.clone();
        let loaded = tokio::spawn(async move {
            let loader = &loader;
            futures_util::future::join_all(keys.into_iter().map(|id| async move { loader.load(id).await })).await
        })
        .await?;
        let mut n = 0;
        for words in loaded {
            n += words?.map_or(0, |w| w.len());
        }
        found[1] = n;
        best[1] = best[1].min(t.elapsed());
    }
    assert_eq!(found[0], found[1], "both load the same words");
    println!("\nsaved words of {} users ({} words), fastest of 5:", ids.len(), found[0]);
    println!("  | strategy                               | statements | time      | vs N+1 |");
    println!("  |----------------------------------------|------------|-----------|--------|");
    for (i, (name, statements)) in
        [("N+1: one query per user", ids.len()), ("MySqlRows loader: concurrent, batched", 1)].into_iter().enumerate()
    {
        println!(
            "  | {name:<38} | {statements:>10} | {:>6.2} ms | {:>5.1}x |",
            best[i].as_secs_f64() * 1e3,
            best[0].as_secs_f64() / best[i].as_secs_f64()
        );
    }
    pool.execute("DELETE FROM vocab_users WHERE email LIKE ?", ("batch-user-%",)).await?;
    Ok(())
}
