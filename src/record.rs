//! The record every stage after parsing works on.
//!
//! A [`Record`] is what a parser makes of one log event (one JSON object, one
//! logfmt line, or one text line plus its continuation lines). It owns its
//! strings: multi-line records are assembled across reads, and error records
//! outlive the read buffer (they become samples). Non-error lines never reach
//! this type on the hot path — parsers report them through [`LineMeta`],
//! which borrows.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Event time in milliseconds since the Unix epoch (UTC).
pub type EventTime = i64;

/// Normalised severity. Ordered, so a minimum level is a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// Maps the many spellings found in the wild (log4j, syslog names and
    /// numbers, Python, Go, single letters) onto one scale. Unknown words give
    /// `None` so the caller can count the record as having no level instead of
    /// guessing.
    pub fn parse(s: &str) -> Option<Level> {
        let s = s.trim();
        if s.is_empty() || s.len() > 12 {
            return None;
        }
        let mut buf = [0u8; 12];
        for (i, b) in s.bytes().enumerate() {
            buf[i] = b.to_ascii_lowercase();
        }
        let lower = &buf[..s.len()];
        Some(match lower {
            b"trace" | b"verbose" | b"finest" | b"finer" | b"t" | b"7" => Level::Trace,
            b"debug" | b"dbg" | b"fine" | b"d" => Level::Debug,
            b"info" | b"information" | b"informational" | b"i" | b"config" | b"6" => Level::Info,
            b"notice" | b"n" | b"5" => Level::Notice,
            b"warn" | b"warning" | b"w" | b"4" => Level::Warn,
            b"error" | b"err" | b"e" | b"severe" | b"3" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"alert" | b"emerg" | b"emergency"
            | b"f" | b"c" | b"2" | b"1" | b"0" => Level::Fatal,
            _ => return None,
        })
    }

    /// Syslog severity number (RFC 5424: 0 emergency … 7 debug).
    pub fn from_syslog(severity: u8) -> Level {
        match severity {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 => Level::Notice,
            6 => Level::Info,
            _ => Level::Debug,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed log event (deserialized by scale-out's stage 2, `scale::wire`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Event time; `None` when the record carried none (the caller substitutes
    /// the previous record's time or the transport's timestamp).
    pub time: Option<EventTime>,
    pub level: Option<Level>,
    pub message: String,
    pub service: Option<String>,
    pub version: Option<String>,
    /// Exception class, when the record names one (`error.type`) or a stack
    /// trace reveals it.
    pub error_type: Option<String>,
    pub stack_trace: Option<String>,
    pub logger: Option<String>,
    pub host: Option<String>,
    /// 1-based number of the record's first line in its input.
    pub line: u64,
}

/// What every line contributes to rate counting, error or not: borrowed, so
/// the non-error path allocates nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineMeta<'a> {
    pub time: Option<EventTime>,
    pub level: Option<Level>,
    pub service: Option<&'a str>,
    pub version: Option<&'a str>,
    /// The message of a line that is not an error, for one line in
    /// [`TEACH_EVERY`] (see [`teaches`]): the learner learns which keys are
    /// parameters from it.
    pub message: Option<&'a str>,
    /// What the line says about a request it logs (duration, whether it is
    /// one): latency and traffic signals (`signals`).
    pub request: RequestMeta,
}

/// What a line says about the request it logs, if it logs one: read at
/// parse time from the configured duration and request fields (or a
/// `took 350ms` phrase in a text message), nothing allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RequestMeta {
    /// The request's duration in milliseconds (units parsed, see
    /// `parse::duration`); `None` when the line names none.
    pub duration_ms: Option<f64>,
    /// The line logs a request: a request field (status, method, a
    /// configured marker) or a duration is present.
    pub request: bool,
}

/// One non-error line in this many hands its message to the learner. A
/// key that takes many values in a service takes them in any sample of its
/// lines; reading every line's message and hashing its pairs cost a sixth
/// of replay speed.
pub const TEACH_EVERY: u64 = 8;

/// Whether line `line_no` hands its message to the learner.
pub fn teaches(line_no: u64) -> bool {
    line_no.is_multiple_of(TEACH_EVERY)
}

/// Why a line was skipped. Counted per reason; never fatal unless `--strict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    InvalidJson,
    InvalidUtf8,
    TooLong,
    Binary,
    MissingMessage,
    BadTimestamp,
    Empty,
}

impl BadReason {
    pub const ALL: [BadReason; 7] = [
        BadReason::InvalidJson,
        BadReason::InvalidUtf8,
        BadReason::TooLong,
        BadReason::Binary,
        BadReason::MissingMessage,
        BadReason::BadTimestamp,
        BadReason::Empty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidJson => "invalid_json",
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::TooLong => "too_long",
            BadReason::Binary => "binary",
            BadReason::MissingMessage => "missing_message",
            BadReason::BadTimestamp => "bad_timestamp",
            BadReason::Empty => "empty",
        }
    }
}

impl fmt::Display for BadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_spellings_from_the_wild_normalise() {
        for s in ["ERROR", "err", "E", "error", "SEVERE", "3"] {
            assert_eq!(Level::parse(s), Some(Level::Error), "{s}");
        }
        for s in ["FATAL", "CRITICAL", "CRIT", "PANIC", "ALERT", "EMERG"] {
            assert_eq!(Level::parse(s), Some(Level::Fatal), "{s}");
        }
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse("bogus"), None);
        assert!(Level::Warn < Level::Error);
    }
}
