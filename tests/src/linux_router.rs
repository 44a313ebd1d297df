//! A Linux router in a network namespace, the reference the firewall's
//! comparison tests hold ctrack against: the same ruleset (its nftables
//! equivalent) on Linux, the same traffic, and the frames each emits on
//! each side.
//!
//! ```text
//!  netns client                 netns router                   netns server
//!  <p>c 10.78.1.2 ==veth== <p>rc 10.78.1.1 | <p>rs 10.78.2.1 ==veth== <p>s 10.78.2.2
//!       fd78:1::2              fd78:1::1   |     fd78:2::1               fd78:2::2
//!   (and 10.78.1.3, fd78:1::3)
//!                           (nftables, conntrack, forwarding)
//! ```
//!
//! Every address lives inside the namespaces the harness creates, and every
//! interface has a fixed MAC address ([`MAC`]), so two runs emit the same
//! frames. The client and server route through the router; neighbours are
//! found by ARP/ND as on any LAN. Checksum, segmentation and GRO offloads
//! are off on all four ends, so each captured frame is one wire frame with
//! its checksums filled in. IPv6 is kept quiet (no router solicitations, no
//! DAD) so the captures hold only the test's traffic and the neighbour
//! discovery it causes. Everything is deleted when the [`LinuxRouter`] is
//! dropped, also when the test panics.
//!
//! [`LinuxRouter::capture`] runs `tcpdump -w` on the router's two
//! interfaces while a closure makes traffic (inside the namespaces: see
//! [`LinuxRouter::exec`]), waits until each capture holds as many frames as
//! the interface counted (no sleep), and returns the two captures.
//! [`Captures::received`] gives what entered the router on a side, with
//! capture times (the input to give ctrack for the same traffic: `ctrack
//! replay --in ether1=... --in ether2=...`), [`Captures::emitted`] what the
//! router sent there (forwarded and generated frames: what ctrack's
//! `--out-dir` files are compared with, Ethernet, TTL and IPv4 header
//! checksum aside).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::netns::{
    del_namespaces, must, ns_exec, quiet_ipv6, run_bounded, spawn_ready_in, tcpdump_in,
};

/// One of the three namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    Client,
    Router,
    Server,
}

/// The client's addresses.
pub const CLIENT4: &str = "10.78.1.2";
pub const CLIENT6: &str = "fd78:1::2";
/// The client's second addresses (a second host, for whatever must not
/// share per-source state with the first: Linux's ICMP rate limit). Only
/// used as a source where a program binds to them: the IPv4 one is
/// secondary, the IPv6 one deprecated.
pub const CLIENT4_2: &str = "10.78.1.3";
pub const CLIENT6_2: &str = "fd78:1::3";
/// The router's addresses on the client side (the client's gateway).
pub const ROUTER_C4: &str = "10.78.1.1";
pub const ROUTER_C6: &str = "fd78:1::1";
/// The router's addresses on the server side (the server's gateway).
pub const ROUTER_S4: &str = "10.78.2.1";
pub const ROUTER_S6: &str = "fd78:2::1";
/// The server's addresses.
pub const SERVER4: &str = "10.78.2.2";
pub const SERVER6: &str = "fd78:2::2";

/// The MAC addresses: the client, the router's client side, the router's
/// server side, the server.
pub const MAC: [[u8; 6]; 4] = [
    [0x02, 0x78, 0, 0, 1, 2],
    [0x02, 0x78, 0, 0, 1, 1],
    [0x02, 0x78, 0, 0, 2, 1],
    [0x02, 0x78, 0, 0, 2, 2],
];

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Why the Linux router cannot run here (not root; `ip`, `nft` or
/// `tcpdump` missing: `scripts/deps.sh` installs them), or `None`.
pub fn skip_reason() -> Option<String> {
    if let Some(r) = crate::netns::skip_reason() {
        return Some(r);
    }
    for (tool, arg, package) in [
        ("nft", "--version", "nftables"),
        ("tcpdump", "--version", "tcpdump"),
        ("ethtool", "--version", "ethtool"),
        ("python3", "--version", "python3"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!(
                "`{tool}` is not installed (apt-get install {package}, or run scripts/test.sh)"
            ));
        }
    }
    None
}

