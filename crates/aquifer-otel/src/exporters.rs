//! The OTLP exporters, built so that neither needs the application's tokio runtime.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig};

use crate::config::Header;
use crate::errors::OtelError;

/// OTLP over HTTP/protobuf with opentelemetry-otlp's blocking reqwest client. The SDK's periodic reader exports
/// from a thread of its own, so a blocking client needs no runtime and cannot hit tokio's "no reactor running"
/// panic that the async client gives when an export runs outside one; opentelemetry-otlp builds the client on a
/// thread of its own, so building it inside a runtime is safe too.
pub(crate) fn http(url: &str, timeout: Duration, headers: &[Header]) -> Result<MetricExporter, OtelError> {
    let headers: HashMap<String, String> = headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
    Ok(MetricExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(timeout)
        .with_headers(headers)
        .build()?)
}

#[cfg(feature = "grpc")]
pub(crate) use grpc::grpc;

#[cfg(feature = "grpc")]
mod grpc {
    use std::time::Duration;

    use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
    use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithTonicConfig};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::metrics::Temporality;
    use opentelemetry_sdk::metrics::data::ResourceMetrics;
    use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
    use tokio::runtime::{Handle, Runtime};

    use crate::config::Header;
    use crate::errors::OtelError;

    /// tonic's channel needs a tokio runtime when it is built and while it sends; the SDK's periodic reader
    /// exports from a plain thread. This exporter owns a one-worker runtime: the channel is built inside it and
    /// every export runs on it, whether or not the application has a runtime of its own.
    pub(crate) struct GrpcExporter {
        inner: MetricExporter,
        handle: Handle,
    }

    pub(crate) fn grpc(url: &str, timeout: Duration, headers: &[Header]) -> Result<(GrpcExporter, Runtime), OtelError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aquifer-otel-grpc")
            .enable_all()
            .build()
            .map_err(OtelError::Thread)?;
        let mut map = http::HeaderMap::new();
        for h in headers {
            let name = http::HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                OtelError::InvalidSetting { setting: "header", reason: format!("{:?} is not a valid name", h.name) }
            })?;
            let value = http::HeaderValue::from_str(&h.value).map_err(|_| OtelError::InvalidSetting {
                setting: "header",
                reason: format!("the value of {} is not a valid header value", h.name),
            })?;
            map.insert(name, value);
        }
        let inner = {
            let _entered = runtime.enter();
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(url)
                .with_timeout(timeout)
                .with_metadata(MetadataMap::from_headers(map))
                .build()?
        };
        Ok((GrpcExporter { inner, handle: runtime.handle().clone() }, runtime))
    }

    impl PushMetricExporter for GrpcExporter {
        fn export(&self, metrics: &ResourceMetrics) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            // Inside a runtime (a reader that polls on one) the future runs where it is; on the periodic
            // reader's plain thread it runs on the exporter's runtime.
            let on_runtime = Handle::try_current().is_ok();
            async move {
                if on_runtime {
                    self.inner.export(metrics).await
                } else {
                    self.handle.block_on(self.inner.export(metrics))
                }
            }
        }

        fn force_flush(&self) -> OTelSdkResult {
            self.inner.force_flush()
        }

        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }

        fn temporality(&self) -> Temporality {
            self.inner.temporality()
        }
    }
}
