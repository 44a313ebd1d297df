//! `ctrack connection ...`: the CLI against a running dataplane, over the
//! management API ([`crate::api`]), with RouterOS's console forms and
//! conntrack-tools' (docs/cli.md):
//!
//! - `print [detail | stats | count-only] [where EXPR]`: the `where`
//!   language is ctrack-model's ([`ctrack_model::query`]: `!=`, `<`, `>`,
//!   `~`, `in`, `and`/`or`/`not`, parentheses). A `where` that is only
//!   `PROP=VALUE` terms goes to the API's listing query (the server
//!   filters); anything else is evaluated here on the streamed rows.
//! - `remove ID...`, `remove [find where EXPR]`, `flush` (`conntrack -D`,
//!   `-F`).
//! - `stats` (`conntrack -S`): per-worker counters, read from `/metrics`.
//!
//! Listings are printed as they stream in (a table sizes its columns on the
//! first rows); a closed stdout ends the command quietly ([`crate::out`]).
//! Rows are read in this server's JSON and in RouterOS REST's (every value a
//! string, `.id`) alike ([`ctrack_model::row_from_json`]).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ctrack_model::print::{DEFAULT_COLUMNS, STATS_COLUMNS};
use ctrack_model::settings::KEYS;
use ctrack_model::{ConnSnapshot, Expr, TableWriter, format_detail, row_from_json};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// Default `--api`: the API's default address.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8728";
/// Default `--metrics`: the metrics endpoint's default address.
pub const DEFAULT_METRICS_URL: &str = "http://127.0.0.1:9464";

const CONNECTION: &str = "/rest/ip/firewall/connection";
const TRACKING: &str = "/rest/ip/firewall/connection/tracking";
const EXPECT: &str = "/rest/ip/firewall/connection/expect";

/// Rows a table reads before it writes its header, to size the columns.
const TABLE_SAMPLE: usize = 256;

/// `ctrack connection [--api URL] [--token T] <command>`.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// The management API of the running dataplane.
    #[arg(long, global = true, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token, when the API was started with one. Prefer the
    /// CTRACK_TOKEN environment variable: a command line shows in `ps`.
    #[arg(long, global = true, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The Prometheus endpoint of the running dataplane (for `stats`).
    #[arg(long, global = true, env = "CTRACK_METRICS", default_value = DEFAULT_METRICS_URL)]
    pub metrics: String,
    #[command(subcommand)]
    pub cmd: ConnectionCmd,
}

/// `/ip firewall connection` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ConnectionCmd {
    /// List connections: `print [detail|stats|count-only] [where EXPR]
    /// [--json] [--count]`, e.g. `print where protocol=tcp and
    /// dst-address in 10.0.0.0/8`, `print detail where orig-bytes>1000000`.
    Print {
        /// `detail`, `stats` or `count-only`, then `where` and an
        /// expression (quote `(`, `)`, `!`, `<`, `>` from the shell).
        #[arg(value_name = "where EXPR")]
        where_: Vec<String>,
        /// Print the API's JSON rows instead of the table.
        #[arg(long)]
        json: bool,
        /// Print only how many connections match (RouterOS `count-only`).
        #[arg(long)]
        count: bool,
    },
    /// Remove connections (`conntrack -D`): by id (`remove *1f2a *1f2b`),
    /// or every match (`remove [find where protocol=udp]`, `remove [find]`);
    /// their next packets create new ones.
    Remove {
        /// Ids as `print --json` shows them, or `[find where EXPR]`.
        #[arg(value_name = "ID | [find where EXPR]", required = true)]
        items: Vec<String>,
    },
    /// Remove every connection (`conntrack -F`; RouterOS `remove [find]`).
    Flush,
    /// Per-worker counters, as `conntrack -S` prints per CPU.
    Stats,
    /// Follow connection events as they happen (`conntrack -E`, RouterOS
    /// `print follow`): `listen [where EXPR] [--json]`, one line per
    /// new/update/destroy; runs until Ctrl-C or the dataplane stops.
    Listen {
        /// `where` and an expression, as `print`'s.
        #[arg(value_name = "where EXPR")]
        where_: Vec<String>,
        /// Print the API's NDJSON lines (with its `listening` and `lost` lines).
        #[arg(long)]
        json: bool,
        /// At most N events a second (the API's `rate=N`); beyond, they are
        /// counted lost.
        #[arg(long, value_name = "N")]
        rate: Option<u64>,
    },
    /// `/ip firewall connection tracking`: settings.
    #[command(subcommand)]
    Tracking(TrackingCmd),
    /// The connection helpers' expectations (`conntrack -L expect`):
    /// `expect [--json]`.
    Expect {
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// `/ip firewall connection tracking` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TrackingCmd {
    /// Show every setting and max-entries, total-entries.
    Print,
    /// Change settings: `set udp-timeout=30s loose-tcp-tracking=no` (all or none).
    Set {
        /// KEY=VALUE pairs.
        #[arg(value_name = "KEY=VALUE", required = true)]
        kv: Vec<String>,
    },
}

/// Runs parsed [`ConnectionArgs`] (the `ctrack connection` front end),
/// printing to stdout as results arrive; a closed stdout ends it quietly.
pub fn run_args(args: ConnectionArgs) -> Result<()> {
    if let Some(w) = token_warning(args.token.as_deref(), std::env::var("CTRACK_TOKEN").ok()) {
        eprintln!("ctrack: warning: {w}");
    }
    let c = Client::new(&args.api, args.token.as_deref()).with_metrics(&args.metrics);
    let mut out = std::io::stdout().lock();
    let r = c.run(args.cmd, &mut out).and_then(|()| {
        out.flush()?;
        Ok(())
    });
    crate::out::quiet_broken_pipe(r)
}

