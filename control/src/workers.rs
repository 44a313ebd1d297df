//! The control thread's side of the workers: it sends them [`Command`]s over
//! bounded queues, waits (bounded) for their answers, and reads their
//! published counters. A worker serves a few commands per loop between
//! bursts, so no request can stall it; a request that gets no answer in
//! [`ANSWER_TIMEOUT`] fails with [`OpsError::Unavailable`].

use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, bounded};
use dataplane::conntrack::tcp::TcpState;
use dataplane::conntrack::{ConnId, ConnSnapshot, FastTrackMode, Settings, protocol_name};
use dataplane::stats::WorkerCounters;
use dataplane::worker::{Command, LIST_CHUNK_MAX, ShardReport};
use parking_lot::Mutex;

use crate::ops::{
    Dataplane, MetricsSnapshot, OpsError, PortMetrics, TrackingInfo, WorkerMetrics, apply_changes,
};

/// How long the control thread waits for a worker's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Depth of each worker's command queue.
pub const COMMAND_QUEUE: usize = 64;

/// Per-port counters, read by the control thread (DPDK's stats calls are
/// safe from a non-worker thread).
pub type PortStatsFn = Box<dyn Fn() -> Vec<PortMetrics> + Send + Sync>;

/// One worker as the control thread sees it.
pub struct WorkerHandle {
    pub commands: Sender<Command>,
    pub counters: Arc<WorkerCounters>,
}

/// The running workers: implements [`Dataplane`] for the API and metrics.
pub struct WorkerSet {
    workers: Vec<WorkerHandle>,
    settings: Mutex<Settings>,
    port_stats: PortStatsFn,
}

/// A worker's command queue and its end of it.
pub fn command_queue() -> (Sender<Command>, Receiver<Command>) {
    bounded(COMMAND_QUEUE)
}

impl WorkerSet {
    pub fn new(
        workers: Vec<WorkerHandle>,
        settings: Settings,
        port_stats: PortStatsFn,
    ) -> WorkerSet {
        WorkerSet {
            workers,
            settings: Mutex::new(settings),
            port_stats,
        }
    }

    fn send(&self, w: usize, cmd: Command) -> Result<(), OpsError> {
        self.workers[w]
            .commands
            .send_timeout(cmd, ANSWER_TIMEOUT)
            .map_err(|_| OpsError::Unavailable(format!("worker {w} is not taking commands")))
    }

    fn ask<T>(&self, w: usize, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, OpsError> {
        let (tx, rx) = bounded(1);
        self.send(w, make(tx))?;
        rx.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| OpsError::Unavailable(format!("worker {w} did not answer")))
    }

    /// Every connection of worker `w` matching `filter`, fetched in bounded
    /// chunks of raw records (one buffer goes back and forth) and formatted
    /// here, on the control thread.
    fn list_worker(
        &self,
        w: usize,
        filter: &[(String, String)],
        out: &mut Vec<ConnSnapshot>,
    ) -> Result<(), OpsError> {
        let mut buf = Vec::with_capacity(LIST_CHUNK_MAX);
        let mut cursor = Some(0);
        while let Some(c) = cursor {
            let chunk = self.ask(w, |reply| Command::List {
                cursor: c,
                max: LIST_CHUNK_MAX,
                buf,
                reply,
            })?;
            for raw in &chunk.rows {
                let row = raw.snapshot();
                let mut keep = true;
                for (p, v) in filter {
                    keep &= row.matches(p, v)?;
                }
                if keep {
                    out.push(row);
                }
            }
            buf = chunk.rows;
            cursor = chunk.next;
        }
        Ok(())
    }

