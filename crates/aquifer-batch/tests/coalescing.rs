//! How loads become batches: the window, max_batch_size, deduplication.

mod common;

use std::time::Duration;

use aquifer_batch::BatchLoader;
use common::{Recorder, request_loader, settle, shared_loader, spawn_load, spawn_load_many};
use futures_util::future::join_all;
use tokio::time::Instant;

#[tokio::test]
async fn concurrent_loads_coalesce_into_one_batch() {
    let (rec, loader) = request_loader();
    let (a, b, c) = tokio::join!(loader.load(1), loader.load(2), loader.load(3));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (Some(10), Some(20), Some(30)));
    assert_eq!(rec.sorted_calls(), vec![vec![1, 2, 3]]);
}

#[tokio::test]
async fn loads_from_spawned_tasks_coalesce_into_one_batch() {
    let (rec, loader) = request_loader();
    let tasks: Vec<_> = (1..=200u64)
        .map(|k| {
            let loader = loader.clone();
            tokio::spawn(async move { loader.load(k).await })
        })
        .collect();
    for (k, t) in (1..=200u64).zip(tasks) {
        let expected = if k % 7 == 0 { None } else { Some(k * 10) };
        assert_eq!(t.await.unwrap().unwrap(), expected);
    }
    assert_eq!(rec.sorted_calls(), vec![(1..=200).collect::<Vec<u64>>()]);
}

#[tokio::test]
async fn missing_key_is_none_not_an_error() {
    let loader = BatchLoader::new(Recorder::new());
    assert_eq!(loader.load(14).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn tick_window_adds_no_delay() {
    let loader = BatchLoader::new(Recorder::new());
    let start = Instant::now();
    loader.load(1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn delay_collects_keys_arriving_within_it() {
    let rec = Recorder::new();
    let loader = BatchLoader::builder(rec.clone()).delay(Duration::from_millis(10)).build();
    let start = Instant::now();
    let early = spawn_load(&loader, 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(loader.load(2).await.unwrap(), Some(20));
    assert_eq!(start.elapsed(), Duration::from_millis(10));
    assert_eq!(early.await.unwrap().unwrap(), Some(10));
    loader.load(3).await.unwrap();
    assert_eq!(rec.sorted_calls(), vec![vec![1, 2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn full_batch_is_dispatched_without_waiting_out_the_delay() {
    let rec = Recorder::new();
    let loader = BatchLoader::builder(rec.clone()).delay(Duration::from_secs(3600)).max_batch_size(2).build();
    let start = Instant::now();
    let (a, b) = tokio::join!(loader.load(1), loader.load(2));
    assert_eq!((a.unwrap(), b.unwrap()), (Some(10), Some(20)));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn max_batch_size_splits_concurrent_loads() {
    let rec = Recorder::new();
    let loader = BatchLoader::builder(rec.clone()).max_batch_size(3).build();
    let results = join_all((1..=7u64).map(|k| loader.load(k))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(rec.calls(), vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
}

#[tokio::test]
async fn max_batch_size_splits_load_many() {
    let rec = Recorder::new();
    let loader = BatchLoader::builder(rec.clone()).max_batch_size(4).build();
    let values = loader.load_many(1..=10u64).await.unwrap();
    let expected: Vec<Option<u64>> = (1..=10u64).map(|k| (k != 7).then_some(k * 10)).collect();
    assert_eq!(values, expected);
    assert_eq!(rec.calls(), vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]);
}

#[tokio::test]
async fn zero_max_batch_size_means_no_limit() {
    let rec = Recorder::new();
    let loader = BatchLoader::builder(rec.clone()).max_batch_size(0).build();
    loader.load_many(1..=5_000u64).await.unwrap();
    assert_eq!(rec.calls().len(), 1);
}

#[tokio::test]
async fn load_many_fetches_a_repeated_key_once() {
    let (rec, loader) = request_loader();
    assert_eq!(loader.load_many([1, 1, 2, 1]).await.unwrap(), vec![Some(10), Some(10), Some(20), Some(10)]);
    assert_eq!(rec.calls(), vec![vec![1, 2]]);
}

#[tokio::test]
async fn key_in_flight_is_not_fetched_again() {
    let (rec, gate) = Recorder::gated();
    let loader = BatchLoader::shared(rec.clone());
    let first = spawn_load(&loader, 1);
    settle().await;
    assert_eq!(rec.calls(), vec![vec![1]], "first batch in flight");
    let second = spawn_load_many(&loader, [1, 2]);
    settle().await;
    gate.add_permits(2);
    assert_eq!(first.await.unwrap().unwrap(), Some(10));
    assert_eq!(second.await.unwrap().unwrap(), vec![Some(10), Some(20)]);
    assert_eq!(rec.calls(), vec![vec![1], vec![2]]);
}

#[tokio::test]
async fn shared_loader_fetches_again_once_the_batch_is_done() {
    let (rec, loader) = shared_loader();
    loader.load(1).await.unwrap();
    loader.load(1).await.unwrap();
    assert_eq!(rec.calls(), vec![vec![1], vec![1]]);
}

#[test]
fn loader_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let loader = BatchLoader::new(Recorder::new());
    send_sync(&loader);
    send(&loader.load(1));
    send(&loader.load_many([1, 2]));
}
