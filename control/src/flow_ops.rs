//! `/ip traffic-flow` as a menu: one model ([`TrafficFlow`]), whichever
//! front end fills it.
//!
//! - `KEY=VALUE` text (a `.rsc` script's `/ip traffic-flow set ...` and
//!   `/ip traffic-flow target add ...` lines, REST bodies, the CLI) goes
//!   through [`apply`] and [`apply_target`], which parse each value as the
//!   `[traffic-flow]` section of `ctrack.toml` does and end in the one
//!   validation, [`TrafficFlow::validate`]; all or nothing.
//! - [`from_script`] and [`choose`]: a script's lines, or the toml section;
//!   both given is refused, naming both (there is no sensible merge of two
//!   target lists, and a silent winner hides a mistake).
//! - [`FlowControl`]: the settings of a running `ctrack run`, changed live
//!   through the management API. A change is validated and every socket it
//!   needs is opened before anything changes; then the exporter takes it
//!   between two batches ([`FlowExporter::reconfigure`]), keeping its flow
//!   cache. `enabled=no` stops the exporter (what is unexported goes to the
//!   old targets as a forced end, as when `ctrack run` stops); `enabled=yes`
//!   starts it.

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::conntrack::{Duration, RawConn};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::events::EventHub;
use crate::flow_export::{
    ExportCounters, FlowExporter, FlowTarget, TrafficFlow, TrafficFlowError, parse_entries,
    resolve_interfaces,
};

/// Why tracking is on under `enabled=auto` when flow export is enabled at
/// start (it is built on the table's connection events).
pub const NEEDS_TRACKING: &str = "/ip traffic-flow (enabled)";

/// The properties of `/ip traffic-flow`, as RouterOS names them.
pub const MENU_PROPERTIES: &[&str] = &[
    "enabled",
    "interfaces",
    "cache-entries",
    "active-flow-timeout",
    "inactive-flow-timeout",
    "nat-events",
];

/// The properties of `/ip traffic-flow target`.
pub const TARGET_PROPERTIES: &[&str] = &[
    "dst-address",
    "port",
    "version",
    "src-address",
    "disabled",
    "comment",
];

fn bad(field: &'static str, message: String) -> TrafficFlowError {
    TrafficFlowError { field, message }
}

/// The static name of a known property (errors carry `&'static str`).
fn known(
    props: &'static [&'static str],
    key: &str,
    menu: &str,
) -> Result<&'static str, TrafficFlowError> {
    props.iter().copied().find(|p| *p == key).ok_or_else(|| {
        bad(
            "property",
            format!(
                "{menu} has no property {key:?}; known: {}",
                props.join(", ")
            ),
        )
    })
}

fn yes_no(field: &'static str, v: &str) -> Result<bool, TrafficFlowError> {
    match v {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(bad(field, format!("bad value {v:?}: expected yes or no"))),
    }
}

fn time(field: &'static str, v: &str) -> Result<Duration, TrafficFlowError> {
    v.parse::<Duration>().map_err(|e| bad(field, e.to_string()))
}

fn no_duplicates(changes: &[(String, String)]) -> Result<(), TrafficFlowError> {
    for (i, (k, _)) in changes.iter().enumerate() {
        if changes[..i].iter().any(|(o, _)| o == k) {
            return Err(bad("property", format!("{k:?} is given twice")));
        }
    }
    Ok(())
}

/// `current` with the `/ip traffic-flow` properties `changes` applied and
/// validated, or the first bad one (nothing applied).
pub fn apply(
    current: &TrafficFlow,
    changes: &[(String, String)],
) -> Result<TrafficFlow, TrafficFlowError> {
    no_duplicates(changes)?;
    let mut next = current.clone();
    for (k, v) in changes {
        let field = known(MENU_PROPERTIES, k, "/ip traffic-flow")?;
        let v = v.as_str();
        match field {
            "enabled" => next.enabled = yes_no(field, v)?,
            "interfaces" => next.interfaces = v.to_string(),
            "cache-entries" => next.cache_entries = parse_entries(v).map_err(|e| bad(field, e))?,
            "active-flow-timeout" => next.active_flow_timeout = time(field, v)?,
            "inactive-flow-timeout" => next.inactive_flow_timeout = time(field, v)?,
            _ => next.nat_events = yes_no(field, v)?,
        }
    }
    next.validate()?;
    Ok(next)
}

