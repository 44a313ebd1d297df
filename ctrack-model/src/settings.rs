//! `/ip firewall connection tracking` as text: `set udp-timeout=30s`,
//! `print`. The typed [`Settings`] and their one validation
//! ([`Settings::validate`]) are the core's; this module parses and prints
//! the RouterOS form and always ends in that validation.
//!
//! Every textual way in goes through [`apply`]: `ctrack run --set` and
//! `ctrack replay --set`, the API's `tracking/set` (and so the CLI's
//! `tracking set`). A future `.rsc` script loader is to call [`apply`] with
//! the script's `KEY=VALUE` pairs, so it refuses exactly what they refuse.
//! The config file's `[tracking]` table reaches the same validation through
//! `Settings`' `Deserialize`.

use ctrack_core::conntrack::{
    Duration, Enabled, InvalidSetting, Settings, format_duration_exact, parse_duration,
};

/// Every key `print` shows, in the seed's order, then `checksum-verify` (not
/// the seed's: Linux's `nf_conntrack_checksum`), then the read-only ones.
pub const KEYS: [&str; 20] = [
    "enabled",
    "loose-tcp-tracking",
    // RouterOS v7, beyond the seed (Linux's nf_conntrack_tcp_be_liberal).
    "liberal-tcp-tracking",
    "tcp-syn-sent-timeout",
    "tcp-syn-received-timeout",
    "tcp-established-timeout",
    "tcp-fin-wait-timeout",
    "tcp-close-wait-timeout",
    "tcp-last-ack-timeout",
    "tcp-time-wait-timeout",
    "tcp-close-timeout",
    // RouterOS v7, beyond the seed (Linux's _timeout_max_retrans and
    // _timeout_unacknowledged).
    "tcp-max-retrans-timeout",
    "tcp-unacked-timeout",
    "udp-timeout",
    "udp-stream-timeout",
    "icmp-timeout",
    "generic-timeout",
    "checksum-verify",
    // Read-only, shown by `print` but refused by `set`.
    "max-entries",
    "total-entries",
];

/// The keys `set` takes.
pub const SETTABLE: &[&str] = KEYS.split_at(18).0;

/// The keys `print` shows but `set` refuses (they live on the shard).
pub const READ_ONLY: [&str; 2] = ["max-entries", "total-entries"];

/// Why a `KEY=VALUE` change was refused. Every message names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// No setting of that name.
    #[error("unknown setting {key:?}; known: {known}")]
    UnknownKey { key: String, known: String },
    /// The value does not parse for that setting.
    #[error("bad value {value:?} for {key}: {problem}")]
    BadValue {
        key: &'static str,
        value: String,
        problem: String,
    },
    /// A read-only property was given to `set`.
    #[error("{key} is read-only")]
    ReadOnly { key: &'static str },
    /// The value parses but is out of range ([`Settings::validate`]).
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
}

