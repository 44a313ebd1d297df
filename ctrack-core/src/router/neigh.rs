//! Neighbours: ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861), the
//! part of router mode that maps a next hop's address to its MAC address.
//!
//! Sans-io, as the rest of the core: frames in and out are byte slices,
//! time is an argument. The worker hands ARP frames and ICMPv6 neighbour
//! messages to [`Neighbors::receive`], which learns what they say and writes
//! an answer when one is due (a reply to a request for one of our own
//! addresses). To forward a packet the worker asks [`Neighbors::resolve`]:
//! a known MAC address, or "wait" (the packet is held by the caller in the
//! bounded queue this table accounts, and a request is written when one is
//! due), or a counted drop.
//!
//! States and timeouts follow Linux's neighbour table (RouterOS, on Linux,
//! documents only `arp-timeout`, 30 s by default, which is Linux's
//! `base_reachable_time`):
//!
//! - `incomplete`: a request sent, up to [`MAX_PROBES`] (Linux's
//!   `mcast_solicit`, 3) one [`RETRANS`] (1 s) apart, then `failed` (packets
//!   waiting for it are dropped and counted);
//! - `reachable` for `reachable_time` after an answer (or any ARP/NA from
//!   it), then `stale`: still used, and a packet sent to a stale neighbour
//!   sends a fresh unicast-less request (a simplification of Linux's
//!   delay/probe states: the entry stays usable meanwhile, as there);
//! - `permanent`: static entries (`/ip arp add`, `/ipv6 neighbor add`),
//!   never aged, never overwritten by what the wire says;
//! - an entry unused for [`GC_STALE`] (60 s, `gc_stale_time`) after going
//!   stale is removed.
//!
//! Capacity is fixed at creation (no allocation on the packet path): a full
//! table refuses new dynamic entries (counted), like Linux's `gc_thresh3`.

use std::collections::HashMap;

use crate::conntrack::Instant;
use crate::flow::{Addr, Family, proto};
use crate::packet::checksum::{checksum_of, pseudo_v6, sum};

/// A MAC address.
pub type Mac = [u8; 6];

/// Requests sent for an incomplete entry before it fails.
pub const MAX_PROBES: u8 = 3;
/// Time between requests (Linux `retrans_time`).
pub const RETRANS: u64 = 1_000_000_000;
/// An unused stale entry is removed after this (Linux `gc_stale_time`).
pub const GC_STALE: u64 = 60_000_000_000;
/// RouterOS's default `arp-timeout` (Linux `base_reachable_time`).
pub const REACHABLE: u64 = 30_000_000_000;

const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const BROADCAST: Mac = [0xff; 6];

/// A neighbour entry's state (as `ip neigh` shows them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Incomplete,
    Reachable,
    Stale,
    Failed,
    Permanent,
}

/// One neighbour.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Neighbor {
    pub mac: Option<Mac>,
    pub state: State,
    /// When the state last changed (ns).
    pub since: u64,
    /// When a request was last sent (ns), and how many so far.
    last_probe: u64,
    probes: u8,
    /// When a packet last used it (ns).
    pub used: u64,
}

/// One entry as `/ip arp print` and `/ipv6 neighbor print` show it: what a
/// worker copies out of its table for the control thread
/// ([`Neighbors::rows_into`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NeighRow {
    /// The interface (port index).
    pub iface: u16,
    pub addr: Addr,
    pub mac: Option<Mac>,
    /// The state at the time of the copy (a reachable entry past its
    /// reachable time shows as stale, as the next packet would make it).
    pub state: State,
    /// When the state last changed (ns).
    pub since: u64,
}

impl State {
    /// The name RouterOS's `status` (and Linux's `ip neigh`) gives it.
    pub fn name(self) -> &'static str {
        match self {
            State::Incomplete => "incomplete",
            State::Reachable => "reachable",
            State::Stale => "stale",
            State::Failed => "failed",
            State::Permanent => "permanent",
        }
    }

    /// Which of two workers' views of one neighbour to show: a static one,
    /// then one with a MAC, the fresher (reachable before stale), then the
    /// one resolution is still trying (incomplete before failed).
    pub fn rank(self) -> u8 {
        match self {
            State::Permanent => 4,
            State::Reachable => 3,
            State::Stale => 2,
            State::Incomplete => 1,
            State::Failed => 0,
        }
    }
}

