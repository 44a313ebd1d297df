//! The firewall with real Linux TCP stacks: `ctrack run --rules` (2 workers,
//! `net_af_packet` on two namespaces' veth pairs, `Topology`) between a
//! client (A) and a server (B).
//!
//! - `connection-limit=2,32` on new connections to port 8081, with
//!   `reject-with=tcp-reset`: of four connections the client opens and
//!   holds, two connect and two are refused (2 workers share the count;
//!   `dataplane`'s `limit_tests` checks the spread over workers exactly).
//! - `reject-with=icmp-network-unreachable` on new connections to port
//!   8082: the client's connect fails with `ENETUNREACH` (not the
//!   `ECONNREFUSED` of the server's own reset), the rule counts one.
//! - `layer7-protocol` on a real HTTP request (curl): `GET /ok` is answered,
//!   `GET /secret` is dropped (curl times out), the rule counts it.
//! - `mark-connection` in mangle on new connections to port 8080: the HTTP
//!   connection shows `connection-mark=web` in `ctrack connection print`,
//!   the held ones to 8081 are not marked.
//! - The management API changes the running rules: `ctrack firewall filter
//!   set` disables the layer7 rule, and `/secret` is answered; `ctrack
//!   export` prints the running script, which parses back to it.
//!
//! Needs root, iproute2, ethtool, python3 and curl; without them it says why
//! and passes.

use ctrack_tests::netns::{B4, Topology, skip_reason};
use ctrack_tests::{Running, ctrack, scratch_dir, show};

const SERVER: &str = r#"
import http.server, socket, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((sys.argv[1], 8080), H)
held = []
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], 8081))
ls.listen(16)
def hold():
    while True:
        c, _ = ls.accept()
        held.append(c)
threading.Thread(target=hold, daemon=True).start()
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("ready", flush=True)
time.sleep(int(sys.argv[2]))
"#;

const LIMIT_CLIENT: &str = r#"
import socket, sys
res, keep = [], []
for i in range(4):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((sys.argv[1], 8081))
        res.append("ok")
        keep.append(s)
    except ConnectionRefusedError:
        res.append("refused")
    except socket.timeout:
        res.append("timeout")
print(" ".join(res))
"#;

/// Connects once to `HOST PORT` and prints `ok` or `errno N`.
const CONNECT_CLIENT: &str = r#"
import socket, sys
s = socket.socket()
s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("ok")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("errno", e.errno)
"#;

const RULES: &str = "/ip firewall layer7-protocol\n\
add name=secret regexp=\"^get /secret\"\n\
/ip firewall mangle\n\
add action=mark-connection chain=forward connection-state=new dst-port=8080 \
new-connection-mark=web passthrough=yes protocol=tcp\n\
/ip firewall filter\n\
add action=drop chain=forward comment=l7 layer7-protocol=secret protocol=tcp\n\
add action=reject chain=forward comment=limit connection-limit=2,32 \
connection-state=new dst-port=8081 protocol=tcp reject-with=tcp-reset\n\
add action=reject chain=forward comment=unreach dst-port=8082 protocol=tcp \
reject-with=icmp-network-unreachable\n";

fn curl(topo: &Topology, path: &str) -> std::process::Output {
    topo.exec(
        0,
        20,
        &["curl", "-s", "-m", "4", &format!("http://{B4}:8080{path}")],
    )
}

fn rule_packets(run: &Running, comment: &str) -> f64 {
    run.scrape()
        .samples
        .iter()
        .filter(|s| {
            s.metric == "ctrack_firewall_rule_packets_total"
                && s.labels.get("comment") == Some(comment)
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn connection_limit_layer7_and_live_rule_changes_with_linux_stacks() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no curl");
        return;
    }
    let topo = Topology::create();
    let dir = scratch_dir("firewall-netns");
    let rules = dir.join("rules.rsc");
    std::fs::write(&rules, RULES).unwrap();
    let args = topo.ctrack_run_args(&["--rules", &rules.display().to_string()]);
    let run = Running::start(&args);
    let _server = topo.spawn_ready(1, &["python3", "-c", SERVER, B4, "120"], 20);

    // connection-limit: two of four held connections, over both workers.
    let out = topo.exec(0, 60, &["python3", "-c", LIMIT_CLIENT, B4]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok ok refused refused",
        "{out:?}"
    );
    assert_eq!(rule_packets(&run, "limit") as u64, 2);

    // reject-with=icmp-network-unreachable: the client's connect fails
    // with ENETUNREACH (nobody listens on 8082: without the rule, B's
    // reset would make it ECONNREFUSED).
    let out = topo.exec(0, 30, &["python3", "-c", CONNECT_CLIENT, B4, "8082"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "errno 101",
        "{out:?}"
    );
    assert_eq!(rule_packets(&run, "unreach") as u64, 1);

    // layer7 on a real HTTP request.
    let ok = curl(&topo, "/ok");
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "hello\n");
    assert_eq!(rule_packets(&run, "l7"), 0.0);
    // mark-connection (mangle) on the HTTP connection, seen as its
    // `connection-mark` in `connection print`; the held connections to
    // 8081 are not marked.
    let marked = run.connection(&["print", "--json", "where", "connection-mark=web"]);
    assert!(marked.status.success(), "{}", show(&marked));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&marked.stdout).unwrap();
    assert!(
        !rows.is_empty(),
        "no connection marked web: {}",
        show(&marked)
    );
    for r in &rows {
        let dst = r["dst-address"].as_str().unwrap_or("");
        assert!(dst.ends_with(":8080"), "{r}");
        assert_eq!(r["connection-mark"], "web", "{r}");
    }
    let secret = curl(&topo, "/secret");
    assert!(
        !secret.status.success(),
        "the request was answered: {secret:?}"
    );
    assert!(rule_packets(&run, "l7") >= 1.0);

    // Live change through the API: disable the layer7 rule.
    let fw = |words: &[&str]| {
        let mut a: Vec<String> = vec!["firewall".into(), "--api".into(), run.api.clone()];
        a.extend(words.iter().map(|s| s.to_string()));
        ctrack(&a)
    };
    let out = fw(&["filter", "set", "0", "disabled=yes"]);
    assert!(out.status.success(), "{}", show(&out));
    let secret = curl(&topo, "/secret");
    assert!(secret.status.success(), "{secret:?}");
    assert_eq!(String::from_utf8_lossy(&secret.stdout), "hello\n");
    // The changed rule starts again from 0; the unchanged limit rule keeps
    // its 2 over the reload.
    let stats = fw(&["filter", "print", "stats"]);
    assert!(stats.status.success(), "{}", show(&stats));
    let text = String::from_utf8_lossy(&stats.stdout).to_string();
    assert!(text.lines().nth(2).unwrap_or("").ends_with(" 2"), "{text}");
    // A bad change is refused and changes nothing.
    let out = fw(&[
        "filter",
        "add",
        "chain=forward",
        "action=drop",
        "in-interface=ether9",
    ]);
    assert!(!out.status.success());
    assert!(show(&out).contains("ether9"), "{}", show(&out));

    // export: the running script, rule 0 now disabled.
    let out = ctrack(&["export".into(), "--api".into(), run.api.clone()]);
    assert!(out.status.success(), "{}", show(&out));
    let exported = ctrack_rules::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mut want = ctrack_rules::parse(RULES).unwrap();
    want.ip.filter[0].disabled = true;
    assert_eq!(exported, want);
}
