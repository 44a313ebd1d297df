//! The rule engine: a compiled, immutable [`Ruleset`] and its evaluation.
//!
//! [`Ruleset::compile`] resolves every name of a [`Config`] (chains,
//! interfaces, interface lists, address lists, marks, layer7 protocols) to
//! an index once, checks the jump graph (no loops, bounded depth) and turns
//! each matcher into a flat comparison. Evaluation then walks integers only:
//! it takes no lock, does not allocate and reads no clock.
//!
//! The worker calls, per burst and per hook (table + built-in chain):
//! [`Ruleset::evaluate_burst`] with one [`PacketCtx`] per packet, its own
//! [`WorkerState`] (rule counters, `limit` buckets, dynamic address lists)
//! and an [`Env`] that answers `connection-limit` counts; it gets one
//! [`Verdict`] per packet and applies the side effects itself (new marks,
//! fasttrack, the layer7 state to store in the connection, log lines).
//!
//! Large chains: each chain of [`PREFILTER_MIN`] rules or more gets a
//! classifier (`classify.rs`, a decision tree over protocol, addresses and
//! ports) that gives, per packet, the sorted list of the chain's rules whose
//! header can match; the walk visits only those, in order, and checks each
//! fully, so the verdict is the linear walk's. Address and port matchers are
//! ranges compared as integers, address lists are sorted range sets.
//! [`Ruleset::rule_header`] gives each rule's header fields (protocol,
//! address and port ranges) in the form an external classifier (DPDK's
//! rte_acl, see `dataplane/src/acl.rs`) wants.

use std::collections::HashMap;

use ctrack_core::conntrack::{Duration, Instant};
use ctrack_core::flow::{Addr, Family, FlowRepr, L4, proto};

use crate::classify::{self, Header, Key, Tree};
use crate::error::CompileError;
use crate::lists::{DynamicLists, ListAdd, ListId, RangeSet};
use crate::model::*;
use crate::value::*;

/// Jumps nest at most this deep (chains on the stack, the built-in one
/// included). RouterOS documents no limit; Linux's is the number of chains.
/// A deeper script is a compile error, so evaluation never overflows.
pub const MAX_JUMP_DEPTH: usize = 16;

/// Chains with at least this many rules get the classifier.
pub const PREFILTER_MIN: usize = 32;

/// Which chains get a classifier ([`Ruleset::compile_with`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prefilter {
    /// None: every chain is walked rule by rule (the reference semantics;
    /// for tests and benchmarks).
    Linear,
    /// Chains of at least `min_rules` rules ([`PREFILTER_MIN`] by default).
    Tree { min_rules: usize },
}

impl Default for Prefilter {
    fn default() -> Self {
        Prefilter::Tree {
            min_rules: PREFILTER_MIN,
        }
    }
}

/// Interface index meaning "no interface" (no in-interface on output, no
/// out-interface before routing).
pub const NO_IFACE: u16 = u16::MAX;

/// Mark id of "no mark" (`no-mark`).
pub const NO_MARK: u32 = 0;

/// Most log entries one [`Verdict`] carries; further ones are counted.
pub const MAX_LOGS: usize = 4;

/// Most layer7 protocols (one bit each in [`L7State`]).
pub const MAX_L7: usize = 64;

/// Layer7 looks at the first this many packets of a connection...
pub const L7_PACKETS: u64 = 10;
/// ...and at most this many bytes (RouterOS: "first 10 packets or 2KB").
pub const L7_BYTES: u64 = 2048;

/// Where the engine is entered: a table and one of its built-in chains.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Hook {
    FilterInput,
    FilterForward,
    FilterOutput,
    ManglePrerouting,
    MangleInput,
    MangleForward,
    MangleOutput,
    ManglePostrouting,
    NatSrcnat,
    NatDstnat,
    NatInput,
    NatOutput,
}

impl Hook {
    /// Every hook.
    pub const ALL: [Hook; 12] = [
        Hook::FilterInput,
        Hook::FilterForward,
        Hook::FilterOutput,
        Hook::ManglePrerouting,
        Hook::MangleInput,
        Hook::MangleForward,
        Hook::MangleOutput,
        Hook::ManglePostrouting,
        Hook::NatSrcnat,
        Hook::NatDstnat,
        Hook::NatInput,
        Hook::NatOutput,
    ];

    pub fn table(self) -> Table {
        use Hook::*;
        match self {
            FilterInput | FilterForward | FilterOutput => Table::Filter,
            ManglePrerouting | MangleInput | MangleForward | MangleOutput | ManglePostrouting => {
                Table::Mangle
            }
            NatSrcnat | NatDstnat | NatInput | NatOutput => Table::Nat,
        }
    }

    /// Index of the built-in chain in [`Table::builtin_chains`].
    fn chain(self) -> usize {
        use Hook::*;
        match self {
            FilterInput | ManglePrerouting | NatSrcnat => 0,
            FilterForward | MangleInput | NatDstnat => 1,
            FilterOutput | MangleForward | NatInput => 2,
            MangleOutput | NatOutput => 3,
            ManglePostrouting => 4,
        }
    }
}

/// Connection state as `connection-state` sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
pub enum ConnState {
    Established = 0,
    Invalid = 1,
    #[default]
    New = 2,
    Related = 3,
    Untracked = 4,
}

/// `connection-nat-state` bits of [`ConnCtx::nat`].
pub const NAT_SRCNAT: u8 = 1;
pub const NAT_DSTNAT: u8 = 2;

/// What a rule may ask about the packet's connection. The caller fills it
/// from its conntrack entry (or leaves the default for untracked packets).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ConnCtx {
    pub state: ConnState,
    /// [`NAT_SRCNAT`] | [`NAT_DSTNAT`].
    pub nat: u8,
    /// Mark id ([`Names`]); [`NO_MARK`] when unmarked.
    pub mark: u32,
    /// Bytes of the connection so far, both directions, before this packet.
    pub bytes: u64,
    /// Packets of the connection so far, both directions, before this packet.
    pub packets: u64,
    /// Current rate of the connection in bits per second.
    pub rate_bps: u64,
    /// Helper type, an index into [`CONN_TYPES`]; `None` without a helper.
    pub conn_type: Option<u8>,
    /// The connection's layer7 state as last returned in [`Verdict::l7`].
    pub l7: L7State,
}

/// Layer7 results remembered per connection: one bit per layer7 protocol
/// that matched in the connection's first packets. The caller stores it
/// in the connection (8 bytes) and passes it back in [`ConnCtx::l7`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct L7State(pub u64);

/// One packet as the rules see it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketCtx<'a> {
    pub family: Family,
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    /// TCP/UDP ports (0 for other protocols).
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (FIN = bit 0 ... CWR = bit 7).
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub dscp: u8,
    /// IP packet length in bytes.
    pub size: u32,
    pub in_iface: u16,
    pub out_iface: u16,
    /// Mark id ([`Names`]); [`NO_MARK`] when unmarked.
    pub packet_mark: u32,
    pub conn: ConnCtx,
    /// For layer7: the connection's L4 payload so far, this packet's
    /// included (the caller's window: the payload of the connection's first
    /// packets, in order; or only this packet's payload when it keeps no
    /// window). Only its first [`L7_BYTES`] are looked at. May be empty when
    /// no rule uses layer7.
    pub payload: &'a [u8],
}

