//! RouterOS v7 REST conventions on top of the routes of [`crate::api`]:
//! the value forms a filter must have before it reaches the workers, the
//! strict parts of parsing a request (percent-encoding, path segments,
//! duplicate JSON keys), and the RouterOS shapes of rows and commands
//! (`.id`, every value a string, `.proplist`, `.query`). See `docs/api.md`.

use std::net::{IpAddr, SocketAddr};

use dataplane::conntrack::tcp::TcpState;

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

/// Percent-decodes one URL component (`+` as space in queries): `%` must be
/// followed by two hex digits (`%+1` and `%2` are refused), and the result
/// must be UTF-8.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = match b.get(i + 1..i + 3) {
                    Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                        // Two ASCII hex digits: always a byte.
                        (hex_value(*h) << 4) | hex_value(*l)
                    }
                    _ => return Err(format!("bad percent-encoding in {s:?}")),
                };
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

fn hex_value(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        b'a'..=b'f' => h - b'a' + 10,
        _ => h - b'A' + 10,
    }
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
