//! `/ip traffic-flow`: connections exported as NetFlow v9 / IPFIX flow
//! records to collectors (`/ip traffic-flow target`), from the control side.
//!
//! The exporter thread subscribes to the connection events
//! ([`crate::events::EventHub`]) and keeps a flow cache
//! ([`FlowCache`], at most `cache-entries` connections): a connection's
//! first-seen time (from its `new` event: the table does not keep it) and
//! the counters already exported. It sends:
//!
//! - when a connection ends (its `destroy` event): one record per direction
//!   that carried packets since the last record, with the counters' deltas;
//! - while it lives, from a walk of the tables (the chunked listing the API
//!   uses, bounded work per worker per loop) every
//!   `min(active-flow-timeout, inactive-flow-timeout)`: a record of what is
//!   new since the last one when `active-flow-timeout` passed since then
//!   (`flowEndReason` active timeout), or when no packet came for
//!   `inactive-flow-timeout` (idle timeout; the connection itself stays in
//!   the table until its own timeout, and is exported again only if it
//!   carries packets again). A walk is cheaper than a periodic record from
//!   each shard: the entry has no room for an export time, and the walk
//!   costs the workers what a `print` costs, spread over loops;
//! - when `ctrack run` stops: every live connection's unexported counters
//!   (forced end), before the workers stop.
//!
//! Each target has its own [`Exporter`] (sequence numbers, templates
//! re-sent every 20 messages or 60 s over UDP, RFC 7011 section 8.4) and a
//! UDP socket. NAT events (RFC 8158, IPFIX targets) are sent on `new` and
//! `destroy` of a translated connection when `nat-events` is on.
//!
//! Times: the workers' clocks count from their own start; the exporter maps
//! each worker's clock to Unix time by the smallest gap it has seen between
//! an event's time and the wall clock when the event arrived (an estimate
//! that only gets better, to within the event latency, about a millisecond).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use ctrack_export::{
    EndReason, Exporter, ExporterConfig, FlowRecord, NatEvent, NatEventKind, Record, Translation,
    Version,
};
use dataplane::conntrack::tcp::TcpState;
use dataplane::conntrack::{
    ConnEvent, ConnId, Decision, DestroyReason, Dir, Duration, Entry, EventKind, Key, RawConn,
};
use dataplane::flow::proto;
use serde::Deserialize;

use crate::events::{EventHub, Subscription};

/// `/ip traffic-flow` and its targets: the `[traffic-flow]` section of
/// `ctrack.toml` (RouterOS names and defaults).
///
/// ```toml
/// [traffic-flow]
/// enabled = "yes"
/// interfaces = "all"
/// cache-entries = "4k"
/// active-flow-timeout = "30m"
/// inactive-flow-timeout = "15s"
/// nat-events = "no"
///
/// [[traffic-flow.target]]
/// dst-address = "192.0.2.10"
/// port = 2055
/// version = "9"          # or "ipfix"
/// src-address = "0.0.0.0"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TrafficFlow {
    #[serde(deserialize_with = "de_yes_no")]
    pub enabled: bool,
    /// `all`, or interface names separated by commas (`ether1,ether3`):
    /// only connections whose first packet entered on one of them are
    /// exported ([`resolve_interfaces`]).
    pub interfaces: String,
    /// Connections the flow cache remembers (first-seen time, exported
    /// counters). RouterOS's `1k` ... `256k` or a number.
    #[serde(deserialize_with = "de_entries")]
    pub cache_entries: u32,
    pub active_flow_timeout: Duration,
    pub inactive_flow_timeout: Duration,
    /// RFC 8158 NAT events to IPFIX targets (ctrack's own setting).
    #[serde(deserialize_with = "de_yes_no")]
    pub nat_events: bool,
    #[serde(rename = "target")]
    pub targets: Vec<FlowTarget>,
}

/// One `/ip traffic-flow target`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlowTarget {
    pub dst_address: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_version", deserialize_with = "de_version")]
    pub version: Version,
    /// Source address of the datagrams (default: the system's choice).
    #[serde(default)]
    pub src_address: Option<IpAddr>,
    /// A disabled target is kept but sent nothing.
    #[serde(default, deserialize_with = "de_yes_no")]
    pub disabled: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

impl FlowTarget {
    /// A target sending to `dst_address` with the defaults (port 2055,
    /// NetFlow v9).
    pub fn new(dst_address: IpAddr) -> FlowTarget {
        FlowTarget {
            dst_address,
            port: default_port(),
            version: default_version(),
            src_address: None,
            disabled: false,
            comment: None,
        }
    }

    /// What identifies the target's socket and exporter: a reconfiguration
    /// that keeps it keeps its sequence numbers and counters.
    fn socket_key(&self) -> TargetKey {
        (
            SocketAddr::new(self.dst_address, self.port),
            self.version,
            self.src_address,
        )
    }
}

fn default_port() -> u16 {
    2055
}

fn default_version() -> Version {
    Version::NetflowV9
}

impl Default for TrafficFlow {
    fn default() -> TrafficFlow {
        TrafficFlow {
            enabled: false,
            interfaces: "all".to_string(),
            cache_entries: 4096,
            active_flow_timeout: Duration::from_secs(30 * 60),
            inactive_flow_timeout: Duration::from_secs(15),
            nat_events: false,
            targets: Vec::new(),
        }
    }
}

/// A `[traffic-flow]` value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad traffic-flow {field}: {message}")]
pub struct TrafficFlowError {
    pub field: &'static str,
    pub message: String,
}

impl TrafficFlow {
    /// Checks what serde cannot: ranges and the supported values.
    pub fn validate(&self) -> Result<(), TrafficFlowError> {
        let bad = |field, message: String| Err(TrafficFlowError { field, message });
        if self.interfaces != "all"
            && self
                .interfaces
                .split(',')
                .any(|n| n.trim().is_empty() || n.trim() == "all")
        {
            return bad(
                "interfaces",
                format!(
                    "{:?}: expected all, or interface names separated by commas",
                    self.interfaces
                ),
            );
        }
        if !(1..=1 << 24).contains(&self.cache_entries) {
            return bad(
                "cache-entries",
                format!("{}: expected 1 .. 16777216", self.cache_entries),
            );
        }
        for (field, d) in [
            ("active-flow-timeout", self.active_flow_timeout),
            ("inactive-flow-timeout", self.inactive_flow_timeout),
        ] {
            if d.as_nanos() < 1_000_000_000 {
                return bad(field, "at least 1s".to_string());
            }
        }
        for t in &self.targets {
            if t.port == 0 {
                return bad("target port", "0 is not a port".to_string());
            }
            if let Some(src) = t.src_address
                && src.is_ipv4() != t.dst_address.is_ipv4()
            {
                return bad(
                    "target src-address",
                    format!("{src} is not of {}'s family", t.dst_address),
                );
            }
        }
        Ok(())
    }
}

