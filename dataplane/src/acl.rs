//! A chain of a compiled [`Ruleset`] as a DPDK `rte_acl` context: the
//! measuring stick for the engine's own classifier (`scripts/bench-rules.sh`),
//! and what a worker would use if rte_acl replaced it.
//!
//! It does not, today (docs/firewall.md, "Classifier"): rte_acl answers, per
//! category, the one highest-priority rule whose header matches, while the
//! walk needs every candidate in order (a candidate may fail on a matcher
//! rte_acl cannot see, or not end the chain: `log`, `passthrough`, marks,
//! a `jump` that returns). [`ChainAcl::first_candidate`] is therefore only
//! the first candidate: rules before it cannot match the packet, rules after
//! it still need the walk.
//!
//! Each rule becomes rte_acl rules of priority `MAX - position` and userdata
//! `position + 1`: one per pair of its source and destination port ranges.
//! A header field the engine matches negated (`!`) or not at all is the full
//! range there (a superset, as a prefilter must be).

use ctrack_rules::engine::RuleHeader;
use ctrack_rules::{Fam, PacketCtx, RuleId, Ruleset, Table};
use dpdk::{Acl, AclFamily, AclRule, DpdkError};

use crate::flow::Family;

/// Longest key of either family ([`Acl::key_len`]).
pub const MAX_KEY: usize = Acl::key_len(AclFamily::V6);

/// One chain's rules in an rte_acl context.
#[derive(Debug)]
pub struct ChainAcl {
    acl: Acl,
    family: AclFamily,
    /// `ids[position]`: the chain's rules in order.
    ids: Vec<RuleId>,
}

impl ChainAcl {
    /// The enabled rules of `chain` in `table` of `family`, in order.
    /// Needs a running EAL.
    pub fn build(rs: &Ruleset, family: Fam, table: Table, chain: &str) -> Result<Self, DpdkError> {
        let fam = match family {
            Fam::V4 => AclFamily::V4,
            Fam::V6 => AclFamily::V6,
        };
        let top = match fam {
            AclFamily::V4 => u32::MAX as u128,
            AclFamily::V6 => u128::MAX,
        };
        let mut ids = Vec::new();
        let mut rules = Vec::new();
        for i in 0..rs.len() {
            let id = RuleId(i as u32);
            let Some(info) = rs.rule(id) else { continue };
            if info.family != family || info.table != table || info.chain != chain {
                continue;
            }
            let Some(h) = rs.rule_header(id) else {
                continue;
            };
            let pos = ids.len() as u32;
            ids.push(id);
            let prio = Acl::MAX_PRIORITY - pos;
            let any = AclRule::any(fam, prio, pos + 1);
            let addr = |f: Option<(bool, u128, u128)>| match f {
                Some((false, lo, hi)) => (lo, hi.min(top)),
                _ => (0, top),
            };
            let ports = |f: &Option<(bool, Vec<(u16, u16)>)>| match f {
                Some((false, ps)) => ps.clone(),
                _ => vec![(0, u16::MAX)],
            };
            let RuleHeader {
                proto, src, dst, ..
            } = h;
            let base = AclRule {
                proto: match proto {
                    Some((false, p)) => Some(*p),
                    _ => None,
                },
                src: addr(*src),
                dst: addr(*dst),
                ..any
            };
            for &sp in &ports(&h.src_ports) {
                for &dp in &ports(&h.dst_ports) {
                    rules.push(AclRule {
                        src_port: sp,
                        dst_port: dp,
                        ..base
                    });
                }
            }
        }
        Ok(ChainAcl {
            acl: Acl::build(fam, &rules)?,
            family: fam,
            ids,
        })
    }

    /// Rules of the chain.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Packs `p`'s key into `out` (at least [`MAX_KEY`] bytes); returns its
    /// length. The packet must be of the chain's family.
    pub fn write_key(&self, p: &PacketCtx<'_>, out: &mut [u8]) -> usize {
        let addr = |a: &crate::flow::Addr| match p.family {
            Family::V4 => u32::from_be_bytes(a.v4_octets()) as u128,
            Family::V6 => u128::from_be_bytes(a.0),
        };
        Acl::write_key(
            self.family,
            p.proto,
            addr(&p.src),
            addr(&p.dst),
            p.src_port,
            p.dst_port,
            out,
        )
    }

    /// Classifies packed keys: `out[i]` is the first rule of the chain whose
    /// header can match `keys[i]`, or `None`.
    pub fn first_candidate(
        &self,
        keys: &[&[u8]],
        raw: &mut [u32],
        out: &mut [Option<RuleId>],
    ) -> Result<(), DpdkError> {
        self.acl.classify(keys, raw)?;
        for (o, &r) in out.iter_mut().zip(raw.iter()) {
            *o = r
                .checked_sub(1)
                .and_then(|pos| self.ids.get(pos as usize).copied());
        }
        Ok(())
    }

    /// The context itself, for bare `rte_acl_classify` timings.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }
}
