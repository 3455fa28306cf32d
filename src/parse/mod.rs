//! Parse: bytes of one input line in, records out (push model).
//!
//! This stage turns whatever services write — JSON lines (ECS or flat),
//! logfmt, or plain text with multi-line stack traces — into the one shape
//! the rest of the pipeline counts and fingerprints. It is push-based so the
//! source owns buffering and the parser never copies input: every line is
//! reported to a [`RecordSink`] as borrowed [`LineMeta`] (for rates), and
//! only records at or above the error threshold are assembled into owned
//! [`Record`]s. That split is what makes the common case cheap: a non-error
//! JSON line is validated and scanned once, without a tree or an allocation.
//! Bad input is never an error of the parser; it is a [`BadReason`] counted
//! by the sink, because one malformed line must not stop a log stream.
//!
//! Decisions worth knowing:
//! * Format: [`Format::Auto`] decides per line — `{` means JSON, `key=` with
//!   a level key means logfmt, anything else is text. In auto mode an
//!   indented line while a text record is open is a continuation, even if it
//!   looks like JSON.
//! * Blank lines are skipped silently (they separate parts of Python
//!   tracebacks) except under forced [`Format::Json`] and in
//!   [`Parser::parse_one`], where they are [`BadReason::Empty`].
//! * A line is [`BadReason::TooLong`] when the bytes handed over exceed
//!   `max_line_bytes`; a caller that truncates must pass at least one byte
//!   more than the limit for the overflow to be seen.
//! * Bad lines (junk, bad timestamps, error records without a message) are
//!   reported through `bad()` only, never through `line()`. A non-error
//!   record without a message is still a line: it counts for rates.
//! * Records without a level are never errors in JSON and logfmt (their
//!   schema had a chance to say so); text records without one get a level
//!   inferred from their words when `text.infer_level` is on.
//! * Missing service: `text.default_service` if configured, else the
//!   stream's default (the input's name), for every format.
//! * Missing time: `None` for JSON and logfmt (the caller decides), the
//!   previous record's for text, `fallback_time` in [`Parser::parse_one`].
//! * `logger_min_level` applies to the logger and its parents
//!   (`com.acme` covers `com.acme.db.Pool`); the closest entry wins.
//! * A text error record is emitted when the next record begins or at
//!   [`LineParser::finish`], which may be called on idle: parsing continues
//!   afterwards, but a trace line arriving later starts nothing.

mod fields;
mod json;
mod logfmt;
mod text;
mod time;
mod trace;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;

use crate::config::{Config, Format};
use crate::record::{BadReason, EventTime, Level, LineMeta, Record};

pub use fields::FieldMapError;
use fields::{Field, FieldMap, Kind, Slots, Span};

/// Where parsed lines go.
pub trait RecordSink {
    /// Every record, error or not, for rate counting.
    fn line(&mut self, meta: &LineMeta<'_>);
    /// Records at or above the minimum level, fully assembled.
    fn error(&mut self, record: Record);
    /// A skipped line, with its reason and 1-based line number.
    fn bad(&mut self, reason: BadReason, line_no: u64);
}

/// Configuration the parser cannot work with; found once, at startup.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("text.headers[{index}] `{pattern}` is not a valid regex: {source}")]
    HeaderRegex {
        index: usize,
        pattern: String,
        source: Box<regex::Error>,
    },
    #[error("fields.version_from.regex `{pattern}` is not a valid regex: {source}")]
    VersionFromRegex {
        pattern: String,
        source: Box<regex::Error>,
    },
    #[error(
        "fields.version_from.regex `{pattern}` has no capture group; wrap the version part in (…)"
    )]
    VersionFromNoGroup { pattern: String },
    #[error(transparent)]
    Fields(#[from] FieldMapError),
}

#[derive(Debug)]
pub(crate) struct VersionFrom {
    pub field: String,
    re: Regex,
}

