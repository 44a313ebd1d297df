//! The dataplane's decisions about connections, until firewall rules and NAT
//! exist: the conntrack core leaves them to its caller (see
//! [`crate::conntrack::Decision`]).
//!
//! - A new connection is accepted, untranslated, unmarked and not
//!   fast-tracked ([`new_connection`]).
//! - FastTrack: the `fasttrack` setting ([`FastTrackMode`]) stands in for a
//!   RouterOS `action=fasttrack-connection` rule on established
//!   connections; `established` asks the table to mark each connection on
//!   the packet that makes it eligible ([`FastTrackMode::apply`]).
//!
//! See `docs/dataplane.md` (FastTrack).

use crate::conntrack::{Decision, Shard};

/// Which connections are fast-tracked automatically. Until firewall rules
/// exist (RouterOS marks connections with an `action=fasttrack-connection`
/// rule), this setting stands in for that rule; see `docs/dataplane.md`
/// (FastTrack).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FastTrackMode {
    /// No connection is fast-tracked automatically.
    #[default]
    No,
    /// Established TCP connections and UDP streams (assured) are.
    Established,
}

impl core::str::FromStr for FastTrackMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no" => Ok(FastTrackMode::No),
            "established" => Ok(FastTrackMode::Established),
            _ => Err(format!(
                "bad fasttrack mode {s:?}: expected no or established"
            )),
        }
    }
}

impl FastTrackMode {
    /// Applies the policy to `shard`, from now on (turning it off returns
    /// every connection to the full path).
    pub fn apply(self, shard: &mut Shard) {
        shard.set_fasttrack_established(self == FastTrackMode::Established);
    }
}

/// The decision for a new connection: accept, no translation, no mark, not
/// fast-tracked (a first packet is never established).
#[inline]
pub fn new_connection() -> Decision {
    Decision::ACCEPT
}
