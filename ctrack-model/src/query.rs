//! RouterOS's `print where` language over connection rows:
//!
//! ```text
//! where protocol=tcp and (dst-address in 10.0.0.0/8 or !assured)
//! where orig-bytes>1000000 tcp-state!=established
//! where src-address~"^192\.168\." and not (protocol=udp)
//! ```
//!
//! Comparisons `PROP=VALUE`, `PROP!=VALUE`, `PROP<VALUE`, `PROP>VALUE`,
//! `PROP<=VALUE`, `PROP>=VALUE`, `PROP~REGEX` (the `regex` crate's syntax,
//! unanchored, as RouterOS's `~`), `PROP in PREFIX` (an address property
//! within `10.0.0.0/8` or `2001:db8::/32`; an address alone is a /32 or
//! /128); a flag alone (`assured`) means `assured=yes`; `and` (also `&&`,
//! or nothing between two terms), `or` (`||`), `not` (`!`), parentheses.
//! `not` binds tightest, then `and`, then `or`, as in RouterOS.
//!
//! Values are compared as the property's kind: flags as yes/no (also
//! true/false), counters and ICMP fields as integers, `timeout` as a time,
//! addresses by IP alone when the value has no port; the names RouterOS
//! treats as keywords (protocol, tcp-state, gre-protocol, gre-version,
//! connection-type, id) case-insensitively; `connection-mark` exactly.
//! A property that does not apply to a row's protocol (`tcp-state` of a UDP
//! row) matches no `=`, `<`, `>`, `~` or `in`, and so every `!=`.
//!
//! The expression is checked as a whole before any row is read: unknown
//! properties, values of the wrong form and bad regexes are errors that
//! name the property.

use std::cmp::Ordering;
use std::net::IpAddr;

use ctrack_core::conntrack::parse_duration;
use regex::Regex;

use crate::connection::{
    BOOL_PROPERTIES, ConnSnapshot, NUMBER_PROPERTIES, check_filter_value, check_property,
};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// `~`: the value is a regular expression searched in the text form.
    Regex,
    /// `in`: an address property within a prefix.
    In,
}

