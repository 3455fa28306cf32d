//! Upgrades do not re-alert: a new faultline started on a state written by
//! an older release (the fixture: main at 00e5ee2, see
//! tests/fixtures/state-00e5ee2/README.md) gives no novel alert on logs it
//! has already seen, even when its grouping derives other ids, and keeps
//! the operator's mutes and resolutions.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::alert::{Alert, Kind};
use faultline::config::Config;
use faultline::fingerprint::{Fingerprint, Fingerprinter};
use faultline::state::State;

/// Muted and resolved in the fixture with `faultline types mute|resolve`.
const MUTED: &str = "84589c2f84bdfe41";
const RESOLVED: &str = "59352276f4bf7e60";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the fixture state and of the logs it was made from, under
/// another path (the state's resume position is per input path, so the
/// copy is read from its first line).
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/state-00e5ee2/state.json"),
        state.join("state.json"),
    )
    .unwrap();
    let logs = dir.join("again.jsonl");
    std::fs::copy(root().join("examples/data/logs.jsonl"), &logs).unwrap();
    (state, logs)
}

fn replay(state: &Path, logs: &Path, extra: &[&str]) -> Vec<Alert> {
    let alerts = state.parent().unwrap().join("alerts.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("replay")
        .args(extra)
        .arg("--state")
        .arg(state)
        .arg("--alerts")
        .arg(&alerts)
        .arg(logs)
        .output()
        .unwrap();
    support::assert_ok(&out);
    std::fs::read_to_string(&alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fp(s: &str) -> Fingerprint {
    s.parse().unwrap()
}

/// The old ids still name a type, and it kept the operator's decisions.
fn assert_decisions_carried_over(state: &State) {
    let muted = state
        .baseline
        .get(fp(MUTED))
        .expect("the muted id resolves");
    assert!(muted.muted, "the mute was carried over: {muted:?}");
    let resolved = state
        .baseline
        .get(fp(RESOLVED))
        .expect("the resolved id resolves");
    assert!(
        resolved.resolved_at.is_some(),
        "the resolution was carried over: {resolved:?}"
    );
}

fn kinds(alerts: &[Alert], k: Kind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.kind == k).collect()
}

#[test]
fn the_same_logs_on_a_state_written_by_00e5ee2_raise_no_novel_alert() {
    let dir = tempfile::tempdir().unwrap();
    let (state, logs) = setup(dir.path());
    let alerts = replay(&state, &logs, &[]);
    assert!(
        kinds(&alerts, Kind::Novel).is_empty(),
        "{:#?}",
        kinds(&alerts, Kind::Novel)
    );
    assert!(kinds(&alerts, Kind::Regression).is_empty(), "{alerts:#?}");
    assert!(kinds(&alerts, Kind::Storm).is_empty(), "{alerts:#?}");
    let st = State::load(&state).unwrap().unwrap();
    assert_eq!(
        st.baseline.canonical_version,
        faultline::fingerprint::CANONICAL_VERSION
    );
    assert_decisions_carried_over(&st);
}

#[test]
fn a_grouping_change_re_derives_the_old_ids_as_aliases_without_novel_alerts() {
    // A rule the old state never saw: dotted host names become a
    // variable, so the types that carry one get new ids.
    let dir = tempfile::tempdir().unwrap();
    let (state, logs) = setup(dir.path());
    let rules = dir.path().join("hosts.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"dotted-host\"\nregex = '(?-u:\\b)[a-z]+\\.[a-z]+\\.[a-z]+(?-u:\\b)'\nreplace = \"<host>\"\n",
    )
    .unwrap();
    let alerts = replay(&state, &logs, &["--patterns", rules.to_str().unwrap()]);
    assert!(
        kinds(&alerts, Kind::Novel).is_empty(),
        "{:#?}",
        kinds(&alerts, Kind::Novel)
    );
    assert!(kinds(&alerts, Kind::Regression).is_empty(), "{alerts:#?}");
    let st = State::load(&state).unwrap().unwrap();
    assert!(
        !st.baseline.types.contains_key(&fp(MUTED)),
        "the rule changed the muted type's id"
    );
    assert!(st.baseline.aliases.contains_key(&fp(MUTED)));
    assert_decisions_carried_over(&st);
}

#[test]
fn a_state_of_another_canonical_form_is_re_derived() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/state-00e5ee2/state.json")).unwrap();
    let mut st: State = serde_json::from_str(&text).unwrap();
    let cfg = Config::default();
    let f = Fingerprinter::new(&cfg.fingerprint).unwrap();
    // Bring the old state up to this build first (its masking may have
    // changed since 00e5ee2); after that, nothing is left to do.
    if faultline::baseline::rederive::needed(&st.baseline, &f) {
        faultline::baseline::rederive::rederive(&mut st.baseline, &f);
    }
    assert!(
        !faultline::baseline::rederive::needed(&st.baseline, &f),
        "same rules, same canonical form, same ids: nothing to do"
    );
    st.baseline.canonical_version = "faultline.fp/v0".into();
    assert!(faultline::baseline::rederive::needed(&st.baseline, &f));
}
