//! Error types. Each operation returns only the errors it can produce: building a pool can only fail with a
//! [`ConfigError`] or [`BuildError`], acquiring a connection only with a [`PoolError`]; adapter helpers fail
//! with an [`OperationError`](crate::OperationError), adapter constructors with a
//! [`StartError`](crate::StartError).
//!
//! Every error's `Display` tells the whole story, its causes' messages included, so printing it with `{}` (a
//! log line, an HTTP body) loses nothing; and so `source()` never returns a cause whose message `Display`
//! already printed ([`source_not_in`]): a report that walks the chain (anyhow's `{:#}`) prints each cause
//! once. The typed causes are reached through accessors (`backend_error()`, `pool_error()`, the variants'
//! fields). docs/architecture.md, "Errors", has the reasoning.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::State;

/// The first error of the chain that starts at `cause` (`cause`, then its sources) whose message `said` does not
/// already contain; `None` when `said` holds them all.
///
/// This is what an error whose `Display` prints `cause` returns from [`source`](std::error::Error::source), so
/// that a report walking the chain prints each message once. Aquifer's errors all do; an adapter's own error
/// types can too:
///
/// ```
/// use std::fmt;
///
/// #[derive(Debug)]
/// struct Refused(std::io::Error);
///
/// impl fmt::Display for Refused {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "the server refused us: {}", self.0)
///     }
/// }
///
/// impl std::error::Error for Refused {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         aquifer_core::source_not_in(&self.to_string(), &self.0)
///     }
/// }
///
/// let e = Refused(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(std::error::Error::source(&e).is_none(), "Display already says \"connection refused\"");
/// ```
pub fn source_not_in<'a>(
    said: &str,
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let mut next = Some(cause);
    while let Some(e) = next {
        if !said.contains(&e.to_string()) {
            return Some(e);
        }
        next = e.source();
    }
    None
}

/// Why a connection could not be acquired from a [`Pool`](crate::Pool).
///
/// The variants say what happened, and the message includes the last connect error's; the underlying driver
/// error, when there is one, is [`PoolError::backend_error`]. Since the message already shows the connect
/// error, [`source`](std::error::Error::source) returns only causes it leaves out ([`source_not_in`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError<E: std::error::Error + 'static> {
    /// No connection became available within the acquire timeout.
    ///
    /// `last_error` is the most recent connect failure, if connects were failing: a timeout caused by a
    /// refused password reads "timed out ... last connect error: password authentication failed", not just
    /// "timed out". A timeout of a paused pool ([`Pool::pause`](crate::Pool::pause)) says so: "timed out ...
    /// waiting for a connection: the pool is paused (...)", and `state.paused` is set.
    Timeout {
        /// How long the caller waited.
        waited: Duration,
        /// The pool's state when the wait ended.
        state: State,
        /// The most recent connect failure, when connects were failing.
        last_error: Option<ConnectError<E>>,
    },
    /// The pool was closed, before or while waiting.
    Closed,
    /// The pool fails fast instead of making every caller wait for the full timeout: it holds no live
    /// connection, and connects kept failing for `fail_fast_after`, or failed once with a permanent error (a
    /// refused password, an unknown database: [`Manager::is_permanent`](crate::Manager::is_permanent)). A
    /// background probe keeps trying and the pool recovers on its own.
    ///
    /// The message says which: "database unavailable for 2.1s: ..." while the server is unreachable,
    /// "database refused the connection (permanent error): ..." when retrying cannot help until someone fixes
    /// the cause.
    Unavailable {
        /// When the pool started failing fast.
        since: Instant,
        /// The last connect error is permanent, as the adapter classifies it (a panicking connect is not: it is
        /// retried like a transient failure).
        permanent: bool,
        /// The connect failure that keeps the pool failing fast.
        last_error: ConnectError<E>,
    },
    /// A checkout hook ([`PoolBuilder::on_checkout`](crate::PoolBuilder::on_checkout)) or the checkout's
    /// [`SessionContext`](crate::SessionContext) failed, panicked or timed out. The connection was discarded,
    /// never lent; the message names the hook. Also a context the manager refuses before any checkout
    /// ([`HookFailure::Refused`](crate::HookFailure::Refused)).
    Hook {
        /// The hook's name, or the context's [`name`](crate::SessionContext::name).
        hook: Arc<str>,
        /// What went wrong.
        cause: crate::session::HookFailure,
    },
}

impl<E: std::error::Error + 'static> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout { waited, state, last_error } => {
                write!(
                    f,
                    "timed out after {waited:?} waiting for a connection{} ({state}){}",
                    PausedNote(state.paused),
                    LastError(last_error.as_ref())
                )
            }
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::Unavailable { permanent: true, last_error, .. } => {
                write!(f, "database refused the connection (permanent error): {last_error}")
            }
            PoolError::Unavailable { since, last_error, .. } => {
                write!(f, "database unavailable for {:?}: {last_error}", since.elapsed())
            }
            PoolError::Hook { hook, cause: crate::session::HookFailure::Refused(reason) } => {
                write!(f, "session context {hook:?} refused, no connection was checked out: {reason}")
            }
            PoolError::Hook { hook, cause } => {
                write!(f, "checkout hook {hook:?} failed, the connection was discarded: {cause}")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause = match self {
            PoolError::Timeout { last_error: Some(e), .. } | PoolError::Unavailable { last_error: e, .. } => e,
            PoolError::Timeout { last_error: None, .. } | PoolError::Closed => return None,
            PoolError::Hook { cause, .. } => return source_not_in(&self.to_string(), cause),
        };
        source_not_in(&self.to_string(), cause)
    }
}

