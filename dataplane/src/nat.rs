//! NAT in the worker: the `srcnat`/`dstnat` chains on a connection's first
//! packet, and the rewrite of every later packet from the stored binding.
//!
//! **Deciding** (first packet, [`crate::conntrack::Verdict::New`]). The
//! firewall ([`crate::firewall`]) runs the hooks of a new connection in
//! RouterOS/Linux order: mangle prerouting, **nat dstnat**, mangle forward,
//! filter forward, mangle postrouting, **nat srcnat**. A NAT rule's
//! [`NatTarget`] becomes a [`Binding`] here ([`WorkerNat::bind`]):
//! `masquerade` takes the out-interface's address, `redirect` the
//! in-interface's (both from `/ip address`, `/ipv6 address`: [`Addresses`];
//! none is a counted drop, as Linux's masquerade drops without an address),
//! `netmap` maps 1:1 into the prefix, `same` is `src-nat` by the source
//! alone. The hooks after dstnat see the packet with its translated
//! destination (as Linux, whose filter runs after the prerouting NAT); the
//! reply key is then chosen once, after srcnat ([`WorkerNat::finish`]), with
//! [`nat::choose`]: a key is free when no connection of this shard holds
//! it, no other new connection of this burst chose it, and its owner by the
//! workers' dispatch ([`Dispatch::owner_of`]) is this worker. So a
//! translated tuple is unique across workers without shared state and its
//! replies arrive here. Exhaustion is a counted drop, never a reused tuple,
//! except where the first candidate (the same on every worker: a port
//! forward's only reply tuple) belongs to another worker: the packet is
//! then handed to that worker ([`NatDrop::Elsewhere`]), which creates the
//! connection and records it in [`crate::nat_owners`] for the later
//! packets that land here.
//!
//! **Routing** (router mode): the out-interface after dstnat is the route
//! of the translated destination, or the box itself
//! ([`WorkerNat::out_port`]).
//!
//! **Rewriting** (every packet of a NAT connection, both directions,
//! fast-tracked ones too). After the table's commit, [`plan`] derives each
//! packet's target from the connection's two keys (no rule walk): the
//! original direction gets the translated tuple (the reply key inverted),
//! the reply direction the original tuple inverted. An ICMP error related
//! to a NAT connection gets its quoted packet and outer addresses
//! translated as Linux's `nf_nat_icmp_reply_translation`. [`apply`]
//! rewrites the frame in place with incremental checksum updates
//! ([`crate::packet::nat`]).
//!
//! See docs/nat.md.

use std::sync::Arc;

use ctrack_rules::engine::{NAT_DSTNAT, NAT_SRCNAT, NatTarget};
use ctrack_rules::value::AddrSpec;
use ctrack_rules::{Action, Config, PacketCtx};

use crate::conntrack::key::Key;
use crate::conntrack::nat::{self, Binding, Manip, NatError};
use crate::conntrack::{Dir, Shard, Verdict};
use crate::flow::{Addr, Family, FlowRepr, Tuple};
use crate::router::{LOCAL_PORT, RouterConfig};
use crate::rss::Dispatch;
use crate::worker::MAX_BURST;

/// The interfaces' own addresses (`/ip address`, `/ipv6 address`), by
/// dataplane port: what `masquerade` and `redirect` translate to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// `by_port[port]`: (address, prefix length, family), in script order.
    by_port: Vec<Vec<(Addr, u8, Family)>>,
}

impl Addresses {
    /// The enabled addresses of `cfg` on `interfaces` (names by port index,
    /// as [`Config::interface_names`] gives them). An address on an
    /// interface ctrack does not have is ignored (RouterOS shows it
    /// invalid); a malformed one is an error naming it.
    pub fn from_config(cfg: &Config, interfaces: &[String]) -> Result<Addresses, String> {
        let mut by_port = vec![Vec::new(); interfaces.len()];
        for (items, family, what) in [
            (&cfg.ip_addresses, Family::V4, "/ip address"),
            (&cfg.ipv6_addresses, Family::V6, "/ipv6 address"),
        ] {
            for it in items {
                if it.get("disabled") == Some("yes") {
                    continue;
                }
                let Some(a) = it.get("address") else {
                    return Err(format!("{what}: an entry without address="));
                };
                let (ip, len) =
                    parse_prefix(a, family).ok_or_else(|| format!("{what}: bad address `{a}`"))?;
                let Some(port) = it
                    .get("interface")
                    .and_then(|n| interfaces.iter().position(|i| i == n))
                else {
                    continue;
                };
                by_port[port].push((ip, len, family));
            }
        }
        Ok(Addresses { by_port })
    }

    /// Addresses from a list of (port, address, prefix length).
    pub fn from_list(ports: usize, list: &[(u16, std::net::IpAddr, u8)]) -> Addresses {
        let mut by_port = vec![Vec::new(); ports];
        for &(p, ip, len) in list {
            let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
            if let Some(v) = by_port.get_mut(usize::from(p)) {
                v.push((Addr::from(ip), len, family));
            }
        }
        Addresses { by_port }
    }

    /// The address of `port` to use towards `peer`: the first of `family`
    /// whose prefix holds `peer`, else the first of `family` (Linux's
    /// `inet_select_addr` without a gateway).
    pub fn pick(&self, port: u16, family: Family, peer: &Addr) -> Option<Addr> {
        let list = self.by_port.get(usize::from(port))?;
        let mut mine = list.iter().filter(|a| a.2 == family);
        let first = mine.clone().next()?.0;
        Some(
            mine.find(|a| in_prefix(peer, &a.0, a.1, family))
                .map_or(first, |a| a.0),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.by_port.iter().all(Vec::is_empty)
    }

    /// The first address of `family` on each port (`None`: it has none),
    /// by port index: where the ICMP errors sent out of that port come
    /// from.
    pub fn firsts(&self, family: Family) -> impl Iterator<Item = Option<Addr>> + '_ {
        self.by_port
            .iter()
            .map(move |l| l.iter().find(|a| a.2 == family).map(|a| a.0))
    }
}

fn parse_prefix(s: &str, family: Family) -> Option<(Addr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()?),
        None => (s, if family == Family::V4 { 32 } else { 128 }),
    };
    let ip: std::net::IpAddr = a.parse().ok()?;
    let ok = match family {
        Family::V4 => ip.is_ipv4() && len <= 32,
        Family::V6 => ip.is_ipv6() && len <= 128,
    };
    ok.then(|| (Addr::from(ip), len))
}

fn in_prefix(a: &Addr, net: &Addr, len: u8, family: Family) -> bool {
    nat::netmap_addr(*a, *net, len, family) == *a
}

/// The reason code ([`crate::conntrack::Verdict::Refused`]) of a new
/// connection's packet that NAT hands to worker `owner` instead of
/// creating it here ([`NatDrop::Elsewhere`]); `owner` < 0x4000.
#[inline]
pub const fn handoff_reason(owner: u16) -> u16 {
    HANDOFF_BASE | (owner & 0x3fff)
}

/// The worker a [`handoff_reason`] code names (`None`: another reason).
#[inline]
pub const fn handoff_owner(reason: u16) -> Option<u16> {
    if reason & 0xc000 == HANDOFF_BASE {
        Some(reason & 0x3fff)
    } else {
        None
    }
}

const HANDOFF_BASE: u16 = 0x4000;

