//! Property values: how each RouterOS value type is read and printed.
//!
//! Every type here parses from the text after `key=` and prints back in the
//! form RouterOS `/export` uses, so that `parse(print(v)) == v` (the round
//! trip the export tests check). Parsing returns a plain reason string; the
//! parser adds the line and the word.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ctrack_core::conntrack::{Duration, format_duration_exact, parse_duration};

pub type VResult<T> = Result<T, String>;

/// A value with RouterOS's leading `!` (negation).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Neg<T> {
    pub neg: bool,
    pub v: T,
}

impl<T> Neg<T> {
    pub fn parse(s: &str, f: impl FnOnce(&str) -> VResult<T>) -> VResult<Neg<T>> {
        match s.strip_prefix('!') {
            Some(rest) => Ok(Neg {
                neg: true,
                v: f(rest)?,
            }),
            None => Ok(Neg {
                neg: false,
                v: f(s)?,
            }),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Neg<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.neg {
            f.write_str("!")?;
        }
        self.v.fmt(f)
    }
}

/// `yes`/`no` (RouterOS also accepts `true`/`false` in scripts).
pub fn parse_bool(s: &str) -> VResult<bool> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

pub fn bool_str(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub fn parse_u64(s: &str) -> VResult<u64> {
    s.parse::<u64>()
        .map_err(|_| "expected a number".to_string())
}

/// A number with an optional `k`, `M`, `G` suffix (powers of 1000, as RouterOS
/// reads rates).
pub fn parse_scaled(s: &str) -> VResult<u64> {
    let (num, mul) = match s.as_bytes().last() {
        Some(b'k') | Some(b'K') => (&s[..s.len() - 1], 1_000),
        Some(b'M') => (&s[..s.len() - 1], 1_000_000),
        Some(b'G') => (&s[..s.len() - 1], 1_000_000_000),
        _ => (s, 1),
    };
    parse_u64(num)?
        .checked_mul(mul)
        .ok_or_else(|| "number too large".to_string())
}

pub fn scaled_str(v: u64) -> String {
    if v != 0 && v.is_multiple_of(1_000_000_000) {
        format!("{}G", v / 1_000_000_000)
    } else if v != 0 && v.is_multiple_of(1_000_000) {
        format!("{}M", v / 1_000_000)
    } else if v != 0 && v.is_multiple_of(1_000) {
        format!("{}k", v / 1_000)
    } else {
        v.to_string()
    }
}

/// A RouterOS time value (`1d2h`, `10s`, `500ms`).
pub fn parse_time(s: &str) -> VResult<Duration> {
    parse_duration(s).map_err(|e| format!("bad time: {e}"))
}

pub fn time_str(d: Duration) -> String {
    format_duration_exact(d)
}

/// A name (chain, list, mark, interface): non-empty.
pub fn parse_name(s: &str) -> VResult<String> {
    if s.is_empty() {
        return Err("empty name".into());
    }
    Ok(s.to_string())
}

/// Address family of a menu (`/ip` or `/ipv6`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Fam {
    V4,
    V6,
}

impl Fam {
    pub fn menu(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ipv6",
        }
    }
}

/// An address, prefix or range: `10.0.0.1`, `10.0.0.0/8`, `10.0.0.1-10.0.0.9`.
///
/// Host bits of a prefix are cleared, as RouterOS does on input. IPv4 prints
/// a full-length prefix without `/32`; IPv6 always prints `/len` (RouterOS
/// exports `address=::1/128`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddrSpec {
    Prefix { addr: IpAddr, len: u8 },
    Range { lo: IpAddr, hi: IpAddr },
}

