//! Engine tests: every matcher and action with RouterOS semantics.

use ctrack_core::conntrack::Instant;
use ctrack_core::flow::{Addr, Family, proto, tcp_flags as F};
use ctrack_rules::engine::{NAT_DSTNAT, NAT_SRCNAT, NO_IFACE, NO_MARK, PREFILTER_MIN};
use ctrack_rules::value::{Fam, RejectWith};
use ctrack_rules::*;

const IFACES: &[&str] = &["ether1", "ether2", "ether3"];

fn compile(script: &str) -> (Ruleset, Names) {
    let cfg = parse(script).unwrap_or_else(|e| panic!("{e}"));
    let ifaces: Vec<String> = IFACES.iter().map(|s| s.to_string()).collect();
    let mut names = Names::default();
    let rs = Ruleset::compile(&cfg, &ifaces, &mut names).unwrap_or_else(|e| panic!("{e}"));
    (rs, names)
}

fn compile_err(script: &str) -> CompileError {
    let cfg = parse(script).unwrap();
    let ifaces: Vec<String> = IFACES.iter().map(|s| s.to_string()).collect();
    Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap_err()
}

fn v4(a: [u8; 4]) -> Addr {
    Addr::from_v4(a)
}

/// TCP 10.0.0.1:1234 -> 10.0.0.2:80 from ether1 to ether2, 100 bytes, ttl 64.
fn pkt() -> PacketCtx<'static> {
    PacketCtx {
        family: Family::V4,
        src: v4([10, 0, 0, 1]),
        dst: v4([10, 0, 0, 2]),
        proto: proto::TCP,
        src_port: 1234,
        dst_port: 80,
        tcp_flags: F::SYN,
        ttl: 64,
        size: 100,
        in_iface: 0,
        out_iface: 1,
        ..PacketCtx::default()
    }
}

fn ws(rs: &Ruleset) -> WorkerState {
    WorkerState::new(rs, Instant::ZERO, 64, 64)
}

/// The filter/forward verdict's decision for `p` with a fresh worker state.
fn fwd(rs: &Ruleset, p: &PacketCtx<'_>) -> Final {
    rs.evaluate(Hook::FilterForward, Instant::ZERO, p, &mut ws(rs), &NoEnv)
        .action
}

/// A one-rule script: `add chain=forward action=drop <props>`; does it drop `p`?
fn drops(props: &str, p: &PacketCtx<'_>) -> bool {
    let script = format!(
        "/interface list\nadd name=LAN\nadd name=WAN\nadd name=ALL include=LAN,WAN\nadd name=NOTWAN include=LAN,WAN exclude=WAN\n\
         /interface list member\nadd interface=ether1 list=LAN\nadd interface=ether2 list=WAN\nadd interface=bridge list=LAN\n\
         /ip firewall filter\nadd chain=forward action=drop {props}\n"
    );
    fwd(&compile(&script).0, p) == Final::Drop
}

#[test]
fn protocol_and_addresses() {
    let p = pkt();
    assert!(drops("protocol=tcp", &p));
    assert!(!drops("protocol=udp", &p));
    assert!(drops("protocol=!udp", &p));
    assert!(drops("protocol=6", &p));
    assert!(drops("src-address=10.0.0.0/24", &p));
    assert!(!drops("src-address=!10.0.0.0/24", &p));
    assert!(drops("src-address=10.0.0.1", &p));
    assert!(!drops("src-address=10.0.0.3", &p));
    assert!(drops("dst-address=10.0.0.2-10.0.0.9", &p));
    assert!(!drops("dst-address=10.0.0.3-10.0.0.9", &p));
    assert!(drops("dst-address=!10.0.0.3-10.0.0.9", &p));
    assert!(drops("src-address=0.0.0.0/0", &p));
}

