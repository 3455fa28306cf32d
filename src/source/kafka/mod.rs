//! Kafka source: a consumer group feeding the [`Engine`], with alerts and
//! consumer offsets committed in one Kafka transaction per batch.
//!
//! The loop is the driver's (`source::driver`): each message is one
//! `driver::step` through a view of the shared core (`step.rs`), and every
//! commit is one `driver::checkpoint`. The partition queues are read on a
//! second thread (`fetch.rs`), which hands the records over in batches; the
//! thread that runs the loop parses, aligns, feeds the engine and commits. Per batch: begin a transaction →
//! process records (the Kafka alert sink and the dead-letter copies produce
//! inside it) → release records held open → flush the other sinks → send
//! the consumer offsets to the transaction → commit it → record the
//! offsets per partition in the state → save it → export the catalogue. A read_committed
//! consumer of the alerts topic therefore sees an alert exactly when the
//! records that caused it are marked consumed. A crash before the commit
//! aborts both; a crash between the commit and the state save leaves the
//! state behind the committed offsets, so on assignment the source seeks to
//! the *state's* offset and re-processes that gap "silently" (state
//! updated, no alert delivered: they were committed already). Without a
//! producer (no alerts or dead-letter topic) offsets are committed by the
//! consumer at the same point, and the file sink's id dedup absorbs repeats.
//!
//! Failures (a sink, the broker) abort the batch, reload the state saved
//! after the last commit, seek back and retry with exponential backoff;
//! while retrying nothing is polled, so consumption pauses instead of
//! buffering (librdkafka's prefetch queue is bounded). After
//! `kafka.max_failures` consecutive failures `/healthz` reports unhealthy.
//! See `docs/kafka.md`.

mod aligned;
pub(crate) mod client;
mod dead_letter;
mod fetch;
pub(crate) mod gated;
mod health;
mod phases;
mod queues;
mod rebalance;
mod step;
mod transaction;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use crate::alert::kafka::{AuthWatch, KafkaAlertSink, SharedProducer};
use crate::alert::{AlertSink, SinkError};
use crate::config::Config;
use crate::engine::{BaselineOptions, Engine, PipelineError};
use crate::metrics::Metrics;
use crate::parse::{Parser, RecordSink, StreamState};
use crate::record::BadReason;
use crate::source::align::Aligner;
use crate::state::{State, StateError};

