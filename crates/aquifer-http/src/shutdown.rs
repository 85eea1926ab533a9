//! Graceful shutdown for a service behind a load balancer or in Kubernetes: readiness turns `503` first, serving
//! stops after a delay, then the pools close.
//!
//! Kubernetes sends SIGTERM and, at the same moment, starts removing the pod from its Service's endpoints; the
//! removal reaches every node's proxy a few seconds later, and until then new requests still arrive. A service
//! that stops accepting at SIGTERM drops those requests. The order that loses none:
//!
//! 1. SIGTERM: [`Pools::start_draining`]: `GET /readyz` answers `503 draining` (so the pod leaves the rotation
//!    even where the endpoint removal is slow), every other route keeps serving;
//! 2. after `drain_delay`: stop accepting and finish the requests in flight (axum's graceful shutdown);
//! 3. [`Pools::close`]: every pool closes, waiting up to its `close_timeout` for connections still in use.
//!
//! The three must fit in the pod's `terminationGracePeriodSeconds` (30 s by default), after which the kubelet
//! sends SIGKILL: `drain_delay` + the longest request + the longest `close_timeout` < the grace period.
//! docs/operations.md has the numbers for the manifests in deploy/k8s/.

use std::time::Duration;

use crate::Pools;

/// What ended the wait of [`shutdown_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// SIGTERM: `docker stop`, Kubernetes, systemd.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        })
    }
}

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT); on other platforms than Unix, on Ctrl-C only.
///
/// A signal whose handler cannot be installed is never awaited (the other still is).
///
/// Cancel safety: dropping the future uninstalls nothing and loses no signal that has not arrived yet.
pub async fn shutdown_signal() -> Signal {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => Signal::Interrupt,
        () = terminate => Signal::Terminate,
    }
}

/// Waits for `signal` (any future, such as [`shutdown_signal`]), marks `pools` as draining (readiness `503`), waits `drain_delay` while every route still
/// serves, and resolves: pass it to axum's `with_graceful_shutdown`, then [`close`](Pools::close) the pools.
///
/// ```no_run
/// use std::time::Duration;
/// use aquifer_http::{Pools, drain_on, router, shutdown_signal};
///
/// # async fn service(pools: Pools) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// let app = axum::Router::new().merge(router(pools.clone()));
/// axum::serve(listener, app)
///     .with_graceful_shutdown(drain_on(shutdown_signal(), pools.clone(), Duration::from_secs(5)))
///     .await?;
/// // Serving has stopped and the requests in flight are done: close every pool.
/// pools.close().await;
/// # Ok(())
/// # }
/// ```
///
/// Cancel safety: dropping the future before the signal changes nothing; after it, the pools stay draining.
pub async fn drain_on(signal: impl std::future::Future, pools: Pools, drain_delay: Duration) {
    signal.await;
    pools.start_draining();
    tracing::info!(pools = ?pools.names(), drain_delay = ?drain_delay, "draining: readiness is 503");
    tokio::time::sleep(drain_delay).await;
}
