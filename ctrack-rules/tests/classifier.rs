//! The classifier never changes a verdict: on random rulesets (header
//! matchers with ranges, lists and negations, other matchers it cannot see,
//! non-terminal actions, jumps and returns) and random packets, the engine
//! with a classifier on every chain gives the same verdicts, counters and
//! address-list additions as the plain linear walk.

use ctrack_core::conntrack::Instant;
use ctrack_core::flow::{Addr, Family};
use ctrack_rules::*;
use proptest::prelude::*;

const MATCHERS: &[&str] = &[
    "protocol=tcp",
    "protocol=udp",
    "protocol=icmp",
    "protocol=!tcp",
    "src-address=10.0.0.0/30",
    "src-address=10.0.0.2",
    "src-address=10.0.0.1-10.0.0.5",
    "src-address=!10.0.0.0/31",
    "dst-address=10.0.1.0/29",
    "dst-address=10.0.1.3-10.0.1.4",
    "dst-address=!10.0.1.2",
    "src-port=1-3",
    "src-port=2,5-6",
    "src-port=!1-2",
    "dst-port=3",
    "dst-port=1,4-7",
    "dst-port=!3-4",
    "port=2",
    "port=!5",
    "tcp-flags=syn",
    "icmp-options=8",
    "connection-state=new",
    "connection-state=!established",
    "packet-size=0-60",
    "src-address-list=seen",
    "src-address-list=!seen",
];

const ACTIONS: &[&str] = &[
    "accept",
    "drop",
    "passthrough",
    "log",
    "return",
    "jump jump-target=a",
    "mark-connection new-connection-mark=m passthrough=yes",
    "mark-connection new-connection-mark=m passthrough=no",
    "add-src-to-address-list address-list=seen address-list-timeout=1m",
    "reject",
    "tarpit",
];

fn v6(text: &str) -> String {
    text.replace("10.0.0.", "2001:db8::")
        .replace("10.0.1.", "2001:db8:1::")
        .replace("/30", "/126")
        .replace("/29", "/125")
        .replace("/31", "/127")
        .replace("protocol=icmp ", "protocol=icmpv6 ")
}

/// Filter and mangle get the same rules; actions one table lacks become
/// one it has with the same flow (terminal or not).
fn table_action(table: &str, action: &str) -> String {
    match (table, action) {
        ("filter", a) if a.starts_with("mark-connection") => {
            if a.ends_with("passthrough=no") {
                "tarpit".into()
            } else {
                "fasttrack-connection".into()
            }
        }
        ("mangle", "drop") => "mark-packet new-packet-mark=p passthrough=no".into(),
        ("mangle", "reject" | "tarpit") => "accept".into(),
        (_, a) => a.into(),
    }
}

