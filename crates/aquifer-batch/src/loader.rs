//! The [`Loader`] trait: the one function a [`BatchLoader`](crate::BatchLoader) calls per batch.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

/// Loads many keys in one round trip.
///
/// A [`BatchLoader`](crate::BatchLoader) collects the keys that concurrently running tasks ask for and calls
/// [`load`](Loader::load) once per batch, detached from any single caller. A key absent from the returned map is
/// reported to its callers as `None` (a missing row is not an error); keys in the map that were not asked
/// for are ignored.
///
/// The error type needs no `Clone`: one failed batch reaches all its waiters through a shared `Arc`.
///
/// ```
/// use std::collections::HashMap;
/// use aquifer_batch::Loader;
///
/// struct Squares;
///
/// impl Loader for Squares {
///     type Key = u32;
///     type Value = u64;
///     type Error = std::io::Error;
///
///     async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u64>, std::io::Error> {
///         Ok(keys.iter().map(|&k| (k, u64::from(k) * u64::from(k))).collect())
///     }
/// }
/// ```
pub trait Loader: Send + Sync + 'static {
    /// The key asked for; deduplicated by `Eq + Hash`.
    type Key: Eq + Hash + Clone + Send + Sync + 'static;
    /// The value of one key, cloned to every caller that asked for the key (wrap large values in an `Arc`).
    type Value: Clone + Send + Sync + 'static;
    /// The error of a failed batch.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Loads `keys` (distinct, at most the loader's `max_batch_size` of them). Runs detached from the callers:
    /// it is never cancelled because a caller went away.
    fn load(
        &self,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<HashMap<Self::Key, Self::Value>, Self::Error>> + Send;
}
