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
//! tcp-max-retrans-timeout = "5m"   # RouterOS v7, Linux's _timeout_max_retrans
//! tcp-unacked-timeout = "5m"       # RouterOS v7, Linux's _timeout_unacknowledged
//! liberal-tcp-tracking = false     # RouterOS v7, Linux's nf_conntrack_tcp_be_liberal
//! udp-stream-timeout = "3m"
//! checksum-verify = true
//! ```
//!
//! This module holds the typed settings and their one validation
//! ([`Settings::validate`]); the string-keyed form (`set udp-timeout=30s`,
//! `print`) is presentation and lives in `ctrack-model`.
//! `checksum-verify` is not RouterOS's (it has no such setting): it is
//! Linux's `net.netfilter.nf_conntrack_checksum`, see `docs/conntrack.md`.

use super::time::{Duration, format_duration_exact};
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
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    pub enabled: Enabled,
    pub loose_tcp_tracking: bool,
    /// Out-of-window segments other than RSTs pass (RouterOS v7; Linux's
    /// `nf_conntrack_tcp_be_liberal`), off by default as on both.
    pub liberal_tcp_tracking: bool,
    pub tcp_syn_sent_timeout: Duration,
    pub tcp_syn_received_timeout: Duration,
    pub tcp_established_timeout: Duration,
    pub tcp_fin_wait_timeout: Duration,
    pub tcp_close_wait_timeout: Duration,
    pub tcp_last_ack_timeout: Duration,
    pub tcp_time_wait_timeout: Duration,
    pub tcp_close_timeout: Duration,
    /// Caps the state's timeout of a connection whose same segment came
    /// three times or more in a row (RouterOS v7; Linux's
    /// `nf_conntrack_tcp_timeout_max_retrans`).
    pub tcp_max_retrans_timeout: Duration,
    /// Caps the state's timeout of a connection with data not acknowledged
    /// yet (RouterOS v7; Linux's `nf_conntrack_tcp_timeout_unacknowledged`).
    pub tcp_unacked_timeout: Duration,
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
            liberal_tcp_tracking: false,
            tcp_syn_sent_timeout: s(5),
            tcp_syn_received_timeout: s(5),
            tcp_established_timeout: s(86_400),
            tcp_fin_wait_timeout: s(10),
            tcp_close_wait_timeout: s(10),
            tcp_last_ack_timeout: s(10),
            tcp_time_wait_timeout: s(10),
            tcp_close_timeout: s(10),
            tcp_max_retrans_timeout: s(300),
            tcp_unacked_timeout: s(300),
            udp_timeout: s(10),
            udp_stream_timeout: s(180),
            icmp_timeout: s(10),
            generic_timeout: s(600),
            checksum_verify: true,
        }
    }
}

/// A setting whose value is out of its range, found by [`Settings::validate`].
/// The message names the key, as every settings error does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad value {value:?} for {key}: {problem}")]
pub struct InvalidSetting {
    /// The seed's name of the setting (`udp-timeout`).
    pub key: &'static str,
    /// The value as RouterOS writes it (`0s`).
    pub value: String,
    pub problem: &'static str,
}

impl Settings {
    /// The seed's names of the timeouts, in the seed's order (the order of
    /// [`Settings::timeouts`]).
    pub const TIMEOUT_KEYS: [&'static str; 14] = [
        "tcp-syn-sent-timeout",
        "tcp-syn-received-timeout",
        "tcp-established-timeout",
        "tcp-fin-wait-timeout",
        "tcp-close-wait-timeout",
        "tcp-last-ack-timeout",
        "tcp-time-wait-timeout",
        "tcp-close-timeout",
        "tcp-max-retrans-timeout",
        "tcp-unacked-timeout",
        "udp-timeout",
        "udp-stream-timeout",
        "icmp-timeout",
        "generic-timeout",
    ];

