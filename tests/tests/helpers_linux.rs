//! FTP through NAT compared with Linux's `nf_nat_ftp`: the Linux reference
//! router (`ctrack_tests::linux_router`) with nftables masquerade out of
//! the server side and the `ftp` conntrack helper assigned with a `ct
//! helper` object (tcp dport 21), carrying real curl transfers from the
//! client (EPSV, PASV, EPRT, PORT) to a small Python FTP server. The client
//! uses an address whose text is longer than the router's (10.78.1.203 vs
//! 10.78.2.1), so Linux rewrites `PORT`/`EPRT` 2 bytes shorter and adjusts
//! the sequence numbers after it. Then the frames the router received on
//! each side go through `ctrack replay --in ether1=... --in ether2=...
//! --rules R.rsc --out-dir DIR` (one worker): each side gets the same IP
//! packets from both (Ethernet header, TTL and IPv4 header checksum
//! aside, as in `nat_linux.rs`): the same rewritten text, the same
//! sequence and acknowledgement numbers, the same translated data
//! connections. Likewise a TFTP read through masquerade with the `tftp`
//! helper (`nf_nat_tftp`): the server's answer from its own port reaches
//! the client, translated as Linux translates it.
//!
//! Needs root, iproute2, nftables, tcpdump, ethtool, curl and python3;
//! without them it says why and passes.

use ctrack_tests::helper_servers::{PPTP_CALLS, TFTP};
use ctrack_tests::linux_router::{
    CLIENT4, CLIENT4_2, LinuxRouter, Ns, ROUTER_S4, SERVER4, Side, replay_as_linux, skip_reason,
};
use ctrack_tests::{have, scratch_dir, show};

/// The client's address used here: its text is 2 longer than the router's.
const CLIENT_LONG: &str = "10.78.1.203";

/// `{rs}`: the router's server-side interface.
const NFT: &str = "
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{rs}\" masquerade
    }
}
table ip helpers {
    ct helper ftp-standard {
        type \"ftp\" protocol tcp;
    }
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        tcp dport 21 ct helper set \"ftp-standard\"
    }
}
";

/// The same in RouterOS terms (the `ftp` service port is on by default).
const RSC: &str = "/ip address
add address=10.78.2.1/24 interface=ether2
/ip firewall nat
add chain=srcnat action=masquerade out-interface=ether2
";

/// The FTP server (as in `helpers_netns.rs`): the commands curl sends.
const FTP_SERVER: &str = r#"
import socket, sys, threading, time
host, port, life = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
DATA = bytes(range(256)) * 40
def handle(c):
    f = c.makefile('rb')
    def say(s): c.sendall((s + "\r\n").encode())
    say("220 ctrack test ftp")
    pasv = None; active = None
    while True:
        line = f.readline()
        if not line: break
        line = line.decode().strip()
        cmd, _, arg = line.partition(' ')
        cmd = cmd.upper()
        if cmd == 'USER': say('331 ok')
        elif cmd == 'PASS': say('230 logged in')
        elif cmd == 'PWD': say('257 "/"')
        elif cmd in ('CWD', 'TYPE', 'MODE', 'STRU'): say('200 ok')
        elif cmd == 'SIZE': say('213 %d' % len(DATA))
        elif cmd in ('EPSV', 'PASV'):
            pasv = socket.socket(); pasv.bind((host, 0)); pasv.listen(1)
            p = pasv.getsockname()[1]
            if cmd == 'EPSV': say('229 Entering Extended Passive Mode (|||%d|)' % p)
            else: say('227 Entering Passive Mode (%s,%d,%d).' % (host.replace('.', ','), p >> 8, p & 255))
        elif cmd == 'PORT':
            n = arg.split(','); active = ('.'.join(n[:4]), int(n[4]) * 256 + int(n[5])); say('200 ok')
        elif cmd == 'EPRT':
            d = arg[0]; parts = arg.split(d); active = (parts[2], int(parts[3])); say('200 ok')
        elif cmd == 'RETR':
            try:
                if pasv:
                    pasv.settimeout(10); d, _ = pasv.accept(); pasv.close(); pasv = None
                elif active:
                    d = socket.create_connection(active, timeout=10); active = None
                else:
                    say('425 no data connection'); continue
            except OSError:
                say('425 cannot open data connection'); continue
            say('150 sending')
            d.sendall(DATA); d.close(); say('226 done')
        elif cmd == 'QUIT': say('221 bye'); break
        else: say('502 not implemented')
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(8)
threading.Thread(target=lambda: [handle(s.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
print("ready", flush=True)
time.sleep(life)
"#;

/// `{rs}`: the router's server-side interface.
const NFT_TFTP: &str = "
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{rs}\" masquerade
    }
}
table ip helpers {
    ct helper tftp-standard {
        type \"tftp\" protocol udp;
    }
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        udp dport 69 ct helper set \"tftp-standard\"
    }
}
";

