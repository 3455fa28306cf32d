//! Rows of fields glued by `|` (a controller's event export:
//! `date|time|site|unit|RECORD|state|value|…`, no spaces beside the
//! separators, a column count that depends on the record type), end to end
//! through `faultline fingerprint --raw` and `--online`.
//!
//! Masked as one text, the glued fields after the opening date and time
//! read as one composite value and every row of a record type became one
//! type whatever its state. Each row groups by its record type and state,
//! not by site, unit, time or amount. The rows are generated here, with
//! words nobody's masking rules know.

mod support;

use support::{assert_last_is_new, check_one_group_per_kind, fingerprint_groups as groups};

/// Record type, its two states, and what follows the state.
const KINDS: [(&str, [&str; 2], &str); 3] = [
    ("RINSE_START", ["KALTWASSER", "HEISSWASSER"], "minutes"),
    ("HATCH", ["VERSIEGELT", "GEÖFFNET"], ""),
    ("TILL", ["GENOMMEN", "ABGELEHNT"], "amount"),
];
const SITES: [&str; 3] = ["DEPOT-NW-1", "DEPOT-NW-4", "DEPOT-SUD-2"];

fn rows() -> (Vec<String>, Vec<(usize, usize)>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..240usize {
        let k = i % KINDS.len();
        let s = (i / 3) % 2;
        let (record, states, tail) = KINDS[k];
        let extra = match tail {
            "minutes" => format!("|{}|{} min", [30, 40, 60][i % 3], 20 + (i * 7) % 50),
            "amount" => format!("|{},{:02} kr", 5 + i % 9, (i * 25) % 100),
            _ => String::new(),
        };
        lines.push(format!(
            "2031-03-{:02}|{:02}:{:02}:{:02}|{}|M{:02}|{}|{}{}",
            1 + i % 28,
            6 + i % 12,
            (i * 7) % 60,
            (i * 13) % 60,
            SITES[(i / 6) % SITES.len()],
            1 + (i * 11) % 12,
            record,
            states[s],
            extra,
        ));
        kinds.push((k, s));
    }
    (lines, kinds)
}

fn name(k: (usize, usize)) -> String {
    format!("{} {}", KINDS[k.0].0, KINDS[k.0].1[k.1])
}

#[test]
fn rows_glued_by_pipes_group_by_their_record_type_and_state() {
    let (lines, kinds) = rows();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), name);
}

#[test]
fn rows_glued_by_pipes_group_by_their_record_type_and_state_online() {
    let (lines, kinds) = rows();
    check_one_group_per_kind(&kinds, &groups(&lines, &["--online"]), name);
}

#[test]
fn a_state_seen_once_after_many_rows_is_a_type_of_its_own() {
    let (mut lines, _) = rows();
    lines.push("2031-03-29|09:09:09|DEPOT-NW-4|M03|HATCH|AUFGEBROCHEN".to_string());
    assert_last_is_new(&groups(&lines, &[]));
}
