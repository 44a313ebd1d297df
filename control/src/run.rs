//! `ctrack run`: EAL, ports, workers pinned to the EAL lcores' CPUs, and the
//! main thread watching for a stop condition and reporting totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dataplane::conntrack::{Settings, Shard, ShardStats, TableConfig};
use dataplane::io::dpdk::DpdkIo;
use dataplane::stats::{WorkerCounters, WorkerTotals};
use dataplane::worker::{HANDOFF_RING, Mesh, Worker};
use dpdk::{Eal, Mbuf, Mempool, Port, PortConfig, PortId};
use serde::Serialize;

use crate::api::ApiServer;
use crate::config::{Listen, RunConfig};
use crate::events::EventHub;
use crate::flow_export::TrafficFlow;
use crate::flow_ops::{FlowControl, SharedWalk};
use crate::metrics::MetricsServer;
use crate::ops::{Dataplane, PortMetrics};
use crate::plan::{PortQueues, plan};
use crate::workers::{PortStatsFn, WorkerHandle, WorkerSet, command_queue};
use dataplane::events::{EVENT_RING, EventRing, SHARD_EVENTS};
use std::net::SocketAddr;

#[derive(Debug, Serialize)]
pub struct PortSummary {
    pub driver: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: bool,
    /// Why the port's NIC could not be given symmetric RSS as asked (it has
    /// several RX queues); `null` when it could, or has one RX queue.
    pub rss_warning: Option<String>,
    /// Port id, name and DPDK counters.
    #[serde(flatten)]
    pub counters: PortMetrics,
}

/// A port's id, name and DPDK counters, as metrics and the summary show them.
fn port_metrics(p: &Port) -> PortMetrics {
    let s = p.stats().unwrap_or_default();
    PortMetrics {
        port: p.id().0,
        name: p.port_info().name.clone(),
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        rss_degraded: p.rss().problem.is_some(),
    }
}

#[derive(Debug, Serialize)]
pub struct WorkerSummary {
    pub worker: usize,
    pub cpu: Option<usize>,
    pub rx_queues: Vec<String>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub handoffs_out: u64,
    pub handoff_dropped: u64,
    pub table_dropped: u64,
    pub loops: u64,
    pub busy_loops: u64,
    pub connections: u32,
    pub connections_created: u64,
    pub invalid: u64,
    pub untracked: u64,
    pub not_parsed: u64,
    pub fasttrack_packets: u64,
    /// Packets dropped by firewall rules, by action.
    pub firewall_dropped: u64,
    pub firewall_rejected: u64,
    pub firewall_tarpitted: u64,
    /// Router mode: what the worker's router plane did (absent in bridge
    /// mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<dataplane::router::RouterTotals>,
    /// Reassembly and fragmenting again (docs/nat.md, Fragments).
    pub frag: dataplane::frag::FragTotals,
}

#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub elapsed_secs: f64,
    pub stop_reason: &'static str,
    pub ports: Vec<PortSummary>,
    pub workers: Vec<WorkerSummary>,
    pub mempool_size: u32,
    pub mempool_in_use_start: u32,
    pub mempool_in_use_end: u32,
    /// Buffers of reassembled datagrams still in use at the end (0: none
    /// leaked); absent without reassembly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frag_mempool_in_use_end: Option<u32>,
    /// Firewall rules with their final counters (empty without `--rules`).
    pub firewall_rules: Vec<crate::firewall::RuleStat>,
}

