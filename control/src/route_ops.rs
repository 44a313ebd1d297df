//! `/ip route` and `/ipv6 route` at run time (router mode): the routes as
//! `print` shows them, and static routes added and removed while the
//! workers run. One [`RouteControl`] per run, offered by
//! [`crate::ops::Dataplane::routes`]; its REST routes are
//! [`crate::route_rest`].
//!
//! A change is all or nothing: the new route set is compiled (connected
//! routes from the addresses, active statics by distance), loaded into a
//! new FIB (`rte_lpm`/`rte_lpm6` in `ctrack run`), made into a new
//! [`RouterConfig`] and sent to every worker
//! ([`dataplane::worker::Command::Router`], swapped in between bursts);
//! only once every worker has it queued is it the menu's state. Learned
//! neighbours and held packets stay (see docs/nat.md, "Router mode").

use std::sync::Arc;

use anyhow::Result;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::router::RouterSetup;
use dataplane::flow::{Addr, Family};
use dataplane::router::neigh::{Mac, NeighRow, State as NeighState};
use dataplane::router::route::{NextHop, Prefix, StaticRoute};
use dataplane::router::{Fib, RouterConfig};

/// Builds a FIB of compiled entries (`Fib::with_lpm` on a running EAL).
pub type BuildFib = Box<dyn Fn(Vec<(Prefix, NextHop)>) -> Result<Fib> + Send + Sync>;
/// Hands a new configuration to every worker; an error says why none took it.
pub type PushConfig = Box<dyn Fn(Arc<RouterConfig>) -> Result<(), String> + Send + Sync>;

/// Why a route change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// A bad property or value (the message names it).
    #[error("{0}")]
    Invalid(String),
    #[error("no such route: {0}")]
    NotFound(String),
    /// The workers did not take the new table (nothing changed).
    #[error("{0}")]
    Unavailable(String),
}

struct State {
    setup: RouterSetup,
    /// The id of each static route (`setup.table.routes[i]`), stable across
    /// removals, as RouterOS's.
    ids: Vec<u32>,
    next_id: u32,
    /// The id of each static neighbour (`setup.statics[i]`), as `ids`.
    neigh_ids: Vec<u32>,
    next_neigh_id: u32,
}

/// The run's routing menus.
pub struct RouteControl {
    state: Mutex<State>,
    macs: Vec<Mac>,
    /// Port names by index (what `gateway` of a connected route shows).
    interfaces: Vec<String>,
    build: BuildFib,
    push: PushConfig,
}

/// Dynamic (connected) routes' ids start here (RouterOS gives them ids of
/// their own too).
const CONNECTED_ID: u32 = 0x4000_0000;

fn family_of(a: &Addr) -> Family {
    if a.is_v4_mapped() {
        Family::V4
    } else {
        Family::V6
    }
}

fn ip(a: &Addr) -> String {
    a.to_ip(family_of(a)).to_string()
}

fn prefix_text(p: &Prefix) -> String {
    format!("{}/{}", ip(&p.addr), p.len)
}

/// `02:00:00:00:00:01` in RouterOS's spelling (upper case).
fn mac_text(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A learned neighbour's id: a hash (FNV-1a) of its interface and address,
/// in `*10000000`..`*1FFFFFFF` (static entries count from `*1`).
fn dynamic_id(iface: u16, addr: &Addr) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in iface.to_be_bytes().iter().chain(addr.0.iter()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    0x1000_0000 | (h & 0x0fff_ffff)
}

/// The workers' views of their neighbour tables merged into one row per
/// (interface, address): each worker has its own table (a neighbour
/// learned on one is pushed to the others, but each ages and probes its
/// own), so the row shown is the best view: a static entry, else a known
/// MAC (reachable before stale), else the pending resolution; on a tie the
/// latest state change.
pub fn merge_neighbors(rows: Vec<NeighRow>) -> Vec<NeighRow> {
    let mut best: std::collections::HashMap<(u16, Addr), NeighRow> =
        std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        best.entry((r.iface, r.addr))
            .and_modify(|b| {
                if (r.state.rank(), r.since) > (b.state.rank(), b.since) {
                    *b = r;
                }
            })
            .or_insert(r);
    }
    best.into_values().collect()
}

