//! Flow export encoders, sans-io: values in, datagrams out.
//!
//! - NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) flow records: one record per
//!   direction of a connection (RouterOS `/ip traffic-flow` exports
//!   unidirectional flows too), IPv4 and IPv6, with the post-NAT tuple of
//!   that direction when the connection is translated.
//! - IPFIX NAT events (RFC 8158): NAT44 session create and delete, the record
//!   carrier-grade NAT operators must keep for every translation.
//!
//! The [`Exporter`] keeps what a stream of messages needs between calls:
//! sequence numbers, the observation domain, and when the templates were
//! last sent. Over UDP a collector that starts (or restarts) after the
//! exporter only learns the templates when they are sent again, so they are
//! re-sent every `template_every_packets` messages or `template_every_ms`
//! milliseconds, whichever comes first (RFC 7011 section 8.4, RFC 3954
//! section 9). Nothing here opens a socket or reads a clock: the caller
//! passes the time and sends the datagrams it is handed.
//!
//! A record that cannot be encoded (source and destination of different
//! address families, or a NAT event for a NetFlow v9 target: RFC 8158
//! defines them for IPFIX, and nfdump drops them from v9) is skipped and
//! counted in [`ExportStats::skipped`], never a panic.
#![deny(unsafe_code)]

use std::net::IpAddr;

/// Which wire format an exporter speaks (`/ip traffic-flow target version=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    /// NetFlow version 9, RFC 3954.
    NetflowV9,
    /// IPFIX, RFC 7011 (what RouterOS calls `version=ipfix`).
    Ipfix,
}

impl Version {
    /// The RouterOS value: `9` or `ipfix`.
    pub fn name(self) -> &'static str {
        match self {
            Version::NetflowV9 => "9",
            Version::Ipfix => "ipfix",
        }
    }
}

impl core::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Version, String> {
        match s {
            "9" => Ok(Version::NetflowV9),
            "ipfix" | "10" => Ok(Version::Ipfix),
            _ => Err(format!(
                "bad flow export version {s:?}: expected 9 or ipfix"
            )),
        }
    }
}

/// Why a flow record is exported: IPFIX `flowEndReason` (IANA values).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum EndReason {
    /// No packet for `inactive-flow-timeout` (the connection expired).
    IdleTimeout = 1,
    /// The flow is still active; `active-flow-timeout` passed since the last
    /// record for it.
    ActiveTimeout = 2,
    /// The connection ended (TCP close, removal).
    EndOfFlow = 3,
    /// The exporter is stopping.
    ForcedEnd = 4,
    /// The connection was evicted to make room (early drop).
    LackOfResources = 5,
}

/// The tuple of one direction after translation (what left the box).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// One direction of a connection, as a flow record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FlowRecord {
    /// The tuple as it arrived (pre-NAT). Both addresses must be of one family.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ports for TCP/UDP (and SCTP...); 0 otherwise. For ICMP, `dst_port`
    /// carries `type << 8 | code`, as NetFlow collectors expect.
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// Packets and bytes (IP header to end of payload) of this direction,
    /// since the previous record of this flow (delta counts).
    pub packets: u64,
    pub bytes: u64,
    /// First and last packet of the counted span, Unix time in milliseconds.
    pub start_ms: u64,
    pub end_ms: u64,
    /// TCP flags seen in this direction (OR of the flag bytes), 0 otherwise.
    pub tcp_flags: u8,
    /// Interface indexes (RouterOS: the interface's SNMP index; ctrack: the
    /// port number + 1, the `N` of `etherN`). 0 when unknown.
    pub in_if: u32,
    pub out_if: u32,
    pub end_reason: EndReason,
    /// The tuple after translation, when the connection is translated.
    pub nat: Option<Translation>,
}

/// RFC 8158 `natEvent` values that ctrack emits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum NatEventKind {
    /// NAT44 session create (IANA natEvent 4).
    SessionCreate = 4,
    /// NAT44 session delete (IANA natEvent 5).
    SessionDelete = 5,
}

/// One translation created or deleted (RFC 8158 section 4.1, NAT44 session
/// create/delete). IPv6 translations (NAT66, which RFC 8158 does not cover)
/// use the same event values with the IPv6 address elements.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NatEvent {
    pub kind: NatEventKind,
    /// When it happened, Unix time in milliseconds.
    pub time_ms: u64,
    pub protocol: u8,
    /// The original direction's tuple before translation...
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// ...and after.
    pub nat: Translation,
}

/// What [`Exporter::export`] encodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Record {
    Flow(FlowRecord),
    NatEvent(NatEvent),
}

