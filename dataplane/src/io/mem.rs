//! An in-memory [`PacketIo`]: each link reads from a queue of frames and
//! writes to a vector. For tests and benchmarks; allocates freely.

use std::collections::VecDeque;

use super::{Burst, PacketIo};

/// A burst of owned frames.
#[derive(Debug, Default)]
pub struct MemBurst {
    pkts: Vec<Vec<u8>>,
    cap: usize,
}

impl Burst for MemBurst {
    fn len(&self) -> usize {
        self.pkts.len()
    }

    fn data(&self, i: usize) -> &[u8] {
        &self.pkts[i]
    }

    fn retain(&mut self, mut keep: impl FnMut(usize, &[u8]) -> bool) -> usize {
        let before = self.pkts.len();
        let mut i = 0;
        self.pkts.retain(|p| {
            let k = keep(i, p);
            i += 1;
            k
        });
        before - self.pkts.len()
    }

    fn clear(&mut self) -> usize {
        let n = self.pkts.len();
        self.pkts.clear();
        n
    }
}

/// One link: frames waiting to be received, frames transmitted.
#[derive(Debug, Default)]
pub struct MemLink {
    pub input: VecDeque<Vec<u8>>,
    pub output: Vec<Vec<u8>>,
    /// Accept at most this many packets per TX call (to exercise partial TX).
    pub tx_limit: Option<usize>,
}

#[derive(Debug)]
pub struct MemIo {
    pub links: Vec<MemLink>,
    pub burst_size: usize,
}

impl MemIo {
    pub fn new(links: Vec<MemLink>, burst_size: usize) -> Self {
        MemIo { links, burst_size }
    }
}

impl PacketIo for MemIo {
    type Burst = MemBurst;

    fn new_burst(&self) -> MemBurst {
        MemBurst {
            pkts: Vec::with_capacity(self.burst_size),
            cap: self.burst_size,
        }
    }

    fn links(&self) -> usize {
        self.links.len()
    }

    fn rx(&mut self, link: usize, burst: &mut MemBurst) -> usize {
        let l = &mut self.links[link];
        let room = burst.cap.saturating_sub(burst.pkts.len());
        let n = room.min(l.input.len());
        burst.pkts.extend(l.input.drain(..n));
        n
    }

    fn tx(&mut self, link: usize, burst: &mut MemBurst) -> usize {
        let l = &mut self.links[link];
        let n = l.tx_limit.unwrap_or(usize::MAX).min(burst.pkts.len());
        l.output.extend(burst.pkts.drain(..n));
        n
    }
}