impl RouteControl {
    /// The menus over `setup` (as the script gave it) with the ports' MACs
    /// and names.
    pub fn new(
        setup: RouterSetup,
        macs: Vec<Mac>,
        interfaces: Vec<String>,
        build: BuildFib,
        push: PushConfig,
    ) -> RouteControl {
        let n = setup.table.routes.len() as u32;
        let m = setup.statics.len() as u32;
        RouteControl {
            state: Mutex::new(State {
                setup,
                ids: (1..=n).collect(),
                next_id: n + 1,
                neigh_ids: (1..=m).collect(),
                next_neigh_id: m + 1,
            }),
            macs,
            interfaces,
            build,
            push,
        }
    }

    /// Every route of `family` as RouterOS's REST prints it (values as
    /// strings; `flags` as `print` shows them: `X` disabled, `D` dynamic,
    /// `A` active, `c` connected, `s` static).
    pub fn print(&self, family: Family) -> Vec<Value> {
        let st = self.state.lock();
        let rows = st.setup.table.rows();
        let n_conn = rows.iter().filter(|r| r.connected).count();
        rows.iter()
            .enumerate()
            .filter(|(_, r)| r.dst.family == family)
            .map(|(i, r)| {
                let id = if r.connected {
                    CONNECTED_ID + i as u32
                } else {
                    st.ids.get(i - n_conn).copied().unwrap_or(0)
                };
                let iface = r
                    .next
                    .and_then(|n| self.interfaces.get(usize::from(n.iface)).cloned());
                let gateway = if r.connected {
                    iface.clone().unwrap_or_default()
                } else {
                    st.setup
                        .table
                        .routes
                        .get(i - n_conn)
                        .map(|s| ip(&s.gateway))
                        .unwrap_or_default()
                };
                let flags: String = [
                    (r.disabled, 'X'),
                    (r.connected, 'D'),
                    (r.active, 'A'),
                    (r.connected, 'c'),
                    (!r.connected, 's'),
                ]
                .iter()
                .filter(|f| f.0)
                .map(|f| f.1)
                .collect();
                let b = |x: bool| Value::String(if x { "true" } else { "false" }.into());
                let mut m = Map::new();
                m.insert(".id".into(), Value::String(format!("*{id:X}")));
                m.insert("dst-address".into(), Value::String(prefix_text(&r.dst)));
                m.insert("gateway".into(), Value::String(gateway));
                if let (Some(i), Some(n)) = (&iface, r.next) {
                    let via = n
                        .gateway
                        .map_or_else(|| i.clone(), |g| format!("{}%{i}", ip(&g)));
                    m.insert("immediate-gw".into(), Value::String(via));
                }
                m.insert("distance".into(), Value::String(r.distance.to_string()));
                m.insert("active".into(), b(r.active));
                m.insert("dynamic".into(), b(r.connected));
                m.insert("connect".into(), b(r.connected));
                m.insert("static".into(), b(!r.connected));
                m.insert("disabled".into(), b(r.disabled));
                m.insert("flags".into(), Value::String(flags));
                Value::Object(m)
            })
            .collect()
    }