#[test]
fn ports_lists_ranges_negation() {
    let p = pkt();
    assert!(drops("protocol=tcp dst-port=80", &p));
    assert!(drops("protocol=tcp dst-port=22,80-90", &p));
    assert!(!drops("protocol=tcp dst-port=22,81-90", &p));
    assert!(drops("protocol=tcp dst-port=!22,81-90", &p));
    assert!(drops("protocol=tcp src-port=1024-65535", &p));
    assert!(drops("protocol=tcp port=1234", &p));
    assert!(drops("protocol=tcp port=80", &p));
    assert!(!drops("protocol=tcp port=!80", &p));
    // A protocol without ports matches no port matcher, negated or not.
    let mut icmp = pkt();
    icmp.proto = proto::ICMP;
    assert!(!drops("dst-port=80", &icmp));
    assert!(!drops("dst-port=!80", &icmp));
}

#[test]
fn interfaces_and_interface_lists() {
    let p = pkt(); // in ether1 (LAN), out ether2 (WAN)
    assert!(drops("in-interface=ether1", &p));
    assert!(!drops("in-interface=!ether1", &p));
    assert!(drops("out-interface=ether2", &p));
    assert!(drops("in-interface-list=LAN", &p));
    assert!(!drops("in-interface-list=!LAN", &p));
    assert!(drops("out-interface-list=WAN", &p));
    assert!(drops("in-interface-list=ALL out-interface-list=ALL", &p));
    assert!(!drops("out-interface-list=NOTWAN", &p));
    assert!(drops("in-interface-list=NOTWAN", &p));
    assert!(drops("in-interface-list=all", &p));
    assert!(!drops("in-interface-list=none", &p));
    // No in-interface (output): neither the list nor its negation matches.
    let mut out = pkt();
    out.in_iface = NO_IFACE;
    assert!(!drops("in-interface-list=LAN", &out));
    assert!(!drops("in-interface-list=!LAN", &out));
    // Unknown names are compile errors naming the rule.
    let e = compile_err("/ip firewall filter\nadd chain=forward in-interface=ether9\n");
    assert!(e.to_string().contains("ether9"), "{e}");
    let e = compile_err("/ip firewall filter\nadd chain=forward in-interface-list=NOPE\n");
    assert!(e.to_string().contains("NOPE"), "{e}");
}

#[test]
fn tcp_flags_icmp_size_ttl_dscp() {
    let mut p = pkt();
    p.tcp_flags = F::SYN;
    assert!(drops("protocol=tcp tcp-flags=syn,!ack", &p));
    p.tcp_flags = F::SYN | F::ACK;
    assert!(!drops("protocol=tcp tcp-flags=syn,!ack", &p));
    assert!(drops("tcp-flags=syn,ack", &p));
    let mut icmp = pkt();
    icmp.proto = proto::ICMP;
    icmp.icmp_type = 8;
    assert!(drops("protocol=icmp icmp-options=8:0", &icmp));
    assert!(drops("protocol=icmp icmp-options=8", &icmp));
    assert!(!drops("protocol=icmp icmp-options=0:0", &icmp));
    assert!(drops("protocol=icmp icmp-options=!0:0", &icmp));
    assert!(!drops("tcp-flags=syn", &icmp), "tcp-flags needs TCP");
    assert!(drops("packet-size=100", &p));
    assert!(drops("packet-size=0-100", &p));
    assert!(!drops("packet-size=101-1500", &p));
    assert!(drops("packet-size=!101-1500", &p));
    assert!(drops("ttl=equal:64", &p));
    assert!(!drops("ttl=not-equal:64", &p));
    assert!(drops("ttl=greater-than:63", &p));
    assert!(!drops("ttl=less-than:64", &p));
    p.dscp = 46;
    assert!(drops("dscp=46", &p));
    assert!(!drops("dscp=!46", &p));
}

