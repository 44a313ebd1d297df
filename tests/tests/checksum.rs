//! `ctrack replay` on a crafted capture: packets with a bad checksum are
//! invalid and create nothing, as in Linux (`nf_conntrack_checksum=1`);
//! with `checksum-verify=no` they are tracked.

use ctrack_tests::{ctrack, scratch_dir, show, write_pcap};
use ctrack_traffic::synth::{tcp_frame, udp_frame};
use dataplane::flow::tcp_flags::SYN;
use serde_json::Value;

/// A SYN with a bad TCP checksum and a UDP datagram with a bad UDP
/// checksum, each a flow of its own.
fn bad_frames() -> Vec<(u64, Vec<u8>)> {
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut syn = tcp_frame(a, b, 40000, 80, 1, 0, SYN, 0, None, true);
    syn[14 + 20 + 16] ^= 0x55;
    let mut dgram = udp_frame(a, b, 5000, 53, 10, true);
    *dgram.last_mut().unwrap() ^= 1;
    vec![(1_000, syn), (2_000, dgram)]
}

fn replay(pcap: &std::path::Path, extra: &[&str]) -> (Vec<Value>, String) {
    let mut args = vec![
        "replay".to_string(),
        pcap.display().to_string(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = ctrack(&args);
    assert!(out.status.success(), "{}", show(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("replay --json output");
    (rows, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn replay_counts_bad_checksums_as_invalid_and_creates_nothing() {
    let dir = scratch_dir("checksum-replay");
    let pcap = dir.join("bad.pcap");
    write_pcap(&pcap, &bad_frames());

    let (rows, counters) = replay(&pcap, &[]);
    assert!(rows.is_empty(), "connections from bad checksums: {rows:?}");
    assert!(counters.contains("invalid (bad_checksum): 2"), "{counters}");
    assert!(counters.contains("connections created: 0"), "{counters}");

    let (rows, counters) = replay(&pcap, &["--set", "checksum-verify=no"]);
    let protocols: Vec<&str> = rows
        .iter()
        .map(|r| r["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["tcp", "udp"], "{counters}");
    assert!(!counters.contains("bad_checksum"), "{counters}");
}
