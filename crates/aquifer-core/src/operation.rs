//! The one operation runner every adapter's helpers (`fetch_one`, `fetch_optional`, `fetch_all`, `execute`,
//! `transaction`) go through, so that all backends check out, time, classify and retry the same way:
//!
//! 1. Check a connection out of the pool. An acquire failure is returned as [`OperationError::Acquire`] and is
//!    not an operation failure: it records no `db.client.operation.duration` (the wait has its own instrument,
//!    `db.client.connection.wait_time`, and timeouts their own counter) and is not retried (the pool already
//!    waited, retried connects or fails fast).
//! 2. Time the attempt from the moment the connection is in hand, and record `db.client.operation.duration`
//!    with `db.operation.name` and, on failure, `error.type` ([`Operations::operation_error_type`]).
//! 3. On a failure the attempt marked as retryable ([`Failure::retry`]), wait the next delay of the adapter's
//!    [`RetryPolicy`] and run a fresh attempt on a fresh checkout. After an attempt lost its connection, the
//!    next checkout validates its connection first ([`Manager::validate`]) and discards dead ones, since the
//!    pool's other connections may have died with it (a failover, a restart) while inside the validation
//!    bypass window.
//!
//! Whether a failure may be retried is the attempt's call, not the error's alone: a lost connection is safe to
//! retry before a statement was sent or before `COMMIT`, not during it.

use std::borrow::Cow;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

use crate::errors::{PoolError, source_not_in};
use crate::manager::Manager;
use crate::pool::Pool;
use crate::pooled::Pooled;
use crate::retry::RetryPolicy;
use crate::session::SessionContext;

/// What the [operation runner](run_operation) needs from an adapter's manager beyond [`Manager`].
pub trait Operations: Manager {
    /// The error a statement or transaction can fail with (the driver's query error).
    type OperationError: std::error::Error + Send + Sync + 'static;

    /// The retry policy of the helpers (the adapter config's `retry`).
    fn retry_policy(&self) -> &RetryPolicy;

    /// A low-cardinality `error.type` for an operation's error (a SQLSTATE, a server error number, a class
    /// name), as the OpenTelemetry database conventions ask.
    fn operation_error_type(&self, error: &Self::OperationError) -> Cow<'static, str>;
}

/// Why a helper failed: no connection could be had, or the database reported an error.
///
/// `E` is the driver's query error, `C` the manager's connect error (the same type for most adapters).
///
/// Its message is the inner error's; `source()` returns only causes that message leaves out (see
/// [`source_not_in`](crate::source_not_in): a driver error that repeats its own cause's text, as sqlx's
/// database errors do, reports it once); [`backend_error`](OperationError::backend_error) and
/// [`pool_error`](OperationError::pool_error) reach the inner error.
#[derive(Debug)]
#[non_exhaustive]
pub enum OperationError<E: std::error::Error + 'static, C: std::error::Error + 'static = E> {
    /// No connection was acquired (timeout, closed pool, fail-fast); no statement was sent.
    Acquire(PoolError<C>),
    /// The driver reported an error running the operation (after retries, when it was transient).
    Backend(E),
    /// The pool's N+1 mode is deny and this call would have made an N+1 loop in its scope; nothing was sent
    /// ([`n_plus_one`](crate::n_plus_one)).
    NPlusOne(crate::n_plus_one::NPlusOneError),
}

impl<E: std::error::Error + 'static, C: std::error::Error + 'static> std::fmt::Display for OperationError<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperationError::Acquire(e) => std::fmt::Display::fmt(e, f),
            OperationError::Backend(e) => std::fmt::Display::fmt(e, f),
            OperationError::NPlusOne(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static, C: std::error::Error + 'static> std::error::Error for OperationError<E, C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let inner: &(dyn std::error::Error + 'static) = match self {
            OperationError::Acquire(e) => e,
            OperationError::Backend(e) => e,
            OperationError::NPlusOne(e) => e,
        };
        source_not_in(&self.to_string(), inner)
    }
}

impl<E: std::error::Error + 'static, C: std::error::Error + 'static> From<PoolError<C>> for OperationError<E, C> {
    fn from(e: PoolError<C>) -> Self {
        OperationError::Acquire(e)
    }
}

impl<E: std::error::Error + 'static, C: std::error::Error + 'static> OperationError<E, C> {
    /// The driver's error, when the operation ran and failed.
    pub fn backend_error(&self) -> Option<&E> {
        match self {
            OperationError::Backend(e) => Some(e),
            OperationError::Acquire(_) | OperationError::NPlusOne(_) => None,
        }
    }

    /// The N+1 loop that failed the call, in deny mode.
    pub fn n_plus_one_error(&self) -> Option<&crate::n_plus_one::NPlusOneError> {
        match self {
            OperationError::NPlusOne(e) => Some(e),
            _ => None,
        }
    }

    /// The pool's error, when no connection could be acquired.
    pub fn pool_error(&self) -> Option<&PoolError<C>> {
        match self {
            OperationError::Acquire(e) => Some(e),
            OperationError::Backend(_) | OperationError::NPlusOne(_) => None,
        }
    }

    /// The driver's error, when the operation ran and failed.
    pub fn into_backend_error(self) -> Option<E> {
        match self {
            OperationError::Backend(e) => Some(e),
            OperationError::Acquire(_) | OperationError::NPlusOne(_) => None,
        }
    }
}

/// One failed attempt: the error, and what the attempt knows about repeating it.
#[derive(Debug)]
pub struct Failure<E> {
    /// The driver's error.
    pub error: E,
    /// Another attempt may succeed and cannot apply anything twice (the server rolled back, or the statement
    /// never reached it).
    pub retry: bool,
    /// The attempt's connection is gone: the next attempt validates its connection before using it.
    pub connection_lost: bool,
}

