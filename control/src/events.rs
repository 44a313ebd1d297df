//! The control side of connection events: an [`EventHub`] drains the
//! workers' rings ([`EventRing`], one per worker) on its own thread and fans
//! each event out to its subscribers: the flow exporter now, `connection
//! listen` later.
//!
//! Nothing here can slow a worker: the workers push into their rings and
//! never wait (what finds a ring full is counted there,
//! `ctrack_events_dropped_total{worker}`); each subscriber gets a bounded
//! channel, and an event that finds it full is dropped for that subscriber
//! alone and counted in its own [`Subscription::dropped`]. A subscriber
//! that goes away (its receiver dropped) is forgotten at the next event.
//!
//! The tables record events only while someone subscribes: the first
//! subscription marks every ring wanted (the workers switch their shards'
//! events on at their next loop), and when the last one is gone they are
//! switched off again. Events of the time before a subscription are not
//! replayed: a subscriber sees what happens from (about) then on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError, bounded};
use dataplane::conntrack::ConnEvent;
use dataplane::events::EventRing;
use parking_lot::Mutex;

/// Which events a subscriber wants.
pub type EventFilter = Box<dyn Fn(&ConnEvent) -> bool + Send + Sync>;

/// Events moved per ring per [`EventHub::pump`] (so one busy worker cannot
/// starve the others' rings).
const PUMP_BATCH: usize = 1024;
/// How long the hub thread waits when every ring was empty (ten times that
/// without a subscriber).
const IDLE_WAIT: Duration = Duration::from_millis(1);

struct Subscriber {
    filter: EventFilter,
    tx: Sender<ConnEvent>,
    dropped: Arc<AtomicU64>,
    /// Gone when the [`Subscription`] is dropped.
    alive: Weak<()>,
}

/// A subscriber's end: a bounded receiver and its drop count.
pub struct Subscription {
    pub rx: Receiver<ConnEvent>,
    dropped: Arc<AtomicU64>,
    _alive: Arc<()>,
}

impl Subscription {
    /// Events this subscriber missed because its channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The workers' rings and the subscribers they feed.
pub struct EventHub {
    rings: Vec<Arc<EventRing>>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Drop counts of every subscription ever made (kept for metrics).
    subscriber_drops: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    /// Drop counts of subscriptions gone, summed by name (so that a
    /// listener coming and going does not grow `subscriber_drops`).
    retired_drops: Mutex<Vec<(String, u64)>>,
    /// `connection listen` streams open now ([`crate::listen`]).
    pub(crate) listeners: AtomicUsize,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("rings", &self.rings.len())
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// A hub over the workers' rings, `rings[w]` being worker `w`'s.
    pub fn new(rings: Vec<Arc<EventRing>>) -> Arc<EventHub> {
        Arc::new(EventHub {
            rings,
            subscribers: Mutex::new(Vec::new()),
            subscriber_drops: Mutex::new(Vec::new()),
            retired_drops: Mutex::new(Vec::new()),
            listeners: AtomicUsize::new(0),
        })
    }

    /// Subscribes to the events `filter` accepts, delivered into a channel of
    /// `capacity` events; `name` labels its drop count in metrics.
    pub fn subscribe(&self, name: &str, filter: EventFilter, capacity: usize) -> Subscription {
        let (tx, rx) = bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(());
        self.subscribers.lock().push(Subscriber {
            filter,
            tx,
            dropped: dropped.clone(),
            alive: Arc::downgrade(&alive),
        });
        self.rings.iter().for_each(|r| r.set_wanted(true));
        let mut drops = self.subscriber_drops.lock();
        // Fold the counts of subscriptions gone (the hub's and the
        // subscription's references both dropped) into their name's total.
        let mut retired = self.retired_drops.lock();
        drops.retain(|(n, d)| {
            if Arc::strong_count(d) > 1 {
                return true;
            }
            let v = d.load(Ordering::Relaxed);
            match retired.iter_mut().find(|(r, _)| r == n) {
                Some((_, total)) => *total += v,
                None => retired.push((n.clone(), v)),
            }
            false
        });
        drops.push((name.to_string(), dropped.clone()));
        drop((drops, retired));
        Subscription {
            rx,
            dropped,
            _alive: alive,
        }
    }

