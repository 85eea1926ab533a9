//! Reachability checks: a test that needs a server fails, naming the script that starts it.

use std::time::Duration;

/// Fails the test (panics) unless something accepts TCP connections at `addr` within 3 seconds. `what` names
/// the server, `script` the command that starts it.
pub async fn require_server(what: &str, addr: &str, script: &str) {
    let connect = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await;
    match connect {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("{what} is not reachable at {addr} ({e}); start it with `{script}`"),
        Err(_) => panic!("{what} did not answer at {addr} within 3 s; start it with `{script}`"),
    }
}

/// [`require_server`] for synchronous tests.
pub fn require_server_blocking(what: &str, addr: &str, script: &str) {
    let parsed: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("bad address {addr}: {e}"));
    if let Err(e) = std::net::TcpStream::connect_timeout(&parsed, Duration::from_secs(3)) {
        panic!("{what} is not reachable at {addr} ({e}); start it with `{script}`");
    }
}
