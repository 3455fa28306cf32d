//! Plain-text logs: header regexes, context tokens, multi-line records.
//!
//! A text log is a sequence of *header* lines (a timestamp, often a level,
//! sometimes a service) each followed by zero or more lines that belong to
//! it: stack frames, `Caused by:`, Python tracebacks, goroutine dumps. The
//! header is recognised by the first of an ordered list of anchored regexes
//! (one regex search per line that matches; anchoring makes the misses
//! cheap); everything else is decided by line shape in [`super::trace`]. A
//! record is counted when its header arrives (so rates never wait) and, if
//! it is an error, emitted once the next record begins or the input ends —
//! only then is its stack trace complete.
//!
//! Header patterns without a `msg` group take the rest of the line after the
//! match as the message; the built-in ones are written that way so the regex
//! engine only resolves captures over the header, not the whole line.

use std::borrow::Cow;

use regex::{CaptureLocations, Regex};

use super::fields::{Field, FieldMap};
use super::logfmt::{Token, Tokens};
use super::ship::Outer;
use super::trace::{self, Continuation};
use super::{ParseError, Parser, RecordSink, StreamCtx, level_of};
use crate::record::{BadReason, Level, LineMeta, Record};

const ISO: &str = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?";
const SLASH: &str = r"[0-9]{4}/[0-9]{2}/[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?";
const BSD: &str = r"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?";
const APACHE: &str =
    r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)? [0-9]{4}";
const CLOCK: &str = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?";
/// Level words accepted in free-standing positions. Single letters are left
/// out: as a bare word `E` or `I` is too likely to be text.
const LEVEL: &str = r"(?i:trace|debug|dbg|info|information|informational|notice|warn|warning|error|err|fatal|critical|crit|severe|panic|alert|emerg|emergency|fine|finer|finest|config)";

