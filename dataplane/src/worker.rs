//! The poll-mode worker loop.
//!
//! Each worker owns one conntrack [`Shard`], the RX queues it polls, at most
//! one TX queue per port, and its counters. Per loop it:
//!
//! 1. reads the clock once;
//! 2. receives a burst from each of its RX queues, parses every packet, and
//!    decides who owns its connection ([`Dispatch`]: the symmetric RSS hash,
//!    as a NIC would deliver it). Its own packets are tracked as one burst;
//!    the others are handed to their owner over a bounded ring;
//! 3. tracks the packets other workers handed to it;
//! 4. transmits: on its own TX queue of the egress port (port 0 <-> 1, ...),
//!    or, if it has none there, by handing the packet to the worker that has;
//! 5. expires connections (bounded work), serves at most a few control
//!    [`Command`]s (bounded work), and publishes its counters.
//!
//! With a firewall ruleset loaded ([`Command::Firewall`]), tracking (2, 3)
//! runs the rules between the table's lookup and commit phases (see
//! [`crate::firewall`]).
//!
//! In router mode ([`Worker::install_router`], [`crate::router`]) step 2
//! first classifies each frame (routed out of a port, to the box itself, or
//! the router plane's own: ARP/ND, ICMP errors, drops), step 4 routes what
//! was accepted (TTL, next hop, Ethernet rewrite), and after the handoffs
//! the box's own answers are tracked through the output hooks and held
//! packets whose next hop resolved are sent.
//!
//! So both directions of a connection are tracked by one shard whatever
//! queue they arrive on, and no connection is tracked twice. No lock is
//! taken and nothing is allocated on the packet path (rings and bursts are
//! allocated up front). A packet that cannot be sent, handed over or
//! tracked (full table) is freed and counted; none is leaked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crossbeam::channel::{Receiver, Sender};
use crossbeam::queue::ArrayQueue;

use crate::conntrack::{
    Census, ConnId, Decision, Instant, InvalidReason, OtherInvalid, RawConn, Settings, Shard,
    ShardStats, Verdict,
};
use crate::events::EventRing;
use crate::firewall::{Retired, WorkerFirewall, reason};
use crate::flow::{FlowRepr, proto};
use crate::io::{Burst, PacketIo};
use crate::packet::checksum::{RxChecksum, verify_ethernet};
use crate::packet::parse_ethernet_into;
use crate::policy::{self, FastTrackMode};
use crate::respond::Responder;
use crate::router::{Class, LOCAL_PORT, LocalOut, NeighBus, RouterConfig, RouterPlane};
use crate::rss::Dispatch;
use crate::stats::{WorkerCounters, WorkerTotals};

/// A hash seed for a new [`Shard`] from the process's random state: the
/// sans-io core draws no entropy itself, so the dataplane does, once per
/// shard.
pub fn random_seed() -> crate::conntrack::key::HashSeed {
    crate::conntrack::key::HashSeed::from_u64(random_u64())
}

/// A random number from the process's random state (not per packet).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6374_7261_636b);
    h.finish()
}

/// The ingress port of a packet only handed over for transmission.
pub const NO_PORT: u16 = u16::MAX;

/// TX attempts for one burst before the rest is dropped.
pub const TX_RETRIES: usize = 8;
/// Most packets handled as one burst.
pub const MAX_BURST: usize = 64;
/// Capacity of each ring between two workers.
pub const HANDOFF_RING: usize = 4096;
/// Connections expired per loop at most.
pub const EXPIRE_BUDGET: usize = 256;
/// Control commands served per loop at most.
pub const COMMANDS_PER_LOOP: usize = 4;
/// Snapshots per `List` answer at most (bounds the pause it causes).
pub const LIST_CHUNK_MAX: usize = 256;
/// Arena positions counted per loop for a census.
pub const CENSUS_CHUNK: usize = 8192;
/// NAT owner-table slots a worker sweeps per loop.
pub const OWNER_SWEEP: usize = 256;

/// A packet on its way to another worker: to be tracked there (`repr` is
/// set) or only transmitted (that worker owns the TX queue of `port`).
pub struct Handoff<P> {
    pub pkt: P,
    pub repr: Option<FlowRepr>,
    /// The egress port.
    pub port: u16,
    /// The port it was received on (what `in-interface` rules see).
    pub in_port: u16,
}

/// The rings between workers and who transmits on each port.
pub struct Mesh<P> {
    /// `rings[src * workers + dst]`.
    rings: Vec<ArrayQueue<Handoff<P>>>,
    workers: usize,
    /// For each port, a worker that owns a TX queue on it.
    tx_owner: Vec<u16>,
    /// RETA size of the ports' RSS (what software dispatch mirrors).
    reta_size: usize,
    /// NAT connections held away from their original tuple's worker
    /// (several workers only; see [`crate::nat_owners`]).
    owners: Option<crate::nat_owners::OwnerTable>,
}

impl<P> Mesh<P> {
    /// Rings for `workers` workers; `tx_owner[port]` transmits what other
    /// workers cannot send on `port` themselves.
    pub fn new(workers: usize, tx_owner: Vec<u16>) -> Arc<Mesh<P>> {
        Mesh::with_reta(workers, tx_owner, crate::rss::Reta::DEFAULT_SIZE)
    }

    /// As [`Mesh::new`], dispatching with the NIC's RETA size.
    pub fn with_reta(workers: usize, tx_owner: Vec<u16>, reta_size: usize) -> Arc<Mesh<P>> {
        let workers = workers.max(1);
        let rings = (0..workers * workers)
            .map(|i| {
                let (src, dst) = (i / workers, i % workers);
                ArrayQueue::new(if src == dst { 1 } else { HANDOFF_RING })
            })
            .collect();
        let owners = (workers > 1).then(|| {
            crate::nat_owners::OwnerTable::new(crate::nat_owners::OWNER_SLOTS, random_u64())
        });
        Arc::new(Mesh {
            rings,
            workers,
            tx_owner,
            reta_size,
            owners,
        })
    }

    /// The NAT owner table (several workers only).
    pub fn owners(&self) -> Option<&crate::nat_owners::OwnerTable> {
        self.owners.as_ref()
    }

    fn ring(&self, src: u16, dst: u16) -> &ArrayQueue<Handoff<P>> {
        &self.rings[src as usize * self.workers + dst as usize]
    }
}

/// A request from the control thread, served between bursts.
pub enum Command {
    /// New tracking settings: live connections follow them at once.
    Settings(Box<Settings>),
    /// Which connections to fast-track.
    FastTrack(FastTrackMode),
    /// A new firewall ruleset (or none), installed as a whole between bursts;
    /// the previous one goes back in the update's reply.
    Firewall(Box<crate::firewall::FirewallUpdate>),
    /// A new router configuration (addresses, FIB, static neighbours),
    /// installed between bursts; ignored by a worker not in router mode
    /// (see [`Worker::install_router`]).
    Router(Arc<RouterConfig>),
    /// Address-list additions of other workers, made under ruleset
    /// `generation`.
    ListAdds {
        generation: u64,
        adds: Vec<ctrack_rules::lists::ListAdd>,
    },
    /// The rule counters of the current ruleset, copied into `buf` (give it
    /// the ruleset's length as capacity: the worker then allocates nothing).
    RuleCounters {
        buf: Vec<ctrack_rules::RuleCounter>,
        reply: Sender<Option<crate::firewall::RuleCounters>>,
    },
    /// Up to `max` (at most [`LIST_CHUNK_MAX`], and at most `buf`'s
    /// capacity) connections from `cursor` on, as raw records in `buf`, which
    /// comes back in the answer: the worker copies entries and allocates
    /// nothing; the control thread formats them.
    List {
        cursor: u32,
        max: usize,
        buf: Vec<RawConn>,
        reply: Sender<ListChunk>,
    },
    Get {
        id: ConnId,
        reply: Sender<Option<RawConn>>,
    },
    Remove {
        id: ConnId,
        reply: Sender<bool>,
    },
    /// The expectations whose masters this worker owns, with the time each
    /// has left (ns), in `buf` (give it the capacity
    /// [`crate::conntrack::helping::EXPECT_MAX`]: the worker then allocates
    /// nothing).
    Expectations {
        buf: Vec<(crate::conntrack::expect::Expectation, u64)>,
        reply: Sender<Vec<(crate::conntrack::expect::Expectation, u64)>>,
    },
    /// Which ports get which connection helper (`/ip firewall
    /// service-port`); live connections keep theirs.
    ServicePorts(crate::helper::ServicePorts),
    /// The neighbour table (router mode; empty otherwise), copied into
    /// `buf` as it stands now (give it the capacity
    /// [`crate::router::NEIGH_CAPACITY`]: the worker then allocates
    /// nothing).
    Neighbors {
        buf: Vec<crate::router::neigh::NeighRow>,
        reply: Sender<Vec<crate::router::neigh::NeighRow>>,
    },
    /// Table counters and a census of live connections (counted over a few
    /// loops, [`CENSUS_CHUNK`] positions per loop).
    Report {
        reply: Sender<ShardReport>,
    },
}

