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

pub mod duration;
mod fields;
mod json;
pub(crate) mod logfmt;
mod ship;
mod text;
mod time;
mod trace;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use regex::Regex;

use crate::config::{Config, Envelopes, Format};
use crate::record::{BadReason, EventTime, Level, LineMeta, Record};

pub use fields::FieldMapError;
use fields::{Field, FieldMap, Kind, Slots, Span};
use ship::{EnvelopeMap, Outer, ResourceCache, Unwrapped};

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
    /// `None` when `input.envelopes = "off"`.
    envelope: Option<EnvelopeMap>,
    join_max_records: u64,
    join_max_millis: i64,
    /// `took 350ms` phrases in text messages; `None` when
    /// `signals.enabled` is off.
    pub(crate) durations: Option<duration::TextScanner>,
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
    state: StreamState,
}

/// The state of one input (a file, a Kafka partition): its own line
/// stream, plus one *lane* per container stream found in shipper envelopes
/// and CRI lines, each joining its own multi-line records exactly as a
/// file of that container's lines would. An open error record of a lane
/// (a trace that may continue in a later record) is emitted at the latest
/// once `input.join_max_records` records of the input have passed without
/// one for its lane, or a record is `input.join_max_millis` newer than it
/// (event time against event time, else transport time against transport
/// time, see `Stamp`); [`StreamState::finish`] emits everything (end of
/// input, idle, before a commit).
#[derive(Debug)]
pub struct StreamState {
    default_service: Option<String>,
    /// The input's own lines (lane 0).
    main: Lane,
    lanes: HashMap<u64, Lane>,
    /// Lanes (0 = main) with an open error record.
    holding: Vec<u64>,
    /// Records pushed so far.
    seq: u64,
    /// Whether the input's own lane counts for [`StreamState::holding`]
    /// even without other lanes (a Kafka partition, whose commits wait for
    /// open records).
    track_main: bool,
    sc: Scratch,
}

/// More container streams than this in one input is not a shipper's
/// output but noise; the lanes are then emptied (their records emitted).
const MAX_LANES: usize = 4096;

/// Buffers reused across lines.
#[derive(Debug)]
struct Scratch {
    ansi_buf: String,
    slots: Slots,
    env_slots: Slots,
    resources: ResourceCache,
}

#[derive(Debug)]
struct Lane {
    ctx: StreamCtx,
    text: text::TextState,
    /// Partial (`P`) pieces of a CRI line waiting for their final piece.
    partial: String,
    partial_line: u64,
    partial_overflow: bool,
    /// The input's record count when this lane last got a record.
    last_seq: u64,
    /// The open error record's first line and when it began.
    held: Option<(u64, Stamp)>,
}

/// When a record came, on both clocks it may carry: its own event time and
/// the transport's (a Kafka timestamp). The join limit compares like with
/// like only: a shipper catching up on a backlog sends month-old event
/// times with produce times of now, and a live one may lag by seconds.
#[derive(Clone, Copy, Debug, Default)]
struct Stamp {
    event: Option<EventTime>,
    transport: Option<EventTime>,
}

