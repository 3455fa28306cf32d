//! The HTML release report's charts, end to end: logs of two versions of a
//! service (the new one with a higher error rate, from a known minute)
//! are replayed by the real binary into a state, and `report --format
//! html` draws them: axes with ticks and labels, the release marker at the
//! release's first record, and one line per version in the canary-vs-stable
//! chart whose data agree with the report's own before/after counts; and
//! the latency and traffic charts (p50/p95/p99 and requests per minute per
//! version, release marker), also for `--after 7d` from the state alone.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support;

/// 2026-11-02T10:00:00Z, in the past (the future-time guard).
const T0: i64 = 1_793_613_600_000;
const MIN: i64 = 60_000;

fn faultline(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .env_remove("FAULTLINE_CONFIG")
        .output()
        .unwrap();
    support::assert_ok(&out);
    String::from_utf8(out.stdout).unwrap()
}

fn line(ms: i64, version: &str, error: bool, i: usize) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (level, msg) = if error {
        (
            "ERROR",
            format!("payment {i} declined by gateway g{}", i % 3),
        )
    } else {
        ("INFO", format!("request {i} served"))
    };
    // Every line a timed request: the release 30 % slower.
    let ms = (if version == "2.0" { 130 } else { 100 }) + i % 7;
    format!(
        "{{\"@timestamp\":\"{ts}\",\"log.level\":\"{level}\",\"service.name\":\"shop\",\"service.version\":\"{version}\",\"message\":\"{msg}\",\"duration_ms\":{ms}}}\n"
    )
}

/// 60 minutes of 100 lines of 1.0; from minute 30, 2.0 takes a quarter of
/// them. Each version logs one error a minute: the canary's rate is 4 %,
/// the stable one's 1 % and then 1.3 %.
fn logs() -> String {
    let mut s = String::new();
    let mut i = 0;
    for minute in 0..60 {
        for k in 0..100 {
            let ms = T0 + minute * MIN + k * 600;
            let canary = minute >= 30 && k % 4 == 0;
            let error = if canary { k % 50 == 0 } else { k % 100 == 1 };
            s.push_str(&line(ms, if canary { "2.0" } else { "1.0" }, error, i));
            i += 1;
        }
    }
    s
}

