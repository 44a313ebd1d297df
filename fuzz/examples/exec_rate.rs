//! Executions per second of the targets' bodies, without libFuzzer or a
//! sanitizer: every seed and saved input of a target, round after round, for
//! a few seconds. A quick, repeatable way to see what one input costs.
//!
//! `parse_track (long)` runs inputs of about 4 KiB (libFuzzer's `-max_len`
//! in `scripts/fuzz.sh`, which a growing corpus reaches): each seed followed
//! by the records of all the others, over and over (records are
//! self-delimiting, so the concatenation is a valid input).
//!
//! ```sh
//! cargo run --release --example exec_rate [SECONDS]
//! ```

use std::time::{Duration, Instant};

use ctrack_fuzz::{parse, seeds, track};

fn inputs(target: &str, seeds: Vec<(&'static str, Vec<u8>)>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                v.push(b);
            }
        }
    }
    v
}

fn rate(name: &str, inputs: &[Vec<u8>], run: fn(&[u8]), secs: f64) {
    let start = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while start.elapsed() < budget {
        for i in inputs {
            run(i);
            n += 1;
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "{name}: {n} inputs in {t:.2} s = {:.0} inputs/s ({} distinct)",
        n as f64 / t,
        inputs.len()
    );
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    rate(
        "parse_track",
        &inputs("parse_track", seeds::parse_track()),
        track::run,
        secs,
    );
    let seeds = seeds::parse_track();
    let long: Vec<Vec<u8>> = seeds
        .iter()
        .map(|(_, first)| {
            let mut v = first.clone();
            'fill: loop {
                for (_, other) in &seeds {
                    if v.len() >= 4096 {
                        break 'fill;
                    }
                    v.extend_from_slice(other.get(2..).unwrap_or(&[]));
                }
            }
            v
        })
        .collect();
    rate("parse_track (long)", &long, track::run, secs);
    rate(
        "parse_only",
        &inputs("parse_only", seeds::parse_only()),
        parse::run,
        secs,
    );
}
