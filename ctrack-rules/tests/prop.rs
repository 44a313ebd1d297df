//! Property tests: arbitrary text never panics the parser, and export ->
//! parse gives back the same model for generated rules.

use ctrack_rules::{Options, export, parse, parse_with};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
        let _ = parse_with(&text, Options { lenient: true });
    }

    #[test]
    fn script_like_text_never_panics(
        lines in prop::collection::vec(
            prop::sample::select(vec![
                "/ip firewall filter", "/ipv6 firewall nat", "add", "set", "[ find", "]", "chain=input",
                "action=jump", "jump-target=x", "\\\n", "\"", "\\\"", "=", "!", "src-address=",
                "dst-port=1-", "limit=1,", "connection-bytes=5-0", "# c", "\n", " ", "protocol=",
                "ttl=equal:", "tcp-flags=!", "/", "ip", "address=::/", "name=\"a b\"", "\\AB", "\\",
            ]),
            0..40,
        )
    ) {
        let text: String = lines.concat();
        let _ = parse(&text);
        let _ = parse_with(&text, Options { lenient: true });
    }

    #[test]
    fn generated_rules_round_trip(
        rules in prop::collection::vec(
            (
                prop::sample::select(vec!["input", "forward", "output", "mine"]),
                prop::sample::select(vec!["accept", "drop", "reject", "tarpit", "passthrough", "return", "log"]),
                prop::sample::subsequence(vec![
                    "protocol=tcp", "src-address=10.0.0.0/8", "dst-address=!192.168.0.1-192.168.0.9",
                    "dst-port=22,80-90", "src-port=!1024-65535", "in-interface=ether1",
                    "out-interface-list=!WAN", "src-address-list=a", "dst-address-list=!b",
                    "tcp-flags=fin,!syn", "packet-size=!10-20", "ttl=greater-than:3", "dscp=10",
                    "packet-mark=no-mark", "limit=10/1m,5:packet", "connection-state=!new,invalid",
                    "connection-nat-state=srcnat,dstnat", "connection-mark=x", "connection-type=sip",
                    "connection-bytes=0-500", "connection-rate=1k-0", "connection-limit=3,24",
                    "layer7-protocol=l7", "ipsec-policy=out,ipsec", "comment=\"x y\"", "disabled=yes",
                    "log=yes", "log-prefix=p",
                ], 0..8),
            ),
            0..10,
        )
    ) {
        let mut text = String::from("/ip firewall filter\n");
        for (chain, action, props) in &rules {
            text.push_str(&format!("add chain={chain} action={action} {}\n", props.join(" ")));
        }
        let c = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let out = export(&c);
        prop_assert_eq!(parse(&out).map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?, c);
    }
}
