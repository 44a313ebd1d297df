//! The operations an operator can perform on a running dataplane.
//!
//! One set of functions, two front ends: the HTTP management API
//! ([`crate::api`]) and Prometheus ([`crate::metrics`]) call these; the CLI
//! talks to the API. [`Dataplane`] is implemented by the running workers
//! ([`crate::workers::WorkerSet`]) and, in tests, by [`FakeDataplane`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use ctrack_model::{ConnSnapshot, FilterError, SettingsError};
use dataplane::conntrack::{ConnId, Settings, ShardStats};
use parking_lot::Mutex;
use serde::Serialize;

/// Why an operation failed. The API maps these to 4xx/5xx answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// No connection has this id (it may have expired).
    #[error("no such connection: {0}")]
    NotFound(String),
    /// A filter named an unknown property.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A setting was unknown or its value malformed.
    #[error(transparent)]
    Setting(#[from] SettingsError),
    /// The workers did not answer in time (stopping, or stuck).
    #[error("the dataplane did not answer: {0}")]
    Unavailable(String),
    /// No firewall item has this id or position.
    #[error("no such item: {0}")]
    NoItem(String),
    /// A request that cannot be applied as given (a firewall edit with a
    /// bad property, value or reference); nothing changed.
    #[error("{0}")]
    Invalid(String),
}

/// `/ip firewall connection tracking`: the settings plus the read-only values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct TrackingInfo {
    #[serde(flatten)]
    pub settings: Settings,
    pub max_entries: u64,
    pub total_entries: u64,
    /// With firewall rules loaded: what `enabled=auto` resolves to (whether
    /// a rule needs tracking); absent without rules (`auto` then tracks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_tracking: Option<bool>,
    /// The rules that need tracking (`/ip firewall filter #3 (connection-state)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracking_needed_by: Vec<String>,
}

/// One worker's counters, as last published (see [`dataplane::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    pub worker: u16,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
    /// Packets handed to the worker that owns their connection.
    pub handoffs_out: u64,
    /// Packets handed to this worker to transmit (it owns the TX queue).
    pub handoffs_in: u64,
    /// Packets dropped because a handoff ring was full.
    pub handoff_dropped: u64,
    /// FastTrack packets and bytes, by direction (orig, reply).
    pub fasttrack_packets: [u64; 2],
    pub fasttrack_bytes: [u64; 2],
    pub loops: u64,
    pub busy_loops: u64,
    /// Parse failures by [`dataplane::packet::ParseError::index`].
    pub parse_errors: Vec<u64>,
    pub shard: ShardStats,
    pub total_entries: u64,
    pub max_entries: u64,
    /// Live connections by (protocol name, tcp-state or "").
    pub connections: BTreeMap<(String, String), u64>,
    /// Router mode: the router plane's counts (`None` in bridge mode).
    pub router: Option<dataplane::router::RouterTotals>,
    /// Packets the firewall dropped, by action: drop, reject, tarpit.
    pub fw_dropped: [u64; 3],
    /// The answers to reject and tarpit: sent, rate-limited, no buffer,
    /// not due ([`dataplane::stats::WorkerTotals::fw_answers`]).
    pub fw_answers: [u64; 4],
    /// Packets that found the layer7 window table full.
    pub fw_l7_full: u64,
    /// NAT: connections translated, and first packets dropped by reason
    /// ([`NAT_DROP_REASONS`]), then packets that could not be rewritten.
    pub nat_translated: u64,
    pub nat_dropped: [u64; 4],
    /// Reassembly and fragmenting again ([`dataplane::frag::FragTotals`]).
    pub frag: dataplane::frag::FragTotals,
}

/// The `reason` labels of [`WorkerMetrics::nat_dropped`].
pub const NAT_DROP_REASONS: [&str; 4] = ["exhausted", "no_address", "bad_range", "rewrite_failed"];

