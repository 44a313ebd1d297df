//! An in-memory [`PacketIo`]: each link reads from a queue of frames, each
//! port's TX appends to a vector, and the clock is a field. For tests and
//! benchmarks; allocates freely.

use std::collections::VecDeque;

use super::{Burst, PacketIo};
use crate::conntrack::Instant;
use crate::packet::checksum::RxChecksum;

/// A burst of owned frames.
#[derive(Debug, Default)]
pub struct MemBurst {
    pkts: VecDeque<Vec<u8>>,
    cap: usize,
    /// The NIC's word on every packet received into it: its link's.
    nic: RxChecksum,
}

impl Burst for MemBurst {
    type Packet = Vec<u8>;

    fn len(&self) -> usize {
        self.pkts.len()
    }

    fn is_full(&self) -> bool {
        self.pkts.len() >= self.cap
    }

    fn data(&self, i: usize) -> &[u8] {
        &self.pkts[i]
    }

    fn data_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.pkts[i]
    }

    fn rx_checksum(&self, _i: usize) -> RxChecksum {
        self.nic
    }

    fn push(&mut self, p: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.is_full() {
            return Err(p);
        }
        self.pkts.push_back(p);
        Ok(())
    }

    fn drain_each(&mut self, mut f: impl FnMut(usize, Vec<u8>)) {
        for (i, p) in self.pkts.drain(..).enumerate() {
            f(i, p);
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.pkts.len();
        self.pkts.clear();
        n
    }
}

/// One RX link: frames waiting to be received on `port`.
#[derive(Debug, Default)]
pub struct MemLink {
    pub port: u16,
    pub input: VecDeque<Vec<u8>>,
    /// What this link's "NIC" says about every frame's checksums
    /// (default: nothing, so the worker verifies in software).
    pub nic: RxChecksum,
}

/// One TX queue: frames transmitted on a port.
#[derive(Debug, Default)]
pub struct MemTx {
    pub output: Vec<Vec<u8>>,
    /// Accept at most this many packets per TX call (to exercise partial TX).
    pub limit: Option<usize>,
}

#[derive(Debug, Default)]
pub struct MemIo {
    pub links: Vec<MemLink>,
    /// TX queue per port, `None` where this worker has none.
    pub tx: Vec<Option<MemTx>>,
    pub burst_size: usize,
    /// The clock `now()` returns; tests move it.
    pub clock: Instant,
    /// How many more packets [`PacketIo::alloc`] may make (`None`: no
    /// limit): a test's empty pool.
    pub alloc_limit: Option<usize>,
}

impl MemIo {
    /// A worker polling `links`, with a TX queue on each of `tx_ports` among
    /// `ports` ports.
    /// Two ports, 0 and 1, with empty inputs, both transmitting, bursts of
    /// 32: the usual pair for a worker under test.
    pub fn pair() -> Self {
        let links = (0..2)
            .map(|port| MemLink {
                port,
                ..MemLink::default()
            })
            .collect();
        Self::new(links, 2, &[0, 1], 32)
    }

    pub fn new(links: Vec<MemLink>, ports: usize, tx_ports: &[u16], burst_size: usize) -> Self {
        let tx = (0..ports)
            .map(|p| tx_ports.contains(&(p as u16)).then(MemTx::default))
            .collect();
        MemIo {
            links,
            tx,
            burst_size,
            clock: Instant::ZERO,
            alloc_limit: None,
        }
    }

    /// Frames transmitted on `port` by this worker.
    pub fn output(&self, port: u16) -> &[Vec<u8>] {
        self.tx
            .get(port as usize)
            .and_then(Option::as_ref)
            .map_or(&[], |t| &t.output)
    }
}

impl PacketIo for MemIo {
    type Packet = Vec<u8>;
    type Burst = MemBurst;

    fn new_burst(&self) -> MemBurst {
        MemBurst {
            pkts: VecDeque::with_capacity(self.burst_size),
            cap: self.burst_size,
            nic: RxChecksum::UNKNOWN,
        }
    }

    fn links(&self) -> usize {
        self.links.len()
    }

    fn egress(&self, link: usize) -> u16 {
        self.links[link].port ^ 1
    }

    fn ingress(&self, link: usize) -> u16 {
        self.links[link].port
    }

    fn rx(&mut self, link: usize, burst: &mut MemBurst) -> usize {
        let l = &mut self.links[link];
        let room = burst.cap.saturating_sub(burst.pkts.len());
        let n = room.min(l.input.len());
        burst.pkts.extend(l.input.drain(..n));
        burst.nic = l.nic;
        n
    }

    fn ports(&self) -> usize {
        self.tx.len()
    }

    fn has_tx(&self, port: u16) -> bool {
        matches!(self.tx.get(port as usize), Some(Some(_)))
    }

    fn tx(&mut self, port: u16, burst: &mut MemBurst) -> usize {
        let Some(Some(t)) = self.tx.get_mut(port as usize) else {
            return 0;
        };
        let n = t.limit.unwrap_or(usize::MAX).min(burst.pkts.len());
        t.output.extend(burst.pkts.drain(..n));
        n
    }

    fn now(&self) -> Instant {
        self.clock
    }

    fn alloc(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if let Some(n) = self.alloc_limit.as_mut() {
            *n = n.checked_sub(1)?;
        }
        Some(data.to_vec())
    }

    fn packet_data<'a>(&self, p: &'a Vec<u8>) -> &'a [u8] {
        p
    }

    fn packet_data_mut<'a>(&self, p: &'a mut Vec<u8>) -> &'a mut [u8] {
        p
    }
}
