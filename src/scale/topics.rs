//! The internal topics, created on start with the admin client: a user
//! turning scale-out on needs no step outside faultline.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{ScaleError, kafka};

/// Creates `topic` with `partitions` partitions unless it exists, and
/// returns the partition count it has (an existing topic is used as it is:
/// changing a live topic's partitions would move services between owners).
pub fn ensure(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> Result<i32, ScaleError> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(kafka("creating the admin client"))?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    // The admin client's futures complete on librdkafka's thread; a
    // current-thread runtime only waits for them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ScaleError::Topic(format!("starting a runtime for the admin client: {e}")))?;
    let results = rt
        .block_on(admin.create_topics([&new], &opts))
        .map_err(kafka("creating the internal topic"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, partitions, "created an internal topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ScaleError::Topic(format!(
                    "creating the internal topic {t}: {code}; create it yourself or give \
                     faultline's principal CreateTopics"
                )));
            }
        }
    }
    partitions_of(client, topic)
}

/// The partition count the broker reports for `topic` (retried briefly:
/// metadata of a topic just created may take a moment to show).
pub fn partitions_of(client: &ClientConfig, topic: &str) -> Result<i32, ScaleError> {
    let c: BaseConsumer = client.create().map_err(kafka("creating a client"))?;
    for _ in 0..50 {
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(kafka("reading the internal topic's metadata"))?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            return Ok(t.partitions().len() as i32);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(ScaleError::Topic(format!(
        "the internal topic {topic} has no partitions after 5 s"
    )))
}
