//! Prometheus `/metrics`, on its own address.
//!
//! One `prometheus::Registry` per endpoint, built at start, holds three
//! collectors: [`CtrackCollector`], which takes one [`MetricsSnapshot`] from
//! the [`Dataplane`] per scrape (so the `ctrack_*` values are one consistent
//! instant and nothing is kept between scrapes), `ctrack_build_info`, and
//! the `prometheus` crate's process collector (`process_*`). Names are
//! `ctrack_*`; the concepts of node_exporter's conntrack collector
//! (`node_nf_conntrack_entries`, `..._stat_found`, ...) keep their names
//! after the prefix, so dashboards port by renaming. See `docs/metrics.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use dataplane::conntrack::{InvalidReason, UntrackedReason};
use dataplane::packet::ParseError;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::http::{ApiError, HttpServer, Reply, Req};
use crate::ops::{Dataplane, MetricsSnapshot};

/// The metrics endpoint's default address (loopback).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";
/// Threads answering scrapes.
const THREADS: usize = 2;

/// Builds metric families; the first error is kept.
#[derive(Default)]
struct Families {
    out: Vec<MetricFamily>,
    err: Option<prometheus::Error>,
}

impl Families {
    fn keep(&mut self, r: Result<Vec<MetricFamily>, prometheus::Error>) {
        match r {
            // An empty family (no ports, no workers) is left out, as a
            // registry's gather does: the encoder refuses it.
            Ok(f) => self
                .out
                .extend(f.into_iter().filter(|f| !f.get_metric().is_empty())),
            Err(e) => {
                if self.err.is_none() {
                    self.err = Some(e);
                }
            }
        }
    }

    fn counter<I, L>(&mut self, name: &str, help: &str, labels: &[&str], samples: I)
    where
        I: IntoIterator<Item = (L, u64)>,
        L: AsRef<[String]>,
    {
        let r = (|| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            for (l, v) in samples {
                let l: Vec<&str> = l.as_ref().iter().map(String::as_str).collect();
                c.get_metric_with_label_values(&l)?.inc_by(v);
            }
            Ok(c.collect())
        })();
        self.keep(r);
    }

    fn gauge<I, L>(&mut self, name: &str, help: &str, labels: &[&str], samples: I)
    where
        I: IntoIterator<Item = (L, f64)>,
        L: AsRef<[String]>,
    {
        let r = (|| {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            for (l, v) in samples {
                let l: Vec<&str> = l.as_ref().iter().map(String::as_str).collect();
                g.get_metric_with_label_values(&l)?.set(v);
            }
            Ok(g.collect())
        })();
        self.keep(r);
    }
}

fn none() -> Vec<String> {
    Vec::new()
}

/// Renders `m` alone (no build or process metrics) in the Prometheus text
/// exposition format (0.0.4).
pub fn render(m: &MetricsSnapshot) -> Result<String, prometheus::Error> {
    encode(&families(m)?)
}

