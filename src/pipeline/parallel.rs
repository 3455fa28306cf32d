//! Parallel replay of one input: chunks parse on worker threads, the
//! calling thread applies them to the [`Engine`] in input order.
//!
//! Parsing and fingerprinting (masking) are most of a replay's work and need
//! no state but the parser's, so they can run anywhere; learning, the
//! baseline and detection must see records in input order and stay on the
//! calling thread. Three stages, joined by bounded channels:
//!
//! * a reader thread cuts the input into chunks of about `chunk_bytes`,
//!   always before a line that [`Parser::starts_fresh`]: a line that begins
//!   a record whatever came before (never a stack frame, never a bad line);
//! * workers parse a chunk with their own stream and record what the parser
//!   reported, in order, as compact [`Event`]s — non-error lines as a time
//!   and an interned (service, version), errors as the owned record plus its
//!   [`Identity`];
//! * the calling thread puts chunks back in order and replays the events
//!   into the engine exactly as the parser would have called it.
//!
//! Why the result is the one thread's, event for event: a stream started at
//! a fresh line parses everything from there as the whole input's stream
//! does, except for the carried time (the previous record's, which text
//! lines without a time take). Workers parse with no carried time and
//! report whether they used it ([`Carry`]); when the chunk did and the true
//! carry differs, the calling thread parses that chunk again with the true
//! one. When the reader finds no fresh line for too long (a file of junk,
//! or of text no header pattern knows) it cuts anyway, and the chunks on
//! both sides of such a cut parse on the calling thread with one stream
//! that goes on across it. Strict mode and sink failures are checked at the
//! same input lines as with one thread, because every event carries the
//! line it came from. Checkpoints are taken only between chunks.

use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::{Engine, InputRun, PipelineError, check_line};
use crate::fingerprint::{Fingerprinter, Identity, Learner, PrehashedMap};
use crate::keys;
use crate::metrics::Metrics;
use crate::parse::{Carry, LineParser, Parser, RecordSink};
use crate::record::{BadReason, EventTime, Level, LineMeta, Record};
use crate::source::driver::{Cadence, Pace, Poll, Source, drive};
use crate::source::{InputIdentity, LineReader};
use xxhash_rust::xxh3::xxh3_64;

/// Default chunk size: large enough that per-chunk costs vanish, small
/// enough that a few chunks in flight per thread stay a few megabytes.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Without a fresh line for this many chunk sizes, the reader cuts anyway.
const FORCED_CUT: usize = 8;

/// A piece of an input as the reader cut it.
struct Chunk {
    data: Vec<u8>,
    /// Per line: the end of its bytes in `data`, and whether it was cut at
    /// `max_line_bytes` (reported as too long, never parsed).
    lines: Vec<(usize, bool)>,
    /// 1-based number of the first line.
    first_line: u64,
    /// Begins at the input's start (or resume point) or at a fresh line.
    fresh_start: bool,
    /// Ends at the input's end or before a fresh line.
    fresh_end: bool,
    /// The input's identity after the last line: a resume point.
    end: InputIdentity,
    last: bool,
    /// What parsing reported, once a worker parsed it.
    events: Events,
    parsed: bool,
}

impl Chunk {
    /// Parsed apart from its neighbours on a worker.
    fn standalone(&self) -> bool {
        self.fresh_start && self.fresh_end
    }

    /// An empty chunk that reuses the buffers of `used`, an applied one:
    /// fresh megabytes for every chunk would cost page faults and frees
    /// across threads.
    fn recycle(used: Option<Chunk>, first_line: u64, end: InputIdentity) -> Chunk {
        let (mut data, mut lines, mut events) = match used {
            Some(c) => (c.data, c.lines, c.events),
            None => (Vec::new(), Vec::new(), Events::default()),
        };
        data.clear();
        lines.clear();
        events.clear();
        Chunk {
            data,
            lines,
            first_line,
            fresh_start: true,
            fresh_end: true,
            end,
            last: false,
            events,
            parsed: false,
        }
    }
}

/// One call the parser made on its sink.
#[derive(Clone, Copy, Debug)]
struct Event {
    /// The chunk's line being pushed (its line count for calls made when
    /// the stream is finished: with one thread they come with the next
    /// line, which flushes the open record).
    at: u32,
    kind: EventKind,
}