/// One port's DPDK counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortMetrics {
    pub port: u16,
    pub name: String,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// Several RX queues, but symmetric RSS could not be set as asked.
    pub rss_degraded: bool,
}

/// Everything `/metrics` shows, gathered once per scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub workers: Vec<WorkerMetrics>,
    pub ports: Vec<PortMetrics>,
    /// Firewall rules with their counters (empty without rules).
    pub rules: Vec<crate::firewall::RuleStat>,
}

/// A running dataplane, as the control plane sees it. Every call is safe from
/// any thread and never blocks a worker: workers answer between bursts with
/// bounded work, so a call may wait (bounded) but a worker never does.
pub trait Dataplane: Send + Sync {
    /// Calls `visit` with each connection matching every `(property, value)`
    /// filter (seed names, values as shown in JSON; `yes`/`no` or
    /// `true`/`false` for flags), one at a time, without collecting them:
    /// the memory a walk takes is that of one chunk of the table, whatever
    /// the table's size. `visit` returns [`ControlFlow::Break`] to stop the
    /// walk early (the call then returns `Ok`). `visit` may take its time
    /// (the API writes each row to its client): no worker waits on it. An
    /// error (unknown property, a worker that does not answer) may come
    /// after some rows were visited.
    fn for_each_connection(
        &self,
        filter: &[(String, String)],
        visit: &mut dyn FnMut(ConnSnapshot) -> ControlFlow<()>,
    ) -> Result<(), OpsError>;
    /// Connections matching every filter (see [`Dataplane::for_each_connection`]),
    /// collected: memory grows with the table; the API streams instead.
    fn connections(&self, filter: &[(String, String)]) -> Result<Vec<ConnSnapshot>, OpsError> {
        let mut all = Vec::new();
        self.for_each_connection(filter, &mut |row| {
            all.push(row);
            ControlFlow::Continue(())
        })?;
        Ok(all)
    }
    /// How many connections match (`count-only`); without a filter, from
    /// the workers' published counts, without walking the table.
    fn count(&self, filter: &[(String, String)]) -> Result<u64, OpsError> {
        count_by_walking(self, filter)
    }
    /// One connection.
    fn connection(&self, id: ConnId) -> Result<ConnSnapshot, OpsError>;
    /// Removes a connection; its next packet creates a new one per the rules.
    fn remove(&self, id: ConnId) -> Result<(), OpsError>;
    /// Settings and read-only values.
    fn tracking(&self) -> TrackingInfo;
    /// Applies all `(key, value)` changes or none; returns the new settings.
    /// Workers apply them to live connections within one loop.
    fn set_tracking(&self, changes: &[(String, String)]) -> Result<TrackingInfo, OpsError>;
    /// The connection helpers' expectations (`conntrack -L expect`); none
    /// by default.
    fn expectations(&self) -> Result<Vec<ctrack_model::expect::ExpectRow>, OpsError> {
        Ok(Vec::new())
    }
    /// Counters for `/metrics`.
    fn metrics(&self) -> MetricsSnapshot;
    /// Further `/metrics` families of parts that come and go with the
    /// configuration (events, flow export); none by default.
    fn extra_metrics(&self) -> Vec<prometheus::proto::MetricFamily> {
        Vec::new()
    }
    /// The connection events' hub (`listen` subscribes to it:
    /// [`crate::events::EventHub::subscribe`]); `None` without a running
    /// dataplane.
    fn events(&self) -> Option<std::sync::Arc<crate::events::EventHub>> {
        None
    }
    /// The live `/ip traffic-flow` menu ([`crate::flow_ops::FlowControl`]);
    /// `None` without a running dataplane.
    fn traffic_flow(&self) -> Option<std::sync::Arc<crate::flow_ops::FlowControl>> {
        None
    }
    /// Router mode's `/ip route` and `/ipv6 route` menus
    /// ([`crate::route_ops::RouteControl`]); `None` in bridge mode or
    /// without a running dataplane.
    fn routes(&self) -> Option<std::sync::Arc<crate::route_ops::RouteControl>> {
        None
    }
    /// Router mode's neighbour tables (`/ip arp`, `/ipv6 neighbor`): every
    /// worker's entries, one row per worker and entry (the caller merges
    /// them: [`crate::route_ops::merge_neighbors`]); none by default.
    fn neighbors(&self) -> Result<Vec<dataplane::router::neigh::NeighRow>, OpsError> {
        Ok(Vec::new())
    }
    /// The running firewall: its script, item ids and rule counters
    /// (an empty script when none is loaded).
    fn firewall_state(&self) -> Result<crate::fw_manage::FirewallState, OpsError> {
        Err(OpsError::Unavailable(
            "no firewall management in this dataplane".to_string(),
        ))
    }
    /// Applies `edit` to a copy of the running script and installs the copy
    /// as a whole ruleset in every worker, or changes nothing (an edit or a
    /// compile error: [`OpsError::Invalid`]).
    fn edit_firewall(
        &self,
        _edit: &mut dyn FnMut(
            &mut ctrack_rules::Config,
            &mut crate::fw_manage::MenuIds,
        ) -> Result<(), OpsError>,
    ) -> Result<(), OpsError> {
        Err(OpsError::Unavailable(
            "no firewall management in this dataplane".to_string(),
        ))
    }
    /// `reset-counters`: the counters of the given rules (family, table,
    /// position; all with `None`) start again from 0.
    fn reset_firewall_counters(
        &self,
        _rules: Option<&[(ctrack_rules::Fam, ctrack_rules::Table, usize)]>,
    ) -> Result<(), OpsError> {
        Err(OpsError::Unavailable(
            "no firewall management in this dataplane".to_string(),
        ))
    }
}

