//! Connection events from a worker to the control side: one bounded
//! lock-free ring per worker ([`EventRing`]).
//!
//! The worker drains its shard's event buffer between bursts
//! ([`crate::worker::Worker::set_events`]) and pushes each event into its
//! ring; it never blocks: an event that finds the ring full is dropped and
//! counted, as is one the shard's own buffer had no room for. The control
//! side (`control/src/events.rs`) pops the rings and fans the events out.
//!
//! Events cost the table a copy per change, so they are only recorded while
//! someone wants them: the consumer sets [`EventRing::set_wanted`], and the
//! worker switches its shard's events on or off accordingly at its next loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crossbeam::queue::ArrayQueue;

use crate::conntrack::ConnEvent;

/// Default ring capacity, in events (256 bytes each: 2 MiB per worker).
pub const EVENT_RING: usize = 8 * 1024;
/// Default room in a shard's buffer between two drains (the worker drains
/// every loop; a loop of several bursts of new connections fits).
pub const SHARD_EVENTS: usize = 4 * 1024;

/// One worker's ring of events and its drop count.
#[derive(Debug)]
pub struct EventRing {
    queue: ArrayQueue<ConnEvent>,
    /// Events lost: the ring or the shard's buffer was full. Written by the
    /// worker only (a relaxed store of its own count), read by anyone.
    dropped: AtomicU64,
    /// A consumer wants events: the worker keeps its shard's events on.
    wanted: AtomicBool,
    /// The worker's shard records events (it followed `wanted`).
    recording: AtomicBool,
}

impl EventRing {
    pub fn new(capacity: usize) -> EventRing {
        EventRing {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
            recording: AtomicBool::new(false),
        }
    }

    /// Asks the worker to record events (or to stop): it follows at its next
    /// loop.
    pub fn set_wanted(&self, on: bool) {
        self.wanted.store(on, Relaxed);
    }

    pub fn wanted(&self) -> bool {
        self.wanted.load(Relaxed)
    }

    /// The worker's side: its shard now records events (or not).
    pub fn set_recording(&self, on: bool) {
        self.recording
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// Whether the worker's shard records events: once this is true after
    /// [`EventRing::set_wanted`], every connection event of that worker from
    /// then on reaches the ring (or is counted dropped).
    pub fn recording(&self) -> bool {
        self.recording.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The oldest event waiting, if any (the consumer's side).
    pub fn pop(&self) -> Option<ConnEvent> {
        self.queue.pop()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events the worker had to drop so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// The producer's side (the worker; tests): false, and the event is
    /// gone, when full.
    pub fn push(&self, ev: ConnEvent) -> bool {
        self.queue.push(ev).is_ok()
    }

    pub(crate) fn publish_dropped(&self, n: u64) {
        self.dropped.store(n, Relaxed);
    }
}
