//! A fault-injecting TCP proxy for chaos tests: it sits between a pool and its real server and, on command,
//! resets every connection, stops passing bytes (a black hole) and heals, refuses new connections and accepts
//! them again, adds latency, or cuts connections part-way through a result.
//!
//! Hand-written rather than the `noxious` crate (the in-process Rust port of Toxiproxy) because noxious 1.0.4
//! has no `reset_peer` toxic (it can only close with a FIN, so "the server resets every connection" cannot be
//! expressed), cannot refuse connections while keeping its address, and pulls a second tokio-util, rand and
//! thiserror into the workspace; what the chaos tests need is about 300 lines on tokio alone.
//!
//! Every fault applies to the connections open when it is set and to those opened while it lasts, except
//! [`ChaosProxy::cut_after`], which arms only the connections open at the time (new ones are not born cut).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The faults in force; links and the accept loop watch it.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Bumped by every reset: a link opened under an older epoch resets (RST) itself.
    reset_epoch: u64,
    /// No byte passes in either direction while set; bytes already read wait until it clears.
    black_hole: bool,
    /// Every chunk waits this long before it is passed on.
    latency: Duration,
    /// New connections are refused (the listener is closed) while set.
    refusing: bool,
    /// `(id, bytes)`: links open when this was set close (FIN) after passing `bytes` more server bytes.
    cut: Option<(u64, usize)>,
    /// The proxy is gone: every link and the accept loop end.
    shutdown: bool,
    /// A link with no byte either way for this long is forgotten, as a NAT or load balancer forgets an idle
    /// flow: from then on it silently drops every byte (no FIN, no RST), for good.
    idle_drop: Option<Duration>,
}

