//! Helpers shared by the end-to-end tests: the outcome of a run of the
//! real binary, free ports, a plain HTTP GET, and child processes that are
//! killed when a test ends, also when it fails.

// Each test file is its own crate and uses its own subset of these.
#![allow(dead_code)]

pub mod kafka;

use std::io::{Read, Write};
use std::process::{Child, Output};
use std::time::Duration;

/// Fails the test with the command's stderr unless it exited with 0.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:`port`; the whole response, head and body.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A child process killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP request to `url` (`GET`, `POST` or `DELETE`) with an optional
/// bearer `token` and JSON `body`, waiting at most `timeout`: the status
/// and the body as JSON (`Null` when it is not JSON), or why no answer
/// came (refused, timed out).
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut r = match method {
            "POST" => c.post(url),
            "DELETE" => c.delete(url),
            _ => c.get(url),
        }
        .timeout(timeout);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = r.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    })
}

/// Polls `f` every 200 ms until it returns `Some`; fails the test after
/// `secs` seconds, naming `what` it waited for.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "gave up after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