/// Whether any frame's TCP payload contains `text`.
fn carries(frames: &[Vec<u8>], text: &str) -> bool {
    frames
        .iter()
        .any(|f| f.windows(text.len()).any(|w| w == text.as_bytes()))
}

#[test]
fn ftp_through_masquerade_as_linux_rewrites_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if !have("curl") {
        eprintln!("skipped: curl missing");
        return;
    }
    let router = LinuxRouter::create();
    router
        .load_ruleset(&NFT.replace("{rs}", &router.dev[2]))
        .expect("nft accepts the ruleset");
    let add = router.exec(
        Ns::Client,
        10,
        &[
            "ip",
            "addr",
            "add",
            &format!("{CLIENT_LONG}/24"),
            "dev",
            &router.dev[0],
        ],
    );
    assert!(add.status.success(), "{}", show(&add));
    let dir = scratch_dir("helpers-linux");
    let server = dir.join("ftp.py");
    std::fs::write(&server, FTP_SERVER).unwrap();
    let server = server.display().to_string();
    let _server = router.spawn_ready(Ns::Server, &["python3", &server, SERVER4, "21", "120"], 20);
    let url = format!("ftp://{SERVER4}/file");
    let modes: [(&str, &[&str]); 4] = [
        ("EPSV", &[]),
        ("PASV", &["--disable-epsv"]),
        ("EPRT", &["-P", CLIENT_LONG]),
        ("PORT", &["-P", CLIENT_LONG, "--disable-eprt"]),
    ];
    let (caps, outs) = router.capture(&dir, |r| {
        modes
            .iter()
            .map(|(what, extra)| {
                let mut a = vec![
                    "curl",
                    "-sS",
                    "--max-time",
                    "20",
                    "--interface",
                    CLIENT_LONG,
                    "-o",
                    "-",
                ];
                a.extend_from_slice(extra);
                a.push(&url);
                (*what, r.exec(Ns::Client, 30, &a))
            })
            .collect::<Vec<_>>()
    });
    for (what, out) in &outs {
        assert!(
            out.status.success(),
            "FTP {what} through Linux:\n{}",
            show(out)
        );
        assert_eq!(out.stdout.len(), 256 * 40, "FTP {what}: the whole file");
    }
    // Linux rewrote the active commands to its own address.
    let linux_server_side = caps.emitted(Side::Server);
    let router_port = ROUTER_S4.replace('.', ",");
    assert!(
        carries(&linux_server_side, &format!("PORT {router_port},")),
        "Linux sent no rewritten PORT"
    );
    assert!(carries(
        &linux_server_side,
        &format!("EPRT |1|{ROUTER_S4}|")
    ));

    // The same received frames through ctrack.
    let (ours, flags) = replay_as_linux(&dir, &caps, RSC);
    assert!(carries(&ours[1], &format!("PORT {router_port},")));
    assert!(!carries(
        &ours[1],
        &format!("PORT {},", CLIENT_LONG.replace('.', ","))
    ));
    // The replay's table: four control connections, four expected data
    // connections (flag `E`).
    assert_eq!(flags.len(), 8, "{flags:?}");
    assert_eq!(
        flags.iter().filter(|f| f.contains('E')).count(),
        4,
        "{flags:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// TFTP through masquerade (Linux's `nf_nat_tftp`): the read request
/// masqueraded, the server's answer from its own port to the router's
/// address reaching the client; the frames ctrack emits per side are
/// Linux's.
#[test]
fn tftp_through_masquerade_as_linux_translates_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let router = LinuxRouter::create();
    router
        .load_ruleset(&NFT_TFTP.replace("{rs}", &router.dev[2]))
        .expect("nft accepts the ruleset");
    let dir = scratch_dir("helpers-linux-tftp");
    let script = dir.join("tftp.py");
    std::fs::write(&script, TFTP).unwrap();
    let script = script.display().to_string();
    let _server = router.spawn_ready(
        Ns::Server,
        &["python3", &script, "server", SERVER4, "30"],
        20,
    );
    let (caps, out) = router.capture(&dir, |r| {
        r.exec(Ns::Client, 20, &["python3", &script, "client", SERVER4])
    });
    assert!(out.status.success(), "TFTP through Linux:\n{}", show(&out));
    let (_, flags) = replay_as_linux(&dir, &caps, RSC);
    assert_eq!(
        flags.iter().filter(|f| f.contains('E')).count(),
        1,
        "the answer, expected: {flags:?}"
    );
    // The answers reached the client side: more than the request went
    // back and forth.
    assert!(caps.emitted(Side::Client).len() >= 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// PPTP through masquerade, `nf_nat_pptp` and the `pptp` helper assigned
/// with a `ct helper` object (tcp dport 1723).
const NFT_PPTP: &str = "
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{rs}\" masquerade
    }
}
table ip helpers {
    ct helper pptp-standard {
        type \"pptp\" protocol tcp;
    }
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        tcp dport 1723 ct helper set \"pptp-standard\"
    }
}
";

