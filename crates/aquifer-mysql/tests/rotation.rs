//! Credentials that rotate while the pool serves: a user of this test's own with a password, a password
//! file, 32 tasks of load, and the password changed every 2 s for 30 s (`ALTER USER`) on the server and in
//! the file, in both orders. No request may fail; new connections use the new password; the old one is
//! refused at the end. With `retire_on_rotation` (a shorter drill, without the idle churn: the retirements
//! are what opens new connections), the sessions of the old passwords are closed over the window, a few at a
//! time, and none is left at the end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_mysql::mysql_async::prelude::Queryable;
use aquifer_mysql::mysql_async::{Conn, Opts};
use aquifer_mysql::{MySqlConfig, MySqlPool};
use aquifer_testing::{
    Order, PasswordFile, RETIRE_DRILL_FOR, ROTATION_EVERY, ROTATION_FOR, RetirementWatch, rotate_under_load,
};
use common::*;

/// What a drill runs against: the admin connection, a user of the drill's own with password `pw-0`, a
/// password file holding it, and a pool of 8 connecting as the user with the file's password.
struct Setup {
    admin: Conn,
    user: String,
    _dir: tempfile::TempDir,
    file: PasswordFile,
    pool: MySqlPool,
}

async fn setup(user_prefix: &str, retire_on_rotation: bool) -> Setup {
    let mut admin = admin().await;
    let user = unique(user_prefix);
    dedicated_user(&mut admin, &user).await;
    admin.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY 'pw-0'")).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let file = PasswordFile::create(dir.path().join("password"), "pw-0").unwrap();
    // The URL's own password is wrong on purpose: the file's must win.
    let mut config = MySqlConfig::from_url(format!("mysql://{user}:not-the-password@{HOST}:{}/test", port()));
    config.password_file = Some(file.path().to_owned());
    config.pool.max_size = 8;
    config.pool.acquire_timeout = Duration::from_secs(10);
    if retire_on_rotation {
        config.pool.retire_on_rotation = true;
        config.pool.retire_on_rotation_window = ROTATION_EVERY;
    }
    let pool: MySqlPool = config.connect().await.expect("the pool starts with the file's password");
    Setup { admin, user, _dir: dir, file, pool }
}

/// One request of the load.
async fn select_one(pool: MySqlPool) -> Result<(), String> {
    let one: i64 = pool.fetch_one("SELECT 1", ()).await.map_err(|e| e.to_string())?;
    (one == 1).then_some(()).ok_or_else(|| "wrong answer".to_owned())
}

/// Checks that a fresh connection is `user`'s (with the password in force), closes the pool and drops the
/// user.
async fn connects_as_the_user_then_drop_it(pool: MySqlPool, admin: Arc<tokio::sync::Mutex<Conn>>, user: &str) {
    let me: String = pool.fetch_one("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)", ()).await.unwrap();
    assert_eq!(me, user);
    pool.close().await;
    drop_user(&mut *Arc::into_inner(admin).expect("the drill is over").lock().await, user).await;
}

async fn drill(order: Order) {
    let Setup { admin, user, _dir, file, pool } = setup("aq_my_rot", false).await;
    let (load, churn) = (pool.clone(), pool.clone());
    let admin = Arc::new(tokio::sync::Mutex::new(admin));
    let alter_user = user.clone();
    let report = rotate_under_load(
        order,
        ROTATION_FOR,
        &file,
        move || select_one(load.clone()),
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
    report.assert_full_drill_passed(order, &pool.stats());

    // A fresh connection uses the password in force; the old one is refused by the server.
    pool.retain(|_, _| false);
    let old = Opts::from_url(&format!("mysql://{user}:pw-0@{HOST}:{}/test", port())).unwrap();
    let refused = Conn::new(old).await.expect_err("the first password no longer works");
    assert!(refused.to_string().contains("Access denied"), "{refused}");
    connects_as_the_user_then_drop_it(pool, admin, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_server_first_fails_no_request() {
    drill(Order::ServerFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_file_first_fails_no_request() {
    drill(Order::FileFirst).await;
}

/// The drill with `retire_on_rotation` (window: one rotation period) and no idle churn, server first: no
/// request fails, the retirements are spread (never half the pool within 100 ms), and once the window after
/// the last rotation has passed the server holds no session of the user that began before the last
/// `ALTER USER`. MariaDB numbers connections in the order it accepts them, so the id of a connection opened
/// right after the `ALTER USER` (the file still holding the old password) splits the sessions exactly: below
/// it, opened with an old password.
async fn retire_drill(order: Order) {
    let Setup { admin, user, _dir, file, pool } = setup("aq_my_ret", true).await;
    let load = pool.clone();
    let watched = pool.clone();
    let watch = RetirementWatch::start(move || watched.stats().closed_rotated);
    let admin = Arc::new(tokio::sync::Mutex::new(admin));
    let first_new = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (alter_admin, alter_user, alter_first) = (Arc::clone(&admin), user.clone(), Arc::clone(&first_new));
    let report = rotate_under_load(
        order,
        RETIRE_DRILL_FOR,
        &file,
        move || select_one(load.clone()),
        || {},
        move |password| {
            let (admin, user, first) = (Arc::clone(&alter_admin), alter_user.clone(), Arc::clone(&alter_first));
            async move {
                let sql = format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'");
                admin.lock().await.query_drop(sql).await.unwrap();
                let mut probe = Conn::new(Opts::from_url(&url()).unwrap()).await.unwrap();
                let id: u64 = probe.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
                first.store(id, std::sync::atomic::Ordering::SeqCst);
                probe.disconnect().await.unwrap();
            }
        },
    )
    .await;

    let first_new = first_new.load(std::sync::atomic::Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + ROTATION_EVERY * 3;
    let mut left;
    loop {
        let ids = connections_of(&mut *admin.lock().await, &user).await;
        left = ids.iter().filter(|&&id| id < first_new).count();
        if left == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spread = watch.finish().await;
    eprintln!("{order:?} with retire_on_rotation: {report:?}; {spread:?}; pool {:?}; {}", pool.stats(), pool.state());
    report.assert_retire_drill_passed(order, &spread);
    assert_eq!(left, 0, "sessions opened with an old password are left on the server");
    connects_as_the_user_then_drop_it(pool, admin, &user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_with_retire_on_rotation_leaves_no_session_of_an_old_password() {
    retire_drill(Order::ServerFirst).await;
}
