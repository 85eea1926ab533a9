//! [`MySqlSession`]: session variables for one checkout (a tenant read by a view, a time zone), cleared with
//! `COM_RESET_CONNECTION` when the connection comes back.

use std::sync::Arc;

use aquifer_core::{BoxError, ConfigError, SessionContext};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::{MySqlManager, MySqlPool, MySqlPoolError, MySqlPooled};

/// Variables for one checkout: user variables (`@tenant_id`, read by a view such as
/// `CREATE VIEW my_notes AS SELECT * FROM notes WHERE tenant_id = @tenant_id`) and session system variables
/// (`time_zone`, `sql_mode`).
///
/// Names are checked when added (letters, digits, underscores); values are sent as parameters of one
/// prepared `SET`, never spliced into SQL.
///
/// ```
/// use aquifer_mysql::MySqlSession;
///
/// let tenant = MySqlSession::new().user_var("tenant_id", "42")?.system_var("time_zone", "+00:00")?;
/// assert_eq!(tenant.to_sql(), "SET @tenant_id = ?, SESSION time_zone = ?");
/// # Ok::<(), aquifer_mysql::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlSession {
    /// (`@name` or `SESSION name`, value), in the order given.
    vars: Vec<(String, String)>,
}

impl MySqlSession {
    /// No variables.
    pub fn new() -> Self {
        MySqlSession::default()
    }

    /// Sets the user variable `@name`. Fails with a [`ConfigError`] naming `name` unless it is an
    /// identifier.
    pub fn user_var(mut self, name: &str, value: impl Into<String>) -> Result<Self, ConfigError> {
        check_name("user_var", name)?;
        self.vars.push((format!("@{name}"), value.into()));
        Ok(self)
    }

    /// Sets the session system variable `name` (`SET SESSION name = ?`). Fails with a [`ConfigError`]
    /// naming `name` unless it is an identifier.
    pub fn system_var(mut self, name: &str, value: impl Into<String>) -> Result<Self, ConfigError> {
        check_name("system_var", name)?;
        self.vars.push((format!("SESSION {name}"), value.into()));
        Ok(self)
    }

    /// The `SET` statement the session runs (values as `?` placeholders).
    pub fn to_sql(&self) -> String {
        let assignments: Vec<String> = self.vars.iter().map(|(n, _)| format!("{n} = ?")).collect();
        format!("SET {}", assignments.join(", "))
    }

    /// Runs the `SET` on `conn` (one round trip; nothing when there are no variables). Cleared only by a
    /// reset of the session: use [`MySqlPool::get_session`] rather than calling this on a pooled connection.
    ///
    /// Cancel safety: mysql_async's `Conn` is not cancel-safe; the pool resets or discards a connection
    /// whose statement was abandoned.
    pub async fn apply(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        if self.vars.is_empty() {
            return Ok(());
        }
        let values: Vec<mysql_async::Value> = self.vars.iter().map(|(_, v)| v.as_str().into()).collect();
        conn.exec_drop(self.to_sql(), values).await
    }
}

fn check_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field,
            value: format!("{name:?}"),
            reason: "must be an identifier (letters, digits, underscores)".into(),
        })
    }
}

/// A session bound to its pool's manager, which knows the after-connect settings to restore after the reset.
struct Bound {
    session: MySqlSession,
    manager: MySqlManager,
}

#[aquifer_core::async_trait]
impl SessionContext<Conn> for Bound {
    fn name(&self) -> &str {
        "MySqlSession"
    }

    async fn apply(&self, conn: &mut Conn) -> Result<(), BoxError> {
        self.session.apply(conn).await.map_err(Into::into)
    }

    /// `COM_RESET_CONNECTION` (every user and session variable, temporary table, prepared statement and
    /// open transaction goes), then the pool's own session settings again.
    async fn clear(&self, conn: &mut Conn) -> Result<(), BoxError> {
        if !conn.reset().await? {
            return Err("the server does not support COM_RESET_CONNECTION (MySQL > 5.7.2, MariaDB >= 10.2.4)".into());
        }
        self.manager.apply_session(conn).await?;
        Ok(())
    }
}

impl MySqlPool {
    /// Checks out a connection with `session`'s variables set; when the connection comes back it is reset
    /// with `COM_RESET_CONNECTION` (mysql_async's `Conn::reset`) and the pool's session settings are
    /// applied again, before anyone else can get it. A connection whose reset fails is discarded.
    ///
    /// Fails with [`PoolError::Hook`](aquifer_core::PoolError::Hook) (the connection discarded) when the
    /// `SET` fails.
    ///
    /// Cancel safety: as for [`Pool::get_with`](aquifer_core::Pool::get_with): a future dropped while the
    /// `SET` runs closes the connection; a connection dropped at any point (a panic included) is reset or
    /// closed before reuse.
    pub async fn get_session(&self, session: &MySqlSession) -> Result<MySqlPooled, MySqlPoolError> {
        let bound = Bound { session: session.clone(), manager: self.manager().clone() };
        self.get_with(Arc::new(bound)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_the_error_names_the_value() {
        for bad in ["", "tenant id", "x = 1; DROP TABLE t", "1a", "@x"] {
            let err = MySqlSession::new().user_var(bad, "1").unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(MySqlSession::new().system_var("time_zone", "+00:00").is_ok());
    }
}
