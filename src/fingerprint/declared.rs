//! Header-declared rows: a source that names its columns in a directive
//! line (the W3C extended format's `#Fields: date time cs-method …`, Zeek's
//! tab-separated `#fields\tts\tuid\t…`) writes rows whose columns mean what
//! the directive says. Such a row is masked field by field by the column's
//! declared name, not by what its value looks like.
//!
//! Masked as one text, a request row loses its event: the status, substatus
//! and error code are numbers (masked), the path is a path (masked), and
//! the layout, learning from rows of nothing but `<*>`, then masks the
//! method too. The directive tells which column is which, in words every
//! writer of the format uses: a method, a status, a level, a protocol is a
//! small closed set a reader tells events apart by; a path or route names
//! the resource; a message is text; everything else a request row carries
//! (times, addresses, ports, sizes, durations, users, agents, referers,
//! query strings, ids) is a value.
//!
//! The directive repeats when the writer restarts or the file rolls, and
//! may then declare other fields: the source keeps its last few directives
//! (per context, in the layout learner's state) and a row takes the latest
//! one with as many fields as it has. Nothing here is per line state: this
//! module parses directives and judges names; the layout learner keeps
//! them and the fingerprinter masks with them.

use serde::{Deserialize, Serialize};

/// Directives a context keeps (the latest ones): a writer that alternates
/// between a few field lists keeps each; any more evict the oldest.
pub const MAX_HEADERS: usize = 4;

/// Columns a directive may declare (a longer one is not read: bounded work
/// and state).
pub const MAX_NAMES: usize = 64;

/// Longest value of a closed column kept as a word; a longer one is data.
const MAX_CLOSED_LEN: usize = 24;

/// The columns a directive declares and the byte that separates them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub names: Vec<String>,
    pub sep: char,
}

/// What a declared column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A small closed set an event is told by (method, status, level).
    Closed,
    /// A path or route: its segments are kept, a segment with a digit is
    /// an id.
    Path,
    /// Free text: masked as any message is.
    Text,
    /// Anything else: a value.
    Value,
}

/// Last words of a column name for a closed set.
const CLOSED: [&str; 14] = [
    "method",
    "verb",
    "status",
    "substatus",
    "code",
    "level",
    "severity",
    "proto",
    "protocol",
    "action",
    "result",
    "outcome",
    "state",
    "op",
];

/// Last words of a column name for a path.
const PATHS: [&str; 6] = ["stem", "path", "route", "endpoint", "url", "uri"];

/// Last words of a column name for free text.
const TEXTS: [&str; 8] = [
    "message",
    "msg",
    "text",
    "reason",
    "description",
    "comment",
    "note",
    "error",
];

impl Header {
    /// The header a directive line declares, if `line` is one: `#Fields:`
    /// (any case, W3C: names split by spaces, rows by spaces) or `#fields`
    /// followed by a tab (Zeek: names and rows split by tabs).
    pub fn parse(line: &str) -> Option<Header> {
        let b = line.as_bytes();
        if b.len() < 8 || b[0] != b'#' || !b[1..7].eq_ignore_ascii_case(b"fields") {
            return None;
        }
        let rest = &line[7..];
        let (sep, rest) = if let Some(r) = rest.strip_prefix(':') {
            (' ', r)
        } else if rest.starts_with('\t') {
            ('\t', rest)
        } else {
            return None;
        };
        let names: Vec<String> = if sep == '\t' {
            rest.split('\t')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        } else {
            rest.split_ascii_whitespace().map(String::from).collect()
        };
        (names.len() >= 2 && names.len() <= MAX_NAMES).then_some(Header { names, sep })
    }

    /// The row's fields when `row` has exactly the declared number of them
    /// (a directive or comment line is not a row).
    pub fn fields<'r>(&self, row: &'r str) -> Option<impl Iterator<Item = (&'r str, Role)>> {
        if row.starts_with('#') || row.len() > 1 << 16 {
            return None;
        }
        let n = row.split(self.sep).count();
        (n == self.names.len()).then(|| row.split(self.sep).zip(self.names.iter().map(|n| role(n))))
    }
}

/// The role of a column by its declared name: the name's last word
/// (`cs-method`, `sc-win32-status`, `cs-uri-stem`, `id.orig_h`,
/// `status_code`).
pub fn role(name: &str) -> Role {
    let last = name
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .rsplit(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    let is = |set: &[&str]| set.iter().any(|w| last.eq_ignore_ascii_case(w));
    if is(&CLOSED) {
        Role::Closed
    } else if is(&PATHS) {
        Role::Path
    } else if is(&TEXTS) {
        Role::Text
    } else {
        Role::Value
    }
}

/// Whether `v` is the format's mark of an empty field (`-`, Zeek's
/// `(empty)`): in a closed, path or text column it stays as written, so a
/// row with the field set and one without are told apart.
pub fn is_empty_mark(v: &str) -> bool {
    v.is_empty() || v == "-" || v == "(empty)"
}

/// Whether a closed column's value is kept as a word: short, one token.
pub fn keeps_closed(v: &str) -> bool {
    v.len() <= MAX_CLOSED_LEN && !v.bytes().any(|b| b.is_ascii_whitespace())
}

/// Writes a path with each segment that holds a digit masked (an id, a
/// date, a version) and any query string masked: `/orders/8812/items?x=1`
/// → `/orders/<*>/items?<*>`. The words of a route stay; a column whose
/// words vary (static pages) is left to the learned stage, which
/// generalises a position that takes many values.
pub fn push_path(path: &str, var: &str, out: &mut String) {
    let (path, query) = match path.find('?') {
        Some(q) => (&path[..q], true),
        None => (path, false),
    };
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.bytes().any(|b| b.is_ascii_digit()) {
            out.push_str(var);
        } else {
            out.push_str(seg);
        }
    }
    if query {
        out.push('?');
        out.push_str(var);
    }
}

