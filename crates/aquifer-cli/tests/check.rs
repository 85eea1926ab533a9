//! `aquifer check` against the real servers (start them with `scripts/dev-services.sh`).

use aquifer_testing::{PrivateMariaDb, PrivatePostgres};
use assert_cmd::Command;
use serde_json::Value;

use aquifer_testing::servers;

fn pg() -> String {
    servers::postgres_url_as("postgres:pg-secret-1")
}

fn mysql() -> String {
    servers::mariadb_url()
}

fn neo4j() -> String {
    format!("bolt://root:aquifer-secret@{}/testdb", servers::bolt_addr())
}
const SERVERS: &str = "are the servers up? run scripts/dev-services.sh";

fn aquifer() -> Command {
    Command::cargo_bin("aquifer").expect("the aquifer binary is built")
}

/// Runs `aquifer check --json ARGS` and returns its exit code and parsed output.
fn check_json(args: &[&str]) -> (i32, Value, String) {
    let out = aquifer().arg("check").arg("--json").args(["--timeout", "3s"]).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    (out.status.code().unwrap(), json, stdout)
}

#[test]
fn stopped_server_exits_2_and_names_the_cause() {
    // A PostgreSQL of this test's own, checked healthy, then stopped: its port now refuses connections.
    let mut server = PrivatePostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("postgres://postgres:pg-secret-1@127.0.0.1:{}/test?sslmode=disable", server.port());
    let (code, json, stdout) = check_json(&[&url]);
    assert_eq!((code, json["status"].as_str()), (0, Some("healthy")), "{stdout}");

    // Down is what counts, not how: a kill is the quickest way there.
    server.kill();
    let out = aquifer().args(["check", "--timeout", "1s", &url]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("unhealthy"), "{stdout}");
    assert!(stdout.contains("Connection refused"), "the cause is named: {stdout}");
    assert!(!stdout.contains("pg-secret-1"), "no password: {stdout}");

    let (code, json, stdout) = check_json(&[&url]);
    assert_eq!(code, 2, "{stdout}");
    let row = &json["targets"][0];
    assert_eq!(row["status"], "unhealthy");
    assert_eq!(row["system"], "postgresql");
    assert!(row["last_error"].as_str().unwrap().contains("Connection refused"), "{stdout}");
    assert!(row["server_version"].is_null() && row["latency_ms"].is_null(), "{stdout}");
}

#[test]
fn json_reports_postgres_field_by_field() {
    let (code, json, stdout) = check_json(&[&pg()]);
    assert_eq!(code, 0, "{SERVERS}: {stdout}");
    assert_eq!(json["status"], "healthy");
    let row = &json["targets"][0];
    assert_eq!(row["target"], servers::postgres_url_as("postgres:***"));
    assert_eq!(row["status"], "healthy");
    assert_eq!(row["system"], "postgresql");
    assert_eq!(row["server"], format!("{}/test", servers::postgres_addr()));
    assert!(row["server_version"].as_str().unwrap().starts_with("15"), "{stdout}");
    assert!(row["latency_ms"].as_f64().unwrap() > 0.0, "{stdout}");
    assert_eq!(row["state"]["max_size"], 1);
    assert!(row["last_error"].is_null(), "{stdout}");
    assert!(!stdout.contains("pg-secret-1"), "no password: {stdout}");
}

#[test]
fn json_reports_every_backend_and_the_worst_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("check.db");
    empty_database_file(&db);
    // A MariaDB of this test's own, stopped: the one unhealthy target.
    let mut stopped = PrivateMariaDb::start().unwrap_or_else(|e| panic!("{e}"));
    // Down is what counts, not how: a kill is the quickest way there.
    stopped.kill();
    let closed = format!("mysql://root:my-secret-2@127.0.0.1:{}/test", stopped.port());
    let (code, json, stdout) = check_json(&[&pg(), &mysql(), &neo4j(), db.to_str().unwrap(), &closed]);
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(json["status"], "unhealthy");
    let systems: Vec<&str> =
        json["targets"].as_array().unwrap().iter().map(|t| t["system"].as_str().unwrap()).collect();
    assert_eq!(systems, ["postgresql", "mysql", "neo4j", "sqlite", "mysql"], "{stdout}");
    let statuses: Vec<&str> =
        json["targets"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["healthy", "healthy", "healthy", "healthy", "unhealthy"], "{SERVERS}: {stdout}");
    assert!(json["targets"][4]["last_error"].as_str().unwrap().contains("Connection refused"), "{stdout}");
    assert_eq!(json["targets"][1]["server_version"].as_str().map(|v| v.contains("MariaDB")), Some(true));
    assert!(!stdout.contains("my-secret-2") && !stdout.contains("aquifer-secret"), "no password: {stdout}");
}

/// An empty file is a valid, empty SQLite database (`check` refuses to create a missing one).
fn empty_database_file(path: &std::path::Path) {
    std::fs::write(path, b"").unwrap();
}

#[test]
fn missing_sqlite_file_is_unhealthy_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let (code, json, stdout) = check_json(&[db.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(json["targets"][0]["status"], "unhealthy");
    assert!(!db.exists(), "check created {db:?}");
    // Says what is wrong: the file is missing and not created by design, not a directory or permission problem.
    let error = json["targets"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("the file does not exist and is not created"), "{error}");
    assert!(error.contains("the aquifer CLI always turns it off, by design"), "{error}");
    assert!(!error.contains("directory exists"), "{error}");
}

#[test]
fn reads_the_target_from_prefix_variables() {
    let (code, json, stdout) = {
        let out = aquifer()
            .args(["check", "--json", "--env", "ORDERS"])
            .env("ORDERS_URL", pg())
            .env("ORDERS_NAME", "orders")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        (out.status.code().unwrap(), serde_json::from_str::<Value>(&stdout).unwrap(), stdout)
    };
    assert_eq!(code, 0, "{SERVERS}: {stdout}");
    assert_eq!(json["targets"][0]["target"], "$ORDERS_*");
    assert_eq!(json["targets"][0]["system"], "postgresql");
    assert!(!stdout.contains("pg-secret-1"), "no password: {stdout}");
}

#[test]
fn wrong_password_is_unhealthy_and_never_echoed() {
    // `aquifer_pw` is the scram-authenticated role scripts/dev-services.sh creates.
    let url = &servers::postgres_url_as("aquifer_pw:not-the-password-9");
    let out = aquifer().args(["check", "--timeout", "2s", url]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("password authentication failed"), "{SERVERS}: {stdout}");
    assert!(!stdout.contains("not-the-password-9") && !stderr.contains("not-the-password-9"));
}

#[test]
fn unknown_scheme_is_a_usage_error_naming_it() {
    let out = aquifer().args(["check", "redis://u:redis-secret@127.0.0.1:6379"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("redis://u:***@127.0.0.1:6379"), "{stderr}");
    assert!(!stderr.contains("redis-secret"), "{stderr}");
}
