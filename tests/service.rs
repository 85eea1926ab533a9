//! examples/service.rs end to end: the example's binary started against the real servers (PostgreSQL, MariaDB,
//! the Bolt server, a SQLite file; VictoriaMetrics as the OTLP receiver; all from scripts/dev-services.sh),
//! its endpoints called with a real HTTP client and their JSON checked field by field, no password in any
//! response or in its output, its metrics exported, and a SIGTERM that closes every pool: the service exits 0
//! and the server holds none of its sessions any more.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aquifer_postgres::sqlx::{self, Connection, PgConnection};
use aquifer_testing::servers;
use aquifer_testing::{Victoria, require_server, unique_name};
use serde_json::Value;

const SCRIPT: &str = "bash scripts/dev-services.sh";
const PG_SECRET: &str = "svc-pg-secret-7";
/// The password of the MariaDB user `aquifer_pw` and of the Bolt server's root (scripts/services/*.sh).
const SERVER_SECRET: &str = "aquifer-secret";

/// The running example: its process, its address, and every line it printed so far.
struct Service {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(common::example_path("service"));
        for var in ["OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_SDK_DISABLED", "DATABASE_URL"]
        {
            cmd.env_remove(var);
        }
        cmd.env("SERVICE_ADDR", "127.0.0.1:0").env("RUST_LOG", "warn");
        // The project's servers (scripts/dev-services.sh), unless `env` says otherwise.
        for (k, v) in common::server_env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the service example");
        // stdout and stderr, line by line, through one channel.
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        std::thread::spawn(move || {
            BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(format!("stderr: {l}"))))
        });
        let mut service = Service { child, base: String::new(), lines, seen: Vec::new() };
        let line = service.wait_for_line("listening on http://", Duration::from_secs(60));
        service.base = line.trim_start_matches("listening on ").to_owned();
        service
    }

    /// Waits for a line starting with `prefix`; fails with everything printed so far.
    fn wait_for_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the service printed no {prefix:?} within {within:?} ({SCRIPT} starts the servers); output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything printed until the process closed its output.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A failed test leaves no service behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path`: status, parsed JSON and the raw body (kept for the password scan).
async fn get(client: &reqwest::Client, base: &str, path: &str, bodies: &mut Vec<String>) -> (u16, Value) {
    let response = client.get(format!("{base}{path}")).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
    bodies.push(body);
    (status, json)
}

async fn post(client: &reqwest::Client, base: &str, path: &str, body: Value, bodies: &mut Vec<String>) -> (u16, Value) {
    let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {body}"));
    bodies.push(body);
    (status, json)
}

fn strs(v: &Value, field: &str) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x[field].as_str().unwrap().to_owned()).collect()
}

/// Sessions on the shared PostgreSQL whose application_name is `app`, once their count satisfies `done` (at most
/// 5 s: a backend exits a moment after its client closes the socket); the last count.
async fn pg_sessions(app: &str, done: impl Fn(i64) -> bool) -> i64 {
    let mut admin = PgConnection::connect(&servers::postgres_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL: {e}; start it with `{SCRIPT}`"));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(app)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if done(n) || Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_serves_every_backend_and_closes_every_pool_on_sigterm() {
    for (what, addr) in [
        ("PostgreSQL", servers::postgres_addr()),
        ("MariaDB", servers::mariadb_addr()),
        ("the Bolt server", servers::bolt_addr()),
    ] {
        require_server(what, &addr, SCRIPT).await;
    }
    let vm = Victoria::require().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("books.db");
    let app_name = unique_name("aq_service");
    let service_name = unique_name("aquifer-service");
    let word = format!("Tau{}", std::process::id());
    let pg_url = servers::postgres_url_as(&format!("postgres:{PG_SECRET}"));
    let my_url = servers::mariadb_url_as(&format!("aquifer_pw:{SERVER_SECRET}"));

    // The service seeds fixed tables: runs of it (parallel test processes) take turns.
    let lock_path = std::env::temp_dir().join("aquifer-example-service.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();

    let mut service = Service::start(&[
        ("POSTGRES_URL", pg_url.as_str()),
        ("POSTGRES_APPLICATION_NAME", app_name.as_str()),
        ("MYSQL_URL", my_url.as_str()),
        ("SQLITE_PATH", db.to_str().unwrap()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &servers::victoria_otlp_endpoint()),
        ("OTEL_METRIC_EXPORT_INTERVAL", common::EXPORT_INTERVAL_MS),
        ("OTEL_SERVICE_NAME", service_name.as_str()),
        ("SERVICE_DRAIN_DELAY", "2s"),
    ]);
    let base = service.base.clone();
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();

    // PostgreSQL: albums with their tracks.
    let (status, albums) = get(&client, &base, "/albums?limit=2&offset=2", &mut bodies).await;
    assert_eq!(status, 200, "{albums}");
    let albums = albums.as_array().unwrap();
    assert_eq!(albums.len(), 2);
    let a = &albums[0];
    assert_eq!((a["id"].as_i64(), a["title"].as_str()), (Some(3), Some("Album 3")));
    assert_eq!((a["artist"].as_str(), a["year"].as_i64()), (Some("Artist 3"), Some(1973)));
    assert_eq!(a["tracks"].as_array().unwrap().len(), 6);
    let t = &a["tracks"][0];
    assert_eq!((t["id"].as_i64(), t["position"].as_i64()), (Some(301), Some(1)));
    assert_eq!((t["title"].as_str(), t["seconds"].as_i64()), (Some("Track 3.1"), Some(151)));
    assert_eq!(strs(&a["tracks"], "title"), (1..=6).map(|p| format!("Track 3.{p}")).collect::<Vec<_>>());
    assert_eq!(albums[1]["id"], 4);
    assert_eq!(albums[1]["tracks"][5]["title"], "Track 4.6");

    let (status, album) = get(&client, &base, "/albums/7", &mut bodies).await;
    assert_eq!((status, album["id"].as_i64(), album["artist"].as_str()), (200, Some(7), Some("Artist 7")));
    assert_eq!(album["tracks"].as_array().unwrap().len(), 6);
    let (status, missing) = get(&client, &base, "/albums/9999", &mut bodies).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("no album 9999")));

    // MySQL: learners with their words, and a word saved.
    let (status, created) =
        post(&client, &base, "/learners/1/words", serde_json::json!({ "word": word }), &mut bodies).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["learner_id"].as_u64(), created["word"].as_str()), (Some(1), Some(word.as_str())));
    assert_eq!(created["created"], true);
    let (status, again) =
        post(&client, &base, "/learners/1/words", serde_json::json!({ "word": word }), &mut bodies).await;
    assert_eq!((status, again["created"].as_bool()), (200, Some(false)));
    let (status, _) =
        post(&client, &base, "/learners/999999/words", serde_json::json!({ "word": "x" }), &mut bodies).await;
    assert_eq!(status, 404);
    let (status, bad) =
        post(&client, &base, "/learners/1/words", serde_json::json!({ "word": " " }), &mut bodies).await;
    assert_eq!((status, bad["error"].as_str()), (422, Some("word: 1 to 100 characters")));

    let (status, learners) = get(&client, &base, "/learners?limit=3", &mut bodies).await;
    assert_eq!(status, 200, "{learners}");
    assert_eq!(learners.as_array().unwrap().len(), 3);
    assert_eq!((learners[0]["id"].as_u64(), learners[0]["email"].as_str()), (Some(1), Some("learner1@example.com")));
    let words: Vec<String> =
        learners[0]["words"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().into()).collect();
    assert!(
        words.contains(&word) && words.contains(&"Brunnen".to_owned()) && words.contains(&"Ebbe".to_owned()),
        "{words:?}"
    );
    assert!(words.windows(2).all(|w| w[0] <= w[1]), "sorted: {words:?}");
    let words: Vec<&str> = learners[2]["words"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(words, ["Brunnen", "Ebbe", "Flut", "Quelle"], "learner 3's seeded words");

    // Neo4j: artists with their albums.
    let (status, artists) = get(&client, &base, "/artists?limit=2&offset=1", &mut bodies).await;
    assert_eq!(status, 200, "{artists}");
    assert_eq!(artists.as_array().unwrap().len(), 2);
    assert_eq!((artists[0]["id"].as_i64(), artists[0]["name"].as_str()), (Some(2), Some("Graph Artist 2")));
    assert_eq!(strs(&artists[0]["albums"], "title"), ["Graph Album 21", "Graph Album 22", "Graph Album 23"]);
    assert_eq!(
        (artists[0]["albums"][0]["id"].as_i64(), artists[0]["albums"][0]["year"].as_i64()),
        (Some(21), Some(2001))
    );
    assert_eq!(artists[1]["id"], 3);
    assert_eq!(artists[1]["albums"].as_array().unwrap().len(), 3);

    // SQLite: plots with their characters.
    let (status, plots) = get(&client, &base, "/plots?limit=2", &mut bodies).await;
    assert_eq!(status, 200, "{plots}");
    assert_eq!(plots.as_array().unwrap().len(), 2);
    assert_eq!((plots[1]["id"].as_i64(), plots[1]["title"].as_str()), (Some(2), Some("Plot 2")));
    assert_eq!(plots[1]["genre"], "mystery");
    assert_eq!(strs(&plots[1]["characters"], "name"), ["Character 20", "Character 21", "Character 22"]);
    assert_eq!(strs(&plots[1]["characters"], "role"), ["protagonist", "antagonist", "mentor"]);

    // 48 concurrent requests over pools of 10: every one served.
    let mut requests = Vec::new();
    for i in 0..48 {
        let (client, url) = (client.clone(), format!("{base}/albums?limit=5&offset={}", i % 20));
        requests.push(tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) }));
    }
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap(), 200);
    }

    // aquifer-http's routes over the five pools.
    let (status, health) = get(&client, &base, "/health", &mut bodies).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("healthy")), "{health}");
    assert_eq!(strs(&health["pools"], "pool"), ["music", "vocab", "graph", "books/writer", "books/readers"]);
    assert_eq!(strs(&health["pools"], "system"), ["postgresql", "mysql", "neo4j", "sqlite", "sqlite"]);
    assert_eq!(
        strs(&health["pools"], "server")[..2],
        [format!("{}/test", servers::postgres_addr()), format!("{}/test", servers::mariadb_addr())]
    );
    let (status, one) = get(&client, &base, "/health/books/readers", &mut bodies).await;
    assert_eq!((status, one["pool"].as_str(), one["status"].as_str()), (200, Some("books/readers"), Some("healthy")));
    let (status, stats) = get(&client, &base, "/stats", &mut bodies).await;
    assert_eq!(status, 200);
    assert_eq!(strs(&stats["pools"], "name"), ["music", "vocab", "graph", "books/writer", "books/readers"]);
    let music = &stats["pools"][0];
    assert_eq!((music["system"].as_str(), music["config"]["name"].as_str()), (Some("postgresql"), Some("music")));
    assert!(music["stats"]["acquired"].as_u64().unwrap() >= 50, "{music}");
    assert_eq!(music["state"]["in_use"], 0);
    assert_eq!(stats["pools"][3]["config"]["max_size"], 1, "SQLite's one writer");

    // No password in any response.
    for body in &bodies {
        for secret in [PG_SECRET, SERVER_SECRET] {
            assert!(!body.contains(secret), "a response holds a password: {body}");
        }
    }

    // Metrics went out over OTLP, one series per pool.
    let exported = vm
        .wait_for(&format!("db_client_connection_max{{service_name=\"{service_name}\"}}"), 5, Duration::from_secs(15))
        .await;
    let mut pools: Vec<&str> = exported.iter().filter_map(|s| s.label("db_client_connection_pool_name")).collect();
    pools.sort();
    assert_eq!(pools, ["books/readers", "books/writer", "graph", "music", "vocab"]);

    // SIGTERM: serving stops, every pool closes, the process exits 0 and PostgreSQL holds none of its sessions.
    assert!(pg_sessions(&app_name, |n| n > 0).await > 0, "the music pool holds sessions while serving");
    let (status, _) = get(&client, &base, "/readyz", &mut bodies).await;
    assert_eq!(status, 200, "ready while serving");
    service.signal("TERM");
    // Readiness turns 503 at once, and the routes keep serving for the drain delay (2 s).
    let draining = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = get(&client, &base, "/readyz", &mut bodies).await;
        if status == 503 {
            assert_eq!(body["status"], "draining");
            break;
        }
        assert!(Instant::now() < draining, "/readyz still answers {status} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, albums) = get(&client, &base, "/albums", &mut bodies).await;
    assert_eq!(status, 200, "a draining service still serves: {albums}");
    let (status, _) = get(&client, &base, "/livez", &mut bodies).await;
    assert_eq!(status, 200, "a draining service is alive");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the service did not exit within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    service.drain();
    let output = service.seen.join("\n");
    assert!(status.success(), "exit status {status}; output:\n{output}");
    assert!(output.contains("SIGTERM received"), "{output}");
    for pool in ["music", "vocab", "graph", "books/writer", "books/readers"] {
        assert!(output.contains(&format!("pool {pool} closed: true")), "{pool} closed: {output}");
        let after = service.seen.iter().find(|l| l.starts_with(&format!("pool {pool} after close: "))).unwrap();
        assert!(after.contains(": size 0/") && after.contains(" 0 in use"), "{after}");
    }
    for name in ["music", "vocab", "graph", "books"] {
        assert!(output.contains(&format!("closed pool {name}: 0 connection(s) still open")), "{output}");
    }
    assert!(output.ends_with("bye"), "{output}");
    assert_eq!(pg_sessions(&app_name, |n| n == 0).await, 0, "PostgreSQL still holds the service's sessions");
    for secret in [PG_SECRET, SERVER_SECRET] {
        assert!(!output.contains(secret), "the service printed a password:\n{output}");
    }

    // The word this run saved goes again (the other rows are the example's fixed data).
    let vocab = aquifer_mysql::connect(&servers::mariadb_url()).await.unwrap();
    vocab.execute("DELETE FROM svc_words WHERE learner_id = 1 AND word = ?", (word.as_str(),)).await.unwrap();
    vocab.close().await;
    drop(lock);
}

#[test]
fn a_wrong_password_stops_the_service_at_start_with_the_cause_and_no_password() {
    // `aquifer_pw` is the scram-authenticated role scripts/dev-services.sh creates.
    let out = Command::new(common::example_path("service"))
        .env("SERVICE_ADDR", "127.0.0.1:0")
        .env("POSTGRES_URL", servers::postgres_url_as("aquifer_pw:not-the-password-3"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the service started: {stdout}");
    assert!(stderr.contains("password authentication failed"), "{SCRIPT} starts the server; stderr: {stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(!stderr.contains("not-the-password-3") && !stdout.contains("not-the-password-3"), "{stderr}");
}
