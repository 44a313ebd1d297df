//! The shipped dashboard and alert rules against a real Prometheus (Debian's
//! package) scraping a running ctrack on 127.0.0.1: `promtool check rules`
//! passes, every dashboard and alert expression parses through the query
//! API, every dashboard query returns data (but the panels whose metrics
//! are still to come, listed in [`COMING`]), and the rules evaluate without
//! error.
//!
//! Installs `prometheus` with apt-get when run as root; otherwise, without
//! it, the test prints why and passes without checking. Bounded in time:
//! every wait has a deadline.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctrack_tests::{Running, eal_base, scratch_dir, show, write_pcap};
use ctrack_traffic::synth::Mix;
use serde_json::Value;

/// Dashboard panels whose metrics other work brings (docs/metrics.md,
/// "Coming"): their queries must parse, but return no data yet.
const COMING: [&str; 2] = [
    "NAT port use",
    "Firewall rule counters (packets per second)",
];

/// How long Prometheus gets to start, scrape and have data for every query.
const DEADLINE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `prometheus` and `promtool` are there; the reason if not.
fn ensure_prometheus() -> Result<(), String> {
    if have("prometheus") && have("promtool") {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || !have("apt-get") {
        return Err(
            "prometheus is not installed and this is not root with apt-get \
                    (apt-get install prometheus)"
                .into(),
        );
    }
    eprintln!("prometheus: installing Debian's prometheus package");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    let _ = apt(&["update", "-qq"]);
    match apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ]) {
        Ok(s) if s.success() && have("prometheus") => Ok(()),
        r => Err(format!("apt-get install prometheus failed: {r:?}")),
    }
}

/// A port the kernel just handed out on 127.0.0.1 (free when we return).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The Prometheus server; killed on drop.
struct Prom {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prom {
    fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut resp = req.call().ok()?;
        serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()
    }

    /// `/api/v1/query` for `expr`: the whole answer (status, data or error).
    fn query(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)])
            .unwrap_or_else(|| panic!("no answer from Prometheus for {expr}"))
    }
}

/// Dashboard variables as Grafana would fill them in.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$instance", ".*")
        .replace("$job", ".*")
}

/// (panel title, expression) of every dashboard query.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dist/grafana/ctrack.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            out.push((title, expand(t["expr"].as_str().expect("expr"))));
        }
    }
    out
}

/// (alert name, expression) of every rule.
fn alert_rules(path: &Path) -> Vec<(String, String)> {
    // The rules file is YAML; its expressions sit on `expr:` lines, one each.
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(n) = l.strip_prefix("- alert:") {
            name = n.trim().to_string();
        } else if let Some(e) = l.strip_prefix("expr:") {
            out.push((name.clone(), e.trim().to_string()));
        }
    }
    out
}