impl PacketCtx<'static> {
    /// The header part of a context from conntrack's [`FlowRepr`]: family,
    /// addresses, protocol, ports (TCP/UDP only), TCP flags, ICMP type and
    /// code, IP length. Interfaces are [`NO_IFACE`]; the caller sets them,
    /// `ttl`, `dscp`, `packet_mark`, `conn` and `payload`.
    pub fn from_flow(f: &FlowRepr) -> PacketCtx<'static> {
        let t = &f.tuple;
        let mut p = PacketCtx {
            family: t.family,
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            size: f.ip_len,
            in_iface: NO_IFACE,
            out_iface: NO_IFACE,
            ..PacketCtx::default()
        };
        match f.l4 {
            L4::Tcp(tcp) => {
                p.src_port = t.src_port;
                p.dst_port = t.dst_port;
                p.tcp_flags = tcp.flags;
            }
            L4::Udp => {
                p.src_port = t.src_port;
                p.dst_port = t.dst_port;
            }
            L4::Icmp(icmp) => {
                p.icmp_type = icmp.icmp_type;
                p.icmp_code = icmp.code;
            }
            L4::Gre(_) | L4::Other => {}
        }
        p
    }
}

/// Answers the engine's questions about the connection table.
pub trait Env {
    /// Connections whose source address is in `src`'s `/netmask` block
    /// (for `connection-limit`).
    fn connection_count(&self, family: Family, src: &Addr, netmask: u8) -> u32;
}

/// An [`Env`] for rulesets without `connection-limit`: every count is 0.
pub struct NoEnv;

impl Env for NoEnv {
    fn connection_count(&self, _: Family, _: &Addr, _: u8) -> u32 {
        0
    }
}

/// What a ruleset's enabled rules look at beyond the header fields of
/// [`PacketCtx::from_flow`] ([`Ruleset::uses`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uses {
    /// `ttl` / `hop-limit`: [`PacketCtx::ttl`].
    pub ttl: bool,
    /// `dscp`: [`PacketCtx::dscp`].
    pub dscp: bool,
    /// `layer7-protocol`: [`PacketCtx::payload`] and [`ConnCtx::l7`].
    pub layer7: bool,
    /// `connection-limit`: the distinct (family, netmask) pairs that
    /// [`Env::connection_count`] is asked about (IPv4 first, then by mask).
    pub conn_limit: Vec<(Fam, u8)>,
}

/// Position of a rule in the ruleset: indexes counters and [`RuleInfo`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub struct RuleId(pub u32);

/// The decision for a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Final {
    /// Accepted by a rule, or no rule decided (RouterOS chains accept by default).
    #[default]
    Accept,
    Drop,
    /// Drop and answer with this ICMP message or TCP reset.
    Reject(RejectWith),
    /// Drop; answer a TCP SYN with a zero-window SYN-ACK (`tarpit`).
    Tarpit,
    /// A NAT rule matched: [`Ruleset::nat`] gives what to do.
    Nat(RuleId),
}

/// The outcome of one packet in one hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Verdict {
    pub action: Final,
    /// The rule that decided (`None`: the built-in chain ended).
    pub rule: Option<RuleId>,
    /// The connection mark to store (`mark-connection`).
    pub conn_mark: Option<u32>,
    /// The packet mark to carry on (`mark-packet`).
    pub packet_mark: Option<u32>,
    /// `fasttrack-connection` matched.
    pub fasttrack: bool,
    /// The layer7 state to store in the connection, when it changed.
    pub l7: Option<L7State>,
    /// A `layer7-protocol` matcher looked at this packet's payload (the
    /// connection was in its first packets and a layer7 rule reached it):
    /// the caller keeps a payload window for such connections only.
    pub l7_scanned: bool,
    /// Rules whose log line is due (`action=log` or `log=yes`), in order.
    pub logs: [RuleId; MAX_LOGS],
    pub n_logs: u8,
    /// Log lines that did not fit in `logs`.
    pub logs_dropped: u8,
}

impl Verdict {
    pub fn logs(&self) -> &[RuleId] {
        &self.logs[..self.n_logs as usize]
    }
}

/// Per-rule counters, like RouterOS's `bytes` and `packets` columns.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RuleCounter {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Credit in units of 1/count of a period-nanosecond.
    credit: u128,
    last: u64,
    primed: bool,
}

/// What a worker owns for a [`Ruleset`]: counters, `limit` buckets and
/// dynamic address lists. Build a new one when the ruleset is swapped
/// (counters restart, as RouterOS's do when rules are replaced).
#[derive(Debug)]
pub struct WorkerState {
    counters: Vec<RuleCounter>,
    buckets: Vec<Bucket>,
    pub lists: DynamicLists,
    /// Packets whose jump went past the stack (cannot happen with a
    /// compiled ruleset; counted for safety, treated as accept).
    pub stack_overflow: u64,
    /// The rules that counted the packet being walked, while
    /// [`WorkerState::journal_start`] is in force (see
    /// [`WorkerState::journal_undo`]).
    journal: Journal,
}

/// The counts of one packet's walk, to take back.
#[derive(Debug, Default)]
struct Journal {
    on: bool,
    len: usize,
    /// (rule, bytes counted).
    entries: [(u32, u32); JOURNAL_MAX],
    /// Counts that did not fit (not taken back).
    lost: u64,
}

/// Rules one packet's walk can count and still be taken back.
pub const JOURNAL_MAX: usize = 32;

impl WorkerState {
    /// State for `rs`, seeding the script's address-list entries that have a
    /// `timeout=` (expiring at `now + timeout`). `list_cap` bounds the
    /// dynamic entries, `outbox_cap` the additions queued for control.
    pub fn new(rs: &Ruleset, now: Instant, list_cap: usize, outbox_cap: usize) -> WorkerState {
        let n = rs.rules.len();
        let mut lists = DynamicLists::new(list_cap, outbox_cap);
        let seeds: Vec<ListAdd> = rs
            .timed_entries
            .iter()
            .map(|&(v6, list, addr, t)| ListAdd {
                v6,
                list,
                addr,
                expires: Some(now.add_nanos(t.as_nanos())),
            })
            .collect();
        lists.apply(&seeds);
        WorkerState {
            counters: vec![RuleCounter::default(); n],
            buckets: vec![Bucket::default(); n],
            lists,
            stack_overflow: 0,
            journal: Journal::default(),
        }
    }

    /// Counters indexed by [`RuleId`].
    pub fn counters(&self) -> &[RuleCounter] {
        &self.counters
    }

    /// From now on notes which rules count a packet (up to
    /// [`JOURNAL_MAX`]), so that [`WorkerState::journal_undo`] can take the
    /// counts back: for a first packet that another worker will walk again
    /// (NAT's hand-over), so that it counts once. Ends with
    /// [`WorkerState::journal_stop`] or `journal_undo`.
    pub fn journal_start(&mut self) {
        self.journal.on = true;
        self.journal.len = 0;
    }

    /// Stops noting; the counts stay.
    pub fn journal_stop(&mut self) {
        self.journal.on = false;
        self.journal.len = 0;
    }

    /// Takes back the counts noted since [`WorkerState::journal_start`]
    /// and stops noting.
    pub fn journal_undo(&mut self) {
        let j = &mut self.journal;
        for &(id, bytes) in &j.entries[..j.len] {
            if let Some(c) = self.counters.get_mut(id as usize) {
                c.packets = c.packets.saturating_sub(1);
                c.bytes = c.bytes.saturating_sub(u64::from(bytes));
            }
        }
        j.on = false;
        j.len = 0;
    }

    /// Counts the journal could not hold (so not taken back).
    pub fn journal_lost(&self) -> u64 {
        self.journal.lost
    }

    #[inline]
    fn note(&mut self, id: u32, bytes: u32) {
        let j = &mut self.journal;
        if j.len < JOURNAL_MAX {
            j.entries[j.len] = (id, bytes);
            j.len += 1;
        } else {
            j.lost += 1;
        }
    }
}

/// Mark names and their ids. Keep one for the life of the process and pass
/// it to every [`Ruleset::compile`]: ids are never reused, so the marks that
/// connections carry stay valid across ruleset swaps.
#[derive(Clone, Debug)]
pub struct Names {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Default for Names {
    fn default() -> Self {
        let mut n = Names {
            names: Vec::new(),
            ids: HashMap::new(),
        };
        n.names.push("no-mark".into());
        n.ids.insert("no-mark".into(), NO_MARK);
        n
    }
}

impl Names {
    /// The id of `name`, assigning a new one if needed.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(|s| s.as_str())
    }
}

