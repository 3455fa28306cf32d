//! Records whose fields come from a map, end to end through `faultline
//! fingerprint --raw` and `--online`:
//! - JSON lines whose key set varies with the event and the child logger
//!   (a bound `site` on some loggers only, an error object on failures),
//!   whose string values are names, free text with quotes and ids: they
//!   group by their message and the keys of their event;
//! - the same lines inside a shipper's envelope (`log` beside `stream` and
//!   the orchestrator's metadata);
//! - lines with a metadata run before the level (`time k=v k=v [level]
//!   message`) whose keys depend on the process that logged: they group by
//!   the message, not by which keys the run carries.
//!
//! The lines are generated here, with keys and words nobody's masking rules
//! know.

mod support;

use support::{assert_last_is_new, check_groups_by_event, fingerprint_groups as groups};

/// Events of the JSON source: the message and its own keys.
const JSON_EVENTS: [&str; 6] = [
    r#""crate":"{name}","weight":{n},"msg":"crate sealed""#,
    r#""crate":"{name}","by":"{word}","msg":"crate opened""#,
    r#""belt":{n},"note":"{text}","msg":"belt stalled""#,
    r#""belt":{n},"msg":"belt resumed""#,
    r#""sheet":"{name}","copies":{n},"msg":"label printed""#,
    r#""err":{"kind":"Jam","detail":"roller {n} stuck","code":"E{n}"},"msg":"picker failed""#,
];

const NAMES: [&str; 7] = [
    "Blue Heron",
    "K-77",
    "oak crate \"large\"",
    "Elm",
    "pallet 9/3",
    "Smith's",
    "Ümlaut Box",
];
const WORDS: [&str; 5] = ["dock", "gate", "yard", "ramp", "bay"];
const TEXTS: [&str; 4] = [
    "left side, ask \"Mo\" first",
    "again!",
    "see ticket 42",
    "belt wet after rain",
];

fn json_line(i: usize, e: usize) -> String {
    let body = JSON_EVENTS[e]
        .replace("{name}", &NAMES[i % NAMES.len()].replace('"', "\\\""))
        .replace("{word}", WORDS[i % WORDS.len()])
        .replace("{text}", &TEXTS[i % TEXTS.len()].replace('"', "\\\""))
        .replace("{n}", &(i * 37 % 9001).to_string());
    // A child logger binds `site` on some lines; the host and process vary.
    let site = if i.is_multiple_of(3) {
        format!(r#""site":"s{}","#, i % 11)
    } else {
        String::new()
    };
    format!(
        r#"{{"level":{},"time":{},"pid":{},"hostname":"node-{:x}",{site}{body}}}"#,
        [30, 40, 50][e % 3],
        1_900_000_000_000u64 + i as u64 * 977,
        100 + i % 7,
        i * 7919 % 65536,
    )
}

fn json_lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = (i * 5) % JSON_EVENTS.len();
        out.push(json_line(i, e));
        // `site` is bound by the logger, not the event: an event with and
        // without it is one type only when the key is learned as context,
        // which the map-order test does not claim here; each kind below is
        // the event and whether `site` was bound.
        kinds.push(e * 2 + usize::from(i.is_multiple_of(3)));
    }
    (out, kinds)
}

fn json_names() -> Vec<&'static str> {
    JSON_EVENTS.iter().flat_map(|e| [*e, *e]).collect()
}

#[test]
fn json_lines_group_by_message_and_event_keys_not_by_values() {
    let (lines, kinds) = json_lines();
    check_groups_by_event(&lines, &kinds, &json_names(), &[]);
}

#[test]
fn json_lines_group_by_message_and_event_keys_not_by_values_online() {
    let (lines, kinds) = json_lines();
    check_groups_by_event(&lines, &kinds, &json_names(), &["--online"]);
}

#[test]
fn a_json_line_in_a_shippers_envelope_groups_by_its_message() {
    let (lines, kinds) = json_lines();
    let wrapped: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                r#"{{"log":"{}\n","stream":"stdout","kubernetes":{{"pod_name":"yard-{i:x}","namespace_name":"ops"}}}}"#,
                l.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    check_groups_by_event(&wrapped, &kinds, &json_names(), &[]);
}

#[test]
fn a_json_message_seen_once_after_many_lines_is_a_type_of_its_own() {
    let (mut lines, _) = json_lines();
    // A near-new message: one word apart from a known one.
    lines.push(
        r#"{"level":30,"time":1900000999999,"pid":101,"hostname":"node-1","belt":4,"msg":"belt snapped"}"#
            .to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}

/// Events of the metadata-run source, after the level.
const RUN_EVENTS: [&str; 6] = [
    "[info] Parcel {n} scanned at door {n}",
    "[info] GET /lockers/{n}/doors",
    "[notice] Door {n} left open for {n}s",
    "[notice] Door {n} not locked after {n}s",
    "[warning] Courier app slow: sync took {n}ms",
    "[error] Lock bus timeout on panel {n}",
];

/// Metadata keys a line may carry, by the process that logged it.
const META: [&str; 4] = [
    "visit_id=vX{n}",
    "courier_id=C{n}",
    "locker=L{n}",
    "session=q{n}z",
];

fn run_lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = (i * 7) % RUN_EVENTS.len();
        let mut meta: Vec<String> = (0..4)
            .filter(|k| (i / 3 + k) % 5 < 2 + k % 2)
            .map(|k| META[k].replace("{n}", &(i * 131 % 977 + k).to_string()))
            .collect();
        meta.push(format!("pid=<0.{}.0>", i * 17 % 9999));
        out.push(format!(
            "{:02}:{:02}:{:02}.{:03} {} {}",
            i % 24,
            i % 60,
            (i * 7) % 60,
            i % 1000,
            meta.join(" "),
            RUN_EVENTS[e].replace("{n}", &(i * 13 % 97).to_string())
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn metadata_runs_group_by_message_not_by_their_keys() {
    let (lines, kinds) = run_lines();
    check_groups_by_event(&lines, &kinds, &RUN_EVENTS, &[]);
}

#[test]
fn metadata_runs_group_by_message_not_by_their_keys_online() {
    let (lines, kinds) = run_lines();
    check_groups_by_event(&lines, &kinds, &RUN_EVENTS, &["--online"]);
}

#[test]
fn a_metadata_run_message_seen_once_after_many_lines_is_a_type_of_its_own() {
    let (mut lines, _) = run_lines();
    lines
        .push("23:59:59.999 locker=L5 pid=<0.1.0> [error] Lock bus shorted on panel 3".to_string());
    assert_last_is_new(&groups(&lines, &[]));
}
