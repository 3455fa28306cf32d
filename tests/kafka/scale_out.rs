//! Scale-out, first slice (issue 17, docs/scaling.md): `faultline run` with
//! `[scale_out] enabled = true` parses in stage 1, forwards the parser's
//! events keyed by service through the internal events topic (created on
//! start), and decides in stage 2. On the same generated release scenario
//! as the alignment tests, keyed by service over 3 input partitions and
//! spread over 4 internal partitions, the alerts topic under
//! read_committed must hold the (kind, service, fingerprint) set of
//! `faultline replay` for every kind, each alert once, and the records
//! counted in the state must add up to the input.
//!
//! One instance runs both stages: several instances in one group are
//! designed, not built (docs/scaling.md).

use std::time::{Duration, Instant};

use super::super::{ONE_AT_A_TIME, Setup, broker, broker_addr, read_alerts, unique};
use super::{assert_same_as_replay, generated, hash, lines, produce_to};

fn setup(name: &str, internal_partitions: i32) -> Setup {
    Setup::with_topics(name, 3, |logs, alerts| {
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
[scale_out]
enabled = true
partitions = {internal_partitions}
replication = 1
"#,
            broker = broker_addr(),
            group = unique(&format!("{name}-group")),
            txid = unique(&format!("{name}-tx")),
        )
    })
}

#[test]
fn one_instance_in_two_stages_gives_replays_alerts_of_every_kind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    let s = setup("scale1", 4);
    let records = generated(11, 120, 6.0);
    let expected = s.replay(&lines(&records));
    // Keyed by service, as in the alignment test: one partition's two
    // hours can reach stage 1 before another's first minutes.
    produce_to(&s.logs, &records, |r| {
        (hash(r.key.split('/').next().unwrap_or("")) % 3) as i32
    });
    let started = Instant::now();
    let svc = s.start();
    let limit = Instant::now() + Duration::from_secs(300);
    while s.progress().0 < records.len() as u64 {
        assert!(
            Instant::now() < limit,
            "only {:?} of {} records processed; log: {}",
            s.progress(),
            records.len(),
            s.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    eprintln!(
        "{} records, 3 input and 4 internal partitions, two stages: {:?}",
        records.len(),
        started.elapsed()
    );
    assert_eq!(
        s.progress().0,
        records.len() as u64,
        "every record processed once"
    );
    assert_same_as_replay("two stages", &read_alerts(&s.alerts), &expected);
}