/// A parsed `where` expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// Matches every row (an empty `where`).
    All,
    Cmp {
        prop: String,
        op: Op,
        value: String,
        /// The compiled regex of `~`.
        regex: Option<Regex>,
        /// The prefix of `in`.
        prefix: Option<(IpAddr, u8)>,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why a `where` expression was refused. Every message says where or
/// names the property.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhereError {
    #[error("unknown connection property {0:?}")]
    UnknownProperty(String),
    #[error("bad value {value:?} for {prop}: {problem}")]
    BadValue {
        prop: String,
        value: String,
        problem: String,
    },
    #[error("where: {0}")]
    Syntax(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// A quoted value.
    Quoted(String),
    Op(Op),
    Open,
    Close,
    Not,
    And,
    Or,
}

fn op_of(s: &str) -> Option<(Op, usize)> {
    for (t, op) in [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("~", Op::Regex),
    ] {
        if s.starts_with(t) {
            return Some((op, t.len()));
        }
    }
    None
}

fn tokenize(text: &str) -> Result<Vec<Tok>, WhereError> {
    let mut toks = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    // After an operator the next token is a value: read up to white space
    // (or a closing parenthesis), or a quoted string.
    let mut want_value = false;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'"' {
            let mut s = String::new();
            let mut j = i + 1;
            let mut closed = false;
            while j < b.len() {
                match b[j] {
                    b'\\' if j + 1 < b.len() && matches!(b[j + 1], b'"' | b'\\') => {
                        s.push(char::from(b[j + 1]));
                        j += 2;
                    }
                    b'"' => {
                        closed = true;
                        j += 1;
                        break;
                    }
                    _ => {
                        let ch = text[j..].chars().next().unwrap_or('?');
                        s.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(WhereError::Syntax(format!(
                    "a quoted value does not end: {}",
                    &text[i..]
                )));
            }
            toks.push(Tok::Quoted(s));
            want_value = false;
            i = j;
            continue;
        }
        if want_value {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b')' {
                i += 1;
            }
            toks.push(Tok::Quoted(text[start..i].to_string()));
            want_value = false;
            continue;
        }
        match c {
            b'(' => {
                toks.push(Tok::Open);
                i += 1;
                continue;
            }
            b')' => {
                toks.push(Tok::Close);
                i += 1;
                continue;
            }
            _ => {}
        }
        if text[i..].starts_with("&&") {
            toks.push(Tok::And);
            i += 2;
            continue;
        }
        if text[i..].starts_with("||") {
            toks.push(Tok::Or);
            i += 2;
            continue;
        }
        if let Some((op, n)) = op_of(&text[i..]) {
            toks.push(Tok::Op(op));
            i += n;
            want_value = true;
            continue;
        }
        if c == b'!' {
            toks.push(Tok::Not);
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len()
            && !b[i].is_ascii_whitespace()
            && !matches!(b[i], b'(' | b')' | b'"')
            && op_of(&text[i..]).is_none()
            && !text[i..].starts_with("&&")
            && !text[i..].starts_with("||")
        {
            i += 1;
        }
        let w = &text[start..i];
        toks.push(match w {
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            "in" => {
                want_value = true;
                Tok::Op(Op::In)
            }
            _ => Tok::Word(w.to_string()),
        });
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, WhereError> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self) -> Result<Expr, WhereError> {
        let mut v = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                    v.push(self.unary()?);
                }
                // Two terms side by side: RouterOS's implicit `and`.
                Some(Tok::Word(_) | Tok::Not | Tok::Open) => v.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn unary(&mut self) -> Result<Expr, WhereError> {
        match self.next() {
            Some(Tok::Not) => Ok(Expr::Not(Box::new(self.unary()?))),
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err(WhereError::Syntax("a ( is not closed".into())),
                }
            }
            Some(Tok::Word(prop)) => self.term(prop),
            Some(t) => Err(WhereError::Syntax(format!(
                "expected a property, got {}",
                describe(&t)
            ))),
            None => Err(WhereError::Syntax(
                "expected a property, got the end (e.g. protocol=tcp)".into(),
            )),
        }
    }

    fn term(&mut self, prop: String) -> Result<Expr, WhereError> {
        check_property(&prop).map_err(|e| WhereError::UnknownProperty(e.0))?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            // A flag alone: `assured` is `assured=yes`.
            _ if BOOL_PROPERTIES.contains(&prop.as_str()) => {
                return cmp(prop, Op::Eq, "yes".into());
            }
            _ => {
                return Err(WhereError::Syntax(format!(
                    "expected an operator after {prop} (=, !=, <, >, ~, in), e.g. {prop}=VALUE"
                )));
            }
        };
        self.pos += 1;
        match self.next() {
            Some(Tok::Quoted(v)) => cmp(prop, op, v),
            _ => Err(WhereError::Syntax(format!("expected a value after {prop}"))),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) | Tok::Quoted(w) => format!("{w:?}"),
        Tok::Op(op) => format!("operator {op:?}"),
        Tok::Open => "(".into(),
        Tok::Close => ")".into(),
        Tok::Not => "not".into(),
        Tok::And => "and".into(),
        Tok::Or => "or".into(),
    }
}

const ADDRESS_PROPERTIES: [&str; 4] = [
    "src-address",
    "dst-address",
    "reply-src-address",
    "reply-dst-address",
];

/// The properties whose values RouterOS compares without regard to case.
const KEYWORD_PROPERTIES: [&str; 6] = [
    "protocol",
    "tcp-state",
    "gre-protocol",
    "gre-version",
    "connection-type",
    "id",
];

