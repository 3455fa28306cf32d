//! logfmt: `key=value key="quoted \"value\""` pairs, read without allocation.
//!
//! logfmt has no formal grammar, so the tokenizer is lenient the way the Go
//! writers that produce it are: bare words without `=` are flags and
//! ignored, an unterminated quote runs to the end of the line, and keys are
//! matched literally (a dotted name is one key). The same tokenizer reads the
//! `key=value` context tokens that text formats put after their header.

pub(crate) use super::fields::Kind;
use super::fields::{FieldMap, Slots, Span};

/// One token of a logfmt line; offsets are into the tokenized string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Pair { key: (usize, usize), value: Span },
    Word { start: usize, end: usize },
}

/// Iterates over tokens, also reporting where each began (for callers that
/// stop early and keep the rest as text).
pub(crate) struct Tokens<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(s: &'a str) -> Tokens<'a> {
        Tokens {
            b: s.as_bytes(),
            i: 0,
        }
    }

    /// Skips blanks and returns the offset where the next token starts.
    pub fn next_start(&mut self) -> usize {
        while let Some(b' ' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
        self.i
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let b = self.b;
        let start = self.next_start();
        if start >= b.len() {
            return None;
        }
        let mut i = start;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'=') {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            while i < b.len() && !matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            self.i = i;
            return Some(Token::Word { start, end: i });
        }
        let key = (start, i);
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let vs = i;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            let ve = i.min(b.len());
            i = (i + 1).min(b.len());
            Span::new(
                vs,
                ve,
                if escaped {
                    Kind::QuotedEsc
                } else {
                    Kind::Quoted
                },
            )
        } else {
            let vs = i;
            while i < b.len() && !matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            Span::new(vs, i, Kind::Bare)
        };
        self.i = i;
        Some(Token::Pair { key, value })
    }
}

/// Records mapped keys of a whole logfmt line in `slots`; returns how many
/// pairs the line had.
pub(crate) fn scan(line: &str, map: &FieldMap, slots: &mut Slots) -> usize {
    let b = line.as_bytes();
    let mut pairs = 0;
    for tok in Tokens::new(line) {
        if let Token::Pair { key, value } = tok {
            pairs += 1;
            if let Some(path) = map.flat(&b[key.0..key.1]) {
                slots.set(path, value);
            }
        }
    }
    pairs
}

/// A key as logfmt printers write it: a letter or `_`, then letters,
/// digits, `_`, `.`, `-` (what the fingerprinter reads as a pair's key).
pub(crate) fn is_plain_key(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Cheap pre-test for format detection: the line opens with `key=`.
pub(crate) fn starts_like_logfmt(line: &str) -> bool {
    let b = line.as_bytes();
    if !b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'_' | b'@'))
    {
        return false;
    }
    for &c in b {
        match c {
            b'=' => return true,
            b' ' | b'\t' | b'"' | b'[' | b':' | b'<' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::fields::Field;
    use super::*;
    use crate::config::FieldsConfig;

    fn get(line: &str, field: Field) -> Option<String> {
        let map = FieldMap::new(&FieldsConfig::default()).ok()?;
        let mut slots = Slots::new();
        scan(line, &map, &mut slots);
        map.get_text(&slots, field, line).map(|c| c.into_owned())
    }

    #[test]
    fn quoted_values_with_escapes_decode() {
        let line = r#"ts=2026-11-02T10:00:00Z level=error msg="quoted \"text\"" service=checkout"#;
        assert_eq!(
            get(line, Field::Message).as_deref(),
            Some(r#"quoted "text""#)
        );
        assert_eq!(get(line, Field::Level).as_deref(), Some("error"));
        assert_eq!(get(line, Field::Service).as_deref(), Some("checkout"));
        assert_eq!(
            get(line, Field::Timestamp).as_deref(),
            Some("2026-11-02T10:00:00Z")
        );
    }

    #[test]
    fn dotted_names_are_literal_keys() {
        let line = "log.level=error service.name=api message=x";
        assert_eq!(get(line, Field::Level).as_deref(), Some("error"));
        assert_eq!(get(line, Field::Service).as_deref(), Some("api"));
    }

    #[test]
    fn bare_words_and_unterminated_quotes_are_tolerated() {
        let line = r#"level=error debug msg="never closed"#;
        assert_eq!(get(line, Field::Message).as_deref(), Some("never closed"));
    }

    #[test]
    fn tokens_report_words_and_pairs_in_order() {
        let toks: Vec<Token> = Tokens::new("a=1 word b=\"x y\"").collect();
        assert_eq!(toks.len(), 3);
        assert!(matches!(toks[1], Token::Word { start: 4, end: 8 }));
    }

    #[test]
    fn detection_wants_a_key_before_any_space() {
        assert!(starts_like_logfmt("level=info msg=hi"));
        assert!(!starts_like_logfmt("2026-11-02 level=info"));
        assert!(!starts_like_logfmt("hello world a=b"));
        assert!(!starts_like_logfmt("<13>x=y"));
    }
}
