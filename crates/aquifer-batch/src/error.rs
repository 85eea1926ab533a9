//! [`BatchError`]: why a batch produced no values.

use std::fmt;
use std::sync::Arc;

/// Why a [`BatchLoader`](crate::BatchLoader) call produced no value. Cloning is cheap: every waiter of a failed
/// batch holds the same error.
pub enum BatchError<E> {
    /// The loader returned an error; every waiter of the batch shares it.
    Load(Arc<E>),
    /// The loader panicked; the panic message, when it was a string.
    Panicked(Arc<str>),
    /// The batch's work was dropped before the loader finished: the runtime shut down.
    Abandoned,
    /// The call was made outside a tokio runtime, where a batch could not move to a task of its own.
    NoRuntime,
}

impl<E> BatchError<E> {
    /// The loader's error, when the batch failed with one.
    pub fn load_error(&self) -> Option<&E> {
        match self {
            BatchError::Load(e) => Some(e),
            _ => None,
        }
    }

    /// A short, fixed name of the failure, used as the `error.type` metric attribute.
    pub fn kind(&self) -> &'static str {
        match self {
            BatchError::Load(_) => "load",
            BatchError::Panicked(_) => "panic",
            BatchError::Abandoned => "abandoned",
            BatchError::NoRuntime => "no_runtime",
        }
    }
}

impl<E> Clone for BatchError<E> {
    fn clone(&self) -> Self {
        match self {
            BatchError::Load(e) => BatchError::Load(Arc::clone(e)),
            BatchError::Panicked(m) => BatchError::Panicked(Arc::clone(m)),
            BatchError::Abandoned => BatchError::Abandoned,
            BatchError::NoRuntime => BatchError::NoRuntime,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for BatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Load(e) => f.debug_tuple("Load").field(e).finish(),
            BatchError::Panicked(m) => f.debug_tuple("Panicked").field(m).finish(),
            BatchError::Abandoned => f.write_str("Abandoned"),
            BatchError::NoRuntime => f.write_str("NoRuntime"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for BatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Load(e) => write!(f, "batch load failed: {e}"),
            BatchError::Panicked(m) => write!(f, "batch loader panicked: {m}"),
            BatchError::Abandoned => f.write_str("batch abandoned: its work was dropped before the loader finished"),
            BatchError::NoRuntime => f.write_str("batch loads need a tokio runtime"),
        }
    }
}

/// The message includes the loader error's, so `source()` returns only causes it leaves out
/// ([`aquifer_core::source_not_in`]); [`BatchError::load_error`] is the loader's error.
impl<E: std::error::Error + 'static> std::error::Error for BatchError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BatchError::Load(e) => aquifer_core::source_not_in(&self.to_string(), &**e),
            _ => None,
        }
    }
}
