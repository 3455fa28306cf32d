//! Pipeline: wires the stages and owns the run's state.
//!
//! [`Engine`] is the single-threaded core every source feeds: it receives
//! parsed records (it is the parser's [`RecordSink`]), fingerprints errors,
//! updates the baseline and windows, asks the detector, and hands alerts to
//! the sinks at once. Sources differ only in where bytes come from and how
//! progress is made durable: [`replay`] checkpoints byte offsets per file,
//! the Kafka source commits consumer offsets. With `--threads`, replay
//! parses and fingerprints chunks of an input on worker threads and feeds
//! the engine from them in input order (`pipeline/parallel.rs`).
//!
//! Durability order is always: alerts flushed by every sink → state saved
//! → (Kafka) offsets committed. A crash anywhere replays at most the
//! uncommitted tail, and deterministic alert ids let sinks drop repeats.

mod parallel;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::alert::{Alert, AlertSink, Kind, SinkError};
use crate::baseline::{Baseline, Origin};
use crate::config::{Config, Dur, Format};
use crate::detect::Detector;
use crate::fingerprint::{self, FingerprintError, Fingerprinter, Identity, Typed};
use crate::keys;
use crate::metrics::{Metrics, Snapshot};
use crate::parse::{ParseError, Parser, RecordSink};
use crate::record::{BadReason, EventTime, LineMeta, Record};
use crate::release;
use crate::source::{Input, InputIdentity, LineReader, file};
use crate::state::{State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{input}: {source}")]
    Input {
        input: String,
        source: std::io::Error,
    },
    #[error(
        "{input}:{line}: bad record ({reason}); rerun without --strict to count and skip bad records"
    )]
    Strict {
        input: String,
        line: u64,
        reason: BadReason,
    },
}

/// Wall-clock milliseconds, for `detected_at` only (never for decisions).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The stages after parsing, with their state.
pub struct Engine {
    cfg: Config,
    fp: Fingerprinter,
    pub state: State,
    pub metrics: Arc<Metrics>,
    sinks: Vec<Box<dyn AlertSink>>,
    warmup: Dur,
    pending: Vec<Alert>,
    sink_error: Option<SinkError>,
    strict: bool,
    first_bad: Option<(BadReason, u64)>,
    last_minute: i64,
    /// Every alert emitted in this run (for `--json` summaries and tests).
    pub emitted: Vec<Alert>,
    keep_emitted: bool,
    /// Reused for every error: identifying and typing a record of a known
    /// type then allocates nothing.
    identity: Identity,
    typed: Typed,
}

/// How warm-up and the baseline are set up for a run.
#[derive(Clone, Debug, Default)]
pub struct BaselineOptions {
    /// `--warmup`: overrides the configured duration and forces a warm-up
    /// even with `--baseline`.
    pub warmup: Option<Dur>,
    /// `--baseline FILE`: known types to start from.
    pub baseline: Option<PathBuf>,
}

impl Engine {
    /// Builds an engine from a stored state (or a fresh one).
    pub fn new(
        cfg: &Config,
        state: Option<State>,
        opts: &BaselineOptions,
        sinks: Vec<Box<dyn AlertSink>>,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, PipelineError> {
        let fp = Fingerprinter::new(&cfg.fingerprint)?;
        let digest = fp.patterns().digest;
        let mut state = match state {
            Some(mut s) => {
                s.baseline.reconfigure(cfg);
                s.detector.reconfigure(cfg);
                s
            }
            None => {
                let mut s = State::new(Baseline::new(cfg, digest), Detector::new(cfg));
                if let Some(path) = &opts.baseline {
                    let mut b = crate::state::load_baseline(path)?;
                    b.reconfigure(cfg);
                    s.baseline = b;
                    if opts.warmup.is_none() {
                        // A baseline file replaces the warm-up.
                        s.warmup_until = Some(EventTime::MIN);
                    }
                }
                s
            }
        };
        if state.baseline.pattern_digest != digest {
            crate::baseline::rederive::rederive(&mut state, &fp);
        }
        metrics
            .types_tracked
            .store(state.baseline.types.len() as u64, Ordering::Relaxed);
        Ok(Engine {
            warmup: opts.warmup.unwrap_or(cfg.baseline.warmup),
            cfg: cfg.clone(),
            fp,
            state,
            metrics,
            sinks,
            pending: Vec::new(),
            sink_error: None,
            strict: false,
            first_bad: None,
            last_minute: i64::MIN,
            emitted: Vec::new(),
            keep_emitted: true,
            identity: Identity::default(),
            typed: Typed::default(),
        })
    }

    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// Stop keeping a copy of every alert (long-running services).
    pub fn forget_emitted(&mut self) {
        self.keep_emitted = false;
    }

    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fp
    }

