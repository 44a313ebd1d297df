//! The pktgen-dpdk configuration (`scripts/pktgen/ctrack.lua`, see
//! docs/benchmarks-pktgen.md): it parses, and, where `PKTGEN` names a
//! pktgen-dpdk binary, the traffic it makes is what it claims: `CT_CONNS`
//! distinct connections from port 0, and port 1 sending exactly their mirror
//! images, every frame parseable with valid checksums.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ctrack_tests::{read_pcap, scratch_dir, write_pcap};
use dataplane::flow::{L4, Tuple};
use dataplane::packet::parse_ethernet;

fn lua_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pktgen/ctrack.lua")
}

/// `luac -p`: a syntax check without running anything.
#[test]
fn lua_script_parses() {
    let Some(luac) = ["luac5.3", "luac5.4", "luac"].into_iter().find(|l| {
        Command::new(l)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        eprintln!("skipped: no luac (apt-get install lua5.3)");
        return;
    };
    let out = Command::new(luac)
        .arg("-p")
        .arg(lua_script())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{luac} -p: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the check itself catches a broken script.
    let dir = scratch_dir("pktgen-lua");
    let broken = dir.join("broken.lua");
    let text = std::fs::read_to_string(lua_script()).unwrap();
    std::fs::write(&broken, format!("{text}\nlocal = 1\n")).unwrap();
    let out = Command::new(luac).arg("-p").arg(&broken).output().unwrap();
    assert!(!out.status.success(), "luac accepted a broken script");
}

fn tuples(frames: &[Vec<u8>]) -> BTreeSet<(String, String, u8, u16, u16)> {
    frames
        .iter()
        .map(|f| {
            let repr = parse_ethernet(f).expect("pktgen frame parses");
            assert!(
                matches!(repr.l4, L4::Udp | L4::Tcp(_)),
                "pktgen sent {:?}",
                repr.l4
            );
            let t: &Tuple = &repr.tuple;
            (
                t.src.to_ip(t.family).to_string(),
                t.dst.to_ip(t.family).to_string(),
                t.proto,
                t.src_port,
                t.dst_port,
            )
        })
        .collect()
}

/// A short pktgen run into pcap files, checked for its shape.
#[test]
fn pktgen_makes_the_connections_it_claims() {
    let Some(pktgen) = std::env::var_os("PKTGEN") else {
        eprintln!("skipped: PKTGEN is not set (docs/benchmarks-pktgen.md)");
        return;
    };
    let dir = scratch_dir("pktgen-shape");
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, &[]);
    for (family, proto, conns) in [("ipv4", "udp", 37), ("ipv6", "tcp", 11)] {
        let p0 = dir.join(format!("{family}-{proto}-0.pcap"));
        let p1 = dir.join(format!("{family}-{proto}-1.pcap"));
        let vdev = |i: u32, tx: &Path| {
            format!(
                "net_pcap{i},rx_pcap={},tx_pcap={}",
                empty.display(),
                tx.display()
            )
        };
        let cmd = format!(
            "'{}' --no-huge -m 4096 --no-pci --file-prefix ctpkt{} --lcores 0@0,1@0,2@0 \
             --log-level=error --vdev {} --vdev {} -- -P -T -m '[1:1].0,[2:2].1' -f '{}'",
            Path::new(&pktgen).display(),
            std::process::id(),
            vdev(0, &p0),
            vdev(1, &p1),
            lua_script().display()
        );
        let out = Command::new("timeout")
            .args(["120", "script", "-qfec", &cmd, "/dev/null"])
            .env("CT_MODE", "conns")
            .env("CT_CONNS", conns.to_string())
            .env("CT_PROTO", proto)
            .env("CT_FAMILY", family)
            .env("CT_RATE", "1")
            .env("CT_WARMUP", "1")
            .env("CT_SECONDS", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("CTRACK_PKTGEN mode=conns"),
            "pktgen printed no result: {}",
            &text[text.len().saturating_sub(2000)..]
        );
        let (f0, f1) = (read_pcap(&p0), read_pcap(&p1));
        assert!(!f0.is_empty() && !f1.is_empty());
        let t0 = tuples(&f0);
        let t1 = tuples(&f1);
        assert_eq!(
            t0.len(),
            conns,
            "{family} {proto}: distinct tuples on port 0"
        );
        let mirrored: BTreeSet<_> = t0
            .iter()
            .map(|(s, d, p, sp, dp)| (d.clone(), s.clone(), *p, *dp, *sp))
            .collect();
        assert_eq!(
            t1, mirrored,
            "{family} {proto}: port 1 sends the mirror of port 0"
        );
        let want = if proto == "udp" { 17 } else { 6 };
        assert!(t0.iter().all(|t| t.2 == want));
    }
}
