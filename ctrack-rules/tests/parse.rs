//! Parser and export tests: menus, errors naming their line, lenient mode,
//! and the export round trip.

use ctrack_rules::model::*;
use ctrack_rules::value::*;
use ctrack_rules::{Options, export, parse, parse_with};

fn err(text: &str) -> (usize, String, String) {
    let e = parse(text).unwrap_err();
    (e.line, e.word, e.reason)
}

#[test]
fn rule_properties_are_typed_and_sorted() {
    let c = parse(
        "/ip firewall filter\n\
         add chain=forward protocol=tcp dst-port=80,443 src-address=10.0.0.0/8 action=drop \\\n    comment=\"web from lan\" disabled=yes\n",
    )
    .unwrap();
    let r = &c.ip.filter[0];
    assert_eq!(r.chain, "forward");
    assert_eq!(r.action, Action::Drop);
    assert!(r.disabled);
    assert_eq!(r.comment.as_deref(), Some("web from lan"));
    let keys: Vec<&str> = r.matchers.iter().map(|m| m.key()).collect();
    assert_eq!(keys, ["dst-port", "protocol", "src-address"]);
    assert_eq!(
        r.matcher("dst-port"),
        Some(&Matcher::DstPort(Neg {
            neg: false,
            v: Ports(vec![(80, 80), (443, 443)])
        }))
    );
}

#[test]
fn menu_and_command_on_one_line_and_slash_paths() {
    let c = parse("/ip firewall filter add chain=input action=accept\n/ip/firewall/nat add chain=srcnat action=masquerade\n").unwrap();
    assert_eq!(c.ip.filter.len(), 1);
    assert_eq!(c.ip.nat[0].action, Action::Masquerade);
}

#[test]
fn errors_name_line_and_word() {
    assert_eq!(err("/ip firewall filter\n\nadd chain=input bogus=1\n").0, 3);
    assert_eq!(
        err("/ip firewall filter\nadd chain=input bogus=1\n").1,
        "bogus"
    );
    let (l, w, _) = err("/ip firewall filterz\n");
    assert_eq!((l, w.as_str()), (1, "/ip firewall filterz"));
    let (l, w, _) = err("/ip firewall filter\nadd chain=input action=explode\n");
    assert_eq!((l, w.as_str()), (2, "action=explode"));
    let (l, w, _) =
        err("/ip firewall filter\nadd chain=input\nadd chain=input src-address=300.1.1.1\n");
    assert_eq!((l, w.as_str()), (3, "src-address=300.1.1.1"));
    let (_, w, _) = err("/ip firewall filter\nremove 0\n");
    assert_eq!(w, "remove");
    let (_, w, r) = err("add chain=input\n");
    assert_eq!(w, "add");
    assert!(r.contains("outside of a menu"), "{r}");
    // Action parameters that the action does not use, or that it needs.
    assert_eq!(
        err("/ip firewall filter\nadd chain=input action=accept jump-target=x\n").1,
        "jump-target"
    );
    assert_eq!(
        err("/ip firewall filter\nadd chain=input action=jump\n").1,
        "jump-target"
    );
    // Table/action mismatch, family mismatch.
    assert_eq!(
        err("/ip firewall nat\nadd chain=srcnat action=drop\n").1,
        "action=drop"
    );
    assert_eq!(
        err("/ip firewall filter\nadd chain=input action=masquerade\n").1,
        "action=masquerade"
    );
    assert_eq!(
        err("/ipv6 firewall filter\nadd chain=input src-address=10.0.0.1\n").1,
        "src-address=10.0.0.1"
    );
    assert_eq!(
        err("/ipv6 firewall filter\nadd chain=input ttl=equal:1\n").1,
        "ttl"
    );
    assert_eq!(
        err("/ip firewall filter\nadd chain=input hop-limit=equal:1\n").1,
        "hop-limit"
    );
    // Missing chain, duplicates, bare words.
    assert!(
        err("/ip firewall filter\nadd action=drop\n")
            .2
            .contains("chain")
    );
    assert_eq!(err("/ip firewall filter\nadd chain=a chain=b\n").1, "chain");
    assert_eq!(err("/ip firewall filter\nadd chain=input drop\n").1, "drop");
    // Multi-line statement: the error names the line it starts on.
    assert_eq!(
        err("/ip firewall filter\nadd chain=input \\\n    action=dropp\n").0,
        2
    );
}

#[test]
fn nothing_is_half_applied() {
    // A strict parse returns no config at all when any line is bad.
    assert!(
        parse("/ip firewall filter\nadd chain=input action=drop\nadd chain=input x=y\n").is_err()
    );
}

