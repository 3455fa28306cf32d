//! Scale-out (issue 17, `docs/scaling.md`): `faultline run` in two stages
//! over an internal Kafka topic, in the Kafka Streams model. Off by default
//! (`[scale_out] enabled = true`).
//!
//! Stage 1 (`stage1.rs`) parses the input partitions the instance owns and
//! forwards the parser's events, keyed by service, to the internal events
//! topic in one transaction with the input offsets, with a watermark per
//! upstream partition. Stage 2 (`stage2.rs`) replays the events of the
//! internal partitions it owns into the [`Engine`] in event-time order and
//! makes the decisions; alerts and its offsets commit in one transaction,
//! then the state is saved (`source::driver::checkpoint`). This first slice
//! runs both stages in one process and supports one instance per group:
//! what several instances need (state restored from changelogs on the new
//! owner, global known types, a control topic) is designed in
//! `docs/scaling.md` and not built.
//!
//! The module sits beside `source`, above it: it feeds the engine like a
//! source and uses the aligner and the driver; nothing below imports it.

mod stage1;
mod stage2;
pub mod topics;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};

use crate::alert::kafka::{AuthWatch, KafkaAlertSink, SharedProducer};
use crate::alert::{AlertSink, SinkError};
use crate::config::Config;
use crate::engine::{Engine, PipelineError};
use crate::metrics::Metrics;
use crate::source::driver::{self, Cadence};
use crate::source::kafka::gated::Gated;
use crate::source::kafka::{RunOptions, RunSummary, Status};
use crate::state::{State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("kafka (scale-out) {context}: {source}")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error("scale-out: {0}")]
    Topic(String),
    #[error(
        "scale-out: consumer group `{group}` already has {members} live member(s); with \
         [scale_out] enabled only one instance per group is built so far (docs/scaling.md): \
         stop the other instance, or give this one another kafka.group_id"
    )]
    SecondInstance { group: String, members: usize },
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

/// A consumer that only asks the broker about groups (it joins none).
fn group_probe(cfg: &Config) -> Result<BaseConsumer<Quiet>, ScaleError> {
    client(cfg, &cfg.kafka.consumer_properties)
        .create_with_context(Quiet)
        .map_err(kafka("creating the group probe"))
}

