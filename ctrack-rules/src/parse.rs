//! Reading a RouterOS script (`/export` form) into a [`Config`].
//!
//! The whole script is read into a fresh value; the caller applies it or not,
//! so a bad line never leaves a half-applied configuration. Strict parsing
//! (the default) stops at the first unknown menu, command, property or value
//! with a [`ParseError`] that names the line and the word. Lenient parsing
//! skips every line it cannot apply with one warning per line; a rule is
//! skipped whole, never applied without the matcher it could not read (a
//! `drop` rule missing a matcher would drop more).

use crate::error::ParseError;
use crate::lex::{Stmt, Word, lex};
use crate::model::*;
use crate::value::*;

/// Parsing options.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Options {
    /// Skip what is not implemented (with a warning per line) instead of failing.
    pub lenient: bool,
}

/// A parsed script and, in lenient mode, the lines that were skipped.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<ParseError>,
}

/// Parses `text` strictly.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    parse_with(text, Options::default()).map(|p| p.config)
}

/// Parses `text` with `opts`. Even lenient parsing fails on text that cannot
/// be split into lines (an unterminated quote or bracket).
pub fn parse_with(text: &str, opts: Options) -> Result<Parsed, ParseError> {
    let stmts = lex(text)?;
    let mut p = Parser {
        cfg: Config::default(),
        menu: None,
        warnings: Vec::new(),
    };
    for st in &stmts {
        if let Err(e) = p.stmt(st) {
            if opts.lenient {
                p.warnings.push(e);
            } else {
                return Err(e);
            }
        }
    }
    Ok(Parsed {
        config: p.cfg,
        warnings: p.warnings,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Menu {
    Firewall(Fam, Table),
    AddressList(Fam),
    Layer7,
    InterfaceList,
    InterfaceListMember,
    Ethernet,
    IpAddress,
    Ipv6Address,
    Arp,
    Route,
    Ipv6Route,
    Ipv6Neighbor,
    ConnectionTracking,
    ServicePort,
    TrafficFlow,
    TrafficFlowTarget,
    /// A menu that is not implemented (lenient mode skips its lines).
    Unknown,
}

const MENUS: &[(&str, Menu)] = &[
    ("ip firewall filter", Menu::Firewall(Fam::V4, Table::Filter)),
    ("ip firewall mangle", Menu::Firewall(Fam::V4, Table::Mangle)),
    ("ip firewall nat", Menu::Firewall(Fam::V4, Table::Nat)),
    (
        "ipv6 firewall filter",
        Menu::Firewall(Fam::V6, Table::Filter),
    ),
    (
        "ipv6 firewall mangle",
        Menu::Firewall(Fam::V6, Table::Mangle),
    ),
    ("ipv6 firewall nat", Menu::Firewall(Fam::V6, Table::Nat)),
    ("ip firewall address-list", Menu::AddressList(Fam::V4)),
    ("ipv6 firewall address-list", Menu::AddressList(Fam::V6)),
    ("ip firewall layer7-protocol", Menu::Layer7),
    ("interface list", Menu::InterfaceList),
    ("interface list member", Menu::InterfaceListMember),
    ("interface ethernet", Menu::Ethernet),
    ("ip address", Menu::IpAddress),
    ("ipv6 address", Menu::Ipv6Address),
    ("ip arp", Menu::Arp),
    ("ip route", Menu::Route),
    ("ipv6 route", Menu::Ipv6Route),
    ("ipv6 neighbor", Menu::Ipv6Neighbor),
    ("ip firewall connection tracking", Menu::ConnectionTracking),
    ("ip firewall service-port", Menu::ServicePort),
    ("ip traffic-flow", Menu::TrafficFlow),
    ("ip traffic-flow target", Menu::TrafficFlowTarget),
];

/// The menu path a [`Menu`] is written as (for export).
pub(crate) fn menu_path(m: MenuRef) -> &'static str {
    let want = match m {
        MenuRef::Firewall(f, t) => Menu::Firewall(f, t),
        MenuRef::AddressList(f) => Menu::AddressList(f),
        MenuRef::Layer7 => Menu::Layer7,
        MenuRef::InterfaceList => Menu::InterfaceList,
        MenuRef::InterfaceListMember => Menu::InterfaceListMember,
        MenuRef::Ethernet => Menu::Ethernet,
        MenuRef::IpAddress => Menu::IpAddress,
        MenuRef::Ipv6Address => Menu::Ipv6Address,
        MenuRef::Arp => Menu::Arp,
        MenuRef::Route => Menu::Route,
        MenuRef::Ipv6Route => Menu::Ipv6Route,
        MenuRef::Ipv6Neighbor => Menu::Ipv6Neighbor,
        MenuRef::ConnectionTracking => Menu::ConnectionTracking,
        MenuRef::ServicePort => Menu::ServicePort,
        MenuRef::TrafficFlow => Menu::TrafficFlow,
        MenuRef::TrafficFlowTarget => Menu::TrafficFlowTarget,
    };
    MENUS
        .iter()
        .find(|(_, m)| *m == want)
        .map(|(p, _)| *p)
        .unwrap_or("")
}

/// The menus, as export names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MenuRef {
    Firewall(Fam, Table),
    AddressList(Fam),
    Layer7,
    InterfaceList,
    InterfaceListMember,
    Ethernet,
    IpAddress,
    Ipv6Address,
    Arp,
    Route,
    Ipv6Route,
    Ipv6Neighbor,
    ConnectionTracking,
    ServicePort,
    TrafficFlow,
    TrafficFlowTarget,
}

const COMMANDS: &[&str] = &[
    "add", "set", "remove", "print", "export", "enable", "disable", "unset", "edit",
];

struct Parser {
    cfg: Config,
    menu: Option<(Menu, String)>,
    warnings: Vec<ParseError>,
}

/// The value kinds of the plain (not firewall) menus.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Name,
    Bool,
    Time,
    Int,
    V4,
    V6,
    V4Net,
    V6Net,
    /// An IPv4 or IPv6 address.
    Ip,
    Mac,
    Choice(&'static [&'static str]),
}

