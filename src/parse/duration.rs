//! Durations in log records: a request's latency, read at parse time.
//!
//! Three shapes are found in the wild, and all three are read here without
//! allocation:
//!
//! * a number in a field whose unit the field's name or the configuration
//!   says (`event.duration` is nanoseconds in ECS, `duration_ms`
//!   milliseconds, `request_time` seconds in nginx);
//! * a string with its unit (`"350ms"`, `"1.5s"`, Go's `"1m2.5s"`,
//!   `"250µs"`);
//! * a phrase in a text message: a duration word (`took`, `elapsed`,
//!   `latency`, `duration`, or a configured field name) followed by a number
//!   *with* a unit (`took 350ms`, `latency=12.5 ms`, `elapsed: 2s`). A bare
//!   number after a word is not read: without a unit it could as well be a
//!   count, and a wrong latency is worse than none.
//!
//! Values that are negative, not finite, or longer than a week are refused:
//! they are not request durations, and one of them would own a p99.

use aho_corasick::{AhoCorasick, MatchKind};

/// The longest duration taken as a request's, in milliseconds (a week).
pub const MAX_MS: f64 = 7.0 * 24.0 * 3_600_000.0;

/// A time unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Ns,
    Us,
    Ms,
    S,
    Min,
    H,
}

impl From<crate::config::TimeUnit> for Unit {
    fn from(u: crate::config::TimeUnit) -> Unit {
        use crate::config::TimeUnit as T;
        match u {
            T::Ns => Unit::Ns,
            T::Us => Unit::Us,
            T::Ms => Unit::Ms,
            T::S => Unit::S,
        }
    }
}

impl Unit {
    /// Milliseconds per unit.
    pub fn ms(self) -> f64 {
        match self {
            Unit::Ns => 1e-6,
            Unit::Us => 1e-3,
            Unit::Ms => 1.0,
            Unit::S => 1e3,
            Unit::Min => 60e3,
            Unit::H => 3_600e3,
        }
    }

    /// A unit as written after a number (`ms`, `µs`, `sec`, …).
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "ns" | "nanos" | "nanoseconds" => Unit::Ns,
            "us" | "µs" | "μs" | "micros" | "microseconds" => Unit::Us,
            "ms" | "msec" | "msecs" | "millis" | "milliseconds" => Unit::Ms,
            "s" | "sec" | "secs" | "second" | "seconds" => Unit::S,
            "m" | "min" | "mins" | "minute" | "minutes" => Unit::Min,
            "h" | "hr" | "hour" | "hours" => Unit::H,
            _ => return None,
        })
    }

    /// The unit a field's name says by its suffix (`duration_ms`,
    /// `elapsedMillis`, `latency_seconds`), if any.
    pub fn of_name(name: &str) -> Option<Unit> {
        let lower = name.to_ascii_lowercase();
        let suffixes: [(&str, Unit); 14] = [
            ("_ns", Unit::Ns),
            ("nanos", Unit::Ns),
            ("_us", Unit::Us),
            ("micros", Unit::Us),
            ("_ms", Unit::Ms),
            ("millis", Unit::Ms),
            ("_msec", Unit::Ms),
            ("_sec", Unit::S),
            ("_secs", Unit::S),
            ("_seconds", Unit::S),
            ("_s", Unit::S),
            ("seconds", Unit::S),
            ("_minutes", Unit::Min),
            ("_min", Unit::Min),
        ];
        suffixes
            .iter()
            .find(|(suffix, _)| lower.ends_with(suffix))
            .map(|&(_, u)| u)
    }
}

/// A duration in milliseconds within the accepted range, else `None`.
fn bounded(ms: f64) -> Option<f64> {
    (ms.is_finite() && (0.0..=MAX_MS).contains(&ms)).then_some(ms)
}

/// Reads an unsigned decimal number at the start of `b`: its value and
/// length. No exponent: durations are not written that way, and `1e3ms`
/// is rarer than an `e` that begins a word after a number.
fn number(b: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_end = i;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if int_end == 0 || i > 40 {
        return None;
    }
    // ASCII digits and a dot: valid UTF-8, and a valid float.
    let s = std::str::from_utf8(&b[..i]).ok()?;
    Some((s.trim_end_matches('.').parse().ok()?, i))
}

/// The unit word at the start of `b` (letters and `µ`), and its length.
fn unit_word(b: &[u8]) -> Option<(Unit, usize)> {
    let mut i = 0;
    while i < b.len() && i < 16 {
        let c = b[i];
        if c.is_ascii_alphabetic() {
            i += 1;
        } else if c == 0xC2 && b.get(i + 1) == Some(&0xB5)
            || c == 0xCE && b.get(i + 1) == Some(&0xBC)
        {
            i += 2; // µ (micro sign) or μ (Greek mu)
        } else {
            break;
        }
    }
    let word = std::str::from_utf8(&b[..i]).ok()?;
    Unit::parse(word).map(|u| (u, i))
}

