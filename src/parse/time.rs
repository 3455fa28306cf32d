//! Timestamps: every spelling a log line may use, turned into epoch millis.
//!
//! ISO 8601 / RFC 3339 is what nearly every line carries, so it has a
//! hand-written parser that touches each byte once and never allocates;
//! chrono is only consulted for the rare forms (RFC 2822, Apache access-log
//! dates). Forms without a year (syslog `Nov  2 10:00:01`, klog `1102 …`) or
//! without a date (logback's default `10:00:01.123`) borrow what is missing
//! from a reference time — the previous record's — because a log file is a
//! sequence and its neighbours are the best witness; without one, the
//! current clock stands in. Timestamps without a zone are UTC: the logs this
//! service watches come from containers, which run in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::record::EventTime;

const MS_PER_DAY: i64 = 86_400_000;

/// [`parse_text_with`] with a known reference.
#[cfg(test)]
pub(crate) fn parse_text(s: &str, reference: Option<EventTime>) -> Option<EventTime> {
    parse_text_with(s, || reference)
}

/// Parses a textual timestamp. `reference` supplies the year or date for
/// forms that lack them; it is asked for only by those forms, so a caller
/// can tell whether the previous record's time mattered. `None` means "not
/// a timestamp I know".
pub(crate) fn parse_text_with(
    s: &str,
    reference: impl FnOnce() -> Option<EventTime>,
) -> Option<EventTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() >= 16 && is_digits(&b[..4]) && matches!(b[4], b'-' | b'/') {
        return parse_iso(b);
    }
    if !b.is_empty() && b.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
        return parse_number(s);
    }
    if b.len() >= 15 && b[0].is_ascii_alphabetic() {
        if b[3] == b' ' && b[4].is_ascii_alphabetic() {
            return parse_apache(b);
        }
        if b[3] == b' ' {
            return parse_syslog(b, reference());
        }
    }
    if b.len() >= 13 && is_digits(&b[..4]) && b[4] == b' ' {
        return parse_klog(b, reference());
    }
    if b.len() >= 8 && b[2] == b':' {
        return parse_time_only(b, reference());
    }
    parse_rare(s)
}

/// Epoch seconds, millis, micros or nanos, told apart by magnitude: any
/// plausible date in seconds is below 1e11 (year 5138), in millis below 1e14,
/// in micros below 1e17.
pub(crate) fn parse_number(s: &str) -> Option<EventTime> {
    let s = s.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        // Exponent notation (`1.7e9`) is legal JSON but rare; f64 is precise
        // enough for it.
        let v: f64 = s.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        return from_magnitude_f64(v);
    }
    let v: u64 = int.parse().ok()?;
    let frac_ms = |f: Option<&str>, scale: u32| -> i64 {
        // Fraction digits of the unit, scaled to millis.
        let Some(f) = f else { return 0 };
        let mut ms = 0i64;
        let mut weight = 10i64.pow(scale);
        for c in f.bytes().take(scale as usize) {
            weight /= 10;
            ms += i64::from(c - b'0') * weight;
        }
        ms
    };
    let v = i64::try_from(v).ok()?;
    Some(if v < 100_000_000_000 {
        v.checked_mul(1000)? + frac_ms(frac, 3)
    } else if v < 100_000_000_000_000 {
        v
    } else if v < 100_000_000_000_000_000 {
        v / 1000
    } else {
        v / 1_000_000
    })
}

fn from_magnitude_f64(v: f64) -> Option<EventTime> {
    let ms = if v < 1e11 {
        v * 1000.0
    } else if v < 1e14 {
        v
    } else if v < 1e17 {
        v / 1000.0
    } else {
        v / 1e6
    };
    if ms > 9.0e15 {
        return None;
    }
    Some(ms as i64)
}

fn is_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !is_digits(b) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
}

/// Parses `.123456` style fractions into millis and returns the bytes left.
fn fraction(b: &[u8]) -> (i64, &[u8]) {
    if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
        return (0, b);
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut ms = 0i64;
    let mut weight = 100i64;
    for &c in &b[1..1 + digits.min(3)] {
        ms += i64::from(c - b'0') * weight;
        weight /= 10;
    }
    (ms, &b[1 + digits..])
}

/// `HH:MM:SS` at the start of `b`, as millis of the day, plus the rest.
fn clock(b: &[u8]) -> Option<(i64, &[u8])> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let h = num(&b[0..2])?;
    let m = num(&b[3..5])?;
    // 60 is a leap second; folding it into 59 keeps the day intact.
    let s = num(&b[6..8])?.min(59);
    if h > 23 || m > 59 {
        return None;
    }
    let (frac, rest) = fraction(&b[8..]);
    Some((i64::from(h * 3600 + m * 60 + s) * 1000 + frac, rest))
}

