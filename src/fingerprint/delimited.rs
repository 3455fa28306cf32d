//! Delimited records: a message that is a row of quoted fields
//! (`"2026-…","a.user@x","FileUploaded","/docs/a, b.pdf","Succeeded"`) is
//! masked field by field, each field one token of the template.
//!
//! Masking the row as one text fails both ways: a quoted-string rule takes
//! everything from the first quote to the last as one value (the event
//! column goes with it), and a field with spaces or commas inside (a file
//! name, a user agent, a search term) shifts every later position, so the
//! learned stage cannot line the columns up. Split first, honouring the
//! quoting (`"a, ""b"" c"` is one field), and each column keeps its
//! place: the learner then generalises a column that takes many values and
//! keeps one with a few event words, position by position, as it does for
//! any other template.
//!
//! Detected per line, with no state: a row has at least three fields split
//! by one separator (`,` `;` tab `|`) outside quotes, every quote in it
//! opens or closes a whole field (or is doubled inside one), and at least
//! two fields — and at least half — are quoted. Running text with a quoted
//! word or two (`cannot open "a", retrying`) or a JSON object
//! (`{"k":"v","w":1}`) is not such a row: a quote that does not span a
//! whole field disqualifies the separator. So the same line always gives
//! the same template (replay = run, no learning order), and the cost is one
//! pass over the line per candidate separator, only for lines with a quote.

/// Separators a row of quoted fields may use, in the order tried.
const SEPARATORS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Fields of a row (at least this many) before it is read as one.
const MIN_FIELDS: usize = 3;

/// A row's scratch space, reused per thread: the unquoted fields, their
/// ranges, and one field's masked text.
pub(crate) type Scratch = (String, Vec<(usize, usize)>, String);

/// At most this many fields are split out; a longer row is left to the
/// ordinary masking (bounded work and a bounded template).
const MAX_FIELDS: usize = 64;

/// What joins two tab-separated fields in the template: the tab is the
/// column bound the layout reads; the space after it keeps the learned
/// stage's words apart (it splits on spaces only: a bare tab would glue
/// two fields into one word; here the tab rides on the field before it).
pub(crate) const TAB_JOINER: &str = "\t ";

/// What opens a column of a row that the source's layout found to name
/// its record's event (a state, an outcome: `layout`, per record kind):
/// a no-break space, which masking never writes at a word's start (it
/// splits fields on white space and trims them) and the layout's columns
/// trim (so a marked column is the same column). The learned stage never
/// takes such a word for a value (`learn`): a kind's few states, each
/// seen many times, stay apart however soon the third one comes.
pub(crate) const KEPT_MARK: char = '\u{a0}';

/// A template as people read it: the [`KEPT_MARK`]s taken out. The mark
/// is the learner's (a template keeps it, so a type's id and its learned
/// positions do not change); alerts, `types` and reports show the column's
/// word alone, as the log wrote it.
pub fn readable(template: &str) -> std::borrow::Cow<'_, str> {
    if template.contains(KEPT_MARK) {
        std::borrow::Cow::Owned(template.replace(KEPT_MARK, ""))
    } else {
        std::borrow::Cow::Borrowed(template)
    }
}

/// Writes `s` as one template word: its whitespace runs joined by `_` (a
/// kept field or header field with spaces stays one column).
pub(crate) fn push_one_word(out: &mut String, s: &str) {
    for (i, w) in s.split_ascii_whitespace().enumerate() {
        if i > 0 {
            out.push('_');
        }
        out.push_str(w);
    }
}

/// What joins two fields in the template: the separator and a space, so
/// every field is a whitespace token of its own.
pub(crate) fn joiner(sep: u8) -> &'static str {
    match sep {
        b',' => ", ",
        b';' => "; ",
        b'|' => " | ",
        _ => TAB_JOINER,
    }
}

/// The fields of `line` read as a row of quoted fields, with the
/// separator, or `None` when it is not one. A quoted field's content is
/// unquoted (`""` → `"`) into `buf`; each field is a byte range of `buf`.
pub(crate) fn split(line: &str, buf: &mut String, fields: &mut Vec<(usize, usize)>) -> Option<u8> {
    let bytes = line.as_bytes();
    memchr::memchr(b'"', bytes)?;
    for sep in SEPARATORS {
        if memchr::memchr(sep, bytes).is_none() {
            continue;
        }
        buf.clear();
        fields.clear();
        if let Some(quoted) = split_with(line, sep, buf, fields)
            && fields.len() >= MIN_FIELDS
            && quoted >= 2
            && 2 * quoted >= fields.len()
        {
            return Some(sep);
        }
    }
    buf.clear();
    fields.clear();
    None
}

