//! The PPTP helper end to end: a scripted RFC 2637 exchange over real
//! sockets (the kernel has no PPP, so no pptpd): a PNS in namespace A opens
//! the control connection to a PAC in namespace B (TCP 1723), sets up an
//! outgoing call, and the PAC then sends GRE version 1 packets carrying the
//! PNS's call id, which the PNS answers with the PAC's, through `ctrack
//! run` with 2 workers under a ruleset that accepts only
//! `established,related` and new connections to TCP 1723: the GRE passes
//! only as the call's expected connection. The table then shows it as
//! `expected`, `connection-type=pptp`.
//!
//! Then through source NAT (`src-nat` to one address, bridged): two PNS
//! (two addresses in A) with the same call id hold a call each to the one
//! PAC at the same time; the PAC sees two call ids (translated), each PNS
//! gets its own GRE back with its own call id, the PAC gets each PNS's GRE
//! with its call id of that call, and the table shows two GRE connections,
//! each the call's expected one, translated back to its PNS. Needs root,
//! iproute2 and python3.

use ctrack_tests::helper_servers::PPTP_CALLS;
use ctrack_tests::netns::{A4, B4, Topology, skip_reason};
use ctrack_tests::{Running, scratch_dir, show};

const PPTP: &str = r#"
import socket, struct, sys
role, me, peer = sys.argv[1], sys.argv[2], sys.argv[3]
SIZES = {1: 144, 2: 144, 5: 4, 7: 156, 8: 20}
def msg(t, body):
    body = body + b'\0' * (SIZES[t] - len(body))
    return struct.pack('!HHIHH', 12 + len(body), 1, 0x1A2B3C4D, t, 0) + body
def read(s):
    h = b''
    while len(h) < 12: h += s.recv(12 - len(h))
    n, _, cookie, t, _ = struct.unpack('!HHIHH', h)
    assert cookie == 0x1A2B3C4D
    b = b''
    while len(b) < n - 12: b += s.recv(n - 12 - len(b))
    return t, b
def gre(call, seq):
    payload = b'ppp-frame'
    return struct.pack('!HHHHI', 0x3001, 0x880b, len(payload), call, seq) + payload
def gre_recv(raw, src, want_call):
    raw.settimeout(10)
    while True:
        pkt, addr = raw.recvfrom(2048)
        if addr[0] != src: continue
        g = pkt[(pkt[0] & 15) * 4:]
        flags, proto, plen, call = struct.unpack('!HHHH', g[:8])
        if flags & 7 == 1 and call == want_call: return
PNS_CALL, PAC_CALL = 0x1234, 0xabcd
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
if role == 'pac':
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((me, 1723)); l.listen(1)
    print("ready", flush=True)
    l.settimeout(30)
    s, _ = l.accept()
    assert read(s)[0] == 1
    s.sendall(msg(2, struct.pack('!HBB', 0x0100, 1, 0)))
    t, b = read(s); assert t == 7
    pns = struct.unpack('!H', b[:2])[0]; assert pns == PNS_CALL
    s.sendall(msg(8, struct.pack('!HHBB', PAC_CALL, pns, 1, 0)))
    # The PNS says it saw the reply: the call is up on ctrack's side too.
    assert read(s)[0] == 5
    raw.sendto(gre(PNS_CALL, 1), (peer, 0))
    gre_recv(raw, peer, PAC_CALL)
    print("pac ok", flush=True)
else:
    s = socket.create_connection((peer, 1723), timeout=10)
    s.sendall(msg(1, struct.pack('!HBB', 0x0100, 0, 0)))
    assert read(s)[0] == 2
    s.sendall(msg(7, struct.pack('!HH', PNS_CALL, 1)))
    t, b = read(s); assert t == 8
    cid, pcid, result = struct.unpack('!HHB', b[:5])
    assert pcid == PNS_CALL and result == 1
    s.sendall(msg(5, b'\0\0\0\1'))
    gre_recv(raw, peer, PNS_CALL)
    raw.sendto(gre(cid, 1), (peer, 0))
    print("pns ok", flush=True)
"#;

const RULES: &str = "/ip firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=1723\n\
add chain=forward action=drop\n";

/// One test (the namespaces' names are the process's): the plain call,
/// then two calls through source NAT, each on a topology of its own.
#[test]
fn pptp_calls_plain_and_through_srcnat() {
    if let Some(why) = skip_reason() {
        eprintln!("pptp test skipped: {why}");
        return;
    }
    pptp_gre_passes_as_the_calls_expected_connection();
    two_pns_behind_one_srcnat_address_each_hold_a_call();
}

