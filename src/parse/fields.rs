//! The field mapping, compiled for scanning without allocation.
//!
//! `FieldsConfig` names candidate keys per field; a dotted name may be one
//! literal key or a path through nested objects. Both readings become
//! *paths*, deduplicated and numbered; the JSON scanner walks a small trie of
//! them and the logfmt tokenizer looks up literal keys, and both record what
//! they find as byte spans in fixed [`Slots`] indexed by path. Resolving a
//! field is then "first candidate path with a value", and decoding (escape
//! handling) happens only for the values a record actually uses — most lines
//! never decode anything but their level.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::FieldsConfig;

/// More paths than this means a pathological config; the fixed slot array
/// is what keeps per-line scanning free of allocation.
pub(crate) const MAX_PATHS: usize = 128;

/// The fields a record is assembled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Timestamp,
    Level,
    Message,
    Service,
    Version,
    ErrorType,
    ErrorMessage,
    StackTrace,
    Logger,
    Host,
    VersionFrom,
    /// A request's duration (`signals`).
    Duration,
    /// Any of these marks a line as a request (`signals`).
    Request,
}

const N_FIELDS: usize = 13;

/// How a value was written; decides how it is decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    #[default]
    Absent,
    /// JSON string without escapes (span excludes the quotes).
    Str,
    /// JSON string with escapes (span excludes the quotes).
    StrEsc,
    Num,
    Bool,
    Null,
    Object,
    Array,
    /// logfmt value, unquoted.
    Bare,
    /// logfmt value in quotes without backslashes (span excludes the quotes).
    Quoted,
    /// logfmt value in quotes with backslash escapes.
    QuotedEsc,
}

/// A value's location in the line; `u32` keeps the slot array small, and
/// lines are bounded far below 4 GiB by `max_line_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
    pub kind: Kind,
}

impl Span {
    pub fn new(start: usize, end: usize, kind: Kind) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
            kind,
        }
    }

    pub fn raw<'a>(&self, line: &'a str) -> &'a str {
        line.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }

    /// The value as text: strings decoded, numbers and literals verbatim,
    /// containers as their JSON text. `None` for null.
    pub fn text<'a>(&self, line: &'a str) -> Option<Cow<'a, str>> {
        let raw = self.raw(line);
        match self.kind {
            Kind::Absent | Kind::Null => None,
            Kind::Str | Kind::Num | Kind::Bool | Kind::Bare | Kind::Quoted => {
                Some(Cow::Borrowed(raw))
            }
            Kind::Object | Kind::Array => Some(Cow::Borrowed(raw)),
            Kind::StrEsc => Some(Cow::Owned(unescape_json(raw))),
            Kind::QuotedEsc => Some(Cow::Owned(unescape_logfmt(raw))),
        }
    }

    /// Like [`Span::text`] but only for scalars: a nested object where a
    /// name was expected is a different schema, not a value.
    pub fn scalar<'a>(&self, line: &'a str) -> Option<Cow<'a, str>> {
        match self.kind {
            Kind::Object | Kind::Array => None,
            _ => self.text(line),
        }
    }
}

/// Decodes the inside of a JSON string. The scanner has already validated
/// the escapes. The one-letter escapes are copied across here (an envelope
/// carrying a JSON line is full of `\"`, and this runs for every such
/// line); `\u` (surrogate pairs) goes to serde_json, which gets it right.
fn unescape_json(inner: &str) -> String {
    let general = || {
        let quoted = format!("\"{inner}\"");
        serde_json::from_str::<String>(&quoted).unwrap_or_else(|_| inner.to_string())
    };
    if memchr::memmem::find(inner.as_bytes(), b"\\u").is_some() {
        return general();
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        out.push(match rest.as_bytes().get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            _ => return general(),
        });
        // The escaped character is ASCII: `i + 2` is a char boundary.
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// logfmt escapes are Go's `strconv.Quote`: the common ones suffice.
fn unescape_logfmt(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// What each field's values were, for one line. Reused across lines: a
/// bitmask says which slots this line has set, so resetting is one store
/// instead of clearing the whole array.
#[derive(Debug)]
pub(crate) struct Slots {
    vals: [Span; MAX_PATHS],
    set: u128,
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            vals: [Span::default(); MAX_PATHS],
            set: 0,
        }
    }

    #[inline]
    pub fn clear(&mut self) {
        self.set = 0;
    }

    /// First occurrence wins: duplicate keys are malformed input and the
    /// first is what a human reading the line sees.
    #[inline]
    pub fn set(&mut self, path: u8, span: Span) {
        let bit = 1u128 << path;
        if self.set & bit == 0 {
            self.set |= bit;
            self.vals[path as usize] = span;
        }
    }

    #[inline]
    pub fn get(&self, path: u8) -> Option<Span> {
        (self.set & (1u128 << path) != 0).then(|| self.vals[path as usize])
    }
}

