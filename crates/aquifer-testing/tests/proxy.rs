//! The chaos proxy does to a connection what each fault says, checked against a local echo server.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use aquifer_testing::ChaosProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// An upstream that echoes what it reads, or sends `reply` bytes when it reads a `!`.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0_u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if buf[..n].contains(&b'!') {
                        let _ = s.write_all(&vec![7_u8; 100_000]).await;
                    } else if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    s.write_all(b"ping").await?;
    let mut buf = [0_u8; 4];
    s.read_exact(&mut buf).await?;
    Ok(buf.to_vec())
}

const BOUND: Duration = Duration::from_secs(5);

#[tokio::test]
async fn passes_bytes_both_ways_without_faults() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.live(), 1);
    drop(s);
    timeout(BOUND, async {
        while proxy.live() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the link ends when the client closes");
}

#[tokio::test]
async fn reset_all_resets_open_connections_and_spares_new_ones() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut s).await.unwrap();
    proxy.reset_all();
    let mut buf = [0_u8; 4];
    let err = timeout(BOUND, s.read(&mut buf)).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut fresh).await.unwrap(), b"ping");
}

#[tokio::test]
async fn refuse_closes_the_port_and_accept_reopens_it() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    proxy.refuse(true);
    let err = timeout(BOUND, async {
        loop {
            // The accept loop drops the listener as soon as it sees the change; a connect caught in its backlog
            // at that moment is reset instead.
            match TcpStream::connect(proxy.addr()).await {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return e,
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    proxy.refuse(false);
    let mut s = timeout(BOUND, async {
        loop {
            if let Ok(s) = TcpStream::connect(proxy.addr()).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(round_trip(&mut s).await.unwrap(), b"ping");
}

#[tokio::test]
async fn black_hole_holds_bytes_until_healed() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut s).await.unwrap();
    proxy.black_hole(true);
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0_u8; 4];
    assert!(timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await.is_err(), "nothing passes");
    proxy.heal();
    timeout(BOUND, s.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn latency_delays_each_chunk() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.latency(Duration::from_millis(100));
    let started = std::time::Instant::now();
    round_trip(&mut s).await.unwrap();
    // One delay each way.
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn cut_after_passes_exactly_the_budget_then_closes() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut s).await.unwrap();
    proxy.cut_after(1000);
    s.write_all(b"!").await.unwrap();
    let mut got = Vec::new();
    timeout(BOUND, s.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got.len(), 1000, "the result is cut part-way, then EOF");
    assert_eq!(proxy.cuts(), 1);
    // A connection opened after the cut was armed is whole.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    fresh.write_all(b"!").await.unwrap();
    let mut buf = vec![0_u8; 100_000];
    timeout(BOUND, fresh.read_exact(&mut buf)).await.unwrap().unwrap();
}

#[tokio::test]
async fn drop_idle_after_forgets_idle_links_silently_and_spares_active_ones() {
    let proxy = ChaosProxy::start(echo_server().await).await.unwrap();
    proxy.drop_idle_after(Some(Duration::from_millis(200)));
    let mut idle = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut busy = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut idle).await.unwrap(), b"ping");
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(round_trip(&mut busy).await.unwrap(), b"ping", "a link in use is never forgotten");
    }
    assert_eq!(proxy.idle_drops(), 1);
    // The forgotten link stays open but nothing comes back: no RST, no FIN, only silence.
    let silent = timeout(Duration::from_millis(300), round_trip(&mut idle)).await;
    assert!(silent.is_err(), "a forgotten link answered: {silent:?}");
    assert_eq!(proxy.live(), 2);
    proxy.drop_idle_after(None);
    assert!(timeout(Duration::from_millis(300), round_trip(&mut idle)).await.is_err(), "forgotten for good");
}
