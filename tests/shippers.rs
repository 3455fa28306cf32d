//! End-to-end on the real binary: the same logs give the same error types
//! and alerts whether they arrive as plain files, wrapped line by line in a
//! shipper's envelope (Fluent Bit, Docker json-file, Vector, Filebeat,
//! OpenTelemetry in both attribute forms), or as container runtime (CRI)
//! lines with long lines split into partial pieces.
//!
//! The wrapped inputs are made here from the plain ones, one record per
//! plain line, with the time a shipper would stamp (the line's own, or the
//! previous line's for trace lines). `examples/shippers/<shape>/` holds the
//! wrapped forms of `examples/shippers/plain/`; a test checks they are what
//! this file makes (`FAULTLINE_WRITE_EXAMPLES=1` rewrites them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::config::{Config, Format};
use faultline::parse::{Parser, RecordSink};
use faultline::record::{BadReason, LineMeta, Record};
use serde_json::{Value, json};

const SHAPES: [&str; 8] = [
    "fluent-bit",
    "docker",
    "vector",
    "filebeat",
    "otel",
    "otel-flat",
    "cri",
    "fluent-bit-cri",
];

/// Times of each plain line as a stream parses them: a line with a time of
/// its own gets it, every other line the previous one's.
fn times(lines: &[&str]) -> Vec<i64> {
    struct T(Option<i64>);
    impl RecordSink for T {
        fn line(&mut self, m: &LineMeta<'_>) {
            self.0 = m.time;
        }
        fn error(&mut self, _: Record) {}
        fn bad(&mut self, _: BadReason, _: u64) {}
    }
    let parser = Parser::new(&Config::default(), Format::Auto).expect("default config");
    let mut last = 1_793_872_800_000;
    lines
        .iter()
        .map(|l| {
            let mut t = T(None);
            parser.parse_one(l.as_bytes(), 1, Some(last), &mut t);
            last = t.0.unwrap_or(last);
            last
        })
        .collect()
}

fn rfc3339(ms: i64, nanos_extra: u32) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).expect("time in range");
    format!(
        "{}.{:09}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.timestamp_subsec_millis() * 1_000_000 + nanos_extra
    )
}

/// Splits at char boundaries into pieces of about `n` bytes.
fn pieces(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while rest.len() > n {
        let mut at = n;
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        out.push(&rest[..at]);
        rest = &rest[at..];
    }
    out.push(rest);
    out
}

/// One plain line as `shape` ships it (CRI shapes may give several
/// records: long lines are split into partial pieces).
fn wrap(shape: &str, svc: &str, line: &str, ms: i64, n: usize) -> Vec<String> {
    let pod = format!("{svc}-6d8f7c9b5-x2x9q");
    let time = rfc3339(ms, 0);
    let one = |v: Value| vec![v.to_string()];
    match shape {
        "fluent-bit" => one(json!({
            "log": format!("{line}\n"),
            "stream": "stdout",
            "time": time,
            "kubernetes": {
                "namespace_name": "shop",
                "pod_name": pod,
                "container_name": svc,
                "labels": {"app.kubernetes.io/name": svc, "pod-template-hash": "6d8f7c9b5"}
            }
        })),
        "docker" => one(json!({"log": format!("{line}\n"), "stream": "stdout", "time": time})),
        "vector" => one(json!({
            "message": line,
            "source_type": "kubernetes_logs",
            "stream": "stdout",
            "timestamp": time,
            "kubernetes": {
                "pod_namespace": "shop",
                "pod_name": pod,
                "container_name": svc,
                "pod_labels": {"app": svc}
            }
        })),
        "filebeat" => one(json!({
            "@timestamp": time,
            "message": line,
            "stream": "stdout",
            "agent": {"type": "filebeat", "version": "8.15.0"},
            "ecs": {"version": "8.0.0"},
            "input": {"type": "container"},
            "log": {"file": {"path": format!("/var/log/containers/{pod}_shop_{svc}-0123abcd.log")}, "offset": n * 120},
            "container": {"id": "0123abcd", "runtime": "containerd"},
            "kubernetes": {
                "namespace": "shop",
                "pod": {"name": pod},
                "container": {"name": svc},
                "labels": {"app_kubernetes_io/name": svc}
            }
        })),
        "otel" => one(json!({
            "timeUnixNano": format!("{}", ms as i128 * 1_000_000),
            "observedTimeUnixNano": format!("{}", ms as i128 * 1_000_000 + 5),
            "body": {"stringValue": line},
            "attributes": [{"key": "log.iostream", "value": {"stringValue": "stdout"}}],
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": svc}},
                {"key": "k8s.pod.name", "value": {"stringValue": pod}}
            ]}
        })),
        "otel-flat" => one(json!({
            "timestamp": time,
            "body": line,
            "resource": {"service.name": svc, "k8s.pod.name": pod}
        })),
        "cri" => cri_records(line, ms, 48, |c, p| {
            format!(
                "{} stdout {} {c}",
                rfc3339(ms, 7),
                if p { "P" } else { "F" }
            )
        }),
        // Fluent Bit's `cri` parser: the runtime's pieces as records, the
        // tag kept in `logtag`.
        "fluent-bit-cri" => cri_records(line, ms, 48, |c, p| {
            json!({
                "time": rfc3339(ms, 7),
                "stream": "stdout",
                "logtag": if p { "P" } else { "F" },
                "log": c,
                "kubernetes": {"pod_name": pod, "container_name": svc, "labels": {"app": svc}}
            })
            .to_string()
        }),
        other => panic!("unknown shape {other}"),
    }
}