const IP_ADDRESS: &[(&str, Kind)] = &[
    ("address", Kind::V4Net),
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("interface", Kind::Name),
    ("network", Kind::V4),
];

const IPV6_ADDRESS: &[(&str, Kind)] = &[
    ("address", Kind::V6Net),
    ("advertise", Kind::Bool),
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("eui-64", Kind::Bool),
    ("from-pool", Kind::Name),
    ("interface", Kind::Name),
    ("no-dad", Kind::Bool),
];

const ARP: &[(&str, Kind)] = &[
    ("address", Kind::V4),
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("interface", Kind::Name),
    ("mac-address", Kind::Mac),
    ("published", Kind::Bool),
];

/// `/ip route`: static routes with an address as gateway (an interface
/// name as gateway, `routing-table`, `check-gateway` and the rest are not
/// implemented: the line is refused, naming the property).
const ROUTE: &[(&str, Kind)] = &[
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("distance", Kind::Int),
    ("dst-address", Kind::V4Net),
    ("gateway", Kind::V4),
];

const IPV6_ROUTE: &[(&str, Kind)] = &[
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("distance", Kind::Int),
    ("dst-address", Kind::V6Net),
    ("gateway", Kind::V6),
];

const IPV6_NEIGHBOR: &[(&str, Kind)] = &[
    ("address", Kind::V6),
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("interface", Kind::Name),
    ("mac-address", Kind::Mac),
];

const ETHERNET: &[(&str, Kind)] = &[
    (
        "arp",
        Kind::Choice(&[
            "disabled",
            "enabled",
            "local-proxy-arp",
            "proxy-arp",
            "reply-only",
        ]),
    ),
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("l2mtu", Kind::Int),
    ("mac-address", Kind::Mac),
    ("mtu", Kind::Int),
    ("name", Kind::Name),
];