#[derive(Clone, Copy, Debug)]
enum EventKind {
    Line {
        time: Option<EventTime>,
        level: Option<Level>,
        /// Index of (service, version) in [`Events::metas`].
        meta: u32,
        request: crate::record::RequestMeta,
    },
    /// The learner's key/value hashes of the line: `Events::pairs[from..to]`.
    Teach {
        from: u32,
        to: u32,
    },
    /// The next record of [`Events::errors`].
    Error,
    Bad {
        reason: BadReason,
        line_no: u64,
    },
}

/// A line's service and version, as the parser reported them.
type ServiceVersion = (Option<Box<str>>, Option<Box<str>>);

/// What parsing a chunk reported.
#[derive(Default)]
struct Events {
    list: Vec<Event>,
    errors: Vec<(Record, Identity)>,
    metas: Vec<ServiceVersion>,
    /// Key/value hashes of non-error lines, for the learner.
    pairs: Vec<(u64, u64)>,
    /// Hash of a (service, version) → its index in `metas` (the first of
    /// that hash; a collision falls back to a scan).
    index: PrehashedMap<u64, u32>,
    /// The index `intern` returned last.
    last: Option<u32>,
    carry: Carry,
}

impl Events {
    fn clear(&mut self) {
        self.list.clear();
        self.errors.clear();
        self.metas.clear();
        self.pairs.clear();
        self.index.clear();
        self.last = None;
        self.carry = Carry::default();
    }

    fn intern(&mut self, service: Option<&str>, version: Option<&str>) -> u32 {
        // Runs of lines from one service and version are the rule: compare
        // with the last one before hashing both strings.
        if let Some(i) = self.last
            && self.is(i, service, version)
        {
            return i;
        }
        let part = |s: Option<&str>| s.map_or(0, |s| xxh3_64(s.as_bytes()) | 1);
        let h = part(service) ^ part(version).rotate_left(32);
        let found = match self.index.get(&h) {
            Some(&i) if self.is(i, service, version) => Some(i),
            Some(_) => (0..self.metas.len() as u32).find(|&i| self.is(i, service, version)),
            None => None,
        };
        let i = found.unwrap_or_else(|| {
            let i = self.metas.len() as u32;
            self.metas
                .push((service.map(Box::from), version.map(Box::from)));
            self.index.entry(h).or_insert(i);
            i
        });
        self.last = Some(i);
        i
    }

    /// Whether `metas[i]` is (service, version).
    fn is(&self, i: u32, service: Option<&str>, version: Option<&str>) -> bool {
        let eq = |a: &Option<Box<str>>, b: Option<&str>| match (a.as_deref(), b) {
            (Some(a), Some(b)) => keys::eq(a, b),
            (None, None) => true,
            _ => false,
        };
        let (s, v) = &self.metas[i as usize];
        eq(s, service) && eq(v, version)
    }
}

/// Records the parser's calls; interns (service, version) so that the
/// common non-error line allocates nothing.
struct Recorder<'f> {
    fp: &'f Fingerprinter,
    at: u32,
    events: Events,
}

impl<'f> Recorder<'f> {
    fn new(fp: &'f Fingerprinter, events: Events) -> Recorder<'f> {
        Recorder { fp, at: 0, events }
    }

    fn push(&mut self, kind: EventKind) {
        self.events.list.push(Event { at: self.at, kind });
    }
}

impl RecordSink for Recorder<'_> {
    fn line(&mut self, meta: &LineMeta<'_>) {
        let m = self.events.intern(meta.service, meta.version);
        self.push(EventKind::Line {
            time: meta.time,
            level: meta.level,
            meta: m,
            request: meta.request,
        });
        // Hashing a line's pairs is stateless: done here, in parallel.
        if let Some(msg) = meta.message {
            let from = self.events.pairs.len() as u32;
            Learner::line_pairs(
                self.fp.learn_scope(meta.service),
                msg,
                &mut self.events.pairs,
            );
            let to = self.events.pairs.len() as u32;
            if to > from {
                self.push(EventKind::Teach { from, to });
            }
        }
    }

    fn error(&mut self, record: Record) {
        let identity = self.fp.identify(&record, None);
        self.events.errors.push((record, identity));
        self.push(EventKind::Error);
    }

    fn bad(&mut self, reason: BadReason, line_no: u64) {
        self.push(EventKind::Bad { reason, line_no });
    }
}

