//! JSON loggers that keep their message, time or level under keys of their
//! own (Serilog CLEF, GELF, structlog, python-json-logger, Monolog, log4j2's
//! JsonLayout), end to end through `faultline replay` with the default
//! configuration: every error record becomes a type and alerts, none is
//! counted as bad (before, the first three were skipped as
//! `missing_message`). The lines are invented.

mod support;

use std::process::Command;

#[test]
fn errors_from_json_loggers_own_keys_alert_with_their_messages() {
    let lines = [
        r#"{"@t":"2026-05-02T10:00:01.100Z","@mt":"Voucher {Code} rejected by {Shop}","@l":"Error","Code":"X1","Shop":"north"}"#,
        r#"{"version":"1.1","host":"till-3","short_message":"Drawer sensor stuck","timestamp":1777716002.25,"level":3}"#,
        r#"{"event":"ledger export failed","level":"error","timestamp":"2026-05-02T10:00:03Z","logger":"books"}"#,
        r#"{"asctime":"2026-05-02 10:00:04,500","levelname":"ERROR","name":"cron","message":"nightly sweep aborted"}"#,
        r#"{"message":"Badge printer offline","context":{},"level":400,"level_name":"ERROR","channel":"app","datetime":"2026-05-02T10:00:05.000000+00:00","extra":{}}"#,
        r#"{"timeMillis":1777716006000,"level":"ERROR","loggerName":"a.B","message":"Pallet scan timed out"}"#,
        r#"{"@t":"2026-05-02T10:00:07Z","@mt":"Heartbeat {N}","N":9}"#,
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .env_remove("FAULTLINE_CONFIG")
        .args(["replay", "--warmup", "0s", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    support::assert_ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let templates: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["kind"] == "novel")
        .map(|a| a["template"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "Voucher",
        "Drawer sensor stuck",
        "ledger export failed",
        "nightly sweep aborted",
        "Badge printer offline",
        "Pallet scan timed out",
    ] {
        assert!(
            templates.iter().any(|t| t.contains(want)),
            "no novel alert for {want:?}: {templates:?}"
        );
    }
    assert_eq!(templates.len(), 6, "{templates:?}");
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stderr)
            .unwrap()
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["errors"], 6, "{summary}");
    assert_eq!(summary["bad"], serde_json::json!({}), "{summary}");
}
