//! Kafka source: a consumer group feeding the [`Engine`], with alerts and
//! consumer offsets committed in one Kafka transaction per batch.
//!
//! Per batch: begin a transaction → process records (the Kafka alert sink
//! and the dead-letter copies produce inside it) → flush the other sinks →
//! send the consumer offsets to the transaction → commit it → save the
//! state, which also records the offsets per partition. A read_committed
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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::bindings::rd_kafka_resp_err_t as RDKafkaRespErr;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::alert::kafka::{KafkaAlertSink, SharedProducer, send_blocking};
use crate::alert::{Alert, AlertSink, SinkError, TypeCatalogue};
use crate::config::Config;
use crate::engine::{BaselineOptions, Engine, PipelineError};
use crate::metrics::Metrics;
use crate::metrics::http::Exporter;
use crate::parse::{Parser, RecordSink};
use crate::record::{BadReason, LineMeta, Record};
use crate::state::{State, StateError};

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
}

/// Health, readiness and lag, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct Status {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    /// Consecutive failed batches; reset by a committed one.
    pub failures: AtomicU64,
    pub max_failures: u64,
    pub batches: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// `(topic, partition)` → messages behind the high watermark.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Status {
    pub fn new(metrics: Arc<Metrics>, max_failures: u32) -> Status {
        Status {
            metrics,
            max_failures: u64::from(max_failures.max(1)),
            ..Status::default()
        }
    }

    fn fail(&self, why: String) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(failures = n, error = %why, "batch failed; retrying with backoff");
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(why);
        }
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Exporter for Status {
    fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut extra = String::new();
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_consumer_lag Messages behind the partition's high watermark.\n# TYPE faultline_kafka_consumer_lag gauge"
        );
        if let Ok(lag) = self.lag.lock() {
            for ((t, p), v) in lag.iter() {
                let _ = writeln!(
                    extra,
                    "faultline_kafka_consumer_lag{{topic=\"{t}\",partition=\"{p}\"}} {v}"
                );
            }
        }
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_batches_total Batches committed.\n# TYPE faultline_kafka_batches_total counter\nfaultline_kafka_batches_total {}",
            self.batches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            extra,
            "# HELP faultline_kafka_failures Consecutive failed batches.\n# TYPE faultline_kafka_failures gauge\nfaultline_kafka_failures {}",
            self.failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            extra,
            "# HELP faultline_up 1 when ready.\n# TYPE faultline_up gauge\nfaultline_up {}",
            u8::from(self.ready().is_ok())
        );
        self.metrics.render_prometheus(&extra)
    }

    fn healthy(&self) -> Result<(), String> {
        let n = self.failures.load(Ordering::Relaxed);
        if n >= self.max_failures {
            return Err(format!(
                "{n} consecutive batches failed (limit {}): {}",
                self.max_failures,
                self.last_error()
            ));
        }
        Ok(())
    }

    fn ready(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("not consuming (starting or stopping)".into());
        }
        if self.failures.load(Ordering::Relaxed) > 0 {
            return Err(format!("retrying a failed batch: {}", self.last_error()));
        }
        Ok(())
    }
}

/// Drops alerts while the source re-processes records whose alerts were
/// already committed (the gap after a crash between commit and save).
struct Gated {
    inner: Box<dyn AlertSink>,
    silent: Arc<AtomicBool>,
}

impl AlertSink for Gated {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.silent.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.emit(alert)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
    // The catalogue is a snapshot of the known types, not an alert: it is
    // exported whether or not alerts are silenced.
    fn catalogue(&mut self) -> Option<&mut dyn TypeCatalogue> {
        self.inner.catalogue()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// The engine as a record sink that also notes whether the record was bad
/// (for the dead-letter topic).
struct Tap<'a> {
    engine: &'a mut Engine,
    bad: Option<BadReason>,
}

impl RecordSink for Tap<'_> {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.engine.line(meta);
    }
    fn error(&mut self, record: Record) {
        self.engine.error(record);
    }
    fn bad(&mut self, reason: BadReason, line_no: u64) {
        self.bad = Some(reason);
        self.engine.bad(reason, line_no);
    }
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
    batch_records: usize,
    batch_started: Option<Instant>,
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
}