/// The logs replayed by the real binary into a state directory.
fn replayed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shop.jsonl");
    std::fs::write(&log, logs()).unwrap();
    faultline(&[
        "replay",
        "--no-progress",
        "--warmup",
        "10m",
        "--state",
        dir.path().join("state").to_str().unwrap(),
        "--alerts",
        dir.path().join("alerts.jsonl").to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    dir
}

#[test]
fn a_replayed_release_renders_charts_with_axes_a_release_marker_and_one_line_per_version() {
    let dir = replayed();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let r: Value = serde_json::from_str(&faultline(&[
        "report",
        "--release",
        "2.0",
        "--format",
        "json",
        "--state",
        s,
    ]))
    .unwrap();
    assert_eq!(r["released_at"], "2026-11-02T10:30:00.000Z");
    // The canary-vs-stable data: the release first, both versions' lines
    // adding up to what the before/after table counts.
    let v = &r["versions"][0];
    assert_eq!(v["service"], "shop");
    let series = v["series"].as_array().unwrap();
    let names: Vec<(&str, &str)> = series
        .iter()
        .map(|s| (s["version"].as_str().unwrap(), s["role"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("2.0", "release"), ("1.0", "other")]);
    let sum = |s: &Value, k: &str| -> u64 {
        s[k].as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    let ba = &r["before_after"][0];
    let table = ba["before"]["lines"].as_u64().unwrap() + ba["after"]["lines"].as_u64().unwrap();
    assert_eq!(sum(&series[0], "lines") + sum(&series[1], "lines"), table);
    assert_eq!(sum(&series[0], "lines"), 30 * 25);
    // One error a minute in each: 1 in 25 canary lines, 1 in 100 then 75
    // stable ones.
    assert_eq!(sum(&series[0], "errors"), 30);
    assert_eq!(sum(&series[1], "errors"), 60);
    assert_eq!(sum(&series[1], "lines"), 30 * 100 + 30 * 75);

    let html = faultline(&[
        "report",
        "--release",
        "2.0",
        "--output",
        "html",
        "--state",
        s,
    ]);
    let start = html
        .find("<h2>Canary vs stable</h2>")
        .expect("a canary-vs-stable section");
    let canary = &html[start..html[start..].find("</figure>").unwrap() + start];
    for part in [
        "<g class=\"axis x\">",
        "<g class=\"axis y\">",
        "error lines per 1,000 lines</text>",
        "time (UTC)",
        "data-name=\"2.0 (release)\"",
        "data-name=\"1.0 (other)\"",
        ">release 2.0</text>",
    ] {
        assert!(canary.contains(part), "{part} missing in {canary}");
    }
    // The marker sits at the release's first record, a round-minute tick
    // at 10:30 too: both at the same x.
    let marker = format!("<g class=\"marker\" data-time=\"{}\">", T0 + 30 * MIN);
    assert!(canary.contains(&marker), "{canary}");
    let x_of = |needle: &str| -> String {
        let at = canary
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {canary}"));
        let before = &canary[..at];
        let x = before.rfind("x1=\"").unwrap() + 4;
        before[x..x + before[x..].find('"').unwrap()].to_string()
    };
    let tick = format!("data-time=\"{}\">10:30</text>", T0 + 30 * MIN);
    assert!(canary.contains(&tick), "a 10:30 tick: {canary}");
    let marker_x = {
        let at = canary.find(&marker).unwrap() + marker.len();
        let rest = &canary[at..];
        let x = rest.find("x1=\"").unwrap() + 4;
        rest[x..x + rest[x..].find('"').unwrap()].to_string()
    };
    assert_eq!(
        x_of(&tick),
        marker_x,
        "the marker and the 10:30 tick line up"
    );
    // The stable line spans the whole hour, the canary only the second half.
    let points = |name: &str| -> usize {
        let g = canary.find(&format!("data-name=\"{name}\"")).unwrap();
        let p = canary[g..].find("points=\"").unwrap() + g + 8;
        canary[p..p + canary[p..].find('"').unwrap()]
            .split(' ')
            .count()
    };
    assert!(points("1.0 (other)") > points("2.0 (release)"));
    // Every top-type chart has axes and the marker too.
    let top = &html[html.find("<h2>Top error types</h2>").unwrap()..];
    assert!(top.matches("<svg").count() >= 1);
    assert_eq!(
        top.matches("<svg").count(),
        top.matches("class=\"axis x\"").count()
    );
    assert_eq!(
        top.matches("<svg").count(),
        top.matches("class=\"marker\"").count()
    );
}

/// Headless Chromium, if this machine has it (`FAULTLINE_CHROMIUM`, else
/// `chromium` or `chromium-browser` on PATH).
fn chromium() -> Option<String> {
    let candidates = std::env::var("FAULTLINE_CHROMIUM")
        .ok()
        .into_iter()
        .chain(["chromium".to_string(), "chromium-browser".to_string()]);
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_report_renders_in_headless_chromium_with_its_charts_and_a_screenshot_is_kept() {
    let Some(chrome) = chromium() else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: no chromium on PATH (set FAULTLINE_CHROMIUM): the report was not rendered in a browser ***\n"
        );
        return;
    };
    let dir = replayed();
    let s = dir.path().join("state");
    let html = faultline(&[
        "report",
        "--release",
        "2.0",
        "--format",
        "html",
        "--state",
        s.to_str().unwrap(),
    ]);
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    let browser = |args: &[&str]| {
        let profile = dir.path().join("profile");
        let out = Command::new(&chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // What the browser built from the page: the charts are SVG elements
    // with their axes, markers and series.
    let dom = String::from_utf8(browser(&["--dump-dom"])).unwrap();
    let svgs = dom.matches("<svg").count();
    assert!(svgs >= 2, "{dom}");
    for class in ["class=\"axis x\"", "class=\"axis y\"", "class=\"marker\""] {
        assert_eq!(dom.matches(class).count(), svgs, "{class} on every chart");
    }
    assert!(dom.contains("data-name=\"2.0 (release)\""));
    assert!(dom.contains("data-name=\"2.0 p95\""), "latency chart");
    // The screenshot is the artifact a reviewer looks at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-charts.png");
    let _ = std::fs::remove_file(&shot);
    browser(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=900,2000",
    ]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn latency_and_traffic_charts_show_each_version_with_the_release_marker_from_the_state_alone() {
    let dir = replayed();
    // The 7-day review reads the state only: the logs are gone.
    std::fs::remove_file(dir.path().join("shop.jsonl")).unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    for after in ["24h", "7d"] {
        let args = |format: &'static str| {
            vec![
                "report",
                "--release",
                "2.0",
                "--after",
                after,
                "--format",
                format,
                "--state",
                s,
            ]
        };
        let r: Value = serde_json::from_str(&faultline(&args("json"))).unwrap();
        let t = &r["signals"]["timelines"][0];
        assert_eq!(t["service"], "shop");
        assert_eq!(t["measure"], "requests");
        let series = t["series"].as_array().unwrap();
        assert_eq!(series[0]["version"], "2.0");
        assert_eq!(series[1]["version"], "1.0");
        // Buckets of `bucket_minutes` from `since`: the release's requests
        // per minute are 25 after it, none before; the stable's 100 then 75.
        let bucket = r["bucket_minutes"].as_i64().unwrap();
        let values = |v: &Value, k: &str| -> Vec<Option<f64>> {
            v[k].as_array().unwrap().iter().map(Value::as_f64).collect()
        };
        let (rel, old) = (
            values(&series[0], "per_minute"),
            values(&series[1], "per_minute"),
        );
        let half = (30 / bucket) as usize;
        assert!(rel[..half].iter().all(Option::is_none), "{rel:?}");
        assert!(rel[half..].iter().all(|v| *v == Some(25.0)), "{rel:?}");
        assert!(old[..half].iter().all(|v| *v == Some(100.0)), "{old:?}");
        assert!(old[half..].iter().all(|v| *v == Some(75.0)), "{old:?}");
        // p95 per bucket within the sketch's 1 %: 130–136 ms vs 100–106 ms.
        for v in values(&series[0], "p95_ms").into_iter().flatten() {
            assert!((130.0 * 0.99..=136.0 * 1.01).contains(&v), "{v}");
        }
        for v in values(&series[1], "p95_ms").into_iter().flatten() {
            assert!((100.0 * 0.99..=106.0 * 1.01).contains(&v), "{v}");
        }

        let html = faultline(&args("html"));
        let at = html
            .find("<h2>Latency and traffic</h2>")
            .expect("the section");
        let section = &html[at..html[at..].find("<h2>New error types").unwrap() + at];
        assert_eq!(section.matches("<svg").count(), 2, "latency and traffic");
        assert_eq!(section.matches("class=\"axis x\"").count(), 2);
        let marker = format!("<g class=\"marker\" data-time=\"{}\">", T0 + 30 * MIN);
        assert_eq!(section.matches(&marker).count(), 2, "{section}");
        for part in [
            "data-name=\"2.0 p50\"",
            "data-name=\"2.0 p95\"",
            "data-name=\"2.0 p99\"",
            "data-name=\"1.0 p95\"",
            "latency, 2.0 (release) vs 1.0 (other)",
            "latency (ms)</text>",
            "requests per minute</text>",
            ">release 2.0</text>",
        ] {
            assert!(section.contains(part), "{part} missing in {section}");
        }

        let md = faultline(&args("md"));
        assert!(md.contains("| shop | 2.0 (release) | `"), "{md}");
        assert!(md.contains("| shop | 1.0 (other) | `"), "{md}");
    }
}
