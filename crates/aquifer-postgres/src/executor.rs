//! The sqlx drop-in: [`PgPool`] is an sqlx [`Executor`] and [`Acquire`] like sqlx's own `PgPool`, so code
//! written for sqlx keeps working (`sqlx::query(..).fetch_all(&pool)`, `pool.begin()`, `pool.acquire()`,
//! `sqlx::migrate!().run(&pool)`, functions generic over `A: Acquire<'c, Database = Postgres>`), and has sqlx's
//! constructors and counters (`PgPool::connect`, `connect_lazy`, `connect_with`, `connect_lazy_with`, `size()`,
//! `num_idle()`).
//!
//! The orphan rule allows it because [`PgPool`] is a type of this crate (a newtype over the engine's
//! `Pool<PgManager>`). sqlx's trait has a hidden `describe` method that exists only when sqlx-core's `offline`
//! feature is on, which sqlx's default `macros` feature turns on; this crate always turns it on (through
//! sqlx-core and sqlx-postgres) so that the implementation compiles whatever features the service picks.

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgQueryResult, PgRow, PgStatement, PgTransactionManager, PgTypeInfo, Postgres,
};
use sqlx::{Acquire, Describe, Either, Execute, Executor, SqlStr};
use sqlx_core::ext::async_stream::TryAsyncStream;
use sqlx_core::transaction::TransactionManager;

use crate::helpers::Parts;
use crate::{PgConfig, PgPool, PgPoolError, PgPooled, PgScoped, PgSession, PgStartError};

/// The pool's error as an sqlx error, for code that expects sqlx's: a closed pool is
/// [`sqlx::Error::PoolClosed`]; a timeout or a fail-fast is an [`sqlx::Error::Io`] (kind `TimedOut` or
/// `NotConnected`) wrapping the [`PgPoolError`] (`get_ref()`), so the last connect error ("password
/// authentication failed") stays in the message instead of sqlx's bare "pool timed out".
fn to_sqlx(e: PgPoolError) -> sqlx::Error {
    let kind = match &e {
        PgPoolError::Closed => return sqlx::Error::PoolClosed,
        PgPoolError::Timeout { .. } => std::io::ErrorKind::TimedOut,
        _ => std::io::ErrorKind::NotConnected,
    };
    sqlx::Error::Io(std::io::Error::new(kind, e))
}

/// sqlx's constructors and counters, for code written against sqlx's `PgPool`. The constructors return a
/// [`PgStartError`] rather than an `sqlx::Error` (the driver's error is
/// [`backend_error()`](aquifer_core::StartError::backend_error)): `?` into `anyhow::Error` or
/// `Box<dyn Error>` works as before; a function returning `sqlx::Result` needs a `map_err` (docs/migrating.md).
impl PgPool {
    /// A started pool with default settings for `url` (sqlx's `PgPool::connect`): the same as
    /// [`aquifer_postgres::connect`](crate::connect). The first connection is open when it returns, so a wrong
    /// URL, password or database fails here.
    ///
    /// Cancel safety: as for [`PgConfig::connect`].
    pub async fn connect(url: &str) -> Result<PgPool, PgStartError> {
        PgConfig::from_url(url).connect().await
    }

    /// A started pool with default settings connecting with `options` (sqlx's `PgPool::connect_with`): for
    /// what a URL cannot carry. The same as [`PgConfig::connect_with_options`] on `PgConfig::default()`.
    ///
    /// Cancel safety: as for [`PgConfig::connect`].
    pub async fn connect_with(options: PgConnectOptions) -> Result<PgPool, PgStartError> {
        PgConfig::default().connect_with_options(options).await
    }

    /// A lazy pool with default settings for `url` (sqlx's `PgPool::connect_lazy`): nothing connects until
    /// first use. Must be called within a Tokio runtime.
    pub fn connect_lazy(url: &str) -> Result<PgPool, PgStartError> {
        PgConfig::from_url(url).connect_lazy()
    }

    /// A lazy pool with default settings connecting with `options` (sqlx's `PgPool::connect_lazy_with`, which
    /// returns the pool itself: this one can fail, outside a Tokio runtime or with an invalid setting).
    pub fn connect_lazy_with(options: PgConnectOptions) -> Result<PgPool, PgStartError> {
        PgConfig::default().connect_lazy_with_options(options)
    }

