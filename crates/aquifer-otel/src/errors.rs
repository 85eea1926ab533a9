//! [`OtelError`]: what can go wrong installing or shutting down the exporter.

use std::time::Duration;

/// An error of [`init`](crate::init), [`OtelBuilder`](crate::OtelBuilder) or [`OtelGuard`](crate::OtelGuard).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// An `OTEL_*` variable holds a value this crate cannot use. `value` is `None` when the value may hold a
    /// secret (`OTEL_EXPORTER_OTLP_HEADERS` often carries an API key) and is therefore not repeated.
    #[error("{variable}{}: {reason}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
    InvalidVariable {
        /// The variable, e.g. `OTEL_EXPORTER_OTLP_TIMEOUT`.
        variable: &'static str,
        /// Its value, unless it may hold a secret.
        value: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// A builder setting holds a value this crate cannot use.
    #[error("{setting}: {reason}")]
    InvalidSetting {
        /// The builder method, e.g. `endpoint`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// OTLP over gRPC was asked for but this build of aquifer-otel lacks its `grpc` feature.
    #[error("{source_of_choice} asks for OTLP over gRPC, but aquifer-otel was built without its `grpc` feature")]
    GrpcNotEnabled {
        /// Where gRPC was asked for: a variable name or `OtelBuilder::protocol`.
        source_of_choice: &'static str,
    },
    /// The endpoint is `https://`, and this build of aquifer-otel has no TLS: send to a local OpenTelemetry
    /// Collector (or Prometheus, VictoriaMetrics) over plain HTTP on the loopback or a private network, and let
    /// it forward over TLS.
    #[error(
        "{source_of_choice} is an https:// URL, but aquifer-otel exports over plain HTTP/gRPC only; send to a local OpenTelemetry Collector that forwards over TLS"
    )]
    TlsNotSupported {
        /// Where the endpoint came from: a variable name or an `OtelBuilder` method.
        source_of_choice: &'static str,
    },
    /// The OTLP exporter refused its configuration.
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A thread (the gRPC exporter's runtime, or the bounded flush) could not be started.
    #[error("aquifer-otel could not start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Flushing or shutting down the SDK failed.
    #[error("the OpenTelemetry SDK failed to {what}: {source}")]
    Sdk {
        /// `flush` or `shut down`.
        what: &'static str,
        /// The SDK's error.
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    /// Flushing or shutting down did not finish within the guard's timeout; the rest continues in the background.
    #[error("the OpenTelemetry SDK did not {what} within {timeout:?}")]
    Timeout {
        /// `flush` or `shut down`.
        what: &'static str,
        /// The bound that passed.
        timeout: Duration,
    },
}
