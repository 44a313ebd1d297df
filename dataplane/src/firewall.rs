//! The firewall in the worker: RouterOS filter and mangle rules
//! (`ctrack-rules`) between the table's two phases.
//!
//! A worker holds at most one compiled [`Ruleset`] (shared, immutable, behind
//! an `Arc`) and its own [`WorkerState`] for it (rule counters, `limit`
//! buckets, dynamic address lists). Control swaps both as a whole between
//! bursts ([`crate::worker::Command::Firewall`]); no lock is taken and
//! nothing is allocated per packet. Without a ruleset the worker's path is
//! the one it had before rules existed (one branch per burst).
//!
//! Per burst, after [`crate::conntrack::Shard::lookup_burst`] and before
//! `commit_burst`, each packet is evaluated through the hooks a forwarded
//! (bridged) packet passes in RouterOS, in order: mangle `prerouting`,
//! mangle `forward`, filter `forward`, mangle `postrouting`
//! ([`FORWARD_HOOKS`]). What the verdict does:
//!
//! - a packet that would open a connection ([`Verdict::New`]): the verdict
//!   becomes the table's [`Decision`]: drop (nothing inserted), the
//!   connection mark;
//! - a packet of an existing connection: a drop drops the packet (counted by
//!   action); a new connection mark is stored in the connection at once,
//!   and `fasttrack-connection` marks it once it is eligible (established
//!   TCP, a UDP stream: as Linux's flow offload);
//! - a packet of a fast-tracked connection skips the rules (the table's
//!   short path counted it already).
//!
//! See `docs/firewall.md` ("In the dataplane").

use std::sync::Arc;

use ctrack_rules::engine::NO_IFACE;
use ctrack_rules::{
    ConnCtx, ConnState, Env, Final, Hook, L7State, PacketCtx, RuleCounter, Ruleset, Uses,
    Verdict as FwVerdict, WorkerState,
};

use crate::conntrack::conncount::{ConnCount, block};
use crate::conntrack::{Decision, Dir, Instant, Shard, Verdict};
use crate::flow::{Addr, Family, FlowRepr};
use crate::layer7::{IpFields, L7_BYTES, L7_PACKETS, L7Windows, ip_fields};
use crate::packet::respond::Answer;
use ctrack_rules::value::RejectWith;

/// The hooks a forwarded packet passes, in order (RouterOS packet flow, for
/// bridged traffic through the IP firewall and routed traffic alike).
pub const FORWARD_HOOKS: [Hook; 4] = [
    Hook::ManglePrerouting,
    Hook::MangleForward,
    Hook::FilterForward,
    Hook::ManglePostrouting,
];

/// The hooks a packet to the box itself passes (router mode: its egress
/// is [`crate::router::LOCAL_PORT`]): mangle `prerouting`, mangle `input`,
/// filter `input`.
pub const INPUT_HOOKS: [Hook; 3] = [Hook::ManglePrerouting, Hook::MangleInput, Hook::FilterInput];

/// The hooks a packet the box sends passes (router mode: its ingress is
/// [`crate::router::LOCAL_PORT`]): mangle `output`, filter `output`, mangle
/// `postrouting`.
pub const OUTPUT_HOOKS: [Hook; 3] = [
    Hook::MangleOutput,
    Hook::FilterOutput,
    Hook::ManglePostrouting,
];

/// The hooks for a packet between ports `(inp, outp)`.
#[inline]
fn hooks_for((inp, outp): (u16, u16)) -> &'static [Hook] {
    if outp == crate::router::LOCAL_PORT {
        &INPUT_HOOKS
    } else if inp == crate::router::LOCAL_PORT {
        &OUTPUT_HOOKS
    } else {
        &FORWARD_HOOKS
    }
}

/// The hooks a packet that opens a connection passes when the ruleset has
/// NAT rules: [`FORWARD_HOOKS`] with the `dstnat` chain after prerouting
/// and the `srcnat` chain last (Linux's NAT priorities; see [`crate::nat`]).
pub const NEW_NAT_HOOKS: [Hook; 6] = [
    Hook::ManglePrerouting,
    Hook::NatDstnat,
    Hook::MangleForward,
    Hook::FilterForward,
    Hook::ManglePostrouting,
    Hook::NatSrcnat,
];

/// Dynamic address-list entries a worker holds at most.
pub const LIST_ENTRIES: usize = 65_536;
/// Address-list additions queued for control at most.
pub const LIST_OUTBOX: usize = 1024;
/// Address-list additions a worker's queue to control holds at most.
pub const LIST_QUEUE: usize = 4096;

/// A worker's address-list additions on their way to control (and from
/// there to the other workers), with the ruleset generation they belong to
/// (list ids are a ruleset's).
pub type ListQueue = crossbeam::queue::ArrayQueue<(u64, ctrack_rules::lists::ListAdd)>;

/// Log lines (`action=log`, `log=yes`) queued per loop at most; they are
/// formatted and written between bursts.
pub const LOG_QUEUE: usize = 64;
/// Log lines a worker writes per second at most (the rest are counted).
pub const LOG_PER_SECOND: u32 = 100;

/// Reason codes of [`Verdict::Refused`] and [`crate::stats::WorkerTotals`]'s
/// firewall counters: which action dropped the packet.
pub mod reason {
    pub const DROP: u16 = 1;
    /// A `reject` (its `reject-with` kind in the code: see
    /// [`super::answer_of`]).
    pub const REJECT: u16 = 2;
    pub const TARPIT: u16 = 3;
    /// NAT found no binding (exhaustion, no address: counted by the
    /// worker's [`crate::nat::NatCounters`]).
    pub const NAT: u16 = 4;
    /// `reject` codes: `REJECT_WITH` + the kind's index in
    /// [`super::REJECT_KINDS`].
    pub const REJECT_WITH: u16 = 16;

    /// Whether `r` is a `reject`'s code.
    pub fn is_reject(r: u16) -> bool {
        r == REJECT || (REJECT_WITH..REJECT_WITH + super::REJECT_KINDS.len() as u16).contains(&r)
    }
}

/// The `reject-with` kinds, in the order of their codes ([`reason::REJECT_WITH`]).
pub const REJECT_KINDS: [RejectWith; 13] = [
    RejectWith::IcmpNetworkUnreachable,
    RejectWith::IcmpHostUnreachable,
    RejectWith::IcmpPortUnreachable,
    RejectWith::IcmpProtocolUnreachable,
    RejectWith::IcmpNetProhibited,
    RejectWith::IcmpHostProhibited,
    RejectWith::IcmpAdminProhibited,
    RejectWith::TcpReset,
    RejectWith::IcmpNoRoute,
    RejectWith::Icmp6AdminProhibited,
    RejectWith::IcmpNotNeighbour,
    RejectWith::IcmpAddressUnreachable,
    RejectWith::Icmp6PortUnreachable,
];

/// The answer a dropped packet's code asks for: a `reject` its
/// `reject-with` (RouterOS names to the builders of
/// [`crate::packet::respond`]), a `tarpit` its SYN-ACK; `None` otherwise.
pub fn answer_of(code: u16) -> Option<Answer> {
    use crate::packet::respond::{Unreachable4 as U4, Unreachable6 as U6};
    if code == reason::TARPIT {
        return Some(Answer::Tarpit);
    }
    let i = usize::from(code.checked_sub(reason::REJECT_WITH)?);
    Some(match REJECT_KINDS.get(i)? {
        RejectWith::IcmpNetworkUnreachable => Answer::Icmp4(U4::Network),
        RejectWith::IcmpHostUnreachable => Answer::Icmp4(U4::Host),
        RejectWith::IcmpPortUnreachable => Answer::Icmp4(U4::Port),
        RejectWith::IcmpProtocolUnreachable => Answer::Icmp4(U4::Protocol),
        RejectWith::IcmpNetProhibited => Answer::Icmp4(U4::NetProhibited),
        RejectWith::IcmpHostProhibited => Answer::Icmp4(U4::HostProhibited),
        RejectWith::IcmpAdminProhibited => Answer::Icmp4(U4::AdminProhibited),
        RejectWith::TcpReset => Answer::TcpReset,
        RejectWith::IcmpNoRoute => Answer::Icmp6(U6::NoRoute),
        RejectWith::Icmp6AdminProhibited => Answer::Icmp6(U6::AdminProhibited),
        RejectWith::IcmpNotNeighbour => Answer::Icmp6(U6::NotNeighbour),
        RejectWith::IcmpAddressUnreachable => Answer::Icmp6(U6::Address),
        RejectWith::Icmp6PortUnreachable => Answer::Icmp6(U6::Port),
    })
}

