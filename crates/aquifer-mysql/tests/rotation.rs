//! Credentials that rotate while the pool serves: a user of this test's own with a password, a password
//! file, 32 tasks of load, and the password changed every 2 s for 30 s (`ALTER USER`) on the server and in
//! the file, in both orders. No request may fail; new connections use the new password; the old one is
//! refused at the end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, Opts};
use aquifer_mysql::{MySqlConfig, MySqlPool};
use aquifer_testing::{Order, PasswordFile, rotate_under_load};
use common::*;

async fn drill(order: Order) {
    let mut admin = admin().await;
    let user = unique("aq_my_rot");
    dedicated_user(&mut admin, &user).await;
    admin.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY 'pw-0'")).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = PasswordFile::create(dir.path().join("password"), "pw-0").unwrap();
    // The URL's own password is wrong on purpose: the file's must win.
    let mut config = MySqlConfig::from_url(format!("mysql://{user}:not-the-password@{HOST}:{}/test", port()));
    config.password_file = Some(file.path().to_owned());
    config.pool.max_size = 8;
    config.pool.acquire_timeout = Duration::from_secs(10);
    let pool: MySqlPool = config.connect().await.expect("the pool starts with the file's password");

    let (load, churn) = (pool.clone(), pool.clone());
    let admin = Arc::new(tokio::sync::Mutex::new(admin));
    let alter_user = user.clone();
    let report = rotate_under_load(
        order,
        "pw",
        &file,
        move || {
            let pool = load.clone();
            async move {
                let one: i64 = pool.fetch_one("SELECT 1", ()).await.map_err(|e| e.to_string())?;
                (one == 1).then_some(()).ok_or_else(|| "wrong answer".to_owned())
            }
        },
        move || {
            churn.retain(|_, _| false);
        },
        |password| {
            let (admin, user) = (Arc::clone(&admin), alter_user.clone());
            async move {
                let sql = format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'");
                admin.lock().await.query_drop(sql).await.unwrap();
            }
        },
    )
    .await;

    eprintln!("{order:?}: {report:?}; pool {:?}", pool.stats());
    assert_eq!(report.failed, 0, "{order:?}: {report:?}");
    assert!(report.rotations >= 14 && report.ok > 1000, "{order:?}: {report:?}");
    let created = pool.stats().created;
    assert!(created > u64::from(report.rotations), "new connections were opened throughout: {created} ({report:?})");

    // A fresh connection uses the password in force; the old one is refused by the server.
    pool.retain(|_, _| false);
    let me: String = pool.fetch_one("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)", ()).await.unwrap();
    assert_eq!(me, user);
    let old = Opts::from_url(&format!("mysql://{user}:pw-0@{HOST}:{}/test", port())).unwrap();
    let refused = Conn::new(old).await.expect_err("the first password no longer works");
    assert!(refused.to_string().contains("Access denied"), "{refused}");
    pool.close().await;
    drop_user(&mut *Arc::into_inner(admin).expect("the drill is over").lock().await, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_server_first_fails_no_request() {
    drill(Order::ServerFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_file_first_fails_no_request() {
    drill(Order::FileFirst).await;
}
