//! GRE version 1 keyed by call ids (Linux's GRE keymap in
//! `nf_conntrack_proto_gre.c`): a PPTP packet carries only the receiver's
//! call id, so the sender's id, which the key needs too, comes from what
//! the PPTP helper announced. For each call that is up, the keymap holds
//! two entries, one per direction: (source, destination, carried call id)
//! to the sender's call id. A GRE v1 packet found in it is keyed
//! `sport` = sender's id, `dport` = carried id (the reply key swaps them,
//! as TCP ports); one not found is keyed by its addresses only, as before
//! (ports 0): GRE that no PPTP control connection announced is unchanged.
//!
//! Through NAT the two entries are the two sides of the translation (the
//! PNS's side with its own call id, the PAC's side with the translated
//! address and call id), so the pair is also the expected GRE
//! connection's binding ([`GreKeymap::binding`], Linux's
//! `pptp_nat_expected`).
//!
//! **Copies.** Every worker holds a copy, kept by the expectation messages
//! ([`super::expect::ExpectMsg`]): an added GRE expectation carries its
//! keymap entry (the sender's id in `Expectation::sport`), a master gone
//! (`RemoveMaster`: Call-Disconnect-Notify, Stop-Control-Connection-Reply,
//! the control connection freed) removes its entries. Unlike the
//! expectations, entries do not time out: they live as long as the call.
//! The packets of a keyed call are owned by the master's worker (see
//! `dataplane::pptp_nat`), so one worker holds the call's GRE connection
//! whatever the addresses hash to.
//!
//! **Bounds.** At most `max` entries (a full keymap refuses, counted by the
//! caller through [`GreKeymap::insert`]'s result), allocated once; a
//! master holds one call's pair (Linux keeps one call per control
//! connection): a new call's entries replace the old call's.

use std::collections::HashMap;

use super::entry::ConnId;
use super::expect::{ExpectKey, Expectation};
use super::key::Key;
use crate::flow::{Addr, Family, proto};

/// One direction of a call: who sends to whom, carrying which call id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Dirn {
    family: Family,
    src: Addr,
    dst: Addr,
    carried: u16,
}

/// The sender's call id and the call's master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Val {
    src_id: u16,
    master: ConnId,
    group: u32,
}

/// The keymap (see the module doc).
#[derive(Debug, Default)]
pub struct GreKeymap {
    map: HashMap<Dirn, Val>,
    /// A master's entries (its current call), for removal and the binding.
    masters: HashMap<ConnId, [Option<Dirn>; 2]>,
    max: usize,
}

/// The key a keymap entry gives a packet of its direction.
fn key_of(d: &Dirn, src_id: u16) -> Key {
    Key {
        src: d.src,
        dst: d.dst,
        sport: src_id,
        dport: d.carried,
        proto: proto::GRE,
        family: d.family,
        ver: 2,
    }
}