/// Refuses a filter naming an unknown property (before any walk).
pub fn check_filter_properties(filter: &[(String, String)]) -> Result<(), OpsError> {
    for (p, _) in filter {
        ctrack_model::check_property(p)?;
    }
    Ok(())
}

/// How many connections match `filter`, by walking them (nothing is kept).
pub fn count_by_walking<D: Dataplane + ?Sized>(
    dp: &D,
    filter: &[(String, String)],
) -> Result<u64, OpsError> {
    let mut n = 0;
    dp.for_each_connection(filter, &mut |_| {
        n += 1;
        ControlFlow::Continue(())
    })?;
    Ok(n)
}

/// Parses and applies `changes` to a copy of `current`, then validates it
/// ([`ctrack_model::settings::apply`]): all or nothing.
pub fn apply_changes(
    current: &Settings,
    changes: &[(String, String)],
) -> Result<Settings, OpsError> {
    Ok(ctrack_model::settings::apply(current, changes)?)
}

/// Whether `row` matches every `(property, value)` of `filter`. Every pair
/// is checked, so a malformed value is an error whatever the others say.
pub fn matches_filter(row: &ConnSnapshot, filter: &[(String, String)]) -> Result<bool, OpsError> {
    let mut keep = true;
    for (p, v) in filter {
        keep &= row.matches(p, v)?;
    }
    Ok(keep)
}

/// An in-memory [`Dataplane`] for tests of the API, metrics and CLI: a fixed
/// list of connections and settings, no workers.
#[derive(Debug, Default)]
pub struct FakeDataplane {
    pub rows: Mutex<Vec<ConnSnapshot>>,
    pub settings: Mutex<Settings>,
    pub metrics: Mutex<MetricsSnapshot>,
    pub max_entries: u64,
    /// When set, a walk ([`Dataplane::for_each_connection`]) fails with
    /// [`OpsError::Unavailable`] once it has looked at this many rows, as a
    /// worker that stops answering mid-listing would.
    pub list_fails_after: Option<usize>,
    /// The events' hub [`Dataplane::events`] offers (none by default).
    pub events: Option<std::sync::Arc<crate::events::EventHub>>,
    /// The `/ip traffic-flow` menu [`Dataplane::traffic_flow`] offers.
    pub traffic_flow: Option<std::sync::Arc<crate::flow_ops::FlowControl>>,
    /// A firewall without workers (compiled, never run: counters stay 0).
    pub firewall: crate::fw_manage::FakeFirewall,
}

