//! The exporter's settings and how the standard `OTEL_*` variables set them.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::errors::OtelError;

/// `OTEL_SDK_DISABLED`: `true` installs nothing.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `OTEL_METRICS_EXPORTER`: `otlp`, `console` or `none`.
pub const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: base URL; `/v1/metrics` is appended for HTTP.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: the full URL metrics are sent to (wins over the base URL).
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (default) or `grpc`.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`: like `OTEL_EXPORTER_OTLP_PROTOCOL`, for metrics only (wins).
pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-encoded.
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_METRICS_HEADERS`: added to (and overriding) `OTEL_EXPORTER_OTLP_HEADERS`.
pub const OTEL_EXPORTER_OTLP_METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`: milliseconds per export request.
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT`: like `OTEL_EXPORTER_OTLP_TIMEOUT`, for metrics only (wins).
pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
/// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,...` resource attributes, values percent-encoded.
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_METRIC_EXPORT_INTERVAL`: milliseconds between exports.
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";

/// Where metrics go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// OTLP to a collector or a backend that ingests it.
    Otlp,
    /// Printed to standard output (for a look during development).
    Console,
    /// Nowhere: no SDK is installed and every instrument stays a no-op.
    None,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// Protobuf over HTTP, default port 4318.
    #[default]
    HttpProtobuf,
    /// gRPC, default port 4317 (the `grpc` feature).
    Grpc,
}

impl Protocol {
    /// The endpoint used when none is configured.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http://localhost:4318",
            Protocol::Grpc => "http://localhost:4317",
        }
    }
}

/// A header sent with every export. Its value is never shown by `Debug`: headers carry API keys.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <redacted>", self.name)
    }
}

/// Reads one variable: unset and empty are the same (the specification's rule).
pub(crate) struct Vars<'a>(pub(crate) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with its name.
    pub(crate) fn first(&self, names: [&'static str; 2]) -> Option<(&'static str, String)> {
        names.into_iter().find_map(|n| self.get(n).map(|v| (n, v)))
    }
}

pub(crate) fn invalid(variable: &'static str, value: &str, reason: impl Into<String>) -> OtelError {
    OtelError::InvalidVariable { variable, value: Some(value.to_owned()), reason: reason.into() }
}

pub(crate) fn parse_exporter(variable: &'static str, value: &str) -> Result<Exporter, OtelError> {
    match value.to_ascii_lowercase().as_str() {
        "otlp" => Ok(Exporter::Otlp),
        "console" => Ok(Exporter::Console),
        "none" => Ok(Exporter::None),
        _ => Err(invalid(variable, value, "expected `otlp`, `console` or `none`")),
    }
}

pub(crate) fn parse_protocol(variable: &'static str, value: &str) -> Result<Protocol, OtelError> {
    match value {
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "grpc" => Ok(Protocol::Grpc),
        "http/json" => Err(invalid(variable, value, "http/json is not supported; use `http/protobuf` or `grpc`")),
        _ => Err(invalid(variable, value, "expected `http/protobuf` or `grpc`")),
    }
}

pub(crate) fn parse_bool(variable: &'static str, value: &str) -> Result<bool, OtelError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(variable, value, "expected `true` or `false`")),
    }
}

/// Milliseconds, as the specification writes every OTEL_* duration.
pub(crate) fn parse_millis(variable: &'static str, value: &str) -> Result<Duration, OtelError> {
    match value.parse::<u64>() {
        Ok(0) => Err(invalid(variable, value, "must be more than 0 milliseconds")),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(invalid(variable, value, "expected a whole number of milliseconds")),
    }
}

/// An `http://` or `https://` URL.
pub(crate) fn check_endpoint(value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        "http" | "https" => Err("the URL has no host".into()),
        other => Err(format!("the scheme must be http or https, not {other}")),
    }
}

/// `key=value` pairs separated by commas, values percent-decoded (the W3C baggage format the specification
/// uses for headers and resource attributes). `secret` keeps values out of errors.
pub(crate) fn parse_pairs(
    variable: &'static str,
    value: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, OtelError> {
    let fail =
        |reason: String| OtelError::InvalidVariable { variable, value: (!secret).then(|| value.to_owned()), reason };
    let mut pairs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            let shown = if secret { "an entry" } else { item };
            return Err(fail(format!("{shown} has no `=`; expected key=value pairs separated by commas")));
        };
        let key = k.trim();
        if key.is_empty() {
            return Err(fail("an entry has an empty key".into()));
        }
        let decoded = percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| fail(format!("the value of {key} is not UTF-8 once percent-decoded")))?;
        pairs.push((key.to_owned(), decoded.into_owned()));
    }
    Ok(pairs)
}

pub(crate) fn parse_headers(variable: &'static str, value: &str) -> Result<Vec<Header>, OtelError> {
    let pairs = parse_pairs(variable, value, true)?;
    let mut headers = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(OtelError::InvalidVariable {
                variable,
                value: None,
                reason: format!("{name:?} is not a valid header name"),
            });
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(OtelError::InvalidVariable {
                variable,
                value: None,
                reason: format!("the value of header {name} holds a line break or NUL"),
            });
        }
        headers.push(Header { name, value });
    }
    Ok(headers)
}
