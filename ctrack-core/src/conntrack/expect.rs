//! Expectations: connections a helper announced (Linux's
//! `nf_conntrack_expect`). A packet that finds no connection but matches
//! an expectation opens one that is `expected`, whose first packet is
//! `related`, with the master's helper as `connection-type` and the
//! master's `connection-mark`; the expectation is then gone (Linux's
//! expectations are one-shot unless permanent; none of ours is).
//!
//! **Tuple and wildcard.** An expectation fixes the family, protocol, both
//! addresses and the destination port; the source port is either fixed or
//! open (`sport: None`, Linux's mask for FTP and TFTP: the data connection
//! comes from any port). For GRE version 1 (PPTP) the "destination port" is
//! the call id the packet carries (the receiver's). So one hash lookup by
//! the fixed part finds it.
//!
//! **Bounds.** The table holds at most `max` expectations (a full table
//! refuses new ones: Linux's `nf_ct_expect_max`), a master at most its
//! helper's `max_expected` (a new one evicts the master's oldest, as Linux's
//! `evict_oldest_expect`), and each times out (5 minutes). An expectation
//! of the same tuple from another master is refused (Linux's clash,
//! `-EBUSY`); from the same master it is refreshed. The maps are allocated
//! once, with room for twice `max`, and never grow (no allocation on the
//! packet path).
//!
//! **Across workers.** Each worker holds a copy of every expectation: the
//! data connection's first packet may reach any worker (RSS; a wildcard
//! source port means its owner cannot be computed in advance). The owner
//! of the master (the worker whose helper created it) enforces the limits;
//! every change (added, used, expired with its master) is queued in
//! [`ExpectMsg`]s that the worker passes to the others between bursts (see
//! `dataplane::helpers`); see `docs/helpers.md` for the window this leaves.

use std::collections::HashMap;

use super::entry::ConnId;
use super::gre_keymap::GreKeymap;
use crate::flow::{Addr, Family, FlowRepr, L4, proto};
use crate::helper::HelperKind;

/// The fixed part of an expectation's tuple: what a packet is looked up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpectKey {
    pub family: Family,
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    /// The destination port (TCP, UDP), or the call id GRE v1 carries.
    pub dport: u16,
}

impl ExpectKey {
    /// The key `pkt` is looked up by, and its source port (`None` when the
    /// protocol has none an expectation could name). `None` for protocols
    /// that are never expected.
    #[inline]
    pub fn of(pkt: &FlowRepr) -> Option<(ExpectKey, Option<u16>)> {
        let t = &pkt.tuple;
        let (dport, sport) = match pkt.l4 {
            L4::Tcp(_) | L4::Udp => (t.dst_port, Some(t.src_port)),
            L4::Gre(g) if g.version == 1 => (g.call_id()?, None),
            _ => return None,
        };
        Some((
            ExpectKey {
                family: t.family,
                proto: t.proto,
                src: t.src,
                dst: t.dst,
                dport,
            },
            sport,
        ))
    }
}

/// One expected connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub key: ExpectKey,
    /// The source port, or `None`: any. For PPTP's GRE the sender's call
    /// id (not in the packet: the [`GreKeymap`] entry of this direction).
    pub sport: Option<u16>,
    /// The connection whose helper announced it.
    pub master: ConnId,
    pub helper: HelperKind,
    /// The master's `connection-mark` when it was announced (the new
    /// connection inherits it).
    pub mark: u32,
    /// When it goes (ns, the shard's clock).
    pub deadline: u64,
    /// Expectations announced together (PPTP's two GRE directions) share
    /// it: using one removes them all.
    pub group: u32,
    /// The expected connection's translation, when its master is
    /// translated (Linux's `nf_nat_follow_master`).
    pub nat: Option<ExpectNat>,
}

/// How an expected connection of a translated master is translated (Linux's
/// `nf_nat_follow_master`): its source becomes `src` (the port kept when
/// free), its destination `dst`:`dport` (the address and port the announcer
/// really has). The connection's first packet gets these as its NAT
/// bindings instead of the NAT rules'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectNat {
    pub src: Addr,
    pub dst: Addr,
    pub dport: u16,
}

impl Expectation {
    /// A packet without a source port (GRE) matches whatever `sport`
    /// says: for PPTP's GRE it is the sender's call id, which the packet
    /// does not carry (it goes to the keymap, [`GreKeymap`]).
    fn matches_sport(&self, sport: Option<u16>) -> bool {
        self.sport.is_none() || sport.is_none() || self.sport == sport
    }
}

