//! Failed and panicking batches, dropped waiters, a runtime that goes away.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aquifer_batch::{BatchError, BatchLoader};
use common::{Mode, Recorder, Unreachable, assert_recovers_from, request_loader, settle, spawn_load, spawn_load_many};
use futures_util::FutureExt;

#[tokio::test]
async fn failed_batch_reaches_every_waiter_with_the_same_error() {
    let loader = BatchLoader::new(Recorder::with_mode(Mode::Fail));
    let (a, b, c) = tokio::join!(loader.load(1), loader.load(2), loader.load_many([3, 4]));
    let (a, b, c) = (a.unwrap_err(), b.unwrap_err(), c.unwrap_err());
    let (BatchError::Load(a), BatchError::Load(b), BatchError::Load(c)) = (&a, &b, &c) else {
        panic!("expected load errors, got {a:?} {b:?} {c:?}");
    };
    assert!(Arc::ptr_eq(a, b) && Arc::ptr_eq(b, c), "one shared error");
    assert_eq!(a.to_string(), "database unreachable (batch of 4 keys)");
}

#[tokio::test]
async fn the_batch_error_says_the_load_error_and_holds_it() {
    let loader = BatchLoader::new(Recorder::with_mode(Mode::Fail));
    let err = loader.load(1).await.unwrap_err();
    assert_eq!(err.to_string(), "batch load failed: database unreachable (batch of 1 keys)");
    let _: &Unreachable = err.load_error().expect("the loader's error");
    // Its message is in the batch error's, so source() does not repeat it (docs/architecture.md, "Errors").
    assert!(std::error::Error::source(&err).is_none());
    aquifer_testing::assert_each_cause_once(&err);
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite", feature = "neo4j"))]
#[test]
fn a_bulk_database_error_prints_its_cause_once() {
    let err = aquifer_batch::BulkError::Database(std::io::Error::other("connection reset by peer"));
    assert_eq!(aquifer_testing::assert_each_cause_once(&err), "database error: connection reset by peer");
}

#[tokio::test]
async fn panicking_loader_fails_every_waiter_with_its_message() {
    let loader = BatchLoader::new(Recorder::with_mode(Mode::Panic));
    let (a, b) = tokio::join!(loader.load(1), loader.load(2));
    for err in [a.unwrap_err(), b.unwrap_err()] {
        match err {
            BatchError::Panicked(msg) => assert_eq!(&*msg, "loader bug on 2 keys"),
            other => panic!("expected Panicked, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn loader_keeps_serving_after_a_panic() {
    assert_recovers_from(Mode::Panic).await;
}

#[tokio::test]
async fn dropped_waiter_does_not_cancel_the_batch_of_the_others() {
    let (rec, gate) = Recorder::gated();
    let loader = BatchLoader::new(rec.clone());
    let leaving = spawn_load(&loader, 1);
    let staying = spawn_load_many(&loader, [1, 2]);
    settle().await;
    leaving.abort();
    assert!(leaving.await.unwrap_err().is_cancelled());
    gate.add_permits(1);
    assert_eq!(staying.await.unwrap().unwrap(), vec![Some(10), Some(20)]);
    assert_eq!(rec.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn batch_completes_when_its_only_waiter_left_before_dispatch() {
    let (rec, loader) = request_loader();
    // timeout polls the load once (enqueueing the key), then gives up.
    assert!(tokio::time::timeout(Duration::ZERO, loader.load(1)).await.is_err());
    settle().await;
    assert_eq!(rec.calls(), vec![vec![1]]);
    assert_eq!(loader.load(1).await.unwrap(), Some(10), "answered from the cache the batch filled");
    assert_eq!(rec.calls().len(), 1);
}

#[test]
fn runtime_shutdown_fails_waiters_with_abandoned() {
    let (rec, _gate) = Recorder::gated();
    let loader = BatchLoader::new(rec);
    let first = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut creator = Box::pin(loader.load(1));
    let mut waiting = Box::pin(loader.load(1));
    {
        let _enter = first.enter();
        assert!((&mut creator).now_or_never().is_none(), "the key is enqueued and its batch created");
        assert!((&mut waiting).now_or_never().is_none(), "the second load joins the batch in flight");
    }
    // The creator goes away: the batch's work moves to a task on `first`, which then shuts down unpolled.
    drop(creator);
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = second.block_on(async { tokio::time::timeout(Duration::from_secs(5), waiting).await });
    assert!(matches!(result, Ok(Err(BatchError::Abandoned))), "got {result:?}");
}

#[test]
fn load_outside_a_runtime_is_an_error_and_leaves_no_pending_key() {
    let loader = BatchLoader::new(Recorder::new());
    assert!(matches!(loader.load(1).now_or_never(), Some(Err(BatchError::NoRuntime))));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(loader.load(1)).unwrap(), Some(10));
}