/// Pushes a chunk's lines through `stream`, finishing it when the chunk
/// ends before a fresh line (the next chunk's stream starts anew).
fn parse_into(stream: &mut LineParser<'_>, chunk: &Chunk, rec: &mut Recorder<'_>) {
    let mut from = 0;
    for (i, &(end, truncated)) in chunk.lines.iter().enumerate() {
        rec.at = i as u32;
        let line_no = chunk.first_line + i as u64;
        if truncated {
            rec.bad(BadReason::TooLong, line_no);
        } else {
            stream.push(&chunk.data[from..end], line_no, rec);
        }
        from = end;
    }
    rec.at = chunk.lines.len() as u32;
    if chunk.fresh_end {
        stream.finish(rec);
    }
    rec.events.carry = stream.carry();
}

type Work = io::Result<Chunk>;
type Done = (u64, io::Result<Chunk>);

/// Replays one input with `threads` parsing threads; returns the input's
/// identity at its end.
pub(super) fn read_input<R: BufRead + Send>(
    engine: &mut Engine,
    parser: &Parser,
    lr: LineReader<R>,
    run: &InputRun<'_>,
    cadence: &Cadence<'_>,
    threads: usize,
    chunk_bytes: usize,
) -> Result<(), PipelineError> {
    // Chunks between being cut and being applied; each holds a buffer that
    // comes back for reuse, which bounds memory.
    let in_flight = 2 * threads + 2;
    std::thread::scope(|s| {
        let (work_tx, work_rx) = sync_channel::<(u64, Work)>(threads);
        let (done_tx, done_rx) = sync_channel::<Done>(in_flight);
        let (token_tx, token_rx) = sync_channel::<Option<Chunk>>(in_flight);
        for _ in 0..in_flight {
            // Cannot fail: the channel has room for every token.
            let _ = token_tx.send(None);
        }
        // Returning from this closure, early or not, drops the calling
        // thread's channel ends: the other threads then see closed channels
        // and stop before the scope joins them.
        let spawn_error = |source| PipelineError::Input {
            input: run.name.to_string(),
            source,
        };
        std::thread::Builder::new()
            .name("replay-read".into())
            .spawn_scoped(s, move || {
                read_chunks(lr, parser, chunk_bytes, token_rx, work_tx)
            })
            .map_err(spawn_error)?;
        let work_rx = Arc::new(Mutex::new(work_rx));
        for _ in 0..threads {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            // A clone per thread: each gets its own regex caches.
            let fp = engine.fingerprinter().clone();
            let service = run.default_service.clone();
            std::thread::Builder::new()
                .name("replay-parse".into())
                .spawn_scoped(s, move || work(parser, &fp, service, &work_rx, &done_tx))
                .map_err(spawn_error)?;
        }
        drop(done_tx);
        let mut source = InOrder::new(engine, parser, run, done_rx, token_tx);
        drive(&mut source, cadence)?;
        Ok(())
    })
}

/// The reader: cuts the input into chunks. A chunk is cut only with a
/// token, an applied chunk whose buffers it reuses.
fn read_chunks<R: BufRead>(
    mut lr: LineReader<R>,
    parser: &Parser,
    chunk_bytes: usize,
    tokens: Receiver<Option<Chunk>>,
    work: SyncSender<(u64, Work)>,
) {
    let mut seq = 0u64;
    let Ok(used) = tokens.recv() else { return };
    let mut chunk = Chunk::recycle(used, lr.line + 1, lr.identity());
    loop {
        let at = chunk.data.len();
        let line = match lr.append_line(&mut chunk.data) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                let _ = work.send((seq, Err(e)));
                return;
            }
        };
        if at >= chunk_bytes {
            let fresh = super::may_cut_before(parser, &chunk.data[at..], line.truncated);
            if fresh || at >= chunk_bytes.saturating_mul(FORCED_CUT) {
                let Ok(used) = tokens.recv() else { return };
                let mut next = Chunk::recycle(used, lr.line, lr.identity());
                next.fresh_start = fresh;
                next.data.extend_from_slice(&chunk.data[at..]);
                chunk.data.truncate(at);
                chunk.fresh_end = fresh;
                let mut end = lr.identity();
                end.offset = line.start;
                end.line = lr.line - 1;
                chunk.end = end;
                let full = std::mem::replace(&mut chunk, next);
                if work.send((seq, Ok(full))).is_err() {
                    return;
                }
                seq += 1;
            }
        }
        chunk.lines.push((chunk.data.len(), line.truncated));
    }
    chunk.end = lr.identity();
    chunk.last = true;
    let _ = work.send((seq, Ok(chunk)));
}

