//! `ctrack firewall ...` and `ctrack export`: the firewall menus of a
//! running dataplane from the command line, over the REST routes of
//! [`crate::fw_rest`], in RouterOS's console forms:
//!
//! - `ctrack firewall filter print` (RouterOS's `print`: `#`, flags, the
//!   comment as `;;;`, then the properties), `print stats` (`#`, chain,
//!   action, bytes, packets), `print --json` (the REST rows);
//! - `add chain=forward action=drop protocol=udp [place-before=N]`;
//! - `set N|*ID KEY=VALUE ...` (an empty value unsets: `comment=`);
//! - `remove N|*ID ...`; `move N|*ID ... [--destination N|*ID]`;
//!   `reset-counters [N|*ID ...]`;
//! - `--ipv6` for `/ipv6 firewall`; menus `filter`, `mangle`, `nat`,
//!   `address-list`, `layer7-protocol` (IPv4 only).
//!
//! `N` is the position `print` shows, `*ID` the REST `.id`. `ctrack export`
//! prints the running configuration as a script that `ctrack run --rules`
//! loads back to the same state.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ctrack_rules::Fam;
use serde_json::{Map, Value};

use crate::client::DEFAULT_API_URL;
use crate::fw_manage::Menu;

/// `ctrack firewall [--api URL] [--token T] [--ipv6] MENU COMMAND`.
#[derive(Debug, clap::Args)]
pub struct FirewallArgs {
    /// The management API of the running dataplane.
    #[arg(long, global = true, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token (prefer the CTRACK_TOKEN environment variable).
    #[arg(long, global = true, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// `/ipv6 firewall` instead of `/ip firewall`.
    #[arg(long, global = true)]
    pub ipv6: bool,
    /// `filter`, `mangle`, `nat`, `address-list` or `layer7-protocol`.
    pub menu: String,
    #[command(subcommand)]
    pub cmd: FirewallCmd,
}

/// Commands of a firewall menu.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum FirewallCmd {
    /// List the items: `print`, `print stats` (rules' counters), `--json`.
    Print {
        /// `stats` for the counters.
        #[arg(value_name = "stats")]
        form: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add an item: `add chain=forward action=drop [place-before=N]`.
    Add {
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Change an item's properties: `set N|*ID KEY=VALUE ...`.
    Set {
        #[arg(value_name = "N|*ID")]
        item: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
    /// Remove items: `remove N|*ID ...`.
    Remove {
        #[arg(value_name = "N|*ID", required = true)]
        items: Vec<String>,
    },
    /// Move rules before `--destination` (to the end without it).
    Move {
        #[arg(value_name = "N|*ID", required = true)]
        items: Vec<String>,
        #[arg(long, value_name = "N|*ID")]
        destination: Option<String>,
    },
    /// Counters of the given rules (all without any) start again from 0.
    ResetCounters {
        #[arg(value_name = "N|*ID")]
        items: Vec<String>,
    },
}

/// `ctrack export [--api URL] [--token T]`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    #[arg(long, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

struct Http {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl Http {
    fn new(api: &str, token: Option<&str>) -> Http {
        Http {
            base: api.trim_end_matches('/').to_string(),
            auth: token
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}")),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent(),
        }
    }

    /// The body of a 2xx answer; otherwise the API's `detail` as the error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let b = body.map(Value::to_string).unwrap_or_default();
        let resp = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &self.auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &self.auth {
                    r = r.header("Authorization", a);
                }
                r.content_type("application/json").send(&b)
            }
        };
        let mut resp = resp.with_context(|| format!("calling {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{detail}")
    }
}

fn menu_of(name: &str, ipv6: bool) -> Result<Menu> {
    let fam = if ipv6 { "ipv6" } else { "ip" };
    Menu::from_words(&[fam, "firewall", name]).ok_or_else(|| {
        anyhow!(
            "no menu /{fam} firewall {name}: filter, mangle, nat, address-list{}",
            if ipv6 { "" } else { ", layer7-protocol" }
        )
    })
}

fn kv_object(kv: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for w in kv {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| anyhow!("expected KEY=VALUE, got {w:?} (e.g. chain=forward)"))?;
        if m.insert(k.to_string(), Value::String(v.to_string()))
            .is_some()
        {
            bail!("{k} is given twice");
        }
    }
    Ok(m)
}

