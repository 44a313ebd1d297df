//! RouterOS v7 REST conventions on top of the routes of [`crate::api`]:
//! the value forms a filter must have before it reaches the workers, the
//! strict parts of parsing a request (percent-encoding, path segments,
//! duplicate JSON keys), and the RouterOS shapes of rows and commands
//! (`.id`, every value a string, `.proplist`, `.query`). See `docs/api.md`.

use std::net::{IpAddr, SocketAddr};

use ctrack_model::ConnSnapshot;
use ctrack_model::connection::{BOOL_PROPERTIES, NUMBER_PROPERTIES};
use dataplane::conntrack::parse_duration;
use dataplane::conntrack::tcp::TcpState;
use serde_json::{Map, Value};

/// Properties RouterOS v7 lists for a connection that the seed lacks, with
/// the value ctrack serves (what RouterOS shows when the feature is off):
/// `hw-offload` is a connection offloaded to a switch chip (L3HW FastTrack);
/// ctrack has none, so it is always `false`.
pub const V7_EXTRA: [(&str, &str); 1] = [("hw-offload", "false")];

/// A REST row's property names: the model's, `id` as RouterOS's `.id`, and
/// [`V7_EXTRA`].
pub(crate) fn rest_properties() -> impl Iterator<Item = &'static str> {
    ConnSnapshot::PROPERTIES
        .iter()
        .map(|p| if *p == "id" { ".id" } else { p })
        .chain(V7_EXTRA.iter().map(|(p, _)| *p))
}

/// One connection as RouterOS v7's REST serves it: `.id`, every value a
/// string (`"6"`, `"true"`), the [`V7_EXTRA`] properties, and the `flags`
/// column of `print`; properties that do not apply to the protocol are
/// absent, as in RouterOS.
pub fn row(r: &ConnSnapshot) -> Map<String, Value> {
    let mut out = Map::new();
    if let Ok(Value::Object(m)) = serde_json::to_value(r) {
        for (k, v) in m {
            let k = if k == "id" { ".id".to_string() } else { k };
            let v = match v {
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k, Value::String(v));
        }
    }
    for (k, v) in V7_EXTRA {
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    out
}

/// A row as [`row`] gives it, or its `.proplist` pick in that order.
pub fn pick(r: &ConnSnapshot, proplist: Option<&[String]>) -> Map<String, Value> {
    let mut full = row(r);
    let Some(props) = proplist else {
        return full;
    };
    let mut m = Map::new();
    for p in props {
        if p == "flags" {
            m.insert(p.clone(), Value::String(r.flags()));
        } else if let Some(v) = full.remove(p) {
            m.insert(p.clone(), v);
        }
    }
    m
}

/// Reads rows in the REST form back into the model's (what the CLI
/// client does with a listing): `.id` is `id`, numbers and flags are
/// typed again, [`V7_EXTRA`] and unknown keys are dropped.
pub fn rows_from_rest(body: &str) -> Result<Vec<ConnSnapshot>, String> {
    let v: Vec<Map<String, Value>> =
        serde_json::from_str(body).map_err(|e| format!("not a list of rows: {e}"))?;
    v.into_iter()
        .map(|m| {
            let mut typed = Map::new();
            for (k, v) in m {
                let k = if k == ".id" { "id".to_string() } else { k };
                let v = match (v, k.as_str()) {
                    (Value::String(s), p) if NUMBER_PROPERTIES.contains(&p) => s
                        .parse::<u64>()
                        .map(Value::from)
                        .map_err(|_| format!("{p}: {s:?} is not a number"))?,
                    (Value::String(s), p) if BOOL_PROPERTIES.contains(&p) => {
                        Value::Bool(matches!(s.as_str(), "true" | "yes"))
                    }
                    (v, _) => v,
                };
                typed.insert(k, v);
            }
            serde_json::from_value(Value::Object(typed)).map_err(|e| e.to_string())
        })
        .collect()
}

/// Every value of a JSON object as a string, as RouterOS's REST serves
/// settings (`"max-entries": "1048576"`, `"loose-tcp-tracking": "true"`).
pub fn strings(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, Value::String(s))
                })
                .collect(),
        ),
        other => other,
    }
}

/// A comparison word of a `.query`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Word {
    /// `prop=value`
    Eq(String, String),
    /// `prop<value`
    Lt(String, String),
    /// `prop>value`
    Gt(String, String),
    /// `prop`: the row has the property.
    Has(String),
    /// `-prop`: the row lacks it.
    Lacks(String),
    /// `#|`
    Or,
    /// `#&`
    And,
    /// `#!`
    Not,
}

