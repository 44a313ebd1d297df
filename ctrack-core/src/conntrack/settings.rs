//! `/ip firewall connection tracking` settings, with the seed's names and
//! defaults.
//!
//! In TOML/JSON (serde) the keys are the seed's kebab-case names and times are
//! RouterOS strings:
//!
//! ```toml
//! enabled = "auto"              # yes | no | auto
//! loose-tcp-tracking = true
//! tcp-syn-sent-timeout = "5s"
//! tcp-established-timeout = "1d"
//! udp-stream-timeout = "3m"
//! checksum-verify = true
//! ```
//!
//! `checksum-verify` is not RouterOS's (it has no such setting): it is
//! Linux's `net.netfilter.nf_conntrack_checksum`, see `docs/conntrack.md`.

use super::time::{Duration, format_duration_exact, parse_duration};
use crate::flow::proto;

/// A GRE connection's timeout until both directions were seen: Linux's
/// `GRE_TIMEOUT_UNREPLIED` (`nf_conntrack_proto_gre.c`).
pub const GRE_TIMEOUT: Duration = Duration::from_secs(30);
/// A GRE connection's timeout once both directions were seen (it is then
/// assured): Linux's `GRE_TIMEOUT_REPLIED`.
pub const GRE_STREAM_TIMEOUT: Duration = Duration::from_secs(180);

/// `enabled`: whether connections are tracked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enabled {
    /// Track every connection.
    Yes,
    /// Track nothing: every packet is forwarded untracked.
    No,
    /// RouterOS: on as soon as something needs tracking. This build has no
    /// firewall rules or NAT yet, so `auto` tracks (see `docs/conntrack.md`).
    #[default]
    Auto,
}

impl Enabled {
    pub const fn name(self) -> &'static str {
        match self {
            Enabled::Yes => "yes",
            Enabled::No => "no",
            Enabled::Auto => "auto",
        }
    }

    /// Whether connections are tracked. `Auto` resolves to on until rules exist.
    pub const fn is_tracking(self) -> bool {
        !matches!(self, Enabled::No)
    }
}

/// The connection tracking settings. `Default` gives the seed's defaults.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Settings {
    pub enabled: Enabled,
    pub loose_tcp_tracking: bool,
    pub tcp_syn_sent_timeout: Duration,
    pub tcp_syn_received_timeout: Duration,
    pub tcp_established_timeout: Duration,
    pub tcp_fin_wait_timeout: Duration,
    pub tcp_close_wait_timeout: Duration,
    pub tcp_last_ack_timeout: Duration,
    pub tcp_time_wait_timeout: Duration,
    pub tcp_close_timeout: Duration,
    pub udp_timeout: Duration,
    pub udp_stream_timeout: Duration,
    pub icmp_timeout: Duration,
    pub generic_timeout: Duration,
    /// Verify the IPv4 header and TCP/UDP/ICMP/ICMPv6 checksums of packets
    /// the NIC did not vouch for before tracking them; a bad one makes the
    /// packet invalid (Linux's `nf_conntrack_checksum`, on by default).
    pub checksum_verify: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let s = Duration::from_secs;
        Settings {
            enabled: Enabled::Auto,
            loose_tcp_tracking: true,
            tcp_syn_sent_timeout: s(5),
            tcp_syn_received_timeout: s(5),
            tcp_established_timeout: s(86_400),
            tcp_fin_wait_timeout: s(10),
            tcp_close_wait_timeout: s(10),
            tcp_last_ack_timeout: s(10),
            tcp_time_wait_timeout: s(10),
            tcp_close_timeout: s(10),
            udp_timeout: s(10),
            udp_stream_timeout: s(180),
            icmp_timeout: s(10),
            generic_timeout: s(600),
            checksum_verify: true,
        }
    }
}

/// Why `Settings::set`/`get` refused a key or value. Every message names the key.
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
}