pub struct ListChunk {
    pub rows: Vec<RawConn>,
    /// Where to continue, or `None` at the end of the table.
    pub next: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ShardReport {
    pub stats: ShardStats,
    pub total_entries: u32,
    pub max_entries: u32,
    pub census: Census,
    /// Router mode: the router plane's counts (`None` in bridge mode).
    pub router: Option<crate::router::RouterTotals>,
}

/// Where a received packet goes.
#[derive(Clone, Copy)]
enum Disp {
    /// Not parsed: forwarded untracked.
    Untracked,
    /// Tracked here: index into the local burst.
    Local(u8),
    /// Owned by another worker.
    Remote(u16),
    /// Router mode: handled by the router plane, untracked
    /// ([`RouterPlane::handle`]).
    Router,
}

struct CensusJob {
    cursor: u32,
    census: Census,
    reply: Sender<ShardReport>,
}

/// Everything of a worker except its I/O and RX burst, so that packets can
/// be routed while the RX burst is being drained.
struct Core<P, B> {
    id: u16,
    shard: Shard,
    dispatch: Option<Dispatch>,
    mesh: Arc<Mesh<P>>,
    tx: Vec<B>,
    totals: WorkerTotals,
    parsed: [FlowRepr; MAX_BURST],
    disp: [Disp; MAX_BURST],
    local: [FlowRepr; MAX_BURST],
    verdicts: [Verdict; MAX_BURST],
    /// This worker's decisions for the burst's new connections.
    decisions: [Decision; MAX_BURST],
    /// (ingress, egress) port of each packet of `local`.
    ports: [(u16, u16); MAX_BURST],
    /// Firewall rules, if any are loaded (see [`crate::firewall`]).
    fw: Option<Box<WorkerFirewall>>,
    /// Builds and sends the answers of `reject` and `tarpit`.
    responder: Responder,
    /// This loop's time.
    now: Instant,
    staged: Vec<(P, u16)>,
    /// Router mode (see [`crate::router`]); `None`: ports bridged in pairs.
    router: Option<Box<RouterPlane<P>>>,
    /// Router mode: each received packet's egress port (or
    /// [`LOCAL_PORT`]), by its index in the RX burst.
    egress: [u16; MAX_BURST],
    /// Router mode: packets the box sends itself (echo replies), tracked
    /// through the output hooks at the end of the loop.
    local_out: Vec<P>,
    /// Expectations to and from the other workers (see [`crate::helpers`]).
    expect_mesh: Option<Arc<crate::helpers::ExpectMesh>>,
    /// Where this worker's sweep of the NAT owner table goes on.
    owner_sweep: usize,
    /// NAT connections not recorded in the owner table (it was full).
    owner_full: u64,
    /// The payload change the helper asked for the packet in hand (FTP
    /// through NAT; see [`crate::ftp_nat`]), for `after_verdict`.
    mangle: Option<crate::conntrack::helping::FtpMangle>,
    /// The I/O reassembles fragments ([`PacketIo::reassembles`]): received
    /// fragments are offered to it while tracking is on, and reassembled
    /// datagrams are fragmented again on the way out (see [`crate::frag`]).
    reassembly: bool,
    /// Bridge mode's fragmenting of reassembled datagrams (with
    /// `reassembly`; router mode's is the router plane's).
    fragmenter: Option<crate::frag::Fragmenter>,
    /// Its counts (the `refragment*` fields).
    frag: crate::frag::FragTotals,
}

pub struct Worker<I: PacketIo> {
    io: I,
    rx: I::Burst,
    /// Where a burst's packets go while its fragments are reassembled.
    rx_whole: I::Burst,
    core: Core<I::Packet, I::Burst>,
    commands: Receiver<Command>,
    counters: Arc<WorkerCounters>,
    census: Option<CensusJob>,
    /// Where the shard's events go, the shard's buffer size while they are
    /// wanted, and how many were dropped (see [`Worker::set_events`]).
    events: Option<(Arc<EventRing>, usize, u64)>,
}

impl<I: PacketIo> Worker<I> {
    /// Worker `id` of `mesh`'s workers, owning `shard`.
    pub fn new(
        id: u16,
        io: I,
        shard: Shard,
        mesh: Arc<Mesh<I::Packet>>,
        commands: Receiver<Command>,
        counters: Arc<WorkerCounters>,
    ) -> Self {
        let rx = io.new_burst();
        let rx_whole = io.new_burst();
        let reassembly = io.reassembles();
        let tx = (0..io.ports()).map(|_| io.new_burst()).collect();
        let responder = Responder::new(io.ports());
        let dispatch =
            (mesh.workers > 1).then(|| Dispatch::with_reta(mesh.workers as u16, mesh.reta_size));
        Worker {
            io,
            rx,
            rx_whole,
            core: Core {
                id,
                shard,
                dispatch,
                mesh,
                tx,
                totals: WorkerTotals::default(),
                parsed: [FlowRepr::default(); MAX_BURST],
                disp: [Disp::Untracked; MAX_BURST],
                local: [FlowRepr::default(); MAX_BURST],
                verdicts: [Verdict::Untracked(crate::conntrack::UntrackedReason::TrackingDisabled);
                    MAX_BURST],
                decisions: [Decision::ACCEPT; MAX_BURST],
                ports: [(0, 0); MAX_BURST],
                fw: None,
                responder,
                now: Instant::ZERO,
                staged: Vec::with_capacity(MAX_BURST),
                router: None,
                egress: [0; MAX_BURST],
                local_out: Vec::with_capacity(MAX_BURST),
                expect_mesh: None,
                owner_sweep: 0,
                owner_full: 0,
                mangle: None,
                reassembly,
                fragmenter: reassembly.then(|| crate::frag::Fragmenter::new(random_u64() as u32)),
                frag: crate::frag::FragTotals::default(),
            },
            commands,
            counters,
            census: None,
            events: None,
        }
    }