/// Why a NAT rule's packet was dropped (see [`NatCounters`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NatDrop {
    /// No free tuple ([`NatError::Exhausted`]).
    Exhausted,
    /// `masquerade`/`redirect` on an interface without an address of the
    /// packet's family.
    NoAddress,
    /// A range of the wrong family or backwards ([`NatError::BadRange`]).
    BadRange,
    /// Not a drop: no tuple this worker may own is free, and the first
    /// candidate (the same on every worker: the kept port of a port
    /// forward) belongs to worker `.0`, which is to create the connection
    /// (the packet is handed over: [`handoff_reason`]).
    Elsewhere(u16),
}

/// A worker's NAT counters (plain counts; the worker publishes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Connections translated.
    pub translated: u64,
    /// First packets dropped: no free tuple (port exhaustion).
    pub exhausted: u64,
    /// First packets dropped: `masquerade`/`redirect` without an address.
    pub no_address: u64,
    /// First packets dropped: a `to-addresses`/`to-ports` range unusable
    /// for the packet.
    pub bad_range: u64,
    /// Packets of NAT connections that could not be rewritten (malformed,
    /// a fragment): dropped, as Linux drops what it cannot mangle.
    pub rewrite_failed: u64,
    /// First packets handed to the worker that owns their only reply tuple
    /// ([`NatDrop::Elsewhere`]).
    pub handed_off: u64,
}

/// A new connection's NAT in progress through the hooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    pub dst: Option<Binding>,
    pub src: Option<Binding>,
    /// A NAT rule dropped the packet.
    pub drop: Option<NatDrop>,
}

/// One worker's NAT state: the addresses, its place among the workers, the
/// burst's choices and its counters.
pub struct WorkerNat {
    addrs: Arc<Addresses>,
    worker: u16,
    dispatch: Option<Dispatch>,
    spread: u32,
    rng: u64,
    /// Router mode: the configuration whose routes and addresses give a
    /// packet's out-interface after dstnat ([`WorkerNat::out_port`]).
    router: Option<Arc<RouterConfig>>,
    /// This burst's choices: (original key, reply key).
    chosen: [(Key, Key); MAX_BURST],
    n_chosen: usize,
    /// Filters over `chosen` (original keys, reply keys): bit
    /// [`filter_bit`] of each is set; a key whose bit is clear is not
    /// there (no scan).
    chosen_filter: ([u64; 4], [u64; 4]),
    pub counters: NatCounters,
}

impl WorkerNat {
    /// NAT for worker `worker` of `workers` (`dispatch`: how packets are
    /// spread over them, `None` with one worker), seeded with `seed`.
    pub fn new(
        addrs: Arc<Addresses>,
        worker: u16,
        workers: u16,
        dispatch: Option<Dispatch>,
        seed: u64,
    ) -> WorkerNat {
        WorkerNat {
            addrs,
            worker,
            dispatch,
            spread: u32::from(workers.max(1)),
            rng: seed | 1,
            router: None,
            chosen: [(Key::default(), Key::default()); MAX_BURST],
            n_chosen: 0,
            chosen_filter: ([0; 4], [0; 4]),
            counters: NatCounters::default(),
        }
    }

    pub fn addresses(&self) -> &Arc<Addresses> {
        &self.addrs
    }

    /// Router mode's configuration (`None`: bridge mode), for
    /// [`WorkerNat::out_port`]; set by the worker with each new one.
    pub fn set_router(&mut self, cfg: Option<Arc<RouterConfig>>) {
        self.router = cfg;
    }

    /// Whether this worker routes (router mode): [`WorkerNat::out_port`]
    /// may then give another port than the bridged one.
    #[inline]
    pub fn routes(&self) -> bool {
        self.router.is_some()
    }

    /// The routing decision after dstnat: where a packet received on
    /// `in_port` goes with (post-dstnat) destination `dst`. Bridge mode:
    /// `bridged`, the port's peer. Router mode: [`LOCAL_PORT`] for one of
    /// the box's addresses (the input hooks), else the routed port (`None`:
    /// no route).
    #[inline]
    pub fn out_port(&self, in_port: u16, bridged: u16, dst: &Addr) -> Option<u16> {
        let _ = in_port;
        match self.router.as_deref() {
            None => Some(bridged),
            Some(r) if r.is_own(dst) => Some(LOCAL_PORT),
            Some(r) => r.fib.lookup(dst).map(|h| h.iface),
        }
    }

    /// Forgets the previous burst's choices (their connections are
    /// committed, so the table knows their keys now).
    #[inline]
    pub fn start_burst(&mut self) {
        self.n_chosen = 0;
        self.chosen_filter = ([0; 4], [0; 4]);
    }

    /// Resolves NAT rule `target`, matched in `hook`'s chain by `ctx`, into
    /// `p`; a `dst-nat`-like binding moves `ctx`'s destination to the
    /// translated one at once, for the hooks after it.
    pub fn bind(
        &mut self,
        target: &NatTarget,
        dstnat_hook: bool,
        ctx: &mut PacketCtx<'_>,
        p: &mut Pending,
    ) {
        let family = ctx.family;
        let ports = target.to_ports.map(|r| (r.lo, r.hi));
        // Resolved for the rule's family, which is the packet's.
        let range = target.range;
        let (manip, addrs, persistent) = match target.action {
            Action::SrcNat => (Manip::Src, range, false),
            Action::Same => (Manip::Src, range, true),
            Action::Masquerade => {
                let Some(a) = self.addrs.pick(ctx.out_iface, family, &ctx.dst) else {
                    p.drop = Some(NatDrop::NoAddress);
                    return;
                };
                (Manip::Src, Some((a, a)), false)
            }
            Action::DstNat => (Manip::Dst, range, false),
            Action::Redirect => {
                let Some(a) = self.addrs.pick(ctx.in_iface, family, &ctx.src) else {
                    p.drop = Some(NatDrop::NoAddress);
                    return;
                };
                (Manip::Dst, Some((a, a)), false)
            }
            Action::Netmap => {
                let manip = if dstnat_hook { Manip::Dst } else { Manip::Src };
                let (Some(spec), Some((lo, hi))) = (target.to_addresses, range) else {
                    p.drop = Some(NatDrop::BadRange);
                    return;
                };
                let size = u128::from_be_bytes(hi.0).wrapping_sub(u128::from_be_bytes(lo.0));
                let from = if manip == Manip::Dst {
                    ctx.dst
                } else {
                    ctx.src
                };
                let a = match spec {
                    AddrSpec::Prefix { len, .. } => nat::netmap_addr(from, lo, len, family),
                    AddrSpec::Range { .. } => {
                        let off = if size == u128::MAX {
                            u128::from_be_bytes(from.0)
                        } else {
                            u128::from_be_bytes(from.0) % (size + 1)
                        };
                        Addr((u128::from_be_bytes(lo.0).wrapping_add(off)).to_be_bytes())
                    }
                };
                (manip, Some((a, a)), false)
            }
            // Not a NAT action (the engine only ends on NAT actions here).
            _ => return,
        };
        let b = Binding {
            manip,
            addrs,
            ports,
            persistent,
        };
        match manip {
            Manip::Dst => {
                p.dst = Some(b);
                // What the later hooks see: the binding's first choice
                // (kept port, or the start of `to-ports`).
                let k = key_of_ctx(ctx);
                if let Ok(r) = nat::choose(&k, &b, 0, 1, |_| true) {
                    let t = r.reply();
                    ctx.dst = t.dst;
                    if matches!(ctx.proto, crate::flow::proto::TCP | crate::flow::proto::UDP) {
                        ctx.dst_port = t.dport;
                    }
                }
                ctx.conn.nat |= NAT_DSTNAT;
            }
            Manip::Src => {
                p.src = Some(b);
                ctx.conn.nat |= NAT_SRCNAT;
            }
        }
    }