/// Where a rule is and what to show for it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleInfo {
    pub family: Fam,
    pub table: Table,
    /// Position in the table as the script lists it (0-based, disabled rules
    /// included, as RouterOS numbers them).
    pub position: usize,
    pub chain: String,
    pub action: Action,
    pub comment: Option<String>,
    pub log_prefix: Option<String>,
}

/// What a NAT rule asks for; the NAT code executes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NatTarget {
    pub action: Action,
    pub to_addresses: Option<AddrSpec>,
    pub to_ports: Option<PortRange>,
    /// `to_addresses` as its first and last address for the rule's family
    /// ([`nat_range`]), resolved once when the ruleset is compiled.
    pub range: Option<(Addr, Addr)>,
}

/// The first and last address of a `to-addresses` value for `family`, in
/// [`Addr`] form: a range as given; a prefix from its network's first to
/// its last address (the address's network bits, host bits all 0 and all
/// 1; IPv4 v4-mapped).
pub fn nat_range(spec: &AddrSpec, family: Family) -> (Addr, Addr) {
    match *spec {
        AddrSpec::Range { lo, hi } => (Addr::from(lo), Addr::from(hi)),
        AddrSpec::Prefix { addr, len } => {
            use ctrack_core::conntrack::nat::netmap_addr;
            let (zero, ones) = match family {
                Family::V4 => (Addr::from_v4([0; 4]), Addr::from_v4([0xff; 4])),
                Family::V6 => (Addr([0; 16]), Addr([0xff; 16])),
            };
            let net = Addr::from(addr);
            (
                netmap_addr(zero, net, len, family),
                netmap_addr(ones, net, len, family),
            )
        }
    }
}

/// A rule's header fields, for a classifier such as rte_acl.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RuleHeader {
    /// `(negated, protocol)`.
    pub proto: Option<(bool, u8)>,
    pub src: Option<(bool, u128, u128)>,
    pub dst: Option<(bool, u128, u128)>,
    pub src_ports: Option<(bool, Vec<(u16, u16)>)>,
    pub dst_ports: Option<(bool, Vec<(u16, u16)>)>,
}

#[derive(Clone, Debug)]
enum CM {
    Proto(bool, u8),
    SrcAddr(bool, u128, u128),
    DstAddr(bool, u128, u128),
    SrcPort(bool, Box<[(u16, u16)]>),
    DstPort(bool, Box<[(u16, u16)]>),
    AnyPort(bool, Box<[(u16, u16)]>),
    InIface(bool, u16),
    OutIface(bool, u16),
    InList(bool, Box<[u64]>),
    OutList(bool, Box<[u64]>),
    SrcList(bool, u16),
    DstList(bool, u16),
    TcpFlags(u8, u8),
    Icmp(bool, u8, u8, u8),
    Size(bool, u32, u32),
    Ttl(Cmp),
    Dscp(bool, u8),
    PMark(bool, u32),
    State(bool, u8),
    NatState(bool, u8),
    CMark(bool, u32),
    CType(bool, u8),
    CBytes(u64, u64),
    CRate(u64, u64),
    Ipsec(bool),
    L7(bool, u8),
    CLimit(u32, u8),
    /// Last: it takes a token only when everything else matched.
    Limit(Limit),
}

impl CM {
    /// Evaluation order: cheap header checks first, then connection fields,
    /// then lookups, then layer7, then `limit` (which consumes a token).
    fn cost(&self) -> u8 {
        match self {
            CM::Proto(..) => 0,
            CM::SrcAddr(..) | CM::DstAddr(..) | CM::InIface(..) | CM::OutIface(..) => 1,
            CM::SrcPort(..)
            | CM::DstPort(..)
            | CM::AnyPort(..)
            | CM::TcpFlags(..)
            | CM::Icmp(..) => 2,
            CM::Size(..) | CM::Ttl(..) | CM::Dscp(..) | CM::PMark(..) => 3,
            CM::State(..) | CM::NatState(..) | CM::CMark(..) | CM::CType(..) => 3,
            CM::CBytes(..) | CM::CRate(..) | CM::Ipsec(..) => 3,
            CM::InList(..) | CM::OutList(..) => 4,
            CM::SrcList(..) | CM::DstList(..) => 5,
            CM::L7(..) => 6,
            CM::CLimit(..) => 7,
            CM::Limit(..) => 8,
        }
    }
}

#[derive(Clone, Debug)]
enum CAction {
    Accept,
    Drop,
    Reject(RejectWith),
    Tarpit,
    Fasttrack,
    MarkConn(u32, bool),
    MarkPacket(u32, bool),
    AddList {
        dst: bool,
        list: u16,
        timeout: Option<Duration>,
    },
    Log,
    Jump(u16),
    Return,
    Passthrough,
    Nat,
}

#[derive(Clone, Debug)]
struct CRule {
    id: RuleId,
    matchers: Box<[CM]>,
    action: CAction,
    log: bool,
}

#[derive(Clone, Debug, Default)]
struct Chain {
    rules: Vec<CRule>,
    /// The classifier: candidate rules by header. `None` for short chains
    /// (every rule is a candidate).
    tree: Option<Tree>,
}

#[derive(Clone, Debug, Default)]
struct TableRules {
    /// Built-in chains first, in [`Table::builtin_chains`] order.
    chains: Vec<Chain>,
}

#[derive(Clone, Debug, Default)]
struct FamRules {
    tables: [TableRules; 3],
    /// Static address-list entries by list id.
    static_lists: Vec<RangeSet>,
    list_names: Vec<String>,
}

/// A compiled configuration: immutable, `Send + Sync`; share it behind an
/// `Arc` and swap the `Arc` to reload.
#[derive(Debug)]
pub struct Ruleset {
    fams: [FamRules; 2],
    rules: Vec<RuleInfo>,
    /// NAT rules' targets by rule id, sorted (a binary search per first
    /// packet: no hashing on the fast path).
    nat: Vec<(u32, NatTarget)>,
    headers: Vec<RuleHeader>,
    l7: Option<regex::bytes::RegexSet>,
    l7_names: Vec<String>,
    iface_names: Vec<String>,
    timed_entries: Vec<(bool, ListId, u128, Duration)>,
}

fn fam_name(f: Fam) -> &'static str {
    match f {
        Fam::V4 => "ip",
        Fam::V6 => "ipv6",
    }
}

fn fam_index(f: Fam) -> usize {
    match f {
        Fam::V4 => 0,
        Fam::V6 => 1,
    }
}

fn table_index(t: Table) -> usize {
    match t {
        Table::Filter => 0,
        Table::Mangle => 1,
        Table::Nat => 2,
    }
}

/// A bitset of interface indexes.
fn iface_bits(n: usize, members: impl Iterator<Item = usize>) -> Box<[u64]> {
    let mut v = vec![0u64; n.div_ceil(64).max(1)];
    for i in members {
        v[i / 64] |= 1 << (i % 64);
    }
    v.into_boxed_slice()
}

