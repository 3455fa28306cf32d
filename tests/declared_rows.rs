//! Rows whose columns a directive declares (the W3C extended format's
//! `#Fields: …` and Zeek's tab-separated `#fields`), end to end through
//! `faultline fingerprint --raw` and `--online`.
//!
//! Masked as one text, a request row keeps nothing of its event: the
//! status and substatus are numbers, the path is a path, and every row of
//! the server became a handful of types told apart by the shape of the
//! client's agent. By the declared names, the method, the path's words
//! and the status stay and everything else is a value. The rows are
//! generated here, with invented servers, paths and agents; the directive
//! block repeats (a log rolled), once with another field list.

mod support;

use support::{assert_last_is_new, check_one_group_per_kind, fingerprint_groups as groups};

/// Method, path, status and substatus of each event.
const EVENTS: [(&str, &str, &str, &str); 5] = [
    ("GET", "/parcels/track", "200", "0"),
    ("GET", "/parcels/track", "404", "0"),
    ("POST", "/parcels/label", "201", "0"),
    ("POST", "/parcels/label", "500", "0"),
    ("POST", "/parcels/label", "500", "13"),
];
const AGENTS: [&str; 3] = [
    "Quillbrowser/9.2+(Tablet;+Fern+OS+4)",
    "depot-scanner/1.7",
    "-",
];

const LONG: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus time-taken";
const SHORT: &str = "date time cs-method cs-uri-stem sc-status sc-substatus time-taken";

fn directive(fields: &str, hour: usize) -> Vec<String> {
    vec![
        "#Software: Quill Web Server 3.1".to_string(),
        "#Version: 1.0".to_string(),
        format!("#Date: 2031-04-05 {hour:02}:00:00"),
        format!("#Fields: {fields}"),
    ]
}

/// Rows of every event under the long field list, a roll half way (to the
/// same list, or when `other` to the short one), and (when `cut`) the
/// first block's directive dropped, as a sample taken from the middle of a
/// file would have it. One event under two field lists is one type: a
/// run of value columns is one `<*>` in the template.
fn rows(cut: bool, other: bool) -> (Vec<String>, Vec<Option<usize>>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    if !cut {
        for l in directive(LONG, 6) {
            lines.push(l);
            kinds.push(None);
        }
    }
    for i in 0..300usize {
        if i == 150 {
            for l in directive(if other { SHORT } else { LONG }, 9) {
                lines.push(l);
                kinds.push(None);
            }
        }
        let k = (i * 7 / 3) % EVENTS.len();
        let (method, path, status, sub) = EVENTS[k];
        let time = format!(
            "2031-04-05 {:02}:{:02}:{:02}",
            6 + i / 60,
            i % 60,
            (i * 13) % 60
        );
        let taken = 3 + (i * 37) % 900;
        lines.push(if i < 150 || !other {
            format!(
                "{time} 10.2.0.{} {method} {path} {} 8443 {} 172.16.{}.{} {} {status} {sub} {taken}",
                1 + i % 2,
                if method == "GET" { format!("id=PX{:06}", i * 7919 % 999_983) } else { "-".into() },
                if i % 4 == 0 { "-".to_string() } else { format!("clerk{}", i % 5) },
                i % 200,
                (i * 3) % 250,
                AGENTS[i % AGENTS.len()],
            )
        } else {
            format!("{time} {method} {path} {status} {sub} {taken}")
        });
        kinds.push(Some(if other && i >= 150 {
            k + EVENTS.len()
        } else {
            k
        }));
    }
    (lines, kinds)
}

fn check(lines: &[String], kinds: &[Option<usize>], extra: &[&str]) {
    let g = groups(lines, extra);
    let (k, g): (Vec<usize>, Vec<String>) = kinds
        .iter()
        .zip(g)
        .filter_map(|(k, g)| k.map(|k| (k, g)))
        .unzip();
    check_one_group_per_kind(&k, &g, |k| {
        let (m, p, s, u) = EVENTS[k];
        format!("{m} {p} {s} {u}")
    });
}

#[test]
fn declared_rows_group_by_method_path_and_status() {
    let (lines, kinds) = rows(false, false);
    check(&lines, &kinds, &[]);
}

#[test]
fn declared_rows_group_by_method_path_and_status_online() {
    let (lines, kinds) = rows(false, false);
    check(&lines, &kinds, &["--online"]);
}

#[test]
fn rows_before_the_first_directive_take_the_one_declared_later() {
    let (lines, kinds) = rows(true, false);
    check(&lines, &kinds, &[]);
}

#[test]
fn after_a_roll_to_another_field_list_an_event_keeps_its_type() {
    let (lines, kinds) = rows(false, true);
    check(&lines, &kinds, &[]);
    check(&lines, &kinds, &["--online"]);
}

#[test]
fn a_status_seen_once_after_many_rows_is_a_type_of_its_own() {
    let (mut lines, _) = rows(false, false);
    lines.push(
        "2031-04-05 11:11:11 10.2.0.1 POST /parcels/label - 8443 - 172.16.1.9 depot-scanner/1.7 503 0 17"
            .to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}

#[test]
fn zeek_style_tab_rows_are_masked_by_their_declared_fields() {
    let mut lines = vec![
        "#separator \\x09".to_string(),
        "#fields\tts\tuid\tid.orig_h\tid.resp_p\tproto\tservice\tduration\tconn_state".to_string(),
    ];
    let states = ["SF", "REJ", "S0"];
    let mut kinds = vec![None, None];
    for i in 0..120usize {
        let s = (i * 5 / 2) % states.len();
        lines.push(format!(
            "1800000{:03}.{:06}\tC{:x}q\t10.9.{}.{}\t{}\ttcp\t-\t{}.{:03}\t{}",
            i,
            (i * 7777) % 1_000_000,
            0xabc000 + i * 977,
            i % 7,
            i % 250,
            [22, 443, 8080][i % 3],
            i % 4,
            (i * 31) % 1000,
            states[s]
        ));
        kinds.push(Some(s));
    }
    let g = groups(&lines, &[]);
    let (k, g): (Vec<usize>, Vec<String>) = kinds
        .iter()
        .zip(g)
        .filter_map(|(k, g)| k.map(|k| (k, g)))
        .unzip();
    check_one_group_per_kind(&k, &g, |k| states[k].to_string());
}
