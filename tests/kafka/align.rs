//! Event-time alignment across partitions (issue 15): `faultline run` with
//! the default configuration on a multi-partition backlog gives the alerts
//! `faultline replay` gives on the same records, for every kind.
//!
//! The records come from the project's scenario generator
//! (`examples/gen-logs`: warm-up, a release with a canary, new types,
//! surges, bursts), produced keyed as a shipper would. On a backlog the
//! consumer reads each partition in large fetches, so one partition's whole
//! stream (two hours of event time) can reach the engine before the
//! others' first minutes: that is the skew the alignment must undo. The
//! alerts of every kind are compared as (kind, service, fingerprint) sets;
//! each alert on the alerts topic must be there once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use faultline::alert::{Alert, Kind};

use super::scenario::{Config as GenConfig, Scenario};
use super::{
    ONE_AT_A_TIME, Rng, Setup, broker, broker_addr, plain, produce_partitioned, read_alerts,
    test_seed, unique,
};

// Scale-out's first slice runs the same scenarios (issue 17).
#[path = "scale_out.rs"]
mod scale_out;

/// One generated record: the key a shipper would use and the line.
struct Rec {
    key: String,
    line: Vec<u8>,
    /// Event time, ms since the Unix epoch.
    time_ms: i64,
}

/// The scenario's records as ECS-style JSON lines, in emission order,
/// keyed by service and pod.
fn generated(seed: u64, minutes: u32, rate: f64) -> Vec<Rec> {
    let sc = Scenario::generate(&GenConfig {
        seed,
        minutes,
        rate,
    });
    sc.records
        .iter()
        .map(|r| {
            let mut line = String::new();
            Scenario::json_line(r, &mut line);
            Rec {
                key: format!("{}/{}", r.service.name(), r.pod),
                line: line.trim_end().as_bytes().to_vec(),
                time_ms: r.time_ms(),
            }
        })
        .collect()
}

/// A stable hash of the key (FNV-1a), so the partitioning does not depend
/// on the client's partitioner.
fn hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn produce_to(topic: &str, records: &[Rec], partition: impl Fn(&Rec) -> i32) {
    produce_partitioned(plain(), topic, &lines(records), |i| {
        Some(partition(&records[i]))
    });
}