/// The three namespaces and their two veth pairs.
pub struct LinuxRouter {
    /// Namespace names: client, router, server.
    pub ns: [String; 3],
    /// Interface names: the client's, the router's client side, the
    /// router's server side, the server's.
    pub dev: [String; 4],
}

impl LinuxRouter {
    /// Creates the namespaces, links, addresses and routes, with IPv4 and
    /// IPv6 forwarding on in the router and no ruleset yet (everything is
    /// forwarded).
    pub fn create() -> LinuxRouter {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let r = LinuxRouter {
            ns: ["c", "r", "s"].map(|x| format!("ctlr-{x}-{id}")),
            dev: ["c", "rc", "rs", "s"].map(|x| format!("lr{id}{x}")),
        };
        r.remove();
        for ns in &r.ns {
            must(&["ip", "netns", "add", ns]);
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let [c, rr, s] = [0, 1, 2].map(|i| r.ns[i].as_str());
        let [dc, drc, drs, ds] = [0, 1, 2, 3].map(|i| r.dev[i].as_str());
        must(&[
            "ip", "-n", c, "link", "add", dc, "type", "veth", "peer", "name", drc, "netns", rr,
        ]);
        must(&[
            "ip", "-n", s, "link", "add", ds, "type", "veth", "peer", "name", drs, "netns", rr,
        ]);
        let ends = [
            (c, dc, MAC[0], CLIENT4, CLIENT6),
            (rr, drc, MAC[1], ROUTER_C4, ROUTER_C6),
            (rr, drs, MAC[2], ROUTER_S4, ROUTER_S6),
            (s, ds, MAC[3], SERVER4, SERVER6),
        ];
        for (ns, dev, mac, v4, v6) in ends {
            quiet_ipv6(ns, dev);
            offloads_off(ns, dev);
            must(&["ip", "-n", ns, "link", "set", dev, "address", &mac_str(mac)]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                dev,
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            must(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        must(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT4_2}/24"),
            "dev",
            dc,
        ]);
        must(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT6_2}/64"),
            "dev",
            dc,
            "nodad",
            // Deprecated, so that connections choose the first address as
            // their source (RFC 6724 rule 3); binding to it still works.
            "preferred_lft",
            "0",
        ]);
        for (ns, gw4, gw6) in [(c, ROUTER_C4, ROUTER_C6), (s, ROUTER_S4, ROUTER_S6)] {
            must(&["ip", "-n", ns, "route", "add", "default", "via", gw4]);
            must(&["ip", "-n", ns, "-6", "route", "add", "default", "via", gw6]);
        }
        for kv in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            must(&["ip", "netns", "exec", rr, "sysctl", "-q", "-w", kv]);
        }
        r
    }

    fn name(&self, ns: Ns) -> &str {
        &self.ns[ns as usize]
    }

    /// Loads an nftables ruleset (`nft -f` syntax) into the router, after
    /// flushing whatever was there. Conntrack starts with the first `ct`
    /// expression. `Err` carries nft's message.
    pub fn load_ruleset(&self, ruleset: &str) -> Result<(), String> {
        let text = format!("flush ruleset\n{ruleset}\n");
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.name(Ns::Router), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn nft: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("write to nft: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `ip netns exec <ns> ARGS`, bounded by `timeout_s` seconds.
    pub fn exec(&self, ns: Ns, timeout_s: u32, args: &[&str]) -> Output {
        ns_exec(self.name(ns), timeout_s, args)
    }

    /// Starts `ip netns exec <ns> ARGS` in the background and waits (at most
    /// `ready_s` seconds) for it to print a line starting with `ready` on
    /// stdout; panics with its stderr otherwise. Killed when dropped.
    pub fn spawn_ready(&self, ns: Ns, args: &[&str], ready_s: u64) -> Process {
        Process {
            child: spawn_ready_in(self.name(ns), args, ready_s),
        }
    }

    /// Captures every frame on the router's two interfaces while `traffic`
    /// runs, into `dir/client_side.pcap` and `dir/server_side.pcap`.
    ///
    /// Each `tcpdump` is ready (it said "listening on") before `traffic`
    /// starts. Afterwards each capture is read until it holds as many
    /// frames as its interface sent and received meanwhile (at most 10 s;
    /// what it has then is returned), and tcpdump is stopped.
    pub fn capture<T>(&self, dir: &Path, traffic: impl FnOnce(&LinuxRouter) -> T) -> (Captures, T) {
        let paths = [dir.join("client_side.pcap"), dir.join("server_side.pcap")];
        let mut dumps = Vec::new();
        for (dev, path) in [&self.dev[1], &self.dev[2]].into_iter().zip(&paths) {
            dumps.push(self.tcpdump(dev, path));
        }
        let before = [1, 2].map(|i| self.frames_counted(i));
        let result = traffic(self);
        let after = [1, 2].map(|i| self.frames_counted(i));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for (i, path) in paths.iter().enumerate() {
            let want = after[i] - before[i];
            // Polls the file tcpdump writes (packet-buffered): the condition
            // is the frames being there, not time passing.
            while count_frames(path) < want && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for d in &mut dumps {
            d.interrupt();
        }
        drop(dumps);
        let [(client_times, client_side), (server_times, server_side)] =
            paths.each_ref().map(|p| read_frames(p).into_iter().unzip());
        let [client_path, server_path] = paths;
        (
            Captures {
                client_side,
                server_side,
                client_path,
                server_path,
                times: [client_times, server_times],
            },
            result,
        )
    }

    /// `tcpdump -U -w path` on the router's interface `dev`, once it is
    /// listening.
    fn tcpdump(&self, dev: &str, path: &Path) -> Process {
        Process {
            child: tcpdump_in(self.name(Ns::Router), dev, path),
        }
    }

    /// Frames router interface `dev[i]` received plus sent so far.
    fn frames_counted(&self, i: usize) -> u64 {
        let out = run_bounded(
            10,
            &[
                "ip",
                "-j",
                "-s",
                "-n",
                self.name(Ns::Router),
                "link",
                "show",
                "dev",
                &self.dev[i],
            ],
        );
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        let s = &v[0]["stats64"];
        s["rx"]["packets"].as_u64().expect("rx packets")
            + s["tx"]["packets"].as_u64().expect("tx packets")
    }

    fn remove(&self) {
        del_namespaces(&self.ns);
    }
}

impl Drop for LinuxRouter {
    fn drop(&mut self) {
        self.remove();
    }
}

/// What the router's interfaces carried, in capture order: frames received
/// and sent on the client side and on the server side.
#[derive(Debug)]
pub struct Captures {
    pub client_side: Vec<Vec<u8>>,
    pub server_side: Vec<Vec<u8>>,
    pub client_path: PathBuf,
    pub server_path: PathBuf,
    /// Capture times (ns since the epoch) of each side's frames.
    times: [Vec<u64>; 2],
}

/// One side of the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The router's interface towards the client (`ether1` in a comparison).
    Client = 0,
    /// The router's interface towards the server (`ether2`).
    Server = 1,
}

impl Captures {
    fn side(&self, side: Side) -> (&[Vec<u8>], &[u64], [u8; 6]) {
        match side {
            Side::Client => (&self.client_side, &self.times[0], MAC[1]),
            Side::Server => (&self.server_side, &self.times[1], MAC[2]),
        }
    }

    /// The frames the router received on `side` (Ethernet source not the
    /// router's), with their capture times: the same traffic as input for
    /// another router (`ctrack replay --in ether1=...`, written with
    /// `crate::write_pcap`).
    pub fn received(&self, side: Side) -> Vec<(u64, Vec<u8>)> {
        let (frames, times, mac) = self.side(side);
        frames
            .iter()
            .zip(times)
            .filter(|(f, _)| f.get(6..12) != Some(&mac[..]))
            .map(|(f, &t)| (t, f.clone()))
            .collect()
    }

    /// The frames the router sent on `side` (Ethernet source the
    /// router's): forwarded and generated ones, in order.
    pub fn emitted(&self, side: Side) -> Vec<Vec<u8>> {
        let (frames, _, mac) = self.side(side);
        frames
            .iter()
            .filter(|f| f.get(6..12) == Some(&mac[..]))
            .cloned()
            .collect()
    }
}

/// A background process, killed (if still running) when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT (tcpdump then closes its file cleanly), and waits at most
    /// 5 s before killing it.
    fn interrupt(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Frames in a pcap that may still be being written (a cut record ends
/// it), with their capture times.
fn read_frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut r) = ctrack_traffic::pcap::PcapReader::new(BufReader::new(f)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Ok(Some(h)) = r.next_record(&mut buf) {
        out.push((h.ts_nanos, buf.clone()));
    }
    out
}

fn count_frames(path: &Path) -> u64 {
    read_frames(path).len() as u64
}

/// Checksum, scatter-gather, segmentation and GRO offloads off on `dev` in
/// `ns` (each on its own: veth versions differ in what can be changed).
fn offloads_off(ns: &str, dev: &str) {
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
    ] {
        let _ = run_bounded(
            10,
            &[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, "off",
            ],
        );
    }
}

/// A TCP server for the namespaces (python3, standard library only): listens
/// on `ADDR PORT...` (each address, each port), prints `ready`, and echoes
/// what each connection sends until it closes. Runs until killed.
pub const ECHO_SERVER_PY: &str = r#"
import select, socket, sys, threading
addrs = [a for a in sys.argv[1:] if not a.isdigit()]
ports = [int(p) for p in sys.argv[1:] if p.isdigit()]
ls = []
for a in addrs:
    for p in ports:
        s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a, p))
        s.listen(16)
        ls.append(s)