/// What to do with a packet for a next hop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Resolution {
    /// Send to this MAC address.
    Mac(Mac),
    /// Send to this MAC address, and send the request of `request` bytes
    /// at the start of the caller's buffer too (a stale entry re-confirmed).
    Probe { mac: Mac, request: usize },
    /// Hold the packet (if the caller's queue has room): the address is
    /// being resolved. `request` bytes at the start of the caller's buffer
    /// are a request to send now (0: none due).
    Wait { request: usize },
    /// Drop: resolution failed recently, or the table is full.
    Drop,
}

/// Counters, for metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NeighStats {
    pub requests_sent: u64,
    pub replies_sent: u64,
    pub learned: u64,
    pub failed: u64,
    pub table_full: u64,
    /// ARP/ND frames that did not parse (counted, ignored).
    pub malformed: u64,
}

/// One interface's identity, as the neighbour code needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Iface {
    /// The interface's index (the DPDK port).
    pub index: u16,
    pub mac: Mac,
}

/// The neighbour table of one worker (each worker keeps its own: entries
/// are learned from the frames it sees; a request it sends is answered to
/// the MAC address, and RSS spreads those answers, so a worker may learn an
/// answer another worker asked for; both learn from broadcasts).
pub struct Neighbors {
    map: HashMap<(u16, Addr), Neighbor>,
    capacity: usize,
    reachable: u64,
    stats: NeighStats,
}

impl Neighbors {
    /// A table of at most `capacity` entries; `reachable_ns` is the
    /// interface's `arp-timeout` (0 for RouterOS's default, 30 s).
    pub fn new(capacity: usize, reachable_ns: u64) -> Neighbors {
        Neighbors {
            map: HashMap::with_capacity(capacity),
            capacity,
            reachable: if reachable_ns == 0 {
                REACHABLE
            } else {
                reachable_ns
            },
            stats: NeighStats::default(),
        }
    }

    pub fn stats(&self) -> NeighStats {
        self.stats
    }

    pub fn get(&self, iface: u16, addr: &Addr) -> Option<&Neighbor> {
        self.map.get(&(iface, *addr))
    }

    /// Every entry, for `/ip arp print`.
    pub fn entries(&self) -> impl Iterator<Item = (u16, Addr, &Neighbor)> {
        self.map.iter().map(|(&(i, a), n)| (i, a, n))
    }

