//! The firewall end to end: `ctrack run --rules FILE.rsc` over DPDK
//! `net_pcap` ports. A drop rule drops exactly the matching connections'
//! packets (in both directions), everything else is forwarded byte for
//! byte, and the rule counters in the run summary equal the traffic.

use std::path::Path;

use ctrack_tests::{
    by_flow, ctrack, eal_base, ephemeral_servers, pcap_pair_ports, read_pcap, read_summary,
    scratch_dir, show, write_pcap,
};
use ctrack_traffic::synth::{Mix, Side};

const UDP: u8 = 17;
const TCP: u8 = 6;

fn proto(frame: &[u8]) -> u8 {
    frame[14 + 9]
}

fn ip_len(frame: &[u8]) -> u64 {
    u64::from(u16::from_be_bytes([frame[16], frame[17]]))
}

/// `stateful`: the drop rule asks for `connection-state=new`, so
/// `enabled=auto` turns tracking on; without it no rule needs tracking and
/// every packet is untracked (RouterOS's `auto`).
fn drop_rule_drops_the_matching_connections(workers: u32, stateful: bool) {
    let dir = scratch_dir(&format!("firewall-{workers}w"));
    let mix = Mix {
        tcp: 30,
        udp: 15,
        icmp: 5,
        exchanges: 4,
        payload: 200,
        ..Mix::default()
    };
    let packets = mix.packets();
    let side = |s: Side| -> Vec<(u64, Vec<u8>)> {
        packets
            .iter()
            .filter(|p| p.side == s)
            .map(|p| (p.ts_nanos, p.frame.clone()))
            .collect()
    };
    let (orig, reply) = (side(Side::Orig), side(Side::Reply));
    write_pcap(&dir.join("in0.pcap"), &orig);
    write_pcap(&dir.join("in1.pcap"), &reply);
    let rules = dir.join("rules.rsc");
    let state = if stateful {
        " connection-state=new"
    } else {
        ""
    };
    std::fs::write(
        &rules,
        format!(
            "# UDP is dropped both ways; TCP counted\n\
             /ip firewall filter\n\
             add action=drop chain=forward comment=\"no udp\" protocol=udp{state}\n\
             add action=accept chain=forward comment=tcp protocol=tcp\n"
        ),
    )
    .unwrap();
    let summary = dir.join("summary.json");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--workers".into(),
        workers.to_string(),
        "--rules".into(),
        rules.display().to_string(),
        "--idle-exit".into(),
        "300ms".into(),
        "--summary-json".into(),
        summary.display().to_string(),
    ];
    args.extend(ephemeral_servers());
    args.push("--".into());
    args.extend(eal_base());
    args.extend(pcap_pair_ports(&dir));
    let out = ctrack(&args);
    assert!(out.status.success(), "{}", show(&out));

    let frames = |v: &[(u64, Vec<u8>)], keep: &dyn Fn(&[u8]) -> bool| -> Vec<Vec<u8>> {
        v.iter().map(|x| x.1.clone()).filter(|f| keep(f)).collect()
    };
    let not_udp = |f: &[u8]| proto(f) != UDP;
    let (out1, out0) = (
        read_pcap(&dir.join("out1.pcap")),
        read_pcap(&dir.join("out0.pcap")),
    );
    assert_eq!(
        by_flow(&out1),
        by_flow(&frames(&orig, &not_udp)),
        "port 0 -> port 1"
    );
    assert_eq!(
        by_flow(&out0),
        by_flow(&frames(&reply, &not_udp)),
        "port 1 -> port 0"
    );

    let all: Vec<Vec<u8>> = packets.iter().map(|p| p.frame.clone()).collect();
    let count = |p: u8| {
        let f: Vec<_> = all.iter().filter(|f| proto(f) == p).collect();
        (f.len() as u64, f.iter().map(|f| ip_len(f)).sum::<u64>())
    };
    let (udp, udp_bytes) = count(UDP);
    let (tcp, tcp_bytes) = count(TCP);
    let s = read_summary(&summary);
    let sum = |k: &str| -> u64 {
        s["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w[k].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("firewall_dropped"), udp, "{s:#}");
    assert_eq!(sum("tx_dropped"), 0);
    let rules = s["firewall_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{s:#}");
    assert_eq!(rules[0]["comment"], "no udp");
    assert_eq!(
        (rules[0]["packets"].as_u64(), rules[0]["bytes"].as_u64()),
        (Some(udp), Some(udp_bytes))
    );
    assert_eq!(
        (rules[1]["packets"].as_u64(), rules[1]["bytes"].as_u64()),
        (Some(tcp), Some(tcp_bytes))
    );
    if stateful {
        // No UDP connection was created (a dropped first packet inserts
        // nothing); the others were (TCP ones whose SYN came first).
        assert_eq!(sum("untracked"), 0, "{s:#}");
        assert!(
            sum("connections_created") <= u64::from(mix.tcp + mix.icmp),
            "{s:#}"
        );
        assert!(sum("connections_created") >= u64::from(mix.icmp), "{s:#}");
    } else {
        assert_eq!(sum("connections_created"), 0, "{s:#}");
        assert_eq!(sum("untracked"), all.len() as u64, "{s:#}");
    }
    assert_eq!(s["mempool_in_use_end"], s["mempool_in_use_start"], "{s:#}");
}

#[test]
fn run_rules_drop_with_one_worker_and_auto_tracking_off() {
    drop_rule_drops_the_matching_connections(1, false);
}

#[test]
fn run_rules_drop_new_with_one_worker() {
    drop_rule_drops_the_matching_connections(1, true);
}

#[test]
fn run_rules_drop_with_two_workers() {
    drop_rule_drops_the_matching_connections(2, true);
}

/// `ctrack check` compiles the script named in the config file; an error
/// names the script's line.
#[test]
fn check_validates_the_rules_file() {
    let dir = scratch_dir("firewall-check");
    std::fs::write(
        dir.join("rules.rsc"),
        "/ip firewall filter\nadd chain=forward action=drop protocol=udp\n\
         add chain=forward action=accept connection-state=established\n",
    )
    .unwrap();
    std::fs::write(dir.join("ctrack.toml"), "[run]\nrules = \"rules.rsc\"\n").unwrap();
    let check = |toml: &Path| {
        ctrack(&[
            "check".into(),
            "--config".into(),
            toml.display().to_string(),
        ])
    };
    let out = check(&dir.join("ctrack.toml"));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 rules"), "{stdout}");
    assert!(stdout.contains("filter #1 (connection-state)"), "{stdout}");

    std::fs::write(
        dir.join("rules.rsc"),
        "/ip firewall filter\nadd chain=forward action=drop protocol=udp\n\
         add chain=forward action=dorp\n",
    )
    .unwrap();
    let out = check(&dir.join("ctrack.toml"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rules.rsc") && stderr.contains("line 3") && stderr.contains("dorp"),
        "{stderr}"
    );
}
