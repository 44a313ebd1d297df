//! Whole-packet tests: Ethernet/VLAN/IP/L4 through [`parse_ethernet`] and
//! [`parse_ip`], ICMP error quotes, and the no-panic property.

use super::*;
use crate::flow::tcp_flags;
use proptest::prelude::*;

const MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
const V4_SRC: [u8; 4] = [192, 0, 2, 1];
const V4_DST: [u8; 4] = [198, 51, 100, 7];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// 40000 -> 80, SYN|ECE|CWR, seq 1000, window 64240, options: MSS 1460,
/// SACK-permitted, timestamps, NOP, window scale 7.
const TCP_SYN: [u8; 40] = [
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xa0, 0xc2, 0xfa, 0xf0,
    0x00, 0x00, 0x00, 0x00, //
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];

/// 80 -> 40000, ACK|PSH, 5 bytes of payload, no options.
const TCP_DATA: [u8; 25] = [
    0x00, 0x50, 0x9c, 0x40, 0x00, 0x00, 0x13, 0x88, 0x00, 0x00, 0x03, 0xe9, 0x50, 0x18, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
];

/// 5353 -> 53, length 12.
const UDP: [u8; 12] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];

/// ICMP echo request, id 0x1234, seq 1.
const ECHO: [u8; 12] = [8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, 1, 2, 3, 4];

