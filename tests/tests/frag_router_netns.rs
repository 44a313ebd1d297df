//! IP fragments through `ctrack run` in router mode with masquerade, 2
//! workers, between real Linux stacks (issue #11, docs/nat.md
//! "Fragments"): the namespaces of `ctrack_tests::netns::TapTopology`,
//! whose interfaces are ctrack's own `net_tap` ports (not `net_af_packet`:
//! its fanout has the kernel reassemble IPv4 before ctrack sees it).
//!
//! ```text
//!  A 10.77.1.2/24 ── tap: ether1 10.77.1.1 [ctrack] ether2 10.77.2.1 :tap ── 10.77.2.2/24 B
//!    fd77:1::2/64           fd77:1::1                fd77:2::1               fd77:2::2/64
//! ```
//!
//! Large pings (`ping -s 4000`, IPv4 and IPv6: the senders fragment them
//! to their 1500-byte MTU) and a 5000-byte UDP request and answer (IPv4
//! and IPv6) go through the masquerade: ctrack reassembles each datagram
//! before tracking and NAT, translates it whole and fragments it again to
//! the size its largest fragment had. Checked: the pings and the UDP
//! answers arrive whole (B sees the translated source), the connection
//! table holds one connection per flow (not one per fragment), and the
//! summary's and `/metrics`' fragment counters (datagrams reassembled and
//! fragmented again, nothing dropped, no buffer left in use).
//!
//! Needs root, iproute2, ping and python3; without them it says why and
//! passes.

use std::process::Output;

use ctrack_tests::netns::routed::{A4, A6, B4, B6, PUB4, PUB6};
use ctrack_tests::netns::{TapTopology, skip_reason};
use ctrack_tests::{Running, have, output_text, scratch_dir, show};

const SCRIPT: &str = concat!(
    ctrack_tests::routed_script!(),
    "\
/ip firewall nat
add chain=srcnat action=masquerade out-interface=ether2
/ipv6 firewall nat
add chain=srcnat action=masquerade out-interface=ether2
"
);

/// B's UDP echo on 5353 (both families): answers each datagram with its
/// length, the sender's address as seen, and the datagram again.
const UDP_ECHO: &str = "\
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 5353))
print('ready', flush=True)
while True:
    d, a = s.recvfrom(65535)
    h = a[0][7:] if a[0].startswith('::ffff:') else a[0]
    s.sendto(('%d %s|' % (len(d), h)).encode() + d, a)
";

/// From A: a 5000-byte datagram to B's echo, over IPv4 and IPv6; prints
/// what came back (length and the address B saw) or `timeout`.
const UDP_CLIENT: &str = "\
import socket, sys
for fam, dst in ((socket.AF_INET, '10.77.2.2'), (socket.AF_INET6, 'fd77:2::2')):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((dst, 5353))
    body = bytes(i % 251 for i in range(5000))
    s.send(body)
    try:
        d = s.recv(65535)
        head, _, rest = d.partition(b'|')
        print(head.decode(), 'intact' if rest == body else 'mangled', len(d))
    except socket.timeout:
        print('timeout')
";

/// The sum over the summary's workers of `frag.<name>`.
fn frag_sum(summary: &serde_json::Value, name: &str) -> u64 {
    summary["workers"].as_array().map_or(0, |ws| {
        ws.iter().filter_map(|w| w["frag"][name].as_u64()).sum()
    })
}

