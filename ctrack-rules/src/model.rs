//! The configuration a script describes, as plain values.
//!
//! [`Config`] is what [`crate::parse`] returns and [`crate::export`] prints;
//! [`crate::Ruleset::compile`] turns it into the engine's form. A rule keeps
//! its matchers sorted by property name (RouterOS export order), so that two
//! scripts that differ only in property order give equal models.
//!
//! Each rule type converts from and to the `key=value` pairs of a script line
//! ([`Rule::from_props`], [`Rule::props`]); both directions live here, next to
//! each other, so that they cannot drift apart.

use ctrack_core::conntrack::Duration;

use crate::value::*;

/// Firewall tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Table {
    Filter,
    Mangle,
    Nat,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Filter, Table::Mangle, Table::Nat];

    pub fn name(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
        }
    }

    /// Built-in chains: traversal starts there; any other name is a user chain.
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            Table::Filter => &["input", "forward", "output"],
            Table::Mangle => &["prerouting", "input", "forward", "output", "postrouting"],
            Table::Nat => &["srcnat", "dstnat", "input", "output"],
        }
    }

    /// Actions RouterOS offers in this table (of those ctrack knows).
    fn allows(self, a: Action) -> bool {
        use Action::*;
        let common = matches!(
            a,
            Accept | AddSrcToAddressList | AddDstToAddressList | Log | Jump | Return | Passthrough
        );
        common
            || match self {
                Table::Filter => matches!(a, Drop | Reject | Tarpit | FasttrackConnection),
                Table::Mangle => matches!(a, MarkConnection | MarkPacket | FasttrackConnection),
                Table::Nat => matches!(a, SrcNat | DstNat | Masquerade | Netmap | Redirect | Same),
            }
    }
}

/// The whole configuration of one script.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Config {
    /// `/ip firewall ...`
    pub ip: Firewall,
    /// `/ipv6 firewall ...`
    pub ipv6: Firewall,
    /// `/ip firewall layer7-protocol`
    pub layer7: Vec<Layer7Protocol>,
    /// `/interface list`
    pub interface_lists: Vec<InterfaceList>,
    /// `/interface list member`
    pub interface_list_members: Vec<InterfaceListMember>,
    /// `/interface ethernet` (`set [ find default-name=... ] ...` lines)
    pub ethernet: Vec<EthernetSet>,
    /// `/ip address`
    pub ip_addresses: Vec<Item>,
    /// `/ipv6 address`
    pub ipv6_addresses: Vec<Item>,
    /// `/ip arp`
    pub arp: Vec<Item>,
    /// `/ip route` (static routes; router mode, `docs/nat.md`)
    pub routes: Vec<Item>,
    /// `/ipv6 route`
    pub ipv6_routes: Vec<Item>,
    /// `/ipv6 neighbor` (static entries)
    pub ipv6_neighbors: Vec<Item>,
    /// `/ip firewall connection tracking` (`set` properties, by name).
    pub connection_tracking: Item,
    /// `/ip firewall service-port` (`set NAME ...` lines)
    pub service_ports: Vec<ServicePort>,
    /// `/ip traffic-flow` (`set` properties, by name).
    pub traffic_flow: Item,
    /// `/ip traffic-flow target`
    pub traffic_flow_targets: Vec<Item>,
}

impl Config {
    pub fn firewall(&self, fam: Fam) -> &Firewall {
        match fam {
            Fam::V4 => &self.ip,
            Fam::V6 => &self.ipv6,
        }
    }

    pub fn firewall_mut(&mut self, fam: Fam) -> &mut Firewall {
        match fam {
            Fam::V4 => &mut self.ip,
            Fam::V6 => &mut self.ipv6,
        }
    }

    /// Interface names by dataplane index: `default_names[i]` (e.g. `ether1`
    /// for port 0) after the renames of `/interface ethernet set [ find
    /// default-name=... ] name=...`.
    pub fn interface_names(&self, default_names: &[&str]) -> Vec<String> {
        default_names
            .iter()
            .map(|d| {
                self.ethernet
                    .iter()
                    .rev()
                    .find(|e| e.default_name == *d)
                    .and_then(|e| e.props.get("name"))
                    .unwrap_or(d)
                    .to_string()
            })
            .collect()
    }
}

/// The firewall of one family.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Firewall {
    pub filter: Vec<Rule>,
    pub mangle: Vec<Rule>,
    pub nat: Vec<Rule>,
    pub address_list: Vec<AddressListEntry>,
}

