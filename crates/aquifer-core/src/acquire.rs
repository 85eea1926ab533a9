//! [`Acquire`]: the future of `Pool::get()`. Hand-written so that the fast path — an idle connection used within
//! the validation bypass window — is a plain function call: one lock, one clock read, no allocation, no nested
//! async state machines. Anything slower (waiting, validating) continues in a boxed async future.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::errors::PoolError;
use crate::inner::Shared;
use crate::internals::Step;
use crate::manager::Manager;
use crate::pooled::Pooled;

type SlowPath<'a, M> =
    Pin<Box<dyn Future<Output = Result<Option<Pooled<M>>, PoolError<<M as Manager>::Error>>> + Send + 'a>>;

/// The future returned by [`Pool::get`](crate::Pool::get) and [`Pool::get_timeout`](crate::Pool::get_timeout).
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Acquire<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    timeout: Duration,
    leak_caller: Option<&'static Location<'static>>,
    slow: Option<SlowPath<'a, M>>,
}

impl<'a, M: Manager> Acquire<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared<M>>, timeout: Duration, caller: &'static Location<'static>) -> Self {
        let leak_caller = shared.config.leak_detection_threshold.map(|_| caller);
        Acquire { shared, timeout, leak_caller, slow: None }
    }
}

impl<M: Manager> Future for Acquire<'_, M> {
    type Output = Result<Pooled<M>, PoolError<M::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let slow = match &mut this.slow {
            Some(slow) => slow,
            None => {
                let first =
                    std::task::ready!(this.shared.poll_checkout(cx, Some(this.timeout), true, this.leak_caller));
                let first = match first {
                    Step::Ready(conn, checkout, now) => {
                        this.shared.metrics.wait_time(Duration::ZERO);
                        return Poll::Ready(Ok(Pooled::new(conn, Arc::clone(this.shared), now, checkout)));
                    }
                    other => other,
                };
                // Polled right below, in this same call: the slow path owns the waiter key or connection.
                let start = quanta::Instant::now();
                this.slow.insert(Box::pin(this.shared.acquire_slow(first, start, Some(this.timeout), this.leak_caller)))
            }
        };
        slow.as_mut().poll(cx).map(|r| match r {
            Ok(Some(conn)) => Ok(conn),
            Ok(None) => unreachable!("an acquire that may wait never reports a busy pool"),
            Err(e) => Err(e),
        })
    }
}