/// Exporter settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExporterConfig {
    pub version: Version,
    /// IPFIX observation domain / NetFlow v9 source id.
    pub domain_id: u32,
    /// Largest datagram produced (IP MTU minus IP and UDP headers: 1472 on
    /// a 1500-byte Ethernet; the default 1400 leaves room for tunnels).
    pub max_datagram: usize,
    /// Templates are re-sent every this many messages...
    pub template_every_packets: u32,
    /// ...or this many milliseconds, whichever comes first.
    pub template_every_ms: u64,
}

impl ExporterConfig {
    pub fn new(version: Version) -> ExporterConfig {
        ExporterConfig {
            version,
            domain_id: 0,
            max_datagram: 1400,
            template_every_packets: 20,
            template_every_ms: 60_000,
        }
    }
}

/// A configuration the exporter cannot work with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The datagram limit cannot hold the templates and one record.
    #[error("max datagram size {0} is too small: at least {MIN_DATAGRAM} bytes")]
    DatagramTooSmall(usize),
    /// Larger than a UDP payload can be.
    #[error("max datagram size {0} is too large: at most 65507 bytes")]
    DatagramTooLarge(usize),
}

/// The smallest `max_datagram` accepted: a header, every template, and one
/// record of the largest kind.
pub const MIN_DATAGRAM: usize = 512;

/// Counters of an exporter's life.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ExportStats {
    /// Datagrams handed to the caller.
    pub datagrams: u64,
    /// Data records encoded.
    pub records: u64,
    /// Records that could not be encoded (mixed address families, NAT
    /// events for NetFlow v9).
    pub skipped: u64,
    /// Times the templates were sent.
    pub template_sends: u64,
}

// Information elements (IANA "IPFIX Information Elements"; NetFlow v9 field
// types use the same numbers for these).
mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const INGRESS_INTERFACE: u16 = 10;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const EGRESS_INTERFACE: u16 = 14;
    pub const LAST_SWITCHED: u16 = 21;
    pub const FIRST_SWITCHED: u16 = 22;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const FLOW_END_REASON: u16 = 136;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const POST_NAT_SOURCE_IPV4_ADDRESS: u16 = 225;
    pub const POST_NAT_DESTINATION_IPV4_ADDRESS: u16 = 226;
    pub const POST_NAPT_SOURCE_TRANSPORT_PORT: u16 = 227;
    pub const POST_NAPT_DESTINATION_TRANSPORT_PORT: u16 = 228;
    pub const NAT_EVENT: u16 = 230;
    pub const POST_NAT_SOURCE_IPV6_ADDRESS: u16 = 281;
    pub const POST_NAT_DESTINATION_IPV6_ADDRESS: u16 = 282;
    pub const OBSERVATION_TIME_MILLISECONDS: u16 = 323;
}

/// The data templates, one per record shape. Their ids are fixed, so a
/// collector's cache stays valid across an exporter restart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Flow4 = 256,
    Flow6 = 257,
    Flow4Nat = 258,
    Flow6Nat = 259,
    NatEvent4 = 260,
    NatEvent6 = 261,
}

const SHAPES: [Shape; 6] = [
    Shape::Flow4,
    Shape::Flow6,
    Shape::Flow4Nat,
    Shape::Flow6Nat,
    Shape::NatEvent4,
    Shape::NatEvent6,
];