impl Firewall {
    pub fn table(&self, t: Table) -> &[Rule] {
        match t {
            Table::Filter => &self.filter,
            Table::Mangle => &self.mangle,
            Table::Nat => &self.nat,
        }
    }

    pub fn table_mut(&mut self, t: Table) -> &mut Vec<Rule> {
        match t {
            Table::Filter => &mut self.filter,
            Table::Mangle => &mut self.mangle,
            Table::Nat => &mut self.nat,
        }
    }
}

/// Rule actions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Action {
    Accept,
    Drop,
    Reject,
    Tarpit,
    FasttrackConnection,
    MarkConnection,
    MarkPacket,
    AddSrcToAddressList,
    AddDstToAddressList,
    Log,
    Jump,
    Return,
    Passthrough,
    SrcNat,
    DstNat,
    Masquerade,
    Netmap,
    Redirect,
    Same,
}

const ACTIONS: &[(&str, Action)] = &[
    ("accept", Action::Accept),
    ("drop", Action::Drop),
    ("reject", Action::Reject),
    ("tarpit", Action::Tarpit),
    ("fasttrack-connection", Action::FasttrackConnection),
    ("mark-connection", Action::MarkConnection),
    ("mark-packet", Action::MarkPacket),
    ("add-src-to-address-list", Action::AddSrcToAddressList),
    ("add-dst-to-address-list", Action::AddDstToAddressList),
    ("log", Action::Log),
    ("jump", Action::Jump),
    ("return", Action::Return),
    ("passthrough", Action::Passthrough),
    ("src-nat", Action::SrcNat),
    ("dst-nat", Action::DstNat),
    ("masquerade", Action::Masquerade),
    ("netmap", Action::Netmap),
    ("redirect", Action::Redirect),
    ("same", Action::Same),
];

impl Action {
    pub fn parse(s: &str) -> VResult<Action> {
        ACTIONS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, a)| a)
            .ok_or_else(|| format!("unknown action `{s}`"))
    }

    pub fn name(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("accept")
    }

    /// Action parameters this action uses, and which of them it requires.
    fn params(self) -> (&'static [&'static str], &'static [&'static str]) {
        use Action::*;
        match self {
            Jump => (&["jump-target"], &["jump-target"]),
            MarkConnection => (
                &["new-connection-mark", "passthrough"],
                &["new-connection-mark"],
            ),
            MarkPacket => (&["new-packet-mark", "passthrough"], &["new-packet-mark"]),
            AddSrcToAddressList | AddDstToAddressList => {
                (&["address-list", "address-list-timeout"], &["address-list"])
            }
            Reject => (&["reject-with"], &[]),
            SrcNat | DstNat | Netmap | Same => (&["to-addresses", "to-ports"], &[]),
            Masquerade | Redirect => (&["to-ports"], &[]),
            _ => (&[], &[]),
        }
    }
}

/// Parameters of the rule's action (only those the action uses are set).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ActionParams {
    pub jump_target: Option<String>,
    pub new_connection_mark: Option<String>,
    pub new_packet_mark: Option<String>,
    /// `passthrough=` of mark actions; `None` means the default, yes.
    pub passthrough: Option<bool>,
    pub address_list: Option<String>,
    pub address_list_timeout: Option<ListTimeout>,
    pub reject_with: Option<RejectWith>,
    pub to_addresses: Option<AddrSpec>,
    pub to_ports: Option<PortRange>,
}

/// A match condition of a rule. All of a rule's matchers must hold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Matcher {
    Protocol(Neg<Protocol>),
    SrcAddress(Neg<AddrSpec>),
    DstAddress(Neg<AddrSpec>),
    SrcPort(Neg<Ports>),
    DstPort(Neg<Ports>),
    /// Either port.
    Port(Neg<Ports>),
    InInterface(Neg<String>),
    OutInterface(Neg<String>),
    InInterfaceList(Neg<String>),
    OutInterfaceList(Neg<String>),
    SrcAddressList(Neg<String>),
    DstAddressList(Neg<String>),
    TcpFlags(TcpFlags),
    IcmpOptions(Neg<IcmpOptions>),
    /// Size of the IP packet in bytes.
    PacketSize(Neg<Range64>),
    /// IPv4 TTL.
    Ttl(Cmp),
    /// IPv6 hop limit.
    HopLimit(Cmp),
    Dscp(Neg<u8>),
    /// `no-mark` matches an unmarked packet.
    PacketMark(Neg<String>),
    Limit(Limit),
    /// Bitmask over [`CONN_STATES`].
    ConnectionState(Neg<u32>),
    /// Bitmask over [`NAT_STATES`].
    ConnectionNatState(Neg<u32>),
    /// `no-mark` matches an unmarked connection.
    ConnectionMark(Neg<String>),
    /// Index into [`CONN_TYPES`].
    ConnectionType(Neg<u32>),
    /// Bytes over both directions, `hi == 0` means no upper bound (`N-0`).
    ConnectionBytes(Range64),
    /// Bits per second, `hi == 0` means no upper bound.
    ConnectionRate(Range64),
    ConnectionLimit(ConnLimit),
    Layer7Protocol(Neg<String>),
    IpsecPolicy(IpsecPolicy),
}