/// IPv4 header template: 20 bytes, TTL 64; protocol, length and addresses
/// are filled in by [`ipv4`].
const IPV4_HEADER: [u8; 20] = [
    0x45, 0, 0, 0, 0x00, 0x01, 0x40, 0x00, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn ipv4_with_options(proto: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let mut v = IPV4_HEADER.to_vec();
    v[0] = 0x40 | ((20 + options.len()) / 4) as u8;
    let total = (20 + options.len() + l4.len()) as u16;
    v[2..4].copy_from_slice(&total.to_be_bytes());
    v[9] = proto;
    v[12..16].copy_from_slice(&V4_SRC);
    v[16..20].copy_from_slice(&V4_DST);
    v.extend_from_slice(options);
    v.extend_from_slice(l4);
    v
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_with_options(proto, &[], l4)
}

fn ipv6(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    v.push(next);
    v.push(64);
    v.extend_from_slice(&V6_SRC);
    v.extend_from_slice(&V6_DST);
    v.extend_from_slice(ext);
    v.extend_from_slice(l4);
    v
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = MAC.to_vec();
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn v4_tuple(proto: u8, sp: u16, dp: u16) -> Tuple {
    Tuple {
        src: Addr::from_v4(V4_SRC),
        dst: Addr::from_v4(V4_DST),
        src_port: sp,
        dst_port: dp,
        proto,
        family: Family::V4,
    }
}

fn v6_tuple(proto: u8, sp: u16, dp: u16) -> Tuple {
    Tuple {
        src: Addr::from_v6(V6_SRC),
        dst: Addr::from_v6(V6_DST),
        src_port: sp,
        dst_port: dp,
        proto,
        family: Family::V6,
    }
}

#[test]
fn parse_error_table() {
    assert_eq!(ParseError::ALL.len(), ParseError::COUNT);
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        let name = e.name();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        assert_eq!(e.to_string(), name);
    }
    let mut names: Vec<_> = ParseError::ALL.iter().map(|e| e.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ParseError::COUNT);
    assert!(!ParseError::NotIp.is_malformed());
    assert!(!ParseError::Fragment.is_malformed());
    assert!(ParseError::TcpTruncated.is_malformed());
}

#[test]
fn tcp_syn_over_ethernet() {
    let frame = eth(0x0800, &ipv4(6, &TCP_SYN));
    let r = parse_ethernet(&frame).unwrap();
    assert_eq!(r.tuple, v4_tuple(6, 40000, 80));
    assert_eq!(r.ip_len, 60);
    assert_eq!(
        r.l4,
        L4::Tcp(TcpInfo {
            seq: 1000,
            ack: 0,
            flags: tcp_flags::SYN | tcp_flags::ECE | tcp_flags::CWR,
            window: 64240,
            wscale: Some(7),
            sack_perm: true,
            payload_len: 0,
        })
    );
}

#[test]
fn tcp_payload_excludes_ethernet_padding() {
    let mut frame = eth(0x0800, &ipv4(6, &TCP_DATA));
    frame.resize(frame.len() + 11, 0);
    let r = parse_ethernet(&frame).unwrap();
    assert_eq!(r.tuple, v4_tuple(6, 80, 40000));
    assert_eq!(r.ip_len, 45);
    let L4::Tcp(t) = r.l4 else { panic!() };
    assert_eq!((t.payload_len, t.wscale, t.sack_perm), (5, None, false));
    assert_eq!(t.flags, tcp_flags::ACK | tcp_flags::PSH);
}

#[test]
fn ip_length_beyond_frame_is_an_error() {
    let mut p = ipv4(6, &TCP_DATA);
    p[3] += 1;
    assert_eq!(parse_ip(&p), Err(ParseError::Ipv4Truncated));
    let mut p = ipv6(17, &[], &UDP);
    p[5] += 1;
    assert_eq!(parse_ip(&p), Err(ParseError::Ipv6Truncated));
}

#[test]
fn tcp_truncated_and_bad_offset_in_ip() {
    for n in 0..TCP_SYN.len() {
        assert_eq!(
            parse_ip(&ipv4(6, &TCP_SYN[..n])),
            Err(ParseError::TcpTruncated),
            "{n}"
        );
    }
    let mut t = TCP_SYN;
    t[12] = 0x40;
    assert_eq!(parse_ip(&ipv4(6, &t)), Err(ParseError::TcpBadDataOffset));
}

#[test]
fn vlan_and_qinq() {
    let ip = ipv4(17, &UDP);
    let mut one = MAC.to_vec();
    one.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    one.extend_from_slice(&ip);
    assert_eq!(parse_ethernet(&one).unwrap().tuple, v4_tuple(17, 5353, 53));

    for outer in [0x88a8u16, 0x9100, 0x8100] {
        let mut two = MAC.to_vec();
        two.extend_from_slice(&outer.to_be_bytes());
        two.extend_from_slice(&[0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd]);
        two.extend_from_slice(&ipv6(17, &[], &UDP));
        assert_eq!(parse_ethernet(&two).unwrap().tuple, v6_tuple(17, 5353, 53));
    }

    let mut three = MAC.to_vec();
    three.extend_from_slice(&[
        0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x81, 0x00, 0, 3, 0x08, 0x00,
    ]);
    three.extend_from_slice(&ip);
    assert_eq!(parse_ethernet(&three), Err(ParseError::VlanTooDeep));
}

#[test]
fn non_ip_and_bad_versions() {
    let arp = eth(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1]);
    assert_eq!(parse_ethernet(&arp), Err(ParseError::NotIp));
    let lldp = eth(0x88cc, &[0; 20]);
    assert_eq!(parse_ethernet(&lldp), Err(ParseError::NotIp));
    // IPv6 bytes under the IPv4 EtherType.
    let wrong = eth(0x0800, &ipv6(17, &[], &UDP));
    assert_eq!(parse_ethernet(&wrong), Err(ParseError::BadIpVersion));
    let wrong = eth(0x86dd, &ipv4(17, &UDP));
    assert_eq!(parse_ethernet(&wrong), Err(ParseError::BadIpVersion));
    assert_eq!(parse_ethernet(&eth(0x0800, &[])), Err(ParseError::Empty));
    assert_eq!(parse_ip(&[]), Err(ParseError::Empty));
    assert_eq!(parse_ip(&[0x50; 40]), Err(ParseError::BadIpVersion));
}

#[test]
fn ipv4_fragments() {
    let mut p = ipv4(17, &UDP);
    p[6] = 0x20; // MF, offset 0
    assert_eq!(parse_ip(&p), Err(ParseError::Fragment));
    p[6] = 0x00;
    p[7] = 0x03; // offset 24
    assert_eq!(parse_ip(&p), Err(ParseError::Fragment));
    p[6] = 0x40; // DF only
    p[7] = 0x00;
    assert!(parse_ip(&p).is_ok());
}