/// The ports `interfaces` names (`None` for `all`), port `i` being named
/// `names[i]` (`ether{i+1}` unless the script renames it); an unknown name
/// is an error naming the known ones.
pub fn resolve_interfaces(
    interfaces: &str,
    names: &[String],
) -> Result<Option<Vec<u16>>, TrafficFlowError> {
    if interfaces == "all" {
        return Ok(None);
    }
    interfaces
        .split(',')
        .map(|n| {
            let n = n.trim();
            names
                .iter()
                .position(|x| x == n)
                .map(|i| i as u16)
                .ok_or_else(|| TrafficFlowError {
                    field: "interfaces",
                    message: format!("no interface {n:?}; known: {}", names.join(", ")),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn de_yes_no<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Text(s) => match s.as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(serde::de::Error::custom(format!(
                "bad value {s:?}: expected yes or no"
            ))),
        },
    }
}

/// `4k` (RouterOS: k = 1024), or a plain number.
pub fn parse_entries(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => (s, 1),
    };
    num.parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("bad cache-entries {s:?}: expected e.g. 4k or 4096"))
}

fn de_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u32),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Text(s) => parse_entries(&s).map_err(serde::de::Error::custom),
    }
}

fn de_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        Num(u32),
        Text(String),
    }
    let s = match V::deserialize(d)? {
        V::Num(n) => n.to_string(),
        V::Text(s) => s,
    };
    s.parse().map_err(serde::de::Error::custom)
}

// ---- the flow cache (no I/O, no clock: times are arguments) ---------------

/// What the cache keeps of a connection.
#[derive(Clone, Copy, Debug)]
struct Cached {
    /// First packet, worker clock (ns).
    first_ns: u64,
    /// End of the span last exported, worker clock (ns); `first_ns` before.
    exported_ns: u64,
    /// Packets and bytes already exported, by direction.
    packets: [u64; 2],
    bytes: [u64; 2],
    /// The walk that last saw it (or during which it was created).
    walk: u32,
    /// The port its first packet entered on ([`ConnEvent::in_port`]).
    in_port: u16,
}

/// Hashes connection ids (one `u64` each, made by the workers, not by
/// packets' senders: no flooding concern) with one multiply, instead of
/// SipHash: the cache is the exporter's hot spot.
#[derive(Clone, Copy, Default)]
struct IdHash;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// Counters of the cache's decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Connections not remembered because the cache was full (their first
    /// record starts at their last packet; deltas cannot be kept).
    pub cache_full: u64,
    /// Connections a complete walk did not find (their `destroy` event was
    /// lost): forgotten, their last counters unexported.
    pub stale: u64,
}

/// The exporter's flow cache and its record building: events and table rows
/// in, records out. Times are the workers' clocks (ns) and Unix time (ns)
/// as the caller reads it.
pub struct FlowCache {
    cfg: TrafficFlow,
    flows: HashMap<ConnId, Cached, IdHash>,
    /// Per worker: Unix ns minus worker-clock ns (the smallest seen).
    offsets: HashMap<u16, i128>,
    stats: CacheStats,
    /// The current walk's number (see [`FlowCache::begin_walk`]).
    walk: u32,
    /// `interfaces` other than `all`: the ports whose connections are
    /// exported ([`resolve_interfaces`]).
    ports: Option<Vec<u16>>,
}

impl FlowCache {
    pub fn new(cfg: TrafficFlow) -> FlowCache {
        FlowCache {
            cfg,
            flows: HashMap::default(),
            offsets: HashMap::new(),
            stats: CacheStats::default(),
            walk: 0,
            ports: None,
        }
    }

    /// Exports only connections that entered on `ports` (`None`: all).
    /// A connection the cache does not remember (it was full, or the
    /// connection's `new` event was lost) has no known port: with a list,
    /// it is not exported.
    pub fn set_ports(&mut self, ports: Option<Vec<u16>>) {
        self.ports = ports;
    }