/// The built-in header patterns, most specific first: a generic pattern
/// early in the list would steal lines from the specific ones below it.
pub(crate) fn default_headers() -> Vec<String> {
    let (iso, slash, bsd, apache, clock) = (ISO, SLASH, BSD, APACHE, CLOCK);
    let ts = format!("(?:{iso}|{slash}|{bsd})");
    let bracket_ts = format!("(?:{apache}|{iso}|{slash})");
    let pri = r"(?:<(?P<pri>[0-9]{1,3})>)?";
    let lvl = format!(r"(?P<level>{LEVEL})(?-u:\b)");
    vec![
        // RFC 5424 syslog: <PRI>1 TS HOST APP PROCID MSGID [SD…] MSG
        r"^<(?P<pri>[0-9]{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<service>\S+) (?P<instance>\S+) \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: |$)".to_string(),
        // nginx: TS [level] pid#tid: *conn msg
        format!(r"^(?P<ts>{slash})\s+\[(?P<level>[a-z]+)\]\s+(?P<instance>[0-9]+#[0-9]+):\s+(?:\*[0-9]+\s+)?"),
        // Spring Boot: TS LEVEL PID --- [app] [thread] logger : msg
        format!(r"^(?P<ts>{iso})\s+{lvl}\s+(?P<instance>[0-9]+)\s+---\s+(?:\[[^\]]*\]\s*)+(?P<logger>\S+)\s*:(?:\s|$)"),
        // log4j: TS [LEVEL] logger - msg
        format!(r"^(?P<ts>{ts}|{clock})\s+\[\s*{lvl}\s*\]\s+(?P<logger>\S+)\s+-(?:\s|$)"),
        // logback: TS [thread] LEVEL logger - msg
        format!(r"^(?P<ts>{ts}|{clock})\s+\[[^\]]*\]\s+{lvl}\s+(?P<logger>\S+)\s+-(?:\s|$)"),
        // log4j: TS LEVEL [thread] logger - msg
        format!(r"^(?P<ts>{ts}|{clock})\s+{lvl}\s+\[[^\]]*\]\s+(?P<logger>\S+)\s+-(?:\s|$)"),
        // log4j without thread; the dotted logger keeps "x - y" messages out.
        format!(r"^(?P<ts>{ts})\s+{lvl}\s+(?P<logger>[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z0-9_$]+)+)\s+-(?:\s|$)"),
        // Python logging: TS - logger - LEVEL - msg
        format!(r"^(?P<ts>{ts})\s+-\s+(?P<logger>\S+)\s+-\s+{lvl}\s+-(?:\s|$)"),
        // TS LEVEL source[pid or pod] msg
        format!(r"^{pri}(?P<ts>{ts})\s+{lvl}\s+(?P<service>[A-Za-z0-9_.\-/]+)\[(?P<instance>[^\]]*)\]:?(?:\s|$)"),
        // Rust tracing: TS LEVEL crate::module: msg
        format!(r"^(?P<ts>{iso})\s+{lvl}\s+(?P<logger>[A-Za-z0-9_]+(?:::[A-Za-z0-9_]+)+):(?:\s|$)"),
        // TS LEVEL msg — also `[LEVEL]` and `LEVEL:`
        format!(r"^{pri}(?P<ts>{ts})\s+\[?{lvl}\]?:?(?:\s|$)"),
        // BSD syslog: TS host program[pid]: msg (pid optional)
        format!(r"^{pri}(?P<ts>{bsd})\s+(?P<host>[^\s\[\]]+)\s+(?P<service>[^\s\[\]:]+)(?:\[(?P<instance>[^\]]*)\])?:(?:\s|$)"),
        // Syslog with an ISO time: a pid (or a PRI) is required, or any
        // `TS word word: text` line would be read as host and program.
        format!(r"^{pri}(?P<ts>{iso})\s+(?P<host>[^\s\[\]]+)\s+(?P<service>[^\s\[\]:]+)\[(?P<instance>[^\]]*)\]:(?:\s|$)"),
        format!(r"^<(?P<pri>[0-9]{{1,3}})>(?P<ts>{iso})\s+(?P<host>[^\s\[\]]+)\s+(?P<service>[^\s\[\]:]+):(?:\s|$)"),
        // Apache / generic: [TS] [module:level] [pid N:tid M] [client …] msg
        format!(r"^\[(?P<ts>{bracket_ts})\]\s+\[(?:(?P<logger>[A-Za-z0-9_\-]+):)?(?P<level>[A-Za-z]+[0-9]?)\]\s+(?:\[pid\s+(?P<instance>[0-9]+)(?::tid\s+[0-9]+)?\]\s+)?(?:\[client\s+[^\]]*\]\s+)?"),
        // Rust env_logger: [TS LEVEL target] msg
        format!(r"^\[(?P<ts>{iso})\s+{lvl}\s+(?P<logger>[^\]\s]+)\]\s"),
        // [TS] LEVEL msg
        format!(r"^\[(?P<ts>{bracket_ts})\]\s+\[?{lvl}\]?:?(?:\s|$)"),
        // klog / glog: Lmmdd hh:mm:ss.uuuuuu tid file:line] msg
        r"^(?P<level>[IWEF])(?P<ts>[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)\s+(?P<instance>[0-9]+)\s+(?P<logger>[^\]\s]+)\]\s".to_string(),
        // Python's basicConfig default: LEVEL:logger:msg
        r"^(?P<level>CRITICAL|ERROR|WARNING|INFO|DEBUG):(?P<logger>[^:\s]*):".to_string(),
        // A timestamp and nothing else we know: level inferred from the text.
        format!(r"^{pri}(?P<ts>{ts})\s"),
        format!(r"^\[(?P<ts>{bracket_ts})\]\s"),
        r"^<(?P<pri>[0-9]{1,3})>".to_string(),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct Groups {
    ts: Option<usize>,
    level: Option<usize>,
    pri: Option<usize>,
    service: Option<usize>,
    instance: Option<usize>,
    host: Option<usize>,
    logger: Option<usize>,
    msg: Option<usize>,
}

#[derive(Debug)]
struct Header {
    re: Regex,
    groups: Groups,
}

/// The compiled header patterns.
#[derive(Debug)]
pub(crate) struct Headers {
    list: Vec<Header>,
}

/// What a header regex found. Empty groups and syslog's `-` nil are `None`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeaderMatch<'a> {
    pub ts: Option<&'a str>,
    pub level: Option<&'a str>,
    pub pri: Option<&'a str>,
    pub service: Option<&'a str>,
    pub instance: Option<&'a str>,
    pub host: Option<&'a str>,
    pub logger: Option<&'a str>,
    pub msg: &'a str,
}

impl Headers {
    pub fn new(patterns: &[String]) -> Result<Headers, ParseError> {
        let defaults;
        let patterns = if patterns.is_empty() {
            defaults = default_headers();
            &defaults[..]
        } else {
            patterns
        };
        let mut list = Vec::with_capacity(patterns.len());
        for (index, p) in patterns.iter().enumerate() {
            let re = Regex::new(p).map_err(|source| ParseError::HeaderRegex {
                index,
                pattern: p.clone(),
                source: Box::new(source),
            })?;
            let mut groups = Groups::default();
            for (i, name) in re.capture_names().enumerate() {
                let slot = match name {
                    Some("ts") => &mut groups.ts,
                    Some("level") => &mut groups.level,
                    Some("pri") => &mut groups.pri,
                    Some("service") => &mut groups.service,
                    Some("instance") => &mut groups.instance,
                    Some("host") => &mut groups.host,
                    Some("logger") => &mut groups.logger,
                    Some("msg") => &mut groups.msg,
                    _ => continue,
                };
                *slot = Some(i);
            }
            list.push(Header { re, groups });
        }
        Ok(Headers { list })
    }

    /// Capture buffers, one per pattern, reused across lines.
    pub fn locations(&self) -> Vec<CaptureLocations> {
        self.list.iter().map(|h| h.re.capture_locations()).collect()
    }

    /// Whether any pattern matches (what [`Headers::find`] would find,
    /// without capture buffers).
    pub fn matches(&self, line: &str) -> bool {
        self.list.iter().any(|h| h.re.is_match(line))
    }

    /// The first pattern that matches, in configured order.
    pub fn find<'a>(
        &self,
        line: &'a str,
        locs: &mut [CaptureLocations],
    ) -> Option<HeaderMatch<'a>> {
        for (h, loc) in self.list.iter().zip(locs.iter_mut()) {
            let Some(m) = h.re.captures_read(loc, line) else {
                continue;
            };
            let get = |g: Option<usize>| {
                let (s, e) = loc.get(g?)?;
                let v = line[s..e].trim();
                (!v.is_empty() && v != "-").then_some(v)
            };
            let msg = match h.groups.msg {
                Some(g) => loc.get(g).map_or("", |(s, e)| &line[s..e]),
                None => &line[m.end()..],
            };
            return Some(HeaderMatch {
                ts: get(h.groups.ts),
                level: get(h.groups.level),
                pri: get(h.groups.pri),
                service: get(h.groups.service),
                instance: get(h.groups.instance),
                host: get(h.groups.host),
                logger: get(h.groups.logger),
                msg: msg.trim(),
            });
        }
        None
    }
}

