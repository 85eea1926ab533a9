#![doc = include_str!("../README.md")]

mod builder;
mod config;
mod errors;
mod exporters;
mod guard;
mod views;

pub use builder::{DEFAULT_EXPORT_INTERVAL, DEFAULT_EXPORT_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, OtelBuilder};
pub use config::{
    Exporter, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_HEADERS, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_METRIC_EXPORT_INTERVAL, OTEL_METRICS_EXPORTER,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED, OTEL_SERVICE_NAME, Protocol,
};
pub use errors::OtelError;
pub use guard::OtelGuard;
pub use views::{OPERATION_DURATION_BUCKETS, POOL_TIME_BUCKETS};

/// Reads the `OTEL_*` variables and installs the global meter provider they describe:
/// `OtelBuilder::from_env()?.install()`. Call it at the start of `main`, before building pools, and keep the
/// guard alive until the end.
///
/// With neither `OTEL_METRICS_EXPORTER` nor an OTLP endpoint variable set, nothing is installed and the
/// application runs as without this call. Works inside and outside a tokio runtime; no export blocks or needs
/// the application's runtime.
pub fn init() -> Result<OtelGuard, OtelError> {
    OtelBuilder::from_env()?.install()
}
