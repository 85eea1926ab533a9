//! Leak detection: a connection held too long is reported once, with the file:line of the get() call.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_core::LeakReport;
use aquifer_testing::FakeManager;
use common::{builder, eventually, fake_pool_with};
use parking_lot::Mutex;

#[tokio::test(start_paused = true)]
async fn leak_report_names_the_file_and_line_of_the_get_call() {
    let fake = FakeManager::new();
    let reports: Arc<Mutex<Vec<LeakReport>>> = Arc::default();
    let pool = builder(&fake)
        .leak_detection_threshold(Some(Duration::from_millis(30)))
        .on_leak({
            let reports = reports.clone();
            move |r| reports.lock().push(r.clone())
        })
        .build()
        .unwrap();
    let line = line!() + 1;
    let conn = pool.get().await.unwrap();
    eventually(Duration::from_secs(5), "the leak was reported", || !reports.lock().is_empty()).await;
    let report = reports.lock()[0].clone();
    assert_eq!(report.caller.file(), file!());
    assert_eq!(report.caller.line(), line);
    assert_eq!(report.conn_id, conn.id);
    assert!(report.held_for >= Duration::from_millis(30));
    assert!(report.to_string().contains(&format!("{}:{line}", file!())), "{report}");
    assert_eq!(pool.stats().leaks, 1);
    drop(conn);
}

/// A pool that reports connections held past `threshold` as leaks, and the count of its reports.
fn leak_counting_pool(threshold: Duration) -> (aquifer_core::Pool<FakeManager>, Arc<Mutex<u32>>) {
    let count = Arc::new(Mutex::new(0));
    let pool = builder(&FakeManager::new())
        .leak_detection_threshold(Some(threshold))
        .on_leak({
            let count = count.clone();
            move |_| *count.lock() += 1
        })
        .build()
        .unwrap();
    (pool, count)
}

#[tokio::test(start_paused = true)]
async fn a_leak_is_reported_only_once() {
    let (pool, count) = leak_counting_pool(Duration::from_millis(10));
    let conn = pool.get().await.unwrap();
    eventually(Duration::from_secs(5), "the leak was reported", || *count.lock() == 1).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(*count.lock(), 1);
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn connections_returned_in_time_are_not_reported() {
    let (pool, count) = leak_counting_pool(Duration::from_millis(100));
    for _ in 0..20 {
        drop(pool.get().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(*count.lock(), 0);
    assert_eq!(pool.stats().leaks, 0);
}

#[tokio::test(start_paused = true)]
async fn leak_is_logged_through_tracing_with_the_caller() {
    let (logs, _guard) = capture_logs();

    let (_fake, pool) = fake_pool_with(|b| b.leak_detection_threshold(Some(Duration::from_millis(10))));
    let line = line!() + 1;
    let conn = pool.get().await.unwrap();
    let needle = format!("{}:{line}", file!());
    eventually(Duration::from_secs(5), "the leak was logged", || {
        String::from_utf8_lossy(&logs.lock()).contains(&needle)
    })
    .await;
    let text = String::from_utf8_lossy(&logs.lock()).to_string();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("possible leak"), "{text}");
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn a_connect_timeout_above_the_acquire_timeout_is_warned_at_build() {
    let (logs, _guard) = capture_logs();
    let fake = FakeManager::new();
    let _fine = builder(&fake).name("fine").connect_timeout(Duration::from_secs(1)).build().unwrap();
    assert!(!String::from_utf8_lossy(&logs.lock()).contains("connect_timeout exceeds"));
    let _warned = builder(&fake)
        .name("warned")
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let text = String::from_utf8_lossy(&logs.lock()).to_string();
    assert!(text.contains("WARN") && text.contains("connect_timeout exceeds acquire_timeout"), "{text}");
    assert!(text.contains("warned"), "the warning names the pool: {text}");
}

/// Everything logged through `tracing` on this thread until the guard is dropped.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || Capture(logs.clone())
    };
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false));
    (logs, tracing::subscriber::set_default(subscriber))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
