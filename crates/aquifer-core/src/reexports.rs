//! [`adapter_reexports!`](crate::adapter_reexports): the names every adapter crate exports, generated the same
//! way in each, so a service never imports `aquifer-core` for the common case.

/// Generates an adapter's public names from its configuration type (which implements
/// [`Adapter`](crate::Adapter)) and its manager type (which implements [`Manager`](crate::Manager) and
/// [`Operations`](crate::Operations)):
///
/// - the constructors `connect(url)`, `connect_lazy(url)`, `connect_env()`, `connect_env_lazy()` and the
///   constant `ENV_PREFIX`, from [`aquifer_core::connect`](crate::connect) and its siblings;
/// - the configuration's inherent `from_env(prefix)`, `connect()` and `connect_lazy()`, the
///   [`Adapter`](crate::Adapter) methods of the same names, so a service need not import the trait;
/// - with `pool:`, the [`Adapter`](crate::Adapter) impl of the config: the delegations every adapter writes
///   the same way (`from_url` and `from_lookup` to the config's inherent functions of those names,
///   `pool_config` to its `pool` field, `build` from its inherent `manager()`, `start` to the pool's), plus
///   the items of the `adapter: { .. }` block, which hold what is the adapter's own (its constants, and
///   `for_inspection` or `is_foreign_env` when it overrides them). An adapter whose pool is a struct of its
///   own implements the trait by hand.
/// - a compile-time check that the pool, config, manager and errors are `Send + Sync`;
/// - `pool: XPool`: a newtype over [`Pool<XManager>`](crate::Pool) that dereferences to it (so every pool
///   method works on it), is cheap to clone, converts from and into it, and implements
///   [`HealthCheck`](crate::HealthCheck). A newtype (not an alias) so the adapter can add its helpers as
///   inherent methods and implement foreign traits (sqlx's `Executor`) on it. Leave the `pool` line out when
///   the adapter's pool is a struct of its own (SQLite's writer + readers), and name that struct with
///   `pool_type:` instead.
/// - `pooled: XPooled`: [`Pooled<XManager>`](crate::Pooled), a checked-out connection.
/// - `pool_error: XPoolError`: [`PoolError`](crate::PoolError) of the manager's connect error (`get()`).
/// - `start_error: XStartError`: [`StartError`](crate::StartError) of the same (the constructors).
/// - `error: XError`: [`OperationError`](crate::OperationError) of the helpers.
///
/// It also re-exports the engine types services need most: `ConfigError`, the credential types
/// (`Credential`, `CredentialError`, `CredentialProvider`, `Credentials`, `Secret`), `DatabaseUrl`, `HealthCheck`,
/// `HealthRegistry`, `HealthReport`, `HealthStatus`, `PoolConfig`, `RetryPolicy`, `State` and `Stats`.
///
/// ```text
/// aquifer_core::adapter_reexports! {
///     config: PgConfig,
///     manager: PgManager,
///     pool: PgPool,
///     pooled: PgPooled,
///     pool_error: PgPoolError,
///     start_error: PgStartError,
///     error: PgOperationError,
///     adapter: {
///         const SYSTEM: &'static str = "postgresql";
///         const ENV_PREFIX: &'static str = "POSTGRES";
///         const URL_SCHEMES: &'static [&'static str] = &["postgres", "postgresql"];
///     },
/// }
/// ```
#[macro_export]
macro_rules! adapter_reexports {
    (
        config: $config:ty,
        manager: $manager:ty,
        pool: $pool:ident,
        pooled: $pooled:ident,
        pool_error: $pool_error:ident,
        start_error: $start_error:ident,
        error: $error:ident,
        adapter: { $($adapter:tt)* } $(,)?
    ) => {
        impl $crate::Adapter for $config {
            type Pool = $pool;
            type Error = <$manager as $crate::Manager>::Error;

            fn from_url(url: &str) -> Self {
                <$config>::from_url(url)
            }

            fn from_lookup(
                prefix: &str,
                lookup: &dyn Fn(&str) -> ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<Self, $crate::ConfigError> {
                <$config>::from_lookup(prefix, lookup)
            }

            fn pool_config(&self) -> &$crate::PoolConfig {
                &self.pool
            }

            fn pool_config_mut(&mut self) -> &mut $crate::PoolConfig {
                &mut self.pool
            }

            fn build(&self) -> ::core::result::Result<$pool, $start_error> {
                ::core::result::Result::Ok($pool($crate::Pool::builder(self.manager()?).config(self.pool.clone()).build()?))
            }

            async fn start(pool: $pool) -> ::core::result::Result<$pool, $start_error> {
                pool.start().await
            }

            $($adapter)*
        }

        $crate::adapter_reexports! {
            config: $config,
            manager: $manager,
            pool_type: $pool,
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

        #[$crate::async_trait]
        impl $crate::AnyPool for $pool {
            fn system(&self) -> &str {
                $crate::AnyPool::system(&self.0)
            }

            fn state(&self) -> $crate::State {
                self.0.state()
            }

            fn stats(&self) -> $crate::Stats {
                self.0.stats()
            }

            fn server(&self) -> ::std::string::String {
                $crate::AnyPool::server(&self.0)
            }

            fn pool_config(&self) -> &$crate::PoolConfig {
                self.0.config()
            }

            async fn ping(&self) -> ::core::result::Result<$crate::Ping, $crate::PingError> {
                $crate::AnyPool::ping(&self.0).await
            }

            async fn close(&self) {
                self.0.close().await;
            }

            fn pause(&self) {
                self.0.pause();
            }

            fn resume(&self) {
                self.0.resume();
            }

            fn is_paused(&self) -> bool {
                self.0.is_paused()
            }

            fn retire(&self) -> usize {
                self.0.retire()
            }

            fn resize(&self, max_size: usize) -> ::core::result::Result<(), $crate::ConfigError> {
                self.0.resize(max_size)
            }

            fn as_any(&self) -> &dyn ::core::any::Any {
                self
            }
        }
    };
    (
        config: $config:ty,
        manager: $manager:ty,
        pool_type: $pool_ty:ty,
        pooled: $pooled:ident,
        pool_error: $pool_error:ident,
        start_error: $start_error:ident,
        error: $error:ident $(,)?
    ) => {
        // What a service shares between tasks must be Send + Sync; checked at compile time.
        const _: () = {
            const fn assert_send_sync<T: Send + Sync>() {}
            assert_send_sync::<$pool_ty>();
            assert_send_sync::<$config>();
            assert_send_sync::<$manager>();
            assert_send_sync::<$error>();
            assert_send_sync::<$start_error>();
        };

        /// The prefix of the environment variables [`connect_env`] and [`connect_env_lazy`] read.
        pub const ENV_PREFIX: &str = <$config as $crate::Adapter>::ENV_PREFIX;

        #[doc = concat!("A started pool with default settings for `url` ([`", stringify!($config), "::from_url`]).")]
        ///
        #[doc = concat!("Cancel safety: as for [`", stringify!($config), "::connect`].")]
        pub async fn connect(url: &str) -> ::core::result::Result<$pool_ty, $start_error> {
            $crate::connect::<$config>(url).await
        }

        /// A lazy pool with default settings for `url`: nothing connects until first use. Must be called
        /// within a Tokio runtime.
        pub fn connect_lazy(url: &str) -> ::core::result::Result<$pool_ty, $start_error> {
            $crate::connect_lazy::<$config>(url)
        }

        #[doc = concat!("A started pool configured from the [`ENV_PREFIX`]`_*` variables ([`", stringify!($config), "::from_env`]). For another prefix: `", stringify!($config), "::from_env(\"ORDERS\")?.connect().await`.")]
        ///
        #[doc = concat!("Cancel safety: as for [`", stringify!($config), "::connect`].")]
        pub async fn connect_env() -> ::core::result::Result<$pool_ty, $start_error> {
            $crate::connect_env::<$config>().await
        }

        #[doc = concat!("A lazy pool configured from the [`ENV_PREFIX`]`_*` variables ([`", stringify!($config), "::from_env`]). Must be called within a Tokio runtime.")]
        pub fn connect_env_lazy() -> ::core::result::Result<$pool_ty, $start_error> {
            $crate::connect_env_lazy::<$config>()
        }

        impl $config {
            /// Reads the configuration from the `{prefix}_*` variables of the process environment
            /// ([`Adapter::from_env`](aquifer_core::Adapter::from_env)): the variables are listed on
            /// `from_lookup`; unset ones keep their defaults; errors name the variable and show its value as
            /// written (passwords redacted); a variable that is not valid UTF-8, and an unknown
            /// `{prefix}_POOL_*` variable or one a typo away from a known name, are errors.
            pub fn from_env(prefix: &str) -> ::core::result::Result<Self, $crate::ConfigError> {
                <Self as $crate::Adapter>::from_env(prefix)
            }

            /// Builds the pool and waits until `min_idle` connections (at least one) are open, so a wrong
            /// URL, password or database fails here rather than on the first request. Must run in a Tokio
            /// runtime.
            ///
            /// Cancel safety: dropping the future drops the pool, which closes it: connects in flight are
            /// abandoned and connections already open are closed.
            pub async fn connect(&self) -> ::core::result::Result<$pool_ty, $start_error> {
                <Self as $crate::Adapter>::connect(self).await
            }

            /// Builds the pool without connecting: connections open on first use (and `min_idle` in the
            /// background). Must be called within a Tokio runtime.
            pub fn connect_lazy(&self) -> ::core::result::Result<$pool_ty, $start_error> {
                <Self as $crate::Adapter>::connect_lazy(self)
            }
        }

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
            ConfigError, Credential, CredentialError, CredentialProvider, Credentials, DatabaseUrl, HealthCheck,
            HealthRegistry, HealthReport, HealthStatus, PoolConfig, RetryPolicy, Secret, State, Stats,
        };
    };
}