/// Compiled configuration: field map, header regexes, thresholds.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    pub(crate) map: FieldMap,
    pub(crate) headers: text::Headers,
    pub(crate) version_from: Option<VersionFrom>,
    min_level: Level,
    logger_min: BTreeMap<String, Level>,
    pub(crate) reject_bad_timestamps: bool,
    pub(crate) max_line_bytes: usize,
    infer_level: bool,
    pub(crate) default_service: Option<String>,
}

// One parser serves every input task; losing `Sync` must fail the build.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Parser>();
};

/// Per-input context shared by all formats.
#[derive(Debug, Default)]
pub(crate) struct StreamCtx {
    /// Time of the last record that had one: the fallback for text lines
    /// without a time and the year for syslog stamps.
    last_time: Option<EventTime>,
    /// Whether a record of this stream has set `last_time` (until then it
    /// is the value the stream was seeded with).
    own_time: bool,
    /// Whether the seeded `last_time` was read: only then does the result
    /// depend on what came before the stream's first line.
    seed_used: bool,
    pub vf_cache: VfCache,
}

impl StreamCtx {
    fn seeded(last_time: Option<EventTime>) -> StreamCtx {
        StreamCtx {
            last_time,
            ..StreamCtx::default()
        }
    }

    /// The previous record's time, noting a read of the seed.
    pub(crate) fn last_time(&mut self) -> Option<EventTime> {
        if !self.own_time {
            self.seed_used = true;
        }
        self.last_time
    }

    pub(crate) fn set_last_time(&mut self, t: EventTime) {
        self.last_time = Some(t);
        self.own_time = true;
    }
}

/// How a stream used the time carried in from before its first line (the
/// previous record's, which text lines without a time take). Lets a caller
/// parse pieces of one input apart, each from a record boundary, and know
/// whether a piece would have parsed differently with the true carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carry {
    /// The carried time at the end of the stream so far.
    pub last_time: Option<EventTime>,
    /// A record of this stream set the time: `last_time` no longer depends
    /// on the seed.
    pub own_time: bool,
    /// The seed was read: the output depends on it.
    pub seed_used: bool,
}

/// The last `version_from` input and its match: pod names repeat for
/// thousands of lines, and this keeps the regex off the per-line path.
#[derive(Debug, Default)]
pub(crate) struct VfCache {
    input: String,
    found: Option<Range<usize>>,
    valid: bool,
}

/// One input's parser: holds multi-line state, the last timestamp and the
/// default service.
#[derive(Debug)]
pub struct LineParser<'p> {
    parser: &'p Parser,
    default_service: Option<String>,
    ctx: StreamCtx,
    text: text::TextState,
    ansi_buf: String,
    slots: Slots,
}

impl Parser {
    /// Compiles `cfg` for parsing in `format` (which overrides `cfg.input.format`,
    /// so a command-line flag can win over the file).
    pub fn new(cfg: &Config, format: Format) -> Result<Parser, ParseError> {
        let version_from = match &cfg.fields.version_from {
            None => None,
            Some(v) => {
                let re = Regex::new(&v.regex).map_err(|source| ParseError::VersionFromRegex {
                    pattern: v.regex.clone(),
                    source: Box::new(source),
                })?;
                if re.captures_len() < 2 {
                    return Err(ParseError::VersionFromNoGroup {
                        pattern: v.regex.clone(),
                    });
                }
                Some(VersionFrom {
                    field: v.field.clone(),
                    re,
                })
            }
        };
        Ok(Parser {
            format,
            map: FieldMap::new(&cfg.fields)?,
            headers: text::Headers::new(&cfg.text.headers)?,
            version_from,
            min_level: cfg.input.min_level,
            logger_min: cfg.input.logger_min_level.clone(),
            reject_bad_timestamps: cfg.input.reject_bad_timestamps,
            max_line_bytes: cfg.input.max_line_bytes.min(u32::MAX as usize),
            infer_level: cfg.text.infer_level,
            default_service: cfg.text.default_service.clone(),
        })
    }

