//! [`PacketIo`] over DPDK queues.

use dpdk::{MbufBurst, RxQueue, TxQueue};

use super::{Burst, PacketIo};

impl Burst for MbufBurst {
    #[inline]
    fn len(&self) -> usize {
        MbufBurst::len(self)
    }

    #[inline]
    fn data(&self, i: usize) -> &[u8] {
        MbufBurst::data(self, i)
    }

    fn retain(&mut self, keep: impl FnMut(usize, &[u8]) -> bool) -> usize {
        MbufBurst::retain(self, keep)
    }

    fn clear(&mut self) -> usize {
        MbufBurst::clear(self)
    }
}

/// The links of one worker: each RX queue with the TX queue its packets leave by.
#[derive(Debug, Default)]
pub struct DpdkIo {
    links: Vec<(RxQueue, TxQueue)>,
    burst_size: usize,
}

impl DpdkIo {
    /// `burst_size` is clamped to 1..=[`dpdk::MAX_BURST`].
    pub fn new(links: Vec<(RxQueue, TxQueue)>, burst_size: usize) -> Self {
        DpdkIo {
            links,
            burst_size,
        }
    }
}

impl PacketIo for DpdkIo {
    type Burst = MbufBurst;

    fn new_burst(&self) -> MbufBurst {
        MbufBurst::with_capacity(self.burst_size)
    }

    fn links(&self) -> usize {
        self.links.len()
    }

    #[inline]
    fn rx(&mut self, link: usize, burst: &mut MbufBurst) -> usize {
        self.links[link].0.rx_burst(burst)
    }

    #[inline]
    fn tx(&mut self, link: usize, burst: &mut MbufBurst) -> usize {
        self.links[link].1.tx_burst(burst)
    }
}
