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
//!     save         the State is saved atomically, committed behind the
//!                  engine: durable before the next checkpoint's commit
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
//! * The save is committed on a thread while the engine reads on
//!   ([`State::save_behind`](crate::state::State::save_behind)), and the
//!   next checkpoint waits for it to be durable *before* its source commit.
//!   So a committed source offset is never more than one checkpoint ahead
//!   of the durable state, exactly as with a save that blocks: a crash
//!   while the save is in flight is the same as a crash just before it
//!   (for Kafka, a crash between the commit and the save). [`close`]'s
//!   last save blocks.
//!
//! A crash therefore repeats at most the records after the last save, and
//! deterministic alert ids let the sinks drop repeats.
//!
//! Changes that come from outside the input (the control API's resolve and
//! mute, [`Commands`]) are applied at each step, between two polls, and
//! make the next checkpoint due at once; when nothing was pushed since the
//! last checkpoint (a quiet stream) the state is saved as it stands, since
//! its resume points still hold. The commands hear when the save that
//! holds them is done, and only then answer their callers.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::alert::SinkError;
use crate::engine::{Engine, PipelineError};
use crate::state::StateError;

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

/// An input the driver can run: it pushes what it reads into its engine
/// and knows where it stands. The engine is reached through the source
/// ([`Source::engine`]) because one source shares it: the Kafka consumer's
/// rebalance callbacks commit from inside its poll, so its engine lives
/// behind a lock and the source is a view taken for one step. Required are
/// the two accessors, [`Source::poll`] and [`Source::checkpoint`]; the rest
/// default to what a source without transactions or held-open records
/// needs.
pub trait Source {
    /// The error the run (or the step) ends with.
    type Error: From<SinkError> + From<StateError>;

    /// The engine this source feeds.
    fn engine(&mut self) -> &mut Engine;

    /// Where the cadence stands since the last checkpoint (kept by the
    /// source so that a checkpoint taken outside the loop, a Kafka
    /// revocation, restarts it too).
    fn pace(&mut self) -> &mut Pace;

    /// Reads some input and pushes it into the engine (through the parser:
    /// the engine is its `RecordSink`).
    fn poll(&mut self) -> Result<Poll, Self::Error>;

    /// Whether everything pushed so far is a complete set of records, so
    /// that a checkpoint taken now resumes as if the input had not been
    /// cut. Asked only when a checkpoint is due.
    fn at_boundary(&self) -> bool {
        true
    }

