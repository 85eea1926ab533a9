//! A counting TCP proxy on 127.0.0.1: forwards bytes both ways unchanged and counts the statements the
//! client sends, read from the wire protocol. aquifer-batch's tests and benchmark count statements here (or
//! on the server), never in the code under test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which protocol a [`CountingProxy`] reads.
#[derive(Clone, Copy, Debug)]
pub enum WireProtocol {
    /// PostgreSQL frontend messages: counts `Execute` ('E') and simple `Query` ('Q').
    Postgres,
    /// Bolt (Neo4j): counts `RUN` messages.
    Bolt,
}

/// A TCP proxy on a free port of 127.0.0.1 that passes bytes through unchanged and counts the statements the
/// client sends. Dropping it stops accepting; connections already open run on until either side closes.
pub struct CountingProxy {
    addr: std::net::SocketAddr,
    statements: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy in front of `upstream` (`host:port`) reading `protocol`. Panics when it cannot bind a
    /// port. The upstream must be up: a refused upstream connection ends the accept loop (with a panic in its
    /// task), so the test fails at its next connect.
    pub async fn start(upstream: &str, protocol: WireProtocol) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let statements = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let counter = Arc::clone(&statements);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.expect("proxy upstream");
                tokio::spawn(pipe(client, server, protocol, Arc::clone(&counter)));
            }
        });
        CountingProxy { addr, statements, task }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Statements counted so far on all connections.
    pub fn statements(&self) -> usize {
        self.statements.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, protocol: WireProtocol, counter: Arc<AtomicUsize>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut parser = Parser::new(protocol);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        counter.fetch_add(parser.feed(&buf[..n]), Ordering::SeqCst);
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = server_write.shutdown().await;
    let _ = down.await;
}

/// Incremental reader of the client's byte stream.
struct Parser {
    protocol: WireProtocol,
    /// Bytes of a message not yet complete.
    pending: Vec<u8>,
    /// PostgreSQL: still in the untyped startup phase. Bolt: still before the 20-byte handshake's end.
    startup: bool,
    /// Bolt: the next chunk starts a new message.
    message_start: bool,
}

impl Parser {
    fn new(protocol: WireProtocol) -> Self {
        Parser { protocol, pending: Vec::new(), startup: true, message_start: true }
    }

    fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let mut count = 0;
        let mut pos = 0;
        loop {
            let rest = &pending[pos..];
            let consumed = match self.protocol {
                WireProtocol::Postgres => self.postgres(rest, &mut count),
                WireProtocol::Bolt => self.bolt(rest, &mut count),
            };
            match consumed {
                Some(n) => pos += n,
                None => break,
            }
        }
        pending.drain(..pos);
        self.pending = pending;
        count
    }

    fn postgres(&mut self, rest: &[u8], count: &mut usize) -> Option<usize> {
        if self.startup {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().unwrap()) as usize;
            if rest.len() < len {
                return None;
            }
            let code = u32::from_be_bytes(rest[4..8].try_into().unwrap());
            // SSLRequest and GSSENCRequest are followed by another untyped startup message.
            self.startup = code == 80_877_103 || code == 80_877_104;
            return Some(len);
        }
        let kind = *rest.first()?;
        let len = u32::from_be_bytes(rest.get(1..5)?.try_into().unwrap()) as usize;
        if rest.len() < 1 + len {
            return None;
        }
        if kind == b'E' || kind == b'Q' {
            *count += 1;
        }
        Some(1 + len)
    }

    fn bolt(&mut self, rest: &[u8], count: &mut usize) -> Option<usize> {
        if self.startup {
            if rest.len() < 20 {
                return None;
            }
            self.startup = false;
            return Some(20);
        }
        let size = u16::from_be_bytes(rest.get(..2)?.try_into().unwrap()) as usize;
        if size == 0 {
            self.message_start = true;
            return Some(2);
        }
        if rest.len() < 2 + size {
            return None;
        }
        // A message starts with a structure marker (0xB0 | fields) and its signature; RUN is 0x10.
        if self.message_start && rest.len() >= 4 && rest[2] & 0xF0 == 0xB0 && rest[3] == 0x10 {
            *count += 1;
        }
        self.message_start = false;
        Some(2 + size)
    }
}