impl AddrSpec {
    pub fn parse(s: &str, fam: Fam) -> VResult<AddrSpec> {
        let ip = |t: &str| -> VResult<IpAddr> {
            let a: IpAddr = t.parse().map_err(|_| format!("bad address `{t}`"))?;
            match (fam, a) {
                (Fam::V4, IpAddr::V4(_)) | (Fam::V6, IpAddr::V6(_)) => Ok(a),
                (Fam::V4, _) => Err(format!("`{t}` is not an IPv4 address")),
                (Fam::V6, _) => Err(format!("`{t}` is not an IPv6 address")),
            }
        };
        if let Some((a, b)) = s.split_once('-') {
            let (lo, hi) = (ip(a)?, ip(b)?);
            if to_u128(lo) > to_u128(hi) {
                return Err("range start is above its end".into());
            }
            return Ok(AddrSpec::Range { lo, hi });
        }
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l.parse().map_err(|_| format!("bad prefix length `{l}`"))?;
                (ip(a)?, Some(len))
            }
            None => (ip(s)?, None),
        };
        let max = if a.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(format!("prefix length {len} is above {max}"));
        }
        Ok(AddrSpec::Prefix {
            addr: mask(a, len),
            len,
        })
    }

    /// The inclusive range of addresses, in the engine's 128-bit form
    /// (IPv4 in the low 32 bits).
    pub fn bounds(&self) -> (u128, u128) {
        match *self {
            AddrSpec::Range { lo, hi } => (to_u128(lo), to_u128(hi)),
            AddrSpec::Prefix { addr, len } => {
                let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
                let host = bits.saturating_sub(len as u32);
                let lo = to_u128(addr);
                let span = if host >= 128 {
                    u128::MAX
                } else {
                    (1u128 << host) - 1
                };
                (lo, lo | span)
            }
        }
    }
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AddrSpec::Range { lo, hi } => write!(f, "{lo}-{hi}"),
            AddrSpec::Prefix {
                addr: IpAddr::V4(a),
                len: 32,
            } => write!(f, "{a}"),
            AddrSpec::Prefix { addr, len } => write!(f, "{addr}/{len}"),
        }
    }
}

/// An address as the engine compares it: IPv4 in the low 32 bits.
pub fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v4) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// A port list: `80`, `80,443`, `1024-65535`, `22,8000-8080`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ports(pub Vec<(u16, u16)>);

impl Ports {
    pub fn parse(s: &str) -> VResult<Ports> {
        let mut v = Vec::new();
        for part in s.split(',') {
            let port = |t: &str| t.parse::<u16>().map_err(|_| format!("bad port `{t}`"));
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (port(a)?, port(b)?),
                None => {
                    let p = port(part)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(format!("port range `{part}` starts above its end"));
            }
            v.push((lo, hi));
        }
        Ok(Ports(v))
    }

    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= p && p <= hi)
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// An inclusive integer range `N` or `N-M`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Range64 {
    pub lo: u64,
    pub hi: u64,
}

impl Range64 {
    pub fn parse(s: &str, num: fn(&str) -> VResult<u64>) -> VResult<Range64> {
        match s.split_once('-') {
            Some((a, b)) => Ok(Range64 {
                lo: num(a)?,
                hi: num(b)?,
            }),
            None => {
                let v = num(s)?;
                Ok(Range64 { lo: v, hi: v })
            }
        }
    }

    pub fn fmt_with(&self, f: fn(u64) -> String) -> String {
        if self.lo == self.hi {
            f(self.lo)
        } else {
            format!("{}-{}", f(self.lo), f(self.hi))
        }
    }
}

/// IP protocol names as RouterOS prints them.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ip-encap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6-encap", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("rsvp", 46),
    ("gre", 47),
    ("ipsec-esp", 50),
    ("ipsec-ah", 51),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("ospf", 89),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udp-lite", 136),
];

/// An IP protocol: a name from [`PROTOCOLS`] or a number 0-255.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Protocol(pub u8);

