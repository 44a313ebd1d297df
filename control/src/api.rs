//! The management API: RouterOS REST-like routes over HTTP/1.1 + JSON.
//!
//! Every route parses its input, calls one [`Dataplane`] operation and turns
//! the answer (or the [`OpsError`]) into JSON; the work itself lives in
//! [`crate::ops`], shared with the CLI (which talks to this API) and with
//! [`crate::metrics`]. See `docs/api.md` for the routes and every error.
//!
//! A listing is streamed ([`Answer::Stream`]): rows are serialised as the
//! dataplane visits them ([`Dataplane::for_each_connection`]) and sent in
//! chunks of [`crate::http::STREAM_CHUNK`] bytes, so its memory does not grow with the
//! table. Every other answer is a fixed-length [`Reply`].
//!
//! The HTTP server itself (threads, timeouts, limits such as [`MAX_BODY`])
//! is [`crate::http`]; this module is only the routes and the bearer token
//! check. The dataplane is only ever reached through [`Dataplane`], whose
//! calls are bounded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use ctrack_model::settings::READ_ONLY;
use ctrack_model::{ConnSnapshot, SettingsError, check_filter_value, check_property};
use dataplane::conntrack::ConnId;
use serde_json::{Map, Value, json};

pub(crate) use crate::http::percent_decode;
use crate::http::{Answer, AnswerHandler, HttpServer, Reply, Req, StreamError, too_large};
pub use crate::http::{ApiError, MAX_BODY};
use crate::ops::{Dataplane, OpsError};

/// The API's default address: loopback, RouterOS's API port.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8728";
/// Threads answering requests.
pub const HANDLER_THREADS: usize = 3;

const CONNECTION: &str = "/rest/ip/firewall/connection";
const TRACKING: &str = "/rest/ip/firewall/connection/tracking";
const TRACKING_SET: &str = "/rest/ip/firewall/connection/tracking/set";

/// The management API server. Stops on [`ApiServer::stop`] or drop.
pub struct ApiServer {
    http: HttpServer,
}

impl ApiServer {
    /// Listens on `addr` and answers on [`HANDLER_THREADS`] threads. With a
    /// `token`, every request needs `Authorization: Bearer <token>`; without
    /// one (or with an empty one), only a loopback address is accepted.
    pub fn start(
        addr: SocketAddr,
        token: Option<String>,
        dp: Arc<dyn Dataplane>,
    ) -> Result<ApiServer, ApiError> {
        let token = token.filter(|t| !t.is_empty());
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(ApiError::TokenRequired { addr });
        }
        let handler: Arc<AnswerHandler> = Arc::new(move |req: &mut Req<'_>| {
            if let Some(t) = &token
                && !authorized(req.authorization, t)
            {
                return Reply::error(
                    401,
                    "missing or wrong bearer token (Authorization header)".to_string(),
                    String::new(),
                )
                .with_header("WWW-Authenticate", "Bearer")
                .into();
            }
            route(req, &dp)
        });
        let http = HttpServer::start_answering(addr, "ctrack-api", HANDLER_THREADS, handler)?;
        Ok(ApiServer { http })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Stops answering and closes the listener. Idempotent.
    pub fn stop(&mut self) {
        self.http.stop();
    }
}

/// Compares `Bearer <token>` in constant time for equal lengths.
fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(h) = header else { return false };
    let Some(given) = h.trim().strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bad_request(message: impl Into<String>, detail: impl Into<String>) -> Reply {
    Reply::error(400, message.into(), detail.into())
}

fn method_not_allowed(method: &str, path: &str, allow: &str) -> Reply {
    Reply::error(
        405,
        format!("{method} is not allowed on {path}"),
        format!("allowed: {allow}"),
    )
    .with_header("Allow", allow)
}

/// Dispatches one request.
pub(crate) fn route(req: &mut Req<'_>, dp: &Arc<dyn Dataplane>) -> Answer {
    let (raw_path, query) = match req.url.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.url, ""),
    };
    let path = match percent_decode(raw_path, false) {
        Ok(p) => p,
        Err(e) => return bad_request(e, "path").into(),
    };
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let method = req.method;
    if path == CONNECTION && method == "GET" {
        return list(query, dp);
    }
    let dp = &**dp;
    match path {
        CONNECTION => method_not_allowed(method, path, "GET"),
        TRACKING => match method {
            "GET" => Reply::json(200, &dp.tracking()),
            "PATCH" => set_tracking(req, dp),
            _ => method_not_allowed(method, path, "GET, PATCH"),
        },
        TRACKING_SET => match method {
            "POST" => set_tracking(req, dp),
            _ => method_not_allowed(method, path, "POST"),
        },
        p => match p.strip_prefix(CONNECTION).and_then(|r| r.strip_prefix('/')) {
            Some(id) if !id.contains('/') => match method {
                "GET" | "DELETE" => one(method, id, dp),
                _ => method_not_allowed(method, path, "GET, DELETE"),
            },
            _ => Reply::error(404, format!("no such path: {p}"), String::new()),
        },
    }
    .into()
}