#[test]
fn hop_limit_in_ipv6() {
    let (rs, _) = compile(
        "/ipv6 firewall filter\nadd chain=forward action=drop hop-limit=equal:1 protocol=icmpv6 src-address=fe80::/10\n",
    );
    let mut p = pkt();
    p.family = Family::V6;
    p.proto = proto::ICMPV6;
    p.src = Addr::from_v6("fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.ttl = 1;
    assert_eq!(fwd(&rs, &p), Final::Drop);
    p.ttl = 2;
    assert_eq!(fwd(&rs, &p), Final::Accept);
    // IPv4 packets do not see /ipv6 rules.
    assert_eq!(fwd(&rs, &pkt()), Final::Accept);
}

#[test]
fn connection_state_nat_type_bytes_rate() {
    let mut p = pkt();
    p.conn.state = ConnState::Established;
    assert!(drops("connection-state=established,related", &p));
    assert!(!drops("connection-state=new,invalid", &p));
    assert!(drops("connection-state=!new,invalid", &p));
    p.conn.state = ConnState::Untracked;
    assert!(drops("connection-state=untracked", &p));
    p.conn.nat = NAT_DSTNAT;
    assert!(drops("connection-nat-state=dstnat", &p));
    assert!(!drops("connection-nat-state=!dstnat", &p));
    p.conn.nat = NAT_SRCNAT;
    assert!(drops("connection-nat-state=!dstnat", &p));
    p.conn.nat = 0;
    assert!(!drops("connection-nat-state=srcnat,dstnat", &p));
    p.conn.conn_type = Some(0); // ftp
    assert!(drops("connection-type=ftp", &p));
    assert!(!drops("connection-type=sip", &p));
    p.conn.conn_type = None;
    assert!(drops("connection-type=!ftp", &p));
    p.conn.bytes = 1000;
    assert!(
        drops("connection-bytes=1000-0", &p),
        "N-0: N or more (Linux connbytes)"
    );
    assert!(!drops("connection-bytes=1001-0", &p));
    assert!(drops("connection-bytes=0-1000", &p));
    assert!(!drops("connection-bytes=0-999", &p));
    p.conn.rate_bps = 2_000_000;
    assert!(drops("connection-rate=1M-0", &p));
    assert!(!drops("connection-rate=0-1M", &p));
}

#[test]
fn marks_no_mark_and_passthrough() {
    let (rs, names) = compile(
        "/ip firewall mangle\n\
         add chain=forward action=mark-connection new-connection-mark=web connection-mark=no-mark\n\
         add chain=forward action=mark-packet new-packet-mark=webp connection-mark=web passthrough=no\n\
         add chain=forward action=mark-packet new-packet-mark=never\n",
    );
    let web = names.id("web").unwrap();
    let webp = names.id("webp").unwrap();
    let p = pkt();
    let v = rs.evaluate(Hook::MangleForward, Instant::ZERO, &p, &mut ws(&rs), &NoEnv);
    // The new connection mark is seen by the next rule; passthrough=no stops.
    assert_eq!(v.conn_mark, Some(web));
    assert_eq!(v.packet_mark, Some(webp));
    assert_eq!(v.rule, rs.rule_id(Fam::V4, Table::Mangle, 1));
    // A marked connection is not `no-mark`.
    let mut marked = pkt();
    marked.conn.mark = names.id("web").unwrap();
    let v = rs.evaluate(
        Hook::MangleForward,
        Instant::ZERO,
        &marked,
        &mut ws(&rs),
        &NoEnv,
    );
    assert_eq!(v.conn_mark, None);
    assert_eq!(v.packet_mark, Some(webp));
    // Packet mark matching.
    let (rs2, n2) =
        compile("/ip firewall filter\nadd chain=forward action=drop packet-mark=!no-mark\n");
    let mut p = pkt();
    assert_eq!(fwd(&rs2, &p), Final::Accept);
    p.packet_mark = NO_MARK + 5;
    let _ = n2;
    assert_eq!(fwd(&rs2, &p), Final::Drop);
}

#[test]
fn limit_token_bucket() {
    let (rs, _) = compile(
        "/ip firewall filter\nadd chain=forward action=accept limit=2/1s,3:packet\nadd chain=forward action=drop\n",
    );
    let mut w = ws(&rs);
    let p = pkt();
    let at = |ms: u64, w: &mut WorkerState| {
        rs.evaluate(Hook::FilterForward, Instant::from_millis(ms), &p, w, &NoEnv)
            .action
    };
    // The burst of 3 goes through, the 4th is over the limit.
    for _ in 0..3 {
        assert_eq!(at(0, &mut w), Final::Accept);
    }
    assert_eq!(at(0, &mut w), Final::Drop);
    // 2 per second: one token every 500 ms.
    assert_eq!(at(499, &mut w), Final::Drop);
    assert_eq!(at(500, &mut w), Final::Accept);
    assert_eq!(at(500, &mut w), Final::Drop);
    // A long pause refills to the burst, not beyond.
    for _ in 0..3 {
        assert_eq!(at(60_000, &mut w), Final::Accept);
    }
    assert_eq!(at(60_000, &mut w), Final::Drop);
}

#[test]
fn address_lists_static_dynamic_and_timeouts() {
    let (rs, _) = compile(
        "/ip firewall address-list\nadd address=10.0.0.0/30 list=static\nadd address=192.168.1.1 list=timed timeout=5s\n\
         /ip firewall filter\n\
         add chain=forward action=drop src-address-list=static dst-port=22 protocol=tcp\n\
         add chain=forward action=drop src-address-list=scanners\n\
         add chain=forward action=add-src-to-address-list address-list=scanners address-list-timeout=10s dst-port=23 protocol=tcp\n\
         add chain=forward action=drop src-address-list=timed\n",
    );
    let mut w = WorkerState::new(&rs, Instant::from_secs(100), 64, 64);
    let ev = |p: &PacketCtx<'_>, s: u64, w: &mut WorkerState| {
        rs.evaluate(Hook::FilterForward, Instant::from_secs(s), p, w, &NoEnv)
            .action
    };
    let mut ssh = pkt();
    ssh.dst_port = 22;
    assert_eq!(
        ev(&ssh, 100, &mut w),
        Final::Drop,
        "10.0.0.1 is in 10.0.0.0/30"
    );
    ssh.src = v4([10, 0, 0, 4]);
    assert_eq!(ev(&ssh, 100, &mut w), Final::Accept);
    // Telnet puts the source on `scanners` for 10 s; then all of it drops.
    let mut telnet = pkt();
    telnet.dst_port = 23;
    assert_eq!(ev(&telnet, 100, &mut w), Final::Accept);
    assert_eq!(ev(&pkt(), 105, &mut w), Final::Drop);
    assert_eq!(ev(&pkt(), 110, &mut w), Final::Accept, "expired after 10 s");
    // The script's timed entry expires 5 s after the worker state was built.
    let mut timed = pkt();
    timed.src = v4([192, 168, 1, 1]);
    assert_eq!(ev(&timed, 104, &mut w), Final::Drop);
    assert_eq!(ev(&timed, 105, &mut w), Final::Accept);
    // Both entries are gone at 110 s.
    assert_eq!(w.lists.poll_expired(Instant::from_secs(110)), 2);
    assert!(w.lists.is_empty());
    // The addition went to the outbox for control.
    let mut out = Vec::new();
    w.lists.drain_outbox(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(rs.list_name(Fam::V4, out[0].list), Some("scanners"));
    assert_eq!(out[0].expires, Some(Instant::from_secs(110)));
}

#[test]
fn jump_return_and_implicit_return() {
    let (rs, _) = compile(
        "/ip firewall filter\n\
         add chain=forward action=jump jump-target=a\n\
         add chain=forward action=drop protocol=udp\n\
         add chain=forward action=reject reject-with=icmp-admin-prohibited\n\
         add chain=a action=jump jump-target=b\n\
         add chain=a action=accept dst-port=80 protocol=tcp\n\
         add chain=b action=return protocol=tcp\n\
         add chain=b action=drop\n",
    );
    // tcp/80: forward -> a -> b (return) -> a: accept.
    let v = rs.evaluate(
        Hook::FilterForward,
        Instant::ZERO,
        &pkt(),
        &mut ws(&rs),
        &NoEnv,
    );
    assert_eq!(v.action, Final::Accept);
    assert_eq!(v.rule, rs.rule_id(Fam::V4, Table::Filter, 4));
    // tcp/81: a ends (implicit return) -> forward rule 2 (not udp) -> reject.
    let mut p = pkt();
    p.dst_port = 81;
    assert_eq!(fwd(&rs, &p), Final::Reject(RejectWith::IcmpAdminProhibited));
    // udp: b drops.
    p.proto = proto::UDP;
    let v = rs.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut ws(&rs), &NoEnv);
    assert_eq!(
        (v.action, v.rule),
        (Final::Drop, rs.rule_id(Fam::V4, Table::Filter, 6))
    );
    // Jumping to a chain with no rules returns at once.
    let (rs, _) = compile(
        "/ip firewall filter\nadd chain=forward action=jump jump-target=empty\nadd chain=forward action=drop\n",
    );
    assert_eq!(fwd(&rs, &pkt()), Final::Drop);
    // Return from a built-in chain: its default, accept.
    let (rs, _) = compile(
        "/ip firewall filter\nadd chain=forward action=return\nadd chain=forward action=drop\n",
    );
    assert_eq!(fwd(&rs, &pkt()), Final::Accept);
}

