//! The metrics endpoint: `/metrics` (Prometheus text), `/healthz` and
//! `/readyz`, served over plain HTTP/1.1 on a configurable address.
//!
//! Three fixed GET routes answered from in-memory counters do not need an
//! HTTP framework: a small blocking server on its own thread keeps the
//! pipeline free of an async runtime and adds no crate (hyper's server
//! side, axum and their dependencies would roughly double the build of a
//! 2-core CI machine for ~100 lines of behaviour). Each connection is
//! answered and closed; scrapers reconnect, which is what Prometheus does
//! anyway at 15–60 s intervals.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What the endpoint asks the service for.
pub trait Exporter: Send + Sync + 'static {
    /// The `/metrics` body.
    fn metrics(&self) -> String;
    /// `/healthz`: `Ok` when the process is making progress, else why not.
    fn healthy(&self) -> Result<(), String>;
    /// `/readyz`: `Ok` when it consumes and delivers, else why not.
    fn ready(&self) -> Result<(), String>;
}

/// Binds `addr` and serves on a background thread; returns the bound
/// address (useful with port 0).
pub fn serve(addr: &str, exporter: Arc<dyn Exporter>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                // A slow or stuck client must not block the next scrape.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                if let Err(e) = answer(conn, exporter.as_ref()) {
                    tracing::debug!(error = %e, "metrics connection");
                }
            }
        })?;
    Ok(local)
}

fn answer(conn: TcpStream, exporter: &dyn Exporter) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a clean close.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            exporter.metrics(),
        ),
        ("GET", "/healthz") => probe(exporter.healthy()),
        ("GET", "/readyz") => probe(exporter.ready()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

fn probe(r: Result<(), String>) -> (&'static str, &'static str, String) {
    match r {
        Ok(()) => ("200 OK", "text/plain", "ok\n".into()),
        Err(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Fixed;
    impl Exporter for Fixed {
        fn metrics(&self) -> String {
            "faultline_records_total 7\n".into()
        }
        fn healthy(&self) -> Result<(), String> {
            Ok(())
        }
        fn ready(&self) -> Result<(), String> {
            Err("alert sink failing".into())
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn the_endpoint_serves_metrics_and_reports_unready_with_503() {
        let addr = serve("127.0.0.1:0", Arc::new(Fixed)).unwrap();
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.ends_with("faultline_records_total 7\n"), "{m}");
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        let r = get(addr, "/readyz");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("alert sink failing"), "{r}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
