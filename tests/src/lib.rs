//! Helpers shared by the end-to-end tests.
//!
//! The tests drive the real `ctrack` binary as a subprocess (DPDK's EAL can be
//! initialised once per process), each run with `--no-shconf` so runs never
//! share DPDK state. `scripts/test.sh` builds the binary first; the tests look
//! for it next to their own executable (`target/<profile>/ctrack`).

#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use ctrack_traffic::capture::CaptureReader;
use ctrack_traffic::pcap::{LinkType, PcapWriter};

pub mod helper_servers;
pub mod linux_router;
pub mod netns;

/// The `ctrack` binary of this build profile.
pub fn ctrack_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CTRACK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/ctrack
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("ctrack");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p control), or set CTRACK_BIN",
        bin.display()
    );
    bin
}

/// Whether `cmd --version` runs and succeeds (a tool a test needs).
pub fn have(cmd: &str) -> bool {
    // `ping` knows `-V`, not `--version`.
    ["--version", "-V"].iter().any(|a| {
        Command::new(cmd)
            .arg(a)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A command's standard output, then its standard error, as text (for
/// failure messages).
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A fresh directory for one test's files, under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let exe = std::env::current_exe().expect("test executable path");
    let base = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("e2e-scratch");
    let dir = base.join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// EAL arguments for a test run: no hugepages, no PCI, no shared config.
/// 768 MB: router mode's FIB (`rte_lpm` and `rte_lpm6`, some 130 MB, two or
/// three alive across a route change) beside the packet pool and
/// reassembly's 64 KiB buffers (docs/nat.md, Fragments) left 512 short.
pub fn eal_base() -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "768",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0-1",
        "--log-level=error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs `ctrack` with `args` and returns its output.
pub fn ctrack(args: &[String]) -> Output {
    Command::new(ctrack_bin())
        .args(args)
        .output()
        .expect("spawn ctrack")
}

/// Writes `frames` to an Ethernet pcap.
pub fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let f = std::fs::File::create(path).expect("create pcap");
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), LinkType::Ethernet, false)
        .expect("pcap header");
    for (ts, frame) in frames {
        w.write_packet(*ts, frame).expect("write packet");
    }
    w.flush().expect("flush pcap");
}

/// The frames of a capture (pcap or pcapng, gzip or not; timestamps dropped).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = CaptureReader::new(std::io::BufReader::new(f)).expect("capture header");
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.next_record(&mut buf).expect("pcap record").is_some() {
        out.push(buf.clone());
    }
    out
}

/// Frames grouped by connection (both directions under one key, in order):
/// the order `ctrack run` keeps with several workers.
pub fn by_flow(frames: &[Vec<u8>]) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    let mut out: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
    for f in frames {
        let key = match dataplane::packet::parse_ethernet(f) {
            Ok(p) => {
                let t = p.tuple;
                let (a, b) = ((t.src, t.src_port), (t.dst, t.dst_port));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                format!("{} {:?} {:?}", t.proto, lo, hi)
            }
            Err(e) => format!("unparsed {e:?}"),
        };
        out.entry(key).or_default().push(f.clone());
    }
    out
}

