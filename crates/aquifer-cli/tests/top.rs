//! `aquifer top` against the real servers (start them with `scripts/dev-services.sh`).

use aquifer_mysql::mysql_async::{self, prelude::Queryable};
use assert_cmd::Command;
use serde_json::Value;
use sqlx::{Connection, Executor};

fn pg() -> String {
    aquifer_testing::servers::postgres_url()
}

fn mysql() -> String {
    aquifer_testing::servers::mariadb_url()
}
const SERVERS: &str = "are the servers up? run scripts/dev-services.sh";

fn top_json(url: &str) -> Value {
    let out = Command::cargo_bin("aquifer").unwrap().args(["top", "--json", url]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.code().unwrap() <= 2, "{SERVERS}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn pg_session(application: &str) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = pg().parse().unwrap();
    sqlx::PgConnection::connect_with(&options.application_name(application))
        .await
        .unwrap_or_else(|e| panic!("{SERVERS}: {e}"))
}

#[test]
fn postgres_sessions_are_grouped_by_application_name() {
    runtime().block_on(async {
        let application = format!("top-test-{}", std::process::id());
        let _a = pg_session(&application).await;
        let _b = pg_session(&application).await;
        let report = top_json(&pg());
        let groups = report["groups"].as_array().unwrap();
        let ours = groups.iter().find(|g| g["application"] == application.as_str()).expect("our group is listed");
        assert_eq!(ours["state"], "idle");
        assert_eq!(ours["sessions"], 2);
        assert!(report["max_connections"].as_i64().unwrap() > 0);
        let total: i64 = groups.iter().map(|g| g["sessions"].as_i64().unwrap()).sum();
        assert_eq!(report["connections"].as_i64(), Some(total));
        assert!(groups.iter().any(|g| g["application"] == "aquifer-cli"), "its own session is listed");
    });
}

#[test]
fn postgres_idle_in_transaction_is_a_leak_suspect() {
    runtime().block_on(async {
        let application = format!("top-leak-{}", std::process::id());
        let mut conn = pg_session(&application).await;
        conn.execute("BEGIN").await.unwrap();
        let report = top_json(&pg());
        let suspects = report["suspects"].as_array().unwrap();
        let ours = suspects.iter().find(|s| s["application"] == application.as_str()).expect("flagged");
        assert_eq!(ours["state"], "idle in transaction");
        assert!(ours["reason"].as_str().unwrap().contains("open transaction"));
        conn.execute("ROLLBACK").await.unwrap();
    });
}

#[test]
fn mysql_sleeping_transaction_is_a_leak_suspect() {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(mysql()).await.unwrap_or_else(|e| panic!("{SERVERS}: {e}"));
        let id: u64 = conn.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.unwrap();
        // The open transaction is read from information_schema.INNODB_TRX, a cache InnoDB refreshes only when it
        // has not been read for 100 ms; another test reading it just before may hide this one for a moment.
        let mut found = None;
        let mut report = Value::Null;
        for _ in 0..8 {
            report = top_json(&mysql());
            found = report["suspects"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned();
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert!(report["max_connections"].as_i64().unwrap() > 0);
        let ours = found.unwrap_or_else(|| panic!("session {id} not flagged: {report}"));
        assert_eq!(ours["state"], "Sleep (open transaction)");
        conn.query_drop("ROLLBACK").await.unwrap();
        conn.disconnect().await.unwrap();
    });
}
