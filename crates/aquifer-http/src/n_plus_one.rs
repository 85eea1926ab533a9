//! A tower layer that opens one N+1 scope ([`aquifer_core::n_plus_one`]) per request, so the pool helpers a
//! handler calls are watched for N+1 loops and each loop is reported once per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use aquifer_core::n_plus_one::Scope;

/// Opens an N+1 scope around each request: `Router::new().route(..).layer(NPlusOneLayer::new())`.
///
/// Statements that run in tasks the handler spawns are outside the request's scope (a task-local does not
/// follow `tokio::spawn`).
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct NPlusOneLayer {
    scope: Scope,
}

impl NPlusOneLayer {
    /// A layer whose scopes use the default threshold
    /// ([`DEFAULT_THRESHOLD`](aquifer_core::n_plus_one::DEFAULT_THRESHOLD)).
    pub fn new() -> Self {
        NPlusOneLayer::default()
    }

    /// A layer whose scopes use `scope`'s settings (its threshold).
    pub fn with_scope(scope: Scope) -> Self {
        NPlusOneLayer { scope }
    }
}

impl<S> tower::Layer<S> for NPlusOneLayer {
    type Service = NPlusOneService<S>;

    fn layer(&self, inner: S) -> NPlusOneService<S> {
        NPlusOneService { inner, scope: self.scope }
    }
}

/// The service of [`NPlusOneLayer`]: runs the inner service's response future inside a scope.
#[derive(Debug, Clone)]
pub struct NPlusOneService<S> {
    inner: S,
    scope: Scope,
}

impl<S, R> tower::Service<R> for NPlusOneService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The handler runs when the inner future is polled, so the scope covers it.
        Box::pin(self.scope.run(self.inner.call(request)))
    }
}
