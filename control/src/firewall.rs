//! The firewall as the control plane keeps it: the parsed RouterOS script
//! ([`Config`]), the mark names ([`Names`], one for the life of the
//! process), the compiled [`Ruleset`] the workers run, and the rule counters
//! that outlive a reload.
//!
//! A (re)load compiles the whole script first; only a ruleset that compiled
//! goes to the workers, to every one or to none ([`crate::workers::WorkerSet`]).
//! Each worker hands its previous ruleset back with its final counters, so
//! that the counters of rules that did not change carry over: a new rule
//! takes the old totals of an equal rule (same family, table and model
//! value, position aside), each old rule at most once.
//!
//! `enabled=auto` resolves here: tracking is on while a rule needs it
//! ([`needs_tracking`]); without a script ctrack tracks (that is what it is
//! run for), see `docs/firewall.md` ("In the dataplane").

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use ctrack_rules::{
    Action, Config, Fam, Matcher, Names, Rule, RuleCounter, RuleId, Ruleset, Table,
};
use dataplane::conntrack::ConnCount;
use dataplane::firewall::{FirewallUpdate, Retired};
use dataplane::flow::Family;

use crate::fw_manage::MenuIds;
use serde::Serialize;

/// Port `i`'s default interface name: `ether{i+1}`, as RouterOS names them.
pub fn default_interfaces(ports: usize) -> Vec<String> {
    (1..=ports).map(|i| format!("ether{i}")).collect()
}

/// Reads and parses a RouterOS script; an error names the file and the
/// line. `lenient` skips what ctrack does not implement (unknown menus,
/// rules with an unknown property or value), with one warning per skipped
/// line on stderr.
pub fn load_script(path: &Path, lenient: bool) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading rules {}", path.display()))?;
    let parsed = ctrack_rules::parse_with(&text, ctrack_rules::Options { lenient })
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for w in &parsed.warnings {
        eprintln!("ctrack: warning: {}: skipped {w}", path.display());
    }
    Ok(parsed.config)
}

/// The `/ip firewall connection tracking set` properties of a script, as
/// `KEY=VALUE` changes for [`ctrack_model::settings::apply`].
pub fn tracking_changes(cfg: &Config) -> Vec<(String, String)> {
    cfg.connection_tracking.0.clone()
}

/// Whether a rule needs connection tracking (RouterOS's `enabled=auto`):
/// any conntrack matcher (`connection-state`, `connection-mark`,
/// `connection-bytes`, `connection-rate`, `connection-limit`,
/// `connection-type`, `connection-nat-state`, `layer7-protocol`), or an
/// action on connections (`fasttrack-connection`, `mark-connection`, the
/// NAT actions). A disabled rule needs nothing.
pub fn needs_tracking(r: &Rule) -> Option<&'static str> {
    if r.disabled {
        return None;
    }
    for m in &r.matchers {
        let why = match m {
            Matcher::ConnectionState(_) => "connection-state",
            Matcher::ConnectionNatState(_) => "connection-nat-state",
            Matcher::ConnectionMark(_) => "connection-mark",
            Matcher::ConnectionType(_) => "connection-type",
            Matcher::ConnectionBytes(_) => "connection-bytes",
            Matcher::ConnectionRate(_) => "connection-rate",
            Matcher::ConnectionLimit(_) => "connection-limit",
            Matcher::Layer7Protocol(_) => "layer7-protocol",
            _ => continue,
        };
        return Some(why);
    }
    match r.action {
        Action::FasttrackConnection => Some("action=fasttrack-connection"),
        Action::MarkConnection => Some("action=mark-connection"),
        Action::SrcNat
        | Action::DstNat
        | Action::Masquerade
        | Action::Netmap
        | Action::Redirect
        | Action::Same => Some("nat"),
        _ => None,
    }
}

