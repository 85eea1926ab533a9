//! Query parameters of every Bolt type, echoed by the server (`RETURN $v`) and stored on a node and read back.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use aquifer_neo4j::neo4rs::{BoltFloat, BoltNull, BoltPoint2D};
use aquifer_neo4j::{BoltType, Neo4jPool, query};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use common::Nodes;
use serde::de::DeserializeOwned;

const LABEL: &str = "AqNeoParams";

/// `RETURN $v AS v`, read back as `T`.
async fn echo<T: DeserializeOwned>(pool: &Neo4jPool, v: impl Into<BoltType>) -> T {
    let rows = pool.fetch_all(query("RETURN $v AS v").param("v", v.into())).await.expect("echo");
    rows[0].get::<T>("v").expect("column v converts")
}

/// Stores `v` as a property of a new node of `nodes`, then reads it back with a separate MATCH.
async fn stored<T: DeserializeOwned>(pool: &Neo4jPool, nodes: &Nodes, v: impl Into<BoltType>) -> T {
    let key = common::run_id();
    pool.execute(nodes.create("key: $key, v: $v").param("key", key.clone()).param("v", v.into()))
        .await
        .expect("create");
    let rows =
        pool.fetch_all(nodes.matching("AND n.key = $key RETURN n.v AS v").param("key", key)).await.expect("match");
    assert_eq!(rows.len(), 1);
    rows[0].get::<T>("v").expect("property v converts")
}

async fn setup(name: &str) -> (Neo4jPool, Nodes) {
    common::pool_and_nodes(name, 2, LABEL).await
}

/// Checks that each of `values` comes back equal both echoed and stored, on a new pool named `name` (returned
/// for the test's own further checks).
async fn round_trips<T>(name: &str, values: impl IntoIterator<Item = T>) -> Neo4jPool
where
    T: Into<BoltType> + DeserializeOwned + PartialEq + Debug + Clone,
{
    let (pool, nodes) = setup(name).await;
    for v in values {
        assert_eq!(echo::<T>(&pool, v.clone()).await, v);
        assert_eq!(stored::<T>(&pool, &nodes, v.clone()).await, v);
    }
    nodes.cleanup(&pool).await;
    pool
}

#[tokio::test]
async fn integer_parameters_round_trip() {
    round_trips("params_int", [0i64, -1, 42, i64::MIN, i64::MAX]).await;
}

#[tokio::test]
async fn float_parameters_round_trip() {
    let pool = round_trips("params_float", [0.0f64, 1.5, -2.25, 1e300, f64::MIN_POSITIVE, f64::INFINITY]).await;
    assert!(echo::<f64>(&pool, f64::NAN).await.is_nan());
}

#[tokio::test]
async fn string_parameters_round_trip() {
    let long = "ab".repeat(50_000);
    let values = ["", "plain", "héllo wörld ✓ 🎵", "quotes ' \" and \\ backslash", "new\nline", long.as_str()];
    round_trips("params_string", values.map(String::from)).await;
}

#[tokio::test]
async fn boolean_parameters_round_trip() {
    round_trips("params_bool", [true, false]).await;
}

#[tokio::test]
async fn null_parameter_is_null() {
    let (pool, _) = setup("params_null").await;
    assert_eq!(echo::<Option<i64>>(&pool, BoltType::Null(BoltNull)).await, None);
    assert_eq!(echo::<Option<i64>>(&pool, None::<i64>).await, None);
    assert_eq!(echo::<Option<i64>>(&pool, Some(5i64)).await, Some(5));
    let rows = pool.fetch_all(query("RETURN $v IS NULL AS v").param("v", None::<String>)).await.unwrap();
    assert!(rows[0].get::<bool>("v").unwrap());
}

