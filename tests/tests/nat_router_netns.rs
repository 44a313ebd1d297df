//! NAT through `ctrack run` in router mode between real Linux stacks
//! (issue #11): the namespaces of `ctrack_tests::netns::Topology`,
//! renumbered into an inside and an outside subnet, `net_af_packet` ports,
//! 2 workers.
//!
//! ```text
//!  inside A 10.77.1.2/24 ── ether1 10.77.1.1 [ctrack] ether2 10.77.2.1 ── 10.77.2.2/24 outside B
//!           10.77.1.3/24        fd77:1::1                fd77:2::1         fd77:2::2/64
//!           fd77:1::2/64
//! ```
//!
//! A has two addresses (two inside hosts as far as NAT can tell). The
//! script masquerades out of ether2 (IPv4 and IPv6: NAT66), forwards
//! 10.77.2.1:8080 to A's server 10.77.1.2:8000, and masquerades LAN to that
//! server (hairpin, as RouterOS users configure it). Checked: HTTP with curl,
//! ping and a UDP request/response through the masquerade; two inside hosts
//! sending from one source port to one server (two translated ports); an
//! ICMP port unreachable from B back through the NAT to the inside host
//! that sent (its socket sees `ECONNREFUSED`); the port forward from B
//! (with 2 workers, its one reply tuple hashes to either worker); hairpin
//! from A's second address; IPv6 ping and HTTP through NAT66; the
//! connection table (`connection print --json`) with the `srcnat`/`dstnat`
//! flags and the reply tuples; `/ip route` through REST at run time (print,
//! a static route added and removed, a bad one refused). Needs root, iproute2, ethtool, ping, curl
//! and python3; without them it says why and passes.

use std::process::Output;

use ctrack_tests::netns::routed::{A4, A6, B4, B6, GW_A4, PUB4, PUB6};
use ctrack_tests::netns::{Topology, skip_reason};
use ctrack_tests::{Running, output_text, scratch_dir, show};

const A4B: &str = "10.77.1.3";

const SCRIPT: &str = concat!(
    ctrack_tests::routed_script!(),
    "\
/ip firewall nat
add chain=dstnat action=dst-nat dst-address=10.77.2.1 protocol=tcp dst-port=8080 \
    to-addresses=10.77.1.2 to-ports=8000
add chain=srcnat action=masquerade out-interface=ether2
add chain=srcnat action=masquerade src-address=10.77.1.0/24 dst-address=10.77.1.2 \
    out-interface=ether1
/ipv6 firewall nat
add chain=srcnat action=masquerade out-interface=ether2
"
);

/// An HTTP server on `[::]:PORT` (IPv4 too), ready when it says so.
fn http_server(port: u16) -> String {
    format!(
        "import http.server, socket\n\
class Server(http.server.ThreadingHTTPServer):\n    address_family = socket.AF_INET6\n\
s = Server(('::', {port}), http.server.SimpleHTTPRequestHandler)\n\
print('ready', flush=True)\n\
s.serve_forever()\n"
    )
}

/// B's UDP echo on 5353: answers each datagram with it and the sender's
/// address as seen (the translated one).
const UDP_ECHO: &str = "\
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 5353))
print('ready', flush=True)
while True:
    d, a = s.recvfrom(2000)
    s.sendto(d + (' %s:%d' % a).encode(), a)
";

/// From A: two inside hosts (A's two addresses) send from port 40000 to
/// B's echo and get their own answers; then A's second address sends to a
/// closed port of B and must get the port unreachable (ECONNREFUSED).
const UDP_CLIENT: &str = "\
import socket
def sock(src, port, dst):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, port))
    s.settimeout(5)
    s.connect(dst)
    return s
