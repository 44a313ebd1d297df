//! Real Linux traffic through ctrack: two network namespaces, each joined by
//! a veth to the root namespace, where ctrack forwards between the two root
//! ends (`net_af_packet`, 2 queue pairs each, 2 workers). TCP (IPv4 and
//! IPv6), UDP request/response, one-way UDP and ping (IPv4 and IPv6) from A
//! to B: every connection must be listed exactly once, with both directions
//! counted on it. See docs/testing.md.
//!
//! Needs root and iproute2; without them it says why and passes.

use ctrack_tests::netns::{A4, A6, B4, B6, TRAFFIC_PY, Topology, skip_reason};
use ctrack_tests::{Running, metric_sum, read_summary, scratch_dir};
use serde_json::Value;

const TCP_PORT: u16 = 5001;
const UDP_ECHO: u16 = 5002;
const UDP_SINK: u16 = 5003;
const PINGS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Tcp,
    UdpEcho,
    UdpOneway,
    Ping,
}

/// One connection the test makes, from A to B.
#[derive(Debug)]
struct Conn {
    kind: Kind,
    src: &'static str,
    sport: u16,
    dst: &'static str,
    dport: u16,
    /// Payload bytes per message (TCP: the whole stream, echoed back).
    size: u64,
    /// Messages (UDP datagrams, pings).
    count: u64,
}

impl Conn {
    fn v6(&self) -> bool {
        self.src.contains(':')
    }

    fn protocol(&self) -> &'static str {
        match (self.kind, self.v6()) {
            (Kind::Tcp, _) => "tcp",
            (Kind::UdpEcho | Kind::UdpOneway, _) => "udp",
            (Kind::Ping, false) => "icmp",
            (Kind::Ping, true) => "icmpv6",
        }
    }

    /// The table's `src-address` / `dst-address` for this connection.
    fn addresses(&self) -> (String, String) {
        let fmt = |a: &str, p: u16| match (self.kind, a.contains(':')) {
            (Kind::Ping, _) => a.to_string(),
            (_, true) => format!("[{a}]:{p}"),
            (_, false) => format!("{a}:{p}"),
        };
        (fmt(self.src, self.sport), fmt(self.dst, self.dport))
    }

    fn spec(&self) -> Option<String> {
        let kind = match self.kind {
            Kind::Tcp => "tcp",
            Kind::UdpEcho => "udp-echo",
            Kind::UdpOneway => "udp-oneway",
            Kind::Ping => return None,
        };
        Some(format!(
            "{kind},{},{},{},{},{},{}",
            self.src, self.sport, self.dst, self.dport, self.size, self.count
        ))
    }

    fn name(&self) -> String {
        let (s, d) = self.addresses();
        format!("{} {s} -> {d}", self.protocol())
    }
}

fn connections() -> Vec<Conn> {
    let mut v = Vec::new();
    for i in 0..6u16 {
        v.push(Conn {
            kind: Kind::Tcp,
            src: A4,
            sport: 41000 + i,
            dst: B4,
            dport: TCP_PORT,
            size: 1000 + 1500 * i as u64,
            count: 1,
        });
    }
    v.push(Conn {
        kind: Kind::Tcp,
        src: A6,
        sport: 44000,
        dst: B6,
        dport: TCP_PORT,
        size: 5000,
        count: 1,
    });
    for i in 0..3u16 {
        v.push(Conn {
            kind: Kind::UdpEcho,
            src: A4,
            sport: 42000 + i,
            dst: B4,
            dport: UDP_ECHO,
            size: 100 + 50 * i as u64,
            count: 3,
        });
    }
    v.push(Conn {
        kind: Kind::UdpOneway,
        src: A4,
        sport: 43000,
        dst: B4,
        dport: UDP_SINK,
        size: 200,
        count: 4,
    });
    for (src, dst) in [(A4, B4), (A6, B6)] {
        v.push(Conn {
            kind: Kind::Ping,
            src,
            sport: 0,
            dst,
            dport: 0,
            size: 56,
            count: PINGS,
        });
    }
    v
}

fn s<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or("")
}

fn n(e: &Value, k: &str) -> u64 {
    e[k].as_u64().unwrap_or(0)
}

/// Does the table row describe this connection in its original direction
/// (or, `reversed`, the reply direction as if it had been a new connection)?
fn is(c: &Conn, e: &Value, reversed: bool) -> bool {
    let (src, dst) = c.addresses();
    let (src, dst) = if reversed { (dst, src) } else { (src, dst) };
    s(e, "protocol") == c.protocol() && s(e, "src-address") == src && s(e, "dst-address") == dst
}

