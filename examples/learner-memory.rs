//! Memory of the learned stage as distinct messages grow, for
//! `scripts/bench-learner` (issue 16: the learner is bounded).
//!
//! ```text
//! learner-memory --messages N [--max-bytes B] [--services K] [--every M]
//!                [--shape pair|one-word|new-key]
//! ```
//!
//! Feeds N distinct error messages through the stream's path (masking,
//! then the online learner: `Fingerprinter::identify` and
//! `fingerprint::classify`, as `faultline fingerprint --raw --online` and
//! `replay` do) and prints, every M messages, one JSON line: messages so
//! far, clusters held, bytes charged against the budget, clusters
//! evicted, and the process's resident memory (VmRSS) and peak (VmHWM)
//! from /proc/self/status. Only the learner grows here (nothing else is
//! kept), so the RSS is the learner's.
//!
//! The messages are the learner's worst case: two made-up words of
//! letters (masking leaves them alone) at two positions of one sentence,
//! both new in every message, so no position ever varies alone and no
//! template generalises: every message is a new cluster with one skeleton
//! per word. `--max-bytes 0` sets no budget (the learner before issue 16).
//!
//! `--shape` picks other never-generalising messages, whose cost per
//! message must not grow with the stream (issue 16: linear work): `pair`
//! (the default, above), `one-word` (a new one-word message each time: all
//! share one skeleton, refused for want of a constant word) and `new-key`
//! (`config <key>=on applied` with a new key each time: one skeleton whose
//! members are all different events).

use faultline::config::Config;
use faultline::fingerprint::learn::LearnBounds;
use faultline::fingerprint::{self, Fingerprinter, Learner};
use faultline::record::{Level, Record};

fn word(mut i: usize) -> String {
    let mut w = Vec::new();
    i += 26 * 26 * 26;
    while i > 0 {
        w.push(b'a' + (i % 26) as u8);
        i /= 26;
    }
    String::from_utf8(w).expect("letters")
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut messages = 1_000_000usize;
    let mut max_bytes: Option<usize> = None;
    let mut services = 1usize;
    let mut every = 250_000usize;
    let mut shape = String::from("pair");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{a} takes a number"))
        };
        match a.as_str() {
            "--messages" => messages = num(),
            "--max-bytes" => max_bytes = Some(num()),
            "--services" => services = num().max(1),
            "--every" => every = num().max(1),
            "--shape" => shape = args.next().unwrap_or_default(),
            _ => panic!(
                "usage: learner-memory --messages N [--max-bytes B] [--services K] [--every M] [--shape pair|one-word|new-key]"
            ),
        }
    }
    let mut cfg = Config::default();
    match max_bytes {
        Some(0) => {
            cfg.fingerprint.learn.max_bytes = usize::MAX / 2;
            cfg.fingerprint.learn.max_service_bytes = usize::MAX / 2;
        }
        Some(b) => {
            cfg.fingerprint.learn.max_bytes = b;
            cfg.fingerprint.learn.max_service_bytes =
                b.min(cfg.fingerprint.learn.max_service_bytes);
        }
        None => {}
    }
    let fp = Fingerprinter::new(&cfg.fingerprint).expect("the shipped patterns load");
    let mut learner = Learner::from_config(&cfg.fingerprint.learn);
    let LearnBounds {
        max_bytes,
        max_service_bytes,
    } = learner.bounds();
    let started = std::time::Instant::now();
    for i in 0..messages {
        let service = format!("svc{}", i % services);
        let msg = match shape.as_str() {
            "one-word" => word(i),
            "new-key" => format!("config {}=on applied", word(i)),
            "pair" => format!(
                "could not open {} while {} was loading",
                word(i),
                word(i + 100_000_000)
            ),
            other => panic!("--shape {other}: pair, one-word or new-key"),
        };
        let rec = Record {
            service: Some(service),
            message: msg,
            level: Some(Level::Error),
            ..Record::default()
        };
        std::hint::black_box(fingerprint::classify(&mut learner, fp.identify(&rec, None)));
        let n = i + 1;
        if n % every == 0 || n == messages {
            println!(
                "{{\"messages\":{n},\"clusters\":{},\"charged_bytes\":{},\"evicted\":{},\"max_bytes\":{},\"max_service_bytes\":{},\"rss_kib\":{},\"peak_rss_kib\":{},\"seconds\":{:.3}}}",
                learner.len(),
                learner.charged_bytes(),
                learner.evicted(),
                max_bytes.min(1 << 50),
                max_service_bytes.min(1 << 50),
                status("VmRSS:"),
                status("VmHWM:"),
                started.elapsed().as_secs_f64()
            );
        }
    }
}