/// The rules that need tracking, as `/ip firewall filter #3 (connection-state)`.
pub fn tracking_needed_by(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for fam in [Fam::V4, Fam::V6] {
        for t in [Table::Filter, Table::Mangle, Table::Nat] {
            for (i, r) in cfg.firewall(fam).table(t).iter().enumerate() {
                if let Some(why) = needs_tracking(r) {
                    out.push(format!(
                        "/{} firewall {} #{i} ({why})",
                        fam.menu(),
                        t.name()
                    ));
                }
            }
        }
    }
    out
}

/// One rule's counters with what identifies it (`print stats`, metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleStat {
    /// `ip` or `ipv6`.
    pub family: &'static str,
    pub table: &'static str,
    pub chain: String,
    /// Position in its table (RouterOS's `#`).
    pub position: usize,
    pub action: &'static str,
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// The control plane's firewall (see the module doc).
pub struct Firewall {
    config: Config,
    names: Names,
    interfaces: Vec<String>,
    ruleset: Arc<Ruleset>,
    generation: u64,
    /// Counters carried over from earlier rulesets, by [`RuleId`].
    base: Vec<RuleCounter>,
    needed_by: Vec<String>,
    /// The shared connection counts of `connection-limit` (kept across
    /// reloads while the masks asked about stay the same).
    conncount: Option<Arc<ConnCount>>,
    /// The items' RouterOS ids (REST `.id`).
    ids: MenuIds,
    /// What `reset-counters` took away, by [`RuleId`] (subtracted from
    /// the totals).
    reset: Vec<RuleCounter>,
    /// The interfaces' addresses (`/ip address`, `/ipv6 address`), for
    /// `masquerade` and `redirect`.
    addresses: Arc<dataplane::nat::Addresses>,
}

/// Slots of the `connection-limit` table: distinct (mask, source block)
/// pairs it can count (8 bytes each).
pub const CONNCOUNT_SLOTS: usize = 1 << 18;

/// The `connection-limit` table for `rs`: `prev` if it counts the same
/// masks, a new one if the ruleset asks about others, none if it asks
/// about none.
fn conncount_for(rs: &Ruleset, prev: Option<&Arc<ConnCount>>) -> Option<Arc<ConnCount>> {
    let masks: Vec<(Family, u8)> = rs
        .uses()
        .conn_limit
        .iter()
        .map(|&(f, m)| {
            let f = match f {
                Fam::V4 => Family::V4,
                Fam::V6 => Family::V6,
            };
            (f, m)
        })
        .collect();
    if masks.is_empty() {
        return None;
    }
    match prev {
        Some(p) if p.masks() == masks.as_slice() => Some(Arc::clone(p)),
        _ => Some(Arc::new(ConnCount::new(&masks, CONNCOUNT_SLOTS))),
    }
}

