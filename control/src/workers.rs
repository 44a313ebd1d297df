//! The control thread's side of the workers: it sends them [`Command`]s over
//! bounded queues, waits (bounded) for their answers, and reads their
//! published counters. A worker serves a few commands per loop between
//! bursts, so no request can stall it; a request that gets no answer in
//! [`ANSWER_TIMEOUT`] fails with [`OpsError::Unavailable`].
//!
//! New settings go to every worker or to none ([`WorkerSet`]'s
//! `set_tracking`): every command is sent through one gate, and a settings
//! change holds it alone, checks that every queue has room, then sends.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, bounded};
use ctrack_model::{ConnSnapshot, protocol_name};
use dataplane::conntrack::tcp::TcpState;
use dataplane::conntrack::{ConnId, RawConn, Settings};
use dataplane::policy::FastTrackMode;
use dataplane::stats::WorkerCounters;
use dataplane::worker::{Command, LIST_CHUNK_MAX, ShardReport};
use parking_lot::{Mutex, RwLock};

use crate::firewall::{Firewall, RuleStat};
use crate::ops::{
    Dataplane, MetricsSnapshot, OpsError, PortMetrics, TrackingInfo, WorkerMetrics, apply_changes,
    check_filter_properties, count_by_walking, matches_filter,
};
use dataplane::firewall::{LIST_QUEUE, ListQueue};

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
    /// Every send to a worker queue holds this shared; a settings change
    /// holds it exclusively, so that room it found in every queue is still
    /// there when it sends (workers only ever take commands out).
    send_gate: RwLock<()>,
    /// Families of parts added after start (see [`WorkerSet::add_metrics`]).
    extra_metrics: Mutex<Vec<ExtraMetricsFn>>,
    /// The connection events' hub, once started.
    event_hub: Mutex<Option<Arc<crate::events::EventHub>>>,
    traffic_flow: Mutex<Option<Arc<crate::flow_ops::FlowControl>>>,
    /// Router mode's route menus (see [`WorkerSet::set_routes`]).
    routes: Mutex<Option<Arc<crate::route_ops::RouteControl>>>,
    /// The firewall the workers run, if rules were loaded.
    firewall: Mutex<Option<Firewall>>,
    /// Each worker's queue of address-list additions (see
    /// [`WorkerSet::exchange_lists`]).
    list_queues: Mutex<Vec<Arc<ListQueue>>>,
}