/// A RouterOS API query (`.query` of a REST `print`): words evaluated on a
/// stack, as the API's `?` words. `prop=value` pushes whether the row's
/// value is `value` (RouterOS compares the text: `.id=*1f2a`,
/// `assured=true`), `prop<value` and `prop>value` compare numbers as
/// numbers, times (`timeout`) as times and anything else as text, `prop`
/// pushes whether the row has it and `-prop` whether it lacks it; `#|` and
/// `#&` replace the top two values by their or/and, `#!` negates the top.
/// At the end every value left must be true (an empty query matches all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<Word>);

impl Query {
    /// Parses and checks `words`: each property must exist and each operator
    /// must find its operands; `Err` names the word.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Query, String> {
        let mut depth = 0usize;
        let mut out = Vec::with_capacity(words.len());
        for w in words {
            let w = w.as_ref();
            let word = match w {
                "#|" | "#&" => {
                    if depth < 2 {
                        return Err(format!(".query: {w:?} needs two values on the stack"));
                    }
                    depth -= 1;
                    if w == "#|" { Word::Or } else { Word::And }
                }
                "#!" => {
                    if depth < 1 {
                        return Err(format!(".query: {w:?} needs a value on the stack"));
                    }
                    Word::Not
                }
                w if w.starts_with('#') => {
                    return Err(format!(
                        ".query: {w:?} is not supported (only #|, #& and #!)"
                    ));
                }
                w => {
                    depth += 1;
                    let known = |p: &str| {
                        if rest_properties().any(|k| k == p) {
                            Ok(p.to_string())
                        } else {
                            Err(format!(
                                ".query: unknown connection property {p:?} in {w:?}"
                            ))
                        }
                    };
                    match w.find(['=', '<', '>']) {
                        Some(i) => {
                            let (p, v) = (known(&w[..i])?, w[i + 1..].to_string());
                            match &w[i..=i] {
                                "=" => Word::Eq(p, v),
                                "<" => Word::Lt(p, v),
                                _ => Word::Gt(p, v),
                            }
                        }
                        None => match w.strip_prefix('-') {
                            Some(p) => Word::Lacks(known(p)?),
                            None => Word::Has(known(w)?),
                        },
                    }
                }
            };
            out.push(word);
        }
        Ok(Query(out))
    }

    /// Whether `row` (in the form [`row`] gives) passes.
    pub fn matches(&self, row: &Map<String, Value>) -> bool {
        let mut stack: Vec<bool> = Vec::with_capacity(self.0.len());
        let get = |p: &str| row.get(p).and_then(Value::as_str);
        for w in &self.0 {
            let v = match w {
                Word::Eq(p, v) => get(p) == Some(v.as_str()),
                Word::Lt(p, v) => get(p).is_some_and(|h| compare(p, h, v).is_lt()),
                Word::Gt(p, v) => get(p).is_some_and(|h| compare(p, h, v).is_gt()),
                Word::Has(p) => get(p).is_some(),
                Word::Lacks(p) => get(p).is_none(),
                Word::Or | Word::And => {
                    let (b, a) = (stack.pop(), stack.pop());
                    let (a, b) = (a.unwrap_or(false), b.unwrap_or(false));
                    if *w == Word::Or { a || b } else { a && b }
                }
                Word::Not => {
                    let a = stack.pop().unwrap_or(false);
                    !a
                }
            };
            stack.push(v);
        }
        stack.iter().all(|b| *b)
    }
}

/// `have` against `want` for `<` and `>`.
fn compare(prop: &str, have: &str, want: &str) -> std::cmp::Ordering {
    if let (Ok(a), Ok(b)) = (have.parse::<u64>(), want.parse::<u64>()) {
        return a.cmp(&b);
    }
    if prop == "timeout"
        && let (Ok(a), Ok(b)) = (parse_duration(have), parse_duration(want))
    {
        return a.cmp(&b);
    }
    have.cmp(want)
}

/// The properties that are addresses (`IP`, `IP:port`, `[IPv6]:port`).
const ADDRESS_PROPERTIES: [&str; 4] = [
    "src-address",
    "dst-address",
    "reply-src-address",
    "reply-dst-address",
];

