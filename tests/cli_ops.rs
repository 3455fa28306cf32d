//! The command line as an operator meets it, run as the real binary:
//! `--version` with the commit, shell completions, the man page, logs
//! without colour codes unless a terminal, durations of several parts,
//! `--format json` beside the older `--json`, and each error's cause said
//! once. (Exit codes of `rollout-check` and `report --since` durations are
//! in tests/release.rs, beside the states they need.)

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_faultline"));
    c.env_remove("FAULTLINE_CONFIG").env_remove("NO_COLOR");
    c
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_names_the_git_commit_it_was_built_from() {
    let o = run(bin().arg("--version"));
    assert!(o.status.success());
    let v = stdout(&o);
    let re = regex::Regex::new(r"^faultline \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,40}|unknown)\)\n$")
        .unwrap();
    assert!(re.is_match(&v), "{v:?}");
    // Built in a git checkout (as the tests are): the commit is known, and
    // it is this checkout's (or an override given at build time).
    if std::env::var_os("FAULTLINE_COMMIT").is_none()
        && let Ok(g) = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
        && g.status.success()
    {
        let head = String::from_utf8(g.stdout).unwrap();
        let built = re.captures(&v).unwrap()[1].to_string();
        // build.rs reruns when HEAD moves, so the binary cargo just built
        // for this test names the checkout's HEAD.
        assert!(head.starts_with(&built), "{built} vs {head}");
    }
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish_and_bash_accepts_its_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = run(bin().args(["completions", shell]));
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let s = stdout(&o);
        for word in ["rollout-check", "import-es", "state"] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("faultline.bash");
    std::fs::write(&script, stdout(&run(bin().args(["completions", "bash"])))).unwrap();
    // The script loads in bash and registers a completion for faultline.
    let o = run(Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p faultline",
        script.display()
    )));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("faultline"), "{}", stdout(&o));
    let o = run(bin().args(["completions", "tcsh"]));
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_man_page_is_roff_with_every_command_and_renders_with_man() {
    let o = run(bin().arg("man"));
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH faultline 1"), "{page}");
    // roff escapes hyphens: `faultline\-rollout\-check(1)`.
    let text = page.replace("\\-", "-");
    for cmd in ["replay", "run", "rollout-check", "report", "completions"] {
        assert!(
            text.contains(&format!("faultline-{cmd}(1)")),
            "man page lacks {cmd}"
        );
    }
    assert!(
        page.contains("commit "),
        "the version line names the commit"
    );
    // Rendered by the real man where the machine has it.
    if Command::new("man").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("faultline.1");
        std::fs::write(&f, &page).unwrap();
        let o = run(Command::new("man")
            .arg("-l")
            .arg(&f)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("SYNOPSIS"), "{}", stdout(&o));
    }
    // One page per command, for packages.
    let dir = tempfile::tempdir().unwrap();
    let o = run(bin().args(["man", "--dir"]).arg(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "faultline.1",
        "faultline-rollout-check.1",
        "faultline-types-list.1",
    ] {
        let p = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(p.starts_with(".ie"), "{page}: {p}");
    }
    let rc = std::fs::read_to_string(dir.path().join("faultline-rollout-check.1")).unwrap();
    assert!(rc.contains("current\\-percentage"), "{rc}");
}

/// A command that logs a warning: a replay with a line from the far future
/// (skipped as `bad_timestamp`, with a WARN log line).
fn logging_replay(dir: &Path) -> Command {
    let log = dir.join("in.jsonl");
    std::fs::write(
        &log,
        "{\"ts\":\"2026-11-02T10:00:00Z\",\"level\":\"ERROR\",\"service\":\"s\",\"msg\":\"boom 1\"}\n\
         {\"ts\":\"2099-11-02T10:00:00Z\",\"level\":\"ERROR\",\"service\":\"s\",\"msg\":\"boom 2\"}\n",
    )
    .unwrap();
    let mut c = bin();
    c.current_dir(dir)
        .env_remove("FAULTLINE_LOG")
        .args(["replay", "--no-progress", "--warmup", "1h30m", "--alerts"])
        .arg(dir.join("alerts.jsonl"))
        .arg(&log);
    c
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&mut logging_replay(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("WARN"), "no log line to judge: {e}");
    assert!(!e.contains('\u{1b}'), "ANSI escape in piped logs: {e:?}");
}