print("ready", flush=True)
def echo(c):
    c.settimeout(10)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    for s in select.select(ls, [], [])[0]:
        threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"#;

/// A client for the namespaces. For each `ADDR,PORT[,TOS]` argument it
/// connects over TCP (5 s timeout; with that IPv4 TOS / IPv6 traffic
/// class), sends `hello` and reads the echo; for each `udp,ADDR,PORT,SIZE`
/// it sends one datagram of SIZE bytes from a connected socket and waits
/// (2 s) for an answer; for each `udpburst,SRC,ADDR,PORT,COUNT` it sends
/// COUNT small datagrams at once from SRC on an unconnected socket (errors
/// are not read). It prints one line per argument: `SPEC sent` (a burst), `SPEC ok`,
/// `SPEC refused` (TCP: a reset answered the SYN; UDP: a port unreachable),
/// `SPEC reset` (TCP: a reset after the connection was established),
/// `SPEC unreachable` (an ICMP error), `SPEC timeout` or `SPEC error WHAT`.
pub const CLIENT_PY: &str = r#"
import errno, socket, sys
def udp(spec, a, p, size):
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((a, int(p)))
    s.send(bytes(i & 255 for i in range(int(size))))
    s.recv(65536)
    s.close()

for spec in sys.argv[1:]:
    if spec.startswith("udpburst,"):
        _, src, a, p, n = spec.split(",")
        s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        for i in range(int(n)):
            s.sendto(b"burst %d" % i, (a, int(p)))
        s.close()
        print(spec, "sent", flush=True)
        continue
    if spec.startswith("udp,"):
        try:
            udp(spec, *spec.split(",")[1:])
            print(spec, "ok", flush=True)
        except ConnectionRefusedError:
            print(spec, "refused", flush=True)
        except socket.timeout:
            print(spec, "timeout", flush=True)
        except OSError as e:
            print(spec, "error", e, flush=True)
        continue
    a, p, *tos = spec.split(",")
    s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM)
    if tos and ":" in a:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, int(tos[0]))
    elif tos:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, int(tos[0]))
    s.settimeout(5)
    try:
        s.connect((a, int(p)))
        s.sendall(b"hello")
        got = b""
        while len(got) < 5:
            d = s.recv(5 - len(got))
            if not d:
                break
            got += d
        print(spec, "ok" if got == b"hello" else "short", flush=True)
    except ConnectionRefusedError:
        print(spec, "refused", flush=True)
    except ConnectionResetError:
        print(spec, "reset", flush=True)
    except socket.timeout:
        print(spec, "timeout", flush=True)
    except OSError as e:
        if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES):
            print(spec, "unreachable", flush=True)
        else:
            print(spec, "error", e, flush=True)
    s.close()
