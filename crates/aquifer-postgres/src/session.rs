//! [`PgSession`]: settings for one request (a tenant for row-level security, a role, a search path), applied
//! so that they never reach the next user of the connection.
//!
//! Two ways to apply them:
//! - **per transaction** ([`PgPool::with_session`]): every helper call runs in a transaction whose first
//!   statement sets them with `set_config(name, value, is_local => true)`; they end with the transaction.
//!   Nothing is left on the connection, so this is also safe behind PgBouncer in transaction mode.
//! - **per checkout** ([`PgPool::get_session`]): set at session level on checkout, cleared with
//!   `RESET ALL; RESET ROLE` when the connection comes back (after the manager drained and rolled back what
//!   it had to), before anyone else can get it; a connection whose reset fails is discarded. Not behind
//!   PgBouncer in transaction mode (the settings would stay on a server connection other clients share).

use std::sync::Arc;

use aquifer_core::{BoxError, ConfigError, SessionContext};
#[cfg(doc)]
use aquifer_core::{HookFailure, PoolError};
use sqlx::postgres::PgConnection;

use crate::{PgOperationError, PgPool, PgPoolError, PgPooled};

/// Settings for one request: custom parameters (`app.tenant_id`), a role (`SET ROLE`), a `search_path`.
///
/// Names are checked when added (a custom parameter is `prefix.name`, letters, digits and underscores);
/// values are sent as bind parameters, never spliced into SQL.
///
/// ```
/// use aquifer_postgres::PgSession;
///
/// let tenant = PgSession::new().set("app.tenant_id", "42")?.role("tenant_app")?.search_path("tenant_42, public");
/// assert_eq!(tenant.settings().len(), 3);
/// # Ok::<(), aquifer_postgres::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PgSession {
    /// (parameter, value), in the order they are applied; the role comes first so that the other settings
    /// are made by it.
    settings: Vec<(String, String)>,
}

impl PgSession {
    /// No settings.
    pub fn new() -> Self {
        PgSession::default()
    }

    /// Sets a run-time parameter: a custom one (`app.tenant_id`, read by a policy with
    /// `current_setting('app.tenant_id', true)`) or a built-in one (`statement_timeout`). Fails with a
    /// [`ConfigError`] naming the parameter when it is not a valid parameter name.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Result<Self, ConfigError> {
        check_name(name)?;
        if name.eq_ignore_ascii_case("role") {
            return self.role(value.into());
        }
        self.settings.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.settings.push((name.to_owned(), value.into()));
        Ok(self)
    }

    /// `SET ROLE role`: statements run with that role's privileges (and its row-level security policies: a
    /// superuser, or a role with `BYPASSRLS`, bypasses them). Fails when `role` is empty or holds a NUL.
    pub fn role(mut self, role: impl Into<String>) -> Result<Self, ConfigError> {
        let role = role.into();
        if role.is_empty() || role.contains('\0') {
            return Err(ConfigError::Invalid {
                field: "role",
                value: format!("{role:?}"),
                reason: "must be a role name (not empty, no NUL)".into(),
            });
        }
        self.settings.retain(|(n, _)| n != "role");
        self.settings.insert(0, ("role".to_owned(), role));
        Ok(self)
    }

    /// Sets `search_path` (`"tenant_42, public"`): the schemas unqualified names resolve in.
    #[must_use]
    pub fn search_path(mut self, path: impl Into<String>) -> Self {
        self.settings.retain(|(n, _)| n != "search_path");
        self.settings.push(("search_path".to_owned(), path.into()));
        self
    }

    /// The settings, in the order they are applied.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }

    /// Applies the settings for the current transaction only (`set_config(.., true)`), in one round trip.
    /// Run it first inside a transaction of your own; outside a transaction block they last only for this
    /// statement, so it has no effect.
    ///
    /// Cancel safety: dropping the future mid-statement leaves a reply owed on the connection; the pool
    /// drains it (or discards the connection) before reuse.
    pub async fn apply_local(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.apply(conn, true).await
    }

    async fn apply(&self, conn: &mut PgConnection, local: bool) -> Result<(), sqlx::Error> {
        if self.settings.is_empty() {
            return Ok(());
        }
        let (names, values): (Vec<&str>, Vec<&str>) =
            self.settings.iter().map(|(n, v)| (n.as_str(), v.as_str())).unzip();
        sqlx::query(
            "SELECT count(set_config(s.name, s.value, $3)) \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(name, value, n)",
        )
        .bind(names)
        .bind(values)
        .bind(local)
        // Unnamed: behind PgBouncer a named statement could meet another client's on the server connection.
        .persistent(false)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// A parameter name PostgreSQL accepts for `set_config`: identifiers, at most one dot for a custom one.
fn check_name(name: &str) -> Result<(), ConfigError> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let valid = match name.split_once('.') {
        Some((prefix, rest)) => ident(prefix) && ident(rest),
        None => ident(name),
    };
    if valid && name.len() < 64 {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: "parameter",
            value: format!("{name:?}"),
            reason: "must be a parameter name such as app.tenant_id (letters, digits, underscores, one dot)".into(),
        })
    }
}

/// The per-checkout form: applied at session level, cleared with `RESET ALL; RESET ROLE` on return.
#[aquifer_core::async_trait]
impl SessionContext<PgConnection> for PgSession {
    fn name(&self) -> &str {
        "PgSession"
    }

    async fn apply(&self, conn: &mut PgConnection) -> Result<(), BoxError> {
        PgSession::apply(self, conn, false).await.map_err(Into::into)
    }

