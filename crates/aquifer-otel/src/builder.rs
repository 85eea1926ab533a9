//! [`OtelBuilder`]: the exporter's settings, from the `OTEL_*` variables or set in code.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use crate::config::*;
use crate::errors::OtelError;
use crate::guard::OtelGuard;
use crate::views;

/// Export interval when neither the builder nor `OTEL_METRIC_EXPORT_INTERVAL` sets one: the specification's 60 s.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of one export request when neither the builder nor `OTEL_EXPORTER_OTLP_TIMEOUT` sets one: the
/// specification's 10 s.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping the guard waits for the final flush and shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where OTLP metrics are sent: a base URL (`/v1/metrics` appended for HTTP) or the full metrics URL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Base(String),
    Metrics(String),
}

/// Settings of the metrics export; [`install`](Self::install) makes the SDK's meter provider global and returns
/// the [`OtelGuard`] that flushes it on drop.
///
/// [`OtelBuilder::from_env`] reads the standard variables (see the crate documentation for the list);
/// [`OtelBuilder::new`] starts from the defaults (OTLP over HTTP/protobuf to `http://localhost:4318`, export
/// every 60 s) and reads nothing. Setters after `from_env` override what the variables said.
#[derive(Debug, Clone)]
#[must_use]
pub struct OtelBuilder {
    exporter: Exporter,
    protocol: Protocol,
    /// Which variable (or setter) chose the protocol, for the error when gRPC is not compiled in.
    protocol_source: &'static str,
    endpoint: Option<Endpoint>,
    /// Which variable (or setter) gave the endpoint, for errors about it.
    endpoint_source: &'static str,
    headers: Vec<Header>,
    timeout: Duration,
    interval: Duration,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    shutdown_timeout: Duration,
}

impl Default for OtelBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelBuilder {
    /// Defaults only: OTLP over HTTP/protobuf to `http://localhost:4318/v1/metrics`, every 60 s, 10 s per
    /// request, 5 s for the final flush. No variable is read.
    pub fn new() -> Self {
        OtelBuilder {
            exporter: Exporter::Otlp,
            protocol: Protocol::HttpProtobuf,
            protocol_source: "OtelBuilder::protocol",
            endpoint: None,
            endpoint_source: "OtelBuilder::endpoint",
            headers: Vec::new(),
            timeout: DEFAULT_EXPORT_TIMEOUT,
            interval: DEFAULT_EXPORT_INTERVAL,
            service_name: None,
            resource: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// The settings the process's `OTEL_*` variables give. A variable set to a value this crate cannot use is
    /// an [`OtelError::InvalidVariable`] naming it.
    ///
    /// The exporter is `OTEL_METRICS_EXPORTER` when set. When it is not, metrics are exported over OTLP only if
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set, and otherwise nowhere:
    /// unlike the specification's default (OTLP to localhost), an application run without any collector in
    /// mind does not try to reach one every minute. `OTEL_SDK_DISABLED=true` exports nothing.
    pub fn from_env() -> Result<Self, OtelError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `lookup` instead of the process
    /// environment (for configuration held elsewhere, and for tests).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OtelError> {
        let vars = Vars(&lookup);
        let mut b = Self::new();

        let endpoint = vars.first([OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT]);
        if let Some((var, url)) = &endpoint {
            check_endpoint(url).map_err(|reason| invalid(var, url, reason))?;
            b.endpoint_source = var;
            b.endpoint = Some(if *var == OTEL_EXPORTER_OTLP_METRICS_ENDPOINT {
                Endpoint::Metrics(url.clone())
            } else {
                Endpoint::Base(url.clone())
            });
        }
        b.exporter = match vars.get(OTEL_METRICS_EXPORTER) {
            Some(v) => parse_exporter(OTEL_METRICS_EXPORTER, &v)?,
            None if endpoint.is_some() => Exporter::Otlp,
            None => Exporter::None,
        };
        if let Some(v) = vars.get(OTEL_SDK_DISABLED)
            && parse_bool(OTEL_SDK_DISABLED, &v)?
        {
            b.exporter = Exporter::None;
        }
        if let Some((var, v)) = vars.first([OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL]) {
            b.protocol = parse_protocol(var, &v)?;
            b.protocol_source = var;
        }
        // Generic headers first, so that metrics-specific ones with the same name win.
        for var in [OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_METRICS_HEADERS] {
            if let Some(v) = vars.get(var) {
                for h in parse_headers(var, &v)? {
                    b.headers.retain(|old| !old.name.eq_ignore_ascii_case(&h.name));
                    b.headers.push(h);
                }
            }
        }
        if let Some((var, v)) = vars.first([OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT]) {
            b.timeout = parse_millis(var, &v)?;
        }
        if let Some(v) = vars.get(OTEL_METRIC_EXPORT_INTERVAL) {
            b.interval = parse_millis(OTEL_METRIC_EXPORT_INTERVAL, &v)?;
        }
        if let Some(v) = vars.get(OTEL_RESOURCE_ATTRIBUTES) {
            b.resource = parse_pairs(OTEL_RESOURCE_ATTRIBUTES, &v, false)?;
        }
        b.service_name = vars.get(OTEL_SERVICE_NAME);
        Ok(b)
    }

    /// Where metrics go. Default: [`Exporter::Otlp`] ([`from_env`](Self::from_env) has its own rule).
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = exporter;
        self
    }