use crate::source::driver::{self, Cadence, Pace};
use aligned::{Align, Ev, Part, PartStream};
use client::{Ctx, client_config, lock};
use gated::Gated;
pub use health::Status;
use step::Step;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka {context}: {source}")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error(
        "kafka: the producer hit a fatal error ({0}); another instance may use the same kafka.transactional_id"
    )]
    Fatal(String),
    #[error(
        "kafka: authentication to {brokers} failed ({reason}). Check sasl.username and sasl.password (in [kafka.properties], [kafka.property_files] or FAULTLINE__KAFKA__PROPERTIES__…), sasl.mechanism and security.protocol; not retrying, a rejected credential does not fix itself"
    )]
    Authentication { brokers: String, reason: String },
    #[error("kafka source: {0}")]
    Stopped(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> KafkaSourceError {
    move |source| KafkaSourceError::Kafka { context, source }
}

/// Builds the sinks other than Kafka (stdout, file).
pub type MakeSinks = Box<dyn Fn() -> Result<Vec<Box<dyn AlertSink>>, SinkError> + Send>;

/// What `faultline run` passes in.
pub struct RunOptions {
    pub state_dir: PathBuf,
    pub baseline: BaselineOptions,
    /// Builds the sinks other than Kafka (stdout, file); called again when
    /// a failed batch is rolled back, so it must be cheap and repeatable.
    pub make_sinks: MakeSinks,
    /// Set by the signal handler: finish the batch, commit, return.
    pub shutdown: Arc<AtomicBool>,
    /// The control API's writes, applied between polls (`driver::Commands`).
    pub commands: Option<Arc<dyn driver::Commands + Send + Sync>>,
    /// The process ends when [`run`] returns (`faultline run`). After a
    /// clean stop (the last commit flushed every sink and committed the
    /// transaction, the state is durable, the consumer has left the
    /// group) the engine and the producer are then left to the OS instead
    /// of being freed map by map and closed thread by thread: nothing of
    /// theirs is still to be written, and on a large state the freeing is
    /// a measurable share of the exit. Off for a caller that goes on.
    pub exit_after: bool,
}

type Partition = (String, i32);

/// One partition's share of the open batch.
struct BatchPart {
    topic: String,
    partition: i32,
    first: i64,
    next: i64,
}

/// Why a batch did not commit.
enum BatchError {
    /// Abort, roll back, retry later.
    Retry(String),
    /// Stop the service (fenced producer, unusable state).
    Fatal(KafkaSourceError),
}

/// Everything the poll loop and the rebalance callback share. Rebalance
/// callbacks run inside `poll`, on the polling thread, never while the
/// loop holds the lock.
struct Core {
    cfg: Config,
    parser: Parser,
    engine: Engine,
    opts_baseline: BaselineOptions,
    make_sinks: MakeSinks,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    producer: Option<SharedProducer>,
    state_dir: PathBuf,
    silent: Arc<AtomicBool>,
    in_txn: bool,
    /// Open batch: per partition, the first and the next offset.
    batch: Vec<BatchPart>,
    /// Messages the engine got in the open batch (released by the
    /// aligner), and when the batch began: the driver's cadence.
    pace: Pace,
    /// Messages released to the engine so far (a step's poll reports its
    /// share to the driver).
    released: u64,
    /// Partition → committed offset below which records are re-processed
    /// silently.
    silent_until: HashMap<Partition, i64>,
    /// A fatal error raised inside a callback, returned by the loop.
    fatal: Option<KafkaSourceError>,
    /// Commits give up retrying after this instant (shutdown).
    deadline: Option<Instant>,
    /// The last state save after a commit failed.
    state_unsaved: bool,
    /// `FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT=N` (tests only).
    crash_after_commit: Option<u64>,
    /// Per partition: the parser's stream (traces split across messages
    /// are joined there) and the group of events it is filling. Emptied
    /// into the aligner before every commit, so no committed offset is
    /// ever ahead of a record held open (see `docs/input.md`).
    streams: Vec<PartStream>,
    /// Parsed groups waiting per partition, released to the engine in
    /// event-time order across partitions (`aligned.rs`).
    align: Align,
    /// The alignment's clock: it advances only while the consumer has
    /// nothing to deliver. A partition is idle after `kafka.max_idle` of
    /// that: while the consumer is busy handing over other partitions'
    /// fetched records, an empty partition is waiting its turn, not idle.
    clock: Instant,
    /// Every topic name seen, shared: partition keys that hold the same
    /// `Arc` compare by pointer, not by their bytes, several times per
    /// record.
    topics: Vec<Arc<str>>,
    /// Where the wall time goes (logged at the end of the loop).
    phases: phases::Phases,
    /// The partitions' lanes between the fetcher thread and this core
    /// (`fetch.rs`): assigned and revoked with the partitions, rewound
    /// with a rolled-back batch.
    flow: Arc<fetch::Flow>,
    /// Rollbacks so far: a batch being fed checks whether it went stale.
    rewinds: u64,
    /// `init_transactions`, running on its own thread from the start
    /// (`start_init`): joined before the first transaction begins, or by
    /// the loop once it is done (a quiet topic may never begin one).
    init: Option<std::thread::JoinHandle<Result<(), KafkaSourceError>>>,
}

fn state_key(t: &str, p: i32) -> String {
    format!("{t}/{p}")
}

/// The engine with its sinks (the Kafka alert sink when configured), each
/// gated by `silent`: at start, and again after a rolled-back batch. Built
/// once at start: compiling the masking rules and the parser's patterns is
/// a large part of a start-up's CPU, and a drain's wall time counts from
/// the process start (a placeholder engine, replaced at once, used to
/// compile them a second time).
fn new_engine(
    cfg: &Config,
    baseline: &BaselineOptions,
    make_sinks: &MakeSinks,
    producer: Option<&SharedProducer>,
    silent: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
    state: Option<State>,
) -> Result<Engine, KafkaSourceError> {
    let mut sinks: Vec<Box<dyn AlertSink>> = make_sinks()?;
    if let (Some(p), false) = (producer, cfg.kafka.alerts_topic.is_empty()) {
        sinks.push(Box::new(KafkaAlertSink::new(
            p.clone(),
            &cfg.kafka.alerts_topic,
            true,
        )));
    }
    let sinks = sinks
        .into_iter()
        .map(|inner| {
            Box::new(Gated {
                inner,
                silent: silent.clone(),
            }) as Box<dyn AlertSink>
        })
        .collect();
    let mut engine = Engine::new(cfg, state, baseline, sinks, metrics.clone())?;
    engine.forget_emitted();
    // The catalogues (the API's view and triage page among them) show
    // the state's types from the start: on a quiet stream the first
    // checkpoint can be far away, and a restarted instance would list
    // no types until then. A failure here is not fatal: the catalogue
    // is a snapshot that the next checkpoint exports again.
    if let Err(e) = engine.export_types(false) {
        tracing::warn!(error = %e, "exporting the known types at start failed; the next checkpoint exports them again");
    }
    Ok(engine)
}

impl Core {
    /// The shared name of `topic`.
    fn topic(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| ***t == *topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.push(t.clone());
        t
    }

    fn build_engine(&self, state: Option<State>) -> Result<Engine, KafkaSourceError> {
        new_engine(
            &self.cfg,
            &self.opts_baseline,
            &self.make_sinks,
            self.producer.as_ref(),
            &self.silent,
            &self.metrics,
            state,
        )
    }

    /// Waits for `init_transactions` (started at start-up on its own
    /// thread) if it has not been waited for yet: no transaction may begin
    /// before it has fenced an older instance with the same id. Marks the
    /// service ready once it is done.
    pub(super) fn await_init(&mut self) -> Result<(), BatchError> {
        let Some(h) = self.init.take() else {
            return Ok(());
        };
        match h.join() {
            Ok(Ok(())) => {
                self.status.ready.store(true, Ordering::Relaxed);
                tracing::info!(topics = ?self.cfg.kafka.topics, group = %self.cfg.kafka.group_id, transactional = self.producer.is_some(), "consuming");
                Ok(())
            }
            Ok(Err(e)) => Err(BatchError::Fatal(e)),
            Err(_) => Err(BatchError::Fatal(KafkaSourceError::Stopped(
                "the init_transactions thread panicked".into(),
            ))),
        }
    }

    /// Emits the records held open for a trace that may continue: all of
    /// them (`all`: consumption ends here), those held for
    /// `input.join_max_millis` (at most 10 s) of the alignment's clock,
    /// which moves only while nothing can be read: a quiet partition's
    /// last trace is then complete; and, sooner, those held for
    /// `kafka.hold_at_end` whose partition the consumer reported at its
    /// end. A shipper sends a trace's lines together: once the broker has
    /// answered a fetch with nothing after the held record (it waits up
    /// to `fetch.wait.max.ms` for more first), the rest of the trace is
    /// not on its way, and waiting longer only delays the alert of a
    /// sparse stream of errors (issue 15: p99 ~4 s at 2 records/s).
    ///
    /// Either way only time in which the partition was read counts: a
    /// partition with records waiting in the aligner is not read (its
    /// queue keeps them), so the continuation of its open trace may be in
    /// its queue while the alignment's clock moves on other partitions'
    /// account (`unread_while_quiet` moves its hold's start on by that
    /// time), and it is released only with its buffer empty, at the idle
    /// step, after a pass found its queue empty; at its end, the broker has
    /// nothing after the held record either. (Likely how the batched
    /// reads tried in an earlier session cut traces: they left many
    /// records in a partition's buffer, so it went unread for long while
    /// the clock moved; not confirmed by trying them again.) With the
    /// fetcher on its own thread, "found empty" is the fetcher's: only the
    /// partitions in `read`, which its last pass read and found empty
    /// (every record it read before is fed by now), may release a held
    /// record short of `all`.
    fn release_held(&mut self, now: Instant, all: bool, read: &[Part]) {
        let grace = Duration::from_millis(self.cfg.input.join_max_millis.min(10_000));
        let at_end = self.cfg.kafka.hold_at_end.0.min(grace);
        for s in &mut self.streams {
            let Some(t) = s.held_at else {
                if all {
                    s.finish(&self.parser, &mut self.engine, &mut self.align, now);
                }
                continue;
            };
            let release = all || {
                let key = s.key();
                let held = now.saturating_duration_since(t);
                read.contains(&key)
                    && self.align.waiting(&key) == 0
                    && (held >= grace || (held >= at_end && self.align.at_end(&key)))
            };
            if release {
                s.finish(&self.parser, &mut self.engine, &mut self.align, now);
            }
        }
    }

    /// The loop waited `quiet` with nothing to read, but a partition with
    /// records waiting in the aligner was not read at all: its queue may
    /// hold the next line of its open trace, so that time does not count
    /// as its trace's hold.
    fn unread_while_quiet(&mut self, quiet: Duration) {
        for s in &mut self.streams {
            if s.held_at.is_some() && self.align.waiting(&s.key()) > 0 {
                s.held_at = s.held_at.map(|t| t + quiet);
            }
        }
    }

    /// One message through the parser into its partition's buffer, then
    /// into the engine whatever the alignment releases.
    fn process(&mut self, m: &fetch::Msg<'_>, now: Instant) -> Result<(), BatchError> {
        self.take(m, now)?;
        self.drain(now)
    }

    /// One message through the parser into its partition's buffer; the
    /// release to the engine is the caller's ([`Core::drain`]), after one
    /// message or after a run of them (`Step::run`).
    fn take(&mut self, m: &fetch::Msg<'_>, now: Instant) -> Result<(), BatchError> {
        let (topic, part, off) = (m.topic, m.partition, m.offset);
        self.begin()?;
        match self
            .batch
            .iter_mut()
            .find(|b| b.partition == part && b.topic == topic)
        {
            Some(b) => b.next = off + 1,
            None => self.batch.push(BatchPart {
                topic: topic.to_string(),
                partition: part,
                first: off,
                next: off + 1,
            }),
        }
        self.metrics.lines.fetch_add(1, Ordering::Relaxed);
        let payload = m.payload;
        self.metrics
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let line_no = u64::try_from(off).unwrap_or(0) + 1;
        // Few partitions per instance: a linear scan on borrowed names
        // beats hashing an owned key per record.
        let at = match self
            .streams
            .iter()
            .position(|s| s.partition == part && *s.topic == *topic)
        {
            Some(i) => i,
            None => {
                let st = self.parser.stream_state(None, None);
                let t = self.topic(topic);
                self.streams.push(PartStream::new(t, part, st));
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[at];
        self.align.consumed(&s.key(), off, now);
        if !self.silent_until.is_empty()
            && let Some(&u) = self.silent_until.get(&(topic.to_string(), part))
            && s.last_off < u
            && off >= u
        {
            // The silent gap ends here, where the run that committed it
            // held nothing open (its commit stopped before an open record)
            // or emitted every open record: do so again (its group is
            // silent: it ends below the committed offset).
            s.finish(&self.parser, &mut self.engine, &mut self.align, now);
        }
        s.last_off = off;
        if s.open.messages == 0 {
            s.open_from = off;
        }
        s.open.messages += 1;
        s.open.last = off;
        let (st, mut sink) = s.split(&mut self.engine);
        if payload.iter().all(|b| b.is_ascii_whitespace()) {
            sink.bad(BadReason::Empty, line_no);
        } else if payload.len() > self.cfg.input.max_line_bytes {
            sink.bad(BadReason::TooLong, line_no);
        } else {
            let fallback = m.timestamp;
            st.push_message(&self.parser, payload, line_no, fallback, &mut sink);
        }
        if let Some(reason) = sink.bad
            && !self.cfg.kafka.dead_letter_topic.is_empty()
        {
            // Produced when the group is released (inside that batch's
            // transaction), so a re-read after a crash never copies twice.
            s.open.events.push(Ev::Dead {
                reason,
                offset: off,
                payload: payload.into(),
            });
        }
        s.close(&mut self.align, now);
        Ok(())
    }
}

/// After a failed batch: no polling for `backoff` (that is the
/// backpressure), then twice as long next time.
fn wait_out(backoff: &mut Duration, shutdown: &AtomicBool, max: Duration) {
    let until = Instant::now() + *backoff;
    while Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    *backoff = (*backoff * 2).min(max);
}

/// What a run did, for the exit summary.
#[derive(Debug)]
pub struct RunSummary {
    pub records: u64,
    pub batches: u64,
    /// The last commit before exit succeeded.
    pub clean: bool,
}

/// Starts `init_transactions` on a thread of its own. It fences an older
/// instance with the same `transactional.id` and aborts its open
/// transaction, so its half-batch never becomes visible; the first
/// transaction of this run waits for it (`Core::await_init`). Waited for in
/// short steps (a timed-out call may be repeated) so that a rejected
/// credential stops the start at once, not after 60 s.
fn start_init(
    p: SharedProducer,
    auth: AuthWatch,
    brokers: String,
) -> Result<std::thread::JoinHandle<Result<(), KafkaSourceError>>, KafkaSourceError> {
    let work = move || {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match p.init_transactions(Duration::from_secs(1)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if let Some(reason) = auth.failure() {
                        return Err(KafkaSourceError::Authentication {
                            brokers,
                            reason: reason.to_string(),
                        });
                    }
                    let retriable = matches!(&e, KafkaError::Transaction(t) if t.is_retriable());
                    if !retriable || Instant::now() >= until {
                        return Err(kafka("init transactions")(e));
                    }
                }
            }
        }
    };
    std::thread::Builder::new()
        .name("faultline-txinit".into())
        .spawn(work)
        .map_err(|e| KafkaSourceError::Stopped(format!("starting init_transactions: {e}")))
}

/// Closes the consumer (it leaves the group; the revoke callback runs here)
/// and waits for the close in steps of 5 ms. rust-rdkafka's drop waits in
/// steps of 100 ms, and the close's end wakes none of them: every exit
/// waited ~100 ms for it. After this the consumer is closed but not
/// destroyed: only for a process that ends next (a drop would close it
/// again). False when the close failed or did not finish `within`.
fn close_consumer(consumer: &BaseConsumer<Ctx>, within: Duration) -> bool {
    if let Err(e) = consumer.close_queue() {
        tracing::warn!(error = %e, "closing the consumer");
        return false;
    }
    let until = Instant::now() + within;
    while !consumer.closed() {
        if Instant::now() >= until {
            return false;
        }
        consumer.poll(Duration::from_millis(5));
    }
    true
}

/// `faultline run`: consumes until `opts.shutdown` is set.
pub fn run(
    cfg: &Config,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
) -> Result<RunSummary, KafkaSourceError> {
    let k = &cfg.kafka;
    // Both clients report a rejected credential here; the run stops on it.
    let auth = AuthWatch::default();
    let auth_failed = |reason: &str| KafkaSourceError::Authentication {
        brokers: k.brokers.clone(),
        reason: reason.to_string(),
    };
    let needs_producer = !k.alerts_topic.is_empty() || !k.dead_letter_topic.is_empty();
    let producer: Option<SharedProducer> = if needs_producer {
        let mut pc = client_config(cfg, &[], &k.producer_properties);
        pc.set("transactional.id", &k.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let p: rdkafka::producer::ThreadedProducer<_> = pc
            .create_with_context(auth.clone())
            .map_err(kafka("creating the producer"))?;
        Some(Arc::new(p))
    } else {
        None
    };

    // The state first: it is the store's lock, and a second instance with
    // the same state directory must stop here, before it fences the first
    // one's transactions below.
    let state = State::load_writable(&opts.state_dir)?;
    // Start-up overlaps its waits on the broker with its own CPU:
    // `init_transactions` (fencing an older instance with the same id) runs
    // on its own thread from here, and the consumer joins its group, while
    // this thread compiles the parser's and the engine's patterns. The
    // first transaction begins only once the fencing is done
    // (`Core::await_init`); records may be fetched and wait meanwhile.
    let init = match &producer {
        Some(p) => Some(start_init(p.clone(), auth.clone(), k.brokers.clone())?),
        None => None,
    };
    let defaults = [
        ("statistics.interval.ms", "5000"),
        // librdkafka waits fetch.queue.backoff.ms (1 s) before fetching
        // again once its queue is full; the engine drains a full queue in
        // well under that, so the default leaves it idle most of the time.
        ("fetch.queue.backoff.ms", "5"),
        // Bigger fetches: fewer round trips per record at full speed
        // (memory stays bounded by queued.max.messages.kbytes).
        ("max.partition.fetch.bytes", "8388608"),
        // Prefetched records per partition: with a queue per partition
        // (`queues.rs`) librdkafka's limit applies to each, not to all.
        // Two fetches' worth keeps a partition readable while its next
        // fetch is on the way.
        ("queued.max.messages.kbytes", "16384"),
        // How long the broker holds a fetch that finds nothing new (500 ms
        // by default). The end of a partition is reported when such a fetch
        // comes back empty, and live, that report is what lets a held
        // record go (`kafka.hold_at_end`) and lets the other partitions'
        // records pass the alignment: every 100 ms of it is 100 ms of alert
        // latency. A backlog's fetches find data and return at once; an
        // idle consumer sends ten small requests a second per broker.
        ("fetch.wait.max.ms", "100"),
    ];
    let mut cc = client_config(cfg, &defaults, &k.consumer_properties);
    cc.set("group.id", &k.group_id)
        // The alignment needs to know when a partition has nothing more.
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &k.start)
        // Only committed records: an upstream transactional producer's
        // aborted messages are not log lines.
        .set("isolation.level", "read_committed");
    let queues = Arc::new(queues::Queues::default());
    let consumer: Arc<BaseConsumer<Ctx>> = Arc::new(
        cc.create_with_context(Ctx {
            core: std::sync::OnceLock::new(),
            status: status.clone(),
            auth: auth.clone(),
            consumer: std::sync::OnceLock::new(),
            queues: queues.clone(),
        })
        .map_err(kafka("creating the consumer"))?,
    );
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    // The partition queues refer to the consumer: dropped first, on every
    // way out, or the consumer would never leave the group.
    struct ClearQueues(Arc<queues::Queues<client::Ctx>>);
    impl Drop for ClearQueues {
        fn drop(&mut self) {
            self.0.clear();
        }
    }
    let _clear = ClearQueues(queues.clone());
    let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka("subscribe"))?;

    let parser = Parser::new(cfg, cfg.input.format).map_err(PipelineError::from)?;
    let flow = Arc::new(fetch::Flow::new(cfg.kafka.partition_buffer));
    let silent = Arc::new(AtomicBool::new(false));
    let engine = new_engine(
        cfg,
        &opts.baseline,
        &opts.make_sinks,
        producer.as_ref(),
        &silent,
        &metrics,
        state,
    )?;
    let core = Core {
        cfg: cfg.clone(),
        parser,
        engine,
        opts_baseline: opts.baseline.clone(),
        make_sinks: opts.make_sinks,
        metrics: metrics.clone(),
        status: status.clone(),
        producer: producer.clone(),
        state_dir: opts.state_dir.clone(),
        silent,
        in_txn: false,
        batch: Vec::new(),
        pace: Pace::default(),
        released: 0,
        silent_until: HashMap::new(),
        fatal: None,
        deadline: None,
        state_unsaved: false,
        crash_after_commit: std::env::var("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok()),
        streams: Vec::new(),
        align: Aligner::new(cfg.kafka.partition_buffer, cfg.kafka.max_idle.0),
        clock: Instant::now(),
        topics: Vec::new(),
        phases: phases::Phases::default(),
        flow: flow.clone(),
        rewinds: 0,
        init,
    };
    let core = Arc::new(Mutex::new(core));
    // Rebalance callbacks run inside `poll`, which the loop below calls
    // first: the core is there by then.
    let _ = consumer.context().core.set(core.clone());
    if producer.is_none() {
        // Nothing to fence: ready at once (else once `init_transactions`
        // is done, `Core::await_init`).
        status.ready.store(true, Ordering::Relaxed);
        tracing::info!(topics = ?k.topics, group = %k.group_id, transactional = false, "consuming");
    }

    // The batch: `kafka.batch_size` messages or `kafka.commit_interval`
    // from its first, whichever comes first (see `Step::at_boundary` for
    // traces left open at that point).
    let cadence = Cadence {
        records: k.batch_size as u64,
        interval: Some(k.commit_interval.0),
        store: Some(&opts.state_dir),
        commands: opts.commands.as_deref().map(|c| c as &dyn driver::Commands),
    };
    let mut backoff = Duration::from_millis(100);
    let mut records = 0u64;
    // What one step's outcome asks of the loop.
    enum Then {
        Go,
        Stop(Result<(), KafkaSourceError>),
        Backoff,
    }
    let settle = |c: &mut Core,
                  outcome: Result<driver::Stepped, BatchError>,
                  backoff: &mut Duration|
     -> Then {
        match outcome {
            Ok(stepped) => {
                if stepped.checkpointed
                    && !c.state_unsaved
                    && status.failures.load(Ordering::Relaxed) > 0
                {
                    tracing::info!("recovered");
                    status.failures.store(0, Ordering::Relaxed);
                    *backoff = Duration::from_millis(100);
                }
                Then::Go
            }
            Err(BatchError::Fatal(e)) => Then::Stop(Err(e)),
            Err(BatchError::Retry(why)) => {
                status.fail(why);
                match c.rollback(&consumer, true) {
                    Ok(()) => Then::Backoff,
                    Err(e) => Then::Stop(Err(e)),
                }
            }
        }
    };
    // Two threads (`fetch.rs`): the fetcher reads the partition queues into
    // batches; this thread feeds them through the core (parse, align,
    // engine) and commits. It also serves the consumer's own queue, so that
    // rebalance callbacks run here, between two batches.
    let began = Instant::now();
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::sync_channel(fetch::CHANNEL);
    let result = std::thread::scope(|scope| {
        let fetcher = std::thread::Builder::new()
            .name("faultline-fetch".into())
            .spawn_scoped(scope, || fetch::run(&queues, &flow, tx, &stop))
            .map_err(|e| KafkaSourceError::Stopped(format!("starting the fetching thread: {e}")))?;
        // Since when nothing could be fed (an idle step released nothing):
        // the alignment's clock advances by that time.
        let mut quiet: Option<Instant> = None;
        let result = 'run: loop {
            if opts.shutdown.load(Ordering::Relaxed) {
                break Ok(());
            }
            // The consumer's own queue: rebalances (their callbacks commit
            // and assign through the core), statistics, errors, and the
            // records of a partition without a queue of its own.
            let msg = consumer.poll(Duration::ZERO);
            if let Some(reason) = auth.failure() {
                break Err(auth_failed(reason));
            }
            if let Some(msg) = msg {
                let mut c = lock(&core);
                if let Some(e) = c.fatal.take() {
                    break Err(e);
                }
                let outcome = match &msg {
                    Ok(m) => {
                        records += 1;
                        driver::step(
                            &mut Step::new(&mut c, &consumer, Some(Ok(fetch::Msg::of(m)))),
                            &cadence,
                        )
                    }
                    Err(e) => driver::step(
                        &mut Step::new(&mut c, &consumer, Some(Err(e.clone()))),
                        &cadence,
                    ),
                };
                match settle(&mut c, outcome, &mut backoff) {
                    Then::Go => {}
                    Then::Stop(r) => break r,
                    Then::Backoff => {
                        drop(c);
                        wait_out(&mut backoff, &opts.shutdown, cfg.kafka.max_backoff.0);
                        continue;
                    }
                }
            }
            let event = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(e) => Some(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(KafkaSourceError::Stopped(
                        "the fetching thread ended".into(),
                    ));
                }
            };
            let mut c = lock(&core);
            // Fencing done on a quiet topic (no transaction begun yet):
            // ready now, or the start failed.
            if c.init.as_ref().is_some_and(|h| h.is_finished())
                && let Err(BatchError::Fatal(e)) = c.await_init()
            {
                break Err(e);
            }
            if let Some(q) = quiet.take() {
                // The alignment's clock advances only while nothing could
                // be fed.
                let q = q.elapsed();
                c.clock += q;
                c.unread_while_quiet(q);
                c.phases.waits += 1;
                c.phases.wait += q;
            }
            if let Some(e) = c.fatal.take() {
                break Err(e);
            }
            // The fetcher said nothing for a while: still an idle step,
            // for the clock (a due commit, the silence clock), but its
            // wait is not known to be quiet.
            let (reported, event) = match event {
                Some(e) => (true, e),
                None => (
                    false,
                    fetch::Event::Idle {
                        read: Vec::new(),
                        skipped: Vec::new(),
                    },
                ),
            };
            match event {
                fetch::Event::Batch(b) => {
                    let mut live = flow.admit(&b);
                    let mut seen = c.rewinds;
                    let mut at = fetch::Cursor::default();
                    while live && !b.done(&at) {
                        // Up to the checkpoint the cadence asks for, so a
                        // batch still commits every `kafka.batch_size`.
                        let room = cadence.records.saturating_sub(c.pace.since).max(1);
                        let room = usize::try_from(room).unwrap_or(usize::MAX).min(step::RUN);
                        let taken = at.messages;
                        let outcome = driver::step(
                            &mut Step::new(&mut c, &consumer, None).run(&b, &mut at, room),
                            &cadence,
                        );
                        records += at.messages - taken;
                        match settle(&mut c, outcome, &mut backoff) {
                            Then::Go => {}
                            Then::Stop(r) => break 'run r,
                            Then::Backoff => {
                                drop(c);
                                wait_out(&mut backoff, &opts.shutdown, cfg.kafka.max_backoff.0);
                                c = lock(&core);
                            }
                        }
                        // A rollback seeks its partitions back: the rest of
                        // the batch is read again if its partition was one
                        // (a revocation, in a rebalance callback, comes
                        // between batches: `admit` drops the later ones).
                        if c.rewinds != seen {
                            seen = c.rewinds;
                            live = flow.current(&b.part, b.epoch);
                        }
                    }
                    flow.recycle(b);
                }
                fetch::Event::Idle { read, skipped } => {
                    // Release what the alignment now allows (a partition
                    // may have gone idle), take a checkpoint that is due.
                    let outcome = driver::step(
                        &mut Step::new(&mut c, &consumer, None).idle(&read),
                        &cadence,
                    );
                    let pushed = matches!(
                        outcome,
                        Ok(driver::Stepped {
                            poll: driver::Poll::Pushed(_),
                            ..
                        })
                    );
                    match settle(&mut c, outcome, &mut backoff) {
                        // Nothing could be fed: quiet, unless the engine
                        // waits for a partition the pass skipped while
                        // its records were on their way here (the fetcher
                        // is woken for it), not for the broker.
                        Then::Go => {
                            if reported && !pushed && skipped.iter().all(|k| c.align.waiting(k) > 0)
                            {
                                quiet = Some(Instant::now());
                            }
                        }
                        Then::Stop(r) => break r,
                        Then::Backoff => {
                            drop(c);
                            wait_out(&mut backoff, &opts.shutdown, cfg.kafka.max_backoff.0);
                            continue;
                        }
                    }
                }
            }
            let c = &*c;
            if flow.publish(|k| c.align.waiting(k)) {
                queues.wake.notify();
            }
        };
        // The fetcher stops at its next pass, or when its send finds the
        // channel closed.
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        queues.wake.notify();
        if fetcher.join().is_err() {
            tracing::error!("the fetching thread panicked");
        }
        result
    });
    status.ready.store(false, Ordering::Relaxed);
    lock(&core).phases.log(records, began.elapsed());
    let stopping = Instant::now();
    let mut clean = true;
    {
        let mut c = lock(&core);
        c.deadline = Some(Instant::now() + cfg.kafka.shutdown_timeout.0.mul_f64(0.8));
        if result.is_ok() {
            match c.commit(&consumer) {
                Ok(()) => {}
                Err(BatchError::Fatal(e)) => return Err(e),
                Err(BatchError::Retry(why)) => {
                    tracing::warn!(error = %why, "last batch not committed; the next start redoes it");
                    clean = false;
                    let _ = c.rollback(&consumer, false);
                }
            }
        }
    }
    // The last checkpoint was committed behind the engine: durable before
    // the process ends (a failure is a gap the next start re-reads).
    let committed = Instant::now();
    if let Err(e) = crate::state::State::durable(&opts.state_dir) {
        tracing::warn!(error = %e, "last state checkpoint not written; the next start redoes it");
        clean = false;
    }
    let durable = Instant::now();
    // Closing the consumer leaves the group at once (a revoke with nothing
    // left to commit) instead of waiting for the session to time out; the
    // partition queues go first, as they hold the consumer.
    queues.clear();
    if opts.exit_after && clean && result.is_ok() {
        // The process ends next: leave the group in short steps and let
        // the OS take the closed client. A close that does not finish in
        // time is left to the regular drop.
        if close_consumer(&consumer, cfg.kafka.shutdown_timeout.0.mul_f64(0.2)) {
            std::mem::forget(consumer);
        } else {
            drop(consumer);
        }
    } else {
        drop(consumer);
    }
    let closed = Instant::now();
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_millis() as u64;
    tracing::info!(
        commit_ms = ms(stopping, committed),
        durable_ms = ms(committed, durable),
        close_ms = ms(durable, closed),
        clean,
        "consumer stopped"
    );
    result?;
    if opts.exit_after && clean {
        // Every sink was flushed by the last commit, whose transaction
        // is committed; the state is durable and the consumer closed.
        // What is left (the engine's maps, the producer with its
        // threads, which hold nothing unsent) the process's end frees
        // at once; dropping them would free every type's entry one by
        // one and join the producer's threads (its polling thread
        // sleeps up to 100 ms). Not after a failed stop: then the
        // regular drops run, as before.
        std::mem::forget(core);
        std::mem::forget(producer);
    }
    Ok(RunSummary {
        records,
        batches: status.batches.load(Ordering::Relaxed),
        clean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn security_properties_reach_both_clients_and_per_client_sections_win() {
        let text = r#"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"fetch.queue.backoff.ms" = "50"
[kafka.consumer_properties]
"security.protocol" = "SSL"
"#;
        let env = vec![(
            "FAULTLINE__KAFKA__PROPERTIES__SASL.PASSWORD".to_string(),
            "s3cret".to_string(),
        )];
        let cfg = Config::from_toml(text, Path::new("t.toml"), &env).unwrap();
        let c = client_config(
            &cfg,
            &[("fetch.queue.backoff.ms", "5")],
            &cfg.kafka.consumer_properties,
        );
        assert_eq!(c.get("security.protocol"), Some("SSL"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        // Configured properties override the built-in tuning defaults.
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("50"));
        let p = client_config(&cfg, &[], &cfg.kafka.producer_properties);
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(p.get("bootstrap.servers"), Some("127.0.0.1:9092"));
    }
}