/// Builds `/metrics` families of a part of the control plane.
pub type ExtraMetricsFn = Box<dyn Fn() -> Vec<prometheus::proto::MetricFamily> + Send + Sync>;

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
            send_gate: RwLock::new(()),
            extra_metrics: Mutex::new(Vec::new()),
            event_hub: Mutex::new(None),
            traffic_flow: Mutex::new(None),
            routes: Mutex::new(None),
            firewall: Mutex::new(None),
            list_queues: Mutex::new(Vec::new()),
        }
    }

    fn send(&self, w: usize, cmd: Command) -> Result<(), OpsError> {
        let _gate = self.send_gate.read();
        self.workers[w]
            .commands
            .send_timeout(cmd, ANSWER_TIMEOUT)
            .map_err(|_| OpsError::Unavailable(format!("worker {w} is not taking commands")))
    }

    /// Sends `next` to every worker, or to none: with the send gate held
    /// alone, a worker whose queue is full fails the change before any
    /// worker got it. Only a worker that has exited (its queue closed) can
    /// fail a send after that; the workers before it then get `old` back.
    fn broadcast_settings(&self, old: &Settings, next: &Settings) -> Result<(), OpsError> {
        let Some(_gate) = self.send_gate.try_write_for(ANSWER_TIMEOUT) else {
            return Err(OpsError::Unavailable(
                "the workers' queues stayed busy; no worker changed".to_string(),
            ));
        };
        if let Some(w) = self.workers.iter().position(|h| h.commands.is_full()) {
            return Err(OpsError::Unavailable(format!(
                "worker {w} is not taking commands (its queue is full); no worker changed"
            )));
        }
        for (w, h) in self.workers.iter().enumerate() {
            if h.commands
                .try_send(Command::Settings(Box::new(next.clone())))
                .is_err()
            {
                for (back, h) in self.workers[..w].iter().enumerate() {
                    if h.commands
                        .send_timeout(Command::Settings(Box::new(old.clone())), ANSWER_TIMEOUT)
                        .is_err()
                    {
                        return Err(OpsError::Unavailable(format!(
                            "worker {w} has stopped, and worker {back} could not be given \
                             the old settings back"
                        )));
                    }
                }
                return Err(OpsError::Unavailable(format!(
                    "worker {w} has stopped; no worker changed"
                )));
            }
        }
        Ok(())
    }

    fn ask<T>(&self, w: usize, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, OpsError> {
        let (tx, rx) = bounded(1);
        self.send(w, make(tx))?;
        rx.recv_timeout(ANSWER_TIMEOUT)
            .map_err(|_| OpsError::Unavailable(format!("worker {w} did not answer")))
    }

    /// Visits every connection of worker `w` matching `filter`, fetched in
    /// bounded chunks of raw records and formatted here, on the control
    /// thread, one row at a time. `buf` is the one buffer that goes back and
    /// forth (the worker copies into it and allocates nothing); it comes back
    /// for the next worker, except on an error.
    fn list_worker(
        &self,
        w: usize,
        filter: &[(String, String)],
        buf: &mut Vec<RawConn>,
        visit: &mut dyn FnMut(ConnSnapshot) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, OpsError> {
        let names = self.firewall.lock().as_ref().map(|f| f.names().clone());
        let mut cursor = Some(0);
        while let Some(c) = cursor {
            let lent = std::mem::take(buf);
            let chunk = self.ask(w, |reply| Command::List {
                cursor: c,
                max: LIST_CHUNK_MAX,
                buf: lent,
                reply,
            })?;
            *buf = chunk.rows;
            for raw in buf.iter() {
                let mut row = ConnSnapshot::from_raw(raw);
                if let Some(n) = names.as_ref()
                    && raw.mark() != 0
                    && let Some(name) = n.name(raw.mark())
                {
                    row.connection_mark = name.to_string();
                }
                if matches_filter(&row, filter)? && visit(row).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            cursor = chunk.next;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Visits every live connection of every worker as a raw record, fetched
    /// in bounded chunks (what the flow exporter walks for its timeouts).
    pub fn for_each_raw(&self, visit: &mut dyn FnMut(&RawConn)) -> Result<(), OpsError> {
        let mut buf = Vec::with_capacity(LIST_CHUNK_MAX);
        for w in 0..self.workers.len() {
            let mut cursor = Some(0);
            while let Some(c) = cursor {
                let lent = std::mem::take(&mut buf);
                let chunk = self.ask(w, |reply| Command::List {
                    cursor: c,
                    max: LIST_CHUNK_MAX,
                    buf: lent,
                    reply,
                })?;
                buf = chunk.rows;
                buf.iter().for_each(&mut *visit);
                cursor = chunk.next;
            }
        }
        Ok(())
    }

    /// Offers the connection events' hub to the API ([`Dataplane::events`]).
    pub fn set_event_hub(&self, hub: Arc<crate::events::EventHub>) {
        *self.event_hub.lock() = Some(hub);
    }

    /// Offers the `/ip traffic-flow` menu to the API ([`Dataplane::traffic_flow`]).
    pub fn set_traffic_flow(&self, control: Arc<crate::flow_ops::FlowControl>) {
        *self.traffic_flow.lock() = Some(control);
    }

    /// Offers router mode's route menus ([`Dataplane::routes`]).
    pub fn set_routes(&self, control: Arc<crate::route_ops::RouteControl>) {
        *self.routes.lock() = Some(control);
    }

    /// Queues a new router configuration for every worker
    /// ([`Command::Router`], installed between bursts), or for none: with
    /// the send gate held alone, a full queue fails the change first. A
    /// worker that has exited fails it after the ones before it took it
    /// (they route by the new table; nothing else does any more).
    pub fn send_router(&self, cfg: Arc<dataplane::router::RouterConfig>) -> Result<(), String> {
        let Some(_gate) = self.send_gate.try_write_for(ANSWER_TIMEOUT) else {
            return Err("the workers' queues stayed busy; no worker changed".to_string());
        };
        if let Some(w) = self.workers.iter().position(|h| h.commands.is_full()) {
            return Err(format!(
                "worker {w} is not taking commands (its queue is full); no worker changed"
            ));
        }
        for (w, h) in self.workers.iter().enumerate() {
            if h.commands
                .try_send(Command::Router(Arc::clone(&cfg)))
                .is_err()
            {
                return Err(format!("worker {w} has stopped"));
            }
        }
        Ok(())
    }

    /// Adds families to every scrape (events, flow export).
    pub fn add_metrics(&self, f: ExtraMetricsFn) {
        self.extra_metrics.lock().push(f);
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
    fn for_each_connection(
        &self,
        filter: &[(String, String)],
        visit: &mut dyn FnMut(ConnSnapshot) -> ControlFlow<()>,
    ) -> Result<(), OpsError> {
        // Reject an unknown property before walking the table.
        check_filter_properties(filter)?;
        let mut buf = Vec::with_capacity(LIST_CHUNK_MAX);
        for w in 0..self.workers.len() {
            if self.list_worker(w, filter, &mut buf, visit)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn extra_metrics(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.extra_metrics.lock().iter().flat_map(|f| f()).collect()
    }

    fn events(&self) -> Option<Arc<crate::events::EventHub>> {
        self.event_hub.lock().clone()
    }

    fn traffic_flow(&self) -> Option<Arc<crate::flow_ops::FlowControl>> {
        self.traffic_flow.lock().clone()
    }

    fn routes(&self) -> Option<Arc<crate::route_ops::RouteControl>> {
        self.routes.lock().clone()
    }

    fn firewall_state(&self) -> Result<crate::fw_manage::FirewallState, OpsError> {
        let stats = self.rule_stats()?;
        let fw = self.firewall.lock();
        Ok(match fw.as_ref() {
            Some(f) => crate::fw_manage::FirewallState {
                config: f.config().clone(),
                ids: f.ids().clone(),
                stats,
            },
            None => Default::default(),
        })
    }

    fn edit_firewall(
        &self,
        edit: &mut dyn FnMut(
            &mut ctrack_rules::Config,
            &mut crate::fw_manage::MenuIds,
        ) -> Result<(), OpsError>,
    ) -> Result<(), OpsError> {
        self.edit_firewall_locked(edit)
    }

    fn reset_firewall_counters(
        &self,
        rules: Option<&[(ctrack_rules::Fam, ctrack_rules::Table, usize)]>,
    ) -> Result<(), OpsError> {
        self.reset_counters(rules)
    }

    fn count(&self, filter: &[(String, String)]) -> Result<u64, OpsError> {
        if filter.is_empty() {
            return Ok(self.workers.iter().map(|w| w.counters.read().entries).sum());
        }
        count_by_walking(self, filter)
    }

    fn expectations(&self) -> Result<Vec<ctrack_model::expect::ExpectRow>, OpsError> {
        // Each worker holds a copy of every expectation; each lists those
        // of its own masters, so every one appears once.
        let mut rows = Vec::new();
        for w in 0..self.workers.len() {
            let buf = Vec::with_capacity(dataplane::conntrack::helping::EXPECT_MAX);
            let got = self.ask(w, |reply| Command::Expectations { buf, reply })?;
            rows.extend(
                got.iter()
                    .map(|(e, left)| ctrack_model::expect::ExpectRow::from_core(e, *left)),
            );
        }
        Ok(rows)
    }

    fn neighbors(&self) -> Result<Vec<dataplane::router::neigh::NeighRow>, OpsError> {
        // Each worker has its own table (what it learned, and what the
        // others pushed on the neighbour bus); the copy is the worker's,
        // between bursts, into a buffer made here.
        let mut rows = Vec::new();
        for w in 0..self.workers.len() {
            let buf = Vec::with_capacity(dataplane::router::NEIGH_CAPACITY);
            rows.extend(self.ask(w, |reply| Command::Neighbors { buf, reply })?);
        }
        Ok(rows)
    }

    fn connection(&self, id: ConnId) -> Result<ConnSnapshot, OpsError> {
        let w = id.worker() as usize;
        if w >= self.workers.len() {
            return Err(OpsError::NotFound(id.to_string()));
        }
        self.ask(w, |reply| Command::Get { id, reply })?
            .map(|raw| ConnSnapshot::from_raw(&raw))
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
        let fw = self.firewall.lock();
        TrackingInfo {
            settings: self.settings.lock().clone(),
            max_entries: max,
            total_entries: total,
            auto_tracking: fw.as_ref().map(|f| f.auto_tracking()),
            tracking_needed_by: fw.as_ref().map_or(Vec::new(), |f| f.needed_by().to_vec()),
        }
    }

    fn set_tracking(&self, changes: &[(String, String)]) -> Result<TrackingInfo, OpsError> {
        {
            let mut cur = self.settings.lock();
            let next = apply_changes(&cur, changes)?;
            self.broadcast_settings(&cur, &next)?;
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
                    router: report.router,
                    fw_dropped: [t.fw_dropped, t.fw_rejected, t.fw_tarpitted],
                    fw_answers: t.fw_answers,
                    fw_l7_full: t.fw_l7_full,
                    nat_translated: t.nat_translated,
                    nat_dropped: [
                        t.nat_exhausted,
                        t.nat_no_address,
                        t.nat_bad_range,
                        t.nat_rewrite_failed,
                    ],
                    frag: dataplane::frag::FragTotals::from_array(t.frag),
                }
            })
            .collect();
        MetricsSnapshot {
            workers,
            ports: (self.port_stats)(),
            rules: self.rule_stats().unwrap_or_default(),
        }
    }
}

/// The firewall: rulesets go to every worker or to none, as settings do.
impl WorkerSet {
    /// One queue of address-list additions per worker, for
    /// [`Firewall::update`] (made once, kept across reloads).
    pub fn new_list_queues(workers: usize) -> Vec<Arc<ListQueue>> {
        (0..workers)
            .map(|_| Arc::new(ListQueue::new(LIST_QUEUE)))
            .collect()
    }

    /// Records the firewall the workers were started with: worker `w` got
    /// `fw.update(None, Some(queues[w]))` before its first packet.
    pub fn started_with_firewall(&self, fw: Firewall, queues: Vec<Arc<ListQueue>>) {
        *self.firewall.lock() = Some(fw);
        *self.list_queues.lock() = queues;
    }

    /// Gives each worker the address-list additions the others made
    /// (`add-src-to-address-list`, `add-dst-to-address-list`) since the last
    /// call: RouterOS has one list, ctrack one per worker, kept in step by
    /// this (call it often: `ctrack run` does every 10 ms). Never waits: a
    /// worker whose command queue is full misses these additions (counted
    /// in the return value's second part). Returns (additions moved, lost).
    pub fn exchange_lists(&self) -> (usize, usize) {
        let queues = self.list_queues.lock().clone();
        let Some(generation) = self.firewall.lock().as_ref().map(Firewall::generation) else {
            return (0, 0);
        };
        let mut by_worker: Vec<Vec<ctrack_rules::lists::ListAdd>> = Vec::new();
        let mut any = 0;
        for q in &queues {
            let mut v = Vec::new();
            while let Some((g, a)) = q.pop() {
                if g == generation {
                    v.push(a);
                }
            }
            any += v.len();
            by_worker.push(v);
        }
        if any == 0 {
            return (0, 0);
        }
        let mut lost = 0;
        let _gate = self.send_gate.read();
        for (w, h) in self.workers.iter().enumerate() {
            let adds: Vec<_> = by_worker
                .iter()
                .enumerate()
                .filter(|&(o, _)| o != w)
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            if adds.is_empty() {
                continue;
            }
            let n = adds.len();
            if h.commands
                .try_send(Command::ListAdds { generation, adds })
                .is_err()
            {
                lost += n;
            }
        }
        (any, lost)
    }

    /// Compiles `config` and installs it in every worker, or in none (a
    /// script that does not compile, or a busy worker, changes nothing).
    /// Counters of unchanged rules carry over. Tracking settings of the
    /// script are not applied here (use `set_tracking`).
    pub fn reload_firewall(&self, config: ctrack_rules::Config) -> Result<(), OpsError> {
        let mut guard = self.firewall.lock();
        let next = match guard.as_mut() {
            Some(cur) => cur.prepare(config),
            None => Firewall::new(config, self.ports_hint()),
        }
        .map_err(|e| OpsError::Unavailable(format!("{e:#}")))?;
        self.install_firewall(&mut guard, next)
    }

    /// [`Dataplane::edit_firewall`]: the edit and the install under one
    /// lock, so that two edits never lose one another.
    fn edit_firewall_locked(
        &self,
        edit: &mut dyn FnMut(
            &mut ctrack_rules::Config,
            &mut crate::fw_manage::MenuIds,
        ) -> Result<(), OpsError>,
    ) -> Result<(), OpsError> {
        let mut guard = self.firewall.lock();
        let (mut config, mut ids) = match guard.as_ref() {
            Some(f) => (f.config().clone(), f.ids().clone()),
            None => Default::default(),
        };
        edit(&mut config, &mut ids)?;
        let mut next = match guard.as_mut() {
            Some(cur) => cur.prepare(config),
            None => Firewall::new(config, self.ports_hint()),
        }
        .map_err(|e| OpsError::Invalid(format!("{e:#}")))?;
        next.set_ids(ids);
        self.install_firewall(&mut guard, next)
    }

    /// The workers' rule counters now (of the current generation).
    fn worker_rule_counters(
        &self,
        generation: u64,
        len: usize,
    ) -> Result<Vec<Vec<ctrack_rules::RuleCounter>>, OpsError> {
        let pending: Vec<_> = (0..self.workers.len())
            .map(|w| {
                let (tx, rx) = bounded(1);
                self.send(
                    w,
                    Command::RuleCounters {
                        buf: Vec::with_capacity(len),
                        reply: tx,
                    },
                )
                .map(|_| rx)
            })
            .collect::<Result<_, _>>()?;
        let mut answers = Vec::with_capacity(pending.len());
        for (w, rx) in pending.into_iter().enumerate() {
            match rx.recv_timeout(ANSWER_TIMEOUT) {
                Ok(Some(a)) if a.generation == generation => answers.push(a.counters),
                Ok(_) => {}
                Err(_) => {
                    return Err(OpsError::Unavailable(format!("worker {w} did not answer")));
                }
            }
        }
        Ok(answers)
    }

    /// Sends `next` to every worker or to none, then makes it current.
    fn install_firewall(
        &self,
        guard: &mut Option<Firewall>,
        next: Firewall,
    ) -> Result<(), OpsError> {
        let Some(_gate) = self.send_gate.try_write_for(ANSWER_TIMEOUT) else {
            return Err(OpsError::Unavailable(
                "the workers' queues stayed busy; no worker changed".to_string(),
            ));
        };
        if let Some(w) = self.workers.iter().position(|h| h.commands.is_full()) {
            return Err(OpsError::Unavailable(format!(
                "worker {w} is not taking commands (its queue is full); no worker changed"
            )));
        }
        let queues = {
            let mut q = self.list_queues.lock();
            if q.len() != self.workers.len() {
                *q = Self::new_list_queues(self.workers.len());
            }
            q.clone()
        };
        // The script's `/ip firewall service-port` (RouterOS's defaults
        // where it says nothing), ahead of the rules.
        let ports = dataplane::helpers::service_ports(&next.config().service_ports);
        for (w, h) in self.workers.iter().enumerate() {
            if h.commands.try_send(Command::ServicePorts(ports)).is_err() {
                return Err(OpsError::Unavailable(format!(
                    "worker {w} has stopped while the ruleset was being installed"
                )));
            }
        }
        let mut replies = Vec::with_capacity(self.workers.len());
        for (w, h) in self.workers.iter().enumerate() {
            let (tx, rx) = bounded(1);
            let update = next.update(Some(tx), Some(Arc::clone(&queues[w])));
            if h.commands
                .try_send(Command::Firewall(Box::new(update)))
                .is_err()
            {
                return Err(OpsError::Unavailable(format!(
                    "worker {w} has stopped while the ruleset was being installed"
                )));
            }
            replies.push(rx);
        }
        let retired: Vec<_> = replies
            .into_iter()
            .filter_map(|rx| rx.recv_timeout(ANSWER_TIMEOUT).ok())
            .collect();
        match guard.as_mut() {
            Some(cur) => cur.commit(next, &retired),
            None => *guard = Some(next),
        }
        Ok(())
    }

    /// [`Dataplane::reset_firewall_counters`].
    fn reset_counters(
        &self,
        rules: Option<&[(ctrack_rules::Fam, ctrack_rules::Table, usize)]>,
    ) -> Result<(), OpsError> {
        let (generation, len) = match self.firewall.lock().as_ref() {
            Some(f) => (f.generation(), f.ruleset().len()),
            None => return Ok(()),
        };
        let answers = self.worker_rule_counters(generation, len)?;
        let mut fw = self.firewall.lock();
        let Some(f) = fw.as_mut().filter(|f| f.generation() == generation) else {
            return Err(OpsError::Unavailable(
                "the rules changed meanwhile; try again".to_string(),
            ));
        };
        let ids: Option<Vec<ctrack_rules::RuleId>> = rules.map(|r| {
            r.iter()
                .filter_map(|&(fam, t, pos)| f.ruleset().rule_id(fam, t, pos))
                .collect()
        });
        f.reset_counters(answers.iter().map(Vec::as_slice), ids.as_deref());
        Ok(())
    }

    /// Every rule with the given final counters of stopped workers
    /// (`(generation, counters)`; those of another ruleset are ignored).
    pub fn firewall_stats_with<'a>(
        &self,
        workers: impl Iterator<Item = &'a (u64, Vec<ctrack_rules::RuleCounter>)>,
    ) -> Vec<RuleStat> {
        let fw = self.firewall.lock();
        let Some(f) = fw.as_ref() else {
            return Vec::new();
        };
        let g = f.generation();
        f.stats(
            workers
                .filter(|(wg, _)| *wg == g)
                .map(|(_, c)| c.as_slice()),
        )
    }

    /// Ports the workers serve (for a first ruleset loaded at run time).
    fn ports_hint(&self) -> usize {
        (self.port_stats)().len().max(2)
    }

    /// Every rule with its counters summed over the workers (plus what
    /// carried over reloads); empty without rules.
    pub fn rule_stats(&self) -> Result<Vec<RuleStat>, OpsError> {
        let (generation, len) = match self.firewall.lock().as_ref() {
            Some(f) => (f.generation(), f.ruleset().len()),
            None => return Ok(Vec::new()),
        };
        let answers = self.worker_rule_counters(generation, len)?;
        let fw = self.firewall.lock();
        Ok(fw
            .as_ref()
            .map(|f| f.stats(answers.iter().map(Vec::as_slice)))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    use ctrack_traffic::pcap::{LinkType, parse_link};
    use ctrack_traffic::synth::Mix;
    use dataplane::conntrack::{Instant, Shard, TableConfig};
    use dataplane::io::mem::MemIo;
    use dataplane::worker::{Mesh, Worker};

    use super::*;

    /// Workers on threads, each with a table of its own, answering commands.
    struct Running {
        set: WorkerSet,
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    /// `workers` workers, each tracking the same `flows` UDP flows (their ids
    /// differ by worker); with `deaf`, that worker takes no commands.
    fn running(workers: u16, flows: u32, deaf: Option<u16>) -> Running {
        let mix = Mix {
            tcp: 0,
            udp: flows,
            icmp: 0,
            exchanges: 1,
            ..Mix::default()
        };
        let packets = mix.packets();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut handles, mut threads) = (Vec::new(), Vec::new());
        for id in 0..workers {
            let mut shard = Shard::new(
                TableConfig::new(4096),
                Settings::default(),
                id,
                dataplane::worker::random_seed(),
            );
            let mut now = Instant::ZERO;
            for p in &packets {
                now = Instant(p.ts_nanos);
                shard.handle_packet(now, &parse_link(LinkType::Ethernet, &p.frame).unwrap());
            }
            let mut io = MemIo::new(Vec::new(), 2, &[0, 1], 32);
            io.clock = now;
            let (tx, rx) = command_queue();
            let counters = Arc::new(WorkerCounters::default());
            let mut w = Worker::new(
                id,
                io,
                shard,
                Mesh::new(1, vec![0, 0]),
                rx,
                Arc::clone(&counters),
            );
            if deaf == Some(id) {
                drop(w);
            } else {
                let stop = Arc::clone(&stop);
                threads.push(std::thread::spawn(move || w.run(&stop)));
            }
            handles.push(WorkerHandle {
                commands: tx,
                counters,
            });
        }
        let set = WorkerSet::new(handles, Settings::default(), Box::new(Vec::new));
        Running { set, stop, threads }
    }

    fn filter(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A ruleset goes to every worker; rule counters come back from all of
    /// them; `tracking print` says which rules need tracking; a script that
    /// does not compile changes nothing.
    #[test]
    fn a_ruleset_reaches_every_worker() {
        let r = running(2, 5, None);
        let script = "/ip firewall mangle\n\
             add chain=forward action=mark-connection new-connection-mark=web \
             connection-mark=no-mark\n\
             /ip firewall filter\n\
             add chain=forward action=accept protocol=udp comment=\"udp in\"\n";
        r.set
            .reload_firewall(ctrack_rules::parse(script).unwrap())
            .unwrap();
        let stats = r.set.rule_stats().unwrap();
        assert_eq!(stats.len(), 2);
        let udp = stats
            .iter()
            .find(|s| s.comment.as_deref() == Some("udp in"))
            .unwrap();
        assert_eq!(
            (udp.table, udp.chain.as_str(), udp.position),
            ("filter", "forward", 0)
        );
        let t = r.set.tracking();
        assert_eq!(t.auto_tracking, Some(true));
        assert_eq!(
            t.tracking_needed_by,
            ["/ip firewall mangle #0 (connection-mark)".to_string()]
        );
        // Every worker runs generation 1: a swap hands it back.
        for w in 0..2 {
            let (tx, rx) = bounded(1);
            let none = dataplane::firewall::FirewallUpdate {
                ruleset: None,
                generation: 0,
                auto_tracking: true,
                reply: Some(tx),
                lists_out: None,
                conncount: None,
                addresses: None,
            };
            r.set.send(w, Command::Firewall(Box::new(none))).unwrap();
            let retired = rx.recv_timeout(ANSWER_TIMEOUT).unwrap();
            assert_eq!(retired.generation, 1, "worker {w} ran the ruleset");
            assert_eq!(retired.state.unwrap().counters().len(), 2);
        }
        // A jump loop does not compile: nothing changes.
        let bad = ctrack_rules::parse(
            "/ip firewall filter\n\
             add chain=forward action=jump jump-target=a\n\
             add chain=a action=jump jump-target=b\n\
             add chain=b action=jump jump-target=a\n",
        )
        .unwrap();
        let e = r.set.reload_firewall(bad).unwrap_err();
        assert!(e.to_string().contains("compiling"), "{e}");
        assert_eq!(r.set.tracking().tracking_needed_by.len(), 1);
    }

    /// An address-list addition made by one worker's rule reaches the other
    /// worker through control (`exchange_lists`): RouterOS has one list.
    #[test]
    fn address_list_additions_reach_the_other_workers() {
        use ctrack_traffic::synth::udp_frame;
        use dataplane::io::mem::MemLink;
        let cfg = ctrack_rules::parse(
            "/ip firewall filter\n\
             add chain=forward action=drop src-address-list=seen\n\
             add chain=forward action=add-src-to-address-list address-list=seen \
             address-list-timeout=1h\n",
        )
        .unwrap();
        let fw = Firewall::new(cfg, 2).unwrap();
        let queues = WorkerSet::new_list_queues(2);
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for id in 0..2u16 {
            let links = vec![MemLink {
                port: 0,
                ..MemLink::default()
            }];
            let (tx, rx) = command_queue();
            let counters = Arc::new(WorkerCounters::default());
            let shard = Shard::new(
                TableConfig::new(64),
                Settings::default(),
                id,
                dataplane::worker::random_seed(),
            );
            let mut w = Worker::new(
                id,
                MemIo::new(links, 2, &[0, 1], 32),
                shard,
                Mesh::new(1, vec![0, 0]),
                rx,
                Arc::clone(&counters),
            );
            w.install_firewall(fw.update(None, Some(Arc::clone(&queues[id as usize]))));
            workers.push(w);
            handles.push(WorkerHandle {
                commands: tx,
                counters,
            });
        }
        let set = WorkerSet::new(handles, Settings::default(), Box::new(Vec::new));
        set.started_with_firewall(fw, queues);
        let from = |dport: u16| udp_frame([10, 9, 9, 9], [10, 2, 0, 1], 5000, dport, 10, true);
        // Worker 0 sees the source first: passes, listed.
        workers[0].io_mut().links[0].input.push_back(from(1));
        workers[0].poll_once();
        // Worker 1 has not heard of it yet: passes too.
        workers[1].io_mut().links[0].input.push_back(from(2));
        workers[1].poll_once();
        assert_eq!(set.exchange_lists(), (2, 0), "one addition from each");
        // Both apply the other's addition between bursts...
        workers[0].poll_once();
        workers[1].poll_once();
        // ... and drop the source from now on.
        for (k, w) in workers.iter_mut().enumerate() {
            w.io_mut().links[0].input.push_back(from(10 + k as u16));
            w.poll_once();
            let t = w.totals();
            assert_eq!((t.tx_packets, t.fw_dropped), (1, 1), "worker {k}");
        }
    }

    /// A connection's mark prints by its name (the process's `Names`).
    #[test]
    fn marks_print_by_name() {
        let mix = Mix {
            tcp: 0,
            udp: 3,
            icmp: 0,
            exchanges: 1,
            ..Mix::default()
        };
        let mut shard = Shard::new(
            TableConfig::new(64),
            Settings::default(),
            0,
            dataplane::worker::random_seed(),
        );
        let mut ids = Vec::new();
        for p in mix.packets() {
            let v = shard.handle_packet(
                Instant(p.ts_nanos),
                &parse_link(LinkType::Ethernet, &p.frame).unwrap(),
            );
            if let dataplane::conntrack::Verdict::Tracked {
                id, created: true, ..
            } = v
            {
                ids.push(id);
            }
        }
        let cfg = ctrack_rules::parse(
            "/ip firewall mangle\n\
             add chain=forward action=mark-connection new-connection-mark=web\n",
        )
        .unwrap();
        let fw = Firewall::new(cfg, 2).unwrap();
        let web = fw.names().id("web").unwrap();
        shard.set_connection_mark(ids[0], web);
        let (tx, rx) = command_queue();
        let counters = Arc::new(WorkerCounters::default());
        let mut w = Worker::new(
            0,
            MemIo::new(Vec::new(), 2, &[0, 1], 32),
            shard,
            Mesh::new(1, vec![0, 0]),
            rx,
            Arc::clone(&counters),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stop_w = Arc::clone(&stop);
        let t = std::thread::spawn(move || w.run(&stop_w));
        let set = WorkerSet::new(
            vec![WorkerHandle {
                commands: tx,
                counters,
            }],
            Settings::default(),
            Box::new(Vec::new),
        );
        set.started_with_firewall(fw, Vec::new());
        let rows = set.connections(&[]).unwrap();
        let marked: Vec<_> = rows
            .iter()
            .filter(|r| !r.connection_mark.is_empty())
            .collect();
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0].connection_mark, "web");
        assert_eq!(marked[0].id, ids[0].to_string());
        let by_name = set
            .connections(&filter(&[("connection-mark", "web")]))
            .unwrap();
        assert_eq!(by_name.len(), 1);
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }

    #[test]
    fn a_walk_visits_every_chunk_of_every_worker_once() {
        // More flows than one chunk holds.
        let flows = LIST_CHUNK_MAX as u32 + 44;
        let r = running(2, flows, None);
        let mut ids = Vec::new();
        r.set
            .for_each_connection(&[], &mut |c| {
                ids.push(c.id);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(ids.len(), 2 * flows as usize);
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "each connection once");

        // The collected listing is the walk; filters apply to both.
        let all = r.set.connections(&[]).unwrap();
        assert_eq!(all.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids);
        let one = filter(&[("worker", "1"), ("protocol", "udp")]);
        let rows = r.set.connections(&one).unwrap();
        assert_eq!(rows.len(), flows as usize);
        assert!(rows.iter().all(|c| c.worker == 1));
        assert_eq!(r.set.count(&one).unwrap(), flows as u64);
        assert_eq!(r.set.count(&filter(&[("protocol", "tcp")])).unwrap(), 0);

        // Break stops the walk.
        let mut seen = 0;
        r.set
            .for_each_connection(&[], &mut |_| {
                seen += 1;
                if seen == 10 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(seen, 10);

        // An unknown property is refused before anything is visited.
        let e = r
            .set
            .for_each_connection(&filter(&[("protcol", "udp")]), &mut |_| panic!("visited"))
            .unwrap_err();
        assert!(matches!(e, OpsError::Filter(_)), "{e}");
    }

    #[test]
    fn a_settings_change_reaches_every_worker_or_none() {
        // Two workers that do not run: the test reads their queues.
        let (tx0, rx0) = command_queue();
        let (tx1, rx1) = command_queue();
        let handle = |commands| WorkerHandle {
            commands,
            counters: Arc::new(WorkerCounters::default()),
        };
        let set = WorkerSet::new(
            vec![handle(tx0), handle(tx1.clone())],
            Settings::default(),
            Box::new(Vec::new),
        );
        // Worker 1 is busy: its queue is full.
        for _ in 0..COMMAND_QUEUE {
            tx1.try_send(Command::FastTrack(FastTrackMode::No)).unwrap();
        }
        let change = filter(&[("udp-timeout", "30s")]);
        let e = set.set_tracking(&change).unwrap_err();
        assert!(matches!(e, OpsError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("worker 1"), "{e}");
        assert!(
            rx0.try_recv().is_err(),
            "worker 0 got settings: not all or nothing"
        );
        assert_eq!(set.tracking().settings, Settings::default());

        // Once worker 1 drains its queue, the change reaches both.
        while rx1.try_recv().is_ok() {}
        let t = set.set_tracking(&change).unwrap();
        assert_eq!(t.settings.udp_timeout.as_secs(), 30);
        for rx in [&rx0, &rx1] {
            match rx.try_recv() {
                Ok(Command::Settings(s)) => assert_eq!(*s, t.settings),
                _ => panic!("a worker did not get the new settings"),
            }
        }
        // A refused value reaches no worker either.
        let e = set
            .set_tracking(&filter(&[("udp-timeout", "0s")]))
            .unwrap_err();
        assert!(e.to_string().contains("udp-timeout"), "{e}");
        assert!(rx0.try_recv().is_err() && rx1.try_recv().is_err());
    }

    #[test]
    fn a_worker_that_does_not_answer_fails_the_walk_after_the_others_rows() {
        let r = running(2, 5, Some(1));
        let mut seen = 0;
        let e = r
            .set
            .for_each_connection(&[], &mut |_| {
                seen += 1;
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(seen, 5, "worker 0's rows came first");
        assert!(matches!(e, OpsError::Unavailable(_)), "{e}");
    }
}
