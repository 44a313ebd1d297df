//! ctrack as a router between two real Linux hosts: the namespaces of
//! `ctrack_tests::netns::Topology`, renumbered into two subnets, each with
//! its default route via ctrack's address on its side (`/ip address` in the
//! `--rules` script puts `ctrack run` in router mode; `net_af_packet`
//! ports, 2 workers).
//!
//! ```text
//!  netns A 10.77.1.2/24 ── ether1 10.77.1.1 [ctrack] ether2 10.77.2.1 ── 10.77.2.2/24 netns B
//!          fd77:1::2/64        fd77:1::1           fd77:2::1          fd77:2::2/64
//! ```
//!
//! Pings through (both families) and of ctrack's own addresses, HTTP
//! through with curl, a TTL-1 probe answered with time exceeded, an
//! unrouted destination answered with network unreachable, packets over
//! ether2's MTU (1400) fragmented (no DF) or answered with fragmentation
//! needed / packet too big;
//! the connection table shows the routed ones; `ip arp print` and `ipv6
//! neighbor print` show A learned and the script's static entries; a static
//! entry added at run time cuts B off until it is removed. Needs root, iproute2, ethtool, ping, curl
//! and python3; without them it says why and passes.

use std::process::Output;

use ctrack_tests::netns::routed::{A4, A6, B4, B6, GW_A4, GW_A6, PUB4};
use ctrack_tests::netns::{Topology, skip_reason};
use ctrack_tests::{Running, output_text, scratch_dir, show};

const SCRIPT: &str = "\
/interface ethernet
set [ find default-name=ether2 ] mtu=1400
/ip address
add address=10.77.1.1/24 interface=ether1
add address=10.77.2.1/24 interface=ether2
/ipv6 address
add address=fd77:1::1/64 interface=ether1
add address=fd77:2::1/64 interface=ether2
/ip arp
add address=10.77.1.7 interface=ether1 mac-address=02:00:00:00:77:07
/ipv6 neighbor
add address=fd77:2::7 interface=ether2 mac-address=02:00:00:00:77:27
/ip firewall connection tracking
set enabled=yes
";

const HTTP_SERVER: &str = "\
import http.server, socket
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
s = Server(('::', 8080), http.server.SimpleHTTPRequestHandler)
print('ready', flush=True)
s.serve_forever()
";

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
        || std::process::Command::new(tool).arg("-V").output().is_ok()
}

