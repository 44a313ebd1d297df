//! `rte_lpm`/`rte_lpm6` through the safe layer, on a real EAL (one process,
//! one EAL: one test), checked against a brute-force longest match.

mod common;

use dpdk::{Lpm, Lpm6};

fn brute(routes: &[(u32, u8, u32)], ip: u32) -> Option<u32> {
    let mut best: Option<(u8, u32)> = None;
    for &(net, depth, hop) in routes {
        let mask = if depth == 0 {
            0
        } else {
            u32::MAX << (32 - depth)
        };
        if ip & mask == net & mask && best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, hop));
        }
    }
    best.map(|b| b.1)
}

#[test]
fn lpm_and_lpm6_match_brute_force() {
    let _eal = common::small_eal();
    let mut lpm = Lpm::new(1024, 256).expect("rte_lpm_create");
    // A pseudo-random but fixed set of prefixes, later ones replacing
    // earlier ones of the same prefix (as rte_lpm_add does).
    let mut x = 0x1234_5678u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut routes: Vec<(u32, u8, u32)> = Vec::new();
    for i in 0..300u32 {
        let depth = (next() % 32 + 1) as u8;
        let net = next() & (u32::MAX << (32 - depth));
        lpm.add(net, depth, i).expect("add");
        routes.retain(|r| !(r.0 == net && r.1 == depth));
        routes.push((net, depth, i));
    }
    let probes: Vec<u32> = (0..2000)
        .map(|i| {
            if i % 2 == 0 {
                next()
            } else {
                routes[i % routes.len()].0 | (next() & 0xff)
            }
        })
        .collect();
    let mut bulk = vec![None; probes.len()];
    lpm.lookup_bulk(&probes, &mut bulk);
    for (ip, b) in probes.iter().zip(&bulk) {
        let want = brute(&routes, *ip);
        assert_eq!(lpm.lookup(*ip), want, "{ip:#x}");
        assert_eq!(*b, want, "bulk {ip:#x}");
    }
    // Delete, bad arguments.
    let (net, depth, _) = routes.remove(0);
    lpm.delete(net, depth).expect("delete");
    for ip in &probes {
        assert_eq!(lpm.lookup(*ip), brute(&routes, *ip));
    }
    assert!(lpm.add(1, 33, 1).is_err());
    assert!(lpm.add(1, 8, 1 << 24).is_err());

    let mut lpm6 = Lpm6::new(64, 1024).expect("rte_lpm6_create");
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    lpm6.add(&a, 32, 1).expect("add /32");
    let mut b = a;
    b[4] = 7;
    lpm6.add(&b, 64, 2).expect("add /64");
    let mut probe = b;
    probe[15] = 9;
    assert_eq!(lpm6.lookup(&probe), Some(2));
    probe[4] = 8;
    assert_eq!(lpm6.lookup(&probe), Some(1));
    probe[0] = 0x30;
    assert_eq!(lpm6.lookup(&probe), None);
    lpm6.delete(&b, 64).expect("delete");
    probe = b;
    assert_eq!(lpm6.lookup(&probe), Some(1));
}
