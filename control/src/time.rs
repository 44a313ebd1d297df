//! Durations on the command line and in config files, in RouterOS form
//! (`500ms`, `10s`, `3m`, `1d2h`).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
}

/// A time that is not in RouterOS form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad time {0:?}: expected e.g. 500ms, 10s, 3m, 1d2h")]
pub struct BadTime(pub String);

impl FromStr for Duration {
    type Err = BadTime;

    fn from_str(s: &str) -> Result<Self, BadTime> {
        let bad = || BadTime(s.to_owned());
        let mut total_ms: u64 = 0;
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let ms_per = match &rest[..unit_len] {
                "ms" => 1,
                "s" | "" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total_ms = n
                .checked_mul(ms_per)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(Duration::from_millis(total_ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routeros_times() {
        assert_eq!("500ms".parse(), Ok(Duration::from_millis(500)));
        assert_eq!("10s".parse(), Ok(Duration::from_millis(10_000)));
        assert_eq!("1d2h".parse(), Ok(Duration::from_millis(93_600_000)));
        assert_eq!("3".parse(), Ok(Duration::from_millis(3_000)));
        assert!("".parse::<Duration>().is_err());
        assert!("10x".parse::<Duration>().is_err());
        assert!("s".parse::<Duration>().is_err());
        assert!("99999999999999999999d".parse::<Duration>().is_err());
    }
}
