//! Encoder tests: every message is decoded back by a small independent
//! reader of RFC 7011 / RFC 3954 framing and compared with what went in.
//! (Real collectors, nfdump and tshark, read them in `tests/collectors.rs`.)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, last))
}

fn flow(i: u16) -> FlowRecord {
    FlowRecord {
        src: v4([10, 0, 0, 1]),
        dst: v4([10, 0, 1, (i % 250) as u8]),
        src_port: 40000 + i,
        dst_port: 80,
        protocol: 6,
        packets: 10 + u64::from(i),
        bytes: 1000 + u64::from(i),
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_005_000,
        tcp_flags: 0x1b,
        in_if: 1,
        out_if: 2,
        end_reason: EndReason::EndOfFlow,
        nat: None,
    }
}

/// One decoded message: header fields and `(template id, record bytes)`.
struct Decoded {
    version: u16,
    /// v9: record count; IPFIX: message length.
    count_or_len: u16,
    sequence: u32,
    domain: u32,
    templates: HashMap<u16, Vec<(u16, u16)>>,
    records: Vec<(u16, Vec<u8>)>,
}

/// Decodes one message, with templates known from earlier messages.
fn decode(msg: &[u8], known: &mut HashMap<u16, Vec<(u16, u16)>>) -> Decoded {
    let be16 = |b: &[u8], o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let version = be16(msg, 0);
    let (hdr, tpl_set, sequence, domain) = match version {
        10 => (16, 2, be32(msg, 8), be32(msg, 12)),
        9 => (20, 0, be32(msg, 12), be32(msg, 16)),
        v => panic!("version {v}"),
    };
    if version == 10 {
        assert_eq!(usize::from(be16(msg, 2)), msg.len(), "IPFIX length field");
    }
    let mut templates = HashMap::new();
    let mut records = Vec::new();
    let mut off = hdr;
    while off < msg.len() {
        let id = be16(msg, off);
        let len = usize::from(be16(msg, off + 2));
        assert!(
            len >= 4 && off + len <= msg.len(),
            "set length {len} at {off}"
        );
        assert_eq!(len % 4, 0, "sets are padded to 32 bits");
        let body = &msg[off + 4..off + len];
        if id == tpl_set {
            let mut o = 0;
            while o + 4 <= body.len() {
                let tid = be16(body, o);
                let n = usize::from(be16(body, o + 2));
                let fields: Vec<(u16, u16)> = (0..n)
                    .map(|k| (be16(body, o + 4 + 4 * k), be16(body, o + 6 + 4 * k)))
                    .collect();
                o += 4 + 4 * n;
                templates.insert(tid, fields.clone());
                known.insert(tid, fields);
            }
        } else {
            assert!(id >= 256, "data set id {id}");
            let fields = known.get(&id).expect("data set before its template");
            let rec: usize = fields.iter().map(|&(_, l)| usize::from(l)).sum();
            let mut o = 0;
            while o + rec <= body.len() {
                records.push((id, body[o..o + rec].to_vec()));
                o += rec;
            }
            assert!(body.len() - o < 4, "only padding after the last record");
            assert!(body[o..].iter().all(|&b| b == 0), "zero padding");
        }
        off += len;
    }
    Decoded {
        version,
        count_or_len: be16(msg, 2),
        sequence,
        domain,
        templates,
        records,
    }
}

/// The value of information element `ie` in `rec` under `fields`.
fn field(fields: &[(u16, u16)], rec: &[u8], want: u16) -> Vec<u8> {
    let mut o = 0;
    for &(id, len) in fields {
        let len = usize::from(len);
        if id == want {
            return rec[o..o + len].to_vec();
        }
        o += len;
    }
    panic!("field {want} not in template")
}

fn run(exp: &mut Exporter, now: u64, records: &[Record]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    exp.export(now, records, |m| out.push(m.to_vec()));
    out
}