impl Dataplane for FakeDataplane {
    fn firewall_state(&self) -> Result<crate::fw_manage::FirewallState, OpsError> {
        Ok(self.firewall.state())
    }

    fn edit_firewall(
        &self,
        edit: &mut dyn FnMut(
            &mut ctrack_rules::Config,
            &mut crate::fw_manage::MenuIds,
        ) -> Result<(), OpsError>,
    ) -> Result<(), OpsError> {
        self.firewall.edit(edit)
    }

    fn reset_firewall_counters(
        &self,
        _rules: Option<&[(ctrack_rules::Fam, ctrack_rules::Table, usize)]>,
    ) -> Result<(), OpsError> {
        Ok(())
    }

    fn for_each_connection(
        &self,
        filter: &[(String, String)],
        visit: &mut dyn FnMut(ConnSnapshot) -> ControlFlow<()>,
    ) -> Result<(), OpsError> {
        check_filter_properties(filter)?;
        // One row at a time, the lock not held while visiting: like the
        // workers' chunks, a slow visitor holds nothing.
        for i in 0.. {
            if self.list_fails_after == Some(i) {
                return Err(OpsError::Unavailable(format!(
                    "fake: listing failed after {i} rows"
                )));
            }
            let Some(row) = self.rows.lock().get(i).cloned() else {
                break;
            };
            if matches_filter(&row, filter)? && visit(row).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn connection(&self, id: ConnId) -> Result<ConnSnapshot, OpsError> {
        let want = id.to_string();
        self.rows
            .lock()
            .iter()
            .find(|r| r.id == want)
            .cloned()
            .ok_or(OpsError::NotFound(want))
    }

    fn remove(&self, id: ConnId) -> Result<(), OpsError> {
        let want = id.to_string();
        let mut rows = self.rows.lock();
        let before = rows.len();
        rows.retain(|r| r.id != want);
        if rows.len() == before {
            return Err(OpsError::NotFound(want));
        }
        Ok(())
    }

    fn tracking(&self) -> TrackingInfo {
        TrackingInfo {
            settings: self.settings.lock().clone(),
            max_entries: self.max_entries,
            total_entries: self.rows.lock().len() as u64,
            auto_tracking: None,
            tracking_needed_by: Vec::new(),
        }
    }

    fn set_tracking(&self, changes: &[(String, String)]) -> Result<TrackingInfo, OpsError> {
        let next = apply_changes(&self.settings.lock(), changes)?;
        *self.settings.lock() = next;
        Ok(self.tracking())
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.metrics.lock().clone()
    }

    fn events(&self) -> Option<std::sync::Arc<crate::events::EventHub>> {
        self.events.clone()
    }

    fn traffic_flow(&self) -> Option<std::sync::Arc<crate::flow_ops::FlowControl>> {
        self.traffic_flow.clone()
    }
}

#[cfg(test)]
mod tests {
    use ctrack_model::SettingsExt;

    use super::*;

    #[test]
    fn settings_changes_are_all_or_nothing() {
        let fake = FakeDataplane::default();
        let bad = [
            ("udp-timeout".to_string(), "30s".to_string()),
            ("icmp-timeout".to_string(), "soon".to_string()),
        ];
        let err = fake.set_tracking(&bad).unwrap_err();
        assert!(err.to_string().contains("icmp-timeout"), "{err}");
        assert_eq!(*fake.settings.lock(), Settings::default());
        let good = [("udp-timeout".to_string(), "30s".to_string())];
        let t = fake.set_tracking(&good).unwrap();
        assert_eq!(t.settings.get("udp-timeout").unwrap(), "30s");
    }
}
