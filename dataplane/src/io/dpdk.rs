//! [`PacketIo`] over DPDK queues.

use dpdk::{FragTable, Mbuf, MbufBurst, PortId, Reassembly, RxCksum, RxQueue, TscClock, TxQueue};

use super::{Burst, PacketIo};
use crate::conntrack::Instant;
use crate::frag::{FragTotals, Reassembled};
use crate::packet::checksum::{Offload, RxChecksum};

impl Burst for MbufBurst {
    type Packet = Mbuf;

    #[inline]
    fn len(&self) -> usize {
        MbufBurst::len(self)
    }

    #[inline]
    fn is_full(&self) -> bool {
        MbufBurst::is_full(self)
    }

    #[inline]
    fn data(&self, i: usize) -> &[u8] {
        MbufBurst::data(self, i)
    }

    #[inline]
    fn data_mut(&mut self, i: usize) -> &mut [u8] {
        MbufBurst::data_mut(self, i)
    }

    #[inline]
    fn rss_hash(&self, i: usize) -> Option<u32> {
        MbufBurst::rss_hash(self, i)
    }

    fn rx_checksum(&self, i: usize) -> RxChecksum {
        let offload = |c| match c {
            RxCksum::Good | RxCksum::None => Offload::Good,
            RxCksum::Bad => Offload::Bad,
            RxCksum::Unknown => Offload::Unknown,
        };
        let (ip, l4) = self.rx_cksum(i);
        RxChecksum {
            ip: offload(ip),
            l4: offload(l4),
        }
    }

    #[inline]
    fn push(&mut self, p: Mbuf) -> Result<(), Mbuf> {
        MbufBurst::push(self, p)
    }

    #[inline]
    fn drain_each(&mut self, f: impl FnMut(usize, Mbuf)) {
        MbufBurst::drain_each(self, f)
    }

    fn clear(&mut self) -> usize {
        MbufBurst::clear(self)
    }
}

/// The queues of one worker: the RX queues it polls, and its TX queue (if
/// any) on each port.
#[derive(Debug)]
pub struct DpdkIo {
    /// RX queues with the egress port of each.
    links: Vec<(RxQueue, u16)>,
    /// For each link: its packets' RSS hash is the symmetric Toeplitz.
    nic_hash: Vec<bool>,
    tx: Vec<Option<TxQueue>>,
    burst_size: usize,
    clock: TscClock,
    /// This worker's reassembly table (see [`DpdkIo::with_reassembly`]).
    frag: Option<Box<FragTable>>,
}

impl DpdkIo {
    /// `links` are the RX queues with the egress port (index) of each;
    /// `tx[port]` is this worker's TX queue on port index `port`;
    /// `burst_size` is clamped to 1..=[`dpdk::MAX_BURST`].
    pub fn new(links: Vec<(RxQueue, u16)>, tx: Vec<Option<TxQueue>>, burst_size: usize) -> Self {
        DpdkIo {
            nic_hash: vec![false; links.len()],
            links,
            tx,
            burst_size,
            clock: TscClock::new(),
            frag: None,
        }
    }

    /// Reassembles IP fragments with `table` (see [`crate::frag`]; its
    /// timeout in nanoseconds, the unit of [`PacketIo::now`]).
    pub fn with_reassembly(mut self, table: FragTable) -> Self {
        self.frag = Some(Box::new(table));
        self
    }

    /// Marks the links received on `ports` as carrying the NIC's symmetric
    /// Toeplitz hash ([`crate::rss::NicRss::hash_is_symmetric_toeplitz`] of
    /// the port's RSS as read back), which dispatch then uses instead of
    /// computing it.
    pub fn trust_nic_hash(mut self, ports: &[PortId]) -> Self {
        for (t, (q, _)) in self.nic_hash.iter_mut().zip(&self.links) {
            *t = ports.contains(&q.port());
        }
        self
    }
}

impl PacketIo for DpdkIo {
    type Packet = Mbuf;
    type Burst = MbufBurst;

    fn new_burst(&self) -> MbufBurst {
        MbufBurst::with_capacity(self.burst_size)
    }

    fn links(&self) -> usize {
        self.links.len()
    }

    #[inline]
    fn nic_hash(&self, link: usize) -> bool {
        self.nic_hash.get(link).copied().unwrap_or(false)
    }

    #[inline]
    fn egress(&self, link: usize) -> u16 {
        self.links[link].1
    }

    #[inline]
    fn rx(&mut self, link: usize, burst: &mut MbufBurst) -> usize {
        self.links[link].0.rx_burst(burst)
    }

    fn ports(&self) -> usize {
        self.tx.len()
    }

    #[inline]
    fn has_tx(&self, port: u16) -> bool {
        matches!(self.tx.get(port as usize), Some(Some(_)))
    }

    #[inline]
    fn tx(&mut self, port: u16, burst: &mut MbufBurst) -> usize {
        match self.tx.get_mut(port as usize) {
            Some(Some(q)) => q.tx_burst(burst),
            _ => 0,
        }
    }

    #[inline]
    fn now(&self) -> Instant {
        Instant(self.clock.now_nanos())
    }

    /// From the pool of this worker's first TX queue (a run configures
    /// every port with one pool).
    fn alloc(&mut self, data: &[u8]) -> Option<Mbuf> {
        let q = self.tx.iter().flatten().next()?;
        q.mempool().alloc_with(data)
    }

    fn packet_data<'a>(&self, p: &'a Mbuf) -> &'a [u8] {
        p.data()
    }

    fn packet_data_mut<'a>(&self, p: &'a mut Mbuf) -> &'a mut [u8] {
        p.data_mut()
    }

    fn reassembles(&self) -> bool {
        self.frag.is_some()
    }

    fn reassemble(&mut self, p: Mbuf, now: Instant) -> Reassembled<Mbuf> {
        let Some(t) = self.frag.as_deref_mut() else {
            return Reassembled::Pass(p);
        };
        match t.reassemble(p, 14, now.0) {
            Reassembly::Done(m) => Reassembled::Done(m),
            Reassembly::NotFragment(m) => Reassembled::Pass(m),
            // Counted by the table.
            Reassembly::Held
            | Reassembly::TooBig
            | Reassembly::NoSpace
            | Reassembly::Bad
            | Reassembly::NoMbuf => Reassembled::Gone,
        }
    }

    fn expire_fragments(&mut self, now: Instant) {
        if let Some(t) = self.frag.as_deref_mut() {
            t.expire(now.0);
        }
    }

    #[inline]
    fn frag_size(&self, p: &Mbuf) -> u16 {
        self.frag.as_deref().map_or(0, |t| t.frag_size(p))
    }

    fn frag_totals(&self) -> FragTotals {
        self.frag.as_deref().map_or_else(FragTotals::default, |t| {
            let c = t.counts();
            FragTotals {
                reassembled: c.reassembled,
                fragments: c.fragments,
                timeout: c.timeout,
                no_space: c.no_space,
                too_big: c.too_big,
                bad: c.bad,
                no_mbuf: c.no_mbuf,
                ..FragTotals::default()
            }
        })
    }
}