/// A topic of `partitions` partitions and a configuration that sets only
/// what a deployment must (addresses and names): alignment, lateness and
/// batching are the defaults.
fn setup(name: &str, partitions: i32) -> Setup {
    Setup::with_topics(name, partitions, |logs, alerts| {
        format!(
            r#"
[kafka]
brokers = "{broker}"
topics = ["{logs}"]
group_id = "{group}"
alerts_topic = "{alerts}"
transactional_id = "{txid}"
[kafka.consumer_properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
"#,
            broker = broker_addr(),
            group = unique(&format!("{name}-group")),
            txid = unique(&format!("{name}-tx")),
        )
    })
}

type Subject = (Kind, String, Option<String>);

fn subjects(alerts: &[Alert]) -> BTreeSet<Subject> {
    alerts
        .iter()
        .map(|a| {
            (
                a.kind,
                a.service.clone(),
                a.fingerprint.map(|f| f.to_string()),
            )
        })
        .collect()
}

/// Asserts every alert on the topic is there once and the (kind, service,
/// fingerprint) set of every kind equals the replay's; prints the counts.
fn assert_same_as_replay(what: &str, kafka: &[Alert], replay: &[Alert]) {
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for a in kafka {
        *ids.entry(a.id.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    let (k, r) = (subjects(kafka), subjects(replay));
    let missing: Vec<_> = r.difference(&k).collect();
    let extra: Vec<_> = k.difference(&r).collect();
    let mut per_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for s in &r {
        *per_kind.entry(s.0).or_default() += 1;
    }
    eprintln!(
        "{what}: replay {} subjects {per_kind:?}; run: {} missing, {} extra, {} duplicates",
        r.len(),
        missing.len(),
        extra.len(),
        dups.len()
    );
    assert!(
        dups.is_empty(),
        "{what}: delivered more than once: {dups:?}"
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}\nextra {extra:?}"
    );
    assert!(
        per_kind.contains_key(&Kind::Novel) && per_kind.contains_key(&Kind::Surge),
        "{what}: the scenario must produce novel and surge alerts, got {per_kind:?}"
    );
}

fn lines(records: &[Rec]) -> Vec<(Option<String>, Vec<u8>)> {
    records
        .iter()
        .map(|r| (Some(r.key.clone()), r.line.clone()))
        .collect()
}

#[test]
fn a_three_partition_backlog_gives_replays_alerts_of_every_kind_through_kill_9s() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    let seed = test_seed();
    eprintln!("kill -9 points seed: {seed} (rerun with FAULTLINE_TEST_SEED={seed})");
    let s = setup("align3", 3);
    let records = generated(11, 120, 6.0);
    let expected = s.replay(&lines(&records));
    // Keyed by service: each partition holds whole services, and the
    // consumer's first fetches bring one partition's two hours before the
    // others' first minutes.
    produce_to(&s.logs, &records, |r| {
        (hash(r.key.split('/').next().unwrap_or("")) % 3) as i32
    });
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let started = Instant::now();
    // The narrowest window first: after the 2nd commit, before the state
    // save.
    let kills: u64 = std::env::var("FAULTLINE_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if kills > 0 {
        // The narrowest window first: after a commit, before the state
        // save.
        // Batches small enough that the 6th commit comes whatever the
        // machine's speed (by default a batch closes on an interval, and
        // a fast drain may need fewer than six).
        let svc = s.start_with(&[
            ("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT", "6"),
            ("FAULTLINE__KAFKA__BATCH_SIZE", "1000"),
        ]);
        let st = svc.exits_within(Duration::from_secs(120));
        assert!(!st.success(), "the failpoint aborts the process");
    }
    for round in 0..kills {
        // Small buffers in these runs: a partition whose records came
        // through the consumer's own queue (its queue could not be split)
        // would pause and resume between the kills. With split queues a
        // buffer holds about one entry and nothing pauses; the kills then
        // land while every partition's prefetch waits in librdkafka.
        let svc = s.start_with(&[("FAULTLINE__KAFKA__PARTITION_BUFFER", "1000")]);
        // A point in the stream, counted in records durably processed (the
        // consumer reads far ahead of what the alignment releases).
        // A restarted service may have drained the rest before this reads
        // its progress: the kill then lands after the end, still a crash
        // whose restart must repeat nothing.
        let total = records.len() as u64;
        let done = s.progress().0;
        let at = (done + 1 + rng.below(total.saturating_sub(done) / 2)).min(total);
        s.wait_durable(at, Duration::from_secs(120));
        eprintln!(
            "round {round}: kill -9 at {} records durable",
            s.progress().0
        );
        svc.kill9();
    }
    let svc = s.start();
    s.wait_for_all(records.len(), Duration::from_secs(300));
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    eprintln!(
        "{} records on 3 partitions, 1 failpoint crash and 3 kills: {:?}",
        records.len(),
        started.elapsed()
    );
    assert_eq!(
        s.progress().0,
        records.len() as u64,
        "every record processed once"
    );
    assert_same_as_replay("3 partitions", &read_alerts(&s.alerts), &expected);
}

/// Runs `records` through `faultline run` from a backlog on `partitions`
/// partitions (`partition_of` picks each record's) and compares with replay.
fn backlog_matches_replay(
    name: &str,
    partitions: i32,
    records: &[Rec],
    partition_of: impl Fn(&Rec) -> i32,
) {
    let s = setup(name, partitions);
    let expected = s.replay(&lines(records));
    produce_to(&s.logs, records, partition_of);
    let started = Instant::now();
    let svc = s.start();
    s.wait_for_all(records.len(), Duration::from_secs(300));
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    let what = format!("{partitions} partitions");
    eprintln!(
        "{} records on {what}: {:?}",
        records.len(),
        started.elapsed()
    );
    assert_eq!(s.progress().0, records.len() as u64);
    assert_same_as_replay(&what, &read_alerts(&s.alerts), &expected);
}

#[test]
fn twelve_partitions_with_one_idle_give_replays_alerts_of_every_kind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    // Keyed by pod over partitions 0..=10; partition 11 stays empty and
    // must not hold the others back.
    let records = generated(12, 100, 3.0);
    backlog_matches_replay("align12", 12, &records, |r| (hash(&r.key) % 11) as i32);
}

#[test]
fn one_partition_gives_replays_alerts_of_every_kind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    // The same records as the twelve-partition case, in one partition: the
    // order replay reads them in.
    let records = generated(12, 100, 3.0);
    backlog_matches_replay("align1", 1, &records, |_| 0);
}

#[test]
fn a_two_hour_skew_between_partitions_and_an_idle_one_give_replays_alerts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    // Keyed by service over partitions 0..=2; partition 3 stays empty. The
    // services of partition 2 ship only from the third hour on (a shipper
    // started late, a backfill cut short): when the backlog is read, that
    // partition's first record is two hours of event time ahead of the
    // others' first records, and nothing but the alignment keeps it from
    // moving the watermark two hours on at once.
    let all = generated(13, 150, 3.0);
    let start = all.iter().map(|r| r.time_ms).min().unwrap_or(0);
    let skew = 2 * 3_600_000;
    let part = |r: &Rec| (hash(r.key.split('/').next().unwrap_or("")) % 3) as i32;
    let records: Vec<Rec> = all
        .into_iter()
        .filter(|r| part(r) != 2 || r.time_ms >= start + skew)
        .collect();
    let first = |p: i32| {
        records
            .iter()
            .filter(|r| part(r) == p)
            .map(|r| r.time_ms)
            .min()
    };
    let (late, early) = (first(2), first(0).min(first(1)));
    assert!(
        late.zip(early).is_some_and(|(l, e)| l - e >= skew - 60_000),
        "the partitions' first records must be two hours apart: {early:?} {late:?}"
    );
    backlog_matches_replay("skew2h", 4, &records, part);
}
