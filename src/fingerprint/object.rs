//! A message that is one JSON object (pino, bunyan, winston, zap, zerolog,
//! slog's and structlog's JSON handlers, Serilog's compact JSON, ECS,
//! Logstash, a shipper's envelope around a raw line): its identity is its
//! message field and the keys it carries, not the text of the object.
//!
//! Masked as text, every quoted string of the object is a value, its keys
//! included (`{"<*>":<*>,"<*>":"<*>"}`): every event with the same number
//! of keys was one type, told apart by nothing but which values were
//! numbers. A JSON logger writes the event in one field (the message) and
//! the data of the event in the others, by name. So the object is written
//! as `key=value` pairs in the order it came (`level=<*> pid=<*>
//! store=<*> msg="order received"`), nested objects as dotted keys
//! (`err.code=<*>`), and:
//!
//! * the **message** (the first of [`MESSAGE_KEYS`], shared with the
//!   layout's key statistics, present with a string value) is masked as any message line is and kept, quoted;
//! * beside a message, every **other value** is data and masked (`<*>`),
//!   whatever its type: the event is named by the message and the keys;
//! * an object with **no message key** keeps its strings as text, masked
//!   as a line's text is (`action=login`, `error="refused by <*>"`), and
//!   its `true`, `false`, `null`: without a message they are what names
//!   the event, and the learned stage generalises those that keep taking
//!   values.
//!
//! The rendering is a logfmt line, so the learned layout reads it like
//! one: a source's context keys (a key that comes with many messages and
//! moves around, `keyed`) are learned and left out of its identity there.
//!
//! Why it holds on a stranger's logs: no key is named but the message
//! keys the common JSON loggers write the event text under; the keys an
//! event carries are what its call site wrote, and its values are what
//! changed. Bounded: at most [`MAX_PAIRS`] pairs are written (the rest is
//! one `<*>`), objects deeper than [`MAX_DEPTH`] are one value; only a
//! message whose first non-blank byte is `{` is parsed.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::VAR;
use super::message_keys::MESSAGE_KEYS;

/// Pairs written per object.
pub const MAX_PAIRS: usize = 48;
/// Nesting read into dotted keys; a deeper object is one value.
pub const MAX_DEPTH: usize = 4;

/// One value of the object, flattened.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    /// A number, an array or an object past [`MAX_DEPTH`]: data.
    Other,
    Bool(bool),
    Null,
}

/// Reads an object into dotted pairs, in order, at most [`MAX_PAIRS`]
/// (the rest is read and dropped; `more` says so).
struct Pairs<'a> {
    prefix: String,
    depth: usize,
    out: &'a mut Vec<(String, Val)>,
    more: &'a mut bool,
}

impl<'de> DeserializeSeed<'de> for Pairs<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pairs<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(k) = m.next_key::<String>()? {
            let key = if self.prefix.is_empty() {
                k
            } else {
                format!("{}.{k}", self.prefix)
            };
            m.next_value_seed(One {
                key,
                depth: self.depth,
                out: &mut *self.out,
                more: &mut *self.more,
            })?;
        }
        Ok(())
    }
}

/// One value under `key`.
struct One<'a> {
    key: String,
    depth: usize,
    out: &'a mut Vec<(String, Val)>,
    more: &'a mut bool,
}

impl One<'_> {
    fn push(self, v: Val) {
        if self.out.len() < MAX_PAIRS {
            self.out.push((self.key, v));
        } else {
            *self.more = true;
        }
    }
}

impl<'de> DeserializeSeed<'de> for One<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for One<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Val::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.push(Val::Other);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.push(Val::Other);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.push(Val::Other);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(Val::Str(v.to_string()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.push(Val::Str(v));
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(Val::Null);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        self.push(Val::Other);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        if self.depth + 1 >= MAX_DEPTH {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            self.push(Val::Other);
            return Ok(());
        }
        let at = self.out.len();
        Pairs {
            prefix: self.key.clone(),
            depth: self.depth + 1,
            out: &mut *self.out,
            more: &mut *self.more,
        }
        .visit_map(m)?;
        // An empty object is a value as written.
        if self.out.len() == at {
            self.push(Val::Other);
        }
        Ok(())
    }
}