fn bit(set: &[u64], i: u16) -> bool {
    let i = i as usize;
    set.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

impl Ruleset {
    /// Compiles `cfg`. `interfaces[i]` is the name of dataplane interface `i`
    /// (see [`Config::interface_names`]); `names` interns mark names (keep
    /// one [`Names`] across reloads). Disabled rules are kept (they count as
    /// positions) but never match.
    pub fn compile(
        cfg: &Config,
        interfaces: &[String],
        names: &mut Names,
    ) -> Result<Ruleset, CompileError> {
        Ruleset::compile_with(cfg, interfaces, names, Prefilter::default())
    }

    /// [`Ruleset::compile`] with a choice of classifier. Verdicts, counters
    /// and side effects are the same for every choice; only speed differs.
    pub fn compile_with(
        cfg: &Config,
        interfaces: &[String],
        names: &mut Names,
        prefilter: Prefilter,
    ) -> Result<Ruleset, CompileError> {
        let mut rs = Ruleset {
            fams: Default::default(),
            rules: Vec::new(),
            nat: Vec::new(),
            headers: Vec::new(),
            l7: None,
            l7_names: cfg.layer7.iter().map(|l| l.name.clone()).collect(),
            iface_names: interfaces.to_vec(),
            timed_entries: Vec::new(),
        };
        if rs.l7_names.len() > MAX_L7 {
            return Err(CompileError::TooMany {
                what: "layer7 protocols",
                max: MAX_L7,
            });
        }
        if !cfg.layer7.is_empty() {
            for l in &cfg.layer7 {
                l7_builder(std::slice::from_ref(&l.regexp))
                    .build()
                    .map_err(|e| CompileError::BadRegexp {
                        name: l.name.clone(),
                        reason: e.to_string(),
                    })?;
            }
            let pats: Vec<&str> = cfg.layer7.iter().map(|l| l.regexp.as_str()).collect();
            rs.l7 = Some(
                l7_builder(&pats)
                    .build()
                    .map_err(|e| CompileError::BadRegexp {
                        name: "(all)".into(),
                        reason: e.to_string(),
                    })?,
            );
        }
        let iface_lists = resolve_iface_lists(cfg, interfaces);
        for fam in [Fam::V4, Fam::V6] {
            let fw = cfg.firewall(fam);
            let mut lists: HashMap<String, u16> = HashMap::new();
            let mut ranges: Vec<Vec<(u128, u128)>> = Vec::new();
            let list_id = |name: &str,
                           lists: &mut HashMap<String, u16>,
                           ranges: &mut Vec<Vec<(u128, u128)>>| {
                if let Some(&id) = lists.get(name) {
                    return Ok(id);
                }
                if ranges.len() >= u16::MAX as usize {
                    return Err(CompileError::TooMany {
                        what: "address lists",
                        max: u16::MAX as usize,
                    });
                }
                let id = ranges.len() as u16;
                lists.insert(name.to_string(), id);
                ranges.push(Vec::new());
                Ok(id)
            };
            for e in &fw.address_list {
                let id = list_id(&e.list, &mut lists, &mut ranges)?;
                if e.disabled {
                    continue;
                }
                match e.timeout {
                    None => ranges[id as usize].push(e.address.bounds()),
                    Some(t) => {
                        // A timed entry is per address; a timed prefix seeds its
                        // first address only (RouterOS adds host entries this way).
                        let (lo, _) = e.address.bounds();
                        rs.timed_entries.push((fam == Fam::V6, ListId(id), lo, t));
                    }
                }
            }
            for table in Table::ALL {
                let rules = fw.table(table);
                let ctx = Ctx {
                    fam,
                    table,
                    interfaces,
                    iface_lists: &iface_lists,
                    l7_names: &rs.l7_names,
                };
                // Chain ids: built-ins first, then user chains by first mention.
                let mut chain_ids: HashMap<&str, u16> = HashMap::new();
                let mut chain_names: Vec<&str> = Vec::new();
                for c in table.builtin_chains() {
                    chain_ids.insert(c, chain_names.len() as u16);
                    chain_names.push(c);
                }
                for r in rules {
                    for c in
                        std::iter::once(r.chain.as_str()).chain(r.params.jump_target.as_deref())
                    {
                        if !chain_ids.contains_key(c) {
                            chain_ids.insert(c, chain_names.len() as u16);
                            chain_names.push(c);
                        }
                    }
                }
                let mut chains: Vec<Chain> = vec![Chain::default(); chain_names.len()];
                for (pos, r) in rules.iter().enumerate() {
                    let id = RuleId(rs.rules.len() as u32);
                    rs.rules.push(RuleInfo {
                        family: fam,
                        table,
                        position: pos,
                        chain: r.chain.clone(),
                        action: r.action,
                        comment: r.comment.clone(),
                        log_prefix: r.log_prefix.clone(),
                    });
                    rs.headers.push(header(r));
                    if r.disabled {
                        continue;
                    }
                    let mut ms = Vec::with_capacity(r.matchers.len());
                    for m in &r.matchers {
                        ms.push(ctx.matcher(m, pos, names, &mut |n| {
                            list_id(n, &mut lists, &mut ranges)
                        })?);
                    }
                    ms.sort_by_key(|m| m.cost());
                    let p = &r.params;
                    let action = match r.action {
                        Action::Accept => CAction::Accept,
                        Action::Drop => CAction::Drop,
                        Action::Reject => CAction::Reject(p.reject_with.unwrap_or(match fam {
                            Fam::V4 => RejectWith::IcmpNetworkUnreachable,
                            Fam::V6 => RejectWith::IcmpNoRoute,
                        })),
                        Action::Tarpit => CAction::Tarpit,
                        Action::FasttrackConnection => CAction::Fasttrack,
                        Action::MarkConnection => CAction::MarkConn(
                            names.intern(p.new_connection_mark.as_deref().unwrap_or("no-mark")),
                            p.passthrough.unwrap_or(true),
                        ),
                        Action::MarkPacket => CAction::MarkPacket(
                            names.intern(p.new_packet_mark.as_deref().unwrap_or("no-mark")),
                            p.passthrough.unwrap_or(true),
                        ),
                        Action::AddSrcToAddressList | Action::AddDstToAddressList => {
                            let list = list_id(
                                p.address_list.as_deref().unwrap_or(""),
                                &mut lists,
                                &mut ranges,
                            )?;
                            let timeout = match p.address_list_timeout {
                                Some(ListTimeout::Time(t)) => Some(t),
                                _ => None,
                            };
                            CAction::AddList {
                                dst: r.action == Action::AddDstToAddressList,
                                list,
                                timeout,
                            }
                        }
                        Action::Log => CAction::Log,
                        Action::Jump => {
                            CAction::Jump(chain_ids[p.jump_target.as_deref().unwrap_or("")])
                        }
                        Action::Return => CAction::Return,
                        Action::Passthrough => CAction::Passthrough,
                        Action::SrcNat
                        | Action::DstNat
                        | Action::Masquerade
                        | Action::Netmap
                        | Action::Redirect
                        | Action::Same => {
                            rs.nat.push((
                                id.0,
                                NatTarget {
                                    action: r.action,
                                    to_addresses: p.to_addresses,
                                    to_ports: p.to_ports,
                                    range: p.to_addresses.as_ref().map(|a| {
                                        nat_range(
                                            a,
                                            match fam {
                                                Fam::V4 => Family::V4,
                                                Fam::V6 => Family::V6,
                                            },
                                        )
                                    }),
                                },
                            ));
                            CAction::Nat
                        }
                    };
                    chains[chain_ids[r.chain.as_str()] as usize]
                        .rules
                        .push(CRule {
                            id,
                            matchers: ms.into_boxed_slice(),
                            action,
                            log: r.log,
                        });
                }
                check_jumps(&chains, &chain_names, fam, table)?;
                if let Prefilter::Tree { min_rules } = prefilter {
                    for c in &mut chains {
                        if c.rules.len() >= min_rules {
                            build_prefilter(c);
                        }
                    }
                }
                rs.fams[fam_index(fam)].tables[table_index(table)] = TableRules { chains };
            }
            let mut names_by_id = vec![String::new(); lists.len()];
            for (n, id) in lists {
                names_by_id[id as usize] = n;
            }
            let fr = &mut rs.fams[fam_index(fam)];
            fr.list_names = names_by_id;
            fr.static_lists = ranges.into_iter().map(RangeSet::from_ranges).collect();
        }
        rs.nat.sort_unstable_by_key(|e| e.0);
        Ok(rs)
    }

    /// Number of rules (the length of a worker's counter array).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the caller must fill in [`PacketCtx`] and [`Env`] for this
    /// ruleset (enabled rules only): the caller may skip the rest.
    pub fn uses(&self) -> Uses {
        let mut u = Uses::default();
        for (fi, fr) in self.fams.iter().enumerate() {
            let fam = if fi == 0 { Fam::V4 } else { Fam::V6 };
            let rules = fr
                .tables
                .iter()
                .flat_map(|t| &t.chains)
                .flat_map(|c| &c.rules);
            for m in rules.flat_map(|r| r.matchers.iter()) {
                match m {
                    CM::Ttl(_) => u.ttl = true,
                    CM::Dscp(..) => u.dscp = true,
                    CM::L7(..) => u.layer7 = true,
                    CM::CLimit(_, mask) if !u.conn_limit.contains(&(fam, *mask)) => {
                        u.conn_limit.push((fam, *mask));
                    }
                    _ => {}
                }
            }
        }
        u.conn_limit.sort_by_key(|&(f, m)| (f == Fam::V6, m));
        u
    }

    /// Whether `hook`'s built-in chain for `family` has no rule: then
    /// [`Ruleset::evaluate`] gives `Verdict::default()` there (accept,
    /// nothing set, nothing counted), and a caller may skip the call.
    pub fn hook_is_empty(&self, family: Fam, hook: Hook) -> bool {
        self.fams[fam_index(family)].tables[table_index(hook.table())]
            .chains
            .get(hook.chain())
            .is_none_or(|c| c.rules.is_empty())
    }

    /// Whether any enabled rule of `table` (any chain) for `family` may
    /// read the packet's destination address or port: a destination
    /// matcher, `connection-limit`, `limit`, a log line, or
    /// `add-dst-to-address-list`. `false`: the table's verdict is the
    /// same for any destination (the NAT's translated view of a packet
    /// needs no walk of its own then).
    pub fn reads_dst(&self, family: Fam, table: Table) -> bool {
        self.fams[fam_index(family)].tables[table_index(table)]
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .any(|r| {
                r.log
                    || matches!(r.action, CAction::Log | CAction::AddList { dst: true, .. })
                    || r.matchers.iter().any(|m| {
                        matches!(
                            m,
                            CM::DstAddr(..)
                                | CM::DstPort(..)
                                | CM::AnyPort(..)
                                | CM::DstList(..)
                                | CM::CLimit(..)
                                | CM::Limit(..)
                        )
                    })
            })
    }

    pub fn rule(&self, id: RuleId) -> Option<&RuleInfo> {
        self.rules.get(id.0 as usize)
    }

    /// The [`RuleId`] of the rule at `position` of a table.
    pub fn rule_id(&self, family: Fam, table: Table, position: usize) -> Option<RuleId> {
        self.rules
            .iter()
            .position(|r| r.family == family && r.table == table && r.position == position)
            .map(|i| RuleId(i as u32))
    }

    /// What NAT rule `id` asks for.
    #[inline]
    pub fn nat(&self, id: RuleId) -> Option<&NatTarget> {
        let i = self.nat.binary_search_by_key(&id.0, |e| e.0).ok()?;
        Some(&self.nat[i].1)
    }

    /// Size of the classifiers: chains that have one, tree nodes, leaf
    /// entries (a rule in several leaves counts in each).
    pub fn classifier_size(&self) -> (usize, usize, usize) {
        let mut out = (0, 0, 0);
        for t in self
            .fams
            .iter()
            .flat_map(|f| &f.tables)
            .flat_map(|t| &t.chains)
        {
            if let Some(tree) = &t.tree {
                let (n, e) = tree.size();
                out = (out.0 + 1, out.1 + n, out.2 + e);
            }
        }
        out
    }

    /// Header fields of rule `id`, for an external classifier.
    pub fn rule_header(&self, id: RuleId) -> Option<&RuleHeader> {
        self.headers.get(id.0 as usize)
    }

    /// The id of address list `name` of a family.
    pub fn list_id(&self, family: Fam, name: &str) -> Option<ListId> {
        self.fams[fam_index(family)]
            .list_names
            .iter()
            .position(|n| n == name)
            .map(|i| ListId(i as u16))
    }

    pub fn list_name(&self, family: Fam, id: ListId) -> Option<&str> {
        self.fams[fam_index(family)]
            .list_names
            .get(id.0 as usize)
            .map(|s| s.as_str())
    }

    /// Evaluates one packet. See [`Ruleset::evaluate_burst`].
    pub fn evaluate<E: Env>(
        &self,
        hook: Hook,
        now: Instant,
        p: &PacketCtx<'_>,
        ws: &mut WorkerState,
        env: &E,
    ) -> Verdict {
        let fam = match p.family {
            Family::V4 => Fam::V4,
            Family::V6 => Fam::V6,
        };
        let fr = &self.fams[fam_index(fam)];
        let chains = &fr.tables[table_index(hook.table())].chains;
        let v6 = fam == Fam::V6;
        let mut e = Eval {
            rs: self,
            fr,
            p,
            v6,
            src: addr_key(&p.src, v6),
            dst: addr_key(&p.dst, v6),
            now,
            env,
            conn_mark: p.conn.mark,
            packet_mark: p.packet_mark,
            l7: p.conn.l7,
            l7_done: false,
            l7_scanned: false,
        };
        let mut out = Verdict::default();
        let key: Key = [
            p.proto as u128,
            e.src,
            e.dst,
            p.src_port as u128,
            p.dst_port as u128,
        ];
        let mut stack = [(0u16, 0usize); MAX_JUMP_DEPTH];
        let mut depth = 0usize;
        let (mut chain, mut pos) = (hook.chain() as u16, 0usize);
        // The candidates of the chain being walked (`None`: all rules),
        // looked up on entering a chain and on returning to one (a chain
        // never jumps to itself: loops are compile errors).
        let mut cand: (u16, Option<&[u32]>) = (u16::MAX, None);
        'walk: while let Some(c) = chains.get(chain as usize) {
            if cand.0 != chain {
                cand = (chain, c.tree.as_ref().map(|t| t.candidates(&key)));
            }
            let next = next_candidate(c, cand.1, pos, &key);
            let Some(i) = next else {
                // End of chain: an implicit return, or the built-in chain's
                // default (accept).
                if depth == 0 {
                    break;
                }
                depth -= 1;
                (chain, pos) = stack[depth];
                continue;
            };
            pos = i + 1;
            let r = &c.rules[i];
            if !r.matchers.iter().all(|m| e.matches(m, ws, r.id)) {
                continue;
            }
            if let Some(cn) = ws.counters.get_mut(r.id.0 as usize) {
                cn.packets += 1;
                cn.bytes += p.size as u64;
                if ws.journal.on {
                    ws.note(r.id.0, p.size);
                }
            }
            if r.log || matches!(r.action, CAction::Log) {
                push_log(&mut out, r.id);
            }
            let decide = |out: &mut Verdict, f: Final| {
                out.action = f;
                out.rule = Some(r.id);
            };
            match r.action {
                CAction::Accept => {
                    decide(&mut out, Final::Accept);
                    break 'walk;
                }
                CAction::Drop => {
                    decide(&mut out, Final::Drop);
                    break 'walk;
                }
                CAction::Reject(k) => {
                    decide(&mut out, Final::Reject(k));
                    break 'walk;
                }
                CAction::Tarpit => {
                    decide(&mut out, Final::Tarpit);
                    break 'walk;
                }
                CAction::Nat => {
                    decide(&mut out, Final::Nat(r.id));
                    break 'walk;
                }
                CAction::Fasttrack => out.fasttrack = true,
                CAction::MarkConn(m, pass) => {
                    e.conn_mark = m;
                    out.conn_mark = Some(m);
                    if !pass {
                        decide(&mut out, Final::Accept);
                        break 'walk;
                    }
                }
                CAction::MarkPacket(m, pass) => {
                    e.packet_mark = m;
                    out.packet_mark = Some(m);
                    if !pass {
                        decide(&mut out, Final::Accept);
                        break 'walk;
                    }
                }
                CAction::AddList { dst, list, timeout } => {
                    let addr = if dst { e.dst } else { e.src };
                    ws.lists.add_local(ListAdd {
                        v6,
                        list: ListId(list),
                        addr,
                        expires: timeout.map(|t| now.add_nanos(t.as_nanos())),
                    });
                }
                CAction::Log | CAction::Passthrough => {}
                CAction::Jump(target) => {
                    if depth + 1 >= MAX_JUMP_DEPTH {
                        ws.stack_overflow += 1;
                        break 'walk;
                    }
                    stack[depth] = (chain, pos);
                    depth += 1;
                    (chain, pos) = (target, 0);
                }
                CAction::Return => {
                    if depth == 0 {
                        break 'walk;
                    }
                    depth -= 1;
                    (chain, pos) = stack[depth];
                }
            }
        }
        if e.l7 != p.conn.l7 {
            out.l7 = Some(e.l7);
        }
        out.l7_scanned = e.l7_scanned;
        out
    }

    /// Evaluates a burst: `out[i]` is the verdict for `pkts[i]` (`out` must
    /// be at least as long as `pkts`; extra packets are left unevaluated).
    /// No allocation, no lock; `now` is the burst's time.
    pub fn evaluate_burst<E: Env>(
        &self,
        hook: Hook,
        now: Instant,
        pkts: &[PacketCtx<'_>],
        ws: &mut WorkerState,
        env: &E,
        out: &mut [Verdict],
    ) {
        for (p, o) in pkts.iter().zip(out.iter_mut()) {
            *o = self.evaluate(hook, now, p, ws, env);
        }
    }

    /// A RouterOS-style log line for rule `id` and packet `p`
    /// (`prefix chain: in:ether1 out:(unknown 0), proto TCP (SYN), a:p->b:q, len N`).
    /// Allocates: call it off the packet path, from the verdict's log ids.
    pub fn log_line(&self, id: RuleId, p: &PacketCtx<'_>) -> String {
        let Some(r) = self.rule(id) else {
            return String::new();
        };
        let iface = |i: u16| match self.iface_names.get(i as usize) {
            Some(n) => n.clone(),
            None => "(unknown 0)".into(),
        };
        let prefix = r
            .log_prefix
            .as_deref()
            .map(|s| format!("{s} "))
            .unwrap_or_default();
        let proto = Protocol(p.proto).to_string().to_uppercase();
        let flags = if p.proto == proto::TCP {
            format!(
                " ({})",
                TcpFlags {
                    mask: p.tcp_flags,
                    want: p.tcp_flags
                }
                .to_string()
                .to_uppercase()
            )
        } else {
            String::new()
        };
        let (s, d) = (p.src.to_ip(p.family), p.dst.to_ip(p.family));
        let ports = matches!(p.proto, proto::TCP | proto::UDP);
        let ep = |a: std::net::IpAddr, port: u16| {
            if ports {
                format!("{a}:{port}")
            } else {
                a.to_string()
            }
        };
        format!(
            "{prefix}{}: in:{} out:{}, proto {proto}{flags}, {}->{}, len {}",
            r.chain,
            iface(p.in_iface),
            iface(p.out_iface),
            ep(s, p.src_port),
            ep(d, p.dst_port),
            p.size
        )
    }
}

fn l7_builder<S: AsRef<str>>(pats: &[S]) -> regex::bytes::RegexSetBuilder {
    let mut b = regex::bytes::RegexSetBuilder::new(pats);
    // l7-filter patterns are case-insensitive and look at raw bytes.
    b.case_insensitive(true).unicode(false).size_limit(1 << 22);
    b
}

fn push_log(out: &mut Verdict, id: RuleId) {
    if (out.n_logs as usize) < MAX_LOGS {
        out.logs[out.n_logs as usize] = id;
        out.n_logs += 1;
    } else {
        out.logs_dropped = out.logs_dropped.saturating_add(1);
    }
}

/// The next rule at or after `pos` among the candidates (`None`: every
/// rule is one) whose header box holds the packet's key.
#[inline]
fn next_candidate(c: &Chain, cand: Option<&[u32]>, pos: usize, key: &Key) -> Option<usize> {
    match (cand, &c.tree) {
        (Some(l), Some(t)) => {
            let k = l.partition_point(|&i| (i as usize) < pos);
            l[k..]
                .iter()
                .find(|&&i| t.admits(i, key))
                .map(|&i| i as usize)
        }
        _ => (pos < c.rules.len()).then_some(pos),
    }
}

/// Ports are only matched for these protocols (see `has_ports`).
const PORT_PROTOS: [(u128, u128); 5] = [(6, 6), (17, 17), (33, 33), (132, 132), (136, 136)];

/// What the classifier may assume of rule `r`: a field is constrained only
/// by a matcher that fails for every packet outside the ranges given
/// (negated matchers and everything else leave the field open).
fn classifier_header(r: &CRule) -> Header {
    let mut h = Header::default();
    let mut implied_proto: Option<Vec<(u128, u128)>> = None;
    let ranges = |ps: &[(u16, u16)]| -> Vec<(u128, u128)> {
        ps.iter().map(|&(a, b)| (a as u128, b as u128)).collect()
    };
    for m in r.matchers.iter() {
        match m {
            CM::Proto(false, v) => {
                h.fields[classify::F_PROTO] = Some(vec![(*v as u128, *v as u128)])
            }
            CM::SrcAddr(false, lo, hi) => h.fields[classify::F_SRC] = Some(vec![(*lo, *hi)]),
            CM::DstAddr(false, lo, hi) => h.fields[classify::F_DST] = Some(vec![(*lo, *hi)]),
            CM::SrcPort(neg, ps) => {
                if !neg {
                    h.fields[classify::F_SPORT] = Some(ranges(ps));
                }
                implied_proto = Some(PORT_PROTOS.to_vec());
            }
            CM::DstPort(neg, ps) => {
                if !neg {
                    h.fields[classify::F_DPORT] = Some(ranges(ps));
                }
                implied_proto = Some(PORT_PROTOS.to_vec());
            }
            CM::AnyPort(..) => implied_proto = Some(PORT_PROTOS.to_vec()),
            CM::TcpFlags(..) => implied_proto = Some(vec![(6, 6)]),
            CM::Icmp(..) => implied_proto = Some(vec![(1, 1), (58, 58)]),
            _ => {}
        }
    }
    // A protocol matcher is at least as narrow as what ports or flags imply.
    if h.fields[classify::F_PROTO].is_none() {
        h.fields[classify::F_PROTO] = implied_proto;
    }
    h
}

fn build_prefilter(c: &mut Chain) {
    let headers: Vec<Header> = c.rules.iter().map(classifier_header).collect();
    c.tree = Some(Tree::build(&headers));
}

/// Checks the jump graph of one table: no loops, and no nesting deeper than
/// [`MAX_JUMP_DEPTH`] chains. Each chain is visited once (its height is
/// memoised), so the check is linear in the number of rules.
fn check_jumps(
    chains: &[Chain],
    names: &[&str],
    fam: Fam,
    table: Table,
) -> Result<(), CompileError> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        New,
        Open,
        /// Chains on the longest jump path starting here, this one included.
        Height(usize),
    }
    struct Walk<'a> {
        chains: &'a [Chain],
        names: &'a [&'a str],
        st: Vec<St>,
        path: Vec<usize>,
        fam: Fam,
        table: Table,
    }
    impl Walk<'_> {
        fn show(&self, from: usize, last: usize) -> String {
            self.path[from..]
                .iter()
                .chain(std::iter::once(&last))
                .map(|&i| self.names[i])
                .collect::<Vec<_>>()
                .join(" -> ")
        }

        /// The longest path below `c`, following the tallest target.
        fn tallest(&self, c: usize) -> String {
            let mut out = vec![self.names[c]];
            let mut cur = c;
            loop {
                let next = self.chains[cur]
                    .rules
                    .iter()
                    .filter_map(|r| match r.action {
                        CAction::Jump(t) => Some(t as usize),
                        _ => None,
                    })
                    .max_by_key(|&t| match self.st[t] {
                        St::Height(h) => h,
                        _ => 0,
                    });
                match next {
                    Some(t) if out.len() <= MAX_JUMP_DEPTH => {
                        out.push(self.names[t]);
                        cur = t;
                    }
                    _ => return out.join(" -> "),
                }
            }
        }

        fn visit(&mut self, c: usize) -> Result<usize, CompileError> {
            match self.st[c] {
                St::Height(h) => return Ok(h),
                St::Open => {
                    let from = self.path.iter().position(|&x| x == c).unwrap_or(0);
                    return Err(CompileError::JumpLoop {
                        family: fam_name(self.fam),
                        table: self.table.name(),
                        path: self.show(from, c),
                    });
                }
                St::New => {}
            }
            self.st[c] = St::Open;
            self.path.push(c);
            let mut h = 1;
            let chains = self.chains;
            for r in &chains[c].rules {
                if let CAction::Jump(t) = r.action {
                    h = h.max(1 + self.visit(t as usize)?);
                }
            }
            self.path.pop();
            self.st[c] = St::Height(h);
            Ok(h)
        }
    }
    let mut w = Walk {
        chains,
        names,
        st: vec![St::New; chains.len()],
        path: Vec::new(),
        fam,
        table,
    };
    for c in 0..chains.len() {
        if w.visit(c)? > MAX_JUMP_DEPTH {
            return Err(CompileError::TooDeep {
                family: fam_name(fam),
                table: table.name(),
                max: MAX_JUMP_DEPTH,
                path: w.tallest(c),
            });
        }
    }
    Ok(())
}

