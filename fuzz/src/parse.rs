//! The `parse_only` target: the parser on its own.
//!
//! The whole input is one packet. It is parsed as raw IP ([`parse_ip`]) and
//! as an Ethernet frame ([`parse_ethernet`]), and given to [`quoted_tuple`]
//! for both families. Besides "no panic", it asserts:
//!
//! - every `Ok` [`FlowRepr`] is consistent ([`check_flow`]): `ip_len` within
//!   the bytes given, at least an IP header, the L4 summary matching the
//!   protocol number and family, ports as documented per protocol, the key's
//!   reply of the reply is the key;
//! - the raw-IP result is the same behind an Ethernet header, one 802.1Q tag,
//!   and a QinQ pair; behind three tags it is `VlanTooDeep`;
//! - an `Ok` packet parses the same with padding after it, and cut to exactly
//!   its `ip_len` (the parser reads nothing beyond the IP length, and needs
//!   nothing beyond it);
//! - every error's `index()` is below `ParseError::COUNT` and names itself;
//! - checksum verification ([`checksum::verify_ip`]) never panics, gives the
//!   same answer behind an Ethernet header, and accepts the packet once
//!   [`checksum::fill_ip`] wrote its checksums, if it still parses (the
//!   parse is the same: the parser reads no checksum);
//! - the firewall's answers ([`respond::build`]: resets, ICMP errors,
//!   tarpit segments) to the packet with its checksums filled in, behind an
//!   Ethernet header: none panics, each one built parses, verifies, goes
//!   back to the packet's source, and a buffer one byte short gets `None`.

use dataplane::conntrack::Key;
use dataplane::flow::{Family, FlowRepr, L4, proto};
use dataplane::packet::checksum::{self, RxChecksum};
use dataplane::packet::respond::{self, Answer, IcmpParams, Unreachable4, Unreachable6};
use dataplane::packet::{ParseError, parse_ethernet, parse_ip, quoted_tuple};