    /// Moves the events waiting in the rings (a bounded batch from each) to
    /// the subscribers; returns how many it took out of the rings.
    pub fn pump(&self) -> usize {
        let mut moved = 0;
        let mut subs = self.subscribers.lock();
        subs.retain(|s| s.alive.strong_count() > 0);
        for ring in &self.rings {
            for _ in 0..PUMP_BATCH {
                let Some(ev) = ring.pop() else { break };
                moved += 1;
                subs.retain(|s| {
                    if !(s.filter)(&ev) {
                        return true;
                    }
                    match s.tx.try_send(ev) {
                        Ok(()) => true,
                        Err(TrySendError::Full(_)) => {
                            s.dropped.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Err(TrySendError::Disconnected(_)) => false,
                    }
                });
            }
        }
        if subs.is_empty() && self.rings.iter().any(|r| r.wanted()) {
            self.rings.iter().for_each(|r| r.set_wanted(false));
        }
        moved
    }

    /// Pumps on a thread of its own until `stop` is set (then once more, so
    /// that what the workers published before they stopped is delivered).
    pub fn start(self: &Arc<Self>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let hub = self.clone();
        std::thread::Builder::new()
            .name("ctrack-events".to_string())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if hub.pump() == 0 {
                        // Nothing flows without a subscriber: look less often.
                        let idle = hub.subscribers.lock().is_empty();
                        std::thread::sleep(if idle { IDLE_WAIT * 10 } else { IDLE_WAIT });
                    }
                }
                while hub.pump() > 0 {}
            })
    }

    /// Whether every worker records events now (each followed the wish of
    /// a subscription made before): from then on none of their events is
    /// missed but for a full ring or channel, which is counted.
    pub fn recording(&self) -> bool {
        self.rings.iter().all(|r| r.recording())
    }

    /// Events each worker had to drop (ring or shard buffer full), by worker.
    pub fn worker_dropped(&self) -> Vec<u64> {
        self.rings.iter().map(|r| r.dropped()).collect()
    }

    /// Events each subscription missed, by its name.
    /// Several subscriptions of one name (listeners) give one sum.
    pub fn subscriber_dropped(&self) -> Vec<(String, u64)> {
        let mut out = self.retired_drops.lock().clone();
        for (n, d) in self.subscriber_drops.lock().iter() {
            let v = d.load(Ordering::Relaxed);
            match out.iter_mut().find(|(r, _)| r == n) {
                Some((_, total)) => *total += v,
                None => out.push((n.clone(), v)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::conntrack::key::HashSeed;
    use dataplane::conntrack::{EventKind, Instant, Settings, Shard, TableConfig};
    use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};

    /// Events of `n` UDP connections, made by a real shard.
    fn events(n: u16) -> Vec<ConnEvent> {
        let mut s = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            0,
            HashSeed::from_u64(1),
        );
        s.set_events(1024);
        for p in 0..n {
            let pkt = FlowRepr {
                tuple: Tuple {
                    src: Addr::from_v4([10, 0, 0, 1]),
                    dst: Addr::from_v4([10, 0, 0, 2]),
                    src_port: 1000 + p,
                    dst_port: 53,
                    proto: proto::UDP,
                    family: Family::V4,
                },
                ip_len: 100,
                l4: L4::Udp,
            };
            s.handle_packet(Instant::from_secs(1), &pkt);
        }
        s.drain_events().collect()
    }

    #[test]
    fn fans_out_by_filter_and_counts_a_full_subscriber() {
        let ring = Arc::new(EventRing::new(64));
        let hub = EventHub::new(vec![ring.clone()]);
        let all = hub.subscribe("all", Box::new(|_| true), 64);
        let small = hub.subscribe("small", Box::new(|_| true), 2);
        let none = hub.subscribe("none", Box::new(|e| e.kind != EventKind::New), 4);
        let gone = hub.subscribe("gone", Box::new(|_| true), 4);
        drop(gone);
        for ev in events(5) {
            assert!(ring.push(ev));
        }
        assert_eq!(hub.pump(), 5);
        assert_eq!(all.rx.try_iter().count(), 5);
        assert_eq!(small.rx.try_iter().count(), 2);
        assert_eq!(small.dropped(), 3);
        assert_eq!(none.rx.try_iter().count(), 0);
        assert_eq!(all.dropped(), 0);
        assert_eq!(hub.subscribers.lock().len(), 3);
        assert!(ring.wanted());
        drop((all, small, none));
        hub.pump();
        assert!(!ring.wanted(), "no subscriber left: events off");
        let drops = hub.subscriber_dropped();
        assert!(drops.contains(&("small".to_string(), 3)), "{drops:?}");
        assert_eq!(hub.pump(), 0);
        // Gone subscriptions are folded into their name's sum, kept.
        let again = hub.subscribe("small", Box::new(|_| true), 1);
        assert_eq!(hub.subscriber_drops.lock().len(), 1);
        for ev in events(2) {
            assert!(ring.push(ev));
        }
        hub.pump();
        assert_eq!(again.dropped(), 1);
        let drops = hub.subscriber_dropped();
        assert!(drops.contains(&("small".to_string(), 4)), "{drops:?}");
        assert!(drops.contains(&("gone".to_string(), 0)), "{drops:?}");
    }
}
