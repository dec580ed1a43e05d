//! Network stand-ins between the service and an emulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A TCP forwarder that delivers everything the target sends `latency`
/// late (in order, at full speed otherwise): a distant server. A TLS
/// handshake then takes about one `latency`, and each call about one more,
/// whatever the protocol above.
#[derive(Debug)]
pub struct SlowLink {
    addr: SocketAddr,
    forwarded: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl SlowLink {
    /// Listens on `127.0.0.1:0` and forwards to `target`.
    pub async fn start(target: SocketAddr, latency: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (count, cancel) = (forwarded.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
                    () = cancel.cancelled() => return,
                };
                let (count, cancel) = (count.clone(), cancel.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = forward(inbound, outbound, latency) => {}
                        () = cancel.cancelled() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            forwarded,
            stop,
        })
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections made so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(client: TcpStream, server: TcpStream, latency: Duration) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
        let _ = server_tx.shutdown().await;
    };
    // Server → client: each chunk is held until `latency` after it arrived.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = server_rx.read(&mut buf).await {
            if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let write = async {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at + latency).await;
            if client_tx.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(up, read, write);
}

/// A TCP forwarder between one replica and one emulator, for the chaos
/// runner: it can be cut (every connection dropped, new ones refused: a
/// partition of that replica alone), and it can note when the replica sent
/// a request that changes something (`POST` or `PATCH`: a message create
/// or edit), so an oracle knows who sent what when.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    state: Arc<LinkState>,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct LinkState {
    cut: std::sync::atomic::AtomicBool,
    /// Cancelled by [`Link::cut`]: ends every connection of the moment.
    generation: std::sync::Mutex<CancellationToken>,
    record: bool,
    writes: std::sync::Mutex<Vec<std::time::SystemTime>>,
}

impl Link {
    /// Listens on `127.0.0.1:0` and forwards to `target`; with `record`, notes
    /// the time of every `POST` and `PATCH` request going through.
    pub async fn start(target: SocketAddr, record: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(LinkState {
            record,
            ..LinkState::default()
        });
        let stop = CancellationToken::new();
        let (st, cancel) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
                    () = cancel.cancelled() => return,
                };
                if st.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let generation = crate::util::lock(&st.generation).clone();
                let (st, cancel) = (st.clone(), cancel.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        () = relay(inbound, outbound, &st) => {}
                        () = generation.cancelled() => {}
                        () = cancel.cancelled() => {}
                    }
                });
            }
        });
        Ok(Self { addr, state, stop })
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link (`true`: every connection dropped now, new ones
    /// refused) or heals it.
    pub fn set_cut(&self, cut: bool) {
        self.state.cut.store(cut, Ordering::SeqCst);
        if cut {
            let mut g = crate::util::lock(&self.state.generation);
            g.cancel();
            *g = CancellationToken::new();
        }
    }

    /// Times of the `POST` and `PATCH` requests forwarded so far.
    pub fn writes(&self) -> Vec<std::time::SystemTime> {
        crate::util::lock(&self.state.writes).clone()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn relay(client: TcpStream, server: TcpStream, st: &LinkState) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = client_rx.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            // HTTP/1.1 requests from one client go one at a time on a
            // connection, so a request line starts a chunk.
            if st.record && (chunk.starts_with(b"POST ") || chunk.starts_with(b"PATCH ")) {
                crate::util::lock(&st.writes).push(std::time::SystemTime::now());
            }
            if server_tx.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = server_tx.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(up, down);
}
