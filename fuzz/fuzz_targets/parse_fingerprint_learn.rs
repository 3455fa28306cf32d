//! bytes → line parser (auto format) → fingerprint → learner.
//!
//! Each input is a log stream: lines split at `\n`, parsed as `faultline
//! replay --format auto` would, every error record identified and classified
//! by a learner that starts empty (so a crash reproduces from its input
//! alone). Besides panics it checks the guide's "bounded work" rule: one
//! input must be processed within a budget linear in its length. The budget
//! is generous (a second, plus 50 µs a byte: hundreds of times what the
//! stages take per byte, see docs/benchmarks.md) so a loaded machine does
//! not trip it; a quadratic or exponential path on an input of a few KiB
//! does.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faultline::config::{Config, Format};
use faultline::fingerprint::{self, Fingerprinter, Learner};
use faultline::parse::{Parser, RecordSink};
use faultline::record::{BadReason, LineMeta, Record};
use libfuzzer_sys::fuzz_target;

struct Stages {
    cfg: Config,
    parser: Parser,
    fp: Fingerprinter,
}

fn stages() -> &'static Stages {
    static S: OnceLock<Stages> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = Config::default();
        let parser = Parser::new(&cfg, Format::Auto).expect("the default config parses");
        let fp = Fingerprinter::new(&cfg.fingerprint).expect("the shipped patterns load");
        Stages { cfg, parser, fp }
    })
}

/// Keeps what the parser hands over; the learner sees every error record.
#[derive(Default)]
struct Collect {
    errors: Vec<Record>,
    lines: u64,
    bad: u64,
}

impl RecordSink for Collect {
    fn line(&mut self, _: &LineMeta<'_>) {
        self.lines += 1;
    }
    fn error(&mut self, record: Record) {
        self.errors.push(record);
    }
    fn bad(&mut self, _: BadReason, _: u64) {
        self.bad += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let s = stages();
    let started = Instant::now();
    let mut out = Collect::default();
    let mut lp = s.parser.stream(Some("fuzz".into()));
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        lp.push(line, i as u64 + 1, &mut out);
    }
    lp.finish(&mut out);
    let mut learner = Learner::from_config(&s.cfg.fingerprint.learn);
    for rec in &out.errors {
        let identity = s.fp.identify(rec, None);
        std::hint::black_box(fingerprint::classify(&mut learner, identity));
    }
    learner.validate().expect("the learner stays consistent");
    let budget = Duration::from_secs(1) + Duration::from_micros(50) * data.len() as u32;
    let took = started.elapsed();
    assert!(
        took < budget,
        "{} bytes ({} lines, {} errors) took {took:?}, over the linear budget {budget:?}",
        data.len(),
        out.lines,
        out.errors.len()
    );
});
