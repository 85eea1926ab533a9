//! The helpers record db.client.operation.duration with the pool's attributes, db.operation.name and, on
//! failure, error.type; the pool's own metrics carry db.system.name.

mod common;

use std::time::Duration;

use aquifer_mysql::{MySqlManager, MySqlPool};
use aquifer_testing::{Captured, MetricsCapture};

async fn pool(capture: &MetricsCapture, name: &str) -> MySqlPool {
    common::server().await;
    let manager = MySqlManager::from_url(&common::url().replacen("mysql:", "mariadb:", 1)).unwrap();
    let pool = MySqlPool::from(
        aquifer_core::Pool::builder(manager).name(name).max_size(2).meter(capture.meter()).build().unwrap(),
    );
    pool.warm_up().await.unwrap();
    pool
}

fn operations<'a>(m: &'a Captured, op: &str, error: Option<&str>) -> Vec<&'a aquifer_testing::Point> {
    let metric = m.get("db.client.operation.duration").expect("db.client.operation.duration exported");
    metric.points.iter().filter(|p| p.attr("db.operation.name") == Some(op) && p.attr("error.type") == error).collect()
}

#[tokio::test]
async fn helpers_record_operation_duration_with_the_operation_and_error_type() {
    let capture = MetricsCapture::new();
    let pool = pool(&capture, "aq_my_metrics").await;
    for _ in 0..3 {
        let _: Option<i64> = pool.fetch_optional("SELECT 1", ()).await.unwrap();
    }
    pool.execute("DO SLEEP(0.01)", ()).await.unwrap();
    pool.execute("SELEKT nonsense", ()).await.unwrap_err();
    pool.transaction(|_tx| Box::pin(async { Ok(()) })).await.unwrap();

    let m = capture.collect();
    let selects = operations(&m, "SELECT", None);
    assert_eq!(selects.len(), 1, "one series for successful SELECTs");
    let p = selects[0];
    assert_eq!(p.count, 3);
    assert_eq!(p.attr("db.system.name"), Some("mariadb"));
    assert_eq!(p.attr("db.client.connection.pool.name"), Some("aq_my_metrics"));
    assert_eq!(p.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(p.attr("server.port"), Some(common::port().to_string().as_str()));
    assert_eq!(p.attr("db.namespace"), Some("test"));

    let slept = operations(&m, "DO", None);
    assert_eq!(slept.len(), 1);
    assert!(slept[0].value >= Duration::from_millis(10).as_secs_f64(), "recorded in seconds: {}", slept[0].value);

    let failed = operations(&m, "_OTHER", Some("1064"));
    assert_eq!(failed.len(), 1, "a syntax error is recorded with the server's error number");
    assert_eq!(failed[0].count, 1);
    assert_eq!(operations(&m, "TRANSACTION", None).len(), 1);
}

#[tokio::test]
async fn each_retried_attempt_is_recorded_with_its_error() {
    let capture = MetricsCapture::new();
    let pool = {
        common::server().await;
        let manager = MySqlManager::from_url(&common::url()).unwrap();
        MySqlPool::from(
            aquifer_core::Pool::builder(manager)
                .name("aq_my_metrics_retry")
                .max_size(1)
                .validation_bypass(Duration::from_secs(3600))
                .meter(capture.meter())
                .build()
                .unwrap(),
        )
    };
    let mut admin = common::admin().await;
    let old = pool.get().await.unwrap().id();
    common::kill(&mut admin, old).await;
    let _: Option<i64> = pool.fetch_optional("SELECT 1", ()).await.unwrap();
    let m = capture.collect();
    assert_eq!(operations(&m, "SELECT", Some("connection_lost")).len(), 1, "the attempt on the killed connection");
    assert_eq!(operations(&m, "SELECT", None)[0].count, 1, "the retry");
}

#[tokio::test]
async fn the_pool_reports_its_connections_under_db_system_name() {
    let capture = MetricsCapture::new();
    let pool = pool(&capture, "aq_my_metrics_pool").await;
    let conn = pool.get().await.unwrap();
    let m = capture.collect();
    let count = m.get("db.client.connection.count").expect("db.client.connection.count exported");
    let used = count.point_with("db.client.connection.state", "used").unwrap();
    assert_eq!(used.value, 1.0);
    assert_eq!(used.attr("db.system.name"), Some("mariadb"));
    drop(conn);
}