    /// Packets received by all workers so far.
    pub fn rx_packets(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.counters.read().rx_packets)
            .sum()
    }

    /// Switches FastTrack for every worker.
    pub fn set_fasttrack(&self, mode: FastTrackMode) -> Result<(), OpsError> {
        for w in 0..self.workers.len() {
            self.send(w, Command::FastTrack(mode))?;
        }
        Ok(())
    }

    fn reports(&self) -> Vec<Option<ShardReport>> {
        // Ask all first, then collect: the workers count in parallel.
        let pending: Vec<_> = (0..self.workers.len())
            .map(|w| {
                let (tx, rx) = bounded(1);
                self.send(w, Command::Report { reply: tx }).ok().map(|_| rx)
            })
            .collect();
        pending
            .into_iter()
            .map(|rx| rx.and_then(|rx| rx.recv_timeout(ANSWER_TIMEOUT).ok()))
            .collect()
    }
}

impl Dataplane for WorkerSet {
    fn connections(&self, filter: &[(String, String)]) -> Result<Vec<ConnSnapshot>, OpsError> {
        // Reject an unknown property before walking the table.
        for (p, _) in filter {
            dataplane::conntrack::snapshot::check_property(p)?;
        }
        let mut all = Vec::new();
        for w in 0..self.workers.len() {
            self.list_worker(w, filter, &mut all)?;
        }
        Ok(all)
    }

    fn count(&self, filter: &[(String, String)]) -> Result<u64, OpsError> {
        if filter.is_empty() {
            return Ok(self.workers.iter().map(|w| w.counters.read().entries).sum());
        }
        Ok(self.connections(filter)?.len() as u64)
    }

    fn connection(&self, id: ConnId) -> Result<ConnSnapshot, OpsError> {
        let w = id.worker() as usize;
        if w >= self.workers.len() {
            return Err(OpsError::NotFound(id.to_string()));
        }
        self.ask(w, |reply| Command::Get { id, reply })?
            .ok_or_else(|| OpsError::NotFound(id.to_string()))
    }

    fn remove(&self, id: ConnId) -> Result<(), OpsError> {
        let w = id.worker() as usize;
        if w >= self.workers.len() || !self.ask(w, |reply| Command::Remove { id, reply })? {
            return Err(OpsError::NotFound(id.to_string()));
        }
        Ok(())
    }

    fn tracking(&self) -> TrackingInfo {
        let (mut max, mut total) = (0, 0);
        for w in &self.workers {
            let t = w.counters.read();
            total += t.entries;
            max += t.max_entries;
        }
        TrackingInfo {
            settings: self.settings.lock().clone(),
            max_entries: max,
            total_entries: total,
        }
    }

    fn set_tracking(&self, changes: &[(String, String)]) -> Result<TrackingInfo, OpsError> {
        {
            let mut cur = self.settings.lock();
            let next = apply_changes(&cur, changes)?;
            for w in 0..self.workers.len() {
                self.send(w, Command::Settings(Box::new(next.clone())))?;
            }
            *cur = next;
        }
        Ok(self.tracking())
    }

    fn metrics(&self) -> MetricsSnapshot {
        let reports = self.reports();
        let workers = self
            .workers
            .iter()
            .zip(reports)
            .enumerate()
            .map(|(w, (h, report))| {
                let t = h.counters.read();
                let report = report.unwrap_or_default();
                let connections = report
                    .census
                    .counts
                    .iter()
                    .map(|(&(p, st), &n)| {
                        let state = TcpState::ALL
                            .get(st as usize)
                            .map_or(String::new(), |s| s.name().to_string());
                        ((protocol_name(p), state), n)
                    })
                    .collect();
                WorkerMetrics {
                    worker: w as u16,
                    rx_packets: t.rx_packets,
                    tx_packets: t.tx_packets,
                    tx_dropped: t.tx_dropped,
                    handoffs_out: t.handoffs_out,
                    handoffs_in: t.handoffs_in,
                    handoff_dropped: t.handoff_dropped,
                    fasttrack_packets: report.stats.fasttrack_packets,
                    fasttrack_bytes: report.stats.fasttrack_bytes,
                    loops: t.loops,
                    busy_loops: t.busy_loops,
                    parse_errors: t.parse_errors.to_vec(),
                    shard: report.stats,
                    total_entries: t.entries,
                    max_entries: t.max_entries,
                    connections,
                }
            })
            .collect();
        MetricsSnapshot {
            workers,
            ports: (self.port_stats)(),
        }
    }
}