impl Stamp {
    /// Milliseconds from `since` to `self` on the event clock when both
    /// have it, else on the transport clock; `None` without a shared one.
    fn since(self, since: Stamp) -> Option<i64> {
        match (self.event, since.event) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
            _ => Some(self.transport?.saturating_sub(since.transport?)),
        }
    }
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
        let envelope = match cfg.input.envelopes {
            Envelopes::Auto => Some(EnvelopeMap::new(&cfg.fields)?),
            Envelopes::Off => None,
        };
        let markers: &[&str] = if envelope.is_some() {
            &ship::MARKERS
        } else {
            &[]
        };
        Ok(Parser {
            format,
            map: FieldMap::with_markers(&cfg.fields, markers)?,
            headers: text::Headers::new(&cfg.text.headers)?,
            version_from,
            min_level: cfg.input.min_level,
            logger_min: cfg.input.logger_min_level.clone(),
            reject_bad_timestamps: cfg.input.reject_bad_timestamps,
            max_line_bytes: cfg.input.max_line_bytes.min(u32::MAX as usize),
            infer_level: cfg.text.infer_level,
            default_service: cfg.text.default_service.clone(),
            envelope,
            join_max_records: cfg.input.join_max_records.max(1),
            join_max_millis: i64::try_from(cfg.input.join_max_millis).unwrap_or(i64::MAX),
            durations: cfg.signals.enabled.then(|| {
                duration::TextScanner::new(cfg.fields.duration.iter().map(String::as_str))
            }),
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
        let mut state = self.stream_state(default_service, last_time);
        state.track_main = false;
        LineParser {
            parser: self,
            state,
        }
    }

    /// The state of one stream without a borrow of the parser, for a
    /// caller that keeps many (one per Kafka partition) beside it; every
    /// call takes the parser again. [`LineParser`] is this plus the parser.
    pub fn stream_state(
        &self,
        default_service: Option<String>,
        last_time: Option<EventTime>,
    ) -> StreamState {
        StreamState {
            default_service: self.default_service.clone().or(default_service),
            main: Lane::new(self, last_time),
            lanes: HashMap::new(),
            holding: Vec::new(),
            seq: 0,
            track_main: true,
            sc: Scratch {
                ansi_buf: String::new(),
                slots: Slots::new(),
                env_slots: Slots::new(),
                resources: ResourceCache::default(),
            },
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
        self.parse_one_str(
            s,
            no_control,
            line,
            fallback_time,
            &Outer::default(),
            true,
            out,
        );
    }

    /// [`Parser::parse_one`] after the checks, once per wrapper: a shipper
    /// envelope or CRI line is unwrapped (`unwrap`) and its line parsed
    /// with what the wrapper says as defaults.
    #[allow(clippy::too_many_arguments)]
    fn parse_one_str(
        &self,
        s: &str,
        no_control: bool,
        line: u64,
        fallback_time: Option<EventTime>,
        outer: &Outer<'_>,
        unwrap: bool,
        out: &mut impl RecordSink,
    ) {
        let mut ctx = StreamCtx::seeded(fallback_time);
        let default_service = self.default_service.as_deref();
        let Some(first) = s.bytes().position(|c| !c.is_ascii_whitespace()) else {
            return out.bad(BadReason::Empty, line);
        };
        if unwrap
            && self.envelope.is_some()
            && let Some(u) = ship::cri(&s[first..])
        {
            // A lone message cannot be joined with its other pieces: a
            // partial piece is parsed as it is.
            let inner = u.inner.unwrap_or_default();
            let nc = !inner.bytes().any(|c| c < 0x20);
            return self.parse_one_str(&inner, nc, line, fallback_time, &u.outer, false, out);
        }
        let mut slots = Slots::new();
        match self.detect(&s[first..], &mut slots) {
            Detected::Json => {
                if json::scan(s, &self.map, &mut slots, no_control).is_err() {
                    return out.bad(BadReason::InvalidJson, line);
                }
                let mut env_slots = Slots::new();
                let mut resources = ResourceCache::default();
                let u = if unwrap {
                    self.unwrap_json(s, no_control, &slots, &mut env_slots, &mut resources)
                } else {
                    None
                };
                let outer = match u {
                    Some(Unwrapped {
                        inner: Some(inner),
                        outer,
                        ..
                    }) => {
                        let nc = !inner.bytes().any(|c| c < 0x20);
                        return self.parse_one_str(
                            &inner,
                            nc,
                            line,
                            fallback_time,
                            &outer,
                            false,
                            out,
                        );
                    }
                    Some(u) => u.outer,
                    None => outer.clone(),
                };
                let env = Env {
                    ctx: &mut ctx,
                    default_service,
                    missing_time: outer.time.or(fallback_time),
                    outer: &outer,
                };
                self.structured(s, &slots, line, env, out);
            }
            Detected::Logfmt => {
                let s = &s[first..];
                let env = Env {
                    ctx: &mut ctx,
                    default_service,
                    missing_time: outer.time.or(fallback_time),
                    outer,
                };
                self.structured(s, &slots, line, env, out);
            }
            Detected::Text => {
                if s.contains('\x1b') {
                    let mut buf = String::new();
                    text::strip_ansi(s, &mut buf);
                    text::parse_message(self, &buf, line, &mut ctx, outer, out);
                } else {
                    text::parse_message(self, s, line, &mut ctx, outer, out);
                }
            }
        }
    }

    /// The envelope of a scanned JSON line, when it has a marker key and
    /// lacks a level, service or version of its own (the only lines that
    /// pay for a second scan).
    fn unwrap_json<'a>(
        &self,
        s: &'a str,
        no_control: bool,
        slots: &Slots,
        env_slots: &mut Slots,
        resources: &mut ResourceCache,
    ) -> Option<Unwrapped<'a>> {
        let env = self.envelope.as_ref()?;
        if !self.map.has_marker(slots) {
            return None;
        }
        let own_level = self.map.get(slots, Field::Level).is_some();
        if own_level
            && self.map.get(slots, Field::Service).is_some()
            && self.map.get(slots, Field::Version).is_some()
        {
            return None;
        }
        ship::envelope(env, s, no_control, own_level, env_slots, resources)
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
        if self.envelope.is_some() && ship::cri(s).is_some() {
            // Partial pieces and traces of every container stream may be
            // open across any CRI line.
            return false;
        }
        match self.detect(s, &mut slots) {
            Detected::Json if self.envelope.is_some() => {
                // Envelopes carry many container streams; any of them may
                // hold an open record across this line.
                json::scan(s, &self.map, &mut slots, false).is_ok() && !self.map.has_marker(&slots)
            }
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
            outer,
        } = env;
        let map = &self.map;
        let level = map
            .get(slots, Field::Level)
            .and_then(|span| span.scalar(line))
            .and_then(|t| level_of(&t))
            .or(outer.level);
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
            service: service
                .as_deref()
                .or(outer.service.as_deref())
                .or(default_service),
            version: version.as_deref().or(outer.version.as_deref()),
            message: None,
            request: {
                // A duration field, else a phrase in the message (read in
                // place: escapes never sit inside `took 350ms`).
                let duration_ms = map.duration_ms(slots, line).or_else(|| {
                    let scan = self.durations.as_ref().filter(|_| prose_times(level))?;
                    scan.scan(map.get(slots, Field::Message)?.raw(line))
                });
                crate::record::RequestMeta {
                    duration_ms,
                    request: duration_ms.is_some() || map.is_request(slots),
                }
            },
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

    /// What a text message says about a request: a duration phrase
    /// (`took 350ms`) makes it one. Text has no request fields to read.
    pub(crate) fn request_in_text(
        &self,
        msg: &str,
        level: Option<Level>,
    ) -> crate::record::RequestMeta {
        let duration_ms = self
            .durations
            .as_ref()
            .filter(|_| prose_times(level))
            .and_then(|d| d.scan(msg));
        crate::record::RequestMeta {
            duration_ms,
            request: duration_ms.is_some(),
        }
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

/// Whether a duration phrase in this level's message times a request: a
/// line below WARN (`GET /cart completed in 46ms`, logged for every
/// request). A warning or error that names a duration (`slow request took
/// 3s`, `exceeding 2s budget`) is logged *because* the request was slow, so
/// neither its count nor its duration is a sample of the traffic. Duration
/// fields count at any level: an access log line is one per request.
fn prose_times(level: Option<Level>) -> bool {
    level.is_none_or(|l| l < Level::Warn)
}

/// What a structured line is parsed against besides itself.
struct Env<'e> {
    ctx: &'e mut StreamCtx,
    default_service: Option<&'e str>,
    /// Time for a record without one: the wrapper's, else `None` in
    /// streams (the caller decides), the transport's time in
    /// [`Parser::parse_one`].
    missing_time: Option<EventTime>,
    /// What a shipper envelope or CRI line says about the record.
    outer: &'e Outer<'e>,
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
        self.state.push(self.parser, line, line_no, None, out);
    }

    /// End of input: emit the pending multi-line records.
    pub fn finish(&mut self, out: &mut impl RecordSink) {
        self.state.finish(self.parser, out);
    }

    /// How this stream used and changed the carried time.
    pub fn carry(&self) -> Carry {
        let ctx = &self.state.main.ctx;
        Carry {
            last_time: ctx.last_time,
            own_time: ctx.own_time,
            seed_used: ctx.seed_used,
        }
    }
}