#[test]
fn jump_loops_and_depth_are_compile_errors() {
    let e = compile_err(
        "/ip firewall filter\nadd chain=forward action=jump jump-target=a\nadd chain=a action=jump jump-target=b\nadd chain=b action=jump jump-target=a\n",
    );
    assert!(matches!(e, CompileError::JumpLoop { .. }), "{e}");
    assert!(e.to_string().contains("a -> b -> a"), "{e}");
    let e = compile_err("/ip firewall filter\nadd chain=x action=jump jump-target=x\n");
    assert!(matches!(e, CompileError::JumpLoop { .. }), "{e}");
    // A chain of MAX_JUMP_DEPTH chains is fine, one more is not.
    let script = |n: usize| {
        let mut s =
            String::from("/ip firewall filter\nadd chain=forward action=jump jump-target=c1\n");
        for i in 1..n {
            s.push_str(&format!(
                "add chain=c{i} action=jump jump-target=c{}\n",
                i + 1
            ));
        }
        s.push_str(&format!("add chain=c{n} action=drop\n"));
        s
    };
    let depth = ctrack_rules::engine::MAX_JUMP_DEPTH;
    let (rs, _) = compile(&script(depth - 1));
    assert_eq!(fwd(&rs, &pkt()), Final::Drop);
    let e = compile_err(&script(depth));
    assert!(matches!(e, CompileError::TooDeep { .. }), "{e}");
}

