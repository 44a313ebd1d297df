//! The control plane of a running dataplane, end to end through real DPDK
//! ports: the API's table against `ctrack replay`, Prometheus metrics
//! against what was sent, live settings, removal, bad input, and a listing
//! streamed in chunks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use ctrack_tests::{
    Running, ctrack, metric_sum, one_port_capture, one_port_run_args, scratch_dir, show,
    wait_all_tracked, write_pcap,
};
use ctrack_traffic::synth::Mix;
use serde_json::Value;

fn key(e: &Value) -> String {
    format!(
        "{} {} {}",
        e["protocol"], e["src-address"], e["dst-address"]
    )
}

/// Runs ctrack (2 workers) over a one-port capture of `mix` and waits until
/// it received every packet; returns it and the packet count.
fn run_capture(dir: &Path, mix: &Mix) -> (Running, usize) {
    let sent = one_port_capture(dir, mix);
    let run = Running::start(&one_port_run_args(dir, 2, false, &[]));
    wait_all_tracked(&run, sent);
    (run, sent)
}

#[test]
fn api_table_and_metrics_match_replay_of_the_same_capture() {
    let dir = scratch_dir("api-vs-replay");
    let mix = Mix {
        tcp: 30,
        udp: 20,
        icmp: 6,
        exchanges: 3,
        payload: 120,
        keep_open: true,
        ..Mix::default()
    };
    let (run, sent) = run_capture(&dir, &mix);
    let api = run.table();

    let replay = ctrack(&[
        "replay".into(),
        dir.join("in.pcap").display().to_string(),
        "--json".into(),
        "--workers".into(),
        "2".into(),
    ]);
    assert!(replay.status.success(), "{}", show(&replay));
    let replayed: Vec<Value> = serde_json::from_slice(&replay.stdout).unwrap();

    let by_key = |rows: &[Value]| {
        rows.iter()
            .map(|r| (key(r), r.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (api_rows, replay_rows) = (by_key(&api), by_key(&replayed));
    assert_eq!(
        api.len(),
        (mix.tcp + mix.udp + mix.icmp) as usize,
        "each connection listed once"
    );
    assert_eq!(
        api_rows.keys().collect::<Vec<_>>(),
        replay_rows.keys().collect::<Vec<_>>()
    );
    for (k, want) in &replay_rows {
        let got = &api_rows[k];
        for f in [
            "reply-src-address",
            "reply-dst-address",
            "tcp-state",
            "icmp-id",
            "icmp-type",
            "orig-packets",
            "orig-bytes",
            "repl-packets",
            "repl-bytes",
            "assured",
            "seen-reply",
            "confirmed",
            "worker",
        ] {
            assert_eq!(got.get(f), want.get(f), "{k}: {f}");
        }
    }

    // Metrics: valid text format, and the packet counters add up to what was sent.
    let m = run.scrape();
    let counted = metric_sum(&m, "ctrack_packets_total");
    assert_eq!(
        counted as usize, sent,
        "orig + reply packets counted on connections"
    );
    assert_eq!(
        metric_sum(&m, "ctrack_conntrack_entries") as usize,
        api.len()
    );
    assert_eq!(
        metric_sum(&m, "ctrack_conntrack_stat_insert_total") as usize,
        api.len()
    );
    assert_eq!(
        metric_sum(&m, "ctrack_port_rx_packets_total") as usize,
        sent
    );
    let tcp_established: f64 = m
        .samples
        .iter()
        .filter(|s| s.metric == "ctrack_connections")
        .filter(|s| {
            s.labels.get("protocol") == Some("tcp")
                && s.labels.get("tcp_state") == Some("established")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(tcp_established as u32, mix.tcp);

    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn live_settings_remove_and_bad_input() {
    let dir = scratch_dir("live-settings");
    // UDP streams replayed endlessly: every connection keeps seeing packets.
    let mix = Mix {
        tcp: 0,
        udp: 8,
        icmp: 0,
        exchanges: 2,
        payload: 40,
        keep_open: true,
        ..Mix::default()
    };
    one_port_capture(&dir, &mix);
    let run = Running::start(&one_port_run_args(&dir, 2, true, &[]));
    assert!(
        run.wait_until(200, |r| r.table().len() == 8),
        "8 UDP streams"
    );
    let t = run.table();
    assert!(t.iter().all(|c| c["assured"] == true), "{t:?}");

    // A live change of udp-stream-timeout: every live stream follows it.
    let out = run.connection(&["tracking", "set", "udp-stream-timeout=7m"]);
    assert!(out.status.success(), "{}", show(&out));
    let follows = run.wait_until(100, |r| {
        r.table().iter().all(|c| {
            let t = c["timeout"].as_str().unwrap_or("");
            t.starts_with("6m5") || t == "7m"
        })
    });
    assert!(follows, "timeouts did not follow: {:?}", run.table());
    let out = run.connection(&["tracking", "print"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("udp-stream-timeout: 7m"),
        "{}",
        show(&out)
    );

    // Remove one: it goes, and its next packet creates it again with a new id.
    let victim = run.table()[0].clone();
    let id = victim["id"].as_str().unwrap().to_string();
    let out = run.connection(&["remove", &id]);
    assert!(out.status.success(), "{}", show(&out));
    let back = run.wait_until(100, |r| {
        r.table()
            .iter()
            .any(|c| key(c) == key(&victim) && c["id"].as_str() != Some(id.as_str()))
    });
    assert!(
        back,
        "the removed connection was not re-created by its next packet"
    );
    assert!(
        run.table()
            .iter()
            .all(|c| c["id"].as_str() != Some(id.as_str()))
    );

    // Bad input: a clear error naming the problem, non-zero exit.
    for (args, needle) in [
        (vec!["remove", "*ffffffffff"], "no such connection"),
        (vec!["remove", "12"], "id"),
        (vec!["tracking", "set", "udp-timeout=soon"], "udp-timeout"),
        (vec!["tracking", "set", "max-entries=5"], "max-entries"),
        (vec!["tracking", "set", "bogus=1"], "bogus"),
        (vec!["print", "where", "bogus=1"], "bogus"),
    ] {
        let out = run.connection(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} should fail: {}",
            show(&out)
        );
        assert!(
            err.contains(needle),
            "{args:?}: error should name {needle:?}: {err}"
        );
    }
    // Raw HTTP: the documented status codes.
    let status = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| match r {
        Ok(r) => r.status().as_u16(),
        Err(ureq::Error::StatusCode(c)) => c,
        Err(e) => panic!("{e}"),
    };
    let url = format!("{}/rest/ip/firewall/connection/tracking", run.api);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    assert_eq!(
        status(
            agent
                .patch(&url)
                .content_type("application/json")
                .send("{not json")
        ),
        400
    );
    assert_eq!(
        status(
            agent
                .patch(&url)
                .content_type("application/json")
                .send(r#"{"udp-timeout": "x"}"#)
        ),
        400
    );
    assert_eq!(
        status(
            agent
                .get(&format!("{}/rest/ip/firewall/connection/*ff", run.api))
                .call()
        ),
        404
    );
    assert_eq!(
        status(agent.get(&format!("{}/rest/nowhere", run.api)).call()),
        404
    );
    // Nothing of that stopped the workers: the streams are all still there.
    assert_eq!(run.table().len(), 8);

    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}

/// The raw answer to `GET target` on the API: (head, body as sent).
fn raw_get(api: &str, target: &str) -> (String, Vec<u8>) {
    let addr = api.strip_prefix("http://").unwrap_or(api);
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the answer");
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let body = out.split_off(end);
    (String::from_utf8_lossy(&out).to_string(), body)
}

/// A chunked body's chunk sizes and payload; panics unless it is complete.
fn dechunk(mut b: &[u8]) -> (Vec<usize>, Vec<u8>) {
    let (mut sizes, mut payload) = (Vec::new(), Vec::new());
    loop {
        let line = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk-size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap(), 16).unwrap();
        b = &b[line + 2..];
        if size == 0 {
            assert_eq!(b, b"\r\n", "the body ends with its last chunk");
            return (sizes, payload);
        }
        payload.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n");
        b = &b[size + 2..];
        sizes.push(size);
    }
}

#[test]
fn a_large_listing_is_streamed_in_chunks() {
    let dir = scratch_dir("streamed-listing");
    // More connections per worker than one chunk of the workers' listing
    // (256), and several chunks of the answer (64 KiB).
    let mix = Mix {
        tcp: 0,
        udp: 700,
        icmp: 0,
        exchanges: 1,
        payload: 20,
        keep_open: true,
        ..Mix::default()
    };
    let (run, _) = run_capture(&dir, &mix);

    let (head, body) = raw_get(&run.api, "/rest/ip/firewall/connection");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let (sizes, payload) = dechunk(&body);
    assert!(sizes.len() > 2, "{sizes:?}");
    let rows: Vec<Value> = serde_json::from_slice(&payload).expect("a JSON array");
    assert_eq!(rows.len(), 700);
    // RouterOS's REST form: `.id`, every value a string.
    let ids: BTreeSet<&str> = rows.iter().map(|r| r[".id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 700, "each connection listed once");
    assert!(
        rows.iter()
            .all(|r| r.as_object().unwrap().values().all(Value::is_string))
    );
    for w in ["0", "1"] {
        assert!(rows.iter().any(|r| r["worker"] == w), "worker {w} listed");
    }

    // The CLI reads the same listing; filters, .proplist and count-only apply.
    assert_eq!(run.table().len(), 700);
    let (_, body) = raw_get(
        &run.api,
        "/rest/ip/firewall/connection?worker=1&.proplist=.id,worker",
    );
    let picked: Vec<Value> = serde_json::from_slice(&dechunk(&body).1).unwrap();
    let on_1 = rows.iter().filter(|r| r["worker"] == "1").count();
    assert_eq!(picked.len(), on_1);
    assert!(picked.iter().all(|r| r.as_object().unwrap().len() == 2));
    let (head, body) = raw_get(&run.api, "/rest/ip/firewall/connection?count-only=yes");
    assert!(head.contains("Content-Length: "), "{head}");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({ "count": "700" })
    );

    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}

/// Input refused before anything runs, each with a message naming what is
/// wrong and exit status 1 (an abort would end on a signal instead): a
/// zero timeout in a config file (as `--set` and the API refuse it), and
/// `replay --workers`/`--max-entries` beyond `run`'s bounds.
#[test]
fn bad_settings_and_bounds_are_refused_with_a_clear_error() {
    let dir = scratch_dir("refused-input");
    let pcap = dir.join("empty.pcap");
    write_pcap(&pcap, &[]);
    let toml = dir.join("zero-timeout.toml");
    std::fs::write(&toml, "[tracking]\nudp-timeout = \"0s\"\n").unwrap();
    let out = ctrack(&["run".into(), "--config".into(), toml.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("udp-timeout") && err.contains("0s"),
        "{}",
        show(&out)
    );

    let replay = |extra: &[&str]| {
        let mut args = vec!["replay".to_string(), pcap.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        ctrack(&args)
    };
    for (extra, names) in [
        (&["--workers", "1000"][..], "--workers"),
        (&["--max-entries", "4294967295"][..], "--max-entries"),
        (&["--set", "udp-timeout=0s"][..], "udp-timeout"),
    ] {
        let out = replay(extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{extra:?}: {}", show(&out));
    }
    let out = replay(&["--workers", "2"]);
    assert!(out.status.success(), "{}", show(&out));
}