/// A target: `base` (an existing one being set, or none for `add`, which
/// then needs `dst-address`) with `changes` applied. The whole menu's
/// validation runs when the target is put in place ([`apply`]'s caller).
pub fn apply_target(
    base: Option<&FlowTarget>,
    changes: &[(String, String)],
) -> Result<FlowTarget, TrafficFlowError> {
    no_duplicates(changes)?;
    let dst = changes.iter().find(|(k, _)| k == "dst-address");
    let mut t = match (base, dst) {
        (Some(b), _) => b.clone(),
        (None, Some((_, v))) => FlowTarget::new(ip("target dst-address", v)?),
        (None, None) => {
            return Err(bad(
                "target dst-address",
                "a target needs dst-address".to_string(),
            ));
        }
    };
    for (k, v) in changes {
        let field = known(TARGET_PROPERTIES, k, "/ip traffic-flow target")?;
        let v = v.as_str();
        match field {
            "dst-address" => t.dst_address = ip("target dst-address", v)?,
            "port" => {
                t.port = match v.parse::<u16>() {
                    Ok(p @ 1..) => p,
                    _ => {
                        return Err(bad(
                            "target port",
                            format!("{v:?}: expected a port, 1..65535"),
                        ));
                    }
                }
            }
            "version" => {
                t.version = v.parse().map_err(|e: String| bad("target version", e))?;
            }
            "src-address" => {
                t.src_address = match v {
                    "" => None,
                    _ => Some(ip("target src-address", v)?),
                }
            }
            "disabled" => t.disabled = yes_no("target disabled", v)?,
            _ => t.comment = (!v.is_empty()).then(|| v.to_string()),
        }
    }
    Ok(t)
}

fn ip(field: &'static str, v: &str) -> Result<IpAddr, TrafficFlowError> {
    v.parse()
        .map_err(|_| bad(field, format!("{v:?}: expected an IP address")))
}

/// The settings a script's `/ip traffic-flow` and `/ip traffic-flow target`
/// lines make, or `None` when it has neither.
pub fn from_script(cfg: &ctrack_rules::Config) -> Result<Option<TrafficFlow>, TrafficFlowError> {
    if cfg.traffic_flow.0.is_empty() && cfg.traffic_flow_targets.is_empty() {
        return Ok(None);
    }
    let mut tf = apply(&TrafficFlow::default(), &cfg.traffic_flow.0)?;
    for item in &cfg.traffic_flow_targets {
        tf.targets.push(apply_target(None, &item.0)?);
    }
    tf.validate()?;
    Ok(Some(tf))
}

/// The settings of a run: the config file's `[traffic-flow]` (`toml`,
/// the defaults when the file has no such section) or the script's lines
/// (`script`, from [`from_script`]). Both is an error naming both places.
pub fn choose(
    toml: &TrafficFlow,
    toml_place: &str,
    script: Option<TrafficFlow>,
    script_place: &str,
) -> Result<TrafficFlow, String> {
    match script {
        None => Ok(toml.clone()),
        Some(s) if *toml == TrafficFlow::default() => Ok(s),
        Some(_) => Err(format!(
            "traffic-flow is configured twice: [traffic-flow] in {toml_place} and \
             /ip traffic-flow in {script_place}; keep one"
        )),
    }
}

/// [`choose`] for `ctrack run` and `ctrack check`: the config file at
/// `config` (if any) and the script `script` was read from (at `rules`).
pub fn of_run(
    toml: &TrafficFlow,
    config: Option<&std::path::Path>,
    script: Option<&ctrack_rules::Config>,
    rules: Option<&std::path::Path>,
) -> Result<TrafficFlow, String> {
    let shown =
        |p: Option<&std::path::Path>| p.map_or("?".to_string(), |p| p.display().to_string());
    let from_rsc = match script {
        Some(s) => from_script(s).map_err(|e| format!("{}: {e}", shown(rules)))?,
        None => None,
    };
    choose(toml, &shown(config), from_rsc, &shown(rules))
}

// ---- the live menu -----------------------------------------------------------

/// Why a change of the live menu failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowOpsError {
    /// A bad value (400, naming the field).
    #[error(transparent)]
    Invalid(#[from] TrafficFlowError),
    /// No target has this id (404).
    #[error("no such traffic-flow target: {0}")]
    NotFound(String),
    /// The run is stopping (503).
    #[error("flow export is stopped")]
    Stopped,
}