#[test]
fn wide_jump_graphs_compile_in_linear_time() {
    // Every chain jumps 100 times to the next: 100^8 paths, 8 levels. A
    // check that walked paths would not finish; one that visits each chain
    // once does.
    let mut s = String::from("/ip firewall filter\n");
    for level in 0..8 {
        let from = if level == 0 {
            "forward".to_string()
        } else {
            format!("l{level}")
        };
        for _ in 0..100 {
            s.push_str(&format!(
                "add chain={from} action=jump jump-target=l{}\n",
                level + 1
            ));
        }
    }
    s.push_str("add chain=l8 action=drop\n");
    let (rs, _) = compile(&s);
    assert_eq!(fwd(&rs, &pkt()), Final::Drop);
}

#[test]
fn terminal_and_non_terminal_actions() {
    let (rs, _) = compile(
        "/ip firewall filter\n\
         add chain=forward action=log log-prefix=seen\n\
         add chain=forward action=passthrough\n\
         add chain=forward action=fasttrack-connection connection-state=established hw-offload=yes\n\
         add chain=forward action=tarpit protocol=tcp dst-port=25\n\
         add chain=forward action=accept log=yes connection-state=established\n\
         add chain=forward action=drop disabled=yes\n\
         add chain=forward action=reject\n",
    );
    let mut p = pkt();
    p.conn.state = ConnState::Established;
    let mut w = ws(&rs);
    let v = rs.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut w, &NoEnv);
    assert_eq!(v.action, Final::Accept);
    assert!(v.fasttrack, "fasttrack-connection marks and goes on");
    let log_rules: Vec<usize> = v
        .logs()
        .iter()
        .map(|id| rs.rule(*id).unwrap().position)
        .collect();
    assert_eq!(log_rules, [0, 4]);
    let line = rs.log_line(v.logs()[0], &p);
    assert_eq!(
        line,
        "seen forward: in:ether1 out:ether2, proto TCP (SYN), 10.0.0.1:1234->10.0.0.2:80, len 100"
    );
    // Counters: each matching rule counts packets and bytes, disabled never.
    let c = w.counters();
    assert_eq!((c[0].packets, c[0].bytes), (1, 100));
    assert_eq!(c[1].packets, 1);
    assert_eq!(c[3].packets, 0);
    assert_eq!(c[4].packets, 1);
    assert_eq!(c[5].packets, 0);
    // New connection: disabled drop skipped, reject with the default kind.
    p.conn.state = ConnState::New;
    assert_eq!(
        fwd(&rs, &p),
        Final::Reject(RejectWith::IcmpNetworkUnreachable)
    );
    p.dst_port = 25;
    assert_eq!(fwd(&rs, &p), Final::Tarpit);
}