    async fn clear(&self, conn: &mut PgConnection) -> Result<(), BoxError> {
        // RESET ALL leaves the role as it is; RESET ROLE does that. Both return to the session's defaults
        // (the startup options included, so statement_timeout from PgConfig stays).
        sqlx::raw_sql("RESET ALL; RESET ROLE").execute(&mut *conn).await?;
        Ok(())
    }
}

impl PgPool {
    /// Checks out a connection with `session` applied at session level; when the connection comes back it
    /// is cleared (`RESET ALL; RESET ROLE`) before anyone else can get it, and discarded if that fails.
    /// A transaction opened with `BEGIN` through raw SQL and left open is outside this guarantee (see
    /// docs/security.md).
    ///
    /// Fails with [`PoolError::Hook`] (and the connection discarded) when applying fails: an unknown role,
    /// a role the login user is not a member of, an invalid value. Behind PgBouncer in transaction mode
    /// ([`PgConfig::pgbouncer`](crate::PgConfig::pgbouncer)) session-level settings would stay on a shared
    /// server connection, so this fails with [`PoolError::Hook`] ([`HookFailure::Refused`]) without checking
    /// out, as `get_with` and `get_timeout_with` do for any context on such a pool: use
    /// [`with_session`](PgPool::with_session).
    ///
    /// Cancel safety: as for [`Pool::get_with`](aquifer_core::Pool::get_with): a future dropped while the
    /// settings are applied closes the connection; a connection dropped at any point (a panic included) is
    /// cleared or closed before reuse.
    pub async fn get_session(&self, session: &PgSession) -> Result<PgPooled, PgPoolError> {
        // Behind PgBouncer the engine refuses it before a checkout (PgManager::session_context_refusal).
        self.get_with(Arc::new(session.clone())).await
    }

    /// The helpers (`fetch_one`, `fetch_optional`, `fetch_all`, `execute`, `transaction`) with `session`
    /// applied to each call for that call's transaction only (`set_config(.., true)` as the transaction's
    /// first statement): a statement helper runs as `BEGIN`, the settings, the statement, `COMMIT`. Nothing
    /// stays on the connection, so this is safe behind PgBouncer in transaction mode, and a cancelled call
    /// leaves only an open transaction, which the pool rolls back before reuse.
    ///
    /// ```no_run
    /// # async fn f(pool: &aquifer_postgres::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// use aquifer_postgres::PgSession;
    ///
    /// let tenant = PgSession::new().set("app.tenant_id", "42")?.role("tenant_app")?;
    /// let scoped = pool.with_session(tenant);
    /// let rows: Vec<(i64, String)> = scoped.fetch_all(|| sqlx::query("SELECT id, body FROM notes")).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_session(&self, session: PgSession) -> PgScoped<'_> {
        PgScoped { pool: self, session }
    }
}

/// A [`PgPool`] whose helpers run with a [`PgSession`] applied per transaction
/// ([`PgPool::with_session`]). The helpers behave as [`PgPool`]'s (metrics, retries, cancel safety).
#[derive(Debug, Clone)]
pub struct PgScoped<'p> {
    pool: &'p PgPool,
    session: PgSession,
}

impl PgScoped<'_> {
    /// The session applied to each call.
    pub fn session(&self) -> &PgSession {
        &self.session
    }

    /// The pool the calls run on.
    pub fn pool(&self) -> &PgPool {
        self.pool
    }

    /// The pool and the session the statement helpers run with.
    fn runs_on(&self) -> (&PgPool, Option<&PgSession>) {
        (self.pool, Some(&self.session))
    }

    /// As [`PgPool::transaction`], with the session applied as the transaction's first statement (on every
    /// attempt).
    ///
    /// Cancel safety: as for [`PgPool::transaction`].
    pub async fn transaction<T, F>(&self, f: F) -> Result<T, PgOperationError>
    where
        T: Send,
        F: for<'c> FnMut(&'c mut PgConnection) -> crate::BoxFuture<'c, Result<T, sqlx::Error>> + Send,
    {
        self.pool.run_transaction(f, Some(&self.session)).await
    }
}

crate::helpers::statement_helpers! {
    impl PgScoped<'_>, runs_on runs_on;

    /// As [`PgPool::fetch_one`], with the session applied.
    ///
    /// Cancel safety: as for [`PgPool::fetch_one`].
    fn fetch_one -> O = (First, one);

    /// As [`PgPool::fetch_optional`], with the session applied.
    ///
    /// Cancel safety: as for [`PgPool::fetch_one`].
    fn fetch_optional -> Option<O> = (First, optional);

    /// As [`PgPool::fetch_all`], with the session applied.
    ///
    /// Cancel safety: as for [`PgPool::fetch_one`].
    fn fetch_all -> Vec<O> = (All, all);

    rows_affected:
    /// As [`PgPool::execute`], with the session applied.
    ///
    /// Cancel safety: as for [`PgPool::fetch_one`].
    fn execute;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_checked_and_the_error_names_the_value() {
        assert!(PgSession::new().set("app.tenant_id", "1").is_ok());
        assert!(PgSession::new().set("statement_timeout", "1s").is_ok());
        for bad in ["", "app.", ".x", "a.b.c", "app.tenant id", "x'; DROP TABLE t; --", "1abc"] {
            let err = PgSession::new().set(bad, "1").unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(PgSession::new().role("").unwrap_err().to_string().contains("role"));
    }

    #[test]
    fn the_role_is_applied_first_and_a_setting_given_twice_keeps_the_last() {
        let s = PgSession::new().set("app.a", "1").unwrap().role("r").unwrap().set("app.a", "2").unwrap();
        assert_eq!(s.settings(), [("role".into(), "r".into()), ("app.a".into(), "2".into())]);
        let s = PgSession::new().set("ROLE", "x").unwrap();
        assert_eq!(s.settings(), [("role".into(), "x".into())]);
    }
}