/// `--api` and `--metrics` on ports the kernel picks, so that tests can run
/// side by side.
pub fn ephemeral_servers() -> Vec<String> {
    ["--api", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Reads the JSON file written by `ctrack run --summary-json`.
pub fn read_summary(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("summary JSON")
}

/// stdout and stderr of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `ctrack run` in the background, with its API and metrics addresses.
pub struct Running {
    child: Option<std::process::Child>,
    pub api: String,
    pub metrics: String,
    stdout: Vec<String>,
}

impl Running {
    /// Starts `ctrack run ARGS` (which must include `--api`/`--metrics` on
    /// port 0 or fixed ports) and waits until both servers are listening.
    pub fn start(args: &[String]) -> Running {
        use std::io::BufRead;
        let mut child = Command::new(ctrack_bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ctrack run");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let (mut api, mut metrics, mut seen) = (None, None, Vec::new());
        while api.is_none() || metrics.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let out = child.wait_with_output().expect("ctrack output");
                panic!(
                    "ctrack run ended before listening:\n{}\n{}",
                    seen.join("\n"),
                    show(&out)
                );
            };
            for scheme in ["http", "https"] {
                let said = format!("ctrack: management API on {scheme}://");
                if let Some(rest) = line.strip_prefix(&said) {
                    api = rest.split('/').next().map(|a| format!("{scheme}://{a}"));
                }
            }
            if let Some(rest) = line.strip_prefix("ctrack: Prometheus metrics on http://") {
                metrics = Some(format!("http://{rest}"));
            }
            seen.push(line);
        }
        // Keep draining stdout so ctrack never blocks on a full pipe.
        let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        std::mem::forget(drain);
        Running {
            child: Some(child),
            api: api.unwrap_or_default(),
            metrics: metrics.unwrap_or_default(),
            stdout: seen,
        }
    }

    /// `ctrack connection ARGS --api <this run's API>`.
    pub fn connection(&self, args: &[&str]) -> Output {
        let mut a: Vec<String> = vec!["connection".into(), "--api".into(), self.api.clone()];
        a.extend(args.iter().map(|s| s.to_string()));
        ctrack(&a)
    }

    /// The JSON connection table, through the CLI, in this server's typed
    /// form (`id`, numbers and booleans): `print --json` gives the API's
    /// REST rows (`.id`, every value a string), read back with
    /// [`ctrack_model::row_from_json`].
    pub fn table(&self) -> Vec<serde_json::Value> {
        let out = self.connection(&["print", "--json"]);
        assert!(out.status.success(), "{}", show(&out));
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("print --json output");
        rows.iter()
            .map(|r| {
                let row = ctrack_model::row_from_json(r).unwrap_or_else(|e| panic!("{e}: {r}"));
                serde_json::to_value(&row).expect("a row as JSON")
            })
            .collect()
    }

    /// `/metrics`, parsed as Prometheus text format.
    pub fn scrape(&self) -> prometheus_parse::Scrape {
        let body = ureq::get(&self.metrics)
            .call()
            .expect("GET /metrics")
            .body_mut()
            .read_to_string()
            .expect("metrics body");
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .expect("valid Prometheus text format")
    }

    /// Waits (bounded: `tries` x 100 ms) until `cond` holds; false if it never did.
    pub fn wait_until(&self, tries: u32, mut cond: impl FnMut(&Running) -> bool) -> bool {
        for _ in 0..tries {
            if cond(self) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        // Ask it to stop as an operator would: SIGTERM, through kill(1).
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait_with_output().expect("ctrack exit")
    }

    pub fn startup_lines(&self) -> &[String] {
        &self.stdout
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sum of a metric's samples (all label sets) in a scrape.
pub fn metric_sum(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// EAL arguments for two `net_pcap` ports: port N reads `dir/inN.pcap` and
/// writes `dir/outN.pcap`.
pub fn pcap_pair_ports(dir: &Path) -> Vec<String> {
    let p = |name: &str| dir.join(name).display().to_string();
    (0..2)
        .flat_map(|n| {
            [
                "--vdev".to_string(),
                format!(
                    "net_pcap{n},rx_pcap={},tx_pcap={}",
                    p(&format!("in{n}.pcap")),
                    p(&format!("out{n}.pcap"))
                ),
            ]
        })
        .collect()
}

/// A capture of both directions of `mix`, for port 0 (`dir/in.pcap`); port 1
/// gets an empty one (`dir/empty.pcap`). One port keeps the capture's order
/// between directions (two `net_pcap` ports would race each other). Returns
/// the packet count.
pub fn one_port_capture(dir: &Path, mix: &ctrack_traffic::synth::Mix) -> usize {
    let frames: Vec<(u64, Vec<u8>)> = mix
        .packets()
        .into_iter()
        .map(|p| (p.ts_nanos, p.frame))
        .collect();
    write_pcap(&dir.join("in.pcap"), &frames);
    write_pcap(&dir.join("empty.pcap"), &[]);
    frames.len()
}

/// `ctrack run` arguments over [`one_port_capture`]'s files: `workers`
/// workers, at most 120 s, `extra` before the ephemeral API and metrics
/// servers, port 0 reading `in.pcap` (over and over with `infinite`).
pub fn one_port_run_args(dir: &Path, workers: u32, infinite: bool, extra: &[&str]) -> Vec<String> {
    let p = |name: &str| dir.join(name).display().to_string();
    let mut args: Vec<String> = vec!["run".into(), "--workers".into(), workers.to_string()];
    args.extend(["--duration".into(), "120s".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(ephemeral_servers());
    args.push("--".into());
    args.extend(eal_base());
    let inf = if infinite { ",infinite_rx=1" } else { "" };
    args.extend([
        "--vdev".into(),
        format!(
            "net_pcap0,rx_pcap={}{inf},tx_pcap={}",
            p("in.pcap"),
            p("out0.pcap")
        ),
        "--vdev".into(),
        format!(
            "net_pcap1,rx_pcap={},tx_pcap={}",
            p("empty.pcap"),
            p("out1.pcap")
        ),
    ]);
    args
}

/// Waits until `run` received all `sent` packets and every one handed to
/// its owner was tracked there (a loaded machine may run the owner a while
/// after the receiver); panics otherwise.
pub fn wait_all_tracked(run: &Running, sent: usize) {
    let all_in = run.wait_until(200, |r| {
        let m = r.scrape();
        metric_sum(&m, "ctrack_worker_rx_packets_total") as usize == sent
            && metric_sum(&m, "ctrack_handoffs_received_total")
                == metric_sum(&m, "ctrack_handoffs_total")
    });
    assert!(
        all_in,
        "ctrack did not receive and track the {sent} packets"
    );
}
