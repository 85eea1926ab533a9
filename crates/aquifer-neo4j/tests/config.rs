//! Neo4jConfig: builder, serde, NEO4J_* variables, validation errors that name the field, redaction.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_neo4j::{ConfigError, Neo4jConfig, Neo4jManager, Password, PoolConfig};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

/// The fields a configuration names its server and reads by: uri, user, password, database, fetch size, read
/// timeout (compared as one value, so a test checks them all).
fn fields(c: &Neo4jConfig) -> (&str, &str, &str, Option<&str>, usize, Duration) {
    (&c.uri, &c.user, c.password.expose(), c.database.as_deref(), c.fetch_size, c.read_timeout)
}

/// The field named by the error `c` fails validation with (panics if `c` is valid or fails otherwise).
fn rejected_field(c: Neo4jConfig) -> &'static str {
    match c.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn defaults_point_at_a_local_server() {
    let c = Neo4jConfig::default();
    assert_eq!(c.uri, "bolt://127.0.0.1:7687");
    assert_eq!(c.user, "neo4j");
    assert_eq!(c.fetch_size, 200);
    assert_eq!(c.read_timeout, Duration::from_secs(30));
    assert_eq!(c.database, None);
    assert!(c.validate().is_ok());
}

#[test]
fn builder_sets_every_field() {
    let c = Neo4jConfig::default()
        .uri("bolt+s://graph.example.com:7777")
        .user("app")
        .password("pw-123456")
        .database("music")
        .fetch_size(1000)
        .read_timeout(Duration::from_secs(5));
    assert_eq!(
        fields(&c),
        ("bolt+s://graph.example.com:7777", "app", "pw-123456", Some("music"), 1000, Duration::from_secs(5))
    );
}

#[test]
fn deserializes_from_json_with_durations_as_text() {
    let c: Neo4jConfig = serde_json::from_str(
        r#"{"uri": "bolt://db:7687", "user": "app", "password": "pw-123456", "database": "music",
            "fetch_size": 50, "read_timeout": "2s"}"#,
    )
    .unwrap();
    assert_eq!(fields(&c), ("bolt://db:7687", "app", "pw-123456", Some("music"), 50, Duration::from_secs(2)));
}