fn cri_records(line: &str, _ms: i64, n: usize, f: impl Fn(&str, bool) -> String) -> Vec<String> {
    let ps = pieces(line, n);
    let last = ps.len() - 1;
    ps.iter().enumerate().map(|(i, c)| f(c, i < last)).collect()
}

fn wrap_file(shape: &str, svc: &str, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let ts = times(&lines);
    let mut out = String::new();
    for (n, (l, t)) in lines.iter().zip(ts).enumerate() {
        for r in wrap(shape, svc, l, t, n) {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

/// Writes every plain input of `plain` wrapped as `shape` into `dir`, under
/// the same file names (so the input's name, the fallback service, is the
/// same too).
fn wrap_dir(plain: &[PathBuf], shape: &str, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    plain
        .iter()
        .map(|p| {
            let name = p.file_name().expect("file name");
            let svc = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .expect("stem");
            let text = std::fs::read_to_string(p).expect("read plain input");
            let out = dir.join(name);
            std::fs::write(&out, wrap_file(shape, svc, &text)).expect("write");
            out
        })
        .collect()
}

/// What a replay concluded, without what may differ by transport: the
/// count of physical lines (CRI pieces), detection wall times.
#[derive(Debug, PartialEq)]
struct Outcome {
    summary: BTreeMap<String, Value>,
    alerts: Vec<Value>,
    types: Value,
}

fn replay(inputs: &[PathBuf], work: &Path, extra: &[&str]) -> Outcome {
    std::fs::create_dir_all(work).expect("mkdir");
    let state = work.join("state");
    let alerts = work.join("alerts.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("replay")
        .args(inputs)
        .args(["--no-progress", "--summary-json", "--warmup", "30m"])
        .arg("--state")
        .arg(&state)
        .arg("--alerts")
        .arg(&alerts)
        .args(extra)
        .output()
        .expect("run faultline replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    let last = stderr.lines().last().unwrap_or("");
    let mut summary: BTreeMap<String, Value> =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary `{last}`: {e}"));
    summary.remove("lines");
    let alerts = std::fs::read_to_string(&alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("alert json");
            if let Some(o) = v.as_object_mut() {
                o.remove("detected_at");
            }
            v
        })
        .collect();
    let types = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["types", "list", "--json", "--state"])
        .arg(&state)
        .output()
        .expect("run faultline types list");
    assert!(types.status.success());
    let types = serde_json::from_slice(&types.stdout).expect("types json");
    Outcome {
        summary,
        alerts,
        types,
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plain_inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_generated_sample_gives_the_same_types_and_alerts_plain_and_in_every_shipper_shape() {
    let plain = plain_inputs(&root().join("examples/data/text"));
    assert_eq!(plain.len(), 5);
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = replay(&plain, &tmp.path().join("plain"), &[]);
    assert!(
        want.summary["errors"].as_u64().unwrap_or(0) > 500,
        "{:?}",
        want.summary
    );
    assert!(!want.alerts.is_empty());
    assert_shapes_alike(&plain, &SHAPES, tmp.path(), &want);
}

/// Replays `plain` wrapped in each of `shapes` and compares with `want`.
fn assert_shapes_alike(plain: &[PathBuf], shapes: &[&str], tmp: &Path, want: &Outcome) {
    for shape in shapes {
        let inputs = wrap_dir(plain, shape, &tmp.join(shape).join("in"));
        let got = replay(&inputs, &tmp.join(shape), &[]);
        assert_eq!(got.summary, want.summary, "{shape}: summary");
        assert_eq!(got.alerts, want.alerts, "{shape}: alerts");
        assert_eq!(got.types, want.types, "{shape}: types");
    }
}

#[test]
fn json_lines_inside_cri_and_fluent_bit_records_are_parsed_as_json() {
    let plain = vec![root().join("examples/data/logs.jsonl")];
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = replay(&plain, &tmp.path().join("plain"), &[]);
    assert!(want.summary["errors"].as_u64().unwrap_or(0) > 500);
    assert_shapes_alike(&plain, &["cri", "fluent-bit", "docker"], tmp.path(), &want);
}

#[test]
fn all_pods_in_one_shipped_file_give_the_same_types_as_one_file_per_service() {
    // A node's shipper sends every pod's lines in one stream, in time
    // order; each pod's trace lines must still join their own header.
    let plain = plain_inputs(&root().join("examples/data/text"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = replay(&plain, &tmp.path().join("plain"), &[]);
    let mut merged: Vec<(i64, usize, String)> = Vec::new();
    for (i, p) in plain.iter().enumerate() {
        let svc = p.file_stem().and_then(|s| s.to_str()).expect("stem");
        let text = std::fs::read_to_string(p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (n, (l, t)) in lines.iter().zip(times(&lines)).enumerate() {
            for r in wrap("fluent-bit", svc, l, t, n) {
                merged.push((t, i, r));
            }
        }
    }
    merged.sort_by_key(|(t, _, _)| *t);
    let switches = merged.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(
        switches > 1000,
        "the services interleave ({switches} switches)"
    );
    let file = tmp.path().join("node.log");
    let body: String = merged.iter().map(|(_, _, r)| format!("{r}\n")).collect();
    std::fs::write(&file, body).expect("write");
    let got = replay(std::slice::from_ref(&file), &tmp.path().join("merged"), &[]);
    assert_eq!(got.summary["errors"], want.summary["errors"]);
    assert_eq!(got.summary["records"], want.summary["records"]);
    let key = |v: &Value| -> Vec<(String, String, u64)> {
        let mut k: Vec<_> = v
            .as_array()
            .expect("types array")
            .iter()
            .map(|t| {
                (
                    t["fingerprint"].as_str().unwrap_or("").to_string(),
                    t["service"].as_str().unwrap_or("").to_string(),
                    t["count"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&got.types), key(&want.types));
    // Two threads read the one file the same way (no chunk is cut inside
    // it: any envelope line may have a trace open in another lane).
    let two = replay(&[file], &tmp.path().join("merged-2"), &["--threads", "2"]);
    assert_eq!(two, got);
}

#[test]
fn the_committed_examples_are_the_plain_ones_wrapped_and_replay_alike() {
    let dir = root().join("examples/shippers");
    let plain = plain_inputs(&dir.join("plain"));
    assert!(plain.len() >= 3);
    let write = std::env::var_os("FAULTLINE_WRITE_EXAMPLES").is_some();
    let tmp = tempfile::tempdir().expect("tempdir");
    let want = replay(&plain, &tmp.path().join("plain"), &[]);
    assert_eq!(
        want.summary["errors"].as_u64(),
        Some(5),
        "{:?}",
        want.summary
    );
    for shape in SHAPES {
        let made = wrap_dir(&plain, shape, &tmp.path().join(shape).join("in"));
        let committed: Vec<PathBuf> = made
            .iter()
            .map(|m| dir.join(shape).join(m.file_name().expect("name")))
            .collect();
        for (m, c) in made.iter().zip(&committed) {
            let m = std::fs::read_to_string(m).expect("read made");
            if write {
                std::fs::create_dir_all(c.parent().expect("parent")).expect("mkdir");
                std::fs::write(c, &m).expect("write example");
            }
            let c_text = std::fs::read_to_string(c).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (FAULTLINE_WRITE_EXAMPLES=1 writes it)",
                    c.display()
                )
            });
            assert_eq!(c_text, m, "{} is stale", c.display());
        }
        let got = replay(&committed, &tmp.path().join(shape), &[]);
        assert_eq!(got, want, "{shape}");
    }
}