#[test]
fn fragments_are_reassembled_tracked_once_and_fragmented_again_through_nat() {
    if let Some(why) = skip_reason() {
        eprintln!("fragments netns test skipped: {why}");
        return;
    }
    for tool in ["ping", "python3"] {
        if !have(tool) {
            eprintln!("fragments netns test skipped: no {tool}");
            return;
        }
    }
    let topo = TapTopology::create();
    let dir = scratch_dir("frag-router-netns");
    let rules = dir.join("frag-router.rsc");
    std::fs::write(&rules, SCRIPT).expect("write the script");
    let summary = dir.join("summary.json");
    let args = topo.ctrack_run_args(&[
        "--rules",
        &rules.display().to_string(),
        "--summary-json",
        &summary.display().to_string(),
    ]);
    let run = Running::start(&args);
    topo.attach(
        [A4, B4],
        [A6, B6],
        [("10.77.1.1", "fd77:1::1"), (PUB4, PUB6)],
    );
    let _captures = std::env::var_os("CTRACK_NETNS_CAPTURE").map(|_| {
        eprintln!("fragments netns: capturing into {}", dir.display());
        [
            topo.capture(0, &dir.join("a.pcap")),
            topo.capture(1, &dir.join("b.pcap")),
        ]
    });

    let mut failures = Vec::new();
    let mut check = |what: &str, ok: bool, out: &Output| {
        if !ok {
            failures.push(format!("{what}:\n{}", output_text(out)));
        }
    };

    // Small pings first: the neighbours resolved, so that no fragment
    // waits in the hold queue.
    for args in [
        vec!["ping", "-c", "1", "-W", "3", B4],
        vec!["ping", "-6", "-c", "1", "-W", "3", B6],
    ] {
        let out = topo.exec(0, 30, &args);
        check(&format!("{args:?}"), out.status.success(), &out);
    }
    // Large pings through the masquerade, both families: 3 fragments each
    // way per echo.
    for (what, args) in [
        (
            "ping -s 4000 B",
            vec!["ping", "-c", "3", "-s", "4000", "-W", "3", B4],
        ),
        (
            "ping -6 -s 4000 B",
            vec!["ping", "-6", "-c", "3", "-s", "4000", "-W", "3", B6],
        ),
    ] {
        let out = topo.exec(0, 30, &args);
        check(
            what,
            out.status.success() && output_text(&out).contains("3 received"),
            &out,
        );
    }

    // A 5000-byte UDP request and its 5000-odd-byte answer, both families.
    let _echo = topo.spawn_ready(1, &["python3", "-c", UDP_ECHO], 20);
    let out = topo.exec(0, 60, &["python3", "-c", UDP_CLIENT]);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let answered = |l: Option<&String>, seen: &str| {
        l.is_some_and(|l| l.starts_with(&format!("5000 {seen} intact")))
    };
    check(
        "UDP 5000 bytes over IPv4: answered whole, B saw 10.77.2.1",
        answered(lines.first(), PUB4),
        &out,
    );
    check(
        "UDP 5000 bytes over IPv6: answered whole, B saw fd77:2::1",
        answered(lines.get(1), PUB6),
        &out,
    );

    // One connection per flow, translated.
    let table = run.table();
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| table.iter().filter(|e| f(e)).count();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let udp4 = count(&|e| {
        e["protocol"] == "udp"
            && e["dst-address"] == format!("{B4}:5353")
            && e["srcnat"] == true
            && e["seen-reply"] == true
    });
    let udp6 = count(&|e| {
        e["protocol"] == "udp"
            && s(&e["dst-address"]).contains(B6)
            && e["srcnat"] == true
            && e["seen-reply"] == true
    });
    let udp_any = count(&|e| e["protocol"] == "udp");
    let icmp4 = count(&|e| {
        e["protocol"] == "icmp"
            && e["dst-address"] == B4
            && e["srcnat"] == true
            && e["seen-reply"] == true
    });
    let icmp_any4 = count(&|e| e["protocol"] == "icmp");
    let icmp6 = count(&|e| {
        e["protocol"] == "icmpv6" && s(&e["dst-address"]).contains(B6) && e["srcnat"] == true
    });
    // Two pings per family (the small one, the large ones: one id each).
    if udp4 != 1 || udp6 != 1 || udp_any != 2 || icmp4 != 2 || icmp_any4 != 2 || icmp6 < 2 {
        failures.push(format!(
            "table: udp {udp4}/{udp6} (all udp {udp_any}), icmp {icmp4} (all {icmp_any4}), \
             icmpv6 {icmp6}:\n{table:#?}"
        ));
    }

    // The counters, live.
    let scrape = run.scrape();
    let event = |name: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|x| {
                x.metric == "ctrack_frag_events_total" && x.labels.get("event") == Some(name)
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let live_reassembled = event("reassembled");

    let out1 = run.stop();
    let summary = ctrack_tests::read_summary(&summary);
    // Each large echo is 3 fragments each way (6 datagrams per family),
    // each UDP datagram 4 (2 per family).
    let reassembled = frag_sum(&summary, "reassembled");
    let fragments = frag_sum(&summary, "fragments");
    let dropped: u64 = ["timeout", "no_space", "too_big", "bad", "no_mbuf"]
        .iter()
        .map(|n| frag_sum(&summary, n))
        .sum();
    let fragmented: u64 = summary["workers"].as_array().map_or(0, |ws| {
        ws.iter()
            .filter_map(|w| w["router"]["fragmented"].as_u64())
            .sum()
    });
    if reassembled < 12 || fragments < 3 * reassembled - 4 || dropped != 0 {
        failures.push(format!(
            "summary: reassembled {reassembled}, fragments {fragments}, dropped {dropped}: \
             {summary:#}"
        ));
    }
    if fragmented < reassembled {
        failures.push(format!(
            "summary: {reassembled} datagrams reassembled but {fragmented} fragmented again"
        ));
    }
    if summary["frag_mempool_in_use_end"] != 0 {
        failures.push(format!(
            "reassembly buffers left in use: {}",
            summary["frag_mempool_in_use_end"]
        ));
    }
    if live_reassembled < 1.0 {
        failures.push(format!(
            "/metrics: ctrack_frag_events_total{{event=\"reassembled\"}} {live_reassembled}"
        ));
    }
    drop((_echo, _captures, topo));

    // Again with ether2's MTU at 1400, below the 1500 bytes the fragments
    // came in: IPv4 (masqueraded) is fragmented to 1400 (Linux: `min(mtu,
    // frag_max_size)`); IPv6 (NAT66) is too big (its largest fragment is over the
    // MTU: ICMPv6 packet too big, mtu 1400, as `ip6_pkt_too_big`), and once
    // A knows the path MTU its 1400-byte fragments go through.
    let topo = TapTopology::create();
    // With NAT66 too: the MTU is checked before the rewrite, so packet too
    // big quotes A's own packet and reaches A (docs/nat.md).
    let script =
        format!("/interface ethernet\nset [ find default-name=ether2 ] mtu=1400\n{SCRIPT}");
    std::fs::write(&rules, script).expect("write the script");
    let summary2 = dir.join("summary-mtu.json");
    let args = topo.ctrack_run_args(&[
        "--rules",
        &rules.display().to_string(),
        "--summary-json",
        &summary2.display().to_string(),
    ]);
    let run = Running::start(&args);
    topo.attach(
        [A4, B4],
        [A6, B6],
        [("10.77.1.1", "fd77:1::1"), (PUB4, PUB6)],
    );
    let mut check = |what: &str, ok: bool, out: &Output| {
        if !ok {
            failures.push(format!("{what}:\n{}", output_text(out)));
        }
    };
    for args in [
        vec!["ping", "-c", "1", "-W", "3", B4],
        vec!["ping", "-6", "-c", "1", "-W", "3", B6],
    ] {
        let out = topo.exec(0, 30, &args);
        check(&format!("MTU 1400: {args:?}"), out.status.success(), &out);
    }
    let out = topo.exec(0, 30, &["ping", "-c", "2", "-s", "4000", "-W", "3", B4]);
    check(
        "MTU 1400: ping -s 4000 B (fragmented again to 1400)",
        out.status.success() && output_text(&out).contains("2 received"),
        &out,
    );
    let out = topo.exec(
        0,
        30,
        &["ping", "-6", "-c", "1", "-s", "4000", "-W", "3", B6],
    );
    check(
        "MTU 1400: ping -6 -s 4000 B answered with packet too big, mtu 1400",
        output_text(&out).contains("Packet too big") && output_text(&out).contains("1400"),
        &out,
    );
    let out = topo.exec(
        0,
        30,
        &["ping", "-6", "-c", "2", "-s", "4000", "-W", "3", B6],
    );
    check(
        "MTU 1400: ping -6 -s 4000 B once A knows the path MTU",
        out.status.success() && output_text(&out).contains("2 received"),
        &out,
    );
    let out2 = run.stop();
    let summary2 = ctrack_tests::read_summary(&summary2);
    let router = |name: &str| -> u64 {
        summary2["workers"].as_array().map_or(0, |ws| {
            ws.iter().filter_map(|w| w["router"][name].as_u64()).sum()
        })
    };
    // Two echoes each way reassembled from 1500-byte fragments and sent in
    // 1400-byte ones out of ether2 (the replies leave ether1 at 1500): at
    // least 4 pieces for each request.
    if router("too_big") < 3 || router("fragments") < 8 || frag_sum(&summary2, "bad") != 0 {
        failures.push(format!("MTU 1400: summary {summary2:#}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- ctrack:\n{}\n--- ctrack (MTU 1400):\n{}",
        failures.join("\n"),
        show(&out1),
        show(&out2)
    );
}