    /// Runs until `stop` is set, then transmits what it holds and publishes
    /// the final counters.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            self.poll_once();
        }
        self.core.flush_all(&mut self.io);
        self.publish();
    }

    /// One loop (see the module doc); returns the packets it handled.
    pub fn poll_once(&mut self) -> usize {
        let now = self.io.now();
        self.core.now = now;
        let mut work = 0;
        for link in 0..self.io.links() {
            let n = self.io.rx(link, &mut self.rx);
            if n == 0 {
                continue;
            }
            work += n;
            self.core.totals.rx_packets += n as u64;
            // Fragments are reassembled before anything parses them, as
            // Linux's nf_defrag does wherever conntrack runs.
            if self.core.reassembly && self.core.shard.is_tracking() {
                self.reassemble_burst(now);
                if self.rx.is_empty() {
                    continue;
                }
            }
            let egress = self.io.egress(link);
            let ingress = self.io.ingress(link);
            let nic_hash = self.io.nic_hash(link);
            self.core
                .classify(&self.rx, nic_hash, now, (ingress, egress));
            let (core, io) = (&mut self.core, &mut self.io);
            self.rx
                .drain_each(|i, pkt| core.route_received(io, i, pkt, (ingress, egress)));
        }
        work += self.core.drain_handoffs(&mut self.io, now);
        if self.core.router.is_some() {
            work += self.core.router_between_bursts(&mut self.io, now);
        }
        self.core.flush_all(&mut self.io);
        if self.core.reassembly {
            self.io.expire_fragments(now);
        }
        self.core.shard.poll_expired(now, EXPIRE_BUDGET);
        self.core.sweep_owners();
        if let Some(fw) = self.core.fw.as_deref_mut() {
            fw.between_bursts(now);
        }
        self.serve_commands(now);
        self.pass_events();
        match &self.core.expect_mesh {
            Some(m) => m.exchange(self.core.id, &mut self.core.shard),
            // Alone: nobody to tell.
            None => self.core.shard.drain_expect_msgs().for_each(drop),
        }
        let t = &mut self.core.totals;
        t.loops += 1;
        if work > 0 {
            t.busy_loops += 1;
        }
        self.publish();
        work
    }

    /// Offers the RX burst's fragments to the I/O's reassembly table: the
    /// burst goes on with whole datagrams in their place (the last
    /// fragment's), held and dropped fragments taken out. Nothing moves
    /// when the burst holds no fragment.
    fn reassemble_burst(&mut self, now: Instant) {
        let n = self.rx.len();
        if !(0..n).any(|i| crate::frag::is_fragment(self.rx.data(i))) {
            return;
        }
        let (io, whole) = (&mut self.io, &mut self.rx_whole);
        self.rx.drain_each(|_, p| {
            let p = if crate::frag::is_fragment(io.packet_data(&p)) {
                match io.reassemble(p, now) {
                    crate::frag::Reassembled::Pass(p) | crate::frag::Reassembled::Done(p) => p,
                    crate::frag::Reassembled::Gone => return,
                }
            } else {
                p
            };
            // As large as the RX burst, which held at least as many:
            // never full here.
            if let Err(p) = whole.push(p) {
                drop(p);
            }
        });
        std::mem::swap(&mut self.rx, &mut self.rx_whole);
    }

    /// Gives the worker a ring for its shard's connection events: while the
    /// ring is [wanted](EventRing::set_wanted), the shard records them (room
    /// for `capacity` between loops) and the worker moves them into the ring
    /// every loop. Before [`Worker::run`].
    pub fn set_events(&mut self, ring: Arc<EventRing>, capacity: usize) {
        self.events = Some((ring, capacity, 0));
        self.pass_events();
    }

    /// Switches the shard's events as the ring's consumer wants them (the
    /// buffer is allocated or freed here, between loops, not per packet) and
    /// moves them into the ring; never waits: what finds the ring full is
    /// counted with what the shard could not keep.
    fn pass_events(&mut self) {
        let Some((ring, capacity, dropped)) = &mut self.events else {
            return;
        };
        let shard = &mut self.core.shard;
        let wanted = ring.wanted();
        if wanted != shard.events_on() {
            shard.set_events(if wanted { *capacity } else { 0 });
            ring.set_recording(wanted);
        }
        let mut lost = 0;
        for ev in shard.drain_events() {
            if !ring.push(ev) {
                lost += 1;
            }
        }
        let total = *dropped + lost;
        *dropped = total;
        if lost > 0 || shard.events_overflow() > 0 {
            ring.publish_dropped(total + shard.events_overflow());
        }
    }

    fn publish(&mut self) {
        if self.core.reassembly {
            let c = &self.core.frag;
            let f = crate::frag::FragTotals {
                refragmented: c.refragmented,
                refragments: c.refragments,
                refragment_failed: c.refragment_failed,
                ..self.io.frag_totals()
            };
            self.core.totals.frag = f.as_array();
        }
        self.core.totals.entries = u64::from(self.core.shard.total_entries());
        self.core.totals.max_entries = u64::from(self.core.shard.max_entries());
        self.core.totals.fw_answers = self.core.responder.totals().as_array();
        if let Some(fw) = self.core.fw.as_deref() {
            self.core.totals.fw_l7_full = fw.l7_full();
        }
        if let Some(n) = self.core.fw.as_deref().and_then(|f| f.nat.as_deref()) {
            let (t, c) = (&mut self.core.totals, &n.counters);
            t.nat_translated = c.translated;
            t.nat_exhausted = c.exhausted;
            t.nat_no_address = c.no_address;
            t.nat_bad_range = c.bad_range;
            t.nat_handed_off = c.handed_off;
        }
        self.core.totals.nat_owner_full = self.core.owner_full;
        self.counters.publish(&self.core.totals);
    }

    fn serve_commands(&mut self, now: Instant) {
        if let Some(job) = &mut self.census {
            let next = self
                .core
                .shard
                .census_chunk(job.cursor, CENSUS_CHUNK, &mut job.census);
            match next {
                Some(c) => job.cursor = c,
                None => {
                    if let Some(job) = self.census.take() {
                        let shard = &self.core.shard;
                        let _ = job.reply.send(ShardReport {
                            stats: shard.stats().clone(),
                            total_entries: shard.total_entries(),
                            max_entries: shard.max_entries(),
                            census: job.census,
                            router: self.core.router.as_deref().map(RouterPlane::totals),
                        });
                    }
                }
            }
        }
        for _ in 0..COMMANDS_PER_LOOP {
            let Ok(cmd) = self.commands.try_recv() else {
                return;
            };
            let shard = &mut self.core.shard;
            // A reply the requester stopped waiting for is not an error.
            match cmd {
                Command::Settings(s) => shard.apply_settings(&s),
                Command::Router(cfg) => {
                    if let Some(r) = self.core.router.as_deref_mut() {
                        r.set_config(cfg, now);
                        self.core.nat_router();
                    }
                }
                Command::FastTrack(m) => m.apply(shard),
                Command::Firewall(u) => {
                    let reply = u.reply.clone();
                    let retired = self.core.install_firewall(*u, now);
                    if let Some(reply) = reply {
                        let _ = reply.send(retired);
                    }
                }
                Command::ListAdds { generation, adds } => {
                    if let Some(fw) = self.core.fw.as_deref_mut() {
                        fw.apply_lists(generation, &adds);
                    }
                }
                Command::RuleCounters { buf, reply } => {
                    let answer = self.core.fw.as_deref().map(|fw| {
                        let mut counters = buf;
                        fw.counters_into(&mut counters);
                        crate::firewall::RuleCounters {
                            generation: fw.generation(),
                            counters,
                        }
                    });
                    let _ = reply.send(answer);
                }
                Command::List {
                    cursor,
                    max,
                    buf,
                    reply,
                } => {
                    let mut rows = buf;
                    rows.clear();
                    let max = max.min(LIST_CHUNK_MAX).min(rows.capacity()).max(1);
                    let next = shard.raw_chunk(now, cursor, max, &mut rows);
                    let _ = reply.send(ListChunk { rows, next });
                }
                Command::Get { id, reply } => {
                    let _ = reply.send(shard.snapshot(id, now));
                }
                Command::Remove { id, reply } => {
                    let _ = reply.send(shard.remove(id));
                }
                Command::ServicePorts(p) => shard.set_service_ports(p),
                Command::Expectations { buf, reply } => {
                    let mut rows = buf;
                    rows.clear();
                    let cap = rows.capacity();
                    shard.for_each_expectation(now, |e, left| {
                        if rows.len() < cap {
                            rows.push((*e, left));
                        }
                    });
                    let _ = reply.send(rows);
                }
                Command::Neighbors { buf, reply } => {
                    let mut rows = buf;
                    rows.clear();
                    if let Some(r) = self.core.router.as_deref() {
                        r.neighbors().rows_into(now, &mut rows);
                    }
                    let _ = reply.send(rows);
                }
                Command::Report { reply } => {
                    if self.census.is_none() {
                        self.census = Some(CensusJob {
                            cursor: 0,
                            census: Census::default(),
                            reply,
                        });
                    }
                }
            }
        }
    }

    /// Connects the worker to the others' expectations (with more than one
    /// worker; see [`crate::helpers`]). Before [`Worker::run`].
    pub fn set_expect_mesh(&mut self, mesh: Arc<crate::helpers::ExpectMesh>) {
        self.core.expect_mesh = Some(mesh);
    }

    pub fn totals(&self) -> WorkerTotals {
        self.core.totals
    }

    pub fn shard(&self) -> &Shard {
        &self.core.shard
    }

    /// Installs a firewall ruleset (or none) now, as [`Command::Firewall`]
    /// does between bursts: for a worker about to start. Returns the
    /// previous one.
    pub fn install_firewall(&mut self, u: crate::firewall::FirewallUpdate) -> Retired {
        let now = self.io.now();
        self.core.install_firewall(u, now)
    }

    /// Puts the worker in router mode with `cfg` (before it starts; later
    /// configurations come by [`Command::Router`]): `bus` is shared by all
    /// workers (their learned neighbours). ICMP errors come from each
    /// port's first address of their family.
    pub fn install_router(&mut self, cfg: Arc<RouterConfig>, bus: Arc<NeighBus>) {
        let now = self.io.now();
        for (port, p) in cfg.ports.iter().enumerate() {
            let v4 = p.first(crate::flow::Family::V4).map(|a| a.v4_octets());
            let v6 = p.first(crate::flow::Family::V6).map(|a| a.0);
            self.core.responder.set_address(port as u16, v4, v6);
        }
        self.core.responder.set_forwarded(true);
        self.core.router = Some(Box::new(RouterPlane::new(self.core.id, cfg, bus, now)));
        self.core.nat_router();
    }

    /// The NAT owner table of the worker's mesh (several workers only).
    pub fn mesh_owners(&self) -> Option<&crate::nat_owners::OwnerTable> {
        self.core.mesh.owners()
    }

    /// The router plane, in router mode.
    pub fn router(&self) -> Option<&RouterPlane<I::Packet>> {
        self.core.router.as_deref()
    }

    /// The out-interface of a packet to `dst` that bridge mode would send
    /// out of `egress` (its pair's other port): in router mode the routed
    /// port ([`RouterPlane::route`]; `None`: no route), else `egress`.
    /// (Tracked packets carry it already: the firewall's `(in, out)` ports
    /// are the routed ones, [`LOCAL_PORT`] for the box itself.)
    pub fn out_port(&self, dst: &crate::flow::Addr, egress: u16) -> Option<u16> {
        match self.core.router.as_deref() {
            Some(r) => r.route(dst).map(|(port, _)| port),
            None => Some(egress),
        }
    }

    /// The firewall, if a ruleset is loaded.
    pub fn firewall(&self) -> Option<&WorkerFirewall> {
        self.core.fw.as_deref()
    }

    /// What the worker's answers to `reject` and `tarpit` came to.
    pub fn responder_totals(&self) -> crate::respond::RespondTotals {
        self.core.responder.totals()
    }

    pub fn shard_mut(&mut self) -> &mut Shard {
        &mut self.core.shard
    }

    pub fn io(&self) -> &I {
        &self.io
    }

    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }
}

/// Whether received packet `i` (parsed into `repr`) passes the checksum
/// check Linux makes. A TCP or UDP packet the NIC vouched for entirely costs
/// nothing more; anything else is verified in software
/// ([`verify_ethernet`]).
#[inline]
fn checksum_ok<B: Burst>(rx: &B, i: usize, repr: &FlowRepr) -> bool {
    let nic = rx.rx_checksum(i);
    if nic == RxChecksum::GOOD && matches!(repr.tuple.proto, proto::TCP | proto::UDP) {
        return true;
    }
    verify_ethernet(rx.data(i), nic).is_ok()
}