/// Visits every live connection, or fails (shared: each exporter started
/// gets a handle).
pub type SharedWalk = Arc<dyn Fn(&mut dyn FnMut(&RawConn)) -> Result<(), String> + Send + Sync>;

struct State {
    cfg: TrafficFlow,
    /// Interface names by port (`interfaces` resolves against them).
    names: Vec<String>,
    /// `.id` of each of `cfg.targets` (`*1`, `*2`, ...: never reused).
    ids: Vec<u32>,
    next_id: u32,
    exporter: Option<FlowExporter>,
    stopped: bool,
}

/// The `/ip traffic-flow` menu of a running `ctrack run`.
pub struct FlowControl {
    hub: Arc<EventHub>,
    walk: SharedWalk,
    state: Mutex<State>,
    /// The running exporter's counters, apart from `state`: a scrape does
    /// not wait for a change (stopping the exporter walks the tables).
    counters: Mutex<Option<Arc<ExportCounters>>>,
}

impl std::fmt::Debug for FlowControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowControl")
            .field("settings", &self.state.lock().cfg)
            .finish_non_exhaustive()
    }
}

/// A target's `.id` as RouterOS shows it.
pub fn target_id(n: u32) -> String {
    format!("*{n:X}")
}

fn parse_target_id(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix('*')?, 16).ok()
}

impl FlowControl {
    /// The menu with settings `cfg` (validated), exporting if enabled;
    /// port `i` is named `names[i]` (for `interfaces`).
    pub fn start(
        cfg: TrafficFlow,
        names: Vec<String>,
        hub: Arc<EventHub>,
        walk: SharedWalk,
    ) -> Result<FlowControl, String> {
        cfg.validate().map_err(|e| e.to_string())?;
        let n = cfg.targets.len() as u32;
        let control = FlowControl {
            hub,
            walk,
            counters: Mutex::new(None),
            state: Mutex::new(State {
                cfg: TrafficFlow {
                    enabled: false,
                    ..cfg.clone()
                },
                names,
                ids: (1..=n).collect(),
                next_id: n + 1,
                exporter: None,
                stopped: false,
            }),
        };
        {
            let mut st = control.state.lock();
            control.commit(&mut st, cfg).map_err(|e| e.to_string())?;
        }
        Ok(control)
    }

    /// The settings now.
    pub fn settings(&self) -> TrafficFlow {
        self.state.lock().cfg.clone()
    }

    /// The targets with their ids.
    pub fn targets(&self) -> Vec<(u32, FlowTarget)> {
        let st = self.state.lock();
        st.ids.iter().copied().zip(st.cfg.targets.clone()).collect()
    }

    /// The exporter's counters, while it runs.
    pub fn counters(&self) -> Option<Arc<ExportCounters>> {
        self.counters.lock().clone()
    }

    /// `/ip traffic-flow set ...`: all or nothing.
    pub fn set(&self, changes: &[(String, String)]) -> Result<TrafficFlow, FlowOpsError> {
        let mut st = self.state.lock();
        let next = apply(&st.cfg, changes)?;
        self.commit(&mut st, next.clone())?;
        Ok(next)
    }

    /// `/ip traffic-flow target add ...`: the new target's id.
    pub fn add_target(
        &self,
        changes: &[(String, String)],
    ) -> Result<(u32, FlowTarget), FlowOpsError> {
        let mut st = self.state.lock();
        let t = apply_target(None, changes)?;
        let mut next = st.cfg.clone();
        next.targets.push(t.clone());
        self.commit(&mut st, next)?;
        let id = st.next_id;
        st.next_id += 1;
        st.ids.push(id);
        Ok((id, t))
    }

    /// `/ip traffic-flow target set ID ...`.
    pub fn set_target(
        &self,
        id: &str,
        changes: &[(String, String)],
    ) -> Result<(u32, FlowTarget), FlowOpsError> {
        let mut st = self.state.lock();
        let (n, i) = Self::find(&st, id)?;
        let t = apply_target(Some(&st.cfg.targets[i]), changes)?;
        let mut next = st.cfg.clone();
        next.targets[i] = t.clone();
        self.commit(&mut st, next)?;
        Ok((n, t))
    }

    /// `/ip traffic-flow target remove ID`.
    pub fn remove_target(&self, id: &str) -> Result<(), FlowOpsError> {
        let mut st = self.state.lock();
        let (_, i) = Self::find(&st, id)?;
        let mut next = st.cfg.clone();
        next.targets.remove(i);
        self.commit(&mut st, next)?;
        st.ids.remove(i);
        Ok(())
    }

