//! The learned layout end to end, through `faultline fingerprint --raw`:
//! a header column that varies from line to line (a host) does not split
//! an error type, offline or as a stream labels on arrival, while a stream
//! without a header keeps the words that tell its types apart. The streams
//! are generated here with names nobody's masking rules know.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::Command;

/// Ten kinds of message, each with a value that changes per line.
const KINDS: [&str; 10] = [
    "disk {} is full",
    "slow reply from peer {}",
    "session {} opened",
    "cannot bind port {}",
    "rotated log segment {}",
    "queue depth {} above limit",
    "lost connection to replica {}",
    "config generation {} loaded",
    "retrying request {}",
    "checksum mismatch in block {}",
];
const LEVELS: [&str; 10] = [
    "ERROR", "WARN", "INFO", "ERROR", "INFO", "WARN", "ERROR", "INFO", "WARN", "ERROR",
];
/// Host names of a shape (letters and a hyphen) that no digit or number
/// rule masks, and only two of them: too few values for the learned stage
/// to generalise the position (without the layout each kind splits in
/// two), so only the layout can tell they are a per-line field.
const HOSTS: [&str; 2] = ["web-a", "cache-b"];

/// Lines `<time> <host> <LEVEL> <message>` and each line's true kind.
fn header_stream() -> (Vec<String>, Vec<usize>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..240usize {
        let k = (i * 7) % KINDS.len();
        let host = HOSTS[(i / 3) % HOSTS.len()];
        let msg = KINDS[k].replace("{}", &format!("{}", 1000 + (i * 37) % 900));
        lines.push(format!(
            "2026-12-06T10:{:02}:{:02}Z {host} {} {msg}",
            (i / 60) % 60,
            i % 60,
            LEVELS[k]
        ));
        kinds.push(k);
    }
    (lines, kinds)
}

/// Each line's group from `faultline fingerprint --raw` (with `extra`).
fn groups(lines: &[String], extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    let mut f = std::fs::File::create(&path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .env_remove("FAULTLINE_CONFIG")
        .args(["fingerprint", "--raw"])
        .args(extra)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_line: HashMap<u64, String> = HashMap::new();
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

/// The groups of each kind, and the kinds of each group.
fn check_one_group_per_kind(kinds: &[usize], groups: &[String]) {
    let mut per_kind: HashMap<usize, HashSet<&str>> = HashMap::new();
    let mut per_group: HashMap<&str, HashSet<usize>> = HashMap::new();
    for (k, g) in kinds.iter().zip(groups) {
        per_kind.entry(*k).or_default().insert(g);
        per_group.entry(g).or_default().insert(*k);
    }
    for (k, gs) in &per_kind {
        assert_eq!(gs.len(), 1, "kind {} split into {gs:?}", KINDS[*k]);
    }
    for (g, ks) in &per_group {
        assert_eq!(ks.len(), 1, "group {g} merges kinds {ks:?}");
    }
}

#[test]
fn a_host_column_does_not_split_a_type_offline() {
    let (lines, kinds) = header_stream();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]));
}

#[test]
fn a_host_column_does_not_split_a_type_when_labelled_on_arrival() {
    let (lines, kinds) = header_stream();
    check_one_group_per_kind(&kinds, &groups(&lines, &["--online"]));
}

#[test]
fn labelling_the_same_stream_twice_gives_the_same_groups() {
    let (lines, _) = header_stream();
    assert_eq!(groups(&lines, &[]), groups(&lines, &[]));
}

#[test]
fn a_stream_without_a_header_keeps_the_words_that_tell_types_apart() {
    let lines: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "{} password for operator from 10.1.{}.{} port {}",
                ["Accepted", "Failed"][i % 2],
                i % 7,
                i % 11,
                2000 + i
            )
        })
        .collect();
    let g = groups(&lines, &[]);
    assert_ne!(g[0], g[1], "accepted and failed logins merged");
    assert_eq!(g[0], g[2]);
    assert_eq!(g[1], g[3]);
}
