//! `ctrack ip traffic-flow ...`: the `/ip traffic-flow` menu of a running
//! dataplane, over the management API ([`crate::flow_rest`]), in the style
//! of `ctrack connection` ([`crate::client`]):
//!
//! - `ip traffic-flow print`, `ip traffic-flow set KEY=VALUE ...`
//! - `ip traffic-flow target print`, `... target add KEY=VALUE ...`,
//!   `... target set ID KEY=VALUE ...`, `... target remove ID ...`
//!
//! `set` and `add` are all or nothing (the API's); an error is the API's
//! message, which names the field.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result, anyhow};
use serde_json::{Map, Value};

use crate::client::{Client, DEFAULT_API_URL, encode, token_warning};
use crate::flow_ops::{MENU_PROPERTIES, TARGET_PROPERTIES};

const TRAFFIC_FLOW: &str = "/rest/ip/traffic-flow";
const TARGET: &str = "/rest/ip/traffic-flow/target";

/// `ctrack ip [--api URL] [--token T] <menu> ...`.
#[derive(Debug, clap::Args)]
pub struct IpArgs {
    /// The management API of the running dataplane.
    #[arg(long, global = true, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token, when the API was started with one (prefer CTRACK_TOKEN).
    #[arg(long, global = true, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub cmd: IpCmd,
}

/// `/ip` menus besides `firewall connection` (which is `ctrack connection`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum IpCmd {
    /// `/ip traffic-flow`: NetFlow v9 / IPFIX export (docs/flow-export.md).
    #[command(subcommand, name = "traffic-flow")]
    TrafficFlow(TrafficFlowCmd),
    /// `/ip route` (and `--ipv6`: `/ipv6 route`): router mode's routes
    /// (crate::route_client).
    #[command(subcommand)]
    Route(crate::route_client::RouteCmd),
    /// `/ip arp`: router mode's neighbour table (crate::route_client).
    #[command(subcommand)]
    Arp(crate::route_client::NeighCmd),
}

/// `ctrack ipv6 [--api URL] [--token T] <menu> ...`.
#[derive(Debug, clap::Args)]
pub struct Ipv6Args {
    /// The management API of the running dataplane.
    #[arg(long, global = true, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token, when the API was started with one (prefer CTRACK_TOKEN).
    #[arg(long, global = true, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub cmd: Ipv6Cmd,
}

/// `/ipv6` menus (besides `firewall`, which is `ctrack firewall --ipv6`,
/// and `route`, which is `ctrack ip route --ipv6`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Ipv6Cmd {
    /// `/ipv6 neighbor`: router mode's neighbour table.
    #[command(subcommand)]
    Neighbor(crate::route_client::NeighCmd),
}

/// Runs parsed [`Ipv6Args`], printing to stdout.
pub fn run_ipv6_args(args: Ipv6Args) -> Result<()> {
    if let Some(w) = token_warning(args.token.as_deref(), std::env::var("CTRACK_TOKEN").ok()) {
        eprintln!("ctrack: warning: {w}");
    }
    let c = Client::new(&args.api, args.token.as_deref());
    let out = match args.cmd {
        Ipv6Cmd::Neighbor(cmd) => crate::route_client::execute_neighbors(cmd, true, &c)?,
    };
    let mut stdout = std::io::stdout().lock();
    crate::out::quiet_broken_pipe(
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(anyhow::Error::from),
    )
}

/// `/ip traffic-flow` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TrafficFlowCmd {
    /// Show the settings.
    Print,
    /// Change settings, applied live: `set enabled=yes
    /// active-flow-timeout=1m` (all or none).
    Set {
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// `/ip traffic-flow target`: the collectors.
    #[command(subcommand)]
    Target(TargetCmd),
}

