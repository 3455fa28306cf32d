//! `faultline report`: a release report from the state.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use faultline::api::report as api_report;
use faultline::config::{Config, Dur};
use faultline::pipeline::now_ms;
use faultline::record::EventTime;
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

pub fn run(cfg: Config, args: ReportArgs) -> Result<i32> {
    let state = State::load(&args.state)?
        .with_context(|| format!("no state in {}", args.state.display()))?;
    // The same report `GET /api/v1/report` serves (faultline::api::report).
    let req = api_report::Request {
        release: args.release,
        since: args.since.map(|s| match s {
            Since::At(t) => api_report::Since::At(t),
            Since::Before(d) => api_report::Since::Before(d),
        }),
        until: args.until,
        after: args.after,
    };
    let built = api_report::build(&state, &cfg, &req, now_ms()).map_err(|e| anyhow::anyhow!(e))?;
    match args.format {
        ReportFormat::Md => out!("{}", api_report::render(&built, api_report::Format::Md)),
        ReportFormat::Html => out!("{}", api_report::render(&built, api_report::Format::Html)),
        ReportFormat::Json => {
            outln!("{}", api_report::render(&built, api_report::Format::Json))
        }
    }
    Ok(0)
}