/// Two PNS on the client's two addresses, both with call id 0x1234, call a
/// PAC on the server through Linux's masquerade (the scripted RFC 2637
/// exchange of `pptp_netns`, with GRE version 1 both ways): Linux gives the
/// two calls different call ids (each its control connection's translated
/// source port, `nf_nat_pptp`'s choice) and translates the GRE key field
/// back. The frames Linux received, replayed through ctrack with
/// `masquerade` (the `pptp` service port is on by default): the same frames
/// out on each side, call ids and GRE included; two expected GRE
/// connections.
#[test]
fn pptp_through_masquerade_as_linux_translates_it() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let router = LinuxRouter::create();
    router
        .load_ruleset(&NFT_PPTP.replace("{rs}", &router.dev[2]))
        .expect("nft accepts the ruleset");
    let dir = scratch_dir("helpers-linux-pptp");
    let script = dir.join("pptp.py");
    std::fs::write(&script, PPTP_CALLS).unwrap();
    let script = script.display().to_string();
    let result = dir.join("pac-result");
    let result_arg = result.display().to_string();
    let _pac = router.spawn_ready(
        Ns::Server,
        &[
            "python3",
            &script,
            "pac",
            CLIENT4,
            SERVER4,
            ROUTER_S4,
            &result_arg,
        ],
        20,
    );
    let (caps, out) = router.capture(&dir, |r| {
        let out = r.exec(
            Ns::Client,
            40,
            &["python3", &script, "pns", SERVER4, CLIENT4, CLIENT4_2],
        );
        // The PAC writes its verdict once both PNS's GRE arrived (bounded:
        // its own receive times out).
        for _ in 0..200 {
            if result.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        out
    });
    assert!(out.status.success(), "PNS through Linux:\n{}", show(&out));
    let verdict = std::fs::read_to_string(&result).expect("the PAC's verdict");
    assert!(verdict.starts_with("pac ok"), "{verdict}");
    let (_, flags) = replay_as_linux(&dir, &caps, RSC);
    // Two control connections, two expected GRE connections.
    assert_eq!(flags.len(), 4, "{flags:?}");
    assert_eq!(
        flags.iter().filter(|f| f.contains('E')).count(),
        2,
        "{flags:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
