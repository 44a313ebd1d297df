//! Editing the firewall item by item, as RouterOS's REST API and console do
//! (`/ip firewall filter add|set|remove|move|reset-counters`), on top of
//! whole-ruleset reloads.
//!
//! An edit never changes the running ruleset in place: it is applied to a
//! copy of the running script ([`Config`]), the copy is compiled as a whole,
//! and only a copy that compiled goes to the workers
//! ([`crate::workers::WorkerSet::edit_firewall`]); a bad property, value or
//! reference (an unknown jump target, interface or layer7 protocol) is an
//! error naming it and changes nothing. Counters of unchanged rules carry
//! over ([`crate::firewall::Firewall::commit`]).
//!
//! Items are read and written in the script's own words: an item is printed
//! with [`ctrack_rules::export`] and read back with [`ctrack_rules::parse`],
//! so REST rows have exactly the properties and values `/export` prints, and
//! a REST `PUT`/`PATCH` accepts exactly what a script line does.
//!
//! Items have RouterOS ids (`.id`, `*1`, `*2`, ...): [`MenuIds`] keeps one
//! per item, stable across edits of other items and moves (a `set` keeps
//! the id), never reused in the life of the process.

use std::collections::BTreeMap;

use ctrack_rules::model::{AddressListEntry, Layer7Protocol};
use ctrack_rules::{Config, Fam, Rule, Table};

/// A firewall menu that REST and the CLI manage.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Menu {
    Rules(Fam, Table),
    AddressList(Fam),
    Layer7,
}

impl Menu {
    /// Every managed menu.
    pub const ALL: [Menu; 9] = [
        Menu::Rules(Fam::V4, Table::Filter),
        Menu::Rules(Fam::V4, Table::Mangle),
        Menu::Rules(Fam::V4, Table::Nat),
        Menu::AddressList(Fam::V4),
        Menu::Layer7,
        Menu::Rules(Fam::V6, Table::Filter),
        Menu::Rules(Fam::V6, Table::Mangle),
        Menu::Rules(Fam::V6, Table::Nat),
        Menu::AddressList(Fam::V6),
    ];

    /// The console path, `ip firewall filter`.
    pub fn path(self) -> &'static str {
        match self {
            Menu::Rules(Fam::V4, Table::Filter) => "ip firewall filter",
            Menu::Rules(Fam::V4, Table::Mangle) => "ip firewall mangle",
            Menu::Rules(Fam::V4, Table::Nat) => "ip firewall nat",
            Menu::Rules(Fam::V6, Table::Filter) => "ipv6 firewall filter",
            Menu::Rules(Fam::V6, Table::Mangle) => "ipv6 firewall mangle",
            Menu::Rules(Fam::V6, Table::Nat) => "ipv6 firewall nat",
            Menu::AddressList(Fam::V4) => "ip firewall address-list",
            Menu::AddressList(Fam::V6) => "ipv6 firewall address-list",
            Menu::Layer7 => "ip firewall layer7-protocol",
        }
    }

    /// The REST path, `/rest/ip/firewall/filter`.
    pub fn rest_path(self) -> String {
        format!("/rest/{}", self.path().replace(' ', "/"))
    }

    /// The menu a REST path starts with, and what follows it (`""`,
    /// `/*3`, `/move`, ...).
    pub fn from_rest_path(path: &str) -> Option<(Menu, &str)> {
        Menu::ALL.into_iter().find_map(|m| {
            let rest = path.strip_prefix(&m.rest_path())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((m, rest))
        })
    }

    /// The menu of a console path given as words (`ip firewall filter`,
    /// or `firewall filter` for `/ip`).
    pub fn from_words(words: &[&str]) -> Option<Menu> {
        let joined = words.join(" ");
        Menu::ALL.into_iter().find(|m| {
            m.path() == joined || m.path().strip_prefix("ip ").is_some_and(|p| p == joined)
        })
    }

    /// Whether items of this menu are rules (with counters, `move`).
    pub fn is_rules(self) -> bool {
        matches!(self, Menu::Rules(..))
    }
}