fn header(r: &Rule) -> RuleHeader {
    let mut h = RuleHeader::default();
    for m in &r.matchers {
        match m {
            Matcher::Protocol(n) => h.proto = Some((n.neg, n.v.0)),
            Matcher::SrcAddress(n) => {
                let (lo, hi) = n.v.bounds();
                h.src = Some((n.neg, lo, hi));
            }
            Matcher::DstAddress(n) => {
                let (lo, hi) = n.v.bounds();
                h.dst = Some((n.neg, lo, hi));
            }
            Matcher::SrcPort(n) => h.src_ports = Some((n.neg, n.v.0.clone())),
            Matcher::DstPort(n) => h.dst_ports = Some((n.neg, n.v.0.clone())),
            _ => {}
        }
    }
    h
}

/// Members of each interface list, as bitsets over interface indexes.
fn resolve_iface_lists(cfg: &Config, interfaces: &[String]) -> HashMap<String, Box<[u64]>> {
    let n = interfaces.len();
    let idx = |name: &str| interfaces.iter().position(|i| i == name);
    let mut direct: HashMap<&str, Vec<usize>> = HashMap::new();
    for l in &cfg.interface_lists {
        direct.entry(&l.name).or_default();
    }
    for m in &cfg.interface_list_members {
        if m.disabled {
            continue;
        }
        // Members that the dataplane does not have (a bridge, say) are skipped.
        if let Some(i) = idx(&m.interface) {
            direct.entry(&m.list).or_default().push(i);
        }
    }
    let mut out = HashMap::new();
    out.insert("all".to_string(), iface_bits(n, 0..n));
    out.insert("none".to_string(), iface_bits(n, std::iter::empty()));
    for l in &cfg.interface_lists {
        let mut set: Vec<usize> = direct.get(l.name.as_str()).cloned().unwrap_or_default();
        for inc in &l.include {
            set.extend(direct.get(inc.as_str()).into_iter().flatten());
        }
        for exc in &l.exclude {
            let ex: Vec<usize> = direct.get(exc.as_str()).cloned().unwrap_or_default();
            set.retain(|i| !ex.contains(i));
        }
        out.insert(l.name.clone(), iface_bits(n, set.into_iter()));
    }
    out
}