#[tokio::test]
async fn list_parameters_round_trip() {
    let (pool, nodes) = setup("params_list").await;
    assert_eq!(echo::<Vec<i64>>(&pool, vec![1i64, 2, 3]).await, vec![1, 2, 3]);
    assert_eq!(echo::<Vec<String>>(&pool, vec!["a", "b"]).await, vec!["a", "b"]);
    assert_eq!(echo::<Vec<i64>>(&pool, Vec::<i64>::new()).await, Vec::<i64>::new());
    assert_eq!(stored::<Vec<f64>>(&pool, &nodes, vec![1.5f64, 2.5]).await, vec![1.5, 2.5]);
    let nested = BoltType::from(vec![BoltType::from(vec![1i64, 2]), BoltType::from("x"), BoltType::Null(BoltNull)]);
    assert_eq!(echo::<BoltType>(&pool, nested.clone()).await, nested);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn map_parameters_round_trip() {
    let (pool, _) = setup("params_map").await;
    let map: HashMap<String, i64> = [("a".to_owned(), 1), ("b".to_owned(), 2)].into_iter().collect();
    let v: BoltType = map.iter().map(|(k, v)| (k.as_str(), *v)).collect::<HashMap<_, _>>().into();
    assert_eq!(echo::<HashMap<String, i64>>(&pool, v).await, map);
    let rows = pool
        .fetch_all(
            query("RETURN $m.name AS name, $m.tags[1] AS tag, $m.inner.n AS n").param(
                "m",
                BoltType::from(
                    [
                        ("name", BoltType::from("Nina")),
                        ("tags", BoltType::from(vec!["jazz", "soul"])),
                        ("inner", BoltType::from([("n", 7i64)].into_iter().collect::<HashMap<_, _>>())),
                    ]
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
                ),
            ),
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<String>("name").unwrap(), "Nina");
    assert_eq!(rows[0].get::<String>("tag").unwrap(), "soul");
    assert_eq!(rows[0].get::<i64>("n").unwrap(), 7);
}

#[tokio::test]
async fn byte_array_parameters_round_trip() {
    round_trips("params_bytes", [(0..=255).collect::<Vec<u8>>()]).await;
}

#[tokio::test]
async fn date_and_local_time_parameters_round_trip() {
    let (pool, nodes) = setup("params_dates").await;
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    assert_eq!(echo::<NaiveDate>(&pool, date).await, date);
    assert_eq!(stored::<NaiveDate>(&pool, &nodes, date).await, date);
    let local: NaiveDateTime = date.and_hms_milli_opt(13, 14, 15, 678).unwrap();
    assert_eq!(echo::<NaiveDateTime>(&pool, local).await, local);
    assert_eq!(stored::<NaiveDateTime>(&pool, &nodes, local).await, local);
    let time = NaiveTime::from_hms_opt(1, 2, 3).unwrap();
    assert_eq!(echo::<NaiveTime>(&pool, time).await, time);
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn datetime_parameters_round_trip() {
    let (pool, _) = setup("params_datetime").await;
    let dt: DateTime<FixedOffset> = DateTime::parse_from_rfc3339("2024-02-29T12:34:56.789+02:00").unwrap();
    assert_eq!(echo::<DateTime<FixedOffset>>(&pool, dt).await, dt);
    let utc: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
    assert_eq!(echo::<DateTime<FixedOffset>>(&pool, utc).await, utc.fixed_offset());
}

/// ArcadeDB quirk (docs/neo4j.md): a datetime with an offset keeps it as a parameter, but once stored as a
/// property it reads back as a local datetime holding the UTC wall-clock time (Neo4j keeps the datetime).
#[tokio::test]
async fn stored_datetime_keeps_its_instant() {
    let (pool, nodes) = setup("params_datetime_stored").await;
    let dt: DateTime<FixedOffset> = DateTime::parse_from_rfc3339("2024-02-29T12:34:56.789+02:00").unwrap();
    let back = stored::<BoltType>(&pool, &nodes, dt).await;
    match &back {
        BoltType::DateTime(_) => assert_eq!(DateTime::<FixedOffset>::try_from(back).unwrap(), dt),
        BoltType::LocalDateTime(_) => assert_eq!(NaiveDateTime::try_from(back).unwrap(), dt.naive_utc()),
        other => panic!("unexpected {other:?}"),
    }
    nodes.cleanup(&pool).await;
}

#[tokio::test]
async fn duration_parameters_round_trip() {
    round_trips("params_duration", [Duration::from_millis(90_500)]).await;
}

#[tokio::test]
async fn zoned_datetime_time_with_offset_and_point_parameters_round_trip() {
    let (pool, _) = setup("params_zoned").await;
    let zoned: BoltType =
        (NaiveDate::from_ymd_opt(2024, 2, 29).unwrap().and_hms_opt(1, 2, 3).unwrap(), "Europe/Paris").into();
    assert_eq!(echo::<BoltType>(&pool, zoned.clone()).await, zoned);
    let timed: BoltType = (NaiveTime::from_hms_opt(1, 2, 3).unwrap(), FixedOffset::east_opt(3600).unwrap()).into();
    assert_eq!(echo::<BoltType>(&pool, timed.clone()).await, timed);
    let point = BoltType::Point2D(BoltPoint2D { sr_id: 7203.into(), x: BoltFloat::new(1.0), y: BoltFloat::new(2.0) });
    assert_eq!(echo::<BoltType>(&pool, point.clone()).await, point);
}