/// The object's pairs, flattened, or `None` when `line` is not one JSON
/// object (a brace that opens text, a damaged line).
fn pairs(line: &str) -> Option<(Vec<(String, Val)>, bool)> {
    let t = line.trim_ascii();
    if !t.starts_with('{') || !t.ends_with('}') {
        return None;
    }
    let mut out = Vec::new();
    let mut more = false;
    let mut d = serde_json::Deserializer::from_str(t);
    Pairs {
        prefix: String::new(),
        depth: 0,
        out: &mut out,
        more: &mut more,
    }
    .deserialize(&mut d)
    .ok()?;
    d.end().ok()?;
    Some((out, more))
}

/// A key as a logfmt key: letters, digits, `_ . -`, not starting with a
/// digit or a dash (anything else is `_`), so the line reads as pairs.
fn push_key(out: &mut String, k: &str) {
    if !k.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '_' | '@' | '$')) {
        out.push('_');
    }
    out.extend(k.chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            c
        } else {
            '_'
        }
    }));
}

/// `s` in double quotes, its quotes and backslashes escaped.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Writes the template of `line` into `out` when it is one JSON object
/// (see the module's text); `mask` masks a piece of text (the message, a
/// word) as a message line is masked. False, with `out` untouched, when
/// it is not one.
pub(crate) fn mask_object(
    line: &str,
    out: &mut String,
    mut mask: impl FnMut(&str, &mut String),
) -> bool {
    let Some((pairs, more)) = pairs(line) else {
        return false;
    };
    let message = MESSAGE_KEYS.iter().find_map(|m| {
        pairs
            .iter()
            .position(|(k, v)| k == m && matches!(v, Val::Str(s) if !s.trim().is_empty()))
    });
    out.clear();
    let mut one = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if !out.is_empty() {
            out.push(' ');
        }
        push_key(out, k);
        out.push('=');
        match v {
            Val::Str(s) if Some(i) == message => {
                // Its first line, as a record's message is read.
                let first = s.trim().lines().next().unwrap_or("");
                mask(first, &mut one);
                push_quoted(out, one.trim());
            }
            // Beside a message, every value is data.
            _ if message.is_some() => out.push_str(VAR),
            Val::Str(s) if s.trim().is_empty() => out.push_str("\"\""),
            // Without one, text is masked as a line's text is, and kept.
            Val::Str(s) => {
                mask(s.trim(), &mut one);
                let t = one.trim();
                if t.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
                    push_quoted(out, t);
                } else {
                    out.push_str(t);
                }
            }
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Null => out.push_str("null"),
            Val::Other => out.push_str(VAR),
        }
    }
    if more {
        out.push(' ');
        out.push_str(VAR);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the masker: digits make a word a value.
    fn digits(s: &str, out: &mut String) {
        out.clear();
        let words: Vec<&str> = s
            .split_whitespace()
            .map(|w| {
                if w.contains(|c: char| c.is_ascii_digit()) {
                    VAR
                } else {
                    w
                }
            })
            .collect();
        out.push_str(&words.join(" "));
    }

    fn render(line: &str) -> Option<String> {
        let mut out = String::new();
        mask_object(line, &mut out, digits).then_some(out)
    }

    #[test]
    fn a_json_line_is_its_message_and_its_keys_with_the_values_masked() {
        let a = render(
            r#"{"level":30,"time":1700000000000,"host":"web-7f9","shop":"Rue de la Paix","dish":"Tarte \"maison\"","msg":"dish sold out"}"#,
        );
        assert_eq!(
            a.as_deref(),
            Some(r#"level=<*> time=<*> host=<*> shop=<*> dish=<*> msg="dish sold out""#)
        );
        let b = render(
            r#"{"level":30,"time":1700000009999,"host":"web-2aa","shop":"Harbour","dish":"Soup","msg":"dish sold out"}"#,
        );
        assert_eq!(a, b);
        let other = render(
            r#"{"level":30,"time":1700000009999,"host":"web-2aa","shop":"Harbour","dish":"Soup","msg":"dish back in stock"}"#,
        );
        assert_ne!(a, other);
    }

    #[test]
    fn the_message_is_masked_as_text_and_its_quotes_escaped() {
        assert_eq!(
            render(r#"{"message":"table \"orders\" locked after 3 tries","ok":false,"who":null,"tag":""}"#)
                .as_deref(),
            Some(r#"message="table \"orders\" locked after <*> tries" ok=<*> who=<*> tag=<*>"#)
        );
    }

    #[test]
    fn nested_objects_are_dotted_keys_and_arrays_are_one_value() {
        assert_eq!(
            render(r#"{"msg":"call failed","err":{"type":"Timeout","ctx":{"a":{"b":{"c":1}}}},"tags":[1,2],"e":{}}"#)
                .as_deref(),
            Some(r#"msg="call failed" err.type=<*> err.ctx.a.b=<*> tags=<*> e=<*>"#)
        );
    }

    #[test]
    fn without_a_message_short_words_name_the_event() {
        let login = render(
            r#"{"ts":"2026-01-02T03:04:05Z","user":"ann","action":"login","src":"10.0.0.9"}"#,
        );
        let logout = render(
            r#"{"ts":"2026-01-02T03:04:06Z","user":"bob","action":"logout","src":"10.0.0.7"}"#,
        );
        assert_eq!(
            login.as_deref(),
            Some("ts=<*> user=ann action=login src=<*>")
        );
        assert_ne!(login, logout);
        // Text is masked and kept there, quoted when it has blanks.
        assert_eq!(
            render(r#"{"error":"refused by 10.0.0.1","b":"x","ok":false,"e":""}"#).as_deref(),
            Some(r#"error="refused by <*>" b=x ok=false e="""#)
        );
    }

    #[test]
    fn a_shippers_envelope_is_read_by_its_log_line() {
        let a = render(
            r#"{"log":"disk 3 full\n","stream":"stderr","kubernetes":{"pod_name":"api-1","labels":{"app":"api"}}}"#,
        );
        assert_eq!(
            a.as_deref(),
            Some(
                r#"log="disk <*> full" stream=<*> kubernetes.pod_name=<*> kubernetes.labels.app=<*>"#
            )
        );
    }

    #[test]
    fn serilog_compact_json_is_read_by_its_message_template() {
        assert_eq!(
            render(r#"{"@t":"2026-01-02T03:04:05Z","@mt":"Order {OrderId} shipped","@m":"Order 42 shipped","OrderId":42}"#)
                .as_deref(),
            Some(r#"_t=<*> _mt="Order {OrderId} shipped" _m=<*> OrderId=<*>"#)
        );
    }

    #[test]
    fn text_that_is_not_one_object_is_left_to_the_masker() {
        for line in [
            "{braced} text",
            r#"{"a":1} trailing"#,
            r#"{"a":1"#,
            "[1,2,3]",
            "plain text",
            r#"{"a":1}{"b":2}"#,
        ] {
            assert_eq!(render(line), None, "{line}");
        }
    }

    #[test]
    fn a_wide_object_is_bounded() {
        let body: Vec<String> = (0..200).map(|i| format!("\"k{i}\":{i}")).collect();
        let t = render(&format!("{{{}}}", body.join(","))).unwrap();
        assert_eq!(t.split(' ').count(), MAX_PAIRS + 1);
        assert!(t.ends_with(" <*>"));
    }
}
