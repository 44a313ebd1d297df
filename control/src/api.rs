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

use crate::auth::Access;
use crate::http::{Answer, AnswerHandler, HttpServer, Reply, Req, StreamError, too_large};
pub use crate::http::{ApiError, MAX_BODY};
use crate::ops::{Dataplane, OpsError};
pub(crate) use crate::rest::percent_decode;

/// The API's default address: loopback, RouterOS's API port.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8728";
/// Threads answering requests.
pub const HANDLER_THREADS: usize = 3;

const CONNECTION: &str = "/rest/ip/firewall/connection";
const TRACKING: &str = "/rest/ip/firewall/connection/tracking";
const TRACKING_SET: &str = "/rest/ip/firewall/connection/tracking/set";
const PRINT: &str = "/rest/ip/firewall/connection/print";
const REMOVE: &str = "/rest/ip/firewall/connection/remove";
const LISTEN: &str = "/rest/ip/firewall/connection/listen";
/// The connection helpers' expectations (`conntrack -L expect`).
const EXPECT: &str = "/rest/ip/firewall/connection/expect";

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
        let access = Access {
            token,
            users: Vec::new(),
        };
        ApiServer::start_with(addr, access, None, dp)
    }

    /// [`ApiServer::start`] with Basic users besides the token, and TLS
    /// (HTTPS only) when `tls` is given. With neither token nor users, only
    /// a loopback address is accepted.
    pub fn start_with(
        addr: SocketAddr,
        access: Access,
        tls: Option<crate::http::Tls>,
        dp: Arc<dyn Dataplane>,
    ) -> Result<ApiServer, ApiError> {
        if access.is_open() && !addr.ip().is_loopback() {
            return Err(ApiError::TokenRequired { addr });
        }
        let handler: Arc<AnswerHandler> = Arc::new(move |req: &mut Req<'_>| {
            if !access.allows(req.authorization) {
                return Reply::error(
                    401,
                    "missing or wrong credentials: a bearer token or a Basic user \
                     (Authorization header)"
                        .to_string(),
                    String::new(),
                )
                .with_header("WWW-Authenticate", access.challenge())
                .into();
            }
            route(req, &dp)
        });
        let http = HttpServer::start_tls(addr, "ctrack-api", HANDLER_THREADS, handler, tls)?;
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

pub(crate) fn bad_request(message: impl Into<String>, detail: impl Into<String>) -> Reply {
    Reply::error(400, message.into(), detail.into())
}

