//! [`RowNotFound`], and the classification of driver errors (metrics' `error.type`, retries).

use std::borrow::Cow;
use std::io::ErrorKind;

use mysql_async::{DriverError, Error, IoError};

/// The first row was asked for ([`MySqlPool::fetch_one`](crate::MySqlPool::fetch_one)) and there was none.
/// mysql_async's error has no variant for it, so it travels as `mysql_async::Error::Other`;
/// [`is_row_not_found`] recognises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no rows returned by a query that expected to return at least one row")]
#[non_exhaustive]
pub struct RowNotFound;

/// True when `e` is [`RowNotFound`].
pub fn is_row_not_found(e: &Error) -> bool {
    matches!(e, Error::Other(other) if other.is::<RowNotFound>())
}

/// MySQL/MariaDB server error codes the helpers treat as transient.
pub(crate) const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
pub(crate) const ER_LOCK_DEADLOCK: u16 = 1213;
/// The server is shutting down.
const ER_SERVER_SHUTDOWN: u16 = 1053;
/// MariaDB: the connection was killed (`KILL`).
const ER_CONNECTION_KILLED: u16 = 1927;
/// MySQL 8.0.24+: sent before the server closes a connection idle past `wait_timeout`.
const ER_CLIENT_INTERACTION_TIMEOUT: u16 = 4031;

/// Whether a failed statement may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// The connection was gone before the statement was written (or the server said it closed the connection
    /// before reading it): the statement did not run.
    BeforeSent,
    /// The connection died after the statement was written: it may or may not have run.
    Unknown,
}

/// `Some` when the error means the connection to the server is lost.
pub(crate) fn lost_connection(e: &Error) -> Option<Lost> {
    match e {
        Error::Driver(DriverError::ConnectionClosed) => Some(Lost::BeforeSent),
        Error::Io(IoError::Io(io)) => {
            let closed_before = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<Error>())
                .is_some_and(|inner| matches!(inner, Error::Driver(DriverError::ConnectionClosed)));
            if closed_before {
                return Some(Lost::BeforeSent);
            }
            match io.kind() {
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::NotConnected => Some(Lost::Unknown),
                // tokio-util's framing reports a socket that closed inside a packet (a connection killed or
                // cut while a result streams) as a plain `Other` error with this text.
                ErrorKind::Other if is_cut_mid_packet(io) => Some(Lost::Unknown),
                _ => None,
            }
        }
        Error::Server(s) if s.code == ER_CLIENT_INTERACTION_TIMEOUT => Some(Lost::BeforeSent),
        Error::Server(s) if s.code == ER_CONNECTION_KILLED || s.code == ER_SERVER_SHUTDOWN => Some(Lost::Unknown),
        _ => None,
    }
}

/// The socket closed with part of a packet read: tokio-util's `FramedRead` says "bytes remaining on stream"
/// (its only way to report it; there is no error kind or type of its own to match).
fn is_cut_mid_packet(io: &std::io::Error) -> bool {
    io.get_ref().is_some_and(|inner| inner.to_string() == "bytes remaining on stream")
}

/// The server error code, if the error is a server error.
pub(crate) fn server_code(e: &Error) -> Option<u16> {
    match e {
        Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// `error.type` of a driver error: the server's error number (`1213`, `1045`...), as the OpenTelemetry
/// database conventions ask, or a small fixed set of names for client-side failures.
pub fn error_type(e: &Error) -> Cow<'static, str> {
    match e {
        Error::Server(s) => Cow::Owned(s.code.to_string()),
        Error::Io(IoError::Tls(_)) => Cow::Borrowed("tls"),
        Error::Io(IoError::Io(io)) => Cow::Borrowed(match io.kind() {
            // rustls reports a refused certificate or handshake as an I/O error wrapping its own.
            _ if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => "tls",
            ErrorKind::ConnectionRefused => "connection_refused",
            ErrorKind::TimedOut => "timeout",
            _ if lost_connection(e).is_some() => "connection_lost",
            _ if io.to_string().contains("max_allowed_packet") => "packet_too_large",
            _ => "io",
        }),
        Error::Driver(DriverError::ConnectionClosed) => Cow::Borrowed("connection_lost"),
        Error::Driver(DriverError::NoClientSslFlagFromServer) => Cow::Borrowed("tls"),
        Error::Driver(_) => Cow::Borrowed("driver"),
        Error::Url(_) => Cow::Borrowed("url"),
        Error::Other(other) if other.is::<RowNotFound>() => Cow::Borrowed("row_not_found"),
        Error::Other(other) if other.is::<crate::PacketTooLarge>() => Cow::Borrowed("packet_too_large"),
        Error::Other(_) => Cow::Borrowed("_OTHER"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: std::io::Error) -> Error {
        Error::Io(IoError::Io(e))
    }

    #[test]
    fn every_way_of_losing_the_connection_is_connection_lost() {
        let lost = [
            io(std::io::Error::other("bytes remaining on stream")),
            io(std::io::Error::from(ErrorKind::UnexpectedEof)),
            io(std::io::Error::from(ErrorKind::ConnectionReset)),
            io(std::io::Error::from(ErrorKind::BrokenPipe)),
            Error::Driver(DriverError::ConnectionClosed),
        ];
        for e in &lost {
            assert!(lost_connection(e).is_some(), "{e:?}");
            assert_eq!(error_type(e), "connection_lost", "{e:?}");
        }
        let other = io(std::io::Error::other("something else"));
        assert_eq!((lost_connection(&other), error_type(&other)), (None, Cow::Borrowed("io")));
    }
}