    fn admits(&self, port: u16) -> bool {
        self.ports.as_ref().is_none_or(|p| p.contains(&port))
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Takes new settings, keeping what the cache remembers (a smaller
    /// `cache-entries` only stops it remembering more).
    pub fn set_config(&mut self, cfg: TrafficFlow) {
        self.cfg = cfg;
    }

    /// Connections remembered now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// How often the table must be walked for the timeouts.
    pub fn walk_every(&self) -> StdDuration {
        let ns = self
            .cfg
            .active_flow_timeout
            .as_nanos()
            .min(self.cfg.inactive_flow_timeout.as_nanos())
            .max(1_000_000_000);
        StdDuration::from_nanos(ns)
    }

    fn learn_clock(&mut self, worker: u16, worker_ns: u64, unix_ns: u64) {
        let gap = i128::from(unix_ns) - i128::from(worker_ns);
        let o = self.offsets.entry(worker).or_insert(gap);
        *o = (*o).min(gap);
    }

    /// Unix milliseconds of worker `w`'s time `ns` (the wall clock `unix_ns`
    /// less the age when the worker's clock is not known yet).
    fn unix_ms(&self, w: u16, ns: u64, fallback_unix_ns: u64) -> u64 {
        let unix = match self.offsets.get(&w) {
            Some(o) => (i128::from(ns) + o).max(0) as u64,
            None => fallback_unix_ns,
        };
        unix / 1_000_000
    }

    /// An event, received at Unix time `unix_ns`: records to send, appended
    /// to `out`.
    pub fn on_event(&mut self, ev: &ConnEvent, unix_ns: u64, out: &mut Vec<Record>) {
        let w = ev.id.worker();
        self.learn_clock(w, ev.time.nanos(), unix_ns);
        match ev.kind {
            EventKind::New => {
                if !self.admits(ev.in_port) {
                    return;
                }
                if self.flows.len() < self.cfg.cache_entries as usize {
                    self.flows.insert(
                        ev.id,
                        Cached {
                            first_ns: ev.time.nanos(),
                            exported_ns: ev.time.nanos(),
                            packets: [0; 2],
                            bytes: [0; 2],
                            walk: self.walk,
                            in_port: ev.in_port,
                        },
                    );
                } else {
                    self.stats.cache_full += 1;
                }
                if self.cfg.nat_events {
                    self.nat_event(ev, NatEventKind::SessionCreate, out);
                }
            }
            EventKind::Update => {}
            EventKind::Destroy(why) => {
                let reason = end_reason(why, &ev.entry);
                let cached = self.flows.remove(&ev.id);
                if self.ports.is_some() && cached.is_none() {
                    return;
                }
                self.records(
                    w,
                    &ev.entry,
                    &ev.reply,
                    cached.as_ref(),
                    reason,
                    unix_ns,
                    out,
                );
                if self.cfg.nat_events {
                    self.nat_event(ev, NatEventKind::SessionDelete, out);
                }
            }
        }
    }

    /// Starts a walk of every live connection ([`FlowCache::on_row`] each).
    pub fn begin_walk(&mut self) {
        self.walk = self.walk.wrapping_add(1);
    }

    /// Ends a walk that visited every live connection: a cached connection
    /// that neither this walk nor the one before saw is gone without its
    /// `destroy` event (lost under overload): forgotten, so that stale
    /// entries do not fill the cache. (One walk is not enough: a connection
    /// that went during the walk may have its `destroy` still queued.)
    pub fn end_walk(&mut self) {
        let walk = self.walk;
        let before = self.flows.len();
        self.flows.retain(|_, c| walk.wrapping_sub(c.walk) < 2);
        self.stats.stale += (before - self.flows.len()) as u64;
    }

    /// A live connection seen by a walk at Unix time `unix_ns`: records when
    /// its active or inactive timeout is due (`force`: the exporter stops,
    /// everything unexported goes).
    pub fn on_row(&mut self, raw: &RawConn, unix_ns: u64, force: bool, out: &mut Vec<Record>) {
        let w = raw.worker();
        let walk = self.walk;
        let Some(&c) = self.flows.get_mut(&raw.id()).map(|c| {
            c.walk = walk;
            &*c
        }) else {
            if force && self.ports.is_none() {
                self.records(
                    w,
                    raw.entry(),
                    raw.reply_key(),
                    None,
                    EndReason::ForcedEnd,
                    unix_ns,
                    out,
                );
            }
            return;
        };
        let e = raw.entry();
        let (packets, bytes) = counts(e);
        let unexported = packets != c.packets;
        if !unexported {
            return;
        }
        let reason = if force {
            EndReason::ForcedEnd
        } else {
            let Some(o) = self.offsets.get(&w) else {
                return;
            };
            let now_w = (i128::from(unix_ns) - o).max(0) as u64;
            let last = e.last_seen().nanos();
            if now_w.saturating_sub(last) >= self.cfg.inactive_flow_timeout.as_nanos() {
                EndReason::IdleTimeout
            } else if now_w.saturating_sub(c.exported_ns) >= self.cfg.active_flow_timeout.as_nanos()
            {
                EndReason::ActiveTimeout
            } else {
                return;
            }
        };
        self.records(w, e, raw.reply_key(), Some(&c), reason, unix_ns, out);
        if let Some(c) = self.flows.get_mut(&raw.id()) {
            c.packets = packets;
            c.bytes = bytes;
            c.exported_ns = e.last_seen().nanos().max(c.exported_ns);
        }
    }

    /// The records of connection `e` (reply key `reply`) since `cached`'s
    /// export: one per direction that carried packets.
    #[allow(clippy::too_many_arguments)]
    fn records(
        &mut self,
        w: u16,
        e: &Entry,
        reply: &Key,
        cached: Option<&Cached>,
        reason: EndReason,
        unix_ns: u64,
        out: &mut Vec<Record>,
    ) {
        let key = e.key();
        let end_ms = self.unix_ms(w, e.last_seen().nanos(), unix_ns);
        let start_ms = match cached {
            Some(c) if c.packets == [0, 0] => self.unix_ms(w, c.first_ns, unix_ns),
            Some(c) => self.unix_ms(w, c.exported_ns, unix_ns),
            None => end_ms,
        }
        .min(end_ms);
        let translated = *reply != key.reply();
        let flags = tcp_flags(e);
        let (all_p, all_b) = counts(e);
        // The N of `etherN` the connection entered on, 0 when unknown: the
        // original direction's ingress, the reply's egress.
        let iface = cached
            .map(|c| c.in_port)
            .filter(|&p| p != Decision::UNKNOWN_PORT)
            .map_or(0, |p| u32::from(p) + 1);
        for (d, pre, post) in [(0, key, reply), (1, reply, key)] {
            let (done_p, done_b) = cached.map_or((0, 0), |c| (c.packets[d], c.bytes[d]));
            let packets = all_p[d].wrapping_sub(done_p);
            if packets == 0 {
                continue;
            }
            let (src_port, dst_port) = ports(pre);
            let nat = translated.then(|| post_nat(pre, post));
            out.push(Record::Flow(FlowRecord {
                src: ip(&pre.src, pre),
                dst: ip(&pre.dst, pre),
                src_port,
                dst_port,
                protocol: pre.proto,
                packets,
                bytes: all_b[d].wrapping_sub(done_b),
                start_ms,
                end_ms,
                tcp_flags: flags[d],
                in_if: if d == 0 { iface } else { 0 },
                out_if: if d == 0 { 0 } else { iface },
                end_reason: reason,
                nat,
            }));
        }
    }

    fn nat_event(&self, ev: &ConnEvent, kind: NatEventKind, out: &mut Vec<Record>) {
        let (key, reply) = (ev.key(), &ev.reply);
        if *reply == key.reply() {
            return;
        }
        let (src_port, dst_port) = ports(key);
        out.push(Record::NatEvent(NatEvent {
            kind,
            time_ms: self.unix_ms(ev.id.worker(), ev.time.nanos(), 0),
            protocol: key.proto,
            src: ip(&key.src, key),
            dst: ip(&key.dst, key),
            src_port,
            dst_port,
            nat: post_nat(key, reply),
        }));
    }
}

/// Packets and bytes of both directions.
fn counts(e: &Entry) -> ([u64; 2], [u64; 2]) {
    (
        [e.packets(Dir::Orig), e.packets(Dir::Reply)],
        [e.bytes(Dir::Orig), e.bytes(Dir::Reply)],
    )
}

fn ip(a: &dataplane::flow::Addr, k: &Key) -> IpAddr {
    a.to_ip(k.family)
}

/// The post-NAT tuple of packets that arrived with key `pre`, whose other
/// direction's key is `post` (they leave as `post` reversed). ICMP keeps
/// its type and code (the destination port of the record); the identifier
/// a NAT may change is not a port of the record.
fn post_nat(pre: &Key, post: &Key) -> Translation {
    let (src_port, dst_port) = match pre.proto {
        proto::ICMP | proto::ICMPV6 => (0, ports(pre).1),
        proto::GRE => (0, 0),
        _ => (post.dport, post.sport),
    };
    Translation {
        src: ip(&post.dst, post),
        dst: ip(&post.src, post),
        src_port,
        dst_port,
    }
}

/// A key's ports as flow records carry them: TCP/UDP (and other port
/// protocols) their ports; ICMP `0` and `type << 8 | code`; GRE and the
/// rest none.
fn ports(k: &Key) -> (u16, u16) {
    match k.proto {
        proto::ICMP | proto::ICMPV6 => (0, k.dport),
        proto::GRE => (0, 0),
        _ => (k.sport, k.dport),
    }
}

/// TCP flags per direction, derived from the connection's state (the entry
/// does not keep the OR of the flags seen): the originator's SYN, the
/// responder's SYN-ACK once seen, ACK from both once established, FIN from
/// both once closing.
fn tcp_flags(e: &Entry) -> [u8; 2] {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let Some(st) = e.tcp_state() else {
        return [0, 0];
    };
    let mut f = [SYN, 0];
    if e.seen_reply() {
        f[1] = SYN | ACK;
    }
    if !matches!(
        st,
        TcpState::None | TcpState::SynSent | TcpState::SynSent2 | TcpState::SynReceived
    ) {
        f[0] |= ACK;
        f[1] |= ACK;
    }
    if matches!(
        st,
        TcpState::FinWait
            | TcpState::CloseWait
            | TcpState::LastAck
            | TcpState::TimeWait
            | TcpState::Close
    ) {
        f[0] |= FIN;
        f[1] |= FIN;
    }
    f
}

/// IPFIX `flowEndReason` for a connection that went for `why`.
fn end_reason(why: DestroyReason, e: &Entry) -> EndReason {
    match why {
        DestroyReason::Expired
            if matches!(e.tcp_state(), Some(TcpState::TimeWait | TcpState::Close)) =>
        {
            EndReason::EndOfFlow
        }
        DestroyReason::Expired => EndReason::IdleTimeout,
        DestroyReason::Closed => EndReason::EndOfFlow,
        DestroyReason::Removed => EndReason::ForcedEnd,
        DestroyReason::EarlyDrop => EndReason::LackOfResources,
    }
}

// ---- metrics ------------------------------------------------------------------

/// The `/metrics` families of events and flow export:
/// `ctrack_events_dropped_total{worker}`,
/// `ctrack_events_subscriber_dropped_total{subscriber}` and, with an
/// exporter, `ctrack_flow_export_{records,datagrams,send_errors,skipped}_total{target}`,
/// `ctrack_flow_export_cache_full_total`, `ctrack_flow_export_cache_stale_total`,
/// `ctrack_flow_export_cache_entries`.
pub fn metric_families(
    hub: &EventHub,
    export: Option<&ExportCounters>,
) -> Vec<prometheus::proto::MetricFamily> {
    use prometheus::core::Collector;
    use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
    fn counter(
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (String, u64)>,
    ) -> Vec<prometheus::proto::MetricFamily> {
        let Ok(c) = IntCounterVec::new(Opts::new(name, help), &[label]) else {
            return Vec::new();
        };
        for (l, v) in samples {
            c.with_label_values(&[l.as_str()]).inc_by(v);
        }
        c.collect()
    }
    let mut out = counter(
        "ctrack_events_dropped_total",
        "Connection events a worker dropped: its ring to the control side, or its shard's buffer, was full.",
        "worker",
        hub.worker_dropped()
            .into_iter()
            .enumerate()
            .map(|(w, v)| (w.to_string(), v)),
    );
    out.extend(counter(
        "ctrack_events_subscriber_dropped_total",
        "Connection events a subscriber (flow-export, listen) missed: its channel was full.",
        "subscriber",
        hub.subscriber_dropped(),
    ));
    if let Some(e) = export {
        let per_target = |f: fn(&TargetCounters) -> &AtomicU64| {
            e.targets
                .iter()
                .map(move |(t, c)| (t.clone(), f(c).load(Ordering::Relaxed)))
                .collect::<Vec<_>>()
        };
        out.extend(counter(
            "ctrack_flow_export_records_total",
            "Flow records and NAT events encoded for a traffic-flow target.",
            "target",
            per_target(|c| &c.records),
        ));
        out.extend(counter(
            "ctrack_flow_export_datagrams_total",
            "NetFlow/IPFIX datagrams sent to a traffic-flow target.",
            "target",
            per_target(|c| &c.datagrams),
        ));
        out.extend(counter(
            "ctrack_flow_export_send_errors_total",
            "Datagrams the socket refused to send to a traffic-flow target.",
            "target",
            per_target(|c| &c.send_errors),
        ));
        out.extend(counter(
            "ctrack_flow_export_skipped_total",
            "Records that could not be encoded for a target (NAT events to NetFlow v9).",
            "target",
            per_target(|c| &c.skipped),
        ));
        if let Ok(c) = IntCounter::with_opts(Opts::new(
            "ctrack_flow_export_cache_full_total",
            "Connections the flow cache had no room for (cache-entries).",
        )) {
            c.inc_by(e.cache_full.load(Ordering::Relaxed));
            out.extend(c.collect());
        }
        if let Ok(c) = IntCounter::with_opts(Opts::new(
            "ctrack_flow_export_cache_stale_total",
            "Cached connections two walks did not find (their destroy event was lost): forgotten.",
        )) {
            c.inc_by(e.cache_stale.load(Ordering::Relaxed));
            out.extend(c.collect());
        }
        if let Ok(g) = IntGauge::with_opts(Opts::new(
            "ctrack_flow_export_cache_entries",
            "Connections in the flow cache now.",
        )) {
            g.set(e.cache_entries.load(Ordering::Relaxed) as i64);
            out.extend(g.collect());
        }
    }
    out.retain(|f| !f.get_metric().is_empty());
    out
}

// ---- the exporter thread ---------------------------------------------------

/// Counters of one target, for metrics.
#[derive(Debug, Default)]
pub struct TargetCounters {
    pub records: AtomicU64,
    pub datagrams: AtomicU64,
    pub send_errors: AtomicU64,
    pub skipped: AtomicU64,
}

/// What metrics read of a running exporter.
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// `(dst-address:port, counters)` per enabled target.
    pub targets: Vec<(String, Arc<TargetCounters>)>,
    pub cache_full: AtomicU64,
    pub cache_stale: AtomicU64,
    pub cache_entries: AtomicU64,
}

/// Visits every live connection of every worker (a chunked walk), or fails.
pub type WalkFn = Box<dyn Fn(&mut dyn FnMut(&RawConn)) -> Result<(), String> + Send>;

struct Target {
    key: TargetKey,
    socket: UdpSocket,
    exporter: Exporter,
    counters: Arc<TargetCounters>,
}

/// What identifies a target's socket and encoder.
type TargetKey = (SocketAddr, Version, Option<IpAddr>);

/// New settings for a running exporter thread, prepared (sockets open) by
/// [`FlowExporter::reconfigure`]: targets it already has are kept (`None`).
struct Reconfig {
    cfg: TrafficFlow,
    ports: Option<Vec<u16>>,
    targets: Vec<(TargetKey, Option<Target>)>,
    /// What metrics read from now on.
    counters: Arc<ExportCounters>,
}

/// Between [`FlowExporter::reconfigure`] and the thread.
#[derive(Default)]
struct Shared {
    /// Settings waiting for the thread to take them.
    next: Option<Reconfig>,
    /// The targets the thread has now, with their counters.
    running: Vec<(TargetKey, Arc<TargetCounters>)>,
}

impl Shared {
    fn running(&self, key: &TargetKey) -> Option<&Arc<TargetCounters>> {
        self.running.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }
}

/// A running exporter thread.
pub struct FlowExporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: parking_lot::Mutex<Arc<ExportCounters>>,
    shared: Arc<parking_lot::Mutex<Shared>>,
    boot_ms: u64,
}