/// Runs `ctrack firewall ...`, printing to stdout.
pub fn run_args(args: FirewallArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let r = execute_to(&args, &mut out).and_then(|()| Ok(out.flush()?));
    crate::out::quiet_broken_pipe(r)
}

/// Runs `ctrack export`, printing the script to stdout.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let text =
        Http::new(&args.api, args.token.as_deref()).call("GET", crate::fw_rest::EXPORT, None)?;
    let mut out = std::io::stdout().lock();
    crate::out::quiet_broken_pipe(out.write_all(text.as_bytes()).map_err(Into::into))
}

/// [`run_args`] writing to `out`.
pub fn execute_to(args: &FirewallArgs, out: &mut dyn Write) -> Result<()> {
    let menu = menu_of(&args.menu, args.ipv6)?;
    let http = Http::new(&args.api, args.token.as_deref());
    let base = menu.rest_path();
    match &args.cmd {
        FirewallCmd::Print { form, json } => {
            let stats = match form.as_slice() {
                [] => false,
                [s] if s == "stats" => true,
                other => bail!("print takes `stats` or nothing, not {:?}", other.join(" ")),
            };
            if stats && !menu.is_rules() {
                bail!("{} has no counters", menu.path());
            }
            let body = http.call("GET", &base, None)?;
            if *json {
                out.write_all(body.as_bytes())?;
                out.write_all(b"\n")?;
                return Ok(());
            }
            let rows: Vec<Map<String, Value>> =
                serde_json::from_str(&body).context("the API's answer")?;
            let text = if stats {
                print_stats(&rows)
            } else {
                print_rows(&rows)
            };
            out.write_all(text.as_bytes())?;
        }
        FirewallCmd::Add { kv } => {
            let row = http.call(
                "POST",
                &format!("{base}/add"),
                Some(&Value::Object(kv_object(kv)?)),
            )?;
            let v: Value = serde_json::from_str(&row).unwrap_or_default();
            if let Some(id) = v[".id"].as_str() {
                writeln!(out, "{id}")?;
            }
        }
        FirewallCmd::Set { item, kv } => {
            let mut m = kv_object(kv)?;
            m.insert("numbers".into(), Value::String(item.clone()));
            http.call("POST", &format!("{base}/set"), Some(&Value::Object(m)))?;
        }
        FirewallCmd::Remove { items } => {
            let m = Map::from_iter([("numbers".to_string(), Value::String(items.join(",")))]);
            http.call("POST", &format!("{base}/remove"), Some(&Value::Object(m)))?;
        }
        FirewallCmd::Move { items, destination } => {
            let mut m = Map::from_iter([("numbers".to_string(), Value::String(items.join(",")))]);
            if let Some(d) = destination {
                m.insert("destination".into(), Value::String(d.clone()));
            }
            http.call("POST", &format!("{base}/move"), Some(&Value::Object(m)))?;
        }
        FirewallCmd::ResetCounters { items } => {
            let mut m = Map::new();
            if !items.is_empty() {
                m.insert("numbers".into(), Value::String(items.join(",")));
            }
            http.call(
                "POST",
                &format!("{base}/reset-counters"),
                Some(&Value::Object(m)),
            )?;
        }
    }
    Ok(())
}

const HIDDEN: [&str; 7] = [
    ".id", "comment", "disabled", "dynamic", "invalid", "bytes", "packets",
];

/// RouterOS's `print`: a flags legend, then per item `#`, flags, the
/// comment as `;;; ...`, and the properties (chain and action first).
pub fn print_rows(rows: &[Map<String, Value>]) -> String {
    let mut s = String::from("Flags: X - disabled\n");
    for (i, r) in rows.iter().enumerate() {
        let flag = if r.get("disabled").and_then(Value::as_str) == Some("true") {
            "X"
        } else {
            " "
        };
        let mut head = format!("{i:>2} {flag}  ");
        if let Some(c) = r.get("comment").and_then(Value::as_str) {
            let _ = writeln!(s, "{head};;; {c}");
            head = " ".repeat(head.len());
        }
        let mut props: Vec<(&String, &str)> = r
            .iter()
            .filter(|(k, _)| !HIDDEN.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k, v.as_str()?)))
            .collect();
        // chain, action first, as RouterOS prints them.
        props.sort_by_key(|(k, _)| match k.as_str() {
            "chain" | "list" | "name" => 0,
            "action" | "address" => 1,
            _ => 2,
        });
        let words: Vec<String> = props
            .iter()
            .map(|(k, v)| format!("{k}={}", ctrack_rules::lex::quote(v)))
            .collect();
        let _ = writeln!(s, "{head}{}", words.join(" "));
    }
    s
}