impl Shape {
    /// The shapes a version has templates for.
    fn of(version: Version) -> &'static [Shape] {
        match version {
            Version::Ipfix => &SHAPES,
            Version::NetflowV9 => &SHAPES[..4],
        }
    }

    fn id(self) -> u16 {
        self as u16
    }

    fn v6(self) -> bool {
        matches!(self, Shape::Flow6 | Shape::Flow6Nat | Shape::NatEvent6)
    }

    /// `(information element, length)` in record order.
    fn fields(self, version: Version) -> Vec<(u16, u16)> {
        let a = if self.v6() { 16 } else { 4 };
        let (src, dst, post_src, post_dst) = if self.v6() {
            (
                ie::SOURCE_IPV6_ADDRESS,
                ie::DESTINATION_IPV6_ADDRESS,
                ie::POST_NAT_SOURCE_IPV6_ADDRESS,
                ie::POST_NAT_DESTINATION_IPV6_ADDRESS,
            )
        } else {
            (
                ie::SOURCE_IPV4_ADDRESS,
                ie::DESTINATION_IPV4_ADDRESS,
                ie::POST_NAT_SOURCE_IPV4_ADDRESS,
                ie::POST_NAT_DESTINATION_IPV4_ADDRESS,
            )
        };
        let post = [
            (post_src, a),
            (post_dst, a),
            (ie::POST_NAPT_SOURCE_TRANSPORT_PORT, 2),
            (ie::POST_NAPT_DESTINATION_TRANSPORT_PORT, 2),
        ];
        match self {
            Shape::NatEvent4 | Shape::NatEvent6 => {
                let mut f = vec![
                    (ie::OBSERVATION_TIME_MILLISECONDS, 8),
                    (ie::NAT_EVENT, 1),
                    (ie::PROTOCOL_IDENTIFIER, 1),
                    (src, a),
                    (dst, a),
                    (ie::SOURCE_TRANSPORT_PORT, 2),
                    (ie::DESTINATION_TRANSPORT_PORT, 2),
                ];
                f.extend(post);
                f
            }
            _ => {
                let mut f = vec![
                    (src, a),
                    (dst, a),
                    (ie::SOURCE_TRANSPORT_PORT, 2),
                    (ie::DESTINATION_TRANSPORT_PORT, 2),
                    (ie::PROTOCOL_IDENTIFIER, 1),
                    // IPFIX's tcpControlBits is 16 bits since RFC 7125;
                    // NetFlow v9's TCP_FLAGS is one byte.
                    (
                        ie::TCP_CONTROL_BITS,
                        if version == Version::Ipfix { 2 } else { 1 },
                    ),
                    (ie::INGRESS_INTERFACE, 4),
                    (ie::EGRESS_INTERFACE, 4),
                    (ie::PACKET_DELTA_COUNT, 8),
                    (ie::OCTET_DELTA_COUNT, 8),
                ];
                match version {
                    Version::Ipfix => f.extend([
                        (ie::FLOW_START_MILLISECONDS, 8),
                        (ie::FLOW_END_MILLISECONDS, 8),
                        (ie::FLOW_END_REASON, 1),
                    ]),
                    // v9 times are milliseconds of the exporter's uptime.
                    Version::NetflowV9 => {
                        f.extend([(ie::FIRST_SWITCHED, 4), (ie::LAST_SWITCHED, 4)])
                    }
                }
                if matches!(self, Shape::Flow4Nat | Shape::Flow6Nat) {
                    f.extend(post);
                }
                f
            }
        }
    }

    fn record_len(self, version: Version) -> usize {
        self.fields(version).iter().map(|&(_, l)| l as usize).sum()
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> Option<bool> {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(true),
        _ => None,
    }
}

impl Record {
    /// The template this record is encoded with, or `None` when its
    /// addresses are of mixed families, or it is a NAT event and the
    /// version NetFlow v9 (RFC 8158 events are IPFIX's).
    fn shape(&self, version: Version) -> Option<Shape> {
        match self {
            Record::Flow(f) => {
                let v6 = same_family(f.src, f.dst)?;
                if let Some(n) = f.nat
                    && same_family(n.src, n.dst)? != v6
                {
                    return None;
                }
                Some(match (v6, f.nat.is_some()) {
                    (false, false) => Shape::Flow4,
                    (true, false) => Shape::Flow6,
                    (false, true) => Shape::Flow4Nat,
                    (true, true) => Shape::Flow6Nat,
                })
            }
            Record::NatEvent(_) if version == Version::NetflowV9 => None,
            Record::NatEvent(e) => {
                let v6 = same_family(e.src, e.dst)?;
                if same_family(e.nat.src, e.nat.dst)? != v6 {
                    return None;
                }
                Some(if v6 {
                    Shape::NatEvent6
                } else {
                    Shape::NatEvent4
                })
            }
        }
    }
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Encodes flow records and NAT events into NetFlow v9 or IPFIX messages.
pub struct Exporter {
    cfg: ExporterConfig,
    /// Unix time (ms) at which the exporter started: NetFlow v9's
    /// `sysUptime` and `FIRST_SWITCHED`/`LAST_SWITCHED` count from it.
    boot_ms: u64,
    /// IPFIX: data records sent so far; NetFlow v9: messages sent so far.
    sequence: u32,
    messages_since_templates: u32,
    templates_sent_ms: Option<u64>,
    stats: ExportStats,
}

const IPFIX_HEADER: usize = 16;
const V9_HEADER: usize = 20;
const SET_HEADER: usize = 4;

impl Exporter {
    /// An exporter whose clock started at `boot_ms` (Unix milliseconds).
    pub fn new(cfg: ExporterConfig, boot_ms: u64) -> Result<Exporter, ConfigError> {
        if cfg.max_datagram < MIN_DATAGRAM {
            return Err(ConfigError::DatagramTooSmall(cfg.max_datagram));
        }
        if cfg.max_datagram > 65507 {
            return Err(ConfigError::DatagramTooLarge(cfg.max_datagram));
        }
        Ok(Exporter {
            cfg,
            boot_ms,
            sequence: 0,
            messages_since_templates: 0,
            templates_sent_ms: None,
            stats: ExportStats::default(),
        })
    }