/// The names of the matcher properties, for error messages and lenient mode.
pub const MATCHER_NAMES: &[&str] = &[
    "connection-bytes",
    "connection-limit",
    "connection-mark",
    "connection-nat-state",
    "connection-rate",
    "connection-state",
    "connection-type",
    "dscp",
    "dst-address",
    "dst-address-list",
    "dst-port",
    "hop-limit",
    "icmp-options",
    "in-interface",
    "in-interface-list",
    "ipsec-policy",
    "layer7-protocol",
    "limit",
    "out-interface",
    "out-interface-list",
    "packet-mark",
    "packet-size",
    "port",
    "protocol",
    "src-address",
    "src-address-list",
    "src-port",
    "tcp-flags",
    "ttl",
];

fn neg_flags(s: &str, names: &[&str]) -> VResult<Neg<u32>> {
    Neg::parse(s, |t| parse_flag_set(t, names))
}

fn neg_flags_str(n: &Neg<u32>, names: &[&str]) -> String {
    format!(
        "{}{}",
        if n.neg { "!" } else { "" },
        flag_set_str(n.v, names)
    )
}

impl Matcher {
    /// Reads property `key=value` of a rule in a `/ip` or `/ipv6` menu.
    /// `Ok(None)` means `key` is not a matcher.
    pub fn parse(key: &str, v: &str, fam: Fam) -> VResult<Option<Matcher>> {
        use Matcher as M;
        let name = |t: &str| parse_name(t);
        let range_n = |t: &str| Range64::parse(t, parse_u64);
        Ok(Some(match key {
            "protocol" => M::Protocol(Neg::parse(v, Protocol::parse)?),
            "src-address" => M::SrcAddress(Neg::parse(v, |t| AddrSpec::parse(t, fam))?),
            "dst-address" => M::DstAddress(Neg::parse(v, |t| AddrSpec::parse(t, fam))?),
            "src-port" => M::SrcPort(Neg::parse(v, Ports::parse)?),
            "dst-port" => M::DstPort(Neg::parse(v, Ports::parse)?),
            "port" => M::Port(Neg::parse(v, Ports::parse)?),
            "in-interface" => M::InInterface(Neg::parse(v, name)?),
            "out-interface" => M::OutInterface(Neg::parse(v, name)?),
            "in-interface-list" => M::InInterfaceList(Neg::parse(v, name)?),
            "out-interface-list" => M::OutInterfaceList(Neg::parse(v, name)?),
            "src-address-list" => M::SrcAddressList(Neg::parse(v, name)?),
            "dst-address-list" => M::DstAddressList(Neg::parse(v, name)?),
            "tcp-flags" => M::TcpFlags(TcpFlags::parse(v)?),
            "icmp-options" => M::IcmpOptions(Neg::parse(v, IcmpOptions::parse)?),
            "packet-size" => {
                let r = Neg::parse(v, range_n)?;
                if r.v.hi > 65535 || r.v.lo > r.v.hi {
                    return Err("expected a size or size range within 0-65535".into());
                }
                M::PacketSize(r)
            }
            "ttl" if fam == Fam::V4 => M::Ttl(Cmp::parse(v)?),
            "hop-limit" if fam == Fam::V6 => M::HopLimit(Cmp::parse(v)?),
            "dscp" => {
                let d = Neg::parse(v, |t| {
                    t.parse::<u8>().map_err(|_| "expected 0-63".to_string())
                })?;
                if d.v > 63 {
                    return Err("expected 0-63".into());
                }
                M::Dscp(d)
            }
            "packet-mark" => M::PacketMark(Neg::parse(v, name)?),
            "limit" => M::Limit(Limit::parse(v)?),
            "connection-state" => M::ConnectionState(neg_flags(v, CONN_STATES)?),
            "connection-nat-state" => M::ConnectionNatState(neg_flags(v, NAT_STATES)?),
            "connection-mark" => M::ConnectionMark(Neg::parse(v, name)?),
            "connection-type" => M::ConnectionType(Neg::parse(v, |t| {
                CONN_TYPES
                    .iter()
                    .position(|n| *n == t)
                    .map(|i| i as u32)
                    .ok_or_else(|| format!("unknown connection-type `{t}`"))
            })?),
            "connection-bytes" => M::ConnectionBytes(open_range(v, parse_u64)?),
            "connection-rate" => M::ConnectionRate(open_range(v, parse_scaled)?),
            "connection-limit" => M::ConnectionLimit(ConnLimit::parse(v, fam)?),
            "layer7-protocol" => M::Layer7Protocol(Neg::parse(v, name)?),
            "ipsec-policy" => M::IpsecPolicy(IpsecPolicy::parse(v)?),
            _ => return Ok(None),
        }))
    }

