use super::*;
use crate::flow::{Family, L4};
use crate::packet::checksum::{RxChecksum, fill_ip, verify_ethernet};
use crate::packet::{parse_ethernet, quoted_tuple};
use proptest::prelude::*;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const C4: [u8; 4] = [192, 0, 2, 10];
const S4: [u8; 4] = [198, 51, 100, 20];
const C6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
const S6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];

fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = ROUTER_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

fn v4(protocol: u8, tos: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, tos, 0, 0, 0x12, 0x34, 0x40, 0, 61, protocol, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&C4);
    p.extend_from_slice(&S4);
    p.extend_from_slice(l4);
    fill_ip(&mut p);
    p
}

fn v6(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0x01, 0x23, 0x45];
    p.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[next, 57]);
    p.extend_from_slice(&C6);
    p.extend_from_slice(&S6);
    p.extend_from_slice(ext);
    p.extend_from_slice(l4);
    fill_ip(&mut p);
    p
}

/// A TCP header 40000 -> 81 with `flags`, `payload` bytes of data.
fn tcp(flags: u8, seq: u32, ack: u32, payload: usize) -> Vec<u8> {
    let mut t = vec![0x9c, 0x40, 0, 81];
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    // One MSS option word: the header is 24 bytes.
    t.extend_from_slice(&[0x60, flags, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 5, 0xb4]);
    t.extend((0..payload).map(|i| i as u8));
    t
}

fn syn4() -> Vec<u8> {
    eth(
        0x0800,
        &v4(proto::TCP, 0x10, &tcp(tcp_flags::SYN, 1000, 0, 0)),
    )
}

fn syn6() -> Vec<u8> {
    eth(
        0x86dd,
        &v6(proto::TCP, &[], &tcp(tcp_flags::SYN, 1000, 0, 0)),
    )
}

fn udp4(len: usize) -> Vec<u8> {
    let mut u = vec![0x9c, 0x41, 0, 53, 0, 0, 0, 0];
    u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend((0..len).map(|i| (i * 3) as u8));
    eth(0x0800, &v4(proto::UDP, 0x2e, &u))
}

fn udp6(len: usize) -> Vec<u8> {
    let mut u = vec![0x9c, 0x41, 0, 53, 0, 0, 0, 0];
    u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend((0..len).map(|i| (i * 3) as u8));
    eth(0x86dd, &v6(proto::UDP, &[], &u))
}

fn answer(a: Answer, frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = [0u8; MAX_ANSWER];
    let n = build(a, frame, &IcmpParams::default(), &mut out)?;
    Some(out[..n].to_vec())
}

/// Checks what every answer must be: parses, checksums verify, Ethernet
/// addresses swapped; returns the parse.
fn check(frame: &[u8], reply: &[u8]) -> crate::flow::FlowRepr {
    let r = parse_ethernet(reply).unwrap_or_else(|e| panic!("{e}: {reply:02x?}"));
    assert_eq!(verify_ethernet(reply, RxChecksum::UNKNOWN), Ok(()));
    assert_eq!(reply[..6], frame[6..12]);
    assert_eq!(reply[6..12], frame[..6]);
    let (q, a) = (parse_ethernet(frame).unwrap().tuple, r.tuple);
    assert_eq!(a.family, q.family);
    r
}

fn tcp_of(reply: &[u8], l2: usize) -> TcpPacket<&[u8]> {
    let ip = &reply[l2..];
    let off = if ip[0] >> 4 == 4 { 20 } else { 40 };
    TcpPacket::new_checked(&ip[off..]).unwrap()
}

