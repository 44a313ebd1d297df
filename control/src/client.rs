//! `ctrack connection ...`: the CLI against a running dataplane, over the
//! management API ([`crate::api`]). It only parses arguments and prints; the
//! API does the checking, so both front ends refuse the same input with the
//! same message.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use ctrack_model::settings::KEYS;
use ctrack_model::{ConnSnapshot, format_table};
use serde_json::Value;

/// Default `--api`: the API's default address.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8728";

const CONNECTION: &str = "/rest/ip/firewall/connection";
const TRACKING: &str = "/rest/ip/firewall/connection/tracking";

/// `ctrack connection [--api URL] [--token T] <command>`.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// The management API of the running dataplane.
    #[arg(long, global = true, env = "CTRACK_API", default_value = DEFAULT_API_URL)]
    pub api: String,
    /// Bearer token, when the API was started with one.
    #[arg(long, global = true, env = "CTRACK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub cmd: ConnectionCmd,
}

/// `/ip firewall connection` commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ConnectionCmd {
    /// List connections: `print [where PROP=VALUE ...] [--json] [--count]`,
    /// e.g. `print where protocol=tcp tcp-state=established`.
    Print {
        /// `where` followed by PROP=VALUE filters (all must match).
        #[arg(value_name = "where PROP=VALUE")]
        where_: Vec<String>,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Print only how many connections match (RouterOS `count-only`).
        #[arg(long)]
        count: bool,
    },
    /// Remove a connection by id (`*1f2a`); its next packet creates a new one.
    Remove {
        /// The connection's id, as `print --json` shows it.
        id: String,
    },
    /// `/ip firewall connection tracking`: settings.
    #[command(subcommand)]
    Tracking(TrackingCmd),
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

/// Runs parsed [`ConnectionArgs`] (the `ctrack connection` front end).
pub fn run_args(args: ConnectionArgs) -> Result<()> {
    run(args.cmd, &args.api, args.token.as_deref())
}

/// Runs `cmd` against the API at `api` and prints the result to stdout.
/// An API error becomes an `Err` holding the API's message.
pub fn run(cmd: ConnectionCmd, api: &str, token: Option<&str>) -> Result<()> {
    let out = execute(cmd, api, token)?;
    print!("{out}");
    Ok(())
}

/// Like [`run`], returning what it would print.
pub fn execute(cmd: ConnectionCmd, api: &str, token: Option<&str>) -> Result<String> {
    let c = Client::new(api, token);
    match cmd {
        ConnectionCmd::Print {
            where_,
            json,
            count,
        } => {
            let mut words = where_.as_slice();
            let mut count = count;
            while let Some((first, rest)) = words.split_first() {
                match first.as_str() {
                    "where" => words = rest,
                    "count-only" => {
                        count = true;
                        words = rest;
                    }
                    _ => break,
                }
            }
            let mut query = Vec::new();
            for w in words {
                let (k, v) = w.split_once('=').ok_or_else(|| {
                    anyhow!("expected PROP=VALUE after where, got {w:?} (e.g. protocol=tcp)")
                })?;
                query.push((k.to_string(), v.to_string()));
            }
            if count {
                query.push(("count-only".to_string(), "yes".to_string()));
            }
            let body = c.get(&format!("{CONNECTION}{}", encode_query(&query)))?;
            if json {
                return Ok(ensure_newline(body));
            }
            if count {
                let v: Value = serde_json::from_str(&body).context("the API's answer")?;
                let n = v["count"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("the API's answer has no count: {body}"))?;
                return Ok(format!("{n}\n"));
            }
            let rows: Vec<ConnSnapshot> =
                serde_json::from_str(&body).context("the API's answer")?;
            Ok(format_table(&rows))
        }
        ConnectionCmd::Remove { id } => {
            c.delete(&format!("{CONNECTION}/{}", encode(&id)))?;
            Ok(String::new())
        }
        ConnectionCmd::Tracking(TrackingCmd::Print) => tracking_lines(&c.get(TRACKING)?),
        ConnectionCmd::Tracking(TrackingCmd::Set { kv }) => {
            let mut obj = serde_json::Map::new();
            for w in &kv {
                let (k, v) = w.split_once('=').ok_or_else(|| {
                    anyhow!("expected KEY=VALUE, got {w:?} (e.g. udp-timeout=30s)")
                })?;
                obj.insert(k.to_string(), Value::String(v.to_string()));
            }
            c.patch(TRACKING, &Value::Object(obj).to_string())?;
            Ok(String::new())
        }
    }
}

fn ensure_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
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

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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

struct Client {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    fn new(api: &str, token: Option<&str>) -> Client {
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
        }
    }

    fn get(&self, path: &str) -> Result<String> {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.call())
    }

    fn delete(&self, path: &str) -> Result<String> {
        let mut r = self.agent.delete(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        self.finish(r.call())
    }

    fn patch(&self, path: &str, body: &str) -> Result<String> {
        let mut r = self.agent.patch(format!("{}{path}", self.base));
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
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {}", body.trim()));
        Err(anyhow!(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiServer;
    use crate::api::tests::{fake, rows};
    use clap::Parser;
    use ctrack_model::SettingsExt;

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
        let a = parse(&["--api", "http://127.0.0.1:1", "remove", "*1f2a"]);
        assert_eq!(a.api, "http://127.0.0.1:1");
        assert_eq!(a.cmd, ConnectionCmd::Remove { id: "*1f2a".into() });
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
        assert!(table.starts_with("Flags: A - ASSURED"));
        assert!(table.lines().nth(2).unwrap().contains(" AC "), "{table}");

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

        // Errors carry the API's message, naming the field.
        let e = execute(print(&["where", "protcol=tcp"], false, false), &api, tok).unwrap_err();
        assert!(e.to_string().contains("protcol"), "{e}");
        let e = execute(print(&["where", "protocol"], false, false), &api, tok).unwrap_err();
        assert!(e.to_string().contains("PROP=VALUE"), "{e}");
        let e = execute(print(&[], false, false), &api, None).unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");

        // remove
        execute(ConnectionCmd::Remove { id: "*1f2a".into() }, &api, tok).unwrap();
        assert_eq!(dp.rows.lock().len(), 2);
        let e = execute(ConnectionCmd::Remove { id: "*1f2a".into() }, &api, tok).unwrap_err();
        assert_eq!(e.to_string(), "no such connection: *1f2a");
        let e = execute(ConnectionCmd::Remove { id: "1f2a".into() }, &api, tok).unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");

        // tracking print / set
        let out = execute(ConnectionCmd::Tracking(TrackingCmd::Print), &api, tok).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 17, "{out}");
        assert!(out.contains("        checksum-verify: yes\n"), "{out}");
        assert!(out.contains("                enabled: auto\n"), "{out}");
        assert!(out.contains("tcp-established-timeout: 1d\n"), "{out}");
        assert!(out.contains("     loose-tcp-tracking: yes\n"), "{out}");
        assert!(out.contains("            max-entries: 1048576\n"), "{out}");
        assert!(out.contains("          total-entries: 2\n"), "{out}");

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

        // Nothing listening.
        drop(srv);
        let e = execute(ConnectionCmd::Tracking(TrackingCmd::Print), &api, tok).unwrap_err();
        assert!(e.to_string().contains("cannot reach the API"), "{e}");
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
    fn encoding() {
        assert_eq!(encode("*1f2a"), "%2A1f2a");
        assert_eq!(
            encode_query(&[("src-address".into(), "[::1]:80".into())]),
            "?src-address=%5B%3A%3A1%5D%3A80"
        );
    }
}
