//! The per-loader cache: on for request-scoped loaders, off for shared ones; prime and clear.

mod common;

use aquifer_batch::BatchLoader;
use common::{Mode, Recorder, assert_recovers_from, request_loader, spawn_load};

#[tokio::test]
async fn cached_key_is_not_fetched_again() {
    let (rec, loader) = request_loader();
    assert_eq!(loader.load(1).await.unwrap(), Some(10));
    assert_eq!(loader.load(1).await.unwrap(), Some(10));
    assert_eq!(loader.load_many([1, 2]).await.unwrap(), vec![Some(10), Some(20)]);
    assert_eq!(rec.calls(), vec![vec![1], vec![2]]);
}

#[tokio::test]
async fn missing_key_is_cached_as_none() {
    let (rec, loader) = request_loader();
    assert_eq!(loader.load(7).await.unwrap(), None);
    assert_eq!(loader.load(7).await.unwrap(), None);
    assert_eq!(rec.calls().len(), 1);
}

#[tokio::test]
async fn primed_value_is_answered_without_a_fetch() {
    let (rec, loader) = request_loader();
    assert!(loader.prime(5, 555));
    assert_eq!(loader.load(5).await.unwrap(), Some(555));
    assert!(rec.calls().is_empty());
}

#[tokio::test]
async fn prime_keeps_a_cached_value() {
    let loader = BatchLoader::new(Recorder::new());
    loader.load(5).await.unwrap();
    assert!(!loader.prime(5, 555));
    assert_eq!(loader.load(5).await.unwrap(), Some(50));
}

#[tokio::test]
async fn cleared_key_is_fetched_again() {
    let (rec, loader) = request_loader();
    loader.load(1).await.unwrap();
    loader.load(2).await.unwrap();
    assert!(loader.clear(&1));
    assert!(!loader.clear(&1));
    loader.load(1).await.unwrap();
    loader.load(2).await.unwrap();
    assert_eq!(rec.calls(), vec![vec![1], vec![2], vec![1]]);
}

#[tokio::test]
async fn clear_all_empties_the_cache() {
    let (rec, loader) = request_loader();
    loader.load_many([1, 2]).await.unwrap();
    loader.clear_all();
    loader.load_many([1, 2]).await.unwrap();
    assert_eq!(rec.calls().len(), 2);
}

#[tokio::test]
async fn failed_keys_are_not_cached() {
    let rec = assert_recovers_from(Mode::Fail).await;
    assert_eq!(rec.calls().len(), 2);
}

#[tokio::test]
async fn shared_loader_keeps_no_cache() {
    let loader = BatchLoader::shared(Recorder::new());
    assert!(!loader.prime(5, 555));
    assert_eq!(loader.load(5).await.unwrap(), Some(50));
}

#[tokio::test]
async fn loaders_do_not_share_a_cache() {
    let rec = Recorder::new();
    let request_a = BatchLoader::new(rec.clone());
    let request_b = BatchLoader::new(rec.clone());
    request_a.load(1).await.unwrap();
    request_b.load(1).await.unwrap();
    assert_eq!(rec.calls().len(), 2);
}

#[tokio::test]
async fn prime_leaves_a_key_being_fetched_to_its_batch() {
    let (rec, gate) = common::Recorder::gated();
    let loader = BatchLoader::new(rec.clone());
    let first = spawn_load(&loader, 5);
    common::settle().await;
    assert!(!loader.prime(5, 555), "key 5 is in flight");
    assert!(!loader.clear(&5), "a key in flight is not a cached value");
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), Some(50));
    assert_eq!(loader.load(5).await.unwrap(), Some(50), "answered from the batch's result");
    assert_eq!(rec.calls(), vec![vec![5]]);
}