/// Adds `h` as the latest of `headers` (kept at most [`MAX_HEADERS`]); a
/// directive seen before moves to the end. True when it was new.
pub fn remember(headers: &mut Vec<Header>, h: Header) -> bool {
    if headers.last() == Some(&h) {
        return false;
    }
    let known = headers.iter().position(|x| *x == h);
    if let Some(i) = known {
        headers.remove(i);
    } else if headers.len() >= MAX_HEADERS {
        headers.remove(0);
    }
    headers.push(h);
    known.is_none()
}

/// The latest of `headers` that fits `row` (as many fields).
pub fn fitting<'h>(headers: &'h [Header], row: &str) -> Option<&'h Header> {
    headers.iter().rev().find(|h| h.fields(row).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_directive_declares_its_space_separated_names() {
        let h = Header::parse("#Fields: date time c-ip cs-method cs-uri-stem sc-status").unwrap();
        assert_eq!(h.sep, ' ');
        assert_eq!(h.names.len(), 6);
        assert_eq!(h.names[3], "cs-method");
    }

    #[test]
    fn a_zeek_directive_declares_its_tab_separated_names() {
        let h = Header::parse("#fields\tts\tuid\tid.orig_h\tproto\tconn_state").unwrap();
        assert_eq!(h.sep, '\t');
        assert_eq!(h.names, ["ts", "uid", "id.orig_h", "proto", "conn_state"]);
    }

    #[test]
    fn other_comment_lines_declare_nothing() {
        for l in [
            "#Software: Some Server 9.1",
            "#Date: 2031-01-02 03:04:05",
            "#fieldset broken",
            "#Fields:",
            "# fields: a b",
            "fields: a b c",
        ] {
            assert_eq!(Header::parse(l), None, "{l}");
        }
    }

    #[test]
    fn names_say_which_columns_are_events_paths_text_or_values() {
        for n in [
            "cs-method",
            "sc-status",
            "sc-substatus",
            "sc-win32-status",
            "proto",
        ] {
            assert_eq!(role(n), Role::Closed, "{n}");
        }
        for n in ["conn_state", "status_code", "log.level"] {
            assert_eq!(role(n), Role::Closed, "{n}");
        }
        for n in ["cs-uri-stem", "request_path", "cs-uri"] {
            assert_eq!(role(n), Role::Path, "{n}");
        }
        for n in ["message", "x-reason"] {
            assert_eq!(role(n), Role::Text, "{n}");
        }
        for n in [
            "date",
            "time",
            "c-ip",
            "s-port",
            "cs-username",
            "cs(User-Agent)",
            "cs(Referer)",
            "time-taken",
            "sc-bytes",
            "cs-uri-query",
            "uid",
            "id.orig_h",
            "duration",
        ] {
            assert_eq!(role(n), Role::Value, "{n}");
        }
    }

    #[test]
    fn a_row_fits_a_header_with_as_many_fields() {
        let h = Header::parse("#Fields: date time cs-method sc-status").unwrap();
        let f: Vec<_> = h.fields("2031-01-02 03:04:05 PUT 201").unwrap().collect();
        assert_eq!(f[2], ("PUT", Role::Closed));
        assert_eq!(f[0], ("2031-01-02", Role::Value));
        assert!(h.fields("2031-01-02 03:04:05 PUT").is_none());
        assert!(h.fields("#Date: 2031-01-02 03:04:05").is_none());
    }

    #[test]
    fn a_path_keeps_its_words_and_masks_ids_and_queries() {
        let mut s = String::new();
        push_path("/v3/parcels/88121/label?fmt=pdf", "<*>", &mut s);
        assert_eq!(s, "/<*>/parcels/<*>/label?<*>");
        s.clear();
        push_path("/parcels/track", "<*>", &mut s);
        assert_eq!(s, "/parcels/track");
    }

    #[test]
    fn the_latest_directive_that_fits_a_row_wins_and_few_are_kept() {
        let a = Header::parse("#Fields: date time cs-method sc-status").unwrap();
        let b = Header::parse("#Fields: date time cs-method cs-uri-stem sc-status").unwrap();
        let mut hs = Vec::new();
        assert!(remember(&mut hs, a.clone()));
        assert!(!remember(&mut hs, a.clone()));
        assert!(remember(&mut hs, b.clone()));
        assert_eq!(fitting(&hs, "d t GET 200"), Some(&a));
        assert_eq!(fitting(&hs, "d t GET /x 200"), Some(&b));
        for k in 0..2 * MAX_HEADERS {
            let names = (0..k + 6).map(|i| format!("f{i}")).collect::<Vec<_>>();
            remember(
                &mut hs,
                Header::parse(&format!("#Fields: {}", names.join(" "))).unwrap(),
            );
        }
        assert_eq!(hs.len(), MAX_HEADERS);
    }
}
