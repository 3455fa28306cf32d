//! The learned layout end to end, through `faultline fingerprint --raw`:
//! a header column that varies from line to line (a host) does not split
//! an error type, offline or as a stream labels on arrival, while a stream
//! without a header keeps the words that tell its types apart. The streams
//! are generated here with names nobody's masking rules know.

mod support;

use support::{check_one_group_per_kind, fingerprint_groups as groups};

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

#[test]
fn a_host_column_does_not_split_a_type_offline() {
    let (lines, kinds) = header_stream();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), |k: usize| {
        format!("kind {}", KINDS[k])
    });
}

#[test]
fn a_host_column_does_not_split_a_type_when_labelled_on_arrival() {
    let (lines, kinds) = header_stream();
    check_one_group_per_kind(&kinds, &groups(&lines, &["--online"]), |k: usize| {
        format!("kind {}", KINDS[k])
    });
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

// ---- The layout in the stream (`replay`, and `run`, which shares its
// engine): types minted before a context's layout is learned are re-keyed
// onto the laid-out ones, so a host seen first after the warm-up is no
// new type.

fn ecs(minute: u32, second: u32, message: &str) -> String {
    format!(
        "{{\"@timestamp\":\"2026-11-02T{:02}:{:02}:{:02}Z\",\"log.level\":\"ERROR\",\"message\":\"{message}\",\"service.name\":\"depot\"}}\n",
        10 + minute / 60,
        minute % 60,
        second
    )
}

/// Errors `<host> <kind>`: in the 30 warm-up minutes the first five kinds
/// come from two hosts (the host varies under the same message: a
/// per-line field) and the last five from one; after it the last five come
/// from the other host too, and one kind nobody saw before.
fn stream_with_a_host_header() -> String {
    let mut s = String::new();
    for m in 0..30u32 {
        for (k, kind) in KINDS.iter().enumerate() {
            // Each host in turn for two minutes: a host's first lines
            // recur before the other host's come, so before the layout the
            // two hosts' lines are two types (a second host seen after a
            // first seen once would take its id at once: a young source's
            // sibling, `Learner::sibling_id`).
            let host = if k < 5 {
                HOSTS[(m as usize / 2) % 2]
            } else {
                HOSTS[0]
            };
            let msg = kind.replace("{}", &format!("{}", 1000 + m * 10 + k as u32));
            s.push_str(&ecs(m, k as u32, &format!("{host} {msg}")));
        }
    }
    for m in 40..45u32 {
        for (k, kind) in KINDS.iter().enumerate().skip(5) {
            let msg = kind.replace("{}", &format!("{}", 1000 + m * 10 + k as u32));
            s.push_str(&ecs(m, k as u32, &format!("{} {msg}", HOSTS[1])));
        }
    }
    s.push_str(&ecs(
        46,
        0,
        &format!("{} fan tray 7 reports no airflow", HOSTS[1]),
    ));
    s
}

fn replay_in(
    inputs: &[std::path::PathBuf],
    state: Option<&std::path::Path>,
) -> faultline::pipeline::ReplaySummary {
    use faultline::alert::{AlertSink, MemorySink};
    use faultline::config::{Config, Dur};
    use faultline::pipeline::{self, BaselineOptions, ReplayOptions};
    let opts = ReplayOptions {
        inputs: inputs
            .iter()
            .map(|p| faultline::source::Input::Path(p.clone()))
            .collect(),
        state_dir: state.map(|p| p.to_path_buf()),
        baseline: BaselineOptions {
            warmup: Some("30m".parse::<Dur>().unwrap()),
            baseline: None,
        },
        ..ReplayOptions::default()
    };
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemorySink::default())];
    pipeline::replay(
        &Config::default(),
        &opts,
        sinks,
        std::sync::Arc::new(faultline::metrics::Metrics::default()),
    )
    .unwrap()
}

fn novel_samples(s: &faultline::pipeline::ReplaySummary) -> Vec<String> {
    s.alerts
        .iter()
        .filter(|a| a.kind == faultline::alert::Kind::Novel)
        .map(|a| a.sample.clone().unwrap_or_default())
        .collect()
}