/// A ruleset as control hands it to every worker.
pub struct FirewallUpdate {
    /// The new ruleset (`None`: no rules, the path without a firewall).
    pub ruleset: Option<Arc<Ruleset>>,
    /// Identifies the ruleset in counter answers.
    pub generation: u64,
    /// What `enabled=auto` resolves to with this ruleset (whether a rule
    /// needs connection tracking).
    pub auto_tracking: bool,
    /// Gets the worker's previous ruleset and state back (its final
    /// counters; dropped on the control thread, not the worker's).
    pub reply: Option<crossbeam::channel::Sender<Retired>>,
    /// Where the worker reports its address-list additions for the others
    /// (`None`: they stay in this worker).
    pub lists_out: Option<Arc<ListQueue>>,
    /// The connection counts per source block shared by every worker, for
    /// `connection-limit` (`None` when no rule has one; see
    /// [`crate::conntrack::conncount`]). The worker's shard counts its
    /// connections in it ([`Shard::set_conncount`]).
    pub conncount: Option<Arc<ConnCount>>,
    /// The interfaces' addresses of the script (`masquerade`, `redirect`);
    /// `None`: none.
    pub addresses: Option<Arc<crate::nat::Addresses>>,
}

/// A worker's ruleset after a swap: its final counters are in `state`.
pub struct Retired {
    pub generation: u64,
    pub ruleset: Option<Arc<Ruleset>>,
    pub state: Option<WorkerState>,
}

/// A worker's rule counters ([`crate::worker::Command::RuleCounters`]).
pub struct RuleCounters {
    /// The ruleset the counters are for.
    pub generation: u64,
    /// Indexed by [`ctrack_rules::RuleId`].
    pub counters: Vec<RuleCounter>,
}

/// One worker's firewall: the ruleset and the worker's state for it.
pub struct WorkerFirewall {
    rs: Arc<Ruleset>,
    ws: WorkerState,
    generation: u64,
    /// Scratch for address-list additions drained between bursts.
    outbox: Vec<ctrack_rules::lists::ListAdd>,
    /// Log lines due: the rule and the packet as that hook saw it.
    logs: Vec<(ctrack_rules::RuleId, PacketCtx<'static>)>,
    /// Log lines not written (queue full, or over [`LOG_PER_SECOND`]).
    logs_suppressed: u64,
    /// The second of the log rate window, and the lines written in it.
    log_window: (u64, u32),
    lists_out: Option<Arc<ListQueue>>,
    /// Address-list additions not reported (the queue to control was full).
    pub lists_lost: u64,
    /// Connections fast-tracked by the rules during the current
    /// [`WorkerFirewall::decide`]: their later packets in the same burst were
    /// tracked on the full path, so they still pass the rules.
    marked_now: [crate::conntrack::ConnId; crate::worker::MAX_BURST],
    n_marked: usize,
    /// What the ruleset reads beyond the flow's header fields.
    uses: Uses,
    /// Whether TTL, DSCP or the payload are read from the frame.
    fields: bool,
    /// Layer7 payload windows (rulesets with `layer7-protocol` only).
    l7w: Option<Box<L7Windows>>,
    /// Per packet of the burst being decided: the layer7 state of a new
    /// connection, and whether it is to get a window, for
    /// [`WorkerFirewall::after_commit`] (the connection has no id before).
    new_l7: [(u64, bool); crate::worker::MAX_BURST],
    any_new_l7: bool,
    /// The connections this burst accepted that the table has not
    /// committed yet (they count for `connection-limit` already), by the
    /// tuple of their first packet.
    pending_src: [crate::flow::Tuple; crate::worker::MAX_BURST],
    n_pending: usize,
    /// NAT, when the ruleset has NAT rules (set by the worker, which knows
    /// its place among the workers: [`crate::nat::WorkerNat`]).
    pub nat: Option<Box<crate::nat::WorkerNat>>,
    /// The ruleset has NAT rules and nothing else: packets of existing
    /// connections (which pass no NAT chain) have no rule to pass.
    only_nat: bool,
    /// By family (IPv4, IPv6): no mangle or filter rule reads a packet's
    /// destination ([`Ruleset::reads_dst`]), so a NAT connection's packet
    /// needs no walk with its translated destination in bridge mode (see
    /// `WorkerFirewall::needs_nat_view`).
    dst_blind: [bool; 2],
    /// By family (IPv4, IPv6): bit `hook as u32` set when that hook's
    /// chain has no rule ([`Ruleset::hook_is_empty`]): `walk` skips it.
    empty_hooks: [u32; 2],
}

/// Per-packet result of [`WorkerFirewall::decide`] for a packet of an
/// existing connection (the table's decision covers new ones).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Outcome {
    /// `reason::*` when the packet is to be dropped, else 0.
    pub drop: u16,
}