#[test]
fn lenient_skips_lines_with_one_warning_each() {
    let text = "/interface bridge\nadd name=bridge\nadd name=br2\n\
                /ip firewall filter\nadd chain=input action=drop\nadd chain=input src-mac-address=00:00:00:00:00:01 action=drop\nadd chain=input action=accept\n";
    let p = parse_with(text, Options { lenient: true }).unwrap();
    assert_eq!(
        p.config.ip.filter.len(),
        2,
        "the rule with an unknown matcher is skipped whole"
    );
    let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, [1, 2, 3, 6]);
    assert_eq!(p.warnings[3].word, "src-mac-address");
    // Text that cannot be split into lines still fails.
    assert!(
        parse_with(
            "/ip firewall filter\nadd comment=\"x\n",
            Options { lenient: true }
        )
        .is_err()
    );
}

#[test]
fn plain_menus() {
    let c = parse(
        "/interface ethernet\nset [ find default-name=ether1 ] name=wan\n\
         /interface list\nadd name=WAN comment=defconf\nadd name=ALL include=WAN,LAN\n\
         /interface list member\nadd interface=wan list=WAN\n\
         /ip address\nadd address=192.168.88.1/24 interface=bridge network=192.168.88.0\n\
         /ipv6 address\nadd address=fd00::1/64 interface=bridge advertise=no\n\
         /ip arp\nadd address=192.168.88.2 interface=bridge mac-address=00:11:22:33:44:55\n\
         /ip firewall connection tracking\nset udp-timeout=30s enabled=yes\nset udp-timeout=10s\n\
         /ip firewall service-port\nset ftp disabled=yes\nset [ find name=sip ] ports=5060,5061\n\
         /ip firewall layer7-protocol\nadd name=http regexp=\"^(get|post) /\"\n\
         /ip firewall address-list\nadd address=10.0.0.0/8 list=lan timeout=1d\n",
    )
    .unwrap();
    assert_eq!(c.interface_names(&["ether1", "ether2"]), ["wan", "ether2"]);
    assert_eq!(c.interface_lists[1].include, ["WAN", "LAN"]);
    assert_eq!(c.interface_list_members[0].list, "WAN");
    assert_eq!(c.ip_addresses[0].get("network"), Some("192.168.88.0"));
    assert_eq!(c.ipv6_addresses[0].get("advertise"), Some("no"));
    assert_eq!(c.arp[0].get("mac-address"), Some("00:11:22:33:44:55"));
    assert_eq!(c.connection_tracking.get("udp-timeout"), Some("10s"));
    assert_eq!(c.connection_tracking.get("enabled"), Some("yes"));
    assert_eq!(c.service_ports[0].disabled, Some(true));
    assert_eq!(
        c.service_ports[1].ports,
        Some(Ports(vec![(5060, 5060), (5061, 5061)]))
    );
    assert_eq!(c.layer7[0].regexp, "^(get|post) /");
    assert_eq!(
        c.ip.address_list[0].timeout,
        Some(ctrack_core::conntrack::Duration::from_secs(86400))
    );
    // They export and read back to the same model.
    let text = export(&c);
    assert_eq!(
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")),
        c,
        "{text}"
    );
    assert!(
        text.contains("/interface ethernet\nset [ find default-name=ether1 ] name=wan\n"),
        "{text}"
    );
    assert!(
        text.contains("/ip firewall service-port\nset ftp disabled=yes\nset sip ports=5060,5061\n"),
        "{text}"
    );
    // Value checks in plain menus.
    assert_eq!(
        err("/ip arp\nadd address=1.2.3.4 interface=x mac-address=zz\n").1,
        "mac-address=zz"
    );
    assert_eq!(
        err("/ip firewall connection tracking\nset udp-timeout=soon\n").1,
        "udp-timeout=soon"
    );
    assert_eq!(
        err("/ip firewall service-port\nset gopher disabled=yes\n").1,
        "gopher"
    );
    assert_eq!(
        err("/interface ethernet\nset [ find default-name=ether1 ] speed=1G\n").1,
        "speed"
    );
}

