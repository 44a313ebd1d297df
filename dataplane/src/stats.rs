//! Per-worker counters.
//!
//! A worker is the only writer of its [`WorkerCounters`]: it keeps plain
//! local counts and publishes them with relaxed stores once per loop, so the
//! fast path does no atomic read-modify-write. The control thread reads them
//! with relaxed loads; a reader may see values a loop old, never torn ones.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters a worker publishes. Aligned to two cache lines so that two
/// workers' counters never share one (no false sharing).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Packets the TX queue would not take after retries: freed, counted here.
    pub tx_dropped: AtomicU64,
    /// Poll loops run, and those that found packets (busy ratio = busy / loops).
    pub loops: AtomicU64,
    pub busy_loops: AtomicU64,
}

/// The plain values behind [`WorkerCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerTotals {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub loops: u64,
    pub busy_loops: u64,
}

impl WorkerCounters {
    pub fn publish(&self, t: &WorkerTotals) {
        self.rx_packets.store(t.rx_packets, Relaxed);
        self.tx_packets.store(t.tx_packets, Relaxed);
        self.tx_dropped.store(t.tx_dropped, Relaxed);
        self.loops.store(t.loops, Relaxed);
        self.busy_loops.store(t.busy_loops, Relaxed);
    }

    pub fn read(&self) -> WorkerTotals {
        WorkerTotals {
            rx_packets: self.rx_packets.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            loops: self.loops.load(Relaxed),
            busy_loops: self.busy_loops.load(Relaxed),
        }
    }
}
