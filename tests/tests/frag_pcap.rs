//! Reassembly in the worker over real DPDK `net_pcap` ports, bridge mode,
//! tracking on (docs/nat.md "Fragments"): a capture of fragmented UDP
//! datagrams, IPv4 and IPv6, each sent out of order, goes in on port 0;
//! out of port 1 come the datagrams fragmented again to the size of their
//! largest fragment, in order (IPv4 byte for byte as the sender's
//! fragments; IPv6 with a new identification), each flow tracked once
//! (not once per fragment); a lone fragment whose datagram never completes
//! is dropped after `--frag-timeout` and counted; no mbuf of either pool
//! is left in use.

use ctrack_tests::{
    eal_base, ephemeral_servers, pcap_pair_ports, read_pcap, read_summary, scratch_dir, show,
    write_pcap,
};
use dataplane::frag::{v4_fragment, v6_fragment};
use dataplane::packet::checksum::fill_ip;

const ETH4: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
const ETH6: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];

/// A UDP datagram 10.0.0.1:4000 -> `dst`:53 (IPv4 id `id`) carrying `n`
/// bytes, checksums filled, in an Ethernet frame.
fn udp4(dst: [u8; 4], id: u16, n: usize) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1];
    ip.extend_from_slice(&dst);
    ip[2..4].copy_from_slice(&((28 + n) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&[0x0f, 0xa0, 0, 53]);
    ip.extend_from_slice(&((8 + n) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend((0..n).map(|i| (i * 7) as u8));
    fill_ip(&mut ip);
    [ETH4.to_vec(), ip].concat()
}

/// A UDP datagram 2001:db8::1:4000 -> 2001:db8::2:53 carrying `n` bytes.
fn udp6(n: usize) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
    ip[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(&[0x0f, 0xa0, 0, 53]);
    ip.extend_from_slice(&((8 + n) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend((0..n).map(|i| (i * 3) as u8));
    fill_ip(&mut ip);
    [ETH6.to_vec(), ip].concat()
}

/// The fragments of `f` with `max_data` payload bytes each, in order.
fn fragments(f: &[u8], max_data: usize, v6_id: Option<u32>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 14 + 65535];
    let mut at = 0;
    loop {
        let (n, next) = match v6_id {
            Some(id) => v6_fragment(f, at, max_data, id, &mut buf),
            None => v4_fragment(f, at, max_data, &mut buf),
        }
        .expect("a fragment");
        out.push(buf[..n].to_vec());
        match next {
            Some(a) => at = a,
            None => return out,
        }
    }
}

fn frag_count(summary: &serde_json::Value, name: &str) -> u64 {
    summary["workers"].as_array().map_or(0, |ws| {
        ws.iter().filter_map(|w| w["frag"][name].as_u64()).sum()
    })
}

#[test]
fn fragments_are_reassembled_tracked_once_fragmented_again_and_expired() {
    let dir = scratch_dir("frag-pcap");
    // Two IPv4 datagrams of one flow (3 fragments of at most 1500 bytes
    // each: the last first, then the first, then the middle), one IPv6
    // datagram (3 fragments, last to first), a datagram whole, and the
    // first fragment alone of a datagram that never completes.
    let d4a = udp4([10, 0, 1, 1], 0x1111, 3000);
    let d4b = udp4([10, 0, 1, 1], 0x2222, 3000);
    let d6 = udp6(3000);
    let whole = udp4([10, 0, 1, 1], 0x3333, 100);
    let lone = udp4([10, 0, 9, 9], 0x4444, 3000);
    let f4a = fragments(&d4a, 1480, None);
    let f4b = fragments(&d4b, 1480, None);
    let f6 = fragments(&d6, 1448, Some(0x0600_0001));
    let flone = fragments(&lone, 1480, None);
    assert_eq!((f4a.len(), f6.len()), (3, 3));
    let input = [
        f4a[2].clone(),
        f4a[0].clone(),
        f4a[1].clone(),
        f6[2].clone(),
        f6[1].clone(),
        f6[0].clone(),
        whole.clone(),
        flone[0].clone(),
        f4b[2].clone(),
        f4b[0].clone(),
        f4b[1].clone(),
    ];
    let stamped: Vec<(u64, Vec<u8>)> = input
        .iter()
        .enumerate()
        .map(|(i, f)| (i as u64 * 1000, f.clone()))
        .collect();
    write_pcap(&dir.join("in0.pcap"), &stamped);
    write_pcap(&dir.join("in1.pcap"), &[]);

    let summary = dir.join("summary.json");
    let mut args: Vec<String> = [
        "run",
        "--workers",
        "1",
        "--idle-exit",
        "500ms",
        "--frag-timeout",
        "50ms",
        "--set",
        "enabled=yes",
        "--summary-json",
    ]
    .map(String::from)
    .to_vec();
    args.push(summary.display().to_string());
    args.extend(ephemeral_servers());
    args.push("--".into());
    args.extend(eal_base());
    args.extend(pcap_pair_ports(&dir));
    let out = ctrack_tests::ctrack(&args);
    assert!(out.status.success(), "{}", show(&out));

    // Out of port 1: the datagrams' fragments in order; the whole one.
    let got = read_pcap(&dir.join("out1.pcap"));
    let mut want: Vec<Vec<u8>> = Vec::new();
    want.extend(f4a.iter().cloned());
    want.extend(f6.iter().cloned());
    want.push(whole.clone());
    want.extend(f4b.iter().cloned());
    let id_blind = |f: &[u8]| -> Vec<u8> {
        let mut f = f.to_vec();
        if f[12..14] == [0x86, 0xdd] && f.len() > 62 {
            f[58..62].fill(0);
        }
        f
    };
    assert_eq!(
        got.iter().map(|f| id_blind(f)).collect::<Vec<_>>(),
        want.iter().map(|f| id_blind(f)).collect::<Vec<_>>(),
        "port 1's frames: {} of {}\n{}",
        got.len(),
        want.len(),
        show(&out)
    );
    // The IPv6 fragments share one new identification.
    let ids: Vec<&[u8]> = got[3..6].iter().map(|f| &f[58..62]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");

    let s = read_summary(&summary);
    let w = &s["workers"][0];
    assert_eq!(
        w["connections_created"], 2,
        "one IPv4 and one IPv6 connection: {s:#}"
    );
    assert_eq!(frag_count(&s, "fragments"), 10, "{s:#}");
    assert_eq!(frag_count(&s, "reassembled"), 3, "{s:#}");
    assert_eq!(frag_count(&s, "timeout"), 1, "the lone fragment: {s:#}");
    assert_eq!(frag_count(&s, "refragmented"), 3, "{s:#}");
    assert_eq!(frag_count(&s, "refragments"), 9, "{s:#}");
    for n in ["no_space", "too_big", "bad", "no_mbuf", "refragment_failed"] {
        assert_eq!(frag_count(&s, n), 0, "{n}: {s:#}");
    }
    assert_eq!(s["mempool_in_use_end"], s["mempool_in_use_start"], "{s:#}");
    assert_eq!(s["frag_mempool_in_use_end"], 0, "{s:#}");
}
