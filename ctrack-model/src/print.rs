//! The `print` forms of connection rows, as RouterOS v7 prints them:
//! the table (`print`, `print stats`), `print detail`, and the JSON rows a
//! client reads back ([`row_from_json`]).
//!
//! Tables can be written as their rows arrive ([`TableWriter`]): the column
//! widths come from the rows seen before the header is written (the first
//! batch); a later, longer cell widens its own line only. A listing of
//! millions of rows is thus printed as it streams in, not gathered first.

use core::fmt::Write as _;

use serde_json::Value;

use crate::connection::{BOOL_PROPERTIES, ConnSnapshot, FLAGS, NUMBER_PROPERTIES};

/// `print`'s columns after `#` and the flags, RouterOS v7's defaults.
pub const DEFAULT_COLUMNS: [&str; 11] = [
    "protocol",
    "src-address",
    "dst-address",
    "tcp-state",
    "timeout",
    "orig-rate",
    "repl-rate",
    "orig-packets",
    "repl-packets",
    "orig-bytes",
    "repl-bytes",
];

/// `print stats`: the counters of each connection.
pub const STATS_COLUMNS: [&str; 11] = [
    "protocol",
    "src-address",
    "dst-address",
    "orig-packets",
    "orig-bytes",
    "repl-packets",
    "repl-bytes",
    "orig-fasttrack-packets",
    "orig-fasttrack-bytes",
    "repl-fasttrack-packets",
    "repl-fasttrack-bytes",
];

/// The `Flags:` legend line (with its newline).
pub fn legend() -> String {
    let parts: Vec<String> = FLAGS
        .iter()
        .map(|(c, p)| format!("{c} - {}", p.to_ascii_uppercase()))
        .collect();
    format!("Flags: {}\n", parts.join("; "))
}

/// The text of one cell: rates as RouterOS shows them (`1.2Mbps`), a
/// property that does not apply to the protocol empty.
pub fn cell(r: &ConnSnapshot, prop: &str) -> String {
    match prop {
        "orig-rate" => format_rate(r.orig_rate),
        "repl-rate" => format_rate(r.repl_rate),
        p => r.get(p).ok().flatten().unwrap_or_default(),
    }
}

fn right_aligned(prop: &str) -> bool {
    NUMBER_PROPERTIES.contains(&prop) || prop == "timeout"
}

/// Writes a table row by row: [`TableWriter::new`] sizes the columns from
/// the rows at hand, [`TableWriter::header`] gives the legend and heading,
/// [`TableWriter::row`] one numbered line.
#[derive(Clone, Debug)]
pub struct TableWriter {
    columns: Vec<&'static str>,
    /// Widths of `#`, the flags, then each column.
    widths: Vec<usize>,
    next: usize,
}

impl TableWriter {
    /// A table of `columns`, sized for `sample` (headings at least).
    pub fn new(columns: &[&'static str], sample: &[ConnSnapshot]) -> TableWriter {
        let mut widths = vec![1, 0];
        widths.extend(columns.iter().map(|c| c.len()));
        widths[0] = widths[0].max(sample.len().saturating_sub(1).to_string().len());
        for r in sample {
            widths[1] = widths[1].max(r.flags().len());
            for (w, c) in widths[2..].iter_mut().zip(columns) {
                *w = (*w).max(cell(r, c).len());
            }
        }
        TableWriter {
            columns: columns.to_vec(),
            widths,
            next: 0,
        }
    }

    /// The legend, the `Columns:` line and the heading line.
    pub fn header(&self) -> String {
        let mut out = legend();
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let _ = writeln!(out, "Columns: {}", names.join(", "));
        let mut head = vec!["#".to_string(), String::new()];
        head.extend(names);
        out.push_str(&self.line(&head));
        out
    }

    /// The next row's line (numbered from 0, as RouterOS numbers items).
    pub fn row(&mut self, r: &ConnSnapshot) -> String {
        let mut cells = vec![self.next.to_string(), r.flags()];
        cells.extend(self.columns.iter().map(|c| cell(r, c)));
        self.next += 1;
        self.line(&cells)
    }

    fn line(&self, cells: &[String]) -> String {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&self.widths).enumerate() {
            // Numbers right-aligned, text left-aligned, as RouterOS prints.
            let right = i == 0 || (i >= 2 && right_aligned(self.columns[i - 2]));
            if right {
                let _ = write!(l, "{c:>w$} ");
            } else {
                let _ = write!(l, "{c:<w$} ");
            }
        }
        let mut l = l.trim_end().to_string();
        l.push('\n');
        l
    }
}

/// RouterOS `print`-like table of connections (the default columns).
pub fn format_table(rows: &[ConnSnapshot]) -> String {
    let mut t = TableWriter::new(&DEFAULT_COLUMNS, rows);
    let mut out = t.header();
    for r in rows {
        out.push_str(&t.row(r));
    }
    out
}

/// One connection as `print detail` shows it: number, flags, then every
/// property that applies as `name=value` (flags are in the flags column;
/// empty marks and types are left out), on one line; ctrack's `worker`
/// last.
pub fn format_detail(n: usize, r: &ConnSnapshot) -> String {
    let mut l = format!("{n:>2} {:<3} ", r.flags());
    for p in ConnSnapshot::PROPERTIES {
        if BOOL_PROPERTIES.contains(&p) || matches!(p, "flags" | "id" | "worker") {
            continue;
        }
        let v = cell(r, p);
        if v.is_empty() {
            continue;
        }
        let v = if v.contains([' ', '"']) {
            format!("{v:?}")
        } else {
            v
        };
        let _ = write!(l, "{p}={v} ");
    }
    let _ = write!(l, "worker={}", r.worker);
    let mut l = l.trim_end().to_string();
    l.push('\n');
    l
}

