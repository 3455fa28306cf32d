//! `faultline replay`: files or stdin through the whole pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use faultline::alert::{AlertSink, EsSink, JsonLinesSink};
use faultline::config::{Config, Dur, Format};
use faultline::metrics::Metrics;
use faultline::pipeline::{self, BaselineOptions, ReplayOptions};
use faultline::source::Input;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Input files (plain or .gz), or `-` for stdin, read in this order.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// Input format; `auto` decides per line.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Learn the baseline for this long (event time from the first record).
    #[arg(long, value_parser = parse_dur)]
    warmup: Option<Dur>,
    /// Start from this baseline file (skips warm-up unless --warmup is given).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// State directory: resume after the last durable record, keep the baseline.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Write alerts as JSON lines to this file (default: stdout).
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Stop at the first bad record, with its line number.
    #[arg(long)]
    strict: bool,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print the run's counters as JSON on stderr at the end.
    #[arg(long)]
    summary_json: bool,
    /// Threads that parse and fingerprint, beside the one that detects
    /// [default: `input.threads`, 1]. With 2 or more each input is read in
    /// chunks parsed in parallel; alerts, their ids and all counters are
    /// the same as with 1.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Target chunk size in bytes with --threads 2 or more (tests).
    #[arg(long, default_value_t = 0, hide = true)]
    chunk_bytes: usize,
}

pub fn parse_dur(s: &str) -> Result<Dur, String> {
    s.parse()
}

pub fn run(cfg: Config, args: ReplayArgs) -> Result<i32> {
    if let Some(dir) = &args.state {
        super::prepare_state_dir(dir)?;
    }
    let alerts_path = args.alerts.clone().or(cfg.alerts.file.clone());
    let sink: Box<dyn AlertSink> = match &alerts_path {
        Some(p) => Box::new(JsonLinesSink::file(p, true)?),
        None => Box::new(JsonLinesSink::stdout()),
    };
    let mut sinks = vec![sink];
    if !cfg.elasticsearch.url.is_empty() {
        // Spool beside the state when there is one: both describe the same run.
        let spool = cfg
            .elasticsearch
            .spool_dir
            .clone()
            .or_else(|| args.state.as_ref().map(|d| d.join("es-spool")))
            .unwrap_or_else(|| PathBuf::from("faultline-es-spool"));
        sinks.push(Box::new(EsSink::open(&cfg.elasticsearch, &spool)?));
    }
    let opts = ReplayOptions {
        inputs: args.inputs.iter().map(|s| Input::parse(s)).collect(),
        format: args.format,
        state_dir: args.state,
        baseline: BaselineOptions {
            warmup: args.warmup,
            baseline: args.baseline,
        },
        strict: args.strict,
        progress: !args.no_progress,
        threads: worker_threads(args.threads, &cfg),
        chunk_bytes: args.chunk_bytes,
    };
    let metrics = Arc::new(Metrics::default());
    let summary = pipeline::replay(&cfg, &opts, sinks, metrics)?;
    let m = &summary.metrics;
    if args.summary_json {
        eprintln!("{}", serde_json::to_string(m)?);
    } else if alerts_path.is_some() || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bad: u64 = m.bad.values().sum();
        eprintln!(
            "faultline: {} lines, {} records, {} errors, {} error types, {} bad records{}; alerts: {} novel, {} surge, {} storm",
            m.lines,
            m.records,
            m.errors,
            m.types_tracked,
            bad,
            if bad > 0 {
                format!(
                    " ({})",
                    m.bad
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            m.alerts.get("novel").unwrap_or(&0),
            m.alerts.get("surge").unwrap_or(&0),
            m.alerts.get("storm").unwrap_or(&0),
        );
    }
    Ok(0)
}

/// `--threads` when given, else the `input.threads` key.
fn worker_threads(flag: Option<u16>, cfg: &Config) -> usize {
    flag.map_or(cfg.input.threads, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_flag_overrides_the_config_key() {
        let mut cfg = Config::default();
        assert_eq!(worker_threads(None, &cfg), 1);
        cfg.input.threads = 2;
        assert_eq!(worker_threads(None, &cfg), 2);
        assert_eq!(worker_threads(Some(1), &cfg), 1);
        assert_eq!(worker_threads(Some(4), &cfg), 4);
    }
}
