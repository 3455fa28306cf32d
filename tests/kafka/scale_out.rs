//! Scale-out (issue 17, docs/scaling.md): `faultline run` with
//! `[scale_out] enabled = true` parses in stage 1, forwards the parser's
//! events keyed by service through the internal events topic (created on
//! start), and decides in stage 2, whose instances share the internal
//! partitions as a consumer group and keep each partition's state in the
//! changelog topic. On the same generated release scenario as the
//! alignment tests, keyed by service over 3 input partitions and spread
//! over 4 internal partitions, the alerts topic under read_committed must
//! hold the (kind, service, fingerprint) set of `faultline replay` for
//! every kind, each alert once, and the records counted in the changelog's
//! states must add up to the input, with one instance, after crashes, and
//! with three instances of which one is killed twice and one added (the
//! issue's test; `FAULTLINE_SCALE_RECORDS` sets its size). Resolve and
//! mute reach the type's owner through the control topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::super::support::{http, wait_for};
use super::super::{
    ONE_AT_A_TIME, Rng, Service, Setup, broker, broker_addr, free_port, read_alerts, test_seed,
    unique,
};
use super::{assert_same_as_replay, generated, hash, lines, produce_to};

/// A setup and its consumer group (the changelog is `<group>-changelog`).
struct Scaled {
    s: Setup,
    group: String,
    partitions: i32,
}

fn setup(name: &str, internal_partitions: i32) -> Scaled {
    setup_fetching(name, internal_partitions, 1 << 20)
}

fn setup_fetching(name: &str, internal_partitions: i32, fetch_bytes: usize) -> Scaled {
    setup_with(name, internal_partitions, fetch_bytes, "")
}

