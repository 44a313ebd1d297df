//! The Linux reference router (`ctrack_tests::linux_router`) with a small
//! ruleset: established connections are accepted, new TCP connections to
//! port 81 are rejected with a TCP reset, to port 82 with ICMP / ICMPv6
//! admin-prohibited, UDP to port 83 with port unreachable, and data to port
//! 84 (once the connection is established) with a TCP reset. The client's
//! connections to port 80 (IPv4 and IPv6) get through and echo; those to 81
//! are refused, those to 82 unreachable, its 1400-byte datagrams to 83
//! refused, its connections to 84 reset. The client-side capture holds the reset and the errors the
//! router sent, and ctrack's builders (`ctrack_core::packet::respond`) make
//! the same frames from the same received packets: the reset byte for byte,
//! the errors but for the IPv4 ID and IPv6 flow label Linux chooses.
//!
//! Needs root, iproute2, nftables, tcpdump, ethtool and python3; without
//! them it says why and passes.

use ctrack_tests::linux_router::{
    CLIENT_PY, CLIENT4, CLIENT4_2, CLIENT6, CLIENT6_2, Captures, ECHO_SERVER_PY, LinuxRouter, MAC,
    Ns, ROUTER_C4, ROUTER_C6, SERVER4, SERVER6, Side, skip_reason,
};
use ctrack_tests::scratch_dir;
use dataplane::conntrack::Instant;
use dataplane::flow::Addr;
use dataplane::flow::{L4, tcp_flags};
use dataplane::packet::parse_ethernet;
use dataplane::packet::respond::{IcmpCode, IcmpParams, Unreachable4, Unreachable6};
use dataplane::packet::respond::{IcmpRateLimiter, icmp_unreachable, tcp_reset};

const RULESET: &str = "
table inet filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp dport 84 tcp flags & psh == psh reject with tcp reset
        ct state established,related accept
        ct state new tcp dport 81 reject with tcp reset
        ct state new meta nfproto ipv4 tcp dport 82 reject with icmp type admin-prohibited
        ct state new meta nfproto ipv6 tcp dport 82 reject with icmpv6 type admin-prohibited
        meta nfproto ipv4 udp dport 83 reject with icmp type port-unreachable
        meta nfproto ipv6 udp dport 83 reject with icmpv6 type port-unreachable
        meta nfproto ipv4 udp dport 85 reject with icmp type port-unreachable
        meta nfproto ipv6 udp dport 85 reject with icmpv6 type port-unreachable
    }
}
";

#[test]
fn linux_rejects_as_ctrack_would() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let router = LinuxRouter::create();
    router
        .load_ruleset(RULESET)
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
            "81",
            "82",
            "84",
        ],
        10,
    );
    let dir = scratch_dir("linux-router");
    let specs = [
        // 10 datagrams at once get 6 errors (the per-destination burst).
        // From the client's second addresses: their own per-destination
        // buckets, which the other errors do not drain.
        format!("udpburst,{CLIENT4_2},{SERVER4},85,10"),
        format!("udpburst,{CLIENT6_2},{SERVER6},85,10"),
        format!("{SERVER4},80"),
        format!("{SERVER4},81"),
        // DSCP EF: the error's TOS is RT_TOS(0xb8) | 0xc0 = 0xd8.
        format!("{SERVER4},82,184"),
        // 1400 bytes: the errors quote what fits 576 / 1280 bytes.
        format!("udp,{SERVER4},83,1400"),
        format!("{SERVER4},84"),
        format!("{SERVER6},80"),
        format!("{SERVER6},81"),
        // Traffic class EF: the ICMPv6 error's is 0 all the same.
        format!("{SERVER6},82,184"),
        format!("udp,{SERVER6},83,1400"),
        format!("{SERVER6},84"),
    ];
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
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("udpburst,{CLIENT4_2},{SERVER4},85,10 sent"),
            format!("udpburst,{CLIENT6_2},{SERVER6},85,10 sent"),
            format!("{SERVER4},80 ok"),
            format!("{SERVER4},81 refused"),
            format!("{SERVER4},82,184 unreachable"),
            format!("udp,{SERVER4},83,1400 refused"),
            format!("{SERVER4},84 reset"),
            format!("{SERVER6},80 ok"),
            format!("{SERVER6},81 refused"),
            format!("{SERVER6},82,184 unreachable"),
            format!("udp,{SERVER6},83,1400 refused"),
            format!("{SERVER6},84 reset"),
        ],
        "client output"
    );

    // The client side carried, for each family, a SYN to port 81 and the
    // reset answering it, sent by the router from the server's address.
    for (client, server) in [(CLIENT4, SERVER4), (CLIENT6, SERVER6)] {
        let syn = syn_to(&caps, server, 81);
        let rst = caps
            .client_side
            .iter()
            .find(|f| {
                parse_ethernet(f).is_ok_and(|p| {
                    p.tuple.src_port == 81
                        && p.tuple.dst_ip().to_string() == client
                        && matches!(p.l4, L4::Tcp(t) if t.flags & tcp_flags::RST != 0)
                })
            })
            .unwrap_or_else(|| panic!("no reset to {client} in {}", caps.client_path.display()));
        assert_eq!(rst[..6], MAC[0], "to the client");
        assert_eq!(rst[6..12], MAC[1], "from the router");
        assert!(caps.emitted(Side::Client).contains(rst));
        assert!(caps.received(Side::Client).iter().any(|(_, f)| f == syn));
        let p = parse_ethernet(rst).unwrap();
        assert_eq!(p.tuple.src_ip().to_string(), server);
        // ctrack's builder, given the SYN, makes the same reset.
        let mut mine = [0u8; 128];
        let n = tcp_reset(syn, &mut mine).expect("ctrack answers the SYN");
        assert_eq!(&mine[..n], &rst[..], "ctrack's reset differs from Linux's");
        // No SYN to port 81 reached the server.
        assert!(
            !caps.server_side.iter().any(|f| parse_ethernet(f)
                .is_ok_and(|p| p.tuple.dst_port == 81 && p.tuple.dst_ip().to_string() == server)),
            "a SYN to port 81 was forwarded"
        );
    }
    // Port 80 went through: its SYNs are on the server side.
    assert!(
        caps.server_side
            .iter()
            .filter(|f| parse_ethernet(f).is_ok_and(|p| p.tuple.dst_port == 80))
            .count()
            >= 2
    );
    check_icmp(&caps);
    check_reset_of_data(&caps);
    check_rate_limit(&caps);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first SYN to `server`:`port` on the client side.