#[test]
fn logs_are_coloured_at_a_terminal_unless_no_color_is_set() {
    // util-linux `script` gives the command a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to make a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = logging_replay(dir.path());
    let line = std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let at_terminal = |no_color: Option<&str>| {
        let transcript = dir.path().join("typescript");
        let mut s = Command::new("script");
        s.current_dir(dir.path())
            .env_remove("FAULTLINE_LOG")
            .env_remove("NO_COLOR")
            .args(["-q", "-e", "-c", &line])
            .arg(&transcript);
        if let Some(v) = no_color {
            s.env("NO_COLOR", v);
        }
        let o = run(&mut s);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(&transcript).unwrap()
    };
    let coloured = at_terminal(None);
    assert!(coloured.contains("\u{1b}["), "{coloured:?}");
    let plain = at_terminal(Some("1"));
    assert!(plain.contains("WARN"), "{plain:?}");
    assert!(!plain.contains("\u{1b}["), "{plain:?}");
}

#[test]
fn durations_of_several_parts_are_accepted_by_flags() {
    let dir = tempfile::tempdir().unwrap();
    // --warmup 1h30m in logging_replay; a bad one names the forms.
    let o = run(&mut logging_replay(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin().args(["replay", "--warmup", "1h30x", "-"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("1h30m"), "{}", stderr(&o));
}

/// `n` minutes of one error type ("disk N full on /dev/sdX") in `in.jsonl`
/// under `dir`, the lines taking turns among `versions` if any.
fn disk_full_log(dir: &Path, n: usize, versions: &[&str]) -> std::path::PathBuf {
    let mut lines = String::new();
    for i in 0..n {
        let version = match versions {
            [] => String::new(),
            vs => format!(",\"version\":\"{}\"", vs[i % vs.len()]),
        };
        lines.push_str(&format!(
            "{{\"ts\":\"2026-11-02T10:{:02}:00Z\",\"level\":\"ERROR\",\"service\":\"s\"{version},\"msg\":\"disk {} full on /dev/sd{}\"}}\n",
            i,
            i,
            ["a", "b"][i % 2]
        ));
    }
    let log = dir.join("in.jsonl");
    std::fs::write(&log, lines).unwrap();
    log
}

#[test]
fn format_json_is_accepted_wherever_json_was_and_prints_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let log = disk_full_log(dir.path(), 20, &[]);
    let state = dir.path().join("state");
    let baseline = dir.path().join("b.json");
    let o = run(bin()
        .args(["replay", "--no-progress", "--warmup", "1h", "--state"])
        .arg(&state)
        .arg("--alerts")
        .arg(dir.path().join("a.jsonl"))
        .arg(&log));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin()
        .args(["baseline", "build", "-o"])
        .arg(&baseline)
        .arg(&log));
    assert!(o.status.success(), "{}", stderr(&o));
    let s = state.to_str().unwrap();
    let b = baseline.to_str().unwrap();
    let list = stdout(&run(bin().args(["types", "list", "--state", s, "--json"])));
    let types: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = types[0]["fingerprint"].as_str().unwrap().to_string();
    for (old, new) in [
        (
            vec!["types", "list", "--state", s, "--json"],
            vec!["types", "list", "--state", s, "--format", "json"],
        ),
        (
            vec!["types", "show", &id, "--state", s, "--json"],
            vec!["types", "show", &id, "--state", s, "--format", "json"],
        ),
        (
            vec!["baseline", "show", "--baseline", b, "--json"],
            vec!["baseline", "show", "--baseline", b, "--format", "json"],
        ),
    ] {
        let a = run(bin().args(&old));
        let n = run(bin().args(&new));
        assert!(n.status.success(), "{new:?}: {}", stderr(&n));
        assert_eq!(stdout(&a), stdout(&n), "{new:?}");
        serde_json::from_str::<serde_json::Value>(&stdout(&n)).unwrap();
        // And text stays the default.
        let text: Vec<&str> = new[..new.len() - 2].to_vec();
        let t = run(bin().args(&text));
        assert_ne!(stdout(&t), stdout(&n), "{text:?}");
        let t2 = run(bin().args(&text).args(["--format", "text"]));
        assert_eq!(stdout(&t), stdout(&t2), "{text:?}");
    }
}

#[test]
fn an_error_says_its_cause_once() {
    let o = run(bin().args(["replay", "/nonexistent/faultline-input.log"]));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("faultline: error: "), "{e}");
    assert!(e.contains("/nonexistent/faultline-input.log"), "{e}");
    let cause = "No such file or directory";
    assert_eq!(e.matches(cause).count(), 1, "{e}");
    let o = run(bin().args(["--config", "/nonexistent/f.toml", "config", "check"]));
    let e = stderr(&o);
    assert_eq!(e.matches(cause).count(), 1, "{e}");
    assert!(e.contains("/nonexistent/f.toml"), "{e}");
}