const CONNECTION_TRACKING: &[(&str, Kind)] = &[
    ("enabled", Kind::Choice(&["auto", "no", "yes"])),
    ("generic-timeout", Kind::Time),
    ("icmp-timeout", Kind::Time),
    ("loose-tcp-tracking", Kind::Bool),
    ("tcp-close-timeout", Kind::Time),
    ("tcp-close-wait-timeout", Kind::Time),
    ("tcp-established-timeout", Kind::Time),
    ("tcp-fin-wait-timeout", Kind::Time),
    ("tcp-last-ack-timeout", Kind::Time),
    ("tcp-max-retrans-timeout", Kind::Time),
    ("tcp-syn-received-timeout", Kind::Time),
    ("tcp-syn-sent-timeout", Kind::Time),
    ("tcp-time-wait-timeout", Kind::Time),
    ("tcp-unacked-timeout", Kind::Time),
    ("udp-stream-timeout", Kind::Time),
    ("udp-timeout", Kind::Time),
];

/// `/ip traffic-flow` (ctrack: `control/src/flow_export.rs`). `nat-events`
/// is ctrack's own (RFC 8158 NAT events to IPFIX targets).
const TRAFFIC_FLOW: &[(&str, Kind)] = &[
    ("active-flow-timeout", Kind::Time),
    (
        "cache-entries",
        Kind::Choice(&["128k", "16k", "1k", "256k", "2k", "32k", "4k", "64k", "8k"]),
    ),
    ("enabled", Kind::Bool),
    ("inactive-flow-timeout", Kind::Time),
    ("interfaces", Kind::Text),
    ("nat-events", Kind::Bool),
];

/// `/ip traffic-flow target`: ctrack speaks NetFlow v9 and IPFIX (RouterOS
/// also has versions 1 and 5).
const TRAFFIC_FLOW_TARGET: &[(&str, Kind)] = &[
    ("comment", Kind::Text),
    ("disabled", Kind::Bool),
    ("dst-address", Kind::Ip),
    ("port", Kind::Int),
    ("src-address", Kind::Ip),
    ("version", Kind::Choice(&["9", "ipfix"])),
];

fn check_kind(kind: Kind, v: &str) -> VResult<()> {
    match kind {
        Kind::Text => Ok(()),
        Kind::Name => parse_name(v).map(|_| ()),
        Kind::Bool => parse_bool(v).map(|_| ()),
        Kind::Time => parse_time(v).map(|_| ()),
        Kind::Int => parse_u64(v).map(|_| ()),
        Kind::Ip => v
            .parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| "expected an IP address".into()),
        Kind::V4 => v
            .parse::<std::net::Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "expected an IPv4 address".into()),
        Kind::V6 => v
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "expected an IPv6 address".into()),
        Kind::V4Net | Kind::V6Net => {
            let (a, l) = v.split_once('/').unwrap_or((v, ""));
            let (ok, max) = match kind {
                Kind::V4Net => (a.parse::<std::net::Ipv4Addr>().is_ok(), 32),
                _ => (a.parse::<std::net::Ipv6Addr>().is_ok(), 128),
            };
            let len_ok = l.is_empty() || l.parse::<u8>().map(|n| n <= max).unwrap_or(false);
            if ok && len_ok {
                Ok(())
            } else {
                Err("expected address/prefix-length".into())
            }
        }
        Kind::Mac => {
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
            {
                Ok(())
            } else {
                Err("expected a MAC address".into())
            }
        }
        Kind::Choice(c) => {
            if c.contains(&v) {
                Ok(())
            } else {
                Err(format!("expected one of {}", c.join(", ")))
            }
        }
    }
}