#[test]
fn unknown_json_fields_are_rejected() {
    let e = serde_json::from_str::<Neo4jConfig>(r#"{"url": "bolt://db"}"#).unwrap_err();
    assert!(e.to_string().contains("url"), "{e}");
}

#[test]
fn reads_neo4j_variables() {
    let c = Neo4jConfig::from_lookup(
        "NEO4J",
        env(&[
            ("NEO4J_URI", "bolt://graph:7688"),
            ("NEO4J_USER", "app"),
            ("NEO4J_PASSWORD", "pw-123456"),
            ("NEO4J_DATABASE", "music"),
            ("NEO4J_FETCH_SIZE", "64"),
            ("NEO4J_READ_TIMEOUT", "1500ms"),
        ]),
    )
    .unwrap();
    assert_eq!(fields(&c), ("bolt://graph:7688", "app", "pw-123456", Some("music"), 64, Duration::from_millis(1500)));
}

#[test]
fn url_and_username_variables_are_accepted_as_aliases() {
    let c =
        Neo4jConfig::from_lookup("NEO4J", env(&[("NEO4J_URL", "bolt://graph"), ("NEO4J_USERNAME", "app")])).unwrap();
    assert_eq!(c.uri, "bolt://graph");
    assert_eq!(c.user, "app");
}

#[test]
fn pool_variables_come_from_pool_config_with_the_same_prefix() {
    let p =
        PoolConfig::from_lookup("NEO4J", env(&[("NEO4J_POOL_MAX_SIZE", "32"), ("NEO4J_POOL_ACQUIRE_TIMEOUT", "3s")]))
            .unwrap();
    assert_eq!(p.max_size, 32);
    assert_eq!(p.acquire_timeout, Duration::from_secs(3));
}

#[test]
fn a_bad_fetch_size_variable_is_named_in_the_error() {
    let e = Neo4jConfig::from_lookup("NEO4J", env(&[("NEO4J_FETCH_SIZE", "lots")])).unwrap_err();
    match &e {
        ConfigError::Env { var, value, .. } => {
            assert_eq!(var, "NEO4J_FETCH_SIZE");
            assert_eq!(value, "lots");
        }
        other => panic!("expected an Env error, got {other:?}"),
    }
}

#[test]
fn an_invalid_value_from_the_environment_names_the_variable() {
    let e = Neo4jConfig::from_lookup("NEO4J", env(&[("NEO4J_FETCH_SIZE", "0")])).unwrap_err();
    assert!(matches!(&e, ConfigError::Env { var, .. } if var == "NEO4J_FETCH_SIZE"), "{e:?}");
    let e = Neo4jConfig::from_lookup("NEO4J", env(&[("NEO4J_READ_TIMEOUT", "soon")])).unwrap_err();
    assert!(matches!(&e, ConfigError::Env { var, .. } if var == "NEO4J_READ_TIMEOUT"), "{e:?}");
}

#[test]
fn an_unsupported_scheme_is_rejected_naming_uri() {
    let e = Neo4jConfig::default().uri("http://127.0.0.1:2480").validate().unwrap_err();
    assert!(matches!(&e, ConfigError::Invalid { field: "uri", .. }), "{e:?}");
    assert!(e.to_string().contains("http"), "{e}");
}

#[test]
fn a_uri_without_host_is_rejected() {
    assert_eq!(rejected_field(Neo4jConfig::default().uri("bolt://")), "uri");
}

#[test]
fn a_uri_with_a_path_is_rejected() {
    assert_eq!(rejected_field(Neo4jConfig::default().uri("bolt://db:7687/music")), "uri");
}

#[test]
fn host_and_port_without_scheme_mean_bolt() {
    assert!(Neo4jConfig::default().uri("127.0.0.1:7687").validate().is_ok());
}

#[test]
fn zero_fetch_size_and_zero_read_timeout_are_rejected() {
    assert_eq!(rejected_field(Neo4jConfig::default().fetch_size(0)), "fetch_size");
    assert_eq!(rejected_field(Neo4jConfig::default().read_timeout(Duration::ZERO)), "read_timeout");
}

#[test]
fn an_empty_database_or_user_is_rejected() {
    assert_eq!(rejected_field(Neo4jConfig::default().database(" ")), "database");
    assert_eq!(rejected_field(Neo4jConfig::default().user("")), "user");
}

#[test]
fn debug_of_config_and_manager_never_shows_the_password() {
    let secret = "Sup3r-Secret-Pw";
    let c = Neo4jConfig::new(format!("bolt://app:{secret}@db:7687"), "neo4j", "").database("music");
    assert!(!format!("{c:?}").contains(secret), "{c:?}");
    let c = Neo4jConfig::new("bolt://db:7687", "app", secret);
    assert!(!format!("{c:?}").contains(secret), "{c:?}");
    let m = Neo4jManager::new(c).unwrap();
    assert!(!format!("{m:?}").contains(secret), "{m:?}");
    assert_eq!(format!("{:?}", Password::from(secret)), "Password(***)");
}

#[test]
fn an_invalid_uri_error_never_shows_the_password() {
    let secret = "Sup3r-Secret-Pw";
    let e = Neo4jConfig::default().uri(format!("http://app:{secret}@db:7687")).validate().unwrap_err();
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains(secret), "{e:?}");
}

#[test]
fn credentials_in_the_uri_stay_out_of_the_descriptor() {
    let m = Neo4jManager::new(Neo4jConfig::default().uri("bolt://app:p%40ss-word@db.example:7688")).unwrap();
    let d = aquifer_core::Manager::descriptor(&m);
    assert_eq!(d.server_address.as_deref(), Some("db.example"));
    assert_eq!(d.server_port, Some(7688));
    assert!(!format!("{d:?}").contains("p@ss"));
}

#[test]
fn descriptor_names_system_host_port_and_database() {
    let m = Neo4jManager::new(Neo4jConfig::default().uri("127.0.0.1").database("music")).unwrap();
    let d = aquifer_core::Manager::descriptor(&m);
    assert_eq!(d.system, "neo4j");
    assert_eq!(d.server_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(d.server_port, Some(7687));
    assert_eq!(d.namespace.as_deref(), Some("music"));
    assert_eq!(d.default_pool_name(), "127.0.0.1:7687/music");
}

/// What `f` logs at WARN and above, as text.
fn warnings_of(f: impl FnOnce()) -> String {
    let logs = aquifer_testing::LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    logs.text()
}

#[test]
fn a_routing_scheme_warns_at_start_up_that_nothing_is_routed() {
    for scheme in ["neo4j", "neo4j+s", "neo4j+ssc"] {
        let text = warnings_of(|| {
            Neo4jManager::new(Neo4jConfig::new(format!("{scheme}://db.example:7688"), "neo4j", "s3cret-pw")).unwrap();
        });
        assert!(text.contains("WARN"), "{scheme}: {text}");
        assert!(text.contains(&format!("{scheme}:// is a routing scheme")), "{scheme}: {text}");
        assert!(text.contains("does no cluster routing") && text.contains("db.example:7688"), "{scheme}: {text}");
        assert!(!text.contains("s3cret-pw"), "{text}");
    }
    let plain = warnings_of(|| {
        Neo4jManager::new(Neo4jConfig::new("bolt://db.example:7688", "neo4j", "s3cret-pw")).unwrap();
    });
    assert_eq!(plain, "", "bolt:// is one server by definition: nothing to warn about");
}