struct Ctx<'a> {
    fam: Fam,
    table: Table,
    interfaces: &'a [String],
    iface_lists: &'a HashMap<String, Box<[u64]>>,
    l7_names: &'a [String],
}

impl Ctx<'_> {
    fn matcher(
        &self,
        m: &Matcher,
        pos: usize,
        names: &mut Names,
        list_id: &mut dyn FnMut(&str) -> Result<u16, CompileError>,
    ) -> Result<CM, CompileError> {
        let fam = fam_name(self.fam);
        let table = self.table.name();
        let iface = |n: &Neg<String>| -> Result<(bool, u16), CompileError> {
            let i = self
                .interfaces
                .iter()
                .position(|x| *x == n.v)
                .ok_or_else(|| CompileError::UnknownInterface {
                    family: fam,
                    table,
                    position: pos,
                    name: n.v.clone(),
                })?;
            Ok((n.neg, i as u16))
        };
        let ilist = |n: &Neg<String>| -> Result<(bool, Box<[u64]>), CompileError> {
            let s =
                self.iface_lists
                    .get(&n.v)
                    .ok_or_else(|| CompileError::UnknownInterfaceList {
                        family: fam,
                        table,
                        position: pos,
                        name: n.v.clone(),
                    })?;
            Ok((n.neg, s.clone()))
        };
        let ports = |n: &Neg<Ports>| (n.neg, n.v.0.clone().into_boxed_slice());
        Ok(match m {
            Matcher::Protocol(n) => CM::Proto(n.neg, n.v.0),
            Matcher::SrcAddress(n) => {
                let (lo, hi) = n.v.bounds();
                CM::SrcAddr(n.neg, lo, hi)
            }
            Matcher::DstAddress(n) => {
                let (lo, hi) = n.v.bounds();
                CM::DstAddr(n.neg, lo, hi)
            }
            Matcher::SrcPort(n) => {
                let (a, b) = ports(n);
                CM::SrcPort(a, b)
            }
            Matcher::DstPort(n) => {
                let (a, b) = ports(n);
                CM::DstPort(a, b)
            }
            Matcher::Port(n) => {
                let (a, b) = ports(n);
                CM::AnyPort(a, b)
            }
            Matcher::InInterface(n) => {
                let (a, b) = iface(n)?;
                CM::InIface(a, b)
            }
            Matcher::OutInterface(n) => {
                let (a, b) = iface(n)?;
                CM::OutIface(a, b)
            }
            Matcher::InInterfaceList(n) => {
                let (a, b) = ilist(n)?;
                CM::InList(a, b)
            }
            Matcher::OutInterfaceList(n) => {
                let (a, b) = ilist(n)?;
                CM::OutList(a, b)
            }
            Matcher::SrcAddressList(n) => CM::SrcList(n.neg, list_id(&n.v)?),
            Matcher::DstAddressList(n) => CM::DstList(n.neg, list_id(&n.v)?),
            Matcher::TcpFlags(f) => CM::TcpFlags(f.mask, f.want),
            Matcher::IcmpOptions(n) => CM::Icmp(n.neg, n.v.ty, n.v.code_lo, n.v.code_hi),
            Matcher::PacketSize(n) => CM::Size(n.neg, n.v.lo as u32, n.v.hi as u32),
            Matcher::Ttl(c) | Matcher::HopLimit(c) => CM::Ttl(*c),
            Matcher::Dscp(n) => CM::Dscp(n.neg, n.v),
            Matcher::PacketMark(n) => CM::PMark(n.neg, names.intern(&n.v)),
            Matcher::Limit(l) => CM::Limit(*l),
            Matcher::ConnectionState(n) => CM::State(n.neg, n.v as u8),
            Matcher::ConnectionNatState(n) => CM::NatState(n.neg, n.v as u8),
            Matcher::ConnectionMark(n) => CM::CMark(n.neg, names.intern(&n.v)),
            Matcher::ConnectionType(n) => CM::CType(n.neg, n.v as u8),
            Matcher::ConnectionBytes(r) => CM::CBytes(r.lo, r.hi),
            Matcher::ConnectionRate(r) => CM::CRate(r.lo, r.hi),
            Matcher::ConnectionLimit(l) => CM::CLimit(l.count, l.netmask),
            Matcher::Layer7Protocol(n) => {
                let i = self
                    .l7_names
                    .iter()
                    .position(|x| *x == n.v)
                    .ok_or_else(|| CompileError::UnknownLayer7 {
                        family: fam,
                        table,
                        position: pos,
                        name: n.v.clone(),
                    })?;
                CM::L7(n.neg, i as u8)
            }
            // ctrack terminates no IPsec: nothing arrives decapsulated and
            // nothing leaves through a policy, so `...,none` always holds.
            Matcher::IpsecPolicy(p) => CM::Ipsec(!p.ipsec),
        })
    }
}