/// Checks the forms [`ctrack_model::check_filter_value`] leaves as text: a
/// `tcp-state` RouterOS names, a `gre-version` of 0 or 1, ICMP type and
/// code (0-255) and id (0-65535), a worker number, and addresses. `Err` is
/// the problem, for a 400 naming the property.
pub(crate) fn check_value_form(prop: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    let fits = |max: u64| v.parse::<u64>().is_ok_and(|n| n <= max);
    let problem = match prop {
        "tcp-state" => (!TcpState::ALL.iter().any(|s| s.name() == v)).then(|| {
            let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
            format!("expected one of {}", names.join(", "))
        }),
        "gre-version" => (!matches!(v, "0" | "1")).then(|| "expected 0 or 1".to_string()),
        "icmp-type" | "icmp-code" => {
            (!fits(255)).then(|| "expected an integer from 0 to 255".to_string())
        }
        "icmp-id" => (!fits(65535)).then(|| "expected an integer from 0 to 65535".to_string()),
        "worker" => (!fits(u16::MAX.into())).then(|| "expected a worker number".to_string()),
        "gre-key" => (!fits(u32::MAX.into())).then(|| "expected a 32-bit integer".to_string()),
        p if ADDRESS_PROPERTIES.contains(&p) => (!is_address(v)).then(|| {
            "expected an IP address, IP:port or [IPv6]:port, e.g. 10.0.0.1:80".to_string()
        }),
        _ => None,
    };
    match problem {
        Some(p) => Err(format!("bad value {value:?} for {prop}: {p}")),
        None => Ok(()),
    }
}

fn is_address(v: &str) -> bool {
    v.parse::<IpAddr>().is_ok()
        || v.parse::<SocketAddr>().is_ok()
        || v.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Percent-decodes one URL component (`+` as space in queries) with the
/// `percent-encoding` crate, strictly: every `%` must be followed by two hex
/// digits (`%+1` and `%2` are refused, where the crate would keep them as
/// text), and the result must be UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let strict = b.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !strict {
        return Err(format!("bad percent-encoding in {s:?}"));
    }
    let spaced;
    let s2 = if plus_is_space && s.contains('+') {
        spaced = s.replace('+', " ");
        spaced.as_str()
    } else {
        s
    };
    percent_encoding::percent_decode_str(s2)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Decodes a request path segment by segment: an encoded `/` (`%2F`) is
/// refused rather than routed like a separator.
pub(crate) fn decode_path(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    for (i, seg) in raw.split('/').enumerate() {
        let d = percent_decode(seg, false)?;
        if d.contains('/') {
            return Err(format!(
                "path: an encoded '/' (%2F) in the segment {seg:?} is not a separator"
            ));
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&d);
    }
    Ok(out)
}

