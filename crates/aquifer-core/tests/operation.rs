//! The operation runner every adapter's helpers use: checkout, timing after checkout, error.type, retries.

use std::collections::VecDeque;
use std::time::Duration;

use aquifer_core::{Attempt, Failure, OperationError, Pool, PoolError, Pooled, run_operation};
use aquifer_testing::{FakeError, FakeManager, MetricsCapture};

/// An attempt that plays a script of outcomes, one per call, and counts the connections it was given.
struct Script {
    outcomes: VecDeque<Result<u32, Failure<FakeError>>>,
    connections: Vec<u64>,
    hold: Duration,
}

impl Script {
    fn new(outcomes: impl IntoIterator<Item = Result<u32, Failure<FakeError>>>) -> Self {
        Script { outcomes: outcomes.into_iter().collect(), connections: Vec::new(), hold: Duration::ZERO }
    }
}

impl Attempt<FakeManager> for &mut Script {
    type Output = u32;

    async fn run(&mut self, conn: Pooled<FakeManager>) -> Result<u32, Failure<FakeError>> {
        self.connections.push(conn.id);
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        self.outcomes.pop_front().expect("the runner called the attempt more often than scripted")
    }
}

fn transient(msg: &str) -> Result<u32, Failure<FakeError>> {
    Err(Failure::new(FakeError(msg.into()), true, false))
}

fn pool_with(capture: &MetricsCapture, manager: FakeManager) -> Pool<FakeManager> {
    Pool::builder(manager).name("ops").max_size(2).meter(capture.meter()).build().unwrap()
}

#[tokio::test]
async fn a_success_records_one_duration_with_the_operation_name() {
    let capture = MetricsCapture::new();
    let pool = pool_with(&capture, FakeManager::new());
    let mut script = Script::new([Ok(7)]);
    assert_eq!(run_operation(&pool, "SELECT", &mut script).await.unwrap(), 7);

    let metrics = capture.collect();
    let m = metrics.get("db.client.operation.duration").expect("operation duration recorded");
    assert_eq!(m.unit, "s");
    let p = m.point_with("db.operation.name", "SELECT").expect("a SELECT point");
    assert_eq!((p.count, p.attr("error.type")), (1, None));
    assert_eq!(p.attr("db.client.connection.pool.name"), Some("ops"));
}

#[tokio::test]
async fn transient_failures_are_retried_on_fresh_checkouts_and_each_attempt_is_recorded() {
    let capture = MetricsCapture::new();
    let pool = pool_with(&capture, FakeManager::new());
    let mut script = Script::new([transient("40001"), transient("40001"), Ok(3)]);
    assert_eq!(run_operation(&pool, "UPDATE", &mut script).await.unwrap(), 3);
    assert_eq!(script.connections.len(), 3);

    let metrics = capture.collect();
    let m = metrics.get("db.client.operation.duration").unwrap();
    assert_eq!(m.point_with("error.type", "40001").map(|p| p.count), Some(2));
    let ok = m.points.iter().find(|p| p.attr("error.type").is_none()).expect("the successful attempt");
    assert_eq!(ok.count, 1);
}

#[tokio::test]
async fn retries_stop_at_the_policys_attempts_and_return_the_last_error() {
    let pool = Pool::builder(FakeManager::new()).build().unwrap();
    // The fake's policy allows three attempts.
    let mut script = Script::new([transient("a"), transient("b"), transient("c")]);
    let err = run_operation(&pool, "SELECT", &mut script).await.unwrap_err();
    assert!(matches!(&err, OperationError::Backend(FakeError(m)) if m == "c"), "{err:?}");
    assert!(script.outcomes.is_empty());
}

#[tokio::test]
async fn a_permanent_failure_is_returned_at_once() {
    let pool = Pool::builder(FakeManager::new()).build().unwrap();
    let mut script = Script::new([Err(Failure::permanent(FakeError("23505".into())))]);
    let err = run_operation(&pool, "INSERT", &mut script).await.unwrap_err();
    assert_eq!(err.backend_error(), Some(&FakeError("23505".into())));
    assert_eq!(script.connections.len(), 1);
}

#[tokio::test]
async fn an_acquire_failure_is_not_an_operation_failure() {
    let capture = MetricsCapture::new();
    let manager = FakeManager::new();
    manager.set_down(true);
    let pool = Pool::builder(manager)
        .name("ops_down")
        .acquire_timeout(Duration::from_millis(200))
        .meter(capture.meter())
        .build()
        .unwrap();
    let mut script = Script::new([]);
    let err = run_operation(&pool, "SELECT", &mut script).await.unwrap_err();
    assert!(
        matches!(err, OperationError::Acquire(PoolError::Timeout { .. } | PoolError::Unavailable { .. })),
        "{err:?}"
    );
    assert!(script.connections.is_empty(), "no attempt ran");
    let metrics = capture.collect();
    assert!(
        metrics.get("db.client.operation.duration").is_none_or(|m| m.count() == 0),
        "an acquire failure records no operation duration"
    );
}

#[tokio::test]
async fn the_duration_starts_after_checkout() {
    let capture = MetricsCapture::new();
    let manager = FakeManager::new();
    // The connect takes 400 ms; the attempt itself holds the connection 10 ms.
    manager.set_connect_delay(Duration::from_millis(400));
    let pool = Pool::builder(manager)
        .connect_timeout(Duration::from_secs(20))
        .acquire_timeout(Duration::from_secs(60))
        .meter(capture.meter())
        .build()
        .unwrap();
    let mut script = Script::new([Ok(1)]);
    script.hold = Duration::from_millis(10);
    run_operation(&pool, "SELECT", &mut script).await.unwrap();
    let metrics = capture.collect();
    let m = metrics.get("db.client.operation.duration").unwrap();
    let total = m.total();
    assert!((0.01..0.4).contains(&total), "recorded {total} s: the connect's 400 ms must not count");
}

#[tokio::test]
async fn after_a_lost_connection_the_next_checkout_is_validated_and_dead_ones_replaced() {
    let manager = FakeManager::new();
    let pool = Pool::builder(manager.clone()).max_size(2).build().unwrap();
    // Two idle connections, both dead after a "failover" (validation fails); the retry must not use them blind.
    drop((pool.get().await.unwrap(), pool.get().await.unwrap()));
    manager.set_fail_validation(true);
    let validations = manager.stats().validations;
    // The first attempt loses its connection; the second one's checkout validates the connections it gets
    // and replaces those that fail, up to max_size times.
    let mut script = Script::new([Err(Failure::new(FakeError("io".into()), true, true)), Ok(9)]);
    let task = run_operation(&pool, "SELECT", &mut script);
    let result = tokio::time::timeout(Duration::from_secs(10), task).await.expect("runner finishes");
    assert_eq!(result.unwrap(), 9);
    assert!(manager.stats().validations >= validations + 2, "the retry validated its checkouts");
    assert!(manager.stats().closed >= 2, "the connections that failed validation were discarded");
}