impl StreamState {
    /// One line or record of the input, without its terminator.
    /// `fallback_time` is the transport's time for a record without one
    /// (a Kafka timestamp; `None` for files).
    pub fn push(
        &mut self,
        p: &Parser,
        line: &[u8],
        line_no: u64,
        fallback_time: Option<EventTime>,
        out: &mut impl RecordSink,
    ) {
        let Checked { s, no_control } = match p.precheck(line) {
            Ok(c) => c,
            Err(reason) => return out.bad(reason, line_no),
        };
        if s.bytes().all(|c| c.is_ascii_whitespace()) {
            if p.format == Format::Json {
                out.bad(BadReason::Empty, line_no);
            }
            return;
        }
        self.seq += 1;
        // The record's own time is not read yet: only the transport's.
        let arrived = Stamp {
            event: None,
            transport: fallback_time,
        };
        if !self.holding.is_empty() {
            self.expire(p, arrived, out);
        }
        if p.envelope.is_some()
            && s.as_bytes()[0].is_ascii_digit()
            && let Some(u) = ship::cri(s)
        {
            return self.route(p, u, line_no, fallback_time, out);
        }
        let outer = Outer {
            time: fallback_time,
            ..Outer::default()
        };
        let ds = self.default_service.as_deref();
        let unwrap = p.envelope.is_some();
        match self.main.push_line(
            p,
            &mut self.sc,
            ds,
            s,
            no_control,
            line_no,
            &outer,
            unwrap,
            out,
        ) {
            Some(u) => self.route(p, u, line_no, fallback_time, out),
            // A file of plain lines has nothing to time out against: its
            // open record waits for the next header, as it always did.
            None if self.track_main || !self.lanes.is_empty() => self.track_at(0, arrived),
            None => {}
        }
    }

