//! The chain classifier: which rules of a chain can match a packet, by its
//! header alone (protocol, source and destination address, ports).
//!
//! A chain is walked in order and every rule is a candidate in principle:
//! rules with non-terminal actions (`log`, `passthrough`, marks with
//! `passthrough=yes`, `jump` that may return) mean a packet can match
//! several rules, and a rule whose header matches may still fail on another
//! matcher (a connection state, an address list). So the classifier does
//! not answer "the first match" (what DPDK's rte_acl answers per category)
//! but "the candidates, in order": a sorted list of rule indexes that is a
//! superset of the rules that can match. The walk then checks each candidate
//! fully, exactly as the linear walk would, and skips everything else.
//!
//! The structure is a decision tree of the HiCuts/HyperCuts family over five
//! fields (protocol, source, destination, source port, destination port):
//! an inner node cuts one field into up to [`MAX_CUTS`] intervals at rule
//! boundaries and a lookup binary-searches the packet's value among the
//! cuts; a leaf holds the sorted indexes of the rules that overlap its box.
//! A rule with several port ranges is in every child it overlaps; a field a
//! rule does not constrain (or constrains with `!`) is a wildcard and the
//! rule is in every child. Building stops at [`LEAF_RULES`] rules, at
//! [`MAX_DEPTH`], when no cut makes the largest child smaller, or when the
//! leaves would replicate rules beyond a budget (then a leaf simply keeps
//! more rules: never wrong, only slower).
//!
//! Lookup: a few nodes, one binary search of at most 64 cuts each, no
//! allocation, no lock.

/// Fields, in key order.
pub(crate) const FIELDS: usize = 5;
pub(crate) const F_PROTO: usize = 0;
pub(crate) const F_SRC: usize = 1;
pub(crate) const F_DST: usize = 2;
pub(crate) const F_SPORT: usize = 3;
pub(crate) const F_DPORT: usize = 4;

/// A packet's header in the classifier's form: protocol, source,
/// destination (IPv4 in the low 32 bits), source port, destination port.
pub(crate) type Key = [u128; FIELDS];

/// Most intervals an inner node cuts its field into.
pub const MAX_CUTS: usize = 64;
/// A node with at most this many rules is a leaf.
pub const LEAF_RULES: usize = 8;
/// Deepest path of the tree.
pub const MAX_DEPTH: usize = 12;
/// A cut may replicate rules up to this factor of the node's rule count.
const SPREAD: usize = 4;

/// What a rule asks of each field: `None` is any value, else a sorted list
/// of inclusive ranges (any of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub fields: [Option<Vec<(u128, u128)>>; FIELDS],
}

/// An inner node, 12 bytes. It keeps its cuts in `cuts32` when every cut
/// fits 32 bits (IPv4 addresses, ports, protocols: the cache lines a lookup
/// touches are a quarter of `u128` ones), else in `cuts128`.
#[derive(Clone, Copy, Debug)]
struct Node {
    wide: bool,
    field: u8,
    /// Cuts.
    n: u16,
    /// First cut.
    a: u32,
    /// First child in `kids` (`n + 1` of them).
    b: u32,
}

/// A child reference with this bit set is a leaf: the rest is the index in
/// `leaves` of its length, followed by its entries (one cache line fewer
/// than a leaf node would cost).
const LEAF: u32 = 1 << 31;

/// The compiled classifier of one chain: flat arrays, no pointer per node.
/// Child `j` of an inner node covers `[cuts[j-1], cuts[j])` of its field.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tree {
    /// The root: a node index, or [`LEAF`] | leaf.
    root: u32,
    nodes: Vec<Node>,
    cuts32: Vec<u32>,
    cuts128: Vec<u128>,
    kids: Vec<u32>,
    leaves: Vec<u32>,
    n_leaves: usize,
    /// Per rule, the box (hull of each field's ranges) its header allows:
    /// a candidate whose box misses the key is skipped without reading the
    /// rule (one cache line instead of the rule and its matchers).
    boxes: Boxes,
}

