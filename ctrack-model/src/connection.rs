//! `/ip firewall connection` rows: owned, serialisable records of connections,
//! for `print`, the REST API, the CLI client and `ctrack replay`, made from
//! the core's typed [`RawConn`] ([`ConnSnapshot::from_raw`]).
//!
//! JSON keys are the seed's property names plus `id` and `worker`. Keys that do
//! not apply to a connection's protocol are omitted: `tcp-state` only for
//! TCP; `icmp-id`, `icmp-type`, `icmp-code` only for ICMP/ICMPv6; `gre-key`,
//! `gre-version`, `gre-protocol` only for GRE. Booleans are JSON booleans,
//! counters, rates and the ICMP fields integers, `timeout` a RouterOS time,
//! `connection-mark` and `connection-type` strings (empty when unset).

use std::net::IpAddr;

use ctrack_core::conntrack::{ConnId, Dir, ProtoState, RawConn, format_duration, parse_duration};
use ctrack_core::flow::{Addr, Family, proto};

use crate::settings::yes_no;

/// One connection as seen at one instant. Deserialising is lenient, as a
/// client of a newer server should be: a missing key takes its default
/// (empty, 0, `false`), an unknown key is ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ConnSnapshot {
    pub id: String,
    pub worker: u16,
    pub protocol: String,
    pub src_address: String,
    pub dst_address: String,
    pub reply_src_address: String,
    pub reply_dst_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gre_key: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gre_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gre_protocol: Option<String>,
    pub timeout: String,
    pub orig_packets: u64,
    pub orig_bytes: u64,
    pub orig_fasttrack_packets: u64,
    pub orig_fasttrack_bytes: u64,
    pub orig_rate: u64,
    pub repl_packets: u64,
    pub repl_bytes: u64,
    pub repl_fasttrack_packets: u64,
    pub repl_fasttrack_bytes: u64,
    pub repl_rate: u64,
    pub assured: bool,
    pub confirmed: bool,
    pub seen_reply: bool,
    pub dying: bool,
    pub expected: bool,
    pub fasttrack: bool,
    pub srcnat: bool,
    pub dstnat: bool,
    pub connection_mark: String,
    pub connection_type: String,
}

/// `where PROP=VALUE` named a property no connection has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown connection property {0:?}")]
pub struct FilterError(pub String);

/// The seed's name for IP protocol `p` (or its number).
pub fn protocol_name(p: u8) -> String {
    let s = match p {
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        41 => "ipv6-encap",
        47 => "gre",
        50 => "ipsec-esp",
        51 => "ipsec-ah",
        58 => "icmpv6",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        115 => "l2tp",
        132 => "sctp",
        136 => "udp-lite",
        _ => return p.to_string(),
    };
    s.to_string()
}

fn gre_protocol_name(ethertype: u16) -> String {
    match ethertype {
        0x0800 => "ip".to_string(),
        0x86dd => "ipv6".to_string(),
        0x880b => "ppp".to_string(),
        0x6558 => "teb".to_string(),
        0x8847 => "mpls".to_string(),
        x => format!("0x{x:04x}"),
    }
}

fn address(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (ip, None) => ip.to_string(),
    }
}

impl ConnSnapshot {
    /// Every property name [`ConnSnapshot::get`] and [`ConnSnapshot::matches`] know.
    pub const PROPERTIES: [&'static str; 36] = [
        "id",
        "worker",
        "protocol",
        "src-address",
        "dst-address",
        "reply-src-address",
        "reply-dst-address",
        "tcp-state",
        "icmp-id",
        "icmp-type",
        "icmp-code",
        "gre-key",
        "gre-version",
        "gre-protocol",
        "timeout",
        "orig-packets",
        "orig-bytes",
        "orig-fasttrack-packets",
        "orig-fasttrack-bytes",
        "orig-rate",
        "repl-packets",
        "repl-bytes",
        "repl-fasttrack-packets",
        "repl-fasttrack-bytes",
        "repl-rate",
        "assured",
        "confirmed",
        "seen-reply",
        "dying",
        "expected",
        "fasttrack",
        "srcnat",
        "dstnat",
        "connection-mark",
        "connection-type",
        // The `print` flags column, e.g. `AC` (see [`ConnSnapshot::flags`]).
        "flags",
    ];

