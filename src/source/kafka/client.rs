//! The librdkafka clients: their configuration, and the context that routes
//! librdkafka's logs and statistics (consumer lag) and its rebalance
//! callbacks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use rdkafka::bindings::rd_kafka_resp_err_t as RDKafkaRespErr;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};

use super::queues::Queues;
use super::{Core, Status, kafka};
use crate::alert::kafka::AuthWatch;
use crate::config::Config;

pub(super) struct Ctx {
    /// Set once the engine is built, after the consumer subscribed (its
    /// group join overlaps the build); rebalance callbacks run inside
    /// `poll`, which only the loop calls, after that.
    pub(super) core: OnceLock<Arc<Mutex<Core>>>,
    pub(super) status: Arc<Status>,
    /// Keeps an authentication failure for the poll loop, which stops.
    pub(super) auth: AuthWatch,
    /// The consumer itself, set right after its creation: splitting a
    /// partition queue needs the `Arc` (weak here, or the consumer would
    /// own itself).
    pub(super) consumer: OnceLock<Weak<BaseConsumer<Ctx>>>,
    /// The assigned partitions' own queues (`queues.rs`).
    pub(super) queues: Arc<Queues<Ctx>>,
}

pub(super) fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
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
        if self.auth.observe(&error, reason) {
            return;
        }
        // Reaching a partition's end is news for the alignment (the poll
        // loop gets it too), not a fault.
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            return;
        }
        // Transport errors are transient: librdkafka reconnects by itself.
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.status
                .broker
                .down(format!("no broker reachable: {reason}"));
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        // Read the few fields needed from the raw JSON: librdkafka's
        // statistics grow with every release, a typed parse breaks on that.
        tracing::trace!(stats = %String::from_utf8_lossy(statistics), "librdkafka statistics");
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(statistics) else {
            return;
        };
        crate::metrics::broker_readiness(&v, &self.status.broker);
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
        let Some(core) = self.core.get() else {
            // Only when the start failed before the loop (the consumer is
            // closed on the way out): nothing was consumed, nothing to keep.
            self.queues.clear();
            let _ = consumer.unassign();
            return;
        };
        let mut core = lock(core);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let start = core.on_assign(consumer, tpl);
                // Split before assigning, so that no record of these
                // partitions is ever forwarded to the consumer's queue.
                if let Some(me) = self.consumer.get().and_then(Weak::upgrade) {
                    for e in start.elements() {
                        let key = (core.topic(e.topic()), e.partition());
                        if !self.queues.split(&me, key) {
                            tracing::warn!(
                                topic = e.topic(),
                                partition = e.partition(),
                                "no queue of its own for the partition: its records are paused and refetched when it runs ahead"
                            );
                        }
                    }
                }
                if let Err(e) = consumer.assign(&start) {
                    core.fatal = Some(kafka("assign")(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                core.on_revoke(consumer, tpl);
                for e in tpl.elements() {
                    self.queues.remove(&(e.topic().into(), e.partition()));
                }
                let _ = consumer.unassign();
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                self.queues.clear();
                let _ = consumer.unassign();
            }
        }
    }
}

/// `defaults` first, then the configured properties (which may override
/// them), then `own` (the consumer's or producer's own section).
pub(crate) fn client_config(
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
