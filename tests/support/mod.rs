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

/// Each line's group from `faultline fingerprint --raw` (with `extra`
/// flags), in line order: the end-to-end view of how a stream is grouped.
pub fn fingerprint_groups(lines: &[String], extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .env_remove("FAULTLINE_CONFIG")
        .args(["fingerprint", "--raw"])
        .args(extra)
        .arg(&path)
        .output()
        .unwrap();
    assert_ok(&out);
    let mut by_line: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        by_line.insert(
            v["line_id"].as_u64().unwrap(),
            v["group"].as_str().unwrap().to_string(),
        );
    }
    (1..=lines.len() as u64)
        .map(|n| by_line.get(&n).cloned().unwrap_or_default())
        .collect()
}

/// Fails unless every kind of line got exactly one group and no group
/// holds two kinds (`name` says a kind in the message).
pub fn check_one_group_per_kind<K: Copy + Eq + std::hash::Hash + std::fmt::Debug>(
    kinds: &[K],
    groups: &[String],
    name: impl Fn(K) -> String,
) {
    use std::collections::{HashMap, HashSet};
    let mut per_kind: HashMap<K, HashSet<&str>> = HashMap::new();
    let mut per_group: HashMap<&str, HashSet<K>> = HashMap::new();
    for (k, g) in kinds.iter().zip(groups) {
        per_kind.entry(*k).or_default().insert(g);
        per_group.entry(g).or_default().insert(*k);
    }
    for (k, gs) in &per_kind {
        assert_eq!(gs.len(), 1, "{} split into {gs:?}", name(*k));
    }
    for (g, ks) in &per_group {
        assert_eq!(ks.len(), 1, "group {g} merges kinds {ks:?}");
    }
}

/// Fails unless the last line's group is none of the earlier lines'
/// groups: a new event after many known ones is a type of its own.
pub fn assert_last_is_new(groups: &[String]) {
    let (last, earlier) = groups.split_last().expect("no groups");
    assert!(
        earlier.iter().all(|x| x != last),
        "the new event joined a known type"
    );
}

/// Runs `fingerprint --raw` (with `extra`) on `lines` and fails unless
/// each event of `kinds` (an index into `events`) got one group of its own.
pub fn check_groups_by_event(lines: &[String], kinds: &[usize], events: &[&str], extra: &[&str]) {
    let g = fingerprint_groups(lines, extra);
    check_one_group_per_kind(kinds, &g, |k: usize| events[k].to_string());
}