/// Records batched before they are encoded and sent (at least every
/// [`FLUSH_EVERY`]).
const BATCH: usize = 256;
const FLUSH_EVERY: StdDuration = StdDuration::from_millis(100);
/// Events the exporter's subscription holds.
pub const SUBSCRIPTION: usize = 64 * 1024;

fn unix_ns_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Opens the socket and the encoder of target `t`.
fn open_target(t: &FlowTarget, boot_ms: u64) -> Result<Target, TrafficFlowError> {
    let src = t.src_address.unwrap_or(if t.dst_address.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let dst = SocketAddr::new(t.dst_address, t.port);
    let socket = UdpSocket::bind(SocketAddr::new(src, 0))
        .and_then(|s| s.connect(dst).map(|()| s))
        .map_err(|e| TrafficFlowError {
            field: "target",
            message: format!("{dst} (src-address {src}): {e}"),
        })?;
    let exporter =
        Exporter::new(ExporterConfig::new(t.version), boot_ms).map_err(|e| TrafficFlowError {
            field: "target version",
            message: e.to_string(),
        })?;
    Ok(Target {
        key: t.socket_key(),
        socket,
        exporter,
        counters: Arc::new(TargetCounters::default()),
    })
}

fn enabled_targets(cfg: &TrafficFlow) -> impl Iterator<Item = &FlowTarget> {
    cfg.targets.iter().filter(|t| !t.disabled)
}

impl FlowExporter {
    /// Opens a socket per target and starts the exporter thread on `hub`'s
    /// events; `walk` lists the live connections for the timeouts and the
    /// final export. `ports`: `interfaces` resolved ([`resolve_interfaces`]).
    pub fn start(
        cfg: &TrafficFlow,
        ports: Option<Vec<u16>>,
        hub: &EventHub,
        walk: WalkFn,
    ) -> Result<FlowExporter, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let boot_ms = unix_ns_now() / 1_000_000;
        let mut targets: Vec<Target> = Vec::new();
        let mut counters = ExportCounters::default();
        for t in enabled_targets(cfg) {
            if targets.iter().any(|o| o.key == t.socket_key()) {
                continue;
            }
            let target = open_target(t, boot_ms).map_err(|e| e.to_string())?;
            counters
                .targets
                .push((target.key.0.to_string(), target.counters.clone()));
            targets.push(target);
        }
        let shared = Arc::new(parking_lot::Mutex::new(Shared {
            next: None,
            running: targets
                .iter()
                .map(|t| (t.key, t.counters.clone()))
                .collect(),
        }));
        let counters = Arc::new(counters);
        // Updates change nothing the records show.
        let sub = hub.subscribe(
            "flow-export",
            Box::new(|e| e.kind != EventKind::Update),
            SUBSCRIPTION,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut cache = FlowCache::new(cfg.clone());
        cache.set_ports(ports);
        let mut run = Run {
            cache,
            targets,
            counters: counters.clone(),
            batch: Vec::with_capacity(BATCH),
        };
        let (stop_t, shared_t) = (stop.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("ctrack-flow-export".to_string())
            .spawn(move || run.run(&sub, &walk, &stop_t, &shared_t))
            .map_err(|e| format!("starting the flow exporter: {e}"))?;
        Ok(FlowExporter {
            stop,
            thread: Some(thread),
            counters: parking_lot::Mutex::new(counters),
            shared,
            boot_ms,
        })
    }

    /// The counters metrics show (they change with the targets).
    pub fn counters(&self) -> Arc<ExportCounters> {
        self.counters.lock().clone()
    }

    /// Takes new settings without a restart: the flow cache stays, targets
    /// that stay keep their socket, sequence numbers and counters, new ones
    /// are opened here (an error changes nothing), removed ones close. The
    /// thread switches between two batches: every record goes wholly to
    /// the old targets or wholly to the new.
    pub fn reconfigure(
        &self,
        cfg: &TrafficFlow,
        ports: Option<Vec<u16>>,
    ) -> Result<(), TrafficFlowError> {
        cfg.validate()?;
        let mut shared = self.shared.lock();
        let pending_has = |shared: &Shared, key: &TargetKey| {
            shared
                .next
                .as_ref()
                .is_some_and(|r| r.targets.iter().any(|(k, t)| k == key && t.is_some()))
        };
        // First every socket the change needs (an error changes nothing).
        let mut keys: Vec<TargetKey> = Vec::new();
        let mut fresh: Vec<Target> = Vec::new();
        for t in enabled_targets(cfg) {
            let key = t.socket_key();
            if keys.contains(&key) {
                continue;
            }
            keys.push(key);
            if shared.running(&key).is_none() && !pending_has(&shared, &key) {
                fresh.push(open_target(t, self.boot_ms)?);
            }
        }
        // Sockets of a change the thread has not taken yet are reused.
        let mut unclaimed: Vec<Target> = shared
            .next
            .take()
            .map(|r| r.targets.into_iter().filter_map(|(_, t)| t).collect())
            .unwrap_or_default();
        let mut counters = ExportCounters::default();
        let mut targets = Vec::new();
        for key in keys {
            let label = key.0.to_string();
            let target = if shared.running(&key).is_some() {
                None
            } else if let Some(i) = unclaimed.iter().position(|u| u.key == key) {
                Some(unclaimed.swap_remove(i))
            } else {
                let i = fresh.iter().position(|u| u.key == key);
                i.map(|i| fresh.swap_remove(i))
            };
            let c = match &target {
                Some(t) => t.counters.clone(),
                None => shared.running(&key).cloned().unwrap_or_default(),
            };
            counters.targets.push((label, c.clone()));
            targets.push((key, target, c));
        }
        let old = self.counters();
        for (new, old) in [
            (&counters.cache_full, &old.cache_full),
            (&counters.cache_stale, &old.cache_stale),
            (&counters.cache_entries, &old.cache_entries),
        ] {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let counters = Arc::new(counters);
        shared.next = Some(Reconfig {
            cfg: cfg.clone(),
            ports,
            targets: targets.into_iter().map(|(k, t, _)| (k, t)).collect(),
            counters: counters.clone(),
        });
        *self.counters.lock() = counters;
        Ok(())
    }

    /// Exports what is left (the rest of the events, then every live
    /// connection, forced end) and stops. Call while the workers still run.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FlowExporter {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Run {
    cache: FlowCache,
    targets: Vec<Target>,
    counters: Arc<ExportCounters>,
    batch: Vec<Record>,
}

impl Run {
    fn run(
        &mut self,
        sub: &Subscription,
        walk: &WalkFn,
        stop: &AtomicBool,
        shared: &parking_lot::Mutex<Shared>,
    ) {
        // Takes new settings, if any, and says which targets it now has.
        let take = |run: &mut Run| {
            let mut sh = shared.lock();
            let r = sh.next.take()?;
            sh.running = r
                .targets
                .iter()
                .map(|(k, t)| {
                    let c = match t {
                        Some(t) => t.counters.clone(),
                        None => sh.running(k).cloned().unwrap_or_default(),
                    };
                    (*k, c)
                })
                .collect();
            drop(sh);
            run.reconfigure(r);
            Some(())
        };
        let mut every = self.cache.walk_every();
        let mut last_walk = std::time::Instant::now();
        let mut last_flush = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(ev) = sub.rx.recv_timeout(FLUSH_EVERY) {
                self.cache.on_event(&ev, unix_ns_now(), &mut self.batch);
            }
            if take(self).is_some() {
                every = self.cache.walk_every();
            }
            if last_walk.elapsed() >= every {
                self.walk(walk, false);
                last_walk = std::time::Instant::now();
            }
            if self.batch.len() >= BATCH || last_flush.elapsed() >= FLUSH_EVERY {
                self.flush();
                last_flush = std::time::Instant::now();
            }
        }
        take(self);
        // The events the hub has delivered, then what still lives.
        while let Ok(ev) = sub.rx.try_recv() {
            self.cache.on_event(&ev, unix_ns_now(), &mut self.batch);
            if self.batch.len() >= BATCH {
                self.flush();
            }
        }
        self.walk(walk, true);
        self.flush();
    }

    /// Sends what is batched to the old targets, then switches.
    fn reconfigure(&mut self, r: Reconfig) {
        self.flush();
        let mut old = std::mem::take(&mut self.targets);
        for (key, fresh) in r.targets {
            let target = match fresh {
                Some(t) => Some(t),
                None => old
                    .iter()
                    .position(|t| t.key == key)
                    .map(|i| old.swap_remove(i)),
            };
            self.targets.extend(target);
        }
        self.cache.set_config(r.cfg);
        self.cache.set_ports(r.ports);
        self.counters = r.counters;
        self.flush();
    }

    fn walk(&mut self, walk: &WalkFn, force: bool) {
        let now = unix_ns_now();
        self.cache.begin_walk();
        let r = walk(&mut |raw| {
            self.cache.on_row(raw, now, force, &mut self.batch);
            if self.batch.len() >= BATCH {
                self.flush();
            }
        });
        match r {
            Ok(()) => self.cache.end_walk(),
            Err(e) => tracing::warn!("flow export: the connection walk failed: {e}"),
        }
    }

    fn flush(&mut self) {
        let c = &self.counters;
        c.cache_full
            .store(self.cache.stats().cache_full, Ordering::Relaxed);
        c.cache_stale
            .store(self.cache.stats().stale, Ordering::Relaxed);
        c.cache_entries
            .store(self.cache.len() as u64, Ordering::Relaxed);
        if self.batch.is_empty() {
            return;
        }
        let now_ms = unix_ns_now() / 1_000_000;
        for t in &mut self.targets {
            let tc = &t.counters;
            let socket = &t.socket;
            t.exporter.export(now_ms, &self.batch, |dgram| {
                if socket.send(dgram).is_err() {
                    tc.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            });
            let s = t.exporter.stats();
            tc.records.store(s.records, Ordering::Relaxed);
            tc.datagrams.store(s.datagrams, Ordering::Relaxed);
            tc.skipped.store(s.skipped, Ordering::Relaxed);
        }
        self.batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::conntrack::key::HashSeed;
    use dataplane::conntrack::{Instant, Settings, Shard, TableConfig};
    use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple};

    fn udp(sp: u16, reply: bool) -> FlowRepr {
        let (a, b) = (Addr::from_v4([10, 0, 0, 1]), Addr::from_v4([10, 0, 0, 2]));
        let (src, dst, src_port, dst_port) = if reply {
            (b, a, 53, sp)
        } else {
            (a, b, sp, 53)
        };
        FlowRepr {
            tuple: Tuple {
                src,
                dst,
                src_port,
                dst_port,
                proto: proto::UDP,
                family: Family::V4,
            },
            ip_len: 100,
            l4: L4::Udp,
        }
    }

    const S: u64 = 1_000_000_000;
    /// Unix time of worker time 0.
    const EPOCH: u64 = 1_764_500_000 * S;

    fn flows(out: &[Record]) -> Vec<FlowRecord> {
        out.iter()
            .filter_map(|r| match r {
                Record::Flow(f) => Some(*f),
                Record::NatEvent(_) => None,
            })
            .collect()
    }

    /// A small shard recording its events.
    fn shard_with_events() -> Shard {
        let mut s = Shard::new(
            TableConfig::new(64),
            Settings::default(),
            0,
            HashSeed::from_u64(1),
        );
        s.set_events(64);
        s
    }

    fn feed(cache: &mut FlowCache, s: &mut Shard, out: &mut Vec<Record>) {
        let evs: Vec<ConnEvent> = s.drain_events().collect();
        for ev in evs {
            // Received 1 ms after it happened.
            cache.on_event(&ev, EPOCH + ev.time.nanos() + 1_000_000, out);
        }
    }

    #[test]
    fn a_connection_is_exported_when_it_ends_one_record_per_direction() {
        let mut s = shard_with_events();
        let mut cache = FlowCache::new(TrafficFlow::default());
        let mut out = Vec::new();
        for t in 1..=3 {
            s.handle_packet(Instant::from_secs(t), &udp(1000, false));
        }
        s.handle_packet(Instant::from_secs(4), &udp(1000, true));
        // A one-way flow: no reply record.
        s.handle_packet(Instant::from_secs(4), &udp(2000, false));
        feed(&mut cache, &mut s, &mut out);
        assert!(out.is_empty());
        assert_eq!(cache.len(), 2);
        s.poll_expired(Instant::from_secs(1000), 100);
        feed(&mut cache, &mut s, &mut out);
        assert!(cache.is_empty());
        let f = flows(&out);
        assert_eq!(f.len(), 3, "{f:?}");
        let orig = f.iter().find(|r| r.src_port == 1000).unwrap();
        assert_eq!((orig.packets, orig.bytes), (3, 300));
        assert_eq!(orig.dst_port, 53);
        assert_eq!(orig.start_ms, (EPOCH + S) / 1_000_000 + 1);
        assert_eq!(orig.end_ms, (EPOCH + 4 * S) / 1_000_000 + 1);
        assert_eq!(orig.end_reason, EndReason::IdleTimeout);
        assert!(orig.nat.is_none());
        let reply = f.iter().find(|r| r.dst_port == 1000).unwrap();
        assert_eq!((reply.packets, reply.src_port), (1, 53));
        assert_eq!(reply.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let one_way: Vec<_> = f
            .iter()
            .filter(|r| r.src_port == 2000 || r.dst_port == 2000)
            .collect();
        assert_eq!(one_way.len(), 1);
    }

    #[test]
    fn a_long_connection_is_exported_every_active_timeout_with_deltas() {
        let mut s = shard_with_events();
        let cfg = TrafficFlow {
            active_flow_timeout: Duration::from_secs(60),
            inactive_flow_timeout: Duration::from_secs(15),
            ..TrafficFlow::default()
        };
        let mut cache = FlowCache::new(cfg);
        assert_eq!(cache.walk_every(), StdDuration::from_secs(15));
        let mut out = Vec::new();
        let walk =
            |cache: &mut FlowCache, s: &Shard, t: u64, force: bool, out: &mut Vec<Record>| {
                s.for_each_snapshot(Instant::from_secs(t), |raw| {
                    cache.on_row(&raw, EPOCH + t * S + 1_000_000, force, out)
                });
            };
        // A packet and its reply every 10 s: never idle.
        for t in (0..=130).step_by(10) {
            s.handle_packet(Instant::from_secs(t), &udp(1000, false));
            s.handle_packet(Instant::from_secs(t), &udp(1000, true));
            feed(&mut cache, &mut s, &mut out);
            walk(&mut cache, &s, t, false, &mut out);
        }
        let f = flows(&out);
        // At 60 s and 120 s: both directions, 7 then 6 packets each.
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f.iter().all(|r| r.end_reason == EndReason::ActiveTimeout));
        assert_eq!(
            f.iter().map(|r| r.packets).collect::<Vec<_>>(),
            [7, 7, 6, 6]
        );
        assert_eq!(f[2].start_ms, (EPOCH + 60 * S) / 1_000_000 + 1);
        out.clear();
        // Stopping: the rest (130 s: 1 packet each way) as forced end.
        walk(&mut cache, &s, 131, true, &mut out);
        let f = flows(&out);
        assert_eq!(f.iter().map(|r| r.packets).collect::<Vec<_>>(), [1, 1]);
        assert!(f.iter().all(|r| r.end_reason == EndReason::ForcedEnd));
        // Idle 15 s: exported once, then nothing more until it carries packets.
        out.clear();
        s.handle_packet(Instant::from_secs(140), &udp(1000, false));
        walk(&mut cache, &s, 150, false, &mut out);
        assert!(out.is_empty());
        walk(&mut cache, &s, 156, false, &mut out);
        let f = flows(&out);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].packets, f[0].end_reason), (1, EndReason::IdleTimeout));
        out.clear();
        walk(&mut cache, &s, 200, false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_cache_is_counted_and_its_connections_still_exported() {
        let mut s = shard_with_events();
        let mut cache = FlowCache::new(TrafficFlow {
            cache_entries: 1,
            ..TrafficFlow::default()
        });
        let mut out = Vec::new();
        s.handle_packet(Instant::from_secs(1), &udp(1, false));
        s.handle_packet(Instant::from_secs(1), &udp(2, false));
        feed(&mut cache, &mut s, &mut out);
        assert_eq!(cache.stats().cache_full, 1);
        s.poll_expired(Instant::from_secs(1000), 100);
        feed(&mut cache, &mut s, &mut out);
        assert_eq!(flows(&out).len(), 2);
    }

    #[test]
    fn tcp_flags_follow_the_state() {
        let mut e_flags = None;
        let mut s = shard_with_events();
        let tcp = |src: [u8; 4], sp, dst: [u8; 4], dp, flags, seq, ack| FlowRepr {
            tuple: Tuple {
                src: Addr::from_v4(src),
                dst: Addr::from_v4(dst),
                src_port: sp,
                dst_port: dp,
                proto: proto::TCP,
                family: Family::V4,
            },
            ip_len: 60,
            l4: L4::Tcp(dataplane::flow::TcpInfo {
                seq,
                ack,
                flags,
                window: 65535,
                wscale: None,
                sack_perm: false,
                payload_len: 0,
            }),
        };
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let t = Instant::from_secs(1);
        s.handle_packet(t, &tcp(a, 1000, b, 80, 0x02, 100, 0));
        s.handle_packet(t, &tcp(b, 80, a, 1000, 0x12, 500, 101));
        s.handle_packet(t, &tcp(a, 1000, b, 80, 0x10, 101, 501));
        s.handle_packet(t, &tcp(a, 1000, b, 80, 0x11, 101, 501));
        for ev in s.drain_events() {
            e_flags = Some(tcp_flags(&ev.entry));
        }
        assert_eq!(e_flags, Some([0x13, 0x13]));
        assert_eq!(
            config_of("[traffic-flow]\nenabled = \"yes\"\ncache-entries = \"8k\"\n[[traffic-flow.target]]\ndst-address = \"127.0.0.1\"\nversion = \"ipfix\"\n")
                .unwrap()
                .cache_entries,
            8192
        );
    }

    #[test]
    fn metrics_show_event_drops_and_export_counters() {
        let rings: Vec<_> = (0..2)
            .map(|_| Arc::new(dataplane::events::EventRing::new(1)))
            .collect();
        let hub = EventHub::new(rings.clone());
        let _sub = hub.subscribe("flow-export", Box::new(|_| true), 1);
        let mut s = shard_with_events();
        for p in 0..3 {
            s.handle_packet(Instant::from_secs(1), &udp(p, false));
        }
        let evs: Vec<ConnEvent> = s.drain_events().collect();
        // The first fills worker 1's ring of one (the second does not fit:
        // the worker would count it); the hub moves it into the
        // subscription of one, where the second then finds no room.
        assert!(rings[1].push(evs[0]));
        assert!(!rings[1].push(evs[1]));
        hub.pump();
        assert!(rings[1].push(evs[1]));
        hub.pump();
        let counters = ExportCounters {
            targets: vec![(
                "127.0.0.1:2055".to_string(),
                Arc::new(TargetCounters::default()),
            )],
            ..ExportCounters::default()
        };
        counters.targets[0].1.records.store(7, Ordering::Relaxed);
        counters.cache_entries.store(3, Ordering::Relaxed);
        let fams = metric_families(&hub, Some(&counters));
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &fams, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("ctrack_events_dropped_total{worker=\"0\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("ctrack_events_subscriber_dropped_total{subscriber=\"flow-export\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ctrack_flow_export_records_total{target=\"127.0.0.1:2055\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("ctrack_flow_export_send_errors_total{target=\"127.0.0.1:2055\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("ctrack_flow_export_cache_entries 3"),
            "{text}"
        );
        assert!(
            text.contains("ctrack_flow_export_cache_full_total 0"),
            "{text}"
        );
    }

    #[test]
    fn connections_whose_destroy_was_lost_leave_the_cache_after_two_walks() {
        let mut s = shard_with_events();
        let mut cache = FlowCache::new(TrafficFlow::default());
        let mut out = Vec::new();
        s.handle_packet(Instant::from_secs(1), &udp(1, false));
        s.handle_packet(Instant::from_secs(1), &udp(2, false));
        feed(&mut cache, &mut s, &mut out);
        assert_eq!(cache.len(), 2);
        // One goes, its destroy event lost.
        let (id, _) = s
            .lookup(&dataplane::conntrack::Key::of_packet(
                &udp(1, false).tuple,
                &L4::Udp,
            ))
            .unwrap();
        assert!(s.remove(id));
        s.drain_events().for_each(drop);
        let walk = |cache: &mut FlowCache, s: &Shard, out: &mut Vec<Record>| {
            cache.begin_walk();
            s.for_each_snapshot(Instant::from_secs(2), |raw| {
                cache.on_row(&raw, EPOCH + 2 * S, false, out)
            });
            cache.end_walk();
        };
        walk(&mut cache, &s, &mut out);
        assert_eq!(cache.len(), 2, "one walk is not enough");
        walk(&mut cache, &s, &mut out);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.stats().stale, 1);
        walk(&mut cache, &s, &mut out);
        assert_eq!(cache.len(), 1, "the live one stays");
    }

    /// A connection committed with a NAT decision (its replies come back
    /// to `203.0.113.7:4000`: source NAT) is exported with its post-NAT
    /// tuple in both directions, and logged as NAT events.
    #[test]
    fn a_translated_connection_carries_its_post_nat_tuple() {
        use dataplane::conntrack::{Decision, Verdict};
        let mut s = shard_with_events();
        let mut cache = FlowCache::new(TrafficFlow {
            nat_events: true,
            ..TrafficFlow::default()
        });
        let mut out = Vec::new();
        let first = udp(1000, false);
        let key = Key::of_packet(&first.tuple, &first.l4);
        let mut reply = key.reply();
        reply.dst = Addr::from_v4([203, 0, 113, 7]);
        reply.dport = 4000;
        let pkts = [first];
        let mut v = [Verdict::New];
        assert_eq!(s.lookup_burst(Instant::from_secs(1), &pkts, &mut v), 1);
        let d = Decision {
            reply: Some(reply),
            ..Decision::ACCEPT
        };
        s.commit_burst(Instant::from_secs(1), &pkts, &[d], &mut v);
        // The answer, as it comes back to the translated address.
        let answer = FlowRepr {
            tuple: Tuple {
                src: reply.src,
                dst: reply.dst,
                src_port: reply.sport,
                dst_port: reply.dport,
                proto: proto::UDP,
                family: Family::V4,
            },
            ip_len: 100,
            l4: L4::Udp,
        };
        s.handle_packet(Instant::from_secs(2), &answer);
        feed(&mut cache, &mut s, &mut out);
        s.poll_expired(Instant::from_secs(1000), 100);
        feed(&mut cache, &mut s, &mut out);
        let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
        let f = flows(&out);
        assert_eq!(f.len(), 2, "{f:?}");
        let orig = f.iter().find(|r| r.src_port == 1000).unwrap();
        assert_eq!(
            orig.nat,
            Some(Translation {
                src: v4([203, 0, 113, 7]),
                dst: v4([10, 0, 0, 2]),
                src_port: 4000,
                dst_port: 53,
            })
        );
        // The reply arrived for 203.0.113.7:4000 and left for 10.0.0.1:1000.
        let back = f.iter().find(|r| r.src_port == 53).unwrap();
        assert_eq!((back.dst, back.dst_port), (v4([203, 0, 113, 7]), 4000));
        assert_eq!(
            back.nat,
            Some(Translation {
                src: v4([10, 0, 0, 2]),
                dst: v4([10, 0, 0, 1]),
                src_port: 53,
                dst_port: 1000,
            })
        );
        let events: Vec<NatEvent> = out
            .iter()
            .filter_map(|r| match r {
                Record::NatEvent(e) => Some(*e),
                Record::Flow(_) => None,
            })
            .collect();
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [NatEventKind::SessionCreate, NatEventKind::SessionDelete]
        );
        assert_eq!(events[0].nat, orig.nat.unwrap());
        assert_eq!((events[0].src_port, events[0].dst_port), (1000, 53));
        // An untranslated connection has neither.
        out.clear();
        s.handle_packet(Instant::from_secs(1001), &udp(2000, false));
        s.poll_expired(Instant::from_secs(2000), 100);
        feed(&mut cache, &mut s, &mut out);
        assert_eq!(out.len(), 1);
        assert!(flows(&out)[0].nat.is_none());
    }

    /// `interfaces=ether2`: only connections whose first packet entered on
    /// port 1 are exported, with the interface in their records.
    #[test]
    fn only_connections_of_the_listed_interfaces_are_exported() {
        use dataplane::conntrack::Verdict;
        let mut s = shard_with_events();
        let mut cache = FlowCache::new(TrafficFlow::default());
        let names = crate::firewall::default_interfaces(2);
        cache.set_ports(resolve_interfaces("ether2", &names).unwrap());
        let mut out = Vec::new();
        let pkts = [udp(1000, false), udp(2000, false)];
        let mut v = [Verdict::New; 2];
        assert_eq!(s.lookup_burst(Instant::from_secs(1), &pkts, &mut v), 2);
        let on = |p| Decision {
            in_port: p,
            ..Decision::ACCEPT
        };
        s.commit_burst(Instant::from_secs(1), &pkts, &[on(0), on(1)], &mut v);
        s.handle_packet(Instant::from_secs(2), &udp(2000, true));
        feed(&mut cache, &mut s, &mut out);
        assert_eq!(cache.len(), 1);
        // A connection whose port is unknown is not exported either.
        s.handle_packet(Instant::from_secs(2), &udp(3000, false));
        feed(&mut cache, &mut s, &mut out);
        s.poll_expired(Instant::from_secs(1000), 100);
        feed(&mut cache, &mut s, &mut out);
        let f = flows(&out);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.iter().all(|r| r.src_port == 2000 || r.dst_port == 2000));
        let orig = f.iter().find(|r| r.src_port == 2000).unwrap();
        assert_eq!((orig.in_if, orig.out_if), (2, 0));
        let back = f.iter().find(|r| r.dst_port == 2000).unwrap();
        assert_eq!((back.in_if, back.out_if), (0, 2));
        // `all`: every connection, including one of unknown port.
        cache.set_ports(None);
        out.clear();
        s.handle_packet(Instant::from_secs(1001), &udp(4000, false));
        s.poll_expired(Instant::from_secs(2000), 100);
        feed(&mut cache, &mut s, &mut out);
        let f = flows(&out);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].in_if, 0);
    }

    fn config_of(text: &str) -> Result<TrafficFlow, String> {
        let f: crate::config::ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        f.traffic_flow.validate().map_err(|e| e.to_string())?;
        Ok(f.traffic_flow)
    }

    #[test]
    fn settings_parse_with_routeros_names_and_defaults() {
        let tf = config_of(
            "[traffic-flow]\nenabled = true\n[[traffic-flow.target]]\ndst-address = \"192.0.2.1\"\n",
        )
        .unwrap();
        assert!(tf.enabled);
        assert_eq!(tf.active_flow_timeout, Duration::from_secs(1800));
        assert_eq!(tf.inactive_flow_timeout, Duration::from_secs(15));
        assert_eq!(tf.cache_entries, 4096);
        assert_eq!(tf.targets[0].port, 2055);
        assert_eq!(tf.targets[0].version, Version::NetflowV9);
        let e = config_of("[traffic-flow]\ninterfaces = \"ether1,,ether2\"\n").unwrap_err();
        assert!(e.contains("interfaces"), "{e}");
        let names = ["ether1".to_string(), "wan".to_string()];
        assert_eq!(resolve_interfaces("all", &names), Ok(None));
        assert_eq!(
            resolve_interfaces("wan,ether1", &names),
            Ok(Some(vec![1, 0]))
        );
        let e = resolve_interfaces("ether2", &names).unwrap_err();
        assert_eq!(e.field, "interfaces");
        assert!(e.message.contains("ether1, wan"), "{e}");
        let e = config_of("[traffic-flow]\nenabled = \"maybe\"\n").unwrap_err();
        assert!(e.contains("yes or no"), "{e}");
        let e = config_of("[[traffic-flow.target]]\ndst-address = \"::1\"\nversion = \"5\"\n")
            .unwrap_err();
        assert!(e.contains("version"), "{e}");
        let e = config_of(
            "[[traffic-flow.target]]\ndst-address = \"::1\"\nsrc-address = \"10.0.0.1\"\n",
        )
        .unwrap_err();
        assert!(e.contains("src-address"), "{e}");
        let e = config_of("[traffic-flow]\ninactive-flow-timeout = \"0s\"\n").unwrap_err();
        assert!(e.contains("inactive-flow-timeout"), "{e}");
    }
}