/// A change to pass to the other workers' copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectMsg {
    Add(Expectation),
    /// Used (or replaced, or evicted): remove the one of this key.
    Remove(ExpectKey),
    /// The master is gone: remove all of its.
    RemoveMaster(ConnId),
}

/// Why an announced expectation was not created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectRefused {
    /// The table holds `max` already.
    Full,
    /// Another master expects the same tuple.
    Clash,
}

/// Counters of the expectation table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpectStats {
    /// Expectations created here (by this worker's helpers).
    pub created: u64,
    /// Connections opened by an expectation here.
    pub used: u64,
    /// Expectations that timed out here (any worker's copy).
    pub expired: u64,
    /// A master's oldest evicted for a new one (its `max_expected`).
    pub evicted: u64,
    /// Refused: table full.
    pub refused_full: u64,
    /// Refused: another master's tuple.
    pub refused_clash: u64,
    /// Changes for the other workers lost (their queue was full).
    pub msgs_lost: u64,
    /// Expectations held now (gauge, set by the shard).
    pub live: u64,
    /// Data connections a helper found announced.
    pub announced: u64,
    /// Announcements naming a third party's address (refused, as Linux
    /// without `loose`).
    pub third_party: u64,
    /// Packets a helper dropped (FTP: a partial or malformed command).
    pub dropped: u64,
    /// PPTP messages out of order or too short (ignored).
    pub ignored: u64,
    /// Connections to a service port tracked without their helper (no
    /// room for its state).
    pub no_room: u64,
}

/// Most expectations a master holds (the largest `max_expected`).
const PER_MASTER: usize = 2;

/// One shard's expectations (see the module doc).
#[derive(Debug)]
pub struct ExpectTable {
    map: HashMap<ExpectKey, Expectation>,
    /// This worker's masters' expectations, oldest first.
    masters: HashMap<ConnId, [Option<ExpectKey>; PER_MASTER]>,
    max: usize,
    next_group: u32,
    /// GRE v1 call ids by direction, kept with the PPTP expectations (see
    /// [`GreKeymap`]).
    pub keymap: GreKeymap,
    pub stats: ExpectStats,
}