#[derive(Clone, Debug)]
enum Boxes {
    /// Every address bound fits 32 bits (IPv4 chains).
    Narrow(Vec<NarrowBox>),
    Wide(Vec<[u128; 2 * FIELDS]>),
}

/// A rule's hull in 32 bytes (never across a cache line). An address `hi`
/// of `u32::MAX` means no upper bound: an open address field is
/// `0..=u128::MAX`; IPv4 keys never exceed 32 bits, and for an IPv6 chain
/// an open end only admits more, never less.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
struct NarrowBox {
    /// Source lo, hi, destination lo, hi.
    addr: [u32; 4],
    /// Source port lo, hi, destination port lo, hi.
    ports: [u16; 4],
    proto: [u8; 2],
}

impl NarrowBox {
    fn new(h: &[u128; 2 * FIELDS]) -> NarrowBox {
        let a = |v: u128| v.min(u32::MAX as u128) as u32;
        let p = |v: u128| v.min(u16::MAX as u128) as u16;
        NarrowBox {
            addr: [a(h[2]), a(h[3]), a(h[4]), a(h[5])],
            ports: [p(h[6]), p(h[7]), p(h[8]), p(h[9])],
            proto: [h[0].min(255) as u8, h[1].min(255) as u8],
        }
    }

    #[inline]
    fn admits(&self, k: &Key) -> bool {
        let addr =
            |lo: u32, hi: u32, v: u128| lo as u128 <= v && (hi == u32::MAX || v <= hi as u128);
        let [pl, ph] = self.proto;
        let [sl, sh, dl, dh] = self.ports;
        let [al, ah, bl, bh] = self.addr;
        pl as u128 <= k[F_PROTO]
            && k[F_PROTO] <= ph as u128
            && sl as u128 <= k[F_SPORT]
            && k[F_SPORT] <= sh as u128
            && dl as u128 <= k[F_DPORT]
            && k[F_DPORT] <= dh as u128
            && addr(al, ah, k[F_SRC])
            && addr(bl, bh, k[F_DST])
    }
}

impl Default for Boxes {
    fn default() -> Self {
        Boxes::Narrow(Vec::new())
    }
}

/// Field bounds: the whole value space of each field.
const SPACE: [(u128, u128); FIELDS] = [
    (0, 255),
    (0, u128::MAX),
    (0, u128::MAX),
    (0, 65535),
    (0, 65535),
];

impl Tree {
    /// Builds the tree over `rules` (indexes are positions in the slice).
    pub(crate) fn build(rules: &[Header]) -> Tree {
        let mut t = Tree::default();
        let mut b = Builder {
            rules,
            // Total leaf entries allowed: what keeps a ruleset of wide,
            // overlapping ranges from exploding.
            budget: rules.len().saturating_mul(16).max(4096),
        };
        let all: Vec<u32> = (0..rules.len() as u32).collect();
        t.root = b.node(&mut t, all, SPACE, 0);
        let hulls: Vec<[u128; 2 * FIELDS]> = rules
            .iter()
            .map(|r| {
                let mut h = [0u128; 2 * FIELDS];
                for (f, rs) in r.fields.iter().enumerate() {
                    let (lo, hi) = match rs {
                        Some(rs) if !rs.is_empty() => (
                            rs.iter().map(|x| x.0).min().unwrap_or(0),
                            rs.iter().map(|x| x.1).max().unwrap_or(0),
                        ),
                        _ => SPACE[f],
                    };
                    (h[2 * f], h[2 * f + 1]) = (lo, hi);
                }
                h
            })
            .collect();
        let narrow = hulls.iter().all(|h| {
            h.chunks(2).all(|lh| {
                lh[0] <= u32::MAX as u128 && (lh[1] <= u32::MAX as u128 || lh[1] == u128::MAX)
            })
        });
        t.boxes = if narrow {
            Boxes::Narrow(hulls.iter().map(NarrowBox::new).collect())
        } else {
            Boxes::Wide(hulls)
        };
        t
    }