const EVERYTHING: &str = r#"/ip firewall filter
add action=jump chain=forward jump-target=mine
add action=accept chain=mine connection-state=established,related protocol=tcp tcp-flags=syn,!ack
add action=reject chain=mine dst-port=!22,8000-8080 protocol=tcp reject-with=tcp-reset
add action=drop chain=mine connection-bytes=1000-0 connection-rate=0-1M log=yes log-prefix="big: "
add action=add-src-to-address-list address-list=scanners address-list-timeout=1h chain=input connection-limit=10,32
add action=tarpit chain=input icmp-options=8:0 packet-size=!0-100 protocol=icmp ttl=less-than:5
add action=fasttrack-connection chain=forward connection-state=established hw-offload=yes
add action=accept chain=input dscp=!46 in-interface=!ether1 limit=50/5s,2:packet src-address=10.0.0.1-10.0.0.9
add action=return chain=mine connection-mark=no-mark packet-mark=!web layer7-protocol=http connection-type=ftp
add action=passthrough chain=input connection-nat-state=!dstnat ipsec-policy=in,none port=53 src-address-list=!ok
add action=log chain=output disabled=yes dst-address-list=bad out-interface-list=WAN comment="a \"quoted\" comment"
/ip firewall mangle
add action=mark-connection chain=prerouting new-connection-mark=web passthrough=no in-interface-list=LAN
add action=mark-packet chain=forward new-packet-mark=web connection-mark=web
/ip firewall nat
add action=dst-nat chain=dstnat dst-port=80 protocol=tcp to-addresses=192.168.1.10 to-ports=8080
add action=src-nat chain=srcnat to-addresses=1.2.3.0/24 to-ports=1024-2047
add action=redirect chain=dstnat to-ports=3128 out-interface=x
add action=netmap chain=dstnat to-addresses=10.1.0.0/16
add action=same chain=srcnat to-addresses=1.1.1.1-1.1.1.9
/ipv6 firewall filter
add action=drop chain=forward hop-limit=equal:1 protocol=icmpv6 src-address=fe80::/10
add action=reject chain=input reject-with=icmp-no-route
/ipv6 firewall nat
add action=masquerade chain=srcnat out-interface-list=WAN
/ipv6 firewall address-list
add address=::1/128 list=bad_ipv6 comment="lo"
/ip firewall layer7-protocol
add name=http regexp="^(get|post) /"
"#;

#[test]
fn export_round_trips() {
    let c = parse(EVERYTHING).unwrap();
    let text = export(&c);
    let again = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c, "{text}");
    // And printing is stable.
    assert_eq!(export(&again), text);
    assert!(text.contains("add action=reject chain=mine dst-port=!22,8000-8080 protocol=tcp reject-with=tcp-reset\n"), "{text}");
    assert!(
        text.contains("comment=\"a \\\"quoted\\\" comment\""),
        "{text}"
    );
    assert!(text.contains("connection-mark=no-mark"), "{text}");
}

#[test]
fn parse_normalises_what_export_prints() {
    let c = parse(
        "/ip firewall filter\nadd chain=input protocol=6 src-address=10.1.2.3/8 passthrough=yes action=mark-packet new-packet-mark=x\n",
    );
    // mark-packet is a mangle action: a filter rule with it is an error.
    assert!(c.is_err());
    let c = parse("/ip firewall mangle\nadd chain=input protocol=6 src-address=10.1.2.3/8 passthrough=yes action=mark-packet new-packet-mark=x\n").unwrap();
    let text = export(&c);
    assert!(text.contains("protocol=tcp"), "{text}");
    assert!(text.contains("src-address=10.0.0.0/8"), "{text}");
    assert_eq!(parse(&text).unwrap(), c);
}

/// Router mode's menus: static routes of both families and IPv6 neighbours,
/// exported and read back; bad values name their line and word.
#[test]
fn routes_and_neighbors() {
    let c = parse(
        "/ip route\nadd dst-address=10.0.0.0/8 gateway=192.168.88.254 distance=2\n\
         add gateway=203.0.113.1 disabled=yes comment=\"default\"\n\
         /ipv6 route\nadd dst-address=::/0 gateway=fd00::fe\n\
         /ipv6 neighbor\nadd address=fd00::9 interface=ether2 mac-address=02:00:00:00:00:09\n",
    )
    .unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].get("dst-address"), Some("10.0.0.0/8"));
    assert_eq!(c.routes[0].get("distance"), Some("2"));
    assert_eq!(c.routes[1].get("dst-address"), None, "0.0.0.0/0 by default");
    assert_eq!(c.ipv6_routes[0].get("gateway"), Some("fd00::fe"));
    assert_eq!(
        c.ipv6_neighbors[0].get("mac-address"),
        Some("02:00:00:00:00:09")
    );
    let text = export(&c);
    assert_eq!(
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")),
        c,
        "{text}"
    );
    assert!(text.contains("/ip route\nadd "), "{text}");
    let (line, word, _) = err("/ip route\nadd dst-address=10.0.0.0/8 gateway=ether1\n");
    assert_eq!((line, word.as_str()), (2, "gateway=ether1"));
    assert_eq!(
        err("/ip route\nadd gateway=10.0.0.1 distance=0\n").1,
        "distance=0"
    );
    assert_eq!(
        err("/ip route\nadd gateway=10.0.0.1 routing-table=main\n").1,
        "routing-table"
    );
    assert_eq!(
        err("/ipv6 route\nadd dst-address=::/0 gateway=10.0.0.1\n").1,
        "gateway=10.0.0.1"
    );
    assert_eq!(
        err("/ipv6 neighbor\nadd address=fd00::9 interface=ether2\n").1,
        "add"
    );
}