    /// The connections open or being opened, idle ones included (sqlx's `Pool::size`):
    /// [`State::size`](aquifer_core::State::size).
    pub fn size(&self) -> u32 {
        u32::try_from(self.state().size).unwrap_or(u32::MAX)
    }

    /// The idle connections (sqlx's `Pool::num_idle`): [`State::idle`](aquifer_core::State::idle).
    pub fn num_idle(&self) -> usize {
        self.state().idle
    }

    /// Checks a connection out, with sqlx's error type (sqlx's `Pool::acquire`); [`get`](aquifer_core::Pool::get)
    /// gives the pool's own error. The connection dereferences to [`PgConnection`]: run queries on
    /// `&mut *conn`.
    ///
    /// Cancel safety: as for [`get`](aquifer_core::Pool::get): a dropped call leaks no slot and loses no
    /// connection.
    pub async fn acquire(&self) -> Result<PgPooled, sqlx::Error> {
        self.get().await.map_err(to_sqlx)
    }

    /// Checks a connection out and starts a transaction on it (sqlx's `Pool::begin`). Run statements on
    /// `&mut *tx`; [`commit`](PgTransaction::commit) or [`rollback`](PgTransaction::rollback) it; dropped
    /// without either, it is rolled back before the connection is reused.
    ///
    /// Unlike [`transaction`](PgPool::transaction), nothing is retried or timed: this is sqlx's API.
    ///
    /// Cancel safety: dropping the future before it completes returns the connection, with any `BEGIN` in
    /// flight rolled back by the pool before reuse.
    ///
    /// ```no_run
    /// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), sqlx::Error> {
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("UPDATE accounts SET balance = balance - 10 WHERE id = $1").bind(1).execute(&mut *tx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> Result<PgTransaction, sqlx::Error> {
        let mut conn = self.acquire().await?;
        PgTransactionManager::begin(&mut conn, None).await?;
        Ok(PgTransaction { conn: Some(conn) })
    }
}

/// A transaction on a pooled connection, from [`PgPool::begin`]; sqlx's `Transaction` for this pool. It
/// dereferences to [`PgConnection`], so statements run on `&mut *tx` as with sqlx.
///
/// Dropped without [`commit`](PgTransaction::commit) or [`rollback`](PgTransaction::rollback), its `ROLLBACK`
/// is queued (as sqlx does) and sent by the pool before the connection is handed out again.
pub struct PgTransaction {
    /// `None` once committed or rolled back.
    conn: Option<PgPooled>,
}

impl PgTransaction {
    /// Commits the transaction and returns the connection to the pool.
    ///
    /// Cancel safety: dropping the future while `COMMIT` is in flight leaves the outcome unknown; the pool
    /// drains or discards the connection before reuse.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("a PgTransaction holds its connection until it ends");
        PgTransactionManager::commit(&mut conn).await
    }

    /// Rolls the transaction back and returns the connection to the pool.
    ///
    /// Cancel safety: dropping the future leaves the rollback to the pool, which sends it before reuse.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.take().expect("a PgTransaction holds its connection until it ends");
        PgTransactionManager::rollback(&mut conn).await
    }
}

impl std::ops::Deref for PgTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a PgTransaction holds its connection until it ends")
    }
}

impl std::ops::DerefMut for PgTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a PgTransaction holds its connection until it ends")
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            // Queues the ROLLBACK; the manager sees the reply owed on return and sends it before reuse.
            PgTransactionManager::start_rollback(conn);
        }
    }
}

impl std::fmt::Debug for PgTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTransaction").field("open", &self.conn.is_some()).finish()
    }
}

/// The message of [`Acquire::begin`] on `&PgPool`, which cannot work (see the impl).
const ACQUIRE_BEGIN: &str = "sqlx::Acquire::begin on an aquifer_postgres::PgPool cannot return an \
    sqlx::Transaction (it can own only a connection of sqlx's own pool): call PgPool::begin() for an \
    aquifer_postgres::PgTransaction, or acquire() a connection and begin() on it";