/// `key=value` tokens between header and message: tracing context, plus
/// the service and version when the application names them there.
#[derive(Debug, Default)]
pub(crate) struct Context<'a> {
    pub service: Option<Cow<'a, str>>,
    pub version: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
    pub version_source: Option<Cow<'a, str>>,
}

/// Splits leading `key=value` tokens off `msg`. If nothing but pairs
/// remains, the message is a `msg=` pair when there is one, else the whole
/// text (a line of only pairs has no better summary).
pub(crate) fn split_context<'a>(
    msg: &'a str,
    map: &FieldMap,
    vf_field: Option<&str>,
) -> (&'a str, Context<'a>) {
    let mut ctx = Context::default();
    if !starts_with_pair(msg) {
        return (msg, ctx);
    }
    let b = msg.as_bytes();
    let mut toks = Tokens::new(msg);
    let rest_at = loop {
        let start = toks.next_start();
        match toks.next() {
            Some(Token::Pair { key, value }) if is_context_key(&b[key.0..key.1]) => {
                let key = &b[key.0..key.1];
                let text = || value.scalar(msg).filter(|v| !v.is_empty());
                if vf_field.is_some_and(|f| f.as_bytes() == key) {
                    ctx.version_source = text();
                }
                if let Some(path) = map.flat(key) {
                    if ctx.service.is_none() && map.is_candidate(Field::Service, path) {
                        ctx.service = text();
                    } else if ctx.version.is_none() && map.is_candidate(Field::Version, path) {
                        ctx.version = text();
                    } else if ctx.message.is_none() && map.is_candidate(Field::Message, path) {
                        ctx.message = text();
                    }
                }
            }
            _ => break start,
        }
    };
    let rest = msg[rest_at.min(msg.len())..].trim();
    if !rest.is_empty() {
        return (rest, ctx);
    }
    match ctx.message.take() {
        Some(Cow::Borrowed(m)) => (m, ctx),
        Some(Cow::Owned(m)) => {
            // Rare (an escaped quoted message and nothing else); keep the
            // decoded text via the context so the caller still sees it.
            ctx.message = Some(Cow::Owned(m));
            ("", ctx)
        }
        None => (msg, ctx),
    }
}