fn bad(prop: &str, value: &str, problem: impl Into<String>) -> WhereError {
    WhereError::BadValue {
        prop: prop.to_string(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

fn cmp(prop: String, op: Op, value: String) -> Result<Expr, WhereError> {
    let mut regex = None;
    let mut prefix = None;
    match op {
        Op::Regex => {
            regex = Some(
                Regex::new(&value).map_err(|e| bad(&prop, &value, format!("not a regex: {e}")))?,
            );
        }
        Op::In => {
            if !ADDRESS_PROPERTIES.contains(&prop.as_str()) {
                return Err(bad(
                    &prop,
                    &value,
                    "`in` takes an address property (src-address, dst-address, reply-...)",
                ));
            }
            prefix = Some(parse_prefix(&value).ok_or_else(|| {
                bad(&prop, &value, "expected an address prefix, e.g. 10.0.0.0/8")
            })?);
        }
        _ => check_filter_value(&prop, &value).map_err(|e| bad(&e.prop, &e.value, e.problem))?,
    }
    if matches!(op, Op::Lt | Op::Gt | Op::Le | Op::Ge) && BOOL_PROPERTIES.contains(&prop.as_str()) {
        return Err(bad(&prop, &value, "a flag compares with = or != only"));
    }
    Ok(Expr::Cmp {
        prop,
        op,
        value,
        regex,
        prefix,
    })
}

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn in_prefix(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `10.0.0.1:80` -> `10.0.0.1`, `[2001:db8::1]:80` -> `2001:db8::1`.
fn ip_of(a: &str) -> Option<IpAddr> {
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = a.parse() {
        return Some(ip);
    }
    a.rsplit_once(':')?.0.parse().ok()
}

/// Orders `have` against `want` as the property's kind; `None` when they
/// do not compare (a value of another form).
fn order(prop: &str, have: &str, want: &str) -> Option<Ordering> {
    if NUMBER_PROPERTIES.contains(&prop) {
        return Some(
            have.parse::<u64>()
                .ok()?
                .cmp(&want.trim().parse::<u64>().ok()?),
        );
    }
    if prop == "timeout" {
        return Some(
            parse_duration(have)
                .ok()?
                .cmp(&parse_duration(want.trim()).ok()?),
        );
    }
    if ADDRESS_PROPERTIES.contains(&prop) {
        return Some(ip_of(have)?.cmp(&ip_of(want.trim())?));
    }
    Some(have.cmp(want))
}

impl Expr {
    /// Parses the words after `where` (as the shell split them; they are
    /// joined with spaces first, so `protocol=tcp`, `protocol = tcp` and
    /// `"protocol=tcp and assured"` read the same). No words: [`Expr::All`].
    pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Expr, WhereError> {
        let text: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        Expr::parse(&text.join(" "))
    }

    /// Parses a `where` expression (see the module doc).
    pub fn parse(text: &str) -> Result<Expr, WhereError> {
        let toks = tokenize(text)?;
        if toks.is_empty() {
            return Ok(Expr::All);
        }
        let mut p = Parser { toks, pos: 0 };
        let e = p.or()?;
        match p.next() {
            None => Ok(e),
            Some(t) => Err(WhereError::Syntax(format!(
                "unexpected {} (a ) without its (?)",
                describe(&t)
            ))),
        }
    }

    /// Whether `row` matches.
    pub fn matches(&self, row: &ConnSnapshot) -> bool {
        match self {
            Expr::All => true,
            Expr::Not(e) => !e.matches(row),
            Expr::And(v) => v.iter().all(|e| e.matches(row)),
            Expr::Or(v) => v.iter().any(|e| e.matches(row)),
            Expr::Cmp {
                prop,
                op,
                value,
                regex,
                prefix,
            } => {
                let Ok(Some(have)) = row.get(prop) else {
                    // Not this protocol's property.
                    return *op == Op::Ne;
                };
                match op {
                    Op::Eq => equal(row, prop, &have, value),
                    Op::Ne => !equal(row, prop, &have, value),
                    Op::Regex => regex.as_ref().is_some_and(|r| r.is_match(&have)),
                    Op::In => match (ip_of(&have), prefix) {
                        (Some(ip), Some(p)) => in_prefix(ip, *p),
                        _ => false,
                    },
                    Op::Lt | Op::Gt | Op::Le | Op::Ge => {
                        let Some(o) = order(prop, &have, value) else {
                            return false;
                        };
                        match op {
                            Op::Lt => o.is_lt(),
                            Op::Gt => o.is_gt(),
                            Op::Le => o.is_le(),
                            _ => o.is_ge(),
                        }
                    }
                }
            }
        }
    }

    /// The expression as plain `PROP=VALUE` pairs that must all hold, when
    /// it is only that (what the API's listing query takes, so the server
    /// filters instead of sending every row); values in the form the server
    /// compares exactly (keywords in lower case). `None` otherwise.
    pub fn as_equalities(&self) -> Option<Vec<(String, String)>> {
        let one = |e: &Expr| match e {
            Expr::Cmp {
                prop,
                op: Op::Eq,
                value,
                ..
            } => {
                let v = if KEYWORD_PROPERTIES.contains(&prop.as_str()) {
                    value.to_ascii_lowercase()
                } else {
                    value.clone()
                };
                Some((prop.clone(), v))
            }
            _ => None,
        };
        match self {
            Expr::All => Some(Vec::new()),
            Expr::And(v) => v.iter().map(one).collect(),
            e => one(e).map(|p| vec![p]),
        }
    }
}

fn equal(row: &ConnSnapshot, prop: &str, have: &str, want: &str) -> bool {
    if KEYWORD_PROPERTIES.contains(&prop) {
        return have.eq_ignore_ascii_case(want.trim());
    }
    // The row's own matcher: flags as yes/no/true/false, addresses by IP
    // alone, timeout as a time.
    row.matches(prop, want).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ConnSnapshot> {
        vec![
            ConnSnapshot {
                id: "*1".into(),
                protocol: "tcp".into(),
                src_address: "10.0.0.1:1000".into(),
                dst_address: "192.168.1.2:80".into(),
                tcp_state: Some("established".into()),
                timeout: "1d".into(),
                orig_bytes: 5000,
                assured: true,
                seen_reply: true,
                ..Default::default()
            },
            ConnSnapshot {
                id: "*2".into(),
                protocol: "udp".into(),
                src_address: "10.0.0.2:53".into(),
                dst_address: "[2001:db8::1]:53".into(),
                timeout: "10s".into(),
                orig_bytes: 100,
                connection_mark: "Web".into(),
                ..Default::default()
            },
            ConnSnapshot {
                id: "*3".into(),
                protocol: "icmp".into(),
                src_address: "172.16.0.1".into(),
                dst_address: "10.1.2.3".into(),
                icmp_type: Some(8),
                timeout: "5s".into(),
                ..Default::default()
            },
        ]
    }

    fn ids(w: &str) -> Vec<String> {
        let e = Expr::parse(w).unwrap_or_else(|e| panic!("{w}: {e}"));
        rows()
            .into_iter()
            .filter(|r| e.matches(r))
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn operators() {
        assert_eq!(ids(""), ["*1", "*2", "*3"]);
        assert_eq!(ids("protocol=tcp"), ["*1"]);
        assert_eq!(ids("protocol=TCP"), ["*1"]);
        assert_eq!(ids("protocol!=tcp"), ["*2", "*3"]);
        // tcp-state applies only to TCP: `!=` matches the others.
        assert_eq!(ids("tcp-state!=established"), ["*2", "*3"]);
        assert_eq!(ids("tcp-state=ESTABLISHED"), ["*1"]);
        assert_eq!(ids("orig-bytes>100"), ["*1"]);
        assert_eq!(ids("orig-bytes>=100"), ["*1", "*2"]);
        assert_eq!(ids("orig-bytes<5000"), ["*2", "*3"]);
        assert_eq!(ids("timeout>9s"), ["*1", "*2"]);
        assert_eq!(ids("timeout<=5s"), ["*3"]);
        assert_eq!(ids("icmp-type=8"), ["*3"]);
        assert_eq!(ids("src-address~\"^10\\.0\\.\""), ["*1", "*2"]);
        assert_eq!(ids("src-address~^172"), ["*3"]);
        assert_eq!(ids("dst-address in 10.0.0.0/8"), ["*3"]);
        assert_eq!(ids("dst-address in 192.168.0.0/16"), ["*1"]);
        assert_eq!(ids("dst-address in 2001:db8::/32"), ["*2"]);
        assert_eq!(ids("src-address in 10.0.0.2"), ["*2"]);
        assert_eq!(ids("src-address=10.0.0.1"), ["*1"]);
        assert_eq!(ids("src-address>10.0.0.1"), ["*2", "*3"]);
        // connection-mark is case-sensitive, as RouterOS's marks are.
        assert_eq!(ids("connection-mark=Web"), ["*2"]);
        assert_eq!(ids("connection-mark=web"), Vec::<String>::new());
    }

    #[test]
    fn logic_and_precedence() {
        assert_eq!(ids("assured"), ["*1"]);
        assert_eq!(ids("!assured"), ["*2", "*3"]);
        assert_eq!(ids("not assured and protocol=udp"), ["*2"]);
        assert_eq!(ids("protocol=udp or protocol=icmp"), ["*2", "*3"]);
        assert_eq!(ids("protocol=udp || protocol=icmp && icmp-type=0"), ["*2"]);
        assert_eq!(
            ids("(protocol=udp or protocol=icmp) and timeout<10s"),
            ["*3"]
        );
        assert_eq!(ids("protocol=tcp assured"), ["*1"]);
        assert_eq!(ids("not (protocol=tcp or protocol=udp)"), ["*3"]);
        assert_eq!(ids("seen-reply=no and !(protocol=icmp)"), ["*2"]);
        assert_eq!(ids("protocol = udp"), ["*2"]);
    }

    #[test]
    fn errors_name_the_problem() {
        for (w, needle) in [
            ("protcol=tcp", "protcol"),
            ("orig-bytes>many", "orig-bytes"),
            ("assured=maybe", "assured"),
            ("assured>yes", "assured"),
            ("src-address~(", "regex"),
            ("dst-address in 10.0.0.0/40", "prefix"),
            ("protocol in 10.0.0.0/8", "address property"),
            ("(protocol=tcp", "not closed"),
            ("protocol=tcp)", ")"),
            ("protocol", "operator"),
            ("protocol=", "value"),
            ("and", "property"),
            ("src-address~\"abc", "quoted"),
        ] {
            let e = Expr::parse(w).unwrap_err().to_string();
            assert!(e.contains(needle), "{w}: {e}");
        }
    }

    #[test]
    fn equalities_are_pushed_down_only_when_that_is_all() {
        let eq = |w: &str| Expr::parse(w).unwrap().as_equalities();
        assert_eq!(eq(""), Some(vec![]));
        assert_eq!(
            eq("protocol=TCP tcp-state=established"),
            Some(vec![
                ("protocol".into(), "tcp".into()),
                ("tcp-state".into(), "established".into())
            ])
        );
        assert_eq!(eq("protocol=tcp or protocol=udp"), None);
        assert_eq!(eq("orig-bytes>1"), None);
        assert_eq!(eq("assured"), Some(vec![("assured".into(), "yes".into())]));
        assert_eq!(
            Expr::parse_words(&["protocol=udp", "and", "timeout<10s"])
                .unwrap()
                .as_equalities(),
            None
        );
    }
}
