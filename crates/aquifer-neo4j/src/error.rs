//! [`Neo4jError`]: neo4rs errors sorted into the cases a service handles differently.

use std::borrow::Cow;
use std::io::ErrorKind;

use neo4rs::{Neo4jClientErrorKind, Neo4jErrorKind, Neo4jSecurityErrorKind};

/// An error of a pooled Neo4j connection; the neo4rs error behind it is [`Neo4jError::driver_error`].
///
/// neo4rs reports a refused password, a missing database and a dead socket through one flat enum; this one
/// says which it was, so a service can tell "fix the configuration" from "retry later". No variant carries the
/// password. The message includes the neo4rs error's, so `source()` returns only causes it leaves out
/// ([`aquifer_core::source_not_in`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Neo4jError {
    /// The server refused the user name or password (Bolt HELLO failed, or `Neo.ClientError.Security.Unauthorized`).
    Authentication {
        /// The user that was refused, when known.
        user: Option<String>,
        /// The driver's error.
        source: neo4rs::Error,
    },
    /// The configured database does not exist on the server (`Neo.ClientError.Database.DatabaseNotFound`).
    UnknownDatabase {
        /// The database that was asked for, when known.
        database: Option<String>,
        /// The driver's error.
        source: neo4rs::Error,
    },
    /// No Bolt server answered at the address (refused, unreachable, DNS failure, connect timeout).
    Unreachable {
        /// `host:port`.
        address: String,
        /// The driver's error.
        source: neo4rs::Error,
    },
    /// An established connection broke or stopped answering within `read_timeout` mid-exchange; the pool
    /// discards it. A transaction that failed this way is retried on a new connection.
    ConnectionLost {
        /// The driver's error.
        source: neo4rs::Error,
    },
    /// The connection's only Bolt connection is still held by a stream or transaction that was not dropped
    /// (neo4rs's `Error::ConnectionError` on an established connection). The pool discards the connection.
    ConnectionBusy {
        /// The driver's error.
        source: neo4rs::Error,
    },
    /// The server rejected the query or transaction (syntax, constraint, transient conflict...): see
    /// [`Neo4jError::code`].
    Server(neo4rs::Error),
    /// A transaction closure gave up with an error of its own (see [`Neo4jError::abort`]); the transaction
    /// was rolled back.
    Aborted(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Any other driver error (a value that does not convert, an unsupported type...).
    Driver(neo4rs::Error),
    /// No password could be had for a new connection (a password file that cannot be read, a credential
    /// provider that failed with no valid token left).
    Credentials(aquifer_core::CredentialError),
    /// [`Neo4jPool::fetch_one`](crate::Neo4jPool::fetch_one) found no row.
    RowNotFound,
}

impl std::fmt::Display for Neo4jError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Neo4jError::Authentication { user, source } => {
                write!(f, "authentication failed for user {}: {source}", Quoted(user.as_deref()))
            }
            Neo4jError::UnknownDatabase { database, source } => {
                write!(f, "database {} does not exist on the server: {source}", Quoted(database.as_deref()))
            }
            Neo4jError::Unreachable { address, source } => {
                write!(f, "cannot reach the Bolt server at {address}: {source}")
            }
            Neo4jError::ConnectionLost { source } => write!(f, "lost the connection to the Bolt server: {source}"),
            Neo4jError::ConnectionBusy { source } => write!(
                f,
                "the connection is busy: a stream or transaction of this connection still holds its Bolt connection \
                 (drop it before the next query): {source}"
            ),
            Neo4jError::Server(e) | Neo4jError::Driver(e) => std::fmt::Display::fmt(e, f),
            Neo4jError::Aborted(e) => write!(f, "transaction aborted: {e}"),
            Neo4jError::Credentials(e) => std::fmt::Display::fmt(e, f),
            Neo4jError::RowNotFound => {
                f.write_str("no rows returned by a query that expected to return at least one row")
            }
        }
    }
}

impl std::error::Error for Neo4jError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause: &(dyn std::error::Error + 'static) = match self {
            Neo4jError::Aborted(e) => &**e,
            Neo4jError::RowNotFound | Neo4jError::Credentials(_) => return None,
            _ => self.driver_error()?,
        };
        aquifer_core::source_not_in(&self.to_string(), cause)
    }
}

impl Neo4jError {
    /// Wraps an error of a transaction closure's own, to abort (and roll back) the transaction with it.
    pub fn abort(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Neo4jError::Aborted(error.into())
    }