    pub fn config(&self) -> &ExporterConfig {
        &self.cfg
    }

    pub fn stats(&self) -> ExportStats {
        self.stats
    }

    fn header_len(&self) -> usize {
        match self.cfg.version {
            Version::Ipfix => IPFIX_HEADER,
            Version::NetflowV9 => V9_HEADER,
        }
    }

    fn templates_due(&self, now_ms: u64) -> bool {
        match self.templates_sent_ms {
            None => true,
            Some(t) => {
                self.messages_since_templates >= self.cfg.template_every_packets
                    || now_ms.saturating_sub(t) >= self.cfg.template_every_ms
            }
        }
    }

    /// Encodes `records` at time `now_ms` (Unix milliseconds) into as many
    /// messages as they need, each at most `max_datagram` bytes, and hands
    /// each to `send`. Templates go first in a message whenever they are due.
    pub fn export(&mut self, now_ms: u64, records: &[Record], mut send: impl FnMut(&[u8])) {
        let mut msg = Vec::with_capacity(self.cfg.max_datagram);
        let mut pending = records.iter().peekable();
        loop {
            // Skip what cannot be encoded.
            while let Some(r) = pending.peek() {
                if r.shape(self.cfg.version).is_some() {
                    break;
                }
                self.stats.skipped += 1;
                pending.next();
            }
            let templates = self.templates_due(now_ms);
            if pending.peek().is_none() && !templates {
                return;
            }
            if pending.peek().is_none() && self.templates_sent_ms.is_some() {
                // Due, but nothing to carry: they go with the next data.
                return;
            }
            msg.clear();
            msg.resize(self.header_len(), 0);
            let mut count = 0u16; // v9: records (templates + data) in the message
            if templates {
                count += self.put_templates(&mut msg);
                self.templates_sent_ms = Some(now_ms);
                self.messages_since_templates = 0;
                self.stats.template_sends += 1;
            }
            let mut data_records = 0u32;
            // Data sets: consecutive records of one shape share a set.
            while let Some(&r) = pending.peek() {
                let Some(shape) = r.shape(self.cfg.version) else {
                    self.stats.skipped += 1;
                    pending.next();
                    continue;
                };
                let len = shape.record_len(self.cfg.version);
                if msg.len() + SET_HEADER + len + 3 > self.cfg.max_datagram {
                    break;
                }
                let set_start = msg.len();
                msg.extend_from_slice(&shape.id().to_be_bytes());
                msg.extend_from_slice(&[0, 0]);
                while let Some(&r) = pending.peek() {
                    if r.shape(self.cfg.version) != Some(shape)
                        || msg.len() + len + 3 > self.cfg.max_datagram
                    {
                        break;
                    }
                    self.put_record(&mut msg, r);
                    pending.next();
                    data_records += 1;
                    count += 1;
                }
                // v9 requires sets padded to 32 bits; IPFIX allows it.
                while (msg.len() - set_start) % 4 != 0 {
                    msg.push(0);
                }
                let set_len = (msg.len() - set_start) as u16;
                msg[set_start + 2..set_start + 4].copy_from_slice(&set_len.to_be_bytes());
            }
            if data_records == 0 && !templates {
                // Cannot happen with max_datagram >= MIN_DATAGRAM (a test
                // checks every shape fits); never loop on it.
                self.stats.skipped += 1;
                pending.next();
                continue;
            }
            self.finish_header(&mut msg, now_ms, count, data_records);
            self.messages_since_templates += 1;
            self.stats.datagrams += 1;
            self.stats.records += u64::from(data_records);
            send(&msg);
        }
    }

    /// Sends only the templates (for a collector that just appeared, or a
    /// periodic refresh while nothing else is exported).
    pub fn export_templates(&mut self, now_ms: u64, mut send: impl FnMut(&[u8])) {
        let mut msg = vec![0; self.header_len()];
        let count = self.put_templates(&mut msg);
        self.templates_sent_ms = Some(now_ms);
        self.messages_since_templates = 0;
        self.stats.template_sends += 1;
        self.finish_header(&mut msg, now_ms, count, 0);
        self.messages_since_templates += 1;
        self.stats.datagrams += 1;
        send(&msg);
    }