    /// The OTLP transport. Default: [`Protocol::HttpProtobuf`]. [`Protocol::Grpc`] needs the `grpc` feature.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self.protocol_source = "OtelBuilder::protocol";
        self
    }

    /// The collector's base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`: over HTTP metrics go to
    /// `{url}/v1/metrics`. Default: `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Base(url.into()));
        self.endpoint_source = "OtelBuilder::endpoint";
        self
    }

    /// The full URL metrics are sent to, like `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (nothing is appended).
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Metrics(url.into()));
        self.endpoint_source = "OtelBuilder::metrics_endpoint";
        self
    }

    /// Adds a header (gRPC metadata) sent with every export, e.g. an API key. Its value never appears in
    /// `Debug` output or errors.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header { name: name.into(), value: value.into() });
        self
    }

    /// Timeout of one export request. Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time between exports. Default: 60 s.
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME`, else `unknown_service:` followed by
    /// the executable's name (the specification's fallback).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute, like one entry of `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// How long [`OtelGuard`]'s drop (and [`OtelGuard::shutdown`]) waits for the final export. Default: 5 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The configured exporter.
    pub fn configured_exporter(&self) -> Exporter {
        self.exporter
    }

    /// The configured protocol.
    pub fn configured_protocol(&self) -> Protocol {
        self.protocol
    }

    /// The configured export interval.
    pub fn configured_export_interval(&self) -> Duration {
        self.interval
    }

    /// The configured timeout of one export request.
    pub fn configured_timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL metrics are sent to over OTLP with these settings.
    pub fn metrics_url(&self) -> String {
        match (&self.endpoint, self.protocol) {
            (Some(Endpoint::Metrics(url)), _) => url.clone(),
            (Some(Endpoint::Base(url)), Protocol::HttpProtobuf) => format!("{}/v1/metrics", url.trim_end_matches('/')),
            (Some(Endpoint::Base(url)), Protocol::Grpc) => url.clone(),
            (None, Protocol::HttpProtobuf) => format!("{}/v1/metrics", Protocol::HttpProtobuf.default_endpoint()),
            (None, Protocol::Grpc) => Protocol::Grpc.default_endpoint().to_owned(),
        }
    }

    /// Builds the meter provider and makes it the global one (`opentelemetry::global::set_meter_provider`),
    /// which pools use unless given a meter. Install it before building pools: a pool's instruments come from
    /// the provider that is global when the pool is built.
    ///
    /// With [`Exporter::None`] nothing is installed and the guard does nothing.
    pub fn install(self) -> Result<OtelGuard, OtelError> {
        let guard = self.build()?;
        if let Some(provider) = guard.meter_provider() {
            opentelemetry::global::set_meter_provider(provider.clone());
        }
        Ok(guard)
    }

    /// Builds the meter provider without making it global: pass [`OtelGuard::meter`] to the pools that
    /// should report through it.
    pub fn build(self) -> Result<OtelGuard, OtelError> {
        if self.interval.is_zero() {
            return Err(OtelError::InvalidSetting { setting: "export_interval", reason: "must be more than 0".into() });
        }
        if self.timeout.is_zero() {
            return Err(OtelError::InvalidSetting { setting: "timeout", reason: "must be more than 0".into() });
        }
        let builder = SdkMeterProvider::builder().with_resource(self.resource()).with_view(views::duration_buckets);
        match self.exporter {
            Exporter::None => Ok(OtelGuard::inert(self.shutdown_timeout)),
            Exporter::Console => {
                let exporter = opentelemetry_stdout::MetricExporter::default();
                let reader = PeriodicReader::builder(exporter).with_interval(self.interval).build();
                Ok(OtelGuard::new(builder.with_reader(reader).build(), self.shutdown_timeout, None))
            }
            Exporter::Otlp => {
                let url = self.metrics_url();
                check_endpoint(&url).map_err(|reason| OtelError::InvalidSetting { setting: "endpoint", reason })?;
                // The HTTP client is built without TLS (opentelemetry-otlp's TLS would bring aws-lc-rs next to
                // the ring every adapter uses): refuse https:// here rather than fail at every export.
                if url.starts_with("https://") {
                    return Err(OtelError::TlsNotSupported { source_of_choice: self.endpoint_source });
                }
                match self.protocol {
                    Protocol::HttpProtobuf => {
                        let exporter = crate::exporters::http(&url, self.timeout, &self.headers)?;
                        let reader = PeriodicReader::builder(exporter).with_interval(self.interval).build();
                        Ok(OtelGuard::new(builder.with_reader(reader).build(), self.shutdown_timeout, None))
                    }
                    Protocol::Grpc => self.build_grpc(builder, &url),
                }
            }
        }
    }

    #[cfg(feature = "grpc")]
    fn build_grpc(
        &self,
        builder: opentelemetry_sdk::metrics::MeterProviderBuilder,
        url: &str,
    ) -> Result<OtelGuard, OtelError> {
        let (exporter, runtime) = crate::exporters::grpc(url, self.timeout, &self.headers)?;
        let reader = PeriodicReader::builder(exporter).with_interval(self.interval).build();
        Ok(OtelGuard::new(builder.with_reader(reader).build(), self.shutdown_timeout, Some(runtime)))
    }

    #[cfg(not(feature = "grpc"))]
    fn build_grpc(
        &self,
        _builder: opentelemetry_sdk::metrics::MeterProviderBuilder,
        _url: &str,
    ) -> Result<OtelGuard, OtelError> {
        Err(OtelError::GrpcNotEnabled { source_of_choice: self.protocol_source })
    }

    fn resource(&self) -> Resource {
        let service_name = self
            .service_name
            .clone()
            .or_else(|| self.resource.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| {
                let exe = std::env::current_exe().ok();
                let name = exe.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned());
                format!("unknown_service:{}", name.unwrap_or_default())
            });
        Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(self.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
            .with_service_name(service_name)
            .build()
    }
}
