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