/// sqlx's `Acquire` for `&PgPool`, as sqlx implements it for `&Pool<Postgres>`, so code generic over
/// `A: Acquire<'c, Database = Postgres>` takes an Aquifer pool: `Migrator::run(&pool)` (what
/// `sqlx::migrate!().run(&pool)` calls), `Migrator::undo`, your own functions.
///
/// [`acquire`](Acquire::acquire) checks a connection out ([`PgPool::acquire`]). [`begin`](Acquire::begin)
/// fails with [`sqlx::Error::Configuration`]: sqlx's `Transaction` holds either a borrowed connection or a
/// connection of sqlx's own pool, and a connection of this pool is neither, so no `Transaction` that gives it
/// back can be made. Generic code that needs a transaction acquires first and begins on the connection
/// (`let mut conn = a.acquire().await?; let tx = conn.begin().await?;`, with `sqlx::Connection` in scope),
/// which works for every `Acquire`; [`PgPool::begin`] is the pool's own.
impl<'c> Acquire<'c> for &'_ PgPool {
    type Database = Postgres;
    type Connection = PgPooled;

    fn acquire(self) -> BoxFuture<'c, Result<PgPooled, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await })
    }

    fn begin(self) -> BoxFuture<'c, Result<sqlx::Transaction<'c, Postgres>, sqlx::Error>> {
        Box::pin(std::future::ready(Err(sqlx::Error::Configuration(ACQUIRE_BEGIN.into()))))
    }
}

/// sqlx's `Acquire` for a transaction of this pool, as sqlx implements it for `&mut Transaction`: `acquire`
/// lends the transaction's connection, `begin` starts a nested transaction (a `SAVEPOINT`) on it.
impl<'c> Acquire<'c> for &'c mut PgTransaction {
    type Database = Postgres;
    type Connection = &'c mut PgConnection;

    fn acquire(self) -> BoxFuture<'c, Result<&'c mut PgConnection, sqlx::Error>> {
        Box::pin(std::future::ready(Ok(&mut **self)))
    }

    fn begin(self) -> BoxFuture<'c, Result<sqlx::Transaction<'c, Postgres>, sqlx::Error>> {
        sqlx::Transaction::begin(&mut **self, None)
    }
}

/// sqlx `Executor` methods that read no rows (`prepare_with`, `describe`), the same for [`&PgPool`](PgPool) and
/// [`&PgScoped`](PgScoped): they run without a session, on a connection checked out of the pool `$pool` returns
/// for `self`.
macro_rules! rowless_methods {
    ($pool:expr) => {
        fn prepare_with<'e>(
            self,
            sql: SqlStr,
            parameters: &'e [PgTypeInfo],
        ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
        where
            'p: 'e,
        {
            let pool = $pool(self).clone();
            Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
        }

        #[doc(hidden)]
        fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
        where
            'p: 'e,
        {
            let pool = $pool(self).clone();
            Box::pin(async move { pool.acquire().await?.describe(sql).await })
        }
    };
}

/// The same as sqlx's `impl Executor for &Pool<Postgres>`: each call checks a connection out for the
/// duration of the query (the stream, for `fetch`/`fetch_many`) and returns it after. These calls run outside
/// the operation runner: no retries, no `db.client.operation.duration` (the pool's own metrics still apply).
/// They are watched for N+1 loops ([`aquifer_core::n_plus_one`]) by statement shape; the call site of a loop is
/// read from a backtrace (sqlx's API does not pass its caller on). In deny mode a call that makes a loop fails
/// with [`sqlx::Error::Configuration`] wrapping the [`NPlusOneError`](aquifer_core::n_plus_one::NPlusOneError).
impl<'p> Executor<'p> for &'_ PgPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(TryAsyncStream::new(move |yielder| async move {
            let (query, _watch) = watched(&pool, query)?;
            let mut conn = pool.acquire().await?;
            let mut results = conn.fetch_many(query);
            while let Some(v) = results.try_next().await? {
                yielder.r#yield(v).await;
            }
            Ok(())
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let (query, _watch) = watched(&pool, query)?;
            pool.acquire().await?.fetch_optional(query).await
        })
    }

    rowless_methods!(std::convert::identity::<&PgPool>);
}