impl Settings {
    /// Every key, in the seed's order, then `checksum-verify` (not the
    /// seed's), then the read-only ones. The first [`Settings::SETTABLE`] are
    /// settable.
    pub const KEYS: [&'static str; 17] = [
        "enabled",
        "loose-tcp-tracking",
        "tcp-syn-sent-timeout",
        "tcp-syn-received-timeout",
        "tcp-established-timeout",
        "tcp-fin-wait-timeout",
        "tcp-close-wait-timeout",
        "tcp-last-ack-timeout",
        "tcp-time-wait-timeout",
        "tcp-close-timeout",
        "udp-timeout",
        "udp-stream-timeout",
        "icmp-timeout",
        "generic-timeout",
        "checksum-verify",
        // Read-only, shown by `print` but refused by `set`.
        "max-entries",
        "total-entries",
    ];

    /// How many of [`Settings::KEYS`] are settable (the rest are read-only).
    pub const SETTABLE: usize = 15;

    fn time_mut(&mut self, key: &str) -> Option<(&'static str, &mut Duration)> {
        Some(match key {
            "tcp-syn-sent-timeout" => ("tcp-syn-sent-timeout", &mut self.tcp_syn_sent_timeout),
            "tcp-syn-received-timeout" => (
                "tcp-syn-received-timeout",
                &mut self.tcp_syn_received_timeout,
            ),
            "tcp-established-timeout" => {
                ("tcp-established-timeout", &mut self.tcp_established_timeout)
            }
            "tcp-fin-wait-timeout" => ("tcp-fin-wait-timeout", &mut self.tcp_fin_wait_timeout),
            "tcp-close-wait-timeout" => {
                ("tcp-close-wait-timeout", &mut self.tcp_close_wait_timeout)
            }
            "tcp-last-ack-timeout" => ("tcp-last-ack-timeout", &mut self.tcp_last_ack_timeout),
            "tcp-time-wait-timeout" => ("tcp-time-wait-timeout", &mut self.tcp_time_wait_timeout),
            "tcp-close-timeout" => ("tcp-close-timeout", &mut self.tcp_close_timeout),
            "udp-timeout" => ("udp-timeout", &mut self.udp_timeout),
            "udp-stream-timeout" => ("udp-stream-timeout", &mut self.udp_stream_timeout),
            "icmp-timeout" => ("icmp-timeout", &mut self.icmp_timeout),
            "generic-timeout" => ("generic-timeout", &mut self.generic_timeout),
            _ => return None,
        })
    }

    /// Sets one setting by its seed name (`udp-timeout`, `enabled`, ...) from
    /// its RouterOS text form (`30s`, `yes`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingsError> {
        let v = value.trim();
        match key {
            "enabled" => {
                self.enabled = match v {
                    "yes" | "true" => Enabled::Yes,
                    "no" | "false" => Enabled::No,
                    "auto" => Enabled::Auto,
                    _ => return Err(bad("enabled", value, "expected yes, no or auto")),
                };
                Ok(())
            }
            "loose-tcp-tracking" => {
                self.loose_tcp_tracking = match v {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(bad("loose-tcp-tracking", value, "expected yes or no")),
                };
                Ok(())
            }
            "checksum-verify" => {
                self.checksum_verify = match v {
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
            _ => match self.time_mut(key) {
                Some((name, slot)) => {
                    let d = parse_duration(v).map_err(|e| bad(name, value, &e.to_string()))?;
                    if d.as_nanos() == 0 {
                        return Err(bad(name, value, "a timeout must be longer than 0s"));
                    }
                    *slot = d;
                    Ok(())
                }
                None => Err(SettingsError::UnknownKey {
                    key: key.to_string(),
                    known: Settings::KEYS[..Settings::SETTABLE].join(", "),
                }),
            },
        }
    }

    /// The text form of one setting (`"10s"`, `"auto"`, `"yes"`). Read-only
    /// properties (`max-entries`, `total-entries`) live on the shard, not here.
    pub fn get(&self, key: &str) -> Result<String, SettingsError> {
        match key {
            "enabled" => Ok(self.enabled.name().to_string()),
            "loose-tcp-tracking" => Ok(yes_no(self.loose_tcp_tracking).to_string()),
            "checksum-verify" => Ok(yes_no(self.checksum_verify).to_string()),
            _ => {
                let mut copy = self.clone();
                match copy.time_mut(key) {
                    Some((_, d)) => Ok(format_duration_exact(*d)),
                    None => Err(SettingsError::UnknownKey {
                        key: key.to_string(),
                        known: Settings::KEYS[..Settings::SETTABLE].join(", "),
                    }),
                }
            }
        }
    }

    /// `(key, value)` pairs of every setting, in the seed's order, for `print`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        Settings::KEYS[..Settings::SETTABLE]
            .iter()
            .map(move |k| (*k, self.get(k).unwrap_or_default()))
    }

