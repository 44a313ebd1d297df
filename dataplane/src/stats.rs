//! Per-worker counters.
//!
//! A worker is the only writer of its [`WorkerCounters`]: it keeps plain
//! local counts and publishes them with relaxed stores once per loop, so the
//! fast path does no atomic read-modify-write. The control thread reads them
//! with relaxed loads; a reader may see values a loop old, never torn ones.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::packet::ParseError;

/// Counters a worker publishes. Aligned to two cache lines so that two
/// workers' counters never share one (no false sharing).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Packets the TX queue would not take after retries: freed, counted here.
    pub tx_dropped: AtomicU64,
    /// Packets handed to another worker (to track them, or to transmit them).
    pub handoffs_out: AtomicU64,
    /// Packets received from other workers.
    pub handoffs_in: AtomicU64,
    /// Packets freed because a handoff ring was full.
    pub handoff_dropped: AtomicU64,
    /// Packets dropped by the table (full, nothing evictable).
    pub table_dropped: AtomicU64,
    /// Packets dropped by firewall rules, by action: `drop`, `reject`,
    /// `tarpit` (the last two until their answers are sent, then as well).
    pub fw_dropped: AtomicU64,
    pub fw_rejected: AtomicU64,
    pub fw_tarpitted: AtomicU64,
    /// The answers to `reject` and `tarpit`
    /// ([`crate::respond::RespondTotals`]): sent, over the ICMP rate limit,
    /// no buffer, not due (Linux would not answer).
    pub fw_answers: [AtomicU64; 4],
    /// Packets that wanted a layer7 window and found the side table full
    /// ([`crate::layer7::L7Windows::full`]).
    pub fw_l7_full: AtomicU64,
    /// Poll loops run, and those that found packets (busy ratio = busy / loops).
    pub loops: AtomicU64,
    pub busy_loops: AtomicU64,
    /// Connections in the shard now, and its ceiling.
    pub entries: AtomicU64,
    pub max_entries: AtomicU64,
    /// Connections NAT translated.
    pub nat_translated: AtomicU64,
    /// First packets dropped by NAT: no free tuple (port exhaustion).
    pub nat_exhausted: AtomicU64,
    /// First packets dropped by NAT: `masquerade`/`redirect` on an interface without an address.
    pub nat_no_address: AtomicU64,
    /// First packets dropped by NAT: an unusable `to-addresses`/`to-ports`.
    pub nat_bad_range: AtomicU64,
    /// Packets of NAT connections that could not be rewritten (dropped).
    pub nat_rewrite_failed: AtomicU64,
    /// New NAT connections' first packets handed to the worker owning their
    /// only reply tuple (port forwards on several workers).
    pub nat_handed_off: AtomicU64,
    /// NAT connections the owner table had no room to record.
    pub nat_owner_full: AtomicU64,
    /// Packets not parsed, by [`ParseError::index`].
    pub parse_errors: [AtomicU64; ParseError::COUNT],
    /// Reassembly and fragmenting again ([`crate::frag::FragTotals`]).
    pub frag: [AtomicU64; crate::frag::FragTotals::COUNT],
}

/// The plain values behind [`WorkerCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerTotals {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    pub handoff_dropped: u64,
    pub table_dropped: u64,
    pub fw_dropped: u64,
    pub fw_rejected: u64,
    pub fw_tarpitted: u64,
    /// Sent, rate-limited, no buffer, not due (see [`WorkerCounters`]).
    pub fw_answers: [u64; 4],
    pub fw_l7_full: u64,
    pub loops: u64,
    pub busy_loops: u64,
    pub entries: u64,
    pub max_entries: u64,
    pub nat_translated: u64,
    pub nat_exhausted: u64,
    pub nat_no_address: u64,
    pub nat_bad_range: u64,
    pub nat_rewrite_failed: u64,
    pub nat_handed_off: u64,
    pub nat_owner_full: u64,
    pub parse_errors: [u64; ParseError::COUNT],
    /// Reassembly and fragmenting again, as
    /// [`crate::frag::FragTotals::as_array`].
    pub frag: [u64; crate::frag::FragTotals::COUNT],
}

