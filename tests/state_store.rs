//! End-to-end: the state store (`state.redb`) through the real binary —
//! migration of a directory written by an older faultline, readers while a
//! writer runs, one writer at a time, an unusable directory refused at
//! start.

#[path = "../examples/gen-logs/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use faultline::state::State;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    // The fixture's input key is relative to the repository root.
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str], state: &Path) -> Output {
    bin().args(args).arg("--state").arg(state).output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-00e5ee2-migrate");
    std::fs::create_dir_all(to).unwrap();
    // The old faultline keyed the input by its absolute path where the
    // fixture was made; this checkout's path stands in for it, so the
    // input is the same one (fully processed) wherever the tests run.
    let made_at = "/work/wt-store/examples/data/logs.jsonl";
    let here = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join(LOGS)).unwrap();
    let here = serde_json::to_string(&here.to_string_lossy()).unwrap();
    let json = std::fs::read_to_string(from.join("state.json")).unwrap();
    assert!(json.contains(made_at), "the fixture's input key moved");
    let json = json.replace(&format!("\"{made_at}\""), &here);
    std::fs::write(to.join("state.json"), json).unwrap();
}

/// The report minus when it was generated.
fn without_clock(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.contains("\"generated_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

const LOGS: &str = "examples/data/logs.jsonl";

/// `faultline replay` of the example logs with a state and an alert file.
fn replay(state: &Path, alerts: &Path) -> Output {
    bin()
        .args(["replay", "--no-progress", LOGS, "--alerts"])
        .arg(alerts)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

#[test]
fn a_state_dir_of_faultline_00e5ee2_migrates_on_first_start_and_repeats_no_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    copy_fixture(&state);
    let report = ["report", "--release", "2.0.0", "--format", "json"];
    // Readers read the old file as it is.
    let types_before = stdout(&run(&["types", "list"], &state));
    let report_before = without_clock(&stdout(&run(&report, &state)));
    assert!(types_before.lines().count() >= 29, "{types_before}");

    // The first writer migrates; the input was fully processed by the old
    // faultline, so it resumes at its end and nothing alerts again.
    let alerts = tmp.path().join("alerts.jsonl");
    let o = replay(&state, &alerts);
    stdout(&o);
    let again = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert_eq!(again.lines().count(), 0, "repeated alerts: {again}");
    assert!(state.join("state.redb").exists());
    assert!(state.join("state.json.migrated").exists());
    assert!(!state.join("state.json").exists());

    // The first writer also re-derives the ids (the canonical form changed
    // since 00e5ee2, tests/upgrade.rs), so ids and groupings may differ from
    // the old file's; what the migration itself keeps is checked below.
    // Every error is still counted, and the report is made from the store.
    let after = stdout(&run(&["types", "list"], &state));
    assert_eq!(total_count(&after), total_count(&types_before), "{after}");
    let report_after = without_clock(&stdout(&run(&report, &state)));
    assert!(report_before.contains("\"release\""), "{report_before}");
    assert!(report_after.contains("\"release\""), "{report_after}");
}

/// The sum of the count column of `types list`.
fn total_count(list: &str) -> u64 {
    list.lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_migrated_state_json_loads_back_from_the_store_equal_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    copy_fixture(&state);
    let old = State::load(&state).unwrap().unwrap();
    let migrated = State::load_writable(&state).unwrap().unwrap();
    faultline::state::store::close_writer(&state);
    assert!(state.join("state.json.migrated").exists());
    let back = State::load(&state).unwrap().unwrap();
    let json = |s: &State| serde_json::to_value(s).unwrap();
    assert_eq!(json(&migrated), json(&old));
    assert_eq!(json(&back), json(&old));
    assert!(old.baseline.types.len() >= 29);
}

#[test]
fn readers_open_the_store_while_a_writer_holds_it_and_a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    copy_fixture(&state);
    // This test process is the running writer (it migrates the fixture).
    let mut s = State::load_writable(&state).unwrap().unwrap();
    s.save(&state).unwrap();
    let n = s.baseline.types.len();

    let listed = stdout(&run(&["types", "list", "--json"], &state));
    assert!(listed.contains(&s.baseline.sorted()[0].fingerprint.to_string()));
    assert!(n >= 29);
    stdout(&run(&["report", "--release", "2.0.0"], &state));

    let alerts = tmp.path().join("alerts.jsonl");
    let o = replay(&state, &alerts);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("in use by another faultline"), "{err}");
    assert_eq!(std::fs::read_to_string(&alerts).unwrap_or_default(), "");
}

#[test]
fn an_unusable_state_directory_fails_at_start_before_any_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let state: PathBuf = file.join("state");
    let alerts = tmp.path().join("alerts.jsonl");
    let o = replay(&state, &alerts);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not-a-dir"), "{err}");
    assert_eq!(std::fs::read_to_string(&alerts).unwrap_or_default(), "");
}