pub(crate) fn method_not_allowed(method: &str, path: &str, allow: &str) -> Reply {
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
    let path = match crate::rest::decode_path(raw_path) {
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
    if path == LISTEN && method == "GET" {
        return crate::listen::listen(query, dp);
    }
    let dp_arc = dp;
    let dp = &**dp;
    if crate::flow_rest::owns(path) {
        return crate::flow_rest::route(req, path, dp).into();
    }
    // The firewall menus and `/export` (`crate::fw_rest`).
    if let Some((menu, rest)) = crate::fw_manage::Menu::from_rest_path(path) {
        return crate::fw_rest::route(req, dp, menu, rest, query).into();
    }
    if let Some((fam, rest)) = crate::route_rest::owns_neighbors(path) {
        return crate::route_rest::neighbors(req, dp, fam, rest).into();
    }
    if let Some((fam, rest)) = crate::route_rest::owns(path) {
        return crate::route_rest::route(req, dp, fam, rest).into();
    }
    if path == crate::fw_rest::EXPORT {
        return crate::fw_rest::export(method, dp).into();
    }
    match path {
        CONNECTION => method_not_allowed(method, path, "GET"),
        TRACKING => match method {
            "GET" => tracking_reply(&dp.tracking()),
            "PATCH" => set_tracking(req, dp),
            _ => method_not_allowed(method, path, "GET, PATCH"),
        },
        TRACKING_SET => match method {
            "POST" => set_tracking(req, dp),
            _ => method_not_allowed(method, path, "POST"),
        },
        LISTEN => method_not_allowed(method, path, "GET"),
        PRINT => match method {
            "POST" => return print(req, dp_arc),
            _ => method_not_allowed(method, path, "POST"),
        },
        REMOVE => match method {
            "POST" => remove(req, dp),
            _ => method_not_allowed(method, path, "POST"),
        },
        EXPECT => match method {
            "GET" => match dp.expectations() {
                Ok(rows) => Reply::json(200, &rows),
                Err(e) => ops_error(e),
            },
            _ => method_not_allowed(method, path, "GET"),
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

pub(crate) fn ops_error(e: OpsError) -> Reply {
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
        OpsError::Invalid(_) => bad_request(e.to_string(), String::new()),
        OpsError::NoItem(_) => Reply::error(404, e.to_string(), String::new()),
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
            Ok(c) => Reply::json(200, &crate::rest::row(&c)),
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
    check_filter_value(prop, value).map_err(|e| (e.to_string(), String::new()))?;
    crate::rest::check_value_form(prop, value).map_err(|e| (e, String::new()))
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
    /// `POST .../print`'s `.query`.
    query: Option<crate::rest::Query>,
}

/// Checks a `.proplist`: REST property names (`id` is taken for `.id`).
pub(crate) fn proplist(props: &[String]) -> Result<Vec<String>, Reply> {
    props
        .iter()
        .map(|p| {
            let p = if p == "id" { ".id" } else { p.as_str() };
            if crate::rest::rest_properties().any(|k| k == p) {
                Ok(p.to_string())
            } else {
                Err(bad_request(
                    format!("unknown connection property {p:?} in .proplist"),
                    format!(
                        "known properties: {}",
                        crate::rest::rest_properties()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        })
        .collect()
}

/// Parses and checks a listing's query; `Err` is the 400 to send.
fn list_query(query: &str) -> Result<ListQuery, Reply> {
    let mut q = ListQuery {
        filter: Vec::new(),
        count_only: false,
        proplist: None,
        query: None,
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
                q.proplist = Some(proplist(&props)?);
            }
            _ => {
                let k = if k == ".id" { "id".to_string() } else { k };
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
            Ok(n) => Reply::json(200, &json!({ "count": n.to_string() })),
            Err(e) => ops_error(e),
        }
        .into();
    }
    stream_rows(dp, q)
}

/// The rows of `q`, streamed (see [`write_rows`]).
fn stream_rows(dp: &Arc<dyn Dataplane>, q: ListQuery) -> Answer {
    let dp = Arc::clone(dp);
    Answer::Stream {
        content_type: "application/json",
        produce: Box::new(move |out| {
            write_rows(
                &*dp,
                &q.filter,
                q.query.as_ref(),
                q.proplist.as_deref(),
                out,
            )
        }),
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
    query: Option<&crate::rest::Query>,
    proplist: Option<&[String]>,
    out: &mut dyn Write,
) -> Result<(), StreamError> {
    out.write_all(b"[")?;
    let mut first = true;
    let mut stopped = None;
    let walked = dp.for_each_connection(filter, &mut |row| {
        if query.is_some_and(|q| !q.matches(&crate::rest::row(&row))) {
            return ControlFlow::Continue(());
        }
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
    let encoded = serde_json::to_writer(&mut *out, &crate::rest::pick(row, proplist));
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
    if let Some(k) = crate::rest::duplicate_key(&body) {
        return bad_request(format!("body: the setting {k:?} is given twice"), "body");
    }
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
        Ok(t) => tracking_reply(&t),
        Err(e) => ops_error(e),
    }
}

/// The tracking menu as RouterOS serves it: every value a string.
fn tracking_reply(t: &crate::ops::TrackingInfo) -> Reply {
    match serde_json::to_value(t) {
        Ok(v) => Reply::json(200, &crate::rest::strings(v)),
        Err(e) => Reply::error(500, format!("cannot encode the answer: {e}"), String::new()),
    }
}

/// `POST .../remove` with `{".id": "*1,*2"}` (comma-separated, as RouterOS
/// takes them): every id is checked by `check` before any is removed by
/// `remove`, so a bad id removes nothing; `error` answers a failure.
pub(crate) fn remove_ids<E>(
    req: &mut Req<'_>,
    check: impl Fn(&str) -> Result<(), E>,
    remove: impl Fn(&str) -> Result<(), E>,
    error: impl Fn(E) -> Reply,
) -> Reply {
    let obj = match command_body(req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(ids) = obj.get(".id").and_then(Value::as_str) else {
        return Reply::error(
            400,
            "body: expected {\".id\": \"*1\"}".to_string(),
            String::new(),
        );
    };
    let ids: Vec<&str> = ids.split(',').map(str::trim).collect();
    if let Some(e) = ids.iter().find_map(|id| check(id).err()) {
        return error(e);
    }
    for id in ids {
        if let Err(e) = remove(id) {
            return error(e);
        }
    }
    Reply::json(200, &Value::Array(Vec::new()))
}

/// Reads a command's JSON object body (`{}` when empty); `Err` is the 400.
pub(crate) fn command_body(req: &mut Req<'_>) -> Result<Map<String, Value>, Reply> {
    let body = read_body(req)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    if let Some(k) = crate::rest::duplicate_key(&body) {
        return Err(bad_request(format!("body: {k:?} is given twice"), "body"));
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request(
            "body: expected a JSON object, e.g. {\".proplist\": \".id,protocol\"}",
            "body",
        )),
        Err(e) => Err(bad_request(format!("body: invalid JSON: {e}"), "body")),
    }
}

/// A list of words given as an array of strings or one comma-separated
/// string (RouterOS accepts both for `.proplist`).
pub(crate) fn words(key: &str, v: &Value, sep: char) -> Result<Vec<String>, Reply> {
    let bad = || {
        bad_request(
            format!("body: {key} must be a string or an array of strings"),
            "body",
        )
    };
    match v {
        Value::String(s) => Ok(s
            .split(sep)
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Value::Array(a) => a
            .iter()
            .map(|w| w.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// `POST /rest/ip/firewall/connection/print` with `.proplist` and
/// `.query` (see [`crate::rest::Query`]): the rows are streamed as a
/// listing's.
fn print(req: &mut Req<'_>, dp: &Arc<dyn Dataplane>) -> Answer {
    let body = match command_body(req) {
        Ok(b) => b,
        Err(r) => return r.into(),
    };
    let mut q = ListQuery {
        filter: Vec::new(),
        count_only: false,
        proplist: None,
        query: None,
    };
    for (k, v) in &body {
        let done = match k.as_str() {
            ".proplist" => words(k, v, ',').and_then(|p| proplist(&p)).map(|p| {
                q.proplist = Some(p);
            }),
            ".query" => words(k, v, '\n').and_then(|w| {
                crate::rest::Query::parse(&w)
                    .map(|qq| q.query = Some(qq))
                    .map_err(|e| bad_request(e, String::new()))
            }),
            "count-only" => match v.as_str().and_then(yes) {
                Some(b) => {
                    q.count_only = b;
                    Ok(())
                }
                None => Err(bad_request(
                    format!("bad value {v} for count-only: expected \"yes\" or \"no\""),
                    String::new(),
                )),
            },
            other => Err(bad_request(
                format!("unknown argument {other:?} of print"),
                "known: .proplist, .query, count-only",
            )),
        };
        if let Err(r) = done {
            return r.into();
        }
    }
    if q.count_only {
        let mut n = 0u64;
        let query = q.query.unwrap_or_default();
        let walked = dp.for_each_connection(&[], &mut |row| {
            if query.matches(&crate::rest::row(&row)) {
                n += 1;
            }
            ControlFlow::Continue(())
        });
        return match walked {
            Ok(()) => Reply::json(200, &json!({ "count": n.to_string() })),
            Err(e) => ops_error(e),
        }
        .into();
    }
    stream_rows(dp, q)
}

/// `POST /rest/ip/firewall/connection/remove` with `.id`: one id or a
/// comma-separated list, every one checked before any is removed; answers
/// `[]` as RouterOS does.
fn remove(req: &mut Req<'_>, dp: &dyn Dataplane) -> Reply {
    let body = match command_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(k) = body.keys().find(|k| *k != ".id") {
        return bad_request(format!("unknown argument {k:?} of remove"), "known: .id");
    }
    let Some(v) = body.get(".id") else {
        return bad_request(
            "remove needs .id (one id or a comma-separated list)",
            "body",
        );
    };
    let ids = match words(".id", v, ',') {
        Ok(w) => w,
        Err(r) => return r,
    };
    if ids.is_empty() {
        return bad_request(
            "remove needs .id (one id or a comma-separated list)",
            "body",
        );
    }
    let mut parsed = Vec::with_capacity(ids.len());
    for raw in &ids {
        match parse_id(raw) {
            Ok(id) => parsed.push(id),
            Err(r) => return r,
        }
    }
    for id in parsed {
        if let Err(e) = dp.remove(id) {
            return ops_error(e);
        }
    }
    Reply::json(200, &json!([]))
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
    use axum::http::StatusCode;
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

    pub(crate) fn start(dp: Arc<FakeDataplane>, token: Option<&str>) -> (ApiServer, String) {
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
    pub(crate) fn call(
        method: &str,
        url: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
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

    pub(crate) fn json_of(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    /// The status is `status`, the error body's message is the status
    /// text (as RouterOS's) and its detail names `field`.
    pub(crate) fn assert_error(got: (u16, String), status: u16, field: &str) {
        assert_eq!(got.0, status, "{}", got.1);
        let v = json_of(&got.1);
        assert_eq!(v["error"], status, "{}", got.1);
        let text = StatusCode::from_u16(status)
            .unwrap()
            .canonical_reason()
            .unwrap();
        assert_eq!(v["message"], text, "{}", got.1);
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(field),
            "detail {detail:?} should name {field:?}"
        );
    }

    /// The rows as the REST API serves them.
    fn rest_rows(rows: &[ConnSnapshot]) -> Value {
        Value::Array(
            rows.iter()
                .map(|r| Value::Object(crate::rest::row(r)))
                .collect(),
        )
    }

    #[test]
    fn lists_and_filters_connections() {
        let (_srv, base) = start(fake(), None);
        let url = format!("{base}{CONNECTION}");
        let (st, body) = call("GET", &url, None, None);
        assert_eq!(st, 200);
        let all = json_of(&body);
        assert_eq!(all, rest_rows(&rows()));
        assert_eq!(all[0][".id"], "*1f2a");
        assert_eq!(all[0]["orig-packets"], "5");
        assert_eq!(all[0]["assured"], "true");
        assert_eq!(all[0]["hw-offload"], "false");
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
        assert_eq!(v[0][".id"], "*1f2a");

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
        assert_eq!(json_of(&body), json!({ "count": "3" }));
        let (_, body) = call(
            "GET",
            &format!("{url}?count-only=&protocol=udp"),
            None,
            None,
        );
        assert_eq!(json_of(&body), json!({ "count": "1" }));

        let (_, body) = call(
            "GET",
            &format!("{url}?.proplist=id,flags&protocol=tcp"),
            None,
            None,
        );
        // Seen-reply, assured, confirmed, in RouterOS v7's order.
        assert_eq!(json_of(&body), json!([{ ".id": "*1f2a", "flags": "SAC" }]));
        // `.id` by its RouterOS name, in .proplist and as a filter.
        let (_, body) = call(
            "GET",
            &format!("{url}?.proplist=.id,orig-packets&.id=*7"),
            None,
            None,
        );
        assert_eq!(
            json_of(&body),
            json!([{ ".id": "*7", "orig-packets": "5" }])
        );

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
        assert_eq!(json_of(&body), Value::Object(crate::rest::row(&rows()[0])));
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

    /// RouterOS's console commands as REST maps them: `POST .../print`
    /// with `.proplist` and `.query`, `POST .../remove` with `.id`.
    #[test]
    fn print_and_remove_commands() {
        let dp = fake();
        let (_srv, base) = start(dp.clone(), None);
        let print = format!("{base}{PRINT}");
        let (st, body) = call("POST", &print, Some("{}"), None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(json_of(&body), rest_rows(&rows()));
        let (st, body) = call("POST", &print, None, None);
        assert_eq!((st, json_of(&body)), (200, rest_rows(&rows())));

        let (_, body) = call(
            "POST",
            &print,
            Some(
                r##"{".proplist": ".id,protocol", ".query": ["protocol=udp", "protocol=icmp", "#|"]}"##,
            ),
            None,
        );
        assert_eq!(
            json_of(&body),
            json!([{".id": "*1000000002b", "protocol": "udp"}, {".id": "*7", "protocol": "icmp"}])
        );
        let (_, body) = call(
            "POST",
            &print,
            Some(
                r##"{".proplist": [".id"], ".query": ["orig-bytes>100", "tcp-state", "#!", "#&"]}"##,
            ),
            None,
        );
        assert_eq!(json_of(&body), json!([{".id": "*7"}]));
        let (_, body) = call(
            "POST",
            &print,
            Some(r##"{"count-only": "yes", ".query": ["assured=true"]}"##),
            None,
        );
        assert_eq!(json_of(&body), json!({ "count": "2" }));

        for (body, field) in [
            (r##"{".query": ["bogus=1"]}"##, "bogus"),
            (r##"{".query": ["#|"]}"##, "#|"),
            (r##"{".query": "protocol=tcp"}"##, ""),
            (r##"{".proplist": ".id,nope"}"##, "nope"),
            (r##"{".proplist": 5}"##, ".proplist"),
            (r##"{"where": "x"}"##, "where"),
            (r##"[]"##, "object"),
            (r##"{".proplist": "a", ".proplist": "b"}"##, ".proplist"),
        ] {
            let got = call("POST", &print, Some(body), None);
            if field.is_empty() {
                // A single query word as a string is accepted too.
                assert_eq!(got.0, 200, "{body}: {}", got.1);
            } else {
                assert_error(got, 400, field);
            }
        }

        let remove = format!("{base}{REMOVE}");
        let (st, body) = call("POST", &remove, Some(r##"{".id": "*1f2a,*7"}"##), None);
        assert_eq!((st, json_of(&body)), (200, json!([])));
        assert_eq!(dp.rows.lock().len(), 1);
        // Every id is checked before any is removed.
        assert_error(
            call(
                "POST",
                &remove,
                Some(r##"{".id": "*1000000002b,1f"}"##),
                None,
            ),
            400,
            "id",
        );
        assert_eq!(dp.rows.lock().len(), 1);
        let got = call("POST", &remove, Some(r##"{".id": "*1f2a"}"##), None);
        assert_error(got.clone(), 404, "*1f2a");
        assert_eq!(json_of(&got.1)["message"], "Not Found");
        assert_error(call("POST", &remove, Some("{}"), None), 400, ".id");
        assert_error(call("GET", &remove, None, None), 405, "GET");
        assert_error(call("GET", &print, None, None), 405, "GET");
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
        // Every value a string, as RouterOS serves them.
        assert_eq!(v["max-entries"], "1048576");
        assert_eq!(v["total-entries"], "3");
        assert!(v.as_object().unwrap().values().all(Value::is_string), "{v}");
        let want = crate::rest::strings(
            serde_json::to_value(TrackingInfo {
                settings: Settings::default(),
                max_entries: 1 << 20,
                total_entries: 3,
                auto_tracking: None,
                tracking_needed_by: Vec::new(),
            })
            .unwrap(),
        );
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
        assert_eq!(v["loose-tcp-tracking"], "false");
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
        assert_eq!(v["loose-tcp-tracking"], "true");
        assert_eq!(v["icmp-timeout"], "20s");
        // checksum-verify (Linux's nf_conntrack_checksum), set live.
        assert_eq!(v["checksum-verify"], "true");
        let (st, body) = call("PATCH", &url, Some(r#"{"checksum-verify": "no"}"#), None);
        assert_eq!(st, 200, "{body}");
        assert_eq!(json_of(&body)["checksum-verify"], "false");
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
        // A key given twice is refused, not silently the last one.
        assert_error(
            call(
                "PATCH",
                &url,
                Some(r#"{"udp-timeout": "5s", "udp-timeout": "6s"}"#),
                None,
            ),
            400,
            "udp-timeout",
        );
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
        assert_eq!(doc, serde_json::to_vec(&rest_rows(&many(3000))).unwrap());

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
            .map(|r| json!({ ".id": r.id, "flags": r.flags(), "timeout": r.timeout }))
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
        assert!(head.contains("Content-Length: 16\r\n"), "{head}");
        assert_eq!(body, br#"{"count":"3000"}"#);
        let out = get_raw(a, "GET", &format!("{CONNECTION}/*100"));
        let (head, body) = split_answer(&out);
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(!head.contains("chunked"), "{head}");

        // HEAD: the head a GET would have (but for Transfer-Encoding,
        // which hyper leaves out of a HEAD's answer), no body.
        let out = get_raw(a, "HEAD", CONNECTION);
        let (head, body) = split_answer(&out);
        assert!(
            head.starts_with("HTTP/1.1 200 ")
                && head.contains("Content-Type: application/json\r\n")
                && !head.contains("Content-Length"),
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
        let full = serde_json::to_vec(&rest_rows(&many(3000))).unwrap();
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
        // hyper refuses it before any route sees it: a bare 400.
        let out = raw(a, neg.as_bytes());
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
        assert!(raw(a, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(raw(a, b"GET\r\n\r\n").starts_with("HTTP/1.1 400 "));
        // hyper answers an unknown version (and any head it cannot parse)
        // with a bare 400.
        assert!(raw(a, b"GET /rest HTTP/9.9\r\n\r\n").starts_with("HTTP/1.1 400 "));
        // A Content-Length that is not all digits is refused, as are two
        // that differ.
        for cl in ["+2", " 2 2", "0x2"] {
            let req = format!("PATCH {TRACKING} HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n{{}}");
            let out = raw(a, req.as_bytes());
            assert!(out.starts_with("HTTP/1.1 400 "), "{cl}: {out}");
        }
        let two = format!(
            "PATCH {TRACKING} HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}} "
        );
        assert!(raw(a, two.as_bytes()).starts_with("HTTP/1.1 400 "));
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
            ("id=%+1f2a", "percent"),
            ("tcp-state=establishd", "tcp-state"),
            ("tcp-state=", "tcp-state"),
            ("gre-version=7", "gre-version"),
            ("icmp-type=300", "icmp-type"),
            ("icmp-code=x", "icmp-code"),
            ("src-address=10.0.0", "src-address"),
            ("dst-address=10.0.0.1:99999", "dst-address"),
            ("reply-src-address=host", "reply-src-address"),
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
            call("GET", &format!("{base}/rest/ip/firewall/raw"), None, None),
            404,
            "/rest/ip/firewall/raw",
        );
        assert_error(
            call("GET", &format!("{base}/metrics"), None, None),
            404,
            "/metrics",
        );
        assert_error(call("GET", &format!("{base}/"), None, None), 404, "/");
        // An encoded '/' is data, not a separator: refused, not routed.
        assert_error(
            call(
                "GET",
                &format!("{base}/rest/ip%2Ffirewall/connection"),
                None,
                None,
            ),
            400,
            "%2F",
        );
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
        let only_token = Access {
            token: Some("s3cret".to_string()),
            users: Vec::new(),
        };
        assert!(!only_token.allows(Some("Basic czNjcmV0")));
        assert!(only_token.allows(Some("Bearer s3cret")));
    }

    /// `GET path` with this `Authorization` header: the status.
    fn status_with(url: &str, auth: &str) -> u16 {
        agent()
            .get(url)
            .header("Authorization", auth)
            .call()
            .unwrap()
            .status()
            .as_u16()
    }

    #[test]
    fn basic_users_besides_the_token() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let access = Access {
            token: Some("s3cret".to_string()),
            users: vec![crate::auth::ApiUser {
                name: "admin".to_string(),
                password_hash: crate::auth::tests::hash("pw1"),
            }],
        };
        let srv =
            ApiServer::start_with("127.0.0.1:0".parse().unwrap(), access, None, fake()).unwrap();
        let url = format!("http://{}{TRACKING}", srv.local_addr());
        assert_eq!(
            status_with(&url, &format!("Basic {}", b64("admin:pw1"))),
            200
        );
        assert_eq!(status_with(&url, "Bearer s3cret"), 200);
        assert_eq!(
            status_with(&url, &format!("Basic {}", b64("admin:pw2"))),
            401
        );
        assert_eq!(
            status_with(&url, &format!("Basic {}", b64("root:pw1"))),
            401
        );
        let resp = agent().get(&url).call().unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("Basic realm="), "{challenge}");

        // Users alone are enough to serve beyond loopback.
        let users = Access {
            token: None,
            users: vec![crate::auth::ApiUser {
                name: "admin".to_string(),
                password_hash: crate::auth::tests::hash("pw1"),
            }],
        };
        let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(ApiServer::start_with(any, users, None, fake()).is_ok());

        // Loopback with nothing configured: a client's Basic header passes.
        let (_open, base) = start(fake(), None);
        let url = format!("{base}{TRACKING}");
        assert_eq!(status_with(&url, &format!("Basic {}", b64("admin:"))), 200);
    }

    #[test]
    fn tls_serves_https_only() {
        let dir = std::env::temp_dir().join(format!("ctrack-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_path, key_path) = (dir.join("api.crt"), dir.join("api.key"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let tls = crate::http::Tls::load(&cert_path, &key_path).unwrap();
        let access = Access {
            token: Some("s3cret".to_string()),
            users: Vec::new(),
        };
        let srv = ApiServer::start_with("127.0.0.1:0".parse().unwrap(), access, Some(tls), fake())
            .unwrap();

        // An HTTPS request with the certificate as the only root.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(srv.local_addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(
            format!(
                "GET {TRACKING} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
        assert!(out.contains("\"udp-timeout\""), "{out}");

        // Plain HTTP on the TLS port gets no answer.
        let plain = raw(
            srv.local_addr(),
            format!("GET {TRACKING} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert!(!plain.contains("HTTP/1.1 200"), "{plain}");

        // Bad files are named.
        let e = crate::http::Tls::load(&dir.join("nope.crt"), &key_path)
            .err()
            .unwrap();
        assert!(e.contains("nope.crt"), "{e}");
        let e = crate::http::Tls::load(&key_path, &key_path).err().unwrap();
        assert!(e.contains("tls-cert"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
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

    /// A connection from the loopback address `src` (any of 127.0.0.0/8),
    /// so that one test can be several clients.
    fn connect_from(src: [u8; 4], to: SocketAddr) -> TcpStream {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let from = SocketAddr::from((src, 0));
        s.bind(&from.into()).unwrap();
        s.connect(&to.into()).unwrap();
        s.into()
    }

    /// The connection is still open: nothing to read yet, no end.
    fn still_open(s: &TcpStream) -> bool {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let open = matches!(
            (&*s).read(&mut b),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        s.set_nonblocking(false).unwrap();
        open
    }

    /// Thirty clients sending one header byte and then nothing (each from
    /// its own address) do not delay a normal request: it is answered
    /// while every one of them is still connected, and each sent byte is
    /// still unanswered.
    #[test]
    fn slow_senders_do_not_delay_other_clients() {
        let (srv, base) = start(fake(), None);
        let a = srv.local_addr();
        let slow: Vec<TcpStream> = (0..30u8)
            .map(|i| {
                let mut s = connect_from([127, 0, 1, i + 1], a);
                s.write_all(b"G").unwrap();
                s
            })
            .collect();
        assert_eq!(call("GET", &format!("{base}{TRACKING}"), None, None).0, 200);
        for s in &slow {
            assert!(
                still_open(s),
                "a slow client was dropped before the request"
            );
        }
    }

    /// One client address gets at most MAX_PER_CLIENT connections at once:
    /// the next is answered 503 naming the limit, while another address is
    /// still served.
    #[test]
    fn connections_per_client_are_limited() {
        use crate::http::MAX_PER_CLIENT;
        let (srv, _) = start(fake(), None);
        let a = srv.local_addr();
        let held: Vec<TcpStream> = (0..MAX_PER_CLIENT)
            .map(|_| connect_from([127, 0, 2, 1], a))
            .collect();
        // Each of those is accepted (and so counted) before the next one:
        // the server takes connections in order.
        let mut over = connect_from([127, 0, 2, 1], a);
        over.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let _ = over.write_all(format!("GET {TRACKING} HTTP/1.1\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = over.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(out.contains("per client"), "{out}");
        let other = raw_bytes_from([127, 0, 2, 2], a, TRACKING);
        assert!(other.starts_with(b"HTTP/1.1 200 "));
        for s in &held {
            assert!(still_open(s));
        }
    }

    fn raw_bytes_from(src: [u8; 4], a: SocketAddr, target: &str) -> Vec<u8> {
        let mut s = connect_from(src, a);
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// Three clients that ask for a large listing and never read it hold
    /// no handler another client needs (their producers have threads of
    /// their own), and a stop closes their connections without waiting for
    /// them.
    #[test]
    fn slow_readers_hold_nothing_and_stop_does_not_wait_for_them() {
        let (mut srv, base) = start(fake_of(many(20_000), None), None);
        let a = srv.local_addr();
        let readers: Vec<TcpStream> = (0..3u8)
            .map(|i| {
                let mut s = connect_from([127, 0, 3, i + 1], a);
                s.write_all(format!("GET {CONNECTION} HTTP/1.1\r\n\r\n").as_bytes())
                    .unwrap();
                s
            })
            .collect();
        // Each has its answer's head: its listing is under way (and stuck
        // behind the unread socket buffers: 20000 rows are 11 MB).
        for s in &readers {
            let mut head = [0u8; 12];
            (&*s).read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
        }
        for _ in 0..HANDLER_THREADS + 1 {
            let (st, body) = call("GET", &format!("{base}{CONNECTION}/*100"), None, None);
            assert_eq!(st, 200, "{body}");
        }
        srv.stop();
        for mut s in readers {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut rest = Vec::new();
            // Read what the server had sent, up to the close (or a reset).
            let r = s.read_to_end(&mut rest);
            assert!(
                r.is_ok()
                    || r.as_ref()
                        .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
                "{r:?}"
            );
            assert!(!rest.ends_with(b"0\r\n\r\n"), "the listing was cut short");
        }
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