/// A duration written as a string: `350ms`, `1.5 s`, `1m2.5s`, `250µs`, or
/// a bare number in `default` units. `None` for anything else.
pub fn text_ms(s: &str, default: Unit) -> Option<f64> {
    let b = s.trim().as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut i = 0;
    let mut parts = 0;
    while i < b.len() {
        let (v, n) = number(&b[i..])?;
        i += n;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            if parts > 0 {
                return None; // `1m30`: a unit missing after a compound
            }
            return bounded(v * default.ms());
        }
        let (u, n) = unit_word(&b[i..])?;
        i += n;
        total += v * u.ms();
        parts += 1;
        if parts > 4 {
            return None;
        }
    }
    bounded(total)
}

/// A number read from a field, in `unit`.
pub fn number_ms(v: f64, unit: Unit) -> Option<f64> {
    bounded(v * unit.ms())
}

/// Finds `took 350ms`-like phrases in text messages: one pass of an
/// Aho-Corasick automaton over the message for all words at once (a
/// search per word cost a fifth of replay speed on JSON lines).
#[derive(Debug)]
pub struct TextScanner {
    words: AhoCorasick,
    /// Per word: its length and the unit its name says (`duration_ms=35`).
    named: Vec<(usize, Option<Unit>)>,
}

/// Words that introduce a request's duration in prose, in any language of
/// logging libraries we know of; configured field names are added.
pub const WORDS: [&str; 6] = [
    "took",
    "elapsed",
    "latency",
    "duration",
    "response time",
    "completed in",
];

