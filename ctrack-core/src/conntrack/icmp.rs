//! ICMP and ICMPv6: which messages the table looks up, which open a
//! connection, and which are errors about another connection.
//!
//! As Linux's `nf_conntrack_proto_icmp{,v6}.c`: a query (echo, timestamp,
//! information, address mask; ICMPv6 echo, node information) opens a
//! connection, its reply is only valid on one; an error that quotes a packet
//! is looked up by the quoted packet's tuple (`related`); neighbour discovery
//! and MLD are link-local and never tracked; anything else is invalid. The
//! message kinds themselves are in [`super::key`] ([`icmp_kind`]), since the
//! reply key depends on them.

use super::entry::ProtoState;
use super::key::{IcmpKind, icmp_kind};
use super::verdict::{InvalidReason, OtherInvalid, UntrackedReason, Verdict};
use crate::flow::{IcmpInfo, Tuple};

/// What the table does with an ICMP packet.
pub(crate) enum IcmpClass<'a> {
    /// Look it up by its own key (a query or a query's reply).
    Lookup,
    /// Look up the connection of the quoted packet (an error).
    Related(&'a Tuple),
    /// Not looked up: this verdict.
    Done(Verdict),
}

/// Classifies an ICMP (`v6` false) or ICMPv6 packet.
pub(crate) fn classify(v6: bool, i: &IcmpInfo) -> IcmpClass<'_> {
    if let Some(inner) = &i.inner {
        return IcmpClass::Related(inner);
    }
    let invalid = |o| IcmpClass::Done(Verdict::Invalid(InvalidReason::Other(o)));
    match icmp_kind(v6, i.icmp_type) {
        IcmpKind::Request | IcmpKind::Reply => IcmpClass::Lookup,
        IcmpKind::Error => invalid(OtherInvalid::IcmpErrorTruncated),
        IcmpKind::NdMld => IcmpClass::Done(Verdict::Untracked(UntrackedReason::Icmpv6NdMld)),
        IcmpKind::Other => invalid(OtherInvalid::IcmpBadType),
    }
}

/// The state of a new connection opened by message type `t`, or why it
/// opens none (only a request does).
pub(crate) fn new_state(v6: bool, t: u8) -> Result<ProtoState, Verdict> {
    if icmp_kind(v6, t) != IcmpKind::Request {
        return Err(Verdict::Invalid(InvalidReason::Other(
            OtherInvalid::IcmpUnsolicitedReply,
        )));
    }
    Ok(ProtoState::Plain)
}
