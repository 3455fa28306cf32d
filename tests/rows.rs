//! Rows of quoted fields end to end, through `faultline fingerprint --raw`:
//! an export written as CSV (every field quoted, commas and doubled quotes
//! inside fields) groups by its event and state columns, not as one type,
//! and not as one type per file name. The rows are generated here, with
//! words nobody's masking rules know.

mod support;

use support::{check_one_group_per_kind, fingerprint_groups as groups};

const EVENTS: [&str; 6] = [
    "LedgerOpened",
    "LedgerSealed",
    "EntryMoved",
    "EntryStruck",
    "BinderShared",
    "BinderPulled",
];
const STATES: [&str; 2] = ["Granted", "Refused"];
const PEOPLE: [&str; 5] = [
    "orla.venn@quill.test",
    "t.marsh@quill.test",
    "ines@annex.test",
    "b.oduya@quill.test",
    "svc-copy@quill.test",
];
/// Free text with commas, doubled quotes and spaces: a name per row.
const OBJECTS: [&str; 7] = [
    "/vault/North wing/minutes, draft 3.txt",
    "/vault/South/\"\"final\"\" figures.ods",
    "/annex/plans (old)/roof, east side.pdf",
    "/vault/North wing/visitor log.txt",
    "/annex/letters/to the board, v2.doc",
    "/vault/misc/untitled scan.png",
    "/annex/plans/cellar; pumps.pdf",
];

/// Rows and each row's true kind (event × state).
fn rows() -> (Vec<String>, Vec<(usize, usize)>) {
    let mut lines = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..300usize {
        let e = (i * 5) % EVENTS.len();
        let s = usize::from(i % 7 == 3);
        lines.push(format!(
            r#""2031-04-0{}T0{}:{:02}:{:02}Z","{}","{}","{}","10.{}.{}.{}","{}""#,
            1 + i % 8,
            i % 10,
            (i / 60) % 60,
            i % 60,
            PEOPLE[(i * 3) % PEOPLE.len()],
            EVENTS[e],
            OBJECTS[(i * 11) % OBJECTS.len()],
            i % 250,
            (i * 7) % 250,
            (i * 13) % 250,
            STATES[s],
        ));
        kinds.push((e, s));
    }
    (lines, kinds)
}

#[test]
fn rows_of_quoted_fields_group_by_their_event_and_state_columns() {
    let (lines, kinds) = rows();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), |k: (usize, usize)| {
        format!("{} {}", EVENTS[k.0], STATES[k.1])
    });
}

#[test]
fn an_event_word_seen_once_after_many_rows_is_a_type_of_its_own() {
    let (mut lines, _) = rows();
    lines.push(
        r#""2031-04-09T09:09:09Z","ines@annex.test","LedgerBurned","/vault/misc/untitled scan.png","10.1.2.3","Granted""#
            .to_string(),
    );
    let g = groups(&lines, &[]);
    let last = g.last().unwrap();
    assert!(
        g[..g.len() - 1].iter().all(|x| x != last),
        "the new event joined a known type"
    );
}