    /// Whether rule `rule`'s header box holds `key` (false: the rule
    /// cannot match the packet).
    #[inline]
    pub(crate) fn admits(&self, rule: u32, key: &Key) -> bool {
        match &self.boxes {
            Boxes::Narrow(b) => b.get(rule as usize).is_none_or(|b| b.admits(key)),
            Boxes::Wide(b) => b
                .get(rule as usize)
                .is_none_or(|b| (0..FIELDS).all(|f| b[2 * f] <= key[f] && key[f] <= b[2 * f + 1])),
        }
    }

    /// The candidate rules for `key`, sorted.
    #[inline]
    pub(crate) fn candidates(&self, key: &Key) -> &[u32] {
        let mut r = self.root;
        loop {
            if r & LEAF != 0 {
                let s = (r & !LEAF) as usize;
                let len = self.leaves[s] as usize;
                return &self.leaves[s + 1..s + 1 + len];
            }
            let n = self.nodes[r as usize];
            let (a, b, len) = (n.a as usize, n.b as usize, n.n as usize);
            let v = key[n.field as usize];
            let j = if n.wide {
                self.cuts128[a..a + len].partition_point(|&c| c <= v)
            } else {
                match u32::try_from(v) {
                    Ok(v) => self.cuts32[a..a + len].partition_point(|&c| c <= v),
                    Err(_) => len,
                }
            };
            r = self.kids[b + j];
        }
    }

    /// Nodes (inner and leaves), leaf entries (for tests and figures).
    pub(crate) fn size(&self) -> (usize, usize) {
        (
            self.nodes.len() + self.n_leaves,
            self.leaves.len() - self.n_leaves,
        )
    }
}

struct Builder<'a> {
    rules: &'a [Header],
    budget: usize,
}

/// One way to cut a node: the field, the cuts, the children's rule sets.
struct Cut {
    field: usize,
    cuts: Vec<u128>,
    kids: Vec<Vec<u32>>,
    max: usize,
    sum: usize,
}

