//! Packet I/O behind the worker loop.
//!
//! A worker owns a set of *links*: an RX queue and the TX queue its packets
//! leave by (port 0 queue q -> port 1 queue q, and back). [`PacketIo`] is
//! that set; DPDK queues are one implementation ([`dpdk`], feature `dpdk`),
//! [`mem`] is an in-memory one for tests and benchmarks.

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod mem;
pub mod pcap;

/// A reusable burst of owned packets. Dropping or clearing it frees what it
/// still holds, so an unsent packet is never leaked.
pub trait Burst {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of packet `i` (`i < len()`).
    fn data(&self, i: usize) -> &[u8];
    /// Keeps packets for which `keep(i, bytes)` holds, in order; frees the
    /// rest and returns how many were freed.
    fn retain(&mut self, keep: impl FnMut(usize, &[u8]) -> bool) -> usize;
    /// Frees every packet still held and returns how many.
    fn clear(&mut self) -> usize;
}

/// The queues one worker polls.
pub trait PacketIo {
    type Burst: Burst;
    /// A fresh, empty burst.
    fn new_burst(&self) -> Self::Burst;
    /// Number of links (RX queue -> TX queue pairs).
    fn links(&self) -> usize;
    /// Receives into `burst` from link `link`'s RX queue; returns the count.
    fn rx(&mut self, link: usize, burst: &mut Self::Burst) -> usize;
    /// Sends from the front of `burst` on link `link`'s TX queue; what the
    /// queue does not take stays in `burst`. Returns the count sent.
    fn tx(&mut self, link: usize, burst: &mut Self::Burst) -> usize;
}