    /// A whole message (a Kafka value): like [`StreamState::push`], except
    /// that a value of several lines is one record already — its first line
    /// is pushed and every further line belongs to it, as
    /// [`Parser::parse_one`] reads it.
    pub fn push_message(
        &mut self,
        p: &Parser,
        value: &[u8],
        line_no: u64,
        fallback_time: Option<EventTime>,
        out: &mut impl RecordSink,
    ) {
        let first_byte = value.iter().position(|c| !c.is_ascii_whitespace());
        let Some(nl) = memchr::memchr(b'\n', value) else {
            return self.push(p, value, line_no, fallback_time, out);
        };
        if first_byte.is_some_and(|i| value[i] == b'{') {
            // A pretty-printed JSON object is still one line to the scanner.
            return self.push(p, value, line_no, fallback_time, out);
        }
        let Checked { s, .. } = match p.precheck(value) {
            Ok(c) => c,
            Err(reason) => return out.bad(reason, line_no),
        };
        let head = s[..nl].strip_suffix('\r').unwrap_or(&s[..nl]);
        let mut rest = s[nl + 1..].split('\n');
        if head.trim().is_empty() {
            // Leading blank lines: the first non-blank one starts the record.
            let Some(l) = rest.by_ref().find(|l| !l.trim().is_empty()) else {
                return out.bad(BadReason::Empty, line_no);
            };
            self.push(p, l.as_bytes(), line_no, fallback_time, out);
        } else {
            self.push(p, head.as_bytes(), line_no, fallback_time, out);
        }
        for l in rest {
            let l = l.strip_suffix('\r').unwrap_or(l);
            if !l.trim().is_empty() {
                self.main.text.append(p, l, l.starts_with("Traceback"));
            }
        }
    }

    /// Whether an error record is open that a later record may still
    /// continue, or a CRI line waits for its final piece.
    pub fn holding(&self) -> bool {
        !self.holding.is_empty() || self.lanes.values().any(|l| !l.partial.is_empty())
    }

    /// Emits every open record (end of input, idle, before a commit):
    /// parsing goes on afterwards, but a trace line arriving later starts
    /// nothing. A CRI line left without its final piece is parsed as it is.
    pub fn finish(&mut self, p: &Parser, out: &mut impl RecordSink) {
        let ds = self.default_service.as_deref();
        self.main.text.flush(out);
        self.main.held = None;
        for lane in self.lanes.values_mut() {
            lane.flush_partial(p, &mut self.sc, ds, out);
            lane.text.flush(out);
            lane.held = None;
        }
        self.holding.clear();
    }