/// A warning when the token came from the command line (where `ps` shows
/// it to every user), not from `CTRACK_TOKEN` (`env`, its value if set).
pub(crate) fn token_warning(token: Option<&str>, env: Option<String>) -> Option<&'static str> {
    match token {
        Some(t) if !t.is_empty() && env.as_deref() != Some(t) => Some(
            "--token on the command line is visible to every user (ps, /proc); \
             set CTRACK_TOKEN instead",
        ),
        _ => None,
    }
}

/// Runs `cmd` against the API at `api` and prints the result to stdout.
/// An API error becomes an `Err` holding the API's message.
pub fn run(cmd: ConnectionCmd, api: &str, token: Option<&str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    crate::out::quiet_broken_pipe(Client::new(api, token).run(cmd, &mut out))
}

/// Like [`run`], returning what it would print.
pub fn execute(cmd: ConnectionCmd, api: &str, token: Option<&str>) -> Result<String> {
    let mut out = Vec::new();
    Client::new(api, token).run(cmd, &mut out)?;
    String::from_utf8(out).context("the output is not UTF-8")
}

/// How `print` shows rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Table,
    Detail,
    Stats,
    Json,
}

/// `print`'s words: leading modifiers (`detail`, `stats`, `count-only`),
/// then `where` and the expression.
fn print_words(words: &[String]) -> Result<(Option<Form>, bool, Expr)> {
    let mut form = None;
    let mut count = false;
    let mut rest = words;
    while let Some((first, tail)) = rest.split_first() {
        match first.as_str() {
            "detail" => form = Some(Form::Detail),
            "stats" => form = Some(Form::Stats),
            "count-only" => count = true,
            "where" => {
                rest = tail;
                break;
            }
            w if w.contains(['=', '<', '>', '~', '!']) => break,
            w => bail!(
                "expected detail, stats, count-only or where, got {w:?} \
                 (e.g. print where protocol=tcp)"
            ),
        }
        rest = tail;
    }
    let expr = Expr::parse_words(rest).map_err(|e| anyhow!("{e}"))?;
    Ok((form, count, expr))
}

/// `remove`'s words: ids, or `[find]` / `[find where EXPR]` (the brackets
/// may be separate words or stuck to the first and last ones, as the shell
/// leaves them), or `find where EXPR` without brackets.
fn remove_words(items: &[String]) -> Result<Option<Expr>> {
    let text = items.join(" ");
    let t = text.trim();
    let inner = match t.strip_prefix('[') {
        Some(rest) => Some(
            rest.strip_suffix(']')
                .ok_or_else(|| anyhow!("remove: a [ without its ]: {t}"))?
                .trim(),
        ),
        None => t.starts_with("find").then_some(t),
    };
    let Some(inner) = inner else {
        return Ok(None);
    };
    let rest = inner
        .strip_prefix("find")
        .ok_or_else(|| anyhow!("remove: expected [find where ...], got [{inner}]"))?
        .trim_start();
    let rest = match rest.strip_prefix("where") {
        Some(r) => r,
        None if rest.is_empty() => "",
        None => bail!("remove: expected where after find, got {rest:?}"),
    };
    Ok(Some(Expr::parse(rest).map_err(|e| anyhow!("{e}"))?))
}

/// `key: value` lines, RouterOS `print` style, right-aligned keys.
fn tracking_lines(body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(body).context("the API's answer")?;
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("the API's answer is not an object: {body}"))?;
    let width = obj.keys().map(String::len).max().unwrap_or(0);
    // The seed's order, then anything this client does not know yet.
    let mut keys: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    keys.extend(obj.keys().map(String::as_str).filter(|k| !KEYS.contains(k)));
    let mut out = String::new();
    for k in keys {
        let v = &obj[k];
        let text = match v {
            // RouterOS's REST serves flags as "true"/"false"; print says yes/no.
            Value::String(s) if s == "true" => "yes".to_string(),
            Value::String(s) if s == "false" => "no".to_string(),
            Value::String(s) => s.clone(),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{k:>width$}: {text}");
    }
    Ok(out)
}

/// Calls `f` with each element of a JSON array read from `r`, as it is read
/// (the array is never held whole).
fn for_each_element<R: Read>(r: R, f: &mut dyn FnMut(&RawValue) -> Result<()>) -> Result<()> {
    struct Each<'a> {
        f: &'a mut dyn FnMut(&RawValue) -> Result<()>,
        err: &'a mut Option<anyhow::Error>,
    }
    impl<'de> Visitor<'de> for Each<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of connections")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(row) = seq.next_element::<Box<RawValue>>()? {
                if let Err(e) = (self.f)(&row) {
                    *self.err = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Each<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut err = None;
    let mut de = serde_json::Deserializer::from_reader(r);
    let parsed = Each { f, err: &mut err }.deserialize(&mut de);
    if let Some(e) = err {
        return Err(e);
    }
    parsed
        .and_then(|()| de.end())
        .map_err(|e| match e.io_error_kind() {
            Some(_) => anyhow!("the API's answer was cut short or malformed: {e}"),
            None => anyhow!("the API's answer is not a list of connections: {e}"),
        })
}