    /// Copies every entry into `out` as it stands at `now`, up to `out`'s
    /// capacity (nothing allocated: give it [`Neighbors::capacity`]);
    /// returns how many did not fit.
    pub fn rows_into(&self, now: Instant, out: &mut Vec<NeighRow>) -> usize {
        out.clear();
        let mut left = 0;
        for (&(iface, addr), n) in &self.map {
            if out.len() == out.capacity() {
                left += 1;
                continue;
            }
            let state = match n.state {
                State::Reachable if now.0.saturating_sub(n.since) >= self.reachable => State::Stale,
                s => s,
            };
            out.push(NeighRow {
                iface,
                addr,
                mac: n.mac,
                state,
                since: n.since,
            });
        }
        left
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a static entry (replacing whatever was learned). False if the
    /// table is full.
    pub fn add_static(&mut self, iface: u16, addr: Addr, mac: Mac, now: Instant) -> bool {
        if !self.map.contains_key(&(iface, addr)) && self.map.len() >= self.capacity {
            self.stats.table_full += 1;
            return false;
        }
        self.map.insert(
            (iface, addr),
            Neighbor {
                mac: Some(mac),
                state: State::Permanent,
                since: now.0,
                last_probe: 0,
                probes: 0,
                used: now.0,
            },
        );
        true
    }

    /// Removes an entry (static or learned).
    pub fn remove(&mut self, iface: u16, addr: &Addr) -> bool {
        self.map.remove(&(iface, *addr)).is_some()
    }

    /// Learns `mac` for `addr` as another worker's table learned it from the
    /// wire (the dataplane shares what each worker learns: an answer to
    /// one worker's request may arrive on another's queue). Creates the
    /// entry if absent; a static entry is kept.
    pub fn learn_shared(&mut self, iface: u16, addr: Addr, mac: Mac, now: Instant) {
        self.learn(iface, addr, mac, true, now);
    }

    /// Learns `mac` for `addr` from the wire: updates an entry that exists
    /// (an incomplete one becomes reachable); creates one only if `create`
    /// (a request or an answer addressed to us, as Linux's `arp_process`).
    fn learn(&mut self, iface: u16, addr: Addr, mac: Mac, create: bool, now: Instant) {
        if mac == BROADCAST || mac[0] & 1 != 0 {
            return;
        }
        match self.map.get_mut(&(iface, addr)) {
            Some(n) if n.state == State::Permanent => {}
            Some(n) => {
                n.mac = Some(mac);
                n.state = State::Reachable;
                n.since = now.0;
                n.probes = 0;
                self.stats.learned += 1;
            }
            None if create => {
                if self.map.len() >= self.capacity {
                    self.stats.table_full += 1;
                    return;
                }
                self.map.insert(
                    (iface, addr),
                    Neighbor {
                        mac: Some(mac),
                        state: State::Reachable,
                        since: now.0,
                        last_probe: 0,
                        probes: 0,
                        used: now.0,
                    },
                );
                self.stats.learned += 1;
            }
            None => {}
        }
    }

    /// The next hop `addr` on interface `ifc` (whose own address of that
    /// family is `own`, the source of a request) for a packet to send now. A request,
    /// when one is due, is written into `out` (at least 86 bytes).
    pub fn resolve(
        &mut self,
        ifc: &Iface,
        own: Addr,
        addr: Addr,
        now: Instant,
        out: &mut [u8],
    ) -> Resolution {
        let (iface, family) = (ifc.index, family_of(&addr));
        let reachable = self.reachable;
        if self.map.len() >= self.capacity && !self.map.contains_key(&(iface, addr)) {
            self.stats.table_full += 1;
            return Resolution::Drop;
        }
        let n = self.map.entry((iface, addr)).or_insert(Neighbor {
            mac: None,
            state: State::Incomplete,
            since: now.0,
            last_probe: 0,
            probes: 0,
            used: now.0,
        });
        n.used = now.0;
        match n.state {
            State::Permanent => n.mac.map_or(Resolution::Drop, Resolution::Mac),
            State::Reachable if now.0.saturating_sub(n.since) < reachable => {
                n.mac.map_or(Resolution::Drop, Resolution::Mac)
            }
            State::Reachable | State::Stale => {
                if n.state == State::Reachable {
                    n.state = State::Stale;
                    n.since = now.0;
                }
                // Still usable; re-confirmed by a request at most once per
                // RETRANS while it is used (Linux's delay/probe states,
                // simplified: the entry stays usable meanwhile, as there).
                let Some(mac) = n.mac else {
                    return Resolution::Drop;
                };
                if now.0.saturating_sub(n.last_probe) >= RETRANS {
                    n.last_probe = now.0;
                    if let Some(len) = build_request(ifc.mac, own, addr, family, out) {
                        self.stats.requests_sent += 1;
                        return Resolution::Probe { mac, request: len };
                    }
                }
                Resolution::Mac(mac)
            }
            State::Failed if now.0.saturating_sub(n.since) < RETRANS => Resolution::Drop,
            State::Failed | State::Incomplete => {
                if n.state == State::Failed {
                    n.state = State::Incomplete;
                    n.since = now.0;
                    n.probes = 0;
                }
                if n.probes == 0 || now.0.saturating_sub(n.last_probe) >= RETRANS {
                    if n.probes >= MAX_PROBES {
                        n.state = State::Failed;
                        n.since = now.0;
                        self.stats.failed += 1;
                        return Resolution::Drop;
                    }
                    n.probes += 1;
                    n.last_probe = now.0;
                    let len = build_request(ifc.mac, own, addr, family, out).unwrap_or(0);
                    if len > 0 {
                        self.stats.requests_sent += 1;
                    }
                    return Resolution::Wait { request: len };
                }
                Resolution::Wait { request: 0 }
            }
        }
    }

    /// Ages the table: incomplete entries past their probes fail (the
    /// caller drops what waits for them: see [`Neighbors::failed_since`]),
    /// stale entries unused for [`GC_STALE`] and failed ones go.
    pub fn age(&mut self, now: Instant) {
        let mut failed = 0;
        self.map.retain(|_, n| match n.state {
            State::Permanent => true,
            State::Incomplete => {
                if n.probes >= MAX_PROBES && now.0.saturating_sub(n.last_probe) >= RETRANS {
                    n.state = State::Failed;
                    n.since = now.0;
                    failed += 1;
                }
                true
            }
            State::Failed => now.0.saturating_sub(n.since) < GC_STALE,
            State::Reachable | State::Stale => now.0.saturating_sub(n.used) < GC_STALE,
        });
        self.stats.failed += failed;
    }

    /// Handles a received ARP frame or ICMPv6 neighbour message on `iface`
    /// whose own addresses are `own` (any family): learns the sender, and
    /// writes an answer into `out` when it asks for one of `own`. Returns
    /// the answer's length (0: none). Any other frame is ignored (0).
    pub fn receive(
        &mut self,
        ifc: &Iface,
        own: &[Addr],
        frame: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> usize {
        let iface = ifc.index;
        if frame.len() < 14 {
            return 0;
        }
        match u16::from_be_bytes([frame[12], frame[13]]) {
            ETH_ARP => self.receive_arp(iface, ifc, own, &frame[14..], now, out),
            ETH_IPV6 => self.receive_nd(iface, ifc, own, &frame[14..], now, out),
            _ => 0,
        }
    }

    fn receive_arp(
        &mut self,
        iface: u16,
        ifc: &Iface,
        own: &[Addr],
        arp: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> usize {
        // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, 6, 4.
        if arp.len() < 28 || arp[..6] != [0, 1, 8, 0, 6, 4] {
            self.stats.malformed += 1;
            return 0;
        }
        let op = u16::from_be_bytes([arp[6], arp[7]]);
        let mut sha = [0u8; 6];
        sha.copy_from_slice(&arp[8..14]);
        let spa = Addr::from_v4([arp[14], arp[15], arp[16], arp[17]]);
        let tpa = Addr::from_v4([arp[24], arp[25], arp[26], arp[27]]);
        let for_us = own.contains(&tpa);
        match op {
            1 => {
                self.learn(iface, spa, sha, for_us, now);
                if !for_us {
                    return 0;
                }
                let Some(len) = arp_frame(out, sha, ifc.mac, 2, (tpa, sha, spa)) else {
                    return 0;
                };
                self.stats.replies_sent += 1;
                len
            }
            2 => {
                self.learn(iface, spa, sha, for_us, now);
                0
            }
            _ => {
                self.stats.malformed += 1;
                0
            }
        }
    }

    fn receive_nd(
        &mut self,
        iface: u16,
        ifc: &Iface,
        own: &[Addr],
        ip: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> usize {
        // IPv6 header, ICMPv6 directly (ND messages carry no extension
        // headers), hop limit 255 (RFC 4861 7.1.1), type 135/136.
        if ip.len() < 40 + 24 || ip[6] != proto::ICMPV6 {
            return 0;
        }
        let icmp = &ip[40..];
        let t = icmp[0];
        if t != 135 && t != 136 {
            return 0;
        }
        let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        if ip[7] != 255 || icmp[1] != 0 || plen < 24 || ip.len() < 40 + plen {
            self.stats.malformed += 1;
            return 0;
        }
        let icmp = &icmp[..plen];
        let mut src = [0u8; 16];
        src.copy_from_slice(&ip[8..24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&ip[24..40]);
        if checksum_of(sum(icmp, pseudo_v6(&src, &dst, proto::ICMPV6, plen as u32))) != 0 {
            self.stats.malformed += 1;
            return 0;
        }
        let mut target = [0u8; 16];
        target.copy_from_slice(&icmp[8..24]);
        let target = Addr::from_v6(target);
        // The link-layer address option: source (1) in an NS, target (2)
        // in an NA.
        let want = if t == 135 { 1 } else { 2 };
        let mut lladdr = None;
        let mut opts = &icmp[24..];
        while opts.len() >= 8 {
            let len = usize::from(opts[1]) * 8;
            if len == 0 || len > opts.len() {
                self.stats.malformed += 1;
                return 0;
            }
            if opts[0] == want && len >= 8 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&opts[2..8]);
                lladdr = Some(m);
            }
            opts = &opts[len..];
        }
        let for_us = own.contains(&target);
        if t == 136 {
            if let Some(m) = lladdr {
                self.learn(iface, target, m, false, now);
            }
            return 0;
        }
        // A solicitation: learn the sender unless it is the unspecified
        // address (duplicate address detection), answer for our address.
        let unspecified = src == [0; 16];
        if let Some(m) = lladdr
            && !unspecified
        {
            self.learn(iface, Addr::from_v6(src), m, for_us, now);
        }
        if !for_us || out.len() < 86 {
            return 0;
        }
        // NA: to the soliciting host (or all-nodes for DAD), solicited +
        // override (not for DAD), router flag (we route), target option.
        let (to_ip, to_mac, flags) = if unspecified {
            (
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x33, 0x33, 0, 0, 0, 1],
                0xa0u8,
            )
        } else {
            // A unicast NS without the option gets no answer (Linux answers
            // the frame's source; we are given the IP packet only).
            let Some(mac) = lladdr else {
                return 0;
            };
            (src, mac, 0xe0u8)
        };
        let na = NdMessage {
            ty: 136,
            flags,
            target: target.0,
            option: 2,
        };
        let Some(len) = nd_frame(out, to_mac, ifc.mac, (&target.0, &to_ip), &na) else {
            return 0;
        };
        self.stats.replies_sent += 1;
        len
    }
}

/// An IPv6 neighbour message: type (135 solicitation, 136 advertisement),
/// flags byte, target address, and the link-layer option it carries (1
/// source, 2 target).
struct NdMessage {
    ty: u8,
    flags: u8,
    target: [u8; 16],
    option: u8,
}

/// Writes `m` into `out` as an Ethernet frame to `to` from `from` (also the
/// link-layer option's address), from IPv6 address `src` to `dst`, hop
/// limit 255, checksum filled. Returns its length (`None`: `out` too small).
fn nd_frame(
    out: &mut [u8],
    to: Mac,
    from: Mac,
    (src, dst): (&[u8; 16], &[u8; 16]),
    m: &NdMessage,
) -> Option<usize> {
    let o = out.get_mut(..86)?;
    o[..6].copy_from_slice(&to);
    o[6..12].copy_from_slice(&from);
    o[12..14].copy_from_slice(&ETH_IPV6.to_be_bytes());
    let ip = &mut o[14..];
    ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, proto::ICMPV6, 255]);
    ip[8..24].copy_from_slice(src);
    ip[24..40].copy_from_slice(dst);
    let msg = &mut ip[40..72];
    msg.fill(0);
    msg[0] = m.ty;
    msg[4] = m.flags;
    msg[8..24].copy_from_slice(&m.target);
    msg[24] = m.option;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&from);
    let c = checksum_of(sum(msg, pseudo_v6(src, dst, proto::ICMPV6, 32)));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    Some(86)
}