/// Runs the `parse_only` target on one input.
pub fn run(data: &[u8]) {
    let raw = parse_ip(data);
    check_result(&raw, data.len());
    let eth = parse_ethernet(data);
    check_result(&eth, data.len().saturating_sub(14));

    for family in [Family::V4, Family::V6] {
        if let Some(t) = quoted_tuple(family, data) {
            assert_eq!(t.family, family, "quoted_tuple changed the family");
        }
    }

    // The same packet behind link headers must parse the same.
    let ethertype: u16 = match data.first().map(|b| b >> 4) {
        Some(4) => 0x0800,
        Some(6) => 0x86dd,
        _ => return,
    };
    let et = ethertype.to_be_bytes();
    let mac = [2u8, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    let wrap = |tags: &[[u8; 4]]| {
        let mut f = Vec::with_capacity(data.len() + 14 + 4 * tags.len());
        f.extend_from_slice(&mac);
        for t in tags {
            f.extend_from_slice(t);
        }
        f.extend_from_slice(&et);
        f.extend_from_slice(data);
        f
    };
    let vlan = [0x81, 0x00, 0x20, 0x64];
    let stag = [0x88, 0xa8, 0x00, 0x0a];
    assert_eq!(
        parse_ethernet(&wrap(&[])),
        raw,
        "untagged Ethernet differs from raw IP"
    );
    assert_eq!(
        parse_ethernet(&wrap(&[vlan])),
        raw,
        "802.1Q differs from raw IP"
    );
    assert_eq!(
        parse_ethernet(&wrap(&[stag, vlan])),
        raw,
        "QinQ differs from raw IP"
    );
    assert_eq!(
        parse_ethernet(&wrap(&[stag, vlan, vlan])),
        Err(ParseError::VlanTooDeep),
        "three tags"
    );

    // Checksums: the same verdict behind Ethernet; filled in, they pass.
    let nic = RxChecksum::UNKNOWN;
    let verdict = checksum::verify_ip(data, nic);
    assert_eq!(
        checksum::verify_ethernet(&wrap(&[vlan]), nic),
        verdict,
        "checksum verdict differs behind 802.1Q"
    );
    let mut filled = data.to_vec();
    checksum::fill_ip(&mut filled);
    let refilled = parse_ip(&filled);
    if raw.is_ok() {
        assert_eq!(refilled, raw, "filling checksums changed the parse");
        assert_eq!(
            checksum::verify_ip(&filled, nic),
            Ok(()),
            "fill_ip's checksums do not verify"
        );
        assert_eq!(checksum::verify_ip(&filled, RxChecksum::GOOD), Ok(()));
    }
    let mut frame = mac.to_vec();
    frame.extend_from_slice(&et);
    frame.extend_from_slice(&filled);
    check_answers(&frame);

    if let Ok(r) = raw {
        // Padding is not part of the packet.
        let mut padded = data.to_vec();
        padded.extend_from_slice(&[0xff; 17]);
        assert_eq!(parse_ip(&padded), raw, "padding changed the parse");
        // Nothing beyond ip_len is needed.
        let cut = &data[..r.ip_len as usize];
        assert_eq!(parse_ip(cut), raw, "cutting to ip_len changed the parse");
    }
}

/// Every answer kind for `frame` (see the module doc).
fn check_answers(frame: &[u8]) {
    use Unreachable4 as U4;
    use Unreachable6 as U6;
    let kinds = [
        Answer::TcpReset,
        Answer::Tarpit,
        Answer::Icmp4(U4::Network),
        Answer::Icmp4(U4::Port),
        Answer::Icmp4(U4::AdminProhibited),
        Answer::Icmp6(U6::NoRoute),
        Answer::Icmp6(U6::Port),
        Answer::Icmp6(U6::HeadersTooLong),
        Answer::TimeExceeded,
        Answer::TooBig(1280),
    ];
    let params = IcmpParams {
        v4: Some([192, 0, 2, 1]),
        v6: None,
        ident: 7,
        forwarded: frame.len().is_multiple_of(2),
    };
    let mut out = [0u8; respond::MAX_ANSWER];
    for k in kinds {
        let Some(n) = respond::build(k, frame, &params, &mut out) else {
            continue;
        };
        let reply = &out[..n];
        let r =
            parse_ethernet(reply).unwrap_or_else(|e| panic!("{k:?}: answer does not parse: {e}"));
        assert_eq!(
            checksum::verify_ethernet(reply, RxChecksum::UNKNOWN),
            Ok(()),
            "{k:?}: answer checksums"
        );
        assert_eq!(reply[..6], frame[6..12], "{k:?}: to the sender's MAC");
        // (An ICMP error may answer a packet conntrack would call invalid.)
        assert_eq!(
            Some(r.tuple.dst),
            respond::answer_destination(frame),
            "{k:?}: to the sender"
        );
        assert_eq!(reply[12..14], frame[12..14], "{k:?}: family");
        let mut short = vec![0u8; n - 1];
        assert_eq!(
            respond::build(k, frame, &params, &mut short),
            None,
            "{k:?}: short buffer"
        );
    }
}

fn check_result(r: &Result<FlowRepr, ParseError>, ip_bytes: usize) {
    match r {
        Ok(f) => check_flow(f, ip_bytes),
        Err(e) => {
            assert!(e.index() < ParseError::COUNT);
            assert_eq!(ParseError::ALL[e.index()], *e);
            assert!(!e.name().is_empty());
        }
    }
}

/// Asserts that a parsed packet is self-consistent. `ip_bytes` is how many
/// bytes from the IP header on the parser was given (an upper bound for an
/// Ethernet frame: the frame less its untagged header).
pub fn check_flow(f: &FlowRepr, ip_bytes: usize) {
    let ip_len = f.ip_len as usize;
    assert!(
        ip_len <= ip_bytes,
        "ip_len {ip_len} beyond the {ip_bytes} bytes given: {f:?}"
    );
    let (min_ip, icmp) = match f.tuple.family {
        Family::V4 => (20, proto::ICMP),
        Family::V6 => (40, proto::ICMPV6),
    };
    assert!(
        ip_len >= min_ip,
        "ip_len {ip_len} below an IP header: {f:?}"
    );
    let t = &f.tuple;
    match &f.l4 {
        L4::Tcp(i) => {
            assert_eq!(t.proto, proto::TCP, "{f:?}");
            assert!(
                i.payload_len as usize + 20 + min_ip <= ip_len,
                "TCP payload_len beyond the IP length: {f:?}"
            );
        }
        L4::Udp => {
            assert_eq!(t.proto, proto::UDP, "{f:?}");
            assert!(ip_len >= min_ip + 8, "{f:?}");
        }
        L4::Icmp(i) => {
            assert_eq!(t.proto, icmp, "ICMP of the wrong family: {f:?}");
            assert!(ip_len >= min_ip + 8, "{f:?}");
            assert_eq!(t.src_port, i.id, "{f:?}");
            assert_eq!(
                t.dst_port,
                u16::from(i.icmp_type) << 8 | u16::from(i.code),
                "{f:?}"
            );
            if let Some(inner) = &i.inner {
                assert_eq!(inner.family, t.family, "quote of another family: {f:?}");
            }
        }
        L4::Gre(g) => {
            assert_eq!(t.proto, proto::GRE, "{f:?}");
            assert!(g.version <= 1, "GRE version {} accepted: {f:?}", g.version);
            if g.version == 1 {
                assert!(g.key.is_some(), "PPTP GRE without a call id: {f:?}");
            }
            assert_eq!((t.src_port, t.dst_port), (0, 0), "{f:?}");
        }
        L4::Other => {
            assert!(
                ![proto::TCP, proto::UDP, proto::GRE, icmp].contains(&t.proto),
                "protocol {} parsed as Other: {f:?}",
                t.proto
            );
            assert_eq!((t.src_port, t.dst_port), (0, 0), "{f:?}");
        }
    }
    let k = Key::of_packet(&f.tuple, &f.l4);
    assert_eq!(
        k.reply().reply(),
        k,
        "reply of the reply is not the key: {f:?}"
    );
}