impl TextScanner {
    /// A scanner for `WORDS` and `extra` (field names, e.g. `duration_ms`).
    pub fn new<'a>(extra: impl IntoIterator<Item = &'a str>) -> TextScanner {
        let mut words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
        for w in extra {
            // Dotted names are paths in structured records, never prose.
            if !w.is_empty() && !w.contains('.') && !words.iter().any(|x| x == w) {
                words.push(w.to_string());
            }
        }
        // Longest first among words that share a start (`duration_ms`
        // before `duration`), so the named unit is seen.
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&words);
        TextScanner {
            // Plain words: building cannot fail below the automaton's size
            // limits; a scanner that finds nothing is the safe fallback.
            words: automaton.unwrap_or_else(|_| {
                AhoCorasick::new([] as [&str; 0]).expect("an empty automaton builds")
            }),
            named: words.iter().map(|w| (w.len(), Unit::of_name(w))).collect(),
        }
    }

    /// The first duration phrase in `msg`, in milliseconds: a word, then at
    /// most a few separators (`=`, `:`, blanks, quotes, `of`/`in`), then a
    /// number with a unit. Bounded: one pass over the line, and at most
    /// eight word occurrences are tried.
    pub fn scan(&self, msg: &str) -> Option<f64> {
        let b = msg.as_bytes();
        for m in self.words.find_iter(b).take(8) {
            let (at, (wl, named)) = (m.start(), self.named[m.pattern().as_usize()]);
            // A word, not a part of one (`overtook`, `latency_budget`).
            if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
                continue;
            }
            let mut i = at + wl;
            if b.get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                continue;
            }
            let mut seps = 0;
            while i < b.len() && matches!(b[i], b' ' | b'=' | b':' | b'"' | b'\'' | b'\t') {
                i += 1;
                seps += 1;
            }
            if seps > 3 {
                continue;
            }
            for filler in [&b"in "[..], b"of "] {
                if b[i..].starts_with(filler) {
                    i += filler.len();
                }
            }
            let Some((v, n)) = number(&b[i..]) else {
                continue;
            };
            let num_end = i + n;
            let mut j = num_end;
            if b.get(j) == Some(&b' ') {
                j += 1;
            }
            let (u, end) = match (unit_word(&b[j..]), named) {
                (Some((u, n)), _) => (u, j + n),
                (None, Some(u)) => (u, num_end),
                (None, None) => continue,
            };
            // The unit must end the word: `5 seconds`, not `5 sessions`.
            if b.get(end).is_some_and(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            if let Some(ms) = bounded(v * u.ms()) {
                return Some(ms);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9 * b.max(1.0))
    }

    #[test]
    fn strings_with_units_are_read_in_their_unit() {
        assert!(close(text_ms("350ms", Unit::S), 350.0));
        assert!(close(text_ms("1.5s", Unit::Ms), 1500.0));
        assert!(close(text_ms("1m2.5s", Unit::Ms), 62_500.0));
        assert!(close(text_ms("250µs", Unit::Ms), 0.25));
        assert!(close(text_ms("250 us", Unit::Ms), 0.25));
        assert!(close(text_ms("42", Unit::Ms), 42.0));
        assert!(close(text_ms("0.35", Unit::S), 350.0));
    }

    #[test]
    fn strings_that_are_not_durations_are_refused() {
        for s in ["", "fast", "12 apples", "1m30", "-5ms", "3.2.1", "ms"] {
            assert_eq!(text_ms(s, Unit::Ms), None, "{s}");
        }
        assert_eq!(text_ms("9999h", Unit::Ms), None, "beyond a week");
    }

    #[test]
    fn field_names_say_their_unit_by_suffix() {
        assert_eq!(Unit::of_name("duration_ms"), Some(Unit::Ms));
        assert_eq!(Unit::of_name("elapsedMillis"), Some(Unit::Ms));
        assert_eq!(Unit::of_name("latency_seconds"), Some(Unit::S));
        assert_eq!(Unit::of_name("took_ns"), Some(Unit::Ns));
        assert_eq!(Unit::of_name("latency"), None);
    }

    #[test]
    fn prose_durations_need_a_word_and_a_unit() {
        let s = TextScanner::new(["duration_ms"]);
        assert!(close(s.scan("GET /cart took 350ms"), 350.0));
        assert!(close(
            s.scan("request completed in 1.2 s status=200"),
            1200.0
        ));
        assert!(close(s.scan("latency=12.5ms upstream=a"), 12.5));
        assert!(close(s.scan("elapsed: 2 seconds"), 2000.0));
        assert!(close(s.scan("done duration_ms=35ms"), 35.0));
        assert!(close(s.scan("done duration_ms=35 rows=2"), 35.0));
        assert_eq!(s.scan("took 350 items"), None, "a count is not a duration");
        assert_eq!(s.scan("took 350"), None, "no unit, no duration");
        assert_eq!(s.scan("overtook 5ms"), None, "part of a word");
        assert_eq!(s.scan("took 5 sessions"), None);
        assert_eq!(s.scan("nothing here"), None);
    }

    /// The parse stage, line in, request meta out.
    fn requests(input: &str) -> Vec<crate::record::RequestMeta> {
        use crate::parse::{Parser, RecordSink};
        use crate::record::{BadReason, LineMeta, Record};
        struct Sink(Vec<crate::record::RequestMeta>);
        impl RecordSink for Sink {
            fn line(&mut self, meta: &LineMeta<'_>) {
                self.0.push(meta.request);
            }
            fn error(&mut self, _: Record) {}
            fn bad(&mut self, reason: BadReason, line: u64) {
                panic!("line {line}: {reason:?}");
            }
        }
        let cfg = crate::config::Config::default();
        let parser = Parser::new(&cfg, crate::config::Format::Auto).expect("default config");
        let mut sink = Sink(Vec::new());
        let mut stream = parser.stream(None);
        for (i, line) in input.lines().enumerate() {
            stream.push(line.as_bytes(), i as u64 + 1, &mut sink);
        }
        stream.finish(&mut sink);
        sink.0
    }

    #[test]
    fn structured_lines_give_their_duration_in_the_fields_unit() {
        let r = requests(concat!(
            r#"{"@timestamp":"2026-11-02T10:00:00Z","log.level":"info","message":"GET /","event":{"duration":350000000}}"#,
            "\n",
            r#"{"level":"info","msg":"GET /","duration_ms":12.5,"status":200}"#,
            "\n",
            r#"{"level":"info","msg":"q","took":"1.5s"}"#,
            "\n",
            "level=info msg=done latency=20ms method=GET\n",
            r#"{"level":"info","msg":"GET /","request_time":0.25}"#,
            "\n",
            r#"{"level":"info","msg":"started","status":"up"}"#,
            "\n",
            r#"{"level":"info","msg":"GET /cart completed in 46ms"}"#,
            "\n",
            r#"{"level":"info","msg":"nothing"}"#,
        ));
        let ms: Vec<Option<f64>> = r.iter().map(|m| m.duration_ms).collect();
        assert_eq!(
            ms,
            [
                Some(350.0),
                Some(12.5),
                Some(1500.0),
                Some(20.0),
                Some(250.0),
                None,
                Some(46.0),
                None
            ]
        );
        let req: Vec<bool> = r.iter().map(|m| m.request).collect();
        assert_eq!(req, [true, true, true, true, true, true, true, false]);
    }

    #[test]
    fn text_lines_give_a_duration_phrase() {
        let r = requests(concat!(
            "2026-11-02 10:00:00 INFO GET /cart took 350ms\n",
            "2026-11-02 10:00:01 INFO cache warmed with 350 entries\n",
            "2026-11-02 10:00:02 WARN slow request took 3s, over budget\n",
        ));
        assert_eq!(r[0].duration_ms, Some(350.0));
        assert!(r[0].request);
        assert_eq!(r[1], crate::record::RequestMeta::default());
        // Logged because it was slow: not a sample of the traffic.
        assert_eq!(r[2], crate::record::RequestMeta::default());
    }
}