/// A worker: parses standalone chunks, passes the others through.
fn work(
    parser: &Parser,
    fp: &Fingerprinter,
    default_service: Option<String>,
    work: &Mutex<Receiver<(u64, Work)>>,
    done: &SyncSender<Done>,
) {
    loop {
        let next = match work.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, item)) = next else { return };
        let parsed = item.map(|mut chunk| {
            if chunk.standalone() {
                let mut stream = parser.stream(default_service.clone());
                let mut rec = Recorder::new(fp, std::mem::take(&mut chunk.events));
                parse_into(&mut stream, &chunk, &mut rec);
                chunk.events = rec.events;
                chunk.parsed = true;
            }
            chunk
        });
        if done.send((seq, parsed)).is_err() {
            return;
        }
    }
}

/// The calling thread's part, a [`Source`]: each poll puts the next chunk
/// (in input order) into the engine; the driver may checkpoint between
/// chunks that end where the input may be cut.
struct InOrder<'a> {
    engine: &'a mut Engine,
    pace: Pace,
    parser: &'a Parser,
    run: &'a InputRun<'a>,
    fp: Fingerprinter,
    metrics: Arc<Metrics>,
    done: Receiver<Done>,
    tokens: SyncSender<Option<Chunk>>,
    waiting: BTreeMap<u64, io::Result<Chunk>>,
    next: u64,
    /// The carried time at the current chunk boundary, as one stream over
    /// the whole input would have it.
    carried: Option<EventTime>,
    /// The stream going on across a forced cut.
    open: Option<LineParser<'a>>,
    /// The input line whose end checks are due (see `check_line`).
    unchecked: Option<u64>,
    lines_seen: u64,
    /// The last applied chunk's end, and whether the input may be cut there.
    end: Option<InputIdentity>,
    fresh_end: bool,
    /// The last chunk was applied.
    finished: bool,
}

impl<'a> InOrder<'a> {
    fn new(
        engine: &'a mut Engine,
        parser: &'a Parser,
        run: &'a InputRun<'a>,
        done: Receiver<Done>,
        tokens: SyncSender<Option<Chunk>>,
    ) -> InOrder<'a> {
        InOrder {
            fp: engine.fingerprinter().clone(),
            metrics: engine.metrics.clone(),
            engine,
            pace: Pace::default(),
            parser,
            run,
            done,
            tokens,
            waiting: BTreeMap::new(),
            next: 0,
            carried: None,
            open: None,
            unchecked: None,
            lines_seen: 0,
            end: None,
            fresh_end: false,
            finished: false,
        }
    }

    /// The next chunk in input order, as a worker left it.
    fn next_chunk(&mut self) -> Result<Chunk, PipelineError> {
        loop {
            let parsed = match self.waiting.remove(&self.next) {
                Some(p) => p,
                None => {
                    let Ok((seq, p)) = self.done.recv() else {
                        // Every sender is gone without the last chunk: a
                        // thread panicked, and the scope passes the panic on.
                        return Err(self.run.io(io::Error::other("a replay thread stopped")));
                    };
                    if seq != self.next {
                        self.waiting.insert(seq, p);
                        continue;
                    }
                    p
                }
            };
            self.next += 1;
            return parsed.map_err(|e| self.run.io(e));
        }
    }
}