#[test]
fn ctrack_routes_between_two_linux_hosts() {
    if let Some(why) = skip_reason() {
        eprintln!("router netns test skipped: {why}");
        return;
    }
    for tool in ["ping", "curl", "python3"] {
        if !have(tool) {
            eprintln!("router netns test skipped: no {tool}");
            return;
        }
    }
    let topo = Topology::create();
    topo.renumber(0, &[A4], A6, (GW_A4, GW_A6));
    topo.renumber(1, &[B4], B6, (PUB4, "fd77:2::1"));

    let dir = scratch_dir("router-netns");
    let rules = dir.join("router.rsc");
    std::fs::write(&rules, SCRIPT).expect("write the script");
    let summary = dir.join("summary.json");
    let args = topo.ctrack_run_args(&[
        "--rules",
        &rules.display().to_string(),
        "--summary-json",
        &summary.display().to_string(),
    ]);
    let run = Running::start(&args);
    let _captures = std::env::var_os("CTRACK_NETNS_CAPTURE").map(|_| {
        eprintln!("router netns: capturing into {}", dir.display());
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
    // Pings through ctrack (the first one also resolves both sides'
    // neighbours) and of ctrack's own addresses.
    for (what, args) in [
        ("ping B", vec!["ping", "-c", "3", "-W", "3", B4]),
        (
            "ping ctrack ether1",
            vec!["ping", "-c", "2", "-W", "3", GW_A4],
        ),
        (
            "ping ctrack ether2",
            vec!["ping", "-c", "2", "-W", "3", PUB4],
        ),
        ("ping -6 B", vec!["ping", "-6", "-c", "3", "-W", "3", B6]),
        (
            "ping -6 ctrack",
            vec!["ping", "-6", "-c", "2", "-W", "3", GW_A6],
        ),
    ] {
        let out = topo.exec(0, 30, &args);
        check(what, out.status.success(), &out);
    }

    // The neighbour tables (merged over the 2 workers): A, which asked for
    // ctrack's address before its pings, as a dynamic complete entry with
    // its veth's MAC; the script's static entries as static.
    let mac_a = output_text(&topo.exec(
        0,
        10,
        &["cat", &format!("/sys/class/net/{}/address", topo.inner[0])],
    ))
    .trim()
    .to_uppercase();
    let api = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--api".to_string(), run.api.clone()]);
        ctrack_tests::ctrack(&v)
    };
    let rows = |out: &Output| -> Vec<serde_json::Value> {
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let out = api(&["ip", "arp", "print", "--json"]);
    let arp = rows(&out);
    let a_row = arp.iter().find(|r| r["address"] == A4);
    check(
        "ip arp print: A dynamic, complete, its MAC",
        a_row.is_some_and(|r| {
            r["mac-address"] == mac_a.as_str()
                && r["dynamic"] == "true"
                && r["complete"] == "true"
                && r["interface"] == "ether1"
                && (r["status"] == "reachable" || r["status"] == "stale")
        }) && arp.iter().filter(|r| r["address"] == A4).count() == 1,
        &out,
    );
    check(
        "ip arp print: the static entry",
        arp.iter().any(|r| {
            r["address"] == "10.77.1.7"
                && r["mac-address"] == "02:00:00:00:77:07"
                && r["dynamic"] == "false"
                && r["status"] == "permanent"
                && r[".id"] == "*1"
        }),
        &out,
    );
    let out = api(&["ipv6", "neighbor", "print", "--json"]);
    let nd = rows(&out);
    check(
        "ipv6 neighbor print: A dynamic, the static entry",
        nd.iter().any(|r| {
            r["address"] == A6 && r["mac-address"] == mac_a.as_str() && r["dynamic"] == "true"
        }) && nd.iter().any(|r| {
            r["address"] == "fd77:2::7"
                && r["interface"] == "ether2"
                && r["dynamic"] == "false"
                && r["status"] == "permanent"
        }),
        &out,
    );
    let out = api(&["ip", "arp", "print"]);
    let t = output_text(&out);
    check(
        "ip arp print (table): A's row with flags DC",
        out.status.success()
            && t.lines()
                .any(|l| l.contains(" DC ") && l.contains(A4) && l.contains(&mac_a)),
        &out,
    );

    // A static entry added at run time reaches every worker: B's address
    // pinned to a MAC nobody has cuts B off; removing it lets ARP find B
    // again.
    let out = api(&[
        "ip",
        "arp",
        "add",
        &format!("address={B4}"),
        "mac-address=02:00:00:00:77:99",
        "interface=ether2",
    ]);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    check(
        "ip arp add: an id",
        out.status.success() && id.starts_with('*'),
        &out,
    );
    let out = api(&["ip", "arp", "print", "--json"]);
    check(
        "ip arp print: the added entry, static",
        rows(&out).iter().any(|r| {
            r[".id"] == id.as_str()
                && r["address"] == B4
                && r["mac-address"] == "02:00:00:00:77:99"
                && r["dynamic"] == "false"
        }),
        &out,
    );
    let out = topo.exec(0, 30, &["ping", "-c", "2", "-W", "2", B4]);
    check(
        "ping B pinned to a wrong MAC: lost",
        !out.status.success(),
        &out,
    );
    let out = api(&["ip", "arp", "remove", &id]);
    check("ip arp remove", out.status.success(), &out);
    let out = topo.exec(0, 30, &["ping", "-c", "3", "-W", "3", B4]);
    check("ping B after the removal", out.status.success(), &out);
    let out = api(&["ip", "arp", "print", "--json"]);
    check(
        "ip arp print: B learned again",
        rows(&out)
            .iter()
            .any(|r| r["address"] == B4 && r["dynamic"] == "true" && r["complete"] == "true"),
        &out,
    );

    // HTTP through, both families.
    let _server = topo.spawn_ready(1, &["python3", "-c", HTTP_SERVER], 20);
    for url in [format!("http://{B4}:8080/"), format!("http://[{B6}]:8080/")] {
        let out = topo.exec(
            0,
            30,
            &[
                "curl",
                "-g",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                &url,
            ],
        );
        check(
            &format!("curl {url}"),
            out.status.success() && out.stdout == b"200",
            &out,
        );
    }

    // A traceroute-like probe: TTL 1 expires at ctrack, which says so.
    let out = topo.exec(0, 30, &["ping", "-c", "1", "-t", "1", "-W", "3", B4]);
    let t = output_text(&out);
    check(
        "TTL 1: time exceeded from 10.77.1.1",
        t.contains("Time to live exceeded") && t.contains(GW_A4),
        &out,
    );
    let out = topo.exec(0, 30, &["ping", "-6", "-c", "1", "-t", "1", "-W", "3", B6]);
    let t = output_text(&out);
    check(
        "hop limit 1: time exceeded from fd77:1::1",
        t.contains("Time exceeded") && t.contains(GW_A6),
        &out,
    );
    // No route: network unreachable from ctrack.
    let out = topo.exec(0, 30, &["ping", "-c", "1", "-W", "3", "10.99.0.1"]);
    let t = output_text(&out);
    check(
        "no route: net unreachable",
        t.contains("Net Unreachable") || t.contains("Network Unreachable"),
        &out,
    );

    // ether2's MTU is 1400: a 1478-byte ping without DF is fragmented by
    // ctrack (B reassembles it and answers).
    let out = topo.exec(
        0,
        30,
        &["ping", "-c", "2", "-M", "dont", "-s", "1450", "-W", "3", B4],
    );
    check(
        "no DF over the MTU: fragmented, answered",
        out.status.success(),
        &out,
    );
    // Path MTU discovery: a 1478-byte packet with DF (and any IPv6 one)
    // gets fragmentation needed / packet too big.
    let out = topo.exec(
        0,
        30,
        &["ping", "-c", "1", "-M", "do", "-s", "1450", "-W", "3", B4],
    );
    let t = output_text(&out);
    check(
        "DF over the MTU: fragmentation needed, mtu 1400",
        t.contains("Frag needed") && t.contains("1400"),
        &out,
    );
    let out = topo.exec(
        0,
        30,
        &["ping", "-6", "-c", "1", "-s", "1450", "-W", "3", B6],
    );
    let t = output_text(&out);
    check(
        "IPv6 over the MTU: packet too big, mtu 1400",
        t.contains("Packet too big") && t.contains("1400"),
        &out,
    );

    // The routed connections are tracked, once each, with replies.
    let table = run.table();
    let http = table
        .iter()
        .filter(|e| {
            e["protocol"] == "tcp"
                && e["dst-address"] == format!("{B4}:8080")
                && e["src-address"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&format!("{A4}:")))
        })
        .count();
    let ping = table
        .iter()
        .filter(|e| {
            e["protocol"] == "icmp"
                && e["src-address"] == A4
                && e["dst-address"] == B4
                && e["seen-reply"] == true
        })
        .count();
    let own = table
        .iter()
        .filter(|e| e["protocol"] == "icmp" && e["dst-address"] == GW_A4 && e["seen-reply"] == true)
        .count();
    if http != 1 || ping < 1 || own < 1 {
        failures.push(format!(
            "table: {http} HTTP connection(s), {ping} ping(s) through, {own} ping(s) of ctrack:\n{table:#?}"
        ));
    }

    // The same counts in Prometheus.
    let forwarded: f64 = run
        .scrape()
        .samples
        .iter()
        .filter(|x| {
            x.metric == "ctrack_router_events_total" && x.labels.get("event") == Some("forwarded")
        })
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    if forwarded < 20.0 {
        failures.push(format!("metrics: {forwarded} packets forwarded"));
    }

    let out = run.stop();
    // The router planes' counts (summed over the workers): every ping of
    // ctrack answered, the TTL probes and the unrouted ping counted.
    let summary = ctrack_tests::read_summary(&summary);
    let sum = |k: &str| -> u64 {
        summary["workers"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| w["router"][k].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    for (k, min) in [
        ("echo_replies", 6),
        ("ttl_exceeded", 2),
        ("no_route", 1),
        ("too_big", 4),
        ("fragmented", 2),
        ("fragments", 4),
        ("neigh_answers", 2),
        ("neigh_requests", 2),
        ("forwarded", 20),
    ] {
        if sum(k) < min {
            failures.push(format!("summary: router {k} = {} < {min}", sum(k)));
        }
    }
    if sum("hold_full") != 0 || sum("hold_expired") != 0 {
        failures.push(format!("summary: held packets lost: {summary:#}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- ctrack:\n{}",
        failures.join("\n"),
        show(&out)
    );
}