    /// Per-input state (multi-line joining, last timestamp, default service).
    /// A configured `text.default_service` takes precedence over
    /// `default_service`, which is meant to be the input's name.
    pub fn stream(&self, default_service: Option<String>) -> LineParser<'_> {
        self.stream_seeded(default_service, None)
    }

    /// [`Parser::stream`] for a piece of an input that starts at a record
    /// boundary: `last_time` is the carried time from before the piece
    /// (see [`Carry`]).
    pub fn stream_seeded(
        &self,
        default_service: Option<String>,
        last_time: Option<EventTime>,
    ) -> LineParser<'_> {
        LineParser {
            parser: self,
            default_service: self.default_service.clone().or(default_service),
            ctx: StreamCtx::seeded(last_time),
            text: text::TextState::new(self),
            ansi_buf: String::new(),
            slots: Slots::new(),
        }
    }

    /// Parse one standalone message (a Kafka value): JSON, logfmt or text, no
    /// joining with other messages. A multi-line text value is one record:
    /// its first line starts it and every further line is its trace.
    pub fn parse_one(
        &self,
        bytes: &[u8],
        line: u64,
        fallback_time: Option<EventTime>,
        out: &mut impl RecordSink,
    ) {
        let Checked { s, no_control } = match self.precheck(bytes) {
            Ok(c) => c,
            Err(reason) => return out.bad(reason, line),
        };
        let mut ctx = StreamCtx::seeded(fallback_time);
        let default_service = self.default_service.as_deref();
        let Some(first) = s.bytes().position(|c| !c.is_ascii_whitespace()) else {
            return out.bad(BadReason::Empty, line);
        };
        let mut slots = Slots::new();
        match self.detect(&s[first..], &mut slots) {
            Detected::Json => {
                let input = JsonInput { s, no_control };
                let env = Env {
                    ctx: &mut ctx,
                    default_service,
                    missing_time: fallback_time,
                };
                self.json(input, &mut slots, line, env, out);
            }
            Detected::Logfmt => {
                let s = &s[first..];
                let env = Env {
                    ctx: &mut ctx,
                    default_service,
                    missing_time: fallback_time,
                };
                self.structured(s, &slots, line, env, out);
            }
            Detected::Text => {
                if s.contains('\x1b') {
                    let mut buf = String::new();
                    text::strip_ansi(s, &mut buf);
                    text::parse_message(self, &buf, line, &mut ctx, out);
                } else {
                    text::parse_message(self, s, line, &mut ctx, out);
                }
            }
        }
    }

    /// Whether a stream parses `line` the same whatever lines came before
    /// it, except for the carried time (see [`Carry`]): it begins a record
    /// (JSON, logfmt, or a text header or crash line that no open text
    /// record could take as a continuation), and it is not a bad line
    /// (those leave the stream's state as it was). An input cut into pieces
    /// only before such lines parses piece by piece, each with a fresh
    /// stream, exactly as it does whole.
    pub fn starts_fresh(&self, line: &[u8]) -> bool {
        let Ok(Checked { s, .. }) = self.precheck(line) else {
            return false;
        };
        // Leading blanks may make a line a continuation in auto mode.
        if s.bytes().next().is_none_or(|c| c.is_ascii_whitespace()) {
            return false;
        }
        let mut slots = Slots::new();
        match self.detect(s, &mut slots) {
            Detected::Json | Detected::Logfmt => true,
            Detected::Text => {
                let mut buf = String::new();
                let s = if s.contains('\x1b') {
                    text::strip_ansi(s, &mut buf);
                    buf.as_str()
                } else {
                    s
                };
                trace::continuation(s).is_none() && (self.headers.matches(s) || trace::is_panic(s))
            }
        }
    }

    /// Length, junk and UTF-8 checks every line gets before any format.
    fn precheck<'a>(&self, line: &'a [u8]) -> Result<Checked<'a>, BadReason> {
        if line.len() > self.max_line_bytes {
            return Err(BadReason::TooLong);
        }
        // An OR-reduction vectorises; the exact test runs only on a hit.
        let no_control = !line
            .chunks(64)
            .any(|c| c.iter().fold(false, |acc, &b| acc | (b < 0x20)));
        if !no_control && looks_binary(line) {
            return Err(BadReason::Binary);
        }
        let s = std::str::from_utf8(line).map_err(|_| BadReason::InvalidUtf8)?;
        Ok(Checked { s, no_control })
    }

    /// Format of one line (given from its first non-blank byte). Deciding
    /// on logfmt means tokenizing it, so the result lands in `slots`.
    fn detect(&self, s: &str, slots: &mut Slots) -> Detected {
        match self.format {
            Format::Json => Detected::Json,
            Format::Logfmt => {
                logfmt::scan(s, &self.map, slots);
                Detected::Logfmt
            }
            Format::Text => Detected::Text,
            Format::Auto => {
                if s.starts_with('{') {
                    return Detected::Json;
                }
                if logfmt::starts_like_logfmt(s) {
                    logfmt::scan(s, &self.map, slots);
                    if self.map.get(slots, Field::Level).is_some() {
                        return Detected::Logfmt;
                    }
                }
                Detected::Text
            }
        }
    }

    fn json(
        &self,
        input: JsonInput<'_>,
        slots: &mut Slots,
        line_no: u64,
        env: Env<'_>,
        out: &mut impl RecordSink,
    ) {
        if json::scan(input.s, &self.map, slots, input.no_control).is_err() {
            return out.bad(BadReason::InvalidJson, line_no);
        }
        self.structured(input.s, slots, line_no, env, out);
    }

    /// Shared tail of JSON and logfmt: resolve fields, count, maybe assemble.
    fn structured(
        &self,
        line: &str,
        slots: &Slots,
        line_no: u64,
        env: Env<'_>,
        out: &mut impl RecordSink,
    ) {
        let Env {
            ctx,
            default_service,
            missing_time,
        } = env;
        let map = &self.map;
        let level = map
            .get(slots, Field::Level)
            .and_then(|span| span.scalar(line))
            .and_then(|t| level_of(&t));
        let logger = if self.logger_min.is_empty() {
            None
        } else {
            map.get_text(slots, Field::Logger, line)
        };
        let error = self.is_error(level, logger.as_deref());
        let time = match map.get(slots, Field::Timestamp) {
            None => missing_time,
            Some(span) => match timestamp(span, line, || ctx.last_time()) {
                Ok(Some(t)) => Some(t),
                Ok(None) => missing_time,
                Err(()) if self.reject_bad_timestamps => {
                    return out.bad(BadReason::BadTimestamp, line_no);
                }
                Err(()) => ctx.last_time(),
            },
        };
        let service = map.get_text(slots, Field::Service, line);
        let version = map.get_text(slots, Field::Version, line).or_else(|| {
            let source = map.get_text(slots, Field::VersionFrom, line)?;
            self.derive_version(source, &mut ctx.vf_cache)
        });
        let mut meta = LineMeta {
            time,
            level,
            service: service.as_deref().or(default_service),
            version: version.as_deref(),
            message: None,
        };
        if let Some(t) = time {
            ctx.set_last_time(t);
        }
        if !error {
            // The message teaches the learner its keys (`key=value`).
            let message = crate::record::teaches(line_no)
                .then(|| map.get_text(slots, Field::Message, line))
                .flatten();
            meta.message = message.as_deref();
            return out.line(&meta);
        }
        let message = map
            .get_text(slots, Field::Message, line)
            .or_else(|| map.get_text(slots, Field::ErrorMessage, line));
        let Some(message) = message else {
            return out.bad(BadReason::MissingMessage, line_no);
        };
        out.line(&meta);
        let mut stack_trace = map
            .get(slots, Field::StackTrace)
            .and_then(|span| match span.kind {
                Kind::Array => Some(json::join_string_array(span.raw(line))),
                _ => span.text(line).map(Cow::into_owned),
            });
        let message = match message.split_once('\n') {
            // Some loggers put the whole trace into the message; the first
            // line is the message, the rest is the trace if none was given.
            Some((first, rest)) => {
                if stack_trace.is_none() && !rest.trim().is_empty() {
                    stack_trace = Some(rest.to_string());
                }
                first.trim_end().to_string()
            }
            None => message.into_owned(),
        };
        let owned = |f: Field| map.get_text(slots, f, line).map(Cow::into_owned);
        let mut rec = Record {
            time,
            level,
            message,
            service: meta.service.map(str::to_string),
            version: meta.version.map(str::to_string),
            error_type: owned(Field::ErrorType),
            stack_trace,
            logger: match logger {
                Some(l) => Some(l.into_owned()),
                None => owned(Field::Logger),
            },
            host: owned(Field::Host),
            line: line_no,
        };
        text::complete(&mut rec);
        out.error(rec);
    }

    /// The level from which `logger`'s records are errors: the closest
    /// configured ancestor, else the global minimum.
    fn threshold(&self, logger: Option<&str>) -> Level {
        let Some(mut name) = logger else {
            return self.min_level;
        };
        if self.logger_min.is_empty() {
            return self.min_level;
        }
        loop {
            if let Some(&l) = self.logger_min.get(name) {
                return l;
            }
            let cut = match (name.rfind('.'), name.rfind("::")) {
                (Some(a), Some(b)) => a.max(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return self.min_level,
            };
            name = &name[..cut];
        }
    }

    pub(crate) fn is_error(&self, level: Option<Level>, logger: Option<&str>) -> bool {
        level.is_some_and(|l| l >= self.threshold(logger))
    }

    /// Level of a text record whose header has none.
    pub(crate) fn infer(&self, message: &str) -> Level {
        if self.infer_level && trace::says_error(message) {
            Level::Error
        } else {
            Level::Info
        }
    }

    /// The version captured from `source` by `version_from`, cached.
    pub(crate) fn derive_version<'a>(
        &self,
        source: Cow<'a, str>,
        cache: &mut VfCache,
    ) -> Option<Cow<'a, str>> {
        let vf = self.version_from.as_ref()?;
        if !(cache.valid && cache.input == *source) {
            cache.found = vf
                .re
                .captures(&source)
                .and_then(|c| c.get(1))
                .map(|m| m.range());
            cache.input.clear();
            cache.input.push_str(&source);
            cache.valid = true;
        }
        let range = cache.found.clone()?;
        match source {
            Cow::Borrowed(s) => s.get(range).map(Cow::Borrowed),
            Cow::Owned(s) => s.get(range).map(|v| Cow::Owned(v.to_string())),
        }
    }
}

