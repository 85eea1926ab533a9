//! Query parameters of every Bolt type, echoed by the server (`RETURN $v`) and stored on a node and read back.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aquifer_neo4j::neo4rs::{BoltFloat, BoltNull, BoltPoint2D};
use aquifer_neo4j::{BoltType, Neo4jPool, query};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::de::DeserializeOwned;

const LABEL: &str = "AqNeoParams";

/// `RETURN $v AS v`, read back as `T`.
async fn echo<T: DeserializeOwned>(pool: &Neo4jPool, v: impl Into<BoltType>) -> T {
    let rows = pool.fetch_all(query("RETURN $v AS v").param("v", v.into())).await.expect("echo");
    rows[0].get::<T>("v").expect("column v converts")
}

/// Stores `v` as a property of a new node, then reads it back with a separate MATCH.
async fn stored<T: DeserializeOwned>(pool: &Neo4jPool, run: &str, v: impl Into<BoltType>) -> T {
    let key = common::run_id();
    pool.execute(
        query(&format!("CREATE (:{LABEL} {{run: $run, key: $key, v: $v}})"))
            .param("run", run)
            .param("key", key.clone())
            .param("v", v.into()),
    )
    .await
    .expect("create");
    let rows = pool
        .fetch_all(
            query(&format!("MATCH (n:{LABEL}) WHERE n.run = $run AND n.key = $key RETURN n.v AS v"))
                .param("run", run)
                .param("key", key),
        )
        .await
        .expect("match");
    assert_eq!(rows.len(), 1);
    rows[0].get::<T>("v").expect("property v converts")
}

async fn setup(name: &str) -> (Neo4jPool, String) {
    (common::pool(name, 2, None).await, common::run_id())
}

#[tokio::test]
async fn integer_parameters_round_trip() {
    let (pool, run) = setup("params_int").await;
    for v in [0i64, -1, 42, i64::MIN, i64::MAX] {
        assert_eq!(echo::<i64>(&pool, v).await, v);
        assert_eq!(stored::<i64>(&pool, &run, v).await, v);
    }
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn float_parameters_round_trip() {
    let (pool, run) = setup("params_float").await;
    for v in [0.0f64, 1.5, -2.25, 1e300, f64::MIN_POSITIVE, f64::INFINITY] {
        assert_eq!(echo::<f64>(&pool, v).await, v);
        assert_eq!(stored::<f64>(&pool, &run, v).await, v);
    }
    assert!(echo::<f64>(&pool, f64::NAN).await.is_nan());
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn string_parameters_round_trip() {
    let (pool, run) = setup("params_string").await;
    let long = "ab".repeat(50_000);
    for v in ["", "plain", "héllo wörld ✓ 🎵", "quotes ' \" and \\ backslash", "new\nline", long.as_str()] {
        assert_eq!(echo::<String>(&pool, v).await, v);
        assert_eq!(stored::<String>(&pool, &run, v).await, v);
    }
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn boolean_parameters_round_trip() {
    let (pool, run) = setup("params_bool").await;
    for v in [true, false] {
        assert_eq!(echo::<bool>(&pool, v).await, v);
        assert_eq!(stored::<bool>(&pool, &run, v).await, v);
    }
    common::cleanup(&pool, LABEL, &run).await;
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
    let (pool, run) = setup("params_list").await;
    assert_eq!(echo::<Vec<i64>>(&pool, vec![1i64, 2, 3]).await, vec![1, 2, 3]);
    assert_eq!(echo::<Vec<String>>(&pool, vec!["a", "b"]).await, vec!["a", "b"]);
    assert_eq!(echo::<Vec<i64>>(&pool, Vec::<i64>::new()).await, Vec::<i64>::new());
    assert_eq!(stored::<Vec<f64>>(&pool, &run, vec![1.5f64, 2.5]).await, vec![1.5, 2.5]);
    let nested = BoltType::from(vec![BoltType::from(vec![1i64, 2]), BoltType::from("x"), BoltType::Null(BoltNull)]);
    assert_eq!(echo::<BoltType>(&pool, nested.clone()).await, nested);
    common::cleanup(&pool, LABEL, &run).await;
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
    let (pool, run) = setup("params_bytes").await;
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(echo::<Vec<u8>>(&pool, bytes.clone()).await, bytes);
    assert_eq!(stored::<Vec<u8>>(&pool, &run, bytes.clone()).await, bytes);
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn date_and_local_time_parameters_round_trip() {
    let (pool, run) = setup("params_dates").await;
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    assert_eq!(echo::<NaiveDate>(&pool, date).await, date);
    assert_eq!(stored::<NaiveDate>(&pool, &run, date).await, date);
    let local: NaiveDateTime = date.and_hms_milli_opt(13, 14, 15, 678).unwrap();
    assert_eq!(echo::<NaiveDateTime>(&pool, local).await, local);
    assert_eq!(stored::<NaiveDateTime>(&pool, &run, local).await, local);
    let time = NaiveTime::from_hms_opt(1, 2, 3).unwrap();
    assert_eq!(echo::<NaiveTime>(&pool, time).await, time);
    common::cleanup(&pool, LABEL, &run).await;
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
    let (pool, run) = setup("params_datetime_stored").await;
    let dt: DateTime<FixedOffset> = DateTime::parse_from_rfc3339("2024-02-29T12:34:56.789+02:00").unwrap();
    let back = stored::<BoltType>(&pool, &run, dt).await;
    match &back {
        BoltType::DateTime(_) => assert_eq!(DateTime::<FixedOffset>::try_from(back).unwrap(), dt),
        BoltType::LocalDateTime(_) => assert_eq!(NaiveDateTime::try_from(back).unwrap(), dt.naive_utc()),
        other => panic!("unexpected {other:?}"),
    }
    common::cleanup(&pool, LABEL, &run).await;
}

#[tokio::test]
async fn duration_parameters_round_trip() {
    let (pool, run) = setup("params_duration").await;
    let d = Duration::from_millis(90_500);
    assert_eq!(echo::<Duration>(&pool, d).await, d);
    assert_eq!(stored::<Duration>(&pool, &run, d).await, d);
    common::cleanup(&pool, LABEL, &run).await;
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
