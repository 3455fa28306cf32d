//! The type catalogue under scale-out: every instance's API lists every
//! type of the group, whichever instance owns it.
//!
//! A type's state lives in the engine of its partition's owner, and the
//! changelog holds one record per type (`changelog.rs`), written in each
//! owner's commit. So every instance tails the changelog, all partitions,
//! read_committed (as an assigned reader, not a group member: each reads
//! everything), and shows each type record in the API's view
//! ([`TypeView`]); a tombstone takes the type out once no partition holds
//! it. The view lags the owners by a commit (`kafka.commit_interval`), as
//! the single stage's view lags its checkpoints. What it does not show:
//! snooze details (the snoozes live in the rest of a partition's state;
//! a muted type shows as muted) and the owners' watermark (the view's is
//! the newest `last_seen` among the types).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{ScaleError, changelog, kafka};
use crate::api::TypeView;
use crate::baseline::ErrorType;
use crate::config::Config;
use crate::fingerprint::Fingerprint;
use crate::window::WindowSpec;

/// Tails the changelog `topic` (`partitions` partitions) into `view` until
/// `stop`, on its own thread. A record that does not decode is logged and
/// skipped: the view is a reader's copy, never a reason to stop.
pub(super) fn spawn(
    cfg: &Config,
    topic: &str,
    partitions: i32,
    view: Arc<TypeView>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ScaleError> {
    let reader = changelog::reader(&super::client(cfg, &cfg.kafka.consumer_properties))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(kafka("changelog offsets"))?;
    }
    reader
        .assign(&tpl)
        .map_err(kafka("assigning the changelog to the catalogue"))?;
    let samples = cfg.alerts.samples;
    let spec = WindowSpec::new(
        cfg.window.bucket.as_millis(),
        cfg.window.history.as_millis(),
    );
    let topic = topic.to_string();
    std::thread::Builder::new()
        .name("scale-catalogue".into())
        .spawn(move || {
            // Which partitions hold each type (an imported baseline is in
            // every partition: a tombstone on one does not remove it).
            let mut held: HashMap<Fingerprint, HashSet<i32>> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let m = match reader.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => m,
                    Some(Err(KafkaError::PartitionEOF(_))) | None => continue,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, topic, "scale-out catalogue: reading the changelog");
                        continue;
                    }
                };
                let Some(fp) = m.key().and_then(changelog::type_of) else {
                    continue; // the rest of a partition's state
                };
                match m.payload() {
                    Some(v) => match serde_json::from_slice::<ErrorType>(v) {
                        Ok(t) => {
                            held.entry(fp).or_default().insert(m.partition());
                            view.put(&t, samples, spec);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %fp, "scale-out catalogue: an undecodable type record; skipped");
                        }
                    },
                    None => {
                        if let Some(h) = held.get_mut(&fp) {
                            h.remove(&m.partition());
                            if h.is_empty() {
                                held.remove(&fp);
                                view.take_out(fp);
                            }
                        }
                    }
                }
            }
        })
        .map_err(|e| ScaleError::Topic(format!("starting the catalogue thread: {e}")))
}