    fn learning(&self, time: EventTime) -> bool {
        match self.state.warmup_until {
            Some(until) => time < until,
            None => true,
        }
    }

    fn event_time(&mut self, t: Option<EventTime>) -> EventTime {
        let t = t.or(self.state.watermark).unwrap_or_else(now_ms);
        if self.state.warmup_until.is_none() {
            self.state.warmup_until = Some(t.saturating_add(self.warmup.as_millis()));
            self.state.baseline.learned_from = Some(t);
        }
        t
    }

    fn advance(&mut self, t: EventTime) {
        if self.state.watermark.is_none_or(|w| t > w) {
            self.state.watermark = Some(t);
            let minute = t.div_euclid(60_000);
            if minute != self.last_minute {
                self.last_minute = minute;
                let mut out = std::mem::take(&mut self.pending);
                self.state.detector.on_watermark(t, now_ms(), &mut out);
                if !self.learning(t) {
                    release::on_minute(&mut self.state, &self.cfg, minute, now_ms(), &mut out);
                }
                self.pending = out;
                if let Some(until) = self.state.warmup_until
                    && t >= until
                    && self.state.baseline.learned_until.is_none()
                {
                    self.state.baseline.learned_until = Some(until);
                }
            }
        }
    }

    /// Sends pending alerts to every sink.
    fn deliver(&mut self) {
        for a in self.pending.drain(..) {
            self.metrics.alert(a.kind);
            self.state.release.log(&a);
            for s in &mut self.sinks {
                if let Err(e) = s.emit(&a)
                    && self.sink_error.is_none()
                {
                    self.sink_error = Some(e);
                }
            }
            if self.keep_emitted {
                self.emitted.push(a);
            }
        }
    }

    /// The first sink failure since the last call, if any.
    pub fn take_sink_error(&mut self) -> Option<SinkError> {
        self.sink_error.take()
    }

    /// The first bad record (strict mode).
    pub fn take_first_bad(&mut self) -> Option<(BadReason, u64)> {
        self.first_bad.take()
    }

    /// Makes every alert so far durable in every sink.
    pub fn flush_sinks(&mut self) -> Result<(), SinkError> {
        if let Some(e) = self.sink_error.take() {
            return Err(e);
        }
        for s in &mut self.sinks {
            s.flush()?;
        }
        Ok(())
    }

    /// Hands the known types to every sink (the type catalogue export);
    /// `last` at the end of a run.
    pub fn export_types(&mut self, last: bool) -> Result<(), SinkError> {
        for s in &mut self.sinks {
            s.types(&self.state, last)?;
        }
        Ok(())
    }

    /// End of all input: pending storm summaries go out.
    pub fn finish(&mut self) {
        let mut out = std::mem::take(&mut self.pending);
        self.state.detector.finish(now_ms(), &mut out);
        self.pending = out;
        self.deliver();
    }

    /// Teaches the learner key/value hashes of a line that is not an error
    /// ([`Learner::line_pairs`], computed by a parsing thread).
    pub fn teach_pairs(&mut self, pairs: &[(u64, u64)]) {
        self.state.baseline.learner.teach_pairs(pairs);
    }

    /// Processes one error record (also used by tools that bypass parsing).
    pub fn process_error(&mut self, rec: Record) {
        let started = Instant::now();
        let mut identity = std::mem::take(&mut self.identity);
        self.fp.identify_into(&rec, None, &mut identity);
        self.process_from(rec, &identity, started);
        self.identity = identity;
    }

    /// [`Engine::process_error`] for a record whose identity was already
    /// computed with a clone of [`Engine::fingerprinter`] (identifying is
    /// stateless and the costly part, so parsing threads do it).
    pub fn process_identified(&mut self, rec: Record, identity: Identity) {
        self.process_from(rec, &identity, Instant::now());
    }