"#;

/// An IP frame's bytes from the IP header on, without what a bridge and a
/// router set differently: the TTL and header checksum (IPv4), the hop
/// limit (IPv6); and in an ICMP or ICMPv6 error, the IPv4 ID and the IPv6
/// flow label the sender picks (Linux: random), the quoted packet's TTL or
/// hop limit (and its IPv4 header checksum) and the ICMP checksum. `None`
/// for ARP, neighbour discovery and MLD.
pub fn comparable(f: &[u8]) -> Option<Vec<u8>> {
    let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let mut ip = f.get(14..)?.to_vec();
    match et {
        0x0800 if ip.len() >= 20 => {
            ip[8] = 0;
            ip[10..12].fill(0);
            let hl = usize::from(ip[0] & 0x0f) * 4;
            if ip[9] == 1 && ip.get(hl).is_some_and(|t| matches!(t, 3 | 11 | 12)) {
                ip[4..6].fill(0);
                // The quoted header's TTL and checksum: a router quotes the
                // packet it forwarded (TTL decremented), ctrack's replay
                // bridges it (the ICMP checksum over them cannot be
                // compared then either).
                let q = hl + 8;
                if ip.len() >= q + 12 {
                    ip[q + 8] = 0;
                    ip[q + 10..q + 12].fill(0);
                    ip[hl + 2..hl + 4].fill(0);
                }
            }
        }
        0x86dd if ip.len() >= 40 => {
            // Neighbour discovery, and anything to link-local multicast
            // (MLD reports behind a hop-by-hop header).
            if ip[6] == 58 && ip.get(40).is_some_and(|t| (130..=143).contains(t))
                || ip[24..26] == [0xff, 0x02]
            {
                return None;
            }
            ip[7] = 0;
            if ip[6] == 58 && ip.get(40).is_some_and(|t| (1..=4).contains(t)) {
                ip[1] &= 0xf0;
                ip[2..4].fill(0);
                // The quoted hop limit, and the ICMPv6 checksum over it
                // (see IPv4 above).
                if ip.len() >= 48 + 8 {
                    ip[48 + 7] = 0;
                    ip[42..44].fill(0);
                }
            }
        }
        _ => return None,
    }
    Some(ip)
}

