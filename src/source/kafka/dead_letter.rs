//! Dead letters: a record the parser refused is copied, with why and where
//! from, to `kafka.dead_letter_topic` inside the batch's transaction, and
//! counted and skipped.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};

use crate::alert::kafka::{SharedProducer, send_blocking};
use crate::record::BadReason;

/// Copies the refused `payload` (cut to `max_bytes`) to `topic`, keyed by
/// its `source` (`topic/partition/offset`), with the reason, the source and
/// the original size as headers.
pub(super) fn send(
    producer: &SharedProducer,
    topic: &str,
    max_bytes: usize,
    reason: BadReason,
    source: &str,
    payload: &[u8],
) -> Result<(), KafkaError> {
    let size = payload.len().to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "faultline.reason",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "faultline.source",
            value: Some(source),
        })
        .insert(Header {
            key: "faultline.original_bytes",
            value: Some(size.as_str()),
        });
    let cut = &payload[..payload.len().min(max_bytes)];
    send_blocking(producer, topic, source.as_bytes(), cut, Some(headers))
}
