//! NAT compared with Linux's: the Linux reference router
//! (`ctrack_tests::linux_router`) with nftables masquerade out of the
//! server side and a port forward (dnat) from the server side to the
//! client's echo server, for IPv4 and IPv6; then the frames it received
//! on each side through `ctrack replay --in ether1=client-side --in
//! ether2=server-side --rules R.rsc --out-dir DIR` (one worker). Each side
//! gets the same IP packets from both (Ethernet header, TTL / hop limit and
//! IPv4 header checksum aside; ARP, neighbour discovery and link-local
//! multicast aside): the
//! translated ports are Linux's (kept when free), an ICMP port unreachable
//! comes back translated as Linux translates it, and every checksum ctrack
//! emits is valid.
//!
//! Needs root, iproute2, nftables, tcpdump, ethtool and python3; without
//! them it says why and passes.

use ctrack_tests::linux_router::{
    CLIENT_PY, CLIENT4, CLIENT6, ECHO_SERVER_PY, LinuxRouter, Ns, ROUTER_S4, ROUTER_S6, SERVER4,
    SERVER6, Side, skip_reason,
};
use ctrack_tests::{ctrack, read_pcap, scratch_dir, show, write_pcap};
use dataplane::packet::checksum::{RxChecksum, verify_ethernet};

/// `{rs}`: the router's server-side interface.
const NFT: &str = "
table inet nat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname \"{rs}\" meta nfproto ipv4 tcp dport 8080 dnat ip to 10.78.1.2:80
        iifname \"{rs}\" meta nfproto ipv6 tcp dport 8080 dnat ip6 to [fd78:1::2]:80
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"{rs}\" masquerade
    }
}
";

/// The same in RouterOS terms: ether1 is the client side, ether2 the
/// server side with the router's addresses there.
const RSC: &str = "/ip address
add address=10.78.2.1/24 interface=ether2
/ipv6 address
add address=fd78:2::1/64 interface=ether2
/ip firewall nat
add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp dst-port=8080 \\
    to-addresses=10.78.1.2 to-ports=80
add chain=srcnat action=masquerade out-interface=ether2
/ipv6 firewall nat
add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp dst-port=8080 \\
    to-addresses=fd78:1::2 to-ports=80
add chain=srcnat action=masquerade out-interface=ether2
";

/// An IP frame's bytes from the IP header on, without the fields a
/// bridge and a router set differently: the TTL and header checksum
/// (IPv4), the hop limit (IPv6). `None` for ARP and neighbour discovery /
/// MLD.
fn comparable(f: &[u8]) -> Option<Vec<u8>> {
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let mut ip = f.get(14..)?.to_vec();
    match et {
        0x0800 => {
            ip[8] = 0;
            ip[10..12].fill(0);
        }
        0x86dd => {
            // Neighbour discovery, and anything to link-local multicast
            // (MLD reports behind a hop-by-hop header).
            if ip.get(6) == Some(&58) && ip.get(40).is_some_and(|t| (130..=143).contains(t))
                || ip.get(24..26) == Some(&[0xff, 0x02][..])
            {
                return None;
            }
            ip[7] = 0;
        }
        _ => return None,
    }
    Some(ip)
}

fn sorted(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut v: Vec<_> = frames.iter().filter_map(|f| comparable(f)).collect();
    v.sort();
    v
}

#[test]
fn nat_translates_as_linux_does() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let router = LinuxRouter::create();
    router
        .load_ruleset(&NFT.replace("{rs}", &router.dev[2]))
        .expect("nft accepts the ruleset");
    let _server = router.spawn_ready(
        Ns::Server,
        &[
            "python3",
            "-u",
            "-c",
            ECHO_SERVER_PY,
            SERVER4,
            SERVER6,
            "80",
        ],
        10,
    );
    let _inside = router.spawn_ready(
        Ns::Client,
        &[
            "python3",
            "-u",
            "-c",
            ECHO_SERVER_PY,
            CLIENT4,
            CLIENT6,
            "80",
        ],
        10,
    );
    let dir = scratch_dir("nat-linux");
    let out_specs = [
        format!("{SERVER4},80"),
        format!("{SERVER6},80"),
        // No UDP listener: the server's port unreachable comes back
        // through the NAT.
        format!("udp,{SERVER4},83,100"),
        format!("udp,{SERVER6},83,100"),
    ];
    let in_specs = [format!("{ROUTER_S4},8080"), format!("{ROUTER_S6},8080")];
    let (caps, (out, inb)) = router.capture(&dir, |r| {
        let mut a = vec!["python3", "-u", "-c", CLIENT_PY];
        a.extend(out_specs.iter().map(String::as_str));
        let out = r.exec(Ns::Client, 60, &a);
        let mut b = vec!["python3", "-u", "-c", CLIENT_PY];
        b.extend(in_specs.iter().map(String::as_str));
        (out, r.exec(Ns::Server, 60, &b))
    });
    let lines = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines(&out),
        [
            format!("{SERVER4},80 ok"),
            format!("{SERVER6},80 ok"),
            format!("udp,{SERVER4},83,100 refused"),
            format!("udp,{SERVER6},83,100 refused"),
        ],
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&inb),
        [
            format!("{ROUTER_S4},8080 ok"),
            format!("{ROUTER_S6},8080 ok"),
        ],
        "server: {}",
        String::from_utf8_lossy(&inb.stderr)
    );

    // The same received frames through ctrack.
    write_pcap(&dir.join("client.pcap"), &caps.received(Side::Client));
    write_pcap(&dir.join("server.pcap"), &caps.received(Side::Server));
    std::fs::write(dir.join("nat.rsc"), RSC).unwrap();
    let out_dir = dir.join("out");
    let run = ctrack(&[
        "replay".into(),
        "--in".into(),
        format!("ether1={}", dir.join("client.pcap").display()),
        "--in".into(),
        format!("ether2={}", dir.join("server.pcap").display()),
        "--rules".into(),
        dir.join("nat.rsc").display().to_string(),
        "--out-dir".into(),
        out_dir.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", show(&run));
    let ours = [
        read_pcap(&out_dir.join("ether1.pcap")),
        read_pcap(&out_dir.join("ether2.pcap")),
    ];
    for f in ours.iter().flatten() {
        verify_ethernet(f, RxChecksum::UNKNOWN)
            .unwrap_or_else(|e| panic!("ctrack emitted a bad checksum ({e:?}): {f:02x?}"));
    }
    for (side, mine) in [(Side::Client, &ours[0]), (Side::Server, &ours[1])] {
        let linux = sorted(&caps.emitted(side));
        let mine = sorted(mine);
        assert!(!linux.is_empty());
        let only = |a: &[Vec<u8>], b: &[Vec<u8>]| -> Vec<Vec<u8>> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        assert!(
            mine == linux,
            "{side:?} side: ctrack's frames differ from Linux's: {} and {} frames; \
             only ctrack's: {:?}\nonly Linux's: {:?}\n{}",
            mine.len(),
            linux.len(),
            only(&mine, &linux),
            only(&linux, &mine),
            show(&run)
        );
    }
    // The masqueraded connections left from the router's address.
    let masq = caps
        .emitted(Side::Server)
        .iter()
        .filter_map(|f| dataplane::packet::parse_ethernet(f).ok())
        .filter(|p| p.tuple.dst_port == 80)
        .count();
    assert!(masq > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