impl Parser {
    fn stmt(&mut self, st: &Stmt) -> Result<(), ParseError> {
        let line = st.line;
        let mut words: &[Word] = &st.words;
        let menu_word = match words.first() {
            Some(Word::Bare(w)) if w.starts_with('/') => Some(w),
            _ => None,
        };
        if let Some(w) = menu_word {
            {
                let mut path: Vec<String> = w
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let mut n = 1;
                while let Some(Word::Bare(w)) = words.get(n) {
                    if COMMANDS.contains(&w.as_str()) {
                        break;
                    }
                    path.push(w.clone());
                    n += 1;
                }
                let joined = path.join(" ");
                let menu = MENUS.iter().find(|(p, _)| *p == joined).map(|&(_, m)| m);
                words = &words[n..];
                match menu {
                    Some(m) => self.menu = Some((m, joined)),
                    None => {
                        self.menu = Some((Menu::Unknown, joined.clone()));
                        return Err(ParseError::new(
                            line,
                            format!("/{joined}"),
                            "unknown or unsupported menu",
                        ));
                    }
                }
                if words.is_empty() {
                    return Ok(());
                }
            }
        }
        let Some((menu, path)) = self.menu.clone() else {
            return Err(ParseError::new(
                line,
                word_text(&words[0]),
                "command outside of a menu (start with e.g. `/ip firewall filter`)",
            ));
        };
        if menu == Menu::Unknown {
            return Err(ParseError::new(
                line,
                format!("/{path}"),
                "line of an unsupported menu skipped",
            ));
        }
        let (cmd, rest) = match words.split_first() {
            Some((Word::Bare(c), rest)) => (c.as_str(), rest),
            Some((w, _)) => {
                return Err(ParseError::new(
                    line,
                    word_text(w),
                    "expected a command (add, set)",
                ));
            }
            None => return Ok(()),
        };
        let err = |(w, r): (String, String)| ParseError::new(line, w, r);
        match cmd {
            "add" => {
                let props = props_of(rest).map_err(err)?;
                self.add(menu, &path, &props).map_err(err)
            }
            "set" => self.set(menu, &path, rest).map_err(err),
            _ => Err(ParseError::new(
                line,
                cmd,
                format!("unknown or unsupported command in /{path}"),
            )),
        }
    }

