//! How sqlx errors are classified: `error.type`, SQLSTATEs, transient failures and lost sessions.

use std::borrow::Cow;

use sqlx::postgres::{PgDatabaseError, PgSeverity};

/// The SQLSTATE of a server error (`28P01`: wrong password, `3D000`: no such database, `40001`:
/// serialization failure...), if `e` is one.
///
/// ```
/// assert_eq!(aquifer_postgres::sqlstate(&aquifer_postgres::sqlx::Error::RowNotFound), None);
/// ```
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(Cow::into_owned),
        _ => None,
    }
}

/// The server rolled the statement or transaction back and says trying again may succeed.
pub(crate) fn is_rolled_back(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// The session is gone: the socket failed, or the server ended the session (terminated backend, shutdown,
/// connection exception).
pub(crate) fn is_session_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let fatal = db
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
            fatal || db.code().is_some_and(|c| is_session_ending(&c))
        }
        _ => false,
    }
}

/// SQLSTATEs that end the session: class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash
/// shutdown, cannot connect now).
pub(crate) fn is_session_ending(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// A low-cardinality `error.type` for a sqlx error: the SQLSTATE for server errors, a class name otherwise.
pub(crate) fn error_type(e: &sqlx::Error) -> Cow<'static, str> {
    Cow::Borrowed(match e {
        sqlx::Error::Database(db) => {
            return match db.code() {
                Some(code) => Cow::Owned(code.into_owned()),
                None => Cow::Borrowed("_OTHER"),
            };
        }
        // The same names as the other adapters for the same events.
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection_refused",
            std::io::ErrorKind::TimedOut => "timeout",
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::NotConnected => "connection_lost",
            _ => "io",
        },
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::Configuration(_) => "configuration",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_) => "decode",
        sqlx::Error::Encode(_) => "encode",
        _ => "_OTHER",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_socket_is_connection_lost_like_on_the_other_backends() {
        let io = |kind| sqlx::Error::Io(std::io::Error::from(kind));
        assert_eq!(error_type(&io(std::io::ErrorKind::ConnectionReset)), "connection_lost");
        assert_eq!(error_type(&io(std::io::ErrorKind::UnexpectedEof)), "connection_lost");
        assert_eq!(error_type(&io(std::io::ErrorKind::ConnectionRefused)), "connection_refused");
        assert_eq!(error_type(&io(std::io::ErrorKind::Other)), "io");
        assert!(is_session_lost(&io(std::io::ErrorKind::ConnectionReset)));
    }

    #[test]
    fn session_ending_codes() {
        assert!(is_session_ending("57P01"));
        assert!(is_session_ending("08006"));
        assert!(!is_session_ending("57014"));
        assert!(!is_session_ending("40001"));
    }
}
