//! [`adapter_reexports!`](crate::adapter_reexports): the names every adapter crate exports, generated the same
//! way in each, so a service never imports `aquifer-core` for the common case.

/// Generates an adapter's public names from its manager type (which implements [`Manager`](crate::Manager)
/// and [`Operations`](crate::Operations)):
///
/// - `pool: XPool`: a newtype over [`Pool<XManager>`](crate::Pool) that dereferences to it (so every pool
///   method works on it), is cheap to clone, converts from and into it, and implements
///   [`HealthCheck`](crate::HealthCheck). A newtype (not an alias) so the adapter can add its helpers as
///   inherent methods and implement foreign traits (sqlx's `Executor`) on it. Leave the `pool` line out when
///   the adapter's pool is a struct of its own (SQLite's writer + readers).
/// - `pooled: XPooled`: [`Pooled<XManager>`](crate::Pooled), a checked-out connection.
/// - `pool_error: XPoolError`: [`PoolError`](crate::PoolError) of the manager's connect error (`get()`).
/// - `start_error: XStartError`: [`StartError`](crate::StartError) of the same (the constructors).
/// - `error: XError`: [`OperationError`](crate::OperationError) of the helpers.
///
/// It also re-exports the engine types services need most: `ConfigError`, `DatabaseUrl`, `HealthCheck`,
/// `HealthRegistry`, `HealthReport`, `HealthStatus`, `PoolConfig`, `RetryPolicy`, `State` and `Stats`.
///
/// ```text
/// aquifer_core::adapter_reexports! {
///     manager: PgManager,
///     pool: PgPool,
///     pooled: PgPooled,
///     pool_error: PgPoolError,
///     start_error: PgStartError,
///     error: PgOperationError,
/// }
/// ```
#[macro_export]
macro_rules! adapter_reexports {
    (
        manager: $manager:ty,
        pool: $pool:ident,
        pooled: $pooled:ident,
        pool_error: $pool_error:ident,
        start_error: $start_error:ident,
        error: $error:ident $(,)?
    ) => {
        $crate::adapter_reexports! {
            manager: $manager,
            pooled: $pooled,
            pool_error: $pool_error,
            start_error: $start_error,
            error: $error,
        }

        #[doc = concat!("A pool of connections opened by [`", stringify!($manager), "`].")]
        ///
        /// It dereferences to the engine's [`Pool`](aquifer_core::Pool), so `get()`, `try_get()`, `state()`,
        /// `stats()`, `health()`, `close()`, `resize()` and `retain()` work on it directly; clones share the
        /// pool, and dropping the last clone closes it.
        #[derive(Clone)]
        pub struct $pool($crate::Pool<$manager>);

        impl ::core::ops::Deref for $pool {
            type Target = $crate::Pool<$manager>;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::core::fmt::Debug for $pool {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::core::convert::From<$crate::Pool<$manager>> for $pool {
            fn from(pool: $crate::Pool<$manager>) -> Self {
                $pool(pool)
            }
        }

        impl ::core::convert::From<$pool> for $crate::Pool<$manager> {
            fn from(pool: $pool) -> Self {
                pool.0
            }
        }

        impl $pool {
            /// A lazy pool over a manager built by hand, with `config`: connections open on first use (and
            /// `min_idle` in the background). Must be called within a Tokio runtime.
            pub fn from_manager(
                manager: $manager,
                config: $crate::PoolConfig,
            ) -> ::core::result::Result<Self, $start_error> {
                ::core::result::Result::Ok($pool($crate::Pool::new(manager, config)?))
            }

            /// Waits until the pool's first connections are open ([`aquifer_core::warm`]): a wrong URL,
            /// password or database fails here rather than on the first request, and the pool is closed.
            ///
            /// Cancel safety: dropping the future drops this handle; when it is the last one, the pool closes
            /// (connects in flight are abandoned, open connections closed).
            pub async fn start(self) -> ::core::result::Result<Self, $start_error> {
                ::core::result::Result::Ok($pool($crate::warm(self.0).await?))
            }

            /// The engine's pool inside.
            pub fn into_inner(self) -> $crate::Pool<$manager> {
                self.0
            }
        }

        #[$crate::async_trait]
        impl $crate::HealthCheck for $pool {
            fn name(&self) -> &str {
                self.0.name()
            }

            async fn health(&self) -> $crate::HealthReport {
                self.0.health().await
            }
        }
    };
    (
        manager: $manager:ty,
        pooled: $pooled:ident,
        pool_error: $pool_error:ident,
        start_error: $start_error:ident,
        error: $error:ident $(,)?
    ) => {
        #[doc = concat!("A connection checked out of a pool of [`", stringify!($manager), "`]; it dereferences to the driver's connection.")]
        pub type $pooled = $crate::Pooled<$manager>;

        /// Why a connection could not be acquired (`get()`): timeout (with the last connect error), closed pool
        /// or fail-fast.
        pub type $pool_error = $crate::PoolError<<$manager as $crate::Manager>::Error>;

        /// Why a pool could not be started: a bad setting or URL, no Tokio runtime, or a failed first connection.
        pub type $start_error = $crate::StartError<<$manager as $crate::Manager>::Error>;

        /// Why a helper (`fetch_one`, `fetch_optional`, `fetch_all`, `execute`, `transaction`) failed: no
        /// connection could be acquired, or the database reported an error.
        pub type $error = $crate::OperationError<
            <$manager as $crate::Operations>::OperationError,
            <$manager as $crate::Manager>::Error,
        >;

        pub use $crate::{
            ConfigError, DatabaseUrl, HealthCheck, HealthRegistry, HealthReport, HealthStatus, PoolConfig,
            RetryPolicy, State, Stats,
        };
    };
}