impl WorkerFirewall {
    /// State for `rs` (allocates: between bursts only).
    pub fn new(
        rs: Arc<Ruleset>,
        generation: u64,
        now: Instant,
        lists_out: Option<Arc<ListQueue>>,
    ) -> WorkerFirewall {
        let ws = WorkerState::new(&rs, now, LIST_ENTRIES, LIST_OUTBOX);
        let uses = rs.uses();
        let only_nat = rs_only_nat(&rs);
        let empty_hooks = [ctrack_rules::Fam::V4, ctrack_rules::Fam::V6].map(|f| {
            Hook::ALL
                .iter()
                .filter(|&&h| rs.hook_is_empty(f, h))
                .fold(0u32, |m, &h| m | 1 << h as u32)
        });
        let dst_blind = [ctrack_rules::Fam::V4, ctrack_rules::Fam::V6].map(|f| {
            !rs.reads_dst(f, ctrack_rules::Table::Mangle)
                && !rs.reads_dst(f, ctrack_rules::Table::Filter)
        });
        WorkerFirewall {
            fields: uses.ttl || uses.dscp || uses.layer7,
            l7w: uses.layer7.then(Box::default),
            uses,
            new_l7: [(0, false); crate::worker::MAX_BURST],
            any_new_l7: false,
            pending_src: [crate::flow::Tuple::default(); crate::worker::MAX_BURST],
            n_pending: 0,
            rs,
            ws,
            generation,
            outbox: Vec::with_capacity(LIST_OUTBOX),
            logs: Vec::with_capacity(LOG_QUEUE),
            logs_suppressed: 0,
            log_window: (0, 0),
            lists_out,
            lists_lost: 0,
            marked_now: [crate::conntrack::ConnId(0); crate::worker::MAX_BURST],
            n_marked: 0,
            nat: None,
            only_nat,
            dst_blind,
            empty_hooks,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn ruleset(&self) -> &Arc<Ruleset> {
        &self.rs
    }

    pub fn state(&self) -> &WorkerState {
        &self.ws
    }

    /// Takes the ruleset and state apart (for [`Retired`]).
    pub fn into_parts(self) -> (u64, Arc<Ruleset>, WorkerState) {
        (self.generation, self.rs, self.ws)
    }

    /// Whether the ruleset has NAT rules (the worker then gives the
    /// firewall a [`crate::nat::WorkerNat`]).
    pub fn uses_nat(rs: &Ruleset) -> bool {
        (0..rs.len()).any(|i| rs.nat(ctrack_rules::RuleId(i as u32)).is_some())
    }

    /// Whether the ruleset can ask for FastTrack (the shard must then be
    /// made ready for marking without allocation).
    pub fn uses_fasttrack(rs: &Ruleset) -> bool {
        (0..rs.len()).any(|i| {
            rs.rule(ctrack_rules::RuleId(i as u32))
                .is_some_and(|r| r.action == ctrack_rules::Action::FasttrackConnection)
        })
    }

    /// What the ruleset reads beyond the flow's header fields.
    pub fn uses(&self) -> &Uses {
        &self.uses
    }

    /// Packets that wanted a layer7 window for their connection and found
    /// none free (the side table was full; a later packet of the same
    /// connection asks again).
    pub fn l7_full(&self) -> u64 {
        self.l7w.as_ref().map_or(0, |w| w.full)
    }

    /// Layer7 windows in use (O(windows): for tests and reports).
    pub fn l7_windows(&self) -> usize {
        self.l7w.as_ref().map_or(0, |w| w.live())
    }

    /// Decides for `pkts[j]` whose table verdict after the lookup phase is
    /// `verdicts[j]`: writes `decisions[j]` for each [`Verdict::New`], and
    /// applies the verdict to existing connections (marks, FastTrack,
    /// layer7 results) in `shard`, replacing the verdict of a packet to drop
    /// by [`Verdict::Refused`] with its `reason`. `ports[j]` is the packet's
    /// (ingress, egress) port, `frames[j]` its frame (TTL, DSCP and payload
    /// are read from it when a rule needs them; a missing frame reads as
    /// zeros). No allocation, no lock. Call [`WorkerFirewall::after_commit`]
    /// after the table's commit phase.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        shard: &mut Shard,
        now: Instant,
        pkts: &[FlowRepr],
        frames: &[&[u8]],
        ports: &[(u16, u16)],
        verdicts: &mut [Verdict],
        decisions: &mut [Decision],
    ) {
        self.n_marked = 0;
        self.any_new_l7 = false;
        self.n_pending = 0;
        let limits = !self.uses.conn_limit.is_empty();
        // Out of `self` while packets' contexts borrow its windows.
        let mut l7w = self.l7w.take();
        if let Some(nat) = self.nat.as_deref_mut() {
            nat.start_burst();
        }
        for j in 0..pkts.len().min(verdicts.len()).min(decisions.len()) {
            if self.only_nat && verdicts[j] != Verdict::New {
                continue;
            }
            // A packet of a fast-tracked connection: the short path took it,
            // no rules. Decided first, from the entry's hot line alone: such
            // a packet builds no context, reads nothing from its frame and
            // nothing from the entry's cold line (`conn_view`).
            if let Verdict::Tracked { id, .. } = verdicts[j]
                && shard.get(id).is_some_and(|e| e.fasttrack())
                && !self.marked_now[..self.n_marked].contains(&id)
            {
                continue;
            }
            let (inp, outp) = ports.get(j).copied().unwrap_or((NO_IFACE, NO_IFACE));
            let hooks = hooks_for((inp, outp));
            let local = |p: u16| {
                if p == crate::router::LOCAL_PORT {
                    NO_IFACE
                } else {
                    p
                }
            };
            let mut ctx = PacketCtx::from_flow(&pkts[j]);
            ctx.in_iface = local(inp);
            ctx.out_iface = local(outp);
            let fields = match frames.get(j) {
                Some(f) if self.fields => ip_fields(f, &pkts[j]),
                _ => IpFields::default(),
            };
            ctx.ttl = fields.ttl;
            ctx.dscp = fields.dscp;
            ctx.payload = fields.payload;
            // The layer7 window of this connection, if it has one.
            let mut window = None;
            // A packet of a NAT connection: see `walk_nat_view`.
            let mut nat_view = false;
            // Expected by a translated master: its translation (see
            // `crate::ftp_nat::follow_master`).
            let mut follow = None;
            let existing = match verdicts[j] {
                Verdict::New => {
                    // A connection a helper expects: `related`, with the
                    // master's helper and mark (see `crate::helpers`).
                    if let Some((k, mark)) = shard.expected_for(&pkts[j], now) {
                        ctx.conn.state = ConnState::Related;
                        ctx.conn.mark = mark;
                        ctx.conn.conn_type = crate::helpers::conn_type(k as u8);
                        follow = shard.expected_nat(&pkts[j], now);
                    } else if let Some(k) = shard.helper_for_new(&pkts[j]) {
                        ctx.conn.conn_type = crate::helpers::conn_type(k as u8);
                    }
                    None
                }
                Verdict::Tracked { id, dir, .. } => {
                    let Some(view) = shard.conn_view(id, now) else {
                        // Gone already (an RST that closed it): as established.
                        ctx.conn.state = ConnState::Established;
                        let v = self.run_hooks(now, hooks, &mut ctx, shard, false);
                        self.apply_existing(shard, j, &v, None, verdicts);
                        continue;
                    };
                    ctx.conn = ConnCtx {
                        // As Linux: an expected connection stays `related`
                        // until it sees a reply.
                        state: if dir == Dir::Reply || view.seen_reply {
                            ConnState::Established
                        } else if view.expected {
                            ConnState::Related
                        } else {
                            ConnState::New
                        },
                        conn_type: crate::helpers::conn_type(view.helper),
                        nat: nat_bits(view.srcnat, view.dstnat),
                        mark: view.mark,
                        // Counts before this packet (the lookup counted it).
                        bytes: view.bytes.saturating_sub(u64::from(pkts[j].ip_len)),
                        packets: view.packets.saturating_sub(1),
                        rate_bps: view.rate_bps,
                        l7: L7State(view.l7),
                    };
                    if let Some(w) = l7w.as_deref_mut()
                        && in_l7_reach(&ctx.conn)
                        && !fields.payload.is_empty()
                        && let Some(i) = w.find(id)
                    {
                        window = Some(i);
                        ctx.payload = w.append(i, fields.payload);
                    }
                    nat_view = self.needs_nat_view(pkts[j].tuple.family, dir, &view);
                    Some((id, view.mark, view.fasttrack_eligible))
                }
                Verdict::Related { id, .. } => {
                    let view = shard.conn_view(id, now).unwrap_or_default();
                    ctx.conn = ConnCtx {
                        state: ConnState::Related,
                        nat: nat_bits(view.srcnat, view.dstnat),
                        mark: view.mark,
                        bytes: view.bytes,
                        packets: view.packets,
                        rate_bps: view.rate_bps,
                        l7: L7State(view.l7),
                        ..ConnCtx::default()
                    };
                    Some((id, view.mark, false))
                }
                Verdict::Invalid(_) => {
                    ctx.conn.state = ConnState::Invalid;
                    None
                }
                Verdict::Untracked(_) => {
                    ctx.conn.state = ConnState::Untracked;
                    None
                }
                // Dropped by the table already, or decided.
                Verdict::Dropped(_) | Verdict::Refused(_) => continue,
            };
            let before = ctx.conn;
            // A later packet of a connection the burst opened is `New` too:
            // that connection counts once.
            let new = verdicts[j] == Verdict::New
                && !(limits
                    && self.pending_src[..self.n_pending]
                        .iter()
                        .any(|p| same_conn(p, &pkts[j].tuple)));
            // A new connection's NAT binding (`None`: not translated; an
            // error: NAT refused it, counted by the NAT).
            let mut nat_reply = Ok(None);
            let v = if nat_view && hooks != OUTPUT_HOOKS.as_slice() {
                // The hooks after prerouting see the destination as the
                // prerouting NAT left it (as Linux's filter).
                self.walk_nat_view(shard, now, &pkts[j], verdicts[j], &mut ctx, (inp, outp))
            } else if let Some(x) = follow
                && let Some(nat) = self.nat.as_deref_mut()
            {
                // Translated as its master says, not by the NAT rules
                // (Linux's NAT is set up by the expectation then).
                let orig = shard.key_of(&pkts[j]);
                nat_reply = nat.finish(shard, &orig, &crate::ftp_nat::follow_master(&x));
                self.run_hooks(now, hooks, &mut ctx, shard, new)
            } else if verdicts[j] == Verdict::New
                && self.nat.is_some()
                && hooks != OUTPUT_HOOKS.as_slice()
            {
                // Forwarded or to the box itself (where a port forward
                // may send it elsewhere: see `decide_new_nat`).
                let (v, r) = self.decide_new_nat(shard, now, &pkts[j], &mut ctx, new, (inp, outp));
                nat_reply = r;
                v
            } else {
                self.run_hooks(now, hooks, &mut ctx, shard, new)
            };
            if let Some(w) = l7w.as_deref_mut() {
                self.track_l7(
                    w,
                    shard,
                    j,
                    verdicts[j],
                    &before,
                    &v,
                    window,
                    &pkts[j],
                    fields,
                );
            }
            if verdicts[j] == Verdict::New {
                decisions[j] = match drop_reason(v.action) {
                    // A first packet is never established: FastTrack waits
                    // (see `apply_existing`).
                    0 => {
                        if limits && new && self.n_pending < self.pending_src.len() {
                            self.pending_src[self.n_pending] = pkts[j].tuple;
                            self.n_pending += 1;
                        }
                        match nat_reply {
                            Ok(reply) => Decision {
                                mark: v.mark,
                                reply,
                                ..Decision::ACCEPT
                            },
                            Err(crate::nat::NatDrop::Elsewhere(owner)) => {
                                Decision::drop(crate::nat::handoff_reason(owner))
                            }
                            Err(_) => Decision::drop(reason::NAT),
                        }
                    }
                    // A reject's or tarpit's answer is sent by the worker,
                    // which still holds the packet (`answer_of`).
                    r => Decision::drop(r),
                };
            } else {
                self.apply_existing(shard, j, &v, existing, verdicts);
            }
        }
        self.l7w = l7w;
    }

    /// Layer7 bookkeeping after the hooks ran on packet `j` (see
    /// [`crate::layer7`]): stores a changed result in an existing connection
    /// (a new one's waits for [`WorkerFirewall::after_commit`]), opens a
    /// window for a connection a layer7 rule looked at, closes it once the
    /// connection is past its first packets.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn track_l7(
        &mut self,
        w: &mut L7Windows,
        shard: &mut Shard,
        j: usize,
        verdict: Verdict,
        before: &ConnCtx,
        v: &Merged,
        window: Option<usize>,
        pkt: &FlowRepr,
        fields: IpFields<'_>,
    ) {
        // Whether a later packet of the connection may still be scanned.
        let more =
            before.packets + 1 < L7_PACKETS && before.bytes + u64::from(pkt.ip_len) < L7_BYTES;
        match verdict {
            Verdict::New => {
                let want = v.l7_scanned && more && !fields.payload.is_empty();
                if v.l7.0 != 0 || want {
                    self.new_l7[j] = (v.l7.0, want);
                    self.any_new_l7 = true;
                }
            }
            Verdict::Tracked { id, .. } => {
                if v.l7 != before.l7 {
                    shard.set_l7_state(id, v.l7.0);
                }
                match window {
                    Some(i) if !more || w.is_full(i) => w.remove(i),
                    Some(_) => {}
                    None if v.l7_scanned && more && !fields.payload.is_empty() => {
                        w.insert(id, fields.payload, |c| shard.connection_mark(c).is_some());
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// After the table's commit phase: stores the layer7 results of the
    /// connections the burst created, and opens their windows (`frames` and
    /// `verdicts` as in [`WorkerFirewall::decide`], the verdicts now
    /// committed). No allocation.
    pub fn after_commit(
        &mut self,
        shard: &mut Shard,
        pkts: &[FlowRepr],
        frames: &[&[u8]],
        verdicts: &[Verdict],
    ) {
        if !self.any_new_l7 {
            return;
        }
        self.any_new_l7 = false;
        let Some(w) = self.l7w.as_deref_mut() else {
            return;
        };
        for j in 0..pkts.len().min(verdicts.len()) {
            let (bits, want) = std::mem::take(&mut self.new_l7[j]);
            let Verdict::Tracked {
                id, created: true, ..
            } = verdicts[j]
            else {
                continue;
            };
            if bits != 0 {
                shard.set_l7_state(id, bits);
            }
            if want && let Some(f) = frames.get(j) {
                let payload = ip_fields(f, &pkts[j]).payload;
                w.insert(id, payload, |c| shard.connection_mark(c).is_some());
            }
        }
    }

    /// The decision for a packet that opens a connection, through the NAT
    /// chains too ([`NEW_NAT_HOOKS`]): the binding chosen once, its reply
    /// key into the decision (see [`crate::nat`]). In Linux's order:
    /// prerouting, dstnat, the routing decision on the translated
    /// destination ([`crate::nat::WorkerNat::out_port`]), then the input
    /// hooks (to the box itself) or the forward hooks, postrouting and
    /// srcnat. `ports`: the packet's (ingress, egress) as received.
    #[cold]
    fn decide_new_nat(
        &mut self,
        shard: &Shard,
        now: Instant,
        pkt: &FlowRepr,
        ctx: &mut PacketCtx<'_>,
        new: bool,
        ports: (u16, u16),
    ) -> (
        Merged,
        Result<Option<crate::conntrack::Key>, crate::nat::NatDrop>,
    ) {
        let mut pending = crate::nat::Pending::default();
        let ifaces = (ctx.in_iface, ctx.out_iface);
        // A first packet handed to another worker (the owner of its reply
        // tuple) is walked again there: the counts of this walk are taken
        // back then, so that the rules count it once, on the worker that
        // creates the connection (as Linux counts a packet once).
        self.ws.journal_start();
        let mut v = self.walk(
            now,
            ctx,
            &NEW_NAT_HOOKS[..2],
            Some(&mut pending),
            shard,
            new,
        );
        if drop_reason(v.action) == 0 && pending.drop.is_none() {
            let (inp, outp) = ports;
            let routed = match self.nat.as_deref() {
                Some(n) => n.out_port(inp, outp, &ctx.dst),
                None => Some(outp),
            };
            ctx.in_iface = ifaces.0;
            let rest = if routed == Some(crate::router::LOCAL_PORT) {
                ctx.out_iface = NO_IFACE;
                self.walk(now, ctx, &INPUT_HOOKS[1..], None, shard, new)
            } else {
                ctx.out_iface = match routed {
                    Some(p) if p != NO_IFACE => p,
                    _ => ifaces.1,
                };
                self.walk(
                    now,
                    ctx,
                    &NEW_NAT_HOOKS[2..],
                    Some(&mut pending),
                    shard,
                    new,
                )
            };
            v.merge(rest);
        }
        let reply = match self.nat.as_deref_mut() {
            Some(nat) if drop_reason(v.action) == 0 => {
                // As the table keys it (GRE v1 by call ids: `Shard::key_of`).
                let orig = shard.key_of(pkt);
                nat.finish(shard, &orig, &pending)
            }
            _ => Ok(None),
        };
        if let Err(crate::nat::NatDrop::Elsewhere(_)) = reply {
            self.ws.journal_undo();
        } else {
            self.ws.journal_stop();
        }
        (v, reply)
    }

    /// Whether a packet of direction `dir` of the connection `view` shows
    /// must pass the hooks through [`WorkerFirewall::walk_nat_view`]: only
    /// when its destination changes (the original direction of a
    /// destination NAT, the reply direction of a source NAT), and then in
    /// bridge mode only when a rule may read the destination. Otherwise
    /// the split walk gives what the plain one gives: the same
    /// destination, so the same route (the worker routed the packet by
    /// it), the same hooks and the same matches.
    #[inline]
    fn needs_nat_view(&self, family: Family, dir: Dir, view: &crate::conntrack::ConnView) -> bool {
        let dst_changes = match dir {
            Dir::Orig => view.dstnat,
            Dir::Reply => view.srcnat,
        };
        dst_changes
            && !(self.dst_blind[usize::from(family == Family::V6)]
                && self.nat.as_deref().is_some_and(|n| !n.routes()))
    }

    /// [`FORWARD_HOOKS`] for a packet of a NAT connection: from mangle
    /// forward on, `ctx` has the destination the packet leaves with, and
    /// the out-interface routed for it (router mode: the input hooks when
    /// that is the box itself). `ports`: as received.
    #[cold]
    fn walk_nat_view(
        &mut self,
        shard: &Shard,
        now: Instant,
        pkt: &FlowRepr,
        v: Verdict,
        ctx: &mut PacketCtx<'_>,
        ports: (u16, u16),
    ) -> Merged {
        let dst = match crate::nat::plan(shard, pkt, v) {
            crate::nat::Rewrite::To(t) => Some((t.dst, t.dst_port)),
            _ => None,
        };
        let ifaces = (ctx.in_iface, ctx.out_iface);
        let mut m = self.walk(now, ctx, &FORWARD_HOOKS[..1], None, shard, false);
        if drop_reason(m.action) != 0 {
            return m;
        }
        (ctx.in_iface, ctx.out_iface) = ifaces;
        if let Some((a, p)) = dst {
            ctx.dst = a;
            if matches!(ctx.proto, crate::flow::proto::TCP | crate::flow::proto::UDP) {
                ctx.dst_port = p;
            }
        }
        let routed = self
            .nat
            .as_deref()
            .and_then(|n| n.out_port(ports.0, ports.1, &ctx.dst));
        let rest = if routed == Some(crate::router::LOCAL_PORT) {
            ctx.out_iface = NO_IFACE;
            self.walk(now, ctx, &INPUT_HOOKS[1..], None, shard, false)
        } else {
            if let Some(p) = routed.filter(|&p| p != NO_IFACE) {
                ctx.out_iface = p;
            }
            self.walk(now, ctx, &FORWARD_HOOKS[1..], None, shard, false)
        };
        m.merge(rest);
        m
    }

    /// The verdict for a packet of an existing (or untracked, invalid)
    /// connection: store the mark and FastTrack, or drop the packet.
    fn apply_existing(
        &mut self,
        shard: &mut Shard,
        j: usize,
        v: &Merged,
        existing: Option<(crate::conntrack::ConnId, u32, bool)>,
        verdicts: &mut [Verdict],
    ) {
        if let Some((id, old_mark, eligible)) = existing {
            if v.mark != old_mark {
                shard.set_connection_mark(id, v.mark);
            }
            // As Linux's flow offload (`nf_conntrack_tcp_established`) and
            // the table's own policy: only an established TCP connection or
            // a UDP stream goes on the short path; the rule marks it on the
            // first packet that finds it so.
            if v.fasttrack && eligible {
                // No allocation: the shard was made ready when the ruleset
                // was installed (`Shard::set_fasttrack_ready`).
                shard.set_fasttrack(id, true);
                if self.n_marked < self.marked_now.len() {
                    self.marked_now[self.n_marked] = id;
                    self.n_marked += 1;
                }
            }
        }
        let r = drop_reason(v.action);
        if r != 0 {
            verdicts[j] = Verdict::Refused(r);
        }
    }

    /// Runs `hooks` ([`FORWARD_HOOKS`], or in router mode [`INPUT_HOOKS`] /
    /// [`OUTPUT_HOOKS`]) on `ctx`, carrying the packet and connection marks
    /// from hook to hook; stops at the first hook that drops.
    /// `new`: the packet's connection is not in the table yet (it counts
    /// itself for `connection-limit`).
    #[inline]
    fn run_hooks(
        &mut self,
        now: Instant,
        hooks: &[Hook],
        ctx: &mut PacketCtx<'_>,
        shard: &Shard,
        new: bool,
    ) -> Merged {
        self.walk(now, ctx, hooks, None, shard, new)
    }

    /// Runs `hooks` as [`WorkerFirewall::run_hooks`] does; a NAT chain's
    /// NAT action goes into `nat` (see [`crate::nat::WorkerNat::bind`]).
    #[inline]
    fn walk(
        &mut self,
        now: Instant,
        ctx: &mut PacketCtx<'_>,
        hooks: &[Hook],
        mut nat: Option<&mut crate::nat::Pending>,
        shard: &Shard,
        new: bool,
    ) -> Merged {
        let env = LimitEnv {
            counts: shard.conncount().map(|c| &**c),
            new,
            pending: &self.pending_src[..self.n_pending],
        };
        let mut m = Merged {
            action: Final::Accept,
            mark: ctx.conn.mark,
            fasttrack: false,
            l7: ctx.conn.l7,
            l7_scanned: false,
        };
        let (inp, outp) = (ctx.in_iface, ctx.out_iface);
        let empty = self.empty_hooks[usize::from(ctx.family == crate::flow::Family::V6)];
        for &hook in hooks {
            // Prerouting (and dstnat) knows no out-interface yet;
            // postrouting (and srcnat) has no in-interface (as in Linux and
            // RouterOS).
            ctx.in_iface = if matches!(hook, Hook::ManglePostrouting | Hook::NatSrcnat) {
                NO_IFACE
            } else {
                inp
            };
            ctx.out_iface = if matches!(hook, Hook::ManglePrerouting | Hook::NatDstnat) {
                NO_IFACE
            } else {
                outp
            };
            // A chain without rules accepts and changes nothing.
            if empty & (1 << hook as u32) != 0 {
                continue;
            }
            let v: FwVerdict = self.rs.evaluate(hook, now, ctx, &mut self.ws, &env);
            if v.n_logs > 0 || v.logs_dropped > 0 {
                Self::queue_logs(&mut self.logs, &mut self.logs_suppressed, &v, ctx);
            }
            if let Some(mark) = v.conn_mark {
                ctx.conn.mark = mark;
                m.mark = mark;
            }
            if let Some(pm) = v.packet_mark {
                ctx.packet_mark = pm;
            }
            if let Some(l7) = v.l7 {
                ctx.conn.l7 = l7;
                m.l7 = l7;
            }
            m.l7_scanned |= v.l7_scanned;
            m.fasttrack |= v.fasttrack;
            if let (Final::Nat(id), Some(p)) = (v.action, nat.as_deref_mut())
                && let (Some(target), Some(n)) = (self.rs.nat(id), self.nat.as_deref_mut())
            {
                // `redirect` and `masquerade` need the interfaces: the
                // packet's, whatever the hook hides from the matchers.
                let (hid_in, hid_out) = (ctx.in_iface, ctx.out_iface);
                ctx.in_iface = inp;
                ctx.out_iface = outp;
                n.bind(target, hook == Hook::NatDstnat, ctx, p);
                ctx.in_iface = hid_in;
                ctx.out_iface = hid_out;
                if p.drop.is_some() {
                    break;
                }
            }
            if drop_reason(v.action) != 0 {
                m.action = v.action;
                break;
            }
        }
        m
    }

    /// Keeps the verdict's log lines for [`WorkerFirewall::between_bursts`]
    /// (no allocation: the queue has its capacity).
    #[cold]
    fn queue_logs(
        logs: &mut Vec<(ctrack_rules::RuleId, PacketCtx<'static>)>,
        suppressed: &mut u64,
        v: &FwVerdict,
        ctx: &PacketCtx<'_>,
    ) {
        *suppressed += u64::from(v.logs_dropped);
        for &id in v.logs() {
            if logs.len() < LOG_QUEUE {
                logs.push((id, detached(ctx)));
            } else {
                *suppressed += 1;
            }
        }
    }

    /// Between bursts: writes the queued log lines to the process log
    /// (`tracing`, target `ctrack::firewall`, at most [`LOG_PER_SECOND`]),
    /// expires dynamic address-list entries and reports this worker's
    /// additions to control (which gives them to the other workers).
    pub fn between_bursts(&mut self, now: Instant) {
        if !self.logs.is_empty() {
            self.write_logs(now);
        }
        self.ws.lists.poll_expired(now);
        self.ws.lists.drain_outbox(&mut self.outbox);
        if let Some(q) = &self.lists_out {
            for &a in &self.outbox {
                if q.push((self.generation, a)).is_err() {
                    self.lists_lost += 1;
                }
            }
        }
        self.outbox.clear();
    }

    /// Applies address-list additions other workers made under ruleset
    /// `generation` (ignored if this worker runs another one).
    pub fn apply_lists(&mut self, generation: u64, adds: &[ctrack_rules::lists::ListAdd]) {
        if generation == self.generation {
            self.ws.lists.apply(adds);
        }
    }

    #[cold]
    fn write_logs(&mut self, now: Instant) {
        let second = now.nanos() / 1_000_000_000;
        if self.log_window.0 != second {
            self.log_window = (second, 0);
        }
        for (id, p) in self.logs.drain(..) {
            if self.log_window.1 >= LOG_PER_SECOND {
                self.logs_suppressed += 1;
                continue;
            }
            self.log_window.1 += 1;
            tracing::info!(target: "ctrack::firewall", "{}", self.rs.log_line(id, &p));
        }
    }

    /// Log lines not written: the queue was full or the rate was reached.
    pub fn logs_suppressed(&self) -> u64 {
        self.logs_suppressed
    }

    /// Copies the rule counters into `buf` (allocates only if `buf` is
    /// shorter than the ruleset).
    pub fn counters_into(&self, buf: &mut Vec<RuleCounter>) {
        buf.clear();
        buf.extend_from_slice(self.ws.counters());
    }
}

/// Whether every rule of `rs` is in the NAT table (and there is one).
fn rs_only_nat(rs: &Ruleset) -> bool {
    !rs.is_empty()
        && (0..rs.len()).all(|i| {
            rs.rule(ctrack_rules::RuleId(i as u32))
                .is_some_and(|r| r.table == ctrack_rules::Table::Nat)
        })
}

/// The hooks' combined verdict for one packet.
struct Merged {
    action: Final,
    mark: u32,
    fasttrack: bool,
    /// The connection's layer7 state after the hooks.
    l7: L7State,
    /// A layer7 rule looked at the payload.
    l7_scanned: bool,
}

impl Merged {
    /// Continues `self` with the hooks that gave `rest` (which started
    /// from `self`'s marks).
    fn merge(&mut self, rest: Merged) {
        self.action = rest.action;
        self.mark = rest.mark;
        self.fasttrack |= rest.fasttrack;
        self.l7 = rest.l7;
        self.l7_scanned |= rest.l7_scanned;
    }
}

/// `connection-limit`'s census: the connections from the packet's source
/// block over all shards, the burst's accepted new ones not yet committed,
/// and the packet's own connection when it is new. So the count includes
/// the packet's connection, as Linux's `nf_conncount` (which adds the
/// tuple before comparing) does for `--connlimit-above`.
struct LimitEnv<'a> {
    counts: Option<&'a ConnCount>,
    new: bool,
    pending: &'a [crate::flow::Tuple],
}

/// Whether `a` and `b` are packets of one connection (either direction).
fn same_conn(a: &crate::flow::Tuple, b: &crate::flow::Tuple) -> bool {
    a.family == b.family
        && a.proto == b.proto
        && ((a.src, a.dst, a.src_port, a.dst_port) == (b.src, b.dst, b.src_port, b.dst_port)
            || (a.src, a.dst, a.src_port, a.dst_port) == (b.dst, b.src, b.dst_port, b.src_port))
}

impl Env for LimitEnv<'_> {
    fn connection_count(&self, family: Family, src: &Addr, netmask: u8) -> u32 {
        let Some(c) = self.counts else {
            return 0;
        };
        let b = block(family, src, netmask);
        let pending = self
            .pending
            .iter()
            .filter(|t| t.family == family && block(family, &t.src, netmask) == b)
            .count() as u32;
        c.count(family, src, netmask) + pending + u32::from(self.new)
    }
}

/// Whether a connection (its counts before this packet) is still in the
/// first packets layer7 looks at.
#[inline]
fn in_l7_reach(c: &ConnCtx) -> bool {
    c.packets < L7_PACKETS && c.bytes < L7_BYTES
}

/// `p` without its payload, to keep for a log line.
fn detached(p: &PacketCtx<'_>) -> PacketCtx<'static> {
    PacketCtx {
        family: p.family,
        src: p.src,
        dst: p.dst,
        proto: p.proto,
        src_port: p.src_port,
        dst_port: p.dst_port,
        tcp_flags: p.tcp_flags,
        icmp_type: p.icmp_type,
        icmp_code: p.icmp_code,
        ttl: p.ttl,
        dscp: p.dscp,
        size: p.size,
        in_iface: p.in_iface,
        out_iface: p.out_iface,
        packet_mark: p.packet_mark,
        conn: p.conn,
        payload: &[],
    }
}

fn nat_bits(srcnat: bool, dstnat: bool) -> u8 {
    (if srcnat {
        ctrack_rules::engine::NAT_SRCNAT
    } else {
        0
    }) | (if dstnat {
        ctrack_rules::engine::NAT_DSTNAT
    } else {
        0
    })
}

/// The `reason::*` code of a final action that drops, else 0.
#[inline]
fn drop_reason(a: Final) -> u16 {
    match a {
        Final::Accept | Final::Nat(_) => 0,
        Final::Drop => reason::DROP,
        Final::Reject(kind) => REJECT_KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(reason::REJECT, |i| reason::REJECT_WITH + i as u16),
        Final::Tarpit => reason::TARPIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{Settings, TableConfig};
    use crate::io::mem::MemIo;
    use crate::worker::{Command, Mesh, Worker, random_seed};
    use ctrack_rules::{Names, Table, parse};
    use ctrack_traffic::synth::{Mix, Side};

    fn mix() -> Mix {
        Mix {
            tcp: 12,
            udp: 6,
            icmp: 3,
            exchanges: 3,
            payload: 64,
            keep_open: true,
            ..Mix::default()
        }
    }

    /// One worker, ports 0 (`ether1`, originators) and 1 (`ether2`,
    /// responders), with `script` loaded before any packet; runs `mix()`.
    fn run(script: &str) -> (Worker<MemIo>, Arc<Ruleset>, Names) {
        run_mix(script, &mix())
    }

    /// [`run`] with another mix.
    fn run_mix(script: &str, m: &Mix) -> (Worker<MemIo>, Arc<Ruleset>, Names) {
        let cfg = parse(script).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let mut names = Names::default();
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut names).unwrap());
        let io = MemIo::pair();
        let (tx, rx) = crossbeam::channel::bounded(4);
        let shard = Shard::new(
            TableConfig::new(4096),
            Settings::default(),
            0,
            random_seed(),
        );
        let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 0]), rx, Arc::default());
        tx.send(Command::Firewall(Box::new(FirewallUpdate {
            ruleset: Some(Arc::clone(&rs)),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: None,
        })))
        .unwrap();
        w.poll_once();
        assert!(w.firewall().is_some());
        // Packets in capture order, each on its side's port: the runs of
        // one side go in together (bursts), a side's turn ends them.
        let packets = m.packets();
        for run in packets.chunk_by(|a, b| a.side == b.side) {
            let link = usize::from(run[0].side == Side::Reply);
            for p in run {
                w.io_mut().links[link].input.push_back(p.frame.clone());
            }
            while w.poll_once() > 0 {}
        }
        (w, rs, names)
    }

    fn counter(w: &Worker<MemIo>, rs: &Ruleset, table: Table, pos: usize) -> RuleCounter {
        let id = rs.rule_id(ctrack_rules::Fam::V4, table, pos).unwrap();
        w.firewall().unwrap().state().counters()[id.0 as usize]
    }

    fn count_frames(f: impl Fn(&Side, u8) -> bool) -> (u64, u64) {
        let mut n = (0, 0);
        for p in mix().packets() {
            if f(&p.side, p.frame[14 + 9]) {
                n.0 += 1;
                n.1 += u64::from(u16::from_be_bytes([p.frame[16], p.frame[17]]));
            }
        }
        n
    }

    #[test]
    fn drop_of_a_new_connection_inserts_nothing() {
        let (w, rs, _) = run("/ip firewall filter\nadd chain=forward action=drop protocol=udp\n");
        let m = mix();
        // Every UDP packet of either side is dropped (a responder's
        // datagram, finding no connection, is new too); nothing else is.
        assert_eq!(w.shard().total_entries(), m.tcp + m.icmp);
        let (udp, udp_bytes) = count_frames(|_, p| p == crate::flow::proto::UDP);
        let c = counter(&w, &rs, Table::Filter, 0);
        assert_eq!((c.packets, c.bytes), (udp, udp_bytes));
        let t = w.totals();
        assert_eq!(t.fw_dropped, udp);
        assert_eq!(t.tx_packets, t.rx_packets - udp);
        w.shard().check_invariants().unwrap();
    }

    #[test]
    fn reject_answers_out_of_the_ingress_port() {
        let (w, _, _) = run("/ip firewall filter\n\
             add chain=forward action=reject reject-with=tcp-reset protocol=tcp\n\
             add chain=forward action=reject reject-with=icmp-admin-prohibited protocol=udp\n");
        let (tcp, _) = count_frames(|_, p| p == crate::flow::proto::TCP);
        let (udp, _) = count_frames(|_, p| p == crate::flow::proto::UDP);
        let t = w.totals();
        assert_eq!(t.fw_rejected, tcp + udp);
        // Each answer leaves by the port its packet came in on, addressed
        // to that packet's sender; nothing rejected crosses.
        let mut answers = 0;
        for (port, side) in [(0usize, Side::Orig), (1, Side::Reply)] {
            let out = &w.io().tx[port].as_ref().unwrap().output;
            let senders: std::collections::HashSet<[u8; 4]> = mix()
                .packets()
                .iter()
                .filter(|p| p.side == side)
                .map(|p| p.frame[26..30].try_into().unwrap())
                .collect();
            for f in out {
                let r = crate::packet::parse_ethernet(f).unwrap();
                // Forwarded ICMP (echo) crosses as before; UDP and TCP never
                // do: what leaves is the answers, resets and ICMP errors
                // (admin prohibited: type 3, code 13).
                let answer = match r.l4 {
                    crate::flow::L4::Tcp(info) => {
                        assert_ne!(info.flags & crate::flow::tcp_flags::RST, 0, "{r:?}");
                        true
                    }
                    crate::flow::L4::Udp => panic!("a rejected datagram was forwarded: {r:?}"),
                    crate::flow::L4::Icmp(i) => i.icmp_type == 3 && i.code == 13,
                    _ => false,
                };
                if answer {
                    assert!(senders.contains(&r.tuple.dst.v4_octets()), "{r:?}");
                    answers += 1;
                }
            }
        }
        // Resets are not rate-limited; ICMP errors are (Linux's limit):
        // at least every TCP packet that is not itself a reset is answered.
        assert!(answers > 0);
        let rs = w.responder_totals();
        assert_eq!(rs.sent, answers);
    }

    #[test]
    fn mark_connection_is_stored_in_the_connection() {
        let (w, _, names) = run("/ip firewall mangle\n\
             add chain=prerouting action=mark-connection new-connection-mark=web \
             protocol=tcp connection-state=new passthrough=yes\n\
             add chain=forward action=mark-connection new-connection-mark=dns \
             protocol=udp connection-mark=no-mark\n");
        let (web, dns) = (names.id("web").unwrap(), names.id("dns").unwrap());
        let mut seen = [0u32; 3];
        w.shard()
            .for_each_snapshot(Instant::ZERO, |c| match c.entry().protocol() {
                crate::flow::proto::TCP => {
                    assert_eq!(c.mark(), web);
                    seen[0] += 1;
                }
                crate::flow::proto::UDP => {
                    assert_eq!(c.mark(), dns);
                    seen[1] += 1;
                }
                _ => {
                    assert_eq!(c.mark(), 0);
                    seen[2] += 1;
                }
            });
        let m = mix();
        assert_eq!(seen, [m.tcp, m.udp, m.icmp]);
        assert_eq!(w.totals().tx_packets, w.totals().rx_packets);
    }

    #[test]
    fn fasttracked_connections_skip_the_rules() {
        let (w, rs, _) = run("/ip firewall filter\n\
             add chain=forward action=fasttrack-connection connection-state=established,related\n\
             add chain=forward action=accept connection-state=established,related\n\
             add chain=forward action=passthrough\n");
        let m = mix();
        let conns = u64::from(m.tcp + m.udp + m.icmp);
        let (all, _) = count_frames(|_, _| true);
        let (ft, est, rest) = (
            counter(&w, &rs, Table::Filter, 0).packets,
            counter(&w, &rs, Table::Filter, 1).packets,
            counter(&w, &rs, Table::Filter, 2).packets,
        );
        assert_eq!(ft, est);
        // Only first packets (new) reach the last rule.
        assert_eq!(rest, conns);
        // Every packet passed the rules or took the short path, not both.
        let st = w.shard().stats();
        let short = st.fasttrack_packets[0] + st.fasttrack_packets[1];
        assert_eq!(ft + rest + short, all);
        // TCP and UDP connections were marked once eligible; ICMP is
        // never fast-tracked (RouterOS: TCP and UDP only).
        let (icmp_frames, _) = count_frames(|_, p| p == crate::flow::proto::ICMP);
        assert!(short > 0 && short < all - icmp_frames);
        let mut marked = 0;
        w.shard().for_each_snapshot(Instant::ZERO, |c| {
            let icmp = c.entry().protocol() == crate::flow::proto::ICMP;
            assert_eq!(c.entry().fasttrack(), !icmp, "{c:?}");
            marked += u32::from(c.entry().fasttrack());
        });
        assert_eq!(marked, m.tcp + m.udp);
        assert_eq!(w.totals().tx_packets, all);
    }

    /// Log lines are written between bursts, at most LOG_PER_SECOND per
    /// second of the clock (the in-memory clock stays at 0 here).
    #[test]
    fn log_lines_are_rate_limited() {
        let (w, rs, _) = run("/ip firewall filter\n\
             add chain=forward action=log log-prefix=seen\n");
        let (all, _) = count_frames(|_, _| true);
        assert!(all > u64::from(LOG_PER_SECOND));
        assert_eq!(counter(&w, &rs, Table::Filter, 0).packets, all);
        assert_eq!(
            w.firewall().unwrap().logs_suppressed(),
            all - u64::from(LOG_PER_SECOND)
        );
    }

    #[test]
    fn rule_counters_equal_the_traffic() {
        let (w, rs, _) = run("/ip firewall filter\n\
             add chain=forward action=passthrough\n\
             add chain=forward action=accept in-interface=ether1\n\
             add chain=forward action=accept out-interface=ether1\n\
             /ip firewall mangle\n\
             add chain=prerouting action=passthrough in-interface=ether2\n\
             add chain=postrouting action=passthrough out-interface=ether2\n");
        let all = count_frames(|_, _| true);
        let orig = count_frames(|s, _| *s == Side::Orig);
        let reply = count_frames(|s, _| *s == Side::Reply);
        let pair = |c: RuleCounter| (c.packets, c.bytes);
        assert_eq!(pair(counter(&w, &rs, Table::Filter, 0)), all);
        assert_eq!(pair(counter(&w, &rs, Table::Filter, 1)), orig);
        assert_eq!(pair(counter(&w, &rs, Table::Filter, 2)), reply);
        assert_eq!(pair(counter(&w, &rs, Table::Mangle, 0)), reply);
        assert_eq!(pair(counter(&w, &rs, Table::Mangle, 1)), orig);
    }

    /// Only TCP connections of 15 packets: handshake, then 12 of 64 bytes
    /// of payload each (`a..z` repeated, from `a` in every segment).
    fn long_tcp() -> Mix {
        Mix {
            tcp: 8,
            udp: 0,
            icmp: 0,
            exchanges: 6,
            payload: 64,
            keep_open: true,
            ..Mix::default()
        }
    }

    #[test]
    fn layer7_finds_a_pattern_across_packets_and_remembers_it() {
        // `klab` is in no single segment (each ends in `...jkl` and starts
        // with `abc...`): only the window of the first packets has it.
        let (w, rs, _) = run_mix(
            "/ip firewall layer7-protocol\nadd name=span regexp=klab\n\
             /ip firewall filter\n\
             add chain=forward action=drop protocol=tcp layer7-protocol=span\n",
            &long_tcp(),
        );
        let m = long_tcp();
        let mut conns = 0;
        w.shard().for_each_snapshot(Instant::ZERO, |c| {
            let v = w.shard().conn_view(c.id(), Instant::ZERO).unwrap();
            assert_eq!(v.l7, 1, "{c:?}");
            conns += 1;
        });
        assert_eq!(conns, m.tcp);
        // Found on the second data packet (the 5th); every later one is
        // dropped, also past the 10th, where nothing is scanned any more:
        // the result stays in the connection.
        let dropped = u64::from(m.tcp) * (15 - 4);
        assert_eq!(w.totals().fw_dropped, dropped);
        assert_eq!(counter(&w, &rs, Table::Filter, 0).packets, dropped);
        let fw = w.firewall().unwrap();
        assert_eq!((fw.l7_windows(), fw.l7_full()), (0, 0));
    }

    #[test]
    fn layer7_keeps_no_window_for_connections_no_layer7_rule_reaches() {
        let (w, rs, _) = run_mix(
            "/ip firewall layer7-protocol\nadd name=span regexp=klab\n\
             /ip firewall filter\n\
             add chain=forward action=drop protocol=tcp dst-port=9999 layer7-protocol=span\n\
             add chain=forward action=drop protocol=tcp src-port=9999 layer7-protocol=span\n",
            &long_tcp(),
        );
        assert_eq!(w.totals().fw_dropped, 0);
        assert_eq!(counter(&w, &rs, Table::Filter, 0).packets, 0);
        w.shard().for_each_snapshot(Instant::ZERO, |c| {
            assert_eq!(w.shard().conn_view(c.id(), Instant::ZERO).unwrap().l7, 0);
        });
        assert_eq!(w.firewall().unwrap().l7_windows(), 0);
    }

    #[test]
    fn layer7_without_room_matches_packet_by_packet() {
        // 16 connections of 9 packets (none leaves its first 10, so each
        // keeps its window), 8 windows: the second 8 find none, counted, and
        // are matched packet by packet, so the pattern spanning packets is
        // missed for them; one found in a single packet matches for all.
        let cfg = parse(
            "/ip firewall layer7-protocol\nadd name=span regexp=klab\n\
             add name=one regexp=^abcdefghijkl\n\
             /ip firewall mangle\n\
             add chain=forward action=passthrough protocol=tcp layer7-protocol=span\n\
             add chain=forward action=passthrough protocol=tcp layer7-protocol=one\n",
        )
        .unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap());
        let mut fw = WorkerFirewall::new(rs, 1, Instant::ZERO, None);
        fw.l7w = Some(Box::new(L7Windows::new(8)));
        let mut shard = Shard::new(
            TableConfig::new(4096),
            Settings::default(),
            0,
            random_seed(),
        );
        let m = Mix {
            tcp: 16,
            exchanges: 3,
            ..long_tcp()
        };
        for p in &m.packets() {
            let repr = [crate::packet::parse_ethernet(&p.frame).unwrap()];
            let frames: [&[u8]; 1] = [&p.frame];
            let mut v = [Verdict::New];
            shard.lookup_burst(Instant::ZERO, &repr, &mut v);
            let mut d = [Decision::ACCEPT];
            let port = if p.side == Side::Orig { (0, 1) } else { (1, 0) };
            fw.decide(
                &mut shard,
                Instant::ZERO,
                &repr,
                &frames,
                &[port],
                &mut v,
                &mut d,
            );
            shard.commit_burst(Instant::ZERO, &repr, &d, &mut v);
            fw.after_commit(&mut shard, &repr, &frames, &v);
        }
        let (mut span, mut one) = (0, 0);
        shard.for_each_snapshot(Instant::ZERO, |c| {
            let l7 = shard.conn_view(c.id(), Instant::ZERO).unwrap().l7;
            span += u32::from(l7 & 1 != 0);
            one += u32::from(l7 & 2 != 0);
        });
        assert_eq!((span, one), (8, m.tcp));
        // Each of their 6 packets with payload asked for a window again.
        assert_eq!((fw.l7_windows(), fw.l7_full()), (8, 8 * 6));
    }

