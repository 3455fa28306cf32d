//! Scale-out (issue 17, `docs/scaling.md`): `faultline run` in two stages
//! over internal Kafka topics, in the Kafka Streams model, with several
//! instances per consumer group. Off by default (`[scale_out] enabled`).
//!
//! Stage 1 (`stage1.rs`) parses the input partitions the instance owns and
//! forwards the parser's events, keyed by service, to the internal events
//! topic in one transaction with the input offsets, with a watermark per
//! upstream partition. Stage 2 (`stage2.rs`) owns the internal partitions
//! its group assigns it, one [`Engine`](crate::engine::Engine) per
//! partition, and replays their events in event-time order; alerts, what
//! changed in each partition's state (records per changed type and
//! learner row, and the rest whole: `changelog.rs`) and its offsets
//! commit in one transaction, and a partition's next owner restores its
//! state from the changelog. A revocation aborts the open batch in the
//! rebalance callback (`Owner`). Resolve, mute and merge travel through a
//! compacted control topic that every stage-2 instance reads
//! (`control.rs`). Without the service in the fingerprint, types are
//! global and every event goes to one internal partition (`stage1.rs`).
//!
//! The module sits beside `source`, above it: it feeds the engine like a
//! source and uses the aligner and the driver; nothing below imports it.

mod catalogue;
pub mod changelog;
pub mod control;
mod guard;
mod stage1;
mod stage2;
pub mod topics;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, KafkaResult};

use crate::alert::{AlertSink, SinkError};
use crate::config::Config;
use crate::engine::PipelineError;
use crate::metrics::Metrics;
use crate::source::kafka::{RunOptions, RunSummary, Status};
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("kafka (scale-out) {context}: {source}")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error("scale-out: {0}")]
    Topic(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

fn kafka(context: &'static str) -> impl FnOnce(KafkaError) -> ScaleError {
    move |source| ScaleError::Kafka { context, source }
}

/// A client configuration: the brokers, `[kafka.properties]`, then the
/// client's own section (as the single-stage source builds it).
fn client(cfg: &Config, own: &BTreeMap<String, String>) -> ClientConfig {
    crate::source::kafka::client::client_config(cfg, &[], own)
}

/// The stage consumers' context: end of partition is news for the
/// alignment, not an error (librdkafka's default context logs it as one).
pub(crate) struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// A transactional call repeated while librdkafka calls its failure
/// retriable (a broker away for a moment), for up to a minute.
fn timeout_retry<T>(mut f: impl FnMut(Duration) -> KafkaResult<T>) -> KafkaResult<T> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match f(Duration::from_secs(10)) {
            Err(KafkaError::Transaction(t)) if t.is_retriable() && Instant::now() < until => {}
            r => return r,
        }
    }
}

/// The stages' consumer context in their groups: a revocation aborts the
/// stage's open transaction at once (`abort`), inside the callback, before
/// the partitions can go to another member; the stage's loop then drops
/// what it held (`changed`) and takes up the new assignment from the
/// committed offsets. Aborting rather than committing keeps the callback
/// short and correct under any assignor: what the aborted batch did is
/// redone by whoever owns the partitions next, from the last commit.
///
/// An assignment that finds a batch open aborts it too. Under the eager
/// assignor a revocation always comes first, so this does nothing; but
/// librdkafka skips the revocation when the group rebalances again while
/// an assignment is still waiting for the application
/// (`rd_kafka_cgrp_revoke_all_rejoin`: no revoke op in the
/// wait-assign-call state), and then replaces the assignment without one.
/// A batch read under the old assignment must not commit under the new
/// one: its partitions may now be another member's (issue 15).
pub(crate) struct Owner {
    /// Aborts the open batch, if any; says whether there was one.
    abort: Box<dyn Fn() -> bool + Send + Sync>,
    /// Set by every rebalance; the loop takes it.
    pub(crate) changed: Arc<AtomicBool>,
    /// Set when partitions were revoked or a batch was aborted: the loop
    /// drops everything it held.
    pub(crate) revoked: Arc<AtomicBool>,
}

