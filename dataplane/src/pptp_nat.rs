//! PPTP through NAT in the worker (Linux's `nf_nat_pptp`): the three
//! places where a PPTP call differs from other NAT connections. The state
//! and the byte-level rewrites are the core's
//! ([`ctrack_core::helper::pptp_nat`], the GRE keymap in
//! [`ctrack_core::conntrack::gre_keymap`]); this is the wiring.
//!
//! - **Owner** ([`owner`]): the GRE packets of a call PPTP announced belong
//!   to its control connection's worker. Packets are spread by their
//!   addresses for GRE, and through NAT a call's two sides have different
//!   addresses (the PNS's and the translated one), so they could hash to
//!   two workers; every worker holds the keymap, so each sends a call's
//!   packets to the one that holds it. Other packets pay one compare of the
//!   protocol.
//! - **Binding** ([`binding`]): a new GRE connection of a call through NAT
//!   takes the call's translation (the keymap's other direction), not the
//!   NAT rules' (Linux's `pptp_nat_expected`).
//! - **Rewrite** ([`rewrite`]): after the address translation, a control
//!   connection's messages get the PNS's call id translated (and back), and
//!   a GRE packet of a NAT connection the call id of the tuple it leaves
//!   with (towards the PNS: its own id again).
//!
//! See docs/helpers.md (PPTP through NAT).

use crate::conntrack::key::Key;
use crate::conntrack::{Shard, Verdict};
use crate::flow::{FlowRepr, L4, proto};
use crate::helper::{HelperState, pptp_nat};
use crate::nat::{NatDrop, Rewrite};

/// The worker that owns `pkt`: `hashed` (the dispatch's choice), unless it
/// is a GRE version 1 packet of a call the keymap knows.
#[inline]
pub fn owner(shard: &Shard, pkt: &FlowRepr, hashed: u16) -> u16 {
    if pkt.tuple.proto != proto::GRE {
        return hashed;
    }
    shard.gre_call_owner(pkt).unwrap_or(hashed)
}

/// The reply key of a new connection `orig` (keyed by [`Shard::key_of`])
/// that is a PPTP call's GRE through NAT: `None` for any other connection
/// (the NAT rules decide), else the call's binding, refused when another
/// connection holds it.
#[cold]
pub fn binding(shard: &Shard, orig: &Key) -> Option<Result<Key, NatDrop>> {
    if orig.proto != proto::GRE {
        return None;
    }
    let r = shard.gre_call_binding(orig)?;
    Some(if shard.lookup(&r).is_none() {
        Ok(r)
    } else {
        Err(NatDrop::Exhausted)
    })
}

/// After `frame` (tracked as `repr`, verdict `v`) got its address rewrite
/// `rw`: the PPTP call ids. `Err` when the frame cannot be rewritten (to
/// drop, as Linux drops what it cannot mangle).
pub fn rewrite(
    shard: &Shard,
    repr: &FlowRepr,
    v: Verdict,
    rw: &Rewrite,
    frame: &mut [u8],
) -> Result<(), pptp_nat::PptpNatError> {
    match (repr.l4, rw) {
        (L4::Gre(g), Rewrite::To(t)) if g.version == 1 && t.dst_port != 0 => {
            // Keyed by call ids: the destination "port" is the call id
            // the receiver knows.
            pptp_nat::set_gre_call_id(frame, t.dst_port).map(drop)
        }
        (L4::Tcp(_), Rewrite::To(_)) => {
            let Verdict::Tracked { id, dir, .. } = v else {
                return Ok(());
            };
            if !shard.wants_help(id) {
                return Ok(());
            }
            match shard.helper_state(id) {
                Some(HelperState::Pptp(st)) => {
                    pptp_nat::rewrite_frame(st, dir.index(), frame, repr).map(drop)
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}