impl Protocol {
    pub fn parse(s: &str) -> VResult<Protocol> {
        if let Some(&(_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == s) {
            return Ok(Protocol(n));
        }
        s.parse::<u8>()
            .map(Protocol)
            .map_err(|_| format!("unknown protocol `{s}`"))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PROTOCOLS.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A set of named flags kept as a bitmask; prints in the table's order.
pub fn parse_flag_set(s: &str, names: &[&str]) -> VResult<u32> {
    let mut m = 0u32;
    for part in s.split(',') {
        let i = names.iter().position(|n| *n == part).ok_or_else(|| {
            format!(
                "unknown value `{part}` (expected one of {})",
                names.join(", ")
            )
        })?;
        m |= 1 << i;
    }
    Ok(m)
}

pub fn flag_set_str(m: u32, names: &[&str]) -> String {
    let v: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| m & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(",")
}

/// `connection-state` values, in the order RouterOS prints them.
pub const CONN_STATES: &[&str] = &["established", "invalid", "new", "related", "untracked"];
/// `connection-nat-state` values.
pub const NAT_STATES: &[&str] = &["srcnat", "dstnat"];
/// `connection-type` values (connection tracking helpers).
pub const CONN_TYPES: &[&str] = &["ftp", "h323", "irc", "pptp", "quake3", "sip", "tftp"];
/// `tcp-flags` names, bit i is the TCP header flag bit i.
pub const TCP_FLAGS: &[&str] = &["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];

/// `tcp-flags=syn,!ack`: each flag must be set, or (with `!`) clear.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcpFlags {
    /// Flags the rule looks at.
    pub mask: u8,
    /// Required values of those flags.
    pub want: u8,
}

impl TcpFlags {
    pub fn parse(s: &str) -> VResult<TcpFlags> {
        let (mut mask, mut want) = (0u8, 0u8);
        for part in s.split(',') {
            let (neg, name) = match part.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, part),
            };
            let i = TCP_FLAGS
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| format!("unknown tcp flag `{name}`"))?;
            let bit = 1u8 << i;
            if mask & bit != 0 {
                return Err(format!("tcp flag `{name}` given twice"));
            }
            mask |= bit;
            if !neg {
                want |= bit;
            }
        }
        Ok(TcpFlags { mask, want })
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, n) in TCP_FLAGS.iter().enumerate() {
            let bit = 1u8 << i;
            if self.mask & bit != 0 {
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if self.want & bit == 0 {
                    f.write_str("!")?;
                }
                f.write_str(n)?;
            }
        }
        Ok(())
    }
}

/// `icmp-options=type[:code[-code]]`; a missing code matches every code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IcmpOptions {
    pub ty: u8,
    pub code_lo: u8,
    pub code_hi: u8,
}

impl IcmpOptions {
    pub fn parse(s: &str) -> VResult<IcmpOptions> {
        let num = |t: &str| {
            t.parse::<u8>()
                .map_err(|_| format!("bad icmp type or code `{t}`"))
        };
        let (ty, code) = match s.split_once(':') {
            Some((t, c)) => (num(t)?, Some(c)),
            None => (num(s)?, None),
        };
        let (code_lo, code_hi) = match code {
            None => (0, 255),
            Some(c) => match c.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let v = num(c)?;
                    (v, v)
                }
            },
        };
        if code_lo > code_hi {
            return Err("icmp code range starts above its end".into());
        }
        Ok(IcmpOptions {
            ty,
            code_lo,
            code_hi,
        })
    }
}

impl fmt::Display for IcmpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code_lo, self.code_hi) {
            (0, 255) => write!(f, "{}:0-255", self.ty),
            (a, b) if a == b => write!(f, "{}:{a}", self.ty),
            (a, b) => write!(f, "{}:{a}-{b}", self.ty),
        }
    }
}

/// `ttl=equal:1`, `hop-limit=less-than:10`, ...
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cmp {
    Equal(u8),
    NotEqual(u8),
    GreaterThan(u8),
    LessThan(u8),
}

impl Cmp {
    pub fn parse(s: &str) -> VResult<Cmp> {
        let (op, n) = s.split_once(':').ok_or_else(|| {
            "expected equal:N, not-equal:N, greater-than:N or less-than:N".to_string()
        })?;
        let n: u8 = n.parse().map_err(|_| format!("bad value `{n}` (0-255)"))?;
        Ok(match op {
            "equal" => Cmp::Equal(n),
            "not-equal" => Cmp::NotEqual(n),
            "greater-than" => Cmp::GreaterThan(n),
            "less-than" => Cmp::LessThan(n),
            _ => return Err(format!("unknown comparison `{op}`")),
        })
    }

    pub fn test(self, v: u8) -> bool {
        match self {
            Cmp::Equal(n) => v == n,
            Cmp::NotEqual(n) => v != n,
            Cmp::GreaterThan(n) => v > n,
            Cmp::LessThan(n) => v < n,
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cmp::Equal(n) => write!(f, "equal:{n}"),
            Cmp::NotEqual(n) => write!(f, "not-equal:{n}"),
            Cmp::GreaterThan(n) => write!(f, "greater-than:{n}"),
            Cmp::LessThan(n) => write!(f, "less-than:{n}"),
        }
    }
}

