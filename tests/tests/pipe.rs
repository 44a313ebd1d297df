//! Writing to a closed pipe (`ctrack ... | head -1`) ends quietly: no panic,
//! the usual exit status (0: the reader asked for no more), and `run` keeps
//! its dataplane going to its own stop and still writes `--summary-json`.
//!
//! Each test closes the read end of ctrack's stdout after at most one line,
//! with more output to come than a pipe holds (64 KiB), so a write fails
//! with EPIPE whatever the timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use ctrack_tests::{ctrack, ctrack_bin, eal_base, ephemeral_servers, read_summary, scratch_dir};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Spawns ctrack with `a`, reads at most one line of its stdout, closes it,
/// and returns the exit code and stderr.
fn head_1(a: &[String], read_one: bool) -> (Option<i32>, String) {
    let mut child: Child = Command::new(ctrack_bin())
        .args(a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctrack");
    let stdout = child.stdout.take().expect("stdout");
    if read_one {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        assert!(!line.is_empty(), "no first line");
    } else {
        drop(stdout);
    }
    let out = child.wait_with_output().expect("ctrack exit");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet((code, stderr): (Option<i32>, String)) {
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn replay_into_a_closed_pipe_ends_quietly() {
    let dir = scratch_dir("pipe-replay");
    let cap = dir.join("c.pcap").display().to_string();
    let out = ctrack(&args(&[
        "generate", &cap, "--tcp", "1500", "--udp", "500", "--icmp", "0",
    ]));
    assert!(out.status.success(), "{out:?}");
    // About 150 bytes a row: well over a pipe's 64 KiB.
    assert_quiet(head_1(&args(&["replay", &cap]), true));
    assert_quiet(head_1(&args(&["replay", &cap, "--json"]), true));
}

/// An HTTP server answering every request with a JSON listing of `rows`
/// UDP connections (this server's wire form); its base URL.
fn fake_api(rows: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut body = String::from("[");
    for i in 0..rows {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"id":"*{i:x}","worker":0,"protocol":"udp","src-address":"10.0.{}.{}:5353","dst-address":"10.1.0.1:53","timeout":"9s","orig-packets":1,"orig-bytes":80}}"#,
            i / 256,
            i % 256
        ));
    }
    body.push(']');
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { break };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn connection_print_into_a_closed_pipe_ends_quietly() {
    let api = fake_api(5000);
    for form in [&["print"][..], &["print", "--json"], &["print", "detail"]] {
        let mut a = args(&["connection", "--api", &api]);
        a.extend(args(form));
        assert_quiet(head_1(&a, true));
    }
    // And the listing itself is whole when nobody closes the pipe.
    let out = ctrack(&args(&[
        "connection",
        "--api",
        &api,
        "print",
        "count-only",
        "where",
        "protocol=udp",
        "orig-bytes>=80",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5000\n", "{out:?}");
}

#[test]
fn run_with_a_closed_stdout_keeps_running_and_writes_its_summary() {
    let dir = scratch_dir("pipe-run");
    let summary = dir.join("summary.json");
    let mut a = args(&["run", "--duration", "300ms", "--summary-json"]);
    a.push(summary.display().to_string());
    a.extend(ephemeral_servers());
    a.push("--".into());
    a.extend(eal_base());
    a.extend(args(&["--vdev", "net_ring0", "--vdev", "net_ring1"]));
    assert_quiet(head_1(&a, false));
    let s = read_summary(&summary);
    // It stopped at its own time, not because of the pipe.
    assert_eq!(s["stop_reason"], "duration", "{s}");
}
