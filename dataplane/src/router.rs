//! Router mode: the per-worker router plane (issue #11, see docs/nat.md
//! "Router mode").
//!
//! With interface addresses configured (`/ip address`, `/ipv6 address`),
//! ctrack routes instead of bridging port pairs. Each worker holds one
//! [`RouterPlane`]: the shared [`RouterConfig`] (own addresses, port MACs,
//! the [`Fib`]: an `Arc` built by control and swapped in between bursts, as
//! rulesets are), its own neighbour table ([`Neighbors`]) and a bounded hold
//! queue of packets waiting for a next hop's resolution.
//!
//! Per received frame the worker asks [`RouterPlane::classify`] (no state
//! changed, nothing allocated):
//!
//! - [`Class::Forward`]: a unicast IP packet to our MAC with a route and a
//!   TTL / hop limit above 1; tracked and filtered (forward hooks), then
//!   [`RouterPlane::output`] decrements the TTL, resolves the next hop and
//!   rewrites the Ethernet header (src = the egress port's MAC);
//! - [`Class::Local`]: to one of our addresses; tracked and filtered through
//!   the `input` hooks, then [`RouterPlane::local`] answers pings (the echo
//!   reply goes back through tracking and the `output` hooks) and refuses
//!   the rest as Linux does with no listener (TCP reset, ICMP port
//!   unreachable);
//! - [`Class::Router`]: handled here, untracked, by [`RouterPlane::handle`]:
//!   ARP and neighbour discovery (answered, learned), no route (ICMP
//!   network unreachable / ICMPv6 no route), TTL exceeded (ICMP time
//!   exceeded), and frames a router does not forward (another host's MAC,
//!   multicast or broadcast not for us, link-local, not IP): dropped, counted.
//!
//! Linux checks the TTL and the route after conntrack's PREROUTING hook but
//! before its confirmation, so such packets never create a connection; here
//! they never reach the table at all (they are also not counted on an
//! existing connection: the one difference).
//!
//! Neighbours: every worker keeps its own table. An answer to one worker's
//! request may arrive on another worker's queue, so whatever a worker
//! learns from the wire it also publishes on the [`NeighBus`] (one bounded
//! ring per worker, drained between bursts): every worker learns every
//! neighbour, none waits on a lock. A held packet goes out as soon as its
//! worker knows the neighbour (checked between bursts), or is dropped
//! (counted) when resolution fails or after [`HOLD_TIMEOUT`].

/// The sans-io pieces (neighbour tables, the route model), for callers of
/// this crate.
pub use ctrack_core::router::{neigh, route};

use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::conntrack::Instant;
use crate::flow::{Addr, Family, proto};
use crate::frag::{Fragmenter, IPV6_MIN_MTU};
use crate::io::PacketIo;
use crate::packet::checksum::{RxChecksum, fill_ip, verify_ip};
use crate::packet::nat::{Ttl, decrement_ttl};
use crate::packet::respond::{Answer, Unreachable4, Unreachable6};
use crate::respond::Responder;
use ctrack_core::router::neigh::{Iface, Mac, Neighbors, Resolution, State};
use ctrack_core::router::route::{NextHop, Prefix};

/// The egress "port" of traffic to the box itself (and the ingress of what
/// it sends): tracked through the `input` / `output` hooks.
pub const LOCAL_PORT: u16 = u16::MAX - 1;
/// Packets a worker holds at most while their next hops resolve (Linux
/// holds up to `unres_qlen`, 101 by default, per neighbour).
pub const HOLD_MAX: usize = 256;
/// A held packet is dropped after this long (3 requests, 1 s apart).
pub const HOLD_TIMEOUT: u64 = 3_000_000_000;
/// Neighbour entries per worker at most (Linux's `gc_thresh3` is 1024).
pub const NEIGH_CAPACITY: usize = 4096;
/// Learned neighbours queued to each worker at most.
pub const BUS_RING: usize = 1024;
/// How often a worker ages its neighbour table.
const AGE_EVERY: u64 = 100_000_000;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;

/// One port's identity and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortAddrs {
    pub mac: Mac,
    /// Its addresses of both families (IPv4 v4-mapped), first of each
    /// family first: the source of its requests and ICMP errors.
    pub addrs: Vec<Addr>,
    /// The IP MTU out of this port (`/interface ethernet ... mtu=`,
    /// RouterOS's default 1500); 0: not checked.
    pub mtu: u16,
}

impl PortAddrs {
    /// The port's first address of `family`.
    pub fn first(&self, family: Family) -> Option<Addr> {
        self.addrs
            .iter()
            .copied()
            .find(|a| a.is_v4_mapped() == (family == Family::V4))
    }
}

/// What control hands every worker (one `Arc`, immutable; a change is a
/// new one swapped in between bursts: [`crate::worker::Command::Router`]).
#[derive(Debug, Default)]
pub struct RouterConfig {
    /// By port index.
    pub ports: Vec<PortAddrs>,
    pub fib: Fib,
    /// Static neighbours (`/ip arp`, `/ipv6 neighbor`): (port, address, MAC).
    pub statics: Vec<(u16, Addr, Mac)>,
    /// Neighbour reachable time in ns (`arp-timeout`; 0: RouterOS's 30 s).
    pub reachable_ns: u64,
}

impl RouterConfig {
    /// Whether `a` is one of our addresses (any port).
    pub fn is_own(&self, a: &Addr) -> bool {
        self.ports.iter().any(|p| p.addrs.contains(a))
    }
}

/// The forwarding table: DPDK's `rte_lpm`/`rte_lpm6` when built with
/// [`Fib::with_lpm`] (on a running EAL), else the sans-io reference
/// ([`route::Fib`]): the same answers (`dpdk-bindings/dpdk/tests/lpm.rs`,
/// and this module's tests for the reference).
#[derive(Debug, Default)]
pub struct Fib {
    entries: Vec<(Prefix, NextHop)>,
    v4: route::Fib,
    v6: route::Fib,
    #[cfg(feature = "dpdk")]
    lpm: Option<(dpdk::Lpm, dpdk::Lpm6)>,
}

impl Fib {
    /// The reference longest-prefix match over `entries`
    /// ([`route::Table::compile`]).
    pub fn new(entries: Vec<(Prefix, NextHop)>) -> Fib {
        Fib {
            v4: route::Fib::new(Family::V4, &entries),
            v6: route::Fib::new(Family::V6, &entries),
            entries,
            #[cfg(feature = "dpdk")]
            lpm: None,
        }
    }

    /// As [`Fib::new`], looked up with `rte_lpm` and `rte_lpm6` (needs a
    /// running EAL): next hops are indexes into `entries`.
    #[cfg(feature = "dpdk")]
    pub fn with_lpm(entries: Vec<(Prefix, NextHop)>) -> dpdk::Result<Fib> {
        let n = entries.len() as u32 + 16;
        let mut v4 = dpdk::Lpm::new(n, 256)?;
        let mut v6 = dpdk::Lpm6::new(n, 1 << 12)?;
        for (i, (p, _)) in entries.iter().enumerate() {
            match p.family {
                Family::V4 => v4.add(u32::from_be_bytes(p.addr.v4_octets()), p.len, i as u32)?,
                Family::V6 => v6.add(&p.addr.0, p.len, i as u32)?,
            }
        }
        let mut fib = Fib::new(entries);
        fib.lpm = Some((v4, v6));
        Ok(fib)
    }

    /// The compiled entries.
    pub fn entries(&self) -> &[(Prefix, NextHop)] {
        &self.entries
    }

    /// The next hop for `dst`.
    #[inline]
    pub fn lookup(&self, dst: &Addr) -> Option<NextHop> {
        #[cfg(feature = "dpdk")]
        if let Some((v4, v6)) = &self.lpm {
            let i = if dst.is_v4_mapped() {
                v4.lookup(u32::from_be_bytes(dst.v4_octets()))
            } else {
                v6.lookup(&dst.0)
            }?;
            return self.entries.get(i as usize).map(|e| e.1);
        }
        if dst.is_v4_mapped() {
            self.v4.lookup(dst)
        } else {
            self.v6.lookup(dst)
        }
    }
}

/// Neighbours learned by one worker, passed to all others (see the module
/// doc).
pub struct NeighBus {
    rings: Vec<ArrayQueue<(u16, Addr, Mac)>>,
}

impl NeighBus {
    pub fn new(workers: usize) -> Arc<NeighBus> {
        Arc::new(NeighBus {
            rings: (0..workers.max(1))
                .map(|_| ArrayQueue::new(BUS_RING))
                .collect(),
        })
    }

    /// Gives `e` to every worker but `from`; how many rings were full.
    fn publish(&self, from: u16, e: (u16, Addr, Mac)) -> u64 {
        let mut lost = 0;
        for (w, r) in self.rings.iter().enumerate() {
            if w != usize::from(from) && r.push(e).is_err() {
                lost += 1;
            }
        }
        lost
    }
}

