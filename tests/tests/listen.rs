//! `ctrack connection listen --json` (conntrack `-E`) end to end: ctrack
//! runs between two network namespaces (`net_af_packet`, 2 workers), a
//! listener is started before any traffic, Linux makes TCP, UDP and ICMP
//! connections from A to B through ctrack, and `flush` removes them. The
//! listener must see a `new` and a `destroy` for every connection (counts
//! equal, the same ids), and `update`s for each TCP connection's state
//! changes up to established. See docs/cli.md.
//!
//! Needs root and iproute2; without them it says why and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ctrack_tests::netns::{A4, B4, TRAFFIC_PY, Topology, skip_reason};
use ctrack_tests::{Running, ctrack_bin, scratch_dir, show};
use serde_json::Value;

const TCP_PORT: u16 = 5011;
const UDP_ECHO: u16 = 5012;
const UDP_SINK: u16 = 5013;

#[test]
fn listen_sees_new_updates_and_destroy_of_every_connection() {
    if let Some(why) = skip_reason() {
        eprintln!("listen test skipped: {why}");
        return;
    }
    let topo = Topology::create();
    let dir = scratch_dir("listen");
    let script = dir.join("traffic.py");
    std::fs::write(&script, TRAFFIC_PY).expect("write traffic.py");
    let script = script.display().to_string();

    // Nothing expires during the test (5-minute timeouts): every destroy is
    // the flush's.
    let args = topo.ctrack_run_args(&[]);
    let run = Running::start(&args);

    // The listener, bounded (a missing event ends it, and the test fails
    // naming what it saw, instead of hanging).
    let mut listener = Command::new("timeout")
        .args(["120"])
        .arg(ctrack_bin())
        .args(["connection", "--api", &run.api, "listen", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctrack connection listen");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = listener.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Ready: the server says so once every worker records events.
    let first = lines.recv().expect("listen's first line");
    assert_eq!(first, r#"{"event":"listening"}"#);

    // Traffic: 3 TCP, 2 UDP request/response, 1 one-way UDP, 1 ping.
    let server = topo.spawn_ready(
        1,
        &[
            "python3",
            &script,
            "server",
            B4,
            "fd77::2",
            &TCP_PORT.to_string(),
            &UDP_ECHO.to_string(),
            &UDP_SINK.to_string(),
            "120",
        ],
        20,
    );
    let mut specs = Vec::new();
    for i in 0..3u16 {
        specs.push(format!("tcp,{A4},{},{B4},{TCP_PORT},2000,1", 45000 + i));
    }
    for i in 0..2u16 {
        specs.push(format!("udp-echo,{A4},{},{B4},{UDP_ECHO},100,2", 46000 + i));
    }
    specs.push(format!("udp-oneway,{A4},47000,{B4},{UDP_SINK},100,2"));
    let mut client = vec!["python3", script.as_str(), "client"];
    client.extend(specs.iter().map(String::as_str));
    let out = topo.exec(0, 90, &client);
    assert!(out.status.success(), "client failed:\n{}", show(&out));
    let out = topo.exec(
        0,
        30,
        &["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", B4],
    );
    assert!(out.status.success(), "ping:\n{}", show(&out));
    drop(server);
    let made = specs.len() + 1;

    // Every connection made, in the events: its `new` first.
    let mine = |v: &Value| {
        v["src-address"]
            .as_str()
            .is_some_and(|s| s == A4 || s.starts_with(&format!("{A4}:")))
    };
    let mut seen: Vec<Value> = Vec::new();
    let count = |seen: &[Value], kind: &str| {
        seen.iter()
            .filter(|v| v["event"] == kind && mine(v))
            .count()
    };
    let next = |seen: &mut Vec<Value>| {
        let Ok(line) = lines.recv() else {
            panic!(
                "listen ended early; events so far:\n{}",
                seen.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["event"] == "lost" {
            assert_eq!(v["count"], "0", "events were lost: {line}");
        } else {
            seen.push(v);
        }
    };
    while count(&seen, "new") < made {
        next(&mut seen);
    }
    // The connections end by flush (`conntrack -F`): a destroy each.
    let out = run.connection(&["flush"]);
    assert!(out.status.success(), "flush: {}", show(&out));
    while count(&seen, "destroy") < made {
        next(&mut seen);
    }
    let _ = listener.kill();
    let _ = listener.wait();

    let all = seen
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let ids = |kind: &str| -> BTreeSet<String> {
        seen.iter()
            .filter(|v| v["event"] == kind && mine(v))
            .map(|v| v[".id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(count(&seen, "new"), made, "{all}");
    assert_eq!(count(&seen, "destroy"), made, "{all}");
    assert_eq!(ids("new").len(), made, "one new per connection:\n{all}");
    assert_eq!(ids("new"), ids("destroy"), "{all}");
    let mut protocols: BTreeMap<String, usize> = BTreeMap::new();
    for v in seen.iter().filter(|v| v["event"] == "new" && mine(v)) {
        *protocols
            .entry(v["protocol"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        assert!(v.get("reason").is_none(), "{v}");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    }
    assert_eq!(
        protocols,
        BTreeMap::from([("icmp".into(), 1), ("tcp".into(), 3), ("udp".into(), 3)]),
        "{all}"
    );
    for v in seen.iter().filter(|v| v["event"] == "destroy" && mine(v)) {
        assert_eq!(v["reason"], "remove", "{v}");
    }
    // Each TCP connection: new in syn-sent, updates through established.
    for id in ids("new") {
        let of: Vec<&Value> = seen.iter().filter(|v| v[".id"] == id.as_str()).collect();
        if of[0]["protocol"] != "tcp" {
            continue;
        }
        assert_eq!(of[0]["event"], "new", "{all}");
        assert_eq!(of[0]["tcp-state"], "syn-sent", "{all}");
        let states: Vec<&str> = of
            .iter()
            .filter(|v| v["event"] == "update")
            .filter_map(|v| v["tcp-state"].as_str())
            .collect();
        assert!(
            states.contains(&"syn-received") && states.contains(&"established"),
            "{id}: updates {states:?}\n{all}"
        );
        assert_eq!(
            of.last().map(|v| &v["event"]),
            Some(&Value::from("destroy"))
        );
    }
}
