//! End to end: lines that are not errors teach the learner which keys are
//! parameters, on the sequential and the parallel replay path.

mod support;

use std::process::Command;

fn replay(threads: &str, input: &std::path::Path, alerts: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args([
            "replay",
            "--warmup",
            "10m",
            "--threads",
            threads,
            "--alerts",
        ])
        .arg(alerts)
        .arg(input)
        .output()
        .unwrap();
    support::assert_ok(&out);
    std::fs::read_to_string(alerts).unwrap_or_default()
}

#[test]
fn a_rare_error_with_a_value_info_lines_vary_is_new_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let words = [
        "amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath",
    ];
    let mut lines = String::new();
    for i in 0..3000 {
        let ts = format!(
            "2026-04-01T{:02}:{:02}:{:02}.000Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        );
        let w = words[i % words.len()];
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"level\":\"info\",\"service\":\"atlas\",\"msg\":\"GET /m/n?find={w}+{i}&p=1 200\"}}\n"
        ));
        if i > 1500 && i % 100 == 0 {
            let v = words[(i / 100) % words.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"atlas\",\"msg\":\"lookup store down (url: /m/n?find={v}&p=4)\"}}\n"
            ));
        }
    }
    std::fs::write(&input, lines).unwrap();
    for threads in ["1", "2"] {
        let alerts = dir.path().join(format!("alerts-{threads}.jsonl"));
        let text = replay(threads, &input, &alerts);
        let novel = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"novel\""))
            .count();
        assert_eq!(novel, 1, "threads {threads}: {text}");
    }
}

#[test]
fn a_rare_error_led_by_a_user_the_service_varies_elsewhere_is_new_once() {
    // A service's users vary in one error type during the warm-up; after
    // it, a rare type names a user first and keeps one constant word
    // (`(<user>) CMD (<path>)`, a cron-like shape). Its users are data by
    // the service's own evidence, so a new user is not a new type.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("logs.jsonl");
    let users = [
        "ansel", "brisa", "corin", "delph", "esker", "folke", "gerta", "hallam", "ilse",
    ];
    let mut lines = String::new();
    for i in 0..3000 {
        let ts = format!(
            "2026-04-01T{:02}:{:02}:{:02}.000Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        );
        if i < 1200 && i % 10 == 0 {
            let u = users[(i / 10) % users.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"tally\",\"msg\":\"login refused for {u} from 10.1.{}.{}\"}}\n",
                i % 7,
                i % 200
            ));
        }
        if i > 1500 && i % 100 == 0 {
            let u = users[(i / 100) % users.len()];
            lines.push_str(&format!(
                "{{\"time\":\"{ts}\",\"level\":\"error\",\"service\":\"tally\",\"msg\":\"({u}) CMD (/opt/jobs/sync-{}.sh)\"}}\n",
                i % 3
            ));
        }
    }
    std::fs::write(&input, lines).unwrap();
    for threads in ["1", "2"] {
        let alerts = dir.path().join(format!("alerts-{threads}.jsonl"));
        let text = replay(threads, &input, &alerts);
        let novel = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"novel\""))
            .count();
        assert_eq!(novel, 1, "threads {threads}: {text}");
    }
}