impl Firewall {
    /// Compiles `config` for `ports` dataplane ports (named `ether1`... unless
    /// the script renames them).
    pub fn new(config: Config, ports: usize) -> Result<Firewall> {
        let defaults = default_interfaces(ports);
        let refs: Vec<&str> = defaults.iter().map(String::as_str).collect();
        let interfaces = config.interface_names(&refs);
        let mut names = Names::default();
        let ruleset = Ruleset::compile(&config, &interfaces, &mut names)
            .map_err(|e| anyhow::anyhow!("compiling the rules: {e}"))?;
        let mut ids = MenuIds::default();
        ids.sync(&config);
        let addresses = Arc::new(
            dataplane::nat::Addresses::from_config(&config, &interfaces)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        Ok(Firewall {
            addresses,
            needed_by: tracking_needed_by(&config),
            base: vec![RuleCounter::default(); ruleset.len()],
            conncount: conncount_for(&ruleset, None),
            config,
            names,
            interfaces,
            ruleset: Arc::new(ruleset),
            generation: 1,
            ids,
            reset: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Interface names by port (`ether1`... after the script's renames).
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn ruleset(&self) -> &Arc<Ruleset> {
        &self.ruleset
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the ruleset has NAT rules (the table then needs index room
    /// for reply keys: [`dataplane::conntrack::TableConfig::nat`]).
    pub fn uses_nat(&self) -> bool {
        dataplane::firewall::WorkerFirewall::uses_nat(&self.ruleset)
    }

    /// What `enabled=auto` resolves to: whether a rule needs tracking.
    pub fn auto_tracking(&self) -> bool {
        !self.needed_by.is_empty()
    }

    /// Something besides the rules needs tracking (flow export, which is
    /// built on the table's connection events): `enabled=auto` then tracks.
    /// Kept by [`Firewall::prepare`].
    pub fn also_needed_by(&mut self, why: &str) {
        if !self.needed_by.iter().any(|n| n == why) {
            self.needed_by.push(why.to_string());
        }
    }

    /// The rules that need tracking ([`tracking_needed_by`]).
    pub fn needed_by(&self) -> &[String] {
        &self.needed_by
    }

    /// The command that installs this ruleset in a worker; `lists_out` is
    /// that worker's queue of address-list additions.
    pub fn update(
        &self,
        reply: Option<crossbeam::channel::Sender<Retired>>,
        lists_out: Option<Arc<dataplane::firewall::ListQueue>>,
    ) -> FirewallUpdate {
        FirewallUpdate {
            ruleset: Some(Arc::clone(&self.ruleset)),
            generation: self.generation,
            auto_tracking: self.auto_tracking(),
            reply,
            lists_out,
            conncount: self.conncount.clone(),
            addresses: Some(Arc::clone(&self.addresses)),
        }
    }

    /// The items' RouterOS ids.
    pub fn ids(&self) -> &MenuIds {
        &self.ids
    }

    /// Gives the items these ids (an edit's, which knows which item moved
    /// where); `ids` must cover every item of the script.
    pub fn set_ids(&mut self, ids: MenuIds) {
        self.ids = ids;
    }

    /// `reset-counters`: the totals of the given rules (every rule with
    /// `None`) start again from 0; `workers` as for [`Firewall::totals`].
    pub fn reset_counters<'a>(
        &mut self,
        workers: impl Iterator<Item = &'a [RuleCounter]>,
        rules: Option<&[RuleId]>,
    ) {
        let raw = self.raw_totals(workers);
        self.reset.resize(raw.len(), RuleCounter::default());
        for (id, c) in raw.iter().enumerate() {
            if rules.is_none_or(|r| r.contains(&RuleId(id as u32))) {
                self.reset[id] = *c;
            }
        }
    }

    /// The `connection-limit` table the workers count in, if a rule asks.
    pub fn conncount(&self) -> Option<&Arc<ConnCount>> {
        self.conncount.as_ref()
    }

    /// Compiles `config` as the next ruleset, with the same mark names;
    /// nothing changes if it fails. Install it with [`Firewall::commit`].
    pub fn prepare(&mut self, config: Config) -> Result<Firewall> {
        let defaults = default_interfaces(self.interfaces.len());
        let d: Vec<&str> = defaults.iter().map(String::as_str).collect();
        let interfaces = config.interface_names(&d);
        let mut names = self.names.clone();
        let ruleset = Ruleset::compile(&config, &interfaces, &mut names)
            .map_err(|e| anyhow::anyhow!("compiling the rules: {e}"))?;
        let mut needed_by = tracking_needed_by(&config);
        needed_by.extend(
            self.needed_by
                .iter()
                .filter(|n| !n.starts_with("/ip firewall") && !n.starts_with("/ipv6 firewall"))
                .cloned(),
        );
        let mut ids = self.ids.clone();
        ids.sync(&config);
        let addresses = Arc::new(
            dataplane::nat::Addresses::from_config(&config, &interfaces)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        Ok(Firewall {
            addresses,
            needed_by,
            base: vec![RuleCounter::default(); ruleset.len()],
            conncount: conncount_for(&ruleset, self.conncount.as_ref()),
            config,
            names,
            interfaces,
            ruleset: Arc::new(ruleset),
            generation: self.generation + 1,
            ids,
            reset: Vec::new(),
        })
    }

    /// Makes `next` (from [`Firewall::prepare`]) the current firewall once
    /// every worker runs it; `retired` are the workers' previous rulesets
    /// with their final counters. Counters of rules that did not change
    /// carry over.
    pub fn commit(&mut self, mut next: Firewall, retired: &[Retired]) {
        let old = self.totals(retired.iter().filter_map(|r| {
            (r.generation == self.generation)
                .then_some(r.state.as_ref().map(|s| s.counters()))
                .flatten()
        }));
        let mut used = vec![false; old.len()];
        for id in 0..next.ruleset.len() {
            let Some(info) = next.ruleset.rule(RuleId(id as u32)) else {
                continue;
            };
            let Some(rule) = rule_of(&next.config, info.family, info.table, info.position) else {
                continue;
            };
            let found = (0..self.ruleset.len()).find(|&o| {
                !used[o]
                    && self.ruleset.rule(RuleId(o as u32)).is_some_and(|oi| {
                        oi.family == info.family
                            && oi.table == info.table
                            && rule_of(&self.config, oi.family, oi.table, oi.position) == Some(rule)
                    })
            });
            if let Some(o) = found {
                used[o] = true;
                next.base[id] = old[o];
            }
        }
        *self = next;
    }

    /// Carried-over counters plus the given per-worker counters (each
    /// indexed by [`RuleId`] of the current ruleset).
    pub fn totals<'a>(&self, workers: impl Iterator<Item = &'a [RuleCounter]>) -> Vec<RuleCounter> {
        let mut t = self.raw_totals(workers);
        for (a, r) in t.iter_mut().zip(&self.reset) {
            a.packets = a.packets.saturating_sub(r.packets);
            a.bytes = a.bytes.saturating_sub(r.bytes);
        }
        t
    }

    /// [`Firewall::totals`] before `reset-counters`.
    fn raw_totals<'a>(&self, workers: impl Iterator<Item = &'a [RuleCounter]>) -> Vec<RuleCounter> {
        let mut t = self.base.clone();
        for w in workers {
            for (a, c) in t.iter_mut().zip(w) {
                a.packets += c.packets;
                a.bytes += c.bytes;
            }
        }
        t
    }

    /// Every rule with its counters ([`Firewall::totals`]).
    pub fn stats<'a>(&self, workers: impl Iterator<Item = &'a [RuleCounter]>) -> Vec<RuleStat> {
        let totals = self.totals(workers);
        (0..self.ruleset.len())
            .filter_map(|id| {
                let info = self.ruleset.rule(RuleId(id as u32))?;
                let c = totals.get(id).copied().unwrap_or_default();
                Some(RuleStat {
                    family: info.family.menu(),
                    table: info.table.name(),
                    chain: info.chain.clone(),
                    position: info.position,
                    action: info.action.name(),
                    comment: info.comment.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                })
            })
            .collect()
    }
}

fn rule_of(cfg: &Config, fam: Fam, t: Table, position: usize) -> Option<&Rule> {
    cfg.firewall(fam).table(t).get(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_rules::WorkerState;
    use dataplane::conntrack::Instant;

    fn fw(script: &str) -> Firewall {
        Firewall::new(ctrack_rules::parse(script).unwrap(), 2).unwrap()
    }

    /// A worker's state for `f` with `packets[i]` counted on rule `i`.
    fn retired(f: &Firewall, packets: &[u64]) -> Retired {
        let rs = f.ruleset();
        let mut ws = WorkerState::new(rs, Instant::ZERO, 16, 16);
        // Count through the engine: a packet that matches the rule.
        for (i, &n) in packets.iter().enumerate() {
            let info = rs.rule(RuleId(i as u32)).unwrap();
            assert_eq!(info.table, Table::Filter);
            for _ in 0..n {
                let p = ctrack_rules::PacketCtx {
                    proto: 6 + 11 * i as u8, // tcp, udp, ...
                    size: 100,
                    ..Default::default()
                };
                rs.evaluate(
                    ctrack_rules::Hook::FilterForward,
                    Instant::ZERO,
                    &p,
                    &mut ws,
                    &ctrack_rules::NoEnv,
                );
            }
        }
        Retired {
            generation: f.generation(),
            ruleset: Some(Arc::clone(rs)),
            state: Some(ws),
        }
    }

    #[test]
    fn counters_of_unchanged_rules_carry_over_a_reload() {
        let mut f = fw("/ip firewall filter\n\
             add chain=forward action=accept protocol=tcp\n\
             add chain=forward action=accept protocol=udp\n");
        let old = [retired(&f, &[3, 5]), retired(&f, &[1, 0])];
        assert_eq!(
            f.stats(
                old.iter()
                    .filter_map(|r| r.state.as_ref().map(|s| s.counters()))
            )[1]
            .packets,
            5
        );
        // The udp rule moves up, the tcp rule changes, a rule is added.
        let next = f
            .prepare(
                ctrack_rules::parse(
                    "/ip firewall filter\n\
                     add chain=forward action=accept protocol=udp\n\
                     add chain=forward action=drop protocol=tcp\n\
                     add chain=forward action=accept protocol=udp\n",
                )
                .unwrap(),
            )
            .unwrap();
        f.commit(next, &old);
        let s = f.stats(std::iter::empty());
        assert_eq!(
            s.iter().map(|r| r.packets).collect::<Vec<_>>(),
            [5, 0, 0],
            "{s:?}"
        );
        assert_eq!(s[0].bytes, 500);
        assert_eq!(f.generation(), 2);
        // A retired state of another generation is not counted.
        let stale = retired(
            &fw("/ip firewall filter\nadd chain=forward action=accept protocol=udp\n"),
            &[7],
        );
        let next = f.prepare(f.config().clone()).unwrap();
        f.commit(next, &[stale]);
        assert_eq!(f.stats(std::iter::empty())[0].packets, 5);
    }

    #[test]
    fn reset_counters_starts_the_given_rules_from_zero() {
        let mut f = fw("/ip firewall filter\n\
             add chain=forward action=accept protocol=tcp\n\
             add chain=forward action=accept protocol=udp\n");
        let now = [retired(&f, &[3, 5])];
        let counters = || {
            now.iter()
                .filter_map(|r| r.state.as_ref().map(|s| s.counters()))
        };
        f.reset_counters(counters(), Some(&[RuleId(1)]));
        let s = f.stats(counters());
        assert_eq!((s[0].packets, s[1].packets, s[1].bytes), (3, 0, 0));
        // Later packets count from there.
        let later = [retired(&f, &[4, 7])];
        let s = f.stats(
            later
                .iter()
                .filter_map(|r| r.state.as_ref().map(|s| s.counters())),
        );
        assert_eq!((s[0].packets, s[1].packets), (4, 2));
        // All of them; an unchanged rule carries its reset total over a reload.
        f.reset_counters(counters(), None);
        assert_eq!(f.stats(counters())[0].packets, 0);
        let next = f.prepare(f.config().clone()).unwrap();
        f.commit(next, &later);
        let s = f.stats(std::iter::empty());
        assert_eq!((s[0].packets, s[1].packets), (1, 2));
    }

    #[test]
    fn auto_tracking_follows_the_rules_that_need_it() {
        let f = fw("/ip firewall filter\nadd chain=forward action=drop protocol=udp\n");
        assert!(!f.auto_tracking());
        let f = fw("/ip firewall filter\n\
             add chain=forward action=drop protocol=udp disabled=yes connection-state=new\n\
             add chain=forward action=accept connection-state=established\n");
        assert!(f.auto_tracking());
        assert_eq!(
            f.needed_by(),
            ["/ip firewall filter #1 (connection-state)".to_string()]
        );
    }
}
