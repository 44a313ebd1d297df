//! GRE: version 0 tunnels (RFC 2784/2890) and version 1 PPTP sessions
//! (RFC 2637), as Linux's `nf_conntrack_proto_gre.c` keeps them apart; how
//! they are keyed is in [`super::key`]. Other versions are invalid.
//! Like UDP, a GRE connection becomes a stream (assured) once both
//! directions were seen.

use super::entry::ProtoState;
use super::verdict::OtherInvalid;
use crate::flow::GreInfo;

/// Why a GRE packet is not tracked, if it is not.
#[inline]
pub(crate) fn check(g: &GreInfo) -> Result<(), OtherInvalid> {
    if g.version <= 1 {
        Ok(())
    } else {
        Err(OtherInvalid::GreBadVersion)
    }
}

/// The state of a new GRE connection: the encapsulated protocol and, for
/// PPTP, the first call id seen (shown as `gre-key`).
pub(crate) fn new_state(g: &GreInfo) -> ProtoState {
    ProtoState::Gre {
        protocol: g.protocol,
        call_id: g.call_id().unwrap_or(0),
    }
}
