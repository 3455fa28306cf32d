//! Kafka helpers shared by the tests that run against the real broker
//! (`tests/kafka.rs`, `tests/api.rs`, `tests/signals_live.rs`): unique
//! names, topics, producing and reading back committed messages. Each test
//! decides itself whether a missing broker skips or fails it.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// `name` made unique per process and moment: topics, groups and
/// transactional ids of one test never meet another's on a shared broker.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A client of `broker` with nothing else set.
pub fn client(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker);
    c
}

/// Creates each topic with its number of partitions (one replica); a topic
/// that exists already is fine.
pub fn create_topics(client: ClientConfig, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = client.create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1)))
        .collect();
    let res = rt
        .block_on(admin.create_topics(new.iter(), &AdminOptions::new()))
        .expect("create topics");
    for r in res {
        if let Err((t, e)) = r {
            assert_eq!(e, RDKafkaErrorCode::TopicAlreadyExists, "creating {t}");
        }
    }
}

/// Produces `(key, value)` records in order, the i-th to partition
/// `partition(i)` when that is `Some` (else where the client's partitioner
/// puts it), and waits until all are acknowledged.
pub fn produce<'a>(
    mut client: ClientConfig,
    topic: &str,
    records: impl IntoIterator<Item = (Option<&'a str>, &'a [u8])>,
    partition: impl Fn(usize) -> Option<i32>,
) {
    let p: ThreadedProducer<DefaultProducerContext> = client
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    for (i, (key, value)) in records.into_iter().enumerate() {
        let mut rec = BaseRecord::<str, [u8]>::to(topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        if let Some(n) = partition(i) {
            rec = rec.partition(n);
        }
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// Produces each line as one message without a key.
pub fn produce_lines(client: ClientConfig, topic: &str, lines: &[String]) {
    produce(
        client,
        topic,
        lines.iter().map(|l| (None, l.as_bytes())),
        |_| None,
    )
}

/// Every committed message of `topic` (read_committed, from the start), read
/// until `quiet` passed without one (at most 60 s).
pub fn read_committed(mut client: ClientConfig, topic: &str, quiet: Duration) -> Vec<Vec<u8>> {
    let c: BaseConsumer = client
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let (mut out, mut last, started) = (Vec::new(), Instant::now(), Instant::now());
    while last.elapsed() < quiet && started.elapsed() < Duration::from_secs(60) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(m.payload().unwrap_or(&[]).to_vec());
                last = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}
