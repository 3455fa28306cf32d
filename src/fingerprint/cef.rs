//! Security event records in the two pipe-headed standards: ArcSight's
//! Common Event Format (`CEF:0|Vendor|Product|Version|SignatureID|Name|
//! Severity|ext`) and QRadar's Log Event Extended Format (`LEEF:1.0|Vendor|
//! Product|Version|EventID|ext`, `LEEF:2.0|…|EventID|delimiter|ext`), on
//! their own or after a syslog header.
//!
//! Masked as text, the header's `|`-glued fields read as one composite
//! value (`Gateway|12.4.1|22|Session` became one `<*>` and the event's
//! name lost a word), and the extension's values, which may hold spaces
//! (a CEF value runs to the next ` key=`), changed the word count of the
//! line with every value: one event split into as many types as it had
//! value lengths, and two events that share their keys merged.
//!
//! Both standards say where the event is: the signature (event) id names
//! it, with the name (CEF) beside it; the extension carries the event's
//! data by key. So a record is written as
//!
//! ```text
//! <prefix masked> \u{a0}CEF:0|Vendor|Product|<*>|SignatureID| Name words |Severity| key=<*> key=<*> …
//! ```
//!
//! * the header up to the signature id is one word opened by
//!   [`KEPT_MARK`]: the learned stage never takes it for a value, so
//!   events with different ids stay apart however many there are; the
//!   device version is `<*>` (an upgrade of the device does not rename
//!   its events);
//! * the name is masked as text and its words stay words: where one id
//!   carries names with a value in them, the learned stage generalises it;
//! * every extension value is `<*>` (the standards define the extension as
//!   the event's data), but for a custom field's label (`cs1Label=…`,
//!   a key ending in `Label`), which names the field beside it and is
//!   kept, its spaces joined by `_`.
//!
//! Why it holds on a stranger's logs: it is the published layout of both
//! formats, and names no vendor, product or key but the standard's own
//! `…Label` convention. The test is cheap: only a line with a `|` is
//! looked at, and only the word before its first `|` is compared.
//! Bounded: at most [`MAX_PAIRS`] extension pairs are written (the rest is
//! one `<*>`); every step is linear in the line.

use super::VAR;
use super::delimited::{KEPT_MARK, push_one_word};

/// Extension pairs written per record; the rest is one `<*>`.
pub const MAX_PAIRS: usize = 64;

/// Which of the two standards a header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standard {
    /// `CEF:<n>|` and six more header fields.
    Cef,
    /// `LEEF:<n>.<n>|` and four more header fields (a fifth, the
    /// delimiter, in LEEF 2.0).
    Leef,
}

/// Where the standard's header starts in `line` (the byte of `C` or `L`)
/// and which one it is, given the line's first `|` at `bar`: the word
/// before it is `CEF:` and digits, or `LEEF:` and digits and a dot, at the
/// start of the line or after a space or a syslog priority's `>`.
pub fn header_start(line: &str, bar: usize) -> Option<(usize, Standard)> {
    let head = &line.as_bytes()[..bar];
    let digits = head
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    if digits == 0 || digits > 8 {
        return None;
    }
    let before = &head[..head.len() - digits];
    let (start, std) = if before.ends_with(b"LEEF:") {
        (before.len() - 5, Standard::Leef)
    } else if before.ends_with(b"CEF:") {
        (before.len() - 4, Standard::Cef)
    } else {
        return None;
    };
    let open = start == 0 || matches!(head[start - 1], b' ' | b'>' | b'\t');
    open.then_some((start, std))
}

/// Byte offsets of the first `n` unescaped `|` from `from` on (`\|` and
/// `\\` are escapes in a header); fewer when the line has fewer.
fn bars(b: &[u8], from: usize, n: usize, out: &mut Vec<usize>) {
    let mut i = from;
    while i < b.len() && out.len() < n {
        match b[i] {
            b'\\' => i += 1,
            b'|' => out.push(i),
            _ => {}
        }
        i += 1;
    }
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'[' | b']')
}

/// The `(key start, '=' offset)` of every pair of a CEF extension: an
/// unescaped `=` after a run of key characters that opens the extension
/// or follows a space. A value runs to the space before the next key.
fn cef_pairs(b: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut escaped = false;
    for (i, &c) in b.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b'=' => {
                let ks = b[..i]
                    .iter()
                    .rposition(|&c| !is_key_byte(c))
                    .map_or(0, |p| p + 1);
                if ks < i && (ks == 0 || b[ks - 1] == b' ') {
                    out.push((ks, i));
                }
            }
            _ => {}
        }
    }
}