#[test]
fn reset_answers_a_syn_as_linux() {
    for frame in [syn4(), syn6()] {
        let reply = answer(Answer::TcpReset, &frame).expect("a reset");
        let r = check(&frame, &reply);
        let q = parse_ethernet(&frame).unwrap().tuple;
        assert_eq!(r.tuple, q.reversed());
        let t = tcp_of(&reply, 14);
        // No ACK in the SYN: seq 0, ack = seq + 1 (the SYN).
        assert_eq!(t.flags(), tcp_flags::RST | tcp_flags::ACK);
        assert_eq!((t.seq_number(), t.ack_number()), (0, 1001));
        assert_eq!(
            (t.window_len(), t.header_len(), t.payload().len()),
            (0, 20, 0)
        );
        if frame[12] == 0x08 {
            let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
            assert_eq!(
                (ip.ttl(), ip.ident(), ip.dont_frag(), ip.dscp_ecn()),
                (64, 0, true, 0)
            );
            assert_eq!(ip.total_len(), 40);
            assert_eq!(reply.len(), 54);
        } else {
            let ip = Ipv6Packet::new_checked(&reply[14..]).unwrap();
            assert_eq!(
                (ip.hop_limit(), ip.traffic_class(), ip.flow_label()),
                (64, 0, 0)
            );
            assert_eq!(ip.payload_len(), 20);
        }
    }
}

#[test]
fn reset_sequence_numbers() {
    // With ACK: seq = its ack, no ACK flag.
    let f = eth(
        0x0800,
        &v4(
            proto::TCP,
            0,
            &tcp(tcp_flags::ACK | tcp_flags::PSH, 5000, 777, 100),
        ),
    );
    let reply = answer(Answer::TcpReset, &f).unwrap();
    check(&f, &reply);
    let t = tcp_of(&reply, 14);
    assert_eq!(
        (t.flags(), t.seq_number(), t.ack_number()),
        (tcp_flags::RST, 777, 0)
    );
    // Without ACK, data and FIN: ack = seq + data + 1.
    let f = eth(
        0x86dd,
        &v6(proto::TCP, &[], &tcp(tcp_flags::FIN, u32::MAX - 10, 0, 30)),
    );
    let reply = answer(Answer::TcpReset, &f).unwrap();
    check(&f, &reply);
    let t = tcp_of(&reply, 14);
    assert_eq!(t.flags(), tcp_flags::RST | tcp_flags::ACK);
    assert_eq!(t.ack_number(), (u32::MAX - 10).wrapping_add(31));
    // Ethernet padding is not payload.
    let mut padded = eth(0x0800, &v4(proto::TCP, 0, &tcp(tcp_flags::SYN, 9, 0, 0)));
    padded.resize(80, 0);
    let t_reply = answer(Answer::TcpReset, &padded).unwrap();
    assert_eq!(tcp_of(&t_reply, 14).ack_number(), 10);
}

#[test]
fn reset_over_an_extension_header_and_vlan_tags() {
    let hbh = [proto::TCP, 0, 1, 4, 0, 0, 0, 0];
    let ip = v6(0, &hbh, &tcp(tcp_flags::SYN, 1, 0, 0));
    let mut f = eth(0x88a8, &[]);
    f.truncate(12);
    f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0, 0x20, 20, 0x86, 0xdd]);
    f.extend_from_slice(&ip);
    let reply = answer(Answer::TcpReset, &f).unwrap();
    check(&f, &reply);
    // The tags come back as received; the reset has no extension header.
    assert_eq!(reply[12..22], f[12..22]);
    assert_eq!(reply[22 + 6], proto::TCP);
    assert_eq!(tcp_of(&reply, 22).ack_number(), 2);
}

#[test]
fn no_reset_where_linux_sends_none() {
    let mut bad_sum = syn4();
    let n = bad_sum.len();
    bad_sum[n - 1] ^= 1;
    let mut frag = v4(proto::TCP, 0, &tcp(tcp_flags::SYN, 1, 0, 0));
    frag[6..8].copy_from_slice(&0x2000u16.to_be_bytes()); // MF
    fill_ip(&mut frag);
    let mut group_mac = syn4();
    group_mac[0] = 0x01;
    let mut bcast = v4(proto::TCP, 0, &tcp(tcp_flags::SYN, 1, 0, 0));
    bcast[16..20].copy_from_slice(&[255; 4]);
    fill_ip(&mut bcast);
    let mut mcast6 = v6(proto::TCP, &[], &tcp(tcp_flags::SYN, 1, 0, 0));
    mcast6[24] = 0xff;
    fill_ip(&mut mcast6);
    let mut unspec6 = v6(proto::TCP, &[], &tcp(tcp_flags::SYN, 1, 0, 0));
    unspec6[8..24].fill(0);
    fill_ip(&mut unspec6);
    for (why, f) in [
        (
            "a reset",
            eth(0x0800, &v4(proto::TCP, 0, &tcp(tcp_flags::RST, 1, 0, 0))),
        ),
        ("bad checksum", bad_sum),
        ("fragment", eth(0x0800, &frag)),
        ("udp", udp4(10)),
        ("group MAC", group_mac),
        ("broadcast", eth(0x0800, &bcast)),
        ("multicast v6", eth(0x86dd, &mcast6)),
        ("unspecified v6 source", eth(0x86dd, &unspec6)),
        ("arp", eth(0x0806, &[0; 28])),
    ] {
        assert_eq!(answer(Answer::TcpReset, &f), None, "{why}");
    }
}