#[test]
fn nat_rules_return_their_target() {
    let (rs, _) = compile(
        "/interface list\nadd name=WAN\n/interface list member\nadd interface=ether2 list=WAN\n\
         /ip firewall nat\n\
         add chain=dstnat action=dst-nat dst-port=80 protocol=tcp to-addresses=192.168.1.10 to-ports=8080\n\
         add chain=srcnat action=accept dst-address=10.0.0.0/8\n\
         add chain=srcnat action=masquerade ipsec-policy=out,none out-interface-list=WAN\n",
    );
    let mut w = ws(&rs);
    let v = rs.evaluate(Hook::NatDstnat, Instant::ZERO, &pkt(), &mut w, &NoEnv);
    let Final::Nat(id) = v.action else {
        panic!("{v:?}")
    };
    let t = rs.nat(id).unwrap();
    assert_eq!(t.action, Action::DstNat);
    assert_eq!(t.to_ports.unwrap().lo, 8080);
    // srcnat to 10/8 is excluded by the accept rule.
    assert_eq!(
        rs.evaluate(Hook::NatSrcnat, Instant::ZERO, &pkt(), &mut w, &NoEnv)
            .action,
        Final::Accept
    );
    let mut out = pkt();
    out.dst = v4([8, 8, 8, 8]);
    let v = rs.evaluate(Hook::NatSrcnat, Instant::ZERO, &out, &mut w, &NoEnv);
    assert!(matches!(v.action, Final::Nat(id) if rs.nat(id).unwrap().action == Action::Masquerade));
    // ipsec-policy=...,ipsec never matches here.
    assert!(!drops("ipsec-policy=in,ipsec", &pkt()));
    assert!(drops("ipsec-policy=in,none", &pkt()));
}

struct Count(u32);
impl Env for Count {
    fn connection_count(&self, _: Family, _: &Addr, netmask: u8) -> u32 {
        assert_eq!(netmask, 24);
        self.0
    }
}

#[test]
fn connection_limit_asks_the_environment() {
    let (rs, _) = compile(
        "/ip firewall filter\nadd chain=forward action=drop connection-limit=10,24 protocol=tcp\n",
    );
    let p = pkt();
    let at = |n| {
        rs.evaluate(
            Hook::FilterForward,
            Instant::ZERO,
            &p,
            &mut ws(&rs),
            &Count(n),
        )
        .action
    };
    assert_eq!(at(10), Final::Accept);
    assert_eq!(at(11), Final::Drop, "more than count");
}

