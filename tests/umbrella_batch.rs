//! The umbrella crate's `batch` feature: aquifer-batch under `aquifer::batch`, with the bulk helpers of the
//! backend features that are on (here `sqlite`, the default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aquifer::batch::{BatchLoader, BulkError, Loader};
use aquifer::sqlite::rusqlite::Connection;

/// Titles by id from an SQLite table, through the re-exported `sqlite::fetch_by_keys`.
struct Titles(Arc<Mutex<Connection>>, Arc<Mutex<Vec<Vec<i64>>>>);

impl Loader for Titles {
    type Key = i64;
    type Value = String;
    type Error = BulkError<aquifer::sqlite::rusqlite::Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, String>, Self::Error> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        self.1.lock().unwrap().push(sorted);
        let conn = self.0.lock().unwrap();
        let rows = aquifer::batch::sqlite::fetch_by_keys(&conn, "albums", &["id", "title"], "id", ids, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows.into_iter().collect())
    }
}

#[tokio::test]
async fn batch_feature_reexports_the_loader_and_the_backend_helpers() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE albums (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO albums VALUES (1, 'one'), (2, 'two');",
    )
    .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let loader = BatchLoader::new(Titles(Arc::new(Mutex::new(conn)), Arc::clone(&calls)));
    let (a, b, c) = tokio::join!(loader.load(1), loader.load(2), loader.load(3));
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (Some("one".into()), Some("two".into()), None));
    assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2, 3]], "one batch for the three loads");
}