    /// Every timeout with its seed name, in [`Settings::TIMEOUT_KEYS`] order.
    pub fn timeouts(&self) -> [(&'static str, Duration); 14] {
        let mut copy = self.clone();
        copy.timeouts_mut().map(|(k, d)| (k, *d))
    }

    /// As [`Settings::timeouts`], to change one by name. A value set here is
    /// not checked: pass the result through [`Settings::validate`].
    pub fn timeouts_mut(&mut self) -> [(&'static str, &mut Duration); 14] {
        let k = Settings::TIMEOUT_KEYS;
        [
            (k[0], &mut self.tcp_syn_sent_timeout),
            (k[1], &mut self.tcp_syn_received_timeout),
            (k[2], &mut self.tcp_established_timeout),
            (k[3], &mut self.tcp_fin_wait_timeout),
            (k[4], &mut self.tcp_close_wait_timeout),
            (k[5], &mut self.tcp_last_ack_timeout),
            (k[6], &mut self.tcp_time_wait_timeout),
            (k[7], &mut self.tcp_close_timeout),
            (k[8], &mut self.tcp_max_retrans_timeout),
            (k[9], &mut self.tcp_unacked_timeout),
            (k[10], &mut self.udp_timeout),
            (k[11], &mut self.udp_stream_timeout),
            (k[12], &mut self.icmp_timeout),
            (k[13], &mut self.generic_timeout),
        ]
    }

    /// The one validation of settings, whichever way they arrive: the config
    /// file's `[tracking]` and any other serde input (the `Deserialize` impl
    /// calls it), `--set` and the API's `tracking/set` (through
    /// `ctrack_model::settings::apply`), and a future `.rsc` loader (which
    /// is to call `ctrack_model::settings::apply` too). A shard never runs
    /// settings this refuses.
    ///
    /// Every timeout must be longer than 0s: with a zero timeout an entry
    /// expires at once, so every packet would create a new connection.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for (key, d) in self.timeouts() {
            if d.as_nanos() == 0 {
                return Err(InvalidSetting {
                    key,
                    value: format_duration_exact(d),
                    problem: "a timeout must be longer than 0s",
                });
            }
        }
        Ok(())
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
        self.timeouts()
            .iter()
            .zip(old.timeouts())
            .any(|((_, new), (_, old))| *new < old)
    }
}

/// Deserialising validates ([`Settings::validate`]): a config file cannot
/// bring in what `--set` and the API refuse.
impl<'de> serde::Deserialize<'de> for Settings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Settings, D::Error> {
        let s = Unchecked::deserialize(d)?;
        s.validate().map_err(serde::de::Error::custom)?;
        Ok(s)
    }
}

/// [`Settings`]' fields as serde reads them, before validation.
#[derive(serde::Deserialize)]
#[serde(
    remote = "Settings",
    rename_all = "kebab-case",
    deny_unknown_fields,
    default = "Settings::default"
)]
struct Unchecked {
    enabled: Enabled,
    loose_tcp_tracking: bool,
    liberal_tcp_tracking: bool,
    tcp_syn_sent_timeout: Duration,
    tcp_syn_received_timeout: Duration,
    tcp_established_timeout: Duration,
    tcp_fin_wait_timeout: Duration,
    tcp_close_wait_timeout: Duration,
    tcp_last_ack_timeout: Duration,
    tcp_time_wait_timeout: Duration,
    tcp_close_timeout: Duration,
    tcp_max_retrans_timeout: Duration,
    tcp_unacked_timeout: Duration,
    udp_timeout: Duration,
    udp_stream_timeout: Duration,
    icmp_timeout: Duration,
    generic_timeout: Duration,
    checksum_verify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let s = Settings::default();
        let got = s.timeouts().map(|(k, d)| (k, format_duration_exact(d)));
        let want = [
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
        ];
        assert!(s.checksum_verify);
        for ((gk, gv), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((*gk, gv.as_str()), (wk, wv));
        }
        assert_eq!(s.enabled, Enabled::Auto);
        assert!(s.loose_tcp_tracking);
        assert!(!s.liberal_tcp_tracking);
        assert!(s.enabled.is_tracking());
        s.validate().unwrap();
    }

    #[test]
    fn validation_refuses_a_zero_timeout_by_name() {
        let s = Settings {
            udp_timeout: Duration::from_secs(0),
            ..Settings::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "udp-timeout");
        assert!(e.to_string().contains("udp-timeout"), "{e}");
        for (i, key) in Settings::TIMEOUT_KEYS.iter().enumerate() {
            let mut s = Settings::default();
            *s.timeouts_mut()[i].1 = Duration::from_nanos(0);
            assert_eq!(s.validate().unwrap_err().key, *key);
        }
    }

    #[test]
    fn any_shorter_than_compares_each_timeout() {
        let old = Settings::default();
        let mut new = old.clone();
        assert!(!new.any_shorter_than(&old));
        new.generic_timeout = Duration::from_secs(1);
        assert!(new.any_shorter_than(&old));
        assert!(!old.any_shorter_than(&new));
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
        // Deserialising validates.
        let err = serde_json::from_str::<Settings>(r#"{"udp-timeout":"0s"}"#).unwrap_err();
        assert!(err.to_string().contains("udp-timeout"), "{err}");
    }
}