fn encode(families: &[MetricFamily]) -> Result<String, prometheus::Error> {
    let mut out = Vec::new();
    TextEncoder::new().encode(families, &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// The `ctrack_*` families of one snapshot (not `ctrack_build_info`).
pub fn families(m: &MetricsSnapshot) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let mut f = Families::default();
    let w = &m.workers;
    let wl = |n: u16| vec![n.to_string()];
    let sum = |get: &dyn Fn(&crate::ops::WorkerMetrics) -> u64| w.iter().map(get).sum::<u64>();
    let per_worker = |get: &dyn Fn(&crate::ops::WorkerMetrics) -> u64| {
        w.iter().map(|x| (wl(x.worker), get(x))).collect::<Vec<_>>()
    };

    // node_exporter's conntrack collector, under ctrack_.
    f.gauge(
        "ctrack_conntrack_entries",
        "Connections in the table (node_nf_conntrack_entries).",
        &[],
        [(none(), sum(&|x| x.total_entries) as f64)],
    );
    f.gauge(
        "ctrack_conntrack_entries_limit",
        "Table capacity, the sum of every shard's max-entries (node_nf_conntrack_entries_limit).",
        &[],
        [(none(), sum(&|x| x.max_entries) as f64)],
    );
    f.counter(
        "ctrack_conntrack_stat_found_total",
        "Packets that matched an existing connection (node_nf_conntrack_stat_found).",
        &["worker"],
        per_worker(&|x| x.shard.found),
    );
    let mut invalid = Vec::new();
    for x in w {
        for r in InvalidReason::ALL {
            let v = x.shard.invalid.get(r.index()).copied().unwrap_or(0);
            invalid.push((vec![x.worker.to_string(), r.name().to_string()], v));
        }
    }
    f.counter(
        "ctrack_conntrack_stat_invalid_total",
        "Packets refused by a protocol tracker, by reason (node_nf_conntrack_stat_invalid).",
        &["worker", "reason"],
        invalid,
    );
    f.counter(
        "ctrack_conntrack_stat_insert_total",
        "Connections created (node_nf_conntrack_stat_insert).",
        &["worker"],
        per_worker(&|x| x.shard.insert),
    );
    f.counter(
        "ctrack_conntrack_stat_insert_failed_total",
        "Connections that could not be indexed (node_nf_conntrack_stat_insert_failed).",
        &["worker"],
        per_worker(&|x| x.shard.insert_failed),
    );
    f.counter(
        "ctrack_conntrack_stat_drop_total",
        "Packets dropped because the table was full (node_nf_conntrack_stat_drop).",
        &["worker"],
        per_worker(&|x| x.shard.drop),
    );
    f.counter(
        "ctrack_conntrack_stat_early_drop_total",
        "Non-assured connections evicted to make room (node_nf_conntrack_stat_early_drop).",
        &["worker"],
        per_worker(&|x| x.shard.early_drop),
    );

    // Connections.
    let mut by_state: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for x in w {
        for (k, v) in &x.connections {
            *by_state.entry(k.clone()).or_default() += v;
        }
    }
    f.gauge(
        "ctrack_connections",
        "Live connections by protocol and TCP state (tcp_state empty for other protocols).",
        &["protocol", "tcp_state"],
        by_state
            .into_iter()
            .map(|((p, s), v)| (vec![p, s], v as f64)),
    );
    f.counter(
        "ctrack_connections_expired_total",
        "Connections removed because their timeout passed.",
        &["worker"],
        per_worker(&|x| x.shard.expired),
    );
    f.counter(
        "ctrack_connections_removed_total",
        "Connections removed through the management API.",
        &["worker"],
        per_worker(&|x| x.shard.removed),
    );
    f.counter(
        "ctrack_connections_closed_total",
        "Connections removed by their tracker (RST answering a SYN, reopened time-wait).",
        &["worker"],
        per_worker(&|x| x.shard.closed),
    );

    // Packets.
    f.counter(
        "ctrack_untracked_packets_total",
        "Packets left untracked by design, by reason.",
        &["reason"],
        UntrackedReason::ALL.iter().map(|r| {
            let v = sum(&|x| x.shard.untracked.get(r.index()).copied().unwrap_or(0));
            (vec![r.name().to_string()], v)
        }),
    );
    f.counter(
        "ctrack_parse_errors_total",
        "Packets that did not parse, by reason (forwarded untracked).",
        &["reason"],
        ParseError::ALL.iter().map(|r| {
            let v = sum(&|x| x.parse_errors.get(r.index()).copied().unwrap_or(0));
            (vec![r.name().to_string()], v)
        }),
    );
    let dirs = ["orig", "reply"];
    f.counter(
        "ctrack_packets_total",
        "Packets counted on connections, by direction (tracked, related and fast-tracked).",
        &["direction"],
        dirs.iter()
            .enumerate()
            .map(|(i, d)| (vec![d.to_string()], sum(&|x| x.shard.packets[i]))),
    );
    f.counter(
        "ctrack_bytes_total",
        "Bytes (IP length) counted on connections, by direction.",
        &["direction"],
        dirs.iter()
            .enumerate()
            .map(|(i, d)| (vec![d.to_string()], sum(&|x| x.shard.bytes[i]))),
    );
    f.counter(
        "ctrack_fasttrack_packets_total",
        "Packets that took the FastTrack path, by direction (also in ctrack_packets_total).",
        &["direction"],
        dirs.iter()
            .enumerate()
            .map(|(i, d)| (vec![d.to_string()], sum(&|x| x.fasttrack_packets[i]))),
    );
    f.counter(
        "ctrack_fasttrack_bytes_total",
        "Bytes that took the FastTrack path, by direction.",
        &["direction"],
        dirs.iter()
            .enumerate()
            .map(|(i, d)| (vec![d.to_string()], sum(&|x| x.fasttrack_bytes[i]))),
    );
    f.counter(
        "ctrack_handoffs_total",
        "Packets a worker handed to the worker that owns their connection.",
        &["worker"],
        per_worker(&|x| x.handoffs_out),
    );
    f.counter(
        "ctrack_handoffs_received_total",
        "Packets handed to a worker by other workers.",
        &["worker"],
        per_worker(&|x| x.handoffs_in),
    );
    f.counter(
        "ctrack_handoffs_dropped_total",
        "Packets dropped because a handoff ring was full.",
        &["worker"],
        per_worker(&|x| x.handoff_dropped),
    );

    // Router mode (docs/nat.md, Counters).
    f.counter(
        "ctrack_router_events_total",
        "Router mode: what a worker's router plane did, by event (forwarded, no_route, ttl_exceeded, hold_full, ...).",
        &["worker", "event"],
        w.iter().filter_map(|x| x.router.map(|r| (x.worker, r))).flat_map(|(n, r)| {
            r.named()
                .into_iter()
                .map(move |(e, v)| (vec![n.to_string(), e.to_string()], v))
        }),
    );

    // IP fragments (docs/nat.md, Fragments).
    f.counter(
        "ctrack_frag_events_total",
        "Reassembly of IP fragments before tracking and fragmenting reassembled datagrams again, by event (reassembled, fragments, timeout, no_space, too_big, bad, no_mbuf, refragmented, refragments, refragment_failed).",
        &["worker", "event"],
        w.iter().flat_map(|x| {
            let n = x.worker;
            x.frag
                .named()
                .into_iter()
                .map(move |(e, v)| (vec![n.to_string(), e.to_string()], v))
        }),
    );

    // Connection helpers and expectations (see docs/helpers.md).
    f.gauge(
        "ctrack_conntrack_expect_entries",
        "Expectations a worker holds (each worker holds a copy of every one).",
        &["worker"],
        w.iter().map(|x| (wl(x.worker), x.shard.expect.live as f64)),
    );
    let mut expect = Vec::new();
    let mut helper = Vec::new();
    for x in w {
        let e = &x.shard.expect;
        for (ev, v) in [
            ("created", e.created),
            ("used", e.used),
            ("expired", e.expired),
            ("evicted", e.evicted),
            ("refused_full", e.refused_full),
            ("refused_clash", e.refused_clash),
            ("lost", e.msgs_lost),
        ] {
            expect.push((vec![x.worker.to_string(), ev.to_string()], v));
        }
        for (ev, v) in [
            ("announced", e.announced),
            ("third_party", e.third_party),
            ("dropped", e.dropped),
            ("ignored", e.ignored),
            ("no_room", e.no_room),
        ] {
            helper.push((vec![x.worker.to_string(), ev.to_string()], v));
        }
    }
    f.counter(
        "ctrack_conntrack_expect_total",
        "Expectations by event: created (by this worker's helpers), used (opened a connection here), \
         expired, evicted (master's limit), refused_full, refused_clash, lost (ring to another worker full).",
        &["worker", "event"],
        expect,
    );
    f.counter(
        "ctrack_helper_events_total",
        "Connection helper events: announced (a data connection found), third_party (address not the \
         sender's: refused), dropped (FTP partial command), ignored (PPTP out of order), no_room.",
        &["worker", "event"],
        helper,
    );

    // NAT.
    f.counter(
        "ctrack_nat_translations_total",
        "Connections NAT translated (a binding chosen on the first packet).",
        &["worker"],
        per_worker(&|x| x.nat_translated),
    );
    f.counter(
        "ctrack_nat_dropped_total",
        "Packets NAT dropped: first packets without a free tuple (exhausted), \
         masquerade/redirect without an address (no_address), an unusable range (bad_range); \
         packets of NAT connections that could not be rewritten (rewrite_failed).",
        &["reason"],
        crate::ops::NAT_DROP_REASONS
            .iter()
            .enumerate()
            .map(|(i, r)| (vec![r.to_string()], sum(&|x| x.nat_dropped[i]))),
    );

    // Workers.
    f.gauge(
        "ctrack_worker_busy_ratio",
        "Share of a worker's poll loops that found work, since start (0 to 1).",
        &["worker"],
        w.iter().map(|x| {
            let r = if x.loops == 0 {
                0.0
            } else {
                x.busy_loops as f64 / x.loops as f64
            };
            (wl(x.worker), r)
        }),
    );
    f.counter(
        "ctrack_worker_loops_total",
        "Poll loops a worker ran.",
        &["worker"],
        per_worker(&|x| x.loops),
    );
    f.counter(
        "ctrack_worker_busy_loops_total",
        "Poll loops that found work (rate(busy)/rate(loops) is the recent busy ratio).",
        &["worker"],
        per_worker(&|x| x.busy_loops),
    );
    f.counter(
        "ctrack_worker_rx_packets_total",
        "Packets a worker received from its RX queues.",
        &["worker"],
        per_worker(&|x| x.rx_packets),
    );
    f.counter(
        "ctrack_worker_tx_packets_total",
        "Packets a worker transmitted.",
        &["worker"],
        per_worker(&|x| x.tx_packets),
    );
    f.counter(
        "ctrack_worker_tx_dropped_total",
        "Packets a worker could not transmit (TX queue full).",
        &["worker"],
        per_worker(&|x| x.tx_dropped),
    );

    // Ports.
    type PortGet = fn(&crate::ops::PortMetrics) -> u64;
    let port_metrics: [(&str, &str, PortGet); 8] = [
        (
            "ctrack_port_rx_packets_total",
            "Packets received by the port (DPDK ipackets).",
            |p| p.ipackets,
        ),
        (
            "ctrack_port_tx_packets_total",
            "Packets sent by the port (DPDK opackets).",
            |p| p.opackets,
        ),
        (
            "ctrack_port_rx_bytes_total",
            "Bytes received by the port (DPDK ibytes).",
            |p| p.ibytes,
        ),
        (
            "ctrack_port_tx_bytes_total",
            "Bytes sent by the port (DPDK obytes).",
            |p| p.obytes,
        ),
        (
            "ctrack_port_rx_missed_total",
            "Packets the port dropped because RX queues were full (DPDK imissed).",
            |p| p.imissed,
        ),
        (
            "ctrack_port_rx_errors_total",
            "Erroneous received packets (DPDK ierrors).",
            |p| p.ierrors,
        ),
        (
            "ctrack_port_tx_errors_total",
            "Failed transmissions (DPDK oerrors).",
            |p| p.oerrors,
        ),
        (
            "ctrack_port_rx_nombuf_total",
            "RX mbuf allocation failures (DPDK rx_nombuf).",
            |p| p.rx_nombuf,
        ),
    ];
    for (name, help, get) in port_metrics {
        f.counter(
            name,
            help,
            &["port", "name"],
            m.ports
                .iter()
                .map(|p| (vec![p.port.to_string(), p.name.clone()], get(p))),
        );
    }
    f.gauge(
        "ctrack_port_rss_degraded",
        "1 if the port has several RX queues but symmetric RSS could not be set as asked.",
        &["port", "name"],
        m.ports.iter().map(|p| {
            (
                vec![p.port.to_string(), p.name.clone()],
                f64::from(u8::from(p.rss_degraded)),
            )
        }),
    );

    // What the firewall dropped and answered (all workers).
    let actions = ["drop", "reject", "tarpit"];
    f.counter(
        "ctrack_firewall_dropped_packets_total",
        "Packets the firewall rules dropped, by action (reject and tarpit answer them as well).",
        &["action"],
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| (vec![a.to_string()], w.iter().map(|x| x.fw_dropped[i]).sum())),
    );
    let outcomes = ["sent", "rate_limited", "no_buffer", "not_due"];
    f.counter(
        "ctrack_firewall_answers_total",
        "Answers to reject and tarpit (TCP resets, ICMP errors, zero-window SYN-ACKs), by outcome: sent; not sent because over Linux's ICMP rate limit, because no packet buffer was free, or because Linux would not answer that packet.",
        &["outcome"],
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| (vec![o.to_string()], w.iter().map(|x| x.fw_answers[i]).sum())),
    );
    f.counter(
        "ctrack_firewall_layer7_window_full_total",
        "Packets that wanted a layer7 payload window for their connection and found the worker's window table full (the connection is then matched packet by packet).",
        &[],
        std::iter::once((vec![], w.iter().map(|x| x.fw_l7_full).sum())),
    );

    // Firewall rules (only with rules loaded): one series per rule.
    if !m.rules.is_empty() {
        let labels = |r: &crate::firewall::RuleStat| {
            vec![
                r.family.to_string(),
                r.table.to_string(),
                r.chain.clone(),
                r.position.to_string(),
                r.comment.clone().unwrap_or_default(),
            ]
        };
        let names = ["family", "table", "chain", "position", "comment"];
        f.counter(
            "ctrack_firewall_rule_packets_total",
            "Packets a firewall rule matched (RouterOS `print stats`), over every worker and carried over reloads for unchanged rules.",
            &names,
            m.rules.iter().map(|r| (labels(r), r.packets)),
        );
        f.counter(
            "ctrack_firewall_rule_bytes_total",
            "Bytes (IP length) of the packets a firewall rule matched.",
            &names,
            m.rules.iter().map(|r| (labels(r), r.bytes)),
        );
    }

    match f.err {
        Some(e) => Err(e),
        None => Ok(f.out),
    }
}