/// What the router plane did, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouterTotals {
    /// Packets sent out routed (Ethernet header rewritten).
    pub forwarded: u64,
    /// Packets to our own addresses, after the input chain.
    pub local_in: u64,
    /// Echo replies to pings of our addresses.
    pub echo_replies: u64,
    /// Packets to us refused (TCP reset, port unreachable or nothing).
    pub local_refused: u64,
    /// ARP and neighbour discovery frames received.
    pub neigh_in: u64,
    /// ARP replies and neighbour advertisements sent.
    pub neigh_answers: u64,
    /// ARP requests and neighbour solicitations sent.
    pub neigh_requests: u64,
    /// No route: dropped (answered with ICMP network unreachable).
    pub no_route: u64,
    /// TTL / hop limit ran out: dropped (answered with time exceeded).
    pub ttl_exceeded: u64,
    /// Frames a router does not forward (another MAC, multicast or
    /// broadcast not for us, link-local, not IP, malformed).
    pub not_routed: u64,
    /// Packets held for a next hop's resolution.
    pub held: u64,
    /// Held packets sent once the neighbour was known.
    pub released: u64,
    /// Packets dropped: the hold queue was full.
    pub hold_full: u64,
    /// Held packets dropped: resolution failed or took too long.
    pub hold_expired: u64,
    /// Packets larger than the egress MTU: IPv4 without DF is fragmented
    /// (`fragmented`); the rest is dropped, answered with ICMP
    /// fragmentation needed / packet too big (IPv4 with DF, IPv6), or not
    /// (IPv4 with options, sent by the box).
    pub too_big: u64,
    /// Packets fragmented to fit the egress MTU, and the fragments sent.
    pub fragmented: u64,
    pub fragments: u64,
    /// Packets dropped: the neighbour failed recently, the table is full,
    /// or the port has no address of the family to ask from.
    pub neigh_drops: u64,
    /// Learned neighbours other workers' rings had no room for.
    pub bus_lost: u64,
    /// Generated packets (answers, requests) with no buffer free.
    pub alloc_failed: u64,
}

impl RouterTotals {
    /// Every count with its name (the field's): the label values of
    /// `ctrack_router_events_total`.
    pub fn named(&self) -> [(&'static str, u64); 20] {
        [
            ("forwarded", self.forwarded),
            ("local_in", self.local_in),
            ("echo_replies", self.echo_replies),
            ("local_refused", self.local_refused),
            ("neigh_in", self.neigh_in),
            ("neigh_answers", self.neigh_answers),
            ("neigh_requests", self.neigh_requests),
            ("no_route", self.no_route),
            ("ttl_exceeded", self.ttl_exceeded),
            ("not_routed", self.not_routed),
            ("held", self.held),
            ("released", self.released),
            ("hold_full", self.hold_full),
            ("hold_expired", self.hold_expired),
            ("too_big", self.too_big),
            ("fragmented", self.fragmented),
            ("fragments", self.fragments),
            ("neigh_drops", self.neigh_drops),
            ("bus_lost", self.bus_lost),
            ("alloc_failed", self.alloc_failed),
        ]
    }
}

/// How a received frame is handled in router mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    /// Routed out of this port, after tracking and the forward hooks.
    Forward(u16),
    /// To the box itself: tracking and the input hooks.
    Local,
    /// ARP/ND, an error to send, or a drop: [`RouterPlane::handle`].
    Router,
}

/// What [`RouterPlane::local`] makes of a packet to the box.
pub enum LocalOut<P> {
    /// The echo reply, to track through the output hooks and route out.
    EchoReply(P),
    /// A reset or ICMP error to send out of this port as it is.
    Answer(P, u16),
    Nothing,
}

struct Held<P> {
    pkt: P,
    port: u16,
    hop: Addr,
    since: u64,
}

/// A worker's router plane (see the module doc).
pub struct RouterPlane<P> {
    id: u16,
    cfg: Arc<RouterConfig>,
    neigh: Neighbors,
    hold: VecDeque<Held<P>>,
    bus: Arc<NeighBus>,
    scratch: Box<[u8]>,
    /// Cuts packets over the egress MTU, and reassembled datagrams, into
    /// fragments (see [`crate::frag`]).
    fragmenter: Fragmenter,
    last_age: u64,
    totals: RouterTotals,
    /// The smallest egress MTU of the configuration (a packet no longer
    /// fits every port: [`RouterPlane::exceeds_mtu`]).
    min_mtu: u16,
}

fn min_mtu(cfg: &RouterConfig) -> u16 {
    cfg.ports
        .iter()
        .map(|p| p.mtu)
        .filter(|&m| m > 0)
        .min()
        .unwrap_or(u16::MAX)
}

/// The IP destination of an Ethernet frame, with its family's TTL / hop
/// limit offset; `None` if it is not IPv4/IPv6 or too short.
fn ip_dst(frame: &[u8]) -> Option<(Addr, usize)> {
    match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        ETH_IPV4 if frame.len() >= 34 && frame[14] >> 4 == 4 => {
            Some((Addr::from_v4(frame[30..34].try_into().ok()?), 22))
        }
        ETH_IPV6 if frame.len() >= 54 && frame[14] >> 4 == 6 => {
            Some((Addr::from_v6(frame[38..54].try_into().ok()?), 21))
        }
        _ => None,
    }
}

fn is_multicast(a: &Addr) -> bool {
    if a.is_v4_mapped() {
        let o = a.v4_octets();
        o[0] >= 224 || o == [0; 4]
    } else {
        a.0[0] == 0xff || a.0 == [0; 16]
    }
}

fn is_link_local_v6(a: &Addr) -> bool {
    !a.is_v4_mapped() && a.0[0] == 0xfe && a.0[1] & 0xc0 == 0x80
}

/// Whether the frame is ARP or an ICMPv6 neighbour discovery message (types
/// 133-137, carried without extension headers).
fn is_neigh(frame: &[u8]) -> bool {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETH_ARP => true,
        ETH_IPV6 => {
            frame.len() > 54 && frame[20] == proto::ICMPV6 && (133..=137).contains(&frame[54])
        }
        _ => false,
    }
}

/// An ICMPv6 neighbour advertisement to one of `own` with a target
/// link-layer address option right after the target: (target, MAC).
fn na_to_us(frame: &[u8], own: &[Addr]) -> Option<(Addr, Mac)> {
    if frame.len() < 86
        || frame[12..14] != ETH_IPV6.to_be_bytes()
        || frame[20] != proto::ICMPV6
        || frame[54] != 136
        || frame[78..80] != [2, 1]
    {
        return None;
    }
    let dst = Addr::from_v6(frame[38..54].try_into().ok()?);
    if !own.contains(&dst) {
        return None;
    }
    Some((
        Addr::from_v6(frame[62..78].try_into().ok()?),
        frame[80..86].try_into().ok()?,
    ))
}

/// The address an ARP frame or NS/NA speaks for (the one its sender's MAC
/// address is learned under).
fn neigh_sender(frame: &[u8]) -> Option<Addr> {
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETH_ARP if frame.len() >= 42 => Some(Addr::from_v4(frame[28..32].try_into().ok()?)),
        ETH_IPV6 if frame.len() >= 78 => match frame[54] {
            135 => Some(Addr::from_v6(frame[22..38].try_into().ok()?)),
            136 => Some(Addr::from_v6(frame[62..78].try_into().ok()?)),
            _ => None,
        },
        _ => None,
    }
}

impl<P> RouterPlane<P> {
    /// Worker `id`'s plane, with `cfg`'s static neighbours loaded.
    pub fn new(id: u16, cfg: Arc<RouterConfig>, bus: Arc<NeighBus>, now: Instant) -> Self {
        let mut r = RouterPlane {
            id,
            neigh: Neighbors::new(NEIGH_CAPACITY, cfg.reachable_ns),
            cfg: Arc::clone(&cfg),
            hold: VecDeque::with_capacity(HOLD_MAX),
            bus,
            scratch: vec![0; 256].into_boxed_slice(),
            fragmenter: Fragmenter::new(crate::worker::random_u64() as u32),
            last_age: now.0,
            totals: RouterTotals::default(),
            min_mtu: min_mtu(&cfg),
        };
        r.load_statics(now);
        r
    }

    fn load_statics(&mut self, now: Instant) {
        for &(port, addr, mac) in &self.cfg.statics {
            self.neigh.add_static(port, addr, mac, now);
        }
    }

    /// Installs a new configuration (between bursts): learned neighbours
    /// and held packets stay; the new static entries are added, and the
    /// static entries the new configuration no longer has are removed
    /// (`/ip arp remove`).
    pub fn set_config(&mut self, cfg: Arc<RouterConfig>, now: Instant) {
        self.min_mtu = min_mtu(&cfg);
        for &(port, addr, _) in &self.cfg.statics {
            if !cfg.statics.iter().any(|s| s.0 == port && s.1 == addr) {
                self.neigh.remove(port, &addr);
            }
        }
        self.cfg = cfg;
        self.load_statics(now);
    }

    pub fn config(&self) -> &Arc<RouterConfig> {
        &self.cfg
    }

    pub fn totals(&self) -> RouterTotals {
        self.totals
    }

    pub fn neighbors(&self) -> &Neighbors {
        &self.neigh
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.hold.len()
    }

    /// The egress port and next hop for `dst` (the packet's own destination
    /// where the route is connected): what NAT's masquerade asks for the
    /// out-interface. `None`: no route.
    #[inline]
    pub fn route(&self, dst: &Addr) -> Option<(u16, Addr)> {
        self.cfg
            .fib
            .lookup(dst)
            .map(|h| (h.iface, h.gateway.unwrap_or(*dst)))
    }

    /// How the frame received on `in_port` is handled (see [`Class`]).
    #[inline]
    pub fn classify(&self, frame: &[u8], in_port: u16) -> Class {
        if frame.len() < 14 {
            return Class::Router;
        }
        let ours = self
            .cfg
            .ports
            .get(usize::from(in_port))
            .is_some_and(|p| frame[..6] == p.mac);
        if !ours && frame[0] & 1 == 0 {
            return Class::Router; // another host's unicast MAC
        }
        if is_neigh(frame) {
            return Class::Router;
        }
        let Some((dst, ttl_at)) = ip_dst(frame) else {
            return Class::Router;
        };
        if self.cfg.is_own(&dst) {
            return Class::Local;
        }
        if !ours || is_multicast(&dst) || is_link_local_v6(&dst) {
            return Class::Router;
        }
        match self.cfg.fib.lookup(&dst) {
            Some(_) if frame[ttl_at] <= 1 => Class::Router,
            Some(h) => Class::Forward(h.iface),
            None => Class::Router,
        }
    }

