//! How the standard OTEL_* variables configure the exporter, and the errors a bad value gives.

use std::collections::HashMap;
use std::time::Duration;

use aquifer_otel::{Exporter, OtelBuilder, OtelError, Protocol};

fn from(vars: &[(&str, &str)]) -> Result<OtelBuilder, OtelError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    OtelBuilder::from_vars(move |k| map.get(k).cloned())
}

fn invalid_variable(vars: &[(&str, &str)]) -> (&'static str, Option<String>, String) {
    match from(vars) {
        Err(OtelError::InvalidVariable { variable, value, reason }) => (variable, value, reason),
        other => panic!("expected InvalidVariable for {vars:?}, got {other:?}"),
    }
}

#[test]
fn no_endpoint_and_no_exporter_variable_exports_nothing() {
    let b = from(&[]).unwrap();
    assert_eq!(b.configured_exporter(), Exporter::None);
    assert!(!b.build().unwrap().is_exporting());
}

#[test]
fn an_endpoint_variable_alone_selects_otlp_over_http() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
    assert_eq!(b.configured_exporter(), Exporter::Otlp);
    assert_eq!(b.configured_protocol(), Protocol::HttpProtobuf);
    assert_eq!(b.metrics_url(), "http://collector:4318/v1/metrics");
}

#[test]
fn the_metrics_endpoint_is_used_as_given_and_wins() {
    let b = from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://vm:8428/opentelemetry/v1/metrics"),
    ])
    .unwrap();
    assert_eq!(b.metrics_url(), "http://vm:8428/opentelemetry/v1/metrics");
}

#[test]
fn exporter_none_wins_over_an_endpoint() {
    let b =
        from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_METRICS_EXPORTER", "none")]).unwrap();
    assert_eq!(b.configured_exporter(), Exporter::None);
}

#[test]
fn sdk_disabled_exports_nothing() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_SDK_DISABLED", "true")]).unwrap();
    assert_eq!(b.configured_exporter(), Exporter::None);
}

#[test]
fn console_exporter_is_accepted() {
    let b = from(&[("OTEL_METRICS_EXPORTER", "console")]).unwrap();
    assert_eq!(b.configured_exporter(), Exporter::Console);
    assert!(b.build().unwrap().is_exporting());
}

#[test]
fn interval_and_timeout_are_milliseconds() {
    let b = from(&[("OTEL_METRIC_EXPORT_INTERVAL", "1500"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "250")]).unwrap();
    assert_eq!(b.configured_export_interval(), Duration::from_millis(1500));
    assert_eq!(b.configured_timeout(), Duration::from_millis(250));
}

#[test]
fn the_metrics_timeout_wins_over_the_generic_one() {
    let b = from(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "250"), ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700")]).unwrap();
    assert_eq!(b.configured_timeout(), Duration::from_millis(700));
}

#[test]
fn a_bad_exporter_names_the_variable_and_value() {
    let (variable, value, reason) = invalid_variable(&[("OTEL_METRICS_EXPORTER", "prometheus")]);
    assert_eq!(variable, "OTEL_METRICS_EXPORTER");
    assert_eq!(value.as_deref(), Some("prometheus"));
    assert!(reason.contains("otlp"), "{reason}");
}

#[test]
fn a_bad_protocol_names_the_variable() {
    let (variable, value, _) = invalid_variable(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http")]);
    assert_eq!((variable, value.as_deref()), ("OTEL_EXPORTER_OTLP_PROTOCOL", Some("http")));
}

#[test]
fn http_json_is_refused_with_the_supported_protocols() {
    let (variable, _, reason) = invalid_variable(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")]);
    assert_eq!(variable, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL");
    assert!(reason.contains("http/protobuf"), "{reason}");
}

#[test]
fn a_non_numeric_interval_names_the_variable() {
    let (variable, value, _) = invalid_variable(&[("OTEL_METRIC_EXPORT_INTERVAL", "5s")]);
    assert_eq!((variable, value.as_deref()), ("OTEL_METRIC_EXPORT_INTERVAL", Some("5s")));
}

#[test]
fn a_zero_timeout_is_refused() {
    let (variable, _, reason) = invalid_variable(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]);
    assert_eq!(variable, "OTEL_EXPORTER_OTLP_TIMEOUT");
    assert!(reason.contains("more than 0"), "{reason}");
}

#[test]
fn an_endpoint_that_is_not_a_url_names_the_variable() {
    let (variable, value, _) = invalid_variable(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
    assert_eq!((variable, value.as_deref()), ("OTEL_EXPORTER_OTLP_ENDPOINT", Some("collector:4318")));
}

#[test]
fn a_bad_sdk_disabled_value_names_the_variable() {
    let (variable, _, _) = invalid_variable(&[("OTEL_SDK_DISABLED", "yes")]);
    assert_eq!(variable, "OTEL_SDK_DISABLED");
}

#[test]
fn a_bad_header_names_the_variable_but_never_shows_its_value() {
    let secret = "Authorization=Basic%20c2VjcmV0,broken-entry-with-api-key-xyz";
    let err = from(&[("OTEL_EXPORTER_OTLP_HEADERS", secret)]).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("OTEL_EXPORTER_OTLP_HEADERS"), "{text}");
    assert!(!text.contains("c2VjcmV0") && !text.contains("api-key-xyz"), "{text}");
    assert!(!format!("{err:?}").contains("c2VjcmV0"));
}

#[test]
fn header_values_never_appear_in_the_builders_debug() {
    let b = from(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr3t-value")]).unwrap();
    let debug = format!("{b:?}");
    assert!(debug.contains("x-api-key") && !debug.contains("s3cr3t-value"), "{debug}");
}

#[test]
fn bad_resource_attributes_name_the_variable() {
    let (variable, value, _) = invalid_variable(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment")]);
    assert_eq!((variable, value.as_deref()), ("OTEL_RESOURCE_ATTRIBUTES", Some("deployment.environment")));
}

#[cfg(not(feature = "grpc"))]
#[test]
fn grpc_without_the_feature_names_the_variable_that_asked_for_it() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
        .unwrap();
    match b.build() {
        Err(OtelError::GrpcNotEnabled { source_of_choice }) => {
            assert_eq!(source_of_choice, "OTEL_EXPORTER_OTLP_PROTOCOL")
        }
        other => panic!("expected GrpcNotEnabled, got {other:?}"),
    }
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_uses_the_endpoint_as_given() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
        .unwrap();
    assert_eq!(b.metrics_url(), "http://collector:4317");
}

#[test]
fn an_https_endpoint_is_refused_naming_the_variable() {
    let b = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp-gateway.example.net/otlp")]).unwrap();
    match b.build() {
        Err(OtelError::TlsNotSupported { source_of_choice }) => {
            assert_eq!(source_of_choice, "OTEL_EXPORTER_OTLP_ENDPOINT")
        }
        other => panic!("expected TlsNotSupported, got {other:?}"),
    }
}
