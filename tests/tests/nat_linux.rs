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
    SERVER6, Side, replay_as_linux, skip_reason,
};
use ctrack_tests::scratch_dir;

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
    replay_as_linux(&dir, &caps, RSC);
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
