//! Connection helpers in the dataplane: which ports get which helper (from
//! `/ip firewall service-port`), and how expectations reach every worker.
//!
//! The helpers themselves and the expectations are the core's
//! ([`ctrack_core::helper`], [`crate::conntrack::expect`]); the worker runs
//! a connection's helper on each of its packets after tracking (see
//! `Core::after_verdict`), only for connections that have one.
//!
//! **Across workers.** A data connection's first packet may reach any
//! worker (RSS spreads it by its own tuple; an FTP PASV expectation has an
//! open source port, so its owner is not known in advance). Every worker
//! therefore holds a copy of every expectation. What a shard changes (an
//! expectation added, used, evicted, gone with its master) it queues
//! ([`Shard::drain_expect_msgs`]); between bursts its worker pushes each
//! change onto one single-producer ring per other worker ([`ExpectMesh`],
//! like the packet handoff `Mesh`) and applies what the others pushed to
//! it. No lock; nothing allocated per packet. The window: a data
//! connection whose first packet reaches another worker before that worker
//! drained the ring (one loop, microseconds) is `new`, not `related`; a
//! client's SYN retransmission (1 s later) then matches. A full ring loses
//! the change (counted in `msgs_lost`): an addition lost means the data
//! connection is `new` on that worker; a removal lost leaves the copy until
//! it times out (5 minutes), during which it could open a second
//! connection as `related`.

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

use crate::conntrack::Shard;
use crate::conntrack::expect::ExpectMsg;
use ctrack_core::helper::{HelperKind, ServicePorts};

/// Capacity of each ring between two workers.
pub const EXPECT_RING: usize = 1024;

/// The expectation rings between workers.
pub struct ExpectMesh {
    /// `rings[src * workers + dst]` (the diagonal unused).
    rings: Vec<ArrayQueue<ExpectMsg>>,
    workers: usize,
}