/// What `limit=` counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LimitMode {
    Packet,
    Bit,
}

/// `limit=count[/time],burst:mode`, e.g. `50/5s,2:packet` or `1M,100k:bit`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limit {
    /// Packets (or bits) allowed per `period`.
    pub count: u64,
    pub period: Duration,
    /// Packets (or bits) that may exceed the rate at once.
    pub burst: u64,
    pub mode: LimitMode,
}

impl Limit {
    pub fn parse(s: &str) -> VResult<Limit> {
        let (rate, rest) = s
            .split_once(',')
            .ok_or_else(|| "expected count[/time],burst:mode".to_string())?;
        let (count, period) = match rate.split_once('/') {
            Some((c, t)) => (parse_scaled(c)?, parse_time(t)?),
            None => (parse_scaled(rate)?, Duration::from_secs(1)),
        };
        let (burst, mode) = match rest.split_once(':') {
            Some((b, m)) => (
                parse_scaled(b)?,
                match m {
                    "packet" => LimitMode::Packet,
                    "bit" => LimitMode::Bit,
                    _ => return Err(format!("unknown limit mode `{m}` (packet or bit)")),
                },
            ),
            None => (parse_scaled(rest)?, LimitMode::Packet),
        };
        if count == 0 {
            return Err("limit count must be above 0".into());
        }
        if period == Duration::ZERO {
            return Err("limit time must be above 0".into());
        }
        Ok(Limit {
            count,
            period,
            burst,
            mode,
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled_str(self.count))?;
        if self.period != Duration::from_secs(1) {
            write!(f, "/{}", time_str(self.period))?;
        }
        let mode = match self.mode {
            LimitMode::Packet => "packet",
            LimitMode::Bit => "bit",
        };
        write!(f, ",{}:{mode}", scaled_str(self.burst))
    }
}

/// `connection-limit=count,netmask`: more than `count` connections from the
/// source's `/netmask` block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnLimit {
    pub count: u32,
    pub netmask: u8,
}

impl ConnLimit {
    pub fn parse(s: &str, fam: Fam) -> VResult<ConnLimit> {
        let (c, m) = s
            .split_once(',')
            .ok_or_else(|| "expected count,netmask".to_string())?;
        let count = c.parse().map_err(|_| format!("bad count `{c}`"))?;
        let netmask: u8 = m.parse().map_err(|_| format!("bad netmask `{m}`"))?;
        let max = if fam == Fam::V4 { 32 } else { 128 };
        if netmask > max {
            return Err(format!("netmask {netmask} is above {max}"));
        }
        Ok(ConnLimit { count, netmask })
    }
}

impl fmt::Display for ConnLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.count, self.netmask)
    }
}

/// `ipsec-policy=in,ipsec` and friends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpsecPolicy {
    /// `in` (decapsulated) or `out` (to be encapsulated).
    pub out: bool,
    /// `ipsec` (matches an IPsec policy) or `none`.
    pub ipsec: bool,
}

impl IpsecPolicy {
    pub fn parse(s: &str) -> VResult<IpsecPolicy> {
        let (d, p) = s
            .split_once(',')
            .ok_or_else(|| "expected in|out,ipsec|none".to_string())?;
        let out = match d {
            "in" => false,
            "out" => true,
            _ => return Err(format!("unknown direction `{d}` (in or out)")),
        };
        let ipsec = match p {
            "ipsec" => true,
            "none" => false,
            _ => return Err(format!("unknown policy `{p}` (ipsec or none)")),
        };
        Ok(IpsecPolicy { out, ipsec })
    }
}

impl fmt::Display for IpsecPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = if self.out { "out" } else { "in" };
        let p = if self.ipsec { "ipsec" } else { "none" };
        write!(f, "{d},{p}")
    }
}

/// `address-list-timeout=`: `none-dynamic` (default), `none-static` or a time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListTimeout {
    NoneDynamic,
    NoneStatic,
    Time(Duration),
}