    /// The property name, as in the script.
    pub fn key(&self) -> &'static str {
        use Matcher as M;
        match self {
            M::Protocol(_) => "protocol",
            M::SrcAddress(_) => "src-address",
            M::DstAddress(_) => "dst-address",
            M::SrcPort(_) => "src-port",
            M::DstPort(_) => "dst-port",
            M::Port(_) => "port",
            M::InInterface(_) => "in-interface",
            M::OutInterface(_) => "out-interface",
            M::InInterfaceList(_) => "in-interface-list",
            M::OutInterfaceList(_) => "out-interface-list",
            M::SrcAddressList(_) => "src-address-list",
            M::DstAddressList(_) => "dst-address-list",
            M::TcpFlags(_) => "tcp-flags",
            M::IcmpOptions(_) => "icmp-options",
            M::PacketSize(_) => "packet-size",
            M::Ttl(_) => "ttl",
            M::HopLimit(_) => "hop-limit",
            M::Dscp(_) => "dscp",
            M::PacketMark(_) => "packet-mark",
            M::Limit(_) => "limit",
            M::ConnectionState(_) => "connection-state",
            M::ConnectionNatState(_) => "connection-nat-state",
            M::ConnectionMark(_) => "connection-mark",
            M::ConnectionType(_) => "connection-type",
            M::ConnectionBytes(_) => "connection-bytes",
            M::ConnectionRate(_) => "connection-rate",
            M::ConnectionLimit(_) => "connection-limit",
            M::Layer7Protocol(_) => "layer7-protocol",
            M::IpsecPolicy(_) => "ipsec-policy",
        }
    }

    /// The value, as RouterOS exports it.
    pub fn value(&self) -> String {
        use Matcher as M;
        match self {
            M::Protocol(v) => v.to_string(),
            M::SrcAddress(v) | M::DstAddress(v) => v.to_string(),
            M::SrcPort(v) | M::DstPort(v) | M::Port(v) => v.to_string(),
            M::InInterface(v)
            | M::OutInterface(v)
            | M::InInterfaceList(v)
            | M::OutInterfaceList(v)
            | M::SrcAddressList(v)
            | M::DstAddressList(v)
            | M::PacketMark(v)
            | M::ConnectionMark(v)
            | M::Layer7Protocol(v) => v.to_string(),
            M::TcpFlags(v) => v.to_string(),
            M::IcmpOptions(v) => v.to_string(),
            M::PacketSize(v) => format!(
                "{}{}",
                if v.neg { "!" } else { "" },
                v.v.fmt_with(|n| n.to_string())
            ),
            M::Ttl(v) | M::HopLimit(v) => v.to_string(),
            M::Dscp(v) => v.to_string(),
            M::Limit(v) => v.to_string(),
            M::ConnectionState(v) => neg_flags_str(v, CONN_STATES),
            M::ConnectionNatState(v) => neg_flags_str(v, NAT_STATES),
            M::ConnectionType(v) => format!(
                "{}{}",
                if v.neg { "!" } else { "" },
                CONN_TYPES.get(v.v as usize).copied().unwrap_or("ftp")
            ),
            M::ConnectionBytes(r) => format!("{}-{}", r.lo, r.hi),
            M::ConnectionRate(r) => format!("{}-{}", scaled_str(r.lo), scaled_str(r.hi)),
            M::ConnectionLimit(v) => v.to_string(),
            M::IpsecPolicy(v) => v.to_string(),
        }
    }
}