    /// The RouterOS row of a connection the core copied out.
    pub fn from_raw(raw: &RawConn) -> ConnSnapshot {
        let e = raw.entry();
        let ft = raw.fasttrack_counters();
        let mark = raw.mark();
        let k = e.key();
        // The table's reply key: a translated connection's stored one.
        let r = *raw.reply_key();
        let ported = matches!(k.proto, proto::TCP | proto::UDP);
        let ip = |a: &Addr, f: Family| a.to_ip(f);
        let fam = k.family;
        let port = |p: u16| ported.then_some(p);
        let icmp = matches!(k.proto, proto::ICMP | proto::ICMPV6);
        let (gre_version, gre_protocol) = match e.proto_state() {
            ProtoState::Gre { protocol, .. } if k.proto == proto::GRE => (
                Some(k.ver.saturating_sub(1).to_string()),
                Some(gre_protocol_name(*protocol)),
            ),
            _ => (None, None),
        };
        ConnSnapshot {
            id: raw.id().to_string(),
            worker: raw.worker(),
            protocol: protocol_name(k.proto),
            src_address: address(ip(&k.src, fam), port(k.sport)),
            dst_address: address(ip(&k.dst, fam), port(k.dport)),
            reply_src_address: address(ip(&r.src, fam), port(r.sport)),
            reply_dst_address: address(ip(&r.dst, fam), port(r.dport)),
            tcp_state: e.tcp_state().map(|s| s.name().to_string()),
            icmp_id: icmp.then_some(k.sport),
            icmp_type: icmp.then_some((k.dport >> 8) as u8),
            icmp_code: icmp.then_some((k.dport & 0xff) as u8),
            gre_key: if gre_version.is_some() {
                e.gre_key()
            } else {
                None
            },
            gre_version,
            gre_protocol,
            timeout: format_duration(raw.remaining()),
            orig_packets: e.packets(Dir::Orig),
            orig_bytes: e.bytes(Dir::Orig),
            orig_fasttrack_packets: ft.packets[0],
            orig_fasttrack_bytes: ft.bytes[0],
            orig_rate: raw.rate(Dir::Orig),
            repl_packets: e.packets(Dir::Reply),
            repl_bytes: e.bytes(Dir::Reply),
            repl_fasttrack_packets: ft.packets[1],
            repl_fasttrack_bytes: ft.bytes[1],
            repl_rate: raw.rate(Dir::Reply),
            assured: e.assured(),
            confirmed: e.confirmed(),
            seen_reply: e.seen_reply(),
            dying: raw.dying(),
            expected: e.expected(),
            fasttrack: e.fasttrack(),
            srcnat: e.srcnat(),
            dstnat: e.dstnat(),
            connection_mark: if mark == 0 {
                String::new()
            } else {
                mark.to_string()
            },
            connection_type: e.helper().map(|h| h.name().to_string()).unwrap_or_default(),
        }
    }