#[test]
fn layer7_matches_early_packets_and_remembers() {
    let (rs, _) = compile(
        "/ip firewall layer7-protocol\nadd name=http regexp=\"^(get|post) /\"\n\
         /ip firewall filter\nadd chain=forward action=drop layer7-protocol=http\n",
    );
    let mut p = pkt();
    p.payload = b"GET / HTTP/1.1\r\n";
    let mut w = ws(&rs);
    let v = rs.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut w, &NoEnv);
    assert_eq!(v.action, Final::Drop, "case-insensitive");
    let state = v.l7.expect("state changed");
    // A later packet without the pattern still matches: the state remembers.
    let mut later = pkt();
    later.payload = b"body";
    later.conn.packets = 50;
    later.conn.l7 = state;
    assert_eq!(
        rs.evaluate(Hook::FilterForward, Instant::ZERO, &later, &mut w, &NoEnv)
            .action,
        Final::Drop
    );
    // Past the first 10 packets (or 2 KiB) nothing is looked at any more.
    later.conn.l7 = L7State::default();
    later.payload = b"GET / HTTP/1.1";
    assert_eq!(
        rs.evaluate(Hook::FilterForward, Instant::ZERO, &later, &mut w, &NoEnv)
            .action,
        Final::Accept
    );
    later.conn.packets = 3;
    later.conn.bytes = 4096;
    assert_eq!(
        rs.evaluate(Hook::FilterForward, Instant::ZERO, &later, &mut w, &NoEnv)
            .action,
        Final::Accept
    );
    // Bad regexps and unknown names are compile errors.
    let e = compile_err("/ip firewall layer7-protocol\nadd name=bad regexp=\"(\"\n");
    assert!(matches!(e, CompileError::BadRegexp { .. }), "{e}");
    let e = compile_err("/ip firewall filter\nadd chain=forward layer7-protocol=nope\n");
    assert!(matches!(e, CompileError::UnknownLayer7 { .. }), "{e}");
}

#[test]
fn prefilter_gives_the_same_answers_as_a_walk() {
    // A long chain (prefiltered) and the same rules in a short one each.
    let mut s = String::from("/ip firewall filter\n");
    for i in 0..PREFILTER_MIN + 8 {
        let proto = ["udp", "tcp", "!tcp", "gre", "icmp"][i % 5];
        s.push_str(&format!(
            "add chain=forward action=passthrough protocol={proto}\n"
        ));
    }
    s.push_str("add chain=forward action=drop protocol=udp dst-port=53\n");
    let (rs, _) = compile(&s);
    for (proto, expect_count) in [
        (proto::UDP, 16usize),
        (proto::TCP, 8),
        (proto::GRE, 16),
        (99u8, 8),
    ] {
        let mut p = pkt();
        p.proto = proto;
        p.dst_port = 53;
        let mut w = ws(&rs);
        let v = rs.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut w, &NoEnv);
        let matched = w.counters().iter().filter(|c| c.packets > 0).count();
        let want_drop = proto == proto::UDP;
        assert_eq!(v.action == Final::Drop, want_drop, "proto {proto}");
        assert_eq!(matched, expect_count + want_drop as usize, "proto {proto}");
    }
}

#[test]
fn bursts_and_sharing() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Ruleset>();
    let (rs, _) = compile("/ip firewall filter\nadd chain=forward action=drop protocol=udp\n");
    let mut udp = pkt();
    udp.proto = proto::UDP;
    let burst = [pkt(), udp, pkt()];
    let mut out = [Verdict::default(); 3];
    let mut w = ws(&rs);
    rs.evaluate_burst(
        Hook::FilterForward,
        Instant::ZERO,
        &burst,
        &mut w,
        &NoEnv,
        &mut out,
    );
    let acts: Vec<Final> = out.iter().map(|v| v.action).collect();
    assert_eq!(acts, [Final::Accept, Final::Drop, Final::Accept]);
    assert_eq!(w.counters()[0].packets, 1);
}

