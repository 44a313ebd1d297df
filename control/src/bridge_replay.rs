//! `ctrack replay --in ether1=A.pcap --in ether2=B.pcap [--rules R.rsc]
//! --out-dir DIR`: captures replayed as arriving on interfaces, through the
//! worker's own pipeline, writing what ctrack transmits on each interface.
//!
//! The inputs are merged by timestamp (a tie goes to the input named
//! first); each frame is received on its interface's port by one
//! [`Worker`] over in-memory links ([`MemIo`]), with the capture's clock,
//! one frame per poll, so the table and the rules see the frames in capture
//! order. Ports are paired as in `ctrack run` (port 0 <-> 1, ...): a frame
//! in on `ether1` leaves on `ether2`. Every frame the worker transmits on
//! port N is written to `DIR/<name of port N>.pcap` with the timestamp of
//! the frame that caused it. The firewall is the one `ctrack run --rules`
//! runs ([`crate::firewall::Firewall`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ctrack_model::ConnSnapshot;
use ctrack_traffic::pcap::{LinkType, PcapReader, PcapWriter};
use dataplane::conntrack::{Instant, Settings, Shard, TableConfig};
use dataplane::io::mem::{MemIo, MemLink};
use dataplane::worker::{Mesh, Worker};
use serde::Serialize;

use crate::firewall::{Firewall, RuleStat, default_interfaces};
use crate::replay::Counters;