fn parse_iso(b: &[u8]) -> Option<EventTime> {
    let sep = b[4];
    if b[7] != sep || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = num(&b[0..4])? as i32;
    let month = num(&b[5..7])?;
    let day = num(&b[8..10])?;
    let (tod, rest) = clock(&b[11..]).or_else(|| {
        // Minutes precision (`2026-11-02T10:00Z`) appears in hand-written logs.
        if b.len() >= 16 && b[13] == b':' {
            let h = num(&b[11..13])?;
            let m = num(&b[14..16])?;
            (h <= 23 && m <= 59).then(|| (i64::from(h * 3600 + m * 60) * 1000, &b[16..]))
        } else {
            None
        }
    })?;
    let offset = zone(rest)?;
    let days = days_from_civil(year, month, day)?;
    Some(days * MS_PER_DAY + tod - offset)
}

/// Zone suffix as an offset in millis; nothing, `Z` or ` UTC` are zero.
fn zone(b: &[u8]) -> Option<i64> {
    match b {
        [] | [b'Z' | b'z'] | b" UTC" | b" Z" => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (num(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = i64::from(h * 60 + m) * 60_000;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

fn month_from_name(b: &[u8]) -> Option<u32> {
    if b.len() < 3 {
        return None;
    }
    let m = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// Day of month, one or two digits, possibly space-padded (`" 2"`), then the rest.
fn day_of_month(b: &[u8]) -> Option<(u32, &[u8])> {
    let b = trim_spaces(b);
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 2 {
        return None;
    }
    Some((num(&b[..n])?, &b[n..]))
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ').count();
    &b[n..]
}

/// Apache error log: `Mon Nov 02 10:00:01.123456 2026`.
fn parse_apache(b: &[u8]) -> Option<EventTime> {
    let month = month_from_name(&b[4..])?;
    let (day, rest) = day_of_month(b.get(7..)?)?;
    let rest = trim_spaces(rest);
    let (tod, rest) = clock(rest)?;
    let rest = trim_spaces(rest);
    if rest.len() != 4 {
        return None;
    }
    let year = num(rest)? as i32;
    Some(days_from_civil(year, month, day)? * MS_PER_DAY + tod)
}

/// RFC 3164: `Nov  2 10:00:01`, no year.
fn parse_syslog(b: &[u8], reference: Option<EventTime>) -> Option<EventTime> {
    let month = month_from_name(b)?;
    let (day, rest) = day_of_month(&b[3..])?;
    let rest = trim_spaces(rest);
    let (tod, rest) = clock(rest)?;
    if !rest.is_empty() {
        return None;
    }
    without_year(month, day, tod, reference)
}

/// klog / glog: `1102 10:00:01.123456` (month and day, no year).
fn parse_klog(b: &[u8], reference: Option<EventTime>) -> Option<EventTime> {
    let month = num(&b[0..2])?;
    let day = num(&b[2..4])?;
    let (tod, rest) = clock(&b[5..])?;
    if !rest.is_empty() {
        return None;
    }
    without_year(month, day, tod, reference)
}

/// The year comes from the reference; a date far before it means the log
/// crossed New Year since, and a date in the future (when only the clock is
/// known) means the log is from last year.
fn without_year(month: u32, day: u32, tod: i64, reference: Option<EventTime>) -> Option<EventTime> {
    const HALF_YEAR: i64 = 183 * MS_PER_DAY;
    let at = |year: i32| Some(days_from_civil(year, month, day)? * MS_PER_DAY + tod);
    match reference {
        Some(r) => {
            let year = year_of(r);
            let t = at(year)?;
            if t < r - HALF_YEAR {
                at(year + 1)
            } else {
                Some(t)
            }
        }
        None => {
            let now = now_ms();
            let year = year_of(now);
            let t = at(year)?;
            if t > now + MS_PER_DAY {
                at(year - 1)
            } else {
                Some(t)
            }
        }
    }
}

/// logback's default `HH:mm:ss.SSS`: the date is the reference's (or
/// today's); a clock far behind the reference means midnight passed.
fn parse_time_only(b: &[u8], reference: Option<EventTime>) -> Option<EventTime> {
    let (tod, rest) = clock(b)?;
    if !rest.is_empty() {
        return None;
    }
    let r = reference.unwrap_or_else(now_ms);
    let day_start = r.div_euclid(MS_PER_DAY) * MS_PER_DAY;
    let t = day_start + tod;
    if t < r - MS_PER_DAY / 2 {
        Some(t + MS_PER_DAY)
    } else {
        Some(t)
    }
}

/// Forms seen rarely enough that chrono's generality costs nothing.
fn parse_rare(s: &str) -> Option<EventTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc2822(s) {
        return Some(t.timestamp_millis());
    }
    // Common log format (Apache/nginx access logs).
    if let Ok(t) = chrono::DateTime::parse_from_str(s, "%d/%b/%Y:%H:%M:%S %z") {
        return Some(t.timestamp_millis());
    }
    None
}

fn now_ms() -> EventTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn year_of(t: EventTime) -> i32 {
    civil_from_days(t.div_euclid(MS_PER_DAY)).0
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm); `None` for dates that
/// do not exist, so `2026-02-30` is a bad timestamp rather than March 2nd.
pub(crate) fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-02T10:00:01Z
    const T: EventTime = 1_793_613_601_000;

    #[test]
    fn iso_variants_agree_on_the_instant() {
        for s in [
            "2026-11-02T10:00:01Z",
            "2026-11-02T10:00:01.000Z",
            "2026-11-02 10:00:01",
            "2026-11-02T10:00:01+00:00",
            "2026-11-02T11:00:01+01:00",
            "2026-11-02T11:00:01+0100",
            "2026-11-02T05:00:01-05",
            "2026-11-02t10:00:01z",
            "2026/11/02 10:00:01",
            "2026-11-02 10:00:01 UTC",
        ] {
            assert_eq!(parse_text(s, None), Some(T), "{s}");
        }
    }

    #[test]
    fn fractions_with_dot_or_comma_truncate_to_millis() {
        assert_eq!(
            parse_text("2026-11-02T10:00:01.123456Z", None),
            Some(T + 123)
        );
        assert_eq!(parse_text("2026-11-02 10:00:01,5", None), Some(T + 500));
        assert_eq!(
            parse_text("2026-11-02T10:00:01.123456789+00:00", None),
            Some(T + 123)
        );
    }

    #[test]
    fn impossible_dates_and_garbage_are_rejected() {
        for s in [
            "2026-02-30T10:00:01Z",
            "2026-13-02T10:00:01Z",
            "2026-11-02T25:00:01Z",
            "2026-11-02T10:00:01Zjunk",
            "yesterday",
            "",
            "2026-11-02X10:00:01",
        ] {
            assert_eq!(parse_text(s, None), None, "{s}");
        }
    }

    #[test]
    fn epoch_numbers_are_told_apart_by_magnitude() {
        assert_eq!(parse_number("1793613601"), Some(T));
        assert_eq!(parse_number("1793613601.25"), Some(T + 250));
        assert_eq!(parse_number("1793613601000"), Some(T));
        assert_eq!(parse_number("1793613601000000"), Some(T));
        assert_eq!(parse_number("1793613601000000000"), Some(T));
        assert_eq!(parse_number("1.793613601e9"), Some(T));
        assert_eq!(parse_text("1793613601000", None), Some(T));
        assert_eq!(parse_number("-5"), None);
    }

    #[test]
    fn apache_error_log_time_parses() {
        assert_eq!(
            parse_text("Mon Nov 02 10:00:01.123456 2026", None),
            Some(T + 123)
        );
        assert_eq!(parse_text("Mon Nov  2 10:00:01 2026", None), Some(T));
    }

    #[test]
    fn syslog_time_takes_the_year_from_the_reference() {
        assert_eq!(parse_text("Nov  2 10:00:01", Some(T - 3_600_000)), Some(T));
        assert_eq!(parse_text("Nov 02 10:00:01", Some(T)), Some(T));
    }

    #[test]
    fn syslog_time_after_new_year_moves_to_the_next_year() {
        let dec31 = parse_text("2026-12-31T23:59:00Z", None);
        let jan1 = parse_text("2027-01-01T00:00:01Z", None);
        assert_eq!(parse_text("Jan  1 00:00:01", dec31), jan1);
    }

    #[test]
    fn syslog_time_without_reference_uses_a_year_near_now() {
        let t = parse_text("Jan  1 00:00:00", None);
        let now = now_ms();
        assert!(t.is_some_and(|t| t <= now + MS_PER_DAY && t > now - 367 * MS_PER_DAY));
    }

    #[test]
    fn klog_and_clock_only_forms_borrow_the_date() {
        assert_eq!(parse_text("1102 10:00:01.000000", Some(T)), Some(T));
        assert_eq!(parse_text("10:00:01.250", Some(T - 1000)), Some(T + 250));
        let just_before_midnight = parse_text("2026-11-02T23:59:59Z", None);
        let after = parse_text("2026-11-03T00:00:01Z", None);
        assert_eq!(parse_text("00:00:01", just_before_midnight), after);
    }

    #[test]
    fn rare_forms_fall_back_to_chrono() {
        assert_eq!(parse_text("Mon, 02 Nov 2026 10:00:01 +0000", None), Some(T));
        assert_eq!(parse_text("02/Nov/2026:10:00:01 +0000", None), Some(T));
    }

    #[test]
    fn civil_conversion_round_trips() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2026, 11, 2), (1969, 12, 31)] {
            let days = days_from_civil(y, m, d);
            assert_eq!(days.map(civil_from_days), Some((y, m, d)));
        }
    }
}
