//! Replays the seed corpus and every input found under `corpus/` and
//! `artifacts/` through both targets' bodies, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml`. Also a few thousand inputs
//! from a fixed pseudo-random generator, mutating the seeds, so that a plain
//! `cargo test` exercises the same assertions as a fuzzing run does.

use ctrack_fuzz::{parse, seeds, track};

#[test]
fn seeds_pass() {
    for (_, s) in seeds::parse_track() {
        track::run(&s);
        parse::run(&s);
    }
    for (_, s) in seeds::parse_only() {
        parse::run(&s);
        track::run(&s);
    }
}

#[test]
fn committed_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, list) in [
        ("parse_track", seeds::parse_track()),
        ("parse_only", seeds::parse_only()),
    ] {
        for (name, bytes) in list {
            let on_disk = std::fs::read(dir.join(target).join(name)).unwrap_or_else(|e| {
                panic!("{target}/{name}: {e} (run: cargo run --example gen_seeds)")
            });
            assert_eq!(
                on_disk, bytes,
                "{target}/{name} is stale: cargo run --example gen_seeds"
            );
        }
    }
}

#[test]
fn saved_inputs_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, f) in [
        ("corpus/parse_track", track::run as fn(&[u8])),
        ("corpus/parse_only", parse::run as fn(&[u8])),
        ("corpus/helper_ftp", ctrack_fuzz::helpers::ftp as fn(&[u8])),
        (
            "corpus/helper_pptp",
            ctrack_fuzz::helpers::pptp as fn(&[u8]),
        ),
        (
            "corpus/helper_tftp",
            ctrack_fuzz::helpers::tftp as fn(&[u8]),
        ),
        ("corpus/rules_script", |d: &[u8]| {
            ctrack_fuzz::rules::run(d);
        }),
    ] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            f(&data);
        }
    }
}

/// splitmix64
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn mutated_seeds_pass() {
    let mut all: Vec<Vec<u8>> = seeds::parse_track().into_iter().map(|s| s.1).collect();
    all.extend(seeds::parse_only().into_iter().map(|s| s.1));
    let mut rng = Rng(42);
    for round in 0..3000 {
        let mut d = all[round % all.len()].clone();
        for _ in 0..1 + rng.next() % 8 {
            if d.is_empty() {
                break;
            }
            let at = (rng.next() % d.len() as u64) as usize;
            match rng.next() % 4 {
                0 => d[at] = rng.next() as u8,
                1 => d[at] ^= 1 << (rng.next() % 8),
                2 => d.truncate(at),
                _ => {
                    let b = rng.next() as u8;
                    d.insert(at, b);
                }
            }
        }
        let r = std::panic::catch_unwind(|| {
            track::run(&d);
            parse::run(&d);
        });
        if let Err(e) = r {
            let out =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mutated-failure");
            let _ = std::fs::write(&out, &d);
            eprintln!("input written to {}", out.display());
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn seeds_reach_their_paths() {
    use dataplane::conntrack::{DropReason, UntrackedReason};
    let stats = |name: &str| {
        let (_, s) = seeds::parse_track()
            .into_iter()
            .find(|s| s.0 == name)
            .unwrap();
        let st = track::run_stats(&s).unwrap();
        eprintln!("{name}: {st:?}");
        st
    };
    let s = stats("seed-tcp-flow");
    assert_eq!(s.insert, 1);
    assert_eq!(s.packets, [6, 4]);
    let s = stats("seed-table-full");
    assert!(s.dropped[DropReason::TableFull.index()] > 0);
    assert!(s.early_drop > 0);
    let s = stats("seed-icmp-error");
    assert!(s.related >= 1);
    let s = stats("seed-ipv6");
    assert_eq!(s.insert, 2);
    assert_eq!(s.packets, [2, 2]);
    let s = stats("seed-gre-generic");
    assert_eq!(s.insert, 3);
    let s = stats("seed-loose-off-disabled");
    assert_eq!(s.untracked[UntrackedReason::TcpNotSynLooseOff.index()], 1);
    assert_eq!(s.untracked[UntrackedReason::TrackingDisabled.index()], 1);
    let s = stats("seed-timers");
    assert!(s.expired >= 2);
    let s = stats("seed-mix-burst");
    assert!(s.removed == 1);
}

#[test]
fn helper_seeds_and_mutations_pass() {
    use ctrack_fuzz::helpers;
    let run = |t: &str, d: &[u8]| match t {
        "helper_ftp" => helpers::ftp(d),
        "helper_pptp" => helpers::pptp(d),
        _ => helpers::tftp(d),
    };
    let seeds = helpers::seeds();
    let mut rng = Rng(7);
    for round in 0..3000 {
        let (t, _, s) = &seeds[round % seeds.len()];
        let mut d = s.clone();
        run(t, &d);
        for _ in 0..1 + rng.next() % 8 {
            if d.is_empty() {
                break;
            }
            let at = (rng.next() % d.len() as u64) as usize;
            match rng.next() % 4 {
                0 => d[at] = rng.next() as u8,
                1 => d[at] ^= 1 << (rng.next() % 8),
                2 => d.truncate(at),
                _ => d.insert(at, rng.next() as u8),
            }
        }
        run(t, &d);
    }
}

/// The `rules_script` seeds (the RouterOS default configuration, a chain
/// with a classifier and jumps, a script with packets) and mutations of
/// them: bytes changed, flipped, cut and inserted, lines swapped. Also
/// checks that the seeds themselves parse and compile (else the mutations
/// would test the parser's errors only).
#[test]
fn rules_seeds_and_mutations_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/rules_script");
    let mut seeds = Vec::new();
    for name in ["seed-defconf.rsc", "seed-classifier.rsc", "seed-packets.bin"] {
        let d = std::fs::read(dir.join(name)).unwrap();
        let script = d.split(|&b| b == 0).next().unwrap();
        let cfg = ctrack_rules::parse(&String::from_utf8_lossy(script))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ifaces = cfg.interface_names(&["ether1", "ether2", "ether3", "ether4"]);
        ctrack_rules::Ruleset::compile(&cfg, &ifaces, &mut ctrack_rules::Names::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seeds.push(d);
    }
    let mut rng = Rng(10);
    let mut evaluated = 0;
    for round in 0..600 {
        let mut d = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 4 {
            if d.is_empty() {
                break;
            }
            let at = (rng.next() % d.len() as u64) as usize;
            match rng.next() % 5 {
                0 => d[at] = b" =!,-/\"\n0aZ"[(rng.next() % 11) as usize],
                1 => d[at] ^= 1 << (rng.next() % 8),
                2 => d.truncate(at),
                3 => d.insert(at, rng.next() as u8),
                _ => {
                    // Moves the line at `at` to another place.
                    let start = d[..at]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    let end = d[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(d.len(), |i| at + i + 1);
                    let line: Vec<u8> = d.drain(start..end).collect();
                    let to = (rng.next() % (d.len() as u64 + 1)) as usize;
                    let to = d[..to]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    d.splice(to..to, line);
                }
            }
        }
        let r = std::panic::catch_unwind(|| ctrack_fuzz::rules::run(&d));
        evaluated += usize::from(r.as_ref().is_ok_and(|&e| e));
        if let Err(e) = r {
            let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/rules-mutated-failure");
            let _ = std::fs::write(&out, &d);
            eprintln!("input written to {}", out.display());
            std::panic::resume_unwind(e);
        }
    }
    // Else the mutations would exercise little more than parse errors.
    assert!(evaluated >= 150, "only {evaluated} of 600 mutants compiled");
}
