//! RouterOS time values: `1d2h3m4s`, `10s`, `3m`, `500ms`, `1w`.
//!
//! Parsing accepts any sequence of `<number><unit>` components with the units
//! `w`, `d`, `h`, `m`, `s`, `ms` (each at most once, in that order), a bare
//! number (seconds, as RouterOS reads `10`), and `hh:mm:ss`.
//!
//! Formatting follows RouterOS: largest unit first, zero components omitted,
//! `0s` for zero. [`format_duration`] rounds down to whole seconds (the way a
//! remaining `timeout` is shown); a non-zero value below one second is shown
//! in milliseconds (`500ms`) rather than as `0s`. [`format_duration_exact`]
//! also keeps a millisecond remainder (`1s500ms`), so that every value
//! [`parse_duration`] accepts (to the millisecond) prints back to itself.

use core::fmt;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

/// A span of time in nanoseconds, shown and parsed as RouterOS shows times.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct Duration(u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_nanos(ns: u64) -> Duration {
        Duration(ns)
    }

    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms.saturating_mul(NS_PER_MS))
    }

    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(NS_PER_S))
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub const fn as_secs(self) -> u64 {
        self.0 / NS_PER_S
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(*self))
    }
}

impl core::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}

/// Serialised as a RouterOS time string (`1d2h`, `500ms`), exactly.
impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration_exact(*self))
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a time string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty time value")]
    Empty,
    /// A character that is neither a digit nor a known unit.
    #[error("bad time value {0:?}: expected e.g. 10s, 3m, 1d2h, 500ms, 1w or hh:mm:ss")]
    Syntax(String),
    /// A unit given twice or out of order (`1s1d`).
    #[error("bad time value {0:?}: units must appear once each, largest first")]
    Order(String),
    /// The value does not fit.
    #[error("time value {0:?} is too large")]
    Overflow(String),
}

/// Parses a RouterOS time (see the module doc).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if t.contains(':') {
        return parse_clock(t);
    }
    let syntax = || DurationError::Syntax(s.to_string());
    let overflow = || DurationError::Overflow(s.to_string());
    let b = t.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    // Rank of the last unit used: components must strictly decrease.
    let mut last_rank = u8::MAX;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(syntax());
        }
        let n: u64 = t[start..i].parse().map_err(|_| overflow())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let (mult, rank) = match &t[ustart..i] {
            "w" => (7 * 86_400 * NS_PER_S, 5),
            "d" => (86_400 * NS_PER_S, 4),
            "h" => (3_600 * NS_PER_S, 3),
            "m" => (60 * NS_PER_S, 2),
            "s" | "" => (NS_PER_S, 1),
            "ms" => (NS_PER_MS, 0),
            _ => return Err(syntax()),
        };
        if ustart == i && i != b.len() {
            return Err(syntax());
        }
        if rank >= last_rank {
            return Err(DurationError::Order(s.to_string()));
        }
        last_rank = rank;
        let part = n.checked_mul(mult).ok_or_else(overflow)?;
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    Ok(Duration(total))
}

fn parse_clock(t: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(t.to_string());
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(sec), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(syntax());
    };
    let num = |x: &str| -> Result<u64, DurationError> {
        if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
            return Err(syntax());
        }
        x.parse::<u64>()
            .map_err(|_| DurationError::Overflow(t.to_string()))
    };
    let (h, m, sec) = (num(h)?, num(m)?, num(sec)?);
    if m >= 60 || sec >= 60 {
        return Err(syntax());
    }
    h.checked_mul(3600)
        .and_then(|x| x.checked_add(m * 60 + sec))
        .and_then(|x| x.checked_mul(NS_PER_S))
        .map(Duration)
        .ok_or_else(|| DurationError::Overflow(t.to_string()))
}

/// RouterOS form, rounded down to whole seconds (`23h59m58s`, `9s`, `1d`,
/// `0s`); a non-zero value under one second is shown as `Nms`.
pub fn format_duration(d: Duration) -> String {
    if d.0 > 0 && d.0 < NS_PER_S {
        let ms = d.0 / NS_PER_MS;
        return if ms == 0 {
            "0s".to_string()
        } else {
            format!("{ms}ms")
        };
    }
    format_secs(d.0 / NS_PER_S, 0)
}

/// RouterOS form keeping a millisecond remainder (`1s500ms`): the inverse of
/// [`parse_duration`] for millisecond-precise values.
pub fn format_duration_exact(d: Duration) -> String {
    format_secs(d.0 / NS_PER_S, (d.0 % NS_PER_S) / NS_PER_MS)
}

fn format_secs(mut s: u64, ms: u64) -> String {
    use fmt::Write;
    let mut out = String::new();
    for (unit, len) in [
        ("w", 7 * 86_400),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ] {
        let n = s / len;
        s %= len;
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    if ms > 0 {
        let _ = write!(out, "{ms}ms");
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_examples() {
        let s = Duration::from_secs;
        assert_eq!(parse_duration("1d2h3m4s"), Ok(s(86_400 + 7_200 + 180 + 4)));
        assert_eq!(parse_duration("10s"), Ok(s(10)));
        assert_eq!(parse_duration("3m"), Ok(s(180)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1w"), Ok(s(7 * 86_400)));
        assert_eq!(parse_duration("10"), Ok(s(10)));
        assert_eq!(parse_duration("00:01:05"), Ok(s(65)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "x",
            "1x",
            "s",
            "1s1d",
            "1d1d",
            "99999999999999999999d",
            "1:2",
            "1:60:00",
            "-1s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn format_examples() {
        let s = Duration::from_secs;
        assert_eq!(format_duration(s(86_399 - 1)), "23h59m58s");
        assert_eq!(format_duration(s(9)), "9s");
        assert_eq!(format_duration(s(86_400)), "1d");
        assert_eq!(format_duration(s(86_400 + 7_200)), "1d2h");
        assert_eq!(format_duration(s(0)), "0s");
        assert_eq!(format_duration(s(8 * 86_400)), "1w1d");
        assert_eq!(format_duration(Duration::from_nanos(9_999_999_999)), "9s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(
            format_duration_exact(Duration::from_millis(1500)),
            "1s500ms"
        );
    }

    #[test]
    fn round_trips() {
        for secs in [
            0u64, 1, 9, 59, 60, 61, 3599, 3600, 86_399, 86_400, 90_061, 604_800, 1_000_000,
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            assert_eq!(parse_duration(&format_duration_exact(d)), Ok(d));
        }
        for ms in [1u64, 500, 1500, 61_001] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration_exact(d)), Ok(d));
        }
    }

    proptest::proptest! {
        #[test]
        fn prop_round_trip(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            proptest::prop_assert_eq!(parse_duration(&format_duration_exact(d)), Ok(d));
            let whole = Duration::from_secs(d.as_secs());
            if ms >= 1000 || ms == 0 {
                proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(whole));
            }
        }

        #[test]
        fn prop_parse_never_panics(s in "[0-9wdhms:]{0,12}") {
            let _ = parse_duration(&s);
        }
    }
}