impl ExpectMesh {
    pub fn new(workers: usize) -> Arc<ExpectMesh> {
        let workers = workers.max(1);
        Arc::new(ExpectMesh {
            rings: (0..workers * workers)
                .map(|i| {
                    ArrayQueue::new(if i / workers == i % workers {
                        1
                    } else {
                        EXPECT_RING
                    })
                })
                .collect(),
            workers,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    fn ring(&self, src: usize, dst: usize) -> &ArrayQueue<ExpectMsg> {
        &self.rings[src * self.workers + dst]
    }

    /// Worker `me`'s turn between bursts: passes its shard's changes to the
    /// others and applies theirs (at most one ring's capacity each).
    pub fn exchange(&self, me: u16, shard: &mut Shard) {
        self.send(me, shard);
        self.receive(me, shard);
    }

    /// Passes worker `me`'s queued changes to the others. The worker calls
    /// it right after a helper ran, before the packet that announced the
    /// data connection is transmitted: the peer's first packet of that
    /// connection cannot reach another worker before the change is in its
    /// ring.
    pub fn send(&self, me: u16, shard: &mut Shard) {
        let me = usize::from(me);
        if me >= self.workers {
            return;
        }
        let mut lost = 0;
        for m in shard.drain_expect_msgs() {
            for dst in (0..self.workers).filter(|&d| d != me) {
                if self.ring(me, dst).push(m).is_err() {
                    lost += 1;
                }
            }
        }
        for _ in 0..lost {
            shard.count_expect_msg_lost();
        }
    }

    /// Applies the other workers' changes to worker `me`'s shard. The
    /// worker calls it before each lookup phase (a pop on an empty ring is
    /// two loads), so a packet is tracked against every change pushed
    /// before it was received.
    #[inline]
    pub fn receive(&self, me: u16, shard: &mut Shard) {
        let me = usize::from(me);
        if me >= self.workers {
            return;
        }
        for src in (0..self.workers).filter(|&s| s != me) {
            let ring = self.ring(src, me);
            for _ in 0..EXPECT_RING {
                let Some(m) = ring.pop() else { break };
                shard.apply_expect(m);
            }
        }
    }
}

/// Reason code of [`crate::conntrack::Verdict::Refused`] for a packet a
/// helper drops (Linux's FTP helper on a partial command); counted with the
/// table's drops and in the shard's `expect.dropped`.
pub const HELPER_DROP: u16 = 9;

/// The `connection-type` value (an index into
/// [`ctrack_rules::value::CONN_TYPES`]) of an entry's helper (`u8`, 0: none).
#[inline]
pub fn conn_type(helper: u8) -> Option<u8> {
    let k = HelperKind::from_u8(helper)?;
    ctrack_rules::value::CONN_TYPES
        .iter()
        .position(|n| *n == k.name())
        .map(|i| i as u8)
}

/// The helpers' ports from a ruleset's `/ip firewall service-port` items,
/// over RouterOS's defaults (ftp 21, tftp 69, pptp 1723, all enabled).
/// Service ports without a helper here (sip, h323, irc, ...) are ignored.
pub fn service_ports(items: &[ctrack_rules::model::ServicePort]) -> ServicePorts {
    let mut enabled = [true; 3];
    let mut ports: [Option<Vec<(u16, u16)>>; 3] = [None, None, None];
    for sp in items {
        let Some(k) = HelperKind::from_name(&sp.name) else {
            continue;
        };
        let i = usize::from(k as u8 - 1);
        if let Some(d) = sp.disabled {
            enabled[i] = !d;
        }
        if let Some(p) = &sp.ports {
            ports[i] = Some(p.0.clone());
        }
    }
    let mut out = ServicePorts::none();
    for k in HelperKind::ALL {
        let i = usize::from(k as u8 - 1);
        if !enabled[i] {
            continue;
        }
        match &ports[i] {
            Some(list) => {
                for &(lo, hi) in list {
                    out.push(k, lo, hi);
                }
            }
            None => {
                out.push(k, k.default_port(), k.default_port());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_core::flow::proto;

    #[test]
    fn service_ports_over_the_defaults() {
        let d = service_ports(&[]);
        assert_eq!(d, ServicePorts::default());
        let cfg = ctrack_rules::parse(
            "/ip firewall service-port\nset ftp ports=21,2121\nset tftp disabled=yes\nset sip disabled=yes\n",
        )
        .unwrap();
        let s = service_ports(&cfg.service_ports);
        assert_eq!(s.helper_for(proto::TCP, 2121), Some(HelperKind::Ftp));
        assert_eq!(s.helper_for(proto::TCP, 21), Some(HelperKind::Ftp));
        assert_eq!(s.helper_for(proto::UDP, 69), None);
        assert_eq!(s.helper_for(proto::TCP, 1723), Some(HelperKind::Pptp));
    }
}

/// The firewall and the worker with helpers: only `established,related`
/// and new connections to port 21 pass, so the FTP data connection passes
/// only as `related`.
#[cfg(test)]
mod worker_tests {
    use super::*;
    use crate::conntrack::{Settings, TableConfig};
    use crate::firewall::FirewallUpdate;
    use crate::flow::tcp_flags::{ACK, PSH, SYN};
    use crate::io::mem::MemIo;
    use crate::worker::{Command, Mesh, Worker, random_seed};
    use ctrack_core::conntrack::Instant;
    use ctrack_rules::{Names, Ruleset, parse};
    use ctrack_traffic::synth::tcp_frame;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    const RULES: &str = "/ip firewall filter\n\
        add chain=forward action=accept connection-state=established,related\n\
        add chain=forward action=accept connection-state=new protocol=tcp dst-port=21\n\
        add chain=forward action=drop\n";

    fn worker() -> Worker<MemIo> {
        let cfg = parse(RULES).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap());
        let io = MemIo::pair();
        let (tx, rx) = crossbeam::channel::bounded(4);
        let mut shard = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            0,
            random_seed(),
        );
        shard.set_service_ports(service_ports(&cfg.service_ports));
        let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 0]), rx, Arc::default());
        tx.send(Command::Firewall(Box::new(FirewallUpdate {
            ruleset: Some(rs),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: None,
        })))
        .unwrap();
        w.poll_once();
        w
    }

    /// A segment with `payload`, checksums filled.
    #[allow(clippy::too_many_arguments)]
    fn seg(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = tcp_frame(
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            payload.len(),
            None,
            true,
        );
        let n = f.len();
        f[n - payload.len()..].copy_from_slice(payload);
        ctrack_core::packet::checksum::fill_ip(&mut f[14..]);
        f
    }

    /// Sends `frame` in on the client's (0) or the server's (1) side;
    /// returns whether it went out of the other.
    fn send(w: &mut Worker<MemIo>, from_server: bool, frame: Vec<u8>) -> bool {
        let (inp, out) = if from_server { (1, 0u16) } else { (0, 1u16) };
        let before = w.io().output(out).len();
        w.io_mut().links[inp].input.push_back(frame);
        while w.poll_once() > 0 {}
        w.io().output(out).len() > before
    }

    #[test]
    fn passive_ftp_data_connection_passes_as_related() {
        let mut w = worker();
        let (c, s) = (CLIENT, SERVER);
        assert!(send(&mut w, false, seg(c, s, 40000, 21, 100, 0, SYN, b"")));
        assert!(send(
            &mut w,
            true,
            seg(s, c, 21, 40000, 5000, 101, SYN | ACK, b"")
        ));
        assert!(send(
            &mut w,
            false,
            seg(c, s, 40000, 21, 101, 5001, ACK, b"")
        ));
        let greet = b"220 ready\r\n";
        assert!(send(
            &mut w,
            true,
            seg(s, c, 21, 40000, 5001, 101, ACK | PSH, greet)
        ));
        // A data connection before it is announced: dropped (new, not 21).
        assert!(!send(&mut w, false, seg(c, s, 40001, 5001, 1, 0, SYN, b"")));
        let pasv = b"227 Entering Passive Mode (10,0,0,2,19,137).\r\n";
        let seq = 5001 + greet.len() as u32;
        assert!(send(
            &mut w,
            true,
            seg(s, c, 21, 40000, seq, 101, ACK | PSH, pasv)
        ));
        assert_eq!(w.shard().stats().expect.live, 1);
        // Now the announced one passes, as related.
        assert!(send(
            &mut w,
            false,
            seg(c, s, 40002, 19 * 256 + 137, 1, 0, SYN, b"")
        ));
        let mut data = None;
        w.shard().for_each_snapshot(Instant::ZERO, |r| {
            if r.entry().key().dport == 19 * 256 + 137 {
                data = Some(*r.entry());
            }
        });
        let data = data.expect("the data connection is tracked");
        assert!(data.expected());
        assert_eq!(data.helper(), Some(HelperKind::Ftp));
        assert_eq!(w.shard().stats().expect.used, 1);
        // Used once: a second connection to it is new again, and dropped.
        assert!(!send(
            &mut w,
            false,
            seg(c, s, 40003, 19 * 256 + 137, 1, 0, SYN, b"")
        ));
        // A partial command is dropped, as Linux does.
        let seq = seq + pasv.len() as u32;
        assert!(!send(
            &mut w,
            true,
            seg(s, c, 21, 40000, seq, 101, ACK | PSH, b"227 (10,0")
        ));
        assert_eq!(w.shard().stats().expect.dropped, 1);
    }

    #[test]
    fn expectations_reach_the_other_workers() {
        let mesh = ExpectMesh::new(2);
        let mut a = Shard::new(TableConfig::new(64), Settings::default(), 0, random_seed());
        let mut b = Shard::new(TableConfig::new(64), Settings::default(), 1, random_seed());
        a.set_service_ports(ServicePorts::default());
        b.set_service_ports(ServicePorts::default());
        // A TFTP request on worker 0.
        let rrq = crate::flow::FlowRepr {
            tuple: crate::flow::Tuple {
                src: crate::flow::Addr::from_v4(CLIENT),
                dst: crate::flow::Addr::from_v4(SERVER),
                src_port: 3000,
                dst_port: 69,
                proto: ctrack_core::flow::proto::UDP,
                family: crate::flow::Family::V4,
            },
            ip_len: 40,
            l4: crate::flow::L4::Udp,
        };
        let now = Instant::from_secs(1);
        let crate::conntrack::Verdict::Tracked { id, dir, .. } = a.handle_packet(now, &rrq) else {
            panic!("not tracked");
        };
        a.help(now, id, dir, &rrq, b"\x00\x01f\x00octet\x00");
        let mut answer = rrq;
        answer.tuple = rrq.tuple.reversed();
        answer.tuple.src_port = 50000;
        assert!(b.expected_for(&answer, now).is_none());
        mesh.exchange(0, &mut a);
        mesh.exchange(1, &mut b);
        assert!(b.expected_for(&answer, now).is_some());
        // Used on worker 1: gone on worker 0 after the next exchange.
        b.handle_packet(now, &answer);
        mesh.exchange(1, &mut b);
        mesh.exchange(0, &mut a);
        assert!(a.expected_for(&answer, now).is_none());
        assert_eq!(a.stats().expect.live, 0);
        // The listing shows each expectation once, at its master's worker.
        let mut n = 0;
        a.for_each_expectation(now, |_, _| n += 1);
        b.for_each_expectation(now, |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