impl ListTimeout {
    pub fn parse(s: &str) -> VResult<ListTimeout> {
        match s {
            "none-dynamic" => Ok(ListTimeout::NoneDynamic),
            "none-static" => Ok(ListTimeout::NoneStatic),
            t => Ok(ListTimeout::Time(parse_time(t)?)),
        }
    }
}

impl fmt::Display for ListTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListTimeout::NoneDynamic => f.write_str("none-dynamic"),
            ListTimeout::NoneStatic => f.write_str("none-static"),
            ListTimeout::Time(d) => f.write_str(&time_str(*d)),
        }
    }
}

/// `reject-with=` kinds. IPv6 has its own names (`icmp-no-route`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectWith {
    IcmpNetworkUnreachable,
    IcmpHostUnreachable,
    IcmpPortUnreachable,
    IcmpProtocolUnreachable,
    IcmpNetProhibited,
    IcmpHostProhibited,
    IcmpAdminProhibited,
    TcpReset,
    /// IPv6: ICMPv6 destination unreachable, code 0.
    IcmpNoRoute,
    /// IPv6: code 1.
    Icmp6AdminProhibited,
    /// IPv6: code 2.
    IcmpNotNeighbour,
    /// IPv6: code 3.
    IcmpAddressUnreachable,
    /// IPv6: code 4.
    Icmp6PortUnreachable,
}

const REJECT_V4: &[(&str, RejectWith)] = &[
    (
        "icmp-network-unreachable",
        RejectWith::IcmpNetworkUnreachable,
    ),
    ("icmp-host-unreachable", RejectWith::IcmpHostUnreachable),
    ("icmp-port-unreachable", RejectWith::IcmpPortUnreachable),
    (
        "icmp-protocol-unreachable",
        RejectWith::IcmpProtocolUnreachable,
    ),
    ("icmp-net-prohibited", RejectWith::IcmpNetProhibited),
    ("icmp-host-prohibited", RejectWith::IcmpHostProhibited),
    ("icmp-admin-prohibited", RejectWith::IcmpAdminProhibited),
    ("tcp-reset", RejectWith::TcpReset),
];

const REJECT_V6: &[(&str, RejectWith)] = &[
    ("icmp-no-route", RejectWith::IcmpNoRoute),
    ("icmp-admin-prohibited", RejectWith::Icmp6AdminProhibited),
    ("icmp-not-neighbour", RejectWith::IcmpNotNeighbour),
    (
        "icmp-address-unreachable",
        RejectWith::IcmpAddressUnreachable,
    ),
    ("icmp-port-unreachable", RejectWith::Icmp6PortUnreachable),
    ("tcp-reset", RejectWith::TcpReset),
];

impl RejectWith {
    pub fn parse(s: &str, fam: Fam) -> VResult<RejectWith> {
        let table = if fam == Fam::V4 { REJECT_V4 } else { REJECT_V6 };
        table
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, k)| k)
            .ok_or_else(|| format!("unknown reject-with `{s}` for /{}", fam.menu()))
    }

    pub fn name(self) -> &'static str {
        REJECT_V4
            .iter()
            .chain(REJECT_V6)
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("icmp-network-unreachable")
    }

    /// The ICMP (or ICMPv6) type and code to send, or `None` for a TCP reset.
    pub fn icmp(self) -> Option<(u8, u8)> {
        Some(match self {
            RejectWith::IcmpNetworkUnreachable => (3, 0),
            RejectWith::IcmpHostUnreachable => (3, 1),
            RejectWith::IcmpProtocolUnreachable => (3, 2),
            RejectWith::IcmpPortUnreachable => (3, 3),
            RejectWith::IcmpNetProhibited => (3, 9),
            RejectWith::IcmpHostProhibited => (3, 10),
            RejectWith::IcmpAdminProhibited => (3, 13),
            RejectWith::IcmpNoRoute => (1, 0),
            RejectWith::Icmp6AdminProhibited => (1, 1),
            RejectWith::IcmpNotNeighbour => (1, 2),
            RejectWith::IcmpAddressUnreachable => (1, 3),
            RejectWith::Icmp6PortUnreachable => (1, 4),
            RejectWith::TcpReset => return None,
        })
    }
}

