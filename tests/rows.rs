//! Rows of quoted fields end to end, through `faultline fingerprint --raw`:
//! an export written as CSV (every field quoted, commas and doubled quotes
//! inside fields) groups by its event and state columns, not as one type,
//! and not as one type per file name. The rows are generated here, with
//! words nobody's masking rules know.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::Command;

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

fn groups(lines: &[String], extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
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

fn check_one_group_per_kind(kinds: &[(usize, usize)], groups: &[String]) {
    let mut per_kind: HashMap<(usize, usize), HashSet<&str>> = HashMap::new();
    let mut per_group: HashMap<&str, HashSet<(usize, usize)>> = HashMap::new();
    for (k, g) in kinds.iter().zip(groups) {
        per_kind.entry(*k).or_default().insert(g);
        per_group.entry(g).or_default().insert(*k);
    }
    for (k, gs) in &per_kind {
        assert_eq!(
            gs.len(),
            1,
            "{} {} split into {gs:?}",
            EVENTS[k.0],
            STATES[k.1]
        );
    }
    for (g, ks) in &per_group {
        assert_eq!(ks.len(), 1, "group {g} merges kinds {ks:?}");
    }
}

#[test]
fn rows_of_quoted_fields_group_by_their_event_and_state_columns() {
    let (lines, kinds) = rows();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]));
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