    #[test]
    fn ttl_and_dscp_come_from_the_packet() {
        // The generator sends TTL 64 and DSCP 0.
        let (w, rs, _) = run("/ip firewall mangle\n\
             add chain=forward action=passthrough ttl=equal:64\n\
             add chain=forward action=passthrough ttl=less-than:64\n\
             add chain=forward action=passthrough dscp=0\n\
             add chain=forward action=passthrough dscp=46\n");
        let (all, _) = count_frames(|_, _| true);
        let at = |i| counter(&w, &rs, Table::Mangle, i).packets;
        assert_eq!((at(0), at(1), at(2), at(3)), (all, 0, all, 0));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::conntrack::{Settings, TableConfig};
    use crate::io::mem::{MemIo, MemLink};
    use crate::worker::{Mesh, Worker, random_seed};
    use ctrack_rules::{Names, parse};
    use ctrack_traffic::synth::{Mix, Side};

    /// Two workers as `ctrack run` plans single-queue ports: worker 0
    /// polls port 0 (`ether1`, clients in 10.1.0.0/16), worker 1 port 1;
    /// connections are spread over both shards by the symmetric hash. Only
    /// the clients' packets are sent (so every connection is a client's).
    fn two_workers(script: &str, m: &Mix) -> Vec<Worker<MemIo>> {
        let cfg = parse(script).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap());
        let masks: Vec<(Family, u8)> = rs
            .uses()
            .conn_limit
            .iter()
            .map(|&(_, mask)| (Family::V4, mask))
            .collect();
        let counts = Arc::new(ConnCount::new(&masks, 1024));
        let packets = m.packets();
        let mesh = Mesh::new(2, vec![1, 0]);
        let mut workers: Vec<Worker<MemIo>> = (0..2u16)
            .map(|id| {
                let input: std::collections::VecDeque<Vec<u8>> = packets
                    .iter()
                    .filter(|p| id == 0 && p.side == Side::Orig)
                    .map(|p| p.frame.clone())
                    .collect();
                let links = vec![MemLink {
                    port: id,
                    input,
                    ..MemLink::default()
                }];
                let io = MemIo::new(links, 2, &[id ^ 1], 32);
                let (_tx, rx) = crossbeam::channel::bounded(1);
                let shard = Shard::new(
                    TableConfig::new(4096),
                    Settings::default(),
                    id,
                    random_seed(),
                );
                let mut w = Worker::new(id, io, shard, Arc::clone(&mesh), rx, Arc::default());
                w.install_firewall(FirewallUpdate {
                    ruleset: Some(Arc::clone(&rs)),
                    generation: 1,
                    auto_tracking: true,
                    reply: None,
                    lists_out: None,
                    conncount: Some(Arc::clone(&counts)),
                    addresses: None,
                });
                w
            })
            .collect();
        let mut idle = 0;
        while idle < 3 {
            let work: usize = workers.iter_mut().map(Worker::poll_once).sum();
            idle = if work == 0 { idle + 1 } else { 0 };
        }
        workers
    }