/// Writes an Ethernet/IPv4 ARP frame into `out`: to `to` from `from` (also
/// the sender's hardware address), operation `op` (1 request, 2 reply),
/// with the sender's protocol address and the target's hardware and
/// protocol addresses. Returns its length (`None`: `out` too small).
fn arp_frame(
    out: &mut [u8],
    to: Mac,
    from: Mac,
    op: u8,
    (spa, tha, tpa): (Addr, Mac, Addr),
) -> Option<usize> {
    let o = out.get_mut(..42)?;
    o[..6].copy_from_slice(&to);
    o[6..12].copy_from_slice(&from);
    o[12..14].copy_from_slice(&ETH_ARP.to_be_bytes());
    o[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op]);
    o[22..28].copy_from_slice(&from);
    o[28..32].copy_from_slice(&spa.v4_octets());
    o[32..38].copy_from_slice(&tha);
    o[38..42].copy_from_slice(&tpa.v4_octets());
    Some(42)
}

/// IPv4 addresses are held v4-mapped ([`Addr::from_v4`]).
fn family_of(a: &Addr) -> Family {
    if a.is_v4_mapped() {
        Family::V4
    } else {
        Family::V6
    }
}

/// Writes a request for `target` into `out`: an ARP who-has (broadcast) or
/// an IPv6 neighbour solicitation to the solicited-node multicast address,
/// from `own`. Returns its length (`None`: `out` too small).
pub fn build_request(
    mac: Mac,
    own: Addr,
    target: Addr,
    family: Family,
    out: &mut [u8],
) -> Option<usize> {
    match family {
        Family::V4 => arp_frame(out, BROADCAST, mac, 1, (own, [0; 6], target)),
        Family::V6 => {
            let t = target.0;
            let snm = [
                0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15],
            ];
            let ns = NdMessage {
                ty: 135,
                flags: 0,
                target: t,
                option: 1,
            };
            let to = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
            nd_frame(out, to, mac, (&own.0, &snm), &ns)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR: Mac = [2, 0, 0, 0, 0, 1];
    const PEER: Mac = [2, 0, 0, 0, 0, 9];
    const IFC: Iface = Iface { index: 0, mac: OUR };

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    fn v6(last: u8) -> Addr {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[2] = 0x0d;
        a[3] = 0xb8;
        a[15] = last;
        Addr::from_v6(a)
    }

    #[test]
    fn rows_show_the_state_at_the_time_and_fit_the_buffer() {
        let mut n = Neighbors::new(16, 0);
        n.add_static(0, v4([10, 0, 0, 7]), PEER, Instant(0));
        n.learn_shared(1, v4([10, 0, 1, 9]), PEER, Instant(0));
        let mut out = [0u8; 128];
        let wait = n.resolve(
            &IFC,
            v4([10, 0, 0, 1]),
            v4([10, 0, 0, 8]),
            Instant(0),
            &mut out,
        );
        assert!(matches!(wait, Resolution::Wait { request } if request > 0));
        let mut rows = Vec::with_capacity(n.capacity());
        assert_eq!(n.rows_into(Instant(1), &mut rows), 0);
        let state = |rows: &[NeighRow], a: [u8; 4]| {
            rows.iter()
                .find(|r| r.addr == v4(a))
                .map(|r| (r.state, r.mac))
        };
        assert_eq!(
            state(&rows, [10, 0, 0, 7]),
            Some((State::Permanent, Some(PEER)))
        );
        assert_eq!(
            state(&rows, [10, 0, 1, 9]),
            Some((State::Reachable, Some(PEER)))
        );
        assert_eq!(state(&rows, [10, 0, 0, 8]), Some((State::Incomplete, None)));
        // Past the reachable time a learned entry shows stale (the table
        // itself changes it only when a packet uses it).
        n.rows_into(Instant(REACHABLE), &mut rows);
        assert_eq!(
            state(&rows, [10, 0, 1, 9]),
            Some((State::Stale, Some(PEER)))
        );
        assert_eq!(state(&rows, [10, 0, 0, 7]).unwrap().0, State::Permanent);
        // A short buffer is filled, never grown.
        let mut short = Vec::with_capacity(2);
        assert_eq!(n.rows_into(Instant(1), &mut short), 1);
        assert_eq!((short.len(), short.capacity()), (2, 2));
        assert!(State::Permanent.rank() > State::Reachable.rank());
        assert!(State::Stale.rank() > State::Incomplete.rank());
    }

    #[test]
    fn an_arp_request_for_us_is_answered_and_teaches_the_sender() {
        let mut n = Neighbors::new(16, 0);
        let mut req = [0u8; 64];
        let len = build_request(
            PEER,
            v4([10, 0, 0, 9]),
            v4([10, 0, 0, 1]),
            Family::V4,
            &mut req,
        )
        .unwrap();
        let mut out = [0u8; 128];
        let r = n.receive(
            &IFC,
            &[v4([10, 0, 0, 1])],
            &req[..len],
            Instant(5),
            &mut out,
        );
        assert_eq!(r, 42);
        assert_eq!(&out[..6], &PEER);
        assert_eq!(&out[20..22], &[0, 2], "a reply");
        assert_eq!(&out[22..28], &OUR);
        assert_eq!(&out[28..32], &[10, 0, 0, 1]);
        assert_eq!(n.get(0, &v4([10, 0, 0, 9])).unwrap().mac, Some(PEER));
        // Not for us: no answer, nothing created.
        let len = build_request(
            PEER,
            v4([10, 0, 0, 8]),
            v4([10, 0, 0, 7]),
            Family::V4,
            &mut req,
        )
        .unwrap();
        let r = n.receive(
            &IFC,
            &[v4([10, 0, 0, 1])],
            &req[..len],
            Instant(5),
            &mut out,
        );
        assert_eq!(r, 0);
        assert!(n.get(0, &v4([10, 0, 0, 8])).is_none());
    }

    #[test]
    fn resolution_asks_waits_learns_and_fails_after_three_probes() {
        let mut n = Neighbors::new(16, 0);
        let own = v4([10, 0, 0, 1]);
        let hop = v4([10, 0, 0, 9]);
        let mut out = [0u8; 128];
        let r = n.resolve(&IFC, own, hop, Instant(0), &mut out);
        assert_eq!(r, Resolution::Wait { request: 42 });
        assert_eq!(&out[..6], &BROADCAST);
        // Within a second: no second request.
        let r = n.resolve(&IFC, own, hop, Instant(1000), &mut out);
        assert_eq!(r, Resolution::Wait { request: 0 });
        // The answer arrives.
        let mut reply = [0u8; 64];
        let mut req = [0u8; 64];
        build_request(OUR, own, hop, Family::V4, &mut req).unwrap();
        // Build the answer by asking the peer's table.
        let mut peer = Neighbors::new(4, 0);
        let len = peer.receive(
            &Iface {
                index: 0,
                mac: PEER,
            },
            &[hop],
            &req[..42],
            Instant(1),
            &mut reply,
        );
        assert_eq!(len, 42);
        assert_eq!(
            n.receive(&IFC, &[own], &reply[..len], Instant(2000), &mut out),
            0
        );
        let r = n.resolve(&IFC, own, hop, Instant(3000), &mut out);
        assert_eq!(r, Resolution::Mac(PEER));
        // Another next hop never answers: 3 requests 1 s apart, then drops.
        let dead = v4([10, 0, 0, 77]);
        let mut sent = 0;
        for s in 0..6u64 {
            match n.resolve(&IFC, own, dead, Instant::from_secs(s), &mut out) {
                Resolution::Wait { request } if request > 0 => sent += 1,
                Resolution::Wait { .. } => {}
                Resolution::Drop => break,
                Resolution::Mac(_) | Resolution::Probe { .. } => panic!("no answer was given"),
            }
        }
        assert_eq!(sent, MAX_PROBES as usize);
        assert_eq!(n.get(0, &dead).unwrap().state, State::Failed);
        assert_eq!(n.stats().failed, 1);
    }

    #[test]
    fn static_entries_win_and_the_table_is_bounded() {
        let mut n = Neighbors::new(2, 0);
        let own = v4([10, 0, 0, 1]);
        assert!(n.add_static(0, v4([10, 0, 0, 5]), [2, 0, 0, 0, 0, 5], Instant(0)));
        // The wire cannot overwrite it.
        let mut req = [0u8; 64];
        let len = build_request(PEER, v4([10, 0, 0, 5]), own, Family::V4, &mut req).unwrap();
        let mut out = [0u8; 128];
        n.receive(&IFC, &[own], &req[..len], Instant(1), &mut out);
        assert_eq!(
            n.get(0, &v4([10, 0, 0, 5])).unwrap().mac,
            Some([2, 0, 0, 0, 0, 5])
        );
        let mut out = [0u8; 128];
        assert!(matches!(
            n.resolve(&IFC, own, v4([10, 0, 0, 6]), Instant(2), &mut out),
            Resolution::Wait { .. }
        ));
        assert_eq!(
            n.resolve(&IFC, own, v4([10, 0, 0, 7]), Instant(2), &mut out),
            Resolution::Drop
        );
        assert_eq!(n.stats().table_full, 1);
        // Aging never removes the static entry.
        n.age(Instant::from_secs(1000));
        assert!(n.get(0, &v4([10, 0, 0, 5])).is_some());
    }

    #[test]
    fn a_neighbor_solicitation_for_us_gets_an_advertisement() {
        let mut n = Neighbors::new(16, 0);
        let own = v6(1);
        let peer = v6(9);
        let mut ns = [0u8; 128];
        let len = build_request(PEER, peer, own, Family::V6, &mut ns).unwrap();
        let mut out = [0u8; 128];
        let r = n.receive(&IFC, &[own], &ns[..len], Instant(1), &mut out);
        assert_eq!(r, 86);
        assert_eq!(&out[..6], &PEER);
        let ip = &out[14..86];
        assert_eq!(ip[40], 136);
        assert_eq!(ip[44], 0xe0, "router, solicited, override");
        assert_eq!(&ip[48..64], &own.0);
        assert_eq!(&ip[66..72], &OUR);
        let mut s = [0u8; 16];
        s.copy_from_slice(&ip[8..24]);
        let mut d = [0u8; 16];
        d.copy_from_slice(&ip[24..40]);
        assert_eq!(
            checksum_of(sum(&ip[40..72], pseudo_v6(&s, &d, proto::ICMPV6, 32))),
            0
        );
        assert_eq!(n.get(0, &peer).unwrap().mac, Some(PEER));
        // The advertisement teaches a table that asked.
        let mut m = Neighbors::new(4, 0);
        let mut o2 = [0u8; 128];
        assert!(matches!(
            m.resolve(
                &Iface {
                    index: 0,
                    mac: PEER
                },
                peer,
                own,
                Instant(0),
                &mut o2
            ),
            Resolution::Wait { request: 86 }
        ));
        m.receive(
            &Iface {
                index: 0,
                mac: PEER,
            },
            &[peer],
            &out[..86],
            Instant(5),
            &mut o2,
        );
        assert_eq!(
            m.resolve(
                &Iface {
                    index: 0,
                    mac: PEER
                },
                peer,
                own,
                Instant(6),
                &mut o2
            ),
            Resolution::Mac(OUR)
        );
    }

    #[test]
    fn garbage_is_counted_not_trusted() {
        let mut n = Neighbors::new(4, 0);
        let mut out = [0u8; 128];
        let mut f = vec![0u8; 20];
        f[12..14].copy_from_slice(&ETH_ARP.to_be_bytes());
        assert_eq!(n.receive(&IFC, &[], &f, Instant(0), &mut out), 0);
        assert_eq!(n.stats().malformed, 1);
        for len in 0..100 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            n.receive(&IFC, &[], &junk, Instant(0), &mut out);
        }
    }
}
