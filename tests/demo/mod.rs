//! The README's demo as the repository runs it: what a packaged demo (the
//! release tarball's, the container image's) must reproduce. Shared by
//! tests/deploy.rs and tests/package_image.rs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Alert kinds and ids from JSON lines (other lines skipped).
pub fn alert_ids(jsonl: &str) -> Vec<(String, String)> {
    jsonl
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["kind"].to_string(), v["id"].to_string())
        })
        .collect()
}

/// The alerts of the README's demo run from the repository (at least three).
pub fn expected_alerts() -> Vec<(String, String)> {
    let o = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["replay", "--warmup", "30m", "examples/data/logs.jsonl"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env_remove("FAULTLINE_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected = alert_ids(&String::from_utf8(o.stdout).unwrap());
    assert!(expected.len() >= 3, "{expected:?}");
    expected
}