/// Runs the dataplane until `stop` (or `duration`, `idle-exit`), with the
/// firewall `rules` (a parsed RouterOS script) if given.
pub fn run(
    cfg: &RunConfig,
    tracking: &Settings,
    rules: Option<ctrack_rules::Config>,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary> {
    run_with_export(cfg, tracking, rules, &TrafficFlow::default(), stop)
}

/// [`run`], exporting flows as `flow` says (`/ip traffic-flow`).
pub fn run_with_export(
    cfg: &RunConfig,
    tracking: &Settings,
    rules: Option<ctrack_rules::Config>,
    flow: &TrafficFlow,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary> {
    let eal = Eal::init(&cfg.eal)
        .context("EAL initialisation failed (check the EAL arguments after --)")?;
    let result = run_with_eal(&eal, cfg, tracking, rules, flow, stop);
    // Every port, queue and mempool is dropped by now, and every worker
    // joined; cleanup checks it and refuses otherwise (the process then ends
    // without it, which is harmless).
    if let Err((_, e)) = eal.cleanup() {
        eprintln!("ctrack: warning: EAL not cleaned up: {e}");
    }
    result
}

/// What a worker thread hands back when it stops.
struct WorkerEnd {
    totals: WorkerTotals,
    stats: ShardStats,
    entries: u32,
    /// The worker's rule counters, with its ruleset's generation.
    rules: Option<(u64, Vec<ctrack_rules::RuleCounter>)>,
    router: Option<dataplane::router::RouterTotals>,
}

fn run_with_eal(
    eal: &Eal,
    cfg: &RunConfig,
    tracking: &Settings,
    rules: Option<ctrack_rules::Config>,
    flow: &TrafficFlow,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary> {
    let probed = eal.port_count();
    let ids: Vec<u16> = match &cfg.ports {
        Some(list) => {
            for &p in list {
                if p >= probed {
                    bail!(
                        "port {p} does not exist: {probed} port(s) were probed (did a --vdev or a PCI device fail to probe?)"
                    );
                }
            }
            list.clone()
        }
        None => (0..probed).collect(),
    };
    let n_ports = ids.len() as u16;
    // Addresses in the script: router mode (control/src/router.rs).
    let router_setup = rules
        .as_ref()
        .map(|r| crate::router::RouterSetup::from_config(r, ids.len()))
        .transpose()?
        .flatten();
    // Port i is `ether{i+1}` to the rules (unless the script renames it).
    let mut firewall = rules
        .map(|r| crate::firewall::Firewall::new(r, ids.len()))
        .transpose()?;
    // Flow export is made of the table's events: `enabled=auto` tracks.
    if let Some(f) = firewall.as_mut().filter(|_| flow.enabled) {
        f.also_needed_by(crate::flow_ops::NEEDS_TRACKING);
    }
    // What flow export's `interfaces` names.
    let if_names = firewall.as_ref().map_or_else(
        || crate::firewall::default_interfaces(ids.len()),
        |f| f.interfaces().to_vec(),
    );
    let lcores = dpdk::worker_lcores();
    let workers = cfg.workers.map(usize::from).unwrap_or(lcores.len().max(1));
    let rx_desc = cfg.rx_desc.unwrap_or(RunConfig::DEFAULT_RX_DESC);
    let tx_desc = cfg.tx_desc.unwrap_or(RunConfig::DEFAULT_TX_DESC);
    let burst = cfg.burst.unwrap_or(RunConfig::DEFAULT_BURST) as usize;
    let max_entries = cfg.max_entries.unwrap_or(RunConfig::DEFAULT_MAX_ENTRIES);
    let fasttrack = cfg.fasttrack.unwrap_or_default();

    let infos = ids
        .iter()
        .map(|&p| Port::info(PortId(p)).with_context(|| format!("port {p}")))
        .collect::<Result<Vec<_>>>()?;
    if infos.is_empty() {
        bail!(crate::plan::PlanError::NoPorts);
    }
    let queues_per_port = workers as u64 * (rx_desc as u64 + tx_desc as u64);
    let wanted = n_ports as u64 * queues_per_port
        + (workers * workers) as u64 * HANDOFF_RING as u64
        + workers as u64 * 4 * 64
        + 2048;
    let mbufs = cfg.mbufs.unwrap_or(wanted.min(1 << 20) as u32);
    let pool = Arc::new(
        Mempool::new_pktmbuf(
            "ctrack_mbufs",
            mbufs,
            256,
            2048 + 128,
            infos[0].socket.max(0),
        )
        .context("creating the mbuf pool (try fewer --mbufs or give EAL more memory with -m)")?,
    );

    let port_cfg = PortConfig {
        rx_queues: workers as u16,
        tx_queues: workers as u16,
        rx_desc,
        tx_desc,
        rss_key: dataplane::rss::symmetric_rss_key,
        reta: dataplane::rss::Reta::for_nic,
        promiscuous: true,
    };
    let ports = ids
        .iter()
        .zip(&infos)
        .map(|(&p, info)| {
            Port::configure(PortId(p), &port_cfg, pool.clone())
                .with_context(|| format!("setting up port {p} ({})", info.name))
        })
        .collect::<Result<Vec<_>>>()?;
    for p in &ports {
        if let Some(why) = &p.rss().problem {
            eprintln!(
                "ctrack: warning: port {} ({}): {} RX queues without symmetric RSS: {why}; \
                 software dispatch hands each packet to its connection's worker, at the cost \
                 of more handoffs",
                p.id(),
                p.port_info().name,
                p.rx_queue_count(),
            );
        }
    }
    // Ports whose per-packet RSS hash dispatch may use instead of its own.
    let nic_hash_ports: Vec<PortId> = ports
        .iter()
        .filter(|p| {
            let rss = p.rss();
            rss.enabled
                && dataplane::rss::NicRss {
                    key: rss.key.as_deref(),
                    l4_ports: rss.hashes_l4_ports(),
                    ipv6_ext: rss.hashes_ipv6_ext(),
                }
                .hash_is_symmetric_toeplitz()
        })
        .map(Port::id)
        .collect();
    let queues: Vec<PortQueues> = ports
        .iter()
        .map(|p| PortQueues {
            rx: p.rx_queue_count(),
            tx: p.tx_queue_count(),
        })
        .collect();
    let plan = if router_setup.is_some() {
        crate::plan::plan_router(&queues, workers)?
    } else {
        plan(&queues, workers)?
    };
    let router = router_setup
        .map(|setup| -> Result<_> {
            let macs = ports
                .iter()
                .map(|p| {
                    p.mac_address()
                        .with_context(|| format!("port {} MAC", p.id().0))
                })
                .collect::<Result<Vec<_>>>()?;
            let cfg = setup.build(&macs, |e| {
                dataplane::router::Fib::with_lpm(e).context("building the rte_lpm FIB")
            })?;
            Ok((
                Arc::new(cfg),
                dataplane::router::NeighBus::new(workers),
                (setup, macs),
            ))
        })
        .transpose()?;
    let (router, route_parts) = match router {
        Some((cfg, bus, parts)) => (Some((cfg, bus)), Some(parts)),
        None => (None, None),
    };
    let in_use_start = pool.in_use_count();

    // Software dispatch mirrors the RETA the NICs were given (the first RSS
    // port's size; 128 when no port does RSS).
    let reta_size = ports
        .iter()
        .find(|p| p.rss_enabled() && p.port_info().reta_size > 0)
        .map_or(dataplane::rss::Reta::DEFAULT_SIZE, |p| {
            usize::from(p.port_info().reta_size)
        });
    let mesh = Mesh::<Mbuf>::with_reta(workers, plan.tx_owner.clone(), reta_size);
    let cpus: Vec<Option<usize>> = (0..workers)
        .map(|w| {
            if lcores.is_empty() {
                dpdk::main_lcore().cpu()
            } else {
                lcores[w % lcores.len()].cpu()
            }
        })
        .collect();

    // Reassembly (docs/nat.md, Fragments): one table per worker, one pool
    // of 64 KiB buffers for whole datagrams.
    let frag_pool = if cfg.reassembly.unwrap_or(true) {
        let n = cfg.frag_mbufs.unwrap_or(RunConfig::DEFAULT_FRAG_MBUFS) * workers as u32;
        Some(Arc::new(
            Mempool::new_pktmbuf(
                "ctrack_frag",
                n.max(2),
                0,
                u16::MAX,
                infos[0].socket.max(0),
            )
            .context(
                "creating the reassembly pool (try fewer --frag-mbufs, --reassembly no, or give \
                 EAL more memory with -m)",
            )?,
        ))
    } else {
        None
    };
    let frag_timeout = cfg
        .frag_timeout
        .unwrap_or(dataplane::conntrack::Duration::from_secs(
            RunConfig::DEFAULT_FRAG_TIMEOUT_SECS,
        ))
        .as_nanos();
    let new_frag_table = |pool: &Arc<Mempool>| -> Result<dpdk::FragTable> {
        dpdk::FragTable::new(
            cfg.frag_buckets.unwrap_or(RunConfig::DEFAULT_FRAG_BUCKETS),
            cfg.frag_bucket_entries
                .unwrap_or(RunConfig::DEFAULT_FRAG_BUCKET_ENTRIES),
            cfg.frag_max_datagrams
                .unwrap_or(RunConfig::DEFAULT_FRAG_MAX_DATAGRAMS),
            frag_timeout,
        )
        .and_then(|t| t.with_pool(Arc::clone(pool)))
        .context("creating a reassembly table (see --frag-buckets, --frag-max-datagrams)")
    };

    // Everything that can fail is prepared before the first thread starts.
    let list_queues = WorkerSet::new_list_queues(workers);
    let mut setups = Vec::with_capacity(workers);
    let mut handles_ctl = Vec::with_capacity(workers);
    for (w, wp) in plan.workers.iter().enumerate() {
        let rx = wp
            .rx
            .iter()
            .map(|&(p, q)| {
                ports[p as usize]
                    .take_rx_queue(q)
                    .map(|rxq| (rxq, p ^ 1))
                    .with_context(|| format!("RX queue {q} missing or taken twice on port {p}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let tx =
            wp.tx
                .iter()
                .enumerate()
                .map(|(p, q)| match q {
                    Some(q) => ports[p].take_tx_queue(*q).map(Some).with_context(|| {
                        format!("TX queue {q} missing or taken twice on port {p}")
                    }),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>>>()?;
        let counters = Arc::new(WorkerCounters::default());
        let (cmd_tx, cmd_rx) = command_queue();
        handles_ctl.push(WorkerHandle {
            commands: cmd_tx,
            counters: counters.clone(),
        });
        let mut shard = Shard::new(
            TableConfig::new(max_entries).with_nat(firewall.as_ref().is_some_and(|f| f.uses_nat())),
            tracking.clone(),
            w as u16,
            dataplane::worker::random_seed(),
        );
        fasttrack.apply(&mut shard);
        // Connection helpers on the service ports (RouterOS's defaults,
        // changed by the script's `/ip firewall service-port`).
        shard.set_service_ports(dataplane::helpers::service_ports(
            firewall
                .as_ref()
                .map_or(&[][..], |f| &f.config().service_ports),
        ));
        let fw_update = firewall
            .as_ref()
            .map(|f| f.update(None, Some(Arc::clone(&list_queues[w]))));
        let frag = frag_pool.as_ref().map(&new_frag_table).transpose()?;
        setups.push((rx, tx, shard, cmd_rx, counters, fw_update, frag));
    }

    // Connection events: recorded while something subscribes (flow export,
    // `listen`).
    let rings: Vec<Arc<EventRing>> = (0..workers)
        .map(|_| Arc::new(EventRing::new(EVENT_RING)))
        .collect();
    if flow.enabled {
        // From the first packet on, so that every connection's first-seen
        // time is known (the exporter subscribes before the hub first looks).
        rings.iter().for_each(|r| r.set_wanted(true));
    }

    let expect_mesh = dataplane::helpers::ExpectMesh::new(workers);
    let started = Instant::now();
    // The workers' own flag, not the signal's: on SIGTERM they must keep
    // answering until the exporter's last walk is done.
    let workers_stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(workers);
    for (w, (rx, tx, shard, cmd_rx, counters, fw_update, frag)) in setups.into_iter().enumerate() {
        let mesh = mesh.clone();
        let expect_mesh = expect_mesh.clone();
        let ring = rings[w].clone();
        let nic_hash_ports = nic_hash_ports.clone();
        let router = router.clone();
        let stop_w = workers_stop.clone();
        let cpu = cpus[w];
        let spawned = std::thread::Builder::new()
            .name(format!("ctrack-worker{w}"))
            .spawn(move || -> Result<WorkerEnd> {
                if let Some(cpu) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                let _dpdk =
                    dpdk::register_thread().context("registering the worker thread with DPDK")?;
                let mut io = DpdkIo::new(rx, tx, burst).trust_nic_hash(&nic_hash_ports);
                if let Some(t) = frag {
                    io = io.with_reassembly(t);
                }
                let mut worker = Worker::new(w as u16, io, shard, mesh, cmd_rx, counters);
                worker.set_events(ring, SHARD_EVENTS);
                if let Some((cfg, bus)) = router {
                    worker.install_router(cfg, bus);
                }
                worker.set_expect_mesh(expect_mesh);
                if let Some(u) = fw_update {
                    // Before the first packet.
                    worker.install_firewall(u);
                }
                worker.run(&stop_w);
                Ok(WorkerEnd {
                    rules: worker
                        .firewall()
                        .map(|f| (f.generation(), f.state().counters().to_vec())),
                    totals: worker.totals(),
                    stats: worker.shard().stats().clone(),
                    entries: worker.shard().total_entries(),
                    router: worker.router().map(|r| r.totals()),
                })
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Stop the workers already running before giving up.
                workers_stop.store(true, Ordering::SeqCst);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e).context("spawning a worker thread");
            }
        }
    }
    drop(mesh);

    let stats_ports = ports.clone();
    let port_stats: PortStatsFn = Box::new(move || stats_ports.iter().map(port_metrics).collect());
    let set = Arc::new(WorkerSet::new(handles_ctl, tracking.clone(), port_stats));
    if let Some((setup, macs)) = route_parts {
        // `/ip route` at run time (control/src/route_ops.rs).
        let weak = Arc::downgrade(&set);
        set.set_routes(Arc::new(crate::route_ops::RouteControl::new(
            setup,
            macs,
            if_names.clone(),
            Box::new(|e| dataplane::router::Fib::with_lpm(e).context("building the rte_lpm FIB")),
            Box::new(move |cfg| match weak.upgrade() {
                Some(set) => set.send_router(cfg),
                None => Err("the workers have stopped".to_string()),
            }),
        )));
    }
    let export = start_export(flow, if_names, rings, &set);
    if let Some(fw) = firewall {
        set.started_with_firewall(fw, list_queues);
    }
    let servers = start_servers(cfg, set.clone());
    let stop_reason = match (&servers, &export) {
        (Ok(_), Ok(_)) => watch(cfg, &stop, &set, &handles, started),
        _ => "error",
    };
    // The exporter's last records (every live connection) need the workers.
    if let Ok(x) = &export {
        x.stop();
    }
    workers_stop.store(true, Ordering::SeqCst);
    // Join every worker before reporting any failure: none may outlive EAL.
    let joined: Vec<Result<WorkerEnd>> = handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
        })
        .collect();
    let ends = joined.into_iter().collect::<Result<Vec<_>>>()?;
    let _export = export?;
    let mut servers = servers?;
    servers.iter_mut().for_each(|s| s.stop());
    drop(servers);
    let firewall_rules = set.firewall_stats_with(ends.iter().filter_map(|e| e.rules.as_ref()));
    drop(set);
    let elapsed = started.elapsed().as_secs_f64();
    let in_use_end = pool.in_use_count();

    let port_summaries = ports
        .iter()
        .map(|p| PortSummary {
            driver: p.port_info().driver.clone(),
            rx_queues: p.rx_queue_count(),
            tx_queues: p.tx_queue_count(),
            rss: p.rss_enabled(),
            rss_warning: p.rss().problem.as_ref().map(ToString::to_string),
            counters: port_metrics(p),
        })
        .collect();
    let worker_summaries = ends
        .iter()
        .enumerate()
        .map(|(w, e)| {
            let t = &e.totals;
            WorkerSummary {
                worker: w,
                cpu: cpus[w],
                rx_queues: plan.workers[w]
                    .rx
                    .iter()
                    .map(|&(p, q)| format!("port{}/q{q}", ids[p as usize]))
                    .collect(),
                rx_packets: t.rx_packets,
                tx_packets: t.tx_packets,
                tx_dropped: t.tx_dropped,
                handoffs_out: t.handoffs_out,
                handoff_dropped: t.handoff_dropped,
                table_dropped: t.table_dropped,
                loops: t.loops,
                busy_loops: t.busy_loops,
                connections: e.entries,
                connections_created: e.stats.insert,
                invalid: e.stats.invalid_total(),
                untracked: e.stats.untracked_total(),
                not_parsed: t.parse_errors.iter().sum(),
                fasttrack_packets: e.stats.fasttrack_packets.iter().sum(),
                firewall_dropped: t.fw_dropped,
                firewall_rejected: t.fw_rejected,
                firewall_tarpitted: t.fw_tarpitted,
                router: e.router,
                frag: dataplane::frag::FragTotals::from_array(t.frag),
            }
        })
        .collect();
    drop(ports);
    Ok(RunSummary {
        elapsed_secs: elapsed,
        stop_reason,
        ports: port_summaries,
        workers: worker_summaries,
        mempool_size: mbufs,
        mempool_in_use_start: in_use_start,
        mempool_in_use_end: in_use_end,
        frag_mempool_in_use_end: frag_pool.as_ref().map(|p| p.in_use_count()),
        firewall_rules,
    })
}

/// The event hub and, when `/ip traffic-flow` is enabled, the flow exporter
/// of a run.
struct Export {
    hub: Arc<EventHub>,
    hub_stop: Arc<AtomicBool>,
    hub_thread: Option<std::thread::JoinHandle<()>>,
    flow: Arc<FlowControl>,
}

impl Export {
    /// Delivers what the workers published, exports what is left, stops the
    /// exporter.
    fn stop(&self) {
        while self.hub.pump() > 0 {}
        self.flow.stop();
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        self.hub_stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.hub_thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the event hub over the workers' rings (offered to the API through
/// [`WorkerSet::set_event_hub`]) and, if enabled, the flow exporter.
fn start_export(
    flow: &TrafficFlow,
    names: Vec<String>,
    rings: Vec<Arc<EventRing>>,
    set: &Arc<WorkerSet>,
) -> Result<Export> {
    let hub = EventHub::new(rings);
    let hub_stop = Arc::new(AtomicBool::new(false));
    // Weak: the set offers the menu to the API, the menu must not keep the
    // set alive.
    let walk_set = Arc::downgrade(set);
    let walk: SharedWalk = Arc::new(move |visit| match walk_set.upgrade() {
        Some(set) => set.for_each_raw(visit).map_err(|e| e.to_string()),
        None => Err("the workers are gone".to_string()),
    });
    let control = Arc::new(
        FlowControl::start(flow.clone(), names, hub.clone(), walk).map_err(anyhow::Error::msg)?,
    );
    let (hub_m, control_m) = (hub.clone(), control.clone());
    set.add_metrics(Box::new(move || {
        crate::flow_export::metric_families(&hub_m, control_m.counters().as_deref())
    }));
    set.set_event_hub(hub.clone());
    set.set_traffic_flow(control.clone());
    let hub_thread = hub
        .start(hub_stop.clone())
        .context("starting the event hub")?;
    for t in flow.targets.iter().filter(|t| flow.enabled && !t.disabled) {
        println!(
            "ctrack: exporting flows to {} (version {})",
            SocketAddr::new(t.dst_address, t.port),
            t.version.name()
        );
    }
    Ok(Export {
        hub,
        hub_stop,
        hub_thread: Some(hub_thread),
        flow: control,
    })
}

/// A running HTTP server of ours.
pub enum Server {
    Api(ApiServer),
    Metrics(MetricsServer),
}

impl Server {
    fn stop(&mut self) {
        match self {
            Server::Api(s) => s.stop(),
            Server::Metrics(s) => s.stop(),
        }
    }
}

/// Starts the management API and the metrics endpoint, and says where.
fn start_servers(cfg: &RunConfig, set: Arc<WorkerSet>) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    let default = |s: &str| Listen::At(s.parse().expect("valid default address"));
    let api = cfg.api.unwrap_or_else(|| default(RunConfig::DEFAULT_API));
    let metrics = cfg
        .metrics
        .unwrap_or_else(|| default(RunConfig::DEFAULT_METRICS));
    if let Listen::At(addr) = api {
        let dp: Arc<dyn Dataplane> = set.clone();
        let access = crate::auth::Access {
            token: cfg.api_token.clone(),
            users: cfg.api_access.users.clone(),
        };
        let tls = match (&cfg.api_access.tls_cert, &cfg.api_access.tls_key) {
            (Some(c), Some(k)) => Some(crate::http::Tls::load(c, k).map_err(anyhow::Error::msg)?),
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let s = ApiServer::start_with(addr, access, tls, dp)
            .with_context(|| format!("starting the management API on {addr}"))?;
        crate::outln!(
            "ctrack: management API on {scheme}://{}/rest/ip/firewall/connection",
            s.local_addr()
        );
        servers.push(Server::Api(s));
    }
    if let Listen::At(addr) = metrics {
        let dp: Arc<dyn Dataplane> = set;
        let s = MetricsServer::start(addr, dp)
            .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
        crate::outln!(
            "ctrack: Prometheus metrics on http://{}/metrics",
            s.local_addr()
        );
        servers.push(Server::Metrics(s));
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(servers)
}

/// Waits for a stop condition: a signal, `duration`, or `idle-exit`.
fn watch(
    cfg: &RunConfig,
    stop: &AtomicBool,
    set: &WorkerSet,
    workers: &[std::thread::JoinHandle<Result<WorkerEnd>>],
    started: Instant,
) -> &'static str {
    let tick = Duration::from_millis(10);
    let mut last_rx = 0;
    let mut last_change = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return "signal";
        }
        // A worker that ended on its own failed (its error comes with the join).
        if workers.iter().any(|h| h.is_finished()) {
            return "worker-exited";
        }
        if let Some(d) = cfg.duration
            && started.elapsed() >= std::time::Duration::from_nanos(d.as_nanos())
        {
            return "duration";
        }
        if let Some(idle) = cfg.idle_exit {
            let rx = set.rx_packets();
            if rx != last_rx {
                last_rx = rx;
                last_change = Instant::now();
            } else if last_change.elapsed() >= std::time::Duration::from_nanos(idle.as_nanos()) {
                return "idle";
            }
        }
        // Address-list additions of one worker reach the others.
        set.exchange_lists();
        std::thread::sleep(tick);
    }
}