    /// The stateful part of processing an error: learning, baseline,
    /// detection, in the order records arrive.
    fn process_from(&mut self, rec: Record, identity: &Identity, started: Instant) {
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        let time = self.event_time(rec.time);
        let late = self
            .state
            .watermark
            .is_some_and(|w| time < w - self.cfg.window.lateness.as_millis());
        if late {
            self.metrics.late.fetch_add(1, Ordering::Relaxed);
        }
        self.advance(time);
        if let Some(svc) = rec.service.as_deref() {
            let v = rec.version.as_deref().unwrap_or("");
            self.count_rate(svc, v, Some(time), 0, 1);
        }
        let mut typed = std::mem::take(&mut self.typed);
        if fingerprint::classify_into(&mut self.state.baseline.learner, identity, &mut typed) {
            self.process_typed(&rec, &typed, time, late, started);
        } else {
            self.metrics.ignored.fetch_add(1, Ordering::Relaxed);
        }
        self.typed = typed;
    }

    /// Baseline, regression check and detection for a typed error.
    fn process_typed(
        &mut self,
        rec: &Record,
        typed: &Typed,
        time: EventTime,
        late: bool,
        started: Instant,
    ) {
        let learning = self.learning(time);
        let origin = if learning {
            Origin::Baseline
        } else {
            Origin::Live
        };
        self.state
            .baseline
            .observe_at(typed, rec, time, origin, !late);
        let mut out = std::mem::take(&mut self.pending);
        release::check_regression(
            &mut self.state.baseline,
            typed.fingerprint,
            rec,
            time,
            learning,
            &self.cfg,
            now_ms(),
            &mut out,
        );
        let from = out.len();
        self.state.detector.on_error(
            &mut self.state.baseline,
            typed.fingerprint,
            rec,
            time,
            learning,
            now_ms(),
            &mut out,
        );
        for a in out[from..].iter_mut().filter(|a| a.kind == Kind::Novel) {
            release::enrich_novel(a, &self.state);
        }
        self.pending = out;
        self.metrics
            .types_tracked
            .store(self.state.baseline.types.len() as u64, Ordering::Relaxed);
        self.deliver();
        if let Ok(mut h) = self.metrics.latency.lock() {
            h.observe(started.elapsed().as_secs_f64());
        }
    }

    /// Counts `lines` and `errors` at `time` for (service, version). This
    /// runs for every input line: one tree walk per level when the entry
    /// exists (a function returning the `&mut` would need two, the borrow
    /// checker cannot see that the miss path no longer borrows), and an
    /// allocation only for a new service or version.
    fn count_rate(
        &mut self,
        service: &str,
        version: &str,
        time: Option<EventTime>,
        lines: u64,
        errors: u64,
    ) {
        let (service, version) = (keys::lookup(service), keys::lookup(version));
        let rates = &mut self.state.rates;
        match rates.get_mut(service) {
            Some(versions) => match versions.get_mut(version) {
                Some(r) => r.count(time, lines, errors),
                None => versions
                    .entry(keys::owned(version))
                    .or_default()
                    .count(time, lines, errors),
            },
            None => rates
                .entry(keys::owned(service))
                .or_default()
                .entry(keys::owned(version))
                .or_default()
                .count(time, lines, errors),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.metrics.snapshot()
    }
}

impl RecordSink for Engine {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.metrics.records.fetch_add(1, Ordering::Relaxed);
        let time = match meta.time {
            Some(t) => {
                let t = self.event_time(Some(t));
                self.advance(t);
                Some(t)
            }
            None => self.state.watermark,
        };
        if let Some(svc) = meta.service {
            self.count_rate(svc, meta.version.unwrap_or(""), time, 1, 0);
        }
        // Lines that are not errors teach the learner which keys are
        // parameters (linear in the line, a few map probes per pair).
        if let Some(msg) = meta.message {
            let scope = self.fp.learn_scope(meta.service);
            self.state.baseline.learner.teach_line(scope, msg);
        }
    }

    fn error(&mut self, record: Record) {
        self.process_error(record);
    }

