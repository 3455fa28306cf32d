//! Engine: the stages after parsing, wired together, with their state.
//!
//! [`Engine`] is the single-threaded core every source feeds: it receives
//! parsed records (it is the parser's [`RecordSink`]), fingerprints errors,
//! updates the baseline and windows, asks the detector and the release
//! checks, and hands alerts to the sinks at once. It knows nothing of where
//! records come from or how progress is made durable; the drivers
//! (`pipeline::replay`, `source::kafka`, `source::elasticsearch`) do.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::alert::{Alert, AlertSink, Kind, SinkError};
use crate::baseline::{Baseline, Origin};
use crate::config::{Config, Dur};
use crate::detect::Detector;
use crate::fingerprint::{self, FingerprintError, Fingerprinter, Identity, Typed};
use crate::keys;
use crate::metrics::{Metrics, Snapshot};
use crate::parse::{ParseError, RecordSink};
use crate::record::{BadReason, EventTime, LineMeta, Record};
use crate::release;
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

pub use crate::alert::now_ms;

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
    /// Judges record times from the future (window/clock.rs).
    clock: crate::window::clock::FutureGuard,
    /// `line`'s verdict on the record whose `error` may follow.
    line_verdict: Option<(EventTime, Judged)>,
    /// Unique in the process ([`Engine::id`]).
    id: u64,
    /// The wall-clock silence clock ([`Engine::silent_minute`]): when the
    /// watermark was first seen unchanged by an idle poll, and that
    /// watermark.
    idle: Option<(Instant, EventTime)>,
    /// The last minute the signals were judged for (by records or by the
    /// silence clock): each minute is judged once.
    signals_minute: i64,
}

