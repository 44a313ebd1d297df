//! Connection helpers end to end: real FTP transfers (curl, passive and
//! active, EPSV/PASV and EPRT/PORT) and a TFTP read through `ctrack run`
//! in bridge mode with 2 workers between two namespaces
//! (`ctrack_tests::netns::Topology`), IPv4 and IPv6, under a ruleset that
//! accepts only `connection-state=established,related`, new connections to
//! the FTP and TFTP ports, and ICMP (ICMPv6): a data connection passes only if ctrack's helper
//! made it `related`. The table then shows the data connections as
//! `expected` with `connection-type=ftp`/`tftp`, and a connection to a port
//! nobody announced is dropped.
//!
//! The servers are small Python scripts (no FTP or TFTP server package is
//! installed here; they speak the commands curl sends, RFC 959/2428 and
//! RFC 1350). Needs root, iproute2, curl and python3; without them it says
//! why and passes.

use ctrack_tests::helper_servers::{FTP_SERVER, TFTP};
use ctrack_tests::netns::{A4, B4, B6, Topology, skip_reason};
use ctrack_tests::{Running, have, scratch_dir, show};

/// An FTP client that only asks for a passive data connection and waits:
/// its expectation stays for the test to list.
const ANNOUNCE_ONLY: &str = r#"
import socket, sys, time
c = socket.create_connection((sys.argv[1], 21), timeout=10)
f = c.makefile('rb')
f.readline()
for cmd in (b'USER a', b'PASS b', b'PASV'):
    c.sendall(cmd + b'\r\n')
    line = f.readline().decode()
n = line[line.index('(') + 1:line.index(')')].split(',')
print('ready', int(n[4]) * 256 + int(n[5]), flush=True)
time.sleep(60)
"#;

const RULES: &str = "/ip firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=21\n\
add chain=forward action=accept connection-state=new protocol=udp dst-port=69\n\
add chain=forward action=accept protocol=icmp\n\
add chain=forward action=drop\n\
/ipv6 firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=21\n\
add chain=forward action=accept protocol=icmpv6\n\
add chain=forward action=drop\n";

#[test]
fn ftp_and_tftp_data_connections_pass_as_related() {
    if let Some(why) = skip_reason() {
        eprintln!("helpers test skipped: {why}");
        return;
    }
    if !have("curl") || !have("python3") {
        eprintln!("helpers test skipped: curl or python3 missing");
        return;
    }
    let topo = Topology::create();
    let dir = scratch_dir("helpers");
    let (ftp, tftp, rules) = (
        dir.join("ftp.py"),
        dir.join("tftp.py"),
        dir.join("rules.rsc"),
    );
    std::fs::write(&ftp, FTP_SERVER).unwrap();
    std::fs::write(&tftp, TFTP).unwrap();
    std::fs::write(&rules, RULES).unwrap();
    let (ftp, tftp) = (ftp.display().to_string(), tftp.display().to_string());
    let rules = rules.display().to_string();
    let run = Running::start(&topo.ctrack_run_args(&["--rules", &rules]));

    let _server = topo.spawn_ready(1, &["python3", &ftp, B4, "21", "120"], 20);
    let _server6 = topo.spawn_ready(1, &["python3", &ftp, B6, "21", "120"], 20);
    let url = format!("ftp://{B4}/file");
    let url6 = format!("ftp://[{B6}]/file");
    for (what, extra, url) in [
        ("EPSV", &[][..], &url),
        ("PASV", &["--disable-epsv"][..], &url),
        ("EPRT", &["-P", "-"][..], &url),
        ("PORT", &["-P", "-", "--disable-eprt"][..], &url),
        ("EPSV over IPv6", &["-g"][..], &url6),
        ("EPRT over IPv6", &["-g", "-P", "-"][..], &url6),
    ] {
        let mut args = vec!["curl", "-sS", "--max-time", "20", "-o", "-"];
        args.extend_from_slice(extra);
        args.push(url);
        let out = topo.exec(0, 30, &args);
        assert!(
            out.status.success(),
            "FTP {what} through ctrack:\n{}",
            show(&out)
        );
        assert_eq!(out.stdout.len(), 256 * 400, "FTP {what}: the whole file");
    }
    // A port nobody announced: the rules drop its SYN.
    let probe = format!(
        "import socket; s = socket.socket(); s.settimeout(2); s.connect(('{B4}', 2100)); print('connected')"
    );
    let out = topo.exec(0, 10, &["python3", "-c", &probe]);
    assert!(
        !out.status.success(),
        "an unannounced connection passed:\n{}",
        show(&out)
    );

    // TFTP: the server answers from another port.
    let _tftp_server = topo.spawn_ready(1, &["python3", &tftp, "server", B4, "30"], 20);
    let out = topo.exec(0, 20, &["python3", &tftp, "client", B4]);
    assert!(out.status.success(), "TFTP through ctrack:\n{}", show(&out));

    let table = run.table();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let ftp_data: Vec<_> = table
        .iter()
        .filter(|r| field(r, "connection-type") == "ftp" && r["expected"] == true)
        .collect();
    let ftp_control: Vec<_> = table
        .iter()
        .filter(|r| field(r, "connection-type") == "ftp" && r["expected"] == false)
        .collect();
    assert_eq!(
        ftp_control.len(),
        6,
        "the six control connections: {table:#?}"
    );
    let servers = [format!("{B4}:21"), format!("[{B6}]:21")];
    assert!(
        ftp_control
            .iter()
            .all(|r| servers.contains(&field(r, "dst-address"))),
        "{ftp_control:#?}"
    );
    assert_eq!(
        ftp_data.len(),
        6,
        "the six data connections, expected: {table:#?}"
    );
    // Three passive (client to server), three active (server to client).
    let active = ftp_data
        .iter()
        .filter(|r| {
            let src = field(r, "src-address");
            src.starts_with(&format!("{B4}:")) || src.starts_with(&format!("[{B6}]:"))
        })
        .count();
    assert_eq!(active, 3, "{ftp_data:#?}");
    let tftp_data = table
        .iter()
        .filter(|r| field(r, "connection-type") == "tftp" && r["expected"] == true)
        .count();
    assert_eq!(tftp_data, 1, "the TFTP answer, expected: {table:#?}");
    // Nothing waits any more (each was used once), and the metrics say so.
    let out = run.connection(&["expect", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let scrape = run.scrape();
    let used: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "ctrack_conntrack_expect_total" && s.labels.get("event") == Some("used")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(used, 7.0, "six FTP and one TFTP data connections");

    // An announced data connection nobody opened yet is listed.
    let probe = dir.join("announce.py");
    std::fs::write(&probe, ANNOUNCE_ONLY).unwrap();
    let probe = probe.display().to_string();
    let _waiting = topo.spawn_ready(0, &["python3", &probe, B4], 20);
    let out = run.connection(&["expect", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["protocol"], "tcp");
    assert_eq!(rows[0]["helper"], "ftp");
    assert_eq!(rows[0]["src-address"], format!("{A4}:*"));
    assert!(
        field(&rows[0], "dst-address").starts_with(&format!("{B4}:")),
        "{rows:?}"
    );
    let table = run.connection(&["expect"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("ftp"),
        "{}",
        show(&table)
    );
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