impl<E> Failure<E> {
    /// A failure that another attempt would not fix.
    pub fn permanent(error: E) -> Self {
        Failure { error, retry: false, connection_lost: false }
    }

    /// A failure with the attempt's verdict on retrying it and on its connection.
    pub fn new(error: E, retry: bool, connection_lost: bool) -> Self {
        Failure { error, retry, connection_lost }
    }
}

/// One attempt of an operation on a checked-out connection; the [runner](run_operation) calls
/// [`run`](Attempt::run) once per attempt, so an attempt rebuilds whatever it consumes (a query, a
/// transaction) each time.
pub trait Attempt<M: Operations>: Send {
    /// What the operation returns.
    type Output: Send;

    /// Runs the attempt on `conn`, which it owns (so it can hand it on, e.g. inside a transaction object).
    /// The connection goes back to the pool when the attempt drops it, whatever the outcome; an attempt that
    /// leaves it dirty (an open transaction, an unread reply) relies on the manager's reset on return.
    fn run<'a>(
        &'a mut self,
        conn: Pooled<M>,
    ) -> impl Future<Output = Result<Self::Output, Failure<M::OperationError>>> + Send + 'a;
}

/// Runs `attempt` on a pooled connection under the adapter's retry policy, recording
/// `db.client.operation.duration` per attempt with `db.operation.name` = `operation`. Timing starts after
/// checkout; a failed checkout is returned as [`OperationError::Acquire`] and recorded as no operation.
///
/// Cancel safety: dropping the future drops the attempt in flight and returns its connection to the pool,
/// whose manager resets or discards it before anyone else uses it; a retry delay in progress is abandoned.
pub async fn run_operation<M, A>(
    pool: &Pool<M>,
    operation: &str,
    attempt: A,
) -> Result<A::Output, OperationError<M::OperationError, M::Error>>
where
    M: Operations,
    A: Attempt<M>,
{
    run_operation_with(pool, None, operation, attempt).await
}

/// A statement and where it was called from, for N+1 detection ([`run_operation_at`]).
#[derive(Debug, Clone, Copy)]
pub struct CallSite<'a> {
    /// The statement's text (SQL or Cypher).
    pub statement: &'a str,
    /// The helper's caller (`Location::caller()` in a `#[track_caller]` helper).
    pub caller: &'static Location<'static>,
}

/// Like [`run_operation`], for one statement: the call is also watched for N+1 loops
/// ([`n_plus_one`](crate::n_plus_one)) when the pool's mode is not off and a scope is open. In deny mode a call
/// that makes a loop fails with [`OperationError::NPlusOne`] before checking a connection out.
///
/// Cancel safety: as for [`run_operation`].
pub async fn run_operation_at<M, A>(
    pool: &Pool<M>,
    operation: &str,
    site: CallSite<'_>,
    attempt: A,
) -> Result<A::Output, OperationError<M::OperationError, M::Error>>
where
    M: Operations,
    A: Attempt<M>,
{
    let watch = pool.n_plus_one_watch(site.statement, Some(site.caller)).map_err(OperationError::NPlusOne)?;
    let out = run_operation_with(pool, None, operation, attempt).await;
    drop(watch);
    out
}

/// Like [`run_operation`], with every attempt's connection checked out through
/// [`Pool::get_with`](crate::Pool::get_with) when `session` is given: each attempt runs with the context
/// applied, and the context is cleared before its connection is reused.
///
/// Cancel safety: as for [`run_operation`], and as for [`Pool::get_with`](crate::Pool::get_with).
pub async fn run_operation_with<M, A>(
    pool: &Pool<M>,
    session: Option<&Arc<dyn SessionContext<M::Connection>>>,
    operation: &str,
    mut attempt: A,
) -> Result<A::Output, OperationError<M::OperationError, M::Error>>
where
    M: Operations,
    A: Attempt<M>,
{
    // Made on the first failure only: the success path does not pay for the backoff's set-up.
    let mut delays = None;
    let mut verify = false;
    loop {
        let conn = checkout(pool, verify, session).await?;
        let started = Instant::now();
        let result = attempt.run(conn).await;
        let elapsed = started.elapsed();
        let failure = match result {
            Ok(value) => {
                pool.record_operation(operation, elapsed, None);
                return Ok(value);
            }
            Err(failure) => failure,
        };
        pool.record_operation(operation, elapsed, Some(&pool.manager().operation_error_type(&failure.error)));
        if !failure.retry {
            return Err(OperationError::Backend(failure.error));
        }
        match delays.get_or_insert_with(|| pool.manager().retry_policy().delays()).next() {
            Some(delay) => {
                tracing::debug!(pool = %pool.name(), operation, error = %failure.error, ?delay, "transient failure; retrying");
                verify = failure.connection_lost;
                tokio::time::sleep(delay).await;
            }
            None => return Err(OperationError::Backend(failure.error)),
        }
    }
}

/// Checks out a connection; with `verify`, validates it first and replaces dead ones (at most `max_size`
/// times, then the last one is used as it is and the attempt reports what it finds).
async fn checkout<M: Operations>(
    pool: &Pool<M>,
    verify: bool,
    session: Option<&Arc<dyn SessionContext<M::Connection>>>,
) -> Result<Pooled<M>, PoolError<M::Error>> {
    let get = || async {
        match session {
            Some(ctx) => pool.get_with(Arc::clone(ctx)).await,
            None => pool.get().await,
        }
    };
    let mut conn = get().await?;
    if verify {
        for _ in 0..pool.state().max_size {
            if pool.manager().validate(&mut conn).await.is_ok() {
                break;
            }
            conn.discard();
            conn = get().await?;
        }
    }
    Ok(conn)
}
