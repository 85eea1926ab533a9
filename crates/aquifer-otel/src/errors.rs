//! [`OtelError`]: what can go wrong installing or shutting down the exporter.

use std::fmt;
use std::time::Duration;

/// An error of [`init`](crate::init), [`OtelBuilder`](crate::OtelBuilder) or [`OtelGuard`](crate::OtelGuard).
///
/// The message includes the cause's (the exporter's, the SDK's, the I/O error's), so `source()` returns only
/// causes it leaves out ([`aquifer_core::source_not_in`]); the variants hold the causes themselves.
#[derive(Debug)]
#[non_exhaustive]
pub enum OtelError {
    /// An `OTEL_*` variable holds a value this crate cannot use. `value` is `None` when the value may hold a
    /// secret (`OTEL_EXPORTER_OTLP_HEADERS` often carries an API key) and is therefore not repeated.
    InvalidVariable {
        /// The variable, e.g. `OTEL_EXPORTER_OTLP_TIMEOUT`.
        variable: &'static str,
        /// Its value, unless it may hold a secret.
        value: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// A builder setting holds a value this crate cannot use.
    InvalidSetting {
        /// The builder method, e.g. `endpoint`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// OTLP over gRPC was asked for but this build of aquifer-otel lacks its `grpc` feature.
    GrpcNotEnabled {
        /// Where gRPC was asked for: a variable name or `OtelBuilder::protocol`.
        source_of_choice: &'static str,
    },
    /// The endpoint is `https://`, and this build of aquifer-otel has no TLS: send to a local OpenTelemetry
    /// Collector (or Prometheus, VictoriaMetrics) over plain HTTP on the loopback or a private network, and let
    /// it forward over TLS.
    TlsNotSupported {
        /// Where the endpoint came from: a variable name or an `OtelBuilder` method.
        source_of_choice: &'static str,
    },
    /// The OTLP exporter refused its configuration.
    Exporter(opentelemetry_otlp::ExporterBuildError),
    /// A thread (the gRPC exporter's runtime, or the bounded flush) could not be started.
    Thread(std::io::Error),
    /// Flushing or shutting down the SDK failed.
    Sdk {
        /// `flush` or `shut down`.
        what: &'static str,
        /// The SDK's error.
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    /// Flushing or shutting down did not finish within the guard's timeout; the rest continues in the background.
    Timeout {
        /// `flush` or `shut down`.
        what: &'static str,
        /// The bound that passed.
        timeout: Duration,
    },
}

impl fmt::Display for OtelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtelError::InvalidVariable { variable, value, reason } => match value {
                Some(v) => write!(f, "{variable}={v:?}: {reason}"),
                None => write!(f, "{variable}: {reason}"),
            },
            OtelError::InvalidSetting { setting, reason } => write!(f, "{setting}: {reason}"),
            OtelError::GrpcNotEnabled { source_of_choice } => write!(
                f,
                "{source_of_choice} asks for OTLP over gRPC, but aquifer-otel was built without its `grpc` feature"
            ),
            OtelError::TlsNotSupported { source_of_choice } => write!(
                f,
                "{source_of_choice} is an https:// URL, but aquifer-otel exports over plain HTTP/gRPC only; send to a \
                 local OpenTelemetry Collector that forwards over TLS"
            ),
            OtelError::Exporter(e) => write!(f, "the OTLP exporter could not be built: {e}"),
            OtelError::Thread(e) => write!(f, "aquifer-otel could not start a thread: {e}"),
            OtelError::Sdk { what, source } => write!(f, "the OpenTelemetry SDK failed to {what}: {source}"),
            OtelError::Timeout { what, timeout } => {
                write!(f, "the OpenTelemetry SDK did not {what} within {timeout:?}")
            }
        }
    }
}

impl std::error::Error for OtelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause: &(dyn std::error::Error + 'static) = match self {
            OtelError::Exporter(e) => e,
            OtelError::Thread(e) => e,
            OtelError::Sdk { source, .. } => source,
            _ => return None,
        };
        aquifer_core::source_not_in(&self.to_string(), cause)
    }
}

impl From<opentelemetry_otlp::ExporterBuildError> for OtelError {
    fn from(e: opentelemetry_otlp::ExporterBuildError) -> Self {
        OtelError::Exporter(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_a_cause_print_it_once() {
        let thread = OtelError::Thread(std::io::Error::other("resource temporarily unavailable"));
        assert_eq!(
            aquifer_testing::assert_each_cause_once(&thread),
            "aquifer-otel could not start a thread: resource temporarily unavailable"
        );
        let sdk = OtelError::Sdk {
            what: "flush",
            source: opentelemetry_sdk::error::OTelSdkError::InternalFailure("exporter is gone".into()),
        };
        let rendered = aquifer_testing::assert_each_cause_once(&sdk);
        assert!(
            rendered.starts_with("the OpenTelemetry SDK failed to flush: ") && rendered.contains("exporter is gone")
        );
    }
}