/// `N-M` where `M == 0` means "above N" (RouterOS's `connection-bytes=N-0`).
fn open_range(s: &str, num: fn(&str) -> VResult<u64>) -> VResult<Range64> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| "expected N-M (N-0: more than N)".to_string())?;
    let r = Range64 {
        lo: num(a)?,
        hi: num(b)?,
    };
    if r.hi != 0 && r.lo > r.hi {
        return Err("range starts above its end".into());
    }
    Ok(r)
}

/// One firewall rule.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    pub chain: String,
    pub action: Action,
    pub params: ActionParams,
    /// Sorted by [`Matcher::key`]; each key at most once.
    pub matchers: Vec<Matcher>,
    pub disabled: bool,
    pub comment: Option<String>,
    /// `log=yes`: log every packet the rule matches, whatever its action.
    pub log: bool,
    pub log_prefix: Option<String>,
    /// `hw-offload=` of fasttrack rules: kept and exported, no effect here.
    pub hw_offload: Option<bool>,
}

impl Rule {
    /// A rule with no matchers in `chain`.
    pub fn new(chain: &str, action: Action) -> Rule {
        Rule {
            chain: chain.to_string(),
            action,
            params: ActionParams::default(),
            matchers: Vec::new(),
            disabled: false,
            comment: None,
            log: false,
            log_prefix: None,
            hw_offload: None,
        }
    }

    /// Builds a rule of `table` from the properties of an `add` line. The
    /// error is `(word, reason)`.
    pub fn from_props(
        props: &[(String, String)],
        fam: Fam,
        table: Table,
    ) -> Result<Rule, (String, String)> {
        let mut r = Rule::new("", Action::Accept);
        let mut chain = None;
        let mut seen: Vec<&str> = Vec::new();
        let mut given_params: Vec<&str> = Vec::new();
        for (k, v) in props {
            if seen.contains(&k.as_str()) {
                return Err((k.clone(), "property given twice".into()));
            }
            seen.push(k);
            let bad = |e: String| (format!("{k}={v}"), e);
            match k.as_str() {
                "chain" => chain = Some(parse_name(v).map_err(bad)?),
                "action" => r.action = Action::parse(v).map_err(bad)?,
                "disabled" => r.disabled = parse_bool(v).map_err(bad)?,
                "comment" => r.comment = Some(v.clone()),
                "log" => r.log = parse_bool(v).map_err(bad)?,
                "log-prefix" => r.log_prefix = Some(v.clone()),
                "hw-offload" => r.hw_offload = Some(parse_bool(v).map_err(bad)?),
                "jump-target" => r.params.jump_target = Some(parse_name(v).map_err(bad)?),
                "new-connection-mark" => {
                    r.params.new_connection_mark = Some(parse_name(v).map_err(bad)?)
                }
                "new-packet-mark" => r.params.new_packet_mark = Some(parse_name(v).map_err(bad)?),
                "passthrough" => r.params.passthrough = Some(parse_bool(v).map_err(bad)?),
                "address-list" => r.params.address_list = Some(parse_name(v).map_err(bad)?),
                "address-list-timeout" => {
                    r.params.address_list_timeout = Some(ListTimeout::parse(v).map_err(bad)?)
                }
                "reject-with" => {
                    r.params.reject_with = Some(RejectWith::parse(v, fam).map_err(bad)?)
                }
                "to-addresses" => {
                    r.params.to_addresses = Some(AddrSpec::parse(v, fam).map_err(bad)?)
                }
                "to-ports" => r.params.to_ports = Some(PortRange::parse(v).map_err(bad)?),
                _ => match Matcher::parse(k, v, fam).map_err(bad)? {
                    Some(m) => {
                        r.matchers.push(m);
                        continue;
                    }
                    None => {
                        let why = if k == "ttl" || k == "hop-limit" {
                            format!(
                                "not a property of /{} firewall {}",
                                fam.menu(),
                                table.name()
                            )
                        } else {
                            format!(
                                "unknown property of /{} firewall {}",
                                fam.menu(),
                                table.name()
                            )
                        };
                        return Err((k.clone(), why));
                    }
                },
            }
            if ACTION_PARAMS.contains(&k.as_str()) {
                given_params.push(k);
            }
        }
        r.chain = chain.ok_or_else(|| ("add".to_string(), "missing chain=".to_string()))?;
        if !table.allows(r.action) {
            return Err((
                format!("action={}", r.action.name()),
                format!("not an action of /{} firewall {}", fam.menu(), table.name()),
            ));
        }
        let (allowed, required) = r.action.params();
        for p in &given_params {
            if !allowed.contains(p) {
                return Err((
                    p.to_string(),
                    format!("not used by action={}", r.action.name()),
                ));
            }
        }
        for p in required {
            if !given_params.contains(p) {
                return Err((
                    p.to_string(),
                    format!("action={} needs {p}=", r.action.name()),
                ));
            }
        }
        if r.hw_offload.is_some() && r.action != Action::FasttrackConnection {
            return Err((
                "hw-offload".into(),
                "only used by action=fasttrack-connection".into(),
            ));
        }
        r.matchers.sort_by_key(|m| m.key());
        Ok(r)
    }

