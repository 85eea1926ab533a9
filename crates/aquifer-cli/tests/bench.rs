//! `aquifer bench` against the real servers (start them with `scripts/dev-services.sh`).

use aquifer_testing::servers;
use assert_cmd::Command;
use serde_json::Value;

const SERVERS: &str = "are the servers up? run scripts/dev-services.sh";

fn bench_json(url: &str, extra: &[&str]) -> Value {
    let out = Command::cargo_bin("aquifer")
        .unwrap()
        .args(["bench", "--json", url, "--concurrency", "8", "--pool", "2", "--duration", "1s"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{SERVERS}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn postgres_run_reports_throughput_percentiles_and_waits() {
    let r = bench_json(&servers::postgres_url_as("postgres:bench-secret"), &[]);
    assert_eq!(r["system"], "postgresql");
    assert_eq!(r["concurrency"], 8);
    assert_eq!(r["pool_size"], 2);
    let ops = r["operations"].as_f64().unwrap();
    assert!(ops > 0.0);
    let rate = r["throughput_rps"].as_f64().unwrap();
    assert!((rate - ops / r["elapsed_s"].as_f64().unwrap()).abs() < 1e-6 * rate.max(1.0));
    for h in ["latency_ms", "wait_ms", "query_ms"] {
        let (p50, p99, max) =
            (r[h]["p50"].as_f64().unwrap(), r[h]["p99"].as_f64().unwrap(), r[h]["max"].as_f64().unwrap());
        assert!(p50 <= p99 && p99 <= max, "{h}: {r}");
    }
    // 8 tasks on 2 connections: most checkouts queue.
    assert!(r["waits"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["timeouts"], 0);
    assert!(!r.to_string().contains("bench-secret"));
}

#[test]
fn sizing_applies_the_formula_to_the_given_peak() {
    let r = bench_json(&servers::mariadb_url(), &["--peak-rps", "5000"]);
    assert_eq!(r["system"], "mysql");
    let avg_query_ms = r["sizing"]["avg_query_ms"].as_f64().unwrap();
    assert_eq!(r["sizing"]["peak_rps"], 5000.0);
    let expected = ((5000.0 * avg_query_ms / 1000.0).ceil() as u64).max(1);
    assert_eq!(r["sizing"]["pool_size"].as_u64(), Some(expected));
    assert!((avg_query_ms - r["query_ms"]["mean"].as_f64().unwrap()).abs() < 1e-9);
}

#[test]
fn sqlite_and_neo4j_run_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    std::fs::write(&db, b"").unwrap();
    let r = bench_json(db.to_str().unwrap(), &[]);
    assert_eq!(r["system"], "sqlite");
    assert!(r["operations"].as_u64().unwrap() > 0);
    let r = bench_json(&format!("bolt://root:aquifer-secret@{}/testdb", servers::bolt_addr()), &[]);
    assert_eq!(r["system"], "neo4j");
    assert_eq!(r["query"], "validation");
    assert!(r["operations"].as_u64().unwrap() > 0);
}

#[test]
fn unreachable_server_fails_before_the_run_with_its_cause() {
    let out = Command::cargo_bin("aquifer")
        .unwrap()
        .args(["bench", "postgres://postgres@127.0.0.1:1/test", "--timeout", "1s", "--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

#[test]
fn pgbouncer_transaction_mode_runs_without_errors() {
    // PgBouncer (pool_mode = transaction) from scripts/dev-services.sh, read from the env.
    let out = Command::cargo_bin("aquifer")
        .unwrap()
        .args(["bench", "--json", "--env", "BOUNCED", "--concurrency", "8", "--pool", "4", "--duration", "1s"])
        .env("BOUNCED_URL", format!("postgres://postgres@{}/test", servers::pgbouncer_addr()))
        .env("BOUNCED_PGBOUNCER", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{SERVERS}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert!(r["operations"].as_u64().unwrap() > 0);
    assert_eq!(r["errors"], 0, "{stdout}");
}
