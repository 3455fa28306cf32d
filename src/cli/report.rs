//! `faultline report`: a release report from the state.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use faultline::config::{Config, Dur};
use faultline::pipeline::now_ms;
use faultline::record::EventTime;
use faultline::release::report::{self, ReportRequest};
use faultline::state::State;

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
    #[arg(long, value_parser = parse_time)]
    until: Option<EventTime>,
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

pub fn run(_cfg: Config, args: ReportArgs) -> Result<i32> {
    let state = State::load(&args.state)?
        .with_context(|| format!("no state in {}", args.state.display()))?;
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
    let r = report::build(&state.ledger(), &req, now_ms())?;
    match args.format {
        ReportFormat::Md => out!("{}", report::markdown(&r)),
        ReportFormat::Html => out!("{}", report::html(&r)),
        ReportFormat::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
    }
    Ok(0)
}