/// `1.2Mbps`-style rate, as RouterOS shows rates in `print`.
pub fn format_rate(bps: u64) -> String {
    if bps < 1000 {
        format!("{bps}bps")
    } else if bps < 1_000_000 {
        format!("{:.1}kbps", bps as f64 / 1e3)
    } else if bps < 1_000_000_000 {
        format!("{:.1}Mbps", bps as f64 / 1e6)
    } else {
        format!("{:.1}Gbps", bps as f64 / 1e9)
    }
}

/// A row as a server sends it, read leniently: this server's JSON (numbers
/// and booleans, `id`) and RouterOS v7 REST's (every value a string,
/// `.id`, `"true"`/`"false"`) both give the same [`ConnSnapshot`]; unknown
/// keys are ignored. `Err` names the property whose value has the wrong form.
pub fn row_from_json(v: &Value) -> Result<ConnSnapshot, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("a row is not an object: {v}"))?;
    let mut norm = serde_json::Map::with_capacity(obj.len());
    for (k, v) in obj {
        let key = if k == ".id" { "id" } else { k.as_str() };
        let v = match v {
            Value::String(s) if NUMBER_PROPERTIES.contains(&key) => {
                let n: u64 = s
                    .parse()
                    .map_err(|_| format!("bad value {s:?} for {key}: expected an integer"))?;
                Value::from(n)
            }
            Value::String(s) if BOOL_PROPERTIES.contains(&key) => match s.as_str() {
                "true" | "yes" => Value::Bool(true),
                "false" | "no" => Value::Bool(false),
                _ => return Err(format!("bad value {s:?} for {key}: expected true or false")),
            },
            Value::Number(n) if !NUMBER_PROPERTIES.contains(&key) => Value::String(n.to_string()),
            other => other.clone(),
        };
        norm.insert(key.to_string(), v);
    }
    serde_json::from_value(Value::Object(norm)).map_err(|e| format!("a row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ConnSnapshot {
        ConnSnapshot {
            id: "*1f2a".into(),
            protocol: "tcp".into(),
            src_address: "10.0.0.1:1000".into(),
            dst_address: "10.0.0.2:80".into(),
            tcp_state: Some("established".into()),
            timeout: "23h59m59s".into(),
            orig_packets: 3,
            orig_rate: 1_500_000,
            seen_reply: true,
            assured: true,
            confirmed: true,
            srcnat: true,
            ..Default::default()
        }
    }

    #[test]
    fn flags_legend_and_columns_as_routeros() {
        let r = row();
        assert_eq!(r.flags(), "SACs");
        let d = ConnSnapshot {
            dying: true,
            expected: true,
            fasttrack: true,
            dstnat: true,
            ..Default::default()
        };
        assert_eq!(d.flags(), "EDFd");
        assert_eq!(
            legend(),
            "Flags: E - EXPECTED; S - SEEN-REPLY; A - ASSURED; C - CONFIRMED; D - DYING; \
             F - FASTTRACK; s - SRCNAT; d - DSTNAT\n"
        );
        let t = format_table(std::slice::from_ref(&r));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[1].starts_with("Columns: PROTOCOL, SRC-ADDRESS, DST-ADDRESS, TCP-STATE"));
        assert!(lines[2].starts_with("# "), "{t}");
        assert!(lines[3].starts_with("0 SACs tcp "), "{t}");
        assert!(lines[3].contains(" 1.5Mbps "), "{t}");
        // Numbers right-aligned under their heading.
        let h = lines[2].find("ORIG-PACKETS").unwrap() + "ORIG-PACKETS".len();
        assert_eq!(&lines[3][h - 1..h], "3", "{t}");
    }

    #[test]
    fn detail_shows_what_applies() {
        let l = format_detail(0, &row());
        assert!(
            l.starts_with(" 0 SACs protocol=tcp src-address=10.0.0.1:1000 "),
            "{l}"
        );
        assert!(
            l.contains(" tcp-state=established timeout=23h59m59s "),
            "{l}"
        );
        assert!(
            !l.contains("icmp") && !l.contains("assured") && !l.contains("*1f2a"),
            "{l}"
        );
    }

    #[test]
    fn rows_read_in_both_wire_forms() {
        let r = row();
        let ours = serde_json::to_value(&r).unwrap();
        assert_eq!(row_from_json(&ours).unwrap(), r);
        let mut strings = serde_json::Map::new();
        for (k, v) in ours.as_object().unwrap() {
            let k = if k == "id" {
                ".id".to_string()
            } else {
                k.clone()
            };
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            strings.insert(k, Value::String(v));
        }
        strings.insert("hw-offload".into(), "false".into());
        assert_eq!(row_from_json(&Value::Object(strings)).unwrap(), r);
        let e = row_from_json(&serde_json::json!({"orig-packets": "many"})).unwrap_err();
        assert!(e.contains("orig-packets"), "{e}");
        let e = row_from_json(&serde_json::json!({"assured": "maybe"})).unwrap_err();
        assert!(e.contains("assured"), "{e}");
    }
}
