//! Snoozed types as data: a mute that ends by itself after a time or a
//! number of occurrences. Kept beside the types it marks (the state saves
//! it, catalogue exports read it); what a snooze does to the stream, ending
//! it and reopening a type's alert, is `detect::snooze`'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Dur;
use crate::fingerprint::Fingerprint;
use crate::record::EventTime;

/// One snoozed type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snooze {
    /// Event time at which the mute ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<EventTime>,
    /// Wall-clock time (ms) at which it ends under `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_until: Option<i64>,
    /// The mute ends once the type's count exceeds this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_count: Option<u64>,
    /// When it ended (event time): the type's next occurrence reopens its
    /// alert. `None` while the type is snoozed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<EventTime>,
}

/// The snoozed types of a state.
pub type Snoozes = BTreeMap<Fingerprint, Snooze>;

/// The end of a snooze as the operator gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// A moment (RFC 3339).
    At(EventTime),
    /// A duration from now.
    For(Dur),
}

impl std::str::FromStr for Until {
    type Err = String;

    /// `2026-12-05T14:00:00Z` or a duration such as `2h`, `30m`, `1h30m`.
    fn from_str(s: &str) -> Result<Until, String> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Ok(Until::At(t.timestamp_millis()));
        }
        s.parse::<Dur>().map(Until::For).map_err(|_| {
            format!(
                "until `{s}`: expected an RFC 3339 time like 2026-12-05T14:00:00Z or a \
                 duration from now like 2h or 1h30m"
            )
        })
    }
}

impl Snooze {
    /// The snooze of a type seen `count` times so far: it ends at `until`
    /// (a duration counts from the engine's event time `watermark` and,
    /// for the wall clock, from `now`), or after `more` occurrences,
    /// whichever comes first.
    pub fn new(
        until: Option<Until>,
        more: Option<u64>,
        count: u64,
        watermark: Option<EventTime>,
        now: i64,
    ) -> Snooze {
        let (until, wall_until) = match until {
            None => (None, None),
            // A moment already past on the wall clock names a point of a
            // stream that runs behind it (a backlog, logs of the past): it
            // ends in event time only, or it would end at once.
            Some(Until::At(t)) => (Some(t), (t > now).then_some(t)),
            Some(Until::For(d)) => {
                let d = d.as_millis();
                (
                    Some(watermark.unwrap_or(now).saturating_add(d)),
                    Some(now.saturating_add(d)),
                )
            }
        };
        Snooze {
            until,
            wall_until,
            until_count: more.map(|n| count.saturating_add(n)),
            ended_at: None,
        }
    }

    pub(crate) fn running(&self) -> bool {
        self.ended_at.is_none()
    }
}
