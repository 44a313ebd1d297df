//! `ctrack ip route ...`: router mode's routes over the management API
//! ([`crate::route_rest`]), in the style of `ctrack ip traffic-flow`:
//!
//! - `ip route print [--ipv6] [--json]`: connected and static routes, with
//!   RouterOS's flags (`X` disabled, `D` dynamic, `A` active, `c`
//!   connected, `s` static);
//! - `ip route add [--ipv6] dst-address=... gateway=... [distance=...]`:
//!   prints the new route's id;
//! - `ip route remove [--ipv6] ID ...`.
//!
//! An error is the API's message, which names the property.

use std::fmt::Write as _;

use anyhow::{Context, Result, anyhow};
use serde_json::{Map, Value};

use crate::client::{Client, encode};

/// `/ip route` (`--ipv6`: `/ipv6 route`) commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum RouteCmd {
    /// List the routes with their ids and flags.
    Print {
        /// `/ipv6 route`.
        #[arg(long)]
        ipv6: bool,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Add a static route: `add dst-address=10.9.0.0/16 gateway=10.0.2.254`.
    Add {
        #[arg(long)]
        ipv6: bool,
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Remove static routes by id (`remove *1 *2`).
    Remove {
        #[arg(long)]
        ipv6: bool,
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
}

/// `/ip arp` and `/ipv6 neighbor` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum NeighCmd {
    /// List the neighbours (static and learned, merged over the workers)
    /// with RouterOS's flags (`D` dynamic, `C` complete).
    Print {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Add a static entry: `add address=10.0.1.7 mac-address=02:00:00:00:00:07
    /// interface=ether1`; prints its id.
    Add {
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Remove static entries by id (`remove *1 *2`).
    Remove {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
}

/// Runs `cmd` on `/ip arp` (or, with `ipv6`, `/ipv6 neighbor`); returns
/// what it prints.
pub(crate) fn execute_neighbors(cmd: NeighCmd, ipv6: bool, c: &Client) -> Result<String> {
    let path = if ipv6 {
        "/rest/ipv6/neighbor"
    } else {
        "/rest/ip/arp"
    };
    match cmd {
        NeighCmd::Print { json } => {
            let text = c.get(path)?;
            if json {
                Ok(text + "\n")
            } else {
                neighbor_table(&text, ipv6)
            }
        }
        NeighCmd::Add { kv } => add(c, path, &kv, "address=10.0.0.1"),
        NeighCmd::Remove { ids } => {
            for id in &ids {
                c.delete(&format!("{path}/{}", encode(id)))?;
            }
            Ok(String::new())
        }
    }
}

/// `PUT path` with the `KEY=VALUE` words as a JSON object (a bad word is
/// an error naming it, with `example`); gives the new entry's id.
fn add(c: &Client, path: &str, kv: &[String], example: &str) -> Result<String> {
    let mut obj = Map::new();
    for w in kv {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {w:?} (e.g. {example})"))?;
        obj.insert(k.to_string(), Value::String(v.to_string()));
    }
    let v: Value = serde_json::from_str(&c.put(path, &Value::Object(obj).to_string())?)
        .context("the API's answer")?;
    Ok(format!("{}\n", v[".id"].as_str().unwrap_or("?")))
}

/// The neighbours as RouterOS prints them: a flags legend, then one row
/// each.
fn neighbor_table(body: &str, ipv6: bool) -> Result<String> {
    let v: Value = serde_json::from_str(body).context("the API's answer")?;
    let rows = v
        .as_array()
        .ok_or_else(|| anyhow!("the API's answer is not a list: {body}"))?;
    let cell = |r: &Value, c: &str| r.get(c).and_then(Value::as_str).unwrap_or("").to_string();
    let flags = |r: &Value| {
        let mut f = String::new();
        if cell(r, "dynamic") == "true" {
            f.push('D');
        }
        if !ipv6 && cell(r, "complete") == "true" {
            f.push('C');
        }
        f
    };
    let head = ["#", "", "ADDRESS", "MAC-ADDRESS", "INTERFACE", "STATUS"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                cell(r, ".id"),
                flags(r),
                cell(r, "address"),
                cell(r, "mac-address"),
                cell(r, "interface"),
                cell(r, "status"),
            ]
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::from(if ipv6 {
        "Flags: D - dynamic\n"
    } else {
        "Flags: D - dynamic; C - complete\n"
    });
    let line = |out: &mut String, cells: &[String]| {
        let mut l = String::new();
        for (w, c) in width.iter().zip(cells) {
            let _ = write!(l, "{c:<w$}  ");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut out, &head.map(String::from));
    for r in &cells {
        line(&mut out, r);
    }
    Ok(out)
}

fn base(ipv6: bool) -> &'static str {
    if ipv6 {
        "/rest/ipv6/route"
    } else {
        "/rest/ip/route"
    }
}

/// Runs `cmd` with client `c`; returns what it prints.
pub(crate) fn execute(cmd: RouteCmd, c: &Client) -> Result<String> {
    match cmd {
        RouteCmd::Print { ipv6, json } => {
            let text = c.get(base(ipv6))?;
            if json { Ok(text + "\n") } else { table(&text) }
        }
        RouteCmd::Add { ipv6, kv } => add(c, base(ipv6), &kv, "gateway=10.0.0.1"),
        RouteCmd::Remove { ipv6, ids } => {
            for id in &ids {
                c.delete(&format!("{}/{}", base(ipv6), encode(id)))?;
            }
            Ok(String::new())
        }
    }
}

/// The routes as RouterOS prints them: a flags legend, then one row each.
fn table(body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(body).context("the API's answer")?;
    let rows = v
        .as_array()
        .ok_or_else(|| anyhow!("the API's answer is not a list: {body}"))?;
    let cols = [".id", "flags", "dst-address", "gateway", "distance"];
    let cell = |r: &Value, c: &str| r.get(c).and_then(Value::as_str).unwrap_or("").to_string();
    let mut width: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(cols) {
            *w = (*w).max(cell(r, c).len());
        }
    }
    let mut out =
        String::from("Flags: X - disabled; D - dynamic; A - active; c - connect; s - static\n");
    let line = |out: &mut String, cells: Vec<String>| {
        let mut l = String::new();
        for (w, c) in width.iter().zip(cells) {
            let _ = write!(l, "{c:<w$}  ");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(
        &mut out,
        ["#", "", "DST-ADDRESS", "GATEWAY", "DISTANCE"]
            .map(String::from)
            .to_vec(),
    );
    for r in rows {
        line(&mut out, cols.iter().map(|c| cell(r, c)).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_flags_and_columns() {
        let t = table(
            r#"[{".id":"*40000000","flags":"DAc","dst-address":"10.0.1.0/24","gateway":"ether1","distance":"0"},
                {".id":"*1","flags":"As","dst-address":"0.0.0.0/0","gateway":"10.0.1.254","distance":"1"}]"#,
        )
        .unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("Flags: X - disabled"));
        assert!(
            lines[2].contains("DAc")
                && lines[2].contains("10.0.1.0/24")
                && lines[2].contains("ether1")
        );
        assert!(lines[3].starts_with("*1") && lines[3].contains("10.0.1.254"));
        assert!(table("{}").is_err());
    }

    #[test]
    fn the_neighbor_table_has_flags_and_columns() {
        let t = neighbor_table(
            r#"[{".id":"*1","address":"10.0.1.7","mac-address":"02:00:00:00:00:07","interface":"ether1","status":"permanent","dynamic":"false","complete":"true"},
                {".id":"*1A2B3C4D","address":"10.0.1.2","mac-address":"0A:00:00:00:00:02","interface":"ether1","status":"reachable","dynamic":"true","complete":"true"},
                {".id":"*1000FFFF","address":"10.0.1.9","interface":"ether1","status":"incomplete","dynamic":"true","complete":"false"}]"#,
            false,
        )
        .unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].starts_with("Flags: D - dynamic; C - complete"));
        assert!(
            lines[2].starts_with("*1 ")
                && lines[2].contains(" C ")
                && lines[2].contains("permanent")
        );
        assert!(lines[3].contains("DC") && lines[3].contains("0A:00:00:00:00:02"));
        assert!(lines[4].contains("incomplete") && !lines[4].contains("DC"));
        assert!(neighbor_table("{}", true).is_err());
    }
}
