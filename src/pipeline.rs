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
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::alert::{Alert, AlertSink};
use crate::config::{Config, Format};
use crate::metrics::{Metrics, Snapshot};
use crate::parse::LineParser;
use crate::parse::{Parser, RecordSink};
use crate::record::BadReason;
use crate::source::driver::{self, Cadence, Pace, Poll, Source, drive};
use crate::source::{Input, LineReader, file};
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
        Some(d) => {
            let s = State::load_writable(d)?;
            // Files keep their resume points in the state and commit
            // nothing elsewhere: checkpoints may commit together.
            State::coalesce_saves(d, cfg.baseline.durable_every.0)?;
            s
        }
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
            default_service: cfg
                .text
                .default_service
                .clone()
                .or_else(|| input.default_service()),
            observer,
        };
        // Stdin is never resumed, so never checkpointed.
        let cadence = Cadence::every(every, opts.state_dir.as_deref().filter(|_| key.is_some()));
        if opts.threads >= 2 {
            let chunk_bytes = match opts.chunk_bytes {
                0 => parallel::CHUNK_BYTES,
                n => n,
            };
            parallel::read_input(
                &mut engine,
                &parser,
                lr,
                &run,
                &cadence,
                opts.threads,
                chunk_bytes,
            )?;
        } else {
            let mut source = LineSource::new(&mut engine, lr, &parser, &run);
            drive(&mut source, &cadence)?;
        }
        observer.input_finished(&name);
    }
    driver::close(&mut engine, opts.state_dir.as_deref())?;
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
    /// The service of records that name none.
    default_service: Option<String>,
    observer: &'a dyn ReplayObserver,
}

impl InputRun<'_> {
    fn progress(&self, offset: u64, line: u64, errors: u64) {
        self.observer.position(offset, line, errors);
    }

    /// The input's error for an I/O failure.
    fn io(&self, source: std::io::Error) -> PipelineError {
        PipelineError::Input {
            input: self.name.to_string(),
            source,
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

/// One input read on this thread, a line per poll. A line is read one poll
/// before it is pushed: when a checkpoint is due, the driver asks whether
/// the line read last may begin a resume ([`may_cut_before`]), and if so
/// checkpoints before it goes into the parser.
struct LineSource<'a, R> {
    engine: &'a mut Engine,
    pace: Pace,
    lr: LineReader<R>,
    parser: &'a Parser,
    stream: LineParser<'a>,
    run: &'a InputRun<'a>,
    metrics: Arc<Metrics>,
    /// The line read last and not yet pushed (its bytes are `buf`).
    held: Option<Held>,
    buf: Vec<u8>,
}

/// Where the held line came from.
#[derive(Clone, Copy)]
struct Held {
    start: u64,
    line_no: u64,
    truncated: bool,
}

impl<'a, R: BufRead> LineSource<'a, R> {
    fn new(
        engine: &'a mut Engine,
        lr: LineReader<R>,
        parser: &'a Parser,
        run: &'a InputRun<'a>,
    ) -> Self {
        let metrics = engine.metrics.clone();
        LineSource {
            engine,
            pace: Pace::default(),
            lr,
            parser,
            stream: parser.stream(run.default_service.clone()),
            run,
            metrics,
            held: None,
            buf: Vec::with_capacity(4096),
        }
    }
}

impl<R: BufRead> Source for LineSource<'_, R> {
    type Error = PipelineError;

    fn engine(&mut self) -> &mut Engine {
        self.engine
    }

    fn pace(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn poll(&mut self) -> Result<Poll, PipelineError> {
        let engine = &mut *self.engine;
        if let Some(h) = self.held.take() {
            if h.truncated {
                engine.bad(BadReason::TooLong, h.line_no);
            } else {
                self.stream.push(&self.buf, h.line_no, engine);
            }
            check_line(engine, self.run.name)?;
            if h.line_no.is_multiple_of(16_384) {
                let errors = self.metrics.errors.load(Ordering::Relaxed);
                self.run.progress(self.lr.offset, h.line_no, errors);
            }
        }
        let Some(line) = self
            .lr
            .next_line(&mut self.buf)
            .map_err(|e| self.run.io(e))?
        else {
            return Ok(Poll::End);
        };
        self.held = Some(Held {
            start: line.start,
            line_no: self.lr.line,
            truncated: line.truncated,
        });
        self.metrics.lines.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bytes
            .fetch_add(line.bytes.len() as u64, Ordering::Relaxed);
        Ok(Poll::Pushed(1))
    }

    fn at_boundary(&self) -> bool {
        // Everything before the held line is one complete set of records.
        self.held
            .is_some_and(|h| may_cut_before(self.parser, &self.buf, h.truncated))
    }

    fn settle(&mut self) -> Result<(), PipelineError> {
        self.stream.finish(self.engine);
        Ok(())
    }

    fn checkpoint(&mut self) {
        let Some(key) = self.run.key else { return };
        let mut ident = self.lr.identity();
        if let Some(h) = self.held {
            ident.offset = h.start;
            ident.line = h.line_no - 1;
        }
        self.engine.state.inputs.insert(key.to_string(), ident);
    }
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