#[test]
fn a_replay_does_not_call_a_known_message_from_another_host_new_but_still_alerts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.jsonl");
    std::fs::write(&p, stream_with_a_host_header()).unwrap();
    let s = replay_in(&[p], None);
    let novel = novel_samples(&s);
    assert_eq!(novel.len(), 1, "{novel:?}");
    assert!(novel[0].contains("fan tray"), "{novel:?}");
    // One type per kind: those minted per host before the layout was
    // learned are aliases of it now.
    let b = &s.state.baseline;
    let kinds: std::collections::HashSet<_> = b.types.keys().map(|f| b.canonical(*f)).collect();
    assert_eq!(
        kinds.len(),
        KINDS.len() + 1,
        "{:?}",
        b.types.values().map(|t| &t.template).collect::<Vec<_>>()
    );
}

/// The host-header stream cut after `at` lines into two files in `dir`.
fn cut_stream(dir: &std::path::Path, at: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let text = stream_with_a_host_header();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(at);
    let pa = dir.join("a.jsonl");
    let pb = dir.join("b.jsonl");
    std::fs::write(&pa, a.join("\n") + "\n").unwrap();
    std::fs::write(&pb, b.join("\n") + "\n").unwrap();
    (pa, pb)
}

#[test]
fn a_replay_cut_in_two_with_a_state_gives_what_one_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let text = stream_with_a_host_header();
    // Cut inside the layout's learning (before its 64th line).
    let (pa, pb) = cut_stream(dir.path(), 50);
    let state = dir.path().join("state");
    let first = replay_in(std::slice::from_ref(&pa), Some(&state));
    let second = replay_in(&[pa, pb], Some(&state));
    let whole_dir = tempfile::tempdir().unwrap();
    let pw = whole_dir.path().join("w.jsonl");
    std::fs::write(&pw, &text).unwrap();
    let whole = replay_in(&[pw], None);
    let mut cut = novel_samples(&first);
    cut.extend(novel_samples(&second));
    assert_eq!(cut, novel_samples(&whole));
    assert_eq!(
        second.state.baseline.layouts, whole.state.baseline.layouts,
        "the layout learner continued from the checkpoint"
    );
    let ids = |s: &faultline::pipeline::ReplaySummary| {
        let mut v: Vec<_> = s.state.baseline.types.keys().copied().collect();
        v.sort();
        v
    };
    assert_eq!(ids(&second), ids(&whole));
}

#[test]
fn a_type_snoozed_before_its_context_learns_a_layout_stays_snoozed_when_its_hosts_fold() {
    let dir = tempfile::tempdir().unwrap();
    // Before the layout's first learning (32 templates): one type per host.
    let (pa, pb) = cut_stream(dir.path(), 30);
    let state = dir.path().join("state");
    let first = replay_in(std::slice::from_ref(&pa), Some(&state));
    let full: Vec<_> = first
        .state
        .baseline
        .types
        .values()
        .filter(|t| t.template.contains("is full"))
        .map(|t| t.fingerprint)
        .collect();
    assert_eq!(full.len(), 2, "one type per host before the layout");
    // As `faultline types mute FP --count 1000` does (this process holds
    // the state's writer, so through the same library call).
    let mut st = faultline::state::State::load_writable(&state)
        .unwrap()
        .unwrap();
    for fp in &full {
        let command = faultline::api::control::Command {
            fingerprint: *fp,
            action: faultline::api::control::Action::Snooze {
                until: None,
                count: Some(1000),
            },
        };
        faultline::api::control::edit(&mut st, &command, 0).unwrap();
    }
    st.save(&state).unwrap();
    assert_eq!(st.snoozes.len(), 2);
    let second = replay_in(&[pa, pb], Some(&state));
    let base = &second.state.baseline;
    let now: std::collections::BTreeSet<_> = full.iter().map(|f| base.canonical(*f)).collect();
    assert_eq!(now.len(), 1, "the layout folded the hosts' types into one");
    let id = *now.iter().next().unwrap();
    // The folded type keeps the id of one of them (the learner's heir);
    // the other is an alias now, whose snooze must not stay behind.
    assert!(
        full.iter().any(|f| base.canonical(*f) != *f),
        "one host's id is an alias now"
    );
    assert!(base.get(id).unwrap().muted, "the mute went with the type");
    assert_eq!(
        second.state.snoozes.keys().copied().collect::<Vec<_>>(),
        vec![id],
        "one snooze, under the id occurrences now count on"
    );
}
