//! `/ip traffic-flow` and `/ip traffic-flow target` in `.rsc` scripts: read,
//! checked, and printed back by export.

use ctrack_rules::{export, parse};

const SCRIPT: &str = r#"
/ip traffic-flow
set active-flow-timeout=1m cache-entries=16k enabled=yes inactive-flow-timeout=10s
set nat-events=yes
/ip traffic-flow target
add dst-address=192.0.2.10 port=2055 version=9
add dst-address=2001:db8::10 port=4739 src-address=2001:db8::1 version=ipfix
"#;

#[test]
fn traffic_flow_menus_parse_and_export_round_trips() {
    let cfg = parse(SCRIPT).unwrap();
    assert_eq!(cfg.traffic_flow.get("enabled"), Some("yes"));
    assert_eq!(cfg.traffic_flow.get("cache-entries"), Some("16k"));
    assert_eq!(cfg.traffic_flow.get("nat-events"), Some("yes"));
    assert_eq!(cfg.traffic_flow.get("active-flow-timeout"), Some("1m"));
    assert_eq!(cfg.traffic_flow_targets.len(), 2);
    assert_eq!(cfg.traffic_flow_targets[1].get("version"), Some("ipfix"));
    assert_eq!(
        cfg.traffic_flow_targets[1].get("src-address"),
        Some("2001:db8::1")
    );
    let text = export(&cfg);
    assert!(text.contains("/ip traffic-flow\nset "), "{text}");
    assert!(text.contains("/ip traffic-flow target\nadd "), "{text}");
    assert_eq!(parse(&text).unwrap(), cfg, "{text}");
}

#[test]
fn bad_traffic_flow_values_name_the_word() {
    for (line, word) in [
        ("/ip traffic-flow set enabled=maybe", "enabled=maybe"),
        ("/ip traffic-flow set cache-entries=3k", "cache-entries=3k"),
        (
            "/ip traffic-flow set packet-sampling=yes",
            "packet-sampling",
        ),
        ("/ip traffic-flow add enabled=yes", "add"),
        ("/ip traffic-flow target add port=2055", "add"),
        (
            "/ip traffic-flow target add dst-address=10.0.0.1 version=5",
            "version=5",
        ),
        (
            "/ip traffic-flow target add dst-address=10.0.0.1 port=70000",
            "port=70000",
        ),
        (
            "/ip traffic-flow target add dst-address=host.example",
            "dst-address=host.example",
        ),
    ] {
        let e = parse(line).unwrap_err();
        assert!(e.to_string().contains(word), "{line}: {e}");
    }
}
