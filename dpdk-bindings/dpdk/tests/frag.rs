//! `rte_ip_frag` reassembly through the safe layer, on a real EAL (one
//! process, one EAL: one test): IPv4 and IPv6 datagrams cut into fragments
//! come back whole (in any order), a datagram too big for one mbuf is freed
//! whole, unfinished ones expire, and no mbuf is leaked.

mod common;

use std::sync::Arc;

use dpdk::{FragTable, Mempool, Reassembly};

const ETH4: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
const ETH6: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];

fn csum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4 UDP datagram (header + `payload`), id `id`.
fn v4_datagram(id: u16, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let total = (20 + payload.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

/// The datagram's fragments as Ethernet frames, `size` payload bytes each
/// (a multiple of 8).
fn v4_fragments(dgram: &[u8], size: usize) -> Vec<Vec<u8>> {
    let body = &dgram[20..];
    body.chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = dgram[..20].to_vec();
            let more = (i + 1) * size < body.len();
            let off = (i * size / 8) as u16 | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&off.to_be_bytes());
            h[2..4].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
            h[10..12].fill(0);
            let c = csum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let mut f = ETH4.to_vec();
            f.extend_from_slice(&h);
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

fn v6_fragments(id: u32, payload: &[u8], size: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let header = |next: u8, plen: usize| {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        h[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    };
    let mut whole = ETH6.to_vec();
    whole.extend_from_slice(&header(17, payload.len()));
    whole.extend_from_slice(payload);
    let frags = payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let more = (i + 1) * size < payload.len();
            let mut f = ETH6.to_vec();
            f.extend_from_slice(&header(44, 8 + chunk.len()));
            let off = ((i * size) as u16) | u16::from(more);
            f.extend_from_slice(&[17, 0]);
            f.extend_from_slice(&off.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect();
    (whole, frags)
}

#[test]
fn fragments_come_back_whole() {
    let _eal = common::small_eal();
    let pool = Mempool::new_pktmbuf("frag", 1023, 0, 2176, 0).expect("pool");
    let hz = dpdk::tsc_hz();
    let mut t = FragTable::new(64, 4, 256, hz).expect("table");
    let mbuf = |f: &[u8]| pool.alloc_with(f).expect("mbuf");

    // IPv4, three fragments, last one first.
    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let dgram = v4_datagram(0x1234, &payload);
    let mut frags = v4_fragments(&dgram, 400);
    frags.rotate_right(1);
    let mut done = None;
    for f in &frags {
        match t.reassemble(mbuf(f), 14, 1000) {
            Reassembly::Held => {}
            Reassembly::Done(m) => done = Some(m),
            other => panic!("unexpected {other:?}"),
        }
    }
    let m = done.expect("reassembled");
    assert_eq!(&m.data()[14..], &dgram[..], "the datagram, checksum filled");
    drop(m);

    // IPv6, two fragments.
    let (whole, frags) = v6_fragments(7, &payload, 512);
    assert!(matches!(
        t.reassemble(mbuf(&frags[0]), 14, 2000),
        Reassembly::Held
    ));
    let Reassembly::Done(m) = t.reassemble(mbuf(&frags[1]), 14, 2000) else {
        panic!("IPv6 not reassembled");
    };
    assert_eq!(m.data(), &whole[..]);
    drop(m);

    // Not a fragment: given back untouched.
    let plain = [
        ETH4.to_vec(),
        v4_datagram(1, b"hello, world, long enough to parse"),
    ]
    .concat();
    let Reassembly::NotFragment(m) = t.reassemble(mbuf(&plain), 14, 3000) else {
        panic!("a whole datagram is not a fragment");
    };
    assert_eq!(m.data(), &plain[..]);
    drop(m);

    // Too big for one mbuf (3000 bytes > 2048 of data room): freed whole.
    let big: Vec<u8> = vec![0xab; 3000];
    let dgram = v4_datagram(0x4321, &big);
    let frags = v4_fragments(&dgram, 1000);
    let mut outcomes = Vec::new();
    for f in &frags {
        outcomes.push(match t.reassemble(mbuf(f), 14, 4000) {
            Reassembly::Held => "held",
            Reassembly::TooBig => "too big",
            Reassembly::Done(_) => "done",
            Reassembly::NotFragment(_) => "not",
            Reassembly::NoSpace | Reassembly::Bad | Reassembly::NoMbuf => "dropped",
        });
    }
    assert_eq!(outcomes, ["held", "held", "too big"]);

    // An unfinished datagram expires after the timeout (one second).
    let dgram = v4_datagram(0x5555, &payload);
    let frags = v4_fragments(&dgram, 400);
    assert!(matches!(
        t.reassemble(mbuf(&frags[0]), 14, 5000),
        Reassembly::Held
    ));
    assert!(pool.in_use_count() > 0);
    assert_eq!(t.expire(5000 + 2 * hz), 1);
    assert_eq!(pool.in_use_count(), 0, "every mbuf is back in the pool");
    let c = t.counts();
    assert_eq!((c.reassembled, c.too_big, c.timeout), (2, 1, 1), "{c:?}");

    // With a pool for whole datagrams: a datagram over the packet pool's
    // 2 KiB is copied into one of its mbufs, which remembers the largest
    // fragment's size (the others' remember nothing).
    let big = Arc::new(Mempool::new_pktmbuf("frag_big", 7, 0, u16::MAX, 0).expect("big pool"));
    let mut t = FragTable::new(1, 2, 2, 1000)
        .and_then(|t| t.with_pool(big.clone()))
        .expect("table with a pool");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
    let dgram = v4_datagram(0x7777, &payload);
    let mut frags = v4_fragments(&dgram, 1480);
    frags.reverse();
    let mut done = None;
    for f in &frags {
        if let Reassembly::Done(m) = t.reassemble(mbuf(f), 14, 10) {
            done = Some(m);
        }
    }
    let m = done.expect("5000 bytes reassembled");
    assert_eq!(&m.data()[14..], &dgram[..]);
    assert_eq!(t.frag_size(&m), 1500, "the largest fragment: 20 + 1480");
    assert_eq!(big.in_use_count(), 1);
    assert_eq!(pool.in_use_count(), 0, "the fragments are freed");
    let plain_m = mbuf(&plain);
    assert_eq!(t.frag_size(&plain_m), 0, "not reassembled here");
    drop((m, plain_m));
    assert_eq!(big.in_use_count(), 0);
    // IPv6: the fragment header counts in the fragment's size.
    let (whole, frags) = v6_fragments(9, &payload[..3000], 1448);
    let mut done = None;
    for f in &frags {
        if let Reassembly::Done(m) = t.reassemble(mbuf(f), 14, 20) {
            done = Some(m);
        }
    }
    let m = done.expect("IPv6 reassembled");
    assert_eq!(m.data(), &whole[..]);
    assert_eq!(t.frag_size(&m), 40 + 8 + 1448);
    drop(m);

    // A full table (2 datagrams at most): the third's fragment is freed,
    // counted; once they time out, their fragments are counted too.
    for id in [1u16, 2] {
        let f = v4_fragments(&v4_datagram(id, &payload[..1000]), 400);
        assert!(matches!(
            t.reassemble(mbuf(&f[0]), 14, 30),
            Reassembly::Held
        ));
    }
    let f = v4_fragments(&v4_datagram(3, &payload[..1000]), 400);
    assert!(matches!(
        t.reassemble(mbuf(&f[0]), 14, 30),
        Reassembly::NoSpace
    ));
    assert_eq!(t.expire(30 + 1001), 2);
    // A truncated fragment (its length says more than the frame holds).
    let mut short = v4_fragments(&v4_datagram(4, &payload[..1000]), 400)[0].clone();
    short.truncate(100);
    assert!(matches!(
        t.reassemble(mbuf(&short), 14, 40),
        Reassembly::Bad
    ));
    let c = t.counts();
    assert_eq!(
        (c.reassembled, c.no_space, c.timeout, c.bad, c.fragments),
        (2, 1, 2, 1, 4 + 3 + 2 + 1 + 1),
        "{c:?}"
    );
    drop(t);
    assert_eq!(pool.in_use_count(), 0, "every mbuf is back in the pool");
    assert_eq!(big.in_use_count(), 0);
}
