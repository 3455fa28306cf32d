//! Stack traces: which lines continue a record, and what they reveal.
//!
//! Java, Python, Go and Rust each print failures across many lines, and a
//! failure split into one record per line would be counted as many unrelated
//! errors. The rules here recognise continuation lines by shape, infer a
//! level from words when a header carries none, and name the exception type
//! (the most stable part of an error's identity) from the trace's own text.
//! All of it is byte-level matching, no regex: these run on every text line.

/// Why a header-less line continues the previous record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// Indented (frames, `\t... 12 more`, Go's file:line lines).
    Indented,
    /// `Traceback (most recent call last):` — may also begin a record of its own.
    Traceback,
    /// `at `, `Caused by:`, `... N more`, `goroutine N [`, Python chaining text.
    Marker,
}

pub(crate) fn continuation(line: &str) -> Option<Continuation> {
    let b = line.as_bytes();
    match b.first()? {
        b' ' | b'\t' => return Some(Continuation::Indented),
        b'T' if line.starts_with("Traceback") => return Some(Continuation::Traceback),
        _ => {}
    }
    const MARKERS: [&str; 5] = [
        "at ",
        "Caused by:",
        "Suppressed:",
        "During handling of the above exception",
        "The above exception was the direct cause",
    ];
    if MARKERS.iter().any(|m| line.starts_with(m))
        || is_goroutine_header(line)
        || is_more_frames(line)
    {
        return Some(Continuation::Marker);
    }
    None
}