/// How long the broker keeps a member that stopped heart-beating: the
/// consumer's `session.timeout.ms` (librdkafka's default, 45 s).
fn session_timeout(cfg: &Config) -> Duration {
    let ms = cfg
        .kafka
        .consumer_properties
        .get("session.timeout.ms")
        .or_else(|| cfg.kafka.properties.get("session.timeout.ms"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(45_000);
    Duration::from_millis(ms)
}

/// Several instances in one group are designed, not built (docs/scaling.md):
/// each stage 2 reads every internal partition, so a second instance would
/// repeat alerts and split the state without a word. So stage 1 does not
/// join a group that has live members. A member left by a killed instance
/// (kill -9, a crashed pod) stays listed until the broker's session timeout
/// drops it: that long, plus a margin, is waited for before refusing.
fn only_instance(
    probe: &BaseConsumer<Quiet>,
    group: &str,
    session: Duration,
) -> Result<(), ScaleError> {
    let deadline = Instant::now() + session + Duration::from_secs(5);
    let mut logged = false;
    loop {
        let list = probe
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .map_err(kafka("listing the consumer group"))?;
        let members: usize = list
            .groups()
            .iter()
            .filter(|g| g.name() == group)
            .map(|g| g.members().len())
            .sum();
        if members == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ScaleError::SecondInstance {
                group: group.to_string(),
                members,
            });
        }
        if !logged {
            tracing::warn!(
                group,
                members,
                "the consumer group has members: waiting up to the session timeout for those of a stopped instance to expire"
            );
            logged = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The internal events topic's name.
pub fn events_topic(cfg: &Config) -> String {
    match cfg.scale_out.events_topic.as_str() {
        "" => format!("{}-events", cfg.kafka.group_id),
        t => t.to_string(),
    }
}

/// `faultline run` with `[scale_out] enabled`: both stages, until
/// `opts.shutdown` is set (or a stage fails, which sets it).
pub fn run(
    cfg: &Config,
    opts: RunOptions,
    metrics: Arc<Metrics>,
    status: Arc<Status>,
) -> Result<RunSummary, ScaleError> {
    let k = &cfg.kafka;
    let so = &cfg.scale_out;
    // Before any transactional producer: a refused instance must not fence
    // the running one's transactions.
    only_instance(&group_probe(cfg)?, &k.group_id, session_timeout(cfg))?;
    let topic = events_topic(cfg);
    let partitions = topics::ensure(
        &client(cfg, &BTreeMap::new()),
        &topic,
        so.partitions,
        so.replication,
    )?;
    if partitions != so.partitions {
        tracing::warn!(
            topic,
            partitions,
            configured = so.partitions,
            "the internal topic exists with another partition count; using it as it is"
        );
    }

    // Stage 2's clients and engine first: it must be ready to read what
    // stage 1 commits.
    let producer: Option<SharedProducer> = if k.alerts_topic.is_empty() {
        None
    } else {
        let mut pc = client(cfg, &k.producer_properties);
        pc.set("transactional.id", format!("{}-stage2", k.transactional_id))
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let p: rdkafka::producer::ThreadedProducer<AuthWatch> = pc
            .create_with_context(AuthWatch::default())
            .map_err(kafka("creating the stage-2 producer"))?;
        timeout_retry(|t| rdkafka::producer::Producer::init_transactions(&p, t))
            .map_err(kafka("init transactions (stage 2)"))?;
        Some(Arc::new(p))
    };
    let mut cc = client(cfg, &k.consumer_properties);
    cc.set("group.id", format!("{}-stage2", k.group_id))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<Quiet> = cc
        .create_with_context(Quiet)
        .map_err(kafka("creating the stage-2 consumer"))?;

    let mut sinks: Vec<Box<dyn AlertSink>> = (opts.make_sinks)()?;
    if let Some(p) = &producer {
        sinks.push(Box::new(KafkaAlertSink::new(
            p.clone(),
            &k.alerts_topic,
            true,
        )));
    }
    let silent = Arc::new(AtomicBool::new(false));
    let sinks = sinks
        .into_iter()
        .map(|inner| {
            Box::new(Gated {
                inner,
                silent: silent.clone(),
            }) as Box<dyn AlertSink>
        })
        .collect();
    let state = State::load_writable(&opts.state_dir)?;
    let mut engine = Engine::new(cfg, state, &opts.baseline, sinks, metrics)?;
    engine.forget_emitted();
    let mut s2 = stage2::Stage2::new(
        engine,
        silent,
        consumer,
        producer,
        &topic,
        partitions,
        k.partition_buffer,
        so.max_idle.0.max(k.max_idle.0),
    );

    s2.assign()?;
    let s1 = stage1::Stage1::new(cfg, &topic, partitions)?;
    let stage1 = stage1::spawn(s1, opts.shutdown.clone());
    status.ready.store(true, Ordering::Relaxed);
    tracing::info!(topics = ?k.topics, group = %k.group_id, events = %topic, partitions, "consuming in two stages (scale_out)");

    let cadence = Cadence {
        records: k.batch_size as u64,
        interval: Some(k.commit_interval.0),
        store: Some(&opts.state_dir),
        commands: opts.commands.as_deref().map(|c| c as &dyn driver::Commands),
    };
    let mut batches = 0u64;
    let mut result = Ok(());
    while !opts.shutdown.load(Ordering::Relaxed) {
        match driver::step(&mut s2, &cadence) {
            Ok(s) => {
                if s.checkpointed {
                    batches += 1;
                    status.batches.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                opts.shutdown.store(true, Ordering::Relaxed);
                result = Err(e);
                break;
            }
        }
    }
    let mut clean = result.is_ok();
    if result.is_ok() && s2.at_boundary_now() {
        match driver::checkpoint(&mut s2, &opts.state_dir, true) {
            Ok(()) => batches += 1,
            Err(e) => {
                clean = false;
                result = Err(e);
            }
        }
    }
    let forwarded = match stage1.join() {
        Ok(r) => r,
        Err(_) => Err(ScaleError::Topic("stage 1 panicked".into())),
    };
    result?;
    let forwarded = forwarded?;
    tracing::info!(forwarded, "stage 1 stopped");
    Ok(RunSummary {
        records: s2.engine.state.kafka_records,
        batches,
        clean,
    })
}