/// Overwrites the middle half of `file` (a torn write, a bad region).
fn damage(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 4..3 * n / 4] {
        *b = 0xA5;
    }
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_damaged_state_falls_back_to_the_previous_generation_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let alerts = tmp.path().join("alerts.jsonl");
    stdout(&replay(&state, &alerts));
    let types = stdout(&run(&["types", "list", "--json"], &state));
    // The second start verifies the state and keeps it as the previous
    // generation; the input is fully read, so nothing new is alerted.
    let again = tmp.path().join("again.jsonl");
    stdout(&replay(&state, &again));
    assert!(state.join("state.redb.prev").exists());
    damage(&state.join("state.redb"));

    let third = tmp.path().join("third.jsonl");
    let o = replay(&state, &third);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("state.redb") && err.contains("previous generation"),
        "the warning names the damaged file and what is used instead: {err}"
    );
    assert!(state.join("state.redb.damaged").exists());
    assert_eq!(
        std::fs::read_to_string(&third).unwrap_or_default(),
        "",
        "no alert repeated: the previous generation knew the input was read"
    );
    assert_eq!(stdout(&run(&["types", "list", "--json"], &state)), types);
}

#[test]
fn a_damaged_state_without_a_previous_generation_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let alerts = tmp.path().join("alerts.jsonl");
    stdout(&replay(&state, &alerts));
    // The first start had no state to keep as the previous generation.
    assert!(!state.join("state.redb.prev").exists());
    damage(&state.join("state.redb"));
    let o = replay(&state, &tmp.path().join("second.jsonl"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("state.redb"), "{err}");
}

/// A `state.redb` written by main at ce6d87e (tests/fixtures/state-ce6d87e-redb,
/// its README names the command): 60 types under a hot cap of 20, so 40 of
/// them were evicted in that format. This faultline loads them as compact
/// records, and the same messages a day later raise no novel alert.
#[test]
fn a_state_redb_of_main_with_evicted_types_loads_and_its_types_stay_known() {
    evicted_types_of_an_older_store_stay_known("state-ce6d87e-redb");
}

/// A `state.redb` written by main at 56763a7 (tests/fixtures/state-56763a7-redb):
/// store format 1 (rows with hex fingerprints, no fingerprint index), its
/// 40 evicted types living only as rows. This faultline builds the index on
/// first open, revives them from their rows, and writes format 2 rows.
#[test]
fn a_state_redb_of_56763a7_gets_its_index_and_its_evicted_types_come_back_known() {
    evicted_types_of_an_older_store_stay_known("state-56763a7-redb");
}

/// A `state.redb` written by main at d2b4391 (tests/fixtures/state-d2b4391-redb):
/// type rows of record 2 (the window ring dense), a checkpoint every 5
/// records, each committed, so most of its 40 evicted types are marks in
/// the index on rows written before. This faultline reads them beside its
/// own record 3 (sparse rings) and writes record 3 from then on.
#[test]
fn a_state_redb_of_d2b4391_with_dense_window_rows_loads_and_its_types_stay_known() {
    evicted_types_of_an_older_store_stay_known("state-d2b4391-redb");
}

/// Loads the fixture's store, replays its messages a day later with its
/// configuration: no novel alert, every type counted twice, templates kept;
/// then once more (the store now in this faultline's format).
fn evicted_types_of_an_older_store_stay_known(name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(fixture.join("state/state.redb"), state.join("state.redb")).unwrap();
    let before = stdout(&run(&["types", "list"], &state));
    assert_eq!(before.lines().count(), 61, "{before}");
    let input = std::fs::read_to_string(fixture.join("input.jsonl")).unwrap();
    for (day, total) in [("2026-11-03T", 120), ("2026-11-04T", 180)] {
        // The same messages a day later (a new input for the resume points).
        let later = tmp.path().join(format!("later-{day}.jsonl"));
        std::fs::write(&later, input.replace("2026-11-02T", day)).unwrap();
        let alerts = tmp.path().join("alerts.jsonl");
        let o = bin()
            .args(["replay", "--no-progress", "--config"])
            .arg(fixture.join("faultline.toml"))
            .arg("--alerts")
            .arg(&alerts)
            .arg("--state")
            .arg(&state)
            .arg(&later)
            .output()
            .unwrap();
        stdout(&o);
        let raised = std::fs::read_to_string(&alerts).unwrap_or_default();
        assert!(
            !raised.contains("\"novel\""),
            "{day}: a known type alerted as new: {raised}"
        );
        let after = stdout(&run(&["types", "list"], &state));
        assert_eq!(after.lines().count(), 61, "{day}: {after}");
        assert_eq!(total_count(&after), total, "{day}: {after}");
        // Every type kept its template through eviction and back.
        assert!(
            after.lines().skip(1).all(|l| l.contains("widget")),
            "{day}: {after}"
        );
    }
}

