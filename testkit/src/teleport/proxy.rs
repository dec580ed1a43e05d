//! An emulated Teleport Proxy with TLS routing: it reads the ClientHello
//! without terminating TLS, and when the ALPN list carries
//! `teleport-auth@<hex(cluster)>.teleport.cluster.local` for our cluster it
//! pipes the raw bytes (ClientHello included) to the Auth server, so mutual
//! TLS stays end to end. Any other ClientHello is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::EmulatorError;
use crate::util::API_DOMAIN;

/// A running emulated Proxy.
#[derive(Debug)]
pub struct EmulatedProxy {
    addr: SocketAddr,
    routed: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl Drop for EmulatedProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl EmulatedProxy {
    /// Listens on `127.0.0.1:0` and routes `cluster`'s Auth ALPN to `auth`.
    pub async fn start(auth: SocketAddr, cluster: &str) -> Result<Self, EmulatorError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(EmulatorError::Io)?;
        let addr = listener.local_addr().map_err(EmulatorError::Io)?;
        let routed = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let (r, f, c, cluster) = (
            routed.clone(),
            refused.clone(),
            cancel.clone(),
            cluster.to_owned(),
        );
        tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    () = c.cancelled() => return,
                    a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                };
                let _ = sock.set_nodelay(true);
                let (r, f, c, cluster) = (r.clone(), f.clone(), c.clone(), cluster.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = c.cancelled() => {}
                        res = route(sock, auth, &cluster, &r) => if res.is_err() { f.fetch_add(1, Ordering::Relaxed); },
                    }
                });
            }
        });
        Ok(Self {
            addr,
            routed,
            refused,
            cancel,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Connections forwarded to Auth.
    pub fn routed(&self) -> u64 {
        self.routed.load(Ordering::Relaxed)
    }
    /// Connections closed because the ALPN did not route to Auth.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

async fn route(
    mut sock: TcpStream,
    auth: SocketAddr,
    cluster: &str,
    routed: &AtomicU64,
) -> Result<(), ()> {
    let mut buf = vec![0u8; 5];
    sock.read_exact(&mut buf).await.map_err(|_| ())?;
    if buf[0] != 22 {
        return Err(());
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    buf.resize(5 + len, 0);
    sock.read_exact(&mut buf[5..]).await.map_err(|_| ())?;
    let alpns = client_hello_alpn(&buf[5..]).ok_or(())?;
    let ok = alpns
        .iter()
        .any(|a| cluster_from_routing_alpn(a).as_deref() == Some(cluster));
    if !ok {
        return Err(());
    }
    let mut upstream = TcpStream::connect(auth).await.map_err(|_| ())?;
    upstream.write_all(&buf).await.map_err(|_| ())?;
    routed.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::io::copy_bidirectional(&mut sock, &mut upstream).await;
    Ok(())
}

/// ALPN names offered in a ClientHello handshake message (record payload).
pub fn client_hello_alpn(hs: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(hs);
    if r.u8()? != 1 {
        return None;
    }
    let body_len = r.u24()?;
    let mut b = Reader(r.take(body_len)?);
    b.take(2 + 32)?; // version, random
    let sid = usize::from(b.u8()?);
    b.take(sid)?;
    let cs = usize::from(b.u16()?);
    b.take(cs)?;
    let comp = usize::from(b.u8()?);
    b.take(comp)?;
    let ext_len = usize::from(b.u16()?);
    let mut exts = Reader(b.take(ext_len)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let data = exts.take(len)?;
        if ty == 16 {
            let mut d = Reader(data);
            let list_len = usize::from(d.u16()?);
            let mut list = Reader(d.take(list_len)?);
            let mut out = Vec::new();
            while !list.0.is_empty() {
                let n = usize::from(list.u8()?);
                out.push(String::from_utf8_lossy(list.take(n)?).into_owned());
            }
            return Some(out);
        }
    }
    Some(Vec::new())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

/// The cluster named by a TLS-routing ALPN value
/// (`teleport-auth@<hex(cluster)>.teleport.cluster.local`), as the Proxy reads it.
pub fn cluster_from_routing_alpn(alpn: &str) -> Option<String> {
    let rest = alpn.strip_prefix("teleport-auth@")?;
    let hex_part = rest.strip_suffix(API_DOMAIN)?.strip_suffix('.')?;
    String::from_utf8(hex::decode(hex_part).ok()?).ok()
}
