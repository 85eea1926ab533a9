//! [`OtelGuard`]: keeps the meter provider alive and flushes it, within a bound, when dropped.

use std::sync::mpsc;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::errors::OtelError;

/// The installed SDK. Dropping it exports what was recorded since the last export and shuts the provider
/// down, waiting at most the builder's `shutdown_timeout` (5 s by default): a collector that does not answer
/// cannot hold the process's exit. Keep it alive for as long as the application runs (`let _otel = ...` in
/// `main`; `let _ = ...` would drop it at once).
#[must_use = "dropping the guard shuts the exporter down"]
pub struct OtelGuard {
    provider: Option<SdkMeterProvider>,
    shutdown_timeout: Duration,
    #[cfg(feature = "grpc")]
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OtelGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelGuard")
            .field("exporting", &self.provider.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

impl OtelGuard {
    #[cfg_attr(not(feature = "grpc"), allow(unused_variables))]
    pub(crate) fn new(
        provider: SdkMeterProvider,
        shutdown_timeout: Duration,
        #[cfg(feature = "grpc")] runtime: Option<tokio::runtime::Runtime>,
        #[cfg(not(feature = "grpc"))] runtime: Option<std::convert::Infallible>,
    ) -> Self {
        OtelGuard {
            provider: Some(provider),
            shutdown_timeout,
            #[cfg(feature = "grpc")]
            runtime,
        }
    }

    pub(crate) fn inert(shutdown_timeout: Duration) -> Self {
        OtelGuard {
            provider: None,
            shutdown_timeout,
            #[cfg(feature = "grpc")]
            runtime: None,
        }
    }

    /// The SDK's meter provider, `None` when the exporter is `none`.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.provider.as_ref()
    }

    /// Whether metrics are exported (the exporter is not `none`).
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// A meter of this provider under the scope `aquifer`, for `PoolBuilder::meter` when the provider is not
    /// the global one; a no-op meter when nothing is exported.
    pub fn meter(&self) -> Meter {
        match &self.provider {
            Some(p) => p.meter("aquifer"),
            None => opentelemetry::global::meter_provider().meter("aquifer"),
        }
    }

    /// Exports what was recorded now, waiting at most the shutdown timeout.
    pub fn force_flush(&self) -> Result<(), OtelError> {
        let Some(p) = self.provider.clone() else { return Ok(()) };
        bounded("flush", self.shutdown_timeout, move || p.force_flush())
    }

    /// Exports what was recorded and shuts the provider down, waiting at most the shutdown timeout; what
    /// dropping the guard does, with the outcome returned instead of logged.
    pub fn shutdown(mut self) -> Result<(), OtelError> {
        self.shutdown_now()
    }

    fn shutdown_now(&mut self) -> Result<(), OtelError> {
        let Some(p) = self.provider.take() else { return Ok(()) };
        let result = bounded("shut down", self.shutdown_timeout, move || p.shutdown());
        // shutdown_background: a runtime cannot be dropped (blocking) inside another runtime's async context.
        #[cfg(feature = "grpc")]
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        result
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_now() {
            tracing::warn!(error = %e, "aquifer-otel: final metrics export incomplete");
        }
    }
}

/// Runs `f` (a flush or shutdown of the SDK) on a thread of its own and waits for it at most `timeout`: the
/// SDK's own waits are fixed (5 s) and the exporter's request timeout is separate. A flush still running when
/// the bound passes finishes, or fails, in the background.
fn bounded(
    what: &'static str,
    timeout: Duration,
    f: impl FnOnce() -> OTelSdkResult + Send + 'static,
) -> Result<(), OtelError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new().name("aquifer-otel-flush".into()).spawn(move || {
        let _ = tx.send(f());
    });
    if let Err(e) = spawned {
        return Err(OtelError::Thread(e));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(OtelError::Sdk { what, source }),
        Err(_) => Err(OtelError::Timeout { what, timeout }),
    }
}
