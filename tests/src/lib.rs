//! Helpers shared by the end-to-end tests.
//!
//! The tests drive the real `ctrack` binary as a subprocess (DPDK's EAL can be
//! initialised once per process), each run with `--no-shconf` so runs never
//! share DPDK state. `scripts/test.sh` builds the binary first; the tests look
//! for it next to their own executable (`target/<profile>/ctrack`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use dataplane::io::pcap::{LinkType, PcapReader, PcapWriter};

/// The `ctrack` binary of this build profile.
pub fn ctrack_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CTRACK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/ctrack
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("ctrack");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p control), or set CTRACK_BIN",
        bin.display()
    );
    bin
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
pub fn eal_base() -> Vec<String> {
    ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "-l", "0-1", "--log-level=error"]
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
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), LinkType::Ethernet, false).expect("pcap header");
    for (ts, frame) in frames {
        w.write_packet(*ts, frame).expect("write packet");
    }
    w.flush().expect("flush pcap");
}

/// The frames of a pcap (timestamps dropped).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut r = PcapReader::new(std::io::BufReader::new(f)).expect("pcap header");
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while r.next_record(&mut buf).expect("pcap record").is_some() {
        out.push(buf.clone());
    }
    out
}

/// Reads the JSON file written by `ctrack run --summary-json`.
pub fn read_summary(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
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