const V4_CODES: [Unreachable4; 7] = [
    Unreachable4::Network,
    Unreachable4::Host,
    Unreachable4::Protocol,
    Unreachable4::Port,
    Unreachable4::NetProhibited,
    Unreachable4::HostProhibited,
    Unreachable4::AdminProhibited,
];

const V6_CODES: [Unreachable6; 7] = [
    Unreachable6::NoRoute,
    Unreachable6::AdminProhibited,
    Unreachable6::NotNeighbour,
    Unreachable6::Address,
    Unreachable6::Port,
    Unreachable6::SourceRoutingHeader,
    Unreachable6::HeadersTooLong,
];

#[test]
fn icmp_errors_quote_the_packet_as_linux() {
    for code in V4_CODES {
        for f in [udp4(30), syn4()] {
            let reply = answer(Answer::Icmp4(code), &f).expect("an error");
            let r = check(&f, &reply);
            let q = parse_ethernet(&f).unwrap().tuple;
            assert_eq!((r.tuple.src, r.tuple.dst), (q.dst, q.src));
            let L4::Icmp(i) = r.l4 else {
                panic!("{:?}", r.l4)
            };
            assert_eq!((i.icmp_type, i.code), (3, code as u8));
            assert_eq!(i.inner, Some(q), "the quote names the packet");
            // The whole packet is quoted from its IP header on.
            assert_eq!(&reply[14 + 28..], &f[14..]);
            let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
            assert_eq!((ip.ttl(), ip.dont_frag()), (64, false));
            assert_eq!(ip.dscp_ecn(), (f[15] & 0x1e) | 0xc0);
        }
    }
    for code in V6_CODES {
        let f = udp6(30);
        let reply = answer(Answer::Icmp6(code), &f).expect("an error");
        let r = check(&f, &reply);
        let L4::Icmp(i) = r.l4 else {
            panic!("{:?}", r.l4)
        };
        assert_eq!((i.icmp_type, i.code), (1, code as u8));
        assert_eq!(i.inner, Some(parse_ethernet(&f).unwrap().tuple));
        assert_eq!(&reply[14 + 48..], &f[14..]);
        assert_eq!(
            Ipv6Packet::new_checked(&reply[14..]).unwrap().hop_limit(),
            64
        );
    }
}

/// A router's errors: time exceeded (IPv4 type 11 / ICMPv6 type 3) and
/// fragmentation needed / packet too big with the MTU (RFC 1191, RFC 4443),
/// quoting the packet as the unreachables do; time exceeded rate-limited,
/// path MTU discovery not (as Linux).
#[test]
fn time_exceeded_and_too_big_as_a_router_sends_them() {
    for (a, ty, code, rest) in [
        (Answer::TimeExceeded, 11, 0, [0u8; 4]),
        (Answer::TooBig(1400), 3, 4, [0, 0, 0x05, 0x78]),
    ] {
        let f = udp4(30);
        let reply = answer(a, &f).expect("an error");
        let r = check(&f, &reply);
        let L4::Icmp(i) = r.l4 else {
            panic!("{:?}", r.l4)
        };
        assert_eq!((i.icmp_type, i.code), (ty, code));
        assert_eq!(i.inner, Some(parse_ethernet(&f).unwrap().tuple));
        assert_eq!(&reply[14 + 20 + 4..14 + 28], &rest);
        assert_eq!(&reply[14 + 28..], &f[14..]);
    }
    for (a, ty, rest) in [
        (Answer::TimeExceeded, 3, [0u8; 4]),
        (Answer::TooBig(1400), 2, [0, 0, 0x05, 0x78]),
    ] {
        let f = udp6(30);
        let reply = answer(a, &f).expect("an error");
        let r = check(&f, &reply);
        let L4::Icmp(i) = r.l4 else {
            panic!("{:?}", r.l4)
        };
        assert_eq!((i.icmp_type, i.code), (ty, 0));
        assert_eq!(&reply[14 + 40 + 4..14 + 48], &rest);
        assert_eq!(&reply[14 + 48..], &f[14..]);
    }
    assert!(needs_rate_limit(Answer::TimeExceeded));
    assert!(!needs_rate_limit(Answer::TooBig(1400)));
    // Never about an ICMP error.
    let err = answer(Answer::TimeExceeded, &udp4(30)).unwrap();
    assert_eq!(answer(Answer::TimeExceeded, &err), None);
    assert_eq!(answer(Answer::TooBig(576), &err), None);
}

