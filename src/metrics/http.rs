//! The HTTP endpoint of `faultline run`: `/metrics` (Prometheus text),
//! `/healthz` and `/readyz`, and the place further routes (the alerts and
//! control API) are added.
//!
//! Built on axum's [`Router`] served by hyper's HTTP/1.1 connection
//! builder, on a small runtime of its own thread so the pipeline stays
//! synchronous. Everything a hostile or broken client could exhaust is
//! bounded ([`Limits`]): connections are served concurrently up to a cap
//! (an idle or slow client never delays a scrape), request heads are
//! limited in size and must arrive within a timeout (which also closes idle
//! keep-alive connections), each request has a deadline, and bodies are
//! capped. The routes are plain axum: `routes(exporter).merge(more)` and
//! [`serve_router`] add an API without touching the limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// What the endpoint asks the service for.
pub trait Exporter: Send + Sync + 'static {
    /// The `/metrics` body.
    fn metrics(&self) -> String;
    /// `/healthz`: `Ok` when the process is making progress, else why not.
    fn healthy(&self) -> Result<(), String>;
    /// `/readyz`: `Ok` when it consumes and delivers, else why not.
    fn ready(&self) -> Result<(), String>;
}

/// Bounds on what clients may cost the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The request line and headers must arrive within this (also the idle
    /// time after which a keep-alive connection is closed).
    pub header_read_timeout: Duration,
    /// Request line plus headers, bytes (at least 8 KiB, hyper's minimum).
    pub max_header_bytes: usize,
    /// Request bodies, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Time a handler may take to answer (408 beyond).
    pub request_timeout: Duration,
    /// Keep connections open between requests. Off by default: scrapers
    /// come every 15-60 s, and simple clients read a response to the end
    /// of the connection, as the earlier server (which always closed) let
    /// them.
    pub keep_alive: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            keep_alive: false,
        }
    }
}

/// `/metrics`, `/healthz` and `/readyz` answered from `exporter`.
pub fn routes(exporter: Arc<dyn Exporter>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(exporter)
}

async fn metrics(State(e): State<Arc<dyn Exporter>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.metrics(),
    )
        .into_response()
}

async fn healthz(State(e): State<Arc<dyn Exporter>>) -> Response {
    probe(e.healthy())
}

async fn readyz(State(e): State<Arc<dyn Exporter>>) -> Response {
    probe(e.ready())
}

fn probe(r: Result<(), String>) -> Response {
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// Binds `addr` and serves [`routes`] with the default [`Limits`] on a
/// background thread; returns the bound address (useful with port 0).
pub fn serve(addr: &str, exporter: Arc<dyn Exporter>) -> std::io::Result<SocketAddr> {
    serve_router(addr, routes(exporter), Limits::default())
}

/// Binds `addr` and serves `router` within `limits` on a background thread.
pub fn serve_router(addr: &str, router: Router, limits: Limits) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let router = router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || rt.block_on(accept_loop(listener, router, limits)))?;
    Ok(local)
}

async fn accept_loop(listener: std::net::TcpListener, router: Router, limits: Limits) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "http endpoint: cannot register the listener");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::debug!(error = %e, "http accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(limits.keep_alive)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http connection");
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

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

    fn request(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The server may close before reading all of a hostile request.
        let _ = s.write_all(raw);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        request(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    #[test]
    fn the_endpoint_serves_metrics_and_reports_unready_with_503() {
        let addr = serve("127.0.0.1:0", Arc::new(Fixed)).unwrap();
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"), "{m}");
        assert!(m.ends_with("faultline_records_total 7\n"), "{m}");
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        let r = get(addr, "/readyz");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("alert sink failing"), "{r}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        let post = request(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }

    #[test]
    fn a_response_ends_the_connection_so_clients_may_read_to_the_end() {
        let addr = serve("127.0.0.1:0", Arc::new(Fixed)).unwrap();
        let started = std::time::Instant::now();
        // HTTP/1.1 without `Connection: close`: keep-alive by default.
        let m = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.ends_with("faultline_records_total 7\n"), "{m}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn idle_connections_do_not_delay_a_scrape() {
        let addr = serve("127.0.0.1:0", Arc::new(Fixed)).unwrap();
        let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut half: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for s in &mut half {
            s.write_all(b"GET /metr").unwrap();
        }
        // Well under the 5 s header timeout that the old one-at-a-time
        // server spent on each idle connection before the next.
        let started = std::time::Instant::now();
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop((idle, half));
    }

    #[test]
    fn an_oversized_request_head_is_refused_without_buffering_it() {
        let addr = serve("127.0.0.1:0", Arc::new(Fixed)).unwrap();
        let mut raw = b"GET /metrics?".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 1 << 20));
        raw.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = request(addr, &raw);
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
        let big_header = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "b".repeat(64 * 1024)
        );
        let r = request(addr, big_header.as_bytes());
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 431"), "{r}");
        // The server is still there for the next scrape.
        assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn a_body_over_the_limit_is_refused_with_413() {
        let limits = Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        };
        let router = routes(Arc::new(Fixed)).route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let addr = serve_router("127.0.0.1:0", router, limits).unwrap();
        let ok = request(
            addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("\r\n3"),
            "{ok}"
        );
        let mut raw =
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n"
                .to_vec();
        raw.extend([b'x'; 4096]);
        let r = request(addr, &raw);
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    }

    #[test]
    fn a_client_that_sends_nothing_or_never_finishes_its_request_is_disconnected() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let addr = serve_router("127.0.0.1:0", routes(Arc::new(Fixed)), limits).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
