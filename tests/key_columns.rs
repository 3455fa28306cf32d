//! Lines of `Key: value` columns padded with spaces, end to end through
//! `faultline fingerprint --raw` and `--online`: a console of a plant
//! writes a station, a unit (a name of one to three words), an event of a
//! small set and the keys of that event. The lines group by station, event
//! and the event's keys, not by unit or crew. The lines are generated
//! here, with keys and words nobody's masking rules know.

mod support;

use support::{assert_last_is_new, check_groups_by_event, fingerprint_groups as groups};

/// Units and crews keep bringing names (a column of two or three recurring
/// kinds is a closed set and stays: the unit test beside `keyed.rs`).
const UNITS: [&str; 14] = [
    "GRAY OWL",
    "RED FOX II",
    "ELM",
    "BLUE HERON",
    "ASH",
    "OLD MILL 2",
    "OAK",
    "LOW WEIR",
    "TEAL",
    "WREN",
    "LARK",
    "KITE",
    "ROOK",
    "SWIFT",
];
/// Events: station, event and its own columns (`{}`: a crew or a reading).
const EVENTS: [&str; 6] = [
    "Station: WEIR  Unit: {u}  Event: GATE OPEN   Crew: {}",
    "Station: WEIR  Unit: {u}  Event: GATE SHUT   Crew: {}",
    "Station: DAM   Unit: {u}  Event: PUMP TRIP   Cause: low head  Last level: {} m",
    "Station: DAM   Unit: {u}  Event: PUMP RESET  Reset by: panel",
    "Station: WEIR  Event: FLOW REPORT  Rate: {} m3s  Gauge: {}",
    "Station: DAM   Unit: {u}  Event: SLUICE JAM  Crew: {}  Depth: {} m",
];
const CREWS: [&str; 10] = ["ab", "kt", "mo", "rv", "jd", "pq", "lw", "sn", "ey", "hu"];
const GAUGES: [&str; 11] = [
    "north", "south", "inlet", "outlet", "spill", "mill", "ford", "bend", "gap", "lock", "quay",
];

fn lines() -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..360usize {
        let e = (i * 7) % EVENTS.len();
        let mut l = EVENTS[e].replace("{u}", &format!("{:<12}", UNITS[(i / 2) % UNITS.len()]));
        for v in [
            CREWS[(i + i / 6) % CREWS.len()].to_string(),
            GAUGES[i % GAUGES.len()].to_string(),
        ] {
            let v = if l.contains("Rate: {}") || l.contains("level: {}") || l.contains("Depth: {}")
            {
                format!("{}.{}", i % 17, i % 10)
            } else {
                v
            };
            l = l.replacen("{}", &v, 1);
        }
        out.push(format!(
            "Seen: 2031-08-{:02} {:02}:{:02}  {l}",
            1 + i % 28,
            i % 24,
            i % 60
        ));
        kinds.push(e);
    }
    (out, kinds)
}

#[test]
fn key_columns_group_by_station_event_and_keys_not_by_unit_or_crew() {
    let (lines, kinds) = lines();
    check_groups_by_event(&lines, &kinds, &EVENTS, &[]);
}

#[test]
fn key_columns_group_by_station_event_and_keys_not_by_unit_or_crew_online() {
    let (lines, kinds) = lines();
    check_groups_by_event(&lines, &kinds, &EVENTS, &["--online"]);
}

#[test]
fn an_event_seen_once_after_many_lines_is_a_type_of_its_own() {
    let (mut lines, _) = lines();
    lines.push(
        "Seen: 2031-08-09 09:09  Station: WEIR  Unit: ELM  Event: GATE STUCK  Crew: kt".to_string(),
    );
    assert_last_is_new(&groups(&lines, &[]));
}