impl GreKeymap {
    /// Room for `max` entries (allocated now).
    pub fn new(max: usize) -> GreKeymap {
        GreKeymap {
            map: HashMap::with_capacity(2 * max),
            masters: HashMap::with_capacity(max),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entry of a GRE expectation (PPTP's, with the sender's call id in
    /// `sport`); false when refused (full, or the direction is another
    /// master's: the first announcement keeps it). Nothing for other
    /// expectations.
    pub fn insert(&mut self, e: &Expectation) -> bool {
        let (Some(src_id), proto::GRE) = (e.sport, e.key.proto) else {
            return true;
        };
        let d = Dirn {
            family: e.key.family,
            src: e.key.src,
            dst: e.key.dst,
            carried: e.key.dport,
        };
        let v = Val {
            src_id,
            master: e.master,
            group: e.group,
        };
        if let Some(old) = self.map.get(&d)
            && old.master != e.master
        {
            return false;
        }
        // A new call of this master replaces its old one.
        if let Some(slots) = self.masters.get(&e.master).copied() {
            let stale = slots
                .iter()
                .flatten()
                .any(|s| self.map.get(s).is_some_and(|o| o.group != e.group));
            if stale {
                self.remove_master(e.master);
            }
        }
        if !self.map.contains_key(&d) && self.map.len() >= self.max {
            return false;
        }
        self.map.insert(d, v);
        let slots = self.masters.entry(e.master).or_default();
        if !slots.contains(&Some(d))
            && let Some(s) = slots.iter_mut().find(|s| s.is_none())
        {
            *s = Some(d);
        }
        true
    }

    /// Whether `master` has entries here.
    pub fn has_master(&self, master: ConnId) -> bool {
        self.masters.contains_key(&master)
    }

    /// Removes `master`'s entries; how many.
    pub fn remove_master(&mut self, master: ConnId) -> usize {
        let Some(slots) = self.masters.remove(&master) else {
            return 0;
        };
        slots
            .into_iter()
            .flatten()
            .filter(|d| self.map.remove(d).is_some())
            .count()
    }

    /// The sender's call id and the call's master for a GRE v1 packet from
    /// `src` to `dst` carrying `carried`.
    #[inline]
    pub fn find(
        &self,
        family: Family,
        src: Addr,
        dst: Addr,
        carried: u16,
    ) -> Option<(u16, ConnId)> {
        if self.map.is_empty() {
            return None;
        }
        self.map
            .get(&Dirn {
                family,
                src,
                dst,
                carried,
            })
            .map(|v| (v.src_id, v.master))
    }

    /// The binding of a GRE connection whose original key is `orig` (keyed
    /// by this keymap): the key of the call's other direction, when it is
    /// not `orig`'s plain reply (the call goes through NAT). The connection
    /// is then also found by it (`Decision::reply`).
    pub fn binding(&self, orig: &Key) -> Option<Key> {
        if orig.proto != proto::GRE || orig.ver != 2 || self.map.is_empty() {
            return None;
        }
        let d = Dirn {
            family: orig.family,
            src: orig.src,
            dst: orig.dst,
            carried: orig.dport,
        };
        let v = self.map.get(&d)?;
        let slots = self.masters.get(&v.master)?;
        let other = slots.iter().flatten().find(|o| **o != d)?;
        let ov = self.map.get(other)?;
        let r = key_of(other, ov.src_id);
        (r != orig.reply()).then_some(r)
    }

    /// The expectation key of an entry's direction, for tests and listings.
    pub fn directions(&self) -> impl Iterator<Item = (ExpectKey, u16, ConnId)> + '_ {
        self.map.iter().map(|(d, v)| {
            (
                super::expect::gre_key(d.family, d.src, d.dst, d.carried),
                v.src_id,
                v.master,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::HelperKind;

    fn a(x: u8) -> Addr {
        Addr::from_v4([10, 0, 0, x])
    }

    fn exp(master: u64, group: u32, src: u8, dst: u8, carried: u16, src_id: u16) -> Expectation {
        Expectation {
            key: super::super::expect::gre_key(Family::V4, a(src), a(dst), carried),
            sport: Some(src_id),
            master: ConnId(master),
            helper: HelperKind::Pptp,
            mark: 0,
            deadline: 1,
            group,
            nat: None,
        }
    }

    #[test]
    fn a_call_keys_both_directions_and_a_new_call_replaces_it() {
        let mut m = GreKeymap::new(8);
        // PNS 1 -> PAC 2: carries the PAC's id 7; PAC -> PNS carries 5.
        assert!(m.insert(&exp(1, 1, 1, 2, 7, 5)));
        assert!(m.insert(&exp(1, 1, 2, 1, 5, 7)));
        assert_eq!(m.find(Family::V4, a(1), a(2), 7), Some((5, ConnId(1))));
        assert_eq!(m.find(Family::V4, a(2), a(1), 5), Some((7, ConnId(1))));
        assert_eq!(m.find(Family::V4, a(2), a(1), 6), None);
        // Not NAT-ed: no binding.
        let orig = key_of(
            &Dirn {
                family: Family::V4,
                src: a(1),
                dst: a(2),
                carried: 7,
            },
            5,
        );
        assert_eq!(m.binding(&orig), None);
        // Another master cannot take a direction.
        assert!(!m.insert(&exp(2, 9, 1, 2, 7, 99)));
        // A second call of master 1 replaces the first.
        assert!(m.insert(&exp(1, 2, 1, 2, 8, 6)));
        assert_eq!(m.find(Family::V4, a(1), a(2), 7), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove_master(ConnId(1)), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn through_nat_the_pair_is_the_binding_and_the_keymap_is_bounded() {
        let mut m = GreKeymap::new(2);
        // PNS 1 (call id 0x1234) masqueraded to 100 (call id 40000) to PAC 2
        // (call id 0xabcd).
        assert!(m.insert(&exp(1, 1, 1, 2, 0xabcd, 0x1234)));
        assert!(m.insert(&exp(1, 1, 2, 100, 40000, 0xabcd)));
        let orig = Key {
            src: a(1),
            dst: a(2),
            sport: 0x1234,
            dport: 0xabcd,
            proto: proto::GRE,
            family: Family::V4,
            ver: 2,
        };
        let r = m.binding(&orig).unwrap();
        assert_eq!(
            (r.src, r.dst, r.sport, r.dport),
            (a(2), a(100), 0xabcd, 40000)
        );
        // From the PAC's side first: the binding is the PNS's side.
        let back = m.binding(&r).unwrap();
        assert_eq!(back, orig);
        // Full.
        assert!(!m.insert(&exp(3, 3, 4, 5, 1, 2)));
    }
}
