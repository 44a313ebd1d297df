//! `/ip traffic-flow` end to end: `ctrack run` on DPDK pcap vdevs exports
//! the connections of a synthetic capture to a real collector, Debian's
//! `nfcapd` (nfdump) on loopback, and `nfdump -r` reads back exactly those
//! connections: one record per direction, with its addresses, ports,
//! protocol, packets and bytes, for NetFlow v9 and for IPFIX. Without
//! nfdump (`scripts/deps.sh` extras, or `apt-get install nfdump`) each test
//! prints why it cannot run and passes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ctrack_tests::{
    ctrack, eal_base, ephemeral_servers, pcap_pair_ports, scratch_dir, show, write_pcap,
};
use ctrack_traffic::synth::{Mix, Side};
use dataplane::flow::proto;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// nfcapd listening on 127.0.0.1, writing into `dir`.
struct Nfcapd {
    child: Child,
    port: u16,
    dir: PathBuf,
    err: Option<BufReader<std::process::ChildStderr>>,
}

impl Nfcapd {
    fn start(dir: &Path) -> Nfcapd {
        std::fs::create_dir_all(dir).unwrap();
        // A free port: bind, read it, release (nfcapd binds it next).
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("timeout")
            .args(["120", "nfcapd", "-b", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-t", "3600", "-w"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nfcapd starts");
        // Ready once it says so (it prints "Startup nfcapd." after binding).
        let mut err = BufReader::new(child.stderr.take().unwrap());
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
        Nfcapd {
            child,
            port,
            dir: dir.to_path_buf(),
            err: Some(err),
        }
    }

    /// Waits until nfcapd has read every datagram (its socket's receive
    /// queue is empty), stops it (it writes its file), and returns what
    /// `nfdump -o json` reads back.
    fn finish(mut self) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while udp_rx_queue(self.port).is_some_and(|q| q > 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "nfcapd does not read its socket"
            );
            std::thread::yield_now();
        }
        let pid = self.child.id().to_string();
        // `timeout` forwards the signal to nfcapd.
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let _ = self.child.wait();
        if let Some(mut err) = self.err.take() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        let file = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("nfcapd.") && !n.contains("current")
            })
            .unwrap_or_else(|| panic!("nfcapd wrote no file in {}", self.dir.display()));
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
        let text = String::from_utf8(out.stdout).unwrap();
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("nfdump json: {e}\n{text}"))
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// One direction of a connection: (src, src port, dst, dst port, proto);
/// ICMP without ports.
type Dir = (String, u16, String, u16, u8);

/// What the capture holds, per direction: packets and IP bytes.
fn expected(frames: &[Vec<u8>]) -> BTreeMap<Dir, (u64, u64)> {
    let mut out: BTreeMap<Dir, (u64, u64)> = BTreeMap::new();
    for f in frames {
        let p = dataplane::packet::parse_ethernet(f).expect("the synthetic frames parse");
        let t = p.tuple;
        let (sp, dp) = match t.proto {
            proto::ICMP | proto::ICMPV6 => (0, 0),
            _ => (t.src_port, t.dst_port),
        };
        let d = (
            t.src_ip().to_string(),
            sp,
            t.dst_ip().to_string(),
            dp,
            t.proto,
        );
        let e = out.entry(d).or_default();
        e.0 += 1;
        e.1 += u64::from(p.ip_len);
    }
    out
}

fn as_u64(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What nfdump read back, per direction.
fn received(rows: &[serde_json::Value]) -> BTreeMap<Dir, (u64, u64)> {
    let mut out: BTreeMap<Dir, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let p = as_u64(&r["proto"]) as u8;
        let (sp, dp) = match p {
            proto::ICMP | proto::ICMPV6 => (0, 0),
            _ => (as_u64(&r["src_port"]) as u16, as_u64(&r["dst_port"]) as u16),
        };
        let addr = |k4: &str, k6: &str| {
            r.get(k4)
                .or_else(|| r.get(k6))
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("no address in {r}"))
                .to_string()
        };
        let d = (
            addr("src4_addr", "src6_addr"),
            sp,
            addr("dst4_addr", "dst6_addr"),
            dp,
            p,
        );
        let e = out.entry(d).or_default();
        e.0 += as_u64(&r["in_packets"]);
        e.1 += as_u64(&r["in_bytes"]);
    }
    out
}