fn syn_to<'a>(caps: &'a Captures, server: &str, port: u16) -> &'a [u8] {
    caps.client_side
        .iter()
        .find(|f| {
            parse_ethernet(f).is_ok_and(|p| {
                p.tuple.dst_port == port
                    && p.tuple.dst_ip().to_string() == server
                    && matches!(p.l4, L4::Tcp(t) if t.flags & tcp_flags::SYN != 0)
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no SYN to {server}:{port} in {}",
                caps.client_path.display()
            )
        })
}

/// The ICMP errors Linux sent for the SYNs to port 82 and the datagrams to
/// port 83 are the ones ctrack's builder makes from the same packet, the
/// router's address and
/// `forwarded` (the quote's TTL is one less: Linux rejects in FORWARD,
/// after routing decremented it), but for the IPv4 ID (Linux picks one per destination; its header checksum
/// follows) and the IPv6 flow label (Linux may label automatically).
fn check_icmp(caps: &Captures) {
    let src = IcmpParams {
        v4: Some(ROUTER_C4.parse::<std::net::Ipv4Addr>().unwrap().octets()),
        v6: Some(ROUTER_C6.parse::<std::net::Ipv6Addr>().unwrap().octets()),
        ident: 0,
        forwarded: true,
    };
    for (server, port, code) in [
        (SERVER4, 82, IcmpCode::V4(Unreachable4::AdminProhibited)),
        (SERVER6, 82, IcmpCode::V6(Unreachable6::AdminProhibited)),
        (SERVER4, 83, IcmpCode::V4(Unreachable4::Port)),
        (SERVER6, 83, IcmpCode::V6(Unreachable6::Port)),
    ] {
        let to_port = |f: &&Vec<u8>, icmp: bool| {
            parse_ethernet(f).is_ok_and(|p| match p.l4 {
                L4::Icmp(i) if icmp => i
                    .inner
                    .is_some_and(|t| t.dst_port == port && t.dst_ip().to_string() == server),
                L4::Tcp(_) | L4::Udp if !icmp => {
                    p.tuple.dst_port == port
                        && p.tuple.dst_ip().to_string() == server
                        && !matches!(p.l4, L4::Tcp(t) if t.flags & tcp_flags::SYN == 0)
                }
                _ => false,
            })
        };
        let errors: Vec<_> = caps
            .client_side
            .iter()
            .filter(|f| to_port(f, true))
            .collect();
        let sent: Vec<_> = caps
            .client_side
            .iter()
            .filter(|f| to_port(f, false))
            .collect();
        assert!(!errors.is_empty(), "no ICMP error for {server}:{port}");
        // Each error Linux sent answers one of the packets (a SYN may be
        // sent again, with another flow label), as ctrack would answer it.
        for linux in errors {
            let theirs = masked(linux, server);
            if server.contains('.') && port == 82 {
                assert_eq!(linux[15], 0xd8, "TOS (0xb8 & 0x1e) | 0xc0");
            }
            if port == 83 {
                // The quotes fill the minimum datagram.
                assert_eq!(
                    linux.len(),
                    14 + if server.contains('.') { 576 } else { 1280 }
                );
            }
            let ours: Vec<Vec<u8>> = sent
                .iter()
                .map(|pkt| {
                    let mut out = vec![0u8; 1600];
                    let n = icmp_unreachable(pkt, code, &src, &mut out).expect("ctrack answers");
                    masked(&out[..n], server)
                })
                .collect();
            assert!(
                ours.contains(&theirs),
                "ctrack's ICMP error differs from Linux's:\n linux {theirs:?}\n ctrack {ours:?}"
            );
        }
    }
}

