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