/// Types evicted after a checkpoint wrote them, unchanged since, are only
/// marked evicted in the store's index (their rows keep the window and
/// samples they were written with): a checkpoint every 5 records, each
/// one committed, 60 types under a hot cap of 20. The store then lists
/// every type whole, and the same messages a day later (through a second
/// writer's load, which reads the marks) raise no novel alert.
#[test]
fn types_evicted_unchanged_since_their_checkpoint_stay_known_across_runs() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-56763a7-redb");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = tmp.path().join("faultline.toml");
    std::fs::write(
        &cfg,
        "[baseline]\nmax_hot_types = 20\nwarmup = \"0s\"\ncheckpoint_every = 5\ndurable_every = \"0s\"\n\
         [fingerprint.learn]\nenabled = false\n",
    )
    .unwrap();
    let input = std::fs::read_to_string(fixture.join("input.jsonl")).unwrap();
    let replay = |day: &str| {
        let file = tmp.path().join(format!("in-{day}.jsonl"));
        std::fs::write(&file, input.replace("2026-11-02T", day)).unwrap();
        let alerts = tmp.path().join(format!("alerts-{day}.jsonl"));
        let o = bin()
            .args(["replay", "--no-progress", "--config"])
            .arg(&cfg)
            .arg("--alerts")
            .arg(&alerts)
            .arg("--state")
            .arg(&state)
            .arg(&file)
            .output()
            .unwrap();
        stdout(&o);
        std::fs::read_to_string(&alerts).unwrap_or_default()
    };
    let first = replay("2026-11-02T");
    assert_eq!(first.matches("\"novel\"").count(), 20, "{first}");
    let list = stdout(&run(&["types", "list"], &state));
    assert_eq!(list.lines().count(), 61, "{list}");
    assert_eq!(total_count(&list), 60, "{list}");
    assert!(list.lines().skip(1).all(|l| l.contains("widget")), "{list}");
    let later = replay("2026-11-03T");
    assert!(
        !later.contains("\"novel\""),
        "a known type alerted as new: {later}"
    );
    let list = stdout(&run(&["types", "list"], &state));
    assert_eq!(list.lines().count(), 61, "{list}");
    assert_eq!(total_count(&list), 120, "{list}");
}

/// The alert ids of an alerts file, in order.
fn alert_ids(p: &Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Id>(l).ok())
        .map(|a| a.id)
        .collect()
}

/// Coalesced checkpoints (docs/state.md, "Crash safety"): a replay's
/// checkpoints between two durable commits live only in memory, while the
/// alerts file is flushed at each of them. A `kill -9` there leaves alerts
/// in the file past the committed state; the restart reads that input
/// again, emits those alerts again with the same ids, and the file sink
/// drops them. Each kill is placed after the store shows a commit that
/// did not reach the end, so the restart really resumes from a commit
/// behind what was read and alerted.
#[test]
fn a_kill_9_between_coalesced_checkpoints_loses_no_alert_and_repeats_none() {
    let scenario = scenario::Scenario::generate(&scenario::Config::default());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs.jsonl");
    std::fs::write(&logs, scenario.json_string()).unwrap();
    let lines = std::fs::read_to_string(&logs).unwrap().lines().count() as u64;
    let start = |state: &Path, alerts: &Path| {
        bin()
            .args(["replay", "--warmup", "30m", "--no-progress"])
            .arg("--state")
            .arg(state)
            .arg("--alerts")
            .arg(alerts)
            .arg(&logs)
            .env("FAULTLINE__BASELINE__CHECKPOINT_EVERY", "500")
            .env("FAULTLINE__BASELINE__DURABLE_EVERY", "150ms")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let reference = dir.path().join("ref.jsonl");
    assert!(
        start(&dir.path().join("ref-state"), &reference)
            .wait()
            .unwrap()
            .success()
    );
    let reference = alert_ids(&reference);
    assert!(!reference.is_empty());

    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    // The line of the input the store's last commit resumes at.
    let committed = || {
        State::load(&state)
            .ok()
            .flatten()
            .and_then(|s| s.inputs.values().next().map(|i| i.line))
            .unwrap_or(0)
    };
    let mut killed_mid_way = 0;
    for _ in 0..2 {
        let before = committed();
        let mut child = start(&state, &alerts);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut at = before;
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            at = committed();
            if at > before {
                break;
            }
            // Not faster: a reader holding the file delays a writer's open.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() && at > before && at < lines {
            killed_mid_way += 1;
        }
    }
    assert!(
        killed_mid_way > 0,
        "no kill landed after a commit and before the end of the input"
    );
    assert!(start(&state, &alerts).wait().unwrap().success());
    let got = alert_ids(&alerts);
    let unique: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(got.len(), unique.len(), "an alert was written twice");
    assert_eq!(
        unique,
        reference.iter().collect(),
        "the restarted runs alert exactly like the uninterrupted one"
    );
    assert_eq!(committed(), lines, "the last commit is at the end");
}
