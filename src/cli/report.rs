//! `faultline report`: a release report from the state.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use faultline::alert::Kind;
use faultline::config::{Config, Dur};
use faultline::pipeline::now_ms;
use faultline::record::EventTime;
use faultline::release::report::{self, ReportRequest};
use faultline::signals;
use faultline::state::State;

use super::replay::parse_dur;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReportFormat {
    Md,
    Html,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The version released.
    #[arg(long)]
    release: String,
    /// Start of the report: an RFC 3339 time, or a duration (`7d`, `1h30m`)
    /// meaning that long before the end (default: as long before the
    /// release as after it).
    #[arg(long, value_parser = parse_since)]
    since: Option<Since>,
    /// End of the report (RFC 3339; default: the latest record).
    #[arg(long, value_parser = parse_time, conflicts_with = "after")]
    until: Option<EventTime>,
    /// The review after a release: from the release up to this long after
    /// it (`24h`, `7d`; the latest record if sooner), with as long before
    /// it unless --since says otherwise.
    #[arg(long, value_parser = parse_dur)]
    after: Option<Dur>,
    /// md, html or json; `--output` is the same flag.
    #[arg(long, visible_alias = "output", value_enum, default_value = "md")]
    format: ReportFormat,
    /// State directory of the faultline that watched the release.
    #[arg(long)]
    state: PathBuf,
}

/// `--since`: a time, or a span back from the report's end.
#[derive(Clone, Copy, Debug)]
enum Since {
    At(EventTime),
    Before(Dur),
}

fn parse_since(s: &str) -> Result<Since, String> {
    match parse_time(s) {
        Ok(t) => Ok(Since::At(t)),
        Err(time_err) => s.parse::<Dur>().map(Since::Before).map_err(|_| {
            format!("expected an RFC 3339 time like 2026-11-02T11:00:00Z or a duration like 7d or 1h30m ({time_err})")
        }),
    }
}

fn parse_time(s: &str) -> Result<EventTime, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| format!("expected an RFC 3339 time like 2026-11-02T11:00:00Z: {e}"))
}

pub fn run(cfg: Config, mut args: ReportArgs) -> Result<i32> {
    let state = State::load(&args.state)?
        .with_context(|| format!("no state in {}", args.state.display()))?;
    if let Some(after) = args.after {
        // The release time and the latest record, as report::build finds them.
        let probe = ReportRequest {
            release: args.release.clone(),
            since: None,
            until: None,
        };
        let r = report::build(&state.ledger(), &probe, now_ms())?;
        let at = |s: &str| parse_time(s).map_err(|e| anyhow::anyhow!("report time {s}: {e}"));
        let (released, latest) = (at(&r.released_at)?, at(&r.until)?);
        args.until = Some(released.saturating_add(after.as_millis()).min(latest));
    }
    let since = match args.since {
        None => None,
        Some(Since::At(t)) => Some(t),
        Some(Since::Before(d)) => {
            // The end the report will use: --until, else the end of the
            // latest record's minute (as report::build defaults it).
            let until = match args.until {
                Some(u) => u,
                None => {
                    let probe = ReportRequest {
                        release: args.release.clone(),
                        since: None,
                        until: None,
                    };
                    let r = report::build(&state.ledger(), &probe, now_ms())?;
                    parse_time(&r.until)
                        .map_err(|e| anyhow::anyhow!("report end {}: {e}", r.until))?
                }
            };
            Some(until.saturating_sub(d.as_millis()))
        }
    };
    let req = ReportRequest {
        release: args.release,
        since,
        until: args.until,
    };
    let mut r = report::build(&state.ledger(), &req, now_ms())?;
    // Latency and traffic (issue 20): a section of its own, from the state.
    let at = |s: &str| parse_time(s).map_err(|e| anyhow::anyhow!("report time {s}: {e}"));
    let span = (
        at(&r.since)?,
        at(&r.released_at)?,
        at(&r.until)?,
        r.bucket_minutes * 60_000,
    );
    let sig = signals::report::build(
        &state.signals,
        &state.rates,
        &r.services,
        &r.release,
        span,
        cfg.signals.relative_accuracy,
    );
    if cfg.signals.enabled {
        let timed = sig
            .services
            .iter()
            .any(|s| s.before.timed + s.after.timed > 0);
        let requests = sig.services.iter().any(|s| s.after.measure == "requests");
        r.not_measured.retain(|m| {
            !(timed && m == "latency" || requests && m.starts_with("request throughput"))
        });
    }
    // The signals' alerts weigh in the verdict as the error alerts do: a
    // latency regression is a regression, a traffic change needs attention.
    let kinds = |k: &[Kind]| r.incidents.iter().filter(|i| k.contains(&i.kind)).count();
    let (lat, tra) = (
        kinds(&[Kind::LatencyRegression]),
        kinds(&[Kind::TrafficDrop, Kind::TrafficSpike]),
    );
    if lat > 0 {
        r.verdict = "regressed".into();
    } else if tra > 0 && r.verdict == "clean" {
        r.verdict = "attention".into();
    }
    if lat + tra > 0 {
        r.summary = format!(
            "{}, {lat} latency regression(s), {tra} traffic drop(s) or spike(s)",
            r.summary.trim_end().trim_end_matches('.')
        );
    }
    // Before the first section after the before/after table.
    let insert = |doc: String, marker: &str, section: String| match doc.find(marker) {
        Some(i) => format!("{}{section}{}", &doc[..i], &doc[i..]),
        None => doc + &section,
    };
    match args.format {
        ReportFormat::Md => out!(
            "{}",
            insert(
                report::markdown(&r),
                "## New error types",
                signals::report::markdown(&sig, &r.release)
            )
        ),
        ReportFormat::Html => out!(
            "{}",
            insert(
                report::html(&r),
                "<h2>New error types",
                signals::report::html(&sig, &r.release)
            )
        ),
        ReportFormat::Json => {
            let mut v = serde_json::to_value(&r)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("signals".into(), serde_json::to_value(&sig)?);
            }
            outln!("{}", serde_json::to_string_pretty(&v)?)
        }
    }
    Ok(0)
}
