//! RSS end to end: a port with several RX queues either gets symmetric RSS
//! as asked, or the run says why not (log, summary `rss_warning`, metric
//! `ctrack_port_rss_degraded`), so that the NIC's queue choice and software
//! dispatch never silently disagree.

use ctrack_tests::{ctrack, eal_base, read_summary, scratch_dir, show};

/// `ctrack run --workers 2` for a moment over two `vdev`s; the summary and
/// stderr.
fn run_two_workers(name: &str, vdev: &str) -> (serde_json::Value, String) {
    let dir = scratch_dir(name);
    let summary = dir.join("summary.json");
    let mut args: Vec<String> = [
        "run",
        "--workers",
        "2",
        "--duration",
        "200ms",
        "--api",
        "off",
        "--metrics",
        "off",
        "--summary-json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(summary.display().to_string());
    args.push("--".into());
    args.extend(eal_base());
    for i in 0..2 {
        args.push("--vdev".into());
        args.push(format!("{vdev}{i}"));
    }
    let out = ctrack(&args);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (read_summary(&summary), stderr)
}

#[test]
fn a_nic_with_rss_gets_the_symmetric_key() {
    // net_null has RSS with a key, hash types and RETA it reports back.
    let (s, stderr) = run_two_workers("rss-null", "net_null");
    for p in s["ports"].as_array().unwrap() {
        assert_eq!(p["rx_queues"], 2, "{p}");
        assert_eq!(p["rss"], true, "{p}");
        assert_eq!(p["rss_warning"], serde_json::Value::Null, "{p}");
        assert_eq!(p["rss_degraded"], false, "{p}");
    }
    assert!(!stderr.contains("without symmetric RSS"), "{stderr}");
    assert_eq!(s["mempool_in_use_start"], s["mempool_in_use_end"], "{s}");
}

#[test]
fn several_queues_without_rss_are_reported() {
    // net_ring has queues but no RSS: which queue a packet takes is not the
    // symmetric hash's choice.
    let (s, stderr) = run_two_workers("rss-ring", "net_ring");
    for p in s["ports"].as_array().unwrap() {
        assert_eq!(p["rx_queues"], 2, "{p}");
        assert_eq!(p["rss"], false, "{p}");
        assert_eq!(p["rss_degraded"], true, "{p}");
        let why = p["rss_warning"].as_str().expect("a reason");
        assert!(why.contains("none of the RSS hash types"), "{why}");
    }
    assert_eq!(
        stderr.matches("without symmetric RSS").count(),
        2,
        "one warning per port: {stderr}"
    );
}