    /// One target.
    pub fn target(&self, id: &str) -> Result<(u32, FlowTarget), FlowOpsError> {
        let st = self.state.lock();
        let (n, i) = Self::find(&st, id)?;
        Ok((n, st.cfg.targets[i].clone()))
    }

    fn find(st: &State, id: &str) -> Result<(u32, usize), FlowOpsError> {
        parse_target_id(id)
            .and_then(|n| st.ids.iter().position(|&x| x == n).map(|i| (n, i)))
            .ok_or_else(|| FlowOpsError::NotFound(id.to_string()))
    }

    /// Puts `next` in place: validated, sockets open, the exporter started,
    /// reconfigured or stopped; on error nothing changed.
    fn commit(&self, st: &mut State, next: TrafficFlow) -> Result<(), FlowOpsError> {
        if st.stopped {
            return Err(FlowOpsError::Stopped);
        }
        next.validate()?;
        let ports = resolve_interfaces(&next.interfaces, &st.names)?;
        match (&st.exporter, next.enabled) {
            (Some(x), true) => x.reconfigure(&next, ports)?,
            (None, true) => {
                let walk = self.walk.clone();
                let x = FlowExporter::start(&next, ports, &self.hub, Box::new(move |v| walk(v)))
                    .map_err(|message| bad("target", message))?;
                st.exporter = Some(x);
            }
            (Some(_), false) => {
                if let Some(mut x) = st.exporter.take() {
                    x.stop();
                }
            }
            (None, false) => {}
        }
        *self.counters.lock() = st.exporter.as_ref().map(|x| x.counters());
        st.cfg = next;
        Ok(())
    }

    /// Exports what is left and stops the exporter; later changes are
    /// refused. Call while the workers still run.
    pub fn stop(&self) {
        let mut st = self.state.lock();
        st.stopped = true;
        if let Some(mut x) = st.exporter.take() {
            x.stop();
        }
        // The last counters stay for a scrape until the servers stop.
    }
}

// ---- JSON (REST) --------------------------------------------------------------

/// `/ip traffic-flow` as the REST API shows it: every value a string.
pub fn menu_json(cfg: &TrafficFlow) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put("enabled", cfg.enabled.to_string());
    put("interfaces", cfg.interfaces.clone());
    put("cache-entries", entries_text(cfg.cache_entries));
    put("active-flow-timeout", cfg.active_flow_timeout.to_string());
    put(
        "inactive-flow-timeout",
        cfg.inactive_flow_timeout.to_string(),
    );
    put("nat-events", cfg.nat_events.to_string());
    Value::Object(m)
}

/// `4k` for 4096 (as RouterOS shows its choices), else the number.
fn entries_text(n: u32) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}k", n / 1024)
    } else {
        n.to_string()
    }
}

/// One target as the REST API shows it.
pub fn target_json(id: u32, t: &FlowTarget) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put(".id", target_id(id));
    put("dst-address", t.dst_address.to_string());
    put("port", t.port.to_string());
    put("version", t.version.name().to_string());
    if let Some(s) = t.src_address {
        put("src-address", s.to_string());
    }
    put("disabled", t.disabled.to_string());
    if let Some(c) = &t.comment {
        put("comment", c.clone());
    }
    Value::Object(m)
}

/// A REST body's `{"key": value}` pairs as `KEY=VALUE` text: strings as
/// they are, booleans `yes`/`no`, numbers as written; `.id` is ignored
/// (RouterOS echoes it back in PATCH bodies).
pub fn changes_of(obj: Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let mut changes = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        if k == ".id" {
            continue;
        }
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("bad value {other} for {k}: expected a string")),
        };
        changes.push((k, text));
    }
    Ok(changes)
}