/// The string-keyed view of [`Settings`].
pub trait SettingsExt {
    /// Sets one setting by its seed name (`udp-timeout`, `enabled`, ...)
    /// from its RouterOS text form (`30s`, `yes`), then validates: on an
    /// error nothing changed.
    fn set(&mut self, key: &str, value: &str) -> Result<(), SettingsError>;
    /// The text form of one setting (`"10s"`, `"auto"`, `"yes"`). Read-only
    /// properties (`max-entries`, `total-entries`) live on the shard, not here.
    fn get(&self, key: &str) -> Result<String, SettingsError>;
    /// `(key, value)` pairs of every setting, in the seed's order, for `print`.
    fn iter(&self) -> impl Iterator<Item = (&'static str, String)> + '_;
}

impl SettingsExt for Settings {
    fn set(&mut self, key: &str, value: &str) -> Result<(), SettingsError> {
        let mut next = self.clone();
        parse_into(&mut next, key, value)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<String, SettingsError> {
        match key {
            "enabled" => Ok(self.enabled.name().to_string()),
            "loose-tcp-tracking" => Ok(yes_no(self.loose_tcp_tracking).to_string()),
            "liberal-tcp-tracking" => Ok(yes_no(self.liberal_tcp_tracking).to_string()),
            "checksum-verify" => Ok(yes_no(self.checksum_verify).to_string()),
            _ => self
                .timeouts()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, d)| format_duration_exact(*d))
                .ok_or_else(|| unknown(key)),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        SETTABLE
            .iter()
            .map(move |k| (*k, self.get(k).unwrap_or_default()))
    }
}

/// Applies `changes` (`(key, value)` in RouterOS text) to a copy of
/// `current` and validates the result once ([`Settings::validate`]): all or
/// nothing. Every textual way settings arrive calls this (see the module doc).
pub fn apply(current: &Settings, changes: &[(String, String)]) -> Result<Settings, SettingsError> {
    let mut next = current.clone();
    for (k, v) in changes {
        parse_into(&mut next, k.trim(), v)?;
    }
    next.validate()?;
    Ok(next)
}

/// Parses one `key=value` into `s`, without validating the whole.
fn parse_into(s: &mut Settings, key: &str, value: &str) -> Result<(), SettingsError> {
    let v = value.trim();
    match key {
        "enabled" => {
            s.enabled = match v {
                "yes" | "true" => Enabled::Yes,
                "no" | "false" => Enabled::No,
                "auto" => Enabled::Auto,
                _ => return Err(bad("enabled", value, "expected yes, no or auto")),
            };
            Ok(())
        }
        "loose-tcp-tracking" => {
            s.loose_tcp_tracking = match v {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => return Err(bad("loose-tcp-tracking", value, "expected yes or no")),
            };
            Ok(())
        }
        "liberal-tcp-tracking" => {
            s.liberal_tcp_tracking = match v {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => return Err(bad("liberal-tcp-tracking", value, "expected yes or no")),
            };
            Ok(())
        }
        "checksum-verify" => {
            s.checksum_verify = match v {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => return Err(bad("checksum-verify", value, "expected yes or no")),
            };
            Ok(())
        }
        "max-entries" => Err(SettingsError::ReadOnly { key: "max-entries" }),
        "total-entries" => Err(SettingsError::ReadOnly {
            key: "total-entries",
        }),
        _ => {
            let mut slots = s.timeouts_mut();
            let Some((name, slot)) = slots.iter_mut().find(|(k, _)| *k == key) else {
                return Err(unknown(key));
            };
            let d: Duration = parse_duration(v).map_err(|e| bad(name, value, &e.to_string()))?;
            **slot = d;
            Ok(())
        }
    }
}

fn unknown(key: &str) -> SettingsError {
    SettingsError::UnknownKey {
        key: key.to_string(),
        known: SETTABLE.join(", "),
    }
}

fn bad(key: &'static str, value: &str, problem: &str) -> SettingsError {
    SettingsError::BadValue {
        key,
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

/// RouterOS' text for a boolean.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let s = Settings::default();
        let got: Vec<(&str, String)> = s.iter().collect();
        let want = [
            ("enabled", "auto"),
            ("loose-tcp-tracking", "yes"),
            ("liberal-tcp-tracking", "no"),
            ("tcp-syn-sent-timeout", "5s"),
            ("tcp-syn-received-timeout", "5s"),
            ("tcp-established-timeout", "1d"),
            ("tcp-fin-wait-timeout", "10s"),
            ("tcp-close-wait-timeout", "10s"),
            ("tcp-last-ack-timeout", "10s"),
            ("tcp-time-wait-timeout", "10s"),
            ("tcp-close-timeout", "10s"),
            ("tcp-max-retrans-timeout", "5m"),
            ("tcp-unacked-timeout", "5m"),
            ("udp-timeout", "10s"),
            ("udp-stream-timeout", "3m"),
            ("icmp-timeout", "10s"),
            ("generic-timeout", "10m"),
            ("checksum-verify", "yes"),
        ];
        assert_eq!(got.len(), want.len());
        for ((gk, gv), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((*gk, gv.as_str()), (wk, wv));
        }
        assert!(s.enabled.is_tracking());
    }

    #[test]
    fn set_and_errors_name_the_key() {
        let mut s = Settings::default();
        s.set("udp-timeout", "30s").unwrap();
        assert_eq!(s.udp_timeout, Duration::from_secs(30));
        s.set("enabled", "no").unwrap();
        assert!(!s.enabled.is_tracking());
        s.set("loose-tcp-tracking", "no").unwrap();
        assert!(!s.loose_tcp_tracking);
        let e = s.set("udp-timeout", "soon").unwrap_err().to_string();
        assert!(e.contains("udp-timeout") && e.contains("soon"), "{e}");
        let e = s.set("udp-timeout", "0s").unwrap_err().to_string();
        assert!(e.contains("udp-timeout"), "{e}");
        assert_eq!(
            s.udp_timeout,
            Duration::from_secs(30),
            "a refused set changes nothing"
        );
        let e = s.set("enabled", "maybe").unwrap_err().to_string();
        assert!(e.contains("enabled"), "{e}");
        let e = s.set("udp-timout", "1s").unwrap_err().to_string();
        assert!(e.contains("udp-timout"), "{e}");
        let e = s.set("max-entries", "1").unwrap_err().to_string();
        assert!(e.contains("max-entries"), "{e}");
        assert!(s.get("nope").is_err());
    }

    #[test]
    fn apply_is_all_or_nothing_and_validates() {
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cur = Settings::default();
        let next = apply(&cur, &pairs(&[("udp-timeout", "30s"), ("enabled", "yes")])).unwrap();
        assert_eq!(next.udp_timeout, Duration::from_secs(30));
        assert_eq!(next.enabled, Enabled::Yes);
        let e = apply(
            &cur,
            &pairs(&[("udp-timeout", "30s"), ("icmp-timeout", "0s")]),
        )
        .unwrap_err();
        assert!(
            matches!(e, SettingsError::Invalid(ref i) if i.key == "icmp-timeout"),
            "{e}"
        );
        assert!(e.to_string().contains("icmp-timeout"), "{e}");
    }

    #[test]
    fn checksum_verify_is_set_and_shown_by_name() {
        let mut s = Settings::default();
        s.set("checksum-verify", "no").unwrap();
        assert!(!s.checksum_verify);
        assert_eq!(s.get("checksum-verify").unwrap(), "no");
        let e = s
            .set("checksum-verify", "sometimes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum-verify"), "{e}");
    }
}