    /// The neighbours of `family` (`/ip arp print`, `/ipv6 neighbor
    /// print`) from the workers' `rows` ([`crate::ops::Dataplane::
    /// neighbors`], merged here), as RouterOS v7's REST returns them
    /// (values as strings): `.id`, `address`, `mac-address` (absent while
    /// unresolved), `interface`, `status` (`permanent`, `reachable`,
    /// `stale`, `incomplete`, `failed`), `dynamic`, `disabled`, and for
    /// ARP `complete` (RouterOS: a MAC is known) , `published`, `invalid`.
    /// Static entries keep the script's order and ids (`*1`...); a learned
    /// entry's id is a hash of its interface and address (stable while it
    /// lives).
    pub fn neighbors(&self, family: Family, rows: Vec<NeighRow>) -> Vec<Value> {
        let st = self.state.lock();
        let statics: Vec<(u16, Addr, Mac, u32)> = st
            .setup
            .statics
            .iter()
            .zip(&st.neigh_ids)
            .map(|(s, &id)| (s.0, s.1, s.2, id))
            .filter(|s| family_of(&s.1) == family)
            .collect();
        let mut rows = merge_neighbors(rows);
        rows.retain(|r| family_of(&r.addr) == family);
        // A static entry a worker's full table refused still shows.
        for &(iface, addr, mac, _) in &statics {
            if !rows.iter().any(|r| r.iface == iface && r.addr == addr) {
                rows.push(NeighRow {
                    iface,
                    addr,
                    mac: Some(mac),
                    state: NeighState::Permanent,
                    since: 0,
                });
            }
        }
        let static_pos = |r: &NeighRow| {
            statics
                .iter()
                .position(|s| s.0 == r.iface && s.1 == r.addr)
                .filter(|_| r.state == NeighState::Permanent)
        };
        rows.sort_by_key(|r| (static_pos(r).is_none(), static_pos(r), r.iface, r.addr.0));
        let b = |x: bool| Value::String(if x { "true" } else { "false" }.into());
        rows.iter()
            .map(|r| {
                let id = match static_pos(r) {
                    Some(i) => statics[i].3,
                    None => dynamic_id(r.iface, &r.addr),
                };
                let mut m = Map::new();
                m.insert(".id".into(), Value::String(format!("*{id:X}")));
                m.insert("address".into(), Value::String(ip(&r.addr)));
                if let Some(mac) = r.mac {
                    m.insert("mac-address".into(), Value::String(mac_text(&mac)));
                }
                let iface = self
                    .interfaces
                    .get(usize::from(r.iface))
                    .cloned()
                    .unwrap_or_else(|| format!("port{}", r.iface));
                m.insert("interface".into(), Value::String(iface));
                m.insert("status".into(), Value::String(r.state.name().into()));
                m.insert("dynamic".into(), b(static_pos(r).is_none()));
                if family == Family::V4 {
                    m.insert("complete".into(), b(r.mac.is_some()));
                    m.insert("published".into(), b(false));
                    m.insert("invalid".into(), b(false));
                }
                m.insert("disabled".into(), b(false));
                Value::Object(m)
            })
            .collect()
    }