impl<E: std::error::Error + 'static> PoolError<E> {
    /// The driver error behind this error, if any: the last connect error of a timeout or of a fail-fast.
    pub fn backend_error(&self) -> Option<&E> {
        match self {
            PoolError::Timeout { last_error, .. } => last_error.as_ref().and_then(ConnectError::backend),
            PoolError::Unavailable { last_error, .. } => last_error.backend(),
            PoolError::Closed | PoolError::Hook { .. } => None,
        }
    }

    /// True for [`PoolError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout { .. })
    }

    /// True for a [`PoolError::Unavailable`] opened by a permanent connect error (a refused password, an
    /// unknown database), as the adapter classifies it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, PoolError::Unavailable { permanent: true, .. })
    }
}

struct PausedNote(bool);

impl fmt::Display for PausedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 { f.write_str(": the pool is paused") } else { Ok(()) }
    }
}

struct LastError<'a, E>(Option<&'a ConnectError<E>>);

impl<E: fmt::Display> fmt::Display for LastError<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(f, "; last connect error: {e}"),
            None => Ok(()),
        }
    }
}

/// Why opening a new connection failed. Cheap to clone: the driver error is shared, so the same failure can be
/// reported to every caller that was waiting for it.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError<E> {
    /// The driver refused or failed the connect (including a failing after-connect step).
    Backend(Arc<E>),
    /// The connect did not finish within `connect_timeout` (or the acquire timeout, if shorter).
    TimedOut(Duration),
    /// [`Manager::connect`](crate::Manager::connect) panicked, with this message. The pool caught the panic
    /// and treats it as a transient connect failure: retried with backoff, and failing fast only when connects
    /// keep failing (panicking) for `fail_fast_after` with no connection left.
    Panicked(Arc<str>),
}

impl<E> Clone for ConnectError<E> {
    fn clone(&self) -> Self {
        match self {
            ConnectError::Backend(e) => ConnectError::Backend(Arc::clone(e)),
            ConnectError::TimedOut(d) => ConnectError::TimedOut(*d),
            ConnectError::Panicked(m) => ConnectError::Panicked(Arc::clone(m)),
        }
    }
}

impl<E> ConnectError<E> {
    /// The driver error, unless the connect timed out or panicked.
    pub fn backend(&self) -> Option<&E> {
        match self {
            ConnectError::Backend(e) => Some(e),
            ConnectError::TimedOut(_) | ConnectError::Panicked(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Backend(e) => e.fmt(f),
            ConnectError::TimedOut(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Panicked(m) => write!(f, "the manager's connect panicked: {m}"),
        }
    }
}

/// Its message is the driver error's own, so `source()` skips the driver error (reach it with
/// [`ConnectError::backend`]) and returns only causes the message leaves out ([`source_not_in`]).
impl<E: std::error::Error + 'static> std::error::Error for ConnectError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Backend(e) => source_not_in(&self.to_string(), &**e),
            ConnectError::TimedOut(_) | ConnectError::Panicked(_) => None,
        }
    }
}

/// A configuration value is invalid. The message names the field (or environment variable) and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field (of a pool or an adapter configuration) holds a value that cannot work.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    Invalid {
        /// The field, as spelled in [`PoolConfig`](crate::PoolConfig).
        field: &'static str,
        /// The offending value, as given.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// A required setting was not given (a connection URL, a database path).
    #[error("missing configuration: {field}: {reason}")]
    Missing {
        /// The field, or the environment variables that could hold it.
        field: String,
        /// How to give it.
        reason: String,
    },
    /// An environment variable could not be parsed.
    #[error("invalid environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable's full name.
        var: String,
        /// Its value (never a password: URLs are redacted).
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// An environment variable of the configuration's prefix is not one it reads: a misspelt setting, which
    /// would otherwise be silently ignored. Its value is not shown (it may be a secret).
    #[error("unknown environment variable {var}{}", closest.as_ref().map(|c| format!(": did you mean {c}?")).unwrap_or_default())]
    UnknownEnv {
        /// The variable's full name, as set.
        var: String,
        /// The known variable closest to it, when one is close.
        closest: Option<String>,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { field, value: value.to_string(), reason: reason.into() }
    }
}

/// Building a pool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool needs a Tokio runtime for its background tasks (connects, min_idle, idle reaping, health).
    #[error(
        "aquifer pools must be built inside a Tokio runtime (call build() from async code or within Runtime::enter)"
    )]
    NoRuntime,
}