/// sqlx's `Executor` for a pool with a [`PgSession`] applied per transaction
/// ([`PgPool::with_session`]): `sqlx::query(..).fetch_all(&scoped)` checks a connection out, opens a
/// transaction, applies the session with `set_config(.., true)`, runs the query and commits, so the settings
/// end with the transaction and never reach the next user of the connection (safe behind PgBouncer in
/// transaction mode). A query that fails, or a stream dropped before its end, leaves the transaction to be
/// rolled back by the pool before reuse. Behind PgBouncer ([`PgConfig::pgbouncer`]) queries are sent as
/// unnamed statements, so none is left on the shared server connection. `prepare_with` and `describe` read
/// no rows and run without the session. Outside the operation runner, as [`&PgPool`](PgPool)'s.
impl<'p> Executor<'p> for &'_ PgScoped<'_> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let (pool, session) = (self.pool().clone(), self.session().clone());
        // Behind PgBouncer an unnamed statement: a named one outlives the transaction (and a rollback) on a
        // server connection other clients get next.
        let query = Parts::new(query, pool.manager().pgbouncer());
        Box::pin(TryAsyncStream::new(move |yielder| async move {
            let mut tx = begin_scoped(&pool, &session).await?;
            {
                let mut results = (&mut *tx).fetch_many(query);
                while let Some(v) = results.try_next().await? {
                    yielder.r#yield(v).await;
                }
            }
            tx.commit().await
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        let (pool, session) = (self.pool().clone(), self.session().clone());
        let query = Parts::new(query, pool.manager().pgbouncer());
        Box::pin(async move {
            let mut tx = begin_scoped(&pool, &session).await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    rowless_methods!(PgScoped::pool);
}

impl PgScoped<'_> {
    /// Checks a connection out and starts a transaction on it with the session applied as its first
    /// statement (`set_config(.., true)`): sqlx's `Pool::begin` for a tenant. The settings end with the
    /// transaction; dropped without [`commit`](PgTransaction::commit) or
    /// [`rollback`](PgTransaction::rollback), it is rolled back before the connection is reused.
    ///
    /// Cancel safety: as for [`PgPool::begin`].
    pub async fn begin(&self) -> Result<PgTransaction, sqlx::Error> {
        begin_scoped(self.pool(), self.session()).await
    }
}

/// A transaction on a pooled connection with `session` applied as its first statement: what
/// [`PgScoped::begin`] returns and what [`&PgScoped`](PgScoped)'s queries run in.
async fn begin_scoped(pool: &PgPool, session: &PgSession) -> Result<PgTransaction, sqlx::Error> {
    let mut tx = pool.begin().await?;
    session.apply_local(&mut tx).await?;
    Ok(tx)
}

/// A query of the executor, watched for N+1 loops unless the pool's mode is off: taken apart (to read its SQL)
/// only then, so the mode off costs one atomic read.
fn watched<'q, E: 'q + Execute<'q, Postgres>>(
    pool: &PgPool,
    query: E,
) -> Result<(Watched<E>, Option<aquifer_core::n_plus_one::Watch>), sqlx::Error> {
    if pool.n_plus_one() == aquifer_core::n_plus_one::NPlusOneMode::Off || !aquifer_core::n_plus_one::in_scope() {
        return Ok((Watched::Plain(query), None));
    }
    let parts = Parts::new(query, pool.manager().pgbouncer());
    let watch = pool.n_plus_one_watch(parts.sql.as_str(), None).map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
    Ok((Watched::Parts(parts), watch))
}

/// The query as given, or taken apart to read its SQL.
enum Watched<E> {
    Plain(E),
    Parts(Parts),
}

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Watched<E> {
    fn sql(self) -> SqlStr {
        match self {
            Watched::Plain(q) => q.sql(),
            Watched::Parts(p) => p.sql(),
        }
    }

    fn statement(&self) -> Option<&PgStatement> {
        match self {
            Watched::Plain(q) => q.statement(),
            Watched::Parts(p) => p.statement(),
        }
    }

    fn take_arguments(&mut self) -> Result<Option<sqlx::postgres::PgArguments>, sqlx::error::BoxDynError> {
        match self {
            Watched::Plain(q) => q.take_arguments(),
            Watched::Parts(p) => p.take_arguments(),
        }
    }

    fn persistent(&self) -> bool {
        match self {
            Watched::Plain(q) => q.persistent(),
            Watched::Parts(p) => p.persistent(),
        }
    }
}