impl ExpectTable {
    /// Room for `max` expectations (allocated now).
    pub fn new(max: usize) -> ExpectTable {
        ExpectTable {
            map: HashMap::with_capacity(2 * max),
            masters: HashMap::with_capacity(2 * max),
            max,
            next_group: 1,
            keymap: GreKeymap::new(max),
            stats: ExpectStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A fresh group tag for expectations announced together.
    pub fn new_group(&mut self) -> u32 {
        self.next_group = self.next_group.wrapping_add(1).max(1);
        self.next_group
    }

    /// The live expectation `pkt` matches, if any.
    #[inline]
    pub fn find(&self, pkt: &FlowRepr, now: u64) -> Option<&Expectation> {
        if self.map.is_empty() {
            return None;
        }
        let (k, sport) = ExpectKey::of(pkt)?;
        self.map
            .get(&k)
            .filter(|e| e.deadline > now && e.matches_sport(sport))
    }

    /// Adds `e` for a master of this worker, with its helper's per-master
    /// limit. On success returns what the other workers must apply (the
    /// eviction it caused, if any, then the addition).
    pub fn add_local(
        &mut self,
        e: Expectation,
        out: &mut impl FnMut(ExpectMsg),
    ) -> Result<(), ExpectRefused> {
        if let Some(old) = self.map.get(&e.key) {
            if old.master != e.master {
                self.stats.refused_clash += 1;
                return Err(ExpectRefused::Clash);
            }
            // The same master announces it again: refreshed.
            self.map.insert(e.key, e);
            self.keymap.insert(&e);
            out(ExpectMsg::Add(e));
            return Ok(());
        }
        let limit = e.helper.max_expected().min(PER_MASTER);
        let held = self.masters.get(&e.master).copied().unwrap_or_default();
        let n = held.iter().flatten().count();
        if n >= limit
            && let Some(oldest) = held[0]
        {
            self.remove_key(&oldest);
            self.stats.evicted += 1;
            out(ExpectMsg::Remove(oldest));
        }
        if self.map.len() >= self.max {
            self.stats.refused_full += 1;
            return Err(ExpectRefused::Full);
        }
        self.map.insert(e.key, e);
        let slots = self.masters.entry(e.master).or_default();
        if let Some(s) = slots.iter_mut().find(|s| s.is_none()) {
            *s = Some(e.key);
        }
        self.stats.created += 1;
        self.keymap.insert(&e);
        out(ExpectMsg::Add(e));
        Ok(())
    }

    /// Applies another worker's change to this copy.
    pub fn apply(&mut self, m: ExpectMsg) {
        match m {
            ExpectMsg::Add(e) => {
                self.keymap.insert(&e);
                if self.map.len() < self.max || self.map.contains_key(&e.key) {
                    self.map.insert(e.key, e);
                } else {
                    self.stats.refused_full += 1;
                }
            }
            ExpectMsg::Remove(k) => self.remove_key(&k),
            ExpectMsg::RemoveMaster(m) => self.remove_master(m),
        }
    }

    /// Takes the expectation `pkt` matches (a connection is being opened
    /// by it), with the others of its group; `out` gets the removals for
    /// the other workers.
    pub fn take(
        &mut self,
        pkt: &FlowRepr,
        now: u64,
        out: &mut impl FnMut(ExpectMsg),
    ) -> Option<Expectation> {
        let e = *self.find(pkt, now)?;
        self.remove_key(&e.key);
        out(ExpectMsg::Remove(e.key));
        if e.group == 0 {
            // Alone (FTP, TFTP).
        } else if let Some(held) = self.masters.get(&e.master).copied() {
            // Siblings held by this worker's master.
            for k in held.into_iter().flatten() {
                if self.map.get(&k).is_some_and(|s| s.group == e.group) {
                    self.remove_key(&k);
                    out(ExpectMsg::Remove(k));
                }
            }
        } else {
            // Another worker's master: find the siblings by a scan (PPTP's
            // pair; rare).
            let sib: Option<ExpectKey> = self
                .map
                .values()
                .find(|s| s.master == e.master && s.group == e.group)
                .map(|s| s.key);
            if let Some(k) = sib {
                self.remove_key(&k);
                out(ExpectMsg::Remove(k));
            }
        }
        self.stats.used += 1;
        Some(e)
    }

    fn remove_key(&mut self, k: &ExpectKey) {
        let Some(e) = self.map.remove(k) else {
            return;
        };
        if let Some(slots) = self.masters.get_mut(&e.master) {
            if let Some(i) = slots.iter().position(|s| s.as_ref() == Some(k)) {
                // Keep the order, oldest first.
                for j in i..PER_MASTER - 1 {
                    slots[j] = slots[j + 1];
                }
                slots[PER_MASTER - 1] = None;
            }
            if slots.iter().all(Option::is_none) {
                self.masters.remove(&e.master);
            }
        }
    }

    /// Removes every expectation of `master`.
    pub fn remove_master(&mut self, master: ConnId) {
        self.keymap.remove_master(master);
        if self.map.is_empty() {
            return;
        }
        if let Some(slots) = self.masters.remove(&master) {
            for k in slots.into_iter().flatten() {
                self.map.remove(&k);
            }
        } else {
            self.map.retain(|_, e| e.master != master);
        }
    }

    /// Whether `master` holds any here (this worker's masters only).
    pub fn has_master(&self, master: ConnId) -> bool {
        self.masters.contains_key(&master) || self.keymap.has_master(master)
    }

    /// Drops the expectations whose deadline passed (a scan; the caller
    /// calls it about once a second). Returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.map.len();
        if before == 0 {
            return 0;
        }
        let masters = &mut self.masters;
        self.map.retain(|k, e| {
            let keep = e.deadline > now;
            if !keep && let Some(slots) = masters.get_mut(&e.master) {
                for s in slots.iter_mut() {
                    if s.as_ref() == Some(k) {
                        *s = None;
                    }
                }
                slots.sort_by_key(Option::is_none);
            }
            keep
        });
        self.masters.retain(|_, s| s.iter().any(Option::is_some));
        let n = before - self.map.len();
        self.stats.expired += n as u64;
        n
    }

    /// Every expectation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Expectation> {
        self.map.values()
    }
}