/// What `ctrack --version` and `ctrack_build_info` report, fixed at build
/// time by `control/build.rs`.
pub mod build {
    /// The crate version.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// The git commit (12 hex digits), or `unknown` outside a git checkout.
    pub const COMMIT: &str = env!("CTRACK_GIT_COMMIT");
    /// The DPDK version built against (`libdpdk`'s pkg-config version),
    /// `none` without the `dpdk` feature, or `unknown`.
    pub const DPDK: &str = env!("CTRACK_DPDK_VERSION");
}

/// The `ctrack_*` families of a running dataplane: every
/// [`Collector::collect`] takes one [`MetricsSnapshot`], so one scrape
/// shows one instant. Its families vary with the snapshot (no ports, no
/// connections), so it declares no fixed descriptors.
pub struct CtrackCollector {
    dp: Arc<dyn Dataplane>,
}

impl CtrackCollector {
    pub fn new(dp: Arc<dyn Dataplane>) -> CtrackCollector {
        CtrackCollector { dp }
    }
}

impl Collector for CtrackCollector {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match families(&self.dp.metrics()) {
            Ok(mut f) => {
                f.extend(self.dp.extra_metrics());
                f
            }
            Err(e) => {
                // Only a bug (a label count that does not match) gets here.
                tracing::error!("metrics: cannot build the ctrack families: {e}");
                Vec::new()
            }
        }
    }
}