    fn add(
        &mut self,
        menu: Menu,
        path: &str,
        props: &[(String, String)],
    ) -> Result<(), (String, String)> {
        match menu {
            Menu::Firewall(fam, table) => {
                let r = Rule::from_props(props, fam, table)?;
                self.cfg.firewall_mut(fam).table_mut(table).push(r);
            }
            Menu::AddressList(fam) => {
                let mut e = AddressListEntry {
                    list: String::new(),
                    address: AddrSpec::Prefix {
                        addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
                        len: 0,
                    },
                    timeout: None,
                    comment: None,
                    disabled: false,
                };
                let (mut list, mut addr) = (None, None);
                for (k, v) in uniq(props)? {
                    let bad = |e: String| (format!("{k}={v}"), e);
                    match k {
                        "list" => list = Some(parse_name(v).map_err(bad)?),
                        "address" => addr = Some(AddrSpec::parse(v, fam).map_err(bad)?),
                        "timeout" => e.timeout = Some(parse_time(v).map_err(bad)?),
                        "comment" => e.comment = Some(v.to_string()),
                        "disabled" => e.disabled = parse_bool(v).map_err(bad)?,
                        _ => return Err(unknown_prop(k, path)),
                    }
                }
                e.list = list.ok_or_else(|| missing("list"))?;
                e.address = addr.ok_or_else(|| missing("address"))?;
                self.cfg.firewall_mut(fam).address_list.push(e);
            }
            Menu::Layer7 => {
                let (mut name, mut regexp, mut comment) = (None, None, None);
                for (k, v) in uniq(props)? {
                    match k {
                        "name" => name = Some(parse_name(v).map_err(|e| (k.to_string(), e))?),
                        "regexp" => regexp = Some(v.to_string()),
                        "comment" => comment = Some(v.to_string()),
                        _ => return Err(unknown_prop(k, path)),
                    }
                }
                self.cfg.layer7.push(Layer7Protocol {
                    name: name.ok_or_else(|| missing("name"))?,
                    regexp: regexp.ok_or_else(|| missing("regexp"))?,
                    comment,
                });
            }
            Menu::InterfaceList => {
                let mut l = InterfaceList {
                    name: String::new(),
                    comment: None,
                    include: Vec::new(),
                    exclude: Vec::new(),
                };
                let mut name = None;
                for (k, v) in uniq(props)? {
                    let names = |v: &str| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    match k {
                        "name" => name = Some(parse_name(v).map_err(|e| (k.to_string(), e))?),
                        "comment" => l.comment = Some(v.to_string()),
                        "include" => l.include = names(v),
                        "exclude" => l.exclude = names(v),
                        _ => return Err(unknown_prop(k, path)),
                    }
                }
                l.name = name.ok_or_else(|| missing("name"))?;
                self.cfg.interface_lists.push(l);
            }
            Menu::InterfaceListMember => {
                let (mut interface, mut list, mut comment, mut disabled) =
                    (None, None, None, false);
                for (k, v) in uniq(props)? {
                    let bad = |e: String| (format!("{k}={v}"), e);
                    match k {
                        "interface" => interface = Some(parse_name(v).map_err(bad)?),
                        "list" => list = Some(parse_name(v).map_err(bad)?),
                        "comment" => comment = Some(v.to_string()),
                        "disabled" => disabled = parse_bool(v).map_err(bad)?,
                        _ => return Err(unknown_prop(k, path)),
                    }
                }
                self.cfg.interface_list_members.push(InterfaceListMember {
                    interface: interface.ok_or_else(|| missing("interface"))?,
                    list: list.ok_or_else(|| missing("list"))?,
                    comment,
                    disabled,
                });
            }
            Menu::IpAddress => {
                let it = item(props, IP_ADDRESS, path, &["address", "interface"])?;
                self.cfg.ip_addresses.push(it);
            }
            Menu::Ipv6Address => {
                let it = item(props, IPV6_ADDRESS, path, &["address", "interface"])?;
                self.cfg.ipv6_addresses.push(it);
            }
            Menu::Arp => {
                let it = item(props, ARP, path, &["address", "interface"])?;
                self.cfg.arp.push(it);
            }
            Menu::Route | Menu::Ipv6Route => {
                let schema = if menu == Menu::Route {
                    ROUTE
                } else {
                    IPV6_ROUTE
                };
                let it = item(props, schema, path, &["gateway"])?;
                if let Some(d) = it.get("distance")
                    && !matches!(d.parse::<u8>(), Ok(1..=255))
                {
                    return Err((format!("distance={d}"), "expected 1..255".into()));
                }
                if menu == Menu::Route {
                    self.cfg.routes.push(it);
                } else {
                    self.cfg.ipv6_routes.push(it);
                }
            }
            Menu::Ipv6Neighbor => {
                let it = item(
                    props,
                    IPV6_NEIGHBOR,
                    path,
                    &["address", "interface", "mac-address"],
                )?;
                self.cfg.ipv6_neighbors.push(it);
            }
            Menu::TrafficFlowTarget => {
                let it = item(props, TRAFFIC_FLOW_TARGET, path, &["dst-address"])?;
                if let Some(p) = it.get("port")
                    && !matches!(p.parse::<u16>(), Ok(1..))
                {
                    return Err((format!("port={p}"), "expected a port, 1..65535".into()));
                }
                self.cfg.traffic_flow_targets.push(it);
            }
            Menu::Ethernet | Menu::ConnectionTracking | Menu::ServicePort | Menu::TrafficFlow => {
                return Err(("add".into(), format!("/{path} has no add; use set")));
            }
            Menu::Unknown => return Err((path.to_string(), "unsupported menu".into())),
        }
        Ok(())
    }