/// The tuple a PPTP call's GRE packets carry in one direction, from `src`
/// to `dst` with the receiver's `call_id`.
pub fn gre_key(family: Family, src: Addr, dst: Addr, call_id: u16) -> ExpectKey {
    ExpectKey {
        family,
        proto: proto::GRE,
        src,
        dst,
        dport: call_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{GreInfo, TcpInfo, Tuple};

    fn a(x: u8) -> Addr {
        Addr::from_v4([10, 0, 0, x])
    }

    fn syn(src: u8, sport: u16, dst: u8, dport: u16) -> FlowRepr {
        FlowRepr {
            tuple: Tuple {
                src: a(src),
                dst: a(dst),
                src_port: sport,
                dst_port: dport,
                proto: proto::TCP,
                family: Family::V4,
            },
            ip_len: 60,
            l4: L4::Tcp(TcpInfo::default()),
        }
    }

    fn exp(master: u64, src: u8, dst: u8, dport: u16) -> Expectation {
        Expectation {
            key: ExpectKey {
                family: Family::V4,
                proto: proto::TCP,
                src: a(src),
                dst: a(dst),
                dport,
            },
            sport: None,
            master: ConnId(master),
            helper: HelperKind::Ftp,
            mark: 7,
            deadline: 1000,
            group: 0,
            nat: None,
        }
    }

    #[test]
    fn wildcard_source_port_matches_once() {
        let mut t = ExpectTable::new(8);
        let mut msgs = vec![];
        t.add_local(exp(1, 1, 2, 5000), &mut |m| msgs.push(m))
            .unwrap();
        assert_eq!(msgs, vec![ExpectMsg::Add(exp(1, 1, 2, 5000))]);
        assert!(t.find(&syn(1, 40000, 2, 5001), 0).is_none());
        assert!(t.find(&syn(2, 40000, 1, 5000), 0).is_none(), "reversed");
        assert!(t.find(&syn(1, 40000, 2, 5000), 1000).is_none(), "expired");
        let e = t
            .take(&syn(1, 40000, 2, 5000), 0, &mut |m| msgs.push(m))
            .unwrap();
        assert_eq!(e.mark, 7);
        assert!(t.is_empty());
        assert!(!t.has_master(ConnId(1)));
        assert!(t.take(&syn(1, 40001, 2, 5000), 0, &mut |_| {}).is_none());
        assert_eq!(t.stats.used, 1);
    }

    #[test]
    fn per_master_limit_evicts_the_oldest_and_clash_is_refused() {
        let mut t = ExpectTable::new(8);
        let mut msgs = vec![];
        t.add_local(exp(1, 1, 2, 5000), &mut |m| msgs.push(m))
            .unwrap();
        // FTP: one per master; the second replaces the first.
        t.add_local(exp(1, 1, 2, 5001), &mut |m| msgs.push(m))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats.evicted, 1);
        assert!(msgs.contains(&ExpectMsg::Remove(exp(1, 1, 2, 5000).key)));
        assert_eq!(
            t.add_local(exp(2, 1, 2, 5001), &mut |_| {}),
            Err(ExpectRefused::Clash)
        );
    }

    #[test]
    fn bounded_and_removed_with_the_master() {
        let mut t = ExpectTable::new(3);
        for m in 0..3 {
            t.add_local(exp(m, 1, 2, 100 + m as u16), &mut |_| {})
                .unwrap();
        }
        assert_eq!(
            t.add_local(exp(9, 1, 2, 999), &mut |_| {}),
            Err(ExpectRefused::Full)
        );
        t.remove_master(ConnId(1));
        assert_eq!(t.len(), 2);
        // Another worker's copy: removed by a scan.
        t.apply(ExpectMsg::Add(exp(50, 3, 4, 1)));
        t.apply(ExpectMsg::RemoveMaster(ConnId(50)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.expire(1000), 2);
        assert!(t.is_empty());
        assert!(!t.has_master(ConnId(0)));
    }

    #[test]
    fn gre_pair_goes_together() {
        let mut t = ExpectTable::new(8);
        let g = t.new_group();
        let mut e1 = exp(1, 1, 2, 0);
        e1.key = gre_key(Family::V4, a(1), a(2), 0xabcd);
        e1.helper = HelperKind::Pptp;
        e1.group = g;
        let mut e2 = e1;
        e2.key = gre_key(Family::V4, a(2), a(1), 0x1234);
        t.add_local(e1, &mut |_| {}).unwrap();
        t.add_local(e2, &mut |_| {}).unwrap();
        let gre = FlowRepr {
            tuple: Tuple {
                src: a(2),
                dst: a(1),
                proto: proto::GRE,
                family: Family::V4,
                ..Tuple::default()
            },
            ip_len: 40,
            l4: L4::Gre(GreInfo {
                version: 1,
                key: Some(0x1234),
                protocol: 0x880b,
            }),
        };
        assert!(t.take(&gre, 0, &mut |_| {}).is_some());
        assert!(t.is_empty());
    }
}