/// One key of a trie node: a path ends here, continues into a nested
/// object, or both (`service` is a flat name and the parent of `service.name`).
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: Box<[u8]>,
    pub terminal: Option<u8>,
    pub child: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub entries: Vec<Entry>,
    /// Bit `n` set when some key has length `n` (lengths ≥ 63 share bit 63):
    /// most keys in a line are not mapped, and this rejects them in one test.
    lengths: u64,
}

impl Node {
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<&Entry> {
        if self.lengths & (1u64 << key.len().min(63)) == 0 {
            return None;
        }
        self.entries.iter().find(|e| *e.key == *key)
    }
}

/// The compiled mapping.
#[derive(Debug)]
pub(crate) struct FieldMap {
    /// `nodes[0]` is the top level of a JSON object.
    pub nodes: Vec<Node>,
    /// Candidate paths per field, in the configured order: the [`Field`]s
    /// first, then any extra fields of the map (see [`FieldMap::with_paths`]).
    candidates: Vec<Vec<u8>>,
    /// Top-level keys whose presence suggests a shipper envelope (see
    /// `super::ship`): one bit per path, so the test after a scan is one AND.
    marker_mask: u128,
    /// The path of a top-level `log` key, an envelope marker only when its
    /// value is a string (ECS nests `log.level` in an object `log`).
    log_path: Option<u8>,
    /// The unit of a bare number in each duration path.
    duration_units: Vec<(u8, super::duration::Unit)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FieldMapError {
    #[error("fields: {count} distinct key paths configured; at most {max} are supported")]
    TooMany { count: usize, max: usize },
    #[error("fields.{field}: empty key name")]
    EmptyName { field: &'static str },
}

/// A dotted name as the paths it may mean: the literal key, and (when every
/// part is non-empty) the path through nested objects.
fn dotted(name: &str) -> Vec<Vec<String>> {
    let mut paths = vec![vec![name.to_string()]];
    if name.contains('.') {
        let parts: Vec<String> = name.split('.').map(str::to_string).collect();
        if parts.iter().all(|p| !p.is_empty()) {
            paths.push(parts);
        }
    }
    paths
}

impl FieldMap {
    /// The record map from `cfg` without envelope markers.
    #[cfg(test)]
    pub fn new(cfg: &FieldsConfig) -> Result<FieldMap, FieldMapError> {
        Self::with_markers(cfg, &[])
    }

    /// The record map from `cfg`; `markers` are top-level keys recorded
    /// only for [`FieldMap::has_marker`].
    pub fn with_markers(cfg: &FieldsConfig, markers: &[&str]) -> Result<FieldMap, FieldMapError> {
        let vf: Vec<String> = cfg.version_from.iter().map(|v| v.field.clone()).collect();
        let lists: [(&'static str, &[String]); N_FIELDS] = [
            ("timestamp", &cfg.timestamp),
            ("level", &cfg.level),
            ("message", &cfg.message),
            ("service", &cfg.service),
            ("version", &cfg.version),
            ("error_type", &cfg.error_type),
            ("error_message", &cfg.error_message),
            ("stack_trace", &cfg.stack_trace),
            ("logger", &cfg.logger),
            ("host", &cfg.host),
            ("version_from.field", &vf),
            ("duration", &cfg.duration),
            ("request", &cfg.request),
        ];
        let mut fields = Vec::with_capacity(N_FIELDS + 1);
        for (label, names) in lists {
            let mut paths = Vec::new();
            for name in names {
                if name.is_empty() {
                    return Err(FieldMapError::EmptyName { field: label });
                }
                paths.extend(dotted(name));
            }
            fields.push(paths);
        }
        fields.push(markers.iter().map(|m| vec![m.to_string()]).collect());
        let mut map = Self::with_paths(&fields)?;
        let marker_ids = map.candidates.pop().unwrap_or_default();
        map.marker_mask = marker_ids.iter().fold(0, |m, &id| m | (1u128 << id));
        map.log_path = map.nodes[0].find(b"log").and_then(|e| e.terminal);
        if !marker_ids.iter().any(|&id| Some(id) == map.log_path) {
            map.log_path = None;
        }
        for name in &cfg.duration {
            let unit = cfg
                .duration_units
                .get(name)
                .map(|&u| u.into())
                .or_else(|| super::duration::Unit::of_name(name))
                .unwrap_or(cfg.duration_unit.into());
            for path in dotted(name) {
                if let Some(id) = map.path_id(&path)
                    && !map.duration_units.iter().any(|(p, _)| *p == id)
                {
                    map.duration_units.push((id, unit));
                }
            }
        }
        Ok(map)
    }

    /// A map of explicit paths (parts of a path are keys, never split on
    /// dots): field `i` is `fields[i]`, read with [`FieldMap::get_nth`].
    pub fn with_paths(fields: &[Vec<Vec<String>>]) -> Result<FieldMap, FieldMapError> {
        let mut ids: HashMap<Vec<String>, u8> = HashMap::new();
        let mut map = FieldMap {
            nodes: vec![Node::default()],
            candidates: vec![Vec::new(); fields.len()],
            marker_mask: 0,
            log_path: None,
            duration_units: Vec::new(),
        };
        for (field, paths) in fields.iter().enumerate() {
            for path in paths {
                let id = match ids.get(path) {
                    Some(&id) => id,
                    None => {
                        let id = ids.len();
                        if id >= MAX_PATHS {
                            return Err(FieldMapError::TooMany {
                                count: id + 1,
                                max: MAX_PATHS,
                            });
                        }
                        let id = id as u8;
                        map.insert(path, id);
                        ids.insert(path.clone(), id);
                        id
                    }
                };
                if !map.candidates[field].contains(&id) {
                    map.candidates[field].push(id);
                }
            }
        }
        Ok(map)
    }

    /// The id of a path, if it is mapped.
    fn path_id(&self, path: &[String]) -> Option<u8> {
        let mut node = 0;
        let (last, parents) = path.split_last()?;
        for part in parents {
            node = self.nodes[node].find(part.as_bytes())?.child?;
        }
        self.nodes[node].find(last.as_bytes())?.terminal
    }

    /// The line's request duration in milliseconds: the first duration
    /// field with a value that reads as one (a number in the field's unit,
    /// or a string with or without its own unit).
    pub fn duration_ms(&self, slots: &Slots, line: &str) -> Option<f64> {
        use super::duration::{Unit, number_ms, text_ms};
        for &id in &self.candidates[Field::Duration as usize] {
            let Some(span) = slots.get(id) else { continue };
            let unit = self
                .duration_units
                .iter()
                .find(|(p, _)| *p == id)
                .map_or(Unit::Ms, |&(_, u)| u);
            let ms = match span.kind {
                Kind::Num => span
                    .raw(line)
                    .parse::<f64>()
                    .ok()
                    .and_then(|v| number_ms(v, unit)),
                Kind::Str | Kind::StrEsc | Kind::Bare | Kind::Quoted | Kind::QuotedEsc => {
                    span.text(line).and_then(|t| text_ms(&t, unit))
                }
                _ => None,
            };
            if ms.is_some() {
                return ms;
            }
        }
        None
    }

    /// Whether the line has a request field (or a duration).
    pub fn is_request(&self, slots: &Slots) -> bool {
        self.get(slots, Field::Request).is_some()
    }

    /// Whether the scanned line has an envelope marker key (a `log` key
    /// only when its value is a string).
    #[inline]
    pub fn has_marker(&self, slots: &Slots) -> bool {
        let mut hit = slots.set & self.marker_mask;
        if hit == 0 {
            return false;
        }
        if let Some(log) = self.log_path {
            let bit = 1u128 << log;
            if hit & bit != 0
                && !slots
                    .get(log)
                    .is_some_and(|s| matches!(s.kind, Kind::Str | Kind::StrEsc))
            {
                hit &= !bit;
            }
        }
        hit != 0
    }

    fn insert(&mut self, path: &[String], id: u8) {
        let mut node = 0;
        for (depth, part) in path.iter().enumerate() {
            let last = depth + 1 == path.len();
            let key = part.as_bytes();
            let pos = match self.nodes[node].entries.iter().position(|e| *e.key == *key) {
                Some(p) => p,
                None => {
                    let n = &mut self.nodes[node];
                    n.entries.push(Entry {
                        key: key.into(),
                        terminal: None,
                        child: None,
                    });
                    n.lengths |= 1u64 << key.len().min(63);
                    n.entries.len() - 1
                }
            };
            if last {
                self.nodes[node].entries[pos].terminal = Some(id);
            } else {
                let child = match self.nodes[node].entries[pos].child {
                    Some(c) => c,
                    None => {
                        self.nodes.push(Node::default());
                        let c = self.nodes.len() - 1;
                        self.nodes[node].entries[pos].child = Some(c);
                        c
                    }
                };
                node = child;
            }
        }
    }

    /// The top-level path for a literal key, for flat formats (logfmt and
    /// text context), where `a.b` can only ever be a literal key.
    #[inline]
    pub fn flat(&self, key: &[u8]) -> Option<u8> {
        self.nodes[0].find(key).and_then(|e| e.terminal)
    }

    /// The first candidate of `field` that has a value on this line.
    #[inline]
    pub fn get(&self, slots: &Slots, field: Field) -> Option<Span> {
        self.get_nth(slots, field as usize)
    }

    /// [`FieldMap::get`] for field number `n` of a [`FieldMap::with_paths`] map.
    #[inline]
    pub fn get_nth(&self, slots: &Slots, n: usize) -> Option<Span> {
        self.candidates[n]
            .iter()
            .filter_map(|&id| slots.get(id))
            .find(|s| s.kind != Kind::Absent && s.kind != Kind::Null)
    }

    /// The first candidate of `field` whose value is a non-empty scalar.
    pub fn get_text<'a>(&self, slots: &Slots, field: Field, line: &'a str) -> Option<Cow<'a, str>> {
        self.get_text_nth(slots, field as usize, line)
    }

    /// [`FieldMap::get_text`] for field number `n`.
    pub fn get_text_nth<'a>(&self, slots: &Slots, n: usize, line: &'a str) -> Option<Cow<'a, str>> {
        self.candidates[n]
            .iter()
            .filter_map(|&id| slots.get(id))
            .filter_map(|s| s.scalar(line))
            .find(|t| !t.trim().is_empty())
    }

    /// Whether `path` is one of `field`'s candidates.
    pub fn is_candidate(&self, field: Field, path: u8) -> bool {
        self.candidates[field as usize].contains(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_become_a_literal_and_a_nested_path() {
        let map = FieldMap::new(&FieldsConfig::default()).unwrap();
        let root = &map.nodes[0];
        assert!(root.find(b"log.level").and_then(|e| e.terminal).is_some());
        let log = root.find(b"log").and_then(|e| e.child);
        let level = log.and_then(|c| map.nodes[c].find(b"level"));
        assert!(level.and_then(|e| e.terminal).is_some());
    }

    #[test]
    fn a_flat_name_that_is_also_a_parent_keeps_both_roles() {
        let map = FieldMap::new(&FieldsConfig::default()).unwrap();
        let service = map.nodes[0].find(b"service");
        assert!(service.is_some_and(|e| e.terminal.is_some() && e.child.is_some()));
    }

    #[test]
    fn unmapped_keys_are_not_found() {
        let map = FieldMap::new(&FieldsConfig::default()).unwrap();
        assert!(map.nodes[0].find(b"trace_id").is_none());
        assert!(map.flat(b"levels").is_none());
    }

    #[test]
    fn too_many_paths_are_a_config_error() {
        let cfg = FieldsConfig {
            message: (0..100).map(|i| format!("m{i}")).collect(),
            ..FieldsConfig::default()
        };
        assert!(matches!(
            FieldMap::new(&cfg),
            Err(FieldMapError::TooMany { .. })
        ));
    }

    #[test]
    fn logfmt_escapes_decode() {
        assert_eq!(unescape_logfmt(r#"say \"hi\"\n"#), "say \"hi\"\n");
    }

    #[test]
    fn json_escapes_decode_including_surrogates() {
        assert_eq!(unescape_json(r#"a\"b\u00e9\ud83d\ude00"#), "a\"bé😀");
    }

    #[test]
    fn one_letter_escapes_decode_like_serde_json() {
        for inner in [
            r#"{\"level\":\"error\"}\n"#,
            r#"tab\there\\u not unicode \/ \b\f\r"#,
            r#"é \"ü\" 😀"#,
            r#"plain"#,
            r#"trailing\\"#,
        ] {
            let want: String = serde_json::from_str(&format!("\"{inner}\"")).unwrap();
            assert_eq!(unescape_json(inner), want, "{inner}");
        }
    }
}
