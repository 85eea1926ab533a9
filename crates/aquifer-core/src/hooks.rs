//! Every call the engine makes into a [`Manager`], made panic-safe: a panicking hook is the hook failing.
//! The engine never lets a manager's panic unwind through its own code, where it could strand a slot or a
//! counter; each caller decides what the failure means (a failed connect, a failed validation, a broken
//! connection) and logs it with the pool's name.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::manager::Manager;

/// Why a hook did not succeed.
pub(crate) enum HookError<E> {
    /// The hook returned this error.
    Failed(E),
    /// The hook panicked with this message.
    Panicked(Arc<str>),
}

/// The message of a panic payload (`panic!` with a literal or a formatted string), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("(a panic without a message)")
    }
}

async fn guarded<T, E>(f: impl Future<Output = Result<T, E>>) -> Result<T, HookError<E>> {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r.map_err(HookError::Failed),
        Err(payload) => Err(HookError::Panicked(panic_message(&*payload))),
    }
}

/// The manager's hooks, each behind `catch_unwind`.
pub(crate) struct Hooks;

impl Hooks {
    pub(crate) async fn connect<M: Manager>(m: &M) -> Result<M::Connection, HookError<M::Error>> {
        guarded(m.connect()).await
    }

    pub(crate) async fn validate<M: Manager>(m: &M, conn: &mut M::Connection) -> Result<(), HookError<M::Error>> {
        guarded(m.validate(conn)).await
    }

    pub(crate) async fn reset<M: Manager>(m: &M, conn: &mut M::Connection) -> Result<(), HookError<M::Error>> {
        guarded(m.reset(conn)).await
    }

    pub(crate) async fn server_version<M: Manager>(
        m: &M,
        conn: &mut M::Connection,
    ) -> Result<Option<String>, HookError<M::Error>> {
        guarded(m.server_version(conn)).await
    }

    /// `Err` holds the panic message.
    #[inline]
    pub(crate) fn is_broken<M: Manager>(m: &M, conn: &mut M::Connection) -> Result<bool, Arc<str>> {
        std::panic::catch_unwind(AssertUnwindSafe(|| m.is_broken(conn))).map_err(|p| panic_message(&*p))
    }

    /// `Err` holds the panic message.
    #[inline]
    pub(crate) fn needs_reset<M: Manager>(m: &M, conn: &mut M::Connection) -> Result<bool, Arc<str>> {
        std::panic::catch_unwind(AssertUnwindSafe(|| m.needs_reset(conn))).map_err(|p| panic_message(&*p))
    }
}

impl Hooks {
    /// A panic counts as "not permanent": the connect is retried like any other failure.
    pub(crate) fn is_permanent<M: Manager>(m: &M, error: &M::Error) -> bool {
        std::panic::catch_unwind(AssertUnwindSafe(|| m.is_permanent(error))).unwrap_or(false)
    }

    /// A panic gives `None`: nothing is learnt about the credentials this time.
    pub(crate) fn credential_generation<M: Manager>(m: &M) -> Option<u64> {
        std::panic::catch_unwind(AssertUnwindSafe(|| m.credential_generation())).ok()
    }

    /// A panic gives `_OTHER`, the conventions' fallback.
    pub(crate) fn error_type<M: Manager>(m: &M, error: &M::Error) -> std::borrow::Cow<'static, str> {
        std::panic::catch_unwind(AssertUnwindSafe(|| m.error_type(error)))
            .unwrap_or(std::borrow::Cow::Borrowed("_OTHER"))
    }
}
