//! The encoders against real collectors that no one here wrote, from
//! Debian's packages: `nfcapd` receives NetFlow v9 and IPFIX on loopback and
//! `nfdump -r` reads back exactly the flows and NAT fields that were sent;
//! `tshark` decodes the same messages (from a pcap) without a malformed-field
//! or error note. `scripts/test.sh` installs `nfdump` and `tshark` as root;
//! without them each test prints why it cannot run and passes.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ctrack_export::{
    EndReason, Exporter, ExporterConfig, FlowRecord, NatEvent, NatEventKind, Record, Translation,
    Version,
};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctrack-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const T0: u64 = 1_764_500_000_000; // Unix ms, 2025-11-30

/// What the tests send: 4 IPv4 TCP flows, 2 IPv6 UDP flows, 1 translated
/// IPv4 UDP flow.
fn flows() -> Vec<FlowRecord> {
    let mut v = Vec::new();
    for i in 0..4u16 {
        v.push(FlowRecord {
            src: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
            src_port: 40000 + i,
            dst_port: 8080,
            protocol: 6,
            packets: 10 + u64::from(i),
            bytes: 1000 * (1 + u64::from(i)),
            start_ms: T0,
            end_ms: T0 + 2000,
            tcp_flags: 0x1b,
            in_if: 1,
            out_if: 2,
            end_reason: EndReason::EndOfFlow,
            nat: None,
        });
    }
    for i in 0..2u16 {
        v.push(FlowRecord {
            src: IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1)),
            dst: IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2)),
            src_port: 5000 + i,
            dst_port: 53,
            protocol: 17,
            packets: 3,
            bytes: 300,
            start_ms: T0,
            end_ms: T0 + 500,
            tcp_flags: 0,
            in_if: 1,
            out_if: 2,
            end_reason: EndReason::IdleTimeout,
            nat: None,
        });
    }
    v.push(FlowRecord {
        src: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 9)),
        src_port: 33333,
        dst_port: 123,
        protocol: 17,
        packets: 2,
        bytes: 152,
        start_ms: T0,
        end_ms: T0 + 100,
        tcp_flags: 0,
        in_if: 1,
        out_if: 2,
        end_reason: EndReason::IdleTimeout,
        nat: Some(Translation {
            src: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 9)),
            src_port: 1024,
            dst_port: 123,
        }),
    });
    v
}

fn nat_event() -> NatEvent {
    NatEvent {
        kind: NatEventKind::SessionCreate,
        time_ms: T0 + 1,
        protocol: 17,
        src: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 9)),
        src_port: 33333,
        dst_port: 123,
        nat: Translation {
            src: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 9)),
            src_port: 1024,
            dst_port: 123,
        },
    }
}

fn messages(version: Version, with_event: bool) -> Vec<Vec<u8>> {
    let mut cfg = ExporterConfig::new(version);
    cfg.domain_id = 42;
    let mut exp = Exporter::new(cfg, T0 - 60_000).unwrap();
    let mut recs: Vec<Record> = flows().into_iter().map(Record::Flow).collect();
    if with_event {
        recs.push(Record::NatEvent(nat_event()));
    }
    let mut out = Vec::new();
    exp.export(T0 + 3000, &recs, |m| out.push(m.to_vec()));
    out
}

/// nfcapd on 127.0.0.1, receiving `msgs`; returns what `nfdump -o csv`
/// reads back from the file it wrote.
fn through_nfcapd(name: &str, msgs: &[Vec<u8>]) -> String {
    let dir = scratch(name);
    // A free port: bind, read it, release (nfcapd binds it next).
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nfcapd = Command::new("timeout")
        .args([
            "60",
            "nfcapd",
            "-b",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "3600",
            "-w",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nfcapd starts");
    // Ready once it says so (it prints "Startup nfcapd." after binding).
    let mut err = BufReader::new(nfcapd.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("nfcapd ended before starting up:\n{said}");
        }
        said.push_str(&line);
        if line.contains("Startup") {
            break;
        }
    }
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for m in msgs {
        tx.send_to(m, ("127.0.0.1", port)).unwrap();
    }
    // nfcapd handles each datagram as it reads it: once its socket's
    // receive queue is empty, it has them all. Then SIGTERM makes it flush
    // and close its file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while udp_rx_queue(port).is_some_and(|q| q > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "nfcapd does not read its socket"
        );
        std::thread::yield_now();
    }
    let pid = nfcapd.id().to_string();
    // `timeout` forwards the signal to nfcapd.
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let _ = nfcapd.wait();
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("nfcapd.") && !n.contains("current")
        })
        .unwrap_or_else(|| panic!("nfcapd wrote no file in {}:\n{said}", dir.display()));
    let out = Command::new("nfdump")
        .args(["-N", "-o", "json", "-r"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nfdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout).unwrap()
}

/// Bytes waiting in the receive queue of the UDP socket bound to
/// 127.0.0.1:`port` (`/proc/net/udp`), if there is one.
fn udp_rx_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.get(1) != Some(&local.as_str()) {
            return None;
        }
        let (_, rx) = cols.get(4)?.split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

