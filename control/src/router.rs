//! Router mode's configuration: from a RouterOS script's `/ip address`,
//! `/ipv6 address`, `/ip route`, `/ipv6 route`, `/ip arp` and `/ipv6
//! neighbor` to the [`RouterConfig`] every worker holds (see docs/nat.md
//! "Router mode").
//!
//! A script with at least one (enabled) address puts `ctrack run` in router
//! mode; without one the ports stay bridged in pairs, as before. The
//! forwarding table is compiled here, off the fast path
//! ([`route::Table::compile`]), loaded into `rte_lpm`/`rte_lpm6` when the
//! EAL runs ([`Fib::with_lpm`]), and handed to the workers in one `Arc`
//! (a later change is a new `Arc`, [`dataplane::worker::Command::Router`],
//! swapped in between bursts as rulesets are).

use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use ctrack_rules::Config;
use ctrack_rules::model::Item;
use dataplane::flow::{Addr, Family};
use dataplane::router::neigh::Mac;
use dataplane::router::route::{IfAddr, NextHop, Prefix, StaticRoute, Table};
use dataplane::router::{Fib, PortAddrs, RouterConfig};

/// What a script says about routing, before the ports' MACs are known.
#[derive(Clone, Debug, Default)]
pub struct RouterSetup {
    /// Addresses and static routes of both families.
    pub table: Table,
    /// Static neighbours: (port, address, MAC).
    pub statics: Vec<(u16, Addr, Mac)>,
    /// Each port's IP MTU (`/interface ethernet set [ find
    /// default-name=etherN ] mtu=`; 1500 by default, as RouterOS).
    pub mtus: Vec<u16>,
}

fn family(a: &Addr) -> Family {
    if a.is_v4_mapped() {
        Family::V4
    } else {
        Family::V6
    }
}

fn addr_of(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(a) => Addr::from_v4(a.octets()),
        IpAddr::V6(a) => Addr::from_v6(a.octets()),
    }
}

/// `a.b.c.d/len` (or a plain address: a host prefix), of `fam`.
pub(crate) fn parse_net(v: &str, fam: Family) -> Result<(Addr, u8)> {
    let (a, l) = v.split_once('/').unwrap_or((v, ""));
    let ip: IpAddr = a.parse().with_context(|| format!("{v}: not an address"))?;
    let addr = addr_of(ip);
    if family(&addr) != fam {
        bail!("{v}: wrong address family");
    }
    let max = if fam == Family::V4 { 32 } else { 128 };
    let len = if l.is_empty() {
        max
    } else {
        l.parse::<u8>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| anyhow!("{v}: bad prefix length"))?
    };
    Ok((addr, len))
}

pub(crate) fn parse_mac(v: &str) -> Result<Mac> {
    let mut m = [0u8; 6];
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 6 {
        bail!("{v}: not a MAC address");
    }
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("{v}: not a MAC address"))?;
    }
    Ok(m)
}

fn disabled(it: &Item) -> bool {
    it.get("disabled") == Some("yes") || it.get("disabled") == Some("true")
}

