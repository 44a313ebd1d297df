//! `ctrack run`: EAL, ports, workers pinned to the EAL lcores' CPUs, and the
//! main thread watching for a stop condition and reporting totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dataplane::io::dpdk::DpdkIo;
use dataplane::stats::{WorkerCounters, WorkerTotals};
use dataplane::worker::Worker;
use dpdk::{Eal, Mempool, Port, PortConfig, PortId};
use serde::Serialize;

use crate::config::RunConfig;
use crate::plan::{Link, PortQueues, plan};

#[derive(Debug, Serialize)]
pub struct PortSummary {
    pub port: u16,
    pub name: String,
    pub driver: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rss: bool,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Debug, Serialize)]
pub struct WorkerSummary {
    pub worker: usize,
    pub cpu: Option<usize>,
    pub links: Vec<String>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub loops: u64,
    pub busy_loops: u64,
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
}

pub fn run(cfg: &RunConfig, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let eal = Eal::init(&cfg.eal).context("EAL initialisation failed (check the EAL arguments after --)")?;
    let result = run_with_eal(&eal, cfg, stop);
    // Every port, queue and mempool is dropped by now.
    let _ = eal.cleanup();
    result
}

fn run_with_eal(eal: &Eal, cfg: &RunConfig, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let n_ports = eal.port_count();
    let lcores = dpdk::worker_lcores();
    let workers = cfg.workers.map(usize::from).unwrap_or(lcores.len().max(1));
    let rx_desc = cfg.rx_desc.unwrap_or(RunConfig::DEFAULT_RX_DESC);
    let tx_desc = cfg.tx_desc.unwrap_or(RunConfig::DEFAULT_TX_DESC);
    let burst = cfg.burst.unwrap_or(RunConfig::DEFAULT_BURST) as usize;

    let infos = (0..n_ports)
        .map(|p| Port::info(PortId(p)).with_context(|| format!("port {p}")))
        .collect::<Result<Vec<_>>>()?;
    if infos.is_empty() {
        bail!(crate::plan::PlanError::NoPorts);
    }
    let queues_per_port = workers as u64 * (rx_desc as u64 + tx_desc as u64);
    let wanted = n_ports as u64 * queues_per_port + workers as u64 * 2 * 64 + 2048;
    let mbufs = cfg.mbufs.unwrap_or(wanted.min(1 << 20) as u32);
    let pool = Arc::new(
        Mempool::new_pktmbuf("ctrack_mbufs", mbufs, 256, 2048 + 128, infos[0].socket.max(0))
            .context("creating the mbuf pool (try fewer --mbufs or give EAL more memory with -m)")?,
    );

    let port_cfg = PortConfig {
        rx_queues: workers as u16,
        tx_queues: workers as u16,
        rx_desc,
        tx_desc,
        rss_key: dataplane::rss::SYMMETRIC_RSS_KEY.to_vec(),
        promiscuous: true,
    };
    let ports = (0..n_ports)
        .map(|p| {
            Port::configure(PortId(p), &port_cfg, pool.clone())
                .with_context(|| format!("setting up port {p} ({})", infos[p as usize].name))
        })
        .collect::<Result<Vec<_>>>()?;
    let queues: Vec<PortQueues> = ports
        .iter()
        .map(|p| PortQueues {
            rx: p.rx_queue_count(),
            tx: p.tx_queue_count(),
        })
        .collect();
    let links = plan(&queues, workers)?;
    let in_use_start = pool.in_use_count();

    let counters: Vec<Arc<WorkerCounters>> = (0..workers).map(|_| Arc::default()).collect();
    let cpus: Vec<Option<usize>> = (0..workers)
        .map(|w| {
            if lcores.is_empty() {
                dpdk::main_lcore().cpu()
            } else {
                lcores[w % lcores.len()].cpu()
            }
        })
        .collect();

    let started = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for (w, wl) in links.iter().enumerate() {
        let io_links = wl
            .iter()
            .map(|l: &Link| {
                let rx = ports[l.rx_port as usize].rx_queue(l.rx_queue);
                let tx = ports[l.tx_port as usize].tx_queue(l.tx_queue);
                rx.zip(tx).with_context(|| format!("queue missing for {l:?}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let counters = counters[w].clone();
        let stop = stop.clone();
        let cpu = cpus[w];
        let h = std::thread::Builder::new()
            .name(format!("ctrack-worker{w}"))
            .spawn(move || -> Result<WorkerTotals> {
                if let Some(cpu) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                dpdk::register_thread().context("registering the worker thread with DPDK")?;
                let mut worker = Worker::new(DpdkIo::new(io_links, burst), counters);
                worker.run(&stop);
                Ok(worker.totals())
            })
            .context("spawning a worker thread")?;
        handles.push(h);
    }

    let stop_reason = watch(cfg, &stop, &counters, started);
    stop.store(true, Ordering::SeqCst);
    let mut totals = Vec::with_capacity(workers);
    for h in handles {
        match h.join() {
            Ok(r) => totals.push(r?),
            Err(_) => bail!("a worker thread panicked"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let in_use_end = pool.in_use_count();

    let port_summaries = ports
        .iter()
        .zip(&infos)
        .map(|(p, info)| {
            let s = p.stats().unwrap_or_default();
            PortSummary {
                port: p.id().0,
                name: info.name.clone(),
                driver: info.driver.clone(),
                rx_queues: p.rx_queue_count(),
                tx_queues: p.tx_queue_count(),
                rss: p.rss_enabled(),
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
            }
        })
        .collect();
    let worker_summaries = totals
        .iter()
        .enumerate()
        .map(|(w, t)| WorkerSummary {
            worker: w,
            cpu: cpus[w],
            links: links[w]
                .iter()
                .map(|l| format!("port{}/q{} -> port{}/q{}", l.rx_port, l.rx_queue, l.tx_port, l.tx_queue))
                .collect(),
            rx_packets: t.rx_packets,
            tx_packets: t.tx_packets,
            tx_dropped: t.tx_dropped,
            loops: t.loops,
            busy_loops: t.busy_loops,
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
    })
}

/// Waits for a stop condition: a signal, `duration`, or `idle-exit`.
fn watch(
    cfg: &RunConfig,
    stop: &AtomicBool,
    counters: &[Arc<WorkerCounters>],
    started: Instant,
) -> &'static str {
    let tick = Duration::from_millis(10);
    let mut last_rx = 0;
    let mut last_change = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return "signal";
        }
        if let Some(d) = cfg.duration {
            if started.elapsed() >= std::time::Duration::from_nanos(d.as_nanos()) {
                return "duration";
            }
        }
        if let Some(idle) = cfg.idle_exit {
            let rx: u64 = counters.iter().map(|c| c.read().rx_packets).sum();
            if rx != last_rx {
                last_rx = rx;
                last_change = Instant::now();
            } else if last_change.elapsed() >= std::time::Duration::from_nanos(idle.as_nanos()) {
                return "idle";
            }
        }
        std::thread::sleep(tick);
    }
}
