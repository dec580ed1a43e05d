//! `teleport-discord healthcheck`: a tiny blocking HTTP/1.1 GET against a
//! running instance, so container images need no shell or curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("request to {addr} failed: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Not an HTTP answer.
    #[error("{addr} did not answer with HTTP")]
    NotHttp {
        /// Where.
        addr: SocketAddr,
    },
}

/// The address to connect to for a listen address: an unspecified IP
/// (`0.0.0.0`, `::`) means this host's loopback.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// GETs `path` and returns the HTTP status code.
pub fn probe(listen: SocketAddr, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let addr = connect_addr(listen);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let io = |source| ProbeError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: teleport-discord-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let read = stream.read(&mut head[n..]).map_err(io)?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let line = std::str::from_utf8(&head[..n]).map_err(|_| ProbeError::NotHttp { addr })?;
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or(ProbeError::NotHttp { addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_means_loopback() {
        assert_eq!(
            connect_addr("0.0.0.0:8080".parse().expect("addr")).to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            connect_addr("[::]:8080".parse().expect("addr")).to_string(),
            "[::1]:8080"
        );
        assert_eq!(
            connect_addr("10.1.2.3:80".parse().expect("addr")).to_string(),
            "10.1.2.3:80"
        );
    }

    #[test]
    fn refused_connection_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        assert!(matches!(
            probe(addr, "/healthz", Duration::from_secs(1)),
            Err(ProbeError::Connect { .. })
        ));
    }

    #[test]
    fn reads_the_status_code() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for body in [
                "HTTP/1.1 200 OK\r\n\r\n",
                "HTTP/1.1 503 Service Unavailable\r\n\r\n",
                "SSH-2.0-OpenSSH\r\n",
            ] {
                let (mut s, _) = l.accept().expect("accept");
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                s.write_all(body.as_bytes()).expect("write");
            }
        });
        assert_eq!(
            probe(addr, "/healthz", Duration::from_secs(2)).expect("probe"),
            200
        );
        assert_eq!(
            probe(addr, "/healthz", Duration::from_secs(2)).expect("probe"),
            503
        );
        assert!(matches!(
            probe(addr, "/healthz", Duration::from_secs(2)),
            Err(ProbeError::NotHttp { .. })
        ));
        server.join().expect("server");
    }
}
