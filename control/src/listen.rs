//! `GET /rest/ip/firewall/connection/listen`: connection events as they
//! happen, like `conntrack -E` and RouterOS's `print follow`, streamed as
//! NDJSON (one JSON object a line; docs/api.md).
//!
//! Each listener is a subscription to the [`EventHub`] with a bounded
//! channel of [`LISTEN_CAPACITY`] events: the workers and the hub never
//! wait for a listener. What a listener misses (its channel was full, or
//! its `rate=N` token bucket was empty) is counted and reported in `lost`
//! lines; at most [`MAX_LISTENERS`] listen at once (503 beyond). The
//! stream is an [`Answer::Live`]: no whole-answer deadline, but a client
//! that takes nothing for the server's read timeout is dropped, and a line
//! is written at least every [`HEARTBEAT`] so that a gone client is noticed.
//!
//! The first line, `{"event":"listening"}`, is written once every worker
//! records events: everything that happens after it reaches the stream or
//! is counted lost. Events from before are not replayed.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::RecvTimeoutError;
use ctrack_model::ConnSnapshot;
use dataplane::conntrack::{ConnEvent, EventKind, RawConn};
use serde_json::{Map, Value};

use crate::events::EventHub;
use crate::http::{Answer, Reply, StreamError};
use crate::ops::{Dataplane, matches_filter};

/// Listeners at once (503 beyond).
pub const MAX_LISTENERS: usize = 4;
/// Events a listener's channel holds; beyond, they are counted lost.
pub const LISTEN_CAPACITY: usize = 16 * 1024;
/// Longest silence on a listen stream: a `lost` line is written then.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Shortest time between two `lost` lines reporting a new count.
const LOST_EVERY: Duration = Duration::from_secs(1);
/// How long a new listener waits for the workers to switch events on.
const RECORDING_WAIT: Duration = Duration::from_secs(5);

fn bad_request(message: impl Into<String>, detail: impl Into<String>) -> Reply {
    Reply::error(400, message.into(), detail.into())
}

/// A listen stream's query: `PROP=VALUE` filters (as the listing's),
/// `.proplist` and `rate`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ListenQuery {
    pub filter: Vec<(String, String)>,
    pub proplist: Option<Vec<String>>,
    /// Events a second at most (token bucket of a second's worth).
    pub rate: Option<u64>,
}

/// Parses and checks a listen query; `Err` is the 400 to send.
pub(crate) fn listen_query(query: &str) -> Result<ListenQuery, Reply> {
    let mut q = ListenQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = match (
            crate::api::percent_decode(k, true),
            crate::api::percent_decode(v, true),
        ) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => return Err(bad_request(e, "query")),
        };
        match k.as_str() {
            "rate" => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => q.rate = Some(n),
                _ => {
                    return Err(bad_request(
                        format!("bad value {v:?} for rate: expected events a second, 1 or more"),
                        "rate",
                    ));
                }
            },
            ".proplist" => {
                let props: Vec<String> = v
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                q.proplist = Some(crate::api::proplist(&props)?);
            }
            "count-only" => {
                return Err(bad_request(
                    "count-only does not apply to listen".to_string(),
                    "count-only",
                ));
            }
            _ => {
                let k = if k == ".id" { "id".to_string() } else { k };
                if let Err((m, d)) = crate::api::check_filter(&k, &v) {
                    return Err(bad_request(m, d));
                }
                q.filter.push((k, v));
            }
        }
    }
    Ok(q)
}

/// Holds one of the hub's [`MAX_LISTENERS`] places.
struct ListenerSlot(Arc<EventHub>);