/// Sends the capture's connections through `ctrack run` to nfcapd. With
/// `expire`, the connections time out (1 s) while the run lasts (3 s), so
/// their records go when they are destroyed; otherwise they are still live
/// when the run stops and go then: either way each direction once. With
/// `script`, the settings come from a `--rules` script instead of
/// `ctrack.toml`, exporting only `interfaces=ether1` (where every packet
/// enters).
fn export_through_nfcapd(version: &str, expire: bool, script: bool) {
    if !have("nfcapd") || !have("nfdump") {
        eprintln!(
            "skipped: nfcapd/nfdump not installed (scripts/deps.sh extras: apt-get install nfdump)"
        );
        return;
    }
    let dir = scratch_dir(&format!("flow-export-{version}-{expire}-{script}"));
    let mix = Mix {
        tcp: 12,
        udp: 8,
        icmp: 3,
        exchanges: 4,
        payload: 200,
        keep_open: false,
        ..Mix::default()
    };
    // Every packet enters port 0, in the capture's order: the tracker sees
    // each connection as it happened (two ports replayed side by side would
    // reorder a handshake, and the table would count fewer packets).
    let packets = mix.packets();
    let frames: Vec<(u64, Vec<u8>)> = packets
        .iter()
        .map(|p| (p.ts_nanos, p.frame.clone()))
        .collect();
    assert!(packets.iter().any(|p| p.side == Side::Reply));
    write_pcap(&dir.join("in0.pcap"), &frames);
    write_pcap(&dir.join("in1.pcap"), &[]);
    let all: Vec<Vec<u8>> = frames.into_iter().map(|(_, f)| f).collect();
    let want = expected(&all);
    assert_eq!(want.len(), 2 * (12 + 8 + 3), "every connection has replies");

    let collector = Nfcapd::start(&dir.join("nfcapd"));
    let (file, text) = if script {
        (
            dir.join("rules.rsc"),
            format!(
                "/ip traffic-flow\nset enabled=yes interfaces=ether1\n\
                 /ip traffic-flow target\nadd dst-address=127.0.0.1 port={} version={version}\n",
                collector.port
            ),
        )
    } else {
        (
            dir.join("ctrack.toml"),
            format!(
                "[traffic-flow]\nenabled = \"yes\"\n\n[[traffic-flow.target]]\n\
                 dst-address = \"127.0.0.1\"\nport = {}\nversion = \"{version}\"\n",
                collector.port
            ),
        )
    };
    std::fs::write(&file, text).unwrap();
    let mut args: Vec<String> = vec![
        "run".into(),
        if script { "--rules" } else { "--config" }.into(),
        file.display().to_string(),
        "--workers".into(),
        "2".into(),
    ];
    if expire {
        for set in [
            "udp-timeout=1s",
            "udp-stream-timeout=1s",
            "icmp-timeout=1s",
            "tcp-time-wait-timeout=1s",
            "tcp-close-timeout=1s",
        ] {
            args.extend(["--set".into(), set.into()]);
        }
        args.extend(["--duration".into(), "3s".into()]);
    } else {
        args.extend(["--idle-exit".into(), "300ms".into()]);
    }
    args.extend(ephemeral_servers());
    args.push("--".into());
    args.extend(eal_base());
    args.extend(pcap_pair_ports(&dir));
    let out = ctrack(&args);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("exporting flows to 127.0.0.1:{}", collector.port)),
        "{}",
        show(&out)
    );
    let rows = collector.finish();
    let got = received(&rows);
    // Exactly the connections the traffic made, each direction once.
    assert_eq!(rows.len(), want.len(), "records: {rows:#?}");
    assert_eq!(got, want);
    // First and last packet times: in order, and stamped (Unix time, not
    // the workers' clocks).
    for r in &rows {
        let (first, last) = (r["first"].as_str().unwrap(), r["last"].as_str().unwrap());
        assert!(first <= last && first > "2020", "{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn netflow_v9_to_nfcapd_shows_exactly_the_connections() {
    export_through_nfcapd("9", false, false);
}

#[test]
fn ipfix_to_nfcapd_shows_exactly_the_connections() {
    export_through_nfcapd("ipfix", false, false);
}

#[test]
fn expired_connections_are_exported_once_each() {
    export_through_nfcapd("ipfix", true, false);
}

#[test]
fn a_rules_script_configures_the_export_of_its_interfaces() {
    export_through_nfcapd("ipfix", false, true);
}

/// Export switched on through the CLI while `ctrack run` runs (nothing
/// configured at start): the target added and `enabled=yes` set live reach
/// the exporter without a restart, and when the run stops every live
/// connection goes to nfcapd (forced end) with its whole counters.
#[test]
fn export_switched_on_live_through_the_cli_reaches_nfcapd() {
    if !have("nfcapd") || !have("nfdump") {
        eprintln!(
            "skipped: nfcapd/nfdump not installed (scripts/deps.sh extras: apt-get install nfdump)"
        );
        return;
    }
    let dir = scratch_dir("flow-export-live");
    let mix = Mix {
        tcp: 6,
        udp: 4,
        icmp: 2,
        exchanges: 3,
        payload: 100,
        keep_open: false,
        ..Mix::default()
    };
    let sent = ctrack_tests::one_port_capture(&dir, &mix);
    let want = expected(&ctrack_tests::read_pcap(&dir.join("in.pcap")));
    let collector = Nfcapd::start(&dir.join("nfcapd"));
    // Long timeouts: every connection still lives when the run stops.
    let mut extra = Vec::new();
    for t in [
        "udp-timeout",
        "udp-stream-timeout",
        "icmp-timeout",
        "tcp-fin-wait-timeout",
        "tcp-close-wait-timeout",
        "tcp-last-ack-timeout",
        "tcp-time-wait-timeout",
        "tcp-close-timeout",
    ] {
        extra.push("--set".to_string());
        extra.push(format!("{t}=1h"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run =
        ctrack_tests::Running::start(&ctrack_tests::one_port_run_args(&dir, 2, false, &extra));
    ctrack_tests::wait_all_tracked(&run, sent);
    let ip = |args: &[&str]| {
        let mut a: Vec<String> = vec!["ip".into(), "--api".into(), run.api.clone()];
        a.push("traffic-flow".into());
        a.extend(args.iter().map(|s| s.to_string()));
        ctrack(&a)
    };
    let port = format!("port={}", collector.port);
    let out = ip(&[
        "target",
        "add",
        "dst-address=127.0.0.1",
        &port,
        "version=ipfix",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "*1\n");
    // A bad value: refused, naming the field, nothing applied.
    let out = ip(&["set", "enabled=yes", "cache-entries=lots"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cache-entries"),
        "{}",
        show(&out)
    );
    let out = ip(&["print"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("enabled: no"),
        "{}",
        show(&out)
    );
    let out = ip(&["set", "enabled=yes"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = ip(&["target", "print"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!("*1   127.0.0.1    {}", collector.port)),
        "{table}"
    );
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
    let rows = collector.finish();
    assert_eq!(rows.len(), want.len(), "records: {rows:#?}");
    assert_eq!(received(&rows), want);
    let _ = std::fs::remove_dir_all(&dir);
}
