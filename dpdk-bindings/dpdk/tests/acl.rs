//! `rte_acl` through the safe wrapper, on a real EAL (`--no-huge`): results
//! equal a brute-force scan of the same rules (highest priority wins) for
//! IPv4 and IPv6 (whose ranges become prefixes), from two threads at once;
//! bad rules are refused; an empty rule set matches nothing.
//!
//! One test (one EAL per process), the checks in order.

mod common;

use dpdk::{Acl, AclFamily, AclRule};

fn brute(rules: &[AclRule], k: (u8, u128, u128, u16, u16)) -> u32 {
    let inr = |(a, b): (u128, u128), v: u128| a <= v && v <= b;
    let inp = |(a, b): (u16, u16), v: u16| a <= v && v <= b;
    rules
        .iter()
        .filter(|r| {
            r.proto.is_none_or(|p| p == k.0)
                && inr(r.src, k.1)
                && inr(r.dst, k.2)
                && inp(r.src_port, k.3)
                && inp(r.dst_port, k.4)
        })
        .max_by_key(|r| r.priority)
        .map_or(0, |r| r.userdata)
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rules(fam: AclFamily, n: usize, rng: &mut Rng) -> Vec<AclRule> {
    let base: u128 = match fam {
        AclFamily::V4 => 10 << 24,
        AclFamily::V6 => 0x2001_0db8 << 96,
    };
    (0..n)
        .map(|i| {
            let mut r = AclRule::any(fam, (n - i) as u32, i as u32 + 1);
            if rng.below(4) > 0 {
                r.proto = Some([6, 17][rng.below(2) as usize]);
            }
            // Every rule names a source in base..base+72: keys above miss.
            let a = base + rng.below(64) as u128;
            r.src = (a, a + rng.below(8) as u128);
            if rng.below(3) == 0 {
                let a = base + rng.below(64) as u128;
                r.dst = (a, a + rng.below(40) as u128);
            }
            if rng.below(2) == 0 {
                let p = rng.below(20) as u16;
                r.dst_port = (p, p + rng.below(3) as u16);
            }
            if rng.below(5) == 0 {
                let p = rng.below(20) as u16;
                r.src_port = (p, p);
            }
            r
        })
        .collect()
}

fn check(fam: AclFamily, rng: &mut Rng) {
    let rs = rules(fam, 300, rng);
    let acl = Acl::build(fam, &rs).expect("build");
    assert_eq!(acl.family(), fam);
    let base: u128 = match fam {
        AclFamily::V4 => 10 << 24,
        AclFamily::V6 => 0x2001_0db8 << 96,
    };
    let tuples: Vec<(u8, u128, u128, u16, u16)> = (0..2000)
        .map(|_| {
            (
                [6, 17, 1][rng.below(3) as usize],
                base + rng.below(90) as u128,
                base + rng.below(80) as u128,
                rng.below(24) as u16,
                rng.below(24) as u16,
            )
        })
        .collect();
    let len = Acl::key_len(fam);
    let mut keys = vec![0u8; len * tuples.len()];
    for (t, k) in tuples.iter().zip(keys.chunks_mut(len)) {
        Acl::write_key(fam, t.0, t.1, t.2, t.3, t.4, k);
    }
    let key_refs: Vec<&[u8]> = keys.chunks(len).collect();
    let want: Vec<u32> = tuples.iter().map(|&t| brute(&rs, t)).collect();
    assert!(
        want.iter().filter(|&&w| w != 0).count() > 500,
        "the test matches"
    );
    assert!(want.contains(&0), "and misses");
    // Two threads classify on one context at once.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut got = vec![0u32; key_refs.len()];
                acl.classify(&key_refs, &mut got).expect("classify");
                assert_eq!(got, want, "{fam:?}");
            });
        }
    });
    // Short keys and short result arrays are errors, not reads past the end.
    let mut one = [0u32; 1];
    assert!(acl.classify(&[&keys[..len - 1]], &mut one).is_err());
    assert!(acl.classify(&key_refs[..2], &mut one).is_err());
}

#[test]
fn acl_matches_brute_force() {
    // Nothing can be built before the EAL runs.
    assert_eq!(
        Acl::build(AclFamily::V4, &[AclRule::any(AclFamily::V4, 1, 1)])
            .unwrap_err()
            .errno,
        libc::ENODEV
    );
    let _eal = common::small_eal();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Acl>();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    check(AclFamily::V4, &mut rng);
    check(AclFamily::V6, &mut rng);

    // A v6 range that is no prefix expands to several DPDK rules.
    let mut r = AclRule::any(AclFamily::V6, 1, 7);
    r.src = (3, 8);
    let acl = Acl::build(AclFamily::V6, &[r]).unwrap();
    assert_eq!(acl.rule_count(), 3);

    // Refused: userdata 0, priority 0 or too high, inverted ranges, a v4
    // address above 32 bits.
    let ok = AclRule::any(AclFamily::V4, 1, 1);
    for bad in [
        AclRule { userdata: 0, ..ok },
        AclRule { priority: 0, ..ok },
        AclRule {
            priority: Acl::MAX_PRIORITY + 1,
            ..ok
        },
        AclRule {
            dst_port: (5, 4),
            ..ok
        },
        AclRule {
            src: (0, 1 << 32),
            ..ok
        },
    ] {
        assert_eq!(
            Acl::build(AclFamily::V4, &[bad]).unwrap_err().errno,
            libc::EINVAL,
            "{bad:?}"
        );
    }

    // No rules: nothing matches.
    let empty = Acl::build(AclFamily::V4, &[]).unwrap();
    let mut key = [0u8; 16];
    Acl::write_key(AclFamily::V4, 6, 1, 2, 3, 4, &mut key);
    let mut res = [9u32; 1];
    empty.classify(&[&key], &mut res).unwrap();
    assert_eq!(res, [0]);
}