    fn set(&mut self, menu: Menu, path: &str, words: &[Word]) -> Result<(), (String, String)> {
        // The item selector: `[ find key=value ]`, a bare name, or none.
        let (selector, rest): (Option<(String, String)>, &[Word]) = match words.first() {
            Some(Word::Bracket(inner)) => match inner.as_slice() {
                [Word::Bare(f), Word::Prop(k, v)] if f == "find" => {
                    (Some((k.clone(), v.clone())), &words[1..])
                }
                _ => return Err(("[".into(), "expected `[ find key=value ]`".into())),
            },
            Some(Word::Bare(name)) => (Some(("name".into(), name.clone())), &words[1..]),
            _ => (None, words),
        };
        let props = props_of(rest)?;
        match menu {
            Menu::Ethernet => {
                let Some((k, v)) = selector else {
                    return Err((
                        "set".into(),
                        "expected `set [ find default-name=... ]`".into(),
                    ));
                };
                if k != "default-name" {
                    return Err((k, "select ethernet interfaces by default-name".into()));
                }
                let it = item(&props, ETHERNET, path, &[])?;
                self.cfg.ethernet.push(EthernetSet {
                    default_name: v,
                    props: it,
                });
            }
            Menu::ConnectionTracking | Menu::TrafficFlow => {
                if let Some((k, _)) = selector {
                    return Err((k, format!("/{path} has no items to select")));
                }
                let (schema, ct) = if menu == Menu::TrafficFlow {
                    (TRAFFIC_FLOW, &mut self.cfg.traffic_flow.0)
                } else {
                    (CONNECTION_TRACKING, &mut self.cfg.connection_tracking.0)
                };
                let it = item(&props, schema, path, &[])?;
                // Later `set` lines override earlier values, key by key.
                for (k, v) in it.0 {
                    match ct.iter_mut().find(|(ck, _)| *ck == k) {
                        Some(e) => e.1 = v,
                        None => ct.push((k, v)),
                    }
                }
                ct.sort();
            }
            Menu::ServicePort => {
                let Some((k, name)) = selector else {
                    return Err((
                        "set".into(),
                        "expected `set NAME ...` (ftp, sip, ...)".into(),
                    ));
                };
                if k != "name" {
                    return Err((k, "select service ports by name".into()));
                }
                if !SERVICE_PORTS.contains(&name.as_str()) {
                    return Err((name, "unknown service port".into()));
                }
                let mut sp = ServicePort {
                    name,
                    disabled: None,
                    ports: None,
                };
                for (k, v) in uniq(&props)? {
                    let bad = |e: String| (format!("{k}={v}"), e);
                    match k {
                        "disabled" => sp.disabled = Some(parse_bool(v).map_err(bad)?),
                        "ports" => sp.ports = Some(Ports::parse(v).map_err(bad)?),
                        _ => return Err(unknown_prop(k, path)),
                    }
                }
                self.cfg.service_ports.push(sp);
            }
            _ => {
                return Err((
                    "set".into(),
                    format!("set is not supported in /{path}; use add"),
                ));
            }
        }
        Ok(())
    }
}

fn word_text(w: &Word) -> String {
    match w {
        Word::Bare(s) => s.clone(),
        Word::Prop(k, v) => format!("{k}={v}"),
        Word::Bracket(_) => "[".into(),
    }
}

fn props_of(words: &[Word]) -> Result<Vec<(String, String)>, (String, String)> {
    words
        .iter()
        .map(|w| match w {
            Word::Prop(k, v) => Ok((k.clone(), v.clone())),
            other => Err((word_text(other), "expected key=value".into())),
        })
        .collect()
}

fn uniq(props: &[(String, String)]) -> Result<Vec<(&str, &str)>, (String, String)> {
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(props.len());
    for (k, v) in props {
        if out.iter().any(|(ok, _)| ok == k) {
            return Err((k.clone(), "property given twice".into()));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn unknown_prop(k: &str, path: &str) -> (String, String) {
    (k.to_string(), format!("unknown property of /{path}"))
}

fn missing(k: &str) -> (String, String) {
    ("add".into(), format!("missing {k}="))
}

fn item(
    props: &[(String, String)],
    schema: &[(&str, Kind)],
    path: &str,
    required: &[&str],
) -> Result<Item, (String, String)> {
    let mut out = Vec::new();
    for (k, v) in uniq(props)? {
        let Some(&(_, kind)) = schema.iter().find(|(n, _)| *n == k) else {
            return Err(unknown_prop(k, path));
        };
        check_kind(kind, v).map_err(|e| (format!("{k}={v}"), e))?;
        out.push((k.to_string(), v.to_string()));
    }
    for r in required {
        if !out.iter().any(|(k, _)| k == r) {
            return Err(missing(r));
        }
    }
    out.sort();
    Ok(Item(out))
}