    /// Adds a static neighbour of `family` (`/ip arp add`, `/ipv6 neighbor
    /// add`: `address`, `mac-address`, `interface`, all required); returns
    /// its id. Every worker gets it as a permanent entry, replacing what it
    /// learned; all or nothing. One per interface and address.
    pub fn add_neighbor(
        &self,
        family: Family,
        props: &[(String, String)],
    ) -> Result<String, RouteError> {
        let (mut addr, mut mac, mut iface) = (None, None, None);
        for (k, v) in props {
            match k.as_str() {
                "address" => addr = Some(v.as_str()),
                "mac-address" => mac = Some(v.as_str()),
                "interface" => iface = Some(v.as_str()),
                _ => {
                    return Err(RouteError::Invalid(format!(
                        "unknown property {k} (known: address, mac-address, interface)"
                    )));
                }
            }
        }
        fn need<'a>(v: Option<&'a str>, k: &str) -> Result<&'a str, RouteError> {
            v.ok_or_else(|| RouteError::Invalid(format!("{k}: required")))
        }
        let (a, m, i) = (
            need(addr, "address")?,
            need(mac, "mac-address")?,
            need(iface, "interface")?,
        );
        let (address, len) = crate::router::parse_net(a, family)
            .map_err(|e| RouteError::Invalid(format!("address={a}: {e}")))?;
        if len != if family == Family::V4 { 32 } else { 128 } {
            return Err(RouteError::Invalid(format!(
                "address={a}: an address, not a prefix"
            )));
        }
        let mac = crate::router::parse_mac(m)
            .ok()
            .filter(|m| m[0] & 1 == 0)
            .ok_or_else(|| RouteError::Invalid(format!("mac-address={m}: not a unicast MAC")))?;
        let port = self.interfaces.iter().position(|n| n == i).ok_or_else(|| {
            RouteError::Invalid(format!(
                "interface={i}: not one of this run's ports ({})",
                self.interfaces.join(", ")
            ))
        })? as u16;
        let mut st = self.state.lock();
        if st
            .setup
            .statics
            .iter()
            .any(|s| s.0 == port && s.1 == address)
        {
            return Err(RouteError::Invalid(format!(
                "address={a} interface={i}: already have such entry"
            )));
        }
        let mut next = st.setup.clone();
        next.statics.push((port, address, mac));
        self.apply(&next)?;
        let id = st.next_neigh_id;
        st.next_neigh_id += 1;
        st.setup = next;
        st.neigh_ids.push(id);
        Ok(format!("*{id:X}"))
    }

    /// Removes static neighbour `id` (`*N`) of `family`; a learned entry
    /// cannot be removed here (it ages out).
    pub fn remove_neighbor(&self, family: Family, id: &str) -> Result<(), RouteError> {
        let n = id
            .strip_prefix('*')
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| RouteError::NotFound(id.to_string()))?;
        let mut st = self.state.lock();
        let Some(i) = st
            .neigh_ids
            .iter()
            .position(|&x| x == n)
            .filter(|&i| family_of(&st.setup.statics[i].1) == family)
        else {
            return Err(if n >= 0x1000_0000 {
                RouteError::Invalid(format!("{id}: a dynamic entry (it ages out)"))
            } else {
                RouteError::NotFound(id.to_string())
            });
        };
        let mut next = st.setup.clone();
        next.statics.remove(i);
        self.apply(&next)?;
        st.setup = next;
        st.neigh_ids.remove(i);
        Ok(())
    }

    /// Adds a static route of `family` (`dst-address`, default the default
    /// route; `gateway`, an address; `distance` 1-255, default 1;
    /// `disabled`); returns its id (`*N`). All or nothing.
    pub fn add(&self, family: Family, props: &[(String, String)]) -> Result<String, RouteError> {
        let mut dst = None;
        let mut gateway = None;
        let mut distance = 1u8;
        let mut disabled = false;
        for (k, v) in props {
            match k.as_str() {
                "dst-address" => dst = Some(v.as_str()),
                "gateway" => gateway = Some(v.as_str()),
                "distance" => {
                    distance = v.parse().ok().filter(|&d| d >= 1).ok_or_else(|| {
                        RouteError::Invalid(format!("distance={v}: expected 1..255"))
                    })?
                }
                "disabled" => {
                    disabled = match v.as_str() {
                        "yes" | "true" => true,
                        "no" | "false" => false,
                        _ => {
                            return Err(RouteError::Invalid(format!(
                                "disabled={v}: expected yes or no"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(RouteError::Invalid(format!(
                        "unknown property {k} (known: dst-address, gateway, distance, disabled)"
                    )));
                }
            }
        }
        let default = if family == Family::V4 {
            "0.0.0.0/0"
        } else {
            "::/0"
        };
        let dst = dst.unwrap_or(default);
        let (a, len) = crate::router::parse_net(dst, family)
            .map_err(|e| RouteError::Invalid(format!("dst-address={dst}: {e}")))?;
        let dst = Prefix::new(family, a, len)
            .ok_or_else(|| RouteError::Invalid(format!("dst-address={dst}")))?;
        let Some(gw) = gateway else {
            return Err(RouteError::Invalid("gateway: required".into()));
        };
        let (gateway, gw_len) = crate::router::parse_net(gw, family)
            .map_err(|e| RouteError::Invalid(format!("gateway={gw}: {e}")))?;
        if gw_len != if family == Family::V4 { 32 } else { 128 } {
            return Err(RouteError::Invalid(format!(
                "gateway={gw}: an address, not a prefix"
            )));
        }
        let mut st = self.state.lock();
        let mut next = st.setup.clone();
        next.table.routes.push(StaticRoute {
            dst,
            gateway,
            distance,
            disabled,
        });
        self.apply(&next)?;
        let id = st.next_id;
        st.next_id += 1;
        st.setup = next;
        st.ids.push(id);
        Ok(format!("*{id:X}"))
    }

    /// Removes static route `id` (`*N`) of `family`. A connected route
    /// cannot be removed (it is the address's).
    pub fn remove(&self, family: Family, id: &str) -> Result<(), RouteError> {
        let n = id
            .strip_prefix('*')
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| RouteError::NotFound(id.to_string()))?;
        if n >= CONNECTED_ID {
            return Err(RouteError::Invalid(format!(
                "{id}: a connected route is its address's (remove the address)"
            )));
        }
        let mut st = self.state.lock();
        let Some(i) = st
            .ids
            .iter()
            .position(|&x| x == n)
            .filter(|&i| st.setup.table.routes[i].dst.family == family)
        else {
            return Err(RouteError::NotFound(id.to_string()));
        };
        let mut next = st.setup.clone();
        next.table.routes.remove(i);
        self.apply(&next)?;
        st.setup = next;
        st.ids.remove(i);
        Ok(())
    }

    /// Builds `next`'s configuration and hands it to the workers.
    fn apply(&self, next: &RouterSetup) -> Result<(), RouteError> {
        let cfg = next
            .build(&self.macs, |e| (self.build)(e))
            .map_err(|e| RouteError::Unavailable(format!("building the FIB: {e:#}")))?;
        (self.push)(Arc::new(cfg)).map_err(RouteError::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(pushed: Arc<Mutex<Vec<Arc<RouterConfig>>>>) -> RouteControl {
        let cfg = ctrack_rules::parse(
            "/ip address\nadd address=10.0.1.1/24 interface=ether1\n\
             add address=10.0.2.1/24 interface=ether2\n\
             /ipv6 address\nadd address=fd02::1/64 interface=ether2\n\
             /ip route\nadd dst-address=10.9.0.0/16 gateway=10.0.2.254\n",
        )
        .unwrap();
        let setup = RouterSetup::from_config(&cfg, 2).unwrap().unwrap();
        RouteControl::new(
            setup,
            vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            vec!["ether1".into(), "ether2".into()],
            Box::new(|e| Ok(Fib::new(e))),
            Box::new(move |c| {
                pushed.lock().push(c);
                Ok(())
            }),
        )
    }

    fn find<'a>(rows: &'a [Value], dst: &str) -> Option<&'a Value> {
        rows.iter().find(|r| r["dst-address"] == dst)
    }

    #[test]
    fn print_add_remove_reach_the_workers() {
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let c = control(Arc::clone(&pushed));
        let rows = c.print(Family::V4);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let conn = find(&rows, "10.0.1.0/24").unwrap();
        assert_eq!(
            (&conn["flags"], &conn["gateway"], &conn["distance"]),
            (&"DAc".into(), &"ether1".into(), &"0".into())
        );
        let st = find(&rows, "10.9.0.0/16").unwrap();
        assert_eq!((&st[".id"], &st["flags"]), (&"*1".into(), &"As".into()));
        assert_eq!(st["immediate-gw"], "10.0.2.254%ether2");
        assert_eq!(c.print(Family::V6).len(), 1);

        let props = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let id = c
            .add(Family::V4, &props(&[("gateway", "10.0.1.254")]))
            .unwrap();
        assert_eq!(id, "*2");
        let cfg = pushed.lock().last().cloned().expect("sent to the workers");
        let hop = cfg.fib.lookup(&Addr::from_v4([8, 8, 8, 8])).unwrap();
        assert_eq!(
            (hop.iface, hop.gateway),
            (0, Some(Addr::from_v4([10, 0, 1, 254])))
        );
        assert_eq!(
            find(&c.print(Family::V4), "0.0.0.0/0").unwrap()["active"],
            "true"
        );
        // A gateway in no connected prefix: added, not active.
        let id3 = c
            .add(
                Family::V4,
                &props(&[("dst-address", "10.8.0.0/16"), ("gateway", "192.0.2.1")]),
            )
            .unwrap();
        assert_eq!(
            find(&c.print(Family::V4), "10.8.0.0/16").unwrap()["flags"],
            "s"
        );
        // Bad input names the problem; nothing changes.
        let before = pushed.lock().len();
        for bad in [
            props(&[("gateway", "10.0.1.254"), ("distance", "0")]),
            props(&[("gateway", "fd02::9")]),
            props(&[("dst-address", "10.0.0.0/99"), ("gateway", "10.0.1.2")]),
            props(&[("via", "x")]),
            props(&[("dst-address", "10.7.0.0/16")]),
        ] {
            assert!(
                matches!(c.add(Family::V4, &bad), Err(RouteError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(pushed.lock().len(), before);
        // Remove: by id, stable; connected routes are the address's.
        c.remove(Family::V4, &id).unwrap();
        assert!(find(&c.print(Family::V4), "0.0.0.0/0").is_none());
        let cfg = pushed.lock().last().cloned().unwrap();
        assert!(cfg.fib.lookup(&Addr::from_v4([8, 8, 8, 8])).is_none());
        assert_eq!(
            find(&c.print(Family::V4), "10.8.0.0/16").unwrap()[".id"],
            id3.as_str()
        );
        assert!(matches!(
            c.remove(Family::V4, &id),
            Err(RouteError::NotFound(_))
        ));
        assert!(matches!(
            c.remove(Family::V6, &id3),
            Err(RouteError::NotFound(_))
        ));
        let conn_id = find(&c.print(Family::V4), "10.0.1.0/24").unwrap()[".id"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(matches!(
            c.remove(Family::V4, &conn_id),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn neighbors_merge_the_workers_views() {
        let cfg = ctrack_rules::parse(
            "/ip address\nadd address=10.0.1.1/24 interface=ether1\n\
             /ipv6 address\nadd address=fd02::1/64 interface=ether2\n\
             /ip arp\nadd address=10.0.1.7 interface=ether1 mac-address=02:00:00:00:00:07\n\
             /ipv6 neighbor\nadd address=fd02::fe interface=ether2 mac-address=02:00:00:00:00:fe\n",
        )
        .unwrap();
        let setup = RouterSetup::from_config(&cfg, 2).unwrap().unwrap();
        let c = RouteControl::new(
            setup,
            vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            vec!["ether1".into(), "ether2".into()],
            Box::new(|e| Ok(Fib::new(e))),
            Box::new(|_| Ok(())),
        );
        let host = Addr::from_v4([10, 0, 1, 2]);
        let row = |iface, addr, mac, state, since| NeighRow {
            iface,
            addr,
            mac,
            state,
            since,
        };
        let mac = [0x0a, 0, 0, 0, 0, 2];
        let rows = vec![
            // Worker 0 saw the host go stale; worker 1 heard from it since.
            row(0, host, Some(mac), NeighState::Stale, 5),
            row(
                0,
                Addr::from_v4([10, 0, 1, 7]),
                Some([2, 0, 0, 0, 0, 7]),
                NeighState::Permanent,
                0,
            ),
            row(0, host, Some(mac), NeighState::Reachable, 9),
            row(
                0,
                Addr::from_v4([10, 0, 1, 9]),
                None,
                NeighState::Incomplete,
                3,
            ),
            row(
                0,
                Addr::from_v4([10, 0, 1, 7]),
                Some([2, 0, 0, 0, 0, 7]),
                NeighState::Permanent,
                0,
            ),
            row(
                1,
                Addr::from_v6([0xfd, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe]),
                Some([2, 0, 0, 0, 0, 0xfe]),
                NeighState::Permanent,
                0,
            ),
        ];
        let v4 = c.neighbors(Family::V4, rows.clone());
        assert_eq!(v4.len(), 3, "{v4:?}");
        // The static entry first, with the script's id.
        assert_eq!(
            (
                &v4[0][".id"],
                &v4[0]["address"],
                &v4[0]["status"],
                &v4[0]["dynamic"]
            ),
            (
                &"*1".into(),
                &"10.0.1.7".into(),
                &"permanent".into(),
                &"false".into()
            )
        );
        assert_eq!(v4[0]["mac-address"], "02:00:00:00:00:07");
        let h = v4.iter().find(|r| r["address"] == "10.0.1.2").unwrap();
        assert_eq!(
            (
                &h["status"],
                &h["dynamic"],
                &h["complete"],
                &h["mac-address"],
                &h["interface"]
            ),
            (
                &"reachable".into(),
                &"true".into(),
                &"true".into(),
                &"0A:00:00:00:00:02".into(),
                &"ether1".into()
            )
        );
        let p = v4.iter().find(|r| r["address"] == "10.0.1.9").unwrap();
        assert_eq!(
            (&p["status"], &p["complete"]),
            (&"incomplete".into(), &"false".into())
        );
        assert!(p.get("mac-address").is_none());
        // Ids are stable: the same rows in another order give the same ids.
        let mut rev = rows.clone();
        rev.reverse();
        assert_eq!(c.neighbors(Family::V4, rev), v4);
        let v6 = c.neighbors(Family::V6, rows);
        assert_eq!(v6.len(), 1);
        // Static ids count over both menus in the script's order.
        assert_eq!(
            (&v6[0][".id"], &v6[0]["address"], &v6[0]["interface"]),
            (&"*2".into(), &"fd02::fe".into(), &"ether2".into())
        );
        assert!(v6[0].get("complete").is_none());
        // A static entry no worker reported (a full table) still shows.
        assert_eq!(c.neighbors(Family::V6, Vec::new()).len(), 1);
    }

    #[test]
    fn static_neighbors_added_and_removed_reach_the_workers() {
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let c = control(Arc::clone(&pushed));
        let props = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let add = props(&[
            ("address", "10.0.1.7"),
            ("mac-address", "02:00:00:00:00:07"),
            ("interface", "ether1"),
        ]);
        let id = c.add_neighbor(Family::V4, &add).unwrap();
        assert_eq!(id, "*1");
        let cfg = pushed.lock().last().cloned().expect("sent to the workers");
        assert_eq!(
            cfg.statics,
            vec![(0, Addr::from_v4([10, 0, 1, 7]), [2, 0, 0, 0, 0, 7])]
        );
        let rows = c.neighbors(Family::V4, Vec::new());
        assert_eq!(
            (&rows[0][".id"], &rows[0]["dynamic"]),
            (&"*1".into(), &"false".into())
        );
        let id6 = c
            .add_neighbor(
                Family::V6,
                &props(&[
                    ("address", "fd02::7"),
                    ("mac-address", "02:00:00:00:00:27"),
                    ("interface", "ether2"),
                ]),
            )
            .unwrap();
        assert_eq!(id6, "*2");
        // Bad input names the problem; nothing changes.
        let before = pushed.lock().len();
        for bad in [
            add.clone(),
            props(&[("address", "10.0.1.8"), ("interface", "ether1")]),
            props(&[
                ("address", "10.0.1.0/24"),
                ("mac-address", "02:00:00:00:00:07"),
                ("interface", "ether1"),
            ]),
            props(&[
                ("address", "10.0.1.8"),
                ("mac-address", "01:00:5e:00:00:01"),
                ("interface", "ether1"),
            ]),
            props(&[
                ("address", "10.0.1.8"),
                ("mac-address", "02:00:00:00:00:08"),
                ("interface", "ether9"),
            ]),
            props(&[("published", "yes")]),
        ] {
            assert!(
                matches!(
                    c.add_neighbor(Family::V4, &bad),
                    Err(RouteError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(pushed.lock().len(), before);
        // Remove: by id, of its family; ids stay.
        assert!(matches!(
            c.remove_neighbor(Family::V4, &id6),
            Err(RouteError::NotFound(_))
        ));
        c.remove_neighbor(Family::V4, &id).unwrap();
        let cfg = pushed.lock().last().cloned().unwrap();
        assert_eq!(cfg.statics.len(), 1);
        assert!(c.neighbors(Family::V4, Vec::new()).is_empty());
        assert_eq!(c.neighbors(Family::V6, Vec::new())[0][".id"], "*2");
        assert!(matches!(
            c.remove_neighbor(Family::V4, "*1A2B3C4D"),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn workers_that_refuse_change_nothing() {
        let cfg =
            ctrack_rules::parse("/ip address\nadd address=10.0.1.1/24 interface=ether1\n").unwrap();
        let setup = RouterSetup::from_config(&cfg, 1).unwrap().unwrap();
        let c = RouteControl::new(
            setup,
            vec![[2, 0, 0, 0, 0, 1]],
            vec!["ether1".into()],
            Box::new(|e| Ok(Fib::new(e))),
            Box::new(|_| Err("worker 0 is not taking commands".into())),
        );
        let e = c
            .add(Family::V4, &[("gateway".into(), "10.0.1.254".into())])
            .unwrap_err();
        assert!(matches!(e, RouteError::Unavailable(_)));
        assert_eq!(c.print(Family::V4).len(), 1, "not added");
    }
}