fn state_key(t: &str, p: i32) -> String {
    format!("{t}/{p}")
}

impl Core {
    fn build_engine(&self, state: Option<State>) -> Result<Engine, KafkaSourceError> {
        let mut sinks: Vec<Box<dyn AlertSink>> = (self.make_sinks)()?;
        if let (Some(p), false) = (&self.producer, self.cfg.kafka.alerts_topic.is_empty()) {
            sinks.push(Box::new(KafkaAlertSink::new(
                p.clone(),
                &self.cfg.kafka.alerts_topic,
                true,
            )));
        }
        let sinks = sinks
            .into_iter()
            .map(|inner| {
                Box::new(Gated {
                    inner,
                    silent: self.silent.clone(),
                }) as Box<dyn AlertSink>
            })
            .collect();
        let mut engine = Engine::new(
            &self.cfg,
            state,
            &self.opts_baseline,
            sinks,
            self.metrics.clone(),
        )?;
        engine.forget_emitted();
        Ok(engine)
    }

    /// One message through the parser into the engine.
    fn process<M: Message>(&mut self, m: &M) -> Result<(), BatchError> {
        let topic = m.topic();
        let part = m.partition();
        let off = m.offset();
        // Few partitions per instance: a linear scan on borrowed names
        // beats hashing an owned key per record.
        let silent = !self.silent_until.is_empty()
            && self
                .silent_until
                .iter()
                .any(|((t, p), &u)| *p == part && t == topic && off < u);
        self.silent.store(silent, Ordering::Relaxed);
        if !self.in_txn {
            if let Some(p) = &self.producer {
                p.begin_transaction().map_err(|e| match &e {
                    KafkaError::Transaction(t) if t.is_fatal() => {
                        BatchError::Fatal(KafkaSourceError::Fatal(e.to_string()))
                    }
                    _ => BatchError::Retry(format!("begin transaction: {e}")),
                })?;
            }
            self.in_txn = true;
            self.batch_started = Some(Instant::now());
        }
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
        self.batch_records += 1;
        self.engine.state.kafka_records += 1;
        self.metrics.lines.fetch_add(1, Ordering::Relaxed);
        let payload = m.payload().unwrap_or(&[]);
        self.metrics
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let line_no = u64::try_from(off).unwrap_or(0) + 1;
        let mut tap = Tap {
            engine: &mut self.engine,
            bad: None,
        };
        if payload.iter().all(|b| b.is_ascii_whitespace()) {
            tap.bad(BadReason::Empty, line_no);
        } else if payload.len() > self.cfg.input.max_line_bytes {
            tap.bad(BadReason::TooLong, line_no);
        } else {
            let fallback = m.timestamp().to_millis();
            self.parser.parse_one(payload, line_no, fallback, &mut tap);
        }
        if let Some(reason) = tap.bad
            && !silent
            && !self.cfg.kafka.dead_letter_topic.is_empty()
            && let Some(p) = &self.producer
        {
            let source = format!("{topic}/{part}/{off}");
            let size = payload.len().to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "faultline.reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "faultline.source",
                    value: Some(source.as_str()),
                })
                .insert(Header {
                    key: "faultline.original_bytes",
                    value: Some(size.as_str()),
                });
            let cut = &payload[..payload.len().min(self.cfg.kafka.dead_letter_max_bytes)];
            send_blocking(
                p,
                &self.cfg.kafka.dead_letter_topic,
                source.as_bytes(),
                cut,
                Some(headers),
            )
            .map_err(|e| BatchError::Retry(format!("dead-letter topic: {e}")))?;
        }
        if let Some(e) = self.engine.take_sink_error() {
            return Err(BatchError::Retry(e.to_string()));
        }
        Ok(())
    }

    fn batch_due(&self) -> bool {
        self.in_txn
            && (self.batch_records >= self.cfg.kafka.batch_size
                || self
                    .batch_started
                    .is_some_and(|s| s.elapsed() >= self.cfg.kafka.commit_interval.0))
    }

    /// Runs a transactional call, retrying what librdkafka calls retriable
    /// (timeouts while the broker is away) with backoff.
    fn txn_call(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), BatchError> {
        let mut wait = Duration::from_millis(100);
        for attempt in 0.. {
            match f() {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                    return Err(BatchError::Fatal(KafkaSourceError::Fatal(format!(
                        "{what}: {e}"
                    ))));
                }
                Err(KafkaError::Transaction(e))
                    if e.is_retriable()
                        && attempt < 30
                        && self.deadline.is_none_or(|d| Instant::now() + wait < d) =>
                {
                    tracing::info!(error = %e, attempt, "{what}: retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(self.cfg.kafka.max_backoff.0);
                }
                Err(e) => return Err(BatchError::Retry(format!("{what}: {e}"))),
            }
        }
        Err(BatchError::Retry(format!("{what}: gave up")))
    }

    /// Makes the open batch durable: sinks, offsets + alerts (one
    /// transaction), then the state.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<(), BatchError> {
        if !self.in_txn {
            return Ok(());
        }
        let started = Instant::now();
        self.engine
            .flush_sinks()
            .map_err(|e| BatchError::Retry(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        for BatchPart {
            topic: t,
            partition: p,
            next,
            ..
        } in &self.batch
        {
            // Never move a committed offset backwards: a silent gap ends at
            // the committed offset, and committing below it would make the
            // next restart deliver those alerts again.
            if self
                .silent_until
                .get(&(t.clone(), *p))
                .is_some_and(|&u| *next <= u)
            {
                continue;
            }
            tpl.add_partition_offset(t, *p, Offset::Offset(*next))
                .map_err(|e| BatchError::Retry(e.to_string()))?;
        }
        let timeout = Duration::from_secs(10);
        match self.producer.clone() {
            Some(p) => {
                if tpl.count() > 0 {
                    let gm = consumer.group_metadata().ok_or_else(|| {
                        BatchError::Retry("no consumer group metadata yet".into())
                    })?;
                    self.txn_call("send offsets to transaction", || {
                        p.send_offsets_to_transaction(&tpl, &gm, timeout)
                    })?;
                }
                self.txn_call("commit transaction", || p.commit_transaction(timeout))?;
            }
            None => {
                if tpl.count() > 0 {
                    consumer
                        .commit(&tpl, CommitMode::Sync)
                        .map_err(|e| BatchError::Retry(format!("commit offsets: {e}")))?;
                }
            }
        }
        self.in_txn = false;
        for BatchPart {
            topic: t,
            partition: p,
            next,
            ..
        } in std::mem::take(&mut self.batch)
        {
            let key = (t, p);
            if self.silent_until.get(&key).is_some_and(|&u| next >= u) {
                tracing::info!(topic = %key.0, partition = key.1, "silent re-processing done");
                self.silent_until.remove(&key);
            }
            self.engine
                .state
                .kafka_offsets
                .insert(state_key(&key.0, key.1), next);
        }
        self.batch_records = 0;
        self.batch_started = None;
        let n = self.status.batches.fetch_add(1, Ordering::Relaxed) + 1;
        if self.crash_after_commit == Some(n) {
            // Failpoint for the tests: die in the one window a kill -9 from
            // outside rarely hits, after the commit and before the save.
            tracing::warn!(
                batch = n,
                "failpoint: crashing after commit, before state save"
            );
            std::process::abort();
        }
        // After the commit: a crash before this save only makes the next
        // start re-process the batch silently.
        match self.engine.state.save(&self.state_dir) {
            Ok(()) => self.state_unsaved = false,
            Err(e) => {
                // The batch is committed: keep the engine as it is and try
                // again after the next batch. A restart now would re-process
                // the gap silently, which is also correct.
                self.state_unsaved = true;
                self.status.fail(format!("state save after commit: {e}"));
            }
        }
        // The error-type catalogue (Elasticsearch) is best effort: a
        // failure here is retried at the next commit, never a lost alert.
        if let Err(e) = self.engine.export_types(false) {
            tracing::warn!(error = %e, "error-type catalogue export failed");
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// Undoes the open batch: abort the transaction, reload the engine from
    /// the last saved state and (unless the partitions are going away) seek
    /// back to where the batch began.
    fn rollback<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        seek: bool,
    ) -> Result<(), KafkaSourceError> {
        if let Some(p) = self.producer.clone()
            && self.in_txn
        {
            match self.txn_call("abort transaction", || {
                p.abort_transaction(Duration::from_secs(10))
            }) {
                Ok(()) => {}
                Err(BatchError::Fatal(e)) => return Err(e),
                Err(BatchError::Retry(e)) => {
                    // The broker aborts it after transaction.timeout.ms, or
                    // the next init_transactions fences it.
                    tracing::warn!(error = %e, "abort transaction");
                }
            }
        }
        self.in_txn = false;
        if self.state_unsaved {
            // The saved state lags committed offsets: reloading it here would
            // skip records. A restart resolves it (silent re-processing).
            return Err(KafkaSourceError::Stopped(
                "a batch failed while the state could not be saved; restart to recover".into(),
            ));
        }
        let state = State::load(&self.state_dir)?;
        self.engine = self.build_engine(state)?;
        let batch = std::mem::take(&mut self.batch);
        if seek {
            for BatchPart {
                topic: t,
                partition: p,
                first: start,
                ..
            } in batch
            {
                if let Err(e) = consumer.seek(&t, p, Offset::Offset(start), Duration::from_secs(10))
                {
                    // Seeking failed: the next assignment starts from the
                    // committed offsets, which is just as correct.
                    tracing::warn!(topic = %t, partition = p, error = %e, "seek back");
                }
            }
        }
        self.batch_records = 0;
        self.batch_started = None;
        Ok(())
    }

    /// Chooses where each assigned partition starts: the state's offset
    /// when it lags the committed one (re-process the gap silently), else
    /// the committed offset (or the start policy for a new group).
    fn on_assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) -> TopicPartitionList {
        let mut committed = None;
        for attempt in 0..6 {
            match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(c) => {
                    committed = Some(c);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "fetching committed offsets");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let mut out = TopicPartitionList::new();
        let Some(committed) = committed else {
            self.fatal = Some(KafkaSourceError::Stopped(
                "cannot fetch committed offsets for the assigned partitions".into(),
            ));
            return out;
        };
        for e in tpl.elements() {
            let (t, p) = (e.topic(), e.partition());
            let c = committed
                .find_partition(t, p)
                .and_then(|c| match c.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            let s = self
                .engine
                .state
                .kafka_offsets
                .get(&state_key(t, p))
                .copied();
            let start = match (s, c) {
                (Some(s), Some(c)) if s < c => {
                    tracing::info!(
                        topic = t,
                        partition = p,
                        state = s,
                        committed = c,
                        "state lags the committed offset: re-processing the gap without alerts"
                    );
                    self.silent_until.insert((t.to_string(), p), c);
                    Offset::Offset(s)
                }
                // Group offsets expired or the group is new: the state knows.
                (Some(s), None) => Offset::Offset(s),
                (_, Some(c)) => Offset::Offset(c),
                (None, None) => Offset::Invalid,
            };
            tracing::info!(topic = t, partition = p, start = ?start, "partition assigned");
            let _ = out.add_partition_offset(t, p, start);
        }
        out
    }

    fn on_revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) {
        match self.commit(consumer) {
            Ok(()) => {}
            Err(BatchError::Fatal(e)) => self.fatal = Some(e),
            Err(BatchError::Retry(why)) => {
                self.status.fail(why);
                if let Err(e) = self.rollback(consumer, false) {
                    self.fatal = Some(e);
                }
            }
        }
        for e in tpl.elements() {
            self.silent_until
                .remove(&(e.topic().to_string(), e.partition()));
            tracing::info!(
                topic = e.topic(),
                partition = e.partition(),
                "partition revoked"
            );
        }
    }
}

struct Ctx {
    core: Arc<Mutex<Core>>,
    status: Arc<Status>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic elsewhere must not wedge the shutdown path.
    core.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors are transient: librdkafka reconnects by itself.
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        // Read the few fields needed from the raw JSON: librdkafka's
        // statistics grow with every release, a typed parse breaks on that.
        tracing::trace!(stats = %String::from_utf8_lossy(statistics), "librdkafka statistics");
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        let Some(topics) = v.get("topics").and_then(|t| t.as_object()) else {
            return;
        };
        if let Ok(mut lag) = self.status.lag.lock() {
            lag.clear();
            for (t, topic) in topics {
                let Some(parts) = topic.get("partitions").and_then(|p| p.as_object()) else {
                    continue;
                };
                for (p, part) in parts {
                    let field = |k: &str| part.get(k).and_then(|v| v.as_i64()).unwrap_or(-1);
                    // Offsets are committed by the producer's transaction,
                    // which librdkafka's own consumer_lag (based on the
                    // consumer's commits) never sees: use the last stable
                    // offset minus the position handed to the application.
                    let (end, pos) = (field("ls_offset"), field("app_offset"));
                    let l = if end >= 0 && pos >= 0 {
                        end - pos
                    } else {
                        field("consumer_lag")
                    };
                    let Ok(p) = p.parse::<i32>() else {
                        continue;
                    };
                    if p >= 0 && l >= 0 {
                        lag.insert((t.clone(), p), l);
                    }
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut core = lock(&self.core);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let start = core.on_assign(consumer, tpl);
                if let Err(e) = consumer.assign(&start) {
                    core.fatal = Some(kafka("assign")(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                core.on_revoke(consumer, tpl);
                let _ = consumer.unassign();
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                let _ = consumer.unassign();
            }
        }
    }
}

/// `defaults` first, then the configured properties (which may override
/// them), then `own` (the consumer's or producer's own section).
fn client_config(
    cfg: &Config,
    defaults: &[(&str, &str)],
    own: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers);
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in cfg.kafka.properties.iter().chain(own) {
        c.set(k, v);
    }
    c
}

/// What a run did, for the exit summary.
#[derive(Debug)]
pub struct RunSummary {
    pub records: u64,
    pub batches: u64,
    /// The last commit before exit succeeded.
    pub clean: bool,
}

/// `faultline run`: consumes until `opts.shutdown` is set.
pub fn run(
    cfg: &Config,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
) -> Result<RunSummary, KafkaSourceError> {
    let k = &cfg.kafka;
    let needs_producer = !k.alerts_topic.is_empty() || !k.dead_letter_topic.is_empty();
    let producer: Option<SharedProducer> = if needs_producer {
        let mut pc = client_config(cfg, &[], &k.producer_properties);
        pc.set("transactional.id", &k.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let p: rdkafka::producer::ThreadedProducer<_> =
            pc.create().map_err(kafka("creating the producer"))?;
        // Fences an older instance with the same id and aborts its open
        // transaction, so its half-batch never becomes visible.
        p.init_transactions(Duration::from_secs(60))
            .map_err(kafka("init transactions"))?;
        Some(Arc::new(p))
    } else {
        None
    };

    let parser = Parser::new(cfg, cfg.input.format).map_err(PipelineError::from)?;
    let state = State::load_writable(&opts.state_dir)?;
    let mut core = Core {
        cfg: cfg.clone(),
        parser,
        // Replaced right below; Engine has no cheap placeholder.
        engine: Engine::new(cfg, None, &opts.baseline, Vec::new(), metrics.clone())?,
        opts_baseline: opts.baseline.clone(),
        make_sinks: opts.make_sinks,
        metrics: metrics.clone(),
        status: status.clone(),
        producer: producer.clone(),
        state_dir: opts.state_dir.clone(),
        silent: Arc::new(AtomicBool::new(false)),
        in_txn: false,
        batch: Vec::new(),
        batch_records: 0,
        batch_started: None,
        silent_until: HashMap::new(),
        fatal: None,
        deadline: None,
        state_unsaved: false,
        crash_after_commit: std::env::var("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT")
            .ok()
            .and_then(|v| v.parse().ok()),
    };
    core.engine = core.build_engine(state)?;
    let core = Arc::new(Mutex::new(core));

    let defaults = [
        ("statistics.interval.ms", "5000"),
        // librdkafka waits fetch.queue.backoff.ms (1 s) before fetching
        // again once its queue is full; the engine drains a full queue in
        // well under that, so the default leaves it idle most of the time.
        ("fetch.queue.backoff.ms", "5"),
        // Bigger fetches: fewer round trips per record at full speed
        // (memory stays bounded by queued.max.messages.kbytes).
        ("max.partition.fetch.bytes", "8388608"),
    ];
    let mut cc = client_config(cfg, &defaults, &k.consumer_properties);
    cc.set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", &k.start)
        // Only committed records: an upstream transactional producer's
        // aborted messages are not log lines.
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<Ctx> = cc
        .create_with_context(Ctx {
            core: core.clone(),
            status: status.clone(),
        })
        .map_err(kafka("creating the consumer"))?;
    let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(kafka("subscribe"))?;
    status.ready.store(true, Ordering::Relaxed);
    tracing::info!(topics = ?k.topics, group = %k.group_id, transactional = producer.is_some(), "consuming");

    let mut backoff = Duration::from_millis(100);
    let mut records = 0u64;
    let result = loop {
        if opts.shutdown.load(Ordering::Relaxed) {
            break Ok(());
        }
        let msg = consumer.poll(Duration::from_millis(100));
        let mut c = lock(&core);
        if let Some(e) = c.fatal.take() {
            break Err(e);
        }
        let mut outcome = Ok(());
        match msg {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                outcome = c.process(&m);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer"),
        }
        let mut committed = false;
        if outcome.is_ok() && c.batch_due() {
            outcome = c.commit(&consumer);
            committed = outcome.is_ok();
        }
        match outcome {
            Ok(()) => {
                if committed && !c.state_unsaved && status.failures.load(Ordering::Relaxed) > 0 {
                    tracing::info!("recovered");
                    status.failures.store(0, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                }
            }
            Err(BatchError::Fatal(e)) => break Err(e),
            Err(BatchError::Retry(why)) => {
                status.fail(why);
                if let Err(e) = c.rollback(&consumer, true) {
                    break Err(e);
                }
                drop(c);
                // Not polling while backing off is the backpressure.
                let until = Instant::now() + backoff;
                while Instant::now() < until && !opts.shutdown.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(cfg.kafka.max_backoff.0);
            }
        }
    };
    status.ready.store(false, Ordering::Relaxed);
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
    // Closing the consumer leaves the group at once (a revoke with nothing
    // left to commit) instead of waiting for the session to time out.
    drop(consumer);
    result?;
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

    #[test]
    fn health_turns_bad_only_after_the_configured_number_of_failures() {
        let s = Status::new(Arc::new(Metrics::default()), 2);
        s.ready.store(true, Ordering::Relaxed);
        assert!(s.healthy().is_ok() && s.ready().is_ok());
        s.fail("sink down".into());
        assert!(s.healthy().is_ok());
        assert!(s.ready().unwrap_err().contains("sink down"));
        s.fail("sink down".into());
        assert!(s.healthy().unwrap_err().contains("2 consecutive"));
    }
}
