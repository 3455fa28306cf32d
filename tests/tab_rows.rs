//! Rows of tab-separated fields end to end, through `faultline fingerprint
//! --raw` and `--online`: a journal exported as TSV (empty fields, a value
//! with a space inside, a column of two site names on every event alike, an
//! operator and an acknowledgement flag after the free text) groups by its
//! class and event, not by site, operator or flag. The rows are generated
//! here, with words nobody's masking rules know.

mod support;

use support::{check_one_group_per_kind, fingerprint_groups as groups};

/// Class and free text of each event (the class follows the event).
const EVENTS: [(&str, &str); 8] = [
    ("GATE", "Boom arm raised"),
    ("GATE", "Boom arm lowered"),
    ("GATE", "Boom arm struck by vehicle"),
    ("PAY", "Coin hopper empty"),
    ("PAY", "Note reader jammed"),
    ("PAY", "Receipt roll low"),
    ("POWER", "Mains lost, on battery"),
    ("POWER", "Mains restored"),
];
const SITES: [&str; 2] = ["Quay Road", "Mill Lane"];
const LANES: [&str; 5] = ["Lane 1", "Lane 2", "Exit", "Entry A", ""];
const OPERATORS: [&str; 6] = ["", "kiosk", "Tove R.", "Ib M.", "Sol P.", ""];
const ACKS: [&str; 3] = ["Y", "N", ""];

/// Rows (a header row first, as exports write it) and each row's event.
fn rows() -> (Vec<String>, Vec<usize>) {
    let mut lines = vec!["Date\tTime\tSite\tLane\tClass\tText\tOperator\tAck".to_string()];
    let mut kinds = vec![usize::MAX];
    for i in 0..320usize {
        let e = (i * 3) % EVENTS.len();
        let (class, text) = EVENTS[e];
        lines.push(format!(
            "2031-05-{:02}\t{:02}:{:02}:{:02}\t{}\t{}\t{}\t{}\t{}\t{}",
            1 + i % 28,
            i % 24,
            (i * 7) % 60,
            i % 60,
            SITES[(i / 2) % 2],
            LANES[(i * 7) % LANES.len()],
            class,
            text,
            OPERATORS[(i * 5) % OPERATORS.len()],
            ACKS[(i / 3) % ACKS.len()],
        ));
        kinds.push(e);
    }
    (lines, kinds)
}

fn check(extra: &[&str]) {
    let (lines, kinds) = rows();
    let g = groups(&lines, extra);
    // The header row is a kind of its own.
    check_one_group_per_kind(&kinds, &g, |k: usize| match EVENTS.get(k) {
        Some((c, t)) => format!("{c} {t}"),
        None => "the header row".to_string(),
    });
}

#[test]
fn rows_of_tab_separated_fields_group_by_their_class_and_text() {
    check(&[]);
}

#[test]
fn rows_of_tab_separated_fields_group_by_their_class_and_text_online() {
    check(&["--online"]);
}

#[test]
fn an_event_text_seen_once_after_many_rows_is_a_type_of_its_own() {
    let (mut lines, _) = rows();
    lines.push(
        "2031-05-09\t09:09:09\tQuay Road\tExit\tGATE\tBoom arm snapped\tkiosk\tN".to_string(),
    );
    let g = groups(&lines, &[]);
    let last = g.last().unwrap();
    assert!(
        g[..g.len() - 1].iter().all(|x| x != last),
        "the new event joined a known type"
    );
}
