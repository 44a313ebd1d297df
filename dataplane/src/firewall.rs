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
    ConnCtx, ConnState, Final, Hook, NoEnv, PacketCtx, RuleCounter, Ruleset, Verdict as FwVerdict,
    WorkerState,
};

use crate::conntrack::{Decision, Dir, Instant, Shard, Verdict};
use crate::flow::FlowRepr;
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
    /// NAT, when the ruleset has NAT rules (set by the worker, which knows
    /// its place among the workers: [`crate::nat::WorkerNat`]).
    pub nat: Option<Box<crate::nat::WorkerNat>>,
    /// The ruleset has NAT rules and nothing else: packets of existing
    /// connections (which pass no NAT chain) have no rule to pass.
    only_nat: bool,
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
        let only_nat = rs_only_nat(&rs);
        WorkerFirewall {
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

    /// Decides for `pkts[j]` whose table verdict after the lookup phase is
    /// `verdicts[j]`: writes `decisions[j]` for each [`Verdict::New`], and
    /// applies the verdict to existing connections (marks, FastTrack) in
    /// `shard`, replacing the verdict of a packet to drop by
    /// [`Verdict::Refused`] with its `reason`. `ports[j]` is the packet's
    /// (ingress, egress) port. No allocation, no lock.
    pub fn decide(
        &mut self,
        shard: &mut Shard,
        now: Instant,
        pkts: &[FlowRepr],
        ports: &[(u16, u16)],
        verdicts: &mut [Verdict],
        decisions: &mut [Decision],
    ) {
        self.n_marked = 0;
        if let Some(nat) = self.nat.as_deref_mut() {
            nat.start_burst();
        }
        for j in 0..pkts.len().min(verdicts.len()).min(decisions.len()) {
            if self.only_nat && verdicts[j] != Verdict::New {
                continue;
            }
            let (inp, outp) = ports.get(j).copied().unwrap_or((NO_IFACE, NO_IFACE));
            let mut ctx = PacketCtx::from_flow(&pkts[j]);
            ctx.in_iface = inp;
            ctx.out_iface = outp;
            let existing = match verdicts[j] {
                Verdict::New => None,
                Verdict::Tracked { id, dir, .. } => {
                    let Some(view) = shard.conn_view(id, now) else {
                        // Gone already (an RST that closed it): as established.
                        ctx.conn.state = ConnState::Established;
                        let v = self.run_hooks(now, &mut ctx);
                        self.apply_existing(shard, j, &v, None, verdicts);
                        continue;
                    };
                    if view.fasttrack && !self.marked_now[..self.n_marked].contains(&id) {
                        // The short path took it: no rules.
                        continue;
                    }
                    ctx.conn = ConnCtx {
                        state: if dir == Dir::Reply || view.seen_reply {
                            ConnState::Established
                        } else {
                            ConnState::New
                        },
                        nat: nat_bits(view.srcnat, view.dstnat),
                        mark: view.mark,
                        // Counts before this packet (the lookup counted it).
                        bytes: view.bytes.saturating_sub(u64::from(pkts[j].ip_len)),
                        packets: view.packets.saturating_sub(1),
                        rate_bps: view.rate_bps,
                        ..ConnCtx::default()
                    };
                    if view.srcnat || view.dstnat {
                        // The hooks after prerouting see the destination as
                        // the prerouting NAT left it (as Linux's filter).
                        let v = self.walk_nat_view(shard, now, &pkts[j], verdicts[j], &mut ctx);
                        self.apply_existing(
                            shard,
                            j,
                            &v,
                            Some((id, view.mark, view.fasttrack_eligible)),
                            verdicts,
                        );
                        continue;
                    }
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
            if verdicts[j] == Verdict::New && self.nat.is_some() {
                decisions[j] = self.decide_new_nat(shard, now, &pkts[j], &mut ctx);
                continue;
            }
            let v = self.run_hooks(now, &mut ctx);
            if verdicts[j] == Verdict::New {
                decisions[j] = match drop_reason(v.action) {
                    // A first packet is never established: FastTrack waits
                    // (see `apply_existing`).
                    0 => Decision {
                        mark: ctx.conn.mark,
                        ..Decision::ACCEPT
                    },
                    // A reject's or tarpit's answer is sent by the worker,
                    // which still holds the packet (`answer_of`).
                    r => Decision::drop(r),
                };
            } else {
                self.apply_existing(shard, j, &v, existing, verdicts);
            }
        }
    }

    /// The decision for a packet that opens a connection, through the NAT
    /// chains too ([`NEW_NAT_HOOKS`]): the binding chosen once, its reply
    /// key into the decision (see [`crate::nat`]).
    #[cold]
    fn decide_new_nat(
        &mut self,
        shard: &Shard,
        now: Instant,
        pkt: &FlowRepr,
        ctx: &mut PacketCtx<'static>,
    ) -> Decision {
        let mut pending = crate::nat::Pending::default();
        let v = self.walk(now, ctx, &NEW_NAT_HOOKS, Some(&mut pending));
        let r = drop_reason(v.action);
        if r != 0 {
            return Decision::drop(r);
        }
        let Some(nat) = self.nat.as_deref_mut() else {
            return Decision::ACCEPT;
        };
        let orig = crate::conntrack::key::Key::of_packet(&pkt.tuple, &pkt.l4);
        match nat.finish(shard, &orig, &pending) {
            Ok(reply) => Decision {
                mark: ctx.conn.mark,
                reply,
                ..Decision::ACCEPT
            },
            Err(_) => Decision::drop(reason::NAT),
        }
    }

    /// [`FORWARD_HOOKS`] for a packet of a NAT connection: from mangle
    /// forward on, `ctx` has the destination the packet leaves with.
    #[cold]
    fn walk_nat_view(
        &mut self,
        shard: &Shard,
        now: Instant,
        pkt: &FlowRepr,
        v: Verdict,
        ctx: &mut PacketCtx<'static>,
    ) -> Merged {
        let dst = match crate::nat::plan(shard, pkt, v) {
            crate::nat::Rewrite::To(t) => Some((t.dst, t.dst_port)),
            _ => None,
        };
        let ifaces = (ctx.in_iface, ctx.out_iface);
        let mut m = self.walk(now, ctx, &FORWARD_HOOKS[..1], None);
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
        let rest = self.walk(now, ctx, &FORWARD_HOOKS[1..], None);
        m.action = rest.action;
        m.mark = rest.mark;
        m.fasttrack |= rest.fasttrack;
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

    /// Runs the forward hooks on `ctx`, carrying the packet and connection
    /// marks from hook to hook; stops at the first hook that drops.
    #[inline]
    fn run_hooks(&mut self, now: Instant, ctx: &mut PacketCtx<'static>) -> Merged {
        self.walk(now, ctx, &FORWARD_HOOKS, None)
    }

    /// Runs `hooks` as [`WorkerFirewall::run_hooks`] does; a NAT chain's
    /// NAT action goes into `nat` (see [`crate::nat::WorkerNat::bind`]).
    #[inline]
    fn walk(
        &mut self,
        now: Instant,
        ctx: &mut PacketCtx<'static>,
        hooks: &[Hook],
        mut nat: Option<&mut crate::nat::Pending>,
    ) -> Merged {
        let mut m = Merged {
            action: Final::Accept,
            mark: ctx.conn.mark,
            fasttrack: false,
        };
        let (inp, outp) = (ctx.in_iface, ctx.out_iface);
        let mut outp = outp;
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
            let v: FwVerdict = self.rs.evaluate(hook, now, ctx, &mut self.ws, &NoEnv);
            if v.n_logs > 0 || v.logs_dropped > 0 {
                self.queue_logs(&v, ctx);
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
            }
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
                if hook == Hook::NatDstnat {
                    // The routing seam: the out-interface after dstnat.
                    outp = crate::nat::out_port(inp, outp, &ctx.dst).unwrap_or(outp);
                }
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
    fn queue_logs(&mut self, v: &FwVerdict, ctx: &PacketCtx<'static>) {
        self.logs_suppressed += u64::from(v.logs_dropped);
        for &id in v.logs() {
            if self.logs.len() < LOG_QUEUE {
                self.logs.push((id, *ctx));
            } else {
                self.logs_suppressed += 1;
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
    use crate::io::mem::{MemIo, MemLink};
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
        let cfg = parse(script).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let mut names = Names::default();
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut names).unwrap());
        let links = vec![
            MemLink {
                port: 0,
                ..MemLink::default()
            },
            MemLink {
                port: 1,
                ..MemLink::default()
            },
        ];
        let io = MemIo::new(links, 2, &[0, 1], 32);
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
            addresses: None,
        })))
        .unwrap();
        w.poll_once();
        assert!(w.firewall().is_some());
        // Packets in capture order, each on its side's port: the runs of
        // one side go in together (bursts), a side's turn ends them.
        let packets = mix().packets();
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
}