fn ops_error(e: OpsError) -> Reply {
    match &e {
        OpsError::NotFound(_) => Reply::error(404, e.to_string(), String::new()),
        OpsError::Filter(_) => bad_request(
            e.to_string(),
            format!("known properties: {}", ConnSnapshot::PROPERTIES.join(", ")),
        ),
        OpsError::Setting(SettingsError::UnknownKey { known, .. }) => {
            bad_request(e.to_string(), format!("known settings: {known}"))
        }
        OpsError::Setting(_) => bad_request(e.to_string(), String::new()),
        OpsError::Unavailable(_) => Reply::error(503, e.to_string(), String::new()),
    }
}

fn parse_id(raw: &str) -> Result<ConnId, Reply> {
    raw.parse::<ConnId>()
        .map_err(|e| bad_request(format!("id: {e}"), "path"))
}

fn one(method: &str, raw_id: &str, dp: &dyn Dataplane) -> Reply {
    let id = match parse_id(raw_id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if method == "DELETE" {
        match dp.remove(id) {
            Ok(()) => Reply::empty(204),
            Err(e) => ops_error(e),
        }
    } else {
        match dp.connection(id) {
            Ok(c) => Reply::json(200, &c),
            Err(e) => ops_error(e),
        }
    }
}

/// Checks a `where PROP=VALUE` filter before it reaches the workers: the
/// property must exist and the value must have the property's form
/// ([`ctrack_model::check_filter_value`]).
pub(crate) fn check_filter(prop: &str, value: &str) -> Result<(), (String, String)> {
    if let Err(e) = check_property(prop) {
        return Err((
            e.to_string(),
            format!("known properties: {}", ConnSnapshot::PROPERTIES.join(", ")),
        ));
    }
    check_filter_value(prop, value).map_err(|e| (e.to_string(), String::new()))
}

fn yes(v: &str) -> Option<bool> {
    match v.trim() {
        "" | "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

/// A listing's query: filters, `count-only`, `.proplist`.
struct ListQuery {
    filter: Vec<(String, String)>,
    count_only: bool,
    proplist: Option<Vec<String>>,
}

/// Parses and checks a listing's query; `Err` is the 400 to send.
fn list_query(query: &str) -> Result<ListQuery, Reply> {
    let mut q = ListQuery {
        filter: Vec::new(),
        count_only: false,
        proplist: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = match (percent_decode(k, true), percent_decode(v, true)) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => return Err(bad_request(e, "query")),
        };
        match k.as_str() {
            "count-only" => match yes(&v) {
                Some(b) => q.count_only = b,
                None => {
                    return Err(bad_request(
                        format!("bad value {v:?} for count-only: expected yes or no"),
                        String::new(),
                    ));
                }
            },
            ".proplist" => {
                let props: Vec<String> = v
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                if let Some(p) = props
                    .iter()
                    .find(|p| !ConnSnapshot::PROPERTIES.contains(&p.as_str()))
                {
                    return Err(bad_request(
                        format!("unknown connection property {p:?} in .proplist"),
                        format!("known properties: {}", ConnSnapshot::PROPERTIES.join(", ")),
                    ));
                }
                q.proplist = Some(props);
            }
            _ => {
                if let Err((m, d)) = check_filter(&k, &v) {
                    return Err(bad_request(m, d));
                }
                q.filter.push((k, v));
            }
        }
    }
    Ok(q)
}

/// `GET /rest/ip/firewall/connection`: the query is checked here, before
/// anything is sent; the rows are then streamed (see [`write_rows`]).
fn list(query: &str, dp: &Arc<dyn Dataplane>) -> Answer {
    let q = match list_query(query) {
        Ok(q) => q,
        Err(r) => return r.into(),
    };
    if q.count_only {
        return match dp.count(&q.filter) {
            Ok(n) => Reply::json(200, &json!({ "count": n })),
            Err(e) => ops_error(e),
        }
        .into();
    }
    let dp = Arc::clone(dp);
    Answer::Stream {
        content_type: "application/json",
        produce: Box::new(move |out| write_rows(&*dp, &q.filter, q.proplist.as_deref(), out)),
    }
}

/// A listing's body, `[row,row,...]`, written row by row as the dataplane
/// visits them: each row exactly as `serde_json` writes a [`ConnSnapshot`]
/// (or its `.proplist` pick), so the document is byte for byte the one the
/// whole array would give. Rows are encoded straight into the body, whose
/// one chunk buffer is all the memory a listing takes.
fn write_rows(
    dp: &dyn Dataplane,
    filter: &[(String, String)],
    proplist: Option<&[String]>,
    out: &mut dyn Write,
) -> Result<(), StreamError> {
    out.write_all(b"[")?;
    let mut first = true;
    let mut stopped = None;
    let walked = dp.for_each_connection(filter, &mut |row| {
        let sep: &[u8] = if first { b"" } else { b"," };
        first = false;
        let written = out
            .write_all(sep)
            .map_err(StreamError::Io)
            .and_then(|()| encode_row(out, &row, proplist));
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                stopped = Some(e);
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = stopped {
        return Err(e);
    }
    walked.map_err(|e| StreamError::Failed(ops_error(e)))?;
    out.write_all(b"]")?;
    Ok(())
}

/// One row of a listing, straight into the (buffered) body.
fn encode_row(
    out: &mut dyn Write,
    row: &ConnSnapshot,
    proplist: Option<&[String]>,
) -> Result<(), StreamError> {
    let encoded = match proplist {
        None => serde_json::to_writer(&mut *out, row),
        Some(props) => serde_json::to_writer(&mut *out, &pick(row, props)),
    };
    encoded.map_err(|e| {
        if e.is_io() {
            StreamError::Io(e.into())
        } else {
            StreamError::Failed(Reply::error(
                500,
                format!("cannot encode the answer: {e}"),
                String::new(),
            ))
        }
    })
}

/// The `.proplist` properties of a row, in that order.
fn pick(r: &ConnSnapshot, props: &[String]) -> Value {
    let mut full = match serde_json::to_value(r) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut m = Map::new();
    for p in props {
        if p == "flags" {
            m.insert(p.clone(), Value::String(r.flags()));
        } else if let Some(v) = full.remove(p) {
            m.insert(p.clone(), v);
        }
    }
    Value::Object(m)
}

/// Reads at most [`MAX_BODY`] bytes; `Err` is the 4xx to send.
fn read_body(req: &mut Req<'_>) -> Result<Vec<u8>, Reply> {
    if req.body_length.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    match req.body.take(MAX_BODY as u64 + 1).read_to_end(&mut buf) {
        Ok(_) if buf.len() > MAX_BODY => Err(too_large()),
        Ok(_) => Ok(buf),
        Err(e) => Err(bad_request(format!("cannot read the body: {e}"), "body")),
    }
}

fn set_tracking(req: &mut Req<'_>, dp: &dyn Dataplane) -> Reply {
    let body = match read_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("body: invalid JSON: {e}"), "body"),
    };
    let Value::Object(obj) = value else {
        return bad_request(
            "body: expected a JSON object of settings, e.g. {\"udp-timeout\": \"30s\"}",
            "body",
        );
    };
    let read_only: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| READ_ONLY.contains(k))
        .collect();
    if !read_only.is_empty() {
        return bad_request(
            format!(
                "{} read-only",
                read_only.join(", ") + if read_only.len() == 1 { " is" } else { " are" }
            ),
            String::new(),
        );
    }
    let mut changes = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
            Value::Number(n) => n.to_string(),
            other => {
                return bad_request(
                    format!("bad value {other} for {k}: expected a string"),
                    String::new(),
                );
            }
        };
        changes.push((k, text));
    }
    match dp.set_tracking(&changes) {
        Ok(t) => Reply::json(200, &t),
        Err(e) => ops_error(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io;
    use std::net::TcpStream;
    use std::time::Duration;

    use crate::http::tests::{dechunk, split_answer};
    use crate::http::{MAX_HEAD, STREAM_CHUNK};
    use crate::ops::{FakeDataplane, TrackingInfo};
    use dataplane::conntrack::Settings;

    /// A TCP, a UDP and an ICMP connection, as the table would show them.
    pub(crate) fn rows() -> Vec<ConnSnapshot> {
        let base = ConnSnapshot {
            id: "*1f2a".to_string(),
            worker: 0,
            protocol: "tcp".to_string(),
            src_address: "10.0.0.1:40000".to_string(),
            dst_address: "10.0.0.2:80".to_string(),
            reply_src_address: "10.0.0.2:80".to_string(),
            reply_dst_address: "10.0.0.1:40000".to_string(),
            tcp_state: Some("established".to_string()),
            icmp_id: None,
            icmp_type: None,
            icmp_code: None,
            gre_key: None,
            gre_version: None,
            gre_protocol: None,
            timeout: "23h59m58s".to_string(),
            orig_packets: 5,
            orig_bytes: 600,
            orig_fasttrack_packets: 0,
            orig_fasttrack_bytes: 0,
            orig_rate: 0,
            repl_packets: 4,
            repl_bytes: 3000,
            repl_fasttrack_packets: 0,
            repl_fasttrack_bytes: 0,
            repl_rate: 1200,
            assured: true,
            confirmed: true,
            seen_reply: true,
            dying: false,
            expected: false,
            fasttrack: false,
            srcnat: false,
            dstnat: false,
            connection_mark: String::new(),
            connection_type: String::new(),
        };
        let udp = ConnSnapshot {
            id: "*1000000002b".to_string(),
            worker: 1,
            protocol: "udp".to_string(),
            src_address: "10.0.0.1:5353".to_string(),
            dst_address: "10.0.0.3:53".to_string(),
            reply_src_address: "10.0.0.3:53".to_string(),
            reply_dst_address: "10.0.0.1:5353".to_string(),
            tcp_state: None,
            timeout: "8s".to_string(),
            orig_packets: 1,
            orig_bytes: 80,
            repl_packets: 0,
            repl_bytes: 0,
            repl_rate: 0,
            assured: false,
            seen_reply: false,
            ..base.clone()
        };
        let icmp = ConnSnapshot {
            id: "*7".to_string(),
            protocol: "icmp".to_string(),
            src_address: "10.0.0.1".to_string(),
            dst_address: "10.0.0.4".to_string(),
            reply_src_address: "10.0.0.4".to_string(),
            reply_dst_address: "10.0.0.1".to_string(),
            tcp_state: None,
            icmp_id: Some(77),
            icmp_type: Some(8),
            icmp_code: Some(0),
            timeout: "9s".to_string(),
            ..base.clone()
        };
        vec![base, udp, icmp]
    }

    pub(crate) fn fake() -> Arc<FakeDataplane> {
        Arc::new(FakeDataplane {
            rows: parking_lot::Mutex::new(rows()),
            max_entries: 1 << 20,
            ..FakeDataplane::default()
        })
    }

    fn start(dp: Arc<FakeDataplane>, token: Option<&str>) -> (ApiServer, String) {
        let srv = ApiServer::start(
            "127.0.0.1:0".parse().unwrap(),
            token.map(str::to_string),
            dp,
        )
        .unwrap();
        let base = format!("http://{}", srv.local_addr());
        (srv, base)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .new_agent()
    }

    /// (status, body) of a request.
    fn call(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> (u16, String) {
        let a = agent();
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match (method, body) {
            ("GET", _) => {
                let mut r = a.get(url);
                if let Some(h) = &auth {
                    r = r.header("Authorization", h);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = a.delete(url);
                if let Some(h) = &auth {
                    r = r.header("Authorization", h);
                }
                r.call()
            }
            (m, b) => {
                let mut r = match m {
                    "PATCH" => a.patch(url),
                    "PUT" => a.put(url),
                    _ => a.post(url),
                };
                if let Some(h) = &auth {
                    r = r.header("Authorization", h);
                }
                r.content_type("application/json").send(b.unwrap_or(""))
            }
        };
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    fn json_of(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    /// The status is `status` and the error body's message names `field`.
    fn assert_error(got: (u16, String), status: u16, field: &str) {
        assert_eq!(got.0, status, "{}", got.1);
        let v = json_of(&got.1);
        assert_eq!(v["error"], status, "{}", got.1);
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(field), "message {msg:?} should name {field:?}");
        assert!(v["detail"].is_string(), "{}", got.1);
    }

    #[test]
    fn lists_and_filters_connections() {
        let (_srv, base) = start(fake(), None);
        let url = format!("{base}{CONNECTION}");
        let (st, body) = call("GET", &url, None, None);
        assert_eq!(st, 200);
        let all = json_of(&body);
        let want = serde_json::to_value(rows()).unwrap();
        assert_eq!(all, want);
        assert_eq!(all[0]["tcp-state"], "established");
        assert!(all[1].get("tcp-state").is_none());

        let (st, body) = call(
            "GET",
            &format!("{url}?protocol=tcp&tcp-state=established"),
            None,
            None,
        );
        assert_eq!(st, 200);
        let v = json_of(&body);
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], "*1f2a");

        // Address by IP alone, boolean as yes/no, percent-encoding.
        let (_, body) = call(
            "GET",
            &format!("{url}?src-address=10.0.0.1&assured=no"),
            None,
            None,
        );
        let v = json_of(&body);
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["protocol"], "udp");
        let (_, body) = call("GET", &format!("{url}?id=%2A7"), None, None);
        assert_eq!(json_of(&body)[0]["protocol"], "icmp");

        let (st, body) = call("GET", &format!("{url}?count-only=yes"), None, None);
        assert_eq!(st, 200);
        assert_eq!(json_of(&body), json!({ "count": 3 }));
        let (_, body) = call(
            "GET",
            &format!("{url}?count-only=&protocol=udp"),
            None,
            None,
        );
        assert_eq!(json_of(&body), json!({ "count": 1 }));

        let (_, body) = call(
            "GET",
            &format!("{url}?.proplist=id,flags&protocol=tcp"),
            None,
            None,
        );
        assert_eq!(json_of(&body), json!([{ "id": "*1f2a", "flags": "AC" }]));

        // Trailing slash is the same path.
        assert_eq!(call("GET", &format!("{url}/"), None, None).0, 200);
    }

    #[test]
    fn one_connection_and_remove() {
        let dp = fake();
        let (_srv, base) = start(dp.clone(), None);
        let url = format!("{base}{CONNECTION}");
        let (st, body) = call("GET", &format!("{url}/*1f2a"), None, None);
        assert_eq!(st, 200);
        assert_eq!(json_of(&body), serde_json::to_value(&rows()[0]).unwrap());
        let (st, body) = call("GET", &format!("{url}/%2A1000000002b"), None, None);
        assert_eq!(st, 200);
        assert_eq!(json_of(&body)["protocol"], "udp");

        let (st, body) = call("DELETE", &format!("{url}/%2a1f2a"), None, None);
        assert_eq!((st, body.as_str()), (204, ""));
        assert_eq!(dp.rows.lock().len(), 2);
        assert_error(
            call("DELETE", &format!("{url}/*1f2a"), None, None),
            404,
            "*1f2a",
        );
        assert_error(
            call("GET", &format!("{url}/*1f2a"), None, None),
            404,
            "*1f2a",
        );
        assert_error(call("GET", &format!("{url}/1f2a"), None, None), 400, "id");
        assert_error(call("GET", &format!("{url}/*xyz"), None, None), 400, "*xyz");
        assert_error(
            call("DELETE", &format!("{url}/%ZZ"), None, None),
            400,
            "percent",
        );
    }

    #[test]
    fn tracking_get_and_set() {
        let dp = fake();
        let (_srv, base) = start(dp.clone(), None);
        let url = format!("{base}{TRACKING}");
        let (st, body) = call("GET", &url, None, None);
        assert_eq!(st, 200);
        let v = json_of(&body);
        assert_eq!(v["enabled"], "auto");
        assert_eq!(v["tcp-established-timeout"], "1d");
        assert_eq!(v["max-entries"], 1 << 20);
        assert_eq!(v["total-entries"], 3);
        let want = serde_json::to_value(TrackingInfo {
            settings: Settings::default(),
            max_entries: 1 << 20,
            total_entries: 3,
            auto_tracking: None,
            tracking_needed_by: Vec::new(),
        })
        .unwrap();
        assert_eq!(v, want);

        let (st, body) = call(
            "PATCH",
            &url,
            Some(r#"{"udp-timeout": "30s", "loose-tcp-tracking": "no"}"#),
            None,
        );
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        assert_eq!(v["udp-timeout"], "30s");
        assert_eq!(v["loose-tcp-tracking"], false);
        assert!(!dp.settings.lock().loose_tcp_tracking);

        // JSON booleans and numbers become strings; POST .../set is the same.
        let (st, body) = call(
            "POST",
            &format!("{url}/set"),
            Some(r#"{"loose-tcp-tracking": true, "icmp-timeout": 20}"#),
            None,
        );
        assert_eq!(st, 200, "{body}");
        let v = json_of(&body);
        assert_eq!(v["loose-tcp-tracking"], true);
        assert_eq!(v["icmp-timeout"], "20s");
        // checksum-verify (Linux's nf_conntrack_checksum), set live.
        assert_eq!(v["checksum-verify"], true);
        let (st, body) = call("PATCH", &url, Some(r#"{"checksum-verify": "no"}"#), None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(json_of(&body)["checksum-verify"], false);
        assert!(!dp.settings.lock().checksum_verify);
        let (st, _) = call("PATCH", &url, Some("{}"), None);
        assert_eq!(st, 200);
    }

    #[test]
    fn tracking_bad_input() {
        let dp = fake();
        let (_srv, base) = start(dp.clone(), None);
        let url = format!("{base}{TRACKING}");
        assert_error(
            call("PATCH", &url, Some(r#"{"max-entries": "5"}"#), None),
            400,
            "max-entries",
        );
        assert_error(
            call(
                "PATCH",
                &url,
                Some(r#"{"total-entries": 1, "max-entries": 2}"#),
                None,
            ),
            400,
            "total-entries",
        );
        assert_error(
            call("PATCH", &url, Some(r#"{"udp-timout": "5s"}"#), None),
            400,
            "udp-timout",
        );
        assert_error(
            call("PATCH", &url, Some(r#"{"udp-timeout": "soon"}"#), None),
            400,
            "udp-timeout",
        );
        assert_error(
            call("PATCH", &url, Some(r#"{"enabled": "maybe"}"#), None),
            400,
            "enabled",
        );
        assert_error(
            call("PATCH", &url, Some(r#"{"udp-timeout": null}"#), None),
            400,
            "udp-timeout",
        );
        assert_error(
            call("PATCH", &url, Some(r#"{"udp-timeout": ["5s"]}"#), None),
            400,
            "udp-timeout",
        );
        assert_error(
            call("PATCH", &url, Some("{\"udp-timeout\": "), None),
            400,
            "JSON",
        );
        assert_error(call("PATCH", &url, Some(""), None), 400, "JSON");
        assert_error(
            call("PATCH", &url, Some(r#"["udp-timeout"]"#), None),
            400,
            "object",
        );
        assert_error(call("PATCH", &url, Some("\"30s\""), None), 400, "object");
        // All or nothing: the good change did not happen either.
        assert_error(
            call(
                "PATCH",
                &url,
                Some(r#"{"udp-timeout": "1m", "icmp-timeout": "x"}"#),
                None,
            ),
            400,
            "icmp-timeout",
        );
        assert_eq!(*dp.settings.lock(), Settings::default());

        let big = format!(r#"{{"udp-timeout": "{}"}}"#, "1".repeat(MAX_BODY));
        assert_error(call("PATCH", &url, Some(&big), None), 413, "body");
        // Just at the limit is read (and then refused as a bad value).
        let at = format!(r#"{{"udp-timeout": "{}"}}"#, " ".repeat(MAX_BODY - 19));
        assert_eq!(at.len(), MAX_BODY);
        assert_error(call("PATCH", &url, Some(&at), None), 400, "udp-timeout");
    }

    /// Raw bytes in, the whole answer out.
    fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
        String::from_utf8_lossy(&raw_bytes(addr, bytes)).to_string()
    }

    fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// `n` connections (the three of [`rows`] in turn, each its own id),
    /// about 580 bytes of JSON each.
    fn many(n: usize) -> Vec<ConnSnapshot> {
        let three = rows();
        (0..n)
            .map(|i| ConnSnapshot {
                id: format!("*{:x}", 0x100 + i),
                ..three[i % 3].clone()
            })
            .collect()
    }

    fn fake_of(rows: Vec<ConnSnapshot>, list_fails_after: Option<usize>) -> Arc<FakeDataplane> {
        Arc::new(FakeDataplane {
            rows: parking_lot::Mutex::new(rows),
            list_fails_after,
            ..FakeDataplane::default()
        })
    }

    fn get_raw(addr: SocketAddr, method: &str, target: &str) -> Vec<u8> {
        raw_bytes(
            addr,
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    }

    #[test]
    fn listings_are_streamed_in_chunks_of_the_same_document() {
        let (srv, _) = start(fake_of(many(3000), None), None);
        let a = srv.local_addr();
        let out = get_raw(a, "GET", CONNECTION);
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nContent-Type: application/json\r\n"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
        let (doc, ended, sizes) = dechunk(body);
        assert!(ended);
        assert!(sizes.len() > 10, "{sizes:?}");
        assert!(
            sizes.iter().all(|&n| n == STREAM_CHUNK) || {
                let (last, full) = sizes.split_last().unwrap();
                *last <= STREAM_CHUNK && full.iter().all(|&n| n == STREAM_CHUNK)
            }
        );
        // Byte for byte what serialising the whole array gives.
        assert_eq!(doc, serde_json::to_vec(&many(3000)).unwrap());

        // Filters and .proplist apply, with the same document as before.
        let out = get_raw(
            a,
            "GET",
            &format!("{CONNECTION}?.proplist=id,flags,timeout&protocol=udp"),
        );
        let (head, body) = split_answer(&out);
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        let (doc, ended, _) = dechunk(body);
        assert!(ended);
        let want: Vec<Value> = many(3000)
            .iter()
            .filter(|r| r.protocol == "udp")
            .map(|r| json!({ "id": r.id, "flags": r.flags(), "timeout": r.timeout }))
            .collect();
        assert_eq!(want.len(), 1000);
        assert_eq!(doc, serde_json::to_vec(&want).unwrap());
        let (_, body) = call(
            "GET",
            &format!("http://{a}{CONNECTION}?worker=1&.proplist=id"),
            None,
            None,
        );
        assert_eq!(json_of(&body).as_array().unwrap().len(), 1000);

        // Nothing to list: an empty array, chunked all the same.
        let (srv, _) = start(fake_of(Vec::new(), None), None);
        let out = get_raw(srv.local_addr(), "GET", CONNECTION);
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert_eq!(body, b"2\r\n[]\r\n0\r\n\r\n");

        // count-only and one connection keep their fixed-length answers.
        let out = get_raw(a, "GET", &format!("{CONNECTION}?count-only=yes"));
        let (head, body) = split_answer(&out);
        assert!(head.contains("Content-Length: 14\r\n"), "{head}");
        assert_eq!(body, br#"{"count":3000}"#);
        let out = get_raw(a, "GET", &format!("{CONNECTION}/*100"));
        let (head, body) = split_answer(&out);
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(!head.contains("chunked"), "{head}");

        // HEAD: the head a GET would have, no body.
        let out = get_raw(a, "HEAD", CONNECTION);
        let (head, body) = split_answer(&out);
        assert!(
            head.starts_with("HTTP/1.1 200 ") && head.contains("Transfer-Encoding: chunked"),
            "{head}"
        );
        assert!(body.is_empty(), "{} body bytes", body.len());
    }

    #[test]
    fn a_listing_that_fails_before_its_first_chunk_answers_with_the_error() {
        // 50 rows are less than one chunk: nothing was sent when it fails.
        for after in [0, 2, 50] {
            let (srv, base) = start(fake_of(many(3000), Some(after)), None);
            let out = get_raw(srv.local_addr(), "GET", CONNECTION);
            let (head, body) = split_answer(&out);
            assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
            assert!(
                head.contains(&format!("Content-Length: {}\r\n", body.len())),
                "{head}"
            );
            assert!(!head.contains("chunked"), "{head}");
            assert_error(
                call("GET", &format!("{base}{CONNECTION}"), None, None),
                503,
                "did not answer",
            );
            assert_error(
                call(
                    "GET",
                    &format!("{base}{CONNECTION}?protocol=udp"),
                    None,
                    None,
                ),
                503,
                "did not answer",
            );
            let out = get_raw(srv.local_addr(), "HEAD", CONNECTION);
            let (head, body) = split_answer(&out);
            assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
            assert!(body.is_empty());
        }
        // Bad input is refused before anything is walked.
        let (_srv, base) = start(fake_of(many(10), Some(0)), None);
        assert_error(
            call(
                "GET",
                &format!("{base}{CONNECTION}?protcol=udp"),
                None,
                None,
            ),
            400,
            "protcol",
        );
    }

    #[test]
    fn a_listing_that_fails_midway_ends_without_its_last_chunk() {
        let (srv, base) = start(fake_of(many(3000), Some(1000)), None);
        let out = get_raw(srv.local_addr(), "GET", CONNECTION);
        let (head, body) = split_answer(&out);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert!(!body.ends_with(b"0\r\n\r\n"));
        let (doc, ended, sizes) = dechunk(body);
        assert!(!ended, "no last chunk");
        assert!(sizes.iter().all(|&n| n == STREAM_CHUNK), "{sizes:?}");
        let full = serde_json::to_vec(&many(3000)).unwrap();
        assert!(doc.len() >= STREAM_CHUNK && full.starts_with(&doc));
        assert!(serde_json::from_slice::<Value>(&doc).is_err());

        // An HTTP client sees a failed transfer, not a shorter list.
        let mut resp = agent().get(format!("{base}{CONNECTION}")).call().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.body_mut().read_to_string().is_err());
        let e = crate::client::execute(
            crate::client::ConnectionCmd::Print {
                where_: Vec::new(),
                json: true,
                count: false,
            },
            &base,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn raw_protocol_errors() {
        use std::io::Write;
        let (srv, _) = start(fake(), None);
        let a = srv.local_addr();
        let chunked = format!(
            "PATCH {TRACKING} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        assert!(raw(a, chunked.as_bytes()).starts_with("HTTP/1.1 411 "));
        // A huge declared body is refused unread.
        let huge = format!("PATCH {TRACKING} HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
        let out = raw(a, huge.as_bytes());
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
        assert!(out.contains("\"error\":413"), "{out}");
        let neg = format!("PATCH {TRACKING} HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
        let out = raw(a, neg.as_bytes());
        assert!(
            out.starts_with("HTTP/1.1 400 ") && out.contains("Content-Length"),
            "{out}"
        );
        assert!(raw(a, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(raw(a, b"GET\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(raw(a, b"GET /rest HTTP/9.9\r\n\r\n").starts_with("HTTP/1.1 505 "));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        assert!(raw(a, long.as_bytes()).starts_with("HTTP/1.1 431 "));
        // HEAD: headers only; Expect: 100-continue is honoured.
        let out = raw(a, format!("HEAD {TRACKING} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(
            out.starts_with("HTTP/1.1 200 ") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
        let body = r#"{"udp-timeout":"30s"}"#;
        let mut c = TcpStream::connect(a).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let head = format!(
            "PATCH {TRACKING} HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        let mut cont = [0u8; 25];
        c.read_exact(&mut cont).unwrap();
        assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
        c.write_all(body.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200 ") && out.contains("\"udp-timeout\":\"30s\""),
            "{out}"
        );
    }

    #[test]
    fn filter_bad_input() {
        let (_srv, base) = start(fake(), None);
        let url = format!("{base}{CONNECTION}");
        let cases = [
            ("protcol=tcp", "protcol"),
            ("assured=maybe", "assured"),
            ("orig-packets=many", "orig-packets"),
            ("timeout=soon", "timeout"),
            ("id=1f2a", "id"),
            ("count-only=perhaps", "count-only"),
            (".proplist=id,nope", "nope"),
            ("protocol=%E0%A4%A", "percent"),
            ("protocol=%FF", "UTF-8"),
        ];
        for (q, field) in cases {
            assert_error(call("GET", &format!("{url}?{q}"), None, None), 400, field);
        }
        // Unknown property is refused even when no row would be tested.
        let empty = Arc::new(FakeDataplane::default());
        let (_srv2, base2) = start(empty, None);
        assert_error(
            call(
                "GET",
                &format!("{base2}{CONNECTION}?protcol=tcp"),
                None,
                None,
            ),
            400,
            "protcol",
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        let (_srv, base) = start(fake(), None);
        assert_error(
            call("GET", &format!("{base}/rest/ip/firewall/nat"), None, None),
            404,
            "/rest/ip/firewall/nat",
        );
        assert_error(
            call("GET", &format!("{base}/metrics"), None, None),
            404,
            "/metrics",
        );
        assert_error(call("GET", &format!("{base}/"), None, None), 404, "/");
        assert_error(
            call("GET", &format!("{base}{CONNECTION}/*1/extra"), None, None),
            404,
            "extra",
        );
        assert_error(
            call("POST", &format!("{base}{CONNECTION}"), Some("{}"), None),
            405,
            "POST",
        );
        assert_error(
            call("DELETE", &format!("{base}{TRACKING}"), None, None),
            405,
            "DELETE",
        );
        assert_error(
            call(
                "PUT",
                &format!("{base}{CONNECTION}/*1f2a"),
                Some("{}"),
                None,
            ),
            405,
            "PUT",
        );
        assert_error(
            call("GET", &format!("{base}{TRACKING_SET}"), None, None),
            405,
            "GET",
        );
    }

    #[test]
    fn bearer_token() {
        let (_srv, base) = start(fake(), Some("s3cret"));
        let url = format!("{base}{CONNECTION}");
        assert_error(call("GET", &url, None, None), 401, "token");
        assert_error(call("GET", &url, None, Some("wrong")), 401, "token");
        assert_error(call("GET", &url, None, Some("s3cret-")), 401, "token");
        assert_error(
            call("DELETE", &format!("{url}/*1f2a"), None, None),
            401,
            "token",
        );
        assert_eq!(call("GET", &url, None, Some("s3cret")).0, 200);
        assert_eq!(
            call("DELETE", &format!("{url}/*1f2a"), None, Some("s3cret")).0,
            204
        );
        assert!(!authorized(Some("Basic czNjcmV0"), "s3cret"));
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let err = ApiServer::start(addr, None, fake())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("0.0.0.0:0") && err.contains("api-token"),
            "{err}"
        );
        let err = ApiServer::start(addr, Some(String::new()), fake())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("token"), "{err}");
        let mut srv = ApiServer::start(addr, Some("t".to_string()), fake()).unwrap();
        assert_ne!(srv.local_addr().port(), 0);
        srv.stop();
        srv.stop();
        let v6: SocketAddr = "[::1]:0".parse().unwrap();
        if let Ok(srv) = ApiServer::start(v6, None, fake()) {
            assert!(srv.local_addr().ip().is_loopback());
        }
    }

    #[test]
    fn stop_closes_the_listener_and_bind_errors_name_the_address() {
        let (mut srv, base) = start(fake(), None);
        let addr = srv.local_addr();
        assert_eq!(call("GET", &format!("{base}{TRACKING}"), None, None).0, 200);
        srv.stop();
        // The port is free again.
        let again = ApiServer::start(addr, None, fake());
        let again = again.unwrap();
        let err = ApiServer::start(addr, None, fake())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&addr.to_string()), "{err}");
        drop(again);
    }

    /// A client that sends nothing holds a handler only until the server's
    /// read timeout: with every handler taken by one, a real request is
    /// still answered, and the server closes each silent connection itself.
    /// No clock in the test: each step waits for an event (the clients' own
    /// timeouts only keep a broken server from hanging the test).
    #[test]
    fn silent_clients_hold_a_handler_only_until_the_timeout() {
        let (srv, base) = start(fake(), None);
        // Every handler busy with a client that sends nothing.
        let idle: Vec<_> = (0..HANDLER_THREADS)
            .map(|_| TcpStream::connect(srv.local_addr()).unwrap())
            .collect();
        let request =
            std::thread::spawn(move || call("GET", &format!("{base}{TRACKING}"), None, None).0);
        for mut s in idle {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                other => panic!("the server did not close a silent client: {other:?}"),
            }
        }
        assert_eq!(request.join().unwrap(), 200);
    }
}
