//! A real Linux TCP client held by ctrack's tarpit answers. A namespace
//! (`ctrack_tests::netns::Topology`, side A) connects to `B4:8080`; its
//! frames reach this test's DPDK port (`net_af_packet` on the root end of
//! A's veth), where every frame gets `dataplane::respond::Responder`'s
//! `Answer::Tarpit`, allocated from the port's pool (`PacketIo::alloc`) and
//! sent back on the port it came in on (`PacketIo::ingress`). The client's
//! `connect` succeeds on the zero-window SYN-ACK, and what it sends is never
//! acknowledged: its read times out ("held"), as RouterOS's tarpit does to
//! a scanner.
//!
//! Needs root, iproute2, ethtool and python3; without them it says why and
//! passes. One EAL per process: this file is one test.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use ctrack_tests::netns::{B4, Topology, skip_reason};
use dataplane::flow::{L4, tcp_flags};
use dataplane::io::PacketIo;
use dataplane::io::dpdk::DpdkIo;
use dataplane::packet::parse_ethernet;
use dataplane::packet::respond::Answer;
use dataplane::respond::Responder;
use dpdk::{Eal, MbufBurst, Mempool, Port, PortConfig, PortId};

const CLIENT: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(5)
s.connect((sys.argv[1], 8080))
print("connected", flush=True)
s.settimeout(2)
s.send(b"x" * 1000)
try:
    s.recv(100)
    print("data", flush=True)
except socket.timeout:
    print("held", flush=True)
"#;

#[test]
fn a_linux_client_is_held_by_the_tarpit() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let topo = Topology::create();
    // Nothing answers ARP for B here: a static neighbour instead.
    let out = topo.exec(
        0,
        10,
        &[
            "ip",
            "neigh",
            "replace",
            B4,
            "lladdr",
            "02:00:00:00:00:b2",
            "dev",
            &topo.inner[0],
        ],
    );
    assert!(out.status.success(), "{out:?}");

    let vdev = format!("net_af_packet0,iface={}", topo.root[0]);
    let eal = Eal::init(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=error",
        "--vdev",
        &vdev,
    ])
    .expect("rte_eal_init");
    assert_eq!(eal.port_count(), 1, "the af_packet port");
    let pool = Arc::new(Mempool::new_pktmbuf("tarpit", 1023, 0, 2176, 0).expect("pool"));
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 128,
        tx_desc: 128,
        rss_key: |_| None,
        reta: |_, _| None,
        promiscuous: true,
    };
    let port = Port::configure(PortId(0), &cfg, pool.clone()).expect("port");
    let rx = port.take_rx_queue(0).expect("rx");
    let tx = port.take_tx_queue(0).expect("tx");
    // One port: its pair partner (1) does not exist, the answers go back
    // out of port 0.
    let mut io = DpdkIo::new(vec![(rx, 1)], vec![Some(tx)], 32);
    assert_eq!(io.ingress(0), 0);
    let mut responder = Responder::new(1);

    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.ns[0],
            "timeout",
            "20",
            "python3",
            "-u",
            "-c",
        ])
        .arg(CLIENT)
        .arg(B4)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the client");

    // Answer every frame until the client is done (it bounds itself).
    let (mut burst, mut out) = (MbufBurst::new(), MbufBurst::new());
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let deadline = WallClock::now() + Duration::from_secs(30);
    while client.try_wait().expect("client").is_none() && WallClock::now() < deadline {
        let n = io.rx(0, &mut burst);
        let now = io.now();
        for i in 0..n {
            if let Some(p) = responder.respond(&mut io, burst.data(i), Answer::Tarpit, 0, now) {
                answers.push(p.data().to_vec());
                let _ = out.push(p);
            }
        }
        burst.clear();
        while !out.is_empty() && io.tx(0, &mut out) > 0 {}
        out.clear();
        if n == 0 {
            std::thread::yield_now();
        }
    }
    let status = client.wait().expect("client");
    let mut stdout = String::new();
    let mut stderr = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "client: {stdout}{stderr}");
    assert_eq!(stdout, "connected\nheld\n", "{stderr}");

    // The first answer is the SYN-ACK of window 0; every later one an ACK
    // of window 0 acknowledging nothing beyond the SYN (Linux's zero-window
    // probes carry the sequence number before it, which the answer echoes,
    // as xt_TARPIT's does).
    let tcp: Vec<_> = answers
        .iter()
        .map(|a| match parse_ethernet(a).expect("answer parses").l4 {
            L4::Tcp(t) => t,
            other => panic!("not TCP: {other:?}"),
        })
        .collect();
    assert!(tcp.len() >= 2, "SYN-ACK and at least one ACK: {tcp:?}");
    assert_eq!(tcp[0].flags, tcp_flags::SYN | tcp_flags::ACK);
    assert!(tcp.iter().all(|t| t.window == 0), "{tcp:?}");
    assert!(
        tcp[1..].iter().all(|t| t.flags == tcp_flags::ACK),
        "{tcp:?}"
    );
    assert!(
        tcp[1..]
            .iter()
            .all(|t| t.ack == tcp[0].ack || t.ack == tcp[0].ack.wrapping_sub(1)),
        "no data acknowledged: {tcp:?}"
    );
    assert_eq!(responder.totals().sent, answers.len() as u64);
    assert_eq!(responder.totals().alloc_failed, 0);

    drop((io, burst, out, port, pool));
    eal.cleanup()
        .map_err(|(_, e)| e)
        .expect("everything is gone");
}