/// Sums a Prometheus text exposition's samples of `name` by their `worker`
/// label (samples without one are left out).
fn per_worker(text: &str, name: &str) -> std::collections::BTreeMap<u16, u64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let worker = labels.split(',').find_map(|l| {
            l.trim()
                .strip_prefix("worker=\"")?
                .strip_suffix('"')?
                .parse::<u16>()
                .ok()
        });
        let value = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if let (Some(w), Some(v)) = (worker, value) {
            *out.entry(w).or_insert(0) += v as u64;
        }
    }
    out
}

/// `conntrack -S`'s names beside the metrics they come from.
const STATS: [(&str, &str); 9] = [
    ("found", "ctrack_conntrack_stat_found_total"),
    ("invalid", "ctrack_conntrack_stat_invalid_total"),
    ("insert", "ctrack_conntrack_stat_insert_total"),
    ("insert_failed", "ctrack_conntrack_stat_insert_failed_total"),
    ("drop", "ctrack_conntrack_stat_drop_total"),
    ("early_drop", "ctrack_conntrack_stat_early_drop_total"),
    ("expired", "ctrack_connections_expired_total"),
    ("removed", "ctrack_connections_removed_total"),
    ("closed", "ctrack_connections_closed_total"),
];

/// `worker=N found=... invalid=...` lines from a `/metrics` text.
fn stats_lines(text: &str) -> Result<String> {
    let cols: Vec<_> = STATS
        .iter()
        .map(|(label, metric)| (*label, per_worker(text, metric)))
        .collect();
    let mut workers: Vec<u16> = cols.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    workers.sort_unstable();
    workers.dedup();
    if workers.is_empty() {
        bail!("the metrics endpoint has no per-worker conntrack counters (is it ctrack's?)");
    }
    let mut out = String::new();
    for w in workers {
        let _ = write!(out, "worker={w:<4}");
        for (label, m) in &cols {
            let _ = write!(out, " {label}={}", m.get(&w).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    Ok(out)
}

/// The API's message of an error answer: RouterOS REST puts the specifics
/// in `detail` and the status text in `message`; this server has had them
/// the other way round. Both are shown when both are there.
fn error_message(status: u16, body: &str) -> anyhow::Error {
    anyhow::Error::new(ApiError {
        status,
        message: message_of(status, body),
    })
}

/// An answer with a non-2xx status: its status and message.
#[derive(Debug)]
struct ApiError {
    status: u16,
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

fn message_of(status: u16, body: &str) -> String {
    let v = serde_json::from_str::<Value>(body).ok();
    // The status text adds nothing to the status's own message.
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v[k].as_str())
            .filter(|s| !s.is_empty() && Some(*s) != reason)
            .map(str::to_string)
    };
    match (field("message"), field("detail")) {
        (Some(m), Some(d)) => format!("{m}: {d}"),
        (Some(m), None) => m,
        (None, Some(d)) => d,
        (None, None) => format!("HTTP {status}: {}", body.trim()),
    }
}

/// Why the body of an answer could not be read, in the terms of docs/api.md.
fn body_error(e: ureq::Error) -> anyhow::Error {
    match &e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => anyhow!(
            "the API's answer was cut short (the server failed midway; its log says why): {e}"
        ),
        // A chunk-size line that does not end before the close, or within
        // the decoder's buffer.
        ureq::Error::BodyStalled => anyhow!(
            "the API's answer is malformed or cut short (a chunk-size line does not end): {e}"
        ),
        ureq::Error::Protocol(_) => anyhow!("the API's answer is malformed: {e}"),
        _ => anyhow!("cannot read the API's answer: {e}"),
    }
}

/// What a query component keeps unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes everything but unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

fn encode_query(q: &[(String, String)]) -> String {
    if q.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

pub(crate) struct Client {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
    metrics: String,
}

impl Client {
    pub(crate) fn new(api: &str, token: Option<&str>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Client {
            base: api.trim_end_matches('/').to_string(),
            auth: token
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}")),
            agent,
            metrics: DEFAULT_METRICS_URL.to_string(),
        }
    }

    /// The metrics endpoint, as `http://HOST:PORT` or its full
    /// `http://HOST:PORT/metrics`.
    fn with_metrics(mut self, url: &str) -> Client {
        let url = url.trim_end_matches('/');
        self.metrics = url.strip_suffix("/metrics").unwrap_or(url).to_string();
        self
    }

    /// Runs one command, writing what it prints to `out` as it comes.
    fn run(&self, cmd: ConnectionCmd, out: &mut dyn Write) -> Result<()> {
        match cmd {
            ConnectionCmd::Print {
                where_,
                json,
                count,
            } => {
                let (form, count_only, expr) = print_words(&where_)?;
                let form = if json {
                    Form::Json
                } else {
                    form.unwrap_or(Form::Table)
                };
                self.print(form, count || count_only, &expr, out)
            }
            ConnectionCmd::Remove { items } => match remove_words(&items)? {
                Some(expr) => self.remove_matching(&expr, out),
                None => {
                    for id in &items {
                        self.delete(&format!("{CONNECTION}/{}", encode(id)))?;
                    }
                    Ok(())
                }
            },
            ConnectionCmd::Flush => self.remove_matching(&Expr::All, out),
            ConnectionCmd::Listen { where_, json, rate } => {
                let (form, count, expr) = print_words(&where_)?;
                if form.is_some() || count {
                    bail!("listen takes only where EXPR (e.g. listen where protocol=tcp)");
                }
                self.listen(&expr, json, rate, out)
            }
            ConnectionCmd::Stats => {
                let text = self
                    .get_from(&self.metrics, "/metrics")
                    .with_context(|| format!("reading the metrics at {}", self.metrics))?;
                out.write_all(stats_lines(&text)?.as_bytes())?;
                Ok(())
            }
            ConnectionCmd::Expect { json } => {
                let body = self.get(EXPECT)?;
                if json {
                    out.write_all(body.as_bytes())?;
                    out.write_all(b"\n")?;
                } else {
                    let rows: Vec<ctrack_model::expect::ExpectRow> =
                        serde_json::from_str(&body).context("the API's answer")?;
                    out.write_all(ctrack_model::expect::format_expect_table(&rows).as_bytes())?;
                }
                Ok(())
            }
            ConnectionCmd::Tracking(TrackingCmd::Print) => {
                out.write_all(tracking_lines(&self.get(TRACKING)?)?.as_bytes())?;
                Ok(())
            }
            ConnectionCmd::Tracking(TrackingCmd::Set { kv }) => {
                let mut obj = serde_json::Map::new();
                for w in &kv {
                    let (k, v) = w.split_once('=').ok_or_else(|| {
                        anyhow!("expected KEY=VALUE, got {w:?} (e.g. udp-timeout=30s)")
                    })?;
                    obj.insert(k.to_string(), Value::String(v.to_string()));
                }
                self.patch(TRACKING, &Value::Object(obj).to_string())?;
                Ok(())
            }
        }
    }

    /// `print`: the rows matching `expr` in `form`, or their count.
    fn print(&self, form: Form, count: bool, expr: &Expr, out: &mut dyn Write) -> Result<()> {
        // What the server can filter itself.
        let pushed = expr.as_equalities();
        let mut query = pushed.clone().unwrap_or_default();
        if count && pushed.is_some() {
            query.push(("count-only".to_string(), "yes".to_string()));
            let body = self.get(&format!("{CONNECTION}{}", encode_query(&query)))?;
            let v: Value = serde_json::from_str(&body).context("the API's answer")?;
            // This server's number, or RouterOS REST's string.
            let n = match &v["count"] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| anyhow!("the API's answer has no count: {body}"))?;
            writeln!(out, "{n}")?;
            return Ok(());
        }
        let path = format!("{CONNECTION}{}", encode_query(&query));
        let mut n = 0u64;
        let mut table: Option<TableWriter> = None;
        let mut sample: Vec<ConnSnapshot> = Vec::new();
        let columns: &[&'static str] = if form == Form::Stats {
            &STATS_COLUMNS
        } else {
            &DEFAULT_COLUMNS
        };
        if form == Form::Json && !count {
            out.write_all(b"[")?;
        }
        self.get_rows(&path, &mut |raw| {
            let v: Value = serde_json::from_str(raw.get()).context("a row of the API's answer")?;
            let row = row_from_json(&v).map_err(|e| anyhow!("the API's answer: {e}"))?;
            if !expr.matches(&row) {
                return Ok(());
            }
            n += 1;
            if count {
                return Ok(());
            }
            match form {
                Form::Json => {
                    if n > 1 {
                        out.write_all(b",")?;
                    }
                    // The model's form (typed values, `id`), as `replay
                    // --json` prints rows, whichever form the API sent.
                    serde_json::to_writer(&mut *out, &row)?;
                }
                Form::Detail => out.write_all(format_detail(n as usize - 1, &row).as_bytes())?,
                Form::Table | Form::Stats => match &mut table {
                    Some(t) => out.write_all(t.row(&row).as_bytes())?,
                    None => {
                        sample.push(row);
                        if sample.len() == TABLE_SAMPLE {
                            let t = table.insert(TableWriter::new(columns, &sample));
                            out.write_all(t.header().as_bytes())?;
                            for r in sample.drain(..) {
                                out.write_all(t.row(&r).as_bytes())?;
                            }
                        }
                    }
                },
            }
            Ok(())
        })?;
        if count {
            writeln!(out, "{n}")?;
            return Ok(());
        }
        match form {
            Form::Json => out.write_all(b"]\n")?,
            Form::Detail => {
                if n == 0 {
                    out.write_all(ctrack_model::print::legend().as_bytes())?;
                }
            }
            Form::Table | Form::Stats => {
                if table.is_none() {
                    let mut t = TableWriter::new(columns, &sample);
                    out.write_all(t.header().as_bytes())?;
                    for r in &sample {
                        out.write_all(t.row(r).as_bytes())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `remove [find where EXPR]`: lists the matching ids, then removes
    /// each; one that is already gone (expired meanwhile) is not an error.
    /// Says on stderr how many went, as `conntrack -D` does.
    fn remove_matching(&self, expr: &Expr, _out: &mut dyn Write) -> Result<()> {
        let query = expr.as_equalities().unwrap_or_default();
        let mut ids = Vec::new();
        self.get_rows(
            &format!("{CONNECTION}{}", encode_query(&query)),
            &mut |raw| {
                let v: Value =
                    serde_json::from_str(raw.get()).context("a row of the API's answer")?;
                let row = row_from_json(&v).map_err(|e| anyhow!("the API's answer: {e}"))?;
                if expr.matches(&row) {
                    ids.push(row.id);
                }
                Ok(())
            },
        )?;
        let mut removed = 0u64;
        for id in &ids {
            match self.delete(&format!("{CONNECTION}/{}", encode(id))) {
                Ok(_) => removed += 1,
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(|a| a.status == 404) => {}
                Err(e) => return Err(e.context(format!("removed {removed} before {id}"))),
            }
        }
        eprintln!("ctrack: {removed} connections removed");
        Ok(())
    }

    /// Streams the JSON array at `path`, calling `f` with each row as it
    /// arrives.
    fn get_rows(&self, path: &str, f: &mut dyn FnMut(&RawValue) -> Result<()>) -> Result<()> {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        let mut resp = r
            .call()
            .map_err(|e| anyhow!("cannot reach the API at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.error_of(status, &mut resp));
        }
        let reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        for_each_element(reader, f)
    }

    /// `listen`: the API's event stream, filtered by `expr` (its `PROP=VALUE`
    /// terms by the server), printed line by line as it comes: the NDJSON
    /// lines with `json`, else as `conntrack -E` does (lost events are
    /// reported on stderr). Ends with an error when the stream ends (the
    /// dataplane stopped), quietly when stdout is closed.
    fn listen(
        &self,
        expr: &Expr,
        json: bool,
        rate: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<()> {
        use std::io::BufRead;
        let mut query = expr.as_equalities().unwrap_or_default();
        if let Some(n) = rate {
            query.push(("rate".to_string(), n.to_string()));
        }
        // No whole-call timeout: the stream has no end of its own.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut r = agent.get(format!(
            "{}{CONNECTION}/listen{}",
            self.base,
            encode_query(&query)
        ));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        let mut resp = r
            .call()
            .map_err(|e| anyhow!("cannot reach the API at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.error_of(status, &mut resp));
        }
        let reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut lost = 0u64;
        for line in std::io::BufReader::new(reader).lines() {
            let line = line.map_err(|e| {
                anyhow!(
                    "the API ended the event stream ({e}): the dataplane stopped, \
                     or the server dropped this listener as too slow"
                )
            })?;
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("a line of the API's event stream: {line}"))?;
            let event = v["event"].as_str().unwrap_or_default();
            match event {
                "listening" | "lost" => {
                    let n = v["count"].as_str().and_then(|c| c.parse().ok());
                    if json {
                        writeln!(out, "{line}")?;
                    } else if let Some(n) = n.filter(|n| *n > lost) {
                        eprintln!(
                            "ctrack: {} events lost (listener too slow or rate=N)",
                            n - lost
                        );
                    }
                    lost = lost.max(n.unwrap_or(0));
                }
                _ => {
                    let row = row_from_json(&v).map_err(|e| anyhow!("the API's event: {e}"))?;
                    if !expr.matches(&row) {
                        continue;
                    }
                    if json {
                        writeln!(out, "{line}")?;
                    } else {
                        let reason = v["reason"].as_str();
                        writeln!(
                            out,
                            "{}",
                            crate::listen::conntrack_line(event, reason, &row)
                        )?;
                    }
                }
            }
            out.flush()?;
        }
        bail!("the API ended the event stream (the dataplane stopped)")
    }

    /// GET `path` from another base URL (the metrics endpoint).
    fn get_from(&self, base: &str, path: &str) -> Result<String> {
        self.finish(self.agent.get(format!("{base}{path}")).call())
            .map_err(|e| anyhow!("{e} (--metrics {base})"))
    }

    pub(crate) fn get(&self, path: &str) -> Result<String> {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.call())
    }

    pub(crate) fn delete(&self, path: &str) -> Result<String> {
        let mut r = self.agent.delete(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.call())
    }

    pub(crate) fn patch(&self, path: &str, body: &str) -> Result<String> {
        let mut r = self.agent.patch(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.content_type("application/json").send(body))
    }

    pub(crate) fn put(&self, path: &str, body: &str) -> Result<String> {
        let mut r = self.agent.put(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.content_type("application/json").send(body))
    }

    /// The body of a 2xx answer, or the API's error message.
    ///
    /// Listings come `Transfer-Encoding: chunked` (docs/api.md); `ureq`
    /// decodes the chunks, reading each chunk-size line into its fixed-size
    /// input buffer (a size line longer than 20 characters, or not hex, is an
    /// error). A body that ends before its last, empty chunk is an error, not
    /// a short answer: the server ends a listing that way when it fails
    /// midway.
    fn finish(
        &self,
        r: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let mut resp = r.map_err(|e| anyhow!("cannot reach the API at {}: {e}", self.base))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(body_error)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(error_message(status, &body))
    }

    /// The error of a non-2xx answer whose body is still unread.
    fn error_of(&self, status: u16, resp: &mut ureq::http::Response<ureq::Body>) -> anyhow::Error {
        match resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
        {
            Ok(body) => error_message(status, &body),
            Err(e) => body_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiServer;
    use crate::api::tests::{fake, rows};
    use clap::Parser;
    use ctrack_model::{SettingsExt, format_table};

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Connection(ConnectionArgs),
    }

    fn parse(args: &[&str]) -> ConnectionArgs {
        let mut v = vec!["ctrack", "connection"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().cmd {
            Top::Connection(a) => a,
        }
    }

    #[test]
    fn command_line_shapes() {
        let a = parse(&[
            "print",
            "where",
            "protocol=tcp",
            "tcp-state=established",
            "--json",
        ]);
        assert_eq!(
            a.cmd,
            ConnectionCmd::Print {
                where_: vec![
                    "where".into(),
                    "protocol=tcp".into(),
                    "tcp-state=established".into()
                ],
                json: true,
                count: false,
            }
        );
        let a = parse(&["listen", "where", "protocol=udp", "--json", "--rate", "100"]);
        assert_eq!(
            a.cmd,
            ConnectionCmd::Listen {
                where_: vec!["where".into(), "protocol=udp".into()],
                json: true,
                rate: Some(100),
            }
        );
        let a = parse(&["--api", "http://127.0.0.1:1", "remove", "*1f2a"]);
        assert_eq!(a.api, "http://127.0.0.1:1");
        assert_eq!(
            a.cmd,
            ConnectionCmd::Remove {
                items: vec!["*1f2a".into()]
            }
        );
        let a = parse(&["remove", "[find", "where", "protocol=udp]"]);
        assert_eq!(
            remove_words(match &a.cmd {
                ConnectionCmd::Remove { items } => items,
                c => panic!("{c:?}"),
            })
            .unwrap()
            .unwrap()
            .as_equalities(),
            Some(vec![("protocol".into(), "udp".into())])
        );
        assert!(matches!(
            remove_words(&["[find]".into()]).unwrap(),
            Some(Expr::All)
        ));
        assert!(remove_words(&["*1".into(), "*2".into()]).unwrap().is_none());
        assert!(remove_words(&["[find where protocol=udp".into()]).is_err());
        assert!(remove_words(&["[where protocol=udp]".into()]).is_err());
        assert_eq!(parse(&["flush"]).cmd, ConnectionCmd::Flush);
        assert_eq!(parse(&["stats"]).cmd, ConnectionCmd::Stats);
        assert!(Cli::try_parse_from(["ctrack", "connection", "remove"]).is_err());
        let a = parse(&["tracking", "set", "udp-timeout=30s", "--token", "t"]);
        assert_eq!(a.token.as_deref(), Some("t"));
        assert_eq!(
            a.cmd,
            ConnectionCmd::Tracking(TrackingCmd::Set {
                kv: vec!["udp-timeout=30s".into()]
            })
        );
        assert_eq!(
            parse(&["tracking", "print"]).cmd,
            ConnectionCmd::Tracking(TrackingCmd::Print)
        );
        assert!(Cli::try_parse_from(["ctrack", "connection", "tracking", "set"]).is_err());
    }

    #[test]
    fn print_remove_and_tracking_against_a_live_api() {
        let dp = fake();
        let srv = ApiServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Some("tok".into()),
            dp.clone(),
        )
        .unwrap();
        let api = format!("http://{}", srv.local_addr());
        let tok = Some("tok");
        let print = |w: &[&str], json: bool, count: bool| ConnectionCmd::Print {
            where_: w.iter().map(|s| s.to_string()).collect(),
            json,
            count,
        };

        let table = execute(print(&[], false, false), &api, tok).unwrap();
        assert_eq!(table, format_table(&rows()));
        assert!(table.starts_with("Flags: E - EXPECTED; S - SEEN-REPLY; A - ASSURED"));
        // The legend, the columns, the heading, then the TCP row: seen-reply,
        // assured, confirmed.
        assert!(table.lines().nth(3).unwrap().contains(" SAC "), "{table}");
        assert!(table.lines().nth(4).unwrap().contains(" C "), "{table}");

        let out = execute(
            print(
                &["where", "protocol=tcp", "tcp-state=established"],
                false,
                false,
            ),
            &api,
            tok,
        )
        .unwrap();
        assert_eq!(out, format_table(&rows()[..1]));

        let out = execute(print(&["where", "protocol=udp"], true, false), &api, tok).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        // The model's rows (typed, `id`), as `replay --json` prints them.
        assert_eq!(v, serde_json::to_value(&rows()[1..2]).unwrap());

        assert_eq!(execute(print(&[], false, true), &api, tok).unwrap(), "3\n");
        assert_eq!(
            execute(
                print(
                    &["count-only", "where", "src-address=10.0.0.1"],
                    false,
                    false
                ),
                &api,
                tok
            )
            .unwrap(),
            "3\n"
        );

        // RouterOS's operators, evaluated on the streamed rows.
        let ids = |w: &[&str]| -> Vec<String> {
            let out = execute(print(w, true, false), &api, tok).unwrap();
            let v: Vec<Value> = serde_json::from_str(&out).unwrap();
            v.iter().map(|r| row_from_json(r).unwrap().id).collect()
        };
        assert_eq!(ids(&["where", "protocol!=tcp"]), ["*1000000002b", "*7"]);
        assert_eq!(
            ids(&["where", "protocol=UDP", "or", "icmp-type=8"]),
            ["*1000000002b", "*7"]
        );
        assert_eq!(ids(&["where", "repl-bytes>100"]), ["*1f2a", "*7"]);
        assert_eq!(
            ids(&["where", "repl-bytes>=3000", "protocol!=icmp"]),
            ["*1f2a"]
        );
        assert_eq!(
            ids(&["where", "dst-address", "in", "10.0.0.2/31"]),
            ["*1f2a", "*1000000002b"]
        );
        assert_eq!(ids(&["where", "dst-address~\\.4$"]), ["*7"]);
        assert_eq!(
            ids(&["where", "not", "(assured", "or", "protocol=icmp)"]),
            ["*1000000002b"]
        );
        assert_eq!(ids(&["where", "!seen-reply"]), ["*1000000002b"]);
        assert_eq!(
            execute(
                print(&["count-only", "where", "orig-packets<5"], false, false),
                &api,
                tok
            )
            .unwrap(),
            "1\n"
        );
        let detail = execute(
            print(&["detail", "where", "protocol=icmp"], false, false),
            &api,
            tok,
        )
        .unwrap();
        assert!(
            detail.starts_with(" 0 SAC protocol=icmp src-address=10.0.0.1 "),
            "{detail}"
        );
        assert!(detail.contains(" icmp-type=8 "), "{detail}");
        let stats = execute(print(&["stats"], false, false), &api, tok).unwrap();
        assert!(stats.contains("ORIG-FASTTRACK-PACKETS"), "{stats}");
        assert_eq!(stats.lines().count(), 6, "{stats}");
        // An empty listing still has its heading.
        let none = execute(print(&["where", "protocol=gre"], false, false), &api, tok).unwrap();
        assert_eq!(none, format_table(&[]));
        assert_eq!(
            execute(print(&["where", "protocol=gre"], true, false), &api, tok).unwrap(),
            "[]\n"
        );

        // Errors carry the API's message, naming the field, or the where
        // parser's, before anything is sent.
        let e = execute(print(&["where", "protcol=tcp"], false, false), &api, tok).unwrap_err();
        assert!(e.to_string().contains("protcol"), "{e}");
        let e = execute(print(&["where", "protocol"], false, false), &api, tok).unwrap_err();
        assert!(e.to_string().contains("protocol=VALUE"), "{e}");
        let e = execute(
            print(&["where", "orig-bytes>lots"], false, false),
            &api,
            tok,
        )
        .unwrap_err();
        assert!(e.to_string().contains("orig-bytes"), "{e}");
        let e = execute(print(&["sideways"], false, false), &api, tok).unwrap_err();
        assert!(e.to_string().contains("sideways"), "{e}");
        let e = execute(print(&[], false, false), &api, None).unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");

        // remove
        let remove = |items: &[&str]| ConnectionCmd::Remove {
            items: items.iter().map(|s| s.to_string()).collect(),
        };
        execute(remove(&["*1f2a"]), &api, tok).unwrap();
        assert_eq!(dp.rows.lock().len(), 2);
        let e = execute(remove(&["*1f2a"]), &api, tok).unwrap_err();
        assert_eq!(e.to_string(), "no such connection: *1f2a");
        let e = execute(remove(&["1f2a"]), &api, tok).unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");
        // remove [find where ...]: only the matches.
        execute(
            remove(&["[find", "where", "protocol=icmp", "or", "orig-bytes>1000]"]),
            &api,
            tok,
        )
        .unwrap();
        let left: Vec<String> = dp.rows.lock().iter().map(|r| r.id.clone()).collect();
        assert_eq!(left, ["*1000000002b"]);

        // tracking print / set
        let out = execute(ConnectionCmd::Tracking(TrackingCmd::Print), &api, tok).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 20, "{out}");
        assert!(out.contains("        checksum-verify: yes\n"), "{out}");
        assert!(out.contains("                enabled: auto\n"), "{out}");
        assert!(out.contains("tcp-established-timeout: 1d\n"), "{out}");
        assert!(out.contains("     loose-tcp-tracking: yes\n"), "{out}");
        assert!(out.contains("            max-entries: 1048576\n"), "{out}");
        // (One left after the removals above.)
        assert!(out.contains("          total-entries: 1\n"), "{out}");

        let set = |kv: &[&str]| {
            ConnectionCmd::Tracking(TrackingCmd::Set {
                kv: kv.iter().map(|s| s.to_string()).collect(),
            })
        };
        execute(
            set(&["udp-timeout=30s", "loose-tcp-tracking=no"]),
            &api,
            tok,
        )
        .unwrap();
        assert_eq!(dp.settings.lock().get("udp-timeout").unwrap(), "30s");
        assert!(!dp.settings.lock().loose_tcp_tracking);
        let e = execute(set(&["udp-timeout=soon"]), &api, tok).unwrap_err();
        assert!(e.to_string().contains("udp-timeout"), "{e}");
        let e = execute(set(&["max-entries=5"]), &api, tok).unwrap_err();
        assert!(e.to_string().contains("max-entries"), "{e}");
        let e = execute(set(&["udp-timeout"]), &api, tok).unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");

        // flush: remove [find].
        dp.rows.lock().extend(rows());
        execute(ConnectionCmd::Flush, &api, tok).unwrap();
        assert!(dp.rows.lock().is_empty());
        assert_eq!(execute(print(&[], false, true), &api, tok).unwrap(), "0\n");

        // Nothing listening.
        drop(srv);
        let e = execute(ConnectionCmd::Tracking(TrackingCmd::Print), &api, tok).unwrap_err();
        assert!(e.to_string().contains("cannot reach the API"), "{e}");
    }

    #[test]
    fn a_long_listing_is_streamed_with_the_first_rows_widths() {
        let dp = fake();
        {
            let mut rows = dp.rows.lock();
            let base = rows[1].clone();
            rows.clear();
            for i in 0..(TABLE_SAMPLE + 44) {
                let mut r = base.clone();
                r.id = format!("*{:x}", i + 1);
                r.src_address = format!("10.0.{}.{}:5353", i / 256, i % 256);
                // A row past the sample with a longer cell than any before.
                if i == TABLE_SAMPLE + 10 {
                    r.dst_address = "[2001:db8::1234:5678]:53".to_string();
                }
                rows.push(r);
            }
        }
        let srv = ApiServer::start("127.0.0.1:0".parse().unwrap(), None, dp.clone()).unwrap();
        let api = format!("http://{}", srv.local_addr());
        let print = |w: &[&str]| ConnectionCmd::Print {
            where_: w.iter().map(|s| s.to_string()).collect(),
            json: false,
            count: false,
        };
        let out = execute(print(&[]), &api, None).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3 + TABLE_SAMPLE + 44);
        let n = TABLE_SAMPLE + 43;
        assert!(lines.last().unwrap().starts_with(&format!("{n} ")), "{out}");
        // Up to the long cell, the lines are the whole-table ones.
        let rows = dp.rows.lock().clone();
        let whole = format_table(&rows[..TABLE_SAMPLE]);
        assert!(out.starts_with(&whole), "{out}");
        assert!(lines[3 + TABLE_SAMPLE + 10].contains("[2001:db8::1234:5678]:53"));
        // where over the stream: the CLI filters what the server sends.
        let out = execute(
            print(&["count-only", "where", "src-address~^10\\.0\\.1\\."]),
            &api,
            None,
        )
        .unwrap();
        assert_eq!(out, "44\n");
    }

    #[test]
    fn stats_reads_per_worker_counters_from_metrics() {
        use crate::metrics::MetricsServer;
        use crate::ops::{MetricsSnapshot, WorkerMetrics};
        let dp = fake();
        let mut w0 = WorkerMetrics {
            worker: 0,
            ..WorkerMetrics::default()
        };
        w0.shard.found = 1204;
        w0.shard.insert = 96;
        w0.shard.invalid[0] = 2;
        w0.shard.invalid[1] = 1;
        w0.shard.expired = 40;
        let mut w1 = WorkerMetrics {
            worker: 1,
            ..WorkerMetrics::default()
        };
        w1.shard.early_drop = 7;
        w1.shard.closed = 12;
        *dp.metrics.lock() = MetricsSnapshot {
            workers: vec![w0, w1],
            ports: Vec::new(),
            rules: Vec::new(),
        };
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), dp).unwrap();
        let c = Client::new("http://127.0.0.1:1", None)
            .with_metrics(&format!("http://{}", srv.local_addr()));
        let mut out = Vec::new();
        c.run(ConnectionCmd::Stats, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "worker=0    found=1204 invalid=3 insert=96 insert_failed=0 drop=0 early_drop=0 \
             expired=40 removed=0 closed=0\n\
             worker=1    found=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=7 \
             expired=0 removed=0 closed=12\n"
        );
        // Not ctrack's metrics: an error that says so.
        assert!(
            stats_lines("up 1\n")
                .unwrap_err()
                .to_string()
                .contains("per-worker")
        );
    }

    /// Answers one request with `answer`, then closes (after a while with
    /// `hold`); the URL to ask.
    fn serve_once(answer: Vec<u8>, hold: bool) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = s.write_all(&answer);
            if hold {
                std::thread::sleep(Duration::from_secs(30));
            }
        });
        url
    }

    fn chunked(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        )
        .into_bytes()
    }

    #[test]
    fn chunked_answers_are_decoded_and_bad_ones_refused() {
        let get = |answer: Vec<u8>| Client::new(&serve_once(answer, false), None).get(CONNECTION);

        let ok = get(chunked("1\r\n[\r\n3\r\n1,2\r\n1;ext=1\r\n]\r\n0\r\n\r\n")).unwrap();
        assert_eq!(ok, "[1,2]");
        // Chunk sizes are hex; an empty body is just the last chunk.
        let big = "x".repeat(0x1a);
        assert_eq!(
            get(chunked(&format!("1A\r\n{big}\r\n0\r\n\r\n"))).unwrap(),
            big
        );
        assert_eq!(get(chunked("0\r\n\r\n")).unwrap(), "");
        // The last chunk then the close, without the blank line after it:
        // the body did end (ureq accepts it; the server always sends both).
        assert_eq!(get(chunked("2\r\n[]\r\n0\r\n")).unwrap(), "[]");

        for bad in [
            "zz\r\n[]\r\n0\r\n\r\n",
            "-2\r\n[]\r\n0\r\n\r\n",
            // More than usize: not a size.
            "fffffffffffffffffff\r\n[]\r\n0\r\n\r\n",
            // A size line longer than the decoder reads.
            "000000000000000000000000000002\r\n[]\r\n0\r\n\r\n",
            // The chunk is longer than its size says.
            "1\r\n[]\r\n0\r\n\r\n",
        ] {
            let e = get(chunked(bad)).unwrap_err().to_string();
            assert!(
                e.contains("malformed") && e.contains("chunk"),
                "{bad:?}: {e}"
            );
        }

        // Truncated: no last chunk, or cut inside a chunk, then the close.
        for cut in ["2\r\n[1\r\n", "5\r\n[1,", "5\r\n[1,2]\r\n", "", "2", "2\r"] {
            let e = get(chunked(cut)).unwrap_err().to_string();
            assert!(e.contains("cut short"), "{cut:?}: {e}");
        }
        // A size line that does not end is not read without bound: refused
        // once the decoder's buffer is full, while the connection is open.
        // (Unbounded, the read would wait on the open connection and end in
        // a timeout, not in this error.)
        let url = serve_once(chunked(&"1".repeat(1 << 20)), true);
        let e = Client::new(&url, None).get(CONNECTION).unwrap_err();
        assert!(e.to_string().contains("malformed"), "{e}");
    }

    #[test]
    fn a_token_on_the_command_line_is_warned_about() {
        assert!(token_warning(Some("t"), None).is_some());
        assert!(token_warning(Some("t"), Some("other".into())).is_some());
        assert!(token_warning(Some("t"), Some("t".into())).is_none());
        assert!(token_warning(None, None).is_none());
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("*1f2a"), "%2A1f2a");
        assert_eq!(
            encode_query(&[("src-address".into(), "[::1]:80".into())]),
            "?src-address=%5B%3A%3A1%5D%3A80"
        );
    }
}