    /// Appends one template set with every shape; returns the number of
    /// template records.
    fn put_templates(&self, msg: &mut Vec<u8>) -> u16 {
        let start = msg.len();
        let set_id: u16 = match self.cfg.version {
            Version::Ipfix => 2,
            Version::NetflowV9 => 0,
        };
        msg.extend_from_slice(&set_id.to_be_bytes());
        msg.extend_from_slice(&[0, 0]);
        for shape in Shape::of(self.cfg.version) {
            let fields = shape.fields(self.cfg.version);
            msg.extend_from_slice(&shape.id().to_be_bytes());
            msg.extend_from_slice(&(fields.len() as u16).to_be_bytes());
            for (id, len) in fields {
                msg.extend_from_slice(&id.to_be_bytes());
                msg.extend_from_slice(&len.to_be_bytes());
            }
        }
        let len = (msg.len() - start) as u16;
        msg[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        Shape::of(self.cfg.version).len() as u16
    }

    fn uptime(&self, unix_ms: u64) -> u32 {
        unix_ms.saturating_sub(self.boot_ms) as u32
    }

    fn put_record(&self, msg: &mut Vec<u8>, r: &Record) {
        match r {
            Record::Flow(f) => {
                put_addr(msg, f.src);
                put_addr(msg, f.dst);
                msg.extend_from_slice(&f.src_port.to_be_bytes());
                msg.extend_from_slice(&f.dst_port.to_be_bytes());
                msg.push(f.protocol);
                match self.cfg.version {
                    Version::Ipfix => msg.extend_from_slice(&u16::from(f.tcp_flags).to_be_bytes()),
                    Version::NetflowV9 => msg.push(f.tcp_flags),
                }
                msg.extend_from_slice(&f.in_if.to_be_bytes());
                msg.extend_from_slice(&f.out_if.to_be_bytes());
                msg.extend_from_slice(&f.packets.to_be_bytes());
                msg.extend_from_slice(&f.bytes.to_be_bytes());
                match self.cfg.version {
                    Version::Ipfix => {
                        msg.extend_from_slice(&f.start_ms.to_be_bytes());
                        msg.extend_from_slice(&f.end_ms.to_be_bytes());
                        msg.push(f.end_reason as u8);
                    }
                    Version::NetflowV9 => {
                        msg.extend_from_slice(&self.uptime(f.start_ms).to_be_bytes());
                        msg.extend_from_slice(&self.uptime(f.end_ms).to_be_bytes());
                    }
                }
                if let Some(n) = f.nat {
                    put_translation(msg, &n);
                }
            }
            Record::NatEvent(e) => {
                msg.extend_from_slice(&e.time_ms.to_be_bytes());
                msg.push(e.kind as u8);
                msg.push(e.protocol);
                put_addr(msg, e.src);
                put_addr(msg, e.dst);
                msg.extend_from_slice(&e.src_port.to_be_bytes());
                msg.extend_from_slice(&e.dst_port.to_be_bytes());
                put_translation(msg, &e.nat);
            }
        }
    }

    fn finish_header(&mut self, msg: &mut [u8], now_ms: u64, count: u16, data_records: u32) {
        let secs = (now_ms / 1000) as u32;
        match self.cfg.version {
            Version::Ipfix => {
                msg[0..2].copy_from_slice(&10u16.to_be_bytes());
                let len = msg.len() as u16;
                msg[2..4].copy_from_slice(&len.to_be_bytes());
                msg[4..8].copy_from_slice(&secs.to_be_bytes());
                // The number of data records sent before this message.
                msg[8..12].copy_from_slice(&self.sequence.to_be_bytes());
                msg[12..16].copy_from_slice(&self.cfg.domain_id.to_be_bytes());
                self.sequence = self.sequence.wrapping_add(data_records);
            }
            Version::NetflowV9 => {
                msg[0..2].copy_from_slice(&9u16.to_be_bytes());
                msg[2..4].copy_from_slice(&count.to_be_bytes());
                msg[4..8].copy_from_slice(&self.uptime(now_ms).to_be_bytes());
                msg[8..12].copy_from_slice(&secs.to_be_bytes());
                // The number of messages sent before this one.
                msg[12..16].copy_from_slice(&self.sequence.to_be_bytes());
                msg[16..20].copy_from_slice(&self.cfg.domain_id.to_be_bytes());
                self.sequence = self.sequence.wrapping_add(1);
            }
        }
    }
}

fn put_translation(msg: &mut Vec<u8>, n: &Translation) {
    put_addr(msg, n.src);
    put_addr(msg, n.dst);
    msg.extend_from_slice(&n.src_port.to_be_bytes());
    msg.extend_from_slice(&n.dst_port.to_be_bytes());
}

#[cfg(test)]
mod tests;
