//! Routes: RouterOS's `/ip route` and `/ipv6 route` model, and the choice
//! of the active route per destination prefix, sans-io.
//!
//! - Connected routes come from the interfaces' addresses (`/ip address
//!   add address=192.168.88.1/24 interface=ether2` gives `192.168.88.0/24`
//!   on ether2, distance 0, as RouterOS shows it with the `DAc` flags).
//! - Static routes (`dst-address=`, `gateway=` an address, `distance=`
//!   default 1, `disabled=`) are active when their gateway is reachable: it
//!   lies in a connected prefix (RouterOS's `check-gateway` aside; the
//!   gateway's interface is that prefix's). A recursive gateway (reachable
//!   only through another static route) is not resolved (RouterOS needs
//!   `target-scope` for that; documented).
//! - Among routes of one destination prefix the lowest distance wins; ties
//!   go to the first added (RouterOS picks one; documented).
//!
//! [`Table::compile`] gives the forwarding entries (prefix -> next hop)
//! that the dataplane loads into DPDK's `rte_lpm`/`rte_lpm6` off the fast
//! path; [`Fib`] is a plain longest-prefix match over them for the offline
//! tools (replay) and tests, and the reference the `rte_lpm` FIB is tested
//! against.

use crate::flow::{Addr, Family};

/// Where a route sends packets.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct NextHop {
    /// The egress interface (DPDK port).
    pub iface: u16,
    /// The gateway to resolve (ARP/ND), or `None` for a connected
    /// destination (resolve the packet's own destination).
    pub gateway: Option<Addr>,
}

/// A prefix: an address (host bits clear) and its length, in the family's
/// own bits (IPv4 0-32).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub family: Family,
    pub addr: Addr,
    pub len: u8,
}

fn family_bits(f: Family) -> (usize, u8) {
    match f {
        Family::V4 => (96, 32),
        Family::V6 => (0, 128),
    }
}

/// `a` as a 128-bit number (IPv4 in its mapped form's low bits).
fn num(a: &Addr) -> u128 {
    u128::from_be_bytes(a.0)
}

impl Prefix {
    /// `addr/len` with the host bits cleared; `None` if `len` is too long
    /// for the family.
    pub fn new(family: Family, addr: Addr, len: u8) -> Option<Prefix> {
        let (_, max) = family_bits(family);
        if len > max {
            return None;
        }
        Some(Prefix {
            family,
            addr: Addr((num(&addr) & Self::mask(family, len)).to_be_bytes()),
            len,
        })
    }

    fn mask(family: Family, len: u8) -> u128 {
        let (skip, _) = family_bits(family);
        let bits = skip + usize::from(len);
        if bits == 0 {
            0
        } else if bits >= 128 {
            u128::MAX
        } else {
            !(u128::MAX >> bits)
        }
    }

    pub fn contains(&self, a: &Addr) -> bool {
        num(a) & Self::mask(self.family, self.len) == num(&self.addr)
    }
}

/// One `/ip route` (or `/ipv6 route`) entry as configured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StaticRoute {
    pub dst: Prefix,
    pub gateway: Addr,
    pub distance: u8,
    pub disabled: bool,
}

/// One `/ip address` entry: the interface's address and its network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IfAddr {
    pub iface: u16,
    pub addr: Addr,
    pub prefix: Prefix,
}

/// A route as `print` shows it, with whether it is active.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RouteRow {
    pub dst: Prefix,
    pub next: Option<NextHop>,
    pub distance: u8,
    pub connected: bool,
    pub active: bool,
    pub disabled: bool,
}

/// The configured routes of one family's table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub addresses: Vec<IfAddr>,
    pub routes: Vec<StaticRoute>,
}

impl Table {
    /// Every route with its state, connected first (as RouterOS prints).
    pub fn rows(&self) -> Vec<RouteRow> {
        let mut rows: Vec<RouteRow> = Vec::new();
        for a in &self.addresses {
            if rows.iter().any(|r| r.connected && r.dst == a.prefix) {
                continue;
            }
            rows.push(RouteRow {
                dst: a.prefix,
                next: Some(NextHop {
                    iface: a.iface,
                    gateway: None,
                }),
                distance: 0,
                connected: true,
                active: false,
                disabled: false,
            });
        }
        for r in &self.routes {
            let via = self
                .addresses
                .iter()
                .find(|a| a.prefix.family == r.dst.family && a.prefix.contains(&r.gateway));
            rows.push(RouteRow {
                dst: r.dst,
                next: via.map(|a| NextHop {
                    iface: a.iface,
                    gateway: Some(r.gateway),
                }),
                distance: r.distance,
                connected: false,
                active: false,
                disabled: r.disabled,
            });
        }
        // Per destination, the usable route of the lowest distance, first
        // added on a tie.
        for i in 0..rows.len() {
            let r = rows[i];
            if r.disabled || r.next.is_none() {
                continue;
            }
            let better = rows.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.dst == r.dst
                    && !o.disabled
                    && o.next.is_some()
                    && (o.distance < r.distance || (o.distance == r.distance && j < i))
            });
            rows[i].active = !better;
        }
        rows
    }

    /// The forwarding entries: each active route's prefix and next hop.
    pub fn compile(&self) -> Vec<(Prefix, NextHop)> {
        self.rows()
            .into_iter()
            .filter(|r| r.active)
            .filter_map(|r| r.next.map(|n| (r.dst, n)))
            .collect()
    }
}