impl Owner {
    pub(crate) fn new(abort: Box<dyn Fn() -> bool + Send + Sync>) -> Owner {
        Owner {
            abort,
            changed: Arc::new(AtomicBool::new(false)),
            revoked: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl rdkafka::ClientContext for Owner {
    fn error(&self, error: KafkaError, reason: &str) {
        Quiet.error(error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for Owner {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        use rdkafka::consumer::Rebalance;
        let drop_all = match rebalance {
            // Even an empty revocation aborts an open batch: the
            // assignment it was read under is gone either way.
            Rebalance::Revoke(tpl) => (self.abort)() || tpl.count() > 0,
            Rebalance::Assign(_) => {
                let aborted = (self.abort)();
                if aborted {
                    tracing::warn!(
                        "scale-out: an assignment arrived while a batch was open (no revocation \
                         before it); the batch was aborted and is read again from the committed \
                         offsets"
                    );
                }
                aborted
            }
            Rebalance::Error(_) => false,
        };
        if drop_all {
            self.revoked.store(true, Ordering::Relaxed);
        }
        self.changed.store(true, Ordering::Relaxed);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Error(e) = rebalance {
            tracing::warn!(error = %e, "scale-out: rebalance error");
        }
        self.changed.store(true, Ordering::Relaxed);
    }
}

/// The abort a rebalance runs: the open transaction of `producer`, if
/// `in_txn`, is aborted (a failure is logged: the broker aborts it after
/// `transaction.timeout.ms` anyway, and the next commit fails loudly).
/// Returns whether a batch was open.
pub(crate) fn aborter<C: rdkafka::producer::ProducerContext + 'static>(
    producer: Arc<rdkafka::producer::ThreadedProducer<C>>,
    in_txn: Arc<AtomicBool>,
    stage: &'static str,
) -> Box<dyn Fn() -> bool + Send + Sync> {
    Box::new(move || {
        let open = in_txn.swap(false, Ordering::Relaxed);
        if open {
            tracing::info!(stage, "partitions revoked: aborting the open batch");
            // What the batch sent is delivered first: an abort racing the
            // registration of the batch's partitions with the coordinator
            // is refused as a fatal INVALID_TXN_STATE (seen on the test
            // broker with librdkafka 2.12).
            if let Err(e) = rdkafka::producer::Producer::flush(&*producer, Duration::from_secs(30))
            {
                tracing::warn!(stage, error = %e, "flushing the batch before its abort");
            }
            if let Err(e) =
                timeout_retry(|t| rdkafka::producer::Producer::abort_transaction(&*producer, t))
            {
                tracing::warn!(stage, error = %e, "aborting the open batch on revocation");
            }
        }
        open
    })
}

/// Whether a failed transactional call leaves the producer usable after an
/// abort (a rebalance under way fences the batch's offsets: the batch is
/// redone from the last commit) rather than stopping the stage.
pub(crate) fn abortable(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort() && !t.is_fatal())
}

/// Sends one record into the producer's open transaction, waiting while
/// the local queue is full (the commit checks every delivery).
pub(crate) fn send_waiting<C: rdkafka::producer::ProducerContext + 'static, K, P>(
    producer: &rdkafka::producer::ThreadedProducer<C>,
    mut rec: rdkafka::producer::BaseRecord<'_, K, P, C::DeliveryOpaque>,
    context: &'static str,
) -> Result<(), ScaleError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
    C::DeliveryOpaque: Default,
{
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kafka(context)(e)),
        }
    }
}

/// A stage's transactional producer configuration: this instance's
/// transactional id for `stage`, idempotent, `acks=all` (each stage adds
/// its own context and settings).
fn transactional(cfg: &Config, stage: &str) -> ClientConfig {
    let mut pc = client(cfg, &cfg.kafka.producer_properties);
    pc.set("transactional.id", transactional_id(cfg, stage))
        .set("enable.idempotence", "true")
        .set("acks", "all");
    pc
}

/// A stage's group consumer and its owner's `changed` and `revoked` flags.
type Member = (BaseConsumer<Owner>, Arc<AtomicBool>, Arc<AtomicBool>);

/// A stage's consumer in `group`, read_committed, offsets committed only
/// through the transactions, end of partition reported; its revocations
/// abort `producer`'s open batch ([`Owner`]). Returns the consumer and the
/// owner's `changed` and `revoked` flags.
fn member<C: rdkafka::producer::ProducerContext + 'static>(
    cfg: &Config,
    group: &str,
    reset: &str,
    producer: Arc<rdkafka::producer::ThreadedProducer<C>>,
    in_txn: Arc<AtomicBool>,
    stage: &'static str,
) -> Result<Member, ScaleError> {
    let owner = Owner::new(aborter(producer, in_txn, stage));
    let (changed, revoked) = (owner.changed.clone(), owner.revoked.clone());
    let mut cc = client(cfg, &cfg.kafka.consumer_properties);
    cc.set("group.id", group)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("isolation.level", "read_committed");
    let consumer = cc
        .create_with_context(owner)
        .map_err(kafka("creating a stage consumer"))?;
    Ok((consumer, changed, revoked))
}

/// A transactional id for one stage of this instance.
pub(crate) fn transactional_id(cfg: &Config, stage: &str) -> String {
    match cfg.scale_out.instance.as_str() {
        "" => format!("{}-{stage}", cfg.kafka.transactional_id),
        i => format!("{}-{stage}-{i}", cfg.kafka.transactional_id),
    }
}

/// The changelog topic's name: `<kafka.group_id>-changelog`.
pub fn changelog_topic(cfg: &Config) -> String {
    format!("{}-changelog", cfg.kafka.group_id)
}

