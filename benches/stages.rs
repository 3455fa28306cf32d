//! Per-stage micro-benchmarks: parse (JSON, text), fingerprint (shipped
//! rules, with and without the learner), window updates, and detection.
//!
//! The inputs are the bundled example data (`examples/data`), so the benches
//! run on a fresh clone with nothing else present. They measure one stage at
//! a time so a regression can be pinned to a stage; the whole-pipeline and
//! peer comparisons live in `scripts/bench-compare` (see
//! `docs/benchmarks.md`), because those need large inputs and separate
//! processes pinned to one core.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use faultline::config::{Config, Format};
use faultline::fingerprint::{self, Fingerprinter, Learner};
use faultline::parse::{Parser, RecordSink};
use faultline::pipeline::{BaselineOptions, Engine};
use faultline::record::{BadReason, LineMeta, Record};
use faultline::window::{WindowCounts, WindowSpec};

const JSON: &str = include_str!("../examples/data/logs.jsonl");
const TEXT: &str = include_str!("../examples/data/text/checkout.log");

/// Counts what the parser reports, so the work cannot be optimised away.
#[derive(Default)]
struct Count {
    lines: u64,
    errors: Vec<Record>,
    bad: u64,
}

impl RecordSink for Count {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.lines += 1;
        black_box(meta);
    }
    fn error(&mut self, record: Record) {
        self.errors.push(record);
    }
    fn bad(&mut self, _: BadReason, _: u64) {
        self.bad += 1;
    }
}

fn parse_all(parser: &Parser, input: &str) -> Count {
    let mut sink = Count::default();
    let mut lp = parser.stream(Some("bench".into()));
    for (i, line) in input.lines().enumerate() {
        lp.push(line.as_bytes(), i as u64 + 1, &mut sink);
    }
    lp.finish(&mut sink);
    sink
}

/// The example data is mostly errors; real streams are mostly not. The
/// JSON bench uses the data as it is plus a 95 %-quiet mix so both the
/// error path and the rejection path are measured.
fn quiet_mix(json: &str) -> String {
    let mut out = String::new();
    for (i, line) in json.lines().enumerate() {
        if i % 20 == 0 {
            out.push_str(line);
        } else {
            out.push_str(&line.replacen("\"ERROR\"", "\"INFO\"", 1));
        }
        out.push('\n');
    }
    out
}

fn parse(c: &mut Criterion) {
    let cfg = Config::default();
    let mut g = c.benchmark_group("parse");
    let json = Parser::new(&cfg, Format::Json).expect("default config parses");
    for (name, input) in [
        ("json_errors", JSON.to_string()),
        ("json_5pct_errors", quiet_mix(JSON)),
    ] {
        g.throughput(Throughput::Elements(input.lines().count() as u64));
        g.bench_function(name, |b| b.iter(|| parse_all(&json, black_box(&input))));
    }
    let text = Parser::new(&cfg, Format::Text).expect("default config parses");
    g.throughput(Throughput::Elements(TEXT.lines().count() as u64));
    g.bench_function("text_with_traces", |b| {
        b.iter(|| parse_all(&text, black_box(TEXT)))
    });
    let auto = Parser::new(&cfg, Format::Auto).expect("default config parses");
    g.bench_function("text_auto_detected", |b| {
        b.iter(|| parse_all(&auto, black_box(TEXT)))
    });
    g.finish();
}

fn error_records() -> Vec<Record> {
    let cfg = Config::default();
    let parser = Parser::new(&cfg, Format::Auto).expect("default config parses");
    let mut records = parse_all(&parser, JSON).errors;
    records.extend(parse_all(&parser, TEXT).errors);
    records
}

fn fingerprint(c: &mut Criterion) {
    let cfg = Config::default();
    let fp = Fingerprinter::new(&cfg.fingerprint).expect("shipped patterns load");
    let records = error_records();
    let messages: Vec<&str> = records.iter().map(|r| r.message.as_str()).collect();
    let mut g = c.benchmark_group("fingerprint");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("mask_message", |b| {
        b.iter(|| {
            for m in &messages {
                black_box(fp.identify_message(black_box(m), None));
            }
        })
    });
    g.bench_function("identify_record_with_trace", |b| {
        b.iter(|| {
            for r in &records {
                black_box(fp.identify(black_box(r), None));
            }
        })
    });
    // The learner after it has seen the data once: the steady state of a
    // running service, where almost every line matches a known type.
    let mut learner = Learner::from_config(&cfg.fingerprint.learn);
    for r in &records {
        fingerprint::classify(&mut learner, fp.identify(r, None));
    }
    g.bench_function("identify_and_classify_warm", |b| {
        b.iter(|| {
            for r in &records {
                black_box(fingerprint::classify(&mut learner, fp.identify(r, None)));
            }
        })
    });
    g.finish();
}

fn window(c: &mut Criterion) {
    let spec = WindowSpec::new(60_000, 3_600_000);
    let mut g = c.benchmark_group("window");
    const N: u64 = 10_000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("add_in_order", |b| {
        b.iter_batched_ref(
            || WindowCounts::new(&spec),
            |w| {
                // Ten events a second: a new bucket every 600 adds.
                for i in 0..N as i64 {
                    black_box(w.add(i / 600, 1));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let mut full = WindowCounts::new(&spec);
    for b in 0..120 {
        full.add(b, (b % 7) as u32);
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("sum_last_five_buckets", |b| {
        b.iter(|| black_box(full.sum(black_box(115), 119)))
    });
    g.bench_function("peak_over_an_hour", |b| {
        b.iter(|| black_box(full.peak(black_box(5), 60, 119)))
    });
    g.finish();
}

/// Error records through the engine after parsing: fingerprint, baseline,
/// windows and the detector, with no sink. The first pass learns the types
/// (warm-up); the measured passes judge them as a live stream does.
fn detect(c: &mut Criterion) {
    let cfg = Config::default();
    let records = error_records();
    let span = records
        .iter()
        .filter_map(|r| r.time)
        .max()
        .zip(records.iter().filter_map(|r| r.time).min())
        .map(|(hi, lo)| hi - lo + 1)
        .unwrap_or(1);
    let mut engine = Engine::new(
        &cfg,
        None,
        &BaselineOptions::default(),
        Vec::new(),
        Arc::default(),
    )
    .expect("default engine builds");
    engine.forget_emitted();
    let mut shift = 0;
    let pass = |engine: &mut Engine, shift: &mut i64| {
        for r in &records {
            let mut r = r.clone();
            r.time = r.time.map(|t| t + *shift);
            engine.process_error(r);
        }
        // Later passes move forward in event time like a live stream.
        *shift += span;
    };
    pass(&mut engine, &mut shift);
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("engine_process_error_known_types", |b| {
        b.iter(|| pass(&mut engine, &mut shift))
    });
    g.finish();
}

criterion_group!(benches, parse, fingerprint, window, detect);
criterion_main!(benches);
