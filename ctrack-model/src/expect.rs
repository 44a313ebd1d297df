//! Expectations as the operator reads them (`conntrack -L expect`; RouterOS
//! has no listing of its own): one row per expected connection, made from
//! the core's [`Expectation`], with the JSON names the API serves and the
//! CLI prints (docs/helpers.md).

use serde::{Deserialize, Serialize};

use ctrack_core::conntrack::expect::Expectation;
use ctrack_core::conntrack::{Duration, format_duration};
use ctrack_core::flow::{Addr, proto};

/// One expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExpectRow {
    /// `tcp`, `udp`, `gre`.
    pub protocol: String,
    /// Where the expected connection comes from: `10.0.0.1:*` (any source
    /// port), or the address alone for GRE.
    pub src_address: String,
    /// Where it goes: `10.0.0.2:5001`, or the address alone for GRE.
    pub dst_address: String,
    /// GRE version 1 (PPTP): the call id its packets carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gre_key: Option<u16>,
    /// Time left.
    pub timeout: String,
    /// The helper (`connection-type` of the connection it opens).
    pub helper: String,
    /// The master connection's id (`*1f2a`).
    pub master: String,
    /// The connection-mark the expected connection inherits ("" when none).
    pub connection_mark: String,
}

fn addr(a: &Addr, v6: bool, port: Option<Option<u16>>) -> String {
    let ip = format!("{a:?}");
    let ip = if v6 && port.is_some() {
        format!("[{ip}]")
    } else {
        ip
    };
    match port {
        None => ip,
        Some(None) => format!("{ip}:*"),
        Some(Some(p)) => format!("{ip}:{p}"),
    }
}

impl ExpectRow {
    /// The row of `e` with `left_ns` nanoseconds to live.
    pub fn from_core(e: &Expectation, left_ns: u64) -> ExpectRow {
        let k = &e.key;
        let v6 = k.family == ctrack_core::flow::Family::V6;
        let gre = k.proto == proto::GRE;
        ExpectRow {
            protocol: crate::protocol_name(k.proto),
            src_address: addr(&k.src, v6, (!gre).then_some(e.sport)),
            dst_address: addr(&k.dst, v6, (!gre).then_some(Some(k.dport))),
            gre_key: gre.then_some(k.dport),
            timeout: format_duration(Duration::from_nanos(left_ns)),
            helper: e.helper.name().to_string(),
            master: e.master.to_string(),
            connection_mark: if e.mark == 0 {
                String::new()
            } else {
                e.mark.to_string()
            },
        }
    }
}

/// The rows as a table (`ctrack connection expect`).
pub fn format_expect_table(rows: &[ExpectRow]) -> String {
    let head = [
        "#",
        "PROTOCOL",
        "SRC-ADDRESS",
        "DST-ADDRESS",
        "TIMEOUT",
        "HELPER",
        "MASTER",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let dst = match r.gre_key {
                Some(k) => format!("{} key={k}", r.dst_address),
                None => r.dst_address.clone(),
            };
            [
                i.to_string(),
                r.protocol.clone(),
                r.src_address.clone(),
                dst,
                r.timeout.clone(),
                r.helper.clone(),
                r.master.clone(),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[&str]| {
        let parts: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<width$}", width = w[i]))
            .collect();
        out.push_str(parts.join(" ").trim_end());
        out.push('\n');
    };
    line(&mut out, &head);
    for c in &cells {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&mut out, &refs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_core::conntrack::ConnId;
    use ctrack_core::conntrack::expect::ExpectKey;
    use ctrack_core::flow::Family;
    use ctrack_core::helper::HelperKind;

    #[test]
    fn rows_show_the_wildcard_and_gre_keys() {
        let e = Expectation {
            key: ExpectKey {
                family: Family::V4,
                proto: proto::TCP,
                src: Addr::from_v4([10, 0, 0, 1]),
                dst: Addr::from_v4([10, 0, 0, 2]),
                dport: 5001,
            },
            sport: None,
            master: ConnId(0x2a),
            helper: HelperKind::Ftp,
            mark: 0,
            deadline: 0,
            group: 0,
            nat: None,
        };
        let r = ExpectRow::from_core(&e, 299_500_000_000);
        assert_eq!(r.protocol, "tcp");
        assert_eq!(r.src_address, "10.0.0.1:*");
        assert_eq!(r.dst_address, "10.0.0.2:5001");
        assert_eq!(r.timeout, "4m59s");
        assert_eq!(r.helper, "ftp");
        assert_eq!(r.master, "*2a");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"src-address\":\"10.0.0.1:*\""), "{json}");
        assert_eq!(serde_json::from_str::<ExpectRow>(&json).unwrap(), r);
        let mut g = e;
        g.key.proto = proto::GRE;
        g.key.dport = 0x1234;
        g.helper = HelperKind::Pptp;
        let r = ExpectRow::from_core(&g, 1_000_000_000);
        assert_eq!(
            (r.src_address.as_str(), r.gre_key),
            ("10.0.0.1", Some(0x1234))
        );
        let t = format_expect_table(&[r]);
        assert!(t.contains("key=4660") && t.contains("pptp"), "{t}");
    }
}