#[test]
fn icmp_quotes_fill_576_and_1280_bytes() {
    let f = udp4(1400);
    let reply = answer(Answer::Icmp4(Unreachable4::Port), &f).unwrap();
    check(&f, &reply);
    assert_eq!(reply.len(), 14 + ICMP_V4_MAX);
    assert_eq!(&reply[14 + 28..], &f[14..14 + 548]);
    let q = quoted_tuple(Family::V4, &reply[14 + 28..]).unwrap();
    assert_eq!(q, parse_ethernet(&f).unwrap().tuple);

    let f = udp6(1400);
    let reply = answer(Answer::Icmp6(Unreachable6::Port), &f).unwrap();
    check(&f, &reply);
    assert_eq!(reply.len(), 14 + ICMP_V6_MAX);
    assert_eq!(&reply[14 + 48..], &f[14..14 + 1232]);
}

#[test]
fn icmp_source_is_the_given_address_or_the_original_destination() {
    let mut out = [0u8; MAX_ANSWER];
    let src = IcmpParams {
        v4: Some([203, 0, 113, 1]),
        v6: Some([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ident: 0xbeef,
        ..IcmpParams::default()
    };
    let f = udp4(8);
    let n = build(
        Answer::Icmp4(Unreachable4::AdminProhibited),
        &f,
        &src,
        &mut out,
    )
    .unwrap();
    let ip = Ipv4Packet::new_checked(&out[14..n]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.ident()),
        ([203, 0, 113, 1], C4, 0xbeef)
    );
    check(&f, &out[..n]);
    let f = udp6(8);
    let n = build(
        Answer::Icmp6(Unreachable6::AdminProhibited),
        &f,
        &src,
        &mut out,
    )
    .unwrap();
    let ip = Ipv6Packet::new_checked(&out[14..n]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (src.v6.unwrap(), C6));
    check(&f, &out[..n]);
    // No address given: the original destination.
    let f = udp4(8);
    let reply = answer(Answer::Icmp4(Unreachable4::Port), &f).unwrap();
    assert_eq!(
        Ipv4Packet::new_checked(&reply[14..]).unwrap().src_addr(),
        S4
    );
}

#[test]
fn a_forwarded_packet_is_quoted_with_its_ttl_decremented() {
    let fwd = IcmpParams {
        forwarded: true,
        ..IcmpParams::default()
    };
    let mut out = [0u8; MAX_ANSWER];
    for (f, ttl_at, code) in [
        (udp4(20), 14 + 28 + 8, Answer::Icmp4(Unreachable4::Port)),
        (udp6(20), 14 + 48 + 7, Answer::Icmp6(Unreachable6::Port)),
    ] {
        let n = build(code, &f, &fwd, &mut out).unwrap();
        check(&f, &out[..n]);
        let ttl = f[ttl_at - if f[12] == 0x08 { 28 } else { 48 }];
        assert_eq!(out[ttl_at], ttl - 1);
        if f[12] == 0x08 {
            // The quoted header's checksum still verifies.
            assert_eq!(checksum::fold(checksum::sum(&out[42..62], 0)), 0xffff);
        }
    }
}

#[test]
fn no_icmp_error_where_linux_sends_none() {
    let echo = [8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4];
    let unreach = {
        let mut e = vec![3, 3, 0, 0, 0, 0, 0, 0];
        e.extend_from_slice(&v4(proto::UDP, 0, &[0; 8]));
        e
    };
    let unknown = [99, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        answer(
            Answer::Icmp4(Unreachable4::Host),
            &eth(0x0800, &v4(proto::ICMP, 0, &echo))
        )
        .is_some()
    );
    assert_eq!(
        answer(
            Answer::Icmp4(Unreachable4::Host),
            &eth(0x0800, &v4(proto::ICMP, 0, &unreach))
        ),
        None
    );
    assert_eq!(
        answer(
            Answer::Icmp4(Unreachable4::Host),
            &eth(0x0800, &v4(proto::ICMP, 0, &unknown))
        ),
        None
    );
    let echo6 = [128, 0, 0, 0, 0x12, 0x34, 0, 1];
    let err6 = [1, 4, 0, 0, 0, 0, 0, 0];
    assert!(
        answer(
            Answer::Icmp6(Unreachable6::Port),
            &eth(0x86dd, &v6(proto::ICMPV6, &[], &echo6))
        )
        .is_some()
    );
    assert_eq!(
        answer(
            Answer::Icmp6(Unreachable6::Port),
            &eth(0x86dd, &v6(proto::ICMPV6, &[], &err6))
        ),
        None
    );

    // Fragments: the first is answered, the others not.
    let first = {
        let mut p = v4(
            proto::UDP,
            0,
            &[0x9c, 0x41, 0, 53, 0, 40, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        );
        p[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
        fill_ip(&mut p);
        p
    };
    let later = {
        let mut p = first.clone();
        p[6..8].copy_from_slice(&0x0002u16.to_be_bytes());
        fill_ip(&mut p);
        p
    };
    assert!(answer(Answer::Icmp4(Unreachable4::Port), &eth(0x0800, &first)).is_some());
    assert_eq!(
        answer(Answer::Icmp4(Unreachable4::Port), &eth(0x0800, &later)),
        None
    );
    let frag6 = |off: u16| {
        let mut fh = vec![proto::UDP, 0, 0, 0, 0, 0, 0, 7];
        fh[2..4].copy_from_slice(&(off << 3 | 1).to_be_bytes());
        eth(0x86dd, &v6(44, &fh, &[0x9c, 0x41, 0, 53, 0, 40, 0, 0]))
    };
    assert!(answer(Answer::Icmp6(Unreachable6::Port), &frag6(0)).is_some());
    assert_eq!(answer(Answer::Icmp6(Unreachable6::Port), &frag6(2)), None);

    // Broadcast / multicast, bad checksum, the other family's code.
    let mut group = udp4(8);
    group[0] = 0xff;
    assert_eq!(answer(Answer::Icmp4(Unreachable4::Port), &group), None);
    let mut mcast = v4(proto::UDP, 0, &[0x9c, 0x41, 0, 53, 0, 8, 0, 0]);
    mcast[16] = 239;
    fill_ip(&mut mcast);
    assert_eq!(
        answer(Answer::Icmp4(Unreachable4::Port), &eth(0x0800, &mcast)),
        None
    );
    let mut bad = udp4(8);
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    assert_eq!(answer(Answer::Icmp4(Unreachable4::Port), &bad), None);
    assert_eq!(answer(Answer::Icmp6(Unreachable6::Port), &udp4(8)), None);
    assert_eq!(answer(Answer::Icmp4(Unreachable4::Port), &udp6(8)), None);
}

#[test]
fn tarpit_answers_as_xt_tarpit_with_a_zero_window_syn_ack() {
    for frame in [syn4(), syn6()] {
        let reply = answer(Answer::Tarpit, &frame).expect("a SYN-ACK");
        check(&frame, &reply);
        let t = tcp_of(&reply, 14);
        assert_eq!(t.flags(), tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!(
            (t.seq_number(), t.ack_number(), t.window_len()),
            (0, 1001, 0)
        );
    }
    // The IPv4 TOS is kept (xt_TARPIT edits a copy of the header).
    let reply = answer(Answer::Tarpit, &syn4()).unwrap();
    assert_eq!(
        Ipv4Packet::new_checked(&reply[14..]).unwrap().dscp_ecn(),
        0x10
    );
    // Data: acknowledged without its bytes, window 0.
    let f = eth(
        0x0800,
        &v4(
            proto::TCP,
            0,
            &tcp(tcp_flags::ACK | tcp_flags::PSH, 1001, 1, 50),
        ),
    );
    let reply = answer(Answer::Tarpit, &f).unwrap();
    check(&f, &reply);
    let t = tcp_of(&reply, 14);
    assert_eq!(
        (t.flags(), t.seq_number(), t.ack_number(), t.window_len()),
        (tcp_flags::ACK, 1, 1001, 0)
    );
    // A SYN-ACK gets a reset.
    let f = eth(
        0x0800,
        &v4(
            proto::TCP,
            0,
            &tcp(tcp_flags::SYN | tcp_flags::ACK, 5, 9, 0),
        ),
    );
    let t_reply = answer(Answer::Tarpit, &f).unwrap();
    let t = tcp_of(&t_reply, 14);
    assert_eq!(
        (t.flags(), t.seq_number(), t.ack_number()),
        (tcp_flags::RST, 9, 0)
    );
    // FIN, RST, no flags, IPv4 options, IPv6 extension headers: nothing.
    let mut opts = vec![0x46, 0, 0, 0, 0, 0, 0x40, 0, 64, proto::TCP, 0, 0];
    let seg = tcp(tcp_flags::SYN, 1, 0, 0);
    opts[2..4].copy_from_slice(&((24 + seg.len()) as u16).to_be_bytes());
    opts.extend_from_slice(&C4);
    opts.extend_from_slice(&S4);
    opts.extend_from_slice(&[1, 1, 1, 0]);
    opts.extend_from_slice(&seg);
    fill_ip(&mut opts);
    assert!(answer(Answer::TcpReset, &eth(0x0800, &opts)).is_some());
    for f in [
        eth(
            0x0800,
            &v4(
                proto::TCP,
                0,
                &tcp(tcp_flags::FIN | tcp_flags::ACK, 1, 1, 0),
            ),
        ),
        eth(0x0800, &v4(proto::TCP, 0, &tcp(tcp_flags::RST, 1, 1, 0))),
        eth(0x0800, &v4(proto::TCP, 0, &tcp(0, 1, 1, 0))),
        eth(0x0800, &opts),
        eth(
            0x86dd,
            &v6(
                0,
                &[proto::TCP, 0, 1, 4, 0, 0, 0, 0],
                &tcp(tcp_flags::SYN, 1, 0, 0),
            ),
        ),
        udp4(4),
    ] {
        assert_eq!(answer(Answer::Tarpit, &f), None, "{f:02x?}");
    }
}

#[test]
fn short_buffers_get_none() {
    let f = udp4(100);
    let full = answer(Answer::Icmp4(Unreachable4::Port), &f).unwrap();
    let mut out = vec![0u8; full.len() - 1];
    assert_eq!(
        build(
            Answer::Icmp4(Unreachable4::Port),
            &f,
            &IcmpParams::default(),
            &mut out
        ),
        None
    );
    let mut out = [0u8; 53];
    assert_eq!(tcp_reset(&syn4(), &mut out), None);
    assert_eq!(tarpit(&syn4(), &mut out), None);
}

#[test]
fn rate_limiter_per_destination_and_global() {
    let ms = Instant::from_millis;
    let a = Addr::from_v4(C4);
    let b = Addr::from_v4(S4);
    let mut l = IcmpRateLimiter::linux_default();
    // A burst of 6 to one destination, then one per second.
    let sent = (0..10).filter(|_| l.allow(a, ms(1000))).count();
    assert_eq!(sent, 6);
    assert!(!l.allow(a, ms(1999)));
    assert!(l.allow(a, ms(2000)));
    assert!(!l.allow(a, ms(2500)));
    // Another destination has its own bucket.
    assert!(l.allow(b, ms(2500)));

    // Global: 50 at once over many destinations, then 1000/s.
    let mut l = IcmpRateLimiter::linux_default();
    let many = |i: u32| Addr::from_v4((0x0a00_0000 + i).to_be_bytes());
    let sent = (0..200).filter(|&i| l.allow(many(i), ms(0))).count();
    assert_eq!(sent, 50);
    // 10 ms later: below the 20 ms refill step, nothing more.
    assert!(!l.allow(many(1000), ms(10)));
    // 30 ms after the stamp: 30 more.
    let sent = (2000..2100).filter(|&i| l.allow(many(i), ms(30))).count();
    assert_eq!(sent, 30);
    // A long pause refills at most the burst.
    let sent = (3000..3200)
        .filter(|&i| l.allow(many(i), ms(60_000)))
        .count();
    assert_eq!(sent, 50);

    // 0 turns a limit off.
    let mut l = IcmpRateLimiter::new(0, 0, 0);
    assert_eq!((0..100).filter(|_| l.allow(a, ms(0))).count(), 100);
    assert!(needs_rate_limit(Answer::Icmp6(Unreachable6::Port)));
    assert!(!needs_rate_limit(Answer::TcpReset) && !needs_rate_limit(Answer::Tarpit));
    assert_eq!(answer_destination(&syn6()), Some(Addr::from_v6(C6)));
}

/// Every answer to every sample, written to a pcap that tshark reads with
/// checksum validation on: no malformed packet, no expert error. Skipped
/// with a reason where tshark is not installed (scripts/deps.sh installs it
/// for the test suite).
#[test]
fn tshark_finds_nothing_wrong() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("skipped: tshark is not installed (scripts/deps.sh installs it)");
        return;
    }
    let mut frames = Vec::new();
    let samples = [syn4(), syn6(), udp4(1400), udp6(1400), udp4(3), udp6(3)];
    let mut kinds = vec![Answer::TcpReset, Answer::Tarpit];
    kinds.extend(V4_CODES.map(Answer::Icmp4));
    kinds.extend(V6_CODES.map(Answer::Icmp6));
    for f in &samples {
        for &k in &kinds {
            if let Some(r) = answer(k, f) {
                frames.push(r);
            }
        }
    }
    // Two TCP samples get a reset, a tarpit answer and 7 errors each; four
    // UDP samples 7 errors each.
    assert_eq!(frames.len(), 2 * (2 + 7) + 4 * 7, "every sample answered");
    let dir = std::env::temp_dir().join(format!("ctrack-respond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("answers.pcap");
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        pcap.extend_from_slice(&(i as u32).to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        pcap.extend_from_slice(f);
    }
    std::fs::write(&path, &pcap).unwrap();
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.col.Info",
            "-e",
            "_ws.expert.message",
            "-Y",
            "_ws.malformed || _ws.expert.severity >= 0x800000",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim().is_empty(), "tshark flags:\n{text}");
    // And it read them all: the same run without the filter lists each.
}

proptest! {
    #[test]
    fn never_panics_and_what_is_built_verifies(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd)],
        fix in any::<bool>(),
    ) {
        let mut ip = data.clone();
        if fix {
            if let Some(b) = ip.first_mut() {
                *b = if ethertype == 0x0800 { 0x45 } else { 0x60 };
            }
            fill_ip(&mut ip);
        }
        let f = eth(ethertype, &ip);
        let mut kinds = vec![Answer::TcpReset, Answer::Tarpit];
        kinds.extend(V4_CODES.map(Answer::Icmp4));
        kinds.extend(V6_CODES.map(Answer::Icmp6));
        kinds.extend([Answer::TimeExceeded, Answer::TooBig(1280)]);
        for k in kinds {
            let mut out = [0u8; MAX_ANSWER];
            if let Some(n) = build(k, &f, &IcmpParams::default(), &mut out) {
                prop_assert!(parse_ethernet(&out[..n]).is_ok());
                prop_assert_eq!(verify_ethernet(&out[..n], RxChecksum::UNKNOWN), Ok(()));
            }
            let mut small = [0u8; 30];
            let _ = build(k, &f, &IcmpParams::default(), &mut small);
            let _ = build(k, &data, &IcmpParams::default(), &mut out);
        }
    }
}
