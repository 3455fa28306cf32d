//! Parse: bytes of one input line in, records out (push model).
//!
//! INTERFACE (owned by the parse helper; the lead relies on exactly this):
//!
//! ```ignore
//! pub struct Parser { .. }                       // compiled config: field map, header regexes
//! impl Parser {
//!     pub fn new(cfg: &Config, format: Format) -> Result<Parser, ParseError>;
//!     /// Per-input state (multi-line joining, last timestamp, default service).
//!     pub fn stream(&self, default_service: Option<String>) -> LineParser<'_>;
//!     /// Parse one standalone message (a Kafka value): JSON, logfmt or text, no joining.
//!     pub fn parse_one(&self, bytes: &[u8], line: u64, fallback_time: Option<EventTime>, out: &mut impl RecordSink);
//! }
//! impl LineParser<'_> {
//!     /// `line` without its terminator (`\n` and a trailing `\r` stripped by the caller).
//!     pub fn push(&mut self, line: &[u8], line_no: u64, out: &mut impl RecordSink);
//!     /// End of input: emit the pending multi-line record.
//!     pub fn finish(&mut self, out: &mut impl RecordSink);
//! }
//! pub trait RecordSink {
//!     /// Every record, error or not, for rate counting.
//!     fn line(&mut self, meta: &LineMeta<'_>);
//!     /// Records at or above the minimum level, fully assembled.
//!     fn error(&mut self, record: Record);
//!     /// A skipped line, with its reason and 1-based line number.
//!     fn bad(&mut self, reason: BadReason, line_no: u64);
//! }
//! ```
