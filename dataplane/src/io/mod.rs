//! Packet I/O behind the worker loop.
//!
//! A worker polls a set of *links* (RX queues) and transmits on the TX queues
//! it owns, at most one per port. Ports are numbered by their position in the
//! run (0, 1, ...), not by DPDK port id. [`PacketIo`] is that set; DPDK queues are one
//! implementation ([`dpdk`], feature `dpdk`), [`mem`] is an in-memory one for
//! tests and benchmarks.

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod mem;

use crate::conntrack::Instant;
use crate::frag::{FragTotals, Reassembled};
use crate::packet::checksum::RxChecksum;

/// A reusable burst of owned packets. Dropping or clearing it frees what it
/// still holds, so an unsent packet is never leaked.
pub trait Burst {
    /// One owned packet; moving it between threads moves its ownership.
    type Packet: Send + 'static;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn is_full(&self) -> bool;
    /// Bytes of packet `i` (`i < len()`).
    fn data(&self, i: usize) -> &[u8];
    /// Bytes of packet `i` (`i < len()`), writable in place (NAT rewrites
    /// addresses, ports and checksums without copying the packet).
    fn data_mut(&mut self, i: usize) -> &mut [u8];
    /// The RSS hash the NIC put in packet `i`, if any (none by default).
    fn rss_hash(&self, _i: usize) -> Option<u32> {
        None
    }

    /// What the NIC said about received packet `i`'s checksums (`i <
    /// len()`): read from metadata the NIC already wrote, so it costs no pass
    /// over the packet. [`RxChecksum::UNKNOWN`] (the default) where the port
    /// reports nothing: the worker then verifies in software.
    #[inline]
    fn rx_checksum(&self, i: usize) -> RxChecksum {
        let _ = i;
        RxChecksum::UNKNOWN
    }
    /// Adds a packet; gives it back if the burst is full.
    fn push(&mut self, p: Self::Packet) -> Result<(), Self::Packet>;
    /// Moves every packet out, in order, to `f(index, packet)`.
    fn drain_each(&mut self, f: impl FnMut(usize, Self::Packet));
    /// Frees every packet still held and returns how many.
    fn clear(&mut self) -> usize;
}

/// The queues one worker polls and transmits on.
pub trait PacketIo {
    type Packet: Send + 'static;
    type Burst: Burst<Packet = Self::Packet>;
    /// A fresh, empty burst.
    fn new_burst(&self) -> Self::Burst;
    /// Number of links (RX queues) this worker polls.
    fn links(&self) -> usize;
    /// The port (index among this run's ports) that packets received on
    /// link `link` leave by: its pair's other port.
    fn egress(&self, link: usize) -> u16;
    /// The port (index among this run's ports) that packets on link `link`
    /// arrive from, where answers to them go out. By default the pair
    /// partner of [`PacketIo::egress`] (ports are paired 0 <-> 1, 2 <-> 3).
    fn ingress(&self, link: usize) -> u16 {
        self.egress(link) ^ 1
    }
    /// Receives into `burst` from link `link`; returns the count.
    fn rx(&mut self, link: usize, burst: &mut Self::Burst) -> usize;
    /// Whether the RSS hash of packets received on `link`
    /// ([`Burst::rss_hash`]) is the symmetric Toeplitz hash dispatch
    /// computes ([`crate::rss::NicRss::hash_is_symmetric_toeplitz`]), so
    /// that dispatch may use it instead. False by default.
    fn nic_hash(&self, _link: usize) -> bool {
        false
    }
    /// Number of ports (the highest port id + 1).
    fn ports(&self) -> usize;
    /// Whether this worker owns a TX queue on `port`.
    fn has_tx(&self, port: u16) -> bool;
    /// Sends from the front of `burst` on this worker's TX queue of `port`;
    /// what the queue does not take stays in `burst`. Returns the count sent.
    fn tx(&mut self, port: u16, burst: &mut Self::Burst) -> usize;
    /// The time, read once per loop (TSC on DPDK).
    fn now(&self) -> Instant;
    /// A new packet holding a copy of `data`, to be sent like a received
    /// one (pushed into a TX burst, or handed to the worker owning the
    /// port's TX queue): what the firewall generates (`crate::respond`).
    /// `None` if no buffer is free (or `data` does not fit one); the caller
    /// counts it. Allocates from a pool on DPDK, from the heap in memory.
    fn alloc(&mut self, data: &[u8]) -> Option<Self::Packet>;
    /// The bytes of packet `p` (its first segment).
    fn packet_data<'a>(&self, p: &'a Self::Packet) -> &'a [u8];
    /// The bytes of packet `p` (its first segment), writable in place
    /// (router mode rewrites the Ethernet header and the TTL, NAT the
    /// addresses and ports).
    fn packet_data_mut<'a>(&self, p: &'a mut Self::Packet) -> &'a mut [u8];

    /// Whether this I/O reassembles IP fragments (see [`crate::frag`]):
    /// DPDK queues given a reassembly table; not the in-memory I/O (the
    /// default: fragments go on one by one).
    fn reassembles(&self) -> bool {
        false
    }
    /// Offers received packet `p` (an IP fragment, see
    /// [`crate::frag::is_fragment`]) to this worker's reassembly table at
    /// time `now`.
    fn reassemble(&mut self, p: Self::Packet, now: Instant) -> Reassembled<Self::Packet> {
        let _ = now;
        Reassembled::Pass(p)
    }
    /// Frees the fragments of datagrams that did not complete in time.
    fn expire_fragments(&mut self, now: Instant) {
        let _ = now;
    }
    /// The size (IP header included) of the largest fragment `p` was
    /// reassembled from (Linux's `frag_max_size`); 0 if `p` was not
    /// reassembled here.
    #[inline]
    fn frag_size(&self, p: &Self::Packet) -> u16 {
        let _ = p;
        0
    }
    /// The reassembly table's counts (the fields up to `no_mbuf`).
    fn frag_totals(&self) -> FragTotals {
        FragTotals::default()
    }
}
