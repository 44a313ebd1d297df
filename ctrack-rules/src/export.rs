//! Printing a [`Config`] as a RouterOS script, in `/export` form.
//!
//! One menu line per non-empty menu, then one `add`/`set` line per item with
//! its properties sorted by name, as RouterOS exports them. Lines are not
//! wrapped with `\` (RouterOS wraps at 80 columns; both read the same).
//! `parse(&export(&c)) == Ok(c)` for every `c` that [`crate::parse`] returns.

use std::fmt::Write;

use crate::lex::quote;
use crate::model::*;
use crate::parse::{MenuRef, menu_path};
use crate::value::*;

/// The script for `cfg`.
pub fn export(cfg: &Config) -> String {
    let mut out = String::new();
    let mut section = |m: MenuRef, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "/{}", menu_path(m));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    };
    section(
        MenuRef::Ethernet,
        cfg.ethernet
            .iter()
            .map(|e| {
                format!(
                    "set [ find default-name={} ]{}",
                    quote(&e.default_name),
                    props_str(&e.props.0)
                )
            })
            .collect(),
    );
    section(
        MenuRef::InterfaceList,
        cfg.interface_lists
            .iter()
            .map(|l| {
                let mut p = vec![("name".to_string(), l.name.clone())];
                if let Some(c) = &l.comment {
                    p.push(("comment".into(), c.clone()));
                }
                if !l.include.is_empty() {
                    p.push(("include".into(), l.include.join(",")));
                }
                if !l.exclude.is_empty() {
                    p.push(("exclude".into(), l.exclude.join(",")));
                }
                add_line(p)
            })
            .collect(),
    );
    section(
        MenuRef::InterfaceListMember,
        cfg.interface_list_members
            .iter()
            .map(|m| {
                let mut p = vec![
                    ("interface".to_string(), m.interface.clone()),
                    ("list".to_string(), m.list.clone()),
                ];
                opt_comment_disabled(&mut p, &m.comment, m.disabled);
                add_line(p)
            })
            .collect(),
    );
    section(
        MenuRef::IpAddress,
        cfg.ip_addresses
            .iter()
            .map(|i| add_line(i.0.clone()))
            .collect(),
    );
    section(
        MenuRef::Arp,
        cfg.arp.iter().map(|i| add_line(i.0.clone())).collect(),
    );
    section(
        MenuRef::Route,
        cfg.routes.iter().map(|i| add_line(i.0.clone())).collect(),
    );
    for fam in [Fam::V4, Fam::V6] {
        if fam == Fam::V6 {
            section(
                MenuRef::Ipv6Address,
                cfg.ipv6_addresses
                    .iter()
                    .map(|i| add_line(i.0.clone()))
                    .collect(),
            );
            section(
                MenuRef::Ipv6Route,
                cfg.ipv6_routes
                    .iter()
                    .map(|i| add_line(i.0.clone()))
                    .collect(),
            );
            section(
                MenuRef::Ipv6Neighbor,
                cfg.ipv6_neighbors
                    .iter()
                    .map(|i| add_line(i.0.clone()))
                    .collect(),
            );
        }
        let fw = cfg.firewall(fam);
        section(
            MenuRef::AddressList(fam),
            fw.address_list
                .iter()
                .map(|e| {
                    let mut p = vec![
                        ("address".to_string(), e.address.to_string()),
                        ("list".to_string(), e.list.clone()),
                    ];
                    if let Some(t) = e.timeout {
                        p.push(("timeout".into(), time_str(t)));
                    }
                    opt_comment_disabled(&mut p, &e.comment, e.disabled);
                    add_line(p)
                })
                .collect(),
        );
        if fam == Fam::V4 && !cfg.connection_tracking.0.is_empty() {
            section(
                MenuRef::ConnectionTracking,
                vec![format!("set{}", props_str(&cfg.connection_tracking.0))],
            );
        }
        section(
            MenuRef::Firewall(fam, Table::Filter),
            fw.table(Table::Filter)
                .iter()
                .map(|r| add_line(r.props()))
                .collect(),
        );
        if fam == Fam::V4 {
            section(
                MenuRef::Layer7,
                cfg.layer7
                    .iter()
                    .map(|l| {
                        let mut p = vec![
                            ("name".to_string(), l.name.clone()),
                            ("regexp".to_string(), l.regexp.clone()),
                        ];
                        if let Some(c) = &l.comment {
                            p.push(("comment".into(), c.clone()));
                        }
                        add_line(p)
                    })
                    .collect(),
            );
        }
        for t in [Table::Mangle, Table::Nat] {
            section(
                MenuRef::Firewall(fam, t),
                fw.table(t).iter().map(|r| add_line(r.props())).collect(),
            );
        }
        if fam == Fam::V4 {
            section(
                MenuRef::ServicePort,
                cfg.service_ports
                    .iter()
                    .map(|s| {
                        let mut p = Vec::new();
                        if let Some(d) = s.disabled {
                            p.push(("disabled".to_string(), bool_str(d).to_string()));
                        }
                        if let Some(ports) = &s.ports {
                            p.push(("ports".to_string(), ports.to_string()));
                        }
                        format!("set {}{}", quote(&s.name), props_str(&p))
                    })
                    .collect(),
            );
        }
    }
    if !cfg.traffic_flow.0.is_empty() {
        section(
            MenuRef::TrafficFlow,
            vec![format!("set{}", props_str(&cfg.traffic_flow.0))],
        );
    }
    section(
        MenuRef::TrafficFlowTarget,
        cfg.traffic_flow_targets
            .iter()
            .map(|i| add_line(i.0.clone()))
            .collect(),
    );
    out
}

fn opt_comment_disabled(p: &mut Vec<(String, String)>, comment: &Option<String>, disabled: bool) {
    if let Some(c) = comment {
        p.push(("comment".into(), c.clone()));
    }
    if disabled {
        p.push(("disabled".into(), "yes".into()));
    }
}

fn add_line(mut p: Vec<(String, String)>) -> String {
    p.sort_by(|a, b| a.0.cmp(&b.0));
    format!("add{}", props_str(&p))
}

fn props_str(p: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in p {
        let _ = write!(s, " {k}={}", quote(v));
    }
    s
}
