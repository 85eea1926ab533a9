//! CREATE / MATCH / MERGE / UNWIND through the pool helpers and through a pooled connection's Graph API.

mod common;

use aquifer_neo4j::{BoltType, query};
use std::collections::HashMap;

const LABEL: &str = "AqNeoQ";

#[tokio::test]
async fn create_then_match_returns_the_created_nodes_and_relationship() {
    let (pool, nodes) = common::pool_and_nodes("queries_create", 2, LABEL).await;
    pool.execute(nodes.query(
        "CREATE (a:AqNeoQ {run: $run, name: 'Nina Simone'})-[:RECORDED {year: 1965}]->(b:AqNeoQ {run: $run, name: 'Pastel Blues'})",
    ))
    .await
    .unwrap();
    let rows = pool
        .fetch_all(nodes.query(
            "MATCH (a:AqNeoQ)-[r:RECORDED]->(b:AqNeoQ) WHERE a.run = $run RETURN a.name AS artist, r.year AS year, b.name AS album",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String>("artist").unwrap(), "Nina Simone");
    assert_eq!(rows[0].get::<i64>("year").unwrap(), 1965);
    assert_eq!(rows[0].get::<String>("album").unwrap(), "Pastel Blues");
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn match_returns_nodes_with_labels_properties_and_arcadedb_style_ids() {
    let (pool, nodes) = common::pool_and_nodes("queries_nodes", 2, LABEL).await;
    let rows = pool
        .fetch_all(nodes.query("CREATE (n:AqNeoQ {run: $run, name: 'x'}) RETURN n, id(n) AS id, elementId(n) AS eid"))
        .await
        .unwrap();
    let node: aquifer_neo4j::neo4rs::Node = rows[0].get("n").unwrap();
    assert!(node.labels().contains(&"AqNeoQ"));
    assert_eq!(node.get::<String>("name").unwrap(), "x");
    let id: i64 = rows[0].get("id").unwrap();
    assert_eq!(node.id(), id);
    assert!(id >= 0);
    // elementId is a string; on ArcadeDB it is the record id, like "#1:0".
    let eid: String = rows[0].get("eid").unwrap();
    assert!(!eid.is_empty());
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn merge_creates_once_and_then_matches() {
    let (pool, nodes) = common::pool_and_nodes("queries_merge", 2, LABEL).await;
    let merge = || {
        nodes.query("MERGE (a:AqNeoQ {run: $run, name: 'Miles Davis'}) ON CREATE SET a.created = true ON MATCH SET a.matched = true RETURN a.created AS created, a.matched AS matched")
    };
    let first = pool.fetch_all(merge()).await.unwrap();
    assert_eq!(first[0].get::<Option<bool>>("matched").unwrap(), None);
    let second = pool.fetch_all(merge()).await.unwrap();
    assert_eq!(second[0].get::<Option<bool>>("matched").unwrap(), Some(true));
    assert_eq!(nodes.count(&pool).await, 1);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn unwind_imports_batches_of_maps() {
    let (pool, nodes) = common::pool_and_nodes("queries_unwind", 2, LABEL).await;
    let total = 2_000;
    let batch = 500;
    for start in (0..total).step_by(batch) {
        let rows: Vec<BoltType> = (start..start + batch)
            .map(|i| {
                let m: HashMap<&str, BoltType> =
                    [("i", BoltType::from(i as i64)), ("title", BoltType::from(format!("track {i}")))]
                        .into_iter()
                        .collect();
                BoltType::from(m)
            })
            .collect();
        pool.execute(
            nodes
                .query("UNWIND $rows AS row CREATE (:AqNeoQ {run: $run, i: row.i, title: row.title})")
                .param("rows", rows),
        )
        .await
        .unwrap();
    }
    let rows = pool.fetch_all(nodes.matching("RETURN count(n) AS n, sum(n.i) AS s, max(n.i) AS m")).await.unwrap();
    assert_eq!(rows[0].get::<i64>("n").unwrap(), total as i64);
    assert_eq!(rows[0].get::<i64>("s").unwrap(), (0..total as i64).sum::<i64>());
    assert_eq!(rows[0].get::<i64>("m").unwrap(), total as i64 - 1);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn fetch_collects_results_larger_than_the_fetch_size() {
    common::require_bolt().await;
    let manager = aquifer_neo4j::Neo4jManager::new(common::config().fetch_size(7)).unwrap();
    let pool = aquifer_neo4j::Neo4jPool::from(
        aquifer_core::Pool::builder(manager).name("aq_neo4j_queries_fetch").max_size(1).build().unwrap(),
    );
    let rows = pool.fetch_all(query("UNWIND range(1, 100) AS i RETURN i")).await.unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.get("i").unwrap()).collect();
    assert_eq!(got, (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_pooled_connection_exposes_the_graph_api() {
    let pool = common::pool("queries_graph_api", 1, None).await;
    let conn = pool.get().await.unwrap();
    let mut stream = conn.execute(query("UNWIND [1, 2, 3] AS i RETURN i * 2 AS d")).await.unwrap();
    let mut got = Vec::new();
    while let Some(row) = stream.next().await.unwrap() {
        got.push(row.get::<i64>("d").unwrap());
    }
    assert_eq!(got, vec![2, 4, 6]);
    drop(stream);
    conn.run(query("RETURN 1")).await.unwrap();
}

#[tokio::test]
async fn a_query_while_a_stream_holds_the_connection_fails_at_once() {
    let pool = common::pool("queries_busy", 1, None).await;
    let conn = pool.get().await.unwrap();
    let stream = conn.execute(query("RETURN 1")).await.unwrap();
    let started = std::time::Instant::now();
    let e = conn.run(query("RETURN 2")).await.expect_err("the only Bolt connection is held by the stream");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "waited {:?}", started.elapsed());
    assert!(matches!(e, aquifer_neo4j::neo4rs::Error::ConnectionError), "{e:?}");
    drop(stream);
    conn.run(query("RETURN 2")).await.expect("usable once the stream is dropped");
}

#[tokio::test]
async fn a_query_error_is_a_server_error_with_its_code_and_leaves_the_connection_usable() {
    let pool = common::pool("queries_error", 1, None).await;
    let e = pool.execute("THIS IS NOT CYPHER").await.unwrap_err();
    let neo = e.backend_error().expect("a Neo4j error");
    assert!(matches!(neo, aquifer_neo4j::Neo4jError::Server(_)), "{neo:?}");
    assert_eq!(neo.code(), Some("Neo.ClientError.Statement.SyntaxError"));
    assert!(!neo.is_transient());
    // The only connection is still good.
    assert_eq!(pool.fetch_all("RETURN 1 AS one").await.unwrap()[0].get::<i64>("one").unwrap(), 1);
    assert_eq!(pool.stats().closed, 0);
}