    /// Handles a frame [`RouterPlane::classify`] gave [`Class::Router`]:
    /// learns and answers ARP/ND, answers no route and TTL exceeded (ICMP
    /// errors through `responder`, rate-limited), drops the rest (counted).
    /// Returns a packet to send and its port.
    pub fn handle<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        responder: &mut Responder,
        pkt: P,
        in_port: u16,
        now: Instant,
    ) -> Option<(P, u16)> {
        let frame = io.packet_data(&pkt);
        if frame.len() >= 14 && is_neigh(frame) {
            self.totals.neigh_in += 1;
            let port = self.cfg.ports.get(usize::from(in_port))?;
            let ifc = Iface {
                index: in_port,
                mac: port.mac,
            };
            let malformed = self.neigh.stats().malformed;
            let n = self
                .neigh
                .receive(&ifc, &port.addrs, frame, now, &mut self.scratch);
            // An advertisement to our address answers a solicitation, but
            // maybe another worker's (its entry is not here): learn it here
            // too, so that it is shared below.
            if let Some((target, mac)) = na_to_us(frame, &port.addrs)
                && self.neigh.stats().malformed == malformed
                && self.neigh.get(in_port, &target).is_none()
            {
                self.neigh.learn_shared(in_port, target, mac, now);
            }
            if let Some(addr) = neigh_sender(frame)
                && let Some(e) = self.neigh.get(in_port, &addr)
                && e.state == State::Reachable
                && e.since == now.0
                && let Some(mac) = e.mac
            {
                self.totals.bus_lost += self.bus.publish(self.id, (in_port, addr, mac));
            }
            if n == 0 {
                return None;
            }
            self.totals.neigh_answers += 1;
            return match io.alloc(&self.scratch[..n]) {
                Some(p) => Some((p, in_port)),
                None => {
                    self.totals.alloc_failed += 1;
                    None
                }
            };
        }
        let answer = match ip_dst(frame) {
            Some((dst, ttl_at))
                if frame[..6] != [0xff; 6]
                    && frame[0] & 1 == 0
                    && !is_multicast(&dst)
                    && !is_link_local_v6(&dst) =>
            {
                if self.cfg.fib.lookup(&dst).is_none() {
                    self.totals.no_route += 1;
                    if dst.is_v4_mapped() {
                        Answer::Icmp4(Unreachable4::Network)
                    } else {
                        Answer::Icmp6(Unreachable6::NoRoute)
                    }
                } else if frame[ttl_at] <= 1 {
                    self.totals.ttl_exceeded += 1;
                    Answer::TimeExceeded
                } else {
                    self.totals.not_routed += 1;
                    return None;
                }
            }
            _ => {
                self.totals.not_routed += 1;
                return None;
            }
        };
        responder
            .respond_as_received(io, frame, answer, in_port, now)
            .map(|a| (a, in_port))
    }

    /// A packet to one of our addresses, accepted by the input chain: a
    /// ping gets its echo reply (to be tracked and filtered as output, then
    /// [`RouterPlane::output`]); TCP gets a reset and UDP a port
    /// unreachable out of `in_port` (nothing listens here); anything else
    /// is dropped. All counted.
    pub fn local<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        responder: &mut Responder,
        mut pkt: P,
        in_port: u16,
        now: Instant,
    ) -> LocalOut<P> {
        self.totals.local_in += 1;
        let f = io.packet_data_mut(&mut pkt);
        if echo_reply(f).is_some() {
            self.totals.echo_replies += 1;
            return LocalOut::EchoReply(pkt);
        }
        self.totals.local_refused += 1;
        let answer = match l4_proto(f) {
            Some(proto::TCP) => Answer::TcpReset,
            Some(proto::UDP) if f[12..14] == ETH_IPV4.to_be_bytes() => {
                Answer::Icmp4(Unreachable4::Port)
            }
            Some(proto::UDP) => Answer::Icmp6(Unreachable6::Port),
            _ => return LocalOut::Nothing,
        };
        if in_port < LOCAL_PORT
            && let Some(a) =
                responder.respond_as_received(io, io.packet_data(&pkt), answer, in_port, now)
        {
            return LocalOut::Answer(a, in_port);
        }
        LocalOut::Nothing
    }

    /// Sends a routed packet (received on `from`: its TTL / hop limit is
    /// decremented) or one the box generated (`from` is `None`): route
    /// lookup, egress MTU check, TTL decrement, next hop resolution (the
    /// packet held, and a request sent, while it resolves), Ethernet
    /// rewrite; what goes out is passed to `send` with its port. A packet
    /// too big for the egress MTU that may not be fragmented comes back
    /// with the MTU, for [`RouterPlane::too_big`] to answer.
    ///
    /// A datagram reassembled here ([`PacketIo::frag_size`]) goes out in
    /// fragments no larger than the largest it came in, or the MTU if that
    /// is smaller (IPv4, Linux's `ip_do_fragment`); IPv6 is too big if its
    /// largest fragment was (Linux's `ip6_pkt_too_big`), else fragmented
    /// to that size (`ip6_fragment`). See docs/nat.md, Fragments.
    pub fn output<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        mut pkt: P,
        from: Option<u16>,
        now: Instant,
        send: &mut impl FnMut(&mut I, P, u16),
    ) -> Option<(P, u16)> {
        let frag = usize::from(io.frag_size(&pkt));
        let f = io.packet_data_mut(&mut pkt);
        let Some((dst, _)) = ip_dst(f) else {
            self.totals.not_routed += 1;
            return None;
        };
        let Some(hop) = self.cfg.fib.lookup(&dst) else {
            self.totals.no_route += 1;
            return None;
        };
        let mtu = self
            .cfg
            .ports
            .get(usize::from(hop.iface))
            .map_or(0, |p| p.mtu);
        // Fragments of at most this many bytes (0: the packet whole).
        let mut piece = 0;
        if let Some((len, may_fragment)) = ip_len(f) {
            let mtu = usize::from(mtu);
            let v6 = f[12..14] == ETH_IPV6.to_be_bytes();
            if mtu > 0 && len > mtu {
                self.totals.too_big += 1;
            }
            if frag > 0 {
                if v6 && mtu > 0 && frag > mtu {
                    return from.is_some().then_some((pkt, mtu as u16));
                }
                let size = if mtu > 0 { frag.min(mtu) } else { frag };
                if len > size {
                    piece = if v6 { size.max(IPV6_MIN_MTU) } else { size };
                }
            } else if mtu > 0 && len > mtu {
                // IPv4 without DF is fragmented, as Linux's `ip_fragment`
                // (only without options here: those would have to be
                // sorted into the ones copied into every fragment).
                if from.is_some() && may_fragment && f[14] == 0x45 && mtu >= 28 {
                    piece = mtu;
                } else {
                    return (from.is_some() && !may_fragment).then_some((pkt, mtu as u16));
                }
            }
        }
        if from.is_some() && !matches!(decrement_ttl(f), Ok(Ttl::Forward)) {
            self.totals.ttl_exceeded += 1;
            return None;
        }
        let next = hop.gateway.unwrap_or(dst);
        if piece > 0 {
            self.fragment_and_send(io, pkt, piece, (hop.iface, next), now, send);
        } else {
            self.resolve_and_send(io, pkt, hop.iface, next, now, None, send);
        }
        None
    }

    /// Sends packet `pkt` as fragments of at most `size` bytes (each a new
    /// packet from the I/O, resolved and sent as any; `pkt` is freed): see
    /// [`Fragmenter::split`].
    fn fragment_and_send<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        pkt: P,
        size: usize,
        (port, next): (u16, Addr),
        now: Instant,
        send: &mut impl FnMut(&mut I, P, u16),
    ) {
        self.totals.fragmented += 1;
        let mut fragmenter = std::mem::replace(&mut self.fragmenter, Fragmenter::empty());
        let mut pieces = 0;
        let f = io.packet_data(&pkt);
        let r = fragmenter.split(io, f, size, |io, p| {
            pieces += 1;
            self.resolve_and_send(io, p, port, next, now, None, send);
        });
        self.fragmenter = fragmenter;
        self.totals.fragments += pieces;
        match r {
            Ok(_) => {}
            Err(crate::frag::SplitError::NoBuffer) => self.totals.alloc_failed += 1,
            Err(_) => self.totals.not_routed += 1,
        }
    }

    /// For a packet about to be translated and routed to `dst` (its
    /// translated destination): the egress MTU when the packet is bigger
    /// and may not be fragmented (IPv4 with DF, IPv6), counted as
    /// `too_big`; the caller answers it as received
    /// ([`RouterPlane::too_big`]) instead of translating it. Linux checks
    /// the MTU in `ip_forward`, before POSTROUTING's source NAT, and
    /// translates an error about a destination-NATed packet back
    /// (`nf_nat_icmp_reply_translation`): either way the sender gets its
    /// own packet quoted. A packet that fits the smallest MTU costs one
    /// comparison. `frag`: [`PacketIo::frag_size`]; a datagram reassembled
    /// here is too big only if its largest fragment was (IPv6; IPv4's DF is
    /// cleared by reassembly and it is fragmented again), as
    /// [`RouterPlane::output`] decides.
    #[inline]
    pub fn exceeds_mtu(&mut self, frame: &[u8], frag: u16, dst: &Addr) -> Option<u16> {
        let (len, may_fragment) = ip_len(frame)?;
        let len = if frag > 0 { usize::from(frag) } else { len };
        if len <= usize::from(self.min_mtu) || may_fragment {
            return None;
        }
        let hop = self.cfg.fib.lookup(dst)?;
        let mtu = self.cfg.ports.get(usize::from(hop.iface))?.mtu;
        if mtu == 0 || len <= usize::from(mtu) {
            return None;
        }
        self.totals.too_big += 1;
        Some(mtu)
    }

    /// Answers a packet [`RouterPlane::output`] found too big for `mtu`:
    /// ICMP fragmentation needed / ICMPv6 packet too big out of `in_port`
    /// (not rate-limited, as in Linux).
    pub fn too_big<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        responder: &mut Responder,
        pkt: P,
        in_port: u16,
        mtu: u16,
        now: Instant,
    ) -> Option<(P, u16)> {
        responder
            .respond_as_received(io, io.packet_data(&pkt), Answer::TooBig(mtu), in_port, now)
            .map(|a| (a, in_port))
    }

    /// Resolves `next` on `port` and sends `pkt` (rewritten), holds it, or
    /// drops it. `since`: when a held packet was first held.
    #[allow(clippy::too_many_arguments)]
    fn resolve_and_send<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        mut pkt: P,
        port: u16,
        next: Addr,
        now: Instant,
        since: Option<u64>,
        send: &mut impl FnMut(&mut I, P, u16),
    ) {
        let Some(pa) = self.cfg.ports.get(usize::from(port)) else {
            self.totals.neigh_drops += 1;
            return;
        };
        let family = if next.is_v4_mapped() {
            Family::V4
        } else {
            Family::V6
        };
        let Some(own) = pa.first(family) else {
            self.totals.neigh_drops += 1;
            return;
        };
        let ifc = Iface {
            index: port,
            mac: pa.mac,
        };
        let res = self.neigh.resolve(&ifc, own, next, now, &mut self.scratch);
        let request = match res {
            Resolution::Probe { request, .. } | Resolution::Wait { request } => request,
            _ => 0,
        };
        if request > 0 {
            self.totals.neigh_requests += 1;
            match io.alloc(&self.scratch[..request]) {
                Some(r) => send(io, r, port),
                None => self.totals.alloc_failed += 1,
            }
        }
        match res {
            Resolution::Mac(mac) | Resolution::Probe { mac, .. } => {
                let f = io.packet_data_mut(&mut pkt);
                f[..6].copy_from_slice(&mac);
                f[6..12].copy_from_slice(&pa.mac);
                if since.is_some() {
                    self.totals.released += 1;
                }
                self.totals.forwarded += 1;
                send(io, pkt, port);
            }
            Resolution::Wait { .. } => {
                let first = since.is_none();
                let since = since.unwrap_or(now.0);
                if now.0.saturating_sub(since) >= HOLD_TIMEOUT {
                    self.totals.hold_expired += 1;
                } else if self.hold.len() >= HOLD_MAX {
                    self.totals.hold_full += 1;
                } else {
                    if first {
                        self.totals.held += 1;
                    }
                    self.hold.push_back(Held {
                        pkt,
                        port,
                        hop: next,
                        since,
                    });
                }
            }
            Resolution::Drop => {
                if since.is_some() {
                    self.totals.hold_expired += 1;
                } else {
                    self.totals.neigh_drops += 1;
                }
            }
        }
    }

    /// Between bursts: learns what other workers learned, ages the table
    /// (at most every 100 ms), and sends the held packets whose neighbours
    /// are known now (dropping those that failed or waited too long).
    pub fn between_bursts<I: PacketIo<Packet = P>>(
        &mut self,
        io: &mut I,
        now: Instant,
        send: &mut impl FnMut(&mut I, P, u16),
    ) {
        if let Some(ring) = self.bus.rings.get(usize::from(self.id)) {
            while let Some((port, addr, mac)) = ring.pop() {
                self.neigh.learn_shared(port, addr, mac, now);
            }
        }
        if now.0.saturating_sub(self.last_age) >= AGE_EVERY {
            self.last_age = now.0;
            self.neigh.age(now);
        }
        for _ in 0..self.hold.len() {
            let Some(h) = self.hold.pop_front() else {
                break;
            };
            self.resolve_and_send(io, h.pkt, h.port, h.hop, now, Some(h.since), send);
        }
    }
}