/// The setup with `extra` configuration appended.
fn setup_with(name: &str, internal_partitions: i32, fetch_bytes: usize, extra: &str) -> Scaled {
    let group = unique(&format!("{name}-group"));
    let g = group.clone();
    let s = Setup::with_topics(name, 3, |logs, alerts| {
        format!(
            r#"
[kafka]
brokers = "{broker}"
topics = ["{logs}"]
group_id = "{g}"
alerts_topic = "{alerts}"
transactional_id = "{txid}"
[kafka.consumer_properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
# Small fetches: the stream drains over many batches, so a member killed
# or added at a third of it falls mid-stream.
"max.partition.fetch.bytes" = "{fetch}"
# A killed instance's open transaction holds read_committed readers back
# until the broker aborts it: 10 s instead of librdkafka's 60.
[kafka.producer_properties]
"transaction.timeout.ms" = "10000"
# The stream is two hours of event time replayed in seconds: a stall of
# stage 2 while the group rebalances (session timeout, a killed member's
# transaction timeout) would read as minutes of silence to the wall-clock
# silence clock, which replay (the reference) never runs.
[signals]
silence_after = "10m"
[scale_out]
enabled = true
partitions = {internal_partitions}
replication = 1
{extra}
"#,
            broker = broker_addr(),
            txid = unique(&format!("{name}-tx")),
            fetch = fetch_bytes,
        )
    });
    Scaled {
        s,
        group,
        partitions: internal_partitions,
    }
}

impl Scaled {
    /// Records processed, as the latest committed states of all internal
    /// partitions in the changelog count them.
    fn records(&self) -> u64 {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", broker_addr());
        match faultline::scale::changelog::states(
            &c,
            &format!("{}-changelog", self.group),
            self.partitions,
        ) {
            Ok(states) => states.iter().map(|(_, s)| s.kafka_records).sum(),
            Err(_) => 0, // not created yet
        }
    }

    /// Waits until the changelog counts `n` records; the runs' log on
    /// failure.
    fn wait_for_records(&self, n: u64, limit: Duration) {
        self.wait_for_records_of(n, limit, &mut [])
    }

    /// [`wait_for_records`](Self::wait_for_records), saying on failure
    /// which of `instances` still run and where each stage stands
    /// ([`pipeline_report`](Self::pipeline_report)).
    fn wait_for_records_of(&self, n: u64, limit: Duration, instances: &mut [(&str, Service)]) {
        let limit = Instant::now() + limit;
        let mut seen = self.records();
        while seen < n {
            if Instant::now() >= limit {
                let alive: Vec<String> = instances
                    .iter_mut()
                    .map(|(name, svc)| match svc.child.try_wait() {
                        Ok(None) => format!("{name}: running"),
                        Ok(Some(st)) => format!("{name}: exited ({st})"),
                        Err(e) => format!("{name}: {e}"),
                    })
                    .collect();
                panic!(
                    "only {seen} of {n} records processed; instances: {alive:?}; per internal \
                     partition (records, offsets): {:?}; where each stage stands:\n{}\nthe \
                     log's last warnings and errors:\n{}\nlog: {}",
                    self.states()
                        .iter()
                        .map(|(p, s)| (*p, s.kafka_records, s.kafka_offsets.clone()))
                        .collect::<Vec<_>>(),
                    self.pipeline_report(),
                    self.warnings(),
                    self.s.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
            seen = self.records();
        }
    }

    /// Where each stage stands, for a count that stopped short: per input
    /// partition its end and the input group's committed offset (stage 1's
    /// progress); per internal partition its end under read_committed (the
    /// last stable offset), the stage-2 group's committed offset, the event
    /// messages it holds under read_committed (each is one record once
    /// released) and the records its changelog state counts. So a failure
    /// says which of these it was: stage 1 did not forward a batch (input
    /// committed short of its end, or events held short of the input), an
    /// open transaction holds an internal partition's stable offset back,
    /// stage 2 stopped reading (committed short of the end), or a state
    /// lost what its owner had read (committed at the end, counted short
    /// of the events held).
    fn pipeline_report(&self) -> String {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        use rdkafka::{Offset, TopicPartitionList};
        let wait = Duration::from_secs(10);
        let consumer = |group: &str| -> Option<BaseConsumer> {
            let mut c = rdkafka::ClientConfig::new();
            c.set("bootstrap.servers", broker_addr())
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .set("auto.offset.reset", "earliest")
                .set("isolation.level", "read_committed");
            c.create().ok()
        };
        // Per partition of `topic`: (end, committed by `group`).
        let stand = |group: &str, topic: &str, partitions: i32| -> Vec<String> {
            let Some(c) = consumer(group) else {
                return vec!["no client".into()];
            };
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                tpl.add_partition(topic, p);
            }
            let committed = c.committed_offsets(tpl, wait);
            (0..partitions)
                .map(|p| {
                    let end = c.fetch_watermarks(topic, p, wait).map(|(_, h)| h);
                    let got = match &committed {
                        Ok(t) => t.find_partition(topic, p).map_or("none".into(), |e| {
                            format!(
                                "{:?}{}",
                                e.offset(),
                                e.error().err().map_or(String::new(), |x| format!(" ({x})"))
                            )
                        }),
                        Err(e) => format!("error: {e}"),
                    };
                    format!("{p}: end {end:?}, committed {got}")
                })
                .collect()
        };
        let events = format!("{}-events", self.group);
        let mut out = format!(
            "input {} (group {}): {:?}\nevents {events} (group {}-stage2): {:?}\n",
            self.s.logs,
            self.group,
            stand(&self.group, &self.s.logs, 3),
            self.group,
            stand(&format!("{}-stage2", self.group), &events, self.partitions),
        );
        // The event messages each internal partition holds, read whole.
        let Some(c) = consumer(&unique("scale-report")) else {
            return out;
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            let _ = tpl.add_partition_offset(&events, p, Offset::Beginning);
        }
        if c.assign(&tpl).is_err() {
            return out;
        }
        let mut held = vec![0u64; self.partitions as usize];
        let mut ended = std::collections::BTreeSet::new();
        let until = Instant::now() + Duration::from_secs(60);
        while ended.len() < self.partitions as usize && Instant::now() < until {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let env: Option<faultline::scale::wire::Envelope> =
                        m.payload().and_then(|b| serde_json::from_slice(b).ok());
                    if env.is_some_and(|e| e.events.is_some()) {
                        held[m.partition() as usize] += 1;
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    ended.insert(p);
                }
                _ => {}
            }
        }
        let counted: BTreeMap<i32, u64> = self
            .states()
            .iter()
            .map(|(p, s)| (*p, s.kafka_records))
            .collect();
        out += &format!(
            "event messages held per internal partition (read to the end: {}): {held:?}, {} in \
             all; counted by the changelog: {counted:?}",
            ended.len() == self.partitions as usize,
            held.iter().sum::<u64>()
        );
        out
    }

    /// The run log's last 20 WARN and ERROR lines: a stuck group's cause
    /// is rarely in the last lines, which are the survivors' idle polls.
    fn warnings(&self) -> String {
        let text = std::fs::read_to_string(self.s.dir.path().join("run.log")).unwrap_or_default();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        bad[bad.len().saturating_sub(20)..].join("\n")
    }

    /// One instance named `name`, with its own state directory and alert
    /// file, logging into the setup's log.
    fn instance(&self, name: &str, env: &[(&str, &str)]) -> Service {
        let dir = self.s.dir.path().join(format!("instance-{name}"));
        std::fs::create_dir_all(&dir).expect("instance dir");
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.s.dir.path().join("run.log"))
            .expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(&self.s.config)
            .arg("run")
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--alerts")
            .arg(dir.join("alerts.jsonl"))
            .env(
                "FAULTLINE__METRICS__LISTEN",
                format!("\"127.0.0.1:{port}\""),
            )
            .env("FAULTLINE__SCALE_OUT__INSTANCE", format!("\"{name}\""))
            .env("FAULTLINE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("faultline run");
        Service { child, port }
    }
}

/// What every test here opens with ([`open`]).
struct Opened {
    /// One Kafka test at a time: a test binds it (`_one`) for its whole
    /// run. Left out of a `let Opened { .. }` pattern it would be dropped
    /// at the end of that statement, and another test (the broker
    /// restart) could run beside it.
    _one: std::sync::MutexGuard<'static, ()>,
    sc: Scaled,
    /// Records produced.
    n: u64,
    /// `faultline replay`'s alerts on the same records (empty unless asked).
    expected: Vec<faultline::alert::Alert>,
    /// When the replay, then the producing, were done.
    replayed: Duration,
    produced: Duration,
}

/// The tests' common opening: one test at a time; `None` without a broker
/// (the test then skips); the setup `sc`; the records `records` makes,
/// replayed first when `replay` (the reference), then produced keyed by
/// service over the 3 input partitions, as in the alignment test: one
/// partition's two hours can reach stage 1 before another's first
/// minutes.
fn open(
    sc: impl FnOnce() -> Scaled,
    records: impl FnOnce() -> Vec<super::Rec>,
    replay: bool,
) -> Option<Opened> {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    broker()?;
    let sc = sc();
    let started = Instant::now();
    let records = records();
    let expected = if replay {
        sc.s.replay(&lines(&records))
    } else {
        Vec::new()
    };
    let replayed = started.elapsed();
    produce_to(&sc.s.logs, &records, |r| input_partition(&r.key));
    Some(Opened {
        _one: one,
        sc,
        n: records.len() as u64,
        expected,
        replayed,
        produced: started.elapsed(),
    })
}

/// A record's input partition: by its service (the key's first part).
fn input_partition(key: &str) -> i32 {
    (hash(key.split('/').next().unwrap_or("")) % 3) as i32
}

#[test]
fn one_instance_in_two_stages_gives_replays_alerts_of_every_kind() {
    let Some(Opened {
        sc,
        n,
        expected,
        _one,
        ..
    }) = open(|| setup("scale1", 4), || generated(11, 120, 6.0), true)
    else {
        return;
    };
    let s = &sc.s;
    let started = Instant::now();
    // No instance name: the one-instance default.
    let svc = s.start();
    sc.wait_for_records(n, Duration::from_secs(300));
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    eprintln!(
        "{n} records, 3 input and 4 internal partitions, two stages: {:?}",
        started.elapsed()
    );
    assert_eq!(sc.records(), n, "every record processed once");
    assert_same_as_replay("two stages", &read_alerts(&s.alerts), &expected);
}

#[test]
fn two_stages_survive_a_crash_after_a_commit_and_kill_9s_exactly_once() {
    let Some(Opened {
        sc,
        n,
        expected,
        _one,
        ..
    }) = open(|| setup("scale1k", 4), || generated(11, 120, 6.0), true)
    else {
        return;
    };
    let s = &sc.s;
    let seed = test_seed();
    eprintln!("kill -9 points seed: {seed} (rerun with FAULTLINE_TEST_SEED={seed})");
    // Stage 2 dies right after its 4th commit (small batches, so the 4th
    // commit comes however fast the machine drains).
    let svc = s.start_with(&[
        ("FAULTLINE_FAILPOINT_CRASH_AFTER_COMMIT", "4"),
        ("FAULTLINE__KAFKA__BATCH_SIZE", "1000"),
    ]);
    let st = svc.exits_within(Duration::from_secs(120));
    assert!(!st.success(), "the failpoint aborts the process");
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for round in 0..2 {
        let svc = s.start_with(&[("FAULTLINE__KAFKA__BATCH_SIZE", "2000")]);
        let done = sc.records();
        let at = (done + 1 + rng.below((n.saturating_sub(done) / 2).max(1))).min(n);
        sc.wait_for_records(at, Duration::from_secs(300));
        eprintln!("round {round}: kill -9 at {} records durable", sc.records());
        svc.kill9();
    }
    let svc = s.start();
    sc.wait_for_records(n, Duration::from_secs(300));
    let (code, _) = svc.terminate();
    assert_eq!(code, Some(0), "SIGTERM exit; log: {}", s.log_tail());
    assert_eq!(sc.records(), n, "every record processed once");
    assert_same_as_replay(
        "two stages, 1 failpoint crash and 2 kills",
        &read_alerts(&s.alerts),
        &expected,
    );
}

/// Records of the multi-instance test: the CI size, or
/// `FAULTLINE_SCALE_RECORDS` (the issue's ~1M, opt-in: about 15 min of a
/// debug build on two shared cores; docs/scaling.md has its figures).
fn stream_size() -> usize {
    std::env::var("FAULTLINE_SCALE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// The issue's test: three instances `a`, `b`, `c` in one group on one
/// generated stream (the release scenario at a rate giving `size` records
/// over its two hours); `b` is killed with kill -9 past a quarter of the
/// stream, restarted under its name, and killed again past half of it;
/// then `d` joins; the
/// survivors run to the end. The alerts topic under read_committed must
/// hold replay's (kind, service, fingerprint) set for every kind, each
/// alert id once, and the changelog's records processed add up to the
/// input.
fn three_instances_with_kills_and_a_join(name: &str, size: usize) {
    let started = Instant::now();
    // Six internal partitions: two per instance, so every instance owns
    // state a kill moves.
    let Some(Opened {
        sc,
        n,
        expected,
        replayed,
        produced,
        _one,
        ..
    }) = open(
        || setup_fetching(name, 6, 4096),
        || generated(11, 120, 6.0 * size as f64 / 43_200.0),
        true,
    )
    else {
        return;
    };
    let s = &sc.s;
    let limit = Duration::from_secs(240 + n / 1000);
    // Small batches: the group rebalances while batches are open.
    let env = [("FAULTLINE__KAFKA__BATCH_SIZE", "1000")];
    {
        let mut running: Vec<(&str, Service)> = ["a", "c"]
            .iter()
            .map(|n| (*n, sc.instance(n, &env)))
            .collect();
        let mut victim = sc.instance("b", &env);
        for round in 0..2 {
            // Mid-stream: past a quarter, then past half of the records,
            // and once b has been in the group for a while (its session
            // timeout is 6 s). Services are few and keyed to partitions,
            // so b may own little; whatever it owns, its death makes the
            // group revoke and restore every partition (eager assignor).
            let joined = Instant::now();
            sc.wait_for_records(n * (round + 1) / 4, limit);
            if let Some(rest) = Duration::from_secs(10).checked_sub(joined.elapsed()) {
                std::thread::sleep(rest);
            }
            let decided = victim.metric("faultline_lines_total").unwrap_or(0);
            victim.kill9();
            eprintln!(
                "kill -9 {} of instance b at {} of {n} records durable, b having decided \
                 {decided} ({:?})",
                round + 1,
                sc.records(),
                started.elapsed()
            );
            if round == 0 {
                // Back under its name: it fences its own open transactions.
                victim = sc.instance("b", &env);
            } else {
                break;
            }
        }
        running.push(("d", sc.instance("d", &env)));
        sc.wait_for_records_of(n, limit, &mut running);
        eprintln!(
            "3 instances, b killed twice, d added: {n} records in {:?} (replay done at {replayed:?}, \
             produced at {produced:?}); {} partition restores",
            started.elapsed(),
            std::fs::read_to_string(s.dir.path().join("run.log"))
                .unwrap_or_default()
                .matches("state restored from the changelog")
                .count()
        );
        for (name, svc) in running {
            let (code, _) = svc.terminate();
            assert_eq!(
                code,
                Some(0),
                "instance {name}: SIGTERM exit; log: {}",
                s.log_tail()
            );
        }
    }
    let counted = sc.records();
    assert_eq!(
        counted,
        n,
        "every record processed once; where each stage stands:\n{}\nthe log's last warnings \
         and errors:\n{}\nlog: {}",
        sc.pipeline_report(),
        sc.warnings(),
        s.log_tail()
    );
    assert_same_as_replay(
        &format!("3 instances on {n} records, one killed twice, one added"),
        &read_alerts(&s.alerts),
        &expected,
    );
}

#[test]
fn three_instances_with_one_killed_twice_and_one_added_give_replays_alerts_exactly_once() {
    three_instances_with_kills_and_a_join("scale3i", stream_size());
}

/// `POST path` with a bearer token to a running instance's API; the
/// response's status line and body.
fn post(svc: &Service, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", svc.port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

impl Scaled {
    /// The latest committed state of every internal partition.
    fn states(&self) -> Vec<(i32, faultline::state::State)> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", broker_addr());
        faultline::scale::changelog::states(
            &c,
            &format!("{}-changelog", self.group),
            self.partitions,
        )
        .unwrap_or_default()
    }

    /// Waits until `holds` is true of the changelog's states.
    fn wait_for_states(
        &self,
        what: &str,
        limit: Duration,
        holds: impl Fn(&[(i32, faultline::state::State)]) -> bool,
    ) {
        let limit = Instant::now() + limit;
        while !holds(&self.states()) {
            assert!(
                Instant::now() < limit,
                "{what}: not seen in the changelog; log: {}",
                self.s.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The API under scale-out, with every record processed: each instance
/// lists every type of the group (its catalogue tails the changelog), a
/// question about `service` is answered by the owner of its partition and
/// refused at once by the other instance (421, never a timeout), and one
/// about the whole state (the release report) is refused by both.
fn api_answers_for_the_group(sc: &Scaled, instances: [&Service; 2], service: &str, token: &str) {
    let all: std::collections::BTreeSet<String> = sc
        .states()
        .iter()
        .flat_map(|(_, st)| st.baseline.types.keys().map(|fp| fp.to_string()))
        .collect();
    assert!(all.len() > 5, "the stream makes types: {all:?}");
    let ask = |svc: &Service, path: &str| {
        let url = format!("http://127.0.0.1:{}{path}", svc.port);
        http("GET", &url, Some(token), None, Duration::from_secs(20))
    };
    for svc in instances {
        wait_for(60, "every type of the group in an instance's list", || {
            let (code, v) = ask(svc, "/api/v1/types?limit=1000").ok()?;
            let listed: std::collections::BTreeSet<String> = v["types"]
                .as_array()?
                .iter()
                .filter_map(|t| Some(t["fingerprint"].as_str()?.to_string()))
                .collect();
            (code == 200 && listed == all).then_some(())
        });
    }
    for path in [
        format!("/api/v1/services/{service}/signals"),
        format!(
            "/api/v1/rollout-check?service={service}&stable=1.0.0&canary=1.1.0&current_percentage=10"
        ),
    ] {
        let started = Instant::now();
        let mut codes: Vec<(u16, serde_json::Value)> = instances
            .iter()
            .map(|svc| ask(svc, &path).expect("an answer"))
            .collect();
        codes.sort_by_key(|(c, _)| *c == 421);
        assert!(
            codes[0].0 != 421 && codes[0].0 != 504 && codes[1].0 == 421,
            "{path}: the owner answers, the other instance says it does not own it: {codes:?}"
        );
        let why = codes[1].1["error"].as_str().unwrap_or("");
        assert!(
            why.contains(service) && why.contains("another instance"),
            "{why}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "answered, not timed out"
        );
        eprintln!(
            "{path}: owner {}, other instance {} in {:?}",
            codes[0].0,
            codes[1].0,
            started.elapsed()
        );
    }
    eprintln!("{} types listed by each instance", all.len());
    for svc in instances {
        let (code, v) = ask(svc, "/api/v1/report?release=1.1.0").expect("an answer");
        assert_eq!(code, 421, "the report needs every partition: {v}");
    }
}

/// How many partitions know `fp`, and on how many `mark` holds.
fn partitions_where(
    states: &[(i32, faultline::state::State)],
    fp: faultline::fingerprint::Fingerprint,
    mark: impl Fn(&faultline::baseline::ErrorType) -> bool,
) -> (usize, usize) {
    let known: Vec<_> = states
        .iter()
        .filter_map(|(_, s)| s.baseline.get(fp))
        .collect();
    (known.len(), known.iter().filter(|t| mark(t)).count())
}

#[test]
fn resolve_and_mute_reach_the_owner_through_the_control_topic_and_a_restore_applies_them() {
    let Some(Opened { sc, n, .. }) =
        open(|| setup("scalectl", 4), || generated(11, 120, 6.0), false)
    else {
        return;
    };
    let s = &sc.s;
    let token = [("FAULTLINE__API__TOKEN", "\"scale-secret\"")];
    let a = sc.instance("a", &token);
    let b = sc.instance("b", &token);
    sc.wait_for_records(n, Duration::from_secs(300));
    // Two new types of two services, whichever instance owns them.
    let alerts = read_alerts(&s.alerts);
    let mut novel = alerts
        .iter()
        .filter(|a| a.kind == faultline::alert::Kind::Novel)
        .filter_map(|a| Some((a.service.clone(), a.fingerprint?)));
    let (svc1, muted) = novel.next().expect("a novel alert");
    let (_, resolved) = novel
        .find(|(s, _)| *s != svc1)
        .expect("a novel alert of another service");

    api_answers_for_the_group(&sc, [&a, &b], &svc1, "scale-secret");

    // The API of one instance, which may not own the type: accepted and
    // forwarded; its owner applies it, once, on one partition.
    let resp = post(&a, &format!("/api/v1/types/{muted}/mute"), "scale-secret");
    assert!(
        resp.starts_with("HTTP/1.1 202"),
        "a write under scale-out is accepted for the owner: {resp}"
    );
    assert!(resp.contains("-control"), "says where it went: {resp}");
    sc.wait_for_states("the mute", Duration::from_secs(60), |st| {
        partitions_where(st, muted, |t| t.muted) == (1, 1)
    });
    for (name, svc) in [("a", a), ("b", b)] {
        let (code, _) = svc.terminate();
        assert_eq!(code, Some(0), "instance {name}; log: {}", s.log_tail());
    }

    // `faultline types resolve` while no instance runs: the command waits
    // in the control topic, and the instance that restores the type's
    // partition applies it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("--config")
        .arg(&s.config)
        .args(["types", "resolve", &resolved.to_string(), "--state"])
        .arg(s.dir.path().join("unused"))
        .output()
        .expect("faultline types");
    assert!(
        out.status.success(),
        "types resolve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("control topic"));
    assert_eq!(
        partitions_where(&sc.states(), resolved, |t| t.resolved_at.is_some()),
        (1, 0),
        "not applied while no owner runs"
    );
    let c = sc.instance("c", &[]);
    sc.wait_for_states("the resolve", Duration::from_secs(120), |st| {
        partitions_where(st, resolved, |t| t.resolved_at.is_some()) == (1, 1)
    });
    // The restored owner did not lose (or redo) the earlier mute.
    assert_eq!(partitions_where(&sc.states(), muted, |t| t.muted), (1, 1));
    let (code, _) = c.terminate();
    assert_eq!(code, Some(0), "instance c; log: {}", s.log_tail());
    assert_eq!(sc.records(), n, "every record processed once");
}

/// The scenario at half the rate, and one new error, the same words in
/// two services read from two different input partitions, past the
/// warm-up: without the service in the fingerprint it is one type, new
/// once.
fn with_one_error_in_two_services() -> Vec<super::Rec> {
    let mut records = generated(11, 120, 3.0);
    let mut services: Vec<&str> = records
        .iter()
        .map(|r| r.key.split('/').next().unwrap_or(""))
        .collect();
    services.sort_unstable();
    services.dedup();
    let first = services[0].to_string();
    let second = services
        .iter()
        .find(|v| input_partition(v) != input_partition(&first))
        .expect("two services on two input partitions")
        .to_string();
    let at = records.len() * 3 / 4;
    for (i, svc) in [(at, &first), (at + 200, &second)] {
        let time_ms = records[i].time_ms;
        let stamp = chrono::DateTime::from_timestamp_millis(time_ms)
            .expect("time")
            .format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let line = format!(
            r#"{{"@timestamp":"{stamp}","log.level":"ERROR","message":"session store write refused: replica quorum lost","service.name":"{svc}"}}"#
        );
        records.insert(
            i,
            super::Rec {
                key: format!("{svc}/injected"),
                line: line.into_bytes(),
                time_ms,
            },
        );
    }
    records
}

#[test]
fn without_the_service_in_the_fingerprint_a_type_in_two_services_is_new_once_as_in_replay() {
    let Some(Opened {
        sc,
        n,
        expected,
        _one,
        ..
    }) = open(
        || {
            setup_with(
                "scaleglob",
                4,
                1 << 20,
                "[fingerprint]\ninclude_service = false",
            )
        },
        with_one_error_in_two_services,
        true,
    )
    else {
        return;
    };
    let s = &sc.s;
    let a = sc.instance("a", &[]);
    let b = sc.instance("b", &[]);
    sc.wait_for_records(n, Duration::from_secs(300));
    for (name, svc) in [("a", a), ("b", b)] {
        let (code, _) = svc.terminate();
        assert_eq!(code, Some(0), "instance {name}; log: {}", s.log_tail());
    }
    assert_eq!(sc.records(), n, "every record processed once");
    let shared = |alerts: &[faultline::alert::Alert]| {
        alerts
            .iter()
            .filter(|a| a.kind == faultline::alert::Kind::Novel)
            .filter(|a| a.template.contains("quorum lost"))
            .count()
    };
    let got = read_alerts(&s.alerts);
    assert_eq!(shared(&expected), 1, "replay: the type is new once");
    assert_eq!(shared(&got), 1, "two instances: the type is new once");
    assert_same_as_replay("include_service = false, 2 instances", &got, &expected);
}

/// `per_partition` INFO lines on each of the 3 input partitions, every one
/// with its own event time (100 ms apart, the partitions interleaved), so
/// that an event on the events topic names the input record it came from:
/// (input partition, event time).
fn numbered(per_partition: usize) -> Vec<super::Rec> {
    let base = 1_780_000_000_000i64;
    // Records are keyed by service to their input partition: one service
    // per partition.
    let services: Vec<String> = (0..3)
        .map(|p| {
            (0..)
                .map(|j| format!("svc{j}"))
                .find(|s| input_partition(s) == p)
                .expect("a service for every partition")
        })
        .collect();
    let mut records = Vec::with_capacity(per_partition * 3);
    for i in 0..per_partition {
        for (p, svc) in services.iter().enumerate() {
            let time_ms = base + (i * 3 + p) as i64 * 100;
            let stamp = chrono::DateTime::from_timestamp_millis(time_ms)
                .expect("time")
                .format("%Y-%m-%dT%H:%M:%S%.3fZ");
            records.push(super::Rec {
                key: format!("{svc}/{i}"),
                line: format!(
                    r#"{{"@timestamp":"{stamp}","log.level":"INFO","message":"request served","service.name":"{svc}"}}"#
                )
                .into_bytes(),
                time_ms,
            });
        }
    }
    records
}

/// Per input record, (input partition, event time), how many events of it
/// the events topic holds under read_committed; and the oldest Kafka
/// timestamp of its messages (ms).
fn forwarded_events(events_topic: &str) -> (BTreeMap<(String, i64), u32>, i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker_addr())
        .set("group.id", unique("scale-events-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    c.subscribe(&[events_topic]).expect("subscribe");
    let (mut seen, mut oldest) = (BTreeMap::new(), i64::MAX);
    let (mut last, started) = (Instant::now(), Instant::now());
    while last.elapsed() < Duration::from_secs(3) && started.elapsed() < Duration::from_secs(60) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        last = Instant::now();
        oldest = oldest.min(m.timestamp().to_millis().unwrap_or(i64::MIN));
        let Some(env) = m
            .payload()
            .and_then(|b| serde_json::from_slice::<faultline::scale::wire::Envelope>(b).ok())
        else {
            continue;
        };
        for e in env.events.unwrap_or_default() {
            if let Some(t) = e.time() {
                *seen.entry((env.up.clone(), t)).or_insert(0) += 1;
            }
        }
    }
    (seen, oldest)
}

/// Issue 15: stage 1 once committed input offsets past records it never
/// forwarded. Here the group rebalances four times while stage-1 batches
/// are open (50 messages, each held 3 ms longer by a failpoint, so a join
/// or a leave usually lands inside a batch: the log shows stage 1
/// aborting an open batch on a revocation; not asserted, see below), and two of the three instances get a
/// consumer that starts every newly assigned partition at the wrong
/// offset (a failpoint: `a` 13 records past the committed offset, the
/// shape of the failure seen, `c` 13 records before it; a real broker
/// cannot be made to do this on demand, so the failpoint stands in for
/// it). Stage 1 must notice each (the log says so, both ways), seek back,
/// and the events topic must hold every input record's event exactly once:
/// 0 missing, 0 duplicate, the changelog counting the input.
#[test]
fn rebalances_inside_open_batches_and_misplaced_starts_forward_every_record_once() {
    let per_partition = 3000;
    let Some(Opened { sc, n, _one, .. }) = open(
        || setup_fetching("scale1race", 4, 4096),
        || numbered(per_partition),
        false,
    ) else {
        return;
    };
    let s = &sc.s;
    let started = Instant::now();
    let limit = Duration::from_secs(240);
    let slow = [
        ("FAULTLINE__KAFKA__BATCH_SIZE", "50"),
        ("FAULTLINE_FAILPOINT_STAGE1_DELAY_MS", "3"),
    ];
    let with = |shift: Option<&'static str>| -> Vec<(&'static str, &'static str)> {
        let mut env = slow.to_vec();
        if let Some(k) = shift {
            env.push(("FAULTLINE_FAILPOINT_STAGE1_START_SHIFT", k));
        }
        env
    };
    let a = sc.instance("a", &with(Some("13")));
    sc.wait_for_records(n / 6, limit);
    let b = sc.instance("b", &with(None));
    sc.wait_for_records(n * 2 / 6, limit);
    let c = sc.instance("c", &with(Some("-13")));
    sc.wait_for_records(n * 3 / 6, limit);
    let (code, _) = b.terminate();
    assert_eq!(code, Some(0), "b: SIGTERM exit; log: {}", s.log_tail());
    sc.wait_for_records(n * 4 / 6, limit);
    let b = sc.instance("b", &with(None));
    let mut running = vec![("a", a), ("b", b), ("c", c)];
    sc.wait_for_records_of(n, limit, &mut running);
    for (name, svc) in running {
        let (code, _) = svc.terminate();
        assert_eq!(code, Some(0), "{name}: SIGTERM exit; log: {}", s.log_tail());
    }
    eprintln!(
        "{n} records, 3 instances, 4 rebalances, misplaced starts: {:?}",
        started.elapsed()
    );

    let log = std::fs::read_to_string(s.dir.path().join("run.log")).unwrap_or_default();
    let count = |all: &[&str]| {
        log.lines()
            .filter(|l| all.iter().all(|w| l.contains(w)))
            .count()
    };
    let aborted = count(&["aborting the open batch", "stage 1"]);
    let skipped = count(&["not where the input partition stands", "would be skipped"]);
    let again = count(&["not where the input partition stands", "taken already"]);
    eprintln!(
        "stage-1 batches aborted on a rebalance: {aborted}; misplaced starts sought back: \
         {skipped} ahead, {again} behind"
    );
    let mut expected: BTreeMap<(String, i64), u32> = BTreeMap::new();
    for r in numbered(per_partition) {
        let p = input_partition(&r.key);
        expected.insert((format!("{}/{p}", s.logs), r.time_ms), 1);
    }
    let (seen, oldest) = forwarded_events(&format!("{}-events", sc.group));
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && twice.is_empty() && extra.is_empty(),
        "{} of {n} records missing from the events topic (first: {:?}), {} forwarded more than \
         once (first: {:?}), {} not in the input; where each stage stands:\n{}\nlog: {}",
        missing.len(),
        missing.first(),
        twice.len(),
        twice.first(),
        extra.len(),
        sc.pipeline_report(),
        s.log_tail()
    );
    assert_eq!(sc.records(), n, "the changelog counts every record once");
    // The records' event times are months old: had the events carried
    // them as their Kafka timestamps, the topic's retention (a day) would
    // delete them at its next check whether stage 2 had read them or not
    // (the loss seen in issue 15).
    let written_from = chrono::Utc::now().timestamp_millis() - started.elapsed().as_millis() as i64;
    assert!(
        oldest >= written_from - 60_000,
        "every events message is stamped with the time it was written, not its records' event \
         time: the oldest is {oldest} ms, the run started at {written_from} ms"
    );
    // Not asserted: the joins wait for stage 2's count, and on a loaded
    // machine stage 1 may have forwarded everything by then (seen once in
    // the whole suite: 0 aborts); the exactness above must hold either way.
    if aborted == 0 {
        eprintln!("no rebalance landed inside an open stage-1 batch this run");
    }
    // `a` starts first, so its shifted starts happen in every run; `c`'s
    // (behind) only when the group gives it a partition with records left.
    assert!(
        skipped > 0,
        "stage 1 noticed the misplaced starts ({skipped} ahead, {again} behind); log: {}",
        s.log_tail()
    );
}

/// Issue 15, stage 2's side of the guard above: two instances whose
/// stage-2 consumers start every newly assigned events partition at the
/// wrong offset (a failpoint: `a` 13 messages past the committed offset,
/// `b` 13 before it; a real broker cannot be made to do this on demand).
/// Stage 2 must notice (the log says so), seek back to the offset its
/// restored state stands at, and give replay's alerts with every record
/// counted once: without the guard the skipped events are lost (their
/// offsets committed with the next batch) and the ones before are applied
/// twice.
#[test]
fn misplaced_stage_2_starts_are_sought_back_and_give_replays_alerts_exactly_once() {
    let Some(Opened {
        sc,
        n,
        expected,
        _one,
        ..
    }) = open(|| setup("scale2shift", 4), || generated(11, 120, 6.0), true)
    else {
        return;
    };
    let s = &sc.s;
    let started = Instant::now();
    let limit = Duration::from_secs(300);
    // Stage 1 holds each message 1 ms (a failpoint), so the stream still
    // flows when `b` joins and the restores land mid-stream.
    let a = sc.instance(
        "a",
        &[
            ("FAULTLINE__KAFKA__BATCH_SIZE", "500"),
            ("FAULTLINE_FAILPOINT_STAGE1_DELAY_MS", "1"),
            ("FAULTLINE_FAILPOINT_STAGE2_START_SHIFT", "13"),
        ],
    );
    sc.wait_for_records(n / 3, limit);
    // `b` joins: the group rebalances, both restore from the changelog
    // and start mid-stream, where the failpoint shifts them again.
    let b = sc.instance(
        "b",
        &[
            ("FAULTLINE__KAFKA__BATCH_SIZE", "500"),
            ("FAULTLINE_FAILPOINT_STAGE1_DELAY_MS", "1"),
            ("FAULTLINE_FAILPOINT_STAGE2_START_SHIFT", "-13"),
        ],
    );
    let mut running = vec![("a", a), ("b", b)];
    sc.wait_for_records_of(n, limit, &mut running);
    for (name, svc) in running {
        let (code, _) = svc.terminate();
        assert_eq!(code, Some(0), "{name}: SIGTERM exit; log: {}", s.log_tail());
    }
    eprintln!(
        "{n} records, 2 instances, misplaced stage-2 starts: {:?}",
        started.elapsed()
    );
    let log = std::fs::read_to_string(s.dir.path().join("run.log")).unwrap_or_default();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains("not where the events partition stands") && l.contains(what))
            .count()
    };
    let (skipped, again) = (count("would be skipped"), count("taken already"));
    eprintln!("stage-2 misplaced starts sought back: {skipped} ahead, {again} behind");
    assert_eq!(sc.records(), n, "every record processed once");
    assert_same_as_replay(
        "two stages, misplaced stage-2 starts",
        &read_alerts(&s.alerts),
        &expected,
    );
    // `a` starts first, on a fresh group: its shifted starts happen in
    // every run; `b`'s (behind) when the group gives it partitions with
    // events left (reported, not asserted: on a loaded machine the stream
    // may have drained by the time the group rebalances).
    assert!(
        skipped > 0,
        "stage 2 noticed the misplaced starts ({skipped} ahead, {again} behind); log: {}",
        s.log_tail()
    );
}
