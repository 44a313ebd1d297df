//! The foundation, end to end through real DPDK: captures go in through
//! `net_pcap` and must come out byte for byte, with no mbuf leaked; bad input
//! gives one clear error and a non-zero exit.

use std::path::Path;

use ctrack_tests::{
    by_flow, ctrack, eal_base, ephemeral_servers, pcap_pair_ports, read_pcap, read_summary,
    scratch_dir, show, write_pcap,
};
use ctrack_traffic::synth::{Mix, Side};

/// Splits a synthetic mix into per-port input captures: originators' packets
/// enter port 0, responders' packets enter port 1.
fn write_inputs(dir: &Path, mix: &Mix) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let packets = mix.packets();
    let orig: Vec<(u64, Vec<u8>)> = packets
        .iter()
        .filter(|p| p.side == Side::Orig)
        .map(|p| (p.ts_nanos, p.frame.clone()))
        .collect();
    let reply: Vec<(u64, Vec<u8>)> = packets
        .iter()
        .filter(|p| p.side == Side::Reply)
        .map(|p| (p.ts_nanos, p.frame.clone()))
        .collect();
    write_pcap(&dir.join("in0.pcap"), &orig);
    write_pcap(&dir.join("in1.pcap"), &reply);
    (
        orig.into_iter().map(|(_, f)| f).collect(),
        reply.into_iter().map(|(_, f)| f).collect(),
    )
}

fn forward_capture(workers: u32) {
    let dir = scratch_dir(&format!("forward-{workers}w"));
    let mix = Mix {
        tcp: 40,
        udp: 20,
        icmp: 5,
        exchanges: 5,
        payload: 300,
        keep_open: false,
        ..Mix::default()
    };
    let (orig, reply) = write_inputs(&dir, &mix);
    let summary = dir.join("summary.json");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--workers".into(),
        workers.to_string(),
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

    // What entered port 0 leaves port 1, byte for byte and in order within
    // each flow (with one worker, in order overall).
    let (out1, out0) = (
        read_pcap(&dir.join("out1.pcap")),
        read_pcap(&dir.join("out0.pcap")),
    );
    if workers == 1 {
        assert_eq!(out1, orig, "port 0 -> port 1");
        assert_eq!(out0, reply, "port 1 -> port 0");
    }
    assert_eq!(by_flow(&out1), by_flow(&orig), "port 0 -> port 1");
    assert_eq!(by_flow(&out0), by_flow(&reply), "port 1 -> port 0");

    let s = read_summary(&summary);
    assert_eq!(s["stop_reason"], "idle");
    assert_eq!(s["workers"].as_array().unwrap().len(), workers as usize);
    let rx: u64 = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["rx_packets"].as_u64().unwrap())
        .sum();
    let dropped: u64 = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["tx_dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(rx as usize, orig.len() + reply.len());
    assert_eq!(dropped, 0);
    assert_eq!(s["ports"][0]["ipackets"].as_u64(), Some(orig.len() as u64));
    assert_eq!(s["ports"][1]["opackets"].as_u64(), Some(orig.len() as u64));
    // No mbuf leaked: the pool is back where it was when the ports started.
    assert_eq!(s["mempool_in_use_end"], s["mempool_in_use_start"], "{s:#}");
}

#[test]
fn pcap_capture_forwards_byte_for_byte_with_one_worker() {
    forward_capture(1);
}

#[test]
fn pcap_capture_forwards_byte_for_byte_with_two_workers() {
    forward_capture(2);
}

fn run_expecting_error(args: &[&str], expect_in_stderr: &str) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = ctrack(&args);
    assert!(!out.status.success(), "expected failure\n{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("ctrack: error"))
        .unwrap_or("");
    assert!(
        last.contains(expect_in_stderr),
        "error line should mention {expect_in_stderr:?}\n{}",
        show(&out)
    );
    assert!(!stderr.contains("panicked"), "{}", show(&out));
}

#[test]
fn bad_eal_argument_is_a_clear_error() {
    run_expecting_error(
        &[
            "run",
            "--duration",
            "1s",
            "--",
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--bogus-eal-flag",
        ],
        "EAL initialisation failed",
    );
}

/// `ctrack run [run_args] --duration 1s -- <a small EAL> [eal_extra]`.
fn short_run(run_args: &[&'static str], eal_extra: &[&'static str]) -> Vec<&'static str> {
    let mut a = vec!["run"];
    a.extend_from_slice(run_args);
    a.extend_from_slice(&["--duration", "1s", "--"]);
    a.extend_from_slice(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
    ]);
    a.extend_from_slice(eal_extra);
    a
}

#[test]
fn no_port_is_a_clear_error() {
    run_expecting_error(&short_run(&[], &[]), "no DPDK port");
}

#[test]
fn odd_port_count_is_a_clear_error() {
    run_expecting_error(&short_run(&[], &["--vdev", "net_ring0"]), "even number");
}

#[test]
fn a_port_that_does_not_exist_is_a_clear_error() {
    run_expecting_error(
        &short_run(
            &["--ports", "0,5"],
            &["--vdev", "net_ring0", "--vdev", "net_ring1"],
        ),
        "port 5 does not exist",
    );
}

#[test]
fn unreadable_config_is_a_clear_error() {
    run_expecting_error(
        &["run", "--config", "/nonexistent/ctrack.toml"],
        "/nonexistent/ctrack.toml",
    );
}

#[test]
fn bad_config_value_names_the_field() {
    let dir = scratch_dir("bad-config");
    let cfg = dir.join("ctrack.toml");
    std::fs::write(&cfg, "[run]\nburst = 1000\n").unwrap();
    run_expecting_error(&["run", "--config", cfg.to_str().unwrap()], "burst");
    std::fs::write(&cfg, "[run]\nworker = 2\n").unwrap();
    run_expecting_error(&["run", "--config", cfg.to_str().unwrap()], "worker");
}

#[test]
fn config_file_drives_a_run() {
    let dir = scratch_dir("config-run");
    let mix = Mix {
        tcp: 5,
        udp: 5,
        icmp: 1,
        exchanges: 2,
        payload: 64,
        keep_open: true,
        ..Mix::default()
    };
    let (orig, _) = write_inputs(&dir, &mix);
    let mut eal = eal_base();
    eal.extend(pcap_pair_ports(&dir));
    let eal_toml = eal
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = dir.join("ctrack.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\neal = [{eal_toml}]\nworkers = 1\nidle-exit = \"300ms\"\napi = \"127.0.0.1:0\"\nmetrics = \"off\"\n\n[tracking]\nudp-timeout = \"1m\"\n"
        ),
    )
    .unwrap();
    let summary = dir.join("summary.json");
    let out = ctrack(&[
        "run".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--summary-json".into(),
        summary.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(read_pcap(&dir.join("out1.pcap")), orig);
    assert_eq!(read_summary(&summary)["stop_reason"], "idle");
}