    /// Connections whose original source is a client (10.1.0.0/16), per
    /// worker.
    fn client_conns(w: &Worker<MemIo>) -> u32 {
        let mut n = 0;
        w.shard().for_each_snapshot(Instant::ZERO, |c| {
            n += u32::from(c.entry().key().src.v4_octets()[..2] == [10, 1]);
        });
        n
    }

    #[test]
    fn connection_limit_counts_a_source_block_over_both_workers() {
        let m = Mix {
            tcp: 0,
            udp: 20,
            icmp: 0,
            exchanges: 3,
            payload: 16,
            ..Mix::default()
        };
        let workers = two_workers(
            "/ip firewall filter\n\
             add chain=forward action=drop protocol=udp connection-state=new \
             src-address=10.1.0.0/16 connection-limit=5,16\n",
            &m,
        );
        let per: Vec<u32> = workers.iter().map(client_conns).collect();
        // RouterOS/Linux: matches once the block has more than 5 (the new
        // connection included): the 6th and later are dropped, wherever
        // their shard is. Each of their 3 datagrams is new and dropped; the
        // 5 kept ones' later datagrams (still `new`: no reply) count 5.
        assert_eq!(per.iter().sum::<u32>(), 5, "{per:?}");
        let dropped: u64 = workers.iter().map(|w| w.totals().fw_dropped).sum();
        assert_eq!(dropped, 15 * 3);
        // Worker 1 decided connections handed to it, and dropped some for
        // what worker 0 holds: per-shard counts would have let it keep up
        // to 5 of its own.
        let w1 = workers[1].totals();
        assert!(w1.handoffs_in > 0 && w1.fw_dropped > 0, "{w1:?}");
        // The shared table agrees with the shards.
        let c = workers[0].shard().conncount().unwrap();
        assert!(Arc::ptr_eq(c, workers[1].shard().conncount().unwrap()));
        let client = crate::flow::Addr::from_v4([10, 1, 0, 1]);
        assert_eq!(c.count(Family::V4, &client, 16), 5);
        assert_eq!(c.full(), 0);
    }

    #[test]
    fn connection_limit_counts_down_as_connections_go() {
        let m = Mix {
            tcp: 0,
            udp: 8,
            icmp: 0,
            exchanges: 1,
            payload: 16,
            ..Mix::default()
        };
        let mut workers = two_workers(
            "/ip firewall filter\n\
             add chain=forward action=drop protocol=udp connection-state=new \
             src-address=10.1.0.0/16 connection-limit=100,16\n",
            &m,
        );
        let client = crate::flow::Addr::from_v4([10, 1, 0, 1]);
        let c = Arc::clone(workers[0].shard().conncount().unwrap());
        let live: u32 = workers.iter().map(client_conns).sum();
        assert_eq!(live, 8);
        assert_eq!(c.count(Family::V4, &client, 16), 8);
        // Everything expires: the counts go back to 0.
        let late = Instant::from_secs(3600);
        for w in &mut workers {
            w.shard_mut().poll_expired(late, u32::MAX as usize);
            assert_eq!(w.shard().total_entries(), 0);
        }
        assert_eq!(c.count(Family::V4, &client, 16), 0);
    }
}