echo = ('10.77.2.2', 5353)
s2 = sock('10.77.1.2', 40000, echo)
s3 = sock('10.77.1.3', 40000, echo)
s2.send(b'two')
print(s2.recv(200).decode())
s3.send(b'three')
print(s3.recv(200).decode())
u = sock('10.77.1.3', 40001, ('10.77.2.2', 9999))
u.send(b'x')
try:
    u.recv(100)
    print('answered')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')
";

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
        || std::process::Command::new(tool).arg("-V").output().is_ok()
}

fn curl(topo: &Topology, i: usize, extra: &[&str], url: &str) -> Output {
    let mut args = vec![
        "curl",
        "-g",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    topo.exec(i, 30, &args)
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn ctrack_nats_between_linux_hosts_in_router_mode() {
    if let Some(why) = skip_reason() {
        eprintln!("NAT router netns test skipped: {why}");
        return;
    }
    for tool in ["ping", "curl", "python3"] {
        if !have(tool) {
            eprintln!("NAT router netns test skipped: no {tool}");
            return;
        }
    }
    let topo = Topology::create();
    topo.renumber(0, &[A4, A4B], A6, (GW_A4, "fd77:1::1"));
    topo.renumber(1, &[B4], B6, (PUB4, PUB6));

    let dir = scratch_dir("nat-router-netns");
    let rules = dir.join("nat-router.rsc");
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
        eprintln!("NAT router netns: capturing into {}", dir.display());
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

    // Ping through the masquerade (the first also resolves the
    // neighbours), both families.
    for (what, args) in [
        ("ping B", vec!["ping", "-c", "3", "-W", "3", B4]),
        ("ping -6 B", vec!["ping", "-6", "-c", "3", "-W", "3", B6]),
    ] {
        let out = topo.exec(0, 30, &args);
        check(what, out.status.success(), &out);
    }

    // HTTP out through the masquerade, both families (NAT66).
    let _outside = topo.spawn_ready(1, &["python3", "-c", &http_server(8080)], 20);
    for url in [format!("http://{B4}:8080/"), format!("http://[{B6}]:8080/")] {
        let out = curl(&topo, 0, &[], &url);
        check(
            &format!("curl {url}"),
            out.status.success() && out.stdout == b"200",
            &out,
        );
    }

    // UDP: two inside hosts from one source port, their answers home; a
    // port unreachable back to the host that sent.
    let _echo = topo.spawn_ready(1, &["python3", "-c", UDP_ECHO], 20);
    let out = topo.exec(0, 60, &["python3", "-c", UDP_CLIENT]);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let seen_as = |l: Option<&String>, word: &str| -> Option<String> {
        let l = l?;
        let rest = l.strip_prefix(word)?.trim();
        rest.strip_prefix(&format!("{PUB4}:")).map(str::to_string)
    };
    let (p2, p3) = (
        seen_as(lines.first(), "two"),
        seen_as(lines.get(1), "three"),
    );
    check(
        "UDP: two inside hosts from port 40000 answered, seen from 10.77.2.1 on two ports",
        p2.is_some() && p3.is_some() && p2 != p3,
        &out,
    );
    check(
        "UDP: port unreachable back to 10.77.1.3's socket",
        lines.get(2).map(String::as_str) == Some("refused"),
        &out,
    );

    // The port forward from outside (A serves on 8000), several
    // connections: with 2 workers some replies hash to the other worker.
    let _inside = topo.spawn_ready(0, &["python3", "-c", &http_server(8000)], 20);
    for n in 0..6 {
        let out = curl(&topo, 1, &[], &format!("http://{PUB4}:8080/"));
        check(
            &format!("port forward {n}: curl from B to 10.77.2.1:8080"),
            out.status.success() && out.stdout == b"200",
            &out,
        );
    }
    // Hairpin: an inside host to the public address.
    let out = curl(
        &topo,
        0,
        &["--interface", A4B],
        &format!("http://{PUB4}:8080/"),
    );
    check(
        "hairpin: curl from 10.77.1.3 to 10.77.2.1:8080",
        out.status.success() && out.stdout == b"200",
        &out,
    );

    // `/ip route` at run time, through REST: the connected routes; a
    // static route added makes 10.99.0.1 (on B) reachable, removed not.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| -> (u16, String) {
        match r {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(e) => (0, e.to_string()),
        }
    };
    let note = |s: String| Output {
        status: std::process::ExitStatus::default(),
        stdout: s.into_bytes(),
        stderr: Vec::new(),
    };
    let (st, text4) = body(agent.get(&format!("{}/rest/ip/route", run.api)).call());
    let routes: serde_json::Value = serde_json::from_str(&text4).unwrap_or_default();
    let connected = routes.as_array().map_or(0, |rs| {
        rs.iter()
            .filter(|r| {
                r["flags"] == "DAc"
                    && (r["dst-address"] == "10.77.1.0/24" && r["gateway"] == "ether1"
                        || r["dst-address"] == "10.77.2.0/24" && r["gateway"] == "ether2")
            })
            .count()
    });
    check(
        "GET /rest/ip/route: the two connected routes",
        st == 200 && connected == 2,
        &note(text4.clone()),
    );
    let (st, text6) = body(agent.get(&format!("{}/rest/ipv6/route", run.api)).call());
    check(
        "GET /rest/ipv6/route: fd77:2::/64",
        st == 200 && text6.contains("fd77:2::/64"),
        &note(text6.clone()),
    );
    // The CLI's `ip route print` of the same.
    let out = ctrack_tests::ctrack(&["ip", "route", "print", "--api", &run.api].map(String::from));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    check(
        "ctrack ip route print",
        out.status.success()
            && t.lines()
                .any(|l| l.contains("DAc") && l.contains("10.77.2.0/24") && l.contains("ether2")),
        &out,
    );
    let out = topo.exec(1, 10, &["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"]);
    check("10.99.0.1 on B", out.status.success(), &out);
    let unreachable = |out: &Output| {
        let t = output_text(out);
        !out.status.success()
            && (t.contains("Net Unreachable") || t.contains("Network Unreachable"))
    };
    let out = topo.exec(0, 30, &["ping", "-c", "1", "-W", "3", "10.99.0.1"]);
    check("no route to 10.99.0.1 yet", unreachable(&out), &out);
    let (st, added) = body(
        agent
            .put(&format!("{}/rest/ip/route", run.api))
            .content_type("application/json")
            .send(r#"{"dst-address": "10.99.0.0/16", "gateway": "10.77.2.2"}"#),
    );
    let added_row: serde_json::Value = serde_json::from_str(&added).unwrap_or_default();
    check(
        "PUT /rest/ip/route: 201, active",
        st == 201 && added_row["active"] == "true" && added_row["flags"] == "As",
        &note(added.clone()),
    );
    let out = topo.exec(0, 30, &["ping", "-c", "2", "-W", "3", "10.99.0.1"]);
    check(
        "ping 10.99.0.1 by the added route",
        out.status.success(),
        &out,
    );
    let id = added_row[".id"].as_str().unwrap_or("*0").to_string();
    let (st, gone) = body(
        agent
            .delete(&format!("{}/rest/ip/route/{id}", run.api))
            .call(),
    );
    check("DELETE /rest/ip/route/ID: 204", st == 204, &note(gone));
    let out = topo.exec(0, 30, &["ping", "-c", "1", "-W", "3", "10.99.0.1"]);
    check(
        "no route to 10.99.0.1 after the removal",
        unreachable(&out),
        &out,
    );
    let (st, bad) = body(
        agent
            .put(&format!("{}/rest/ip/route", run.api))
            .content_type("application/json")
            .send(r#"{"gateway": "10.77.2.2", "distance": "0"}"#),
    );
    check(
        "PUT a bad distance: 400 naming it",
        st == 400 && bad.contains("distance"),
        &note(bad.clone()),
    );

    // `connection print` shows the flags as RouterOS does (s, d).
    let out = run.connection(&["print"]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    check(
        "connection print: srcnat and dstnat flags",
        out.status.success() && t.contains("sd") && t.contains("Cd"),
        &out,
    );

    // The table: flags and reply tuples.
    let table = run.table();
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| table.iter().filter(|e| f(e)).count();
    let masq_http = count(&|e| {
        e["protocol"] == "tcp"
            && s(&e["src-address"]).starts_with(&format!("{A4}:"))
            && e["dst-address"] == format!("{B4}:8080")
            && e["srcnat"] == true
            && e["dstnat"] == false
            && e["reply-src-address"] == format!("{B4}:8080")
            && s(&e["reply-dst-address"]).starts_with(&format!("{PUB4}:"))
    });
    let masq6 = count(&|e| {
        e["srcnat"] == true
            && s(&e["src-address"]).contains(A6)
            && s(&e["reply-dst-address"]).contains(PUB6)
    });
    let ping = count(&|e| {
        e["protocol"] == "icmp"
            && e["src-address"] == A4
            && e["dst-address"] == B4
            && e["srcnat"] == true
            && e["reply-dst-address"] == PUB4
            && e["seen-reply"] == true
    });
    let udp = count(&|e| {
        e["protocol"] == "udp"
            && e["dst-address"] == format!("{B4}:5353")
            && e["srcnat"] == true
            && e["seen-reply"] == true
    });
    let forward = count(&|e| {
        e["protocol"] == "tcp"
            && s(&e["src-address"]).starts_with(&format!("{B4}:"))
            && e["dst-address"] == format!("{PUB4}:8080")
            && e["dstnat"] == true
            && e["srcnat"] == false
            && e["reply-src-address"] == format!("{A4}:8000")
            && e["seen-reply"] == true
    });
    let hairpin = count(&|e| {
        e["protocol"] == "tcp"
            && s(&e["src-address"]).starts_with(&format!("{A4B}:"))
            && e["dst-address"] == format!("{PUB4}:8080")
            && e["dstnat"] == true
            && e["srcnat"] == true
            && e["reply-src-address"] == format!("{A4}:8000")
            && s(&e["reply-dst-address"]).starts_with(&format!("{GW_A4}:"))
    });
    if masq_http != 1 || masq6 < 2 || ping < 1 || udp != 2 || forward != 6 || hairpin != 1 {
        failures.push(format!(
            "table: masquerade http {masq_http}, NAT66 {masq6}, ping {ping}, udp {udp}, \
             port forward {forward}, hairpin {hairpin}:\n{table:#?}"
        ));
    }
    let out = run.stop();
    // The nat rules counted first packets only, each connection once (a
    // port forward's first packet handed to the other worker is decided on
    // both, and counted by the one that creates the connection); later
    // packets found their connection (on the other worker: by the owner
    // table), never the rules.
    let summary = ctrack_tests::read_summary(&summary);
    let rule = |family: &str, chain: &str, pos: u64| -> u64 {
        summary["firewall_rules"]
            .as_array()
            .and_then(|rs| {
                rs.iter().find(|r| {
                    r["family"] == family
                        && r["table"] == "nat"
                        && r["chain"] == chain
                        && r["position"] == pos
                })
            })
            .and_then(|r| r["packets"].as_u64())
            .unwrap_or(0)
    };
    let counts = [
        rule("ip", "dstnat", 0),
        rule("ip", "srcnat", 1),
        rule("ip", "srcnat", 2),
        rule("ipv6", "srcnat", 0),
    ];
    // dst-nat: 6 port forwards + hairpin; masquerade: the ping, curl, 3 UDP,
    // the ping by the added route; hairpin masquerade: 1; NAT66: ping, curl.
    if counts != [7, 6, 1, 2] {
        failures.push(format!("nat rule counters {counts:?}: {summary:#}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- ctrack:\n{}",
        failures.join("\n"),
        show(&out)
    );
}