#[test]
fn ipfix_flow_records_round_trip() {
    let mut exp = Exporter::new(ExporterConfig::new(Version::Ipfix), 0).unwrap();
    let recs: Vec<Record> = (0..3).map(|i| Record::Flow(flow(i))).collect();
    let msgs = run(&mut exp, 1_700_000_006_000, &recs);
    assert_eq!(msgs.len(), 1);
    let mut known = HashMap::new();
    let d = decode(&msgs[0], &mut known);
    assert_eq!(d.version, 10);
    assert_eq!(usize::from(d.count_or_len), msgs[0].len());
    assert_eq!(d.sequence, 0);
    assert_eq!(d.templates.len(), 6, "every template in the first message");
    assert_eq!(d.records.len(), 3);
    let f = &known[&256];
    for (i, (id, rec)) in d.records.iter().enumerate() {
        assert_eq!(*id, 256);
        let want = flow(i as u16);
        assert_eq!(field(f, rec, ie::SOURCE_IPV4_ADDRESS), [10, 0, 0, 1]);
        assert_eq!(
            field(f, rec, ie::DESTINATION_IPV4_ADDRESS),
            [10, 0, 1, i as u8]
        );
        assert_eq!(
            field(f, rec, ie::SOURCE_TRANSPORT_PORT),
            want.src_port.to_be_bytes()
        );
        assert_eq!(
            field(f, rec, ie::PACKET_DELTA_COUNT),
            want.packets.to_be_bytes()
        );
        assert_eq!(
            field(f, rec, ie::OCTET_DELTA_COUNT),
            want.bytes.to_be_bytes()
        );
        assert_eq!(field(f, rec, ie::TCP_CONTROL_BITS), [0, 0x1b]);
        assert_eq!(
            field(f, rec, ie::FLOW_START_MILLISECONDS),
            want.start_ms.to_be_bytes()
        );
        assert_eq!(field(f, rec, ie::FLOW_END_REASON), [3]);
    }
    // The next message counts the three records sent before it, and
    // carries no templates (not due yet).
    let msgs = run(&mut exp, 1_700_000_007_000, &[Record::Flow(flow(7))]);
    let d = decode(&msgs[0], &mut known);
    assert_eq!(d.sequence, 3);
    assert!(d.templates.is_empty());
    assert_eq!(exp.stats().records, 4);
}

#[test]
fn netflow_v9_header_counts_records_and_messages() {
    let boot = 1_700_000_000_000;
    let mut cfg = ExporterConfig::new(Version::NetflowV9);
    cfg.domain_id = 7;
    let mut exp = Exporter::new(cfg, boot).unwrap();
    let recs: Vec<Record> = (0..2).map(|i| Record::Flow(flow(i))).collect();
    let msgs = run(&mut exp, boot + 6_000, &recs);
    let mut known = HashMap::new();
    let d = decode(&msgs[0], &mut known);
    assert_eq!(d.version, 9);
    assert_eq!(d.count_or_len, 4 + 2, "four flow templates and two records");
    assert_eq!(d.domain, 7, "source id");
    assert_eq!(d.sequence, 0);
    let f = &known[&256];
    let rec = &d.records[0].1;
    assert_eq!(
        field(f, rec, ie::TCP_CONTROL_BITS),
        [0x1b],
        "one byte in v9"
    );
    assert_eq!(field(f, rec, ie::FIRST_SWITCHED), 0u32.to_be_bytes());
    assert_eq!(field(f, rec, ie::LAST_SWITCHED), 5000u32.to_be_bytes());
    let msgs = run(&mut exp, boot + 7_000, &recs);
    assert_eq!(
        decode(&msgs[0], &mut known).sequence,
        1,
        "v9 counts messages"
    );
}

#[test]
fn nat_flows_and_events_use_their_templates() {
    let mut exp = Exporter::new(ExporterConfig::new(Version::Ipfix), 0).unwrap();
    let nat = Translation {
        src: v4([192, 0, 2, 1]),
        dst: v4([10, 0, 1, 5]),
        src_port: 1024,
        dst_port: 80,
    };
    let mut f = flow(5);
    f.nat = Some(nat);
    let ev = NatEvent {
        kind: NatEventKind::SessionCreate,
        time_ms: 1_700_000_000_123,
        protocol: 17,
        src: v6(1),
        dst: v6(2),
        src_port: 5353,
        dst_port: 53,
        nat: Translation {
            src: v6(0x100),
            dst: v6(2),
            src_port: 2000,
            dst_port: 53,
        },
    };
    let msgs = run(&mut exp, 1, &[Record::Flow(f), Record::NatEvent(ev)]);
    let mut known = HashMap::new();
    let d = decode(&msgs[0], &mut known);
    assert_eq!(d.records.len(), 2);
    let (id, rec) = &d.records[0];
    assert_eq!(*id, 258);
    assert_eq!(
        field(&known[&258], rec, ie::POST_NAT_SOURCE_IPV4_ADDRESS),
        [192, 0, 2, 1]
    );
    assert_eq!(
        field(&known[&258], rec, ie::POST_NAPT_SOURCE_TRANSPORT_PORT),
        [4, 0]
    );
    let (id, rec) = &d.records[1];
    assert_eq!(*id, 261);
    assert_eq!(field(&known[&261], rec, ie::NAT_EVENT), [4]);
    assert_eq!(
        field(&known[&261], rec, ie::OBSERVATION_TIME_MILLISECONDS),
        1_700_000_000_123u64.to_be_bytes()
    );
    assert_eq!(
        field(&known[&261], rec, ie::POST_NAT_SOURCE_IPV6_ADDRESS),
        Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 0x100).octets()
    );
}