/// The one registry a metrics endpoint serves, built once: the ctrack
/// families, `ctrack_build_info`, and the process collector's `process_*`
/// (CPU, memory, file descriptors, start time; Linux only).
pub fn registry(dp: Arc<dyn Dataplane>) -> Result<Registry, prometheus::Error> {
    let reg = Registry::new();
    reg.register(Box::new(CtrackCollector::new(dp)))?;
    let info = GaugeVec::new(
        Opts::new(
            "ctrack_build_info",
            "Always 1; the labels tell the version, git commit and DPDK version.",
        ),
        &["version", "commit", "dpdk"],
    )?;
    info.with_label_values(&[build::VERSION, build::COMMIT, build::DPDK])
        .set(1.0);
    reg.register(Box::new(info))?;
    #[cfg(target_os = "linux")]
    reg.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(reg)
}

fn handle(req: &mut Req<'_>, registry: &Registry) -> Reply {
    let path = req.url.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Reply::error(
            404,
            format!("no such path: {path}; try /metrics"),
            String::new(),
        );
    }
    if req.method != "GET" && req.method != "HEAD" {
        return Reply::error(
            405,
            format!("{} is not allowed on /metrics", req.method),
            "allowed: GET".to_string(),
        );
    }
    let families = registry.gather();
    match encode(&families) {
        Ok(text) => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: text.into_bytes(),
            headers: Vec::new(),
        },
        Err(e) => Reply::error(500, format!("cannot render metrics: {e}"), String::new()),
    }
}

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error(transparent)]
    Listen(#[from] ApiError),
    /// A collector was refused (a duplicate family name: a bug).
    #[error("cannot set up the metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// The `/metrics` endpoint. Stops on [`MetricsServer::stop`] or drop.
pub struct MetricsServer {
    http: HttpServer,
}

impl MetricsServer {
    /// Listens on `addr` (any address: the metrics are read-only) and answers
    /// `GET /metrics` from [`registry`]`(dp)`.
    pub fn start(addr: SocketAddr, dp: Arc<dyn Dataplane>) -> Result<MetricsServer, MetricsError> {
        let registry = registry(dp)?;
        let http = HttpServer::start(
            addr,
            "ctrack-metrics",
            THREADS,
            Arc::new(move |req: &mut Req<'_>| handle(req, &registry)),
        )?;
        Ok(MetricsServer { http })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Stops answering and closes the listener. Idempotent.
    pub fn stop(&mut self) {
        self.http.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{FakeDataplane, PortMetrics, WorkerMetrics};
    use dataplane::conntrack::{OtherInvalid, ShardStats};
    use prometheus_parse::{Scrape, Value};
    use std::collections::BTreeMap;

    fn snapshot() -> MetricsSnapshot {
        let worker = |n: u16, k: u64| {
            let mut shard = ShardStats {
                found: 100 * k,
                insert: 10 * k,
                insert_failed: k,
                drop: 2 * k,
                early_drop: 3 * k,
                expired: 4 * k,
                removed: 5 * k,
                closed: 6 * k,
                packets: [1000 * k, 900 * k],
                bytes: [64_000 * k, 1_500_000 * k],
                ..ShardStats::default()
            };
            shard.invalid[InvalidReason::Other(OtherInvalid::IcmpBadType).index()] = 7 * k;
            shard.invalid[0] = k;
            shard.untracked[UntrackedReason::Icmpv6NdMld.index()] = 11 * k;
            let mut parse_errors = vec![0; ParseError::COUNT];
            parse_errors[0] = 13 * k;
            let mut connections = BTreeMap::new();
            connections.insert(("tcp".to_string(), "established".to_string()), 20 * k);
            connections.insert(("udp".to_string(), String::new()), 30 * k);
            WorkerMetrics {
                worker: n,
                rx_packets: 2000 * k,
                tx_packets: 1990 * k,
                tx_dropped: 10 * k,
                handoffs_out: 17 * k,
                handoffs_in: 19 * k,
                handoff_dropped: k,
                fasttrack_packets: [300 * k, 200 * k],
                fasttrack_bytes: [450_000 * k, 250_000 * k],
                loops: 1000,
                busy_loops: 250 * k,
                parse_errors,
                shard,
                total_entries: 50 * k,
                max_entries: 1 << 20,
                connections,
                router: (n == 1).then(|| dataplane::router::RouterTotals {
                    forwarded: 77,
                    hold_full: 3,
                    ..Default::default()
                }),
                fw_dropped: [3 * k, 2 * k, k],
                fw_answers: [2 * k, k, 0, 0],
                fw_l7_full: 0,
                nat_translated: 5 * k,
                nat_dropped: [k, 0, 0, 0],
                frag: dataplane::frag::FragTotals {
                    reassembled: 4 * k,
                    timeout: k,
                    ..Default::default()
                },
            }
        };
        MetricsSnapshot {
            workers: vec![worker(0, 1), worker(1, 2)],
            ports: vec![
                PortMetrics {
                    port: 0,
                    name: "net_ring0".to_string(),
                    ipackets: 4000,
                    opackets: 3900,
                    ibytes: 4_000_000,
                    obytes: 3_900_000,
                    imissed: 5,
                    ierrors: 6,
                    oerrors: 7,
                    rx_nombuf: 8,
                    rss_degraded: true,
                },
                PortMetrics {
                    port: 1,
                    name: "net_ring1".to_string(),
                    ipackets: 1,
                    ..PortMetrics::default()
                },
            ],
            rules: vec![],
        }
    }

    fn value(v: &Value) -> f64 {
        match v {
            Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
            _ => panic!("unexpected {v:?}"),
        }
    }

    /// The sample of `name` whose labels include all of `labels`.
    fn get(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let hits: Vec<f64> = s
            .samples
            .iter()
            .filter(|x| x.metric == name)
            .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| value(&x.value))
            .collect();
        assert_eq!(hits.len(), 1, "{name} {labels:?}: {hits:?}");
        hits[0]
    }

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    #[test]
    fn scrape_parses_and_matches_the_snapshot() {
        let dp = Arc::new(FakeDataplane::default());
        *dp.metrics.lock() = snapshot();
        let mut srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), dp).unwrap();
        let url = format!("http://{}/metrics", srv.local_addr());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut resp = agent.get(&url).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = resp.body_mut().read_to_string().unwrap();
        let s = parse(&text);

        // Every family has a type and help, and counters end in _total.
        for (name, doc) in &s.docs {
            assert!(
                name.starts_with("ctrack_") || name.starts_with("process_"),
                "{name}"
            );
            assert!(!doc.is_empty(), "{name}");
        }
        // The build and the process.
        let info: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == "ctrack_build_info")
            .collect();
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!(value(&info[0].value), 1.0);
        assert_eq!(info[0].labels.get("version"), Some(build::VERSION));
        assert_eq!(info[0].labels.get("commit"), Some(build::COMMIT));
        assert_eq!(info[0].labels.get("dpdk"), Some(build::DPDK));
        assert!(!build::COMMIT.is_empty() && !build::DPDK.is_empty());
        #[cfg(target_os = "linux")]
        {
            assert!(get(&s, "process_start_time_seconds", &[]) > 0.0);
            assert!(get(&s, "process_resident_memory_bytes", &[]) > 0.0);
            assert!(get(&s, "process_open_fds", &[]) > 0.0);
        }
        for x in &s.samples {
            if matches!(x.value, Value::Counter(_)) {
                assert!(x.metric.ends_with("_total"), "{}", x.metric);
            }
        }

        assert_eq!(get(&s, "ctrack_conntrack_entries", &[]), 150.0);
        assert_eq!(
            get(&s, "ctrack_conntrack_entries_limit", &[]),
            2.0 * f64::from(1 << 20)
        );
        assert_eq!(
            get(&s, "ctrack_conntrack_stat_found_total", &[("worker", "1")]),
            200.0
        );
        assert_eq!(
            get(&s, "ctrack_conntrack_stat_insert_total", &[("worker", "0")]),
            10.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_conntrack_stat_insert_failed_total",
                &[("worker", "1")]
            ),
            2.0
        );
        assert_eq!(
            get(&s, "ctrack_conntrack_stat_drop_total", &[("worker", "1")]),
            4.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_conntrack_stat_early_drop_total",
                &[("worker", "1")]
            ),
            6.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_conntrack_stat_invalid_total",
                &[("worker", "1"), ("reason", "icmp_bad_type")]
            ),
            14.0
        );
        let first = InvalidReason::ALL[0].name();
        assert_eq!(
            get(
                &s,
                "ctrack_conntrack_stat_invalid_total",
                &[("worker", "0"), ("reason", first)]
            ),
            1.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_connections",
                &[("protocol", "tcp"), ("tcp_state", "established")]
            ),
            60.0
        );
        assert_eq!(get(&s, "ctrack_connections", &[("protocol", "udp")]), 90.0);
        assert_eq!(
            get(&s, "ctrack_connections_expired_total", &[("worker", "1")]),
            8.0
        );
        assert_eq!(
            get(&s, "ctrack_connections_removed_total", &[("worker", "1")]),
            10.0
        );
        assert_eq!(
            get(&s, "ctrack_connections_closed_total", &[("worker", "0")]),
            6.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_untracked_packets_total",
                &[("reason", "icmpv6_nd_mld")]
            ),
            33.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_untracked_packets_total",
                &[("reason", "tracking_disabled")]
            ),
            0.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_parse_errors_total",
                &[("reason", ParseError::ALL[0].name())]
            ),
            39.0
        );
        assert_eq!(
            get(&s, "ctrack_packets_total", &[("direction", "orig")]),
            3000.0
        );
        assert_eq!(
            get(&s, "ctrack_packets_total", &[("direction", "reply")]),
            2700.0
        );
        assert_eq!(
            get(&s, "ctrack_bytes_total", &[("direction", "reply")]),
            4_500_000.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_fasttrack_packets_total",
                &[("direction", "orig")]
            ),
            900.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_fasttrack_packets_total",
                &[("direction", "reply")]
            ),
            600.0
        );
        assert_eq!(
            get(&s, "ctrack_fasttrack_bytes_total", &[("direction", "orig")]),
            1_350_000.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_fasttrack_bytes_total",
                &[("direction", "reply")]
            ),
            750_000.0
        );
        assert_eq!(get(&s, "ctrack_handoffs_total", &[("worker", "1")]), 34.0);
        assert_eq!(
            get(&s, "ctrack_handoffs_received_total", &[("worker", "1")]),
            38.0
        );
        assert_eq!(
            get(&s, "ctrack_handoffs_dropped_total", &[("worker", "0")]),
            1.0
        );
        assert_eq!(
            get(&s, "ctrack_worker_busy_ratio", &[("worker", "0")]),
            0.25
        );
        assert_eq!(get(&s, "ctrack_worker_busy_ratio", &[("worker", "1")]), 0.5);
        assert_eq!(
            get(&s, "ctrack_worker_loops_total", &[("worker", "1")]),
            1000.0
        );
        assert_eq!(
            get(&s, "ctrack_worker_busy_loops_total", &[("worker", "1")]),
            500.0
        );
        assert_eq!(
            get(&s, "ctrack_worker_rx_packets_total", &[("worker", "1")]),
            4000.0
        );
        assert_eq!(
            get(&s, "ctrack_worker_tx_packets_total", &[("worker", "0")]),
            1990.0
        );
        assert_eq!(
            get(&s, "ctrack_worker_tx_dropped_total", &[("worker", "1")]),
            20.0
        );
        let p0 = [("port", "0"), ("name", "net_ring0")];
        assert_eq!(get(&s, "ctrack_port_rx_packets_total", &p0), 4000.0);
        assert_eq!(get(&s, "ctrack_port_tx_packets_total", &p0), 3900.0);
        assert_eq!(get(&s, "ctrack_port_rx_bytes_total", &p0), 4_000_000.0);
        assert_eq!(get(&s, "ctrack_port_tx_bytes_total", &p0), 3_900_000.0);
        assert_eq!(get(&s, "ctrack_port_rx_missed_total", &p0), 5.0);
        assert_eq!(get(&s, "ctrack_port_rx_errors_total", &p0), 6.0);
        assert_eq!(get(&s, "ctrack_port_tx_errors_total", &p0), 7.0);
        assert_eq!(get(&s, "ctrack_port_rx_nombuf_total", &p0), 8.0);
        assert_eq!(get(&s, "ctrack_port_rss_degraded", &p0), 1.0);
        assert_eq!(get(&s, "ctrack_port_rss_degraded", &[("port", "1")]), 0.0);
        assert_eq!(
            get(&s, "ctrack_port_rx_packets_total", &[("port", "1")]),
            1.0
        );

        // Router mode's counts, for the worker in router mode only.
        let r1 = [("worker", "1"), ("event", "forwarded")];
        assert_eq!(get(&s, "ctrack_router_events_total", &r1), 77.0);
        let r1 = [("worker", "1"), ("event", "hold_full")];
        assert_eq!(get(&s, "ctrack_router_events_total", &r1), 3.0);
        assert!(
            !s.samples
                .iter()
                .any(|x| x.metric == "ctrack_router_events_total"
                    && x.labels.get("worker") == Some("0")),
            "no router counts for a worker in bridge mode"
        );

        // Reassembly's counts, per worker (k = 1, 2).
        let f1 = [("worker", "1"), ("event", "reassembled")];
        assert_eq!(get(&s, "ctrack_frag_events_total", &f1), 8.0);
        let f0 = [("worker", "0"), ("event", "timeout")];
        assert_eq!(get(&s, "ctrack_frag_events_total", &f0), 1.0);

        // The firewall's drops and answers, summed over the workers (k = 1, 2).
        assert_eq!(
            get(
                &s,
                "ctrack_firewall_dropped_packets_total",
                &[("action", "drop")]
            ),
            9.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_firewall_dropped_packets_total",
                &[("action", "tarpit")]
            ),
            3.0
        );
        assert_eq!(
            get(&s, "ctrack_firewall_answers_total", &[("outcome", "sent")]),
            6.0
        );
        assert_eq!(
            get(
                &s,
                "ctrack_firewall_answers_total",
                &[("outcome", "rate_limited")]
            ),
            3.0
        );

        // Every metric documented in docs/metrics.md.
        let doc = include_str!("../../docs/metrics.md");
        for name in s.docs.keys().filter(|n| n.starts_with("ctrack_")) {
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} missing from docs/metrics.md"
            );
        }

        // A second scrape of the same registry shows the same values: the
        // families are rebuilt from each snapshot, not added up.
        let again = parse(
            &agent
                .get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap(),
        );
        assert_eq!(
            get(
                &again,
                "ctrack_conntrack_stat_found_total",
                &[("worker", "1")]
            ),
            200.0
        );
        assert_eq!(get(&again, "ctrack_conntrack_entries", &[]), 150.0);

        // Other paths and methods.
        let base = format!("http://{}", srv.local_addr());
        assert_eq!(
            agent
                .get(&format!("{base}/"))
                .call()
                .unwrap()
                .status()
                .as_u16(),
            404
        );
        assert_eq!(agent.post(&url).send("x").unwrap().status().as_u16(), 405);
        srv.stop();
    }

    #[test]
    fn empty_snapshot_renders() {
        let text = render(&MetricsSnapshot::default()).unwrap();
        let s = parse(&text);
        assert_eq!(get(&s, "ctrack_conntrack_entries", &[]), 0.0);
        assert_eq!(
            get(&s, "ctrack_packets_total", &[("direction", "orig")]),
            0.0
        );
    }
}