/// A NAT port or port range, `to-ports=8080` or `to-ports=1024-2047`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> VResult<PortRange> {
        let p = Ports::parse(s)?;
        match p.0.as_slice() {
            [(lo, hi)] => Ok(PortRange { lo: *lo, hi: *hi }),
            _ => Err("expected one port or one port range".into()),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalise_and_print_as_routeros() {
        let a = AddrSpec::parse("10.1.2.3/8", Fam::V4).unwrap();
        assert_eq!(a.to_string(), "10.0.0.0/8");
        assert_eq!(a.bounds(), (0x0a00_0000, 0x0aff_ffff));
        assert_eq!(
            AddrSpec::parse("127.0.0.1", Fam::V4).unwrap().to_string(),
            "127.0.0.1"
        );
        assert_eq!(
            AddrSpec::parse("::1", Fam::V6).unwrap().to_string(),
            "::1/128"
        );
        assert_eq!(
            AddrSpec::parse("0.0.0.0/0", Fam::V4).unwrap().bounds(),
            (0, 0xffff_ffff)
        );
        assert_eq!(
            AddrSpec::parse("::/0", Fam::V6).unwrap().bounds(),
            (0, u128::MAX)
        );
        let r = AddrSpec::parse("10.0.0.5-10.0.0.9", Fam::V4).unwrap();
        assert_eq!(r.bounds(), (0x0a00_0005, 0x0a00_0009));
        assert!(AddrSpec::parse("10.0.0.9-10.0.0.5", Fam::V4).is_err());
        assert!(AddrSpec::parse("::1", Fam::V4).is_err());
        assert!(AddrSpec::parse("10.0.0.0/33", Fam::V4).is_err());
    }

    #[test]
    fn ports_and_protocols() {
        let p = Ports::parse("22,8000-8080").unwrap();
        assert!(p.contains(22) && p.contains(8080) && !p.contains(23));
        assert_eq!(p.to_string(), "22,8000-8080");
        assert!(Ports::parse("80-70").is_err());
        assert!(Ports::parse("65536").is_err());
        assert_eq!(Protocol::parse("ipsec-esp").unwrap(), Protocol(50));
        assert_eq!(Protocol::parse("139").unwrap().to_string(), "139");
        assert_eq!(Protocol::parse("6").unwrap().to_string(), "tcp");
        assert!(Protocol::parse("bogus").is_err());
    }

    #[test]
    fn tcp_flags_icmp_cmp() {
        let f = TcpFlags::parse("syn,!ack").unwrap();
        assert_eq!((f.mask, f.want), (0x12, 0x02));
        assert_eq!(f.to_string(), "syn,!ack");
        assert!(TcpFlags::parse("syn,syn").is_err());
        assert_eq!(IcmpOptions::parse("8:0").unwrap().to_string(), "8:0");
        assert_eq!(IcmpOptions::parse("3").unwrap().to_string(), "3:0-255");
        assert!(Cmp::parse("equal:1").unwrap().test(1));
        assert!(!Cmp::parse("greater-than:1").unwrap().test(1));
        assert!(Cmp::parse("about:1").is_err());
    }

    #[test]
    fn limit_syntax() {
        let l = Limit::parse("50/5s,2:packet").unwrap();
        assert_eq!(l.count, 50);
        assert_eq!(l.period, Duration::from_secs(5));
        assert_eq!(l.to_string(), "50/5s,2:packet");
        let l = Limit::parse("1M,100k:bit").unwrap();
        assert_eq!(
            (l.count, l.burst, l.mode),
            (1_000_000, 100_000, LimitMode::Bit)
        );
        assert_eq!(l.to_string(), "1M,100k:bit");
        assert_eq!(Limit::parse("10,5").unwrap().to_string(), "10,5:packet");
        assert!(Limit::parse("0,5:packet").is_err());
        assert!(Limit::parse("10,5:bytes").is_err());
    }

    #[test]
    fn flag_sets_print_in_table_order() {
        let m = parse_flag_set("untracked,established,related", CONN_STATES).unwrap();
        assert_eq!(
            flag_set_str(m, CONN_STATES),
            "established,related,untracked"
        );
        assert!(parse_flag_set("establish", CONN_STATES).is_err());
    }
}
