//! `faultline report`: a release report from the state.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use faultline::config::Config;
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
    /// Start of the report (RFC 3339; default: as long before the release as after it).
    #[arg(long, value_parser = parse_time)]
    since: Option<EventTime>,
    /// End of the report (RFC 3339; default: the latest record).
    #[arg(long, value_parser = parse_time)]
    until: Option<EventTime>,
    #[arg(long, value_enum, default_value = "md")]
    format: ReportFormat,
    /// State directory of the faultline that watched the release.
    #[arg(long)]
    state: PathBuf,
}

fn parse_time(s: &str) -> Result<EventTime, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| format!("expected an RFC 3339 time like 2026-11-02T11:00:00Z: {e}"))
}

pub fn run(_cfg: Config, args: ReportArgs) -> Result<i32> {
    let state = State::load(&args.state)?
        .with_context(|| format!("no state in {}", args.state.display()))?;
    let req = ReportRequest {
        release: args.release,
        since: args.since,
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
