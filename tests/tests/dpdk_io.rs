//! The DPDK side of `PacketIo` for generated packets, on a real EAL: a
//! packet allocated from the port's pool with given bytes goes out of a TX
//! queue and comes back in (`net_ring` loops each port's TX queue to its RX
//! queue), is writable in place in a burst, an exhausted pool says `None`,
//! and every mbuf returns to the pool. Then a `Responder` answer takes the
//! same way.
//!
//! One EAL per process: this file is one test.

use std::sync::Arc;

use dataplane::conntrack::Instant;
use dataplane::io::PacketIo;
use dataplane::io::dpdk::DpdkIo;
use dataplane::packet::checksum::fill_ip;
use dataplane::packet::parse_ethernet;
use dataplane::packet::respond::{Answer, Unreachable4};
use dataplane::respond::Responder;
use dpdk::{Eal, Mempool, Port, PortConfig, PortId};

fn config() -> PortConfig {
    PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 128,
        tx_desc: 128,
        rss_key: |_| None,
        reta: |_, _| None,
        promiscuous: false,
    }
}

/// UDP 10.0.0.1:40001 -> 10.0.1.1:53 with 8 bytes, in an Ethernet frame.
fn udp() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 1, 0x08, 0];
    let mut ip = vec![
        0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1,
    ];
    ip.extend_from_slice(&[0x9c, 0x41, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    fill_ip(&mut ip);
    f.extend_from_slice(&ip);
    f
}

#[test]
fn alloc_send_receive_rewrite_and_exhaust() {
    let eal = Eal::init(&[
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=error",
        "--vdev",
        "net_ring0",
        "--vdev",
        "net_ring1",
    ])
    .expect("rte_eal_init");
    assert_eq!(eal.port_count(), 2);
    let pool = Arc::new(Mempool::new_pktmbuf("dpdk_io", 255, 0, 2176, 0).expect("pool"));
    let ports: Vec<Port> = (0..2)
        .map(|p| Port::configure(PortId(p), &config(), pool.clone()).expect("port"))
        .collect();
    let links = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.take_rx_queue(0).expect("rx"), i as u16 ^ 1))
        .collect();
    let tx = ports
        .iter()
        .map(|p| Some(p.take_tx_queue(0).expect("tx")))
        .collect();
    let mut io = DpdkIo::new(links, tx, 32);
    assert_eq!((io.ingress(0), io.ingress(1)), (0, 1));
    let start = pool.in_use_count();

    // Allocated with the bytes, sent on port 1, received on link 1.
    let frame = udp();
    let p = io.alloc(&frame).expect("an mbuf");
    assert_eq!(p.data(), &frame[..]);
    assert_eq!(pool.in_use_count(), start + 1);
    let mut out = io.new_burst();
    out.push(p).unwrap();
    assert_eq!(io.tx(1, &mut out), 1);
    let mut got = io.new_burst();
    assert_eq!(io.rx(1, &mut got), 1);
    assert_eq!(got.data(0), &frame[..]);
    // Rewritten in place.
    got.data_mut(0)[0] = 0x0a;
    assert_eq!(got.data(0)[0], 0x0a);
    assert_eq!(&got.data(0)[1..], &frame[1..]);
    assert_eq!(got.clear(), 1);
    assert_eq!(pool.in_use_count(), start);

    // A reject's ICMP error: built, allocated, sent on the ingress port.
    let mut r = Responder::new(2);
    r.set_address(0, Some([10, 0, 0, 254]), None);
    let port = io.ingress(0);
    let answer = r
        .respond(
            &mut io,
            &frame,
            Answer::Icmp4(Unreachable4::AdminProhibited),
            port,
            Instant::ZERO,
        )
        .expect("an answer");
    out.push(answer).unwrap();
    assert_eq!(io.tx(port, &mut out), 1);
    assert_eq!(io.rx(0, &mut got), 1);
    let parsed = parse_ethernet(got.data(0)).expect("parses");
    assert_eq!(parsed.tuple.src_ip().to_string(), "10.0.0.254");
    assert_eq!(parsed.tuple.dst_ip().to_string(), "10.0.0.1");
    assert_eq!(got.clear(), 1);
    assert_eq!(r.totals().sent, 1);

    // An empty pool: None, counted by the responder, nothing leaked.
    let avail = pool.avail_count() as usize;
    let held: Vec<_> = std::iter::from_fn(|| io.alloc(&frame)).collect();
    assert_eq!(held.len(), avail);
    assert!(io.alloc(&frame).is_none());
    assert!(
        r.respond(
            &mut io,
            &frame,
            Answer::Icmp4(Unreachable4::Port),
            port,
            Instant::ZERO
        )
        .is_none()
    );
    assert_eq!(r.totals().alloc_failed, 1);
    // Too big for one mbuf: None, not a panic.
    drop(held);
    assert!(io.alloc(&vec![0u8; 4096]).is_none());
    assert_eq!(pool.in_use_count(), start);

    drop((io, out, got, ports, pool));
    eal.cleanup()
        .map_err(|(_, e)| e)
        .expect("everything is gone");
}