/// The internal events topic's name.
pub fn events_topic(cfg: &Config) -> String {
    match cfg.scale_out.events_topic.as_str() {
        "" => format!("{}-events", cfg.kafka.group_id),
        t => t.to_string(),
    }
}

/// `faultline run` with `[scale_out] enabled`: both stages, until
/// `opts.shutdown` is set (or a stage fails, which sets it). `view`, the
/// API's type list, is filled with every instance's types from the
/// changelog (`catalogue.rs`).
pub fn run(
    cfg: &Config,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
    commands: Option<Arc<crate::api::control::Control>>,
    view: Option<Arc<crate::api::TypeView>>,
) -> Result<RunSummary, ScaleError> {
    let k = &cfg.kafka;
    let so = &cfg.scale_out;
    let admin = client(cfg, &BTreeMap::new());
    let topic = events_topic(cfg);
    // Stage 2 reads what stage 1 wrote until it has committed past it; a
    // day covers a stopped stage 2 for a while. A day of *append* time:
    // stage 1 stamps nothing with event times (`Stage1::produce`), and
    // the topic says so too, so records older than a day are not deleted
    // before stage 2 reads them (issue 15).
    let partitions = topics::ensure(
        &admin,
        &topic,
        so.partitions,
        so.replication,
        &[
            ("retention.ms", "86400000"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )?;
    if partitions != so.partitions {
        tracing::warn!(
            topic,
            partitions,
            configured = so.partitions,
            "the internal topic exists with another partition count; using it as it is"
        );
    }
    let changelog = changelog_topic(cfg);
    let logged = topics::ensure(
        &admin,
        &changelog,
        partitions,
        so.replication,
        &[("cleanup.policy", "compact")],
    )?;
    if logged != partitions {
        return Err(ScaleError::Topic(format!(
            "the changelog topic {changelog} has {logged} partitions, the events topic {topic} \
             {partitions}: they must match (a partition's state lives in the changelog \
             partition of the same number); recreate the changelog or the events topic"
        )));
    }

    control::ensure(cfg)?;
    if !cfg.fingerprint.include_service {
        // Types (and the learner) span services: every event goes to one
        // internal partition, so one owner decides novelty as replay does
        // (`Stage1::send`); stage 1 still parses in parallel.
        tracing::info!(
            "scale_out with fingerprint.include_service = false: known types are global, so \
             every event goes to one internal partition and one stage-2 owner decides them all \
             (parsing still spreads over the instances)"
        );
    }

    let sinks: Vec<Box<dyn AlertSink>> = (opts.make_sinks)()?;
    let mut s2 = stage2::Stage2::new(
        stage2::Build {
            cfg: cfg.clone(),
            baseline: opts.baseline.clone(),
            metrics,
            sinks,
            commands,
        },
        &topic,
        &changelog,
        partitions,
    )?;
    let catalogue = match view {
        Some(v) => Some(catalogue::spawn(
            cfg,
            &changelog,
            partitions,
            v,
            opts.shutdown.clone(),
        )?),
        None => None,
    };
    let s1 = stage1::Stage1::new(cfg, &topic, partitions)?;
    let stage1 = stage1::spawn(s1, opts.shutdown.clone());
    status.ready.store(true, Ordering::Relaxed);
    tracing::info!(topics = ?k.topics, group = %k.group_id, events = %topic, %changelog, partitions, instance = %so.instance, "consuming in two stages (scale_out)");

    let mut batches = 0u64;
    let mut result = Ok(());
    while !opts.shutdown.load(Ordering::Relaxed) {
        match s2.step() {
            Ok(true) => {
                batches += 1;
                status.batches.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => {
                opts.shutdown.store(true, Ordering::Relaxed);
                result = Err(e);
                break;
            }
        }
    }
    let clean = result.is_ok();
    if result.is_ok() {
        result = s2.close();
    }
    let forwarded = match stage1.join() {
        Ok(r) => r,
        Err(_) => Err(ScaleError::Topic("stage 1 panicked".into())),
    };
    if let Some(c) = catalogue
        && c.join().is_err()
    {
        tracing::warn!("scale-out catalogue thread panicked");
    }
    result?;
    let forwarded = forwarded?;
    tracing::info!(
        forwarded,
        commits = s2.commits,
        snapshot_ms = s2.snapshot_time.as_millis() as u64,
        snapshot_bytes = s2.snapshot_bytes,
        snapshot_types = s2.snapshot_types,
        restore_ms = s2.restore_time.as_millis() as u64,
        stage2_refused = s2.refused,
        "scale-out stopped (stage2_refused: events messages not where their partition stood, \
         sought back)"
    );
    Ok(RunSummary {
        records: s2.records(),
        batches,
        clean,
    })
}
