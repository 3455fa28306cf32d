//! `faultline rollout-check`: a canary gate for CD pipelines.
//!
//! Exit codes are the interface (docs/release.md): 0 proceed, 1 hold (not
//! enough traffic to judge yet: ask again later), 3 roll back (the canary
//! is significantly worse), 2 usage error (bad arguments, from clap), 4 any
//! other error (unreadable state, bad configuration). Before 3 and 4
//! existed, roll back was 1 and every error 2: a pipeline that only tests
//! for 0 behaves as before. The JSON on stdout says why (`decision`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use faultline::config::{Config, Dur, Format};
use faultline::metrics::Metrics;
use faultline::pipeline::{self, BaselineOptions, ReplayOptions};
use faultline::release::rollout::{self, Decision, RolloutRequest};
use faultline::source::Input;
use faultline::state::State;

use super::replay::parse_dur;

#[derive(Args, Debug)]
pub struct RolloutCheckArgs {
    /// Service being rolled out.
    #[arg(long)]
    service: String,
    /// Version serving most traffic now.
    #[arg(long)]
    stable: String,
    /// Version being rolled out.
    #[arg(long)]
    canary: String,
    /// The canary's current share of traffic, in percent.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    current_percentage: u32,
    /// Compare over this much event time up to the latest record (default: release.canary_window).
    #[arg(long, value_parser = parse_dur)]
    window: Option<Dur>,
    /// Read the state a running faultline keeps (read-only: the last committed checkpoint).
    #[arg(long, conflicts_with = "inputs")]
    state: Option<PathBuf>,
    /// Or replay these log files (or `-`) from scratch.
    inputs: Vec<String>,
    /// Input format of the replayed files.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// The verdict as JSON on stdout (the default) or as lines for people.
    /// `--format` names the input format here, so output has its own flag.
    #[arg(long, value_enum)]
    output: Option<super::OutputFormat>,
    /// Warm-up of the replay.
    #[arg(long, value_parser = parse_dur)]
    warmup: Option<Dur>,
}

pub fn run(cfg: Config, args: RolloutCheckArgs) -> Result<i32> {
    let state = match (&args.state, args.inputs.is_empty()) {
        (Some(dir), _) => {
            State::load(dir)?.with_context(|| format!("no state in {}", dir.display()))?
        }
        (None, false) => {
            let opts = ReplayOptions {
                inputs: args.inputs.iter().map(|s| Input::parse(s)).collect(),
                format: args.format,
                baseline: BaselineOptions {
                    warmup: args.warmup,
                    baseline: None,
                },
                ..ReplayOptions::default()
            };
            pipeline::replay(&cfg, &opts, Vec::new(), Arc::new(Metrics::default()))?.state
        }
        (None, true) => bail!("give --state DIR or log files to replay"),
    };
    let req = RolloutRequest {
        service: args.service,
        stable: args.stable,
        canary: args.canary,
        current_percentage: args.current_percentage,
        window: args.window,
    };
    let mut verdict = rollout::check(&state.ledger(), &cfg, &req)?;
    faultline::signals::rollout::amend(&mut verdict, &state.signals, &state.rates, &cfg, &req);
    let text = match args.output {
        Some(super::OutputFormat::Text) => {
            use std::fmt::Write as _;
            let decision = match verdict.decision {
                Decision::Proceed => "proceed",
                Decision::Hold => "hold",
                Decision::RollBack => "roll back",
            };
            let e = &verdict.evidence;
            let mut t = String::new();
            let _ = writeln!(t, "{decision}: {}", verdict.reason);
            let _ = writeln!(t, "next percentage: {}", verdict.next_percentage);
            let _ = writeln!(
                t,
                "error rate per 1000 lines: stable {} {:.2}, canary {} {:.2} (p = {:.3})",
                e.error_rate.stable.version,
                e.error_rate.stable.per_1000,
                e.error_rate.canary.version,
                e.error_rate.canary.per_1000,
                e.error_rate.p_value
            );
            for ty in &e.new_in_canary {
                let _ = writeln!(
                    t,
                    "new in canary: {} x{}{} {}",
                    ty.fingerprint,
                    ty.count,
                    if ty.regression { " (significant)" } else { "" },
                    ty.template
                );
            }
            t
        }
        _ => format!("{}\n", serde_json::to_string_pretty(&verdict)?),
    };
    // The exit code is the gate's answer: a reader that went away
    // (`| head -1`) changes neither it nor what the pipeline does next.
    let wrote = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    match wrote {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(exit_code(verdict.decision))
}

/// Exit code for a decision (the module doc lists them all).
pub fn exit_code(d: Decision) -> i32 {
    match d {
        Decision::Proceed => 0,
        Decision::Hold => 1,
        Decision::RollBack => 3,
    }
}

/// Exit code of an error that kept the gate from deciding.
pub const ERROR_EXIT: i32 = 4;