impl RouterSetup {
    /// The routing part of `cfg` for `ports` ports (port i is `ether{i+1}`
    /// unless the script renames it); `None` without any enabled address
    /// (bridge mode). An error names the menu and the entry.
    pub fn from_config(cfg: &Config, ports: usize) -> Result<Option<RouterSetup>> {
        let names = cfg.interface_names(
            &crate::firewall::default_interfaces(ports)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let port_of = |menu: &str, it: &Item| -> Result<u16> {
            let name = it.get("interface").unwrap_or_default();
            names
                .iter()
                .position(|n| n == name)
                .map(|p| p as u16)
                .ok_or_else(|| {
                    anyhow!(
                        "/{menu}: interface={name} is not one of this run's ports ({})",
                        names.join(", ")
                    )
                })
        };
        let mut setup = RouterSetup::default();
        for d in crate::firewall::default_interfaces(ports) {
            let mtu = cfg
                .ethernet
                .iter()
                .rev()
                .filter(|e| e.default_name == d)
                .find_map(|e| e.props.get("mtu"))
                .map(|m| {
                    m.parse::<u16>().ok().filter(|&m| m >= 68).ok_or_else(|| {
                        anyhow!("/interface ethernet: {d} mtu={m}: expected 68..65535")
                    })
                })
                .transpose()?
                .unwrap_or(1500);
            setup.mtus.push(mtu);
        }
        for (menu, items, fam) in [
            ("ip address", &cfg.ip_addresses, Family::V4),
            ("ipv6 address", &cfg.ipv6_addresses, Family::V6),
        ] {
            for it in items.iter().filter(|i| !disabled(i)) {
                if it.get("eui-64") == Some("yes") || it.get("from-pool").is_some() {
                    bail!("/{menu}: eui-64 and from-pool addresses are not supported");
                }
                let v = it.get("address").unwrap_or_default();
                let (addr, len) = parse_net(v, fam).with_context(|| format!("/{menu}"))?;
                let iface = port_of(menu, it)?;
                let prefix = Prefix::new(fam, addr, len).ok_or_else(|| anyhow!("/{menu}: {v}"))?;
                setup.table.addresses.push(IfAddr {
                    iface,
                    addr,
                    prefix,
                });
            }
        }
        if setup.table.addresses.is_empty() {
            return Ok(None);
        }
        for (menu, items, fam) in [
            ("ip route", &cfg.routes, Family::V4),
            ("ipv6 route", &cfg.ipv6_routes, Family::V6),
        ] {
            for it in items {
                let dst = it.get("dst-address").unwrap_or(if fam == Family::V4 {
                    "0.0.0.0/0"
                } else {
                    "::/0"
                });
                let (a, len) = parse_net(dst, fam).with_context(|| format!("/{menu}"))?;
                let gw = it.get("gateway").unwrap_or_default();
                let (gateway, _) = parse_net(gw, fam).with_context(|| format!("/{menu}"))?;
                let distance = it
                    .get("distance")
                    .map(str::parse::<u8>)
                    .transpose()
                    .with_context(|| format!("/{menu}: distance"))?
                    .unwrap_or(1);
                setup.table.routes.push(StaticRoute {
                    dst: Prefix::new(fam, a, len).ok_or_else(|| anyhow!("/{menu}: {dst}"))?,
                    gateway,
                    distance,
                    disabled: disabled(it),
                });
            }
        }
        for (menu, items, fam) in [
            ("ip arp", &cfg.arp, Family::V4),
            ("ipv6 neighbor", &cfg.ipv6_neighbors, Family::V6),
        ] {
            for it in items.iter().filter(|i| !disabled(i)) {
                let v = it.get("address").unwrap_or_default();
                let (addr, _) = parse_net(v, fam).with_context(|| format!("/{menu}"))?;
                let Some(mac) = it.get("mac-address") else {
                    bail!("/{menu}: {v} has no mac-address");
                };
                let mac = parse_mac(mac).with_context(|| format!("/{menu}"))?;
                setup.statics.push((port_of(menu, it)?, addr, mac));
            }
        }
        Ok(Some(setup))
    }

    /// The workers' configuration, with each port's MAC address (`macs`,
    /// by port) and the FIB `fib` makes of the compiled entries
    /// ([`Fib::new`], or [`Fib::with_lpm`] on a running EAL).
    pub fn build(
        &self,
        macs: &[Mac],
        fib: impl FnOnce(Vec<(Prefix, NextHop)>) -> Result<Fib>,
    ) -> Result<RouterConfig> {
        let mut ports: Vec<PortAddrs> = macs
            .iter()
            .enumerate()
            .map(|(i, &mac)| PortAddrs {
                mac,
                addrs: Vec::new(),
                mtu: self.mtus.get(i).copied().unwrap_or(1500),
            })
            .collect();
        for a in &self.table.addresses {
            let p = ports
                .get_mut(usize::from(a.iface))
                .ok_or_else(|| anyhow!("no port {} for {:?}", a.iface, a.addr))?;
            p.addrs.push(a.addr);
        }
        Ok(RouterConfig {
            ports,
            fib: fib(self.table.compile())?,
            statics: self.statics.clone(),
            reachable_ns: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_routes_and_neighbours_from_a_script() {
        let cfg = ctrack_rules::parse(
            "/interface ethernet\nset [ find default-name=ether1 ] name=lan\n\
             set [ find default-name=ether2 ] mtu=1400\n\
             /ip address\nadd address=10.0.1.1/24 interface=lan\n\
             add address=10.0.2.1/24 interface=ether2\n\
             add address=10.0.3.1/24 interface=ether2 disabled=yes\n\
             /ipv6 address\nadd address=fd02::1/64 interface=ether2\n\
             /ip route\nadd dst-address=10.9.0.0/16 gateway=10.0.2.254\nadd gateway=10.0.1.254 distance=5\n\
             /ipv6 route\nadd gateway=fd02::fe\n\
             /ip arp\nadd address=10.0.1.7 interface=lan mac-address=02:00:00:00:00:07\n\
             /ipv6 neighbor\nadd address=fd02::fe interface=ether2 mac-address=02:00:00:00:00:fe\n",
        )
        .unwrap();
        let s = RouterSetup::from_config(&cfg, 2)
            .unwrap()
            .expect("router mode");
        assert_eq!(s.table.addresses.len(), 3, "the disabled one left out");
        assert_eq!(s.table.routes.len(), 3);
        assert_eq!(s.table.routes[1].distance, 5);
        assert_eq!(s.table.routes[1].dst.len, 0, "default route");
        assert_eq!(
            s.statics[0],
            (0, Addr::from_v4([10, 0, 1, 7]), [2, 0, 0, 0, 0, 7])
        );
        assert_eq!(s.statics[1].0, 1);
        let rc = s
            .build(&[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]], |e| {
                Ok(Fib::new(e))
            })
            .unwrap();
        assert_eq!(rc.ports[1].addrs.len(), 2);
        assert_eq!((rc.ports[0].mtu, rc.ports[1].mtu), (1500, 1400));
        let hop = rc.fib.lookup(&Addr::from_v4([8, 8, 8, 8])).unwrap();
        assert_eq!(
            (hop.iface, hop.gateway),
            (0, Some(Addr::from_v4([10, 0, 1, 254])))
        );
        let hop = rc.fib.lookup(&Addr::from_v4([10, 9, 1, 1])).unwrap();
        assert_eq!(hop.iface, 1);
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        let hop = rc.fib.lookup(&Addr::from_v6(v6)).unwrap();
        assert_eq!(hop.iface, 1);
    }

    #[test]
    fn no_address_is_bridge_mode_and_bad_entries_are_named() {
        let cfg = ctrack_rules::parse("/ip route\nadd gateway=10.0.0.1\n").unwrap();
        assert!(RouterSetup::from_config(&cfg, 2).unwrap().is_none());
        let cfg =
            ctrack_rules::parse("/ip address\nadd address=10.0.0.1/24 interface=ether7\n").unwrap();
        let e = RouterSetup::from_config(&cfg, 2).unwrap_err().to_string();
        assert!(
            e.contains("interface=ether7") && e.contains("ether1, ether2"),
            "{e}"
        );
    }
}