#[test]
fn ipv4_options() {
    // Record route (7 bytes, room for one address) + EOL: IHL 7.
    let opts = [7, 7, 4, 0, 0, 0, 0, 0];
    let p = ipv4_with_options(17, &opts, &UDP);
    let r = parse_ip(&p).unwrap();
    assert_eq!(r.tuple, v4_tuple(17, 5353, 53));
    assert_eq!(r.ip_len, 40);
    // Truncated inside the options.
    for n in 20..28 {
        let mut q = p[..n].to_vec();
        q[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        assert_eq!(parse_ip(&q), Err(ParseError::Ipv4Truncated), "{n}");
    }
    let mut q = p.clone();
    q[0] = 0x44;
    assert_eq!(parse_ip(&q), Err(ParseError::Ipv4BadHeaderLength));
    let mut q = p.clone();
    q[2..4].copy_from_slice(&27u16.to_be_bytes());
    assert_eq!(parse_ip(&q), Err(ParseError::Ipv4BadTotalLength));
}

#[test]
fn ipv4_truncated_at_each_boundary() {
    let p = ipv4(17, &UDP);
    for n in 1..p.len() {
        assert_eq!(parse_ip(&p[..n]), Err(ParseError::Ipv4Truncated), "{n}");
    }
}

#[test]
fn udp_in_ip() {
    let r = parse_ip(&ipv4(17, &UDP)).unwrap();
    assert_eq!(
        (r.tuple, r.l4, r.ip_len),
        (v4_tuple(17, 5353, 53), L4::Udp, 32)
    );
    // The UDP length may be shorter than the IP payload.
    let mut u = UDP.to_vec();
    u.extend_from_slice(&[0; 4]);
    assert!(parse_ip(&ipv4(17, &u)).is_ok());
    let mut u = UDP;
    u[5] = 13;
    assert_eq!(parse_ip(&ipv4(17, &u)), Err(ParseError::UdpBadLength));
    assert_eq!(
        parse_ip(&ipv4(17, &UDP[..7])),
        Err(ParseError::UdpTruncated)
    );
}

#[test]
fn ipv6_extension_chain() {
    // HBH -> routing -> fragment (atomic) -> dest opts -> AH -> TCP.
    let ext = [
        43, 0, 1, 4, 0, 0, 0, 0, // HBH, 8 bytes, next routing
        44, 0, 0, 0, 0, 0, 0, 0, // routing, 8 bytes, next fragment
        60, 0, 0, 0, 0, 0, 0, 9, // atomic fragment, next dest opts
        51, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // dest opts, 16
        6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, // AH (1+2)*4 = 12, next TCP
    ];
    let p = ipv6(0, &ext, &TCP_DATA);
    let r = parse_ip(&p).unwrap();
    assert_eq!(r.tuple, v6_tuple(6, 80, 40000));
    assert_eq!(r.ip_len, p.len() as u32);
    let L4::Tcp(t) = r.l4 else { panic!() };
    assert_eq!(t.payload_len, 5);

    // Payload length ending inside the chain.
    for cut in 0..ext.len() {
        let mut q = ipv6(0, &ext[..cut], &[]);
        q[4..6].copy_from_slice(&(cut as u16).to_be_bytes());
        assert_eq!(
            parse_ip(&q),
            Err(ParseError::Ipv6ExtensionTruncated),
            "{cut}"
        );
    }
    // Payload length ending inside the TCP header.
    let mut q = p.clone();
    let short = (ext.len() + 10) as u16;
    q[4..6].copy_from_slice(&short.to_be_bytes());
    assert_eq!(parse_ip(&q), Err(ParseError::TcpTruncated));
}

#[test]
fn ipv6_fragment_esp_none() {
    let frag = [17, 0, 0x00, 0x01, 0, 0, 0, 1];
    assert_eq!(parse_ip(&ipv6(44, &frag, &UDP)), Err(ParseError::Fragment));
    let frag = [17, 0, 0x00, 0x10, 0, 0, 0, 1];
    assert_eq!(parse_ip(&ipv6(44, &frag, &UDP)), Err(ParseError::Fragment));
    // ESP after a destination options header.
    let r = parse_ip(&ipv6(60, &[50, 0, 0, 0, 0, 0, 0, 0], &[0xaa; 16])).unwrap();
    assert_eq!((r.tuple, r.l4), (v6_tuple(50, 0, 0), L4::Other));
    let r = parse_ip(&ipv6(59, &[], &[])).unwrap();
    assert_eq!(
        (r.tuple, r.l4, r.ip_len),
        (v6_tuple(59, 0, 0), L4::Other, 40)
    );
    for n in 1..40 {
        assert_eq!(
            parse_ip(&ipv6(59, &[], &[])[..n]),
            Err(ParseError::Ipv6Truncated)
        );
    }
}

#[test]
fn generic_protocol() {
    let r = parse_ip(&ipv4(132, &[1, 2, 3])).unwrap(); // SCTP, not looked at
    assert_eq!((r.tuple, r.l4), (v4_tuple(132, 0, 0), L4::Other));
    // ICMPv6 over IPv4 and ICMP over IPv6 are generic, as in Linux.
    let r = parse_ip(&ipv4(58, &ECHO)).unwrap();
    assert_eq!(r.l4, L4::Other);
    let r = parse_ip(&ipv6(1, &[], &ECHO)).unwrap();
    assert_eq!(r.l4, L4::Other);
}

#[test]
fn icmp_queries() {
    let r = parse_ip(&ipv4(1, &ECHO)).unwrap();
    assert_eq!(r.tuple, v4_tuple(1, 0x1234, 8 << 8));
    assert_eq!(
        r.l4,
        L4::Icmp(IcmpInfo {
            icmp_type: 8,
            code: 0,
            id: 0x1234,
            inner: None
        })
    );
    // Timestamp reply carries an id; router advertisement (9) does not.
    let ts = [14, 0, 0, 0, 0, 7, 0, 1];
    assert_eq!(parse_ip(&ipv4(1, &ts)).unwrap().tuple.src_port, 7);
    let ra = [9, 0, 0, 0, 1, 0, 0x07, 0x08];
    let r = parse_ip(&ipv4(1, &ra)).unwrap();
    assert_eq!(r.tuple, v4_tuple(1, 0, 9 << 8));
    for n in 0..8 {
        assert_eq!(
            parse_ip(&ipv4(1, &ECHO[..n])),
            Err(ParseError::IcmpTruncated)
        );
    }
    // ICMPv6 echo reply and node information query.
    let reply = [129, 0, 0, 0, 0xbe, 0xef, 0, 3];
    let r = parse_ip(&ipv6(58, &[], &reply)).unwrap();
    assert_eq!(r.tuple, v6_tuple(58, 0xbeef, 129 << 8));
    let ni = [139, 1, 0, 0, 0x00, 0x05, 0, 0];
    let r = parse_ip(&ipv6(58, &[], &ni)).unwrap();
    assert_eq!(r.tuple, v6_tuple(58, 5, 139 << 8 | 1));
    // Neighbour solicitation: no id.
    let ns = [135, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        parse_ip(&ipv6(58, &[], &ns)).unwrap().tuple,
        v6_tuple(58, 0, 135 << 8)
    );
}

/// An ICMPv4 error (type/code) from the destination back to the source,
/// quoting `quote`.
fn icmp4_error(t: u8, code: u8, quote: &[u8]) -> Vec<u8> {
    let mut icmp = vec![t, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quote);
    let mut p = ipv4(1, &icmp);
    p[12..16].copy_from_slice(&V4_DST);
    p[16..20].copy_from_slice(&V4_SRC);
    p
}

fn icmp_inner(p: &[u8]) -> Option<Tuple> {
    match parse_ip(p).unwrap().l4 {
        L4::Icmp(i) => i.inner,
        other => panic!("{other:?}"),
    }
}

#[test]
fn icmp_error_quoting_tcp_udp_icmp() {
    // TCP: only 8 bytes of the TCP header are quoted.
    let orig = ipv4(6, &TCP_SYN);
    let want = parse_ip(&orig).unwrap().tuple;
    let quote = &orig[..28];
    for (t, c) in [(3, 3), (4, 0), (5, 1), (11, 0), (12, 0)] {
        let err = icmp4_error(t, c, quote);
        let r = parse_ip(&err).unwrap();
        assert_eq!(r.tuple.src_port, 0);
        assert_eq!(r.tuple.dst_port, u16::from(t) << 8 | u16::from(c));
        assert_eq!(icmp_inner(&err), Some(want), "type {t}");
    }
    // The whole packet quoted is fine too.
    assert_eq!(icmp_inner(&icmp4_error(3, 1, &orig)), Some(want));

    // UDP.
    let orig = ipv4(17, &UDP);
    let want = parse_ip(&orig).unwrap().tuple;
    assert_eq!(icmp_inner(&icmp4_error(3, 3, &orig[..28])), Some(want));

    // ICMP echo.
    let orig = ipv4(1, &ECHO);
    let want = parse_ip(&orig).unwrap().tuple;
    assert_eq!(want.src_port, 0x1234);
    assert_eq!(icmp_inner(&icmp4_error(11, 0, &orig[..28])), Some(want));

    // GRE: ports 0, as the outer parser builds it.
    let gre = [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 9];
    let orig = ipv4(47, &gre);
    let want = parse_ip(&orig).unwrap().tuple;
    assert_eq!(icmp_inner(&icmp4_error(3, 4, &orig)), Some(want));

    // Quoted IPv4 with options.
    let orig = ipv4_with_options(17, &[1, 1, 1, 0], &UDP);
    let want = parse_ip(&orig).unwrap().tuple;
    assert_eq!(icmp_inner(&icmp4_error(3, 3, &orig[..32])), Some(want));
}

#[test]
fn icmp_error_short_quotes() {
    let orig = ipv4(6, &TCP_SYN);
    // Anything shorter than IP header + 8 bytes gives no inner tuple.
    for n in 0..28 {
        assert_eq!(icmp_inner(&icmp4_error(3, 3, &orig[..n])), None, "{n}");
    }
    // A non-first fragment has no L4 header.
    let mut frag = ipv4(17, &UDP);
    frag[7] = 1;
    assert_eq!(icmp_inner(&icmp4_error(3, 3, &frag)), None);
    // A first fragment does.
    frag[6] = 0x20;
    frag[7] = 0;
    assert!(icmp_inner(&icmp4_error(3, 3, &frag)).is_some());
    // An IPv6 packet quoted by ICMPv4.
    assert_eq!(icmp_inner(&icmp4_error(3, 3, &ipv6(17, &[], &UDP))), None);
}

#[test]
fn icmpv6_error_quoting_udp_behind_extension_headers() {
    let ext = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0x00, 0x01, 0, 0, 0, 5];
    // Dest opts -> first fragment -> UDP: the fragment header is what the
    // outer parser rejects, but a quoted first fragment still has ports.
    let orig = ipv6(60, &ext, &UDP);
    let want = v6_tuple(17, 5353, 53);
    for t in 1..=4u8 {
        let mut icmp = vec![t, 0, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(&orig);
        let mut p = ipv6(58, &[], &icmp);
        p[8..24].copy_from_slice(&V6_DST);
        p[24..40].copy_from_slice(&V6_SRC);
        let r = parse_ip(&p).unwrap();
        assert_eq!(r.tuple.dst_port, u16::from(t) << 8);
        let L4::Icmp(i) = r.l4 else { panic!() };
        assert_eq!(i.inner, Some(want));
    }
    // Quote cut inside the UDP header: no inner tuple, still a valid packet.
    let mut icmp = vec![1, 4, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&orig[..orig.len() - 5]);
    let L4::Icmp(i) = parse_ip(&ipv6(58, &[], &icmp)).unwrap().l4 else {
        panic!()
    };
    assert_eq!(i.inner, None);
    // Echo request quoted.
    let orig = ipv6(58, &[], &[128, 0, 0, 0, 0, 9, 0, 1]);
    let mut icmp = vec![3, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&orig);
    let L4::Icmp(i) = parse_ip(&ipv6(58, &[], &icmp)).unwrap().l4 else {
        panic!()
    };
    assert_eq!(i.inner, Some(v6_tuple(58, 9, 128 << 8)));
}

#[test]
fn gre_v0_and_v1() {
    let v0 = [0x20, 0x00, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x45];
    let r = parse_ip(&ipv4(47, &v0)).unwrap();
    assert_eq!(r.tuple, v4_tuple(47, 0, 0));
    assert_eq!(
        r.l4,
        L4::Gre(GreInfo {
            version: 0,
            key: Some(0xdeadbeef),
            protocol: 0x0800
        })
    );
    let v1 = [
        0x30, 0x81, 0x88, 0x0b, 0x00, 0x10, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 0,
    ];
    let r = parse_ip(&ipv4(47, &v1)).unwrap();
    let L4::Gre(g) = r.l4 else { panic!() };
    assert_eq!(
        (g.version, g.key, g.call_id()),
        (1, Some(0x0010_0007), Some(7))
    );
    for n in 0..v1.len() {
        assert_eq!(parse_ip(&ipv4(47, &v1[..n])), Err(ParseError::GreTruncated));
    }
    let bad = [0x00, 0x02, 0x08, 0x00];
    assert_eq!(parse_ip(&ipv4(47, &bad)), Err(ParseError::GreBadVersion));
    let nokey = [0x00, 0x01, 0x88, 0x0b, 0, 0, 0, 0];
    assert_eq!(parse_ip(&ipv4(47, &nokey)), Err(ParseError::GreBadFlags));
    // GRE over IPv6.
    let r = parse_ip(&ipv6(47, &[], &v0)).unwrap();
    assert!(matches!(
        r.l4,
        L4::Gre(GreInfo {
            key: Some(0xdeadbeef),
            ..
        })
    ));
}

fn check(input: &[u8], r: Result<FlowRepr, ParseError>, header: usize) {
    if let Ok(r) = r {
        assert!(r.ip_len as usize + header <= input.len());
    }
}

fn valid_packets() -> Vec<Vec<u8>> {
    let ext = [60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0];
    let mut v = vec![
        ipv4(6, &TCP_SYN),
        ipv4(6, &TCP_DATA),
        ipv4(17, &UDP),
        ipv4(1, &ECHO),
        ipv4_with_options(17, &[1, 1, 1, 0], &UDP),
        icmp4_error(3, 3, &ipv4(6, &TCP_SYN)),
        icmp4_error(11, 0, &ipv4(1, &ECHO)),
        ipv4(
            47,
            &[0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        ),
        ipv4(
            47,
            &[0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0],
        ),
        ipv6(0, &ext, &TCP_DATA),
        ipv6(17, &[], &UDP),
        ipv6(58, &[], &[128, 0, 0, 0, 0, 9, 0, 1]),
    ];
    let mut icmp6 = vec![1, 0, 0, 0, 0, 0, 0, 0];
    icmp6.extend_from_slice(&ipv6(0, &ext, &TCP_DATA));
    v.push(ipv6(58, &[], &icmp6));
    v
}

#[test]
fn valid_packets_parse() {
    for p in valid_packets() {
        let r = parse_ip(&p).unwrap();
        assert_eq!(r.ip_len as usize, p.len());
        assert!(parse_ethernet(&eth(if p[0] >> 4 == 4 { 0x0800 } else { 0x86dd }, &p)).is_ok());
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&data, parse_ip(&data), 0);
        check(&data, parse_ethernet(&data), 14);
        let _ = quoted_tuple(Family::V4, &data);
        let _ = quoted_tuple(Family::V6, &data);
        let _ = tcp::Options::parse(&data);
    }

    #[test]
    fn arbitrary_ip_after_header_never_panics(
        v6 in any::<bool>(),
        proto in prop::sample::select(vec![0u8, 1, 6, 17, 43, 44, 47, 50, 51, 58, 59, 60]),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let p = if v6 { ipv6(proto, &[], &tail) } else { ipv4(proto, &tail) };
        check(&p, parse_ip(&p), 0);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        vlan in 0usize..3,
    ) {
        let packets = valid_packets();
        let mut p = packets[which.index(packets.len())].clone();
        for (at, x) in flips {
            let i = at.index(p.len());
            p[i] ^= x;
        }
        let n = cut.index(p.len() + 1);
        p.truncate(n);
        check(&p, parse_ip(&p), 0);
        let mut frame = MAC.to_vec();
        for _ in 0..vlan {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        let et: u16 = if p.first().is_some_and(|b| b >> 4 == 6) { 0x86dd } else { 0x0800 };
        frame.extend_from_slice(&et.to_be_bytes());
        frame.extend_from_slice(&p);
        check(&frame, parse_ethernet(&frame), 14);
    }
}