/// An ICMP error frame without the fields Linux sets its own way: the
/// IPv4 ID and so the header checksum, the IPv6 flow label.
fn masked(frame: &[u8], server: &str) -> Vec<u8> {
    let mut f = frame.to_vec();
    if server.contains('.') {
        for b in [18, 19, 24, 25] {
            f[b] = 0;
        }
    } else {
        f[15] &= 0xf0;
        f[16..18].fill(0);
    }
    f
}

/// The data segments to port 84 (PSH) were rejected in an established
/// connection: Linux's reset (sequence number = the segment's ACK, no ACK
/// flag) is ctrack's, byte for byte.
fn check_reset_of_data(caps: &Captures) {
    for server in [SERVER4, SERVER6] {
        let is = |f: &&Vec<u8>, dport: bool, flag: u8| {
            parse_ethernet(f).is_ok_and(|p| {
                let (port, addr) = if dport {
                    (p.tuple.dst_port, p.tuple.dst_ip())
                } else {
                    (p.tuple.src_port, p.tuple.src_ip())
                };
                port == 84
                    && addr.to_string() == server
                    && matches!(p.l4, L4::Tcp(t) if t.flags & flag != 0)
            })
        };
        let data: Vec<_> = caps
            .client_side
            .iter()
            .filter(|f| is(f, true, tcp_flags::PSH))
            .collect();
        let resets: Vec<_> = caps
            .client_side
            .iter()
            .filter(|f| is(f, false, tcp_flags::RST))
            .collect();
        assert!(!resets.is_empty(), "no reset from {server}:84");
        for linux in resets {
            let p = parse_ethernet(linux).unwrap();
            assert!(matches!(p.l4, L4::Tcp(t) if t.flags == tcp_flags::RST));
            let ours: Vec<Vec<u8>> = data
                .iter()
                .filter_map(|d| {
                    let mut out = [0u8; 128];
                    tcp_reset(d, &mut out).map(|n| out[..n].to_vec())
                })
                .collect();
            assert!(
                ours.contains(linux),
                "ctrack's reset differs from Linux's:\n linux {linux:?}\n ctrack {ours:?}"
            );
        }
    }
}

/// Ten datagrams to port 85 at once, per family: Linux sent 6 errors (its
/// per-destination burst, `XRLIM_BURST_FACTOR`), as ctrack's limiter allows.
fn check_rate_limit(caps: &Captures) {
    for server in [SERVER4, SERVER6] {
        let (sent, errors) =
            caps.client_side
                .iter()
                .fold((0, 0), |(s, e), f| match parse_ethernet(f) {
                    Ok(p) if p.tuple.dst_port == 85 && p.tuple.dst_ip().to_string() == server => {
                        (s + 1, e)
                    }
                    Ok(p)
                        if matches!(p.l4, L4::Icmp(i) if i.inner.is_some_and(|t| {
                            t.dst_port == 85 && t.dst_ip().to_string() == server
                        })) =>
                    {
                        (s, e + 1)
                    }
                    _ => (s, e),
                });
        assert_eq!(sent, 10, "datagrams to {server}:85");
        let mut ours = IcmpRateLimiter::linux_default();
        let client = if server.contains('.') {
            CLIENT4_2
        } else {
            CLIENT6_2
        };
        let client = Addr::from(client.parse::<std::net::IpAddr>().unwrap());
        let allowed = (0..sent)
            .filter(|_| ours.allow(client, Instant::from_secs(1)))
            .count();
        assert_eq!(errors, 6, "Linux's errors for 10 datagrams to {server}:85");
        assert_eq!(allowed, errors, "ctrack's limiter");
    }
}