    /// RouterOS `print` flags, in RouterOS's order: `E` expected, `S`
    /// seen-reply, `A` assured, `C` confirmed, `D` dying, `F` fasttrack,
    /// `s` srcnat, `d` dstnat (see [`FLAGS`]).
    pub fn flags(&self) -> String {
        let on = [
            self.expected,
            self.seen_reply,
            self.assured,
            self.confirmed,
            self.dying,
            self.fasttrack,
            self.srcnat,
            self.dstnat,
        ];
        FLAGS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|((c, _), _)| *c)
            .collect()
    }

    /// The text form of property `prop` (`Ok(None)` when it does not apply
    /// to this connection's protocol).
    pub fn get(&self, prop: &str) -> Result<Option<String>, FilterError> {
        let b = |v: bool| Some(yes_no(v).to_string());
        let n = |v: u64| Some(v.to_string());
        Ok(match prop {
            "id" => Some(self.id.clone()),
            "worker" => n(u64::from(self.worker)),
            "protocol" => Some(self.protocol.clone()),
            "src-address" => Some(self.src_address.clone()),
            "dst-address" => Some(self.dst_address.clone()),
            "reply-src-address" => Some(self.reply_src_address.clone()),
            "reply-dst-address" => Some(self.reply_dst_address.clone()),
            "tcp-state" => self.tcp_state.clone(),
            "icmp-id" => self.icmp_id.map(|v| v.to_string()),
            "icmp-type" => self.icmp_type.map(|v| v.to_string()),
            "icmp-code" => self.icmp_code.map(|v| v.to_string()),
            "gre-key" => self.gre_key.map(|v| v.to_string()),
            "gre-version" => self.gre_version.clone(),
            "gre-protocol" => self.gre_protocol.clone(),
            "timeout" => Some(self.timeout.clone()),
            "orig-packets" => n(self.orig_packets),
            "orig-bytes" => n(self.orig_bytes),
            "orig-fasttrack-packets" => n(self.orig_fasttrack_packets),
            "orig-fasttrack-bytes" => n(self.orig_fasttrack_bytes),
            "orig-rate" => n(self.orig_rate),
            "repl-packets" => n(self.repl_packets),
            "repl-bytes" => n(self.repl_bytes),
            "repl-fasttrack-packets" => n(self.repl_fasttrack_packets),
            "repl-fasttrack-bytes" => n(self.repl_fasttrack_bytes),
            "repl-rate" => n(self.repl_rate),
            "assured" => b(self.assured),
            "confirmed" => b(self.confirmed),
            "seen-reply" => b(self.seen_reply),
            "dying" => b(self.dying),
            "expected" => b(self.expected),
            "fasttrack" => b(self.fasttrack),
            "srcnat" => b(self.srcnat),
            "dstnat" => b(self.dstnat),
            "connection-mark" => Some(self.connection_mark.clone()),
            "connection-type" => Some(self.connection_type.clone()),
            "flags" => Some(self.flags()),
            _ => return Err(FilterError(prop.to_string())),
        })
    }

    /// `where PROP=VALUE`: booleans accept yes/no/true/false; an address
    /// property also matches by IP alone (`src-address=10.0.0.1` matches
    /// `10.0.0.1:80`); `timeout` compares as a time; everything else as text.
    /// A property that does not apply to the protocol never matches.
    pub fn matches(&self, prop: &str, value: &str) -> Result<bool, FilterError> {
        let Some(have) = self.get(prop)? else {
            return Ok(false);
        };
        let value = value.trim();
        if have == value {
            return Ok(true);
        }
        Ok(match prop {
            p if BOOL_PROPERTIES.contains(&p) => {
                let want = matches!(value, "yes" | "true");
                let known = matches!(value, "yes" | "true" | "no" | "false");
                known && (have == "yes") == want
            }
            "src-address" | "dst-address" | "reply-src-address" | "reply-dst-address" => {
                strip_port(&have) == value.trim_start_matches('[').trim_end_matches(']')
            }
            // `timeout` is shown in whole seconds (under one second, as
            // `Nms`), so comparing whole seconds loses nothing.
            "timeout" => match (parse_duration(value), parse_duration(&self.timeout)) {
                (Ok(want), Ok(have)) => want.as_secs() == have.as_secs(),
                _ => false,
            },
            "id" => value.eq_ignore_ascii_case(&have),
            _ => false,
        })
    }
}

