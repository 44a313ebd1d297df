//! Two network namespaces joined through ctrack, for tests with real Linux
//! traffic.
//!
//! ```text
//!  netns A                 root namespace                 netns B
//!  <i>a 10.77.0.1 ==veth== <r>a  [ctrack]  <r>b ==veth== <i>b 10.77.0.2
//!       fd77::1            (af_packet port 0) (port 1)        fd77::2
//! ```
//!
//! The root-namespace ends have no address (IPv6 disabled, IPv4 forwarding
//! off), are up and promiscuous: only ctrack moves packets between them. The
//! namespace ends have their checksum, segmentation and GRO offloads off, so
//! every frame on the wire is a complete, checksummed, MTU-sized one (ctrack
//! forwards exactly what it receives). Everything is removed when the
//! [`Topology`] is dropped, also when the test panics.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The IPv4 and IPv6 addresses of namespace A and B.
pub const A4: &str = "10.77.0.1";
pub const B4: &str = "10.77.0.2";
pub const A6: &str = "fd77::1";
pub const B6: &str = "fd77::2";

/// The addresses of the routed topology ([`Topology::renumber`],
/// [`TapTopology`]): A on 10.77.1.0/24 and fd77:1::/64 behind ctrack's
/// ether1, B on 10.77.2.0/24 and fd77:2::/64 behind its ether2; ctrack
/// is `.1`/`::1` on both (on B's side, the public address a NAT uses).
pub mod routed {
    pub const A4: &str = "10.77.1.2";
    pub const B4: &str = "10.77.2.2";
    pub const A6: &str = "fd77:1::2";
    pub const B6: &str = "fd77:2::2";
    pub const GW_A4: &str = "10.77.1.1";
    pub const GW_A6: &str = "fd77:1::1";
    /// ctrack's address on B's side (a masquerade's source).
    pub const PUB4: &str = "10.77.2.1";
    pub const PUB6: &str = "fd77:2::1";
}

/// ctrack's `/ip address` and `/ipv6 address` in the routed topology
/// ([`routed`]), and tracking on: the start of a router-mode test's script
/// (a literal, for `concat!`).
#[macro_export]
macro_rules! routed_script {
    () => {
        "/ip address
add address=10.77.1.1/24 interface=ether1
add address=10.77.2.1/24 interface=ether2
/ipv6 address
add address=fd77:1::1/64 interface=ether1
add address=fd77:2::1/64 interface=ether2
/ip firewall connection tracking
set enabled=yes
"
    };
}

/// Why a netns test cannot run here (not root, no `ip`), or `None`.
pub fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| o.stdout.trim_ascii() == b"0") {
        return Some("not root: network namespaces and veths need CAP_NET_ADMIN".into());
    }
    let ip = Command::new("ip").arg("-V").output();
    if !ip.is_ok_and(|o| o.status.success()) {
        return Some("`ip` (iproute2) is not installed".into());
    }
    None
}