#[cfg(test)]
impl FlowControl {
    /// A menu with `cfg` on two ports, no workers' events and no walk
    /// (the REST, CLI and menu tests).
    pub(crate) fn for_tests(cfg: TrafficFlow) -> FlowControl {
        FlowControl::start(
            cfg,
            crate::firewall::default_interfaces(2),
            EventHub::new(Vec::new()),
            Arc::new(|_| Ok(())),
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_export::Version;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn text_settings_parse_as_the_toml_section_does() {
        let tf = apply(
            &TrafficFlow::default(),
            &kv(&[
                ("enabled", "yes"),
                ("cache-entries", "16k"),
                ("active-flow-timeout", "1m"),
                ("nat-events", "true"),
            ]),
        )
        .unwrap();
        assert!(tf.enabled && tf.nat_events);
        assert_eq!(tf.cache_entries, 16 * 1024);
        assert_eq!(tf.active_flow_timeout, Duration::from_secs(60));
        for (changes, field) in [
            (kv(&[("enabled", "maybe")]), "enabled"),
            (
                kv(&[("inactive-flow-timeout", "0s")]),
                "inactive-flow-timeout",
            ),
            (kv(&[("cache-entries", "lots")]), "cache-entries"),
            (kv(&[("interfaces", "ether1,")]), "interfaces"),
            (kv(&[("colour", "blue")]), "property"),
            (kv(&[("enabled", "yes"), ("enabled", "no")]), "property"),
        ] {
            let e = apply(&TrafficFlow::default(), &changes).unwrap_err();
            assert_eq!(e.field, field, "{changes:?}: {e}");
        }
        let t = apply_target(
            None,
            &kv(&[
                ("dst-address", "::1"),
                ("version", "ipfix"),
                ("port", "4739"),
            ]),
        )
        .unwrap();
        assert_eq!((t.port, t.version), (4739, Version::Ipfix));
        let e = apply_target(None, &kv(&[("port", "9")])).unwrap_err();
        assert_eq!(e.field, "target dst-address");
        let e = apply_target(Some(&t), &kv(&[("port", "0")])).unwrap_err();
        assert_eq!(e.field, "target port");
        let e = apply_target(Some(&t), &kv(&[("version", "5")])).unwrap_err();
        assert_eq!(e.field, "target version");
        // A target of the wrong family is caught by the menu's validation.
        let mut tf = TrafficFlow::default();
        tf.targets
            .push(apply_target(Some(&t), &kv(&[("src-address", "10.0.0.1")])).unwrap());
        assert_eq!(tf.validate().unwrap_err().field, "target src-address");
    }

    #[test]
    fn a_script_configures_the_export_like_the_toml_section() {
        let script = "/ip traffic-flow\nset enabled=yes cache-entries=8k active-flow-timeout=1m nat-events=yes\n\
                      /ip traffic-flow target\nadd dst-address=127.0.0.1 port=4739 version=ipfix\n\
                      add dst-address=::1 disabled=yes\n";
        let cfg = ctrack_rules::parse(script).unwrap();
        let from_rsc = from_script(&cfg).unwrap().unwrap();
        let toml: crate::config::ConfigFile = toml::from_str(
            "[traffic-flow]\nenabled = \"yes\"\ncache-entries = \"8k\"\nactive-flow-timeout = \"1m\"\n\
             nat-events = \"yes\"\n[[traffic-flow.target]]\ndst-address = \"127.0.0.1\"\nport = 4739\n\
             version = \"ipfix\"\n[[traffic-flow.target]]\ndst-address = \"::1\"\ndisabled = \"yes\"\n",
        )
        .unwrap();
        assert_eq!(from_rsc, toml.traffic_flow);
        assert_eq!(
            from_script(&ctrack_rules::parse("").unwrap()).unwrap(),
            None
        );
        // Both given: refused, naming both.
        let e = choose(
            &toml.traffic_flow,
            "ctrack.toml",
            Some(from_rsc.clone()),
            "r.rsc",
        )
        .unwrap_err();
        assert!(e.contains("ctrack.toml") && e.contains("r.rsc"), "{e}");
        assert_eq!(
            choose(
                &TrafficFlow::default(),
                "ctrack.toml",
                Some(from_rsc.clone()),
                "r.rsc"
            ),
            Ok(from_rsc)
        );
    }

    fn control(cfg: TrafficFlow) -> FlowControl {
        FlowControl::for_tests(cfg)
    }

    /// Records reach the targets of the settings in force: a target added
    /// while running gets the next ones, over its own socket.
    #[test]
    fn a_target_added_while_running_receives_the_next_records() {
        use dataplane::conntrack::key::HashSeed;
        use dataplane::conntrack::{Instant, Settings, Shard, TableConfig};
        use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};
        let ring = Arc::new(dataplane::events::EventRing::new(64));
        let hub = EventHub::new(vec![ring.clone()]);
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
        }
        let port = |s: &std::net::UdpSocket| s.local_addr().unwrap().port().to_string();
        let c = FlowControl::start(
            TrafficFlow::default(),
            crate::firewall::default_interfaces(2),
            hub.clone(),
            Arc::new(|_| Ok(())),
        )
        .unwrap();
        c.add_target(&kv(&[("dst-address", "127.0.0.1"), ("port", &port(&a))]))
            .unwrap();
        c.set(&kv(&[("enabled", "yes")])).unwrap();
        let mut shard = Shard::new(
            TableConfig::new(16),
            Settings::default(),
            0,
            HashSeed::from_u64(1),
        );
        shard.set_events(16);
        let mut one = |sp: u16, t: u64| {
            let pkt = FlowRepr {
                tuple: Tuple {
                    src: Addr::from_v4([10, 0, 0, 1]),
                    dst: Addr::from_v4([10, 0, 0, 2]),
                    src_port: sp,
                    dst_port: 53,
                    proto: proto::UDP,
                    family: Family::V4,
                },
                ip_len: 100,
                l4: L4::Udp,
            };
            shard.handle_packet(Instant::from_secs(t), &pkt);
            shard.poll_expired(Instant::from_secs(t + 1000), 16);
            for ev in shard.drain_events() {
                assert!(ring.push(ev));
            }
            while hub.pump() > 0 {}
        };
        let mut buf = [0u8; 2048];
        one(1000, 1);
        let n = a.recv(&mut buf).expect("the first target gets a datagram");
        assert!(n > 20);
        c.add_target(&kv(&[("dst-address", "127.0.0.1"), ("port", &port(&b))]))
            .unwrap();
        one(2000, 2000);
        let n = b.recv(&mut buf).expect("the added target gets a datagram");
        assert!(n > 20);
        c.stop();
    }