/// RouterOS's `print stats`: `#`, chain, action, bytes, packets.
pub fn print_stats(rows: &[Map<String, Value>]) -> String {
    let get = |r: &Map<String, Value>, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut table = vec![[
        "#".to_string(),
        "CHAIN".into(),
        "ACTION".into(),
        "BYTES".into(),
        "PACKETS".into(),
    ]];
    for (i, r) in rows.iter().enumerate() {
        table.push([
            i.to_string(),
            get(r, "chain"),
            get(r, "action"),
            get(r, "bytes"),
            get(r, "packets"),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (v, w))| {
                if c >= 3 {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    s
}

/// The family of a menu's items (for messages).
pub fn family(menu: Menu) -> Fam {
    match menu {
        Menu::Rules(f, _) | Menu::AddressList(f) => f,
        Menu::Layer7 => Fam::V4,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::ApiServer;
    use crate::ops::FakeDataplane;

    fn args(api: &str, menu: &str, cmd: FirewallCmd) -> FirewallArgs {
        FirewallArgs {
            api: api.to_string(),
            token: None,
            ipv6: false,
            menu: menu.to_string(),
            cmd,
        }
    }

    fn run(api: &str, menu: &str, cmd: FirewallCmd) -> Result<String> {
        let mut out = Vec::new();
        execute_to(&args(api, menu, cmd), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn cli_add_set_move_remove_print() {
        let dp = Arc::new(FakeDataplane::default());
        let srv = ApiServer::start("127.0.0.1:0".parse().unwrap(), None, dp.clone()).unwrap();
        let api = format!("http://{}", srv.local_addr());
        let add = |kv: &str| run(&api, "filter", FirewallCmd::Add { kv: w(kv) }).unwrap();
        assert_eq!(add("chain=forward action=accept protocol=tcp"), "*1\n");
        assert_eq!(add("chain=forward action=drop comment=last"), "*2\n");
        run(
            &api,
            "filter",
            FirewallCmd::Set {
                item: "0".into(),
                kv: w("dst-port=22 disabled=yes"),
            },
        )
        .unwrap();
        run(
            &api,
            "filter",
            FirewallCmd::Move {
                items: vec!["*2".into()],
                destination: Some("0".into()),
            },
        )
        .unwrap();
        let p = run(
            &api,
            "filter",
            FirewallCmd::Print {
                form: vec![],
                json: false,
            },
        )
        .unwrap();
        assert_eq!(
            p,
            "Flags: X - disabled\n \
             0    ;;; last\n      chain=forward action=drop\n \
             1 X  chain=forward action=accept dst-port=22 protocol=tcp\n"
        );
        let s = run(
            &api,
            "filter",
            FirewallCmd::Print {
                form: w("stats"),
                json: false,
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "#  CHAIN    ACTION  BYTES  PACKETS\n\
             0  forward  drop        0        0\n\
             1  forward  accept      0        0\n"
        );
        run(
            &api,
            "filter",
            FirewallCmd::Remove {
                items: vec!["1".into()],
            },
        )
        .unwrap();
        assert_eq!(dp.firewall.state().config.ip.filter.len(), 1);
        // Errors are the API's, naming the problem.
        let e = run(
            &api,
            "filter",
            FirewallCmd::Add {
                kv: w("chain=forward action=dorp"),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("dorp"), "{e}");
        let e = run(&api, "raw", FirewallCmd::Add { kv: w("chain=x") }).unwrap_err();
        assert!(e.to_string().contains("no menu"), "{e}");
        // export.
        let text = Http::new(&api, None)
            .call("GET", crate::fw_rest::EXPORT, None)
            .unwrap();
        assert_eq!(
            text,
            "/ip firewall filter\nadd action=drop chain=forward comment=last\n"
        );
    }
}
