//! The RouterOS v7 default configuration (`tests/defconf.rsc`, as `/export`
//! prints it, long lines wrapped with `\`): it parses, exports back line for
//! line in its firewall menus, round-trips, and the compiled rules behave as
//! RouterOS's defconf firewall does.

use ctrack_core::conntrack::Instant;
use ctrack_core::flow::{Addr, Family, proto};
use ctrack_rules::model::Action;
use ctrack_rules::value::Fam;
use ctrack_rules::*;

const DEFCONF: &str = include_str!("defconf.rsc");

fn lenient() -> Parsed {
    parse_with(DEFCONF, Options { lenient: true }).unwrap()
}

/// `menu -> lines` of a script, continuations joined, comments dropped.
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let joined = text.replace("\\\n    ", "");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            out.push((line.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

#[test]
fn strict_parse_names_the_first_unsupported_menu() {
    let e = parse(DEFCONF).unwrap_err();
    assert_eq!((e.line, e.word.as_str()), (6, "/interface bridge"));
}

#[test]
fn lenient_parse_skips_only_the_unsupported_menus() {
    let p = lenient();
    let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
    assert_eq!(
        lines,
        [
            6, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 26, 27, 28, 29, 117, 118, 119, 120, 121, 122
        ]
    );
    let c = &p.config;
    assert_eq!(c.ip.filter.len(), 11);
    assert_eq!(c.ip.nat.len(), 1);
    assert_eq!(c.ipv6.filter.len(), 22);
    assert_eq!(c.ipv6.address_list.len(), 9);
    assert!(c.ipv6.address_list.iter().all(|e| e.list == "bad_ipv6"));
    assert_eq!(c.interface_lists.len(), 2);
    assert_eq!(c.interface_list_members.len(), 2);
    assert_eq!(c.ip_addresses.len(), 1);
    let masq = &c.ip.nat[0];
    assert_eq!(masq.action, Action::Masquerade);
    assert_eq!(masq.matcher("ipsec-policy").unwrap().value(), "out,none");
    let hop = &c.ipv6.filter[14];
    assert_eq!(hop.matcher("hop-limit").unwrap().value(), "equal:1");
    assert_eq!(
        c.ipv6.filter[16].matcher("protocol").unwrap().value(),
        "139"
    );
    assert_eq!(
        c.ipv6.filter[6].matcher("protocol").unwrap().value(),
        "ipsec-ah"
    );
}

#[test]
fn export_matches_routeros_line_for_line_and_round_trips() {
    let c = lenient().config;
    let text = export(&c);
    assert_eq!(parse(&text).unwrap(), c);
    let ours = sections(&text);
    let theirs = sections(DEFCONF);
    for (menu, lines) in &ours {
        let (_, want) = theirs
            .iter()
            .find(|(m, _)| m == menu)
            .unwrap_or_else(|| panic!("{menu} not in the fixture"));
        assert_eq!(lines, want, "{menu}");
    }
    let menus: Vec<&str> = ours.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        menus,
        [
            "/interface list",
            "/interface list member",
            "/ip address",
            "/ip firewall filter",
            "/ip firewall nat",
            "/ipv6 firewall address-list",
            "/ipv6 firewall filter"
        ]
    );
}

const IFACES: &[&str] = &["ether1", "ether2", "bridge"];
const WAN: u16 = 0;
const LAN: u16 = 2;

fn ruleset() -> Ruleset {
    let cfg = lenient().config;
    let names: Vec<String> = IFACES.iter().map(|s| s.to_string()).collect();
    Ruleset::compile(&cfg, &names, &mut Names::default()).unwrap()
}

fn p4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    dport: u16,
    state: ConnState,
    inif: u16,
    outif: u16,
) -> PacketCtx<'static> {
    let mut p = PacketCtx {
        family: Family::V4,
        src: Addr::from_v4(src),
        dst: Addr::from_v4(dst),
        proto,
        src_port: 40000,
        dst_port: dport,
        ttl: 64,
        size: 60,
        in_iface: inif,
        out_iface: outif,
        ..PacketCtx::default()
    };
    p.conn.state = state;
    p
}

fn eval(rs: &Ruleset, hook: Hook, p: &PacketCtx<'_>) -> Verdict {
    let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
    rs.evaluate(hook, Instant::ZERO, p, &mut ws, &NoEnv)
}

fn position(rs: &Ruleset, v: &Verdict) -> Option<usize> {
    v.rule.map(|id| rs.rule(id).unwrap().position)
}