/// Java's `... 12 more` (usually indented, but not by every formatter).
fn is_more_frames(line: &str) -> bool {
    line.strip_prefix("... ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// `goroutine 1 [running]:`
fn is_goroutine_header(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("goroutine ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(" [")
}

/// A line that opens a crash with no header of its own: Go's `panic: ` or
/// Rust's `thread 'main' panicked at`.
pub(crate) fn is_panic(line: &str) -> bool {
    line.starts_with("panic: ") || (line.starts_with("thread '") && line.contains("' panicked at"))
}

/// Words that mark a header-less message as an error, matched as whole
/// words, case-insensitively. CamelCase class names ending in `Error` or
/// `Exception` count too: `NullPointerException` is as clear as "exception".
pub(crate) fn says_error(msg: &str) -> bool {
    const WORDS: [&[u8]; 7] = [
        b"error",
        b"exception",
        b"fatal",
        b"failed",
        b"failure",
        b"panic",
        b"traceback",
    ];
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_word_byte(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_word_byte(b[i]) {
            i += 1;
        }
        let word = &b[start..i];
        if (5..=9).contains(&word.len()) && WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
            return true;
        }
        if camel_suffix(word, b"Error") || camel_suffix(word, b"Exception") {
            return true;
        }
    }
    false
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `word` is `…xSuffix` with a lowercase letter or digit before the suffix.
fn camel_suffix(word: &[u8], suffix: &[u8]) -> bool {
    if word.len() <= suffix.len() || !word.ends_with(suffix) {
        return false;
    }
    let before = word[word.len() - suffix.len() - 1];
    before.is_ascii_lowercase() || before.is_ascii_digit()
}

/// The exception type a record reveals, if it does not name one itself.
///
/// * Go and Rust panics, including Go panics recovered and logged with
///   their goroutine dump: `panic`.
/// * Python: the class on the traceback's last unindented line (the
///   exception that finally escaped).
/// * Java and alike: the class on the trace's first line, else in the
///   message (`Exception in thread "main" java.lang.X: …`).
pub(crate) fn infer_error_type(message: &str, trace: Option<&str>) -> Option<String> {
    if is_panic(message) {
        return Some("panic".to_string());
    }
    let trace = trace.unwrap_or("");
    let python =
        message.starts_with("Traceback") || trace.contains("Traceback (most recent call last)");
    if python && let Some(t) = python_final_class(trace) {
        return Some(t.to_string());
    }
    let first = trace.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if let Some(t) = exception_class(first.trim_start()).or_else(|| exception_class(message)) {
        return Some(t.to_string());
    }
    // A recovered Go panic (`http: panic serving …`) logs a goroutine dump
    // under an ordinary header.
    let goroutines = trace.lines().any(is_goroutine_header);
    if goroutines && (message.contains("panic") || trace.contains("\npanic(")) {
        return Some("panic".to_string());
    }
    None
}

/// The message Python itself would show: the traceback's last line, for
/// records that began with a bare `Traceback` line.
pub(crate) fn python_final_line(trace: &str) -> Option<&str> {
    trace.lines().rev().find(|l| is_python_exception_line(l))
}

fn is_python_exception_line(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with([' ', '\t'])
        && continuation(l).is_none()
        && leading_class(l).is_some()
}

fn python_final_class(trace: &str) -> Option<&str> {
    python_final_line(trace).and_then(leading_class)
}

/// `pkg.Name` followed by `:` or the end of the line, at the line start.
fn leading_class(l: &str) -> Option<&str> {
    let end = l
        .bytes()
        .position(|c| !(is_word_byte(c) || c == b'.' || c == b'$'))
        .unwrap_or(l.len());
    let name = &l[..end];
    let rest = &l[end..];
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && (rest.is_empty() || rest.starts_with(':'));
    // The last segment of a class name is capitalised; `note:` is not one.
    let last = name.rsplit('.').next().unwrap_or("");
    (valid && last.starts_with(|c: char| c.is_ascii_uppercase())).then_some(name)
}

/// The line opens with an exception class (`java.lang.X: msg`,
/// `SomethingException`), the way Java prints a trace's first line.
pub(crate) fn starts_with_exception(line: &str) -> bool {
    leading_class(line).is_some_and(|n| n.contains('.') || has_exception_suffix(n))
}

/// The first token that names an exception class: ends in `Exception`,
/// `Error`, `Throwable` or `Fault` anywhere in the line, or is a dotted,
/// capitalised name followed by `:` at the start (`com.x.Boom: msg`).
pub(crate) fn exception_class(line: &str) -> Option<&str> {
    if let Some(name) = leading_class(line)
        && (name.contains('.') || has_exception_suffix(name))
    {
        return Some(name);
    }
    // Mid-line, a bare suffix word ("Exception in thread") is prose, not a class.
    line.split([' ', '\t', '(', '"', '\''])
        .map(|tok| tok.trim_end_matches([':', ',', ';', ')']))
        .find(|tok| {
            is_class_token(tok)
                && has_exception_suffix(tok)
                && (tok.contains('.')
                    || !["Exception", "Error", "Throwable", "Fault"].contains(tok))
        })
}

fn has_exception_suffix(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    ["Exception", "Error", "Throwable", "Fault"]
        .iter()
        .any(|s| last.ends_with(s))
        && last.starts_with(|c: char| c.is_ascii_uppercase())
}

fn is_class_token(tok: &str) -> bool {
    !tok.is_empty()
        && !tok.starts_with('.')
        && !tok.ends_with('.')
        && tok
            .bytes()
            .all(|c| is_word_byte(c) || c == b'.' || c == b'$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_shapes_are_recognised() {
        for l in [
            "\tat com.x.Y.z(Y.java:1)",
            "    File \"x.py\", line 1",
            "at Object.<anonymous> (/app/x.js:1:1)",
            "Caused by: java.io.IOException: disk",
            "\t... 12 more",
            "... 12 more",
            "goroutine 1 [running]:",
            "During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:",
        ] {
            assert!(continuation(l).is_some(), "{l}");
        }
        assert_eq!(
            continuation("Traceback (most recent call last):"),
            Some(Continuation::Traceback)
        );
        for l in [
            "attic is full",
            "goroutines leaked",
            "Caused a problem",
            "ValueError: x",
        ] {
            assert_eq!(continuation(l), None, "{l}");
        }
    }

    #[test]
    fn panics_of_go_and_rust_are_recognised() {
        assert!(is_panic("panic: runtime error: index out of range"));
        assert!(is_panic("thread 'main' panicked at src/main.rs:5:5:"));
        assert!(!is_panic("panicking is bad"));
    }

    #[test]
    fn error_words_count_only_as_whole_words() {
        assert!(says_error("connection Failed after 3 retries"));
        assert!(says_error("Unhandled exception"));
        assert!(says_error("got NullPointerException here"));
        assert!(says_error("ERROR: disk full"));
        assert!(!says_error("errors=0 terror=none"));
        assert!(!says_error("ErrorCount is 5, all fine"));
        assert!(!says_error("request served"));
    }

    #[test]
    fn java_type_comes_from_the_first_trace_line() {
        let trace = "java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)\nCaused by: java.io.IOException: disk";
        assert_eq!(
            infer_error_type("Order failed", Some(trace)).as_deref(),
            Some("java.lang.IllegalStateException")
        );
    }

    #[test]
    fn java_type_comes_from_the_message_when_the_trace_has_only_frames() {
        assert_eq!(
            infer_error_type(
                "Exception in thread \"main\" java.lang.NullPointerException: x",
                Some("\tat a.B.c(B.java:1)")
            )
            .as_deref(),
            Some("java.lang.NullPointerException")
        );
        assert_eq!(
            infer_error_type("com.acme.PaymentDeclined: card", None).as_deref(),
            Some("com.acme.PaymentDeclined")
        );
    }

    #[test]
    fn python_type_comes_from_the_last_line() {
        let trace = "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nKeyError: 'a'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"a.py\", line 3\nrequests.exceptions.ConnectionError: refused";
        assert_eq!(
            infer_error_type("failed", Some(trace)).as_deref(),
            Some("requests.exceptions.ConnectionError")
        );
    }

    #[test]
    fn messages_without_a_class_name_yield_no_type() {
        assert_eq!(
            infer_error_type("Failed to call com.foo.Service: timeout", None),
            None
        );
        assert_eq!(infer_error_type("disk full", Some("  detail")), None);
    }

    #[test]
    fn panics_are_typed_panic() {
        assert_eq!(
            infer_error_type("panic: boom", Some("goroutine 1 [running]:")).as_deref(),
            Some("panic")
        );
        let dump = "goroutine 7 [running]:\nnet/http.(*conn).serve.func1()\npanic({0x1, 0x2})";
        assert_eq!(
            infer_error_type("http: panic serving 10.0.1.52:1: runtime error", Some(dump))
                .as_deref(),
            Some("panic")
        );
    }
}
