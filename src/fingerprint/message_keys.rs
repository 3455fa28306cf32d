//! The keys a structured record writes its event text under: one list,
//! read by the JSON-object rendering (`object`, which keeps that value as
//! the message and masks the others) and by the learned layout's key
//! statistics (`keyed`, which anchors a line's keys on it).
//!
//! Two lists drifted apart before: a JSON object whose text sat under
//! `@mt`, `log`, `body` or `short_message` was rendered with that value as
//! its message, but its context keys were never learned, since the layout
//! stage did not take the key for the message. A key here is compared as
//! written and as the rendering writes it (`@mt` is `_mt` in a rendered
//! line, `object::push_key`).
//!
//! Why it holds on a stranger's logs: the names are the common loggers'
//! and shippers' own (their documented field for the event text), none is
//! a word of one system; a source that uses another name is learned from
//! its lines (`keyed`: the key whose value is the line's text).

/// Keys that hold the event text, in order of preference: `msg` (pino,
/// bunyan, zap, slog, logrus, log15), `message` (winston, zerolog, ECS,
/// Logstash, Vector, Filebeat), `@mt` / `@m` (Serilog's compact JSON: the
/// message template before the rendered message), `event` / `evt`
/// (structlog, logfmt writers), `log` (Docker's and Fluent Bit's
/// envelopes), `body` (OpenTelemetry), `short_message` (GELF).
pub const MESSAGE_KEYS: [&str; 9] = [
    "msg",
    "message",
    "@mt",
    "@m",
    "event",
    "evt",
    "log",
    "body",
    "short_message",
];

/// The rank of `key` in [`MESSAGE_KEYS`] (0 preferred), as written or as
/// a rendered line writes it (a leading `@` as `_`); `None` when it is
/// not a message key.
pub fn rank(key: &str) -> Option<usize> {
    MESSAGE_KEYS.iter().position(|m| {
        *m == key
            || m.strip_prefix('@')
                .is_some_and(|rest| key.strip_prefix('_') == Some(rest))
    })
}

/// Whether `key` names the event text ([`rank`]).
pub fn is_message_key(key: &str) -> bool {
    rank(key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_key_is_known_as_written_and_as_rendered() {
        assert_eq!(rank("msg"), Some(0));
        assert_eq!(rank("@mt"), rank("_mt"));
        assert!(is_message_key("_m"));
        assert!(is_message_key("short_message"));
        assert!(is_message_key("evt"));
        for other in ["_msg", "mt", "level", "messages", "_event", ""] {
            assert!(!is_message_key(other), "{other}");
        }
    }

    #[test]
    fn the_preference_puts_the_template_before_the_rendered_text() {
        assert!(rank("@mt") < rank("@m"));
        assert!(rank("msg") < rank("log"));
    }
}
