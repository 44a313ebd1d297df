//! FTP and TFTP through masquerade, the common case (issue #12): `ctrack
//! run --workers 2` in router mode between two namespaces
//! (`ctrack_tests::netns::Topology`, renumbered as in `nat_router_netns`),
//! the inside host A masqueraded out of ether2 to the outside server B:
//!
//! ```text
//!  inside A 10.77.1.2/24 ── ether1 10.77.1.1 [ctrack] ether2 10.77.2.1 ── 10.77.2.2/24 outside B
//! ```
//!
//! The forward chain accepts only `established,related` and new
//! connections to TCP 21 and UDP 69. curl in passive (EPSV, PASV) and
//! active (EPRT, PORT) mode against a small Python FTP server, and a TFTP
//! read: the transfers complete (so the active commands carried the
//! router's address and the server's connections to it were translated to
//! the client), and the table shows the data connections `expected`,
//! `connection-type=ftp`/`tftp`, translated. Needs root, iproute2, curl
//! and python3; without them it says why and passes.

use ctrack_tests::helper_servers::{
    FTP_SERVER, TFTP, assert_helpers_translated, ftp_and_tftp_transfers,
};
use ctrack_tests::netns::{Topology, skip_reason};
use ctrack_tests::{Running, have, scratch_dir, show};

const A4: &str = "10.77.1.2";
const B4: &str = "10.77.2.2";
const PUB4: &str = "10.77.2.1";

const SCRIPT: &str = "\
/ip address
add address=10.77.1.1/24 interface=ether1
add address=10.77.2.1/24 interface=ether2
/ip firewall filter
add chain=forward action=accept connection-state=established,related
add chain=forward action=accept connection-state=new protocol=tcp dst-port=21
add chain=forward action=accept connection-state=new protocol=udp dst-port=69
add chain=forward action=drop
/ip firewall nat
add chain=srcnat action=masquerade out-interface=ether2
";

#[test]
fn ftp_and_tftp_through_masquerade_in_router_mode() {
    if let Some(why) = skip_reason() {
        eprintln!("helpers router test skipped: {why}");
        return;
    }
    if !have("curl") || !have("python3") {
        eprintln!("helpers router test skipped: curl or python3 missing");
        return;
    }
    let topo = Topology::create();
    topo.renumber(0, &[A4], "fd77:1::2", ("10.77.1.1", "fd77:1::1"));
    topo.renumber(1, &[B4], "fd77:2::2", (PUB4, "fd77:2::1"));
    let dir = scratch_dir("helpers-router");
    let (ftp, tftp, rules) = (
        dir.join("ftp.py"),
        dir.join("tftp.py"),
        dir.join("rules.rsc"),
    );
    std::fs::write(&ftp, FTP_SERVER).unwrap();
    std::fs::write(&tftp, TFTP).unwrap();
    std::fs::write(&rules, SCRIPT).unwrap();
    let (ftp, tftp) = (ftp.display().to_string(), tftp.display().to_string());
    let run = Running::start(&topo.ctrack_run_args(&["--rules", &rules.display().to_string()]));
    let _server = topo.spawn_ready(1, &["python3", &ftp, B4, "21", "120"], 20);
    ftp_and_tftp_transfers(&topo, &run, B4, &tftp, "ctrack's masquerade");
    assert_helpers_translated(&run.table(), A4, B4, PUB4);
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
