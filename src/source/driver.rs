//! The driver: the one loop every source runs through, and the one order
//! in which progress becomes durable.
//!
//! A [`Source`] knows how to read its input and where it stands in it; the
//! [`Engine`] knows what records mean; neither knows when or in what order
//! work is made durable. The driver does (the push model of ripgrep's
//! `Sink`: the source pushes records into the engine, the driver only
//! decides when to stop and checkpoint):
//!
//! ```text
//! loop { poll → engine }                       source.poll(engine)
//!   every `Cadence::records` records or `Cadence::interval`,
//!   at the next point the source calls a boundary:
//!     settle       the source finishes what it holds open (a trace)
//!     flush sinks  every alert so far is durable in every sink
//!     commit       the source commits its input (Kafka: the transaction,
//!                  with the alerts topic and the consumer offsets in it)
//!     checkpoint   the source writes its resume points into the State
//!     save         the State is saved atomically
//!     catalogue    the type catalogue is exported (a snapshot)
//! ```
//!
//! Why this order is safe for every source:
//!
//! * Sinks flush before anything is committed or saved, so no resume point
//!   is ever past an alert that is not durable.
//! * The source commits *before* the state is saved. For a file nothing is
//!   committed. For Kafka the transaction holds the alerts and the offsets
//!   together, so the alerts topic and the consumer group never disagree;
//!   a crash between that commit and the save leaves the state behind the
//!   committed offsets, and the Kafka source re-processes that gap with its
//!   other sinks gated shut (their alerts went out before the commit), so
//!   the state catches up without repeating an alert. Saving first would
//!   be worse: a crash before the commit would leave the state ahead of
//!   the group's offsets, and the records in between would count twice.
//! * The catalogue is a snapshot of the known types that each export
//!   brings up to date, so exporting it last loses nothing when it fails:
//!   the next checkpoint (or the next run) sends it again.
//!
//! A crash therefore repeats at most the records after the last save, and
//! deterministic alert ids let the sinks drop repeats.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::alert::SinkError;
use crate::engine::{Engine, PipelineError};
use crate::state::{State, StateError};

/// What one [`Source::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// This many input records (lines, messages, documents) went into the
    /// engine; they count towards the checkpoint cadence.
    Pushed(u64),
    /// Nothing arrived this time (a stream waiting for data); the driver
    /// looks at its clock and its stop flag and polls again.
    Idle,
    /// The input is exhausted.
    End,
}

/// An input the driver can run: it pushes what it reads into the engine
/// and knows where it stands. Only [`Source::poll`] and
/// [`Source::checkpoint`] are required; the rest default to what a source
/// without transactions or held-open records needs.
pub trait Source {
    /// The error the run ends with.
    type Error: From<SinkError> + From<StateError>;

    /// Reads some input and pushes it into `engine` (through the parser:
    /// the engine is its `RecordSink`).
    fn poll(&mut self, engine: &mut Engine) -> Result<Poll, Self::Error>;

    /// Whether everything pushed so far is a complete set of records, so
    /// that a checkpoint taken now resumes as if the input had not been
    /// cut. Asked only when a checkpoint is due.
    fn at_boundary(&self) -> bool {
        true
    }

    /// Hands whatever the source still holds open (a record whose trace
    /// may go on) to the engine: the first step of every checkpoint.
    fn settle(&mut self, _engine: &mut Engine) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Commits the input consumed so far at the source (a Kafka
    /// transaction); runs after the sinks are flushed and before the state
    /// is saved.
    fn commit(&mut self, _engine: &mut Engine) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Writes the source's resume points into the state about to be saved.
    fn checkpoint(&mut self, state: &mut State);

    /// The state save's outcome, after the commit. By default a failure
    /// ends the run; a source whose commit already happened may carry on.
    fn saved(&mut self, result: Result<(), StateError>) -> Result<(), Self::Error> {
        result.map_err(Self::Error::from)
    }

    /// The type catalogue export's outcome. By default a failure ends the
    /// run; a long-running source may log it and retry at the next
    /// checkpoint (the catalogue is a snapshot, nothing is lost).
    fn exported(&mut self, result: Result<(), SinkError>) -> Result<(), Self::Error> {
        result.map_err(Self::Error::from)
    }
}

/// When the driver checkpoints, and where the state goes.
#[derive(Clone, Copy, Debug)]
pub struct Cadence<'a> {
    /// Records between checkpoints (at least 1).
    pub records: u64,
    /// Wall-clock time between checkpoints, for streams that may be quiet.
    pub interval: Option<Duration>,
    /// The state directory; without one nothing is checkpointed.
    pub store: Option<&'a Path>,
}

impl<'a> Cadence<'a> {
    /// Every `records` records, into `store`.
    pub fn every(records: u64, store: Option<&'a Path>) -> Cadence<'a> {
        Cadence {
            records: records.max(1),
            interval: None,
            store,
        }
    }
}

/// What [`drive`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Driven {
    /// Records pushed.
    pub records: u64,
    /// Checkpoints taken, the one at the end included.
    pub checkpoints: u64,
}

/// Runs `source` to its end: polls it into `engine`, checkpoints at the
/// cadence (only where the source is at a boundary), and at the end
/// settles the source and, with a store, takes a last checkpoint (without
/// the catalogue: [`close`] exports it once, last).
pub fn drive<S: Source>(
    source: &mut S,
    engine: &mut Engine,
    cadence: &Cadence<'_>,
) -> Result<Driven, S::Error> {
    let mut driven = Driven::default();
    let mut since = 0u64;
    let mut last = Instant::now();
    loop {
        match source.poll(engine)? {
            Poll::End => break,
            Poll::Pushed(n) => {
                driven.records += n;
                since += n;
            }
            Poll::Idle => {}
        }
        let Some(dir) = cadence.store else { continue };
        let due = since >= cadence.records
            || (since > 0 && cadence.interval.is_some_and(|i| last.elapsed() >= i));
        if due && source.at_boundary() {
            checkpoint(source, engine, dir, true)?;
            driven.checkpoints += 1;
            since = 0;
            last = Instant::now();
        }
    }
    match cadence.store {
        Some(dir) => {
            checkpoint(source, engine, dir, false)?;
            driven.checkpoints += 1;
        }
        None => source.settle(engine)?,
    }
    Ok(driven)
}

/// One checkpoint, in the order the module doc argues: settle → flush
/// sinks → commit → resume points → save → catalogue (when `catalogue`).
pub fn checkpoint<S: Source>(
    source: &mut S,
    engine: &mut Engine,
    dir: &Path,
    catalogue: bool,
) -> Result<(), S::Error> {
    source.settle(engine)?;
    engine.flush_sinks()?;
    source.commit(engine)?;
    source.checkpoint(&mut engine.state);
    source.saved(engine.state.save(dir))?;
    if catalogue {
        source.exported(engine.export_types(false))?;
    }
    Ok(())
}

/// The end of a run, after every source: pending storm summaries go out,
/// the sinks are flushed, the state is saved (with a store) and the type
/// catalogue is exported one last time.
pub fn close(engine: &mut Engine, store: Option<&Path>) -> Result<(), PipelineError> {
    engine.finish();
    engine.flush_sinks()?;
    if let Some(dir) = store {
        engine.state.save(dir)?;
    }
    engine.export_types(true)?;
    Ok(())
}
