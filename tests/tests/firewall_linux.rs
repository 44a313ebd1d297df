//! The firewall compared with Linux's (issue #10): the Linux reference
//! router (`ctrack_tests::linux_router`) with an nftables filter ruleset —
//! established and related accepted; new TCP to port 81 rejected with a
//! TCP reset, to port 82 with ICMP / ICMPv6 admin-prohibited; UDP to port
//! 83 with port unreachable; TCP to port 86 dropped — carrying the client's
//! connections and datagrams (IPv4 and IPv6). Then the frames the router
//! received on each side go through `ctrack replay --in ether1=... --in
//! ether2=... --rules R.rsc --out-dir DIR` with the same ruleset in RouterOS
//! terms: each side gets the same IP packets from both (TTL / hop limit,
//! IPv4 header checksum, and in the ICMP errors the IPv4 ID and IPv6 flow
//! label that Linux picks at random aside), the resets and ICMP errors
//! ctrack generates included.
//!
//! Needs root, iproute2, nftables, tcpdump, ethtool and python3; without
//! them it says why and passes.

use ctrack_tests::linux_router::{
    CLIENT_PY, ECHO_SERVER_PY, LinuxRouter, Ns, SERVER4, SERVER6, Side, replay_as_linux,
    skip_reason,
};
use ctrack_tests::scratch_dir;

const NFT: &str = "
table inet filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        ct state new tcp dport 81 reject with tcp reset
        ct state new meta nfproto ipv4 tcp dport 82 reject with icmp type admin-prohibited
        ct state new meta nfproto ipv6 tcp dport 82 reject with icmpv6 type admin-prohibited
        meta nfproto ipv4 udp dport 83 reject with icmp type port-unreachable
        meta nfproto ipv6 udp dport 83 reject with icmpv6 type port-unreachable
        tcp dport 86 drop
    }
}
";

/// The same in RouterOS terms, with the router's addresses (an ICMP error
/// leaves from the address of the interface towards the client, as
/// Linux's).
const RSC: &str = "/ip address
add address=10.78.1.1/24 interface=ether1
add address=10.78.2.1/24 interface=ether2
/ipv6 address
add address=fd78:1::1/64 interface=ether1
add address=fd78:2::1/64 interface=ether2
/ip firewall filter
add chain=forward action=accept connection-state=established,related
add chain=forward action=reject connection-state=new protocol=tcp dst-port=81 \\
    reject-with=tcp-reset
add chain=forward action=reject connection-state=new protocol=tcp dst-port=82 \\
    reject-with=icmp-admin-prohibited
add chain=forward action=reject protocol=udp dst-port=83 reject-with=icmp-port-unreachable
add chain=forward action=drop protocol=tcp dst-port=86
/ipv6 firewall filter
add chain=forward action=accept connection-state=established,related
add chain=forward action=reject connection-state=new protocol=tcp dst-port=81 \\
    reject-with=tcp-reset
add chain=forward action=reject connection-state=new protocol=tcp dst-port=82 \\
    reject-with=icmp-admin-prohibited
add chain=forward action=reject protocol=udp dst-port=83 reject-with=icmp-port-unreachable
add chain=forward action=drop protocol=tcp dst-port=86
";

#[test]
fn the_firewall_answers_as_linux_does() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let router = LinuxRouter::create();
    router.load_ruleset(NFT).expect("nft accepts the ruleset");
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
            "81",
            "82",
            "86",
        ],
        10,
    );
    let dir = scratch_dir("firewall-linux");
    let specs: Vec<String> = [SERVER4, SERVER6]
        .iter()
        .flat_map(|s| {
            [
                format!("{s},80"),
                format!("{s},81"),
                format!("{s},82"),
                format!("udp,{s},83,100"),
                format!("{s},86"),
            ]
        })
        .collect();
    let (caps, out) = router.capture(&dir, |r| {
        let mut args = vec!["python3", "-u", "-c", CLIENT_PY];
        args.extend(specs.iter().map(String::as_str));
        r.exec(Ns::Client, 60, &args)
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = [SERVER4, SERVER6]
        .iter()
        .flat_map(|s| {
            [
                format!("{s},80 ok"),
                format!("{s},81 refused"),
                format!("{s},82 unreachable"),
                format!("udp,{s},83,100 refused"),
                format!("{s},86 timeout"),
            ]
        })
        .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "client output");
    let (ours, _) = replay_as_linux(&dir, &caps, RSC);
    // ctrack answered on the client side: the two resets, the four ICMP
    // errors, besides what it forwarded.
    assert!(ours[0].len() >= caps.emitted(Side::Client).len() / 2);
    let _ = std::fs::remove_dir_all(&dir);
}