/// Everything wrong with the table, one line per problem.
fn problems(conns: &[Conn], table: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    for c in conns {
        let rows: Vec<&Value> = table.iter().filter(|e| is(c, e, false)).collect();
        let reversed = table.iter().filter(|e| is(c, e, true)).count();
        if rows.len() != 1 {
            bad.push(format!("{}: listed {} times", c.name(), rows.len()));
        }
        if reversed != 0 {
            bad.push(format!(
                "{}: its reply direction is listed as a connection of its own ({reversed}x)",
                c.name()
            ));
        }
        let Some(e) = rows.first() else { continue };
        let (op, rp, ob, rb) = (
            n(e, "orig-packets"),
            n(e, "repl-packets"),
            n(e, "orig-bytes"),
            n(e, "repl-bytes"),
        );
        let mut want = |ok: bool, what: &str| {
            if !ok {
                bad.push(format!("{}: {what}", c.name()));
            }
        };
        let ip_hdr = if c.v6() { 40 } else { 20 };
        match c.kind {
            Kind::Tcp => {
                // The payload each way plus at least SYN, ACK, FIN headers.
                want(op >= 3 && rp >= 2, "packets in both directions");
                want(
                    ob >= c.size + 3 * (ip_hdr + 20),
                    "orig-bytes cover the payload",
                );
                want(
                    rb >= c.size + 2 * (ip_hdr + 20),
                    "repl-bytes cover the echo",
                );
                // Closed by FIN both ways, the last ACK seen: Linux's
                // conntrack says TIME_WAIT. When forwarding is slow the server
                // retransmits its FIN, the client ACKs it twice, and the
                // second ACK meets a closed socket, which answers with an
                // RST: TIME_WAIT -> CLOSE, in Linux as here (seen in captures).
                want(
                    matches!(s(e, "tcp-state"), "time-wait" | "close"),
                    "tcp-state time-wait (or close after a late RST)",
                );
                want(e["assured"] == true, "assured");
            }
            Kind::UdpEcho => {
                want(
                    op == c.count && rp == c.count,
                    "one packet per datagram each way",
                );
                want(
                    ob == c.count * (ip_hdr + 8 + c.size) && rb == ob,
                    "bytes = IP length of the datagrams",
                );
                want(e["assured"] == true, "assured (a UDP stream)");
            }
            Kind::UdpOneway => {
                want(op == c.count, "one orig packet per datagram");
                want(ob == c.count * (ip_hdr + 8 + c.size), "orig-bytes");
                want(rp == 0 && rb == 0, "no reply counted");
                want(
                    e["seen-reply"] == false && e["assured"] == false,
                    "neither seen-reply nor assured",
                );
            }
            Kind::Ping => {
                want(
                    op == c.count && rp == c.count,
                    "one echo request and one reply per ping",
                );
                let icmp_hdr = 8;
                want(
                    ob == c.count * (ip_hdr + icmp_hdr + c.size) && rb == ob,
                    "bytes = IP length of the echoes",
                );
                want(e["seen-reply"] == true, "seen-reply");
            }
        }
        if c.kind != Kind::UdpOneway {
            want(e["seen-reply"] == true, "seen-reply");
        }
    }
    // Nothing else between the namespaces' addresses is tracked (ND and MLD
    // stay untracked; ARP is not IP).
    for e in table {
        if !conns.iter().any(|c| is(c, e, false)) {
            bad.push(format!("unexpected connection: {e}"));
        }
    }
    bad
}