fn starts_with_pair(msg: &str) -> bool {
    let key_len = msg.bytes().take_while(|&c| is_key_byte(c)).count();
    key_len > 0 && msg.as_bytes().get(key_len) == Some(&b'=')
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'@')
}

fn is_context_key(key: &[u8]) -> bool {
    key.first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && key.iter().all(|&c| is_key_byte(c))
}

/// The multi-line state of one text input.
#[derive(Debug)]
pub(crate) struct TextState {
    pending: Pending,
    locs: Vec<CaptureLocations>,
}

#[derive(Debug)]
enum Pending {
    None,
    /// The record's first line was rejected; its continuation lines go with it.
    Skip {
        trace: TraceState,
    },
    /// A counted non-error record: continuation lines are only swallowed.
    Quiet {
        level: Option<Level>,
        trace: TraceState,
    },
    Error {
        rec: Box<Record>,
        trace: TraceState,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct TraceState {
    /// Header-less lines now join this record.
    in_trace: bool,
    /// Inside a Python traceback: its first unindented line ends it.
    python: bool,
}

impl TextState {
    pub fn new(parser: &Parser) -> TextState {
        TextState {
            pending: Pending::None,
            locs: parser.headers.locations(),
        }
    }

    pub fn is_pending(&self) -> bool {
        !matches!(self.pending, Pending::None)
    }

    /// The first line of the open error record, if one is waiting for more
    /// of its trace.
    pub fn pending_error_line(&self) -> Option<u64> {
        match &self.pending {
            Pending::Error { rec, .. } => Some(rec.line),
            _ => None,
        }
    }

    /// One text line of a stream (not blank, already checked for junk).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        p: &Parser,
        ctx: &mut StreamCtx,
        default_service: Option<&str>,
        line: &str,
        line_no: u64,
        outer: &Outer<'_>,
        out: &mut impl RecordSink,
    ) {
        if let Some(c) = trace::continuation(line) {
            // A bare `Traceback` after an info line is an uncaught Python
            // exception, not that line's detail: it begins its own record.
            if c != Continuation::Traceback || self.joins_traceback() {
                self.append(p, line, c == Continuation::Traceback);
                return;
            }
            self.flush(out);
            self.begin_own(p, ctx, default_service, line, line_no, outer, out);
            return;
        }
        let header = p.headers.find(line, &mut self.locs);
        if header.is_none() && !trace::is_panic(line) {
            if self.pending_in_trace() {
                self.append(p, line, false);
                self.end_python_trace();
                return;
            }
            if self.is_pending() && trace::starts_with_exception(line) {
                // log4j/logback print the exception class on the line after
                // the header, unindented: that line opens the trace.
                self.append(p, line, false);
                return;
            }
        }
        self.flush(out);
        match header {
            Some(h) => self.begin_header(p, ctx, default_service, h, line_no, outer, out),
            None => self.begin_own(p, ctx, default_service, line, line_no, outer, out),
        }
    }

    /// Starts a record from its first line, whatever that line is.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &mut self,
        p: &Parser,
        ctx: &mut StreamCtx,
        default_service: Option<&str>,
        line: &str,
        line_no: u64,
        outer: &Outer<'_>,
        out: &mut impl RecordSink,
    ) {
        match p.headers.find(line, &mut self.locs) {
            Some(h) => self.begin_header(p, ctx, default_service, h, line_no, outer, out),
            None => self.begin_own(p, ctx, default_service, line, line_no, outer, out),
        }
    }

