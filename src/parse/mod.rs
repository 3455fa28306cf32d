//! TEMPORARY stub of the parse stage, replaced by the real one.
use crate::config::{Config, Format};
use crate::record::{BadReason, EventTime, Level, LineMeta, Record};

#[derive(Debug, thiserror::Error)]
#[error("parse config: {0}")]
pub struct ParseError(String);

pub trait RecordSink {
    fn line(&mut self, meta: &LineMeta<'_>);
    fn error(&mut self, record: Record);
    fn bad(&mut self, reason: BadReason, line_no: u64);
}

pub struct Parser {
    min: Level,
}

pub struct LineParser<'p> {
    p: &'p Parser,
    svc: Option<String>,
}

impl Parser {
    pub fn new(cfg: &Config, _format: Format) -> Result<Parser, ParseError> {
        Ok(Parser { min: cfg.input.min_level })
    }
    pub fn stream(&self, default_service: Option<String>) -> LineParser<'_> {
        LineParser { p: self, svc: default_service }
    }
    pub fn parse_one(&self, bytes: &[u8], line: u64, _fallback_time: Option<EventTime>, out: &mut impl RecordSink) {
        self.stream(None).push(bytes, line, out)
    }
}

impl LineParser<'_> {
    pub fn push(&mut self, line: &[u8], line_no: u64, out: &mut impl RecordSink) {
        let Ok(s) = std::str::from_utf8(line) else { out.bad(BadReason::InvalidUtf8, line_no); return; };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(s) else { out.bad(BadReason::InvalidJson, line_no); return; };
        let g = |k: &str| v.get(k).and_then(|x| x.as_str()).map(|x| x.to_string());
        let level = g("log.level").and_then(|l| Level::parse(&l));
        let time = g("@timestamp").and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()).map(|d| d.timestamp_millis());
        let service = g("service.name").or(self.svc.clone());
        out.line(&LineMeta { time, level, service: service.as_deref(), version: None });
        if level.is_some_and(|l| l >= self.p.min) {
            out.error(Record { time, level, message: g("message").unwrap_or_default(), service, version: g("service.version"), line: line_no, ..Record::default() });
        }
    }
    pub fn finish(&mut self, _out: &mut impl RecordSink) {}
}