#[test]
fn context_from_a_flow_repr() {
    use ctrack_core::flow::{FlowRepr, IcmpInfo, L4, TcpInfo, Tuple};
    let tuple = Tuple {
        src: v4([10, 0, 0, 1]),
        dst: v4([10, 0, 0, 2]),
        src_port: 1234,
        dst_port: 80,
        proto: proto::TCP,
        family: Family::V4,
    };
    let f = FlowRepr {
        tuple,
        ip_len: 60,
        l4: L4::Tcp(TcpInfo {
            flags: F::SYN,
            ..TcpInfo::default()
        }),
    };
    let p = PacketCtx::from_flow(&f);
    assert_eq!(
        (p.src_port, p.dst_port, p.tcp_flags, p.size),
        (1234, 80, F::SYN, 60)
    );
    assert_eq!((p.in_iface, p.out_iface), (NO_IFACE, NO_IFACE));
    assert!(drops(
        "protocol=tcp tcp-flags=syn dst-port=80 src-address=10.0.0.1",
        &p
    ));
    // ICMP: the tuple's id and type/code are not ports.
    let icmp = FlowRepr {
        tuple: Tuple {
            proto: proto::ICMP,
            src_port: 7,
            dst_port: 8 << 8,
            ..tuple
        },
        ip_len: 84,
        l4: L4::Icmp(IcmpInfo {
            icmp_type: 8,
            code: 0,
            id: 7,
            inner: None,
        }),
    };
    let p = PacketCtx::from_flow(&icmp);
    assert_eq!(
        (p.src_port, p.dst_port, p.icmp_type, p.icmp_code),
        (0, 0, 8, 0)
    );
    assert!(drops("protocol=icmp icmp-options=8:0", &p));
}

#[test]
fn uses_names_what_the_caller_must_fill() {
    let (rs, _) = compile(
        "/ip firewall layer7-protocol\nadd name=http regexp=\"^get\"\n\
         /ip firewall filter\n\
         add chain=forward action=drop connection-limit=10,24\n\
         add chain=forward action=drop connection-limit=5,24 ttl=equal:1\n\
         add chain=forward action=drop layer7-protocol=http disabled=yes\n\
         add chain=forward action=drop dscp=1 disabled=yes\n\
         /ipv6 firewall filter\n\
         add chain=forward action=drop connection-limit=3,64\n",
    );
    let u = rs.uses();
    assert!(u.ttl);
    // Disabled rules ask nothing.
    assert!(!u.layer7 && !u.dscp);
    assert_eq!(u.conn_limit, vec![(Fam::V4, 24), (Fam::V6, 64)]);
    assert_eq!(compile("").0.uses(), Uses::default());
}

/// `reads_dst`: which rules may see a packet's destination (the NAT's
/// translated view of a packet needs its own walk only then).
#[test]
fn reads_dst_finds_every_rule_that_sees_the_destination() {
    let blind = "/ip firewall filter\n\
        add chain=forward action=fasttrack-connection connection-state=established,related\n\
        add chain=forward action=drop connection-nat-state=!dstnat in-interface=ether2 src-address=10.0.0.0/8 src-port=1-1023\n\
        add chain=forward action=add-src-to-address-list address-list=seen\n\
        /ip firewall mangle\n\
        add chain=prerouting action=mark-connection new-connection-mark=m protocol=udp\n";
    let (rs, _) = compile(blind);
    for t in [Table::Filter, Table::Mangle, Table::Nat] {
        assert!(!rs.reads_dst(Fam::V4, t), "{t:?}");
    }
    for (what, rule) in [
        (
            "dst-address",
            "add chain=forward action=accept dst-address=192.0.2.1",
        ),
        (
            "dst-port",
            "add chain=forward action=accept protocol=tcp dst-port=80",
        ),
        (
            "port",
            "add chain=forward action=accept protocol=tcp port=80",
        ),
        (
            "dst-address-list",
            "add chain=forward action=accept dst-address-list=l",
        ),
        ("log", "add chain=forward action=accept log=yes"),
        ("action=log", "add chain=forward action=log"),
        (
            "add-dst-to-address-list",
            "add chain=forward action=add-dst-to-address-list address-list=l",
        ),
        (
            "connection-limit",
            "add chain=forward action=drop protocol=tcp connection-limit=10,32",
        ),
        ("limit", "add chain=forward action=accept limit=10,5:packet"),
        (
            "in a user chain",
            "add chain=c action=accept dst-address=192.0.2.1",
        ),
    ] {
        let (rs, _) = compile(&format!("{blind}/ip firewall filter\n{rule}\n"));
        assert!(rs.reads_dst(Fam::V4, Table::Filter), "{what}");
        assert!(!rs.reads_dst(Fam::V6, Table::Filter), "{what}: IPv4 only");
        assert!(!rs.reads_dst(Fam::V4, Table::Mangle), "{what}: filter only");
    }
}