impl<P: Send + 'static, B: Burst<Packet = P>> Core<P, B> {
    /// Parses the burst, verifies checksums, and tracks this worker's
    /// packets as one burst. `nic_hash`: the packets' RSS hashes may stand in
    /// for dispatch's own (see [`PacketIo::nic_hash`]).
    fn classify(&mut self, rx: &B, nic_hash: bool, now: Instant, ports: (u16, u16)) {
        let n = rx.len().min(MAX_BURST);
        let settings = self.shard.settings();
        // Linux verifies only where conntrack runs at all.
        let verify = settings.checksum_verify && self.shard.is_tracking();
        // The local packets' frames, for the firewall (TTL, DSCP, layer7).
        let mut frames: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        let fw = self.fw.is_some();
        let mut k = 0;
        for i in 0..n {
            let mut ports = ports;
            if let Some(r) = self.router.as_deref() {
                ports.1 = match r.classify(rx.data(i), ports.0) {
                    Class::Forward(port) => port,
                    Class::Local => LOCAL_PORT,
                    Class::Router => {
                        self.disp[i] = Disp::Router;
                        continue;
                    }
                };
                self.egress[i] = ports.1;
            }
            // Parsed in place, into the slot the table reads (see
            // `parse_ethernet_into`); a packet for another worker is moved
            // out of it.
            let slot = &mut self.local[k];
            self.disp[i] = match parse_ethernet_into(rx.data(i), slot) {
                Ok(()) if verify && !checksum_ok(rx, i, slot) => {
                    // Invalid, as in Linux: nothing created, nothing counted
                    // on a connection; forwarded (there is no firewall).
                    self.shard
                        .count_invalid(InvalidReason::Other(OtherInvalid::BadChecksum));
                    Disp::Untracked
                }
                Ok(()) => {
                    let owner = self.dispatch.as_ref().map_or(self.id, |d| {
                        let hashed = if nic_hash {
                            d.owner_with_nic_hash(slot, rx.rss_hash(i))
                        } else {
                            d.owner(slot)
                        };
                        // A PPTP call's GRE: its control connection's worker.
                        crate::pptp_nat::owner(&self.shard, slot, hashed)
                    });
                    if owner == self.id {
                        self.ports[k] = ports;
                        if fw {
                            frames[k] = rx.data(i);
                        }
                        k += 1;
                        Disp::Local((k - 1) as u8)
                    } else {
                        self.parsed[i] = *slot;
                        Disp::Remote(owner)
                    }
                }
                Err(e) => {
                    self.totals.parse_errors[e.index()] += 1;
                    Disp::Untracked
                }
            };
        }
        if k > 0 {
            self.track(now, k, &frames[..k]);
        }
    }

    /// The frames of `staged` packets, for the firewall (empty without
    /// one: nothing reads them).
    fn frames_of<'a, I: PacketIo<Packet = P, Burst = B>>(
        &self,
        io: &'a I,
        staged: &'a [(P, u16)],
    ) -> [&'a [u8]; MAX_BURST] {
        let mut frames: [&[u8]; MAX_BURST] = [&[]; MAX_BURST];
        if self.fw.is_some() {
            for (f, (pkt, _)) in frames.iter_mut().zip(staged) {
                *f = io.packet_data(pkt);
            }
        }
        frames
    }

    /// Tracks `local[..k]` into `verdicts[..k]` in the table's two phases:
    /// lookup, this worker's decision for each new connection, commit (see
    /// [`Shard::lookup_burst`]). Until rules and NAT exist the decision is
    /// [`policy::new_connection`]. `frames[j]` is `local[j]`'s frame (may
    /// be empty without a firewall).
    fn track(&mut self, now: Instant, k: usize, frames: &[&[u8]]) {
        // The other workers' expectations, up to now (see `crate::helpers`).
        if let Some(m) = &self.expect_mesh {
            m.receive(self.id, &mut self.shard);
        }
        let mut done = 0;
        while done < k {
            if self.fw.is_none() && !self.shard.events_on() {
                // Nothing decides per packet (no rules; the `New` event's
                // ingress port is not wanted): both phases in one pass.
                let (p, v) = (&self.local[done..k], &mut self.verdicts[done..k]);
                done += self
                    .shard
                    .decided_burst(now, p, v, policy::new_connection());
                continue;
            }
            let m = self
                .shard
                .lookup_burst(now, &self.local[done..k], &mut self.verdicts[done..k]);
            let end = done + m;
            let mut new = false;
            let owners = self.mesh.owners().filter(|o| !o.is_empty());
            for j in done..end {
                if self.verdicts[j] == Verdict::New {
                    self.decisions[j] = policy::new_connection();
                    new = true;
                    // A NAT connection another worker holds (a port
                    // forward's, see `crate::nat_owners`): handed over.
                    if let Some(o) = owners
                        && self.ports[j].0 != LOCAL_PORT
                        // As the table keys it: a PPTP call's GRE by its call
                        // ids, so two calls between the same hosts differ.
                        && let Some(id) = o.lookup(&self.shard.key_of(&self.local[j]))
                        && id.worker() != self.id
                    {
                        let r = crate::nat::handoff_reason(id.worker());
                        self.verdicts[j] = Verdict::Refused(r);
                        self.decisions[j] = Decision::drop(r);
                    }
                } else if let Some(o) = owners
                    && let Verdict::Invalid(
                        why @ InvalidReason::Other(OtherInvalid::IcmpErrorNoConnection),
                    ) = self.verdicts[j]
                    && self.ports[j].0 != LOCAL_PORT
                    && let Some(id) = icmp_error_owner(o, &self.local[j])
                    && id.worker() != self.id
                {
                    // An ICMP error about a handed-over NAT connection's
                    // reply-direction packet: dispatched by its quote,
                    // whose inverse is the original tuple, it lands on the
                    // original tuple's worker; the owner table names the
                    // connection's (which finds it `related`).
                    self.shard.uncount_invalid(why);
                    let r = crate::nat::handoff_reason(id.worker());
                    self.verdicts[j] = Verdict::Refused(r);
                    self.decisions[j] = Decision::drop(r);
                }
            }
            if let Some(fw) = self.fw.as_deref_mut() {
                fw.decide(
                    &mut self.shard,
                    now,
                    &self.local[done..end],
                    frames.get(done..end).unwrap_or(&[]),
                    &self.ports[done..end],
                    &mut self.verdicts[done..end],
                    &mut self.decisions[done..end],
                );
            }
            if new {
                // Only the `New` event carries it (flow export's
                // `interfaces`): nothing to do while events are off.
                if self.shard.events_on() {
                    for j in done..end {
                        self.decisions[j].in_port = self.ports[j].0;
                    }
                }
                self.shard.commit_burst(
                    now,
                    &self.local[done..end],
                    &self.decisions[done..end],
                    &mut self.verdicts[done..end],
                );
                if let Some(fw) = self.fw.as_deref_mut() {
                    fw.after_commit(
                        &mut self.shard,
                        &self.local[done..end],
                        frames.get(done..end).unwrap_or(&[]),
                        &self.verdicts[done..end],
                    );
                }
                if self.shard.nat_connections() > 0 {
                    self.record_owners(done, end);
                }
            }
            if self.shard.nat_connections() > 0 {
                // The rewrite (`after_verdict`) reads the stored reply key
                // (for the original direction and ICMP errors: a reply's
                // target is its entry's key): fetched while the rest of the
                // burst is handled.
                for v in &self.verdicts[done..end] {
                    if let Verdict::Tracked {
                        id,
                        dir: crate::conntrack::Dir::Orig,
                        ..
                    }
                    | Verdict::Related { id, .. } = *v
                    {
                        self.shard.prefetch_nat(id);
                    }
                }
            }
            done = end;
        }
    }

    /// Records in the owner table the NAT connections `local[done..end]`
    /// created here although their original tuple's worker is another
    /// (handed over by [`crate::nat::NatDrop::Elsewhere`]), so that their
    /// later packets find this worker (see [`crate::nat_owners`]).
    fn record_owners(&mut self, done: usize, end: usize) {
        let (Some(owners), Some(d)) = (self.mesh.owners(), self.dispatch.as_ref()) else {
            return;
        };
        for j in done..end {
            if let Verdict::Tracked {
                id, created: true, ..
            } = self.verdicts[j]
                && self.shard.reply_key(id).is_some()
                && self.ports[j].0 != LOCAL_PORT
                && d.owner(&self.local[j]) != self.id
            {
                let key = self.shard.key_of(&self.local[j]);
                if !owners.insert(&key, id) {
                    self.owner_full += 1;
                }
            }
        }
    }

    /// Clears this worker's owner-table entries whose connections are gone
    /// (bounded work per loop).
    fn sweep_owners(&mut self) {
        if let Some(o) = self.mesh.owners() {
            let shard = &self.shard;
            self.owner_sweep = o.sweep(self.id, self.owner_sweep, OWNER_SWEEP, |id| {
                shard.get(id).is_some()
            });
        }
    }

    /// Gives the NAT the router's configuration (its routes decide the
    /// out-interface after dstnat), or none in bridge mode.
    fn nat_router(&mut self) {
        let cfg = self.router.as_deref().map(|r| Arc::clone(r.config()));
        if let Some(n) = self.fw.as_deref_mut().and_then(|f| f.nat.as_deref_mut()) {
            n.set_router(cfg);
        }
    }

    /// Swaps the firewall (see [`Command::Firewall`]); returns the old one.
    fn install_firewall(&mut self, u: crate::firewall::FirewallUpdate, now: Instant) -> Retired {
        // A reject's ICMP error comes from the address of the interface it
        // leaves by, as Linux's (in bridge mode too, once the script gives
        // the interfaces addresses; router mode sets the same).
        if let Some(a) = u.addresses.as_deref() {
            let v4s = a.firsts(crate::flow::Family::V4);
            let v6s = a.firsts(crate::flow::Family::V6);
            for (port, (v4, v6)) in v4s.zip(v6s).enumerate() {
                if v4.is_some() || v6.is_some() {
                    self.responder.set_address(
                        port as u16,
                        v4.map(|a| a.v4_octets()),
                        v6.map(|a| a.0),
                    );
                }
            }
        }
        // NAT counters go on across rulesets (they are the worker's totals).
        let nat_counters = self
            .fw
            .as_deref()
            .and_then(|f| f.nat.as_deref())
            .map(|n| n.counters)
            .unwrap_or_default();
        let new = u.ruleset.map(|rs| {
            if WorkerFirewall::uses_fasttrack(&rs) {
                self.shard.set_fasttrack_ready();
            }
            let nat = WorkerFirewall::uses_nat(&rs);
            let mut fw = Box::new(WorkerFirewall::new(rs, u.generation, now, u.lists_out));
            if nat {
                fw.nat = Some(Box::new(crate::nat::WorkerNat::new(
                    u.addresses.clone().unwrap_or_default(),
                    self.id,
                    self.mesh.workers as u16,
                    self.dispatch.clone(),
                    random_u64(),
                )));
                if let Some(n) = fw.nat.as_deref_mut() {
                    n.counters = nat_counters;
                    n.set_router(self.router.as_deref().map(|r| Arc::clone(r.config())));
                }
            }
            fw
        });
        self.shard.set_auto_tracking(u.auto_tracking);
        // Counts this shard's connections in the shared table (once per
        // table: the same one again changes nothing).
        self.shard
            .set_conncount(if new.is_some() { u.conncount } else { None });
        match std::mem::replace(&mut self.fw, new) {
            Some(fw) => {
                let (generation, rs, ws) = fw.into_parts();
                Retired {
                    generation,
                    ruleset: Some(rs),
                    state: Some(ws),
                }
            }
            None => Retired {
                generation: 0,
                ruleset: None,
                state: None,
            },
        }
    }

    /// Sends received packet `i` where [`Core::classify`] decided.
    fn route_received<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        i: usize,
        pkt: P,
        (ingress, egress): (u16, u16),
    ) {
        let egress = if self.router.is_some() {
            self.egress[i.min(MAX_BURST - 1)]
        } else {
            egress
        };
        match self.disp.get(i).copied().unwrap_or(Disp::Untracked) {
            Disp::Router => self.router_handle(io, pkt, ingress),
            Disp::Untracked if self.router.is_some() => self.route_out(io, pkt, (ingress, egress)),
            Disp::Untracked => self.forward(io, pkt, egress),
            Disp::Local(k) => {
                let v = self.help(io, k as usize, &pkt);
                self.after_verdict(io, k as usize, v, pkt, (ingress, egress))
            }
            Disp::Remote(owner) => {
                let repr = Some(self.parsed[i]);
                self.hand_off(
                    owner,
                    Handoff {
                        pkt,
                        repr,
                        port: egress,
                        in_port: ingress,
                    },
                );
            }
        }
    }

    /// Runs the connection's helper, if it has one, on tracked packet `k`
    /// of `local` (its bytes in `pkt`); returns the verdict to act on (a
    /// packet the helper drops is refused). One branch for connections
    /// without a helper.
    #[inline]
    fn help<I: PacketIo<Packet = P, Burst = B>>(&mut self, io: &I, k: usize, pkt: &P) -> Verdict {
        let v = self.verdicts[k];
        if let Verdict::Tracked { id, dir, .. } = v
            && self.shard.wants_help(id)
        {
            let repr = self.local[k];
            let frame = io.packet_data(pkt);
            if let Some(payload) = crate::helper::l4_payload(frame, &repr) {
                let verdict = self.shard.help(self.now, id, dir, &repr, payload);
                // Before this packet leaves: see `ExpectMesh::send`.
                if let Some(m) = &self.expect_mesh {
                    m.send(self.id, &mut self.shard);
                }
                match verdict {
                    crate::conntrack::helping::HelpVerdict::Drop => {
                        return Verdict::Refused(crate::helpers::HELPER_DROP);
                    }
                    crate::conntrack::helping::HelpVerdict::Mangle(m) => self.mangle = Some(m),
                    crate::conntrack::helping::HelpVerdict::Accept => {}
                }
            }
        }
        v
    }

    /// Counts, answers or forwards `pkt` (`local[k]`) by its verdict `v`; a
    /// packet of a NAT connection is rewritten first ([`crate::nat`]).
    fn after_verdict<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        k: usize,
        v: Verdict,
        mut pkt: P,
        (ingress, egress): (u16, u16),
    ) {
        let mangle = self.mangle.take();
        // A new NAT connection another worker is to create, or holds.
        if let Verdict::Refused(r) = v
            && let Some(owner) = crate::nat::handoff_owner(r)
        {
            let repr = Some(self.local[k]);
            self.hand_off(
                owner,
                Handoff {
                    pkt,
                    repr,
                    port: egress,
                    in_port: ingress,
                },
            );
            return;
        }
        // `Refused`: the firewall dropped the packet (by its action).
        if let Verdict::Dropped(_) | Verdict::Refused(_) = v {
            match v {
                Verdict::Refused(reason::DROP) => self.totals.fw_dropped += 1,
                Verdict::Refused(r) if reason::is_reject(r) => self.totals.fw_rejected += 1,
                Verdict::Refused(reason::TARPIT) => self.totals.fw_tarpitted += 1,
                // Counted by the NAT's own counters.
                Verdict::Refused(reason::NAT) => {}
                _ => self.totals.table_dropped += 1,
            }
            if let Verdict::Refused(r) = v
                && let Some(answer) = crate::firewall::answer_of(r)
                && ingress != NO_PORT
                && ingress != LOCAL_PORT
            {
                // The reset, ICMP error or tarpit SYN-ACK goes back out of
                // the port the packet came in on (rate-limited and counted
                // by the responder).
                let frame = io.packet_data(&pkt);
                if let Some(a) = self.responder.respond(io, frame, answer, ingress, self.now) {
                    self.forward(io, a, ingress);
                }
            }
            drop(pkt);
        } else if self.router.is_some() {
            // A helper's payload change and the sequence adjustment first
            // (see `crate::ftp_nat`).
            let Some(mut pkt) = self.helper_rewrite(io, pkt, v, mangle) else {
                return;
            };
            // NAT next: the translated destination decides between the
            // box itself and routing out (a port forward of our address,
            // a masqueraded connection's replies, hairpin).
            let mut egress = egress;
            if self.shard.nat_connections() > 0 {
                let rw = crate::nat::plan(&self.shard, &self.local[k], v);
                let dst = match rw {
                    crate::nat::Rewrite::None => None,
                    crate::nat::Rewrite::To(t) => Some(t.dst),
                    crate::nat::Rewrite::IcmpError { dst, .. } => Some(dst),
                };
                if let Some(dst) = dst {
                    // Too big for the routed egress and not to be
                    // fragmented: answered quoting the packet as received,
                    // not as translated (see `RouterPlane::exceeds_mtu`).
                    let big = match self.router.as_deref_mut() {
                        Some(r) if ingress != LOCAL_PORT && !r.config().is_own(&dst) => {
                            r.exceeds_mtu(io.packet_data(&pkt), io.frag_size(&pkt), &dst)
                        }
                        _ => None,
                    };
                    if let Some(mtu) = big {
                        if let Some(r) = self.router.as_deref_mut()
                            && let Some((a, port)) =
                                r.too_big(io, &mut self.responder, pkt, ingress, mtu, self.now)
                        {
                            self.forward(io, a, port);
                        }
                        return;
                    }
                    if crate::nat::apply(io.packet_data_mut(&mut pkt), &rw).is_err()
                        || crate::pptp_nat::rewrite(
                            &self.shard,
                            &self.local[k],
                            v,
                            &rw,
                            io.packet_data_mut(&mut pkt),
                        )
                        .is_err()
                    {
                        self.totals.nat_rewrite_failed += 1;
                        return;
                    }
                    if ingress != LOCAL_PORT {
                        let own = self
                            .router
                            .as_deref()
                            .is_some_and(|r| r.config().is_own(&dst));
                        egress = if own {
                            LOCAL_PORT
                        } else if egress == LOCAL_PORT {
                            NO_PORT
                        } else {
                            egress
                        };
                    }
                }
            }
            self.route_out(io, pkt, (ingress, egress));
        } else {
            // The common NAT case in one step (no helper change to make
            // first): see `crate::nat::rewrite_fast`.
            if self.shard.nat_connections() > 0
                && !(mangle.is_none()
                    && !self.shard.has_seqadj()
                    && crate::nat::rewrite_fast(
                        &self.shard,
                        &self.local[k],
                        v,
                        io.packet_data_mut(&mut pkt),
                    ))
            {
                let rw = crate::nat::plan(&self.shard, &self.local[k], v);
                // A helper's payload change and the sequence adjustment
                // first (see `crate::ftp_nat`).
                match self.helper_rewrite(io, pkt, v, mangle) {
                    Some(p) => pkt = p,
                    None => return,
                }
                if rw != crate::nat::Rewrite::None
                    && (crate::nat::apply(io.packet_data_mut(&mut pkt), &rw).is_err()
                        || crate::pptp_nat::rewrite(
                            &self.shard,
                            &self.local[k],
                            v,
                            &rw,
                            io.packet_data_mut(&mut pkt),
                        )
                        .is_err())
                {
                    // Linux drops what it cannot mangle.
                    self.totals.nat_rewrite_failed += 1;
                    return;
                }
            }
            self.forward(io, pkt, egress);
        }
    }

    /// A helper's change of packet `pkt` (verdict `v`) under NAT: the
    /// payload text `mangle` (FTP), then the connection's sequence
    /// adjustment (see [`crate::ftp_nat`]). `None`: it could not be
    /// changed, dropped and counted (`rewrite_failed`). Two branches for
    /// connections without either.
    #[inline]
    fn helper_rewrite<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        mut pkt: P,
        v: Verdict,
        mangle: Option<crate::conntrack::helping::FtpMangle>,
    ) -> Option<P> {
        if let Some(m) = mangle {
            match crate::ftp_nat::mangle(io, pkt, &m) {
                Some(p) => pkt = p,
                None => {
                    self.totals.nat_rewrite_failed += 1;
                    return None;
                }
            }
        }
        if self.shard.has_seqadj()
            && crate::ftp_nat::seq_adjust(&self.shard, v, io.packet_data_mut(&mut pkt)).is_err()
        {
            self.totals.nat_rewrite_failed += 1;
            return None;
        }
        Some(pkt)
    }

    /// Router mode: a packet the router plane handles untracked.
    fn router_handle<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        pkt: P,
        ingress: u16,
    ) {
        let Some(r) = self.router.as_deref_mut() else {
            return;
        };
        if let Some((a, port)) = r.handle(io, &mut self.responder, pkt, ingress, self.now) {
            self.forward(io, a, port);
        }
    }

    /// Router mode: an accepted packet to the box itself (`egress` is
    /// [`LOCAL_PORT`]: its answer is queued for the output hooks) or to
    /// route out (the TTL decremented unless the box sent it).
    fn route_out<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        pkt: P,
        (ingress, egress): (u16, u16),
    ) {
        let Some(mut r) = self.router.take() else {
            return;
        };
        let now = self.now;
        if egress == LOCAL_PORT {
            match r.local(io, &mut self.responder, pkt, ingress, now) {
                LocalOut::EchoReply(reply) if self.local_out.len() < MAX_BURST => {
                    self.local_out.push(reply);
                }
                LocalOut::EchoReply(_) => self.totals.tx_dropped += 1,
                // A reset or port unreachable: the answer of the box's
                // stack, tracked through the output hooks as the
                // connection's packet (and translated back by it when a
                // `redirect` made the connection the box's), as Linux's
                // OUTPUT hooks see what the local stack sends.
                LocalOut::Answer(a, _) if self.local_out.len() < MAX_BURST => {
                    self.local_out.push(a);
                }
                LocalOut::Answer(..) => self.totals.tx_dropped += 1,
                LocalOut::Nothing => {}
            }
        } else {
            let from = (ingress != LOCAL_PORT && ingress != NO_PORT).then_some(ingress);
            let big = {
                let mut send = |io: &mut I, p: P, port: u16| self.forward(io, p, port);
                r.output(io, pkt, from, now, &mut send)
            };
            if let (Some((pkt, mtu)), Some(from)) = (big, from)
                && let Some((a, port)) = r.too_big(io, &mut self.responder, pkt, from, mtu, now)
            {
                self.forward(io, a, port);
            }
        }
        self.router = Some(r);
    }

    /// Router mode, between bursts: tracks what the box sends itself
    /// through the output hooks and sends it, then the router plane's own
    /// work (shared neighbours, aging, held packets). Returns the packets
    /// handled.
    fn router_between_bursts<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        now: Instant,
    ) -> usize {
        let mut work = 0;
        if !self.local_out.is_empty() {
            let mut out = std::mem::take(&mut self.local_out);
            let mut k = 0;
            for pkt in out.drain(..) {
                let frame = io.packet_data(&pkt);
                let port = self
                    .router
                    .as_deref()
                    .and_then(|r| crate::router::dst_of(frame).and_then(|d| r.route(&d)))
                    .map_or(NO_PORT, |(p, _)| p);
                match parse_ethernet_into(frame, &mut self.local[k]) {
                    Ok(()) => {
                        self.ports[k] = (LOCAL_PORT, port);
                        self.staged.push((pkt, port));
                        k += 1;
                    }
                    Err(e) => self.totals.parse_errors[e.index()] += 1,
                }
            }
            self.local_out = out;
            work += k;
            if k > 0 {
                let mut staged = std::mem::take(&mut self.staged);
                let frames = self.frames_of(io, &staged);
                self.track(now, k, &frames[..k]);
                for (j, (pkt, port)) in staged.drain(..).enumerate() {
                    self.after_verdict(io, j, self.verdicts[j], pkt, (LOCAL_PORT, port));
                }
                self.staged = staged;
            }
        }
        if let Some(mut r) = self.router.take() {
            let held = r.held();
            let mut send = |io: &mut I, p: P, port: u16| self.forward(io, p, port);
            r.between_bursts(io, now, &mut send);
            work += held - r.held();
            self.router = Some(r);
        }
        work
    }

    /// Transmits on this worker's queue of `port`, or hands the packet to the
    /// worker that owns one.
    fn forward<I: PacketIo<Packet = P, Burst = B>>(&mut self, io: &mut I, pkt: P, port: u16) {
        if self.reassembly {
            let size = usize::from(io.frag_size(&pkt));
            if size > 0 && crate::frag::ip_len(io.packet_data(&pkt)).is_some_and(|l| l > size) {
                self.refragment(io, pkt, size, port);
                return;
            }
        }
        if !io.has_tx(port) {
            let owner = self
                .mesh
                .tx_owner
                .get(port as usize)
                .copied()
                .unwrap_or(self.id);
            if owner != self.id {
                self.hand_off(
                    owner,
                    Handoff {
                        pkt,
                        repr: None,
                        port,
                        in_port: NO_PORT,
                    },
                );
                return;
            }
            // Nobody can send on this port: count it as a TX drop.
            self.totals.tx_dropped += 1;
            return;
        }
        let Some(b) = self.tx.get_mut(port as usize) else {
            self.totals.tx_dropped += 1;
            return;
        };
        if let Err(pkt) = b.push(pkt) {
            self.flush(io, port);
            if self.tx[port as usize].push(pkt).is_err() {
                self.totals.tx_dropped += 1;
            }
        }
    }

    /// Bridge mode: sends reassembled datagram `pkt` out of `port` in
    /// fragments of at most `size` bytes, the largest it came in (Linux's
    /// `br_nf_dev_queue_xmit` with `frag_max_size`; IPv6 not below 1280).
    #[cold]
    fn refragment<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        pkt: P,
        size: usize,
        port: u16,
    ) {
        let Some(mut fr) = self.fragmenter.take() else {
            self.frag.refragment_failed += 1;
            return;
        };
        let f = io.packet_data(&pkt);
        let size = if f.get(12..14) == Some(&[0x86, 0xdd]) {
            size.max(crate::frag::IPV6_MIN_MTU)
        } else {
            size
        };
        let mut pieces = 0;
        let r = fr.split(io, f, size, |io, p| {
            pieces += 1;
            self.forward(io, p, port);
        });
        self.fragmenter = Some(fr);
        self.frag.refragmented += 1;
        self.frag.refragments += pieces;
        if r.is_err() {
            self.frag.refragment_failed += 1;
        }
    }

    fn hand_off(&mut self, owner: u16, h: Handoff<P>) {
        match self.mesh.ring(self.id, owner).push(h) {
            Ok(()) => self.totals.handoffs_out += 1,
            // Ring full: the packet is freed here, counted.
            Err(_) => self.totals.handoff_dropped += 1,
        }
    }

    /// Tracks and forwards what other workers handed over (bounded per ring).
    fn drain_handoffs<I: PacketIo<Packet = P, Burst = B>>(
        &mut self,
        io: &mut I,
        now: Instant,
    ) -> usize {
        if self.mesh.workers == 1 {
            return 0;
        }
        let mut total = 0;
        for src in 0..self.mesh.workers as u16 {
            if src == self.id {
                continue;
            }
            let mut k = 0;
            while k < MAX_BURST {
                // Re-borrowed per pop (no Arc clone: its shared count would
                // bounce between the workers' caches every loop).
                let Some(h) = self.mesh.ring(src, self.id).pop() else {
                    break;
                };
                total += 1;
                match h.repr {
                    Some(repr) => {
                        self.local[k] = repr;
                        self.ports[k] = (h.in_port, h.port);
                        self.staged.push((h.pkt, h.port));
                        k += 1;
                    }
                    None => self.forward(io, h.pkt, h.port),
                }
            }
            if k > 0 {
                let mut staged = std::mem::take(&mut self.staged);
                let frames = self.frames_of(io, &staged);
                self.track(now, k, &frames[..k]);
                for (j, (pkt, port)) in staged.drain(..).enumerate() {
                    let ingress = self.ports[j].0;
                    let v = self.help(io, j, &pkt);
                    self.after_verdict(io, j, v, pkt, (ingress, port));
                }
                self.staged = staged;
            }
        }
        self.totals.handoffs_in += total as u64;
        total
    }

    fn flush<I: PacketIo<Packet = P, Burst = B>>(&mut self, io: &mut I, port: u16) {
        let Some(b) = self.tx.get_mut(port as usize) else {
            return;
        };
        for _ in 0..TX_RETRIES {
            if b.is_empty() {
                return;
            }
            self.totals.tx_packets += io.tx(port, b) as u64;
        }
        self.totals.tx_dropped += b.clear() as u64;
    }

    fn flush_all<I: PacketIo<Packet = P, Burst = B>>(&mut self, io: &mut I) {
        for port in 0..self.tx.len() {
            self.flush(io, port as u16);
        }
    }
}