/// `frames` as [`comparable`] has them, sorted (the order of two sides'
/// frames is the merge's, not the wire's).
pub fn sorted(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut v: Vec<_> = frames.iter().filter_map(|f| comparable(f)).collect();
    v.sort();
    v
}

/// The frames the Linux router received, through `ctrack replay --in
/// ether1=... --in ether2=... --rules` with the script `rsc` (one worker):
/// what ctrack emits on each side, every checksum valid, the same IP
/// packets Linux emitted there ([`comparable`]). Returns ctrack's frames per
/// side and the flags of the replay's table rows (`E`: expected, ...).
pub fn replay_as_linux(dir: &Path, caps: &Captures, rsc: &str) -> ([Vec<Vec<u8>>; 2], Vec<String>) {
    use dataplane::packet::checksum::{RxChecksum, verify_ethernet};
    crate::write_pcap(&dir.join("client.pcap"), &caps.received(Side::Client));
    crate::write_pcap(&dir.join("server.pcap"), &caps.received(Side::Server));
    std::fs::write(dir.join("rules.rsc"), rsc).expect("write the script");
    let out_dir = dir.join("out");
    let run = crate::ctrack(&[
        "replay".into(),
        "--in".into(),
        format!("ether1={}", dir.join("client.pcap").display()),
        "--in".into(),
        format!("ether2={}", dir.join("server.pcap").display()),
        "--rules".into(),
        dir.join("rules.rsc").display().to_string(),
        "--out-dir".into(),
        out_dir.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", crate::show(&run));
    let ours = [
        crate::read_pcap(&out_dir.join("ether1.pcap")),
        crate::read_pcap(&out_dir.join("ether2.pcap")),
    ];
    for f in ours.iter().flatten() {
        verify_ethernet(f, RxChecksum::UNKNOWN)
            .unwrap_or_else(|e| panic!("ctrack emitted a bad checksum ({e:?}): {f:02x?}"));
    }
    for (side, mine) in [(Side::Client, &ours[0]), (Side::Server, &ours[1])] {
        let linux = sorted(&caps.emitted(side));
        let mine = sorted(mine);
        assert!(!linux.is_empty());
        let only = |a: &[Vec<u8>], b: &[Vec<u8>]| -> Vec<Vec<u8>> {
            a.iter().filter(|x| !b.contains(x)).cloned().collect()
        };
        assert!(
            mine == linux,
            "{side:?} side: ctrack's frames differ from Linux's: {} and {} frames; \
             only ctrack's: {:02x?}\nonly Linux's: {:02x?}\n{}",
            mine.len(),
            linux.len(),
            only(&mine, &linux),
            only(&linux, &mine),
            crate::show(&run)
        );
    }
    let text = String::from_utf8_lossy(&run.stdout);
    let flags = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect();
    (ours, flags)
}