/// Splits on `sep` outside quotes; `Some(number of quoted fields)`, or
/// `None` when a quote does not open or close a whole field (or there are
/// more than [`MAX_FIELDS`] fields).
fn split_with(
    line: &str,
    sep: u8,
    buf: &mut String,
    fields: &mut Vec<(usize, usize)>,
) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut quoted = 0;
    loop {
        if fields.len() >= MAX_FIELDS {
            return None;
        }
        // Spaces before a quoted field (`"a", "b"`) are padding.
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let start = buf.len();
        if j < b.len() && b[j] == b'"' {
            quoted += 1;
            let mut k = j + 1;
            let mut from = k;
            loop {
                let q = k + memchr::memchr(b'"', &b[k..])?;
                if b.get(q + 1) == Some(&b'"') {
                    buf.push_str(&line[from..=q]);
                    k = q + 2;
                    from = k;
                    continue;
                }
                buf.push_str(&line[from..q]);
                k = q + 1;
                break;
            }
            fields.push((start, buf.len()));
            // Spaces after the closing quote, then the separator or the end.
            while k < b.len() && b[k] == b' ' {
                k += 1;
            }
            if k == b.len() {
                return Some(quoted);
            }
            if b[k] != sep {
                return None;
            }
            i = k + 1;
        } else {
            let end = memchr::memchr(sep, &b[i..]).map_or(b.len(), |e| i + e);
            let field = &line[i..end];
            if field.contains('"') {
                return None;
            }
            buf.push_str(field);
            fields.push((start, buf.len()));
            if end == b.len() {
                return Some(quoted);
            }
            i = end + 1;
        }
    }
}

/// Tabs (at least this many, between fields) before an unquoted line is
/// read as a row of tab-separated fields.
const MIN_TABS: usize = 2;

/// The fields of `line` read as a row of tab-separated fields (no quoting:
/// a tab inside a value cannot be told from a separator), or `None` when it
/// is not one.
///
/// Unlike `,` `;` or `|`, which running text uses, a tab inside a log line
/// is almost always a column bound (exports, tab-separated event logs,
/// spreadsheets pasted into a log): a line with [`MIN_TABS`] tabs between
/// its words is a row, and an empty field (two tabs in a row) is a column
/// that keeps its place. Tabs that only indent the line are not
/// separators; a tab at the end is an empty last field. At most
/// [`MAX_FIELDS`] fields: a longer row is left to the ordinary masking.
pub(crate) fn tab_fields(line: &str) -> Option<std::str::Split<'_, char>> {
    let inner = line
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .trim_end_matches(['\r', '\n', ' ']);
    let tabs = memchr::memchr_iter(b'\t', inner.as_bytes()).count();
    if !(MIN_TABS..MAX_FIELDS).contains(&tabs) {
        return None;
    }
    Some(inner.split('\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_template_drops_only_the_kept_mark() {
        assert_eq!(readable("<*>\t \u{a0}OPEN\t <*>"), "<*>\t OPEN\t <*>");
        assert!(matches!(readable("a b <*>"), std::borrow::Cow::Borrowed(_)));
    }

    fn tab_row(line: &str) -> Option<Vec<&str>> {
        tab_fields(line).map(Iterator::collect)
    }

    #[test]
    fn a_tab_separated_row_keeps_its_empty_fields_in_place() {
        assert_eq!(
            tab_row("07:12\tNorth Gate\t\tOPEN\tBarrier raised\t\t\r"),
            Some(vec![
                "07:12",
                "North Gate",
                "",
                "OPEN",
                "Barrier raised",
                "",
                ""
            ])
        );
    }

    #[test]
    fn tabs_that_only_indent_or_pad_a_line_are_not_a_row() {
        assert_eq!(tab_row("\t\tat org.acme.Pump.run(Pump.java:12)"), None);
        assert_eq!(tab_row("key\tvalue"), None);
    }

    fn fields_of(line: &str) -> Option<(u8, Vec<String>)> {
        let mut buf = String::new();
        let mut f = Vec::new();
        let sep = split(line, &mut buf, &mut f)?;
        Some((sep, f.iter().map(|&(s, e)| buf[s..e].to_string()).collect()))
    }

    #[test]
    fn a_quoted_field_keeps_its_commas_and_doubled_quotes() {
        let (sep, f) = fields_of(r#""t1","ann lee","Opened","a, ""b"" c","ok""#).unwrap();
        assert_eq!(sep, b',');
        assert_eq!(f, ["t1", "ann lee", "Opened", r#"a, "b" c"#, "ok"]);
    }

    #[test]
    fn unquoted_fields_may_sit_between_quoted_ones() {
        let (sep, f) = fields_of(r#"17;"left wing";"x";3"#).unwrap();
        assert_eq!(sep, b';');
        assert_eq!(f, ["17", "left wing", "x", "3"]);
    }

    #[test]
    fn running_text_with_quoted_words_is_not_a_row() {
        assert_eq!(
            fields_of(r#"cannot open "a", retrying "b", giving up"#),
            None
        );
        assert_eq!(fields_of(r#"bad keys "x","y" in request"#), None);
        assert_eq!(fields_of("no quotes, at all, here"), None);
    }

    #[test]
    fn a_json_object_is_not_a_row() {
        assert_eq!(fields_of(r#"{"k":"v","w":"z","n":1}"#), None);
        assert_eq!(fields_of(r#"payload ["a","b","c"] refused"#), None);
    }

    #[test]
    fn a_row_needs_two_quoted_fields_and_half_of_them() {
        assert_eq!(fields_of(r#"1,2,3,4,"five""#), None);
        assert!(fields_of(r#"1,"two","three""#).is_some());
        assert!(fields_of(r#""one" | "two" | 3"#).is_some());
    }

    #[test]
    fn an_unclosed_quote_is_not_a_row() {
        assert_eq!(fields_of(r#""a","b","c"#), None);
    }

    #[test]
    fn an_empty_quoted_field_is_a_field() {
        let (_, f) = fields_of(r#""a","","c""#).unwrap();
        assert_eq!(f, ["a", "", "c"]);
    }
}