/// The first key that appears twice in a JSON object, at any depth (serde
/// keeps the last one silently).
pub(crate) fn duplicate_key(body: &[u8]) -> Option<String> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct V<'a>(&'a mut Option<String>);

    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(k) = map.next_key::<String>()? {
                map.next_value_seed(Seed(&mut *self.0))?;
                if !seen.insert(k.clone()) && self.0.is_none() {
                    *self.0 = Some(k);
                }
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Seed(&mut *self.0))?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }

    struct Seed<'a>(&'a mut Option<String>);
    impl<'de> serde::de::DeserializeSeed<'de> for Seed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(V(self.0))
        }
    }

    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    // Bad JSON is the caller's to report; only a duplicate is ours.
    let _ = serde::de::DeserializeSeed::deserialize(Seed(&mut found), &mut de);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ConnSnapshot> {
        crate::api::tests::rows()
    }

    #[test]
    fn rows_are_routeros_strings_with_dot_id() {
        let r = row(&rows()[0]);
        assert_eq!(r[".id"], "*1f2a");
        assert!(r.get("id").is_none());
        assert_eq!(r["orig-packets"], "5");
        assert_eq!(r["assured"], "true");
        assert_eq!(r["dying"], "false");
        assert_eq!(r["hw-offload"], "false");
        assert_eq!(r["tcp-state"], "established");
        assert!(r.values().all(Value::is_string));
        // What does not apply is absent, not null.
        assert!(r.get("icmp-id").is_none());
        // And back, as the CLI reads a listing.
        let body = serde_json::to_string(&rows().iter().map(row).collect::<Vec<_>>()).unwrap();
        assert_eq!(rows_from_rest(&body).unwrap(), rows());
        assert!(rows_from_rest(r#"[{"orig-packets":"x"}]"#).is_err());
    }

    #[test]
    fn queries_are_stack_words() {
        let rs: Vec<Map<String, Value>> = rows().iter().map(row).collect();
        let ids = |words: &[&str]| -> Vec<String> {
            let q = Query::parse(words).unwrap();
            rs.iter()
                .filter(|r| q.matches(r))
                .map(|r| r[".id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&[]).len(), 3);
        assert_eq!(ids(&["protocol=tcp"]), ["*1f2a"]);
        assert_eq!(
            ids(&["protocol=udp", "protocol=icmp", "#|"]),
            ["*1000000002b", "*7"]
        );
        assert_eq!(ids(&["protocol=tcp", "#!"]), ["*1000000002b", "*7"]);
        assert_eq!(ids(&["protocol=tcp", "assured=true", "#&"]), ["*1f2a"]);
        // Two words without an operator: both must hold.
        assert_eq!(ids(&["assured=true", "protocol=icmp"]), ["*7"]);
        assert_eq!(ids(&["orig-bytes>100"]), ["*1f2a", "*7"]);
        assert_eq!(ids(&["orig-bytes<600"]), ["*1000000002b"]);
        assert_eq!(ids(&["timeout<1m"]), ["*1000000002b", "*7"]);
        assert_eq!(ids(&["tcp-state"]), ["*1f2a"]);
        assert_eq!(
            ids(&["-tcp-state", "icmp-id", "#|"]),
            ["*1000000002b", "*7"]
        );
        assert_eq!(ids(&[".id=*7"]), ["*7"]);
        for (bad, named) in [
            (&["bogus=1"][..], "bogus"),
            (&["#|"][..], "#|"),
            (&["protocol=tcp", "#&"][..], "#&"),
            (&["#!"][..], "#!"),
            (&["a=1", "#3"][..], "a"),
            (&["protocol=tcp", "#3"][..], "#3"),
        ] {
            let e = Query::parse(bad).unwrap_err();
            assert!(e.contains(named), "{bad:?}: {e}");
        }
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("%2A1f2a", false).unwrap(), "*1f2a");
        assert_eq!(percent_decode("%2a", false).unwrap(), "*");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        for bad in ["%2", "%zz", "%+1", "%-1", "% 1", "%1", "%"] {
            assert!(percent_decode(bad, false).is_err(), "{bad}");
        }
        assert!(percent_decode("%FF", false).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn an_encoded_slash_is_not_a_separator() {
        assert_eq!(decode_path("/rest/ip/%2A1").unwrap(), "/rest/ip/*1");
        let e = decode_path("/rest/ip%2Ffirewall/connection").unwrap_err();
        assert!(e.contains("%2F"), "{e}");
        assert!(decode_path("/rest/%2f").is_err());
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"a":1,"b":2}"#), None);
        assert_eq!(duplicate_key(br#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate_key(br#"{"x":[{"k":1,"k":2}],"y":"a"}"#).as_deref(),
            Some("k")
        );
        assert_eq!(duplicate_key(b"[1,2,3]"), None);
        assert_eq!(duplicate_key(b"not json"), None);
    }

    #[test]
    fn value_forms() {
        for (p, v) in [
            ("tcp-state", "established"),
            ("tcp-state", "syn-sent2"),
            ("gre-version", "1"),
            ("icmp-type", "255"),
            ("src-address", "10.0.0.1"),
            ("src-address", "10.0.0.1:80"),
            ("dst-address", "[2001:db8::1]:80"),
            ("dst-address", "[2001:db8::1]"),
            ("reply-src-address", "2001:db8::1"),
            ("protocol", "anything"),
        ] {
            assert!(check_value_form(p, v).is_ok(), "{p}={v}");
        }
        for (p, v) in [
            ("tcp-state", "establishd"),
            ("tcp-state", ""),
            ("gre-version", "2"),
            ("gre-version", "x"),
            ("icmp-type", "256"),
            ("icmp-code", "-1"),
            ("icmp-id", "65536"),
            ("src-address", "10.0.0"),
            ("src-address", "10.0.0.1:99999"),
            ("dst-address", "example.com"),
            ("reply-dst-address", "10.0.0.0/8"),
        ] {
            let e = check_value_form(p, v).unwrap_err();
            assert!(e.contains(p), "{p}={v}: {e}");
        }
    }
}