    /// Hands whatever the source still holds open (a record whose trace
    /// may go on) to the engine: the first step of every checkpoint.
    fn settle(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Commits the input consumed so far at the source (a Kafka
    /// transaction); runs after the sinks are flushed and before the state
    /// is saved.
    fn commit(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Writes the source's resume points into the engine's state, which is
    /// saved next.
    fn checkpoint(&mut self);

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

/// Changes from outside the input (the control API's resolve and mute),
/// queued while the engine runs. The driver hands them the engine between
/// two polls, where no record is half-processed, and tells them when the
/// state holding them has been saved, so a caller hears back only once a
/// change is durable.
pub trait Commands: std::fmt::Debug {
    /// Applies what is queued to `engine`; true when something applied is
    /// still waiting for a save.
    fn apply(&self, engine: &mut Engine) -> bool;
    /// The state of `engine` was saved (`Ok`) or its save failed (`Err`,
    /// why): called after every save the driver makes with these commands.
    fn saved(&self, engine: &Engine, outcome: Result<(), String>);
}

/// The cadence's progress since the last checkpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pace {
    /// Records pushed.
    pub since: u64,
    /// When the first of them was pushed (or a source opened its batch).
    pub started: Option<Instant>,
    /// Steps taken: a busy stream reads the clock for the interval only
    /// every [`CLOCK_EVERY`] steps (a clock read per record is measurable
    /// at full speed).
    pub steps: u32,
}

/// While records flow, the interval is checked every this many steps; an
/// idle step always checks it, so a quiet stream still commits on time.
pub const CLOCK_EVERY: u32 = 64;

impl Pace {
    /// `n` more records pushed.
    pub fn pushed(&mut self, n: u64) {
        self.since += n;
        if n > 0 && self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }
}

/// When the driver checkpoints, and where the state goes.
#[derive(Clone, Copy, Debug)]
pub struct Cadence<'a> {
    /// Records between checkpoints (at least 1).
    pub records: u64,
    /// Wall-clock time from the first record after a checkpoint to the
    /// next checkpoint, for streams that may be quiet.
    pub interval: Option<Duration>,
    /// The state directory; without one nothing is checkpointed.
    pub store: Option<&'a Path>,
    /// Commands applied at each step, saved at the next checkpoint.
    pub commands: Option<&'a dyn Commands>,
}

impl<'a> Cadence<'a> {
    /// Every `records` records, into `store`.
    pub fn every(records: u64, store: Option<&'a Path>) -> Cadence<'a> {
        Cadence {
            records: records.max(1),
            interval: None,
            store,
            commands: None,
        }
    }

    /// Whether `pace` calls for a checkpoint; the clock is read only when
    /// `look` (see [`Pace::steps`]).
    fn due(&self, pace: &Pace, look: bool) -> bool {
        pace.since >= self.records
            || (look
                && self
                    .interval
                    .is_some_and(|i| pace.started.is_some_and(|s| s.elapsed() >= i)))
    }
}

/// What one [`step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stepped {
    pub poll: Poll,
    /// A checkpoint was taken after the poll (not counting the save of a
    /// quiet stream's state for queued [`Commands`]).
    pub checkpointed: bool,
}

/// One turn of the loop: poll once, then checkpoint if the cadence says so
/// and the source is at a boundary. [`drive`] repeats it to the end of the
/// input; the Kafka source calls it once per consumer poll, with its lock
/// held only for the step.
pub fn step<S: Source>(source: &mut S, cadence: &Cadence<'_>) -> Result<Stepped, S::Error> {
    let poll = source.poll()?;
    let pace = source.pace();
    if let Poll::Pushed(n) = poll {
        pace.pushed(n);
    }
    pace.steps = pace.steps.wrapping_add(1);
    let look = poll == Poll::Idle || pace.steps.is_multiple_of(CLOCK_EVERY);
    let waiting = cadence.commands.is_some_and(|c| c.apply(source.engine()));
    let mut checkpointed = false;
    if poll != Poll::End
        && let Some(dir) = cadence.store
    {
        if (cadence.due(source.pace(), look) || waiting && source.pace().since > 0)
            && source.at_boundary()
        {
            checkpoint_with(source, dir, true, cadence.commands.filter(|_| waiting))?;
            checkpointed = true;
        } else if waiting && source.pace().since == 0 {
            // Nothing came in since the last checkpoint (a quiet stream):
            // its resume points still hold, so the state is saved as it
            // is, with the commands, without waiting for input.
            source.engine().flush_sinks()?;
            let saved = source.engine().state.save(dir);
            let outcome = saved.as_ref().map(|_| ()).map_err(ToString::to_string);
            source.saved(saved)?;
            let exported = source.engine().export_types(false);
            source.exported(exported)?;
            if let Some(c) = cadence.commands {
                c.saved(source.engine(), outcome);
            }
        }
    }
    Ok(Stepped { poll, checkpointed })
}

/// What [`drive`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Driven {
    /// Records pushed.
    pub records: u64,
    /// Checkpoints taken, the one at the end included.
    pub checkpoints: u64,
}

/// Runs `source` to its end: [`step`] by step, and at the end settles the
/// source and, with a store, takes a last checkpoint (without the
/// catalogue: [`close`] exports it once, last).
pub fn drive<S: Source>(source: &mut S, cadence: &Cadence<'_>) -> Result<Driven, S::Error> {
    let mut driven = Driven::default();
    loop {
        let s = step(source, cadence)?;
        driven.checkpoints += u64::from(s.checkpointed);
        match s.poll {
            Poll::End => break,
            Poll::Pushed(n) => driven.records += n,
            Poll::Idle => {}
        }
    }
    match cadence.store {
        Some(dir) => {
            checkpoint(source, dir, false)?;
            driven.checkpoints += 1;
        }
        None => source.settle()?,
    }
    Ok(driven)
}

/// One checkpoint, in the order the module doc argues: settle → flush
/// sinks → commit → resume points → save → catalogue (when `catalogue`).
/// Restarts the source's pace.
pub fn checkpoint<S: Source>(source: &mut S, dir: &Path, catalogue: bool) -> Result<(), S::Error> {
    checkpoint_with(source, dir, catalogue, None)
}

/// [`checkpoint`], telling `commands` how the save went once the catalogue
/// (the API's view among it) is exported.
fn checkpoint_with<S: Source>(
    source: &mut S,
    dir: &Path,
    catalogue: bool,
    commands: Option<&dyn Commands>,
) -> Result<(), S::Error> {
    source.settle()?;
    source.engine().flush_sinks()?;
    // The previous checkpoint was committed behind the engine: it is
    // durable before the source commits past it (its failure is handled
    // as a failed save).
    let behind = crate::state::State::durable(dir);
    if behind.is_err() {
        source.saved(behind)?;
    }
    source.commit()?;
    *source.pace() = Pace::default();
    source.checkpoint();
    // A checkpoint that answers waiting API writes is saved durably before
    // they hear "saved" (a 200 must survive a crash); any other commits
    // behind the engine.
    let saved = match commands {
        Some(_) => source.engine().state.save(dir),
        None => source.engine().state.save_behind(dir),
    };
    let outcome = saved.as_ref().map(|_| ()).map_err(ToString::to_string);
    source.saved(saved)?;
    if catalogue {
        let exported = source.engine().export_types(false);
        source.exported(exported)?;
    }
    if let Some(c) = commands {
        c.saved(source.engine(), outcome);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertSink, Catalogue, TypeCatalogue};
    use crate::config::Config;
    use crate::engine::BaselineOptions;
    use crate::metrics::Metrics;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<String>>>;

    fn note(log: &Log, what: &str) {
        log.lock().unwrap().push(what.to_string());
    }

    /// A sink that writes its flushes and catalogue exports into the log.
    struct Recording(Log);

    impl AlertSink for Recording {
        fn emit(&mut self, _: &Alert) -> Result<(), SinkError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            note(&self.0, "flush");
            Ok(())
        }
        fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
            Some(self)
        }
        fn name(&self) -> &str {
            "recording"
        }
    }

    impl TypeCatalogue for Recording {
        fn export(&mut self, _: &Catalogue<'_>, last: bool) -> Result<(), SinkError> {
            note(
                &self.0,
                if last {
                    "catalogue (last)"
                } else {
                    "catalogue"
                },
            );
            Ok(())
        }
    }

    /// Ten records, one per poll; a boundary only after even counts.
    struct Counting {
        engine: Engine,
        pace: Pace,
        log: Log,
        pushed: u64,
    }

    impl Source for Counting {
        type Error = PipelineError;
        fn engine(&mut self) -> &mut Engine {
            &mut self.engine
        }
        fn pace(&mut self) -> &mut Pace {
            &mut self.pace
        }
        fn poll(&mut self) -> Result<Poll, PipelineError> {
            if self.pushed == 10 {
                return Ok(Poll::End);
            }
            self.pushed += 1;
            Ok(Poll::Pushed(1))
        }
        fn at_boundary(&self) -> bool {
            self.pushed.is_multiple_of(2)
        }
        fn settle(&mut self) -> Result<(), PipelineError> {
            note(&self.log, "settle");
            Ok(())
        }
        fn commit(&mut self) -> Result<(), PipelineError> {
            note(&self.log, "commit");
            Ok(())
        }
        fn checkpoint(&mut self) {
            note(&self.log, &format!("resume at {}", self.pushed));
        }
        fn saved(&mut self, result: Result<(), StateError>) -> Result<(), PipelineError> {
            note(&self.log, "saved");
            Ok(result?)
        }
    }

    fn counting(log: &Log) -> Counting {
        let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(Recording(log.clone()))];
        let engine = Engine::new(
            &Config::default(),
            None,
            &BaselineOptions::default(),
            sinks,
            Arc::new(Metrics::default()),
        )
        .unwrap();
        Counting {
            engine,
            pace: Pace::default(),
            log: log.clone(),
            pushed: 0,
        }
    }

    #[test]
    fn checkpoints_wait_for_a_boundary_and_run_in_the_documented_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::default();
        let mut src = counting(&log);
        // Due after 3 records, but the source is at a boundary only after
        // even counts: checkpoints at 4 and 8 (3 more records each time),
        // then the last one at the end, without the catalogue.
        let driven = drive(&mut src, &Cadence::every(3, Some(dir.path()))).unwrap();
        assert_eq!(driven.records, 10);
        assert_eq!(driven.checkpoints, 3);
        let one = |at: u64| {
            [
                "settle".to_string(),
                "flush".into(),
                "commit".into(),
                format!("resume at {at}"),
                "saved".into(),
                "catalogue".into(),
            ]
        };
        let mut want: Vec<String> = one(4).into_iter().chain(one(8)).collect();
        want.extend(one(10).into_iter().take(5));
        assert_eq!(*log.lock().unwrap(), want);
        log.lock().unwrap().clear();
        close(&mut src.engine, Some(dir.path())).unwrap();
        assert_eq!(*log.lock().unwrap(), ["flush", "catalogue (last)"]);
    }

    /// Commands that wait for a save once queued, and log when told.
    #[derive(Debug, Default)]
    struct Queued {
        waiting: std::sync::atomic::AtomicBool,
        log: Log,
    }

    impl Commands for Queued {
        fn apply(&self, _: &mut Engine) -> bool {
            self.waiting.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn saved(&self, _: &Engine, outcome: Result<(), String>) {
            assert!(outcome.is_ok());
            self.waiting
                .store(false, std::sync::atomic::Ordering::Relaxed);
            note(&self.log, "commands saved");
        }
    }

    #[test]
    fn a_queued_command_makes_the_next_boundary_a_checkpoint_and_hears_of_its_save() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::default();
        let mut src = counting(&log);
        let commands = Queued {
            waiting: true.into(),
            log: log.clone(),
        };
        let cadence = Cadence {
            commands: Some(&commands),
            ..Cadence::every(1_000, Some(dir.path()))
        };
        // Not due by the count, but a command waits: the first boundary
        // (after 2 records) checkpoints, then the commands hear of it.
        assert!(!step(&mut src, &cadence).unwrap().checkpointed);
        assert!(step(&mut src, &cadence).unwrap().checkpointed);
        assert_eq!(
            log.lock().unwrap().last().map(String::as_str),
            Some("commands saved")
        );
        assert!(log.lock().unwrap().contains(&"commit".to_string()));
        // Nothing waits any more: no checkpoint until the count is due.
        log.lock().unwrap().clear();
        assert!(!step(&mut src, &cadence).unwrap().checkpointed);
        assert!(!step(&mut src, &cadence).unwrap().checkpointed);
        assert!(log.lock().unwrap().is_empty());
    }

    /// A stream with nothing to read.
    struct Quiet(Counting);

    impl Source for Quiet {
        type Error = PipelineError;
        fn engine(&mut self) -> &mut Engine {
            &mut self.0.engine
        }
        fn pace(&mut self) -> &mut Pace {
            &mut self.0.pace
        }
        fn poll(&mut self) -> Result<Poll, PipelineError> {
            Ok(Poll::Idle)
        }
        fn commit(&mut self) -> Result<(), PipelineError> {
            note(&self.0.log, "commit");
            Ok(())
        }
        fn checkpoint(&mut self) {
            note(&self.0.log, "resume points");
        }
    }

    #[test]
    fn on_a_quiet_stream_a_command_is_saved_without_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::default();
        let mut src = Quiet(counting(&log));
        let commands = Queued {
            waiting: true.into(),
            log: log.clone(),
        };
        let cadence = Cadence {
            commands: Some(&commands),
            ..Cadence::every(1_000, Some(dir.path()))
        };
        // Not a checkpoint (nothing to commit, no resume points to write):
        // the resume points of the last one still hold, so the state is
        // saved as it is.
        assert!(!step(&mut src, &cadence).unwrap().checkpointed);
        assert_eq!(
            *log.lock().unwrap(),
            ["flush", "catalogue", "commands saved"]
        );
        assert!(crate::state::State::load(dir.path()).unwrap().is_some());
    }

    #[test]
    fn without_a_store_the_driver_only_settles_at_the_end() {
        let log = Log::default();
        let mut src = counting(&log);
        let driven = drive(&mut src, &Cadence::every(3, None)).unwrap();
        assert_eq!(driven.checkpoints, 0);
        assert_eq!(*log.lock().unwrap(), ["settle"]);
    }
}