/// Numbers the engines of a process.
static ENGINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
        Engine::with_fingerprinter(cfg, fp, state, opts, sinks, metrics)
    }

    /// [`Engine::new`] with the masking rules already compiled from
    /// `cfg.fingerprint` (a clone shares the compiled regexes): compiling
    /// them costs milliseconds, which dominates when many short-lived
    /// engines are built (the `state_load` fuzz target builds one per input).
    pub fn with_fingerprinter(
        cfg: &Config,
        fp: Fingerprinter,
        state: Option<State>,
        opts: &BaselineOptions,
        sinks: Vec<Box<dyn AlertSink>>,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, PipelineError> {
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
        repair_future_state(&mut state, now_ms(), cfg.window.future_grace.as_millis());
        if crate::baseline::rederive::needed(&state.baseline, &fp) {
            crate::baseline::rederive::rederive(&mut state, &fp);
        }
        // Snoozes are kept by id: one stored under an id that became an
        // alias (a re-derivation, or a merge by an older faultline) follows it.
        crate::detect::snooze::follow_aliases(&mut state.snoozes, &state.baseline);
        metrics
            .types_tracked
            .store(state.baseline.known() as u64, Ordering::Relaxed);
        for s in &sinks {
            // Counters exported from 0, as Prometheus' rate() wants them.
            metrics.sink_known(s.kind(), s.waiting().map(|n| n as u64));
        }
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
            clock: crate::window::clock::FutureGuard::new(cfg.window.future_grace.as_millis()),
            line_verdict: None,
            id: ENGINES.fetch_add(1, Ordering::Relaxed),
            idle: None,
            signals_minute: i64::MIN,
        })
    }

    /// This engine among the process' engines: a source that rebuilds its
    /// engine from the saved state (Kafka, after a rollback) gets a new
    /// one, so a change made to the old engine and not saved is known lost.
    pub fn id(&self) -> u64 {
        self.id
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

    /// Ends the engine, handing back its state and its fingerprinter. A
    /// caller that builds engines one after another reuses the
    /// fingerprinter: a clone starts with empty regex caches (each `Regex`
    /// clone gets a cache pool of its own), and filling them again was most
    /// of the `state_load` fuzz target's time per input.
    pub fn into_parts(self) -> (State, Fingerprinter) {
        (self.state, self.fp)
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
                if !self.state.snoozes.is_empty() {
                    // Snoozes end in event time, as a replay would end them.
                    crate::detect::snooze::expire(
                        &mut self.state.snoozes,
                        &mut self.state.baseline,
                        Some(t),
                        None,
                    );
                }
                let mut out = std::mem::take(&mut self.pending);
                self.state.detector.on_watermark(t, now_ms(), &mut out);
                if !self.learning(t) {
                    release::on_minute(
                        &self.state.baseline,
                        &self.state.rates,
                        &mut self.state.release,
                        &self.cfg,
                        minute,
                        now_ms(),
                        &mut out,
                    );
                    if minute > self.signals_minute {
                        self.signals_minute = minute;
                        crate::signals::detect::on_minute(
                            &mut self.state.signals,
                            &self.state.rates,
                            &self.cfg,
                            minute,
                            now_ms(),
                            &mut out,
                        );
                    }
                }
                self.signal_gauges(minute);
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

    fn signal_gauges(&self, minute: i64) {
        if self.cfg.signals.enabled {
            let w = (self.cfg.signals.traffic_window.as_millis() / 60_000).max(1);
            let g = crate::signals::gauges(&self.state.signals, minute - w, minute - 1);
            if let Ok(mut m) = self.metrics.signals.lock() {
                *m = g;
            }
        }
    }

    /// Moves event time to `t` without a record: scale-out's stage 2 feeds
    /// each partition's engine the watermarks of the whole input, so an
    /// engine owning a few services keeps the stream's clock (closes its
    /// windows, judges its minutes) as one engine of every service would,
    /// and starts its warm-up with the stream rather than with its own
    /// first record. A time beyond the future guard is ignored.
    pub fn tick(&mut self, t: EventTime) {
        if t > now_ms().saturating_add(self.cfg.window.future_grace.as_millis()) {
            return;
        }
        let t = self.event_time(Some(t));
        self.advance(t);
        self.deliver();
    }

    /// Under `run`, when no input delivers anything (an idle poll at
    /// `wall`): the minute the signals' clock has reached if it is later
    /// than the last one judged, else `None`. The clock is the watermark
    /// plus the wall time since it stopped moving, less a grace of
    /// `signals.silence_after` (at least `kafka.max_idle`, the aligner's
    /// rule for a partition that can still deliver), and never past this
    /// machine's clock less the same grace. So a silence of
    /// every input still moves time for `traffic_drop`; replay never polls
    /// idle and stays purely event-time. See [`Engine::judge_silence`].
    pub fn silent_minute(&mut self, wall: Instant) -> Option<i64> {
        if !self.cfg.signals.enabled {
            return None;
        }
        let wm = self.state.watermark?;
        let (since, seen) = *self.idle.get_or_insert((wall, wm));
        if seen != wm {
            self.idle = Some((wall, wm));
            return None;
        }
        let grace =
            (self.cfg.signals.silence_after.as_millis()).max(self.cfg.kafka.max_idle.as_millis());
        let silent = wall.saturating_duration_since(since).as_millis() as i64;
        if silent < grace {
            return None;
        }
        let clock = (wm + silent).min(now_ms()) - grace;
        // Minutes up to the watermark's are the records' to judge.
        let minute = clock.div_euclid(60_000);
        let judged = self.signals_minute.max(wm.div_euclid(60_000));
        (minute > judged && !self.learning(clock)).then_some(minute)
    }

    /// Judges the signals for the minutes up to `minute` that the silence
    /// clock entered (at most a day of them: an engine idle for longer
    /// judges the last day) and delivers what they raise; the number of
    /// alerts. The source has opened its batch first (the alerts must
    /// commit with it).
    pub fn judge_silence(&mut self, minute: i64) -> usize {
        let wm_minute = self
            .state
            .watermark
            .map_or(i64::MIN, |w| w.div_euclid(60_000));
        let first = self
            .signals_minute
            .max(wm_minute)
            .saturating_add(1)
            .max(minute - 1440);
        let mut out = std::mem::take(&mut self.pending);
        let before = out.len();
        for m in first..=minute {
            crate::signals::detect::on_minute(
                &mut self.state.signals,
                &self.state.rates,
                &self.cfg,
                m,
                now_ms(),
                &mut out,
            );
        }
        self.signals_minute = minute;
        self.signal_gauges(minute);
        let raised = out.len() - before;
        self.pending = out;
        self.deliver();
        raised
    }

    /// Sends pending alerts to every sink.
    fn deliver(&mut self) {
        for a in self.pending.drain(..) {
            count_alert(&self.metrics, a.kind);
            self.state.release.log(&a);
            for s in &mut self.sinks {
                match s.emit(&a) {
                    Ok(()) => self.metrics.sink_emitted(s.kind()),
                    Err(e) => {
                        self.metrics.sink_failed(s.kind());
                        if self.sink_error.is_none() {
                            self.sink_error = Some(e);
                        }
                    }
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
            let r = s.flush();
            if let Some(n) = s.waiting() {
                self.metrics.sink_waiting(s.kind(), n as u64);
            }
            if r.is_err() {
                self.metrics.sink_failed(s.kind());
            }
            r?;
        }
        Ok(())
    }

    /// Drops the sinks now, each finishing as its `Drop` says (the
    /// Alertmanager sink stops its worker and writes its open alerts to its
    /// spool). A source that rebuilds its engine (Kafka, after a rollback)
    /// calls this first, so that the new sinks, opened on the same spool
    /// directories, start from everything the old ones held instead of
    /// sharing the files with them for a moment. The engine sends nothing
    /// afterwards.
    pub fn close_sinks(&mut self) {
        self.sinks.clear();
    }

    /// Hands the known types to every sink (the type catalogue export);
    /// `last` at the end of a run.
    pub fn export_types(&mut self, last: bool) -> Result<(), SinkError> {
        let types = crate::alert::Catalogue {
            baseline: &self.state.baseline,
            watermark: self.state.watermark,
            snoozes: Some(&self.state.snoozes),
        };
        for s in &mut self.sinks {
            if let Some(c) = s.catalogue() {
                c.export(&types, last)?;
            }
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
    /// ([`Learner::line_pairs`](crate::fingerprint::learn::Learner::line_pairs),
    /// computed by a parsing thread).
    pub fn teach_pairs(&mut self, pairs: &[(u64, u64)]) {
        self.state.baseline.learner.teach_pairs(pairs);
    }

    /// Processes one error record (also used by tools that bypass parsing).
    pub fn process_error(&mut self, rec: Record) {
        let started = Instant::now();
        let mut identity = std::mem::take(&mut self.identity);
        self.fp.identify_into(&rec, None, &mut identity);
        self.process_from(rec, &mut identity, started);
        self.identity = identity;
    }

    /// [`Engine::process_error`] for a record whose identity was already
    /// computed with a clone of [`Engine::fingerprinter`] (identifying is
    /// stateless and the costly part, so parsing threads do it).
    pub fn process_identified(&mut self, rec: Record, mut identity: Identity) {
        self.process_from(rec, &mut identity, Instant::now());
    }

    /// The stateful part of processing an error: learning, baseline,
    /// detection, in the order records arrive.
    fn process_from(&mut self, rec: Record, identity: &mut Identity, started: Instant) {
        let mut judged = Judged::Accept;
        if let Some(t) = rec.time {
            judged = match self.line_verdict.take() {
                Some((seen, v)) if seen == t => v,
                _ => self.judge_time(t),
            };
            if judged == Judged::Refuse {
                return;
            }
        }
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        let time = self.event_time(rec.time);
        let late = self
            .state
            .watermark
            .is_some_and(|w| time < w - self.cfg.window.lateness.as_millis());
        if late {
            self.metrics.late.fetch_add(1, Ordering::Relaxed);
        }
        if judged == Judged::Accept {
            self.advance(time);
        }
        if let Some(svc) = rec.service.as_deref() {
            let v = rec.version.as_deref().unwrap_or("");
            self.count_rate(svc, v, Some(time), 0, 1);
        }
        // The context's learned layout (varying header columns) first: the
        // learner sees what `faultline fingerprint` would give it.
        // A row whose columns a directive of its source declared is masked
        // by them instead.
        let line = rec.message.lines().next().unwrap_or("");
        if !self
            .fp
            .lay_out_declared(&mut self.state.baseline.layouts, line, identity)
        {
            self.state.baseline.lay_out(identity);
        }
        let mut typed = std::mem::take(&mut self.typed);
        if fingerprint::classify_into(&mut self.state.baseline.learner, identity, &mut typed) {
            // A type merged into another by an operator (`…/merge`) stays
            // the learner's type: its occurrences count for the target.
            let b = &self.state.baseline;
            if typed.merged.is_empty() && !b.aliases.is_empty() {
                let to = b.canonical(typed.fingerprint);
                if to != typed.fingerprint && b.is_known(to) {
                    typed.fingerprint = to;
                }
            }
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
        if !self.state.baseline.muted_merges.is_empty() {
            crate::detect::snooze::follow_merges(&mut self.state.snoozes, &mut self.state.baseline);
        }
        let snoozed = !self.state.snoozes.is_empty();
        if snoozed {
            crate::detect::snooze::on_occurrence(
                &mut self.state.snoozes,
                &mut self.state.baseline,
                typed.fingerprint,
                time,
            );
        }
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
        if snoozed && !learning {
            crate::detect::snooze::reopen(
                &mut self.state.snoozes,
                &self.state.baseline,
                typed.fingerprint,
                rec,
                time,
                now_ms(),
                self.cfg.alerts.samples,
                &mut out,
            );
        }
        for a in out[from..].iter_mut().filter(|a| a.kind == Kind::Novel) {
            release::enrich_novel(a, &self.state.baseline, &self.state.rates);
        }
        self.pending = out;
        self.metrics
            .types_tracked
            .store(self.state.baseline.known() as u64, Ordering::Relaxed);
        let learner = &self.state.baseline.learner;
        (self.metrics.learner_evicted).store(learner.evicted(), Ordering::Relaxed);
        (self.metrics.learner_bytes).store(learner.charged_bytes() as u64, Ordering::Relaxed);
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
        // Bounded label values: beyond the caps, one "(other)" bucket.
        use crate::series::{MAX_SERVICES, MAX_VERSIONS, capped};
        let service = capped(
            service,
            rates.contains_key(service),
            rates.len(),
            MAX_SERVICES,
        );
        let version = match rates.get(service) {
            Some(v) => capped(version, v.contains_key(version), v.len(), MAX_VERSIONS),
            None => version,
        };
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

    /// What a record dated `t` may do (window/clock.rs): after the wall
    /// clock, which no log line can be, it is skipped and counted as
    /// `bad_timestamp`; only far ahead of the stream's recent times, which a
    /// real gap can also be, it is processed at its time but cannot move
    /// event time until the stream confirms it (counted as held).
    fn judge_time(&mut self, t: EventTime) -> Judged {
        use crate::window::clock::Ahead;
        match self.clock.check(t, now_ms()) {
            Ok(()) => Judged::Accept,
            Err(Ahead::OfClock(_)) => {
                self.bad(BadReason::BadTimestamp, 0);
                Judged::Refuse
            }
            Err(Ahead::OfStream(_)) => {
                self.metrics.held.fetch_add(1, Ordering::Relaxed);
                Judged::Hold
            }
        }
    }
}

/// [`Engine::judge_time`]'s verdict on a record's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judged {
    Accept,
    /// Processed at its time, but does not move event time.
    Hold,
    Refuse,
}

impl RecordSink for Engine {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.line_verdict = meta.time.map(|t| (t, self.judge_time(t)));
        let judged = self.line_verdict.map_or(Judged::Accept, |(_, v)| v);
        if judged == Judged::Refuse {
            return;
        }
        self.metrics.records.fetch_add(1, Ordering::Relaxed);
        let time = match meta.time {
            Some(t) => {
                let t = self.event_time(Some(t));
                if judged == Judged::Accept {
                    self.advance(t);
                }
                Some(t)
            }
            None => self.state.watermark,
        };
        if let Some(svc) = meta.service {
            self.count_rate(svc, meta.version.unwrap_or(""), time, 1, 0);
            if let Some(t) = time
                && meta.request.request
                && self.cfg.signals.enabled
            {
                let v = meta.version.unwrap_or("");
                let alpha = self.cfg.signals.relative_accuracy;
                self.state.signals.observe(svc, v, t, &meta.request, alpha);
            }
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

/// A state whose event time lies after this machine's clock (saved by a
/// version without the future-timestamp guard, from a record dated 2099)
/// would keep every later record "late" and alerting silent, without a
/// word. Says so, and lets event time (and warm-up, if it had not ended
/// before the bogus jump) restart from the next record; counts in windows
/// past the clock are dropped.
fn repair_future_state(state: &mut State, now: EventTime, grace_ms: i64) {
    let limit = now.saturating_add(grace_ms);
    let Some(w) = state.watermark.filter(|&w| w > limit) else {
        return;
    };
    let date = |t: EventTime| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| t.to_string())
    };
    tracing::warn!(
        "the state's event time {} is ahead of this machine's clock ({}): an older faultline \
         accepted a record from the future, which would keep every later record late and \
         alerting silent. Event time restarts from the next record.",
        date(w),
        date(now)
    );
    state.watermark = None;
    if state.warmup_until.is_some_and(|u| u > limit) {
        state.warmup_until = None;
        state.baseline.learned_from = None;
        state.baseline.learned_until = None;
    }
    let spec = state.baseline.spec;
    let last_bucket = spec.bucket_of(limit);
    // Types changed behind the baseline's change marks: the next checkpoint
    // writes them all.
    state.baseline.mark_all_dirty();
    for t in state.baseline.types.values_mut() {
        if let Some(win) = t.window.as_mut() {
            win.forget_after(last_bucket);
        }
        t.last_seen = t.last_seen.min(limit);
        // The store refuses a type first seen after it was last seen.
        t.first_seen = t.first_seen.min(t.last_seen);
    }
}

/// Counts one emitted alert under its kind. Here and not in `metrics`, so
/// that `metrics` stays below the alert sinks that report to it.
fn count_alert(m: &Metrics, kind: Kind) {
    match kind {
        Kind::Novel => &m.alerts_novel,
        Kind::Surge => &m.alerts_surge,
        Kind::Storm => &m.alerts_storm,
        Kind::ErrorRate => &m.alerts_error_rate,
        Kind::CanaryRegression => &m.alerts_canary_regression,
        Kind::Regression => &m.alerts_regression,
        Kind::EpisodeEnd => &m.alerts_episode_end,
        Kind::LatencyRegression => &m.alerts_latency_regression,
        Kind::TrafficDrop => &m.alerts_traffic_drop,
        Kind::TrafficSpike => &m.alerts_traffic_spike,
    }
    .fetch_add(1, Ordering::Relaxed);
}

/// An engine on the default configuration, fresh state and `sinks`: the
/// one setup the unit tests of the layers above the engine share.
#[cfg(test)]
pub(crate) fn test_engine(sinks: Vec<Box<dyn AlertSink>>) -> Engine {
    Engine::new(
        &Config::default(),
        None,
        &BaselineOptions::default(),
        sinks,
        Arc::new(Metrics::default()),
    )
    .expect("the default configuration builds an engine")
}