/// Longest-prefix match over compiled entries (see the module doc): one
/// sorted list per prefix length, searched longest first.
#[derive(Clone, Debug, Default)]
pub struct Fib {
    /// `(len, sorted (network, next hop))`, longest first.
    by_len: Vec<(u8, Vec<(u128, NextHop)>)>,
    family: Option<Family>,
}

impl Fib {
    /// A FIB of one family's entries (others are ignored).
    pub fn new(family: Family, entries: &[(Prefix, NextHop)]) -> Fib {
        let mut by_len: Vec<(u8, Vec<(u128, NextHop)>)> = Vec::new();
        for (p, n) in entries.iter().filter(|(p, _)| p.family == family) {
            match by_len.iter_mut().find(|(l, _)| *l == p.len) {
                Some((_, v)) => v.push((num(&p.addr), *n)),
                None => by_len.push((p.len, vec![(num(&p.addr), *n)])),
            }
        }
        by_len.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (_, v) in &mut by_len {
            v.sort_by_key(|e| e.0);
            v.dedup_by_key(|e| e.0);
        }
        Fib {
            by_len,
            family: Some(family),
        }
    }

    /// The next hop for `dst`, if a route covers it.
    pub fn lookup(&self, dst: &Addr) -> Option<NextHop> {
        let family = self.family?;
        let a = num(dst);
        self.by_len.iter().find_map(|(len, v)| {
            let net = a & Prefix::mask(family, *len);
            v.binary_search_by_key(&net, |e| e.0).ok().map(|i| v[i].1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p4(a: [u8; 4], len: u8) -> Prefix {
        Prefix::new(Family::V4, Addr::from_v4(a), len).unwrap()
    }

    fn table() -> Table {
        Table {
            addresses: vec![
                IfAddr {
                    iface: 0,
                    addr: Addr::from_v4([203, 0, 113, 2]),
                    prefix: p4([203, 0, 113, 0], 24),
                },
                IfAddr {
                    iface: 1,
                    addr: Addr::from_v4([192, 168, 88, 1]),
                    prefix: p4([192, 168, 88, 0], 24),
                },
            ],
            routes: vec![
                StaticRoute {
                    dst: p4([0, 0, 0, 0], 0),
                    gateway: Addr::from_v4([203, 0, 113, 1]),
                    distance: 1,
                    disabled: false,
                },
                StaticRoute {
                    dst: p4([10, 0, 0, 0], 8),
                    gateway: Addr::from_v4([192, 168, 88, 254]),
                    distance: 1,
                    disabled: false,
                },
                // Unreachable gateway: inactive.
                StaticRoute {
                    dst: p4([10, 1, 0, 0], 16),
                    gateway: Addr::from_v4([172, 16, 0, 1]),
                    distance: 1,
                    disabled: false,
                },
                // A worse duplicate of the default route.
                StaticRoute {
                    dst: p4([0, 0, 0, 0], 0),
                    gateway: Addr::from_v4([192, 168, 88, 2]),
                    distance: 5,
                    disabled: false,
                },
            ],
        }
    }

    #[test]
    fn connected_static_and_longest_prefix() {
        let t = table();
        let fib = Fib::new(Family::V4, &t.compile());
        let hop = |a| fib.lookup(&Addr::from_v4(a));
        assert_eq!(
            hop([192, 168, 88, 7]),
            Some(NextHop {
                iface: 1,
                gateway: None
            })
        );
        assert_eq!(
            hop([10, 1, 2, 3]),
            Some(NextHop {
                iface: 1,
                gateway: Some(Addr::from_v4([192, 168, 88, 254]))
            }),
            "the /16 has no reachable gateway: the /8 carries it"
        );
        assert_eq!(
            hop([8, 8, 8, 8]),
            Some(NextHop {
                iface: 0,
                gateway: Some(Addr::from_v4([203, 0, 113, 1]))
            })
        );
        let rows = t.rows();
        assert_eq!(rows.iter().filter(|r| r.active).count(), 4);
        assert!(!rows.iter().any(|r| r.distance == 5 && r.active));
        // Disable the default route: the distance-5 one takes over.
        let mut t2 = t.clone();
        t2.routes[0].disabled = true;
        let fib = Fib::new(Family::V4, &t2.compile());
        assert_eq!(
            fib.lookup(&Addr::from_v4([8, 8, 8, 8])).unwrap().gateway,
            Some(Addr::from_v4([192, 168, 88, 2]))
        );
        // No default route at all: no route.
        let t3 = Table {
            routes: vec![],
            ..t
        };
        assert_eq!(
            Fib::new(Family::V4, &t3.compile()).lookup(&Addr::from_v4([8, 8, 8, 8])),
            None
        );
    }

    proptest! {
        /// The FIB agrees with a brute-force longest match.
        #[test]
        fn fib_equals_brute_force(
            routes in proptest::collection::vec((any::<[u8; 4]>(), 0u8..=32, 0u16..4), 0..40),
            probes in proptest::collection::vec(any::<[u8; 4]>(), 1..50),
        ) {
            let entries: Vec<(Prefix, NextHop)> = routes
                .iter()
                .map(|&(a, l, i)| (p4(a, l), NextHop { iface: i, gateway: None }))
                .collect();
            let fib = Fib::new(Family::V4, &entries);
            for a in probes {
                let a = Addr::from_v4(a);
                // Longest match; among equal prefixes the first entry.
                let mut best: Option<(u8, NextHop)> = None;
                for (p, n) in &entries {
                    if p.contains(&a) && best.is_none_or(|(l, _)| p.len > l) {
                        best = Some((p.len, *n));
                    }
                }
                prop_assert_eq!(fib.lookup(&a), best.map(|b| b.1));
            }
        }
    }
}
