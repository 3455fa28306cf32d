//! bytes → the HTTP request handling of the metrics endpoint.
//!
//! The input is what a client sends on one connection. It reaches the real
//! router (`faultline::metrics::http::routes`, with the body-limit and
//! timeout layers and the hyper HTTP/1 connection settings that
//! `serve_router` uses, mirrored here because they are built inside its
//! accept loop) through an in-memory duplex stream instead of a socket.
//! Time is paused and advances whenever everything waits, so an
//! incomplete request meets the header-read timeout at once instead of
//! after 5 s. The server must answer with an HTTP/1.x status line (1.0 to a 1.0
//! client) or close,
//! and must finish: a connection still open after ten minutes of (virtual)
//! time is a hang and fails the input.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use faultline::metrics::http::{Exporter, Limits, routes};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

struct Fixed;
impl Exporter for Fixed {
    fn metrics(&self) -> String {
        "# TYPE faultline_records_total counter\nfaultline_records_total 7\n".into()
    }
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }
    fn ready(&self) -> Result<(), String> {
        Err("alert sink failing".into())
    }
}

fn router(limits: Limits) -> &'static Router {
    static R: OnceLock<Router> = OnceLock::new();
    R.get_or_init(|| {
        routes(Arc::new(Fixed))
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                limits.request_timeout,
            ))
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let router = router(limits).clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let answer = rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(limits.keep_alive)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .serve_connection(TokioIo::new(server), TowerToHyperService::new(router));
        let served = tokio::spawn(conn);
        let talk = async {
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let write = async {
                // The server may close before reading all of it.
                let _ = wr.write_all(data).await;
            };
            let mut out = Vec::new();
            let read = async {
                let _ = rd.read_to_end(&mut out).await;
            };
            tokio::join!(write, read);
            out
        };
        let out = tokio::time::timeout(Duration::from_secs(600), talk)
            .await
            .expect("the connection ends (answered or closed) within the timeouts");
        // The connection task has ended or ends now that the client is gone.
        let _ = tokio::time::timeout(Duration::from_secs(600), served)
            .await
            .expect("the connection task ends");
        out
    });
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1."),
        "not an HTTP/1.x answer: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
});