#[test]
fn ipv4_defconf_behaves_like_routeros() {
    let rs = ruleset();
    let lan = [192, 168, 88, 10];
    let net = [8, 8, 8, 8];
    // New connection from WAN, not DSTNATed: dropped by the last forward rule.
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p4(net, lan, proto::TCP, 22, ConnState::New, WAN, LAN),
    );
    assert_eq!((v.action, position(&rs, &v)), (Final::Drop, Some(10)));
    // The same, DSTNATed: accepted by the chain's default.
    let mut dnat = p4(net, lan, proto::TCP, 22, ConnState::New, WAN, LAN);
    dnat.conn.nat = ctrack_rules::engine::NAT_DSTNAT;
    let v = eval(&rs, Hook::FilterForward, &dnat);
    assert_eq!((v.action, v.rule), (Final::Accept, None));
    // LAN to WAN, new: accepted (no rule decides).
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p4(lan, net, proto::TCP, 443, ConnState::New, LAN, WAN),
    );
    assert_eq!((v.action, v.rule), (Final::Accept, None));
    // Established: fasttracked, then accepted by rule 8.
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p4(net, lan, proto::TCP, 443, ConnState::Established, WAN, LAN),
    );
    assert!(v.fasttrack);
    assert_eq!((v.action, position(&rs, &v)), (Final::Accept, Some(8)));
    // Invalid: dropped.
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p4(net, lan, proto::TCP, 443, ConnState::Invalid, WAN, LAN),
    );
    assert_eq!((v.action, position(&rs, &v)), (Final::Drop, Some(9)));
    // Input: ICMP from WAN is accepted, SSH from WAN dropped, SSH from LAN accepted.
    let v = eval(
        &rs,
        Hook::FilterInput,
        &p4(net, [1, 2, 3, 4], proto::ICMP, 0, ConnState::New, WAN, NO),
    );
    assert_eq!((v.action, position(&rs, &v)), (Final::Accept, Some(2)));
    let v = eval(
        &rs,
        Hook::FilterInput,
        &p4(net, [1, 2, 3, 4], proto::TCP, 22, ConnState::New, WAN, NO),
    );
    assert_eq!((v.action, position(&rs, &v)), (Final::Drop, Some(4)));
    let v = eval(
        &rs,
        Hook::FilterInput,
        &p4(
            lan,
            [192, 168, 88, 1],
            proto::TCP,
            22,
            ConnState::New,
            LAN,
            NO,
        ),
    );
    assert_eq!((v.action, v.rule), (Final::Accept, None));
    // Srcnat: masquerade out of WAN, nothing out of LAN.
    let v = eval(
        &rs,
        Hook::NatSrcnat,
        &p4(lan, net, proto::UDP, 53, ConnState::New, LAN, WAN),
    );
    let Final::Nat(id) = v.action else {
        panic!("{v:?}")
    };
    assert_eq!(rs.nat(id).unwrap().action, Action::Masquerade);
    let v = eval(
        &rs,
        Hook::NatSrcnat,
        &p4(net, lan, proto::UDP, 53, ConnState::New, WAN, LAN),
    );
    assert_eq!(v.action, Final::Accept);
}

const NO: u16 = ctrack_rules::engine::NO_IFACE;

fn p6(
    src: &str,
    dst: &str,
    proto: u8,
    dport: u16,
    ttl: u8,
    inif: u16,
    outif: u16,
) -> PacketCtx<'static> {
    let a = |s: &str| Addr::from_v6(s.parse::<std::net::Ipv6Addr>().unwrap().octets());
    PacketCtx {
        family: Family::V6,
        src: a(src),
        dst: a(dst),
        proto,
        dst_port: dport,
        ttl,
        size: 80,
        in_iface: inif,
        out_iface: outif,
        ..PacketCtx::default()
    }
}

#[test]
fn ipv6_defconf_behaves_like_routeros() {
    let rs = ruleset();
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("::1", "2001:db9::1", proto::TCP, 80, 64, LAN, WAN),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Drop, Some(12)),
        "bad src ipv6"
    );
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("2001:db9::1", "2001:db8::5", proto::TCP, 80, 64, LAN, WAN),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Drop, Some(13)),
        "bad dst ipv6 (documentation)"
    );
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("2001:db9::1", "2a00::1", proto::ICMPV6, 0, 1, LAN, WAN),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Drop, Some(14)),
        "hop-limit=1"
    );
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("2001:db9::1", "2a00::1", proto::ICMPV6, 0, 64, WAN, LAN),
    );
    assert_eq!((v.action, position(&rs, &v)), (Final::Accept, Some(15)));
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("2a00::1", "2001:db9::1", 50, 0, 64, WAN, LAN),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Accept, Some(19)),
        "ipsec-esp"
    );
    let v = eval(
        &rs,
        Hook::FilterForward,
        &p6("2a00::1", "2001:db9::1", proto::TCP, 22, 64, WAN, LAN),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Drop, Some(21)),
        "not from LAN"
    );
    let v = eval(
        &rs,
        Hook::FilterInput,
        &p6("fe80::1", "fe80::2", proto::UDP, 546, 64, WAN, NO),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Accept, Some(4)),
        "DHCPv6 PD"
    );
    let v = eval(
        &rs,
        Hook::FilterInput,
        &p6("2a00::1", "fe80::2", proto::UDP, 546, 64, WAN, NO),
    );
    assert_eq!(
        (v.action, position(&rs, &v)),
        (Final::Drop, Some(9)),
        "DHCPv6 not from link-local"
    );
    // IPv4 rules never see IPv6 packets: the v6 list ids are their own.
    assert!(rs.list_id(Fam::V6, "bad_ipv6").is_some());
    assert!(rs.list_id(Fam::V4, "bad_ipv6").is_none());
}
