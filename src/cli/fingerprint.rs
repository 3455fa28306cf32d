//! `faultline fingerprint`: each record's error type, one JSON object per
//! record (per line with `--raw`), in the format `score.py` reads.
//!
//! The whole input is learned first and then labelled, so every line gets
//! the type it belongs to in the light of all lines (what a grouping score
//! asks). `--online` labels each line as the stream would at that moment.
//! In both, each context's layout (its varying header columns,
//! `fingerprint::layout`) is learned from its first lines before any line
//! is labelled: a stream holding a new service's first lines until then.

use std::io::{BufWriter, Write};

use anyhow::{Context as _, Result};
use clap::Args;
use serde::Serialize;

use faultline::config::{Config, Format};
use faultline::fingerprint::layout::LayoutLearner;
use faultline::fingerprint::{
    self, Context, Fingerprint, Fingerprinter, Identity, IdentityKind, Learner,
};
use faultline::parse::{Parser, RecordSink};
use faultline::record::{BadReason, Level, LineMeta, Record};
use faultline::source::{Input, LineReader};

#[derive(Args, Debug)]
pub struct FingerprintArgs {
    /// Input file, or `-` for stdin.
    input: String,
    /// Every input line is a message: no header parsing, no joining, no
    /// level filter.
    #[arg(long)]
    raw: bool,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Label each line as a stream would when it arrives.
    #[arg(long)]
    online: bool,
}

#[derive(Serialize)]
struct Out<'a> {
    line_id: u64,
    group: String,
    template: std::borrow::Cow<'a, str>,
}

struct Collect(Vec<Record>);

impl RecordSink for Collect {
    fn line(&mut self, _: &LineMeta<'_>) {}
    fn error(&mut self, r: Record) {
        self.0.push(r);
    }
    fn bad(&mut self, _: BadReason, _: u64) {}
}

/// Rows read before any directive that are kept for one declared later
/// (an input cut from the middle of a file): at most this many, the first.
const MAX_EARLY: usize = 4096;

/// `line` when it is one of the first [`MAX_EARLY`] rows, read before any
/// directive (a later one may declare its columns); else nothing.
fn early(layouts: &LayoutLearner, n: usize, declared: bool, line: &str) -> String {
    if n >= MAX_EARLY || declared || layouts.has_declared() || line.starts_with('#') {
        String::new()
    } else {
        line.to_string()
    }
}

pub fn run(mut cfg: Config, args: FingerprintArgs) -> Result<i32> {
    let input = Input::parse(&args.input);
    let (reader, _) = input
        .open()
        .with_context(|| format!("opening {}", input.display()))?;
    let mut lr = LineReader::new(reader, cfg.input.max_line_bytes);
    let fp = Fingerprinter::new(&cfg.fingerprint)?;
    let mut items: Vec<(u64, Identity)> = Vec::new();
    // A row that a directive of its source declares (`#Fields: …`) is
    // masked by its declared columns, in input order (a directive applies
    // to the rows after it); the learned layout leaves it alone.
    let mut layouts = LayoutLearner::new();
    let mut declared: Vec<bool> = Vec::new();
    // The first line of each row read before any directive (else empty).
    let mut firsts: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    if args.raw {
        while let Some(line) = lr.next_line(&mut buf)? {
            let msg = String::from_utf8_lossy(line.bytes);
            let mut id = fp.identify_message(&msg, None);
            let d = fp.lay_out_declared(&mut layouts, &msg, &mut id);
            firsts.push(early(&layouts, items.len(), d, &msg));
            declared.push(d);
            items.push((lr.line, id));
        }
    } else {
        // Every record, whatever its level.
        cfg.input.min_level = Level::Trace;
        let parser = Parser::new(&cfg, args.format.unwrap_or(cfg.input.format))?;
        let mut lp = parser.stream(input.default_service());
        let mut sink = Collect(Vec::new());
        while let Some(line) = lr.next_line(&mut buf)? {
            let n = lr.line;
            lp.push(line.bytes, n, &mut sink);
        }
        lp.finish(&mut sink);
        for r in sink.0 {
            let mut id = fp.identify(&r, None);
            let line = r.message.lines().next().unwrap_or("");
            let d = fp.lay_out_declared(&mut layouts, line, &mut id);
            firsts.push(early(&layouts, items.len(), d, line));
            declared.push(d);
            items.push((r.line, id));
        }
    }
    // A layout per context, learned from its first lines before any line
    // is labelled (what a stream would do by holding a new service's first
    // lines until its layout is known): varying header columns masked.
    // Offline, rows before their source's first directive (an input cut
    // from the middle of a file) take the directives it declares later;
    // online, as a stream, they stay as they arrived.
    for (((_, id), d), raw) in items.iter_mut().zip(&mut declared).zip(&firsts) {
        if !args.online && !*d && !raw.is_empty() {
            *d = fp.apply_declared(&layouts, raw, id);
        }
    }
    for ((_, id), &d) in items.iter().zip(&declared) {
        if id.kind == IdentityKind::Learned && !d {
            layouts.observe(id.context_key(), &id.template);
        }
    }
    layouts.finish();
    for ((_, id), &d) in items.iter_mut().zip(&declared) {
        if id.kind == IdentityKind::Learned && !d {
            layouts.apply(id.context_key(), &mut id.template);
        }
    }
    let l = &cfg.fingerprint.learn;
    let mut learner = Learner::from_config(l);
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    // `id`: the type's id when the caller has it (online: what the stream
    // hands to counts and alerts, which a generalised type may have
    // inherited from the member it grew from); else its template's hash.
    let mut emit =
        |line_id: u64, ctx: &Context, template: &str, id: Option<Fingerprint>| -> Result<()> {
            serde_json::to_writer(
                &mut w,
                &Out {
                    line_id,
                    group: id.unwrap_or_else(|| ctx.fingerprint(template)).to_string(),
                    // the id is the learner's template's; the output shows it as read
                    template: faultline::fingerprint::delimited::readable(template),
                },
            )?;
            w.write_all(b"\n")?;
            Ok(())
        };
    if args.online {
        for (line_id, id) in items {
            if let Some(t) = fingerprint::classify(&mut learner, id) {
                emit(line_id, &t.context, &t.template, Some(t.fingerprint))?;
            }
        }
    } else {
        for (_, id) in &items {
            let _ = fingerprint::classify(&mut learner, id.clone());
        }
        for (line_id, id) in &items {
            let (context, template) = (id.context(), &id.template);
            match id.kind {
                IdentityKind::Ignored { .. } => {}
                IdentityKind::Fixed => emit(*line_id, context, template, None)?,
                IdentityKind::Learned => match learner.lookup(context.key(), template) {
                    Some(c) => emit(*line_id, context, learner.template(c), None)?,
                    // Evicted to keep the learner within its memory
                    // budget (more distinct templates than it holds):
                    // learned again, as a stream would.
                    None => {
                        if let Some(t) = fingerprint::classify(&mut learner, id.clone()) {
                            emit(*line_id, &t.context, &t.template, None)?;
                        }
                    }
                },
            }
        }
    }
    w.flush()?;
    Ok(0)
}