    /// An unwrapped record into its lane.
    fn route(
        &mut self,
        p: &Parser,
        u: Unwrapped<'_>,
        line_no: u64,
        fallback_time: Option<EventTime>,
        out: &mut impl RecordSink,
    ) {
        let now = Stamp {
            event: u.outer.time,
            transport: fallback_time,
        };
        if !self.holding.is_empty() {
            self.expire(p, now, out);
        }
        let ds = self.default_service.as_deref();
        if u.lane != 0 && !self.lanes.contains_key(&u.lane) && self.lanes.len() >= MAX_LANES {
            for lane in self.lanes.values_mut() {
                lane.flush_partial(p, &mut self.sc, ds, out);
                lane.text.flush(out);
            }
            self.lanes.clear();
            self.holding.retain(|&k| k == 0);
        }
        let lane = match u.lane {
            0 => &mut self.main,
            k => self.lanes.entry(k).or_insert_with(|| Lane::new(p, None)),
        };
        lane.last_seq = self.seq;
        let inner = u.inner.unwrap_or_default();
        if u.partial {
            if lane.partial.is_empty() && !lane.partial_overflow {
                lane.partial_line = line_no;
            }
            if lane.partial.len() + inner.len() <= p.max_line_bytes {
                lane.partial.push_str(&inner);
            } else {
                lane.partial_overflow = true;
            }
            return;
        }
        let mut outer = u.outer;
        if outer.time.is_none() {
            outer.time = fallback_time;
        }
        if lane.partial_overflow {
            lane.partial.clear();
            lane.partial_overflow = false;
            out.bad(BadReason::TooLong, lane.partial_line);
        } else if !lane.partial.is_empty() {
            let mut joined = std::mem::take(&mut lane.partial);
            if joined.len() + inner.len() > p.max_line_bytes {
                out.bad(BadReason::TooLong, lane.partial_line);
            } else {
                joined.push_str(&inner);
                let at = lane.partial_line;
                lane.push_payload(p, &mut self.sc, ds, &joined, at, &outer, out);
            }
            joined.clear();
            lane.partial = joined;
        } else {
            lane.push_payload(p, &mut self.sc, ds, &inner, line_no, &outer, out);
        }
        self.track_at(u.lane, now);
    }

    /// Notes whether lane `id` holds an open error record after a record
    /// of it was parsed at `now` (an event time missing there is the one
    /// the lane's record was read at).
    fn track_at(&mut self, id: u64, now: Stamp) {
        let seq = self.seq;
        let lane = match id {
            0 => &mut self.main,
            k => match self.lanes.get_mut(&k) {
                Some(l) => l,
                None => return,
            },
        };
        lane.last_seq = seq;
        match lane.text.pending_error_line() {
            Some(first) => {
                if lane.held.is_none_or(|(l, _)| l != first) {
                    let since = Stamp {
                        event: now.event.or(lane.ctx.last_time),
                        ..now
                    };
                    let was = lane.held.replace((first, since)).is_some();
                    if !was && !self.holding.contains(&id) {
                        self.holding.push(id);
                    }
                }
            }
            None => {
                if lane.held.take().is_some() {
                    self.holding.retain(|&k| k != id);
                }
            }
        }
    }

