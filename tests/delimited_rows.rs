//! Rows of unquoted fields whose separator is learned per source, end to
//! end through `faultline fingerprint --raw` and `--online`:
//! * a semicolon export (European style: decimal commas inside fields, a
//!   record-type and a severity column, a free-text column, a column count
//!   that depends on the record type);
//! * a comma export of a device (the time written as one column by newer
//!   firmware and as three by older, a list of readings whose length
//!   depends on the model);
//! * a pipe layout `time|LEVEL|source|message` whose message has commas.
//!
//! Each groups by its record type and event, not by unit, time form,
//! reading count or value. Prose with commas in it is not read as rows. The
//! rows are generated here, with words nobody's masking rules know.

mod support;

use support::{assert_last_is_new, check_one_group_per_kind, fingerprint_groups as groups};

/// Record type, severity, event text, and what follows the text.
const SEMI: [(&str, &str, &str, &str); 6] = [
    ("FILL", "INFO", "Filling started", "rate"),
    ("FILL", "INFO", "Filling stopped", "volume"),
    ("FILL", "WARN", "Filling aborted", "volume"),
    ("VALVE", "WARN", "Valve sticks", "position"),
    ("ALARM", "ERROR", "Overflow probe tripped", ""),
    ("METER", "INFO", "Meter snapshot", "readings"),
];
const TANKS: [&str; 4] = ["T1", "T2", "T3B", "T14"];
const OPERATORS: [&str; 5] = ["kowa", "brant", "sif", "dunne", "oyel"];

fn semicolon_rows() -> (Vec<String>, Vec<usize>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..240usize {
        let e = (i * 5) % SEMI.len();
        let (class, level, text, tail) = SEMI[e];
        let extra = match tail {
            "rate" => format!(";{},{} l/min", 10 + i % 31, i % 10),
            "volume" => format!(";{},{} l", 100 + (i * 7) % 900, i % 10),
            "position" => format!(";{} %", i % 100),
            "readings" => format!(";{};{},{};{},{}", 5000 + i, i % 9, i % 7, i % 5, i % 3),
            _ => String::new(),
        };
        lines.push(format!(
            "{:02}.03.2031;{:02}:{:02}:{:02};{};{};{};{};{}{}",
            1 + i % 28,
            i % 24,
            (i * 7) % 60,
            (i * 13) % 60,
            TANKS[(i / 3) % TANKS.len()],
            OPERATORS[(i * 7) % OPERATORS.len()],
            class,
            level,
            text,
            extra,
        ));
        kinds.push(e);
    }
    (lines, kinds)
}

/// Record type and, for some, a state column.
const DEVICE: [(&str, &str); 6] = [
    ("CYC", ""),
    ("DOOR", "open"),
    ("DOOR", "shut"),
    ("MODE", "auto"),
    ("MODE", "manual"),
    ("FLT", ""),
];
/// Units of several naming schemes: a per-line column the layout masks.
const PRESSES: [&str; 5] = ["PRESS-4", "PRESS-11", "LATHE-2", "MILL-7", "PRESS-9"];

fn comma_rows() -> (Vec<String>, Vec<usize>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..240usize {
        let e = (i * 7) % DEVICE.len();
        let (class, state) = DEVICE[e];
        // Older firmware writes year, day of year and hhmm as three columns.
        let time = if i % 3 == 0 {
            format!("2031,{:03},{:02}{:02}", 60 + i % 30, i % 24, i % 60)
        } else {
            format!(
                "2031-03-{:02}T{:02}:{:02}:{:02}Z",
                1 + i % 28,
                i % 24,
                i % 60,
                i % 59
            )
        };
        let unit = PRESSES[(i / 2) % PRESSES.len()];
        let rest = match class {
            "CYC" => {
                let n = [4, 6, 9][i % 3];
                (0..n)
                    .map(|k| format!("{}.{}", (i + k) % 90, k))
                    .collect::<Vec<_>>()
                    .join(",")
            }
            "FLT" => format!("code,{},count,{}", 100 + i % 50, i % 9),
            _ => format!("{state},since,{}", i % 600),
        };
        lines.push(format!("{time},{unit},{class},{rest}"));
        kinds.push(e);
    }
    (lines, kinds)
}

const PIPE: [(&str, &str, &str); 5] = [
    (
        "INFO",
        "Kiosk.Door",
        "door {} opened by badge {}, visitor lane",
    ),
    (
        "INFO",
        "Kiosk.Door",
        "door {} opened by badge {}, staff lane",
    ),
    (
        "WARN",
        "Kiosk.Door",
        "door {} held open for {} s, alarm raised",
    ),
    ("INFO", "Kiosk.Printer", "label {} printed for badge {}"),
    (
        "ERROR",
        "Kiosk.Printer",
        "printer {} out of labels, queue {} waiting",
    ),
];

fn pipe_rows() -> (Vec<String>, Vec<usize>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..200usize {
        let e = (i * 3) % PIPE.len();
        let (level, source, text) = PIPE[e];
        let msg = text.replacen("{}", &format!("G{}", i % 6), 1).replacen(
            "{}",
            &format!("{}", 4000 + i * 37),
            1,
        );
        lines.push(format!(
            "2031-03-{:02} {:02}:{:02}:{:02}.{:04}|{level}|{source}|{msg}",
            1 + i % 28,
            i % 24,
            i % 60,
            (i * 3) % 60,
            i * 17 % 10000
        ));
        kinds.push(e);
    }
    (lines, kinds)
}

fn check(lines: &[String], kinds: &[usize], extra: &[&str]) {
    let g = groups(lines, extra);
    check_one_group_per_kind(kinds, &g, |k| format!("event {k}"));
}

#[test]
fn a_semicolon_export_groups_by_record_type_and_event() {
    let (lines, kinds) = semicolon_rows();
    check(&lines, &kinds, &[]);
}

#[test]
fn a_semicolon_export_groups_by_record_type_and_event_online() {
    let (lines, kinds) = semicolon_rows();
    check(&lines, &kinds, &["--online"]);
}

#[test]
fn a_device_export_with_a_split_time_and_varying_readings_groups_by_record() {
    let (lines, kinds) = comma_rows();
    check(&lines, &kinds, &[]);
}

#[test]
fn a_device_export_with_a_split_time_and_varying_readings_groups_by_record_online() {
    let (lines, kinds) = comma_rows();
    check(&lines, &kinds, &["--online"]);
}

#[test]
fn a_pipe_layout_groups_by_level_source_and_message() {
    let (lines, kinds) = pipe_rows();
    check(&lines, &kinds, &[]);
}

#[test]
fn a_new_record_type_after_many_rows_is_a_type_of_its_own() {
    let (mut lines, _) = semicolon_rows();
    lines.push("09.03.2031;10:11:12;T2;sif;PUMP;ERROR;Pump seized".to_string());
    assert_last_is_new(&groups(&lines, &[]));
}

#[test]
fn prose_with_commas_is_not_read_as_rows() {
    let lines: Vec<String> = (0..120)
        .map(|i| match i % 3 {
            0 => format!("spool {i} full, writes paused, operator paged"),
            1 => format!("cache warmed, {i} entries, no misses"),
            _ => format!("retrying upload {i}, attempt 2"),
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .env_remove("FAULTLINE_CONFIG")
        .args(["fingerprint", "--raw", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut stdin = c.stdin.take().unwrap();
            stdin.write_all(lines.join("\n").as_bytes())?;
            drop(stdin);
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), lines.len());
    assert!(
        !text.contains("\\t"),
        "a line of prose was rewritten as a row: {text}"
    );
}