/// What a structured line is parsed against besides itself.
struct Env<'e> {
    ctx: &'e mut StreamCtx,
    default_service: Option<&'e str>,
    /// Time for a record without one: `None` in streams (the caller
    /// decides), the transport's time in [`Parser::parse_one`].
    missing_time: Option<EventTime>,
}

/// A whole JSON line and whether it is free of control bytes.
struct JsonInput<'a> {
    s: &'a str,
    no_control: bool,
}

/// A line that passed [`Parser::precheck`].
struct Checked<'a> {
    s: &'a str,
    no_control: bool,
}

enum Detected {
    Json,
    Logfmt,
    Text,
}

impl LineParser<'_> {
    /// `line` without its terminator (`\n` and a trailing `\r` stripped by the caller).
    pub fn push(&mut self, line: &[u8], line_no: u64, out: &mut impl RecordSink) {
        let p = self.parser;
        let Checked { s, no_control } = match p.precheck(line) {
            Ok(c) => c,
            Err(reason) => return out.bad(reason, line_no),
        };
        let Some(first) = s.bytes().position(|c| !c.is_ascii_whitespace()) else {
            if p.format == Format::Json {
                out.bad(BadReason::Empty, line_no);
            }
            return;
        };
        let default_service = self.default_service.as_deref();
        let continues_text = first > 0 && p.format == Format::Auto && self.text.is_pending();
        let slots = &mut self.slots;
        slots.clear();
        let detected = if continues_text {
            Detected::Text
        } else {
            p.detect(&s[first..], slots)
        };
        match detected {
            Detected::Json => {
                self.text.flush(out);
                let input = JsonInput { s, no_control };
                let env = Env {
                    ctx: &mut self.ctx,
                    default_service,
                    missing_time: None,
                };
                p.json(input, slots, line_no, env, out);
            }
            Detected::Logfmt => {
                self.text.flush(out);
                // Spans are relative to the line from its first non-blank byte.
                let s = &s[first..];
                let env = Env {
                    ctx: &mut self.ctx,
                    default_service,
                    missing_time: None,
                };
                p.structured(s, slots, line_no, env, out);
            }
            Detected::Text => {
                if s.contains('\x1b') {
                    let mut buf = std::mem::take(&mut self.ansi_buf);
                    text::strip_ansi(s, &mut buf);
                    if !buf.trim().is_empty() {
                        let ctx = &mut self.ctx;
                        self.text.push(p, ctx, default_service, &buf, line_no, out);
                    }
                    self.ansi_buf = buf;
                } else {
                    self.text
                        .push(p, &mut self.ctx, default_service, s, line_no, out);
                }
            }
        }
    }

    /// End of input: emit the pending multi-line record.
    pub fn finish(&mut self, out: &mut impl RecordSink) {
        self.text.flush(out);
    }

    /// How this stream used and changed the carried time.
    pub fn carry(&self) -> Carry {
        Carry {
            last_time: self.ctx.last_time,
            own_time: self.ctx.own_time,
            seed_used: self.ctx.seed_used,
        }
    }
}