/// Writes one extension pair: the key, and `<*>` or a kept label.
fn push_pair(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    if key.ends_with("Label") && !value.trim().is_empty() {
        push_one_word(out, value.trim());
    } else {
        out.push_str(VAR);
    }
}

/// Writes the record `line` whose header starts at `start` into `out` as
/// the module doc says; `mask` masks a piece of text (the prefix, the
/// name) into a cleared buffer. False, and `out` untouched, when the
/// header is incomplete or the extension is not a run of pairs: the
/// line is then masked as any other.
pub fn mask_record(
    line: &str,
    start: usize,
    std: Standard,
    out: &mut String,
    mut mask: impl FnMut(&str, &mut String),
) -> bool {
    let b = line.as_bytes();
    let fields = match std {
        Standard::Cef => 7,
        Standard::Leef => 5,
    };
    let mut at = Vec::with_capacity(fields + 1);
    bars(b, start, fields + 1, &mut at);
    if at.len() < fields {
        return false;
    }
    // LEEF 2.0 may name its attribute delimiter in a sixth field: one
    // character, or its hex code (`x5E`, `0x5E`).
    let mut ext_from = at[fields - 1] + 1;
    let mut delim = match std {
        Standard::Cef => b' ',
        Standard::Leef => b'\t',
    };
    if std == Standard::Leef
        && let Some(&sixth) = at.get(fields)
    {
        let d = &line[ext_from..sixth];
        if let Some(c) = leef_delimiter(d) {
            delim = c;
            ext_from = sixth + 1;
        }
    }
    let ext = &line[ext_from..];
    let mut pairs = Vec::new();
    if delim == b' ' {
        cef_pairs(ext.as_bytes(), &mut pairs);
        let lead = pairs.first().map_or(ext.len(), |&(ks, _)| ks);
        if !ext[..lead].trim().is_empty() {
            return false;
        }
    } else {
        let mut from = 0;
        for piece in ext.split(delim as char) {
            let Some(eq) = piece.find('=') else {
                if !piece.trim().is_empty() {
                    return false;
                }
                from += piece.len() + 1;
                continue;
            };
            if !piece[..eq].trim().bytes().all(is_key_byte) {
                return false;
            }
            let lead = piece.len() - piece.trim_start().len();
            pairs.push((from + lead, from + eq));
            from += piece.len() + 1;
        }
    }
    let mut one = String::new();
    let mut text = String::new();
    if start > 0 {
        mask(&line[..start], &mut one);
        text.push_str(one.trim_end());
        text.push(' ');
    }
    text.push(KEPT_MARK);
    // Standard and its version, vendor, product; the device version is
    // `<*>`; then the event id.
    text.push_str(&line[start..at[0]]);
    for w in [(at[0], at[1]), (at[1], at[2])] {
        text.push('|');
        push_one_word(&mut text, &line[w.0 + 1..w.1]);
    }
    text.push('|');
    text.push_str(VAR);
    text.push('|');
    push_one_word(&mut text, &line[at[3] + 1..at[4]]);
    text.push('|');
    if std == Standard::Cef {
        mask(&line[at[4] + 1..at[5]], &mut one);
        for w in one.split_whitespace() {
            text.push(' ');
            text.push_str(w);
        }
        text.push_str(" |");
        push_one_word(&mut text, &line[at[5] + 1..at[6]]);
        text.push('|');
    }
    for (i, &(ks, eq)) in pairs.iter().enumerate() {
        if i == MAX_PAIRS {
            text.push(' ');
            text.push_str(VAR);
            break;
        }
        let end = match pairs.get(i + 1) {
            Some(&(next, _)) => next,
            None => ext.len(),
        };
        let value = ext[eq + 1..end].trim_end_matches([' ', char::from(delim)]);
        push_pair(&mut text, ext[ks..eq].trim(), value);
    }
    *out = text;
    true
}

