//! The safe layer's ownership rules, on a real EAL: each queue is handed out
//! once, a mempool outlives its mbufs, and `Eal::cleanup` refuses while any
//! DPDK object is alive.
//!
//! DPDK's EAL initialises once per process, so this file is one test: its
//! own process (an integration test binary), one EAL, the checks in order.
//! `net_null` is a virtual port with many queues and RSS (key, hash types,
//! RETA) that reads its configuration back, as real NICs do.

use std::sync::Arc;
use std::sync::mpsc;

use dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, PortId};

fn config(rss_key: fn(usize) -> Option<Vec<u8>>) -> PortConfig {
    PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 128,
        tx_desc: 128,
        rss_key,
        reta: |size, queues| Some((0..size).map(|i| i as u16 % queues).collect()),
        promiscuous: false,
    }
}

fn key_0x6d5a(size: usize) -> Option<Vec<u8>> {
    let size = if size == 0 { 40 } else { size };
    Some((0..size).map(|i| [0x6d, 0x5a][i % 2]).collect())
}

#[test]
fn queues_pools_and_cleanup() {
    // Nothing can be created before the EAL runs.
    assert_eq!(
        Mempool::new_pktmbuf("early", 63, 0, 2176, 0)
            .unwrap_err()
            .errno,
        libc::ENODEV
    );
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
        "net_null0",
        "--vdev",
        "net_null1",
    ])
    .expect("rte_eal_init");
    assert_eq!(eal.port_count(), 2);
    assert_eq!(Eal::init(&["--no-huge"]).unwrap_err().errno, libc::EALREADY);

    let pool = Arc::new(Mempool::new_pktmbuf("lifecycle", 1023, 0, 2176, 0).expect("pool"));
    let port = Port::configure(PortId(0), &config(key_0x6d5a), pool.clone()).expect("port 0");
    assert_eq!(port.rx_queue_count(), 2);

    // RSS: the key of the device's size went in and reads back (net_null
    // ignores a key given at configure time; the port sets it again).
    let rss = port.rss();
    assert!(rss.enabled, "{rss:?}");
    assert_eq!(rss.problem, None, "{rss:?}");
    assert!(rss.configured_key);
    let size = usize::from(port.port_info().hash_key_size);
    let key = rss.key.as_deref().expect("net_null reports its key");
    assert!(key.starts_with(&key_0x6d5a(size).unwrap()), "{key:x?}");
    assert!(rss.hashes_l4_ports() && !rss.hashes_ipv6_ext());
    // No key of the device's size: said, not silently skipped.
    let other = Port::configure(PortId(1), &config(|_| None), pool.clone()).expect("port 1");
    assert!(other.rss().enabled);
    assert!(!other.rss().configured_key);
    assert_eq!(
        other.rss().problem,
        Some(dpdk::RssProblem::NoKeyOfSize(size))
    );
    drop(other);

    // Each queue is handed out once, whichever clone of the port asks.
    let mut rx0 = port.take_rx_queue(0).expect("rx 0");
    assert!(port.take_rx_queue(0).is_none());
    assert!(port.clone().take_rx_queue(0).is_none());
    assert!(port.take_rx_queue(2).is_none(), "no such queue");
    let rx1 = port.take_rx_queue(1).expect("rx 1");
    let tx0 = port.take_tx_queue(0).expect("tx 0");
    assert!(port.take_tx_queue(0).is_none());
    // Dropping the handle gives the queue back.
    drop(rx1);
    let rx1 = port.take_rx_queue(1).expect("rx 1 again");
    drop((rx1, tx0));

    // net_null receives packets made from the pool.
    let mut burst = MbufBurst::new();
    let n = rx0.rx_burst(&mut burst);
    assert!(n > 0);
    drop(rx0);

    // Cleanup refuses while a port is alive, and gives the EAL back.
    let (eal, e) = eal.cleanup().expect_err("a port is alive");
    assert_eq!(e.errno, libc::EBUSY);
    drop(port);

    // A pool outlives its mbufs: the last handle goes first, the mbuf
    // still reads, writes and frees into it.
    let mut m = pool.alloc_with(b"outlives").expect("mbuf");
    let pool = Arc::try_unwrap(pool).expect("the port's reference is gone");
    drop(pool);
    assert_eq!(m.data(), b"outlives");
    m.data_mut()[0] = b'O';
    assert_eq!(m.data(), b"Outlives");
    let (eal, e) = eal.cleanup().expect_err("an mbuf is out");
    assert_eq!(e.errno, libc::EBUSY);
    drop(m);
    let (eal, _) = eal.cleanup().expect_err("a burst still holds mbufs");
    assert_eq!(burst.clear(), n);
    // Mbuf::alloc needs a pool handle: none is left.
    let _: fn(&Mempool) -> Option<Mbuf> = Mbuf::alloc;

    // A registered thread holds cleanup off until it unregisters.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let reg = dpdk::register_thread().expect("register");
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        drop(reg);
    });
    ready_rx.recv().unwrap();
    let (eal, e) = eal.cleanup().expect_err("a thread is registered");
    assert_eq!(e.errno, libc::EBUSY);
    go_tx.send(()).unwrap();
    thread.join().unwrap();

    eal.cleanup()
        .map_err(|(_, e)| e)
        .expect("everything is gone");
    // After cleanup nothing can be created.
    assert_eq!(
        Mempool::new_pktmbuf("late", 63, 0, 2176, 0)
            .unwrap_err()
            .errno,
        libc::ENODEV
    );
    assert_eq!(dpdk::register_thread().unwrap_err().errno, libc::ENODEV);
}