    fn bad(&mut self, reason: BadReason, line_no: u64) {
        self.metrics.bad(reason);
        if self.strict && self.first_bad.is_none() {
            self.first_bad = Some((reason, line_no));
        }
    }
}

/// Options of `faultline replay`.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub inputs: Vec<Input>,
    pub format: Option<Format>,
    pub state_dir: Option<PathBuf>,
    pub baseline: BaselineOptions,
    pub strict: bool,
    /// Show a progress bar (only honoured on a terminal).
    pub progress: bool,
    /// `--threads`: with 2 or more, each input is cut into chunks that this
    /// many threads parse and fingerprint while the calling thread applies
    /// them in order (same alerts as one thread); 0 and 1 do everything on
    /// the calling thread.
    pub threads: usize,
    /// Target chunk size in bytes for `threads >= 2` (0: the default).
    /// Tests make it small so that chunk boundaries fall inside their data.
    pub chunk_bytes: usize,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub metrics: Snapshot,
    pub alerts: Vec<Alert>,
    /// Inputs whose content changed since the state was written.
    pub replaced_inputs: Vec<String>,
    pub resumed_inputs: Vec<String>,
    /// The state at the end (as saved, when a state directory was given).
    pub state: State,
}

/// Whether a line continues the previous record rather than starting one.
/// Checkpoints are only taken before lines that start a record, so a resume
/// never splits a stack trace from its header.
fn starts_record(line: &[u8]) -> bool {
    let Some(&first) = line.first() else {
        return false;
    };
    if first == b' ' || first == b'\t' {
        return false;
    }
    const CONT: [&[u8]; 6] = [
        b"at ",
        b"Caused by:",
        b"Traceback",
        b"...",
        b"goroutine ",
        b"During handling",
    ];
    !CONT.iter().any(|p| line.starts_with(p))
}

/// `faultline replay`: files (or stdin) in order, as one event-time stream.
pub fn replay(
    cfg: &Config,
    opts: &ReplayOptions,
    sinks: Vec<Box<dyn AlertSink>>,
    metrics: Arc<Metrics>,
) -> Result<ReplaySummary, PipelineError> {
    let format = opts.format.unwrap_or(cfg.input.format);
    let parser = Parser::new(cfg, format)?;
    let state = match &opts.state_dir {
        Some(d) => State::load(d)?,
        None => None,
    };
    let mut engine = Engine::new(cfg, state, &opts.baseline, sinks, metrics.clone())?;
    engine.set_strict(opts.strict);
    let mut replaced = Vec::new();
    let mut resumed = Vec::new();
    let every = cfg.baseline.checkpoint_every.max(1);
    let show_progress = opts.progress && std::io::stderr().is_terminal();

    for input in &opts.inputs {
        let name = input.display();
        let io = |source| PipelineError::Input {
            input: name.clone(),
            source,
        };
        let key = input.key();
        let (reader, size) = input.open().map_err(io)?;
        let mut lr = LineReader::new(reader, cfg.input.max_line_bytes);
        if let (Some(k), Some(_)) = (&key, &opts.state_dir)
            && let Some(cur) = engine.state.inputs.get(k).cloned()
        {
            match file::head_hash(input, cur.head_len).map_err(io)? {
                Some(h) if h == cur.head_hash => match lr.skip(cur.offset, cur.line) {
                    Ok(()) => resumed.push(name.clone()),
                    Err(_) => {
                        eprintln!(
                            "faultline: {name} is shorter than when it was last read (truncated?): reading it from the start"
                        );
                        replaced.push(name.clone());
                        let (reader, _) = input.open().map_err(io)?;
                        lr = LineReader::new(reader, cfg.input.max_line_bytes);
                    }
                },
                _ => {
                    eprintln!(
                        "faultline: {name} was truncated or replaced since it was last read: reading it from the start"
                    );
                    replaced.push(name.clone());
                }
            }
        }
        let progress = show_progress.then(|| progress_bar(&name, size));
        let run = InputRun {
            name: &name,
            key: key.as_deref(),
            state_dir: opts.state_dir.as_deref(),
            every,
            default_service: cfg
                .text
                .default_service
                .clone()
                .or_else(|| input.default_service()),
            progress: progress.as_ref(),
        };
        let end = if opts.threads >= 2 {
            let chunk_bytes = match opts.chunk_bytes {
                0 => parallel::CHUNK_BYTES,
                n => n,
            };
            parallel::read_input(&mut engine, &parser, lr, &run, opts.threads, chunk_bytes)?
        } else {
            read_sequential(&mut engine, &parser, lr, &run)?
        };
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        if let (Some(dir), Some(k)) = (&opts.state_dir, &key) {
            engine.flush_sinks()?;
            engine.state.inputs.insert(k.clone(), end);
            engine.state.save(dir)?;
        }
    }
    engine.finish();
    engine.flush_sinks()?;
    engine.export_types(true)?;
    if let Some(dir) = &opts.state_dir {
        engine.state.save(dir)?;
    }
    Ok(ReplaySummary {
        metrics: engine.snapshot(),
        alerts: std::mem::take(&mut engine.emitted),
        replaced_inputs: replaced,
        resumed_inputs: resumed,
        state: engine.state,
    })
}