/// NUL anywhere, or control characters making up a noticeable share of the
/// line. Tabs, form feeds and ANSI escapes are ordinary in text logs.
fn looks_binary(line: &[u8]) -> bool {
    let mut control = 0usize;
    for &b in line {
        match b {
            0 => return true,
            b'\t' | b'\n' | b'\r' | 0x0c | 0x1b => {}
            c if c < 0x20 => control += 1,
            _ => {}
        }
    }
    control > 0 && (control >= 8 || control * 20 >= line.len())
}

/// A record's time from its timestamp value: `Ok(None)` when the value is
/// empty or null (missing), `Err` when present but unreadable.
fn timestamp(
    span: Span,
    line: &str,
    reference: impl FnOnce() -> Option<EventTime>,
) -> Result<Option<EventTime>, ()> {
    let parsed = match span.kind {
        Kind::Num => time::parse_number(span.raw(line)),
        Kind::Str | Kind::StrEsc | Kind::Bare | Kind::Quoted | Kind::QuotedEsc => {
            let text = span.text(line).unwrap_or_default();
            if text.trim().is_empty() {
                return Ok(None);
            }
            time::parse_text_with(&text, reference)
        }
        Kind::Absent | Kind::Null => return Ok(None),
        Kind::Bool | Kind::Object | Kind::Array => None,
    };
    parsed.map(Some).ok_or(())
}

/// [`Level::parse`] plus two numeric schemes it does not know: pino/bunyan
/// (10 trace … 60 fatal) and Apache's `trace1`…`trace8`.
pub(crate) fn level_of(s: &str) -> Option<Level> {
    if let Some(l) = Level::parse(s) {
        return Some(l);
    }
    let s = s.trim();
    match s.parse::<u32>() {
        Ok(10) => return Some(Level::Trace),
        Ok(20) => return Some(Level::Debug),
        Ok(30) => return Some(Level::Info),
        Ok(40) => return Some(Level::Warn),
        Ok(50) => return Some(Level::Error),
        Ok(60) => return Some(Level::Fatal),
        _ => {}
    }
    let b = s.as_bytes();
    (b.len() == 6 && b[..5].eq_ignore_ascii_case(b"trace") && b[5].is_ascii_digit())
        .then_some(Level::Trace)
}

#[cfg(test)]
mod tests;
