//! `faultline replay`: files or stdin through the whole pipeline.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use clap::Args;

use faultline::alert::{Alert, AlertSink, SinkError, TypeCatalogue, build};
use faultline::config::{Config, Dur, Format};
use faultline::metrics::Metrics;
use faultline::pipeline::{self, BaselineOptions, ReadAgain, ReplayObserver, ReplayOptions};
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
    /// Same as `--output json` (older spelling).
    #[arg(long)]
    summary_json: bool,
    /// The end-of-run summary on stderr for people (text, the default) or
    /// machines (json: the run's counters as one JSON object). `--format`
    /// names the input format here, so output has its own flag.
    #[arg(long, value_enum)]
    output: Option<super::OutputFormat>,
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
    // Without a state directory a replay starts from nothing, yet the file
    // sink appends and skips ids the file already holds (so a run resumed
    // from a state never writes an alert twice). Two replays into one file
    // then show the union of their alerts, and an alert both runs raise
    // only once: a second run looks like a different result. Said once,
    // before anything is written; the behaviour stays (an interface).
    if args.state.is_none()
        && let Some(path) = &alerts_path
        && let Some(n) = earlier_alert_lines(path)
    {
        eprintln!(
            "faultline: {} already holds {n} alert line(s) from an earlier run: this replay appends to it \
             and does not write again an alert whose id is already there; remove the file first to keep \
             this run's alerts alone",
            path.display()
        );
    }
    let sinks = build::sinks(
        &cfg,
        &build::Plan {
            alerts_file: alerts_path.clone(),
            local: true,
            summaries: true,
            state_dir: args.state.clone(),
        },
    )?;
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
    let terminal = Terminal {
        bars: opts.progress && std::io::stderr().is_terminal(),
        bar: Arc::new(Mutex::new(None)),
    };
    // Alert lines (JSON on stdout, summaries on stderr) are written with
    // the bar cleared and redrawn after, not into the middle of it.
    let sinks = if terminal.bars {
        sinks
            .into_iter()
            .map(|inner| {
                Box::new(BesideTheBar {
                    inner,
                    bar: terminal.bar.clone(),
                }) as Box<dyn AlertSink>
            })
            .collect()
    } else {
        sinks
    };
    let summary = pipeline::replay_observed(&cfg, &opts, sinks, metrics, &terminal)?;
    let m = &summary.metrics;
    if super::wants_json(args.summary_json, args.output) {
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

/// The replay's terminal output: a progress bar per input (on a terminal,
/// unless --no-progress) and the notices about inputs read again.
struct Terminal {
    bars: bool,
    bar: SharedBar,
}

type SharedBar = Arc<Mutex<Option<indicatif::ProgressBar>>>;

fn lock(bar: &SharedBar) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
    bar.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` (which prints) with the progress bar, if one is drawn, cleared
/// and redrawn afterwards.
fn beside_the_bar<R>(bar: &SharedBar, f: impl FnOnce() -> R) -> R {
    let pb = lock(bar).clone();
    match pb {
        Some(pb) => pb.suspend(f),
        None => f(),
    }
}

impl Terminal {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<indicatif::ProgressBar>> {
        lock(&self.bar)
    }
}

/// A sink whose output goes to the terminal the bar is drawn on.
struct BesideTheBar {
    inner: Box<dyn AlertSink>,
    bar: SharedBar,
}

impl AlertSink for BesideTheBar {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let inner = &mut self.inner;
        beside_the_bar(&self.bar, || inner.emit(alert))
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        let inner = &mut self.inner;
        beside_the_bar(&self.bar, || inner.flush())
    }
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        self.inner.catalogue()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn waiting(&self) -> Option<usize> {
        self.inner.waiting()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

impl ReplayObserver for Terminal {
    fn input_started(&self, name: &str, size: Option<u64>) {
        if self.bars {
            *self.bar() = Some(progress_bar(name, size));
        }
    }
    fn position(&self, offset: u64, line: u64, errors: u64) {
        if let Some(p) = self.bar().as_ref() {
            p.set_position(offset);
            p.set_message(format!("{line} lines, {errors} errors"));
        }
    }
    fn input_finished(&self, _name: &str) {
        if let Some(p) = self.bar().take() {
            p.finish_and_clear();
        }
    }
    fn reading_again(&self, name: &str, why: ReadAgain) {
        beside_the_bar(&self.bar, || match why {
            ReadAgain::Truncated => eprintln!(
                "faultline: {name} is shorter than when it was last read (truncated?): reading it from the start"
            ),
            ReadAgain::Replaced => eprintln!(
                "faultline: {name} was truncated or replaced since it was last read: reading it from the start"
            ),
        })
    }
}

fn progress_bar(name: &str, size: Option<u64>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let pb = match size {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(name.to_string());
    pb
}

/// The number of non-empty lines in `path` when it is a regular file that
/// has any (an earlier run's alerts), else `None` (no file, an empty one,
/// a device or a pipe, which hold no earlier alerts and may never end).
fn earlier_alert_lines(path: &std::path::Path) -> Option<u64> {
    use std::io::BufRead;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let r = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut n = 0;
    for line in r.split(b'\n') {
        if line.ok()?.iter().any(|b| !b.is_ascii_whitespace()) {
            n += 1;
        }
    }
    (n > 0).then_some(n)
}

/// `--threads` when given, else the `input.threads` key.
fn worker_threads(flag: Option<u16>, cfg: &Config) -> usize {
    flag.map_or(cfg.input.threads, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_alert_lines_are_counted_only_in_a_regular_file_that_holds_some() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        assert_eq!(earlier_alert_lines(&p), None);
        std::fs::write(&p, "").unwrap();
        assert_eq!(earlier_alert_lines(&p), None);
        std::fs::write(&p, "{\"id\":\"a\"}\n\n{\"id\":\"b\"}\n").unwrap();
        assert_eq!(earlier_alert_lines(&p), Some(2));
        assert_eq!(earlier_alert_lines(std::path::Path::new("/dev/null")), None);
    }

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