fn pptp_gre_passes_as_the_calls_expected_connection() {
    let topo = Topology::create();
    let dir = scratch_dir("pptp");
    let (script, rules) = (dir.join("pptp.py"), dir.join("rules.rsc"));
    std::fs::write(&script, PPTP).unwrap();
    std::fs::write(&rules, RULES).unwrap();
    let (script, rules) = (script.display().to_string(), rules.display().to_string());
    let run = Running::start(&topo.ctrack_run_args(&["--rules", &rules]));

    let _pac = topo.spawn_ready(1, &["python3", &script, "pac", B4, A4], 20);
    let out = topo.exec(0, 30, &["python3", &script, "pns", A4, B4]);
    assert!(out.status.success(), "PNS:\n{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pns ok"));

    // The PNS's answer (its last packet) may still be on its way through
    // ctrack: wait (bounded) until the GRE connection has seen it.
    let gre_replied = |r: &Running| {
        r.table()
            .iter()
            .any(|c| c["protocol"] == "gre" && c["seen-reply"] == true)
    };
    assert!(run.wait_until(50, gre_replied), "{:#?}", run.table());
    let table = run.table();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let control: Vec<_> = table
        .iter()
        .filter(|r| field(r, "protocol") == "tcp" && field(r, "connection-type") == "pptp")
        .collect();
    assert_eq!(control.len(), 1, "{table:#?}");
    assert_eq!(control[0]["expected"], false);
    let gre: Vec<_> = table
        .iter()
        .filter(|r| field(r, "protocol") == "gre")
        .collect();
    assert_eq!(gre.len(), 1, "{table:#?}");
    assert_eq!(gre[0]["expected"], true, "{gre:#?}");
    assert_eq!(field(gre[0], "connection-type"), "pptp");
    assert_eq!(
        gre[0]["seen-reply"], true,
        "the PNS's answer passed: {gre:#?}"
    );
    // The PAC sent first: the connection's originator is B.
    assert_eq!(field(gre[0], "src-address"), B4, "{gre:#?}");
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}

/// Namespace A's second address (the second PNS) and the source-NAT
/// address on ctrack's B side.
const A4_2: &str = "10.77.0.3";
const MASQ: &str = "10.77.0.100";

/// `src-nat` to one address (what `masquerade` does, without the `/ip
/// address` that would make ctrack a router: this topology is bridged).
const RULES_NAT: &str = "/ip firewall nat\n\
add chain=srcnat action=src-nat to-addresses=10.77.0.100 out-interface=ether2\n\
/ip firewall filter\n\
add chain=forward action=accept connection-state=established,related\n\
add chain=forward action=accept connection-state=new protocol=tcp dst-port=1723\n\
add chain=forward action=drop\n";

fn two_pns_behind_one_srcnat_address_each_hold_a_call() {
    let topo = Topology::create();
    // The second PNS's address, and the way from B to the source-NAT
    // address: A's MAC (ctrack bridges; nobody answers ARP for it).
    let must = |args: &[&str]| {
        let out = ctrack_tests::netns::run_bounded(10, args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        out
    };
    must(&[
        "ip",
        "-n",
        &topo.ns[0],
        "addr",
        "add",
        &format!("{A4_2}/24"),
        "dev",
        &topo.inner[0],
    ]);
    let link = must(&[
        "ip",
        "-n",
        &topo.ns[0],
        "-br",
        "link",
        "show",
        &topo.inner[0],
    ]);
    let mac = String::from_utf8_lossy(&link.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert_eq!(mac.len(), 17, "A's MAC from {}", show(&link));
    must(&[
        "ip",
        "-n",
        &topo.ns[1],
        "neigh",
        "add",
        MASQ,
        "lladdr",
        &mac,
        "dev",
        &topo.inner[1],
    ]);

    let dir = scratch_dir("pptp-nat");
    let (script, rules) = (dir.join("pptp_nat.py"), dir.join("rules.rsc"));
    std::fs::write(&script, PPTP_CALLS).unwrap();
    std::fs::write(&rules, RULES_NAT).unwrap();
    let (script, rules) = (script.display().to_string(), rules.display().to_string());
    let run = Running::start(&topo.ctrack_run_args(&["--rules", &rules]));

    let result = dir.join("pac-result");
    let _ = std::fs::remove_file(&result);
    let result_arg = result.display().to_string();
    let _pac = topo.spawn_ready(
        1,
        &["python3", &script, "pac", A4, B4, MASQ, &result_arg],
        20,
    );
    let out = topo.exec(0, 40, &["python3", &script, "pns", B4, A4, A4_2]);
    assert!(out.status.success(), "PNS:\n{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("pns 1 ok") && text.contains("pns 2 ok"),
        "{text}"
    );
    // The PNS's answers (their last packets) may still be on their way:
    // the PAC writes its verdict once it got both (bounded wait).
    assert!(run.wait_until(200, |_| result.exists()), "no PAC verdict");
    let verdict = std::fs::read_to_string(&result).unwrap();
    assert!(verdict.starts_with("pac ok"), "{verdict}");

    let table = run.table();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let control: Vec<_> = table
        .iter()
        .filter(|r| field(r, "protocol") == "tcp" && field(r, "connection-type") == "pptp")
        .collect();
    assert_eq!(control.len(), 2, "{table:#?}");
    let gre: Vec<_> = table
        .iter()
        .filter(|r| field(r, "protocol") == "gre")
        .collect();
    // Two calls between the same two addresses: two connections, each the
    // call's expected one, translated (the PAC sent first: destination NAT
    // back to each PNS).
    assert_eq!(gre.len(), 2, "{table:#?}");
    let mut to: Vec<String> = gre.iter().map(|g| field(g, "reply-src-address")).collect();
    to.sort();
    assert_eq!(to, vec![A4.to_string(), A4_2.to_string()], "{gre:#?}");
    for g in &gre {
        assert_eq!(g["expected"], true, "{g:#?}");
        assert_eq!(field(g, "connection-type"), "pptp");
        assert_eq!(field(g, "src-address"), B4, "{g:#?}");
        assert_eq!(field(g, "dst-address"), MASQ, "{g:#?}");
        assert_eq!(g["dstnat"], true, "{g:#?}");
    }
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