/// One item of a menu.
#[derive(Clone, PartialEq, Debug)]
pub enum Item {
    Rule(Rule),
    Address(AddressListEntry),
    Layer7(Layer7Protocol),
}

/// How many items `menu` has.
pub fn len(cfg: &Config, menu: Menu) -> usize {
    match menu {
        Menu::Rules(f, t) => cfg.firewall(f).table(t).len(),
        Menu::AddressList(f) => cfg.firewall(f).address_list.len(),
        Menu::Layer7 => cfg.layer7.len(),
    }
}

fn get(cfg: &Config, menu: Menu, i: usize) -> Option<Item> {
    Some(match menu {
        Menu::Rules(f, t) => Item::Rule(cfg.firewall(f).table(t).get(i)?.clone()),
        Menu::AddressList(f) => Item::Address(cfg.firewall(f).address_list.get(i)?.clone()),
        Menu::Layer7 => Item::Layer7(cfg.layer7.get(i)?.clone()),
    })
}

fn insert(cfg: &mut Config, menu: Menu, i: usize, item: Item) {
    match (menu, item) {
        (Menu::Rules(f, t), Item::Rule(r)) => cfg.firewall_mut(f).table_mut(t).insert(i, r),
        (Menu::AddressList(f), Item::Address(a)) => cfg.firewall_mut(f).address_list.insert(i, a),
        (Menu::Layer7, Item::Layer7(l)) => cfg.layer7.insert(i, l),
        _ => {}
    }
}

fn remove_at(cfg: &mut Config, menu: Menu, i: usize) -> Option<Item> {
    if i >= len(cfg, menu) {
        return None;
    }
    Some(match menu {
        Menu::Rules(f, t) => Item::Rule(cfg.firewall_mut(f).table_mut(t).remove(i)),
        Menu::AddressList(f) => Item::Address(cfg.firewall_mut(f).address_list.remove(i)),
        Menu::Layer7 => Item::Layer7(cfg.layer7.remove(i)),
    })
}

/// A config holding only `item` in `menu`.
fn alone(menu: Menu, item: Item) -> Config {
    let mut c = Config::default();
    insert(&mut c, menu, 0, item);
    c
}