/// `/ip traffic-flow target` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TargetCmd {
    /// List the targets with their ids.
    Print {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Add a target: `add dst-address=192.0.2.10 port=2055 version=ipfix`.
    Add {
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Change a target: `set *1 port=4739`.
    Set {
        id: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Remove targets by id (`remove *1 *2`).
    Remove {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
    },
}

/// Runs parsed [`IpArgs`], printing to stdout.
pub fn run_args(args: IpArgs) -> Result<()> {
    if let Some(w) = token_warning(args.token.as_deref(), std::env::var("CTRACK_TOKEN").ok()) {
        eprintln!("ctrack: warning: {w}");
    }
    let out = execute(args.cmd, &args.api, args.token.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    crate::out::quiet_broken_pipe(
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(anyhow::Error::from),
    )
}

/// Runs `cmd` against the API at `api`; returns what it prints.
pub fn execute(cmd: IpCmd, api: &str, token: Option<&str>) -> Result<String> {
    let c = Client::new(api, token);
    let cmd = match cmd {
        IpCmd::TrafficFlow(cmd) => cmd,
        IpCmd::Route(cmd) => return crate::route_client::execute(cmd, &c),
        IpCmd::Arp(cmd) => return crate::route_client::execute_neighbors(cmd, false, &c),
    };
    match cmd {
        TrafficFlowCmd::Print => menu_lines(&c.get(TRAFFIC_FLOW)?),
        TrafficFlowCmd::Set { kv } => {
            c.patch(TRAFFIC_FLOW, &body(&kv)?)?;
            Ok(String::new())
        }
        TrafficFlowCmd::Target(TargetCmd::Print { json }) => {
            let text = c.get(TARGET)?;
            if json {
                Ok(text + "\n")
            } else {
                target_table(&text)
            }
        }
        TrafficFlowCmd::Target(TargetCmd::Add { kv }) => {
            let v: Value =
                serde_json::from_str(&c.put(TARGET, &body(&kv)?)?).context("the API's answer")?;
            Ok(format!("{}\n", v[".id"].as_str().unwrap_or("?")))
        }
        TrafficFlowCmd::Target(TargetCmd::Set { id, kv }) => {
            c.patch(&format!("{TARGET}/{}", encode(&id)), &body(&kv)?)?;
            Ok(String::new())
        }
        TrafficFlowCmd::Target(TargetCmd::Remove { ids }) => {
            for id in &ids {
                c.delete(&format!("{TARGET}/{}", encode(id)))?;
            }
            Ok(String::new())
        }
    }
}

/// `KEY=VALUE` words as a JSON object of strings.
fn body(kv: &[String]) -> Result<String> {
    let mut obj = Map::new();
    for w in kv {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {w:?} (e.g. enabled=yes)"))?;
        obj.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(obj).to_string())
}

/// A REST value as `print` shows it (`true`/`false` as yes/no).
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) if s == "true" => "yes".to_string(),
        Value::String(s) if s == "false" => "no".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key: value` lines, right-aligned keys, RouterOS's order.
fn menu_lines(body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(body).context("the API's answer")?;
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("the API's answer is not an object: {body}"))?;
    let width = obj.keys().map(String::len).max().unwrap_or(0);
    let mut keys: Vec<&str> = MENU_PROPERTIES
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    keys.extend(
        obj.keys()
            .map(String::as_str)
            .filter(|k| !MENU_PROPERTIES.contains(k)),
    );
    let mut out = String::new();
    for k in keys {
        let _ = writeln!(out, "{k:>width$}: {}", shown(&obj[k]));
    }
    Ok(out)
}

/// The targets as a table: `Flags: X - disabled`, then one row each.
fn target_table(body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(body).context("the API's answer")?;
    let rows = v
        .as_array()
        .ok_or_else(|| anyhow!("the API's answer is not a list: {body}"))?;
    let cols: Vec<&str> = TARGET_PROPERTIES
        .iter()
        .copied()
        .filter(|c| *c != "disabled" && *c != "comment")
        .collect();
    let cell = |r: &Value, c: &str| r.get(c).map_or(String::new(), shown);
    let mut width: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    let id_w = rows
        .iter()
        .map(|r| cell(r, ".id").len())
        .max()
        .unwrap_or(0)
        .max(2);
    for r in rows {
        for (w, c) in width.iter_mut().zip(&cols) {
            *w = (*w).max(cell(r, c).len());
        }
    }
    let mut out = String::from("Flags: X - disabled\n");
    let _ = write!(out, "{:>id_w$}   ", "ID");
    for (w, c) in width.iter().zip(&cols) {
        let _ = write!(out, "{:<w$}  ", c.to_uppercase());
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for r in rows {
        let flag = if cell(r, "disabled") == "yes" {
            'X'
        } else {
            ' '
        };
        if let Some(c) = r.get("comment") {
            let _ = writeln!(out, "{:>id_w$} {flag} ;;; {}", "", shown(c));
        }
        let _ = write!(out, "{:>id_w$} {flag} ", cell(r, ".id"));
        for (w, c) in width.iter().zip(&cols) {
            let _ = write!(out, "{:<w$}  ", cell(r, c));
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::tests::start;
    use crate::flow_export::TrafficFlow;
    use crate::flow_ops::FlowControl;
    use crate::ops::FakeDataplane;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn print_set_and_targets_through_the_api() {
        let control = Arc::new(FlowControl::for_tests(TrafficFlow::default()));
        let dp = Arc::new(FakeDataplane {
            traffic_flow: Some(control.clone()),
            ..FakeDataplane::default()
        });
        let (_srv, base) = start(dp, None);
        let tf = |cmd| execute(IpCmd::TrafficFlow(cmd), &base, None);
        let target = |cmd| tf(TrafficFlowCmd::Target(cmd));
        let id = target(TargetCmd::Add {
            kv: words("dst-address=127.0.0.1 port=9998 version=ipfix comment=lab"),
        })
        .unwrap();
        assert_eq!(id, "*1\n");
        tf(TrafficFlowCmd::Set {
            kv: words("enabled=yes nat-events=yes"),
        })
        .unwrap();
        assert!(control.settings().nat_events);
        let printed = tf(TrafficFlowCmd::Print).unwrap();
        assert!(printed.contains("   enabled: yes\n"), "{printed}");
        assert!(printed.contains("nat-events: yes\n"), "{printed}");
        assert!(printed.find("enabled").unwrap() < printed.find("cache-entries").unwrap());
        target(TargetCmd::Set {
            id: "*1".into(),
            kv: words("disabled=yes"),
        })
        .unwrap();
        let table = target(TargetCmd::Print { json: false }).unwrap();
        assert_eq!(
            table,
            "Flags: X - disabled\n\
             ID   DST-ADDRESS  PORT  VERSION  SRC-ADDRESS\n\
             \u{20}  X ;;; lab\n\
             *1 X 127.0.0.1    9998  ipfix\n",
        );
        // The API's message, naming the field.
        let e = tf(TrafficFlowCmd::Set {
            kv: words("cache-entries=many"),
        })
        .unwrap_err();
        assert!(e.to_string().contains("cache-entries"), "{e}");
        let e = target(TargetCmd::Remove {
            ids: words("*1 *9"),
        })
        .unwrap_err();
        assert!(e.to_string().contains("*9"), "{e}");
        assert!(control.targets().is_empty());
    }
}