    #[test]
    fn the_live_menu_applies_whole_changes_or_none() {
        let c = control(TrafficFlow::default());
        assert!(c.counters().is_none());
        let (id, _) = c
            .add_target(&kv(&[("dst-address", "127.0.0.1"), ("port", "9995")]))
            .unwrap();
        assert_eq!(target_id(id), "*1");
        c.set(&kv(&[("enabled", "yes")])).unwrap();
        let counters = c.counters().unwrap();
        assert_eq!(counters.targets[0].0, "127.0.0.1:9995");
        // A bad value changes nothing.
        let e = c
            .set(&kv(&[
                ("active-flow-timeout", "5m"),
                ("cache-entries", "x"),
            ]))
            .unwrap_err();
        assert!(e.to_string().contains("cache-entries"), "{e}");
        assert_eq!(c.settings().active_flow_timeout, Duration::from_secs(1800));
        // A socket that cannot be bound (a source address not of this host).
        let e = c
            .add_target(&kv(&[
                ("dst-address", "127.0.0.1"),
                ("src-address", "192.0.2.1"),
            ]))
            .unwrap_err();
        assert!(
            matches!(&e, FlowOpsError::Invalid(t) if t.field == "target"),
            "{e}"
        );
        assert_eq!(c.targets().len(), 1);
        // A second target; the first keeps its counters.
        c.add_target(&kv(&[("dst-address", "::1"), ("version", "ipfix")]))
            .unwrap();
        let now = c.counters().unwrap();
        assert_eq!(now.targets.len(), 2);
        assert!(Arc::ptr_eq(&now.targets[0].1, &counters.targets[0].1));
        c.set_target("*2", &kv(&[("disabled", "yes")])).unwrap();
        assert_eq!(c.counters().unwrap().targets.len(), 1);
        assert_eq!(
            c.remove_target("*7").unwrap_err(),
            FlowOpsError::NotFound("*7".into())
        );
        c.remove_target("*1").unwrap();
        let ids: Vec<u32> = c.targets().iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [2]);
        // Interfaces by name: known ones only.
        c.set(&kv(&[("interfaces", "ether2")])).unwrap();
        let e = c.set(&kv(&[("interfaces", "ether3")])).unwrap_err();
        assert!(e.to_string().contains("ether1, ether2"), "{e}");
        assert_eq!(c.settings().interfaces, "ether2");
        c.set(&kv(&[("enabled", "no")])).unwrap();
        assert!(c.counters().is_none());
        c.stop();
        assert_eq!(
            c.set(&kv(&[("enabled", "yes")])).unwrap_err(),
            FlowOpsError::Stopped
        );
    }
}