/// Item `i`'s properties as `/export` prints them, in its order.
pub fn props(cfg: &Config, menu: Menu, i: usize) -> Vec<(String, String)> {
    let Some(item) = get(cfg, menu, i) else {
        return Vec::new();
    };
    let text = ctrack_rules::export(&alone(menu, item));
    let Ok(stmts) = ctrack_rules::lex::lex(&text) else {
        return Vec::new();
    };
    stmts
        .iter()
        .find(|s| matches!(s.words.first(), Some(ctrack_rules::lex::Word::Bare(w)) if w == "add"))
        .map(|s| {
            s.words
                .iter()
                .filter_map(|w| match w {
                    ctrack_rules::lex::Word::Prop(k, v) => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads an item from `(property, value)` pairs, as one `add` line of the
/// menu would be read: every error names the property or value.
pub fn parse_item(menu: Menu, props: &[(String, String)]) -> Result<Item, String> {
    let mut line = String::from("add");
    for (k, v) in props {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("`{k}`: not a property name"));
        }
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&ctrack_rules::lex::quote(v));
    }
    let text = format!("/{}\n{line}\n", menu.path());
    let cfg = ctrack_rules::parse(&text).map_err(|e| {
        // The line number is the generated script's: say the word only.
        let s = e.to_string();
        s.split_once(": ").map_or(s.clone(), |(_, w)| w.to_string())
    })?;
    get(&cfg, menu, 0).ok_or_else(|| "nothing to add".to_string())
}

/// Stable RouterOS ids (`*N`) of every managed menu's items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MenuIds {
    ids: BTreeMap<&'static str, Vec<u64>>,
    next: u64,
}

impl MenuIds {
    /// Ids for every item of `cfg`: those it has kept by position, new
    /// ones for the rest (a reload of a whole script).
    pub fn sync(&mut self, cfg: &Config) {
        for m in Menu::ALL {
            let n = len(cfg, m);
            let v = self.ids.entry(m.path()).or_default();
            v.truncate(n);
            while v.len() < n {
                self.next += 1;
                v.push(self.next);
            }
        }
    }

    fn of(&mut self, menu: Menu) -> &mut Vec<u64> {
        self.ids.entry(menu.path()).or_default()
    }

    /// Item `i`'s id.
    pub fn id(&self, menu: Menu, i: usize) -> Option<u64> {
        self.ids.get(menu.path())?.get(i).copied()
    }

    /// The position of the item with id `id`.
    pub fn position(&self, menu: Menu, id: u64) -> Option<usize> {
        self.ids.get(menu.path())?.iter().position(|&x| x == id)
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// `*1f` -> 0x1f; a plain number is a position (`print`'s `#`) and is
/// resolved by the caller.
pub fn parse_id(s: &str) -> Option<u64> {
    let h = s.trim().strip_prefix('*')?;
    (!h.is_empty() && h.len() <= 16)
        .then(|| u64::from_str_radix(h, 16).ok())
        .flatten()
}

pub fn format_id(id: u64) -> String {
    format!("*{id:X}")
}

/// The running firewall as management reads it.
#[derive(Clone, Debug, Default)]
pub struct FirewallState {
    pub config: Config,
    pub ids: MenuIds,
    /// Every rule with its counters ([`crate::firewall::Firewall::stats`]).
    pub stats: Vec<crate::firewall::RuleStat>,
}

impl From<EditError> for crate::ops::OpsError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound(r) => crate::ops::OpsError::NoItem(r),
            EditError::Invalid(s) => crate::ops::OpsError::Invalid(s),
        }
    }
}

/// A firewall without workers, for [`crate::ops::FakeDataplane`]: edits
/// compile as [`crate::workers::WorkerSet`]'s do; no packet is counted.
#[derive(Default)]
pub struct FakeFirewall(parking_lot::Mutex<Option<crate::firewall::Firewall>>);

impl std::fmt::Debug for FakeFirewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeFirewall")
    }
}

impl FakeFirewall {
    pub fn state(&self) -> FirewallState {
        match self.0.lock().as_ref() {
            Some(f) => FirewallState {
                config: f.config().clone(),
                ids: f.ids().clone(),
                stats: f.stats(std::iter::empty()),
            },
            None => FirewallState::default(),
        }
    }

    pub fn edit(
        &self,
        edit: &mut dyn FnMut(&mut Config, &mut MenuIds) -> Result<(), crate::ops::OpsError>,
    ) -> Result<(), crate::ops::OpsError> {
        let mut g = self.0.lock();
        let (mut config, mut ids) = match g.as_ref() {
            Some(f) => (f.config().clone(), f.ids().clone()),
            None => Default::default(),
        };
        edit(&mut config, &mut ids)?;
        let mut next = match g.as_mut() {
            Some(cur) => cur.prepare(config),
            None => crate::firewall::Firewall::new(config, 2),
        }
        .map_err(|e| crate::ops::OpsError::Invalid(format!("{e:#}")))?;
        next.set_ids(ids);
        match g.as_mut() {
            Some(cur) => cur.commit(next, &[]),
            None => *g = Some(next),
        }
        Ok(())
    }
}

/// An edit that could not be made (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// No item has this id (or position).
    #[error("no such item: {0}")]
    NotFound(String),
    /// A property, value or reference is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The item a reference (`*N` id, or a `print` position number) names.
pub fn resolve(cfg: &Config, ids: &MenuIds, menu: Menu, r: &str) -> Result<usize, EditError> {
    let pos = match parse_id(r) {
        Some(id) => ids.position(menu, id),
        None => r.trim().parse::<usize>().ok(),
    };
    pos.filter(|&p| p < len(cfg, menu))
        .ok_or_else(|| EditError::NotFound(r.to_string()))
}