impl Builder<'_> {
    fn node(
        &mut self,
        t: &mut Tree,
        set: Vec<u32>,
        region: [(u128, u128); FIELDS],
        depth: usize,
    ) -> u32 {
        let best = if set.len() <= LEAF_RULES || depth >= MAX_DEPTH {
            None
        } else {
            self.best_cut(&set, &region)
                .filter(|c| c.sum.saturating_sub(set.len()) <= self.budget)
        };
        let Some(cut) = best else {
            let at = t.leaves.len() as u32;
            t.leaves.push(set.len() as u32);
            t.leaves.extend_from_slice(&set);
            t.n_leaves += 1;
            return LEAF | at;
        };
        let id = t.nodes.len() as u32;
        self.budget -= cut.sum.saturating_sub(set.len());
        let narrow = cut.cuts.iter().all(|&c| c <= u32::MAX as u128);
        let a = if narrow {
            let a = t.cuts32.len() as u32;
            t.cuts32.extend(cut.cuts.iter().map(|&c| c as u32));
            a
        } else {
            let a = t.cuts128.len() as u32;
            t.cuts128.extend_from_slice(&cut.cuts);
            a
        };
        let kids = t.kids.len();
        t.kids.resize(kids + cut.kids.len(), 0);
        t.nodes.push(Node {
            wide: !narrow,
            field: cut.field as u8,
            n: cut.cuts.len() as u16,
            a,
            b: kids as u32,
        });
        let (lo, hi) = region[cut.field];
        for (j, kid) in cut.kids.into_iter().enumerate() {
            let mut r = region;
            let klo = if j == 0 { lo } else { cut.cuts[j - 1] };
            let khi = if j == cut.cuts.len() {
                hi
            } else {
                cut.cuts[j] - 1
            };
            r[cut.field] = (klo, khi);
            t.kids[kids + j] = self.node(t, kid, r, depth + 1);
        }
        id
    }

    /// The cut whose largest child is smallest (then: least replication),
    /// over every field and a few cut counts; `None` when none helps.
    fn best_cut(&self, set: &[u32], region: &[(u128, u128); FIELDS]) -> Option<Cut> {
        let mut best: Option<Cut> = None;
        for (field, &(lo, hi)) in region.iter().enumerate() {
            // Interval starts inside the region: every rule range's start
            // and the value after its end.
            let mut points: Vec<u128> = Vec::new();
            for &r in set {
                if let Some(rs) = &self.rules[r as usize].fields[field] {
                    for &(a, b) in rs {
                        if a > lo && a <= hi {
                            points.push(a);
                        }
                        if b >= lo && b < hi {
                            points.push(b + 1);
                        }
                    }
                }
            }
            points.sort_unstable();
            points.dedup();
            if points.is_empty() {
                continue;
            }
            let mut n = MAX_CUTS;
            while n >= 2 {
                let cuts: Vec<u128> = if points.len() < n {
                    points.clone()
                } else {
                    let mut c: Vec<u128> = (1..n).map(|k| points[k * points.len() / n]).collect();
                    c.dedup();
                    c
                };
                let c = self.split(set, field, (lo, hi), cuts);
                let better = match &best {
                    None => true,
                    Some(b) => (c.max, c.sum) < (b.max, b.sum),
                };
                if c.max < set.len() && c.sum <= SPREAD * set.len() && better {
                    best = Some(c);
                }
                if points.len() < n {
                    break;
                }
                n /= 4;
            }
        }
        best
    }

    fn split(&self, set: &[u32], field: usize, (lo, hi): (u128, u128), cuts: Vec<u128>) -> Cut {
        let mut kids: Vec<Vec<u32>> = vec![Vec::new(); cuts.len() + 1];
        for &r in set {
            match &self.rules[r as usize].fields[field] {
                None => kids.iter_mut().for_each(|k| k.push(r)),
                Some(rs) => {
                    for &(a, b) in rs.iter().filter(|&&(a, b)| a <= hi && b >= lo) {
                        let first = cuts.partition_point(|&c| c <= a);
                        let last = cuts.partition_point(|&c| c <= b);
                        for k in &mut kids[first..=last] {
                            // Ranges of one rule may share a child.
                            if k.last() != Some(&r) {
                                k.push(r);
                            }
                        }
                    }
                }
            }
        }
        // Neighbours with the same rules are one child.
        let mut mc: Vec<u128> = Vec::with_capacity(cuts.len());
        let mut mk: Vec<Vec<u32>> = Vec::with_capacity(kids.len());
        for (j, k) in kids.into_iter().enumerate() {
            if mk.last() == Some(&k) {
                continue;
            }
            if j > 0 {
                mc.push(cuts[j - 1]);
            }
            mk.push(k);
        }
        let max = mk.iter().map(Vec::len).max().unwrap_or(0);
        let sum = mk.iter().map(Vec::len).sum();
        Cut {
            field,
            cuts: mc,
            kids: mk,
            max,
            sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(proto: Option<u8>, src: Option<(u128, u128)>, dport: Option<Vec<(u128, u128)>>) -> Header {
        Header {
            fields: [
                proto.map(|p| vec![(p as u128, p as u128)]),
                src.map(|s| vec![s]),
                None,
                None,
                dport,
            ],
        }
    }

    fn brute(rules: &[Header], key: &Key) -> Vec<u32> {
        (0..rules.len() as u32)
            .filter(|&i| {
                rules[i as usize].fields.iter().enumerate().all(|(f, rs)| {
                    rs.as_ref()
                        .is_none_or(|rs| rs.iter().any(|&(a, b)| a <= key[f] && key[f] <= b))
                })
            })
            .collect()
    }

    #[test]
    fn many_prefixes_split_and_candidates_are_exact_supersets() {
        let mut rules = Vec::new();
        for i in 0..2000u128 {
            let base = (10 << 24) | (i << 8);
            let port = 1000 + (i % 50);
            rules.push(h(
                Some([6, 17][i as usize % 2]),
                Some((base, base + 255)),
                Some(vec![(port, port), (2000, 2010)]),
            ));
        }
        // Wildcards and a wide range stay candidates everywhere they apply.
        rules.push(h(None, None, None));
        rules.push(h(Some(6), Some((10 << 24, (11 << 24) - 1)), None));
        let t = Tree::build(&rules);
        let (nodes, entries) = t.size();
        assert!(nodes > 1, "the tree split");
        assert!(entries < rules.len() * 16, "{entries} entries");
        for i in (0..2100u128).step_by(7) {
            for port in [1000 + (i % 50), 2005, 7] {
                let key = [
                    [6, 17][i as usize % 2],
                    (10 << 24) | (i << 8) | 9,
                    0,
                    0,
                    port,
                ];
                let c = t.candidates(&key);
                let want = brute(&rules, &key);
                assert!(c.windows(2).all(|w| w[0] < w[1]), "sorted");
                for &r in &want {
                    assert!(t.admits(r, &key), "rule {r} admits {key:?}");
                }
                let admitted = c.iter().filter(|&&r| t.admits(r, &key)).count();
                assert!(admitted <= want.len() + 2, "{admitted} boxes hold {key:?}");
                assert!(want.iter().all(|w| c.contains(w)), "{want:?} in {c:?}");
                assert!(c.len() <= LEAF_RULES + 4, "{key:?}: {} candidates", c.len());
            }
        }
    }

    #[test]
    fn open_address_fields_stay_narrow_and_admit_wide_keys() {
        let rules = vec![h(Some(6), None, Some(vec![(80, 80)])); 40];
        let t = Tree::build(&rules);
        assert!(matches!(t.boxes, Boxes::Narrow(_)));
        // An IPv6 source above 32 bits is admitted by an open field.
        let key = [6, u128::MAX - 5, 1 << 100, 1, 80];
        assert!(t.admits(0, &key));
        assert!(!t.admits(0, &[6, u128::MAX - 5, 1 << 100, 1, 81]));
        // A bound above 32 bits that is not open makes the boxes wide.
        let mut wide = rules.clone();
        wide.push(h(None, Some((1 << 40, 1 << 41)), None));
        let t = Tree::build(&wide);
        assert!(matches!(t.boxes, Boxes::Wide(_)));
        assert!(t.admits(40, &[0, 1 << 40, 0, 0, 0]));
        assert!(!t.admits(40, &[0, (1 << 41) + 1, 0, 0, 0]));
    }

    #[test]
    fn overlapping_wide_ranges_stay_within_the_budget() {
        // Random, overlapping, often wide ranges and wildcards: the worst
        // case for replication. The tree stays bounded and exact.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as u128
        };
        let mut rules = Vec::new();
        for _ in 0..3000 {
            let mut f: [Option<Vec<(u128, u128)>>; FIELDS] = Default::default();
            if rnd(3) > 0 {
                let (a, w) = (rnd(1 << 20), rnd(20) as u64);
                f[F_SRC] = Some(vec![(a, a + rnd(1 << w))]);
            }
            if rnd(2) > 0 {
                let (a, w) = (rnd(1 << 20), rnd(20) as u64);
                f[F_DST] = Some(vec![(a, a + rnd(1 << w))]);
            }
            if rnd(2) > 0 {
                let a = rnd(60000);
                f[F_DPORT] = Some(vec![(a, a + rnd(3000)), (a + 4000, a + 4000)]);
            }
            if rnd(2) > 0 {
                f[F_PROTO] = Some(vec![(6, 6)]);
            }
            rules.push(Header { fields: f });
        }
        let t = Tree::build(&rules);
        let (_, entries) = t.size();
        assert!(entries <= rules.len() * 17 + 4096, "{entries} leaf entries");
        for _ in 0..3000 {
            let key = [
                [6, 17][rnd(2) as usize],
                rnd(1 << 21),
                rnd(1 << 21),
                rnd(65536),
                rnd(65536),
            ];
            let c = t.candidates(&key);
            for w in brute(&rules, &key) {
                assert!(
                    c.binary_search(&w).is_ok() && t.admits(w, &key),
                    "{w} for {key:?}"
                );
            }
        }
    }

    #[test]
    fn empty_and_tiny_chains_are_one_leaf() {
        assert_eq!(Tree::build(&[]).candidates(&[0; FIELDS]), &[] as &[u32]);
        let rules = vec![h(Some(6), None, None); 3];
        assert_eq!(
            Tree::build(&rules).candidates(&[17, 0, 0, 0, 0]),
            &[0, 1, 2]
        );
    }
}