fn check_nfdump(version: Version) {
    if !have("nfcapd") || !have("nfdump") {
        eprintln!("skipped: nfcapd/nfdump not installed (apt-get install nfdump)");
        return;
    }
    let json = through_nfcapd(version.name(), &messages(version, true));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("nfdump json: {e}\n{json}"));
    let is_event = |r: &serde_json::Value| r.get("nat_event").is_some();
    let flow_rows: Vec<&serde_json::Value> = rows.iter().filter(|r| !is_event(r)).collect();
    let sent = flows();
    assert_eq!(flow_rows.len(), sent.len(), "flows read back:\n{json}");
    for f in &sent {
        let (sa, da) = match f.src {
            IpAddr::V4(_) => ("src4_addr", "dst4_addr"),
            IpAddr::V6(_) => ("src6_addr", "dst6_addr"),
        };
        let row = flow_rows
            .iter()
            .find(|r| r[sa] == f.src.to_string() && r["src_port"] == f.src_port)
            .unwrap_or_else(|| panic!("flow {}:{} not read back:\n{json}", f.src, f.src_port));
        assert_eq!(row[da], f.dst.to_string(), "{json}");
        assert_eq!(row["dst_port"], f.dst_port);
        assert_eq!(row["proto"], f.protocol);
        assert_eq!(row["in_packets"], f.packets, "{json}");
        assert_eq!(row["in_bytes"], f.bytes, "{json}");
        assert_eq!(row["input_snmp"], f.in_if);
        assert_eq!(row["output_snmp"], f.out_if);
        match f.nat {
            Some(n) => {
                assert_eq!(row["src4_xlt_ip"], n.src.to_string(), "{json}");
                assert_eq!(row["dst4_xlt_ip"], n.dst.to_string(), "{json}");
                assert_eq!(row["src_xlt_port"], n.src_port.to_string(), "{json}");
                assert_eq!(row["dst_xlt_port"], n.dst_port.to_string(), "{json}");
            }
            None => assert!(row.get("src4_xlt_ip").is_none(), "{json}"),
        }
    }
    // The NAT event (IPFIX only): one record with the event and the
    // translation.
    let events: Vec<&serde_json::Value> = rows.iter().filter(|r| is_event(r)).collect();
    if version == Version::NetflowV9 {
        assert!(events.is_empty(), "{json}");
        return;
    }
    let ev = nat_event();
    assert_eq!(events.len(), 1, "{json}");
    let r = events[0];
    assert_eq!(r["nat_event"], "NAT44 session create", "{json}");
    assert_eq!(r["src4_addr"], ev.src.to_string(), "{json}");
    assert_eq!(r["src_port"], ev.src_port, "{json}");
    assert_eq!(r["src4_xlt_ip"], ev.nat.src.to_string(), "{json}");
    assert_eq!(r["src_xlt_port"], ev.nat.src_port.to_string(), "{json}");
}

#[test]
fn nfdump_reads_back_netflow_v9() {
    check_nfdump(Version::NetflowV9);
}

#[test]
fn nfdump_reads_back_ipfix() {
    check_nfdump(Version::Ipfix);
}

/// Writes `msgs` as UDP datagrams to `port` into a pcap for tshark.
fn pcap_of(path: &Path, port: u16, msgs: &[Vec<u8>]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = ctrack_traffic::pcap::PcapWriter::new(
        std::io::BufWriter::new(f),
        ctrack_traffic::pcap::LinkType::Ethernet,
        false,
    )
    .unwrap();
    for (i, m) in msgs.iter().enumerate() {
        let mut udp = Vec::with_capacity(8 + m.len());
        udp.extend_from_slice(&40000u16.to_be_bytes());
        udp.extend_from_slice(&port.to_be_bytes());
        udp.extend_from_slice(&((8 + m.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(m);
        let frame = ctrack_traffic::synth::ipv4_frame(
            [127, 0, 0, 1],
            [127, 0, 0, 1],
            17,
            &udp,
            Some(6),
            true,
        );
        w.write_packet(T0 * 1_000_000 + i as u64 * 1000, &frame)
            .unwrap();
    }
    w.flush().unwrap();
}

fn check_tshark(version: Version) {
    if !have("tshark") {
        eprintln!("skipped: tshark not installed (apt-get install tshark)");
        return;
    }
    let dir = scratch(&format!("tshark-{}", version.name()));
    let pcap = dir.join("export.pcap");
    // The ports tshark dissects as NetFlow v9 and IPFIX without being told.
    let port = match version {
        Version::NetflowV9 => 2055,
        Version::Ipfix => 4739,
    };
    pcap_of(&pcap, port, &messages(version, true));
    let out = Command::new("tshark")
        .args(["-n", "-V", "-r"])
        .arg(&pcap)
        .env("HOME", &dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in ["Malformed", "[Expert Info (Error", "[Expert Info (Warning"] {
        assert!(!text.contains(bad), "tshark says {bad}:\n{text}");
    }
    // Every flow and the NAT event decoded as data records.
    let decoded = text.matches("Flow ").count();
    assert!(decoded >= flows().len(), "{decoded} flows decoded:\n{text}");
    for f in flows() {
        assert!(
            text.contains(&f.src_port.to_string()),
            "source port {} not decoded",
            f.src_port
        );
    }
    if version == Version::Ipfix {
        assert!(
            text.contains("natEvent") || text.contains("NAT Event"),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tshark_decodes_netflow_v9_cleanly() {
    check_tshark(Version::NetflowV9);
}

#[test]
fn tshark_decodes_ipfix_cleanly() {
    check_tshark(Version::Ipfix);
}