/// `add`: a new item from `props`, at the end or before the item
/// `place_before` names. Returns its id.
pub fn add(
    cfg: &mut Config,
    ids: &mut MenuIds,
    menu: Menu,
    props: &[(String, String)],
    place_before: Option<&str>,
) -> Result<u64, EditError> {
    let item = parse_item(menu, props).map_err(EditError::Invalid)?;
    let at = match place_before {
        Some(r) => resolve(cfg, ids, menu, r)?,
        None => len(cfg, menu),
    };
    insert(cfg, menu, at, item);
    let id = ids.fresh();
    ids.of(menu).insert(at, id);
    Ok(id)
}

/// `set`: changes the properties given (an empty value unsets one), keeps
/// the others and the id.
pub fn set(
    cfg: &mut Config,
    ids: &MenuIds,
    menu: Menu,
    r: &str,
    changes: &[(String, String)],
) -> Result<(), EditError> {
    let i = resolve(cfg, ids, menu, r)?;
    let mut p = props(cfg, menu, i);
    for (k, v) in changes {
        p.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            p.push((k.clone(), v.clone()));
        }
    }
    let item = parse_item(menu, &p).map_err(EditError::Invalid)?;
    remove_at(cfg, menu, i);
    insert(cfg, menu, i, item);
    Ok(())
}

/// `remove`: the items named (all or none).
pub fn remove(
    cfg: &mut Config,
    ids: &mut MenuIds,
    menu: Menu,
    refs: &[&str],
) -> Result<(), EditError> {
    let mut pos = refs
        .iter()
        .map(|r| resolve(cfg, ids, menu, r))
        .collect::<Result<Vec<_>, _>>()?;
    pos.sort_unstable();
    pos.dedup();
    for &i in pos.iter().rev() {
        remove_at(cfg, menu, i);
        ids.of(menu).remove(i);
    }
    Ok(())
}