fn script(rules: &[(usize, usize, Vec<usize>)], v6_too: bool) -> String {
    let chains = ["forward", "forward", "a", "b"];
    let mut s = String::new();
    for fam in ["ip", "ipv6"] {
        if fam == "ipv6" && !v6_too {
            break;
        }
        for table in ["filter", "mangle"] {
            s.push_str(&format!("/{fam} firewall {table}\n"));
            for (chain, action, ms) in rules {
                let chain = chains[*chain];
                let mut action = table_action(table, ACTIONS[*action]);
                // Jumps go down only (forward -> a -> b): no loops.
                if action.starts_with("jump") && chain != "forward" {
                    action = if chain == "a" {
                        "jump jump-target=b".into()
                    } else {
                        "passthrough".into()
                    };
                }
                let mut line = format!("add chain={chain} action={action}");
                let mut keys = Vec::new();
                for &m in ms {
                    // One of each property.
                    let key = MATCHERS[m].split('=').next();
                    if !keys.contains(&key) {
                        keys.push(key);
                        line.push(' ');
                        line.push_str(MATCHERS[m]);
                    }
                }
                line.push('\n');
                if fam == "ipv6" {
                    line = v6(&line).replace("action=reject", "action=drop");
                }
                s.push_str(&line);
            }
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Pkt {
    v6: bool,
    proto: u8,
    src: u8,
    dst: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    new: bool,
    size: u32,
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        any::<bool>(),
        prop::sample::select(vec![6u8, 17, 1, 58, 47]),
        0u8..8,
        0u8..8,
        0u16..9,
        0u16..9,
        prop::sample::select(vec![0x02u8, 0x10, 0x12]),
        any::<bool>(),
        prop::sample::select(vec![40u32, 100]),
    )
        .prop_map(
            |(v6, proto, src, dst, sport, dport, flags, new, size)| Pkt {
                v6,
                proto,
                src,
                dst,
                sport,
                dport,
                flags,
                new,
                size,
            },
        )
}

fn ctx(p: &Pkt) -> PacketCtx<'static> {
    let (family, src, dst) = if p.v6 {
        let a = |net: u8, h: u8| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            b[5] = net;
            b[15] = h;
            Addr(b)
        };
        (Family::V6, a(0, p.src), a(1, p.dst))
    } else {
        (
            Family::V4,
            Addr::from_v4([10, 0, 0, p.src]),
            Addr::from_v4([10, 0, 1, p.dst]),
        )
    };
    let ports = matches!(p.proto, 6 | 17);
    let mut c = PacketCtx {
        family,
        src,
        dst,
        proto: p.proto,
        src_port: if ports { p.sport } else { 0 },
        dst_port: if ports { p.dport } else { 0 },
        tcp_flags: if p.proto == 6 { p.flags } else { 0 },
        icmp_type: if matches!(p.proto, 1 | 58) { 8 } else { 0 },
        size: p.size,
        ttl: 64,
        in_iface: 0,
        out_iface: 1,
        ..PacketCtx::default()
    };
    c.conn.state = if p.new {
        ConnState::New
    } else {
        ConnState::Established
    };
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn classifier_walk_equals_linear_walk(
        rules in prop::collection::vec(
            (0usize..4, 0..ACTIONS.len(), prop::sample::subsequence((0..MATCHERS.len()).collect::<Vec<_>>(), 0..4)),
            0..90,
        ),
        v6_too in any::<bool>(),
        pkts in prop::collection::vec(pkt(), 1..60),
    ) {
        let text = script(&rules, v6_too);
        let cfg = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let ifaces = vec!["ether1".to_string(), "ether2".to_string()];
        let mut names = Names::default();
        let lin = Ruleset::compile_with(&cfg, &ifaces, &mut names, Prefilter::Linear).unwrap();
        let tree = Ruleset::compile_with(&cfg, &ifaces, &mut names, Prefilter::Tree { min_rules: 0 }).unwrap();
        prop_assert_eq!(lin.classifier_size().0, 0);
        if !rules.is_empty() {
            prop_assert!(tree.classifier_size().0 > 0);
        }
        let now = Instant::ZERO;
        let mut ws_l = WorkerState::new(&lin, now, 256, 256);
        let mut ws_t = WorkerState::new(&tree, now, 256, 256);
        let ctxs: Vec<PacketCtx> = pkts.iter().map(ctx).collect();
        for hook in [
            Hook::FilterForward,
            Hook::FilterInput,
            Hook::MangleForward,
            Hook::ManglePrerouting,
        ] {
            // Bursts of up to 7, so list additions of one burst reach the next.
            for chunk in ctxs.chunks(7) {
                let mut out_l = vec![Verdict::default(); chunk.len()];
                let mut out_t = vec![Verdict::default(); chunk.len()];
                lin.evaluate_burst(hook, now, chunk, &mut ws_l, &NoEnv, &mut out_l);
                tree.evaluate_burst(hook, now, chunk, &mut ws_t, &NoEnv, &mut out_t);
                prop_assert_eq!(&out_l, &out_t, "{}\n{:?}", text, chunk);
            }
        }
        prop_assert_eq!(ws_l.counters(), ws_t.counters(), "{}", text);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ws_l.lists.drain_outbox(&mut a);
        ws_t.lists.drain_outbox(&mut b);
        prop_assert_eq!(a, b);
    }
}

/// A large chain of disjoint address/port rules: the classifier leaves a
/// handful of candidates per packet and still finds the one that matches.
#[test]
fn thousands_of_rules_keep_their_verdicts() {
    let mut text = String::from("/ip firewall filter\nadd chain=forward action=log protocol=tcp\n");
    for i in 0..5000u32 {
        let proto = ["tcp", "udp"][i as usize % 2];
        text.push_str(&format!(
            "add chain=forward action=drop protocol={proto} src-address=10.{}.{}.0/24 dst-port={}\n",
            i / 256,
            i % 256,
            1000 + i % 100
        ));
    }
    let cfg = parse(&text).unwrap();
    let ifaces: Vec<String> = vec!["ether1".into()];
    let mut names = Names::default();
    let lin = Ruleset::compile_with(&cfg, &ifaces, &mut names, Prefilter::Linear).unwrap();
    let tree = Ruleset::compile(&cfg, &ifaces, &mut names).unwrap();
    let (chains, nodes, entries) = tree.classifier_size();
    assert_eq!(chains, 1);
    assert!(
        nodes > 1 && entries < 5001 * 16,
        "{nodes} nodes, {entries} entries"
    );
    let mut ws_l = WorkerState::new(&lin, Instant::ZERO, 16, 16);
    let mut ws_t = WorkerState::new(&tree, Instant::ZERO, 16, 16);
    let mut drops = 0;
    for i in (0..6000u32).step_by(13) {
        let p = PacketCtx {
            family: Family::V4,
            src: Addr::from_v4([10, (i / 256) as u8, (i % 256) as u8, 7]),
            dst: Addr::from_v4([192, 0, 2, 1]),
            proto: [6, 17][i as usize % 2],
            src_port: 5555,
            dst_port: 1000 + (i % 100) as u16,
            ..PacketCtx::default()
        };
        let v = tree.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut ws_t, &NoEnv);
        assert_eq!(
            v,
            lin.evaluate(Hook::FilterForward, Instant::ZERO, &p, &mut ws_l, &NoEnv)
        );
        if i < 5000 {
            assert_eq!(v.action, Final::Drop, "packet {i}");
            assert_eq!(v.rule, Some(RuleId(i + 1)));
            drops += 1;
        } else {
            assert_eq!(v.action, Final::Accept);
        }
    }
    assert!(drops > 300);
    assert_eq!(ws_l.counters(), ws_t.counters());
}
