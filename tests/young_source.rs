//! A source's first lines, end to end through `faultline fingerprint --raw
//! --online` (each line labelled with the id the stream hands it on
//! arrival): an event whose value is an identifier (a berth code, an
//! operator's login) has one id from its first line, although its second
//! value arrives before the third generalises the position; two events
//! that differ in a plain word (`opened` / `closed`) keep two ids. The
//! lines are generated here, with words nobody's masking rules know.

mod support;

use support::{check_one_group_per_kind, fingerprint_groups as groups};

const BERTHS: [&str; 5] = ["north-a", "west-c", "east-b", "south-d", "quay-f"];
const LOGINS: [&str; 6] = [
    "lena.berg",
    "tom.fey",
    "ivo.sand",
    "ana.lis",
    "kai.moe",
    "eli.dunn",
];

/// Four kinds in turn: two with an identifier, two states of one hatch.
fn lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..120usize {
        let k = i % 4;
        out.push(match k {
            0 => format!(
                "crane assigned to berth {} for vessel loading",
                BERTHS[(i / 4) % BERTHS.len()]
            ),
            1 => format!(
                "shift handover signed by {} at gate",
                LOGINS[(i / 4 + 1) % LOGINS.len()]
            ),
            2 => "hatch opened on deck".to_string(),
            _ => "hatch closed on deck".to_string(),
        });
        kinds.push(k);
    }
    (out, kinds)
}

#[test]
fn a_young_sources_identifier_events_have_one_id_from_their_first_line_online() {
    let (lines, kinds) = lines();
    check_one_group_per_kind(&kinds, &groups(&lines, &["--online"]), |k| {
        format!("kind {k}")
    });
}

#[test]
fn a_young_sources_events_group_the_same_offline() {
    let (lines, kinds) = lines();
    check_one_group_per_kind(&kinds, &groups(&lines, &[]), |k| format!("kind {k}"));
}