    /// Emits the open records that have waited past the limits.
    fn expire(&mut self, p: &Parser, now: Stamp, out: &mut impl RecordSink) {
        let mut i = 0;
        while i < self.holding.len() {
            let id = self.holding[i];
            let lane = match id {
                0 => Some(&mut self.main),
                k => self.lanes.get_mut(&k),
            };
            let Some(lane) = lane else {
                self.holding.swap_remove(i);
                continue;
            };
            let by_count = self.seq.saturating_sub(lane.last_seq) > p.join_max_records;
            let by_time = lane
                .held
                .and_then(|(_, since)| now.since(since))
                .is_some_and(|waited| waited > p.join_max_millis);
            if by_count || by_time {
                lane.text.flush(out);
                lane.held = None;
                self.holding.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

impl Lane {
    fn new(p: &Parser, last_time: Option<EventTime>) -> Lane {
        Lane {
            ctx: StreamCtx::seeded(last_time),
            text: text::TextState::new(p),
            partial: String::new(),
            partial_line: 0,
            partial_overflow: false,
            last_seq: 0,
            held: None,
        }
    }

    /// A CRI line that never got its final piece: parsed as it is.
    fn flush_partial(
        &mut self,
        p: &Parser,
        sc: &mut Scratch,
        ds: Option<&str>,
        out: &mut impl RecordSink,
    ) {
        if self.partial_overflow {
            self.partial_overflow = false;
            self.partial.clear();
            return out.bad(BadReason::TooLong, self.partial_line);
        }
        if self.partial.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.partial);
        let at = self.partial_line;
        self.push_payload(p, sc, ds, &text, at, &Outer::default(), out);
    }

    /// The line a wrapper carried. Several lines in one (a shipper that
    /// joined them already) are one record: the first is pushed, the rest
    /// belong to it.
    #[allow(clippy::too_many_arguments)]
    fn push_payload(
        &mut self,
        p: &Parser,
        sc: &mut Scratch,
        ds: Option<&str>,
        text: &str,
        line_no: u64,
        outer: &Outer<'_>,
        out: &mut impl RecordSink,
    ) {
        let no_control = !text
            .as_bytes()
            .chunks(64)
            .any(|c| c.iter().fold(false, |acc, &b| acc | (b < 0x20)));
        if !no_control && looks_binary(text.as_bytes()) {
            return out.bad(BadReason::Binary, line_no);
        }
        let first = text.bytes().position(|c| !c.is_ascii_whitespace());
        let Some(first) = first else { return };
        if no_control || text.as_bytes()[first] == b'{' || !text.contains('\n') {
            self.push_line(p, sc, ds, text, no_control, line_no, outer, false, out);
            return;
        }
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty());
        if let Some(head) = lines.next() {
            self.push_line(p, sc, ds, head, false, line_no, outer, false, out);
        }
        for l in lines {
            self.text.append(p, l, l.starts_with("Traceback"));
        }
    }

    /// One line of this lane: the file reader's rules. With `unwrap`, a
    /// JSON line that turns out to be a shipper envelope with a line inside
    /// is handed back instead (for its own lane).
    #[allow(clippy::too_many_arguments)]
    fn push_line<'s>(
        &mut self,
        p: &Parser,
        sc: &mut Scratch,
        ds: Option<&str>,
        s: &'s str,
        no_control: bool,
        line_no: u64,
        outer: &Outer<'_>,
        unwrap: bool,
        out: &mut impl RecordSink,
    ) -> Option<Unwrapped<'s>> {
        let first = s.bytes().position(|c| !c.is_ascii_whitespace())?;
        let continues_text = first > 0 && p.format == Format::Auto && self.text.is_pending();
        let slots = &mut sc.slots;
        slots.clear();
        let detected = if continues_text {
            Detected::Text
        } else {
            p.detect(&s[first..], slots)
        };
        match detected {
            Detected::Json => {
                if json::scan(s, &p.map, slots, no_control).is_err() {
                    self.text.flush(out);
                    out.bad(BadReason::InvalidJson, line_no);
                    return None;
                }
                let u = if unwrap {
                    p.unwrap_json(s, no_control, slots, &mut sc.env_slots, &mut sc.resources)
                } else {
                    None
                };
                // A line for another lane leaves this one's open record be.
                if u.as_ref().is_some_and(|u| u.inner.is_some()) {
                    return u;
                }
                self.text.flush(out);
                // A record with a level of its own keeps it; the envelope
                // may still say its service, version and time.
                let (outer, missing_time) = match &u {
                    Some(u) => (&u.outer, u.outer.time.or(outer.time)),
                    None => (outer, outer.time),
                };
                let env = Env {
                    ctx: &mut self.ctx,
                    default_service: ds,
                    missing_time,
                    outer,
                };
                p.structured(s, slots, line_no, env, out);
            }
            Detected::Logfmt => {
                self.text.flush(out);
                // Spans are relative to the line from its first non-blank byte.
                let s = &s[first..];
                let env = Env {
                    ctx: &mut self.ctx,
                    default_service: ds,
                    missing_time: outer.time,
                    outer,
                };
                p.structured(s, slots, line_no, env, out);
            }
            Detected::Text => {
                if s.contains('\x1b') {
                    let mut buf = std::mem::take(&mut sc.ansi_buf);
                    text::strip_ansi(s, &mut buf);
                    if !buf.trim().is_empty() {
                        self.text
                            .push(p, &mut self.ctx, ds, &buf, line_no, outer, out);
                    }
                    sc.ansi_buf = buf;
                } else {
                    self.text.push(p, &mut self.ctx, ds, s, line_no, outer, out);
                }
            }
        }
        None
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

/// [`Level::parse`] plus three numeric schemes it does not know:
/// pino/bunyan (10 trace … 60 fatal), Monolog / RFC 5424-on-a-hundreds-scale
/// (100 debug … 600 emergency: Monolog writes it as `level` beside
/// `level_name`) and Apache's `trace1`…`trace8`. The schemes share no number.
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
        Ok(100) => return Some(Level::Debug),
        Ok(200) => return Some(Level::Info),
        Ok(250) => return Some(Level::Notice),
        Ok(300) => return Some(Level::Warn),
        Ok(400) => return Some(Level::Error),
        Ok(500 | 550 | 600) => return Some(Level::Fatal),
        _ => {}
    }
    let b = s.as_bytes();
    (b.len() == 6 && b[..5].eq_ignore_ascii_case(b"trace") && b[5].is_ascii_digit())
        .then_some(Level::Trace)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ship;
