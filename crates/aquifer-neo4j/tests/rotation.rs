//! A password that changes while the pool runs, on the Bolt server (ArcadeDB): the pool reads a password
//! file, the user's password changes on the server and in the file, and the next new connection uses the new
//! one.
//!
//! One rotation without load, not the 32-task drill of PostgreSQL and MariaDB: ArcadeDB has no `ALTER USER`
//! (a password changes by dropping and re-creating the user) and locks a user out for 30 s after 5 failed
//! logins, so a drill would measure the lockout rather than the pool (docs/neo4j.md).

mod common;

use std::process::Command;

use aquifer_neo4j::{Neo4jConfig, query};
use aquifer_testing::PasswordFile;
use common::*;

/// Posts an ArcadeDB server command (`create user ...`, `drop user ...`) to its HTTP API as root.
fn post_server_command(command: &str) -> std::process::Output {
    let body = serde_json::json!({ "command": command }).to_string();
    let url = format!("{}/api/v1/server", aquifer_testing::servers::arcadedb_http_url());
    Command::new("curl")
        .args(["-s", "-u", &format!("root:{PASSWORD}"), "-X", "POST", &url, "-d", &body, "-w", "%{http_code}"])
        .output()
        .expect("curl runs")
}

/// Drops `user` if it exists (ArcadeDB answers an error when it does not, which is fine here).
fn drop_user(user: &str) {
    post_server_command(&format!("drop user {user}"));
}

/// (Re-)creates `user` with `password` and admin rights on `testdb`.
fn set_user(user: &str, password: &str) {
    drop_user(user);
    let spec = serde_json::json!({ "name": user, "password": password, "databases": { "testdb": "admin" } });
    let out = post_server_command(&format!("create user {spec}"));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.ends_with("200"), "creating user {user} failed: {answer} {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_file_is_used_by_new_connections() {
    require_bolt().await;
    let user = format!("aq_neo4j_rot_{}", std::process::id());
    set_user(&user, "pw-00000001");
    let dir = tempfile::tempdir().unwrap();
    let file = PasswordFile::create(dir.path().join("password"), "pw-00000001").unwrap();
    let mut config = Neo4jConfig::new(format!("bolt://{}", addr()), &user, "not-the-password").database("testdb");
    config.password_file = Some(file.path().to_owned());
    config.pool.max_size = 2;
    let pool = config.connect().await.expect("the pool starts with the file's password");
    let held = pool.get().await.unwrap();

    set_user(&user, "pw-00000002");
    file.write("pw-00000002").unwrap();
    // A new connection (the pool's second) opens with the new password. (ArcadeDB ends the sessions of a
    // dropped user, so the held one is discarded rather than returned; Neo4j keeps them.)
    let fresh = pool.get().await.expect("a new connection with the rotated password");
    fresh.graph().run(query("RETURN 1")).await.unwrap();
    assert_eq!(pool.stats().created, 2);
    held.discard();
    drop(fresh);
    pool.close().await;
    drop_user(&user);
}