/// Runs a command, bounded by `timeout` seconds (coreutils `timeout`).
pub fn run_bounded(timeout_s: u32, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("-k")
        .arg("2")
        .arg(timeout_s.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

pub(crate) fn must(args: &[&str]) {
    let out = run_bounded(20, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Quiet IPv6 on `dev` in namespace `ns`: no router solicitations, no
/// router advertisements accepted, no duplicate address detection (so an
/// address is usable at once and nothing unasked-for crosses ctrack).
pub(crate) fn quiet_ipv6(ns: &str, dev: &str) {
    for kv in [
        "accept_ra=0",
        "router_solicitations=0",
        "dad_transmits=0",
        "accept_dad=0",
    ] {
        let key = format!("net.ipv6.conf.{dev}.{kv}");
        must(&["ip", "netns", "exec", ns, "sysctl", "-q", "-w", &key]);
    }
}

/// `ethtool`, installed with apt-get if absent (we are root).
fn ensure_ethtool() {
    let have = || Command::new("ethtool").arg("--version").output().is_ok();
    if have() {
        return;
    }
    eprintln!("netns: ethtool missing, installing it with apt-get");
    let _ = run_bounded(300, &["apt-get", "install", "-y", "ethtool"]);
    assert!(
        have(),
        "ethtool is needed to turn veth offloads off (apt-get install -y ethtool failed)"
    );
}

/// Two namespaces, each with a veth whose peer is in the root namespace.
pub struct Topology {
    /// Namespace names (A, B).
    pub ns: [String; 2],
    /// Root-namespace veth ends: ctrack's ports 0 (A side) and 1 (B side).
    pub root: [String; 2],
    /// Veth ends inside the namespaces.
    pub inner: [String; 2],
}

impl Topology {
    /// Creates the namespaces and veths (unique names from the pid).
    pub fn create() -> Topology {
        ensure_ethtool();
        let pid = std::process::id();
        let t = Topology {
            ns: [format!("ctns-a-{pid}"), format!("ctns-b-{pid}")],
            root: [format!("ct{pid}a"), format!("ct{pid}b")],
            inner: [format!("ct{pid}ai"), format!("ct{pid}bi")],
        };
        // Leftovers of an earlier run with the same pid.
        t.remove();
        let addrs = [(A4, A6), (B4, B6)];
        for (i, (v4, v6)) in addrs.into_iter().enumerate() {
            let (ns, root, inner) = (&t.ns[i], &t.root[i], &t.inner[i]);
            must(&["ip", "netns", "add", ns]);
            must(&[
                "ip", "link", "add", root, "type", "veth", "peer", "name", inner, "netns", ns,
            ]);
            // Root end: no address, no IPv6 (no RS/MLD/DAD of its own), no
            // forwarding, offloads off; up and promiscuous.
            must(&[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv6.conf.{root}.disable_ipv6=1"),
            ]);
            must(&[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.conf.{root}.forwarding=0"),
            ]);
            t.offloads_off(None, root);
            must(&["ip", "link", "set", root, "promisc", "on", "up"]);

            // Namespace end: quiet IPv6 (no RS, no DAD, no RA), offloads off.
            quiet_ipv6(ns, inner);
            t.offloads_off(Some(ns), inner);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                inner,
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                inner,
                "nodad",
            ]);
            must(&["ip", "-n", ns, "link", "set", inner, "up"]);
        }
        t
    }

    /// Checksum, scatter-gather, segmentation and GRO offloads off (each
    /// feature on its own: veth versions differ in what can be changed).
    fn offloads_off(&self, ns: Option<&str>, dev: &str) {
        for feature in [
            "rx",
            "tx",
            "sg",
            "tso",
            "gso",
            "gro",
            "ufo",
            "lro",
            "rx-gro-list",
            "rx-udp-gro-forwarding",
            "tx-udp-segmentation",
        ] {
            let mut v: Vec<&str> = Vec::new();
            if let Some(ns) = ns {
                v.extend(["ip", "netns", "exec", ns]);
            }
            v.extend(["ethtool", "-K", dev, feature, "off"]);
            let _ = run_bounded(10, &v);
        }
        // The ones that matter must really be off.
        let mut v: Vec<&str> = Vec::new();
        if let Some(ns) = ns {
            v.extend(["ip", "netns", "exec", ns]);
        }
        v.extend(["ethtool", "-k", dev]);
        let out = run_bounded(10, &v);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for f in [
            "tx-checksumming",
            "tcp-segmentation-offload",
            "generic-segmentation-offload",
            "generic-receive-offload",
        ] {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{f}:")))
                .unwrap_or_else(|| panic!("ethtool -k {dev}: no {f}:\n{text}"));
            assert!(
                line.contains(": off"),
                "{dev}: {line} (could not turn it off)"
            );
        }
    }

    /// Gives namespace `i` the addresses `v4s` (/24) and `v6` (/64) and
    /// default routes via `gw4`/`gw6`.
    pub fn renumber(&self, i: usize, v4s: &[&str], v6: &str, (gw4, gw6): (&str, &str)) {
        let dev = self.inner[i].as_str();
        let mut cmds: Vec<Vec<String>> = vec![vec![
            "ip".into(),
            "addr".into(),
            "flush".into(),
            "dev".into(),
            dev.into(),
            "scope".into(),
            "global".into(),
        ]];
        for a in v4s {
            cmds.push(
                ["ip", "addr", "add", &format!("{a}/24"), "dev", dev]
                    .map(String::from)
                    .to_vec(),
            );
        }
        cmds.push(
            [
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]
            .map(String::from)
            .to_vec(),
        );
        cmds.push(
            ["ip", "route", "add", "default", "via", gw4]
                .map(String::from)
                .to_vec(),
        );
        cmds.push(
            ["ip", "-6", "route", "add", "default", "via", gw6]
                .map(String::from)
                .to_vec(),
        );
        for c in cmds {
            let c: Vec<&str> = c.iter().map(String::as_str).collect();
            let out = self.exec(i, 10, &c);
            assert!(out.status.success(), "{c:?}: {}", crate::show(&out));
        }
    }

    /// `ctrack run` arguments bridging the two root-side veth ends
    /// (`net_af_packet`, 2 queue pairs each) with 2 workers for at most
    /// 300 s, `extra` next, and timeouts of 5 minutes where the defaults are
    /// shorter, so that nothing expires while a test looks.
    pub fn ctrack_run_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--workers", "2", "--duration", "300s"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        for kv in [
            "udp-timeout=5m",
            "udp-stream-timeout=5m",
            "icmp-timeout=5m",
            "tcp-time-wait-timeout=5m",
            "tcp-close-timeout=5m",
            "tcp-fin-wait-timeout=5m",
            "tcp-close-wait-timeout=5m",
            "tcp-last-ack-timeout=5m",
        ] {
            args.extend(["--set".into(), kv.into()]);
        }
        args.extend(crate::ephemeral_servers());
        args.push("--".into());
        args.extend(crate::eal_base());
        for (i, dev) in self.root.iter().enumerate() {
            args.extend([
                "--vdev".into(),
                format!("net_af_packet{i},iface={dev},qpairs=2"),
            ]);
        }
        args
    }

    /// `ip netns exec <ns i> ARGS`, bounded by `timeout_s` seconds.
    pub fn exec(&self, i: usize, timeout_s: u32, args: &[&str]) -> Output {
        ns_exec(&self.ns[i], timeout_s, args)
    }

    /// Starts `ip netns exec <ns i> ARGS` in the background and waits (at most
    /// `ready_s` seconds) for it to print a line starting with `ready`.
    pub fn spawn_ready(&self, i: usize, args: &[&str], ready_s: u64) -> Background {
        Background {
            child: spawn_ready_in(&self.ns[i], args, ready_s),
        }
    }

    /// `tcpdump -w PATH` on the veth end inside namespace `i`, for debugging
    /// (the test starts it when `CTRACK_NETNS_CAPTURE` is set). Returns once
    /// tcpdump says it is listening (its "listening on" line), so nothing
    /// sent after is missed; panics if it does not within 10 s.
    pub fn capture(&self, i: usize, path: &std::path::Path) -> Background {
        Background {
            child: tcpdump_in(&self.ns[i], &self.inner[i], path),
        }
    }

    /// (rx, tx) packets of the veth end inside namespace `i`.
    pub fn inner_packets(&self, i: usize) -> (u64, u64) {
        let out = run_bounded(
            10,
            &[
                "ip",
                "-j",
                "-s",
                "-n",
                &self.ns[i],
                "link",
                "show",
                "dev",
                &self.inner[i],
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        let s = &v[0]["stats64"];
        (
            s["rx"]["packets"].as_u64().expect("rx packets"),
            s["tx"]["packets"].as_u64().expect("tx packets"),
        )
    }

    /// Deletes the namespaces (which deletes their veths and so the peers)
    /// and, in case a namespace was never made, the root ends.
    fn remove(&self) {
        del_namespaces(&self.ns);
        for dev in &self.root {
            let _ = Command::new("ip")
                .args(["link", "del", dev])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Two namespaces whose interfaces are ctrack's own `net_tap` ports (2
/// queues each), moved into them once ctrack has made them
/// ([`TapTopology::attach`]): frames reach ctrack exactly as the
/// namespaces' stacks send them. [`Topology`]'s `net_af_packet` ports join
/// a fanout group with `PACKET_FANOUT_FLAG_DEFRAG`, so the kernel
/// reassembles IPv4 fragments before ctrack sees them (and a datagram over
/// 2 KiB does not fit the PMD's mbuf); tests of fragments use this one.
pub struct TapTopology {
    /// Namespace names (A, B).
    pub ns: [String; 2],
    /// The tap devices: ctrack's ports 0 (in A) and 1 (in B).
    pub tap: [String; 2],
}

impl TapTopology {
    /// Creates the namespaces (unique names from the pid); the taps come
    /// with ctrack.
    pub fn create() -> TapTopology {
        let pid = std::process::id();
        let t = TapTopology {
            ns: [format!("cttap-a-{pid}"), format!("cttap-b-{pid}")],
            tap: [format!("ct{pid}ta"), format!("ct{pid}tb")],
        };
        del_namespaces(&t.ns);
        for ns in &t.ns {
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        t
    }

    /// `ctrack run` arguments as [`Topology::ctrack_run_args`]'s, with the
    /// two `net_tap` ports.
    pub fn ctrack_run_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--workers", "2", "--duration", "300s"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        for kv in ["udp-timeout=5m", "udp-stream-timeout=5m", "icmp-timeout=5m"] {
            args.extend(["--set".into(), kv.into()]);
        }
        args.extend(crate::ephemeral_servers());
        args.push("--".into());
        args.extend(crate::eal_base());
        for (i, dev) in self.tap.iter().enumerate() {
            args.extend(["--vdev".into(), format!("net_tap{i},iface={dev}")]);
        }
        args
    }

    /// Moves the taps (ctrack runs: it made them) into the namespaces and
    /// gives namespace `i` the addresses `v4s[i]` (/24) and `v6s[i]` (/64,
    /// no DAD, quiet IPv6) and default routes via `gws[i]`.
    pub fn attach(&self, v4s: [&str; 2], v6s: [&str; 2], gws: [(&str, &str); 2]) {
        for (i, (ns, dev)) in self.ns.iter().zip(&self.tap).enumerate() {
            must(&["ip", "link", "set", dev, "netns", ns]);
            quiet_ipv6(ns, dev);
            let v4 = format!("{}/24", v4s[i]);
            let v6 = format!("{}/64", v6s[i]);
            must(&["ip", "-n", ns, "addr", "add", &v4, "dev", dev]);
            must(&["ip", "-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
            must(&["ip", "-n", ns, "route", "add", "default", "via", gws[i].0]);
            must(&[
                "ip", "-n", ns, "-6", "route", "add", "default", "via", gws[i].1,
            ]);
        }
    }

    /// `ip netns exec <ns i> ARGS`, bounded by `timeout_s` seconds.
    pub fn exec(&self, i: usize, timeout_s: u32, args: &[&str]) -> Output {
        ns_exec(&self.ns[i], timeout_s, args)
    }

    /// As [`Topology::spawn_ready`].
    pub fn spawn_ready(&self, i: usize, args: &[&str], ready_s: u64) -> Background {
        Background {
            child: spawn_ready_in(&self.ns[i], args, ready_s),
        }
    }

    /// `tcpdump -w PATH` on namespace `i`'s tap, as [`Topology::capture`].
    pub fn capture(&self, i: usize, path: &std::path::Path) -> Background {
        Background {
            child: tcpdump_in(&self.ns[i], &self.tap[i], path),
        }
    }
}

impl Drop for TapTopology {
    fn drop(&mut self) {
        del_namespaces(&self.ns);
    }
}

/// `ip netns exec <ns> ARGS`, bounded by `timeout_s` seconds.
pub(crate) fn ns_exec(ns: &str, timeout_s: u32, args: &[&str]) -> Output {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run_bounded(timeout_s, &v)
}

/// Starts `ip netns exec <ns> ARGS` and waits (at most `ready_s` seconds)
/// for it to print a line starting with `ready` on stdout; kills it and
/// panics with its stderr otherwise.
pub(crate) fn spawn_ready_in(ns: &str, args: &[&str], ready_s: u64) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    let lines = line_channel(child.stdout.take().expect("stdout"));
    match lines.recv_timeout(Duration::from_secs(ready_s)) {
        Ok(l) if l.starts_with("ready") => child,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{args:?} did not get ready: {other:?}\n{err}")
        }
    }
}

/// `tcpdump -U -n -s 0 -i DEV -w PATH` in namespace `ns`, returned once
/// it says it is listening (its "listening on" line), so nothing sent after
/// is missed; panics if it does not within 10 s.
pub(crate) fn tcpdump_in(ns: &str, dev: &str, path: &std::path::Path) -> Child {
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", ns, "tcpdump", "-U", "-n", "-s", "0", "-i", dev, "-w",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    // Drains tcpdump's stderr for as long as it runs.
    let rx = line_channel(child.stderr.take().expect("stderr"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("listening on") => return child,
            Ok(l) => seen.push(l),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tcpdump on {dev} in {ns} did not start ({e}): {seen:?}");
            }
        }
    }
}

/// The lines `r` produces, read on a thread of their own for as long as the
/// writer runs (also once nobody listens: a process whose pipe is not
/// drained would block on it).
pub(crate) fn line_channel(
    r: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Deletes network namespaces (quietly: some may never have been made).
pub(crate) fn del_namespaces(ns: &[String]) {
    for ns in ns {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
}

/// A background process inside a namespace, killed when dropped.
pub struct Background {
    child: Child,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The traffic generator run inside the namespaces (python3, standard
/// library only). `server` listens in B: a TCP echo server on both
/// addresses, a UDP echo server and a UDP sink. `client SPEC...` runs in A;
/// each SPEC is `kind,src,sport,dst,dport,size,count` with kind `tcp` (send
/// `size` bytes, half-close, read the echo back, close), `udp-echo` (`count`
/// request/response exchanges of `size` bytes) or `udp-oneway` (`count`
/// datagrams, no answer). Every socket operation has a timeout.
pub const TRAFFIC_PY: &str = r#"
import select, socket, sys, threading, time

def fam(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET

def server(v4, v6, tcp_port, udp_echo, udp_sink, lifetime):
    deadline = time.time() + lifetime
    listeners = []
    for addr in (v4, v6):
        s = socket.socket(fam(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, tcp_port))
        s.listen(64)
        listeners.append(s)
    ue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ue.bind((v4, udp_echo))
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind((v4, udp_sink))
    print("ready", flush=True)

    def echo(c):
        c.settimeout(10)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError as e:
            print("echo:", e, file=sys.stderr, flush=True)
        finally:
            c.close()

    while time.time() < deadline:
        r, _, _ = select.select(listeners + [ue, us], [], [], 0.5)
        for s in r:
            if s is ue:
                d, a = ue.recvfrom(65536)
                ue.sendto(d, a)
            elif s is us:
                us.recvfrom(65536)
            else:
                c, _ = s.accept()
                threading.Thread(target=echo, args=(c,), daemon=True).start()

def client(specs):
    for spec in specs:
        kind, src, sport, dst, dport, size, count = spec.split(",")
        sport, dport, size, count = int(sport), int(dport), int(size), int(count)
        data = bytes((i * 7 + sport) & 255 for i in range(size))
        if kind == "tcp":
            s = socket.socket(fam(src), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.settimeout(10)
            s.bind((src, sport))
            s.connect((dst, dport))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
            s.close()
            assert got == data, "%s: echo differs (%d of %d bytes)" % (spec, len(got), size)
        else:
            s = socket.socket(fam(src), socket.SOCK_DGRAM)
            s.settimeout(3)
            s.bind((src, sport))
            s.connect((dst, dport))
            for _ in range(count):
                s.send(data)
                if kind == "udp-echo":
                    got = s.recv(65536)
                    assert got == data, "%s: reply differs" % spec
                else:
                    time.sleep(0.05)
            s.close()
        print("done", spec, flush=True)

if sys.argv[1] == "server":
    server(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
           float(sys.argv[7]))
else:
    client(sys.argv[2:])
"#;