#[test]
fn linux_traffic_between_namespaces_is_tracked_once_with_both_directions() {
    if let Some(why) = skip_reason() {
        eprintln!("netns test skipped: {why}");
        return;
    }
    let topo = Topology::create();
    let dir = scratch_dir("netns");
    let script = dir.join("traffic.py");
    std::fs::write(&script, TRAFFIC_PY).expect("write traffic.py");
    let script = script.display().to_string();
    let summary = dir.join("summary.json");

    let args = topo.ctrack_run_args(&["--summary-json", &summary.display().to_string()]);
    let run = Running::start(&args);

    let conns = connections();
    let _captures = std::env::var_os("CTRACK_NETNS_CAPTURE").map(|_| {
        eprintln!("netns: capturing into {}", dir.display());
        [
            topo.capture(0, &dir.join("a.pcap")),
            topo.capture(1, &dir.join("b.pcap")),
        ]
    });
    let server = topo.spawn_ready(
        1,
        &[
            "python3",
            &script,
            "server",
            B4,
            B6,
            &TCP_PORT.to_string(),
            &UDP_ECHO.to_string(),
            &UDP_SINK.to_string(),
            "120",
        ],
        20,
    );
    // Baseline counters, read when nothing is in flight (two equal readings).
    let quiet = || {
        let mut last = (topo.inner_packets(0), topo.inner_packets(1));
        for _ in 0..30 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = (topo.inner_packets(0), topo.inner_packets(1));
            if now == last {
                break;
            }
            last = now;
        }
        last
    };
    let ((a_rx0, a_tx0), (b_rx0, b_tx0)) = quiet();

    // The client in A: TCP, UDP; then the pings.
    let specs: Vec<String> = conns.iter().filter_map(Conn::spec).collect();
    let mut client = vec!["python3", script.as_str(), "client"];
    client.extend(specs.iter().map(String::as_str));
    let out = topo.exec(0, 90, &client);
    assert!(
        out.status.success(),
        "client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for c in conns.iter().filter(|c| c.kind == Kind::Ping) {
        let count = c.count.to_string();
        let mut cmd = vec!["ping"];
        if c.v6() {
            cmd.push("-6");
        }
        cmd.extend(["-n", "-c", &count, "-i", "0.2", "-W", "1", c.dst]);
        let out = topo.exec(0, 30, &cmd);
        assert!(
            out.status.success(),
            "{cmd:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(server);

    // What the kernels put on the wire, and got back through ctrack.
    let (a_rx1, a_tx1) = topo.inner_packets(0);
    let (b_rx1, b_tx1) = topo.inner_packets(1);
    let sent = (a_tx1 - a_tx0) + (b_tx1 - b_tx0);
    eprintln!(
        "netns: A sent {} got {}, B sent {} got {} packets during the traffic",
        a_tx1 - a_tx0,
        a_rx1 - a_rx0,
        b_tx1 - b_tx0,
        b_rx1 - b_rx0
    );

    // ctrack forwarded every frame: what one side sent, the other received
    // (checked until it holds, at most 3 s, as a late frame may be in flight).
    let mut delivered = (0, 0, 0, 0);
    let lossless = run.wait_until(30, |_| {
        let ((a_rx, a_tx), (b_rx, b_tx)) = (topo.inner_packets(0), topo.inner_packets(1));
        delivered = (a_tx - a_tx0, b_rx - b_rx0, b_tx - b_tx0, a_rx - a_rx0);
        delivered.0 == delivered.1 && delivered.2 == delivered.3
    });
    assert!(
        lossless,
        "A sent {}, B received {}; B sent {}, A received {}",
        delivered.0, delivered.1, delivered.2, delivered.3
    );

    // The table settles (last ACKs) within a few seconds.
    let settled = run.wait_until(50, |r| problems(&conns, &r.table()).is_empty());
    let table = run.table();
    let pretty = serde_json::to_string_pretty(&table).unwrap();
    let bad = problems(&conns, &table);
    if !settled {
        eprintln!("netns: connection table:\n{pretty}");
    }
    assert!(
        bad.is_empty(),
        "{} problem(s):\n{}\n--- table\n{pretty}",
        bad.len(),
        bad.join("\n")
    );

    // Every packet the kernels sent reached a worker; nothing was dropped
    // between workers.
    let received = |r: &Running| metric_sum(&r.scrape(), "ctrack_worker_rx_packets_total") as u64;
    run.wait_until(30, |r| received(r) >= sent);
    let m = run.scrape();
    let rx = metric_sum(&m, "ctrack_worker_rx_packets_total") as u64;
    let handoffs = metric_sum(&m, "ctrack_handoffs_total") as u64;
    let dropped = metric_sum(&m, "ctrack_handoffs_dropped_total") as u64;
    eprintln!(
        "netns: workers received {rx} packets (kernels sent at least {sent}), {handoffs} handoffs"
    );
    assert!(
        rx >= sent,
        "workers received {rx} packets, the kernels sent {sent}"
    );
    assert_eq!(dropped, 0, "handoff drops");
    assert_eq!(metric_sum(&m, "ctrack_worker_tx_dropped_total"), 0.0);

    let out = run.stop();
    assert!(
        out.status.success(),
        "ctrack run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = read_summary(&summary);
    for p in summary["ports"].as_array().expect("ports") {
        assert_eq!(p["driver"], "net_af_packet", "{p}");
        assert_eq!(p["rx_queues"], 2, "af_packet qpairs=2: two RX queues: {p}");
        assert_eq!(p["tx_queues"], 2, "{p}");
    }
    eprintln!(
        "netns: workers: {}",
        serde_json::to_string(&summary["workers"]).unwrap()
    );
}