    /// The Neo4j status code (`Neo.ClientError.Statement.SyntaxError`...) the server sent, if any.
    pub fn code(&self) -> Option<&str> {
        match self.driver_error()? {
            neo4rs::Error::Neo4j(e) => Some(e.code()),
            _ => None,
        }
    }

    /// The neo4rs error behind this one (none for [`Neo4jError::Aborted`]).
    pub fn driver_error(&self) -> Option<&neo4rs::Error> {
        match self {
            Neo4jError::Authentication { source, .. }
            | Neo4jError::UnknownDatabase { source, .. }
            | Neo4jError::Unreachable { source, .. }
            | Neo4jError::ConnectionLost { source }
            | Neo4jError::ConnectionBusy { source } => Some(source),
            Neo4jError::Server(e) | Neo4jError::Driver(e) => Some(e),
            Neo4jError::Aborted(_) | Neo4jError::RowNotFound | Neo4jError::Credentials(_) => None,
        }
    }

    /// True when running the same work again may succeed: a Neo4j transient error (deadlock, lock timeout,
    /// leader switch), an expired session or authorization, or a lost connection (the retry gets a new one).
    pub fn is_transient(&self) -> bool {
        match self {
            Neo4jError::ConnectionLost { .. } => true,
            Neo4jError::Server(neo4rs::Error::Neo4j(e)) => matches!(
                e.kind(),
                Neo4jErrorKind::Transient
                    | Neo4jErrorKind::Client(
                        Neo4jClientErrorKind::SessionExpired
                            | Neo4jClientErrorKind::Security(Neo4jSecurityErrorKind::AuthorizationExpired)
                    )
            ),
            _ => false,
        }
    }

    /// True when the connection that produced this error must not be used again.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Neo4jError::ConnectionLost { .. } | Neo4jError::Unreachable { .. } | Neo4jError::ConnectionBusy { .. }
        )
    }

    /// A low-cardinality name of the error's class for the `error.type` metric attribute: `authentication`,
    /// `unknown_database`, `unreachable`, `connection_lost`, `connection_busy`, the Neo4j status code of a server error,
    /// `aborted`, `driver` or `row_not_found`.
    pub fn error_type(&self) -> Cow<'static, str> {
        match self {
            Neo4jError::Authentication { .. } => "authentication".into(),
            Neo4jError::UnknownDatabase { .. } => "unknown_database".into(),
            Neo4jError::Unreachable { .. } => "unreachable".into(),
            Neo4jError::ConnectionLost { .. } => "connection_lost".into(),
            Neo4jError::ConnectionBusy { .. } => "connection_busy".into(),
            Neo4jError::Server(_) => match self.code() {
                // Status codes are a fixed catalogue; anything else is not used as a label.
                Some(code) if code.starts_with("Neo.") && code.len() <= 96 => Cow::Owned(code.to_owned()),
                _ => "server".into(),
            },
            Neo4jError::Aborted(_) => "aborted".into(),
            Neo4jError::Credentials(_) => "credentials".into(),
            Neo4jError::Driver(_) => "driver".into(),
            Neo4jError::RowNotFound => "row_not_found".into(),
        }
    }

    /// Fills in what an error converted without context (inside a transaction closure) does not know.
    pub(crate) fn with_context(self, ctx: &Context) -> Self {
        match self {
            Neo4jError::Authentication { user: None, source } => {
                Neo4jError::Authentication { user: Some(ctx.user.clone()), source }
            }
            Neo4jError::UnknownDatabase { database: None, source } => {
                Neo4jError::UnknownDatabase { database: ctx.database.clone(), source }
            }
            other => other,
        }
    }
}

/// What the manager knows about its connections, to put into errors.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) user: String,
    pub(crate) database: Option<String>,
    pub(crate) address: String,
}

/// Whether an error happened while opening a connection or on an established one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Connect,
    Use,
}