/// The connection an ICMP error quotes, by the owner table: the quote is
/// the packet as it left (translated), its inverse the key the error's
/// direction carries, which for the original direction is the key the
/// owner table holds.
#[cold]
fn icmp_error_owner(o: &crate::nat_owners::OwnerTable, pkt: &FlowRepr) -> Option<ConnId> {
    let crate::flow::L4::Icmp(i) = &pkt.l4 else {
        return None;
    };
    let inner = i.inner.as_ref()?;
    o.lookup(&crate::conntrack::Key::of_quoted(inner).reply())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::TableConfig;
    use crate::io::mem::{MemIo, MemLink};
    use ctrack_traffic::synth::{Mix, Side};

    fn shard(id: u16) -> Shard {
        Shard::new(
            TableConfig::new(4096),
            Settings::default(),
            id,
            random_seed(),
        )
    }

    fn mix() -> Mix {
        Mix {
            tcp: 20,
            udp: 10,
            icmp: 4,
            exchanges: 3,
            payload: 64,
            keep_open: true,
            ..Mix::default()
        }
    }

    /// Originators' packets on port 0, responders' on port 1.
    fn inputs() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let p = mix().packets();
        let orig = p
            .iter()
            .filter(|x| x.side == Side::Orig)
            .map(|x| x.frame.clone())
            .collect();
        let reply = p
            .iter()
            .filter(|x| x.side == Side::Reply)
            .map(|x| x.frame.clone())
            .collect();
        (orig, reply)
    }

    fn run_to_idle<I: PacketIo>(workers: &mut [Worker<I>]) {
        let mut idle = 0;
        while idle < 3 {
            let work: usize = workers.iter_mut().map(Worker::poll_once).sum();
            idle = if work == 0 { idle + 1 } else { 0 };
        }
    }

    #[test]
    fn one_worker_tracks_and_forwards_both_directions() {
        let (orig, reply) = inputs();
        let links = vec![
            MemLink {
                port: 0,
                input: orig.clone().into(),
                ..MemLink::default()
            },
            MemLink {
                port: 1,
                input: reply.clone().into(),
                ..MemLink::default()
            },
        ];
        let io = MemIo::new(links, 2, &[0, 1], 32);
        let mesh = Mesh::new(1, vec![0, 0]);
        let (_tx, rx) = crossbeam::channel::bounded(4);
        let mut w = [Worker::new(0, io, shard(0), mesh, rx, Arc::default())];
        run_to_idle(&mut w);
        assert_eq!(w[0].io().output(1), &orig[..]);
        assert_eq!(w[0].io().output(0), &reply[..]);
        let m = mix();
        assert_eq!(w[0].shard().total_entries(), m.tcp + m.udp + m.icmp);
        let t = w[0].totals();
        assert_eq!(t.rx_packets as usize, orig.len() + reply.len());
        assert_eq!(t.tx_packets, t.rx_packets);
        assert_eq!((t.handoffs_out, t.tx_dropped), (0, 0));
    }

    #[test]
    fn events_go_to_the_ring_and_a_full_ring_counts_drops() {
        use crate::conntrack::EventKind;
        let (orig, reply) = inputs();
        let run = |ring_cap: usize| {
            let links = vec![
                MemLink {
                    port: 0,
                    input: orig.clone().into(),
                    ..MemLink::default()
                },
                MemLink {
                    port: 1,
                    input: reply.clone().into(),
                    ..MemLink::default()
                },
            ];
            let io = MemIo::new(links, 2, &[0, 1], 32);
            let (_tx, rx) = crossbeam::channel::bounded(4);
            let mut w = [Worker::new(
                0,
                io,
                shard(0),
                Mesh::new(1, vec![0, 0]),
                rx,
                Arc::default(),
            )];
            let ring = Arc::new(EventRing::new(ring_cap));
            ring.set_wanted(true);
            w[0].set_events(ring.clone(), 1024);
            run_to_idle(&mut w);
            let mut news = 0;
            let mut all = 0;
            while let Some(ev) = ring.pop() {
                all += 1;
                news += usize::from(ev.kind == EventKind::New);
            }
            (news, all, ring.dropped())
        };
        let m = mix();
        let conns = m.tcp + m.udp + m.icmp;
        let (news, all, dropped) = run(4096);
        assert_eq!(news as u32, conns);
        assert!(all > news, "updates too: {all}");
        assert_eq!(dropped, 0);
        // A ring of 8: the rest is counted, nothing waits.
        let (_, kept, dropped) = run(8);
        assert_eq!(kept, 8);
        assert_eq!(kept as u64 + dropped, all as u64);
    }

    /// One worker whose port `port` receives the original packets of
    /// [`inputs`] (port 0 transmits).
    fn originals_on(port: u16) -> Worker<MemIo> {
        let (orig, _) = inputs();
        let links = vec![MemLink {
            port,
            input: orig.into(),
            ..MemLink::default()
        }];
        let io = MemIo::new(links, 2, &[0], 32);
        let (_tx, rx) = crossbeam::channel::bounded(4);
        Worker::new(
            0,
            io,
            shard(0),
            Mesh::new(1, vec![0, 0]),
            rx,
            Arc::default(),
        )
    }

    #[test]
    fn events_are_recorded_only_while_wanted() {
        let mut w = originals_on(0);
        let ring = Arc::new(EventRing::new(4096));
        w.set_events(ring.clone(), 1024);
        assert!(!w.shard().events_on());
        w.poll_once();
        assert!(ring.is_empty());
        ring.set_wanted(true);
        w.poll_once();
        assert!(w.shard().events_on());
        ring.set_wanted(false);
        w.poll_once();
        assert!(!w.shard().events_on());
    }

    /// A connection's `New` event says the port its first packet entered on.
    #[test]
    fn new_events_carry_the_ingress_port() {
        let mut w = originals_on(1);
        let ring = Arc::new(EventRing::new(4096));
        ring.set_wanted(true);
        w.set_events(ring.clone(), 1024);
        w.poll_once();
        w.poll_once();
        let mut news = 0;
        while let Some(ev) = ring.pop() {
            if ev.kind == crate::conntrack::EventKind::New {
                assert_eq!(ev.in_port, 1);
                news += 1;
            }
        }
        assert!(news > 0);
    }

    /// Single-queue ports, two workers: worker 0 polls port 0 and transmits
    /// on port 1, worker 1 the reverse (as `ctrack run` plans it). Every
    /// connection must end up in exactly one shard with both directions.
    #[test]
    fn software_dispatch_tracks_each_connection_once() {
        let (orig, reply) = inputs();
        let mesh = Mesh::new(2, vec![1, 0]);
        let mut senders = Vec::new();
        let mut workers: Vec<Worker<MemIo>> = (0..2u16)
            .map(|id| {
                let input = if id == 0 { orig.clone() } else { reply.clone() };
                let links = vec![MemLink {
                    port: id,
                    input: input.into(),
                    ..MemLink::default()
                }];
                let io = MemIo::new(links, 2, &[id ^ 1], 32);
                let (tx, rx) = crossbeam::channel::bounded(4);
                senders.push(tx);
                Worker::new(id, io, shard(id), Arc::clone(&mesh), rx, Arc::default())
            })
            .collect();
        run_to_idle(&mut workers);
        // Every packet left by the right port: order within each flow kept.
        let out1 = workers[0].io().output(1);
        let out0 = workers[1].io().output(0);
        assert_eq!(out1.len(), orig.len());
        assert_eq!(out0.len(), reply.len());
        let sorted = |v: &[Vec<u8>]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(sorted(out1), sorted(&orig));
        assert_eq!(sorted(out0), sorted(&reply));
        // Each connection in exactly one shard, with both directions counted.
        let m = mix();
        let total: u32 = workers.iter().map(|w| w.shard().total_entries()).sum();
        assert_eq!(total, m.tcp + m.udp + m.icmp);
        assert!(
            workers.iter().all(|w| w.shard().total_entries() > 0),
            "both shards used"
        );
        for w in &workers {
            w.shard().for_each_snapshot(Instant::ZERO, |c| {
                let e = c.entry();
                assert!(
                    e.packets(crate::conntrack::Dir::Orig) > 0
                        && e.packets(crate::conntrack::Dir::Reply) > 0,
                    "{c:?}"
                );
            });
            w.shard().check_invariants().unwrap();
        }
        let handoffs: u64 = workers.iter().map(|w| w.totals().handoffs_out).sum();
        assert!(handoffs > 0);
        assert!(workers.iter().all(|w| w.totals().handoff_dropped == 0));
        drop(senders);
    }

    #[test]
    fn commands_list_remove_and_settings_between_bursts() {
        let (orig, reply) = inputs();
        let links = vec![
            MemLink {
                port: 0,
                input: orig.into(),
                ..MemLink::default()
            },
            MemLink {
                port: 1,
                input: reply.into(),
                ..MemLink::default()
            },
        ];
        let io = MemIo::new(links, 2, &[0, 1], 32);
        let (tx, rx) = crossbeam::channel::bounded(16);
        let mut w = [Worker::new(
            0,
            io,
            shard(0),
            Mesh::new(1, vec![0, 0]),
            rx,
            Arc::default(),
        )];
        run_to_idle(&mut w);
        let total = w[0].shard().total_entries();

        // Listing in chunks of 5 sees every connection once.
        let mut seen = Vec::new();
        let mut cursor = Some(0);
        while let Some(c) = cursor {
            let (rtx, rrx) = crossbeam::channel::bounded(1);
            tx.send(Command::List {
                cursor: c,
                max: 8,
                buf: Vec::with_capacity(5),
                reply: rtx,
            })
            .unwrap();
            w[0].poll_once();
            let chunk = rrx.recv().unwrap();
            assert!(chunk.rows.len() <= 5, "bounded by the buffer's capacity");
            assert_eq!(chunk.rows.capacity(), 5, "the worker did not reallocate");
            seen.extend(chunk.rows.iter().map(RawConn::id));
            cursor = chunk.next;
        }
        assert_eq!(seen.len() as u32, total);

        let id = seen[0];
        let (rtx, rrx) = crossbeam::channel::bounded(1);
        tx.send(Command::Remove { id, reply: rtx }).unwrap();
        w[0].poll_once();
        assert!(rrx.recv().unwrap());
        assert_eq!(w[0].shard().total_entries(), total - 1);

        let s = Settings {
            udp_stream_timeout: crate::conntrack::Duration::from_secs(3600),
            ..Settings::default()
        };
        tx.send(Command::Settings(Box::new(s.clone()))).unwrap();
        w[0].poll_once();
        assert_eq!(w[0].shard().settings(), &s);

        let (rtx, rrx) = crossbeam::channel::bounded(1);
        tx.send(Command::Report { reply: rtx }).unwrap();
        let report = loop {
            w[0].poll_once();
            if let Ok(r) = rrx.try_recv() {
                break r;
            }
        };
        assert_eq!(report.total_entries, total - 1);
        assert_eq!(
            report.census.counts.values().sum::<u64>(),
            u64::from(total - 1)
        );
    }

    /// Frames with a bad TCP checksum (a SYN), a bad UDP checksum and a bad
    /// IPv4 header checksum, from port 0.
    fn bad_checksum_frames() -> Vec<Vec<u8>> {
        use crate::flow::tcp_flags::SYN;
        use ctrack_traffic::synth::{tcp_frame, udp_frame};
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut syn = tcp_frame(a, b, 40000, 80, 1, 0, SYN, 0, None, true);
        syn[14 + 20 + 16] ^= 0x55;
        let mut dgram = udp_frame(a, b, 5000, 53, 10, true);
        *dgram.last_mut().unwrap() ^= 1;
        let mut header = udp_frame(a, b, 5001, 53, 10, true);
        header[14 + 8] ^= 1; // TTL: the header checksum no longer matches
        vec![syn, dgram, header]
    }

    /// One worker with `settings`, whose link 0 "NIC" says `nic`, after
    /// `frames` went through it.
    fn run_frames(settings: Settings, nic: RxChecksum, frames: &[Vec<u8>]) -> Worker<MemIo> {
        let links = vec![MemLink {
            port: 0,
            input: frames.to_vec().into(),
            nic,
        }];
        let io = MemIo::new(links, 2, &[0, 1], 32);
        let (_tx, rx) = crossbeam::channel::bounded(4);
        let shard = Shard::new(TableConfig::new(64), settings, 0, random_seed());
        let mut w = [Worker::new(
            0,
            io,
            shard,
            Mesh::new(1, vec![0, 0]),
            rx,
            Arc::default(),
        )];
        run_to_idle(&mut w);
        let [w] = w;
        w
    }

    fn bad_checksum_count(w: &Worker<MemIo>) -> u64 {
        w.shard().stats().invalid[InvalidReason::Other(OtherInvalid::BadChecksum).index()]
    }

    /// As Linux (`nf_conntrack_checksum=1`): a packet with a bad checksum is
    /// invalid, creates nothing and is counted on nothing, and is still
    /// forwarded (there is no firewall to drop it).
    #[test]
    fn bad_checksums_are_invalid_and_create_nothing() {
        let frames = bad_checksum_frames();
        let w = run_frames(Settings::default(), RxChecksum::UNKNOWN, &frames);
        assert_eq!(w.shard().total_entries(), 0);
        assert_eq!(bad_checksum_count(&w), 3);
        assert_eq!(w.shard().stats().invalid_total(), 3);
        assert_eq!(w.shard().stats().packets, [0, 0]);
        assert_eq!(w.io().output(1), &frames[..]);
        // The same packets with their checksums intact are tracked.
        let good = inputs().0;
        let w = run_frames(Settings::default(), RxChecksum::UNKNOWN, &good);
        assert_eq!(bad_checksum_count(&w), 0);
        assert!(w.shard().total_entries() > 0);
    }

    #[test]
    fn checksum_verify_no_tracks_them() {
        let settings = Settings {
            checksum_verify: false,
            ..Settings::default()
        };
        let w = run_frames(settings, RxChecksum::UNKNOWN, &bad_checksum_frames());
        assert_eq!(w.shard().total_entries(), 3);
        assert_eq!(bad_checksum_count(&w), 0);
    }

    /// The NIC's word is taken as it is: good means no software check (so
    /// these corrupt frames pass), bad means invalid whatever the bytes.
    #[test]
    fn the_nics_word_is_trusted() {
        let w = run_frames(
            Settings::default(),
            RxChecksum::GOOD,
            &bad_checksum_frames(),
        );
        assert_eq!((w.shard().total_entries(), bad_checksum_count(&w)), (3, 0));
        let nic_bad = RxChecksum {
            ip: crate::packet::checksum::Offload::Good,
            l4: crate::packet::checksum::Offload::Bad,
        };
        // NICs check TCP and UDP; ICMP is checked in software (and is good).
        let (icmp, tcp_udp): (Vec<_>, Vec<_>) = inputs()
            .0
            .into_iter()
            .partition(|f| f[14 + 9] == proto::ICMP);
        let w = run_frames(Settings::default(), nic_bad, &tcp_udp);
        assert_eq!(w.shard().total_entries(), 0);
        assert_eq!(bad_checksum_count(&w), tcp_udp.len() as u64);
        let w = run_frames(Settings::default(), nic_bad, &icmp);
        assert_eq!(w.shard().total_entries(), mix().icmp);
        assert_eq!(bad_checksum_count(&w), 0);
    }

    /// `checksum-verify` changes live, through the worker's command channel.
    #[test]
    fn checksum_verify_is_settable_live() {
        let links = vec![MemLink {
            port: 0,
            ..MemLink::default()
        }];
        let io = MemIo::new(links, 2, &[0, 1], 32);
        let (tx, rx) = crossbeam::channel::bounded(4);
        let shard = Shard::new(TableConfig::new(64), Settings::default(), 0, random_seed());
        let mut w = [Worker::new(
            0,
            io,
            shard,
            Mesh::new(1, vec![0, 0]),
            rx,
            Arc::default(),
        )];
        let frames = bad_checksum_frames();
        w[0].io_mut().links[0].input.extend(frames.clone());
        run_to_idle(&mut w);
        assert_eq!(
            (w[0].shard().total_entries(), bad_checksum_count(&w[0])),
            (0, 3)
        );
        let off = Settings {
            checksum_verify: false,
            ..Settings::default()
        };
        tx.send(Command::Settings(Box::new(off))).unwrap();
        w[0].poll_once();
        w[0].io_mut().links[0].input.extend(frames);
        run_to_idle(&mut w);
        assert_eq!(
            (w[0].shard().total_entries(), bad_checksum_count(&w[0])),
            (3, 3)
        );
    }
}
