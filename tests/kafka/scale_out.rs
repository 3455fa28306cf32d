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
//! designed, not built (docs/scaling.md), so a second one is refused.

use std::time::{Duration, Instant};

use super::super::{
    ONE_AT_A_TIME, Rng, Service, Setup, broker, broker_addr, read_alerts, test_seed, unique,
};
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
    wait_for_records(&s, records.len() as u64);
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

/// Waits until the state counts `n` records; the run's log on failure.
fn wait_for_records(s: &Setup, n: u64) {
    let limit = Instant::now() + Duration::from_secs(300);
    while s.progress().0 < n {
        assert!(
            Instant::now() < limit,
            "only {:?} of {n} records processed; log: {}",
            s.progress(),
            s.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_stages_survive_a_crash_between_commit_and_save_and_kill_9s_exactly_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    let seed = test_seed();
    eprintln!("kill -9 points seed: {seed} (rerun with FAULTLINE_TEST_SEED={seed})");
    let s = setup("scale1k", 4);
    let records = generated(11, 120, 6.0);
    let expected = s.replay(&lines(&records));
    produce_to(&s.logs, &records, |r| {
        (hash(r.key.split('/').next().unwrap_or("")) % 3) as i32
    });
    // The narrowest window first: stage 2 dies after its 4th commit,
    // before the state save (small batches, so the 4th commit comes
    // however fast the machine drains).
    let svc = s.start_with(&[
        ("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT", "4"),
        ("FAULTLINE__KAFKA__BATCH_SIZE", "1000"),
    ]);
    let st = svc.exits_within(Duration::from_secs(120));
    assert!(!st.success(), "the failpoint aborts the process");
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for round in 0..2 {
        let svc = s.start_with(&[("FAULTLINE__KAFKA__BATCH_SIZE", "2000")]);
        let done = s.progress().0;
        let at = done + 1 + rng.below((records.len() as u64 - done) / 2);
        wait_for_records(&s, at);
        eprintln!(
            "round {round}: kill -9 at {} records durable",
            s.progress().0
        );
        svc.kill9();
    }
    let svc = s.start();
    wait_for_records(&s, records.len() as u64);
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    assert_eq!(
        s.progress().0,
        records.len() as u64,
        "every record processed once"
    );
    assert_same_as_replay(
        "two stages, 1 failpoint crash and 2 kills",
        &read_alerts(&s.alerts),
        &expected,
    );
}

#[test]
fn a_second_instance_in_the_group_is_refused_and_the_first_still_gives_replays_alerts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if broker().is_none() {
        return;
    }
    let s = setup("scale2nd", 4);
    let records = generated(11, 120, 6.0);
    let expected = s.replay(&lines(&records));
    produce_to(&s.logs, &records, |r| {
        (hash(r.key.split('/').next().unwrap_or("")) % 3) as i32
    });
    // Small batches, so the first instance is still a live member of the
    // group when the second one asks.
    let first = s.start_with(&[("FAULTLINE__KAFKA__BATCH_SIZE", "500")]);
    wait_for_records(&s, 1);
    // Another state directory (the state's own lock would refuse a second
    // writer of the same one before the group is asked).
    let other = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("--config")
        .arg(&s.config)
        .arg("run")
        .arg("--state")
        .arg(other.path().join("state"))
        .arg("--alerts")
        .arg(other.path().join("alerts.jsonl"))
        .env("FAULTLINE__METRICS__LISTEN", "\"\"")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(other.path().join("run.log")).unwrap())
        .spawn()
        .unwrap();
    // The test's session timeout is 6 s: refused within it and a margin.
    let second = Service { child, port: 0 }.exits_within(Duration::from_secs(60));
    let said = std::fs::read_to_string(other.path().join("run.log")).unwrap_or_default();
    assert!(!second.success(), "a second instance must not run: {said}");
    assert!(
        said.contains("only one instance per group"),
        "the refusal says why and what to do: {said}"
    );
    wait_for_records(&s, records.len() as u64);
    let (code, _) = first.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    assert_same_as_replay(
        "one instance beside a refused second",
        &read_alerts(&s.alerts),
        &expected,
    );
}