    /// The reply key for new connection `orig` after the hooks left `p`:
    /// `Ok(None)` without NAT. Counts what it decides.
    pub fn finish(
        &mut self,
        shard: &Shard,
        orig: &Key,
        p: &Pending,
    ) -> Result<Option<Key>, NatDrop> {
        // A PPTP call's GRE through NAT: the call's binding, not the rules'.
        if let Some(r) = crate::pptp_nat::binding(shard, orig) {
            match r {
                Ok(_) => self.counters.translated += 1,
                Err(d) => self.count(d),
            }
            return r.map(Some);
        }
        if let Some(d) = p.drop {
            self.count(d);
            return Err(d);
        }
        if p.dst.is_none() && p.src.is_none() {
            return Ok(None);
        }
        // Two first packets of one tuple in this burst: one translation
        // (the table puts the second on the first's connection).
        if in_filter(&self.chosen_filter.0, orig)
            && let Some(&(_, r)) = self.chosen[..self.n_chosen]
                .iter()
                .find(|c| same_key(&c.0, orig))
        {
            return Ok(Some(r));
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let salt = self.rng;
        let (worker, spread) = (self.worker, self.spread);
        let (dispatch, chosen) = (&self.dispatch, &self.chosen[..self.n_chosen]);
        let reply_filter = &self.chosen_filter.1;
        let mut accept = |r: &Key| {
            shard.lookup(r).is_none()
                && !(in_filter(reply_filter, r) && chosen.iter().any(|c| same_key(&c.1, r)))
                && dispatch
                    .as_ref()
                    .is_none_or(|d| d.owner_of(&tuple_of(r)) == worker)
        };
        let result = match (p.dst, p.src) {
            (Some(d), None) => nat::choose(orig, &d, salt, spread, &mut accept),
            (None, Some(s)) => nat::choose(orig, &s, salt, spread, &mut accept),
            (Some(d), Some(s)) => {
                // Destination first (its first choice: the source
                // translation that follows makes the tuple unique).
                nat::choose(orig, &d, salt, 1, |_| true)
                    .and_then(|r| nat::choose(&r.reply(), &s, salt, spread, &mut accept))
            }
            (None, None) => unreachable!("handled above"),
        };
        match result {
            Ok(r) => {
                if self.n_chosen < MAX_BURST {
                    self.chosen[self.n_chosen] = (*orig, r);
                    self.n_chosen += 1;
                    let (w, b) = filter_bit(orig);
                    self.chosen_filter.0[w] |= b;
                    let (w, b) = filter_bit(&r);
                    self.chosen_filter.1[w] |= b;
                }
                self.counters.translated += 1;
                Ok(Some(r))
            }
            Err(NatError::Exhausted) if self.dispatch.is_some() => {
                // The first candidate, the same on every worker (salt 0):
                // when another worker owns it, that worker can create the
                // connection (a port forward's only reply tuple).
                let first = match (p.dst, p.src) {
                    (Some(d), None) => nat::choose(orig, &d, 0, 1, |_| true),
                    (None, Some(s)) => nat::choose(orig, &s, 0, 1, |_| true),
                    (Some(d), Some(s)) => nat::choose(orig, &d, 0, 1, |_| true)
                        .and_then(|r| nat::choose(&r.reply(), &s, 0, 1, |_| true)),
                    (None, None) => unreachable!("handled above"),
                };
                let owner = first.ok().and_then(|r| {
                    let o = self.dispatch.as_ref()?.owner_of(&tuple_of(&r));
                    (o != self.worker).then_some(o)
                });
                let d = owner.map_or(NatDrop::Exhausted, NatDrop::Elsewhere);
                self.count(d);
                Err(d)
            }
            Err(e) => {
                let d = match e {
                    NatError::Exhausted => NatDrop::Exhausted,
                    NatError::BadRange => NatDrop::BadRange,
                };
                self.count(d);
                Err(d)
            }
        }
    }

    fn count(&mut self, d: NatDrop) {
        match d {
            NatDrop::Exhausted => self.counters.exhausted += 1,
            NatDrop::NoAddress => self.counters.no_address += 1,
            NatDrop::BadRange => self.counters.bad_range += 1,
            NatDrop::Elsewhere(_) => self.counters.handed_off += 1,
        }
    }
}

/// A key's bit in a 256-bit filter of [`WorkerNat`]'s burst choices
/// (word, mask): from the ports and the addresses' last bytes, which the
/// keys of one burst differ in.
#[inline]
fn filter_bit(k: &Key) -> (usize, u64) {
    let h = k.sport ^ k.dport.rotate_left(8) ^ u16::from(k.src.0[15]) ^ u16::from(k.dst.0[15]) << 3;
    (usize::from(h >> 6 & 3), 1 << (h & 63))
}

/// Whether `k`'s bit is set in `filter` (clear: `k` is not among the keys
/// the filter was built from).
#[inline]
fn in_filter(filter: &[u64; 4], k: &Key) -> bool {
    let (w, b) = filter_bit(k);
    filter[w] & b != 0
}

/// `a == b`, the ports first (the keys one burst chooses differ mostly
/// there: one cheap compare instead of the addresses').
#[inline]
fn same_key(a: &Key, b: &Key) -> bool {
    a.sport == b.sport && a.dport == b.dport && a == b
}

/// The conntrack key of the packet `ctx` describes (as the table keys it:
/// ICMP with its id, which `PacketCtx` does not carry, is keyed by the
/// caller's original key; here only addresses and ports matter).
fn key_of_ctx(ctx: &PacketCtx<'_>) -> Key {
    Key {
        src: ctx.src,
        dst: ctx.dst,
        sport: ctx.src_port,
        dport: ctx.dst_port,
        proto: ctx.proto,
        family: ctx.family,
        ver: 0,
    }
}

/// A key as the tuple a packet carrying it has (the parser's form: ICMP
/// id in `src_port`).
#[inline]
pub fn tuple_of(k: &Key) -> Tuple {
    Tuple {
        src: k.src,
        dst: k.dst,
        src_port: k.sport,
        dst_port: k.dport,
        proto: k.proto,
        family: k.family,
    }
}

/// How one packet is to be rewritten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rewrite {
    #[default]
    None,
    /// The packet gets this tuple ([`crate::packet::nat::translate`]).
    To(Tuple),
    /// An ICMP error: its outer addresses and quoted packet
    /// ([`crate::packet::nat::translate_icmp_error`]).
    IcmpError { src: Addr, dst: Addr, inner: Tuple },
}