impl ListenerSlot {
    fn take(hub: &Arc<EventHub>) -> Option<ListenerSlot> {
        let taken = hub
            .listeners
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_LISTENERS).then_some(n + 1)
            });
        taken.ok().map(|_| ListenerSlot(Arc::clone(hub)))
    }
}

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A token bucket of `rate` tokens a second, holding at most a second's.
struct Bucket {
    rate: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Bucket {
        Bucket {
            rate,
            tokens: rate as f64,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    /// [`Bucket::take`] at time `now` (not before the last call).
    fn take_at(&mut self, now: Instant) -> bool {
        let r = self.rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * r).min(r);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `GET .../listen?QUERY`: checks the query, then streams the events.
pub(crate) fn listen(query: &str, dp: &Arc<dyn Dataplane>) -> Answer {
    let q = match listen_query(query) {
        Ok(q) => q,
        Err(r) => return r.into(),
    };
    let Some(hub) = dp.events() else {
        return Reply::error(
            503,
            "connection events are not available (no running dataplane)".to_string(),
            String::new(),
        )
        .into();
    };
    let Some(slot) = ListenerSlot::take(&hub) else {
        return Reply::error(
            503,
            format!("too many listeners at once (at most {MAX_LISTENERS}); retry"),
            String::new(),
        )
        .into();
    };
    Answer::Live {
        content_type: "application/x-ndjson",
        produce: Box::new(move |out| produce(&hub, slot, &q, out)),
    }
}

fn produce(
    hub: &Arc<EventHub>,
    slot: ListenerSlot,
    q: &ListenQuery,
    out: &mut dyn Write,
) -> Result<(), StreamError> {
    let _slot = slot;
    let sub = hub.subscribe("listen", Box::new(|_| true), LISTEN_CAPACITY);
    // Readiness: the workers follow the subscription at their next loop.
    let since = Instant::now();
    while !hub.recording() && since.elapsed() < RECORDING_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    out.write_all(b"{\"event\":\"listening\"}\n")?;
    out.flush()?;
    let mut bucket = q.rate.map(Bucket::new);
    let (mut limited, mut reported) = (0u64, 0u64);
    let (mut last_line, mut last_lost) = (Instant::now(), Instant::now());
    loop {
        let mut wrote = false;
        match sub.rx.recv_timeout(Duration::from_millis(250)) {
            Ok(ev) => {
                let row = ConnSnapshot::from_raw(&RawConn::from_event(&ev));
                if matches_filter(&row, &q.filter).unwrap_or(false) {
                    if bucket.as_mut().is_none_or(Bucket::take) {
                        write_event(out, &ev, &row, q.proplist.as_deref())?;
                        wrote = true;
                    } else {
                        limited += 1;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let lost = sub.dropped() + limited;
        let now = Instant::now();
        if (lost != reported && now.duration_since(last_lost) >= LOST_EVERY)
            || (!wrote && now.duration_since(last_line) >= HEARTBEAT)
        {
            write_lost(out, lost)?;
            (reported, last_lost, wrote) = (lost, now, true);
        }
        if wrote {
            last_line = now;
        }
        // A chunk when the burst is over, not one per event.
        if wrote && sub.rx.is_empty() {
            out.flush()?;
        }
    }
    write_lost(out, sub.dropped() + limited)?;
    out.flush()?;
    Ok(())
}

fn write_lost(out: &mut dyn Write, n: u64) -> std::io::Result<()> {
    writeln!(out, "{{\"event\":\"lost\",\"count\":\"{n}\"}}")
}

/// One event line: `event`, `reason` (destroy only), `time`, then the row
/// in the REST form (or its `.proplist` pick).
pub(crate) fn event_line(ev: &ConnEvent, row: &ConnSnapshot, proplist: Option<&[String]>) -> Value {
    let mut m = Map::new();
    m.insert("event".into(), Value::String(ev.kind.name().to_string()));
    if let EventKind::Destroy(r) = ev.kind {
        m.insert("reason".into(), Value::String(r.name().to_string()));
    }
    m.insert("time".into(), Value::String(utc_now()));
    m.extend(crate::rest::pick(row, proplist));
    Value::Object(m)
}

fn write_event(
    out: &mut dyn Write,
    ev: &ConnEvent,
    row: &ConnSnapshot,
    proplist: Option<&[String]>,
) -> Result<(), StreamError> {
    serde_json::to_writer(&mut *out, &event_line(ev, row, proplist))
        .map_err(|e| StreamError::Io(e.into()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Now as `2026-11-30T16:45:49.123Z` (when the API saw the event: within
/// the hub's pump interval of the packet, about a millisecond, unless the
/// hub is behind).
fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    utc(d.as_secs(), d.subsec_millis())
}

fn utc(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One event as `conntrack -E` prints it: `[NEW] tcp      6 SYN_SENT
/// src=A dst=B sport=P dport=Q [UNREPLIED] src=B dst=A sport=Q dport=P`
/// (the original tuple, `[UNREPLIED]` until a reply was seen, the reply
/// tuple, `[ASSURED]`); a destroy ends with `reason=timeout|close|...`.
/// conntrack's timeout column is not shown (an event carries no deadline).
pub fn conntrack_line(event: &str, reason: Option<&str>, row: &ConnSnapshot) -> String {
    use std::fmt::Write as _;
    let mut l = format!("[{}]", event.to_ascii_uppercase());
    let num = (0..=255u8)
        .find(|p| ctrack_model::connection::protocol_name(*p) == row.protocol)
        .map_or_else(|| row.protocol.clone(), |p| p.to_string());
    let _ = write!(l, " {:<8} {num}", row.protocol);
    if let Some(st) = &row.tcp_state {
        let _ = write!(l, " {}", st.to_ascii_uppercase().replace('-', "_"));
    }
    let tuple = |l: &mut String, src: &str, dst: &str| {
        let (sa, sp) = split_address(src);
        let (da, dp) = split_address(dst);
        let _ = write!(l, " src={sa} dst={da}");
        if let (Some(sp), Some(dp)) = (sp, dp) {
            let _ = write!(l, " sport={sp} dport={dp}");
        }
    };
    tuple(&mut l, &row.src_address, &row.dst_address);
    if let (Some(t), Some(c)) = (row.icmp_type, row.icmp_code) {
        let _ = write!(l, " type={t} code={c}");
        if let Some(id) = row.icmp_id {
            let _ = write!(l, " id={id}");
        }
    }
    if !row.seen_reply {
        l.push_str(" [UNREPLIED]");
    }
    tuple(&mut l, &row.reply_src_address, &row.reply_dst_address);
    if row.assured {
        l.push_str(" [ASSURED]");
    }
    if !row.connection_mark.is_empty() {
        let _ = write!(l, " mark={}", row.connection_mark);
    }
    if let Some(r) = reason {
        let _ = write!(l, " reason={r}");
    }
    l
}

/// `10.0.0.1:80` → (`10.0.0.1`, 80), `[::1]:80` → (`::1`, 80), `10.0.0.1`
/// → (`10.0.0.1`, none).
fn split_address(a: &str) -> (&str, Option<&str>) {
    if let Some(rest) = a.strip_prefix('[') {
        if let Some((ip, port)) = rest.split_once("]:") {
            return (ip, Some(port));
        }
        return (rest.trim_end_matches(']'), None);
    }
    match a.split_once(':') {
        Some((ip, port)) if !port.contains(':') => (ip, Some(port)),
        _ => (a, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_lines() {
        let rows = crate::api::tests::rows();
        assert_eq!(
            conntrack_line("update", None, &rows[0]),
            "[UPDATE] tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
             src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED]"
        );
        assert_eq!(
            conntrack_line("destroy", Some("timeout"), &rows[1]),
            "[DESTROY] udp      17 src=10.0.0.1 dst=10.0.0.3 sport=5353 dport=53 [UNREPLIED] \
             src=10.0.0.3 dst=10.0.0.1 sport=53 dport=5353 reason=timeout"
        );
        assert_eq!(
            conntrack_line("new", None, &rows[2]),
            "[NEW] icmp     1 src=10.0.0.1 dst=10.0.0.4 type=8 code=0 id=77 \
             src=10.0.0.4 dst=10.0.0.1 [ASSURED]"
        );
        assert_eq!(split_address("[::1]:53"), ("::1", Some("53")));
        assert_eq!(split_address("fe80::1"), ("fe80::1", None));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_796_056_749, 123), "2026-11-30T16:39:09.123Z");
        assert_eq!(utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    }

    #[test]
    fn queries() {
        let Ok(q) = listen_query("protocol=tcp&rate=100&.proplist=.id,protocol") else {
            panic!("a good query refused");
        };
        assert_eq!(q.filter, vec![("protocol".to_string(), "tcp".to_string())]);
        assert_eq!(q.rate, Some(100));
        assert_eq!(q.proplist.as_deref().map(<[String]>::len), Some(2));
        for bad in [
            "rate=0",
            "rate=x",
            "count-only=yes",
            "nosuch=1",
            "tcp-state=bogus",
        ] {
            match listen_query(bad) {
                Err(r) => assert_eq!(r.status, 400, "{bad}"),
                Ok(q) => panic!("{bad} accepted: {q:?}"),
            }
        }
    }

    use std::io::BufRead;
    use std::sync::atomic::AtomicBool;

    use crate::api::ApiServer;
    use crate::ops::FakeDataplane;
    use dataplane::conntrack::key::HashSeed;
    use dataplane::conntrack::{Instant as CtInstant, Settings, Shard, TableConfig};
    use dataplane::events::EventRing;
    use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};

    /// A new UDP connection per port, then a flush: `2 * ports.len()`
    /// events of a real shard.
    fn events(ports: std::ops::Range<u16>) -> Vec<ConnEvent> {
        let mut s = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            0,
            HashSeed::from_u64(1),
        );
        s.set_events(1024);
        for p in ports {
            let pkt = FlowRepr {
                tuple: Tuple {
                    src: Addr::from_v4([10, 0, 0, 1]),
                    dst: Addr::from_v4([10, 0, 0, 2]),
                    src_port: p,
                    dst_port: 53,
                    proto: proto::UDP,
                    family: Family::V4,
                },
                ip_len: 100,
                l4: L4::Udp,
            };
            s.handle_packet(CtInstant::from_secs(1), &pkt);
        }
        let mut evs: Vec<ConnEvent> = s.drain_events().collect();
        let destroyed: Vec<ConnEvent> = evs
            .iter()
            .map(|e| ConnEvent {
                kind: EventKind::Destroy(dataplane::conntrack::DestroyReason::Removed),
                ..*e
            })
            .collect();
        evs.extend(destroyed);
        evs
    }

    fn status_of(url: &str, method: &str) -> (u16, String) {
        let a = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut r = if method == "GET" {
            a.get(url).call().unwrap()
        } else {
            a.post(url).send("").unwrap()
        };
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    #[test]
    fn the_listen_route_streams_events_as_ndjson() {
        let ring = Arc::new(EventRing::new(1024));
        ring.set_recording(true); // No worker here: the ring is "on".
        let hub = EventHub::new(vec![ring.clone()]);
        let stop = Arc::new(AtomicBool::new(false));
        let pump = hub.start(stop.clone()).unwrap();
        let dp = Arc::new(FakeDataplane {
            events: Some(hub.clone()),
            ..FakeDataplane::default()
        });
        let srv = ApiServer::start("127.0.0.1:0".parse().unwrap(), None, dp).unwrap();
        let base = format!(
            "http://{}/rest/ip/firewall/connection/listen",
            srv.local_addr()
        );

        // Bad queries and methods are answered before any stream.
        for bad in [
            "?tcp-state=bogus",
            "?rate=0",
            "?nosuch=1",
            "?count-only=yes",
        ] {
            let (status, body) = status_of(&format!("{base}{bad}"), "GET");
            assert_eq!(status, 400, "{bad}: {body}");
        }
        assert_eq!(status_of(&base, "POST").0, 405);

        let open = |q: &str| {
            let r = ureq::get(&format!("{base}{q}")).call().unwrap();
            assert_eq!(
                r.headers().get("content-type").unwrap(),
                "application/x-ndjson"
            );
            let mut lines = std::io::BufReader::new(r.into_body().into_reader()).lines();
            let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            assert_eq!(first["event"], "listening");
            lines
        };
        let mut all = open("");
        let mut some =
            open("?dst-address=10.0.0.2:53&src-address=10.0.0.1:1001&.proplist=.id,src-address");
        // MAX_LISTENERS at most.
        let mut more = Vec::new();
        for _ in 2..MAX_LISTENERS {
            more.push(open(""));
        }
        let (status, body) = status_of(&base, "GET");
        assert_eq!(status, 503, "{body}");

        for ev in events(1000..1003) {
            assert!(ring.push(ev));
        }
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let v: Value = serde_json::from_str(&all.next().unwrap().unwrap()).unwrap();
            if v["event"] != "lost" {
                seen.push(v);
            }
        }
        let kinds: Vec<&str> = seen.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["new", "new", "new", "destroy", "destroy", "destroy"]
        );
        for v in &seen {
            assert_eq!(v["protocol"], "udp", "{v}");
            assert_eq!(v["dst-address"], "10.0.0.2:53", "{v}");
            assert!(v[".id"].as_str().unwrap().starts_with('*'), "{v}");
            assert_eq!(v["orig-packets"], "1", "values are strings: {v}");
            assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
        }
        assert!(seen[0].get("reason").is_none());
        assert_eq!(seen[3]["reason"], "remove");
        // The filtered listener sees only its connection, with its columns.
        let mut picked = Vec::new();
        while picked.len() < 2 {
            let v: Value = serde_json::from_str(&some.next().unwrap().unwrap()).unwrap();
            if v["event"] != "lost" {
                picked.push(v);
            }
        }
        assert_eq!(picked[0]["src-address"], "10.0.0.1:1001");
        assert_eq!(picked[0]["event"], "new");
        assert_eq!(picked[1]["event"], "destroy");
        assert!(picked[0].get("protocol").is_none(), "{}", picked[0]);

        // Gone listeners give their places back.
        drop((all, some, more));
        let freed = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            hub.listeners.load(Ordering::SeqCst) == 0
        });
        assert!(freed, "listeners still counted");
        stop.store(true, Ordering::SeqCst);
        pump.join().unwrap();
    }

    #[test]
    fn listen_without_a_dataplane_is_503() {
        let dp = Arc::new(FakeDataplane::default());
        let srv = ApiServer::start("127.0.0.1:0".parse().unwrap(), None, dp).unwrap();
        let url = format!(
            "http://{}/rest/ip/firewall/connection/listen",
            srv.local_addr()
        );
        assert_eq!(status_of(&url, "GET").0, 503);
    }

    #[test]
    fn a_bucket_passes_its_rate_then_refuses() {
        let mut b = Bucket::new(3);
        let t0 = b.at;
        assert_eq!(
            (0..10).filter(|_| b.take_at(t0)).count(),
            3,
            "a second's worth"
        );
        // A third of a second later: one more token; two seconds later: a
        // full bucket, never more.
        let t1 = t0 + Duration::from_millis(334);
        assert_eq!((0..10).filter(|_| b.take_at(t1)).count(), 1);
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!((0..10).filter(|_| b.take_at(t2)).count(), 3);
    }
}
