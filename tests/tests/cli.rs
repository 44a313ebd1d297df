//! `ctrack connection` as RouterOS and conntrack-tools users type it, end to
//! end against a running dataplane (DPDK pcap vdevs): the v7 flags, `print`
//! forms and `where` operators, `stats`, `remove [find where ...]` and
//! `flush` (docs/cli.md).

use std::path::Path;

use ctrack_tests::{
    Running, one_port_capture, one_port_run_args, scratch_dir, show, wait_all_tracked,
};
use ctrack_traffic::synth::Mix;
use serde_json::Value;

/// Runs ctrack (2 workers) over a one-port capture of `mix`, read once, and
/// waits until every packet was received and tracked by its owner.
fn run_once(dir: &Path, mix: &Mix) -> Running {
    let sent = one_port_capture(dir, mix);
    let run = Running::start(&one_port_run_args(dir, 2, false, &[]));
    wait_all_tracked(&run, sent);
    run
}

fn stdout_of(run: &Running, args: &[&str]) -> String {
    let out = run.connection(args);
    assert!(out.status.success(), "{args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(run: &Running, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&stdout_of(run, &a)).expect("--json output")
}

#[test]
fn routeros_and_conntrack_tools_forms_against_a_live_dataplane() {
    let dir = scratch_dir("cli-live");
    let mix = Mix {
        tcp: 6,
        udp: 4,
        icmp: 2,
        exchanges: 2,
        payload: 64,
        keep_open: true,
        ..Mix::default()
    };
    let run = run_once(&dir, &mix);
    let all = run.table();
    assert_eq!(all.len(), 12, "{all:?}");

    // The table: legend, columns, heading, one line per connection; an
    // established TCP connection shows seen-reply, assured, confirmed.
    let table = stdout_of(&run, &["print"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3 + 12, "{table}");
    assert!(
        lines[0].starts_with("Flags: E - EXPECTED; S - SEEN-REPLY"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("Columns: PROTOCOL, SRC-ADDRESS"),
        "{table}"
    );
    let tcp_lines: Vec<&&str> = lines.iter().filter(|l| l.contains(" tcp ")).collect();
    assert_eq!(tcp_lines.len(), 6, "{table}");
    assert!(tcp_lines.iter().all(|l| l.contains(" SAC ")), "{table}");

    // where, pushed down and evaluated by the CLI, against the JSON rows.
    assert_eq!(
        stdout_of(&run, &["print", "count-only", "where", "protocol=TCP"]),
        "6\n"
    );
    assert_eq!(
        json_of(
            &run,
            &["print", "where", "protocol=udp", "or", "protocol=icmp"]
        )
        .len(),
        6
    );
    let unassured = all.iter().filter(|c| c["assured"] == false).count();
    assert_eq!(
        stdout_of(&run, &["print", "count-only", "where", "!assured"]),
        format!("{unassured}\n")
    );
    let big = all
        .iter()
        .filter(|c| c["orig-bytes"].as_u64().unwrap_or(0) > 300)
        .count();
    assert_eq!(
        stdout_of(&run, &["print", "count-only", "where", "orig-bytes>300"]),
        format!("{big}\n")
    );
    let detail = stdout_of(&run, &["print", "detail", "where", "protocol=icmp"]);
    assert_eq!(detail.lines().count(), 2, "{detail}");
    assert!(
        detail
            .lines()
            .all(|l| l.contains(" protocol=icmp ") && l.contains(" icmp-type=")),
        "{detail}"
    );
    let e = run.connection(&["print", "where", "orig-bytes>lots"]);
    assert_eq!(e.status.code(), Some(1), "{}", show(&e));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("orig-bytes"),
        "{}",
        show(&e)
    );

    // stats: one line per worker; the inserts add up to the connections
    // (waited for: workers publish their counters between bursts).
    let stat_sum = |r: &Running, name: &str| -> (usize, u64) {
        let stats = stdout_of(r, &["--metrics", &r.metrics, "stats"]);
        let prefix = format!("{name}=");
        let mut sum = 0;
        for l in stats.lines() {
            assert!(l.starts_with("worker="), "{stats}");
            sum += l
                .split_whitespace()
                .find_map(|w| w.strip_prefix(prefix.as_str()))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name}=N in {stats}"));
        }
        (stats.lines().count(), sum)
    };
    assert!(
        run.wait_until(100, |r| stat_sum(r, "insert") == (2, 12)),
        "{:?}",
        stat_sum(&run, "insert")
    );

    // remove [find where ...] takes only the matches; flush the rest.
    let out = run.connection(&["remove", "[find", "where", "protocol=udp]"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("4 connections removed"),
        "{}",
        show(&out)
    );
    let left = run.table();
    assert_eq!(left.len(), 8, "{left:?}");
    assert!(left.iter().all(|c| c["protocol"] != "udp"), "{left:?}");
    let out = run.connection(&["flush"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(run.table().is_empty());
    // count-only without a filter reads the workers' published counts.
    assert!(run.wait_until(100, |r| stdout_of(r, &["print", "count-only"]) == "0\n"));
    assert!(
        run.wait_until(100, |r| stat_sum(r, "removed") == (2, 12)),
        "{:?}",
        stat_sum(&run, "removed")
    );
}