/// The `print` flags with the property each stands for, in RouterOS's order
/// (v7's `Flags:` legend; `H` hw-offload is left out: ctrack offloads
/// nothing to hardware).
pub const FLAGS: [(char, &str); 8] = [
    ('E', "expected"),
    ('S', "seen-reply"),
    ('A', "assured"),
    ('C', "confirmed"),
    ('D', "dying"),
    ('F', "fasttrack"),
    ('s', "srcnat"),
    ('d', "dstnat"),
];

/// The properties that are flags (`yes`/`no`).
pub const BOOL_PROPERTIES: [&str; 8] = [
    "assured",
    "confirmed",
    "seen-reply",
    "dying",
    "expected",
    "fasttrack",
    "srcnat",
    "dstnat",
];

/// The properties that are non-negative integers.
pub const NUMBER_PROPERTIES: [&str; 15] = [
    "worker",
    "icmp-id",
    "icmp-type",
    "icmp-code",
    "gre-key",
    "orig-packets",
    "orig-bytes",
    "orig-fasttrack-packets",
    "orig-fasttrack-bytes",
    "orig-rate",
    "repl-packets",
    "repl-bytes",
    "repl-fasttrack-packets",
    "repl-fasttrack-bytes",
    "repl-rate",
];

/// `where PROP=VALUE` gave a value that does not have the property's form
/// (so it could never match).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad value {value:?} for {prop}: {problem}")]
pub struct FilterValueError {
    pub prop: String,
    pub value: String,
    pub problem: &'static str,
}

/// Checks that `value` has the form of property `prop` (known to
/// [`check_property`]): flags take yes/no/true/false, counters a
/// non-negative integer, `timeout` a RouterOS time, `id` `*` and hex digits;
/// text properties take anything.
pub fn check_filter_value(prop: &str, value: &str) -> Result<(), FilterValueError> {
    let v = value.trim();
    let problem = if BOOL_PROPERTIES.contains(&prop) {
        (!matches!(v, "yes" | "no" | "true" | "false")).then_some("expected yes or no")
    } else if NUMBER_PROPERTIES.contains(&prop) {
        v.parse::<u64>()
            .is_err()
            .then_some("expected a non-negative integer")
    } else if prop == "timeout" {
        parse_duration(v)
            .is_err()
            .then_some("expected a time such as 10s, 3m or 1d2h")
    } else if prop == "id" {
        v.parse::<ConnId>()
            .is_err()
            .then_some("expected * and hex digits, e.g. *1f2a")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(FilterValueError {
            prop: prop.to_string(),
            value: value.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

/// `Ok` if `prop` is a property a filter may name.
pub fn check_property(prop: &str) -> Result<(), FilterError> {
    if ConnSnapshot::PROPERTIES.contains(&prop) {
        Ok(())
    } else {
        Err(FilterError(prop.to_string()))
    }
}

/// `10.0.0.1:80` -> `10.0.0.1`, `[2001:db8::1]:80` -> `2001:db8::1`.
fn strip_port(a: &str) -> &str {
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rsplit_once(':') {
        Some((ip, _)) if !ip.contains(':') => ip,
        _ => a,
    }
}

impl From<&RawConn> for ConnSnapshot {
    fn from(raw: &RawConn) -> ConnSnapshot {
        ConnSnapshot::from_raw(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_checked_by_the_propertys_form() {
        for (prop, good, bad) in [
            ("assured", "yes", "maybe"),
            ("orig-packets", "12", "many"),
            ("timeout", "1d2h", "soon"),
            ("id", "*1f2a", "1f2a"),
        ] {
            check_filter_value(prop, good).unwrap();
            let e = check_filter_value(prop, bad).unwrap_err().to_string();
            assert!(e.contains(prop) && e.contains(bad), "{e}");
        }
        check_filter_value("src-address", "anything").unwrap();
        for p in BOOL_PROPERTIES.iter().chain(&NUMBER_PROPERTIES) {
            check_property(p).unwrap();
        }
    }
}