/// `move`: the items named, in the order given, before the item
/// `destination` names (at the end without one), as RouterOS's
/// `move numbers=... destination=...`.
pub fn move_items(
    cfg: &mut Config,
    ids: &mut MenuIds,
    menu: Menu,
    refs: &[&str],
    destination: Option<&str>,
) -> Result<(), EditError> {
    let mut pos = refs
        .iter()
        .map(|r| resolve(cfg, ids, menu, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = Vec::new();
    pos.retain(|p| {
        let new = !seen.contains(p);
        seen.push(*p);
        new
    });
    let dest_id = match destination {
        Some(d) => {
            let i = resolve(cfg, ids, menu, d)?;
            Some(ids.id(menu, i).unwrap_or(0))
        }
        None => None,
    };
    // Take the moved items out (highest first), then put them back before
    // the destination (found again by id: positions shifted).
    let mut taken: Vec<(usize, Item, u64)> = Vec::new();
    let mut order: Vec<usize> = pos.clone();
    order.sort_unstable();
    for &i in order.iter().rev() {
        let id = ids.of(menu).remove(i);
        if let Some(item) = remove_at(cfg, menu, i) {
            taken.push((i, item, id));
        }
    }
    let mut at = match dest_id {
        Some(d) => ids.position(menu, d).unwrap_or(len(cfg, menu)),
        None => len(cfg, menu),
    };
    for p in pos {
        if let Some(k) = taken.iter().position(|(i, ..)| *i == p) {
            let (_, item, id) = taken.swap_remove(k);
            insert(cfg, menu, at, item);
            ids.of(menu).insert(at, id);
            at += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Menu = Menu::Rules(Fam::V4, Table::Filter);

    fn cfg() -> (Config, MenuIds) {
        let c = ctrack_rules::parse(
            "/ip firewall filter\n\
             add chain=forward action=accept protocol=tcp comment=a\n\
             add chain=forward action=drop protocol=udp comment=b\n\
             add chain=forward action=accept comment=c\n\
             /ip firewall address-list\n\
             add list=bad address=192.0.2.0/24\n",
        )
        .unwrap();
        let mut ids = MenuIds::default();
        ids.sync(&c);
        (c, ids)
    }

    fn comments(c: &Config) -> Vec<String> {
        c.ip.filter
            .iter()
            .map(|r| r.comment.clone().unwrap_or_default())
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn paths() {
        assert_eq!(
            Menu::from_rest_path("/rest/ip/firewall/filter/*3"),
            Some((F, "/*3"))
        );
        assert_eq!(
            Menu::from_rest_path("/rest/ipv6/firewall/address-list"),
            Some((Menu::AddressList(Fam::V6), ""))
        );
        assert_eq!(Menu::from_rest_path("/rest/ip/firewall/filterx"), None);
        assert_eq!(Menu::from_words(&["firewall", "filter"]), Some(F));
        assert_eq!(
            Menu::from_words(&["ipv6", "firewall", "nat"]),
            Some(Menu::Rules(Fam::V6, Table::Nat))
        );
    }

    #[test]
    fn rows_are_the_export_properties() {
        let (c, ids) = cfg();
        assert_eq!(
            props(&c, F, 1),
            vec![
                p("action", "drop"),
                p("chain", "forward"),
                p("comment", "b"),
                p("protocol", "udp")
            ]
        );
        assert_eq!(ids.id(F, 1), Some(2));
        assert_eq!(ids.id(Menu::AddressList(Fam::V4), 0), Some(4));
    }

    #[test]
    fn add_set_remove_move_keep_ids() {
        let (mut c, mut ids) = cfg();
        let id = add(
            &mut c,
            &mut ids,
            F,
            &[
                p("chain", "forward"),
                p("action", "drop"),
                p("comment", "d"),
            ],
            Some("*2"),
        )
        .unwrap();
        assert_eq!(comments(&c), ["a", "d", "b", "c"]);
        assert_eq!(ids.position(F, id), Some(1));
        set(
            &mut c,
            &ids,
            F,
            &format_id(id),
            &[p("protocol", "tcp"), p("comment", "")],
        )
        .unwrap();
        assert_eq!(c.ip.filter[1].comment, None);
        assert_eq!(ids.position(F, id), Some(1));
        move_items(&mut c, &mut ids, F, &["*1", "*3"], None).unwrap();
        assert_eq!(comments(&c), ["", "b", "a", "c"]);
        assert_eq!(ids.id(F, 2), Some(1));
        move_items(&mut c, &mut ids, F, &["*3"], Some("*2")).unwrap();
        assert_eq!(comments(&c), ["", "c", "b", "a"]);
        remove(&mut c, &mut ids, F, &["*2", "0"]).unwrap();
        assert_eq!(comments(&c), ["c", "a"]);
        assert_eq!((ids.id(F, 0), ids.id(F, 1)), (Some(3), Some(1)));
    }

    #[test]
    fn bad_input_changes_nothing_and_names_the_problem() {
        let (mut c, mut ids) = cfg();
        let before = (c.clone(), ids.clone());
        let e = add(
            &mut c,
            &mut ids,
            F,
            &[p("chain", "forward"), p("action", "dorp")],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("dorp"), "{e}");
        let e = set(&mut c, &ids, F, "*1", &[p("src-port", "99999")]).unwrap_err();
        assert!(e.to_string().contains("99999"), "{e}");
        let e = remove(&mut c, &mut ids, F, &["*1", "*77"]).unwrap_err();
        assert_eq!(e, EditError::NotFound("*77".to_string()));
        let e = add(&mut c, &mut ids, F, &[p("chain x", "y")], None).unwrap_err();
        assert!(e.to_string().contains("chain x"), "{e}");
        assert_eq!((c, ids), before);
    }
}