#[test]
fn nat_events_are_ipfix_only() {
    let mut exp = Exporter::new(ExporterConfig::new(Version::NetflowV9), 0).unwrap();
    let ev = NatEvent {
        kind: NatEventKind::SessionDelete,
        time_ms: 9,
        protocol: 6,
        src: v4([10, 0, 0, 1]),
        dst: v4([10, 0, 0, 2]),
        src_port: 1,
        dst_port: 2,
        nat: Translation {
            src: v4([10, 0, 0, 3]),
            dst: v4([10, 0, 0, 2]),
            src_port: 3,
            dst_port: 2,
        },
    };
    let msgs = run(&mut exp, 10, &[Record::NatEvent(ev), Record::Flow(flow(1))]);
    let mut known = HashMap::new();
    let d = decode(&msgs[0], &mut known);
    assert_eq!(d.records.len(), 1);
    assert!(!known.contains_key(&260), "no NAT event template in v9");
    assert_eq!(exp.stats().skipped, 1);
}

#[test]
fn mixed_families_are_skipped_and_counted() {
    let mut exp = Exporter::new(ExporterConfig::new(Version::Ipfix), 0).unwrap();
    let mut bad = flow(1);
    bad.dst = v6(1);
    let msgs = run(&mut exp, 5, &[Record::Flow(bad), Record::Flow(flow(2))]);
    let mut known = HashMap::new();
    assert_eq!(decode(&msgs[0], &mut known).records.len(), 1);
    assert_eq!(exp.stats().skipped, 1);
    assert_eq!(exp.stats().records, 1);
}

#[test]
fn templates_are_resent_by_count_and_by_time() {
    let mut cfg = ExporterConfig::new(Version::Ipfix);
    cfg.template_every_packets = 3;
    cfg.template_every_ms = 10_000;
    let mut exp = Exporter::new(cfg, 0).unwrap();
    let mut with_templates = Vec::new();
    let mut known = HashMap::new();
    for k in 0..7u64 {
        let msgs = run(&mut exp, 1000 + k, &[Record::Flow(flow(1))]);
        let d = decode(&msgs[0], &mut known);
        with_templates.push(!d.templates.is_empty());
    }
    assert_eq!(
        with_templates,
        [true, false, false, true, false, false, true]
    );
    // Time alone: one message, then one 10 s later.
    let msgs = run(&mut exp, 1010 + 10_000, &[Record::Flow(flow(1))]);
    assert!(!decode(&msgs[0], &mut known).templates.is_empty());
}

#[test]
fn messages_respect_the_datagram_limit_and_lose_nothing() {
    for version in [Version::Ipfix, Version::NetflowV9] {
        for max in [MIN_DATAGRAM, 700, 1400, 9000] {
            let mut cfg = ExporterConfig::new(version);
            cfg.max_datagram = max;
            let mut exp = Exporter::new(cfg, 0).unwrap();
            let recs: Vec<Record> = (0..500)
                .map(|i| {
                    let mut f = flow(i);
                    if i % 3 == 0 {
                        f.src = v6(i);
                        f.dst = v6(i + 1);
                    }
                    if i % 5 == 0 {
                        f.nat = Some(Translation {
                            src: f.src,
                            dst: f.dst,
                            src_port: 1,
                            dst_port: 2,
                        });
                    }
                    Record::Flow(f)
                })
                .collect();
            let msgs = run(&mut exp, 1, &recs);
            let mut known = HashMap::new();
            let mut n = 0;
            for m in &msgs {
                assert!(m.len() <= max, "{version:?} {max}: {} bytes", m.len());
                n += decode(m, &mut known).records.len();
            }
            assert_eq!(n, 500, "{version:?} {max}");
        }
    }
}

#[test]
fn every_shape_fits_the_smallest_datagram_after_the_templates() {
    for version in [Version::Ipfix, Version::NetflowV9] {
        let tpl: usize = SET_HEADER
            + Shape::of(version)
                .iter()
                .map(|s| 4 + 4 * s.fields(version).len())
                .sum::<usize>();
        let largest = SHAPES.iter().map(|s| s.record_len(version)).max().unwrap();
        assert!(V9_HEADER + tpl + SET_HEADER + largest + 3 <= MIN_DATAGRAM);
    }
}

#[test]
fn config_limits() {
    let mut cfg = ExporterConfig::new(Version::Ipfix);
    cfg.max_datagram = 100;
    assert_eq!(
        Exporter::new(cfg, 0).err(),
        Some(ConfigError::DatagramTooSmall(100))
    );
    cfg.max_datagram = 70_000;
    assert!(Exporter::new(cfg, 0).is_err());
    assert_eq!("ipfix".parse::<Version>(), Ok(Version::Ipfix));
    assert_eq!("9".parse::<Version>(), Ok(Version::NetflowV9));
    assert!("5".parse::<Version>().is_err());
}
