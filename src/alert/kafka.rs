//! Kafka alert sink: each alert as one JSON message (`faultline.alert/v1`)
//! on the alerts topic, keyed by fingerprint so one type's alerts stay in
//! order on one partition.
//!
//! The sink only enqueues. Durability belongs to the Kafka source, which
//! owns the transactional producer this sink shares: it commits the alerts
//! together with the consumer offsets that produced them, so a
//! read_committed consumer sees each alert once across crashes. A full
//! local queue is backpressure, not an error: `emit` waits for librdkafka
//! to drain it, which stops the pipeline from reading further records.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::{Alert, AlertSink, SinkError};

/// The producer shared between the sink and the source's transactions.
pub type SharedProducer = Arc<ThreadedProducer<AuthWatch>>;

/// A librdkafka client context that keeps the first authentication
/// failure. librdkafka treats a rejected credential like a lost connection
/// and retries it forever (while `init_transactions` or a poll waits); the
/// owner checks [`AuthWatch::failure`] and stops instead, since a wrong
/// password does not fix itself. Shared by cloning.
#[derive(Clone, Debug, Default)]
pub struct AuthWatch(Arc<OnceLock<String>>);

impl AuthWatch {
    /// Records `error` when it is an authentication failure; true if so.
    pub fn observe(&self, error: &KafkaError, reason: &str) -> bool {
        let auth = error.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication);
        if auth {
            // librdkafka's reason names the broker and mechanism, never
            // the secret.
            let _ = self.0.set(reason.to_string());
        }
        auth
    }

    /// librdkafka's reason for the first authentication failure seen.
    pub fn failure(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

impl ClientContext for AuthWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if !self.observe(&error, reason) {
            tracing::error!(target: "librdkafka", error = %error, "{reason}");
        }
    }
}

impl ProducerContext for AuthWatch {
    type DeliveryOpaque = ();
    // Delivery is checked by the transaction commit (or `flush`).
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

pub struct KafkaAlertSink {
    producer: SharedProducer,
    topic: String,
    name: String,
    /// Without transactions, `flush` waits for delivery itself.
    transactional: bool,
}

impl KafkaAlertSink {
    pub fn new(producer: SharedProducer, topic: &str, transactional: bool) -> KafkaAlertSink {
        KafkaAlertSink {
            producer,
            topic: topic.to_string(),
            name: format!("kafka:{topic}"),
            transactional,
        }
    }
}

/// Sends one message, waiting while the local queue is full. Shared with
/// the dead-letter path of the source.
pub fn send_blocking(
    producer: &SharedProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), KafkaError> {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    if let Some(h) = headers {
        record = record.headers(h);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                // The background thread polls delivery reports; give it
                // time to free queue space (the broker may be slow or down).
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

impl AlertSink for KafkaAlertSink {
    fn emit(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let payload = serde_json::to_vec(alert).map_err(|e| SinkError::Other {
            sink: self.name.clone(),
            message: e.to_string(),
        })?;
        // Storm summaries have no fingerprint: key them by id so they still
        // spread deterministically.
        let key = match alert.fingerprint {
            Some(f) => f.to_string(),
            None => alert.id.clone(),
        };
        send_blocking(&self.producer, &self.topic, key.as_bytes(), &payload, None).map_err(|e| {
            SinkError::Other {
                sink: self.name.clone(),
                message: e.to_string(),
            }
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.transactional {
            // commit_transaction flushes; flushing here would only wait twice.
            return Ok(());
        }
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| SinkError::Other {
                sink: self.name.clone(),
                message: e.to_string(),
            })
    }

    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_watch_keeps_the_first_authentication_failure_and_ignores_other_errors() {
        let w = AuthWatch::default();
        let shared = w.clone();
        assert!(!w.observe(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down"
        ));
        assert_eq!(shared.failure(), None);
        assert!(w.observe(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: invalid credentials"
        ));
        assert!(w.observe(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "a later one"
        ));
        assert_eq!(
            shared.failure(),
            Some("SASL authentication error: invalid credentials")
        );
    }
}