/// Sorts a neo4rs error; `ctx` (when known) names the user, database and address.
pub(crate) fn classify(error: neo4rs::Error, ctx: Option<&Context>, phase: Phase) -> Neo4jError {
    let user = || ctx.map(|c| c.user.clone());
    let database = || ctx.and_then(|c| c.database.clone());
    let unreachable = |source| match ctx {
        Some(c) => Neo4jError::Unreachable { address: c.address.clone(), source },
        None => Neo4jError::ConnectionLost { source },
    };
    match &error {
        neo4rs::Error::AuthenticationError(_) => Neo4jError::Authentication { user: user(), source: error },
        neo4rs::Error::Neo4j(e) => {
            let code = e.code();
            if matches!(
                e.kind(),
                Neo4jErrorKind::Client(Neo4jClientErrorKind::Security(Neo4jSecurityErrorKind::Authentication))
            ) {
                Neo4jError::Authentication { user: user(), source: error }
            } else if code == "Neo.ClientError.Database.DatabaseNotFound" || is_missing_database(e.message()) {
                Neo4jError::UnknownDatabase { database: database(), source: error }
            } else {
                Neo4jError::Server(error)
            }
        }
        neo4rs::Error::IOError { detail } => {
            let refused = matches!(
                detail.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NotFound
            );
            if refused || phase == Phase::Connect {
                unreachable(error)
            } else {
                Neo4jError::ConnectionLost { source: error }
            }
        }
        neo4rs::Error::ConnectionTimedOut | neo4rs::Error::InvalidDnsName(_) if phase == Phase::Connect => {
            unreachable(error)
        }
        // On an established connection this only comes from the Graph's inner pool refusing a second
        // checkout of its single Bolt connection.
        neo4rs::Error::ConnectionError if phase == Phase::Use => Neo4jError::ConnectionBusy { source: error },
        neo4rs::Error::ConnectionTimedOut
        | neo4rs::Error::IncompleteBoltExchange
        | neo4rs::Error::UnexpectedMessage(_)
        | neo4rs::Error::UnknownMessage(_) => Neo4jError::ConnectionLost { source: error },
        _ => Neo4jError::Driver(error),
    }
}

/// Whether an error of an established connection leaves it unusable: the errors [`classify`] sorts as
/// `connection_lost`, `unreachable` or `connection_busy` in [`Phase::Use`], read without taking the error.
pub(crate) fn breaks_connection(error: &neo4rs::Error) -> bool {
    matches!(
        error,
        neo4rs::Error::IOError { .. }
            | neo4rs::Error::ConnectionTimedOut
            | neo4rs::Error::IncompleteBoltExchange
            | neo4rs::Error::UnexpectedMessage(_)
            | neo4rs::Error::UnknownMessage(_)
            | neo4rs::Error::ConnectionError
    )
}

/// ArcadeDB answers a BEGIN or RUN for a missing database with a generic error code; its message says so.
fn is_missing_database(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database") && (m.contains("not exist") || m.contains("not found") || m.contains("does not exist"))
}

impl From<neo4rs::Error> for Neo4jError {
    /// Sorts an error of an established connection (inside a transaction closure, `?` converts with this).
    fn from(error: neo4rs::Error) -> Self {
        classify(error, None, Phase::Use)
    }
}

impl From<neo4rs::DeError> for Neo4jError {
    /// A row that does not deserialize into the requested type (`row.to::<T>()?`, `row.get::<T>(..)?`).
    fn from(error: neo4rs::DeError) -> Self {
        Neo4jError::Driver(neo4rs::Error::DeserializationError(error))
    }
}

struct Quoted<'a>(Option<&'a str>);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s:?}"),
            None => f.write_str("(unknown)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each neo4rs error an established connection can return that needs no server to build.
    fn samples() -> Vec<neo4rs::Error> {
        vec![
            neo4rs::Error::IOError { detail: std::io::Error::from(ErrorKind::ConnectionReset) },
            neo4rs::Error::IOError { detail: std::io::Error::from(ErrorKind::ConnectionRefused) },
            neo4rs::Error::IOError { detail: std::io::Error::from(ErrorKind::UnexpectedEof) },
            neo4rs::Error::ConnectionTimedOut,
            neo4rs::Error::IncompleteBoltExchange,
            neo4rs::Error::UnexpectedMessage("RECORD".into()),
            neo4rs::Error::UnknownMessage("0x7f".into()),
            neo4rs::Error::ConnectionError,
            neo4rs::Error::AuthenticationError("bad credentials".into()),
            neo4rs::Error::InvalidDnsName("nowhere".into()),
            neo4rs::Error::ConversionError,
            neo4rs::Error::NoMoreRows,
            neo4rs::Error::NotSingleResult,
            neo4rs::Error::RequestIgnoredError,
            neo4rs::Error::UnknownType("X".into()),
        ]
    }

    /// The manager's quick check (`breaks_connection`, which must not take the error) and the classification
    /// users see name the same errors: a connection the pool keeps is never reported lost, and one reported
    /// lost is never handed out again.
    #[test]
    fn breaks_connection_names_exactly_the_connection_errors_classify_reports_in_use() {
        for error in samples() {
            let debug = format!("{error:?}");
            let breaks = breaks_connection(&error);
            let classified = classify(error, None, Phase::Use);
            assert_eq!(breaks, classified.is_connection_error(), "{debug} classified as {classified:?}");
        }
    }
}