    /// Timeout for a connection that is not TCP, by protocol. GRE has
    /// Linux's own fixed timeouts ([`GRE_TIMEOUT`], [`GRE_STREAM_TIMEOUT`]),
    /// not `generic-timeout`: RouterOS has no GRE setting and, on Linux,
    /// times GRE out as Linux does (see `docs/conntrack.md`).
    pub(crate) fn proto_timeout(&self, protocol: u8, stream: bool) -> Duration {
        match protocol {
            proto::UDP if stream => self.udp_stream_timeout,
            proto::UDP => self.udp_timeout,
            proto::ICMP | proto::ICMPV6 => self.icmp_timeout,
            proto::GRE if stream => GRE_STREAM_TIMEOUT,
            proto::GRE => GRE_TIMEOUT,
            _ => self.generic_timeout,
        }
    }

    /// Whether any timeout got shorter from `old` to `self`.
    pub(crate) fn any_shorter_than(&self, old: &Settings) -> bool {
        let mut a = self.clone();
        let mut b = old.clone();
        Settings::KEYS[2..14]
            .iter()
            .any(|k| match (a.time_mut(k), b.time_mut(k)) {
                (Some((_, x)), Some((_, y))) => *x < *y,
                _ => false,
            })
    }
}

fn bad(key: &'static str, value: &str, problem: &str) -> SettingsError {
    SettingsError::BadValue {
        key,
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

pub(crate) fn yes_no(b: bool) -> &'static str {
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
            ("tcp-syn-sent-timeout", "5s"),
            ("tcp-syn-received-timeout", "5s"),
            ("tcp-established-timeout", "1d"),
            ("tcp-fin-wait-timeout", "10s"),
            ("tcp-close-wait-timeout", "10s"),
            ("tcp-last-ack-timeout", "10s"),
            ("tcp-time-wait-timeout", "10s"),
            ("tcp-close-timeout", "10s"),
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
        s.set("checksum-verify", "no").unwrap();
        assert!(!s.checksum_verify);
        assert_eq!(s.get("checksum-verify").unwrap(), "no");
        let e = s
            .set("checksum-verify", "sometimes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("checksum-verify"), "{e}");
        let e = s.set("udp-timeout", "soon").unwrap_err().to_string();
        assert!(e.contains("udp-timeout") && e.contains("soon"), "{e}");
        let e = s.set("udp-timeout", "0s").unwrap_err().to_string();
        assert!(e.contains("udp-timeout"), "{e}");
        let e = s.set("enabled", "maybe").unwrap_err().to_string();
        assert!(e.contains("enabled"), "{e}");
        let e = s.set("udp-timout", "1s").unwrap_err().to_string();
        assert!(e.contains("udp-timout"), "{e}");
        let e = s.set("max-entries", "1").unwrap_err().to_string();
        assert!(e.contains("max-entries"), "{e}");
        assert!(s.get("nope").is_err());
    }

    #[test]
    fn serde_kebab_case_and_times() {
        let s = Settings::default();
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["tcp-established-timeout"], "1d");
        assert_eq!(j["enabled"], "auto");
        assert_eq!(j["loose-tcp-tracking"], true);
        assert_eq!(j["checksum-verify"], true);
        let back: Settings = serde_json::from_value(j).unwrap();
        assert_eq!(back, s);
        let partial: Settings =
            serde_json::from_str(r#"{"udp-timeout":"1m","enabled":"yes"}"#).unwrap();
        assert_eq!(partial.udp_timeout, Duration::from_secs(60));
        assert_eq!(partial.enabled, Enabled::Yes);
        let err = serde_json::from_str::<Settings>(r#"{"udp-timeuot":"1m"}"#).unwrap_err();
        assert!(err.to_string().contains("udp-timeuot"));
        let err = serde_json::from_str::<Settings>(r#"{"udp-timeout":"1q"}"#).unwrap_err();
        assert!(err.to_string().contains("1q"));
    }
}
