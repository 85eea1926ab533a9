//! Neo4j (ArcadeDB's Bolt server): BatchLoader over `IN $keys`, `UNWIND $rows` imports in batches. Statements
//! are counted by a proxy reading the Bolt protocol (RUN messages), never by the code under test.

mod common;

use std::collections::HashMap;

use aquifer_batch::neo4j;
use aquifer_batch::{BatchLoader, BulkError, IdentError, Loader};
use aquifer_testing::CountingProxy;
use neo4rs::{BoltType, ConfigBuilder, Graph, query};

async fn connect() -> (Graph, CountingProxy) {
    let proxy = common::bolt_proxy().await;
    let config = ConfigBuilder::default()
        .uri(format!("bolt://{}", proxy.addr()))
        .user("root")
        .password("aquifer-secret")
        .db("testdb")
        .max_connections(1)
        .build()
        .unwrap();
    (Graph::connect(config).expect("Bolt connection"), proxy)
}

/// A label unique to this run: tests of other runs may share the server.
fn label(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("Aq{name}{}x{nanos}", std::process::id())
}

fn artist(id: i64, name: &str) -> BoltType {
    HashMap::from([("id".to_string(), BoltType::from(id)), ("name".to_string(), BoltType::from(name))]).into()
}

#[tokio::test]
async fn merge_nodes_sends_one_statement_per_batch_in_one_transaction() {
    let (graph, proxy) = connect().await;
    let label = label("Artist");
    let rows: Vec<BoltType> = (0..250).map(|i| artist(i, &format!("artist {i}"))).collect();
    let before = proxy.statements();
    assert_eq!(neo4j::merge_nodes(&graph, &label, "id", &rows, 100).await.unwrap(), 3);
    assert_eq!(proxy.statements() - before, 3, "RUN per batch of 100");
    let mut stream = graph.execute(query(&format!("MATCH (n:{label}) RETURN count(n) AS c"))).await.unwrap();
    let count: i64 = stream.next().await.unwrap().unwrap().get("c").unwrap();
    assert_eq!(count, 250);
}

#[tokio::test]
async fn merge_nodes_updates_existing_nodes() {
    let (graph, _proxy) = connect().await;
    let label = label("Artist");
    neo4j::merge_nodes(&graph, &label, "id", &[artist(1, "old")], 0).await.unwrap();
    neo4j::merge_nodes(&graph, &label, "id", &[artist(1, "new"), artist(2, "two")], 0).await.unwrap();
    let nodes = neo4j::fetch_by_keys(&graph, &label, "id", vec![1.into(), 2.into(), 3.into()]).await.unwrap();
    let mut names: Vec<String> = nodes.iter().map(|n| n.get::<String>("name").unwrap()).collect();
    names.sort();
    assert_eq!(names, ["new", "two"]);
}

#[tokio::test]
async fn default_batch_is_ten_thousand_rows() {
    let (graph, proxy) = connect().await;
    let rows: Vec<BoltType> = (0..10_001).map(|i| artist(i, "t")).collect();
    let before = proxy.statements();
    assert_eq!(neo4j::unwind(&graph, "WITH row RETURN count(row) AS n", &rows, 0).await.unwrap(), 2);
    assert_eq!(proxy.statements() - before, 2, "10,000 rows, then 1");
}

struct NamesById {
    graph: Graph,
    label: String,
}

impl Loader for NamesById {
    type Key = i64;
    type Value = String;
    type Error = BulkError<neo4rs::Error>;

    async fn load(&self, ids: &[i64]) -> Result<HashMap<i64, String>, Self::Error> {
        let keys = ids.iter().map(|&i| BoltType::from(i)).collect();
        let nodes = neo4j::fetch_by_keys(&self.graph, &self.label, "id", keys).await?;
        Ok(nodes.into_iter().map(|n| (n.get::<i64>("id").unwrap(), n.get::<String>("name").unwrap())).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_parents_load_in_one_statement() {
    let (graph, proxy) = connect().await;
    let label = label("Artist");
    let rows: Vec<BoltType> = (0..1000).filter(|i| i % 4 != 0).map(|i| artist(i, &format!("a{i}"))).collect();
    neo4j::merge_nodes(&graph, &label, "id", &rows, 0).await.unwrap();
    let loader = BatchLoader::new(NamesById { graph, label });
    let before = proxy.statements();
    let keys: Vec<i64> = (0..1000).collect();
    let resolved = common::resolve_in_one_request(&loader, &keys).await.into_iter().map(|(i, v)| (i, v.unwrap()));
    for (i, name) in resolved {
        assert_eq!(name, (i % 4 != 0).then(|| format!("a{i}")), "artist {i}");
    }
    assert_eq!(proxy.statements() - before, 1);
}

#[tokio::test]
async fn labels_and_properties_are_quoted() {
    let (graph, _proxy) = connect().await;
    let label = format!("{} with `tick", label("Odd"));
    let row: BoltType =
        HashMap::from([("my key".to_string(), BoltType::from(7)), ("v".to_string(), BoltType::from("x"))]).into();
    neo4j::merge_nodes(&graph, &label, "my key", &[row], 0).await.unwrap();
    let nodes = neo4j::fetch_by_keys(&graph, &label, "my key", vec![7.into()]).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(neo4j::quote_name("a`b", "label").unwrap(), "`a``b`");
    assert_eq!(neo4j::quote_name("", "label"), Err(IdentError::Empty { what: "label" }));
}