#[test]
fn dashboard_and_alerts_work_against_real_prometheus() {
    if let Err(why) = ensure_prometheus() {
        eprintln!("skipped: {why}");
        return;
    }
    let rules = repo().join("dist/prometheus/ctrack-alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(out.status.success(), "promtool check rules\n{}", show(&out));
    let alerts = alert_rules(&rules);
    assert!(alerts.len() >= 6, "{alerts:?}");

    // ctrack forwards a looping capture of open connections, with FastTrack,
    // so that every rate has something to count.
    let dir = scratch_dir("prometheus");
    let mix = Mix {
        tcp: 16,
        udp: 8,
        icmp: 4,
        exchanges: 40,
        keep_open: true,
        ..Mix::default()
    };
    let frames: Vec<(u64, Vec<u8>)> = mix.iter().map(|p| (p.ts_nanos, p.frame)).collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    write_pcap(&dir.join("empty.pcap"), &[]);
    let p = |n: &str| dir.join(n).display().to_string();
    let mut args: Vec<String> = [
        "run",
        "--workers",
        "2",
        "--duration",
        "150s",
        "--fasttrack",
        "established",
        "--api",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(eal_base());
    args.extend([
        "--vdev".into(),
        format!(
            "net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null",
            p("in.pcap")
        ),
        "--vdev".into(),
        format!("net_pcap1,rx_pcap={},tx_pcap=/dev/null", p("empty.pcap")),
    ]);
    let run = Running::start(&args);
    let target = run
        .metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    assert!(target.starts_with("127.0.0.1:"), "{target}");

    // Prometheus: scrape and evaluate every second, on 127.0.0.1 only.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: ctrack\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", p("prometheus.yml")))
        .arg(format!("--storage.tsdb.path={}", p("tsdb")))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    let prom = Prom {
        child,
        base: format!("http://127.0.0.1:{port}"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent(),
    };
    let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let start = Instant::now();
    let poll = |what: &str, cond: &mut dyn FnMut() -> bool| {
        while !cond() {
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: not within {DEADLINE:?}\n--- prometheus log\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };

    // Up and scraping.
    poll("ctrack scraped", &mut || {
        prom.get("/api/v1/query", &[("query", "up{job=\"ctrack\"} == 1")])
            .is_some_and(|v| v["data"]["result"].as_array().is_some_and(|r| r.len() == 1))
    });

    // Every expression parses (status success), alerts included.
    let dash = dashboard_queries();
    assert!(dash.len() >= 15, "{} dashboard queries", dash.len());
    for (title, expr) in dash.iter().chain(alerts.iter()) {
        let v = prom.query(expr);
        assert_eq!(v["status"], "success", "{title}: {expr}\n{v}");
    }

    // Every dashboard query returns data (rates need two scrapes in their
    // window), but the panels of metrics still to come.
    let mut empty: Vec<(String, String)> = Vec::new();
    poll("every dashboard query has data", &mut || {
        empty = dash
            .iter()
            .filter(|(title, _)| !COMING.contains(&title.as_str()))
            .filter(|(_, expr)| {
                prom.query(expr)["data"]["result"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
            })
            .cloned()
            .collect();
        if !empty.is_empty() && start.elapsed() >= DEADLINE {
            panic!(
                "queries without data: {empty:#?}\n--- prometheus log\n{}",
                log()
            );
        }
        empty.is_empty()
    });
    for (title, expr) in dash.iter().filter(|(t, _)| COMING.contains(&t.as_str())) {
        let v = prom.query(expr);
        assert_eq!(
            v["data"]["result"].as_array().map(Vec::len),
            Some(0),
            "{title}: its metrics exist now; take it out of COMING\n{expr}"
        );
    }
    // The panels have real values: packets flow, FastTrack takes part.
    let scalar = |expr: &str| -> f64 {
        prom.query(expr)["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert!(scalar("sum(rate(ctrack_worker_rx_packets_total[10s]))") > 0.0);
    let ft = scalar(
        "sum(rate(ctrack_fasttrack_packets_total[10s])) / sum(rate(ctrack_packets_total[10s]))",
    );
    assert!(ft > 0.0 && ft <= 1.0, "FastTrack share {ft}");
    assert_eq!(scalar("count(ctrack_build_info)"), 1.0);
    // The dashboard's variables: job and instance labels on the build info.
    let info = prom.query("ctrack_build_info");
    let labels = &info["data"]["result"][0]["metric"];
    assert_eq!(labels["job"], "ctrack", "{info}");
    assert_eq!(labels["instance"], target.as_str(), "{info}");

    // The rules loaded and evaluated without error; none fires on a
    // healthy run.
    poll("rules evaluated", &mut || {
        prom.get("/api/v1/rules", &[]).is_some_and(|v| {
            let rules: Vec<&Value> = v["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            rules.len() == alerts.len()
                && rules.iter().all(|r| {
                    r["health"] == "ok"
                        && r["lastEvaluation"]
                            .as_str()
                            .is_some_and(|t| !t.starts_with("0001"))
                })
        })
    });
    let firing = prom.query("ALERTS{alertstate=\"firing\"}");
    assert_eq!(
        firing["data"]["result"].as_array().map(Vec::len),
        Some(0),
        "{firing}"
    );

    drop(prom);
    let out = run.stop();
    assert!(out.status.success(), "{}", show(&out));
}
