//! FTP through NAT end to end: `ctrack run --workers 2` in bridge mode
//! between two namespaces (`ctrack_tests::netns::Topology`) with `src-nat`
//! of side A's host to a public address on side B (10.77.0.100; side B's
//! host reaches it through a static neighbour entry to A's MAC, as it
//! would reach a router; `masquerade` needs `/ip address`, which makes
//! `ctrack run` a router), under a ruleset that
//! accepts only `established,related` and new connections to TCP 21 and
//! UDP 69.
//! curl in passive (EPSV, PASV) and active (EPRT, PORT) mode against a
//! small Python FTP server: the transfers complete, so the active commands
//! were rewritten to the public address (the server connects there) and
//! the data connections translated back to the client; the table shows
//! the data connections `expected`, `connection-type=ftp`, translated
//! (`srcnat` for the passive ones, `dstnat` for the active ones). A TFTP
//! read: the server's answer from its own port to the public address
//! reaches the client, as the expected `tftp` connection, translated.
//!
//! Needs root, iproute2, curl and python3; without them it says why and
//! passes.

use ctrack_tests::helper_servers::{FTP_SERVER, TFTP};
use ctrack_tests::netns::{A4, B4, Topology, skip_reason};
use ctrack_tests::{Running, scratch_dir, show};

const PUBLIC: &str = "10.77.0.100";

const RULES: &str = "/ip firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=21\n\
add chain=forward action=accept connection-state=new protocol=udp dst-port=69\n\
add chain=forward action=drop\n\
/ip firewall nat\n\
add chain=srcnat action=src-nat to-addresses=10.77.0.100 out-interface=ether2\n";

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn ftp_through_src_nat_with_two_workers() {
    if let Some(why) = skip_reason() {
        eprintln!("helpers NAT test skipped: {why}");
        return;
    }
    if !have("curl") || !have("python3") {
        eprintln!("helpers NAT test skipped: curl or python3 missing");
        return;
    }
    let topo = Topology::create();
    // B reaches the public address at A's MAC (through ctrack's bridge).
    let link = topo.exec(
        0,
        10,
        &["cat", &format!("/sys/class/net/{}/address", topo.inner[0])],
    );
    assert!(link.status.success(), "{}", show(&link));
    let mac = String::from_utf8_lossy(&link.stdout).trim().to_string();
    let neigh = topo.exec(
        1,
        10,
        &[
            "ip",
            "neigh",
            "replace",
            PUBLIC,
            "lladdr",
            &mac,
            "dev",
            &topo.inner[1],
            "nud",
            "permanent",
        ],
    );
    assert!(neigh.status.success(), "{}", show(&neigh));
    let dir = scratch_dir("helpers-nat");
    let (ftp, rules) = (dir.join("ftp.py"), dir.join("rules.rsc"));
    std::fs::write(&ftp, FTP_SERVER).unwrap();
    std::fs::write(&rules, RULES).unwrap();
    let ftp = ftp.display().to_string();
    let rules = rules.display().to_string();
    let run = Running::start(&topo.ctrack_run_args(&["--rules", &rules]));
    let _server = topo.spawn_ready(1, &["python3", &ftp, B4, "21", "120"], 20);
    let url = format!("ftp://{B4}/file");
    for (what, extra) in [
        ("EPSV", &[][..]),
        ("PASV", &["--disable-epsv"][..]),
        ("EPRT", &["-P", "-"][..]),
        ("PORT", &["-P", "-", "--disable-eprt"][..]),
    ] {
        let mut args = vec!["curl", "-sS", "--max-time", "20", "-o", "-"];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = topo.exec(0, 30, &args);
        if !out.status.success() {
            eprintln!("the table after FTP {what} failed: {:#?}", run.table());
        }
        assert!(
            out.status.success(),
            "FTP {what} through ctrack's src-nat:\n{}",
            show(&out)
        );
        assert_eq!(out.stdout.len(), 256 * 400, "FTP {what}: the whole file");
    }
    // TFTP: the server answers from another port, to the public address:
    // it reaches the client's own.
    let tftp = dir.join("tftp.py");
    std::fs::write(&tftp, TFTP).unwrap();
    let tftp = tftp.display().to_string();
    let _tftp_server = topo.spawn_ready(1, &["python3", &tftp, "server", B4, "30"], 20);
    let out = topo.exec(0, 20, &["python3", &tftp, "client", B4]);
    assert!(
        out.status.success(),
        "TFTP through ctrack's src-nat:\n{}",
        show(&out)
    );
    let table = run.table();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let control: Vec<_> = table
        .iter()
        .filter(|r| field(r, "connection-type") == "ftp" && r["expected"] == false)
        .collect();
    assert_eq!(control.len(), 4, "{table:#?}");
    assert!(
        control.iter().all(|r| r["srcnat"] == true
            && field(r, "reply-dst-address").starts_with(&format!("{PUBLIC}:"))),
        "the control connections are masqueraded: {control:#?}"
    );
    let data: Vec<_> = table
        .iter()
        .filter(|r| field(r, "connection-type") == "ftp" && r["expected"] == true)
        .collect();
    assert_eq!(
        data.len(),
        4,
        "the four data connections, expected: {table:#?}"
    );
    // Passive: from the client, masqueraded; active: from the server to
    // the public address, translated to the client.
    let passive = data
        .iter()
        .filter(|r| field(r, "src-address").starts_with(&format!("{A4}:")) && r["srcnat"] == true)
        .count();
    let active = data
        .iter()
        .filter(|r| {
            field(r, "src-address").starts_with(&format!("{B4}:"))
                && field(r, "dst-address").starts_with(&format!("{PUBLIC}:"))
                && field(r, "reply-src-address").starts_with(&format!("{A4}:"))
                && r["dstnat"] == true
        })
        .count();
    assert_eq!((passive, active), (2, 2), "{data:#?}");
    let tftp_data: Vec<_> = table
        .iter()
        .filter(|r| field(r, "connection-type") == "tftp" && r["expected"] == true)
        .collect();
    assert_eq!(tftp_data.len(), 1, "{table:#?}");
    assert!(
        field(tftp_data[0], "dst-address").starts_with(&format!("{PUBLIC}:"))
            && field(tftp_data[0], "reply-src-address").starts_with(&format!("{A4}:"))
            && tftp_data[0]["dstnat"] == true,
        "{tftp_data:#?}"
    );
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