/// An address in the engine's form: IPv4 in the low 32 bits.
#[inline]
fn addr_key(a: &Addr, v6: bool) -> u128 {
    if v6 {
        u128::from_be_bytes(a.0)
    } else {
        u32::from_be_bytes(a.v4_octets()) as u128
    }
}

struct Eval<'a, 'p, E> {
    rs: &'a Ruleset,
    fr: &'a FamRules,
    p: &'a PacketCtx<'p>,
    v6: bool,
    src: u128,
    dst: u128,
    now: Instant,
    env: &'a E,
    conn_mark: u32,
    packet_mark: u32,
    l7: L7State,
    l7_done: bool,
    /// The patterns ran over the payload (see [`Verdict::l7_scanned`]).
    l7_scanned: bool,
}

fn in_ports(ps: &[(u16, u16)], p: u16) -> bool {
    ps.iter().any(|&(lo, hi)| lo <= p && p <= hi)
}

fn has_ports(proto: u8) -> bool {
    // TCP, UDP, DCCP, SCTP, UDP-Lite.
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

impl<E: Env> Eval<'_, '_, E> {
    #[inline]
    fn matches(&mut self, m: &CM, ws: &mut WorkerState, id: RuleId) -> bool {
        let p = self.p;
        match m {
            CM::Proto(neg, v) => (p.proto == *v) != *neg,
            CM::SrcAddr(neg, lo, hi) => (*lo <= self.src && self.src <= *hi) != *neg,
            CM::DstAddr(neg, lo, hi) => (*lo <= self.dst && self.dst <= *hi) != *neg,
            // Port matchers need a protocol with ports, negated or not.
            CM::SrcPort(neg, ps) => has_ports(p.proto) && in_ports(ps, p.src_port) != *neg,
            CM::DstPort(neg, ps) => has_ports(p.proto) && in_ports(ps, p.dst_port) != *neg,
            CM::AnyPort(neg, ps) => {
                has_ports(p.proto) && (in_ports(ps, p.src_port) || in_ports(ps, p.dst_port)) != *neg
            }
            CM::InIface(neg, i) => p.in_iface != NO_IFACE && (p.in_iface == *i) != *neg,
            CM::OutIface(neg, i) => p.out_iface != NO_IFACE && (p.out_iface == *i) != *neg,
            CM::InList(neg, set) => p.in_iface != NO_IFACE && bit(set, p.in_iface) != *neg,
            CM::OutList(neg, set) => p.out_iface != NO_IFACE && bit(set, p.out_iface) != *neg,
            CM::SrcList(neg, l) => self.in_list(*l, self.src, ws) != *neg,
            CM::DstList(neg, l) => self.in_list(*l, self.dst, ws) != *neg,
            CM::TcpFlags(mask, want) => p.proto == proto::TCP && p.tcp_flags & mask == *want,
            CM::Icmp(neg, ty, lo, hi) => {
                matches!(p.proto, proto::ICMP | proto::ICMPV6)
                    && (p.icmp_type == *ty && *lo <= p.icmp_code && p.icmp_code <= *hi) != *neg
            }
            CM::Size(neg, lo, hi) => (*lo <= p.size && p.size <= *hi) != *neg,
            CM::Ttl(c) => c.test(p.ttl),
            CM::Dscp(neg, d) => (p.dscp == *d) != *neg,
            CM::PMark(neg, id) => (self.packet_mark == *id) != *neg,
            CM::State(neg, mask) => (mask & (1 << p.conn.state as u8) != 0) != *neg,
            CM::NatState(neg, mask) => (p.conn.nat & mask != 0) != *neg,
            CM::CMark(neg, id) => (self.conn_mark == *id) != *neg,
            CM::CType(neg, t) => p.conn.conn_type.is_some_and(|c| c == *t) != *neg,
            // Linux connbytes: `N-0` is N or more.
            CM::CBytes(lo, hi) => *lo <= p.conn.bytes && (*hi == 0 || p.conn.bytes <= *hi),
            CM::CRate(lo, hi) => *lo <= p.conn.rate_bps && (*hi == 0 || p.conn.rate_bps <= *hi),
            CM::Ipsec(m) => *m,
            CM::L7(neg, b) => (self.l7_bits() & (1 << b) != 0) != *neg,
            CM::CLimit(count, netmask) => {
                self.env.connection_count(p.family, &p.src, *netmask) > *count
            }
            // A worker state built for another ruleset has no bucket: no match.
            CM::Limit(l) => ws
                .buckets
                .get_mut(id.0 as usize)
                .is_some_and(|b| take_token(b, l, self.now, p.size)),
        }
    }

    fn in_list(&self, l: u16, a: u128, ws: &WorkerState) -> bool {
        self.fr
            .static_lists
            .get(l as usize)
            .is_some_and(|s| s.contains(a))
            || ws.lists.contains(self.v6, ListId(l), a, self.now)
    }

    /// The connection's layer7 bits, running the patterns over the payload
    /// window (once per packet) while the connection is in its first
    /// [`L7_PACKETS`] packets and [`L7_BYTES`] bytes.
    fn l7_bits(&mut self) -> u64 {
        if !self.l7_done {
            self.l7_done = true;
            let c = &self.p.conn;
            let set = self
                .rs
                .l7
                .as_ref()
                .filter(|_| c.packets < L7_PACKETS && c.bytes < L7_BYTES);
            if let Some(set) = set {
                self.l7_scanned = true;
                let data = &self.p.payload[..self.p.payload.len().min(L7_BYTES as usize)];
                if !data.is_empty() {
                    for i in set.matches(data).iter() {
                        self.l7.0 |= 1 << i;
                    }
                }
            }
        }
        self.l7.0
    }
}

/// Linux xt_limit's token bucket: `count` tokens per `period`, up to
/// `burst` saved; a packet (or, in bit mode, each bit of it) takes one.
fn take_token(b: &mut Bucket, l: &Limit, now: Instant, size: u32) -> bool {
    let period = l.period.as_nanos().max(1) as u128;
    let count = l.count as u128;
    // One token is worth `period` credit units; credit grows by `count` per ns.
    let (cost, cap) = match l.mode {
        LimitMode::Packet => (period, (l.burst.max(1) as u128) * period),
        // In bit mode a burst below one period's worth would never let a
        // packet through; use at least the rate (as nft's byte limit does).
        LimitMode::Bit => (
            size as u128 * 8 * period,
            (l.burst.max(l.count) as u128) * period,
        ),
    };
    if !b.primed {
        b.primed = true;
        b.credit = cap;
        b.last = now.nanos();
    }
    let elapsed = now.nanos().saturating_sub(b.last) as u128;
    b.last = b.last.max(now.nanos());
    b.credit = b
        .credit
        .saturating_add(elapsed.saturating_mul(count))
        .min(cap);
    if b.credit >= cost {
        b.credit -= cost;
        true
    } else {
        false
    }
}