/// Packet `pkt`'s rewrite after the table's commit, by its verdict `v`:
/// from the connection's stored keys, no rule walk ([`Rewrite::None`] for
/// a connection without NAT). Call only while
/// [`Shard::nat_connections`] is not 0 (otherwise it is always `None`).
#[inline]
pub fn plan(shard: &Shard, pkt: &FlowRepr, v: Verdict) -> Rewrite {
    let (id, dir, related) = match v {
        Verdict::Tracked { id, dir, .. } => (id, dir, false),
        Verdict::Related { id, dir } => (id, dir, true),
        _ => return Rewrite::None,
    };
    if !related {
        return match shard.nat_target_inverse(id, dir) {
            Some(t) => Rewrite::To(tuple_of(&t.reply())),
            None => Rewrite::None,
        };
    }
    let Some(e) = shard.get(id) else {
        return Rewrite::None;
    };
    let (srcnat, dstnat) = (e.srcnat(), e.dstnat());
    if !srcnat && !dstnat {
        return Rewrite::None;
    }
    let orig = *e.key();
    let Some(reply) = shard.reply_key(id) else {
        return Rewrite::None;
    };
    // The tuple a packet of `dir` leaves with.
    let target = match dir {
        Dir::Orig => reply.reply(),
        Dir::Reply => orig.reply(),
    };
    // An ICMP error travelling in `dir` quotes a packet of the other
    // direction: the quote gets that direction's tuple as its sender knows
    // it; the outer addresses the side of the translation that applies to
    // `dir` (Linux's `nf_nat_icmp_reply_translation`, per manip type).
    let inner = match dir {
        Dir::Orig => reply,
        Dir::Reply => orig,
    };
    let (dst_side, src_side) = match dir {
        Dir::Orig => (dstnat, srcnat),
        Dir::Reply => (srcnat, dstnat),
    };
    Rewrite::IcmpError {
        src: if src_side { target.src } else { pkt.tuple.src },
        dst: if dst_side { target.dst } else { pkt.tuple.dst },
        inner: tuple_of(&inner),
    }
}

/// [`plan`] and [`apply`] in one step for the common case: a packet of a
/// tracked (not related) UDP connection, or TCP without a helper, over
/// untagged IPv4 without options ([`crate::packet::nat::translate_ipv4`]).
/// The target comes straight from the stored key (its addresses and
/// ports swapped: [`Shard::nat_target_inverse`]), with no [`Rewrite`]
/// built. `true`: rewritten; `false`: not that case, nothing done (the
/// general path runs; a connection without NAT has nothing to rewrite
/// either way).
#[inline]
pub fn rewrite_fast(shard: &Shard, pkt: &FlowRepr, v: Verdict, frame: &mut [u8]) -> bool {
    let Verdict::Tracked { id, dir, .. } = v else {
        return false;
    };
    match pkt.l4 {
        crate::flow::L4::Udp => {}
        // A PPTP control connection's call ids (`crate::pptp_nat`).
        crate::flow::L4::Tcp(_) if !shard.wants_help(id) => {}
        _ => return false,
    }
    let Some(k) = shard.nat_target_inverse(id, dir) else {
        return false;
    };
    k.family == Family::V4
        && crate::packet::nat::translate_ipv4(
            frame,
            k.dst.v4_octets(),
            k.src.v4_octets(),
            k.dport,
            k.sport,
        )
}

/// Rewrites Ethernet frame `frame` as `rw` says.
#[inline]
pub fn apply(frame: &mut [u8], rw: &Rewrite) -> Result<(), crate::packet::nat::RewriteError> {
    match rw {
        Rewrite::None => Ok(()),
        Rewrite::To(t) => crate::packet::nat::translate(frame, t),
        Rewrite::IcmpError { src, dst, inner } => {
            crate::packet::nat::translate_icmp_error(frame, *src, *dst, inner)
        }
    }
}