#[test]
fn alert_lines_are_printed_beside_the_progress_bar_not_into_it() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to make a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("typescript");
    let line = format!(
        "'{}' replay --warmup 30m --alerts '{}' '{}/examples/data/logs.jsonl'",
        env!("CARGO_BIN_EXE_faultline"),
        dir.path().join("alerts.jsonl").display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let o = run(Command::new("script")
        .env_remove("NO_COLOR")
        .args(["-q", "-e", "-c", &line])
        .arg(&transcript));
    assert!(o.status.success(), "{}", stderr(&o));
    let t = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).into_owned();
    assert!(t.contains("logs.jsonl ["), "no progress bar drawn: {t:?}");
    let summaries: Vec<usize> = t.match_indices("] NEW ").map(|(i, _)| i).collect();
    assert!(summaries.len() >= 3, "{t:?}");
    let cleared = regex::Regex::new(r"\x1b\[\d*[A-K]$").unwrap();
    for i in summaries {
        // The summary's own `[time]` starts after the bar was cleared
        // (cursor moves and ESC[2K) or at a fresh line, never after the
        // bar's text, as it did before.
        let start = t[..i].rfind('[').unwrap();
        let before = &t[..start];
        assert!(
            cleared.is_match(before) || before.ends_with('\n'),
            "summary glued to the bar: {:?}",
            &t[start.saturating_sub(80)..i + 20]
        );
    }
}

#[test]
fn output_json_is_the_machine_spelling_where_format_names_the_input_and_everywhere_else_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = disk_full_log(dir.path(), 30, &["1.0", "2.0"]);
    let last_line = |o: &Output| -> serde_json::Value {
        let e = stderr(o);
        let line = e.lines().last().unwrap_or_default().to_string();
        serde_json::from_str(&line).unwrap_or_else(|err| panic!("{err}: {e}"))
    };
    // replay: --output json is --summary-json, counters on stderr.
    let replay = |flag: &[&str]| {
        run(bin()
            .args([
                "replay",
                "--no-progress",
                "--format",
                "json",
                "--warmup",
                "1h",
            ])
            .args(flag)
            .arg("--alerts")
            .arg(dir.path().join("a.jsonl"))
            .arg(&log))
    };
    let new = replay(&["--output", "json"]);
    let old = replay(&["--summary-json"]);
    assert!(new.status.success(), "{}", stderr(&new));
    assert_eq!(last_line(&new), last_line(&old));
    assert_eq!(last_line(&new)["lines"], 30);
    assert!(!stderr(&replay(&["--output", "text"])).contains("\"lines\""));

    // baseline build: one JSON object on stdout; the input format flag
    // keeps its meaning beside it.
    let baseline = dir.path().join("b.json");
    let o = run(bin()
        .args([
            "baseline", "build", "--format", "json", "--output", "json", "-o",
        ])
        .arg(&baseline)
        .arg(&log));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let b = baseline.to_str().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&stdout(&run(bin().args([
        "baseline",
        "show",
        "--baseline",
        b,
        "--output",
        "json",
    ]))))
    .unwrap();
    assert_eq!(v["types"], shown.as_array().unwrap().len());
    assert_eq!(v["error_records"], 30);
    assert_eq!(v["baseline"], b);
    let text = run(bin()
        .args(["baseline", "build", "-o"])
        .arg(&baseline)
        .arg(&log));
    assert!(stdout(&text).is_empty() && stderr(&text).contains("error types"));

    // rollout-check: JSON stays the default, --output json says so, and
    // --output text is for people; the exit code is the same for all.
    let check = |flag: &[&str]| {
        run(bin()
            .args([
                "rollout-check",
                "--service",
                "s",
                "--stable",
                "1.0",
                "--canary",
                "2.0",
                "--current-percentage",
                "50",
                "--window",
                "1h",
                "--format",
                "json",
            ])
            .args(flag)
            .arg(&log))
    };
    let (plain, json, text) = (
        check(&[]),
        check(&["--output", "json"]),
        check(&["--output", "text"]),
    );
    assert_eq!(stdout(&plain), stdout(&json));
    let verdict: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let decision = verdict["decision"].as_str().unwrap().replace('_', " ");
    assert!(
        stdout(&text).starts_with(&format!("{decision}: ")),
        "{}",
        stdout(&text)
    );
    assert!(stdout(&text).contains("error rate per 1000 lines"));
    assert_eq!(plain.status.code(), text.status.code());

    // The man pages and completions come from the same flags.
    let man = tempfile::tempdir().unwrap();
    run(bin().args(["man", "--dir"]).arg(man.path()));
    for page in [
        "faultline-replay.1",
        "faultline-baseline-build.1",
        "faultline-rollout-check.1",
    ] {
        let p = std::fs::read_to_string(man.path().join(page)).unwrap();
        assert!(p.contains("\\-\\-output"), "{page} lacks --output");
    }
    let bash = stdout(&run(bin().args(["completions", "bash"])));
    assert!(bash.contains("--output"));

    // Where --format is already the output, --output is the same flag.
    let a = run(bin().args(["baseline", "show", "--baseline", b, "--format", "json"]));
    let a: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(a, shown);
}