/// What [`replay_interfaces`] did.
#[derive(Debug, Serialize)]
pub struct BridgeOutcome {
    /// The table after the last frame (marks by name).
    pub connections: Vec<ConnSnapshot>,
    pub counters: Counters,
    /// Frames received and transmitted per interface, by name.
    pub interfaces: Vec<InterfaceCount>,
    /// Packets dropped by rules, by action.
    pub firewall_dropped: u64,
    pub firewall_rejected: u64,
    pub firewall_tarpitted: u64,
    /// Every rule with its counters (empty without rules).
    pub rules: Vec<RuleStat>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct InterfaceCount {
    pub name: String,
    pub received: u64,
    pub transmitted: u64,
    /// The capture written.
    pub output: PathBuf,
}

/// Parses `NAME=PATH` of `--in`.
pub fn parse_input(s: &str) -> Result<(String, PathBuf)> {
    let (name, path) = s
        .split_once('=')
        .with_context(|| format!("--in {s:?}: expected INTERFACE=FILE.pcap, e.g. ether1=a.pcap"))?;
    if name.is_empty() || path.is_empty() {
        bail!("--in {s:?}: expected INTERFACE=FILE.pcap");
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Replays `inputs` (interface name, capture) through one worker with
/// `rules` (if any), writing `out_dir/<interface>.pcap` for every port.
pub fn replay_interfaces(
    inputs: &[(String, PathBuf)],
    rules: Option<ctrack_rules::Config>,
    settings: &Settings,
    max_entries: u32,
    out_dir: &Path,
) -> Result<BridgeOutcome> {
    crate::config::check_max_entries(max_entries).context("--max-entries")?;
    if inputs.is_empty() {
        bail!("--in: give at least one INTERFACE=FILE.pcap");
    }
    // Interface names: ether1.. by default, renamed by the script; an input
    // may name either. Enough ports for every input, paired.
    let renamed = |ports: usize| -> Vec<String> {
        let d = default_interfaces(ports);
        let refs: Vec<&str> = d.iter().map(String::as_str).collect();
        rules
            .as_ref()
            .map_or(d.clone(), |c| c.interface_names(&refs))
    };
    let mut ports = 2usize;
    let mut port_of = Vec::new();
    for (name, _) in inputs {
        let found = (0..64usize).find(|&i| {
            let names = renamed(i + 1);
            names[i] == *name || format!("ether{}", i + 1) == *name
        });
        let Some(p) = found else {
            bail!(
                "--in {name}=...: no interface {name} (ports are ether1, ether2, ... or the script's names)"
            );
        };
        if port_of.contains(&p) {
            bail!("--in {name}=...: interface {name} given twice");
        }
        port_of.push(p);
        ports = ports.max((p + 2) & !1);
    }
    let names = renamed(ports);

    // The connection helpers, on the script's service ports (RouterOS's
    // defaults under it), as `ctrack run` has them.
    let service_ports = rules
        .as_ref()
        .map(|c| dataplane::helpers::service_ports(&c.service_ports));
    let mut firewall = rules.map(|r| Firewall::new(r, ports)).transpose()?;
    let mut readers = Vec::new();
    for (name, path) in inputs {
        let f = std::fs::File::open(path)
            .with_context(|| format!("--in {name}: opening {}", path.display()))?;
        let r = PcapReader::new(std::io::BufReader::new(f))
            .with_context(|| format!("--in {name}: reading {}", path.display()))?;
        if r.link_type() != LinkType::Ethernet {
            bail!(
                "--in {name}: {} is not an Ethernet capture ({:?}); the dataplane forwards Ethernet frames",
                path.display(),
                r.link_type()
            );
        }
        readers.push(r);
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut writers = names
        .iter()
        .map(|n| {
            let path = out_dir.join(format!("{n}.pcap"));
            let f = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok((
                PcapWriter::new(std::io::BufWriter::new(f), LinkType::Ethernet, true)?,
                path,
            ))
        })
        .collect::<Result<Vec<_>>>()?;

    let links = (0..ports as u16)
        .map(|p| MemLink {
            port: p,
            ..MemLink::default()
        })
        .collect();
    let tx_ports: Vec<u16> = (0..ports as u16).collect();
    let io = MemIo::new(links, ports, &tx_ports, 32);
    let (_cmd_tx, cmd_rx) = crossbeam::channel::bounded(1);
    let mut shard = Shard::new(
        TableConfig::new(max_entries).with_nat(firewall.as_ref().is_some_and(|f| f.uses_nat())),
        settings.clone(),
        0,
        dataplane::worker::random_seed(),
    );
    if let Some(p) = service_ports {
        shard.set_service_ports(p);
    }
    let mut worker = Worker::new(
        0,
        io,
        shard,
        Mesh::new(1, vec![0; ports]),
        cmd_rx,
        Arc::default(),
    );
    if let Some(fw) = &firewall {
        worker.install_firewall(fw.update(None, None));
    }

    // The next record of each input.
    let mut heads: Vec<Option<(u64, Vec<u8>)>> = Vec::with_capacity(readers.len());
    for r in &mut readers {
        heads.push(next(r)?);
    }
    let mut received = vec![0u64; ports];
    let mut transmitted = vec![0u64; ports];
    let mut now = Instant::ZERO;
    // The earliest head next (the first input on a tie).
    while let Some(i) = (0..heads.len())
        .filter(|&i| heads[i].is_some())
        .min_by_key(|&i| heads[i].as_ref().map(|h| h.0))
    {
        let Some((ts, frame)) = heads[i].take() else {
            break;
        };
        heads[i] = next(&mut readers[i])
            .with_context(|| format!("--in {}: reading {}", inputs[i].0, inputs[i].1.display()))?;
        now = now.max(Instant(ts));
        let port = port_of[i];
        received[port] += 1;
        worker.io_mut().clock = now;
        worker.io_mut().links[port].input.push_back(frame);
        while worker.poll_once() > 0 {}
        drain(&mut worker, &mut writers, &mut transmitted, now)?;
    }
    // Let the last bursts out.
    while worker.poll_once() > 0 {}
    drain(&mut worker, &mut writers, &mut transmitted, now)?;
    for (w, _) in &mut writers {
        w.flush()?;
    }

    let mark_names = firewall.as_ref().map(|f| f.names().clone());
    let mut connections = Vec::new();
    worker.shard().for_each_snapshot(now, |c| {
        let mut row = ConnSnapshot::from_raw(&c);
        if let Some(n) = &mark_names
            && let Some(name) = n.name(c.mark()).filter(|_| c.mark() != 0)
        {
            row.connection_mark = name.to_string();
        }
        connections.push(row);
    });
    connections.sort_by(|a, b| {
        (&a.protocol, &a.src_address, &a.dst_address).cmp(&(
            &b.protocol,
            &b.src_address,
            &b.dst_address,
        ))
    });
    let t = worker.totals();
    let packets: u64 = received.iter().sum();
    let counters = Counters::collect(
        packets,
        &t.parse_errors,
        std::iter::once(worker.shard().stats()),
    );
    let rules = match (&mut firewall, worker.firewall()) {
        (Some(f), Some(wf)) => f.stats(std::iter::once(wf.state().counters())),
        _ => Vec::new(),
    };
    Ok(BridgeOutcome {
        connections,
        counters,
        interfaces: names
            .iter()
            .enumerate()
            .map(|(p, n)| InterfaceCount {
                name: n.clone(),
                received: received[p],
                transmitted: transmitted[p],
                output: writers[p].1.clone(),
            })
            .collect(),
        firewall_dropped: t.fw_dropped,
        firewall_rejected: t.fw_rejected,
        firewall_tarpitted: t.fw_tarpitted,
        rules,
    })
}

fn next<R: std::io::Read>(r: &mut PcapReader<R>) -> Result<Option<(u64, Vec<u8>)>> {
    let mut buf = Vec::new();
    Ok(r.next_record(&mut buf)?.map(|h| (h.ts_nanos, buf)))
}

/// Writes what the worker transmitted since the last call, stamped `now`.
fn drain<W: std::io::Write>(
    worker: &mut Worker<MemIo>,
    writers: &mut [(PcapWriter<W>, PathBuf)],
    transmitted: &mut [u64],
    now: Instant,
) -> Result<()> {
    for (p, (w, _)) in writers.iter_mut().enumerate() {
        if let Some(Some(tx)) = worker.io_mut().tx.get_mut(p) {
            for frame in tx.output.drain(..) {
                w.write_packet(now.nanos(), &frame)?;
                transmitted[p] += 1;
            }
        }
    }
    Ok(())
}

impl BridgeOutcome {
    /// The summary lines after the table: interfaces, firewall, rules.
    pub fn render(&self) -> String {
        let mut out = self.counters.render();
        for i in &self.interfaces {
            out.push_str(&format!(
                "{}: received {}, transmitted {} -> {}\n",
                i.name,
                i.received,
                i.transmitted,
                i.output.display()
            ));
        }
        if !self.rules.is_empty() {
            out.push_str(&format!(
                "firewall: {} dropped, {} rejected, {} tarpitted\n",
                self.firewall_dropped, self.firewall_rejected, self.firewall_tarpitted
            ));
            for r in &self.rules {
                out.push_str(&format!(
                    "/{} firewall {} #{} chain={} action={}: {} packets, {} bytes{}\n",
                    r.family,
                    r.table,
                    r.position,
                    r.chain,
                    r.action,
                    r.packets,
                    r.bytes,
                    r.comment
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_traffic::pcap::PcapReader;
    use ctrack_traffic::synth::{Mix, Side, tcp_frame, udp_frame};
    use dataplane::flow::tcp_flags::SYN;

    fn write(path: &Path, frames: &[(u64, Vec<u8>)]) {
        let f = std::fs::File::create(path).unwrap();
        let mut w = PcapWriter::new(f, LinkType::Ethernet, true).unwrap();
        for (ts, fr) in frames {
            w.write_packet(*ts, fr).unwrap();
        }
        w.flush().unwrap();
    }

    fn read(path: &Path) -> Vec<Vec<u8>> {
        let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while r.next_record(&mut buf).unwrap().is_some() {
            out.push(buf.clone());
        }
        out
    }

    /// The RouterOS default firewall (ether1 is WAN) on a bridge between
    /// ether1 and ether2: connections from the LAN side pass both ways,
    /// new connections from the WAN side are dropped and create nothing.
    #[test]
    fn defconf_drops_new_connections_from_wan_and_passes_the_rest() {
        let dir = std::env::temp_dir().join(format!("ctrack-bridge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mix = Mix {
            tcp: 8,
            udp: 4,
            icmp: 2,
            exchanges: 3,
            payload: 100,
            keep_open: true,
            ..Mix::default()
        };
        // LAN clients on ether2, their servers' answers on ether1 (WAN).
        let (mut lan, mut wan) = (Vec::new(), Vec::new());
        for p in mix.packets() {
            match p.side {
                Side::Orig => lan.push((p.ts_nanos * 2, p.frame)),
                Side::Reply => wan.push((p.ts_nanos * 2, p.frame)),
            }
        }
        let lan_frames: Vec<_> = lan.iter().map(|x| x.1.clone()).collect();
        let wan_replies: Vec<_> = wan.iter().map(|x| x.1.clone()).collect();
        // Connections opened from the WAN side, between the others.
        let mut attacks = Vec::new();
        for i in 0..5u8 {
            let src = [198, 51, 100, 1 + i];
            attacks.push(tcp_frame(
                src,
                [10, 1, 0, 1],
                40000 + u16::from(i),
                22,
                7,
                0,
                SYN,
                0,
                None,
                true,
            ));
            attacks.push(udp_frame(
                src,
                [10, 1, 0, 2],
                5353,
                53 + u16::from(i),
                20,
                true,
            ));
        }
        for (k, f) in attacks.iter().enumerate() {
            wan.push((5_000 + 20_000 * k as u64, f.clone()));
        }
        wan.sort_by_key(|x| x.0);
        write(&dir.join("lan.pcap"), &lan);
        write(&dir.join("wan.pcap"), &wan);

        let mut cfg = ctrack_rules::parse_with(
            include_str!("../../ctrack-rules/tests/defconf.rsc"),
            ctrack_rules::Options { lenient: true },
        )
        .unwrap()
        .config;
        // The filter on a bridge: the defconf's masquerade (which needs the
        // WAN's address, and then translates: see
        // `defconf_masquerades_the_lan_behind_the_wan_address`) is left out.
        cfg.ip.nat.clear();
        let out_dir = dir.join("out");
        let out = replay_interfaces(
            &[
                ("ether1".into(), dir.join("wan.pcap")),
                ("ether2".into(), dir.join("lan.pcap")),
            ],
            Some(cfg),
            &Settings::default(),
            4096,
            &out_dir,
        )
        .unwrap();
        // Every LAN frame left on ether1, every answer on ether2; nothing
        // of the WAN-opened connections got through.
        assert_eq!(read(&out_dir.join("ether1.pcap")), lan_frames);
        assert_eq!(read(&out_dir.join("ether2.pcap")), wan_replies);
        assert_eq!(
            out.connections.len() as u32,
            mix.tcp + mix.udp + mix.icmp,
            "no connection from WAN"
        );
        assert_eq!(out.firewall_dropped, attacks.len() as u64);
        let by_comment = |c: &str| {
            out.rules
                .iter()
                .find(|r| r.family == "ip" && r.comment.as_deref() == Some(c))
                .unwrap()
                .clone()
        };
        let drop_wan = by_comment("defconf: drop all from WAN not DSTNATed");
        assert_eq!(drop_wan.packets, attacks.len() as u64);
        // Established connections are fast-tracked: their later packets
        // pass no rule.
        let ft = by_comment("defconf: fasttrack");
        let est = by_comment("defconf: accept established,related, untracked");
        assert_eq!(ft.packets, est.packets);
        let conns = u64::from(mix.tcp + mix.udp + mix.icmp);
        let frames = (lan_frames.len() + wan_replies.len()) as u64;
        assert!(ft.packets > 0 && ft.packets + conns < frames, "{ft:?}");
        assert_eq!(by_comment("defconf: drop invalid").packets, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The defconf's masquerade with an address on the WAN (ether1): a LAN
    /// client's datagram leaves from the WAN address (its port kept), the
    /// answer to that address comes back to the client, and the
    /// connection shows the translation.
    #[test]
    fn defconf_masquerades_the_lan_behind_the_wan_address() {
        let dir = std::env::temp_dir().join(format!("ctrack-bridge-nat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (client, server, wan) = ([192, 168, 88, 10], [8, 8, 8, 8], [203, 0, 113, 2]);
        write(
            &dir.join("lan.pcap"),
            &[(1_000, udp_frame(client, server, 5000, 53, 30, true))],
        );
        write(
            &dir.join("wan.pcap"),
            &[(2_000, udp_frame(server, wan, 53, 5000, 60, false))],
        );
        let script = format!(
            "{}\n/ip address\nadd address=203.0.113.2/24 interface=ether1\n",
            include_str!("../../ctrack-rules/tests/defconf.rsc")
        );
        let cfg = ctrack_rules::parse_with(&script, ctrack_rules::Options { lenient: true })
            .unwrap()
            .config;
        let out_dir = dir.join("out");
        let out = replay_interfaces(
            &[
                ("ether1".into(), dir.join("wan.pcap")),
                ("ether2".into(), dir.join("lan.pcap")),
            ],
            Some(cfg),
            &Settings::default(),
            4096,
            &out_dir,
        )
        .unwrap();
        let tuple = |f: &[u8]| dataplane::packet::parse_ethernet(f).unwrap().tuple;
        let left = read(&out_dir.join("ether1.pcap"));
        assert_eq!(left.len(), 1);
        let t = tuple(&left[0]);
        assert_eq!(
            (t.src_ip().to_string(), t.src_port, t.dst_port),
            ("203.0.113.2".to_string(), 5000, 53)
        );
        let back = read(&out_dir.join("ether2.pcap"));
        assert_eq!(back.len(), 1);
        let r = tuple(&back[0]);
        assert_eq!(
            (r.dst_ip().to_string(), r.dst_port),
            ("192.168.88.10".to_string(), 5000)
        );
        assert_eq!(out.connections.len(), 1);
        let c = &out.connections[0];
        assert!(c.srcnat && !c.dstnat, "{c:?}");
        assert_eq!(c.reply_src_address, "8.8.8.8:53");
        assert_eq!(c.reply_dst_address, "203.0.113.2:5000");
        let masq = out
            .rules
            .iter()
            .find(|r| r.comment.as_deref() == Some("defconf: masquerade"))
            .unwrap();
        assert_eq!(masq.packets, 1, "the first packet only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
