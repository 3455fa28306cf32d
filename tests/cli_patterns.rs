//! `faultline patterns check` and `faultline patterns test`, run as the
//! binary a user runs.

use std::process::Command;

fn faultline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    // No environment overrides leak in from the developer's shell.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FAULTLINE__")) {
        c.env_remove(k);
    }
    c
}

#[test]
fn patterns_check_fails_with_file_and_line_on_a_bad_regex() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("50-bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n\n[[rule]]\nname = \"broken\"\nregex = '(unclosed'\n",
    )
    .unwrap();
    let out = faultline()
        .args(["patterns", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status: {:?}\n{text}",
        out.status
    );
    assert!(text.contains("50-bad.toml:5"), "no file:line in: {text}");
    assert!(text.contains("broken"), "the rule is not named in: {text}");
}

#[test]
fn patterns_check_passes_the_shipped_rules_and_the_examples() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/patterns");
    let out = faultline()
        .args(["patterns", "check", examples])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok   <builtin>"), "{text}");
    assert!(text.contains("tenant-id.toml"), "{text}");
}

#[test]
fn patterns_test_raw_shows_the_rules_that_fired_and_the_template() {
    let out = faultline()
        .args([
            "patterns",
            "test",
            "--raw",
            "timeout after 250ms talking to 10.0.0.7:5432",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("duration"), "{text}");
    assert!(text.contains("ipv4"), "{text}");
    assert!(
        text.contains("template:   timeout after <*> talking to <*>:<*>"),
        "{text}"
    );
}

#[test]
fn patterns_test_lists_a_rule_that_fires_inside_text_another_rule_keeps() {
    // `msg="…"` keeps its message, and the address inside it is masked by
    // the rules in turn: both rules changed the template, both are listed.
    let out = faultline()
        .args([
            "patterns",
            "test",
            "--raw",
            r#"level=error msg="disk on 10.0.0.7 full" component=store"#,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("rules fired:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(listed.contains(&"message_value"), "{text}");
    assert!(listed.contains(&"ipv4"), "{text}");
    assert!(text.contains("disk on <*> full"), "{text}");
}