/// The IP length of an Ethernet frame's packet, and whether a router may
/// fragment it (IPv4 without DF).
fn ip_len(f: &[u8]) -> Option<(usize, bool)> {
    let len = crate::frag::ip_len(f)?;
    let may_fragment = f[12..14] == ETH_IPV4.to_be_bytes() && f.get(20)? & 0x40 == 0;
    Some((len, may_fragment))
}

/// The IP protocol of an Ethernet frame's packet (IPv6: the fixed header's
/// next header).
fn l4_proto(f: &[u8]) -> Option<u8> {
    match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        ETH_IPV4 => f.get(23).copied(),
        ETH_IPV6 => f.get(20).copied(),
        _ => None,
    }
}

/// Turns an ICMP echo request (IPv4 type 8, ICMPv6 128, no extension
/// headers, unfragmented, checksums valid: Linux's `icmp_rcv` drops a bad
/// one) into its reply in place: addresses swapped, type
/// 0 / 129, TTL / hop limit 64, checksums recomputed (the Ethernet header
/// is written when it is sent). `None` (untouched) for anything else.
fn echo_reply(f: &mut [u8]) -> Option<()> {
    match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        ETH_IPV4 => {
            let hl = usize::from(f.get(14)? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*f.get(16)?, *f.get(17)?]));
            let frag = u16::from_be_bytes([*f.get(20)?, *f.get(21)?]) & 0x3fff;
            if *f.get(23)? != proto::ICMP || frag != 0 || hl < 20 || total < hl + 8 {
                return None;
            }
            let ip = f.get_mut(14..14 + total)?;
            if ip[hl] != 8 || verify_ip(ip, RxChecksum::UNKNOWN).is_err() {
                return None;
            }
            let (s, d): ([u8; 4], [u8; 4]) =
                (ip[12..16].try_into().ok()?, ip[16..20].try_into().ok()?);
            ip[12..16].copy_from_slice(&d);
            ip[16..20].copy_from_slice(&s);
            ip[8] = 64;
            ip[hl] = 0;
            fill_ip(ip);
            Some(())
        }
        ETH_IPV6 => {
            let plen = usize::from(u16::from_be_bytes([*f.get(18)?, *f.get(19)?]));
            if *f.get(20)? != proto::ICMPV6 || plen < 8 {
                return None;
            }
            let ip = f.get_mut(14..14 + 40 + plen)?;
            if ip[40] != 128 || verify_ip(ip, RxChecksum::UNKNOWN).is_err() {
                return None;
            }
            let (s, d): ([u8; 16], [u8; 16]) =
                (ip[8..24].try_into().ok()?, ip[24..40].try_into().ok()?);
            ip[8..24].copy_from_slice(&d);
            ip[24..40].copy_from_slice(&s);
            ip[7] = 64;
            ip[40] = 129;
            fill_ip(ip);
            Some(())
        }
        _ => None,
    }
}

