//! The poll-mode worker loop.
//!
//! A worker owns its links (see [`crate::io`]) and its counters; it takes no
//! lock and allocates nothing per packet. Each loop it polls every link once:
//! receive a burst, process it, transmit it on the link's TX queue. A packet
//! the TX queue will not take after [`TX_RETRIES`] attempts is freed and
//! counted as `tx_dropped`; it is never leaked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::io::{Burst, PacketIo};
use crate::stats::{WorkerCounters, WorkerTotals};

/// TX attempts for one burst before the rest is dropped.
pub const TX_RETRIES: usize = 8;

pub struct Worker<I: PacketIo> {
    io: I,
    burst: I::Burst,
    totals: WorkerTotals,
    counters: Arc<WorkerCounters>,
}

impl<I: PacketIo> Worker<I> {
    pub fn new(io: I, counters: Arc<WorkerCounters>) -> Self {
        let burst = io.new_burst();
        Worker {
            io,
            burst,
            totals: WorkerTotals::default(),
            counters,
        }
    }

    /// Runs until `stop` is set, then publishes the final counters.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            self.poll_once();
        }
        self.counters.publish(&self.totals);
    }

    /// One pass over every link; returns the packets received.
    pub fn poll_once(&mut self) -> usize {
        let mut received = 0;
        for link in 0..self.io.links() {
            let n = self.io.rx(link, &mut self.burst);
            if n == 0 {
                continue;
            }
            received += n;
            self.totals.rx_packets += n as u64;
            self.transmit(link);
        }
        self.totals.loops += 1;
        if received > 0 {
            self.totals.busy_loops += 1;
        }
        self.counters.publish(&self.totals);
        received
    }

    fn transmit(&mut self, link: usize) {
        for _ in 0..TX_RETRIES {
            self.totals.tx_packets += self.io.tx(link, &mut self.burst) as u64;
            if self.burst.is_empty() {
                return;
            }
        }
        self.totals.tx_dropped += self.burst.clear() as u64;
    }

    pub fn totals(&self) -> WorkerTotals {
        self.totals
    }

    pub fn io(&self) -> &I {
        &self.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mem::{MemIo, MemLink};

    fn frames(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 60]).collect()
    }

    #[test]
    fn forwards_every_packet_in_order() {
        let link = MemLink {
            input: frames(100).into(),
            ..Default::default()
        };
        let mut w = Worker::new(MemIo::new(vec![link], 32), Arc::default());
        while w.poll_once() > 0 {}
        assert_eq!(w.io().links[0].output, frames(100));
        let t = w.totals();
        assert_eq!((t.rx_packets, t.tx_packets, t.tx_dropped), (100, 100, 0));
    }

    #[test]
    fn partial_tx_retries_then_counts_drops() {
        // The queue takes 1 packet per call: 8 retries send 8 of each 32-packet burst.
        let link = MemLink {
            input: frames(64).into(),
            tx_limit: Some(1),
            ..Default::default()
        };
        let counters = Arc::new(WorkerCounters::default());
        let mut w = Worker::new(MemIo::new(vec![link], 32), counters.clone());
        while w.poll_once() > 0 {}
        let t = counters.read();
        assert_eq!(t.rx_packets, 64);
        assert_eq!(t.tx_packets, 16);
        assert_eq!(t.tx_dropped, 48);
        assert_eq!(w.io().links[0].output.len(), 16);
    }
}
