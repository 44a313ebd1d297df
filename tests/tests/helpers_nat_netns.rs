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

use ctrack_tests::helper_servers::{
    FTP_SERVER, TFTP, assert_helpers_translated, ftp_and_tftp_transfers,
};
use ctrack_tests::netns::{A4, B4, Topology, skip_reason};
use ctrack_tests::{Running, have, scratch_dir, show};

const PUBLIC: &str = "10.77.0.100";

const RULES: &str = "/ip firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=21\n\
add chain=forward action=accept connection-state=new protocol=udp dst-port=69\n\
add chain=forward action=drop\n\
/ip firewall nat\n\
add chain=srcnat action=src-nat to-addresses=10.77.0.100 out-interface=ether2\n";

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
    let tftp = dir.join("tftp.py");
    std::fs::write(&tftp, TFTP).unwrap();
    let tftp = tftp.display().to_string();
    ftp_and_tftp_transfers(&topo, &run, B4, &tftp, "ctrack's src-nat");
    assert_helpers_translated(&run.table(), A4, B4, PUBLIC);
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
