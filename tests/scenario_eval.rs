//! The evaluation harness of issue 12, run as a user runs it: the
//! second scenario family (`examples/gen-scenarios2/gen.py`) and its scorer
//! (`scripts/scenario-eval`). Both are Python 3 (stdlib only); without a
//! `python3` on the PATH these tests say so and pass, as `scripts/loghub-eval`
//! does without `../shared`.

use std::path::Path;
use std::process::{Command, Output};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn python(args: &[&str]) -> Option<Output> {
    match Command::new("python3")
        .args(args)
        .current_dir(REPO)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            eprintln!("skipped: python3 is not available ({e})");
            None
        }
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn scorer_self_test_and_generator_determinism_pass() {
    let Some(out) = python(&["scripts/scenario-eval", "--self-test"]) else {
        return;
    };
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("self-test: ok"), "{t}");
}

#[test]
fn a_replayed_family2_scenario_scores_every_new_type_and_the_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let generate = [
        "examples/gen-scenarios2/gen.py",
        "--seed",
        "3",
        "--set",
        "a",
        "--minutes",
        "140",
        "--rate",
        "4",
        "--out",
        d,
    ];
    let Some(out) = python(&generate) else { return };
    assert!(out.status.success(), "{}", text(&out));
    let logs = Path::new(d).join("logs.jsonl");
    let alerts = Path::new(d).join("alerts.jsonl");
    let replay = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["replay", "--no-progress", "--alerts"])
        .arg(&alerts)
        .arg(&logs)
        .current_dir(d)
        .env_remove("FAULTLINE_CONFIG")
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", text(&replay));

    let scored = python(&["scripts/scenario-eval", "--score", d]).unwrap();
    assert!(scored.status.success(), "{}", text(&scored));
    let s: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(d).join("truth.json")).unwrap())
            .unwrap();

    // Every truly new type of the truth is either credited or listed as missed.
    let new_types = truth["error_types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "new")
        .count() as u64;
    assert_eq!(s["novel"]["true"], new_types);
    let missed = s["novel"]["missed"].as_array().unwrap().len() as u64;
    assert_eq!(s["novel"]["tp"].as_u64().unwrap() + missed, new_types);
    // The steady state is warm-up end to the release: 45 minutes.
    assert_eq!(s["steady"]["hours"], 0.75);
    // Every alert faultline wrote is counted once by kind.
    let written = std::fs::read_to_string(&alerts).unwrap().lines().count() as u64;
    let counted: u64 = s["alerts_by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, written);
}
