//! JSON lines: a validating, borrowing scanner that never builds a tree.
//!
//! Ninety-five of a hundred lines are not errors and only need their level,
//! time, service and version, so the scanner walks the object once,
//! validating every byte of grammar (an invalid line must be reported, not
//! half-read) but storing nothing except the spans of mapped keys. It
//! descends into nested objects only along configured dotted paths (ECS's
//! `log.level`, `service.name`); every other value is skipped by an
//! iterative walker with a bit stack, so deep nesting costs no recursion and
//! no allocation. Decoding strings is left to whoever needs the value.

use super::fields::{FieldMap, Kind, Slots, Span};

/// The line is not one JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// serde_json's default limit; deeper input is hostile or broken.
const MAX_DEPTH: u32 = 128;

/// Bytes that end the fast loop inside a string: quote, backslash, and the
/// control characters JSON forbids unescaped.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Scans one JSON object into `slots`. `line` must be valid UTF-8 already
/// (the caller checks the whole line once), so every span lands on a char
/// boundary: spans start and end next to ASCII punctuation.
///
/// `no_control` says the caller has seen no byte below 0x20 in the line, so
/// strings need only be searched for their end, not checked byte by byte.
pub(crate) fn scan(
    line: &str,
    map: &FieldMap,
    slots: &mut Slots,
    no_control: bool,
) -> Result<(), Invalid> {
    let mut s = Scanner {
        b: line.as_bytes(),
        i: 0,
        no_control,
    };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(Invalid);
    }
    s.object(map, 0, slots)?;
    s.ws();
    if s.i != s.b.len() {
        return Err(Invalid);
    }
    Ok(())
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    no_control: bool,
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Result<(), Invalid> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// At `{`: walks the object, recording mapped keys of trie node `node`.
    fn object(&mut self, map: &FieldMap, node: usize, slots: &mut Slots) -> Result<(), Invalid> {
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(Invalid);
            }
            let (ks, ke, escaped) = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            // Escaped keys never name a mapped field in practice; comparing
            // them raw just means they are not found.
            let entry = if escaped {
                None
            } else {
                map.nodes[node].find(&self.b[ks..ke])
            };
            match entry {
                Some(e) => {
                    let start = self.i;
                    match e.child {
                        Some(child) if self.peek() == Some(b'{') => {
                            self.object(map, child, slots)?;
                            if let Some(t) = e.terminal {
                                slots.set(t, Span::new(start, self.i, Kind::Object));
                            }
                        }
                        _ => {
                            let span = self.value()?;
                            if let Some(t) = e.terminal {
                                slots.set(t, span);
                            }
                        }
                    }
                }
                None => {
                    self.value()?;
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Any value; strings are reported without their quotes.
    fn value(&mut self) -> Result<Span, Invalid> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                let (s, e, escaped) = self.string()?;
                Ok(Span::new(
                    s,
                    e,
                    if escaped { Kind::StrEsc } else { Kind::Str },
                ))
            }
            Some(b'{' | b'[') => {
                let kind = self.container()?;
                Ok(Span::new(start, self.i, kind))
            }
            _ => {
                let kind = self.scalar()?;
                Ok(Span::new(start, self.i, kind))
            }
        }
    }

    /// At `"`: returns the inner span and whether it contains escapes.
    #[inline]
    fn string(&mut self) -> Result<(usize, usize, bool), Invalid> {
        let b = self.b;
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            if self.no_control {
                j += memchr::memchr2(b'"', b'\\', &b[j..]).unwrap_or(b.len() - j);
            } else {
                while j < b.len() && !STRING_STOP[b[j] as usize] {
                    j += 1;
                }
            }
            match b.get(j) {
                Some(b'"') => {
                    self.i = j + 1;
                    return Ok((start, j, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match b.get(j + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                        Some(b'u') => {
                            let hex = b.get(j + 2..j + 6).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            j += 6;
                        }
                        _ => return Err(Invalid),
                    }
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Numbers and literals.
    fn scalar(&mut self) -> Result<Kind, Invalid> {
        let rest = &self.b[self.i..];
        let literal = |word: &[u8], kind: Kind| -> Result<(Kind, usize), Invalid> {
            if rest.starts_with(word) {
                Ok((kind, word.len()))
            } else {
                Err(Invalid)
            }
        };
        let (kind, len) = match rest.first() {
            Some(b't') => literal(b"true", Kind::Bool)?,
            Some(b'f') => literal(b"false", Kind::Bool)?,
            Some(b'n') => literal(b"null", Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => (Kind::Num, number_len(rest).ok_or(Invalid)?),
            _ => return Err(Invalid),
        };
        self.i += len;
        Ok(kind)
    }

    /// At `{` or `[`: skips the whole container, validating it. Iterative
    /// with a bit stack (1 = object), so nesting depth cannot overflow ours.
    fn container(&mut self) -> Result<Kind, Invalid> {
        enum St {
            Open,
            Member,
            After,
        }
        let kind = if self.peek() == Some(b'{') {
            Kind::Object
        } else {
            Kind::Array
        };
        let mut stack: u128 = 0;
        let mut depth = 0u32;
        let mut st = St::Open;
        loop {
            match st {
                St::Open => {
                    let is_obj = self.peek() == Some(b'{');
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Invalid);
                    }
                    stack = (stack << 1) | u128::from(is_obj);
                    self.i += 1;
                    self.ws();
                    let close = if is_obj { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                        stack >>= 1;
                        if depth == 0 {
                            return Ok(kind);
                        }
                        st = St::After;
                    } else {
                        st = St::Member;
                    }
                }
                St::Member => {
                    if stack & 1 == 1 {
                        if self.peek() != Some(b'"') {
                            return Err(Invalid);
                        }
                        self.string()?;
                        self.ws();
                        self.expect(b':')?;
                        self.ws();
                    }
                    match self.peek() {
                        Some(b'{' | b'[') => st = St::Open,
                        Some(b'"') => {
                            self.string()?;
                            st = St::After;
                        }
                        _ => {
                            self.scalar()?;
                            st = St::After;
                        }
                    }
                }
                St::After => {
                    self.ws();
                    let close = if stack & 1 == 1 { b'}' } else { b']' };
                    match self.peek() {
                        Some(b',') => {
                            self.i += 1;
                            self.ws();
                            st = St::Member;
                        }
                        Some(c) if c == close => {
                            self.i += 1;
                            depth -= 1;
                            stack >>= 1;
                            if depth == 0 {
                                return Ok(kind);
                            }
                        }
                        _ => return Err(Invalid),
                    }
                }
            }
        }
    }
}

/// Length of the JSON number at the start of `b`, per the RFC 8259 grammar.
fn number_len(b: &[u8]) -> Option<usize> {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

/// Strings in a `stack_trace` array, joined by newlines (some loggers emit
/// frames as an array). Anything else is kept as its JSON text.
pub(crate) fn join_string_array(raw: &str) -> String {
    match serde_json::from_str::<Vec<String>>(raw) {
        Ok(lines) => lines.join("\n"),
        Err(_) => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fields::Field;
    use super::*;
    use crate::config::FieldsConfig;

    fn scan_default(line: &str) -> Result<(FieldMap, Slots), Invalid> {
        let map = FieldMap::new(&FieldsConfig::default()).map_err(|_| Invalid)?;
        let mut slots = Slots::new();
        let no_control = !line.bytes().any(|c| c < 0x20);
        scan(line, &map, &mut slots, no_control)?;
        Ok((map, slots))
    }

    fn text(line: &str, field: Field) -> Option<String> {
        let (map, slots) = scan_default(line).ok()?;
        map.get_text(&slots, field, line).map(|c| c.into_owned())
    }

    #[test]
    fn flat_keys_are_found() {
        let line =
            r#"{"ts":"2026-11-02T10:00:01Z","level":"error","msg":"boom","service":"checkout"}"#;
        assert_eq!(text(line, Field::Level).as_deref(), Some("error"));
        assert_eq!(text(line, Field::Message).as_deref(), Some("boom"));
        assert_eq!(text(line, Field::Service).as_deref(), Some("checkout"));
        assert_eq!(
            text(line, Field::Timestamp).as_deref(),
            Some("2026-11-02T10:00:01Z")
        );
    }

    #[test]
    fn ecs_dotted_keys_match_literally_and_nested() {
        let literal = r#"{"log.level":"error","service.name":"api"}"#;
        let nested = r#"{"log":{"level":"error","logger":"a.B"},"service":{"name":"api"}}"#;
        for line in [literal, nested] {
            assert_eq!(text(line, Field::Level).as_deref(), Some("error"), "{line}");
            assert_eq!(text(line, Field::Service).as_deref(), Some("api"), "{line}");
        }
        assert_eq!(text(nested, Field::Logger).as_deref(), Some("a.B"));
    }

    #[test]
    fn escaped_strings_are_decoded_on_demand() {
        let line = r#"{"message":"say \"hi\"\n\u00e9","level":"error"}"#;
        assert_eq!(text(line, Field::Message).as_deref(), Some("say \"hi\"\né"));
    }

    #[test]
    fn unmapped_values_of_every_shape_are_skipped() {
        let line = r#"{"a":[1,-2.5e3,{"b":[true,false,null]},"x"],"c":{},"d":[],"level":"warn"}"#;
        assert_eq!(text(line, Field::Level).as_deref(), Some("warn"));
    }

    #[test]
    fn invalid_json_is_rejected() {
        for line in [
            r#"{"level":"error""#,
            r#"{"level":"error",}"#,
            r#"{"level":error}"#,
            r#"{"level":"error"} trailing"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":[1,2}"#,
            r#"["not","an","object"]"#,
            r#"{"a":tru}"#,
            "{",
        ] {
            assert!(scan_default(line).is_err(), "{line}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_invalid_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(scan_default(&deep).is_err());
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(scan_default(&ok).is_ok());
    }

    #[test]
    fn first_duplicate_key_wins() {
        assert_eq!(
            text(r#"{"level":"error","level":"info"}"#, Field::Level).as_deref(),
            Some("error")
        );
    }

    #[test]
    fn number_grammar_follows_the_rfc() {
        assert_eq!(number_len(b"-0.5e+10,"), Some(8));
        assert_eq!(number_len(b"12}"), Some(2));
        assert_eq!(number_len(b"-"), None);
        assert_eq!(number_len(b"1e"), None);
    }

    #[test]
    fn stack_trace_arrays_join_into_lines() {
        assert_eq!(join_string_array(r#"["a","\tat b"]"#), "a\n\tat b");
    }

    mod agreement {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::*;

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-1000i64..1000).prop_map(Value::from),
                "[a-z\"\\\\\n\t é/]{0,8}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("message".to_string()),
                Just("msg".to_string()),
                Just("log".to_string()),
                Just("level".to_string()),
                "[a-z.]{0,6}",
            ]
        }

        /// A serialized object, possibly with one character inserted or
        /// removed, so both valid and nearly-valid input is covered.
        fn line() -> impl Strategy<Value = (String, Value)> {
            let object = prop::collection::btree_map(key(), value(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect()));
            (
                object,
                any::<prop::sample::Index>(),
                prop::option::of(prop::sample::select(vec![
                    '{', '}', '[', ']', '"', ':', ',', '\\', '0', '1', '-', '.', ' ', 'a', 'é',
                ])),
                any::<bool>(),
            )
                .prop_map(|(v, at, insert, mutate)| {
                    let mut text = v.to_string();
                    if mutate {
                        let chars: Vec<char> = text.chars().collect();
                        let i = at.index(chars.len() + 1);
                        let mut out: String = chars[..i.min(chars.len())].iter().collect();
                        match insert {
                            Some(c) => {
                                out.push(c);
                                out.extend(&chars[i.min(chars.len())..]);
                            }
                            None => out.extend(chars.iter().skip(i + 1)),
                        }
                        text = out;
                    }
                    (text, v)
                })
        }

        fn expected_message(v: &Value) -> Option<String> {
            ["message", "msg"].iter().find_map(|k| match v.get(k) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            })
        }

        proptest! {
            #[test]
            fn the_scanner_accepts_exactly_what_serde_json_accepts_as_an_object((text, _) in line()) {
                let serde_ok = serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object());
                prop_assert_eq!(scan_default(&text).is_ok(), serde_ok, "{}", text);
            }

            #[test]
            fn the_scanner_reads_the_message_serde_json_reads((text, v) in line()) {
                if let Ok(parsed) = serde_json::from_str::<Value>(&text)
                    && parsed == v
                {
                    prop_assert_eq!(super::text(&text, Field::Message), expected_message(&v), "{}", text);
                }
            }
        }
    }
}