impl Source for InOrder<'_> {
    type Error = PipelineError;

    fn engine(&mut self) -> &mut Engine {
        self.engine
    }

    fn pace(&mut self) -> &mut Pace {
        &mut self.pace
    }

    fn poll(&mut self) -> Result<Poll, PipelineError> {
        if self.finished {
            return Ok(Poll::End);
        }
        let mut chunk = self.next_chunk()?;
        let engine = &mut *self.engine;
        let carry = chunk.events.carry;
        if chunk.parsed && !(carry.seed_used && self.carried.is_some()) {
            if carry.own_time {
                self.carried = carry.last_time;
            }
        } else {
            // Not parsed, or parsed without the carried time it needed.
            let mut stream = match self.open.take() {
                Some(s) if !chunk.fresh_start => s,
                _ => self
                    .parser
                    .stream_seeded(self.run.default_service.clone(), self.carried),
            };
            let mut events = std::mem::take(&mut chunk.events);
            events.clear();
            let mut rec = Recorder::new(&self.fp, events);
            parse_into(&mut stream, &chunk, &mut rec);
            chunk.events = rec.events;
            self.carried = chunk.events.carry.last_time;
            if !chunk.fresh_end {
                self.open = Some(stream);
            }
        }
        let n = chunk.lines.len() as u64;
        self.metrics.lines.fetch_add(n, Ordering::Relaxed);
        // The chunk holds its lines' bytes back to back, as the sequential
        // reader counts them.
        let bytes = chunk.lines.last().map_or(0, |&(end, _)| end);
        self.metrics
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        apply(engine, self.run, &mut chunk, &mut self.unchecked)?;
        let last_line = chunk.first_line + n - 1;
        self.lines_seen += n;
        self.run.progress(
            chunk.end.offset,
            last_line,
            self.metrics.errors.load(Ordering::Relaxed),
        );
        if chunk.last {
            // The last line's checks; what finishing the stream reported
            // is, as with one thread, left to the final flush.
            if self.lines_seen > 0 && self.unchecked.is_none_or(|l| l <= last_line) {
                check_line(engine, self.run.name)?;
            }
            self.finished = true;
            self.end = Some(chunk.end);
            return Ok(Poll::Pushed(n));
        }
        self.fresh_end = chunk.fresh_end;
        self.end = Some(chunk.end.clone());
        // Cannot block: there are never more tokens than the channel holds.
        let _ = self.tokens.send(Some(chunk));
        Ok(Poll::Pushed(n))
    }

    fn at_boundary(&self) -> bool {
        // Everything before the next chunk is one complete set of records.
        !self.finished && self.fresh_end
    }

    fn settle(&mut self) -> Result<(), PipelineError> {
        if !self.finished {
            check_line(self.engine, self.run.name)?;
            self.unchecked = None;
        }
        Ok(())
    }

    fn checkpoint(&mut self) {
        if let (Some(k), Some(end)) = (self.run.key, &self.end) {
            self.engine.state.inputs.insert(k.to_string(), end.clone());
        }
    }
}

/// Replays a chunk's events into the engine; an input line's checks run
/// when the next line's events begin.
fn apply(
    engine: &mut Engine,
    run: &InputRun<'_>,
    chunk: &mut Chunk,
    unchecked: &mut Option<u64>,
) -> Result<(), PipelineError> {
    let first_line = chunk.first_line;
    let Events {
        list,
        errors,
        metas,
        pairs,
        ..
    } = &mut chunk.events;
    let mut errors = errors.drain(..);
    for ev in list.drain(..) {
        let line = first_line + u64::from(ev.at);
        if unchecked.is_some_and(|l| l != line) {
            check_line(engine, run.name)?;
        }
        *unchecked = Some(line);
        match ev.kind {
            EventKind::Line {
                time,
                level,
                meta,
                request,
            } => {
                let (service, version) = &metas[meta as usize];
                engine.line(&LineMeta {
                    time,
                    level,
                    service: service.as_deref(),
                    version: version.as_deref(),
                    message: None,
                    request,
                });
            }
            EventKind::Teach { from, to } => {
                engine.teach_pairs(&pairs[from as usize..to as usize]);
            }
            EventKind::Error => {
                if let Some((rec, identity)) = errors.next() {
                    engine.process_identified(rec, identity);
                }
            }
            EventKind::Bad { reason, line_no } => engine.bad(reason, line_no),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_index_per_service_and_version() {
        let mut e = Events::default();
        let api1 = e.intern(Some("api"), Some("1.0"));
        assert_eq!(e.intern(Some("api"), Some("1.0")), api1);
        let api2 = e.intern(Some("api"), Some("2.0"));
        let none = e.intern(Some("api"), None);
        let empty = e.intern(Some("api"), Some(""));
        let nothing = e.intern(None, None);
        let all = [api1, api2, none, empty, nothing];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Back to an earlier pair, after others: the same index again.
        assert_eq!(e.intern(Some("api"), Some("1.0")), api1);
        assert_eq!(e.intern(Some("api"), Some("")), empty);
        assert_eq!(e.metas.len(), 5);
        e.clear();
        assert_eq!(e.intern(Some("web"), None), 0);
    }
}