    /// The rule as `key=value` pairs in RouterOS export order (by name).
    pub fn props(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, val: String| v.push((k.to_string(), val));
        put("action", self.action.name().to_string());
        put("chain", self.chain.clone());
        if let Some(c) = &self.comment {
            put("comment", c.clone());
        }
        if self.disabled {
            put("disabled", "yes".into());
        }
        if self.log {
            put("log", "yes".into());
        }
        if let Some(p) = &self.log_prefix {
            put("log-prefix", p.clone());
        }
        if let Some(h) = self.hw_offload {
            put("hw-offload", bool_str(h).into());
        }
        let p = &self.params;
        if let Some(x) = &p.jump_target {
            put("jump-target", x.clone());
        }
        if let Some(x) = &p.new_connection_mark {
            put("new-connection-mark", x.clone());
        }
        if let Some(x) = &p.new_packet_mark {
            put("new-packet-mark", x.clone());
        }
        if let Some(x) = p.passthrough {
            put("passthrough", bool_str(x).into());
        }
        if let Some(x) = &p.address_list {
            put("address-list", x.clone());
        }
        if let Some(x) = p.address_list_timeout {
            put("address-list-timeout", x.to_string());
        }
        if let Some(x) = p.reject_with {
            put("reject-with", x.name().into());
        }
        if let Some(x) = p.to_addresses {
            put("to-addresses", x.to_string());
        }
        if let Some(x) = p.to_ports {
            put("to-ports", x.to_string());
        }
        for m in &self.matchers {
            put(m.key(), m.value());
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn matcher(&self, key: &str) -> Option<&Matcher> {
        self.matchers.iter().find(|m| m.key() == key)
    }
}

const ACTION_PARAMS: &[&str] = &[
    "jump-target",
    "new-connection-mark",
    "new-packet-mark",
    "passthrough",
    "address-list",
    "address-list-timeout",
    "reject-with",
    "to-addresses",
    "to-ports",
];

/// `/ip firewall address-list` entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AddressListEntry {
    pub list: String,
    pub address: AddrSpec,
    /// A static entry with a timeout is removed when it runs out.
    pub timeout: Option<Duration>,
    pub comment: Option<String>,
    pub disabled: bool,
}

/// `/ip firewall layer7-protocol` entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Layer7Protocol {
    pub name: String,
    pub regexp: String,
    pub comment: Option<String>,
}

/// `/interface list` entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InterfaceList {
    pub name: String,
    pub comment: Option<String>,
    /// Lists whose members are also members of this one.
    pub include: Vec<String>,
    /// Lists whose members are taken out of this one.
    pub exclude: Vec<String>,
}

/// `/interface list member` entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InterfaceListMember {
    pub interface: String,
    pub list: String,
    pub comment: Option<String>,
    pub disabled: bool,
}

/// `/interface ethernet set [ find default-name=ether1 ] name=wan ...`
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EthernetSet {
    pub default_name: String,
    pub props: Item,
}

/// `/ip firewall service-port set ftp disabled=yes ...`
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServicePort {
    pub name: String,
    pub disabled: Option<bool>,
    pub ports: Option<Ports>,
}

/// Service port (helper) names RouterOS has.
pub const SERVICE_PORTS: &[&str] = &[
    "ftp", "tftp", "irc", "h323", "sip", "pptp", "rtsp", "udplite", "dccp", "sctp",
];

/// A menu item kept as validated `key=value` pairs, sorted by key (for menus
/// the engine does not act on: addresses, ARP, conntrack settings).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Item(pub Vec<(String, String)>);

impl Item {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