impl WorkerCounters {
    pub fn publish(&self, t: &WorkerTotals) {
        self.rx_packets.store(t.rx_packets, Relaxed);
        self.tx_packets.store(t.tx_packets, Relaxed);
        self.tx_dropped.store(t.tx_dropped, Relaxed);
        self.handoffs_out.store(t.handoffs_out, Relaxed);
        self.handoffs_in.store(t.handoffs_in, Relaxed);
        self.handoff_dropped.store(t.handoff_dropped, Relaxed);
        self.table_dropped.store(t.table_dropped, Relaxed);
        self.fw_dropped.store(t.fw_dropped, Relaxed);
        self.fw_rejected.store(t.fw_rejected, Relaxed);
        self.fw_tarpitted.store(t.fw_tarpitted, Relaxed);
        for (a, v) in self.fw_answers.iter().zip(t.fw_answers) {
            a.store(v, Relaxed);
        }
        self.fw_l7_full.store(t.fw_l7_full, Relaxed);
        self.loops.store(t.loops, Relaxed);
        self.busy_loops.store(t.busy_loops, Relaxed);
        self.entries.store(t.entries, Relaxed);
        self.max_entries.store(t.max_entries, Relaxed);
        self.nat_translated.store(t.nat_translated, Relaxed);
        self.nat_exhausted.store(t.nat_exhausted, Relaxed);
        self.nat_no_address.store(t.nat_no_address, Relaxed);
        self.nat_bad_range.store(t.nat_bad_range, Relaxed);
        self.nat_rewrite_failed.store(t.nat_rewrite_failed, Relaxed);
        self.nat_handed_off.store(t.nat_handed_off, Relaxed);
        self.nat_owner_full.store(t.nat_owner_full, Relaxed);
        for (a, v) in self.parse_errors.iter().zip(t.parse_errors) {
            a.store(v, Relaxed);
        }
        for (a, v) in self.frag.iter().zip(t.frag) {
            a.store(v, Relaxed);
        }
    }

    pub fn read(&self) -> WorkerTotals {
        WorkerTotals {
            rx_packets: self.rx_packets.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            handoffs_out: self.handoffs_out.load(Relaxed),
            handoffs_in: self.handoffs_in.load(Relaxed),
            handoff_dropped: self.handoff_dropped.load(Relaxed),
            table_dropped: self.table_dropped.load(Relaxed),
            fw_dropped: self.fw_dropped.load(Relaxed),
            fw_rejected: self.fw_rejected.load(Relaxed),
            fw_tarpitted: self.fw_tarpitted.load(Relaxed),
            fw_answers: std::array::from_fn(|i| self.fw_answers[i].load(Relaxed)),
            fw_l7_full: self.fw_l7_full.load(Relaxed),
            loops: self.loops.load(Relaxed),
            busy_loops: self.busy_loops.load(Relaxed),
            entries: self.entries.load(Relaxed),
            max_entries: self.max_entries.load(Relaxed),
            nat_translated: self.nat_translated.load(Relaxed),
            nat_exhausted: self.nat_exhausted.load(Relaxed),
            nat_no_address: self.nat_no_address.load(Relaxed),
            nat_bad_range: self.nat_bad_range.load(Relaxed),
            nat_rewrite_failed: self.nat_rewrite_failed.load(Relaxed),
            nat_handed_off: self.nat_handed_off.load(Relaxed),
            nat_owner_full: self.nat_owner_full.load(Relaxed),
            parse_errors: std::array::from_fn(|i| self.parse_errors[i].load(Relaxed)),
            frag: std::array::from_fn(|i| self.frag[i].load(Relaxed)),
        }
    }
}