/// The IP destination of an Ethernet frame (IPv4 v4-mapped), if it is one.
pub fn dst_of(frame: &[u8]) -> Option<Addr> {
    ip_dst(frame).map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{Settings, Shard, TableConfig};
    use crate::io::mem::{MemIo, MemLink};
    use crate::packet::checksum::RxChecksum;
    use crate::packet::checksum::verify_ip;
    use crate::packet::checksum::{checksum_of, sum};
    use crate::worker::{Command, Mesh, Worker, random_seed};
    use ctrack_core::router::neigh::build_request;
    use ctrack_core::router::route::{IfAddr, StaticRoute, Table};
    use ctrack_traffic::synth::{icmp_echo_frame, tcp_frame, udp_frame};

    const MAC0: Mac = [2, 0, 0, 0, 0, 0xa0];
    const MAC1: Mac = [2, 0, 0, 0, 0, 0xa1];
    const HOST_A: Mac = [2, 0, 0, 0, 0, 0x0a];
    const HOST_B: Mac = [2, 0, 0, 0, 0, 0x0b];
    const A: [u8; 4] = [10, 0, 1, 2];
    const B: [u8; 4] = [10, 0, 2, 2];
    const OWN0: [u8; 4] = [10, 0, 1, 1];
    const OWN1: [u8; 4] = [10, 0, 2, 1];

    fn v6(net: u8, host: u8) -> Addr {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[1] = net;
        a[15] = host;
        Addr::from_v6(a)
    }

    fn prefix(a: Addr, len: u8) -> Prefix {
        let f = if a.is_v4_mapped() {
            Family::V4
        } else {
            Family::V6
        };
        Prefix::new(f, a, len).unwrap()
    }

    /// Port 0: 10.0.1.1/24, fd01::1/64; port 1: 10.0.2.1/24, fd02::1/64;
    /// 10.9.0.0/16 via 10.0.2.254; `statics` as static neighbours.
    fn config(statics: Vec<(u16, Addr, Mac)>) -> Arc<RouterConfig> {
        let addrs = [
            (0, Addr::from_v4(OWN0), 24),
            (0, v6(1, 1), 64),
            (1, Addr::from_v4(OWN1), 24),
            (1, v6(2, 1), 64),
        ];
        let table = Table {
            addresses: addrs
                .iter()
                .map(|&(iface, addr, len)| IfAddr {
                    iface,
                    addr,
                    prefix: prefix(addr, len),
                })
                .collect(),
            routes: vec![StaticRoute {
                dst: prefix(Addr::from_v4([10, 9, 0, 0]), 16),
                gateway: Addr::from_v4([10, 0, 2, 254]),
                distance: 1,
                disabled: false,
            }],
        };
        Arc::new(RouterConfig {
            ports: vec![
                PortAddrs {
                    mac: MAC0,
                    addrs: vec![Addr::from_v4(OWN0), v6(1, 1)],
                    mtu: 1500,
                },
                PortAddrs {
                    mac: MAC1,
                    addrs: vec![Addr::from_v4(OWN1), v6(2, 1)],
                    mtu: 1400,
                },
            ],
            fib: Fib::new(table.compile()),
            statics,
            reachable_ns: 0,
        })
    }

    fn both_static() -> Vec<(u16, Addr, Mac)> {
        vec![(0, Addr::from_v4(A), HOST_A), (1, Addr::from_v4(B), HOST_B)]
    }

    /// One worker on ports 0 and 1 in router mode.
    fn worker(cfg: Arc<RouterConfig>) -> Worker<MemIo> {
        worker_commanded(cfg, crossbeam::channel::bounded::<Command>(4).1)
    }

    /// [`worker`] taking commands from `rx`.
    fn worker_commanded(
        cfg: Arc<RouterConfig>,
        rx: crossbeam::channel::Receiver<Command>,
    ) -> Worker<MemIo> {
        let io = MemIo::pair();
        let shard = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            0,
            random_seed(),
        );
        let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 1]), rx, Arc::default());
        w.install_router(cfg, NeighBus::new(1));
        w
    }

    /// `f` with its Ethernet addresses set.
    fn eth(mut f: Vec<u8>, dst: Mac, src: Mac) -> Vec<u8> {
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    /// Feeds `frames` on `port` and polls until idle.
    fn feed(w: &mut Worker<MemIo>, port: usize, frames: Vec<Vec<u8>>) {
        w.io_mut().links[port].input.extend(frames);
        let mut idle = 0;
        while idle < 3 {
            idle = if w.poll_once() == 0 { idle + 1 } else { 0 };
        }
    }

    fn totals(w: &Worker<MemIo>) -> RouterTotals {
        w.router().unwrap().totals()
    }

    #[test]
    fn arp_for_our_address_is_answered() {
        let mut w = worker(config(vec![]));
        let mut req = [0u8; 64];
        let n = build_request(
            HOST_A,
            Addr::from_v4(A),
            Addr::from_v4(OWN0),
            Family::V4,
            &mut req,
        )
        .unwrap();
        feed(&mut w, 0, vec![req[..n].to_vec()]);
        let out = w.io().output(0);
        assert_eq!(out.len(), 1, "one ARP reply");
        let r = &out[0];
        assert_eq!(&r[..6], &HOST_A);
        assert_eq!(&r[12..14], &[8, 6]);
        assert_eq!(&r[20..22], &[0, 2], "a reply");
        assert_eq!(&r[22..28], &MAC0, "our MAC for 10.0.1.1");
        assert_eq!(&r[28..32], &OWN0);
        assert!(w.io().output(1).is_empty());
        // The asker was learned: a ping to it goes out without a request.
        assert_eq!(
            w.router()
                .unwrap()
                .neighbors()
                .get(0, &Addr::from_v4(A))
                .unwrap()
                .mac,
            Some(HOST_A)
        );
        // A request for another host's address is not answered.
        let n = build_request(
            HOST_A,
            Addr::from_v4(A),
            Addr::from_v4([10, 0, 1, 77]),
            Family::V4,
            &mut req,
        )
        .unwrap();
        feed(&mut w, 0, vec![req[..n].to_vec()]);
        assert_eq!(w.io().output(0).len(), 1);
        assert_eq!(totals(&w).neigh_in, 2);
        assert_eq!(w.shard().total_entries(), 0, "ARP is not tracked");
    }

    #[test]
    fn neighbor_solicitation_for_our_address_is_answered() {
        let mut w = worker(config(vec![]));
        let mut req = [0u8; 128];
        let n = build_request(HOST_A, v6(1, 2), v6(1, 1), Family::V6, &mut req).unwrap();
        feed(&mut w, 0, vec![req[..n].to_vec()]);
        let out = w.io().output(0);
        assert_eq!(out.len(), 1, "one neighbour advertisement");
        let na = &out[0];
        assert_eq!(&na[12..14], &[0x86, 0xdd]);
        assert_eq!(na[54], 136, "NA");
        assert_eq!(&na[6..12], &MAC0);
        assert_eq!(&na[62..78], &v6(1, 1).0, "target: our address");
        assert!(verify_ip(&na[14..], RxChecksum::UNKNOWN).is_ok());
        assert_eq!(totals(&w).neigh_answers, 1);
    }

    #[test]
    fn forwarding_decrements_ttl_and_rewrites_macs() {
        let mut w = worker(config(both_static()));
        let f = eth(udp_frame(A, B, 4000, 53, 20, true), MAC0, HOST_A);
        feed(&mut w, 0, vec![f.clone()]);
        let out = w.io().output(1);
        assert_eq!(out.len(), 1);
        let g = &out[0];
        assert_eq!(&g[..6], &HOST_B, "to the neighbour");
        assert_eq!(&g[6..12], &MAC1, "from the egress port");
        assert_eq!(g[22], f[22] - 1, "TTL - 1");
        assert!(verify_ip(&g[14..], RxChecksum::UNKNOWN).is_ok());
        assert_eq!(g[23], f[23]);
        assert_eq!(&g[26..], &f[26..], "the rest unchanged but the checksum");
        assert_eq!(w.shard().total_entries(), 1, "tracked");
        assert_eq!(totals(&w).forwarded, 1);
        // And back.
        let r = eth(udp_frame(B, A, 53, 4000, 20, false), MAC1, HOST_B);
        feed(&mut w, 1, vec![r]);
        assert_eq!(w.io().output(0).len(), 1);
        assert_eq!(&w.io().output(0)[0][..6], &HOST_A);
        assert_eq!(w.shard().total_entries(), 1, "the same connection");
        // Not to our MAC: not routed.
        feed(&mut w, 0, vec![eth(f, HOST_B, HOST_A)]);
        assert_eq!(w.io().output(1).len(), 1);
        assert_eq!(totals(&w).not_routed, 1);
    }

    #[test]
    fn held_packets_go_out_when_arp_answers() {
        let mut w = worker(config(vec![]));
        let frames: Vec<_> = (0..3)
            .map(|i| eth(udp_frame(A, B, 4000 + i, 53, 20, true), MAC0, HOST_A))
            .collect();
        feed(&mut w, 0, frames);
        // One ARP request for B out of port 1, the packets held.
        let out = w.io().output(1).to_vec();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(&out[0][..6], &[0xff; 6]);
        assert_eq!(&out[0][12..14], &[8, 6]);
        assert_eq!(&out[0][38..42], &B, "who has B");
        assert_eq!(&out[0][28..32], &OWN1, "asked from port 1's address");
        assert_eq!(w.router().unwrap().held(), 3);
        // B answers: the held packets follow, in order.
        let mut reply = [0u8; 64];
        let n = ctrack_core::router::neigh::build_request(
            HOST_B,
            Addr::from_v4(B),
            Addr::from_v4(OWN1),
            Family::V4,
            &mut reply,
        )
        .unwrap();
        let mut reply = reply[..n].to_vec();
        reply[..6].copy_from_slice(&MAC1);
        reply[21] = 2; // an ARP reply
        reply[32..38].copy_from_slice(&MAC1);
        feed(&mut w, 1, vec![reply]);
        let out = w.io().output(1);
        assert_eq!(out.len(), 4);
        for (i, g) in out[1..].iter().enumerate() {
            assert_eq!(&g[..6], &HOST_B);
            assert_eq!(u16::from_be_bytes([g[34], g[35]]), 4000 + i as u16);
        }
        let t = totals(&w);
        assert_eq!((t.held, t.released, t.hold_full), (3, 3, 0));
        assert_eq!(w.router().unwrap().held(), 0);
    }

    #[test]
    fn a_full_hold_queue_drops_and_counts() {
        let mut w = worker(config(vec![]));
        let extra = 10;
        for chunk in 0..(HOLD_MAX + extra).div_ceil(32) {
            let frames: Vec<_> = (0..32)
                .map(|i| (chunk * 32 + i) as u16)
                .filter(|&i| usize::from(i) < HOLD_MAX + extra)
                .map(|i| eth(udp_frame(A, B, 1000 + i, 53, 8, true), MAC0, HOST_A))
                .collect();
            feed(&mut w, 0, frames);
        }
        let t = totals(&w);
        assert_eq!(t.held, HOLD_MAX as u64);
        assert_eq!(t.hold_full, extra as u64);
        assert_eq!(w.router().unwrap().held(), HOLD_MAX);
        // Resolution fails after 3 requests a second apart: all dropped.
        for s in 1..=4 {
            w.io_mut().clock = Instant(s * 1_000_000_000 + 1);
            feed(&mut w, 0, vec![]);
        }
        assert_eq!(w.router().unwrap().held(), 0);
        assert_eq!(totals(&w).hold_expired, HOLD_MAX as u64);
        let requests = w
            .io()
            .output(1)
            .iter()
            .filter(|f| f[12..14] == [8, 6])
            .count();
        assert_eq!(requests, 3, "mcast_solicit");
    }

    #[test]
    fn no_route_is_answered_with_network_unreachable() {
        let mut w = worker(config(both_static()));
        let f = eth(
            udp_frame(A, [192, 0, 2, 1], 4000, 53, 20, true),
            MAC0,
            HOST_A,
        );
        feed(&mut w, 0, vec![f]);
        let out = w.io().output(0);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(&e[..6], &HOST_A);
        assert_eq!(&e[6..12], &MAC0);
        assert_eq!(e[23], proto::ICMP);
        assert_eq!((e[34], e[35]), (3, 0), "network unreachable");
        assert_eq!(&e[26..30], &OWN0, "from the ingress port's address");
        assert!(w.io().output(1).is_empty());
        assert_eq!(w.shard().total_entries(), 0, "nothing tracked");
        assert_eq!(totals(&w).no_route, 1);
    }

    #[test]
    fn ttl_one_is_answered_with_time_exceeded() {
        let mut w = worker(config(both_static()));
        let mut f = eth(udp_frame(A, B, 33434, 33434, 20, true), MAC0, HOST_A);
        f[22] = 1;
        let ip = &mut f[14..];
        ip[10..12].fill(0);
        fill_ip(ip);
        feed(&mut w, 0, vec![f.clone()]);
        assert!(w.io().output(1).is_empty());
        let out = w.io().output(0);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!((e[34], e[35]), (11, 0), "time exceeded in transit");
        assert_eq!(&e[26..30], &OWN0);
        assert_eq!(&e[42..62], &f[14..34], "quotes the header as received");
        assert_eq!(totals(&w).ttl_exceeded, 1);
    }

    #[test]
    fn pings_of_our_addresses_are_answered() {
        let mut w = worker(config(both_static()));
        // Both of ours, from port 0's side.
        let frames = vec![
            eth(icmp_echo_frame(A, OWN0, 7, 1, false, true), MAC0, HOST_A),
            eth(icmp_echo_frame(A, OWN1, 7, 2, false, true), MAC0, HOST_A),
        ];
        feed(&mut w, 0, frames);
        let out = w.io().output(0);
        assert_eq!(out.len(), 2);
        for (e, own) in out.iter().zip([OWN0, OWN1]) {
            assert_eq!(&e[..6], &HOST_A);
            assert_eq!(&e[6..12], &MAC0);
            assert_eq!(&e[26..30], &own);
            assert_eq!(&e[30..34], &A);
            assert_eq!(e[34], 0, "echo reply");
            assert!(verify_ip(&e[14..], RxChecksum::UNKNOWN).is_ok());
        }
        assert!(w.io().output(1).is_empty());
        // One connection per ping, both directions seen.
        assert_eq!(w.shard().total_entries(), 2);
        w.shard().for_each_snapshot(Instant::ZERO, |c| {
            assert!(c.entry().packets(crate::conntrack::Dir::Reply) > 0, "{c:?}");
        });
        assert_eq!(totals(&w).echo_replies, 2);
        // A corrupt ping (ICMP checksum) is not answered.
        let mut bad = eth(icmp_echo_frame(A, OWN0, 8, 1, false, true), MAC0, HOST_A);
        let at = bad.len() - 1;
        bad[at] ^= 0xff;
        feed(&mut w, 0, vec![bad]);
        assert_eq!(w.io().output(0).len(), 2);
        assert_eq!(totals(&w).echo_replies, 2);
    }

    /// UDP from `src` to `dst` over IPv6, `payload` bytes, hop limit 64.
    fn udp6(src: Addr, dst: Addr, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8 + payload];
        f[12..14].copy_from_slice(&ETH_IPV6.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        ip[6] = proto::UDP;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.0);
        ip[24..40].copy_from_slice(&dst.0);
        ip[40..42].copy_from_slice(&5000u16.to_be_bytes());
        ip[42..44].copy_from_slice(&53u16.to_be_bytes());
        ip[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        fill_ip(ip);
        f
    }

    /// Port 1's MTU is 1400: bigger packets that may not be fragmented
    /// are answered (fragmentation needed with the MTU, packet too big);
    /// IPv4 without DF is fragmented; all counted.
    #[test]
    fn packets_over_the_egress_mtu_are_answered() {
        let mut w = worker(config(vec![
            (0, Addr::from_v4(A), HOST_A),
            (1, Addr::from_v4(B), HOST_B),
            (0, v6(1, 2), HOST_A),
            (1, v6(2, 2), HOST_B),
        ]));
        let df = eth(udp_frame(A, B, 4000, 53, 1400, true), MAC0, HOST_A);
        let mut no_df = df.clone();
        no_df[20] = 0;
        let ip = &mut no_df[14..];
        ip[10..12].fill(0);
        fill_ip(ip);
        let fits = eth(udp_frame(A, B, 4000, 53, 1372, true), MAC0, HOST_A);
        let big6 = eth(udp6(v6(1, 2), v6(2, 2), 1400), MAC0, HOST_A);
        feed(&mut w, 0, vec![df, no_df.clone(), fits, big6]);
        let out1 = w.io().output(1);
        assert_eq!(out1.len(), 3, "two fragments and the 1400-byte packet");
        // The packet without DF in two fragments of at most 1400 bytes
        // whose payloads are the original's, TTL decremented.
        let (a, b) = (&out1[0], &out1[1]);
        assert_eq!(u16::from_be_bytes([a[16], a[17]]), 20 + 1376);
        assert_eq!(u16::from_be_bytes([a[20], a[21]]), 0x2000, "MF, offset 0");
        assert_eq!(u16::from_be_bytes([b[16], b[17]]), 20 + 1408 - 1376);
        assert_eq!(u16::from_be_bytes([b[20], b[21]]), 1376 / 8, "last, offset");
        for g in [a, b] {
            assert_eq!(checksum_of(sum(&g[14..34], 0)), 0, "header checksum");
            assert_eq!(g[22], no_df[22] - 1);
            assert_eq!(&g[..6], &HOST_B);
        }
        let mut joined = a[34..].to_vec();
        joined.extend_from_slice(&b[34..]);
        assert_eq!(&joined[..], &no_df[34..]);
        assert_eq!(out1[2].len(), 14 + 1400);
        let out = w.io().output(0);
        assert_eq!(out.len(), 2, "{out:?}");
        let e = &out[0];
        assert_eq!((e[34], e[35]), (3, 4), "fragmentation needed");
        assert_eq!(u16::from_be_bytes([e[40], e[41]]), 1400, "next-hop MTU");
        assert!(verify_ip(&e[14..], RxChecksum::UNKNOWN).is_ok());
        let e = &out[1];
        assert_eq!(e[54], 2, "packet too big");
        assert_eq!(u32::from_be_bytes([e[58], e[59], e[60], e[61]]), 1400);
        assert_eq!(&e[22..38], &v6(1, 1).0);
        assert!(verify_ip(&e[14..], RxChecksum::UNKNOWN).is_ok());
        let t = totals(&w);
        assert_eq!((t.too_big, t.fragmented, t.fragments), (3, 1, 2));
    }

    /// Nothing listens on the box: TCP is reset, UDP port unreachable, as
    /// Linux answers a closed port.
    #[test]
    fn tcp_and_udp_to_the_box_are_refused() {
        use crate::flow::tcp_flags::SYN;
        use ctrack_traffic::synth::tcp_frame;
        let mut w = worker(config(both_static()));
        let frames = vec![
            eth(
                tcp_frame(A, OWN0, 40000, 22, 1, 0, SYN, 0, None, true),
                MAC0,
                HOST_A,
            ),
            eth(udp_frame(A, OWN1, 40001, 53, 10, true), MAC0, HOST_A),
        ];
        feed(&mut w, 0, frames);
        let out = w.io().output(0);
        assert_eq!(out.len(), 2);
        let rst = &out[0];
        assert_eq!(rst[23], proto::TCP);
        assert_eq!(rst[14 + 20 + 13] & 0x04, 0x04, "RST");
        assert_eq!(&rst[26..30], &OWN0);
        let unreach = &out[1];
        assert_eq!((unreach[34], unreach[35]), (3, 3), "port unreachable");
        assert_eq!(totals(&w).local_refused, 2);
        assert!(w.io().output(1).is_empty());
    }

    /// A new configuration adds its static neighbours and removes the ones
    /// it no longer has (`/ip arp add`/`remove` at run time); learned
    /// entries stay.
    #[test]
    fn a_new_configuration_changes_the_static_neighbours() {
        let (tx, rx) = crossbeam::channel::bounded::<Command>(4);
        let mut w = worker_commanded(config(both_static()), rx);
        // A host asks for our address: learned.
        let c = Addr::from_v4([10, 0, 1, 9]);
        let mut req = [0u8; 64];
        let n = build_request(HOST_S, c, Addr::from_v4(OWN0), Family::V4, &mut req).unwrap();
        feed(&mut w, 0, vec![req[..n].to_vec()]);
        let statics = vec![(0, Addr::from_v4(A), HOST_A), (1, v6(2, 7), HOST_B)];
        tx.send(Command::Router(config(statics))).unwrap();
        feed(&mut w, 0, Vec::new());
        let n = w.router().unwrap().neighbors();
        let state = |p, a: &Addr| n.get(p, a).map(|e| e.state);
        assert_eq!(state(0, &Addr::from_v4(A)), Some(State::Permanent));
        assert_eq!(state(1, &Addr::from_v4(B)), None, "removed");
        assert_eq!(state(1, &v6(2, 7)), Some(State::Permanent), "added");
        assert_eq!(state(0, &c), Some(State::Reachable), "learned stays");
    }

    #[test]
    fn the_input_chain_filters_traffic_to_the_box() {
        use crate::firewall::FirewallUpdate;
        use ctrack_rules::{Names, Ruleset, parse};
        let mut w = worker(config(both_static()));
        let cfg =
            parse("/ip firewall filter\nadd chain=input protocol=icmp action=drop\n").unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap();
        w.install_firewall(FirewallUpdate {
            ruleset: Some(Arc::new(rs)),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: None,
        });
        let frames = vec![
            eth(icmp_echo_frame(A, OWN0, 7, 1, false, true), MAC0, HOST_A),
            eth(icmp_echo_frame(A, B, 7, 1, false, true), MAC0, HOST_A),
        ];
        feed(&mut w, 0, frames);
        assert!(w.io().output(0).is_empty(), "the ping of the box dropped");
        assert_eq!(w.io().output(1).len(), 1, "the forwarded one passes");
        assert_eq!(w.totals().fw_dropped, 1);
    }

    /// Two workers: each polls one port. Worker 0 asks for B out of port
    /// 1 (its packet held); B's answer arrives on worker 1's queue; worker
    /// 0 learns it over the bus and sends.
    #[test]
    fn a_neighbour_learned_by_one_worker_serves_all() {
        let cfg = config(vec![(0, Addr::from_v4(A), HOST_A)]);
        let bus = NeighBus::new(2);
        let mesh = Mesh::new(2, vec![0, 1]);
        let mut ws: Vec<Worker<MemIo>> = (0..2u16)
            .map(|id| {
                let links = vec![MemLink {
                    port: id,
                    ..MemLink::default()
                }];
                let io = MemIo::new(links, 2, &[id], 32);
                let (_tx, rx) = crossbeam::channel::bounded::<Command>(4);
                let shard = Shard::new(
                    TableConfig::new(1024),
                    Settings::default(),
                    id,
                    random_seed(),
                );
                let mut w = Worker::new(id, io, shard, Arc::clone(&mesh), rx, Arc::default());
                w.install_router(Arc::clone(&cfg), Arc::clone(&bus));
                w
            })
            .collect();
        let run = |ws: &mut Vec<Worker<MemIo>>| {
            let mut idle = 0;
            while idle < 3 {
                let n: usize = ws.iter_mut().map(Worker::poll_once).sum();
                idle = if n == 0 { idle + 1 } else { 0 };
            }
        };
        ws[0].io_mut().links[0].input.push_back(eth(
            udp_frame(A, B, 4000, 53, 20, true),
            MAC0,
            HOST_A,
        ));
        run(&mut ws);
        // The request went out of port 1 (worker 1 owns its TX queue).
        let requests = ws[1].io().output(1).len();
        assert_eq!(requests, 1);
        let held: usize = ws.iter().map(|w| w.router().unwrap().held()).sum();
        assert_eq!(held, 1);
        let mut reply = [0u8; 64];
        let n = build_request(
            HOST_B,
            Addr::from_v4(B),
            Addr::from_v4(OWN1),
            Family::V4,
            &mut reply,
        )
        .unwrap();
        let mut reply = reply[..n].to_vec();
        reply[..6].copy_from_slice(&MAC1);
        reply[21] = 2;
        reply[32..38].copy_from_slice(&MAC1);
        ws[1].io_mut().links[0].input.push_back(reply);
        run(&mut ws);
        let out = ws[1].io().output(1);
        assert_eq!(out.len(), 2, "the held packet went out");
        assert_eq!(&out[1][..6], &HOST_B);
        let held: usize = ws.iter().map(|w| w.router().unwrap().held()).sum();
        assert_eq!(held, 0);
    }

    /// Garbage in router mode: random bytes behind our MAC and an IPv4,
    /// IPv6 or ARP type, some of them with a valid header of our
    /// addresses, never panic; every frame is accounted for.
    #[test]
    fn random_frames_never_panic() {
        let mut w = worker(config(both_static()));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut frames = Vec::new();
        for i in 0..3000 {
            let len = (next() % 120) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if f.len() >= 14 {
                f[..6].copy_from_slice(if i % 3 == 0 { &[0xff; 6] } else { &MAC0 });
                let ty: u16 = [0x0800, 0x86dd, 0x0806][i % 3];
                f[12..14].copy_from_slice(&ty.to_be_bytes());
            }
            if i % 5 == 0 && f.len() >= 34 && i % 3 == 0 {
                f[14] = 0x45;
                f[30..34].copy_from_slice(&OWN0);
            }
            if i % 7 == 0 && f.len() >= 54 && i % 3 == 1 {
                f[14] = 0x60;
                f[38..54].copy_from_slice(&v6(1, 1).0);
            }
            frames.push(f);
        }
        for chunk in frames.chunks(32) {
            feed(&mut w, 0, chunk.to_vec());
        }
        assert_eq!(w.totals().rx_packets, 3000);
        w.shard().check_invariants().unwrap();
    }

    #[test]
    fn route_gives_port_and_next_hop() {
        let w = worker(config(vec![]));
        let r = w.router().unwrap();
        assert_eq!(r.route(&Addr::from_v4(B)), Some((1, Addr::from_v4(B))));
        assert_eq!(
            r.route(&Addr::from_v4([10, 9, 3, 4])),
            Some((1, Addr::from_v4([10, 0, 2, 254])))
        );
        assert_eq!(r.route(&v6(1, 9)), Some((0, v6(1, 9))));
        assert_eq!(r.route(&Addr::from_v4([8, 8, 8, 8])), None);
    }

    /// Router mode with NAT (see docs/nat.md, "NAT in router mode"):
    /// ether1 (port 0) the LAN 10.0.1.0/24 with hosts A and S (a server),
    /// ether2 (port 1) the "WAN" 10.0.2.0/24 with host B; OWN1 the public
    /// address. Masquerade out of ether2, a port forward OWN1:8080 -> S:80,
    /// hairpin masquerade LAN -> S; the filter passes port forwards only by
    /// their routed out-interface, and the input chain drops 8080 (which
    /// the port forward must not reach).
    const S: [u8; 4] = [10, 0, 1, 3];
    const HOST_S: Mac = [2, 0, 0, 0, 0, 0x0c];
    const NAT_SCRIPT: &str = "/ip address\n\
        add address=10.0.1.1/24 interface=ether1\n\
        add address=10.0.2.1/24 interface=ether2\n\
        /ip firewall nat\n\
        add chain=dstnat action=dst-nat dst-address=10.0.2.1 protocol=tcp dst-port=8080 \
        to-addresses=10.0.1.3 to-ports=80\n\
        add chain=srcnat action=masquerade out-interface=ether2\n\
        add chain=srcnat action=masquerade src-address=10.0.1.0/24 dst-address=10.0.1.3 \
        out-interface=ether1\n\
        /ip firewall filter\n\
        add chain=input action=drop protocol=tcp dst-port=8080\n\
        add chain=forward action=accept connection-state=established,related\n\
        add chain=forward action=accept connection-nat-state=dstnat out-interface=ether1\n\
        add chain=forward action=accept in-interface=ether1\n\
        add chain=forward action=drop\n";

    fn nat_worker() -> Worker<MemIo> {
        nat_worker_with(NAT_SCRIPT)
    }

    fn nat_worker_with(script: &str) -> Worker<MemIo> {
        use crate::firewall::FirewallUpdate;
        use ctrack_rules::{Names, Ruleset, parse};
        let mut statics = both_static();
        statics.push((0, Addr::from_v4(S), HOST_S));
        let mut w = worker(config(statics));
        let cfg = parse(script).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap();
        let addrs = crate::nat::Addresses::from_config(&cfg, &ifaces).unwrap();
        w.install_firewall(FirewallUpdate {
            ruleset: Some(Arc::new(rs)),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: Some(Arc::new(addrs)),
        });
        w
    }

    /// What left on `port` since the last call, parsed, each checked.
    fn sent(w: &mut Worker<MemIo>, port: usize) -> Vec<(Mac, crate::flow::Tuple)> {
        let out = std::mem::take(&mut w.io_mut().tx[port].as_mut().unwrap().output);
        out.iter()
            .map(|f| {
                crate::packet::checksum::verify_ethernet(f, RxChecksum::UNKNOWN).unwrap();
                let dst: Mac = f[..6].try_into().unwrap();
                (dst, crate::packet::parse_ethernet(f).unwrap().tuple)
            })
            .collect()
    }

    fn t4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> (Addr, u16, Addr, u16) {
        (Addr::from_v4(src), sport, Addr::from_v4(dst), dport)
    }

    fn ends(t: &crate::flow::Tuple) -> (Addr, u16, Addr, u16) {
        (t.src, t.src_port, t.dst, t.dst_port)
    }

    #[test]
    fn masquerade_in_router_mode_both_ways() {
        let mut w = nat_worker();
        feed(
            &mut w,
            0,
            vec![eth(udp_frame(A, B, 4000, 53, 20, true), MAC0, HOST_A)],
        );
        let out = sent(&mut w, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, HOST_B);
        assert_eq!(
            ends(&out[0].1),
            t4(OWN1, 4000, B, 53),
            "masqueraded, port kept"
        );
        // The answer is addressed to the box: translated and routed to A.
        feed(
            &mut w,
            1,
            vec![eth(udp_frame(B, OWN1, 53, 4000, 20, false), MAC1, HOST_B)],
        );
        let back = sent(&mut w, 0);
        assert_eq!(back.len(), 1, "{:?}", totals(&w));
        assert_eq!(back[0].0, HOST_A);
        assert_eq!(ends(&back[0].1), t4(B, 53, A, 4000));
        // A ping too: its id kept, the reply home.
        feed(
            &mut w,
            0,
            vec![eth(icmp_echo_frame(A, B, 77, 1, false, true), MAC0, HOST_A)],
        );
        let out = sent(&mut w, 1);
        assert_eq!((out[0].1.src, out[0].1.src_port), (Addr::from_v4(OWN1), 77));
        feed(
            &mut w,
            1,
            vec![eth(
                icmp_echo_frame(B, OWN1, 77, 1, true, false),
                MAC1,
                HOST_B,
            )],
        );
        let back = sent(&mut w, 0);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1.dst, Addr::from_v4(A));
        assert_eq!(w.shard().total_entries(), 2);
        assert_eq!(totals(&w).local_in, 0, "nothing was for the box");
    }

    #[test]
    fn a_port_forward_of_the_routers_address() {
        use crate::flow::tcp_flags::{ACK, SYN};
        let mut w = nat_worker();
        let syn = tcp_frame(B, OWN1, 5555, 8080, 1, 0, SYN, 0, None, false);
        feed(&mut w, 1, vec![eth(syn, MAC1, HOST_B)]);
        let out = sent(&mut w, 0);
        assert_eq!(
            out.len(),
            1,
            "forwarded, not refused by the box: {:?}",
            totals(&w)
        );
        assert_eq!(out[0].0, HOST_S);
        assert_eq!(ends(&out[0].1), t4(B, 5555, S, 80));
        assert!(sent(&mut w, 1).is_empty(), "no reset from the box");
        let synack = tcp_frame(S, B, 80, 5555, 9, 2, SYN | ACK, 0, None, true);
        feed(&mut w, 0, vec![eth(synack, MAC0, HOST_S)]);
        let back = sent(&mut w, 1);
        assert_eq!(back.len(), 1);
        assert_eq!(ends(&back[0].1), t4(OWN1, 8080, B, 5555));
        let ack = tcp_frame(B, OWN1, 5555, 8080, 2, 10, ACK, 0, None, false);
        feed(&mut w, 1, vec![eth(ack, MAC1, HOST_B)]);
        assert_eq!(sent(&mut w, 0).len(), 1);
        assert_eq!(w.shard().total_entries(), 1);
        assert_eq!((totals(&w).local_in, w.totals().fw_dropped), (0, 0));
        // Another port of the box: the input chain's, refused by the box.
        let other = tcp_frame(B, OWN1, 5556, 8081, 1, 0, SYN, 0, None, false);
        feed(&mut w, 1, vec![eth(other, MAC1, HOST_B)]);
        assert!(sent(&mut w, 0).is_empty());
        assert_eq!(totals(&w).local_in, 1);
    }

    #[test]
    fn hairpin_nat_as_routeros_users_configure_it() {
        use crate::flow::tcp_flags::{ACK, SYN};
        let mut w = nat_worker();
        let syn = tcp_frame(A, OWN1, 6000, 8080, 1, 0, SYN, 0, None, true);
        feed(&mut w, 0, vec![eth(syn, MAC0, HOST_A)]);
        let out = sent(&mut w, 0);
        assert_eq!(out.len(), 1, "{:?} {:?}", totals(&w), w.totals());
        assert_eq!(out[0].0, HOST_S);
        // To the server, from the router's LAN address (so that the
        // server's answer comes back through it).
        let t = out[0].1;
        assert_eq!(
            (t.src, t.dst, t.dst_port),
            (Addr::from_v4(OWN0), Addr::from_v4(S), 80)
        );
        let synack = tcp_frame(S, OWN0, 80, t.src_port, 9, 2, SYN | ACK, 0, None, false);
        feed(&mut w, 0, vec![eth(synack, MAC0, HOST_S)]);
        let back = sent(&mut w, 0);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, HOST_A);
        assert_eq!(ends(&back[0].1), t4(OWN1, 8080, A, 6000));
        assert_eq!(w.shard().total_entries(), 1);
        w.shard()
            .for_each_snapshot(crate::conntrack::Instant::ZERO, |c| {
                assert!(c.entry().srcnat() && c.entry().dstnat());
            });
    }

    /// The box's answers to connections `redirect` made its own (nothing
    /// listens on the box: a reset, a port unreachable) pass the output
    /// hooks as the connection's packets and are translated back by it, as
    /// Linux's OUTPUT NAT does for what the local stack sends: the client
    /// sees them come from the address it talked to.
    #[test]
    fn the_boxs_answers_to_redirected_connections_are_translated_back() {
        use crate::flow::tcp_flags::SYN;
        let script = "/ip address\n\
            add address=10.0.1.1/24 interface=ether1\n\
            add address=10.0.2.1/24 interface=ether2\n\
            /ip firewall nat\n\
            add chain=dstnat action=redirect in-interface=ether1 protocol=tcp dst-port=2323 \
            to-ports=23\n\
            add chain=dstnat action=redirect in-interface=ether1 protocol=udp dst-port=5300 \
            to-ports=53\n";
        let mut w = nat_worker_with(script);
        let syn = tcp_frame(A, B, 40000, 2323, 1, 0, SYN, 0, None, true);
        let udp = udp_frame(A, B, 40001, 5300, 10, true);
        feed(
            &mut w,
            0,
            vec![eth(syn, MAC0, HOST_A), eth(udp, MAC0, HOST_A)],
        );
        let out = std::mem::take(&mut w.io_mut().tx[0].as_mut().unwrap().output);
        assert_eq!(out.len(), 2, "{:?}", totals(&w));
        assert!(sent(&mut w, 1).is_empty());
        let mut rst = None;
        let mut unreach = None;
        for f in &out {
            crate::packet::checksum::verify_ethernet(f, RxChecksum::UNKNOWN).unwrap();
            assert_eq!(&f[..6], &HOST_A);
            let r = crate::packet::parse_ethernet(f).unwrap();
            match r.tuple.proto {
                proto::TCP => rst = Some(r),
                proto::ICMP => unreach = Some(r),
                p => panic!("protocol {p}"),
            }
        }
        let rst = rst.expect("a reset");
        assert_eq!(ends(&rst.tuple), t4(B, 2323, A, 40000), "from where A sent");
        let crate::flow::L4::Tcp(t) = rst.l4 else {
            panic!()
        };
        assert_ne!(t.flags & crate::flow::tcp_flags::RST, 0);
        let unreach = unreach.expect("a port unreachable");
        assert_eq!(
            (unreach.tuple.src, unreach.tuple.dst),
            (Addr::from_v4(B), Addr::from_v4(A))
        );
        let crate::flow::L4::Icmp(i) = unreach.l4 else {
            panic!()
        };
        assert_eq!(ends(&i.inner.unwrap()), t4(A, 40001, B, 5300), "the quote");
        assert_eq!(totals(&w).local_refused, 2);
    }

    /// A masqueraded packet too big for ether2's MTU (1400) with DF:
    /// fragmentation needed goes to the inside host, quoting the packet
    /// as it sent it (Linux checks the MTU in `ip_forward`, before
    /// POSTROUTING's source NAT), not the translated one.
    #[test]
    fn fragmentation_needed_for_a_translated_packet_quotes_it_as_sent() {
        let mut w = nat_worker();
        let big = eth(udp_frame(A, B, 4000, 53, 1400, true), MAC0, HOST_A);
        feed(&mut w, 0, vec![big]);
        assert!(sent(&mut w, 1).is_empty(), "not sent: too big");
        let out = std::mem::take(&mut w.io_mut().tx[0].as_mut().unwrap().output);
        assert_eq!(out.len(), 1, "{:?}", totals(&w));
        let e = &out[0];
        crate::packet::checksum::verify_ethernet(e, RxChecksum::UNKNOWN).unwrap();
        assert_eq!(&e[..6], &HOST_A);
        assert_eq!((e[34], e[35]), (3, 4), "fragmentation needed");
        assert_eq!(u16::from_be_bytes([e[40], e[41]]), 1400);
        let r = crate::packet::parse_ethernet(e).unwrap();
        assert_eq!(
            (r.tuple.src, r.tuple.dst),
            (Addr::from_v4(OWN0), Addr::from_v4(A))
        );
        let crate::flow::L4::Icmp(i) = r.l4 else {
            panic!()
        };
        assert_eq!(ends(&i.inner.unwrap()), t4(A, 4000, B, 53));
        // A port forward's answer from the inside server over the same
        // MTU: quoted as the server sent it.
        use crate::flow::tcp_flags::{ACK, SYN};
        let syn = tcp_frame(B, OWN1, 5555, 8080, 1, 0, SYN, 0, None, false);
        feed(&mut w, 1, vec![eth(syn, MAC1, HOST_B)]);
        assert_eq!(sent(&mut w, 0).len(), 1);
        let mut synack = tcp_frame(S, B, 80, 5555, 9, 2, SYN | ACK, 1400, None, true);
        synack[20] |= 0x40;
        let ip = &mut synack[14..];
        ip[10..12].fill(0);
        fill_ip(ip);
        feed(&mut w, 0, vec![eth(synack, MAC0, HOST_S)]);
        assert!(sent(&mut w, 1).is_empty());
        let out = std::mem::take(&mut w.io_mut().tx[0].as_mut().unwrap().output);
        assert_eq!(out.len(), 1, "{:?}", totals(&w));
        let r = crate::packet::parse_ethernet(&out[0]).unwrap();
        assert_eq!(r.tuple.dst, Addr::from_v4(S));
        let crate::flow::L4::Icmp(i) = r.l4 else {
            panic!()
        };
        assert_eq!(ends(&i.inner.unwrap()), t4(S, 80, B, 5555));
    }
}
