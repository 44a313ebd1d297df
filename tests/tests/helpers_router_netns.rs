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

use ctrack_tests::helper_servers::{FTP_SERVER, TFTP};
use ctrack_tests::netns::{Topology, skip_reason};
use ctrack_tests::{Running, scratch_dir, show};

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

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

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
            "FTP {what} through ctrack's masquerade:\n{}",
            show(&out)
        );
        assert_eq!(out.stdout.len(), 256 * 400, "FTP {what}: the whole file");
    }
    let _tftp_server = topo.spawn_ready(1, &["python3", &tftp, "server", B4, "30"], 20);
    let out = topo.exec(0, 20, &["python3", &tftp, "client", B4]);
    assert!(
        out.status.success(),
        "TFTP through ctrack's masquerade:\n{}",
        show(&out)
    );

    let table = run.table();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let of_type = |t: &str, expected: bool| -> Vec<&serde_json::Value> {
        table
            .iter()
            .filter(|r| field(r, "connection-type") == t && r["expected"] == expected)
            .collect()
    };
    let control = of_type("ftp", false);
    assert_eq!(control.len(), 4, "{table:#?}");
    assert!(
        control.iter().all(|r| r["srcnat"] == true
            && field(r, "reply-dst-address").starts_with(&format!("{PUB4}:"))),
        "the control connections are masqueraded: {control:#?}"
    );
    let data = of_type("ftp", true);
    // Passive: from the client, masqueraded; active: from the server to
    // the router's address, translated to the client.
    let passive = data
        .iter()
        .filter(|r| field(r, "src-address").starts_with(&format!("{A4}:")) && r["srcnat"] == true)
        .count();
    let active = data
        .iter()
        .filter(|r| {
            field(r, "src-address").starts_with(&format!("{B4}:"))
                && field(r, "dst-address").starts_with(&format!("{PUB4}:"))
                && field(r, "reply-src-address").starts_with(&format!("{A4}:"))
                && r["dstnat"] == true
        })
        .count();
    assert_eq!((passive, active), (2, 2), "{data:#?}");
    let tftp_data = of_type("tftp", true);
    assert_eq!(tftp_data.len(), 1, "{table:#?}");
    assert!(
        field(tftp_data[0], "dst-address").starts_with(&format!("{PUB4}:"))
            && field(tftp_data[0], "reply-src-address").starts_with(&format!("{A4}:"))
            && tftp_data[0]["dstnat"] == true,
        "{tftp_data:#?}"
    );
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