    /// A header-less first line: a crash line, a bare traceback, or a line
    /// of its own that takes the previous record's time.
    #[allow(clippy::too_many_arguments)]
    fn begin_own(
        &mut self,
        p: &Parser,
        ctx: &mut StreamCtx,
        default_service: Option<&str>,
        line: &str,
        line_no: u64,
        outer: &Outer<'_>,
        out: &mut impl RecordSink,
    ) {
        let message = line.trim();
        let (level, trace) = if trace::is_panic(message) {
            (
                Level::Fatal,
                TraceState {
                    in_trace: true,
                    python: false,
                },
            )
        } else if message.starts_with("Traceback") {
            (
                Level::Error,
                TraceState {
                    in_trace: true,
                    python: true,
                },
            )
        } else {
            let level = outer.level.unwrap_or_else(|| p.infer(message));
            (level, TraceState::default())
        };
        let time = match outer.time {
            Some(t) => {
                ctx.set_last_time(t);
                Some(t)
            }
            None => ctx.last_time(),
        };
        let service = outer.service.as_deref().or(default_service);
        let version = outer.version.as_deref();
        out.line(&LineMeta {
            time,
            level: Some(level),
            service,
            version,
            message: crate::record::teaches(line_no).then_some(message),
            request: p.request_in_text(message, Some(level)),
        });
        self.pending = if p.is_error(Some(level), None) {
            Pending::Error {
                rec: Box::new(Record {
                    time,
                    level: Some(level),
                    message: message.to_string(),
                    service: service.map(str::to_string),
                    version: version.map(str::to_string),
                    line: line_no,
                    ..Record::default()
                }),
                trace,
            }
        } else {
            Pending::Quiet {
                level: Some(level),
                trace,
            }
        };
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_header(
        &mut self,
        p: &Parser,
        ctx: &mut StreamCtx,
        default_service: Option<&str>,
        h: HeaderMatch<'_>,
        line_no: u64,
        outer: &Outer<'_>,
        out: &mut impl RecordSink,
    ) {
        let vf_field = p.version_from.as_ref().map(|v| v.field.as_str());
        let (msg, kv) = split_context(h.msg, &p.map, vf_field);
        let msg = match (&kv.message, msg.is_empty()) {
            (Some(m), true) => m.as_ref(),
            _ => msg,
        };
        let level = h
            .level
            .and_then(level_of)
            .or_else(|| {
                h.pri
                    .and_then(|s| s.parse::<u16>().ok())
                    .map(|n| Level::from_syslog((n % 8) as u8))
            })
            .or(outer.level)
            .unwrap_or_else(|| p.infer(msg));
        let time = match h.ts {
            None if outer.time.is_some() => outer.time,
            None => ctx.last_time(),
            Some(ts) => match super::time::parse_text_with(ts, || ctx.last_time()) {
                Some(t) => Some(t),
                None if p.reject_bad_timestamps => {
                    out.bad(BadReason::BadTimestamp, line_no);
                    self.pending = Pending::Skip {
                        trace: TraceState::default(),
                    };
                    return;
                }
                None => ctx.last_time(),
            },
        };
        let service: Option<&str> = h
            .service
            .or(kv.service.as_deref())
            .or(outer.service.as_deref())
            .or(default_service);
        let version = match kv.version {
            Some(v) => Some(v),
            None => {
                let source = match vf_field {
                    Some("instance") => h.instance.map(Cow::Borrowed),
                    Some("host") => h.host.map(Cow::Borrowed),
                    Some("service") => service.map(Cow::Borrowed),
                    Some("logger") => h.logger.map(Cow::Borrowed),
                    _ => kv.version_source,
                };
                source
                    .and_then(|s| p.derive_version(s, &mut ctx.vf_cache))
                    .or_else(|| outer.version.as_deref().map(Cow::Borrowed))
            }
        };
        let error = p.is_error(Some(level), h.logger);
        out.line(&LineMeta {
            time,
            level: Some(level),
            service,
            version: version.as_deref(),
            message: crate::record::teaches(line_no).then_some(msg),
            request: p.request_in_text(h.msg, Some(level)),
        });
        if let Some(t) = time {
            ctx.set_last_time(t);
        }
        let in_trace = trace::is_panic(msg);
        let trace = TraceState {
            in_trace,
            python: false,
        };
        self.pending = if error {
            Pending::Error {
                rec: Box::new(Record {
                    time,
                    level: Some(level),
                    message: msg.to_string(),
                    service: service.map(str::to_string),
                    version: version.map(Cow::into_owned),
                    error_type: None,
                    stack_trace: None,
                    logger: h.logger.map(str::to_string),
                    host: h.host.map(str::to_string),
                    line: line_no,
                }),
                trace,
            }
        } else {
            Pending::Quiet {
                level: Some(level),
                trace,
            }
        };
    }

    fn joins_traceback(&self) -> bool {
        match &self.pending {
            Pending::Error { .. } | Pending::Skip { .. } => true,
            // `logger.warning(..., exc_info=True)` attaches a traceback too.
            Pending::Quiet { level, .. } => level.is_some_and(|l| l >= Level::Warn),
            Pending::None => false,
        }
    }

    fn pending_in_trace(&self) -> bool {
        match &self.pending {
            Pending::Quiet { trace, .. }
            | Pending::Error { trace, .. }
            | Pending::Skip { trace } => trace.in_trace,
            Pending::None => false,
        }
    }

    /// After a Python traceback's final unindented line the record is
    /// complete in substance; later header-less lines are their own.
    fn end_python_trace(&mut self) {
        if let Pending::Quiet { trace, .. } | Pending::Error { trace, .. } | Pending::Skip { trace } =
            &mut self.pending
            && trace.python
        {
            *trace = TraceState::default();
        }
    }

    /// Adds a line to the pending record's trace. Lines with no record to
    /// join (input starting mid-trace) are dropped: they count for nothing.
    pub fn append(&mut self, p: &Parser, line: &str, traceback: bool) {
        match &mut self.pending {
            Pending::None => {}
            Pending::Quiet { trace, .. } | Pending::Skip { trace } => {
                trace.in_trace = true;
                trace.python |= traceback;
            }
            Pending::Error { rec, trace } => {
                trace.in_trace = true;
                trace.python |= traceback;
                let st = rec.stack_trace.get_or_insert_with(String::new);
                // A runaway dump (thousands of goroutines) must not grow
                // without bound; the top of a trace is what identifies it.
                if st.len() + line.len() < p.max_line_bytes {
                    if !st.is_empty() {
                        st.push('\n');
                    }
                    st.push_str(line);
                }
            }
        }
    }

    /// Emits the pending record if it is an error, completing its type and
    /// (for a bare Python traceback) its message from the trace.
    pub fn flush(&mut self, out: &mut impl RecordSink) {
        if let Pending::Error { mut rec, .. } = std::mem::replace(&mut self.pending, Pending::None)
        {
            complete(&mut rec);
            out.error(*rec);
        }
    }
}

/// Final touches once a record's lines are all in.
pub(crate) fn complete(rec: &mut Record) {
    // `ERROR` alone on the header line, the exception on the next: the
    // exception line is the only message there is.
    if rec.message.trim().is_empty()
        && let Some(first) = rec
            .stack_trace
            .as_deref()
            .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
    {
        rec.message = first.trim().to_string();
    }
    if rec.error_type.is_none() {
        rec.error_type = trace::infer_error_type(&rec.message, rec.stack_trace.as_deref());
    }
    if rec.message.starts_with("Traceback")
        && let Some(last) = rec
            .stack_trace
            .as_deref()
            .and_then(trace::python_final_line)
    {
        rec.message = last.to_string();
    }
}

/// A standalone text message (a Kafka value): the first line starts the
/// record and every other line belongs to it, whatever its shape.
pub(crate) fn parse_message(
    p: &Parser,
    value: &str,
    line_no: u64,
    ctx: &mut StreamCtx,
    outer: &Outer<'_>,
    out: &mut impl RecordSink,
) {
    let mut state = TextState::new(p);
    let mut lines = value
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.trim().is_empty());
    let Some(first) = lines.next() else {
        out.bad(BadReason::Empty, line_no);
        return;
    };
    state.begin(
        p,
        ctx,
        p.default_service.as_deref(),
        first,
        line_no,
        outer,
        out,
    );
    for l in lines.filter(|l| !l.trim().is_empty()) {
        state.append(p, l, l.starts_with("Traceback"));
    }
    state.flush(out);
}

/// Removes ANSI colour sequences (`ESC [ … letter`): coloured console logs
/// would otherwise match no header.
pub(crate) fn strip_ansi(line: &str, out: &mut String) {
    out.clear();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
}