/// The delimiter a LEEF 2.0 header's sixth field names: one character
/// (not a letter or digit), or a hex code `x5E` / `0x5E`.
fn leef_delimiter(d: &str) -> Option<u8> {
    let d = d.trim();
    if d.len() == 1 && !d.as_bytes()[0].is_ascii_alphanumeric() && d != "=" {
        return Some(d.as_bytes()[0]);
    }
    let hex = d
        .strip_prefix("0x")
        .or_else(|| d.strip_prefix("x"))
        .or_else(|| d.strip_prefix("0X"))?;
    let c = u8::from_str_radix(hex, 16).ok()?;
    (c.is_ascii() && !c.is_ascii_alphanumeric() && c != b'=' && c != 0).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masks as the fingerprinter would, roughly: digits are values.
    fn masked(line: &str) -> Option<String> {
        let bar = line.find('|')?;
        let (start, std) = header_start(line, bar)?;
        let mut out = String::new();
        let ok = mask_record(line, start, std, &mut out, |t, o| {
            o.clear();
            let w: Vec<String> = t
                .split_whitespace()
                .map(|w| {
                    if w.bytes().any(|b| b.is_ascii_digit()) {
                        VAR.to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            o.push_str(&w.join(" "));
        });
        ok.then_some(out)
    }

    #[test]
    fn a_cef_record_is_its_signature_name_and_keys_with_every_value_masked() {
        let a = masked(
            "Mar  3 10:00:01 fw7 CEF:0|Acme Corp|Edge Wall|5.1.2|4120|Port blocked|6|src=10.1.2.3 dst=10.9.9.9 reason=rule matched by operator spt=443",
        )
        .unwrap();
        let b = masked(
            "Mar  3 10:02:11 fw8 CEF:0|Acme Corp|Edge Wall|5.1.3|4120|Port blocked|6|src=10.1.2.4 dst=10.9.9.1 reason=default spt=80",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            format!(
                "Mar <*> <*> <*> {KEPT_MARK}CEF:0|Acme_Corp|Edge_Wall|<*>|4120| Port blocked |6| src=<*> dst=<*> reason=<*> spt=<*>"
            )
        );
    }

    #[test]
    fn two_signatures_with_the_same_keys_stay_two_events() {
        let a =
            masked("CEF:0|Orbit|Vault|2.0|17|Key rotated|3|suser=kim cs2Label=Vault Name cs2=main")
                .unwrap();
        let b =
            masked("CEF:0|Orbit|Vault|2.0|18|Key revoked|3|suser=kim cs2Label=Vault Name cs2=main")
                .unwrap();
        assert_ne!(a, b);
        assert!(a.ends_with(" suser=<*> cs2Label=Vault_Name cs2=<*>"), "{a}");
        assert!(
            a.contains(&format!("{KEPT_MARK}CEF:0|Orbit|Vault|<*>|17|")),
            "{a}"
        );
    }

    #[test]
    fn an_escaped_equals_sign_stays_inside_its_value() {
        let a = masked("CEF:0|Orbit|Vault|2.0|17|Key rotated|3|msg=level\\=high and more cnt=4")
            .unwrap();
        assert!(a.ends_with(" |3| msg=<*> cnt=<*>"), "{a}");
    }

    #[test]
    fn an_escaped_bar_stays_inside_its_header_field() {
        let a = masked("CEF:0|Orbit|Vault\\|HA|2.0|17|Key rotated|3|cnt=4").unwrap();
        assert!(
            a.contains("|Vault\\|HA|<*>|17| Key rotated |3| cnt=<*>"),
            "{a}"
        );
    }

    #[test]
    fn a_leef_record_reads_its_tab_or_declared_delimiter() {
        let tab = masked(
            "LEEF:1.0|Northwind|Gatekeeper|3.2|LoginFail|usrName=ana\tsrc=10.0.0.1\tproto=TCP",
        )
        .unwrap();
        assert_eq!(
            tab,
            format!(
                "{KEPT_MARK}LEEF:1.0|Northwind|Gatekeeper|<*>|LoginFail| usrName=<*> src=<*> proto=<*>"
            )
        );
        let caret = masked("<13>Jan 5 host LEEF:2.0|Northwind|Gatekeeper|3.2|LoginFail|^|usrName=ana lee^src=10.0.0.1").unwrap();
        assert!(
            caret.ends_with("|LoginFail| usrName=<*> src=<*>"),
            "{caret}"
        );
        let hex =
            masked("LEEF:2.0|Northwind|Gatekeeper|3.2|LoginFail|x7C|usrName=ana|src=10.0.0.1")
                .unwrap();
        assert!(hex.ends_with("|LoginFail| usrName=<*> src=<*>"), "{hex}");
    }

    #[test]
    fn a_line_that_only_mentions_the_standard_is_not_read_as_one() {
        assert_eq!(masked("exported to CEF:0 and more|a|b"), None);
        assert_eq!(masked("grep XCEF:0|a|b|c|d|e|f|x=1"), None);
        assert_eq!(masked("CEF:0|too|few|fields"), None);
        assert_eq!(masked("CEF:0|V|P|1|2|N|3|not pairs here"), None);
    }

    #[test]
    fn pairs_past_the_cap_are_one_placeholder() {
        let ext: Vec<String> = (0..MAX_PAIRS + 5).map(|i| format!("k{i}=v")).collect();
        let a = masked(&format!("CEF:0|V|P|1|2|N|3|{}", ext.join(" "))).unwrap();
        assert_eq!(a.matches("=<*>").count(), MAX_PAIRS);
        assert!(a.ends_with(" <*>"), "{a}");
    }
}
