//! Checkout hooks and per-checkout session contexts: code that prepares a connection for one user and cleans
//! it up before the next one.
//!
//! - [`PoolBuilder::on_checkout`](crate::PoolBuilder::on_checkout) and
//!   [`PoolBuilder::on_return`](crate::PoolBuilder::on_return) register hooks that run on every checkout and
//!   every return, in the order they were registered; registering one never replaces another.
//! - A [`SessionContext`], given to [`Pool::get_with`](crate::Pool::get_with), is applied to one checkout
//!   (after the checkout hooks) and cleared when that connection comes back (before the return hooks).
//!
//! Every hook and every step of a context runs behind `catch_unwind` and within
//! [`PoolConfig::hook_timeout`](crate::PoolConfig::hook_timeout). A hook that fails, panics or times out
//! discards the connection: a connection is never lent, nor put back, in a state a hook could not establish.
//! A checkout cancelled while its hooks or its context run discards the connection too.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::hooks::panic_message;

/// The error a hook or a session context returns: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a checkout or return hook returns (`Box::pin(async move { .. })`).
pub type HookFuture<'c> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'c>>;

/// A checkout or return hook: an async function of the connection.
type HookFn<C> = dyn for<'c> Fn(&'c mut C) -> HookFuture<'c> + Send + Sync;

/// One registered hook and the name it is reported under.
pub(crate) struct NamedHook<C> {
    pub(crate) name: Arc<str>,
    pub(crate) f: Arc<HookFn<C>>,
}

impl<C> Clone for NamedHook<C> {
    fn clone(&self) -> Self {
        NamedHook { name: Arc::clone(&self.name), f: Arc::clone(&self.f) }
    }
}

impl<C> NamedHook<C> {
    pub(crate) fn new(
        name: impl Into<Arc<str>>,
        f: impl for<'c> Fn(&'c mut C) -> HookFuture<'c> + Send + Sync + 'static,
    ) -> Self {
        NamedHook { name: name.into(), f: Arc::new(f) }
    }
}

/// The hooks registered on a pool. A pool without any holds none of these (`Option` in `Shared`), so a
/// checkout without hooks pays one pointer check.
pub(crate) struct ConnHooks<C> {
    pub(crate) checkout: Vec<NamedHook<C>>,
    pub(crate) on_return: Vec<NamedHook<C>>,
}

impl<C> Default for ConnHooks<C> {
    fn default() -> Self {
        ConnHooks { checkout: Vec::new(), on_return: Vec::new() }
    }
}

impl<C> ConnHooks<C> {
    pub(crate) fn is_empty(&self) -> bool {
        self.checkout.is_empty() && self.on_return.is_empty()
    }
}

/// Settings applied to a connection for one checkout and cleared before anyone else gets it: the tenant of a
/// row-level security policy, a role, a search path, session variables.
///
/// Given to [`Pool::get_with`](crate::Pool::get_with). The pool calls [`apply`](SessionContext::apply) after
/// the checkout hooks, before the connection is lent, and [`clear`](SessionContext::clear) when it comes
/// back, before the return hooks and before anyone else can get it. The guarantee:
///
/// - a connection whose `apply` failed, panicked or timed out is discarded and the caller gets
///   [`PoolError::Hook`](crate::PoolError::Hook);
/// - a connection whose `clear` failed, panicked or timed out is discarded;
/// - a caller whose future is dropped while `apply` runs, or who drops (or panics holding) the connection at
///   any point, still has `clear` run (or the connection discarded) before the connection is reused;
/// - `clear` also runs after the manager's [`reset`](crate::Manager::reset), when one is needed (an
///   abandoned query is drained first).
///
/// What it cannot guarantee: state the user changes through the driver outside what `clear` undoes (a
/// `clear` that resets every session setting, such as PostgreSQL's `RESET ALL` or MySQL's
/// `COM_RESET_CONNECTION`, covers settings made any way). See docs/security.md.
///
/// ```
/// # use aquifer_testing::{FakeConn, FakeManager};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use aquifer_core::{BoxError, Pool, SessionContext};
///
/// struct Tenant(u64);
///
/// #[aquifer_core::async_trait]
/// impl SessionContext<FakeConn> for Tenant {
///     async fn apply(&self, conn: &mut FakeConn) -> Result<(), BoxError> {
///         conn.uses = self.0; // a real one runs `SET app.tenant_id = ..`
///         Ok(())
///     }
///     async fn clear(&self, conn: &mut FakeConn) -> Result<(), BoxError> {
///         conn.uses = 0; // ... and `RESET ALL`
///         Ok(())
///     }
/// }
///
/// let pool = Pool::builder(FakeManager::new()).max_size(1).build()?;
/// let conn = pool.get_with(Arc::new(Tenant(7))).await?;
/// assert_eq!(conn.uses, 7);
/// drop(conn);
/// assert_eq!(pool.get().await?.uses, 0, "the next caller never sees tenant 7");
/// # Ok(()) }
/// ```
#[async_trait::async_trait]
pub trait SessionContext<C>: Send + Sync + 'static {
    /// The name failures are reported under (in [`PoolError::Hook`](crate::PoolError::Hook) and logs).
    /// Default: `"session context"`.
    fn name(&self) -> &str {
        "session context"
    }

    /// Applies the settings to a connection just checked out.
    async fn apply(&self, conn: &mut C) -> Result<(), BoxError>;

    /// Undoes them on a returned connection. An error discards the connection.
    async fn clear(&self, conn: &mut C) -> Result<(), BoxError>;
}

/// A context shared between the caller and the connection it was applied to.
pub(crate) type SessionRef<C> = Arc<dyn SessionContext<C>>;

/// Why a checkout hook or a session context did not succeed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HookFailure {
    /// It returned this error.
    Failed(BoxError),
    /// It panicked, with this message.
    Panicked(Arc<str>),
    /// It did not finish within `hook_timeout`.
    TimedOut(Duration),
    /// It was not run: the manager refuses session-level state on its connections
    /// ([`Manager::session_context_refusal`](crate::Manager::session_context_refusal), for this reason). No
    /// connection was checked out.
    Refused(Arc<str>),
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookFailure::Failed(e) => write!(f, "{e}"),
            HookFailure::Panicked(m) => write!(f, "panicked: {m}"),
            HookFailure::TimedOut(d) => write!(f, "timed out after {d:?} (hook_timeout)"),
            HookFailure::Refused(reason) => write!(f, "refused: {reason}"),
        }
    }
}

impl std::error::Error for HookFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HookFailure::Failed(e) => crate::errors::source_not_in(&self.to_string(), &**e),
            HookFailure::Panicked(_) | HookFailure::TimedOut(_) | HookFailure::Refused(_) => None,
        }
    }
}

/// Runs one hook step behind `catch_unwind` within `timeout`.
pub(crate) async fn run_step<'c>(
    timeout: Duration,
    step: impl Future<Output = Result<(), BoxError>> + Send + 'c,
) -> Result<(), HookFailure> {
    match tokio::time::timeout(timeout, std::panic::AssertUnwindSafe(step).catch_unwind()).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(HookFailure::Failed(e)),
        Ok(Err(payload)) => Err(HookFailure::Panicked(panic_message(&*payload))),
        Err(_) => Err(HookFailure::TimedOut(timeout)),
    }
}
