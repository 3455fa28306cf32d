//! Pipeline: file replay, the driver of `faultline replay`.
//!
//! [`Engine`] (in `crate::engine`, re-exported here) is the single-threaded
//! core every source feeds. [`replay`] reads files and stdin into it and
//! checkpoints byte offsets per file. With `--threads`, replay parses and
//! fingerprints chunks of an input on worker threads and feeds the engine
//! from them in input order (`pipeline/parallel.rs`).
//!
//! Durability order at a checkpoint: every sink flushed → type catalogue
//! exported → the input's resume point set → state saved (the Kafka source
//! has its own order, see `source::kafka`). A crash replays at most the
//! records after the last save, and deterministic alert ids let sinks drop
//! repeats. The library draws nothing: progress goes to a
//! [`ReplayObserver`].

mod parallel;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::alert::{Alert, AlertSink};
use crate::config::{Config, Format};
use crate::metrics::{Metrics, Snapshot};
use crate::parse::{Parser, RecordSink};
use crate::record::BadReason;
use crate::source::{Input, InputIdentity, LineReader, file};
use crate::state::State;

pub use crate::engine::{BaselineOptions, Engine, PipelineError, now_ms};

/// Options of `faultline replay`.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub inputs: Vec<Input>,
    pub format: Option<Format>,
    pub state_dir: Option<PathBuf>,
    pub baseline: BaselineOptions,
    pub strict: bool,
    /// Show a progress bar (only honoured on a terminal). The library draws
    /// nothing: the CLI reads this and passes a [`ReplayObserver`] to
    /// [`replay_observed`].
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

/// Whether an input may be cut (a checkpoint, or a chunk boundary with
/// `--threads`) before this line: the one rule both replay paths use. The
/// parser decides ([`Parser::starts_fresh`]): the line begins a record that
/// no open record could take as a continuation, so everything before it is
/// a complete set of records and a resume there parses as a whole input
/// does. A line cut at the length cap is bad, never a record start.
fn may_cut_before(parser: &Parser, line: &[u8], truncated: bool) -> bool {
    !truncated && parser.starts_fresh(line)
}

/// Why an input that the state had partly read is read from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAgain {
    /// Shorter than the resume point.
    Truncated,
    /// Its head changed.
    Replaced,
}

/// What a replay tells whoever shows its progress (the CLI draws a bar and
/// prints notices; the library writes nothing to the terminal). Every
/// method has a default that ignores the event.
pub trait ReplayObserver {
    /// An input is about to be read; `size` in bytes when known.
    fn input_started(&self, _name: &str, _size: Option<u64>) {}
    /// Reading went on to byte `offset`, line `line`; `errors` so far.
    fn position(&self, _offset: u64, _line: u64, _errors: u64) {}
    /// The input was read to its end.
    fn input_finished(&self, _name: &str) {}
    /// The state's resume point for `name` does not fit the input any more.
    fn reading_again(&self, _name: &str, _why: ReadAgain) {}
}

/// Observes nothing.
impl ReplayObserver for () {}

/// `faultline replay`: files (or stdin) in order, as one event-time stream.
pub fn replay(
    cfg: &Config,
    opts: &ReplayOptions,
    sinks: Vec<Box<dyn AlertSink>>,
    metrics: Arc<Metrics>,
) -> Result<ReplaySummary, PipelineError> {
    replay_observed(cfg, opts, sinks, metrics, &())
}

/// [`replay`], reporting progress to `observer`.
pub fn replay_observed(
    cfg: &Config,
    opts: &ReplayOptions,
    sinks: Vec<Box<dyn AlertSink>>,
    metrics: Arc<Metrics>,
    observer: &dyn ReplayObserver,
) -> Result<ReplaySummary, PipelineError> {
    let format = opts.format.unwrap_or(cfg.input.format);
    let parser = Parser::new(cfg, format)?;
    let state = match &opts.state_dir {
        Some(d) => State::load_writable(d)?,
        None => None,
    };
    let mut engine = Engine::new(cfg, state, &opts.baseline, sinks, metrics.clone())?;
    engine.set_strict(opts.strict);
    let mut replaced = Vec::new();
    let mut resumed = Vec::new();
    let every = cfg.baseline.checkpoint_every.max(1);

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
                        observer.reading_again(&name, ReadAgain::Truncated);
                        replaced.push(name.clone());
                        let (reader, _) = input.open().map_err(io)?;
                        lr = LineReader::new(reader, cfg.input.max_line_bytes);
                    }
                },
                _ => {
                    observer.reading_again(&name, ReadAgain::Replaced);
                    replaced.push(name.clone());
                }
            }
        }
        observer.input_started(&name, size);
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
            observer,
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
        observer.input_finished(&name);
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
    observer: &'a dyn ReplayObserver,
}

impl InputRun<'_> {
    fn progress(&self, offset: u64, line: u64, errors: u64) {
        self.observer.position(offset, line, errors);
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
        metrics
            .bytes
            .fetch_add(line.bytes.len() as u64, Ordering::Relaxed);
        since_checkpoint += 1;
        // The parser is asked only when a checkpoint is due and possible:
        // without a state directory this test runs for every line.
        if since_checkpoint >= run.every
            && let (Some(dir), Some(k)) = (run.state_dir, run.key)
            && may_cut_before(parser, line.bytes, line.truncated)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_trace_lines_do_not_start_records() {
        let parser = Parser::new(&Config::default(), Format::Auto).unwrap();
        let starts_record = |line: &[u8]| may_cut_before(&parser, line, false);
        // A header the parser knows (a bare date is not one).
        assert!(starts_record(b"2026-01-01 10:00:00 ERROR x"));
        assert!(!starts_record(b"\tat com.x.Y(Y.java:1)"));
        assert!(!starts_record(b"Caused by: java.io.IOException"));
        assert!(!starts_record(b"... 12 more"));
        assert!(!starts_record(b""));
        // What the first-bytes rule used to miss: an exception line after
        // its header continues the record.
        assert!(!starts_record(b"java.sql.SQLException: pool exhausted"));
        assert!(!may_cut_before(
            &parser,
            b"2026-01-01 10:00:00 ERROR x",
            true
        ));
    }
}