struct Shared {
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    accepted: AtomicU64,
    live: AtomicUsize,
    cuts: AtomicU64,
    idle_drops: AtomicU64,
    next_cut: AtomicU64,
    links: Mutex<HashMap<u64, JoinHandle<()>>>,
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`, with faults switched on and off by its methods. Dropping
/// it resets every connection through it and stops listening.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl ChaosProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<ChaosProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: watch::Sender::new(Faults::default()),
            accepted: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            cuts: AtomicU64::new(0),
            idle_drops: AtomicU64::new(0),
            next_cut: AtomicU64::new(1),
            links: Mutex::new(HashMap::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, addr, shared.clone()));
        Ok(ChaosProxy { addr, shared, accept })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Resets (TCP RST) every connection open now, in both directions; later connections are untouched.
    pub fn reset_all(&self) {
        self.shared.faults.send_modify(|f| f.reset_epoch += 1);
    }

    /// Starts or ends a black hole: no byte passes either way (connections stay open, as in a network
    /// partition); when it ends, what was held passes on.
    pub fn black_hole(&self, on: bool) {
        self.shared.faults.send_modify(|f| f.black_hole = on);
    }

    /// Refuses new connections (the listening socket is closed, so connects get ECONNREFUSED) or accepts
    /// them again on the same port. Open connections are untouched.
    pub fn refuse(&self, on: bool) {
        self.shared.faults.send_modify(|f| f.refusing = on);
    }

    /// Delays every chunk by `latency` in each direction (`Duration::ZERO` ends it).
    pub fn latency(&self, latency: Duration) {
        self.shared.faults.send_modify(|f| f.latency = latency);
    }

    /// Arms every connection open now to close (FIN, as a server that died would) after passing `bytes` more
    /// bytes from the server: a result in flight is cut part-way.
    pub fn cut_after(&self, bytes: usize) {
        let id = self.shared.next_cut.fetch_add(1, Ordering::Relaxed);
        self.shared.faults.send_modify(|f| f.cut = Some((id, bytes)));
    }

    /// Forgets links idle (no byte either way) for `after`, as a NAT gateway, firewall or cloud load
    /// balancer does with idle flows: a forgotten link silently drops every byte from then on, in both
    /// directions, and is never closed (the client finds out only by a timeout). `None` ends it for links not
    /// yet forgotten. Applies to open links and new ones.
    pub fn drop_idle_after(&self, after: Option<Duration>) {
        self.shared.faults.send_modify(|f| f.idle_drop = after);
    }

    /// Links forgotten by [`drop_idle_after`](ChaosProxy::drop_idle_after) so far.
    pub fn idle_drops(&self) -> u64 {
        self.shared.idle_drops.load(Ordering::Relaxed)
    }

    /// Ends every fault: no black hole, no latency, no armed cut, accepting.
    pub fn heal(&self) {
        self.shared.faults.send_modify(|f| {
            f.black_hole = false;
            f.latency = Duration::ZERO;
            f.refusing = false;
            f.cut = None;
        });
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections open through the proxy now.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    /// Connections closed by an armed [`cut_after`](ChaosProxy::cut_after) so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.shared.faults.send_modify(|f| f.shutdown = true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Arc<Shared>) {
    let mut faults = shared.faults.subscribe();
    let mut next_id = 0_u64;
    let mut listening = Some(listener);
    loop {
        let (refusing, shutdown) = {
            let f = faults.borrow_and_update();
            (f.refusing, f.shutdown)
        };
        if shutdown {
            return;
        }
        if refusing {
            // Closing the listening socket is what makes connects fail with ECONNREFUSED.
            listening = None;
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listening.is_none() {
            match rebind(addr).await {
                Some(l) => listening = Some(l),
                None => return,
            }
        }
        let listener = listening.take().expect("bound above");
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    next_id += 1;
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    shared.live.fetch_add(1, Ordering::Relaxed);
                    let id = next_id;
                    let s = shared.clone();
                    let task = tokio::spawn(async move {
                        link(client, &s).await;
                        s.live.fetch_sub(1, Ordering::Relaxed);
                        s.links.lock().remove(&id);
                    });
                    let mut links = shared.links.lock();
                    links.retain(|_, t| !t.is_finished());
                    links.insert(id, task);
                }
            }
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        listening = Some(listener);
    }
}

/// Binds the proxy's own address again after a refusal (SO_REUSEADDR lets it past TIME_WAIT); a few tries in
/// case the kernel is slow to release it.
async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// How a link ended.
enum End {
    /// One side closed: close the other with a FIN.
    Closed,
    /// A reset or the proxy's shutdown: RST the client.
    Reset,
}

/// Takes the armed cut `cut` as this link's budget of server bytes, once per cut (`seen_cut`); no cut armed, no
/// budget.
fn arm_cut(cut: Option<(u64, usize)>, seen_cut: &mut Option<u64>, budget: &mut Option<usize>) {
    match cut {
        Some((id, bytes)) if *seen_cut != Some(id) => {
            *seen_cut = Some(id);
            *budget = Some(bytes);
        }
        None => *budget = None,
        Some(_) => {}
    }
}

async fn link(mut client: TcpStream, shared: &Shared) {
    let mut faults = shared.faults.subscribe();
    let (epoch, mut seen_cut) = {
        let f = faults.borrow_and_update();
        (f.reset_epoch, f.cut.map(|(id, _)| id))
    };
    let mut upstream = match TcpStream::connect(shared.upstream).await {
        Ok(s) => s,
        Err(_) => {
            abort(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    // Server bytes still allowed through before an armed cut closes the link.
    let mut budget: Option<usize> = None;
    let mut up_buf = vec![0_u8; 16 * 1024];
    let mut down_buf = vec![0_u8; 16 * 1024];
    // When the link last passed a byte, and whether an idle drop made it forget the flow.
    let mut last_active = tokio::time::Instant::now();
    let mut forgotten = false;
    let end = loop {
        let idle_drop = faults.borrow().idle_drop.filter(|_| !forgotten);
        let idle_deadline = idle_drop.map(|d| last_active + d);
        let (upward, read) = tokio::select! {
            () = async { tokio::time::sleep_until(idle_deadline.expect("guarded")).await }, if idle_deadline.is_some() => {
                forgotten = true;
                shared.idle_drops.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            n = client.read(&mut up_buf) => (true, n),
            n = upstream.read(&mut down_buf) => (false, n),
            changed = faults.changed() => {
                let f = faults.borrow_and_update();
                if changed.is_err() || f.shutdown || f.reset_epoch != epoch {
                    break End::Reset;
                }
                // A cut armed now applies to this link, which was open when it was set.
                arm_cut(f.cut, &mut seen_cut, &mut budget);
                continue;
            }
        };
        // Bytes read from either side: dropped once the flow is forgotten, else held at the gate, then passed.
        let n = match read {
            Ok(0) | Err(_) => break End::Closed,
            Ok(n) => n,
        };
        if forgotten {
            continue;
        }
        last_active = tokio::time::Instant::now();
        if let Err(end) = gate(&mut faults, epoch).await {
            break end;
        }
        if upward {
            if upstream.write_all(&up_buf[..n]).await.is_err() {
                break End::Closed;
            }
            continue;
        }
        let cut = faults.borrow().cut;
        arm_cut(cut, &mut seen_cut, &mut budget);
        let pass = budget.map_or(n, |b| b.min(n));
        if pass > 0 && client.write_all(&down_buf[..pass]).await.is_err() {
            break End::Closed;
        }
        if let Some(b) = budget.as_mut() {
            *b -= pass;
            if pass < n || *b == 0 {
                shared.cuts.fetch_add(1, Ordering::Relaxed);
                break End::Closed;
            }
        }
    };
    match end {
        End::Closed => {
            let _ = client.shutdown().await;
            let _ = upstream.shutdown().await;
        }
        End::Reset => {
            abort(client);
            abort(upstream);
        }
    }
}

/// Waits while a black hole lasts, then the latency in force; a reset while waiting ends the link.
async fn gate(faults: &mut watch::Receiver<Faults>, epoch: u64) -> Result<(), End> {
    loop {
        let (black_hole, latency) = {
            let f = faults.borrow_and_update();
            if f.shutdown || f.reset_epoch != epoch {
                return Err(End::Reset);
            }
            (f.black_hole, f.latency)
        };
        if black_hole {
            if faults.changed().await.is_err() {
                return Err(End::Reset);
            }
            continue;
        }
        if !latency.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(latency) => {}
                changed = faults.changed() => {
                    if changed.is_err() {
                        return Err(End::Reset);
                    }
                    continue;
                }
            }
        }
        return Ok(());
    }
}

/// Closes a socket with a TCP RST (zero linger) instead of a FIN.
fn abort(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}