/// What reading one input needs besides the engine and the reader.
struct InputRun<'a> {
    name: &'a str,
    /// The input's key in the state (`None` for stdin: never resumed).
    key: Option<&'a str>,
    state_dir: Option<&'a Path>,
    /// Lines between checkpoints.
    every: u64,
    /// The service of records that name none.
    default_service: Option<String>,
    progress: Option<&'a indicatif::ProgressBar>,
}

impl InputRun<'_> {
    fn progress(&self, offset: u64, line: u64, errors: u64) {
        if let Some(p) = self.progress {
            p.set_position(offset);
            p.set_message(format!("{line} lines, {errors} errors"));
        }
    }
}

/// Strict mode's first bad line and the first sink failure end the run;
/// both are looked at after every input line.
fn check_line(engine: &mut Engine, name: &str) -> Result<(), PipelineError> {
    if let Some((reason, l)) = engine.take_first_bad() {
        return Err(PipelineError::Strict {
            input: name.to_string(),
            line: l,
            reason,
        });
    }
    if let Some(e) = engine.take_sink_error() {
        return Err(e.into());
    }
    Ok(())
}

/// Reads, parses and processes one input on this thread; returns the
/// input's identity at its end.
fn read_sequential<R: BufRead>(
    engine: &mut Engine,
    parser: &Parser,
    mut lr: LineReader<R>,
    run: &InputRun<'_>,
) -> Result<InputIdentity, PipelineError> {
    let io = |source| PipelineError::Input {
        input: run.name.to_string(),
        source,
    };
    let metrics = engine.metrics.clone();
    let mut lp = parser.stream(run.default_service.clone());
    let mut buf = Vec::with_capacity(4096);
    let mut since_checkpoint = 0u64;
    while let Some(line) = lr.next_line(&mut buf).map_err(io)? {
        let line_no = lr.line;
        metrics.lines.fetch_add(1, Ordering::Relaxed);
        since_checkpoint += 1;
        if since_checkpoint >= run.every
            && starts_record(line.bytes)
            && let (Some(dir), Some(k)) = (run.state_dir, run.key)
        {
            // Everything before this line is one complete set of
            // records: flush the parser, the sinks, then the state.
            let start = line.start;
            lp.finish(engine);
            engine.flush_sinks()?;
            engine.export_types(false)?;
            let mut ident = lr.identity();
            ident.offset = start;
            ident.line = line_no - 1;
            engine.state.inputs.insert(k.to_string(), ident);
            engine.state.save(dir)?;
            since_checkpoint = 0;
        }
        if line.truncated {
            engine.bad(BadReason::TooLong, line_no);
        } else {
            lp.push(line.bytes, line_no, engine);
        }
        check_line(engine, run.name)?;
        if line_no.is_multiple_of(16_384) {
            run.progress(lr.offset, line_no, metrics.errors.load(Ordering::Relaxed));
        }
    }
    lp.finish(engine);
    Ok(lr.identity())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_trace_lines_do_not_start_records() {
        assert!(starts_record(b"2026-01-01 ERROR x"));
        assert!(!starts_record(b"\tat com.x.Y(Y.java:1)"));
        assert!(!starts_record(b"Caused by: java.io.IOException"));
        assert!(!starts_record(b"... 12 more"));
        assert!(!starts_record(b""));
    }
}