/// Test workers between ports 0 and 1 with `script` (RouterOS) loaded as
/// `ctrack run` loads it: one worker polls both ports; two poll one port
/// each (as `run` plans single-queue ports), software dispatch between
/// them. With `helpers`, the script's service ports run their helpers and
/// the workers pass expectations to each other.
#[cfg(test)]
pub(crate) fn scripted_workers(
    script: &str,
    workers: u16,
    table: crate::conntrack::TableConfig,
    helpers: bool,
) -> Vec<crate::worker::Worker<crate::io::mem::MemIo>> {
    use crate::io::mem::{MemIo, MemLink};
    use crate::worker::{Mesh, Worker, random_seed};
    let cfg = ctrack_rules::parse(script).unwrap();
    let ifaces = cfg.interface_names(&["ether1", "ether2"]);
    let mut names = ctrack_rules::Names::default();
    let rs = Arc::new(ctrack_rules::Ruleset::compile(&cfg, &ifaces, &mut names).unwrap());
    let addrs = Arc::new(Addresses::from_config(&cfg, &ifaces).unwrap());
    let mesh = if workers == 1 {
        Mesh::new(1, vec![0, 0])
    } else {
        Mesh::new(2, vec![1, 0])
    };
    let expect = crate::helpers::ExpectMesh::new(usize::from(workers));
    (0..workers)
        .map(|id| {
            let io = if workers == 1 {
                MemIo::pair()
            } else {
                let links = vec![MemLink {
                    port: id,
                    ..MemLink::default()
                }];
                MemIo::new(links, 2, &[id ^ 1], 32)
            };
            let (_tx, rx) = crossbeam::channel::bounded(4);
            let mut shard = Shard::new(
                table,
                crate::conntrack::Settings::default(),
                id,
                random_seed(),
            );
            if helpers {
                shard.set_service_ports(crate::helpers::service_ports(&cfg.service_ports));
            }
            let mut w = Worker::new(id, io, shard, Arc::clone(&mesh), rx, Arc::default());
            if helpers {
                w.set_expect_mesh(Arc::clone(&expect));
            }
            w.install_firewall(crate::firewall::FirewallUpdate {
                ruleset: Some(Arc::clone(&rs)),
                generation: 1,
                auto_tracking: true,
                reply: None,
                lists_out: None,
                addresses: Some(Arc::clone(&addrs)),
                conncount: None,
            });
            w
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::TableConfig;

    use crate::flow::{L4, proto};
    use crate::io::mem::MemIo;
    use crate::packet::checksum::{RxChecksum, verify_ethernet};
    use crate::packet::parse_ethernet;
    use crate::worker::Worker;
    use ctrack_rules::parse;
    use ctrack_traffic::synth::{icmp_echo_frame, ipv4_frame, tcp_frame, udp_frame};

    const PUB: [u8; 4] = [198, 51, 100, 1];

    /// `nat_range` of a prefix (what the rules resolve `to-addresses` to): its lowest and highest address, as
    /// `netmap_addr` maps the family's lowest and highest into it.
    #[test]
    fn addr_range_of_a_prefix_is_netmap_of_the_extremes() {
        use std::net::IpAddr;
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (family, ip) = if i % 2 == 0 {
                (Family::V4, IpAddr::from((x as u32).to_be_bytes()))
            } else {
                let b = (u128::from(x) << 64 | u128::from(x.rotate_left(29))).to_be_bytes();
                (Family::V6, IpAddr::from(b))
            };
            let len = (x >> 40) as u8 % 130;
            let a = Addr::from(ip);
            let (zero, ones) = match family {
                Family::V4 => (Addr::from_v4([0; 4]), Addr::from_v4([0xff; 4])),
                Family::V6 => (Addr([0; 16]), Addr([0xff; 16])),
            };
            assert_eq!(
                ctrack_rules::engine::nat_range(&AddrSpec::Prefix { addr: ip, len }, family),
                (
                    nat::netmap_addr(zero, a, len, family),
                    nat::netmap_addr(ones, a, len, family)
                ),
                "{ip}/{len}"
            );
        }
    }
    const H1: [u8; 4] = [10, 0, 0, 2];
    const H2: [u8; 4] = [10, 0, 0, 3];
    const S: [u8; 4] = [203, 0, 113, 9];
    /// ether1 (port 0) is the LAN, ether2 (port 1) the WAN with PUB.
    const MASQ: &str = "/ip address\n\
        add address=10.0.0.1/24 interface=ether1\n\
        add address=198.51.100.1/24 interface=ether2\n\
        /ip firewall nat\n\
        add chain=srcnat action=masquerade out-interface=ether2\n";

    /// `workers` workers between ports 0 and 1 with `script` loaded: one
    /// worker polls both ports; two poll one port each (as `ctrack run`
    /// plans single-queue ports), software dispatch between them.
    struct Net {
        w: Vec<Worker<MemIo>>,
    }

    impl Net {
        fn new(script: &str, workers: u16) -> Net {
            Net::with_table(script, workers, TableConfig::new(4096))
        }

        fn with_table(script: &str, workers: u16, table: TableConfig) -> Net {
            Net {
                w: scripted_workers(script, workers, table, false),
            }
        }

        /// Sends `frames` in on `port` (one burst if they fit) and runs
        /// until idle; returns what left on each port.
        fn send(&mut self, port: u16, frames: &[Vec<u8>]) -> [Vec<Vec<u8>>; 2] {
            let n = self.w.len();
            let w = if n == 1 { 0 } else { usize::from(port) };
            let link = if n == 1 { usize::from(port) } else { 0 };
            self.w[w].io_mut().links[link]
                .input
                .extend(frames.iter().cloned());
            let mut idle = 0;
            while idle < 3 {
                let work: usize = self.w.iter_mut().map(Worker::poll_once).sum();
                idle = if work == 0 { idle + 1 } else { 0 };
            }
            let mut out = [Vec::new(), Vec::new()];
            for w in &mut self.w {
                for (p, o) in out.iter_mut().enumerate() {
                    if let Some(Some(tx)) = w.io_mut().tx.get_mut(p) {
                        o.append(&mut tx.output);
                    }
                }
            }
            for f in out.iter().flatten() {
                verify_ethernet(f, RxChecksum::UNKNOWN)
                    .unwrap_or_else(|e| panic!("bad checksum {e:?} in {f:02x?}"));
            }
            out
        }

        fn entries(&self) -> u32 {
            self.w.iter().map(|w| w.shard().total_entries()).sum()
        }

        fn totals(&self) -> crate::stats::WorkerTotals {
            let mut t = crate::stats::WorkerTotals::default();
            for w in &self.w {
                let x = w.totals();
                t.nat_translated += x.nat_translated;
                t.nat_exhausted += x.nat_exhausted;
                t.nat_no_address += x.nat_no_address;
                t.nat_rewrite_failed += x.nat_rewrite_failed;
                t.fw_dropped += x.fw_dropped;
                t.table_dropped += x.table_dropped;
            }
            t
        }
    }

    fn tuple(f: &[u8]) -> Tuple {
        parse_ethernet(f).unwrap().tuple
    }

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    fn masquerade_udp(workers: u16) {
        let mut n = Net::new(MASQ, workers);
        for sport in [5000u16, 40000, 700, 53] {
            let out = n.send(0, &[udp_frame(H1, S, sport, 53, 20, true)]);
            assert_eq!((out[0].len(), out[1].len()), (0, 1));
            let t = tuple(&out[1][0]);
            assert_eq!((t.src, t.dst, t.dst_port), (v4(PUB), v4(S), 53));
            if workers == 1 {
                assert_eq!(t.src_port, sport, "kept when free (Linux)");
            }
            // The answer to the translated port reaches the inside host.
            let out = n.send(1, &[udp_frame(S, PUB, 53, t.src_port, 30, false)]);
            assert_eq!((out[0].len(), out[1].len()), (1, 0));
            let r = tuple(&out[0][0]);
            assert_eq!(
                (r.src, r.src_port, r.dst, r.dst_port),
                (v4(S), 53, v4(H1), sport)
            );
        }
        assert_eq!(n.entries(), 4);
        assert_eq!(n.totals().nat_translated, 4);
        for w in &n.w {
            w.shard().check_invariants().unwrap();
            w.shard()
                .for_each_snapshot(crate::conntrack::Instant::ZERO, |c| {
                    assert!(c.entry().srcnat() && !c.entry().dstnat(), "{c:?}");
                });
        }
    }

    #[test]
    fn masquerade_udp_one_worker() {
        masquerade_udp(1);
    }

    #[test]
    fn masquerade_udp_two_workers() {
        masquerade_udp(2);
    }

    fn masquerade_tcp_and_icmp(workers: u16) {
        use crate::flow::tcp_flags::{ACK, SYN};
        let mut n = Net::new(MASQ, workers);
        let out = n.send(
            0,
            &[tcp_frame(H1, S, 41000, 80, 1, 0, SYN, 0, Some(7), true)],
        );
        let t = tuple(&out[1][0]);
        assert_eq!((t.src, t.dst_port), (v4(PUB), 80));
        let synack = tcp_frame(S, PUB, 80, t.src_port, 900, 2, SYN | ACK, 0, None, false);
        let out = n.send(1, &[synack]);
        let r = tuple(&out[0][0]);
        assert_eq!((r.dst, r.dst_port), (v4(H1), 41000));
        let out = n.send(
            0,
            &[tcp_frame(H1, S, 41000, 80, 2, 901, ACK, 100, None, true)],
        );
        assert_eq!(tuple(&out[1][0]), t);
        // TCP options and payload untouched: only addresses, ports and
        // checksums differ.
        for id in [7u16, 8, 9] {
            let out = n.send(0, &[icmp_echo_frame(H1, S, id, 1, false, true)]);
            let q = parse_ethernet(&out[1][0]).unwrap();
            assert_eq!(q.tuple.src, v4(PUB));
            let L4::Icmp(i) = q.l4 else { panic!() };
            if workers == 1 {
                assert_eq!(i.id, id);
            }
            let out = n.send(1, &[icmp_echo_frame(S, PUB, i.id, 1, true, false)]);
            let a = parse_ethernet(&out[0][0]).unwrap();
            let L4::Icmp(ai) = a.l4 else { panic!() };
            assert_eq!((a.tuple.dst, ai.id, ai.icmp_type), (v4(H1), id, 0));
        }
        assert_eq!(n.entries(), 4);
        assert_eq!(n.totals().nat_exhausted, 0);
    }

    #[test]
    fn masquerade_tcp_and_icmp_one_worker() {
        masquerade_tcp_and_icmp(1);
    }

    #[test]
    fn masquerade_tcp_and_icmp_two_workers() {
        masquerade_tcp_and_icmp(2);
    }

    /// Many inside flows over two workers: every translated tuple is
    /// unique, owned by the worker that tracks it, and every answer comes
    /// back to its host.
    #[test]
    fn two_workers_translate_uniquely_and_answers_come_home() {
        let mut n = Net::new(MASQ, 2);
        let frames: Vec<_> = (0..40u8)
            .map(|i| udp_frame([10, 0, 0, 10 + i], S, 5000, 53, 8, true))
            .collect();
        let out = n.send(0, &frames);
        assert_eq!(out[1].len(), 40);
        let mut ports: Vec<u16> = out[1].iter().map(|f| tuple(f).src_port).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 40, "distinct translated ports");
        let answers: Vec<_> = ports
            .iter()
            .map(|&p| udp_frame(S, PUB, 53, p, 8, false))
            .collect();
        let back = n.send(1, &answers);
        let mut hosts: Vec<Addr> = back[0].iter().map(|f| tuple(f).dst).collect();
        hosts.sort();
        hosts.dedup();
        assert_eq!(hosts.len(), 40);
        assert!(back[0].iter().all(|f| tuple(f).dst_port == 5000));
        assert_eq!(n.entries(), 40);
        assert!(n.w.iter().all(|w| w.shard().total_entries() > 0));
    }

    #[test]
    fn two_inside_hosts_with_one_source_port_get_distinct_ports() {
        // In one burst and in two.
        for together in [true, false] {
            let mut n = Net::new(MASQ, 1);
            let (a, b) = (
                udp_frame(H1, S, 5000, 53, 8, true),
                udp_frame(H2, S, 5000, 53, 8, true),
            );
            let out = if together {
                n.send(0, &[a, b])[1].clone()
            } else {
                let mut o = n.send(0, &[a])[1].clone();
                o.extend(n.send(0, &[b])[1].clone());
                o
            };
            let (ta, tb) = (tuple(&out[0]), tuple(&out[1]));
            assert_eq!(ta.src_port, 5000, "the first keeps its port");
            assert_ne!(tb.src_port, 5000);
            assert!(tb.src_port >= 1024);
            assert_eq!((ta.src, tb.src), (v4(PUB), v4(PUB)));
            assert_eq!(n.entries(), 2);
            // Each answer goes to its own host.
            let back = n.send(
                1,
                &[
                    udp_frame(S, PUB, 53, tb.src_port, 8, false),
                    udp_frame(S, PUB, 53, 5000, 8, false),
                ],
            );
            assert_eq!(tuple(&back[0][0]).dst, v4(H2));
            assert_eq!(tuple(&back[0][1]).dst, v4(H1));
        }
    }

    #[test]
    fn port_exhaustion_is_a_counted_drop() {
        let mut n = Net::new(
            "/ip firewall nat\n\
             add chain=srcnat action=src-nat to-addresses=198.51.100.1 to-ports=10000-10001\n",
            1,
        );
        let frames: Vec<_> = [H1, H2, [10, 0, 0, 4]]
            .iter()
            .map(|&h| udp_frame(h, S, 5000, 53, 8, true))
            .collect();
        let out = n.send(0, &frames);
        assert_eq!(out[1].len(), 2, "{:?}", n.w[0].totals());
        let mut ports: Vec<u16> = out[1].iter().map(|f| tuple(f).src_port).collect();
        ports.sort();
        assert_eq!(ports, [10000, 10001]);
        let t = n.totals();
        assert_eq!((t.nat_exhausted, t.nat_translated), (1, 2));
        assert_eq!(t.table_dropped, 0, "counted as NAT, not as the table's");
        assert_eq!(n.entries(), 2);
    }

    /// Fast-tracked packets of a NAT connection are rewritten too (the
    /// short path skips the rules, not the translation).
    #[test]
    fn fasttracked_packets_are_translated() {
        let script = format!(
            "{MASQ}/ip firewall filter\n\
             add chain=forward action=fasttrack-connection connection-state=established\n"
        );
        let mut n = Net::new(&script, 1);
        let first = n.send(0, &[udp_frame(H1, S, 5000, 53, 8, true)]);
        let t = tuple(&first[1][0]);
        for _ in 0..4 {
            let back = n.send(1, &[udp_frame(S, PUB, 53, t.src_port, 8, false)]);
            assert_eq!(tuple(&back[0][0]).dst, v4(H1));
            let out = n.send(0, &[udp_frame(H1, S, 5000, 53, 8, true)]);
            assert_eq!(tuple(&out[1][0]), t);
        }
        let st = n.w[0].shard().stats();
        assert!(
            st.fasttrack_packets[0] > 0 && st.fasttrack_packets[1] > 0,
            "{st:?}"
        );
    }

    /// `TableConfig::nat`: the index has room for both keys of every
    /// connection, so a table of NAT connections fills to max-entries;
    /// without it inserts fail before (counted, nothing reused).
    #[test]
    fn a_nat_table_fills_to_max_entries() {
        let frames: Vec<_> = (0..1024u32)
            .map(|i| {
                let h = [10, 1, (i >> 8) as u8, i as u8];
                udp_frame(h, S, 5000, 53, 8, true)
            })
            .collect();
        let mut n = Net::with_table(MASQ, 1, TableConfig::new(1024).with_nat(true));
        let out = n.send(0, &frames);
        assert_eq!((n.entries(), out[1].len()), (1024, 1024));
        let full = |n: &Net| {
            n.w[0].shard().stats().dropped[crate::conntrack::DropReason::IndexFull.index()]
        };
        assert_eq!(full(&n), 0);
        let mut n = Net::with_table(MASQ, 1, TableConfig::new(1024));
        n.send(0, &frames);
        assert!(n.entries() < 1024 && full(&n) > 0, "{}", n.entries());
    }

    #[test]
    fn masquerade_without_an_address_drops() {
        let mut n = Net::new(
            "/ip firewall nat\nadd chain=srcnat action=masquerade out-interface=ether2\n",
            1,
        );
        let out = n.send(0, &[udp_frame(H1, S, 5000, 53, 8, true)]);
        assert!(out[1].is_empty());
        assert_eq!(n.totals().nat_no_address, 1);
        assert_eq!(n.entries(), 0);
    }

    /// Two first packets of one UDP tuple in one burst (a resolver's A and
    /// AAAA queries): both forwarded, on one connection with one
    /// translation (kubernetes/kubernetes#56903 cannot happen).
    #[test]
    fn the_insert_race_gives_one_connection_one_translation() {
        for workers in [1, 2] {
            // A taken port moves the translation, so a second choice would
            // differ: occupy 5000 first.
            let mut n = Net::new(MASQ, workers);
            n.send(0, &[udp_frame(H2, S, 5000, 53, 8, true)]);
            let out = n.send(
                0,
                &[
                    udp_frame(H1, S, 5000, 53, 8, true),
                    udp_frame(H1, S, 5000, 53, 9, true),
                ],
            );
            assert_eq!(out[1].len(), 2);
            assert_eq!(tuple(&out[1][0]), tuple(&out[1][1]));
            assert_eq!(n.entries(), 2);
            assert_eq!(n.totals().nat_translated, 2);
        }
    }

    #[test]
    fn dst_nat_port_forward_both_directions() {
        let script = "/ip address\nadd address=198.51.100.1/24 interface=ether2\n\
            /ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp \
            dst-port=2222 to-addresses=10.0.0.5 to-ports=22\n\
            /ip firewall filter\n\
            add chain=forward action=accept connection-nat-state=dstnat\n\
            add chain=forward action=drop in-interface=ether2\n";
        use crate::flow::tcp_flags::{ACK, SYN};
        let c = [192, 0, 2, 7];
        // With two workers the reply tuple (no free part to choose) may
        // hash to either: the first packet is handed to its owner.
        for workers in [1, 2] {
            let mut n = Net::new(script, workers);
            let out = n.send(
                1,
                &[tcp_frame(c, PUB, 40000, 2222, 1, 0, SYN, 0, None, false)],
            );
            assert_eq!(out[0].len(), 1, "{workers}: {:?}", n.w[0].totals());
            let t = tuple(&out[0][0]);
            assert_eq!(
                (t.src, t.src_port, t.dst, t.dst_port),
                (v4(c), 40000, v4([10, 0, 0, 5]), 22)
            );
            let out = n.send(
                0,
                &[tcp_frame(
                    [10, 0, 0, 5],
                    c,
                    22,
                    40000,
                    5,
                    2,
                    SYN | ACK,
                    0,
                    None,
                    true,
                )],
            );
            let r = tuple(&out[1][0]);
            assert_eq!((r.src, r.src_port, r.dst), (v4(PUB), 2222, v4(c)));
            // Not forwarded: anything else from the WAN.
            let out = n.send(
                1,
                &[tcp_frame(c, PUB, 40001, 2223, 1, 0, SYN, 0, None, false)],
            );
            assert!(out[0].is_empty());
            for w in &n.w {
                w.shard()
                    .for_each_snapshot(crate::conntrack::Instant::ZERO, |x| {
                        assert!(x.entry().dstnat() && !x.entry().srcnat());
                    });
            }
        }
    }

    /// A port forward on two workers: its only reply tuple (the client's
    /// port kept) hashes to either worker. The first packet is handed to
    /// the reply's owner, which creates the one connection; later original
    /// packets find it through the owner table (not the rules again).
    #[test]
    fn a_port_forward_on_two_workers_carries_both_ways() {
        use crate::flow::tcp_flags::{ACK, SYN};
        let script = "/ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp \
            dst-port=2222 to-addresses=10.0.0.5 to-ports=22\n";
        let (c, srv) = ([192, 0, 2, 7], [10, 0, 0, 5]);
        let mut n = Net::new(script, 2);
        let ports = 40000..40032u16;
        for p in ports.clone() {
            let syn = tcp_frame(c, PUB, p, 2222, 1, 0, SYN, 0, None, false);
            let out = n.send(1, &[syn]);
            assert_eq!(out[0].len(), 1, "{p}: {:?}", n.totals());
            assert_eq!(
                (tuple(&out[0][0]).dst, tuple(&out[0][0]).dst_port),
                (v4(srv), 22)
            );
            let synack = tcp_frame(srv, c, 22, p, 5, 2, SYN | ACK, 0, None, true);
            let out = n.send(0, &[synack]);
            assert_eq!(out[1].len(), 1, "{p}");
            let r = tuple(&out[1][0]);
            assert_eq!(
                (r.src, r.src_port, r.dst, r.dst_port),
                (v4(PUB), 2222, v4(c), p)
            );
            for seq in 2..4 {
                let ack = tcp_frame(c, PUB, p, 2222, seq, 6, ACK, 0, None, false);
                assert_eq!(n.send(1, &[ack])[0].len(), 1, "{p}");
            }
        }
        let count = ports.len() as u32;
        assert_eq!(n.entries(), count, "one connection each");
        assert_eq!(n.totals().nat_exhausted, 0);
        let handed: u64 =
            n.w.iter()
                .map(|w| {
                    w.firewall()
                        .unwrap()
                        .nat
                        .as_ref()
                        .unwrap()
                        .counters
                        .handed_off
                })
                .sum();
        let owners = n.w[0].mesh_owners().unwrap().len() as u64;
        assert!(handed > 0, "some replies hash to the other worker");
        // Once per connection: the later packets went by the owner table.
        assert_eq!(handed, owners);
        for w in &n.w {
            w.shard().check_invariants().unwrap();
        }
    }

    /// A port forward's first packet handed to the other worker (the owner
    /// of its reply tuple) counts once in the rules, nat and filter: on the
    /// worker that creates the connection (the first worker's walk is
    /// taken back).
    #[test]
    fn a_handed_over_first_packet_counts_once() {
        use crate::flow::tcp_flags::SYN;
        let script = "/ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp \
            dst-port=2222 to-addresses=10.0.0.5 to-ports=22\n\
            /ip firewall filter\n\
            add chain=forward action=accept connection-state=new\n";
        let c = [192, 0, 2, 7];
        let mut n = Net::new(script, 2);
        let ports = 40000..40032u16;
        for p in ports.clone() {
            let out = n.send(1, &[tcp_frame(c, PUB, p, 2222, 1, 0, SYN, 0, None, false)]);
            assert_eq!(out[0].len(), 1, "{p}");
        }
        let handed: u64 =
            n.w.iter()
                .map(|w| {
                    w.firewall()
                        .unwrap()
                        .nat
                        .as_ref()
                        .unwrap()
                        .counters
                        .handed_off
                })
                .sum();
        assert!(handed > 0, "some replies hash to the other worker");
        let count = |rule: usize| -> (u64, u64) {
            n.w.iter()
                .map(|w| {
                    let mut buf = Vec::new();
                    w.firewall().unwrap().counters_into(&mut buf);
                    (buf[rule].packets, buf[rule].bytes)
                })
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        let syn_len = 40u64;
        for rule in 0..2 {
            assert_eq!(
                count(rule),
                (ports.len() as u64, ports.len() as u64 * syn_len),
                "rule {rule}: each first packet once ({handed} handed over)"
            );
        }
        assert_eq!(n.entries(), ports.len() as u32);
    }

    /// An ICMP error about a port forward's reply-direction packet (from a
    /// router on the client's side, to the public address) is dispatched
    /// by its quote, whose inverse is the original tuple: with the
    /// connection handed over it lands on the original tuple's worker,
    /// which hands it to the owner; there it is `related` and reaches the
    /// server translated (outer destination and quote).
    #[test]
    fn an_icmp_error_about_a_handed_over_connection_reaches_the_owner() {
        use crate::flow::tcp_flags::{ACK, SYN};
        let script = "/ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp \
            dst-port=2222 to-addresses=10.0.0.5 to-ports=22\n";
        let (c, srv, router) = ([192, 0, 2, 7], [10, 0, 0, 5], [198, 51, 100, 254]);
        let mut n = Net::new(script, 2);
        let p = 40000;
        let out = n.send(1, &[tcp_frame(c, PUB, p, 2222, 1, 0, SYN, 0, None, false)]);
        assert_eq!(out[0].len(), 1);
        let handed: u64 =
            n.w.iter()
                .map(|w| {
                    w.firewall()
                        .unwrap()
                        .nat
                        .as_ref()
                        .unwrap()
                        .counters
                        .handed_off
                })
                .sum();
        assert_eq!(handed, 1, "the reply tuple hashes to the other worker");
        let out = n.send(
            0,
            &[tcp_frame(srv, c, 22, p, 5, 2, SYN | ACK, 0, None, true)],
        );
        assert_eq!(out[1].len(), 1);
        // The SYN-ACK as it left (PUB:2222 -> c:p), quoted by a host
        // unreachable from a router near the client.
        let sent = &out[1][0];
        let mut msg = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&sent[14..14 + 28]);
        let err = ipv4_frame(router, PUB, proto::ICMP, &msg, Some(2), false);
        let invalid_before: u64 = n.w.iter().map(|w| w.shard().stats().invalid_total()).sum();
        let back = n.send(1, &[err]);
        assert_eq!(back[0].len(), 1, "{:?}", n.totals());
        let r = parse_ethernet(&back[0][0]).unwrap();
        assert_eq!((r.tuple.src, r.tuple.dst), (v4(router), v4(srv)));
        let L4::Icmp(i) = r.l4 else { panic!() };
        let inner = i.inner.unwrap();
        assert_eq!(
            (inner.src, inner.src_port, inner.dst, inner.dst_port),
            (v4(srv), 22, v4(c), p)
        );
        let invalid_after: u64 = n.w.iter().map(|w| w.shard().stats().invalid_total()).sum();
        assert_eq!(
            invalid_after, invalid_before,
            "not counted invalid anywhere"
        );
    }

    /// The filter sees a port-forwarded connection's later packets with
    /// their translated destination (as Linux's filter, after the
    /// prerouting NAT): a rule on the inside server's address and port
    /// accepts them, whatever the packet carried on the wire.
    #[test]
    fn the_filter_sees_the_translated_destination_of_later_packets() {
        use crate::flow::tcp_flags::{ACK, SYN};
        let script = "/ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp \
            dst-port=2222 to-addresses=10.0.0.5 to-ports=22\n\
            /ip firewall filter\n\
            add chain=forward action=accept protocol=tcp dst-address=10.0.0.5 dst-port=22\n\
            add chain=forward action=accept in-interface=ether1\n\
            add chain=forward action=drop\n";
        let c = [192, 0, 2, 7];
        let mut n = Net::new(script, 1);
        let out = n.send(
            1,
            &[tcp_frame(c, PUB, 40000, 2222, 1, 0, SYN, 0, None, false)],
        );
        assert_eq!(out[0].len(), 1);
        let out = n.send(
            0,
            &[tcp_frame(
                [10, 0, 0, 5],
                c,
                22,
                40000,
                5,
                2,
                SYN | ACK,
                0,
                None,
                true,
            )],
        );
        assert_eq!(out[1].len(), 1);
        let out = n.send(
            1,
            &[tcp_frame(c, PUB, 40000, 2222, 2, 6, ACK, 10, None, false)],
        );
        assert_eq!(out[0].len(), 1, "{:?}", n.w[0].totals());
        assert_eq!(tuple(&out[0][0]).dst_port, 22);
        assert_eq!(n.w[0].totals().fw_dropped, 0);
    }

    /// A reset answering a masqueraded SYN (a closed port) reaches the
    /// inside host translated: the connection, which the reset closes,
    /// stays to translate it (Linux kills it at once, but the packet keeps
    /// its reference and is translated), then times out as closed.
    #[test]
    fn a_reset_answering_a_masqueraded_syn_is_translated() {
        use crate::flow::tcp_flags::{ACK, RST, SYN};
        let mut n = Net::new(MASQ, 1);
        let out = n.send(0, &[tcp_frame(H1, S, 5000, 80, 1, 0, SYN, 0, None, true)]);
        let t = tuple(&out[1][0]);
        assert_eq!((t.src, t.src_port), (v4(PUB), 5000));
        let rst = tcp_frame(S, PUB, 80, 5000, 0, 2, RST | ACK, 0, None, false);
        let back = n.send(1, &[rst]);
        assert_eq!(back[0].len(), 1);
        let r = tuple(&back[0][0]);
        assert_eq!(
            (r.src, r.src_port, r.dst, r.dst_port),
            (v4(S), 80, v4(H1), 5000)
        );
        let e = n.w[0].shard();
        assert_eq!(e.total_entries(), 1, "closed, not yet gone");
        // The client's next SYN on the same port opens a new connection.
        let out = n.send(0, &[tcp_frame(H1, S, 5000, 80, 9, 0, SYN, 0, None, true)]);
        assert_eq!(out[1].len(), 1);
        assert_eq!(n.entries(), 1);
    }

    /// A port unreachable for a masqueraded datagram reaches the inside
    /// host with its outer and quoted addresses translated back.
    #[test]
    fn icmp_error_is_translated_back() {
        let mut n = Net::new(MASQ, 1);
        n.send(0, &[udp_frame(H2, S, 6000, 53, 8, true)]);
        let out = n.send(0, &[udp_frame(H1, S, 6000, 53, 8, true)]);
        let t = tuple(&out[1][0]);
        assert_ne!(t.src_port, 6000);
        // The quote: the translated datagram's IP header and 8 bytes.
        let sent = &out[1][0];
        let mut msg = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&sent[14..14 + 28]);
        let err = ipv4_frame([192, 0, 2, 254], PUB, proto::ICMP, &msg, Some(2), false);
        let back = n.send(1, &[err]);
        assert_eq!(back[0].len(), 1);
        let f = &back[0][0];
        let r = parse_ethernet(f).unwrap();
        assert_eq!((r.tuple.src, r.tuple.dst), (v4([192, 0, 2, 254]), v4(H1)));
        let L4::Icmp(i) = r.l4 else { panic!() };
        let inner = i.inner.unwrap();
        assert_eq!(
            (inner.src, inner.src_port, inner.dst, inner.dst_port),
            (v4(H1), 6000, v4(S), 53)
        );
    }

    #[test]
    fn redirect_and_netmap_and_accept() {
        let script = "/ip address\nadd address=10.0.0.1/24 interface=ether1\n\
            /ip firewall nat\n\
            add chain=dstnat action=accept dst-address=203.0.113.10\n\
            add chain=dstnat action=redirect protocol=udp dst-port=53 to-ports=5353\n\
            add chain=srcnat action=netmap to-addresses=192.0.2.0/24\n";
        let mut n = Net::new(script, 1);
        let out = n.send(0, &[udp_frame(H1, S, 7000, 53, 8, true)]);
        let t = tuple(&out[1][0]);
        assert_eq!(
            (t.dst, t.dst_port, t.src, t.src_port),
            (v4([10, 0, 0, 1]), 5353, v4([192, 0, 2, 2]), 7000)
        );
        // Exempt from dstnat: only netmap.
        let out = n.send(0, &[udp_frame(H1, [203, 0, 113, 10], 7000, 53, 8, true)]);
        let t = tuple(&out[1][0]);
        assert_eq!(
            (t.dst, t.dst_port, t.src),
            (v4([203, 0, 113, 10]), 53, v4([192, 0, 2, 2]))
        );
    }

    #[test]
    fn addresses_from_a_script() {
        let cfg = parse(
            "/ip address\nadd address=192.168.88.1/24 interface=ether2\n\
             add address=10.9.9.9/8 interface=ether9\n\
             /ipv6 address\nadd address=2001:db8::1/64 interface=ether1\n",
        )
        .unwrap();
        let a = Addresses::from_config(&cfg, &["ether1".into(), "ether2".into()]).unwrap();
        let any = v4([1, 2, 3, 4]);
        assert_eq!(a.pick(1, Family::V4, &any), Some(v4([192, 168, 88, 1])));
        assert_eq!(a.pick(0, Family::V4, &any), None);
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(a.pick(0, Family::V6, &any), Some(Addr::from(v6)));
    }
}
