//! FTP control connections, as Linux's `nf_conntrack_ftp` reads them.
//!
//! The client's `PORT` and `EPRT` commands and the server's `227` (PASV)
//! and `229` (EPSV) replies announce the data connection. Linux parses only
//! a segment that starts right after a line end it saw in that direction
//! (it keeps the sequence number after the last two line ends per
//! direction), and only from the segment's first byte: a command split
//! across segments is not reassembled. A segment that starts a command's
//! keyword but does not hold it whole (or holds it malformed) is dropped
//! (Linux returns `NF_DROP`, "partial matching"), so the sender retransmits
//! it, usually whole. The first line in each direction is never parsed
//! (no line end seen before it), which costs nothing: it is the server's
//! greeting and the client's `USER`.
//!
//! What Linux accepts that we refuse (hostile input, counted by the
//! caller): numbers above 255 in `h1,h2,h3,h4,p1,p2` (Linux lets them
//! overflow into the neighbouring byte), port 0, and `EPRT`/`EPSV` ports
//! above 65535 (Linux truncates them to 16 bits).

use crate::flow::{Addr, Family};

/// Line ends remembered per direction (Linux's `NUM_SEQ_TO_REMEMBER`).
pub const SEQ_TO_REMEMBER: usize = 2;

/// The per-connection state: where lines start, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtpState {
    /// Sequence numbers right after a line end seen, per direction
    /// (`Dir::index()`).
    seq_aft_nl: [[u32; SEQ_TO_REMEMBER]; 2],
    num: [u8; 2],
}

/// Which announcement was found (Linux's `nf_ct_ftp_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtpCmd {
    /// `PORT h1,h2,h3,h4,p1,p2` from the client.
    Port,
    /// `EPRT |1|a.b.c.d|port|` or `EPRT |2|v6|port|` from the client.
    Eprt,
    /// `227 ... (h1,h2,h3,h4,p1,p2)` from the server.
    Pasv,
    /// `229 ... (|||port|)` from the server: no address (the server's).
    Epsv,
}

/// An announced data endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtpFound {
    pub cmd: FtpCmd,
    /// The announced address; `None` for EPSV (the sender's own).
    pub addr: Option<Addr>,
    pub port: u16,
    /// Where the address/port text lies in the payload (for NAT, which
    /// rewrites it as `nf_nat_ftp` does: `mangle_rfc959`/`mangle_eprt`/
    /// `mangle_epsv`).
    pub match_off: usize,
    pub match_len: usize,
}

/// What one segment of the control connection gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtpResult {
    /// Nothing announced (or not at a line start: not looked at).
    Nothing,
    Found(FtpFound),
    /// The segment starts a command's keyword but does not hold it whole
    /// and well-formed: Linux drops the packet.
    Partial,
}

/// The segment of sequence number `seq` and payload `data`, in direction
/// `dir_index` (0 original, 1 reply) of an FTP control connection of
/// family `family`, whose originator is the client. Updates `state`.
pub fn help(
    state: &mut FtpState,
    dir_index: usize,
    family: Family,
    seq: u32,
    data: &[u8],
) -> FtpResult {
    let d = dir_index & 1;
    if data.is_empty() {
        return FtpResult::Nothing;
    }
    let ends_in_nl = data[data.len() - 1] == b'\n';
    let next = seq.wrapping_add(data.len() as u32);
    let at_line_start = state.seq_aft_nl[d][..usize::from(state.num[d])].contains(&seq);
    let r = if at_line_start {
        search(d, family, data)
    } else {
        FtpResult::Nothing
    };
    if r == FtpResult::Partial {
        // Linux: the packet is dropped, the line ends are not updated.
        return r;
    }
    if ends_in_nl {
        update_nl_seq(state, d, next);
    }
    r
}

/// Linux's `update_nl_seq`: remember `nl_seq`, replacing the older of two
/// when `nl_seq` is after it.
fn update_nl_seq(state: &mut FtpState, d: usize, nl_seq: u32) {
    let n = usize::from(state.num[d]);
    if state.seq_aft_nl[d][..n].contains(&nl_seq) {
        return;
    }
    if n < SEQ_TO_REMEMBER {
        state.seq_aft_nl[d][n] = nl_seq;
        state.num[d] += 1;
    } else {
        let s = state.seq_aft_nl[d];
        let oldest = if before(s[0], s[1]) { 0 } else { 1 };
        if before(s[oldest], nl_seq) {
            state.seq_aft_nl[d][oldest] = nl_seq;
        }
    }
}

/// TCP sequence order (`before(a, b)`: a comes before b).
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

type GetNum = fn(&[u8], Family, u8) -> Option<(Option<Addr>, u16, usize)>;

struct Pattern {
    pat: &'static [u8],
    skip: u8,
    term: u8,
    cmd: FtpCmd,
    get: GetNum,
}

const SEARCH: [[Pattern; 2]; 2] = [
    [
        Pattern {
            pat: b"PORT",
            skip: b' ',
            term: b'\r',
            cmd: FtpCmd::Port,
            get: try_rfc959,
        },
        Pattern {
            pat: b"EPRT",
            skip: b' ',
            term: b'\r',
            cmd: FtpCmd::Eprt,
            get: try_eprt,
        },
    ],
    [
        Pattern {
            pat: b"227 ",
            skip: 0,
            term: 0,
            cmd: FtpCmd::Pasv,
            get: try_rfc1123,
        },
        Pattern {
            pat: b"229 ",
            skip: b'(',
            term: b')',
            cmd: FtpCmd::Epsv,
            get: try_epsv,
        },
    ],
];

fn search(d: usize, family: Family, data: &[u8]) -> FtpResult {
    for p in &SEARCH[d] {
        match find_pattern(data, p, family) {
            Some(r) => return r,
            None => continue,
        }
    }
    FtpResult::Nothing
}

/// Linux's `find_pattern`: `None` no match, else found or partial.
fn find_pattern(data: &[u8], p: &Pattern, family: Family) -> Option<FtpResult> {
    let plen = p.pat.len();
    if data.len() <= plen {
        // A short segment that begins the keyword: partial.
        return data
            .eq_ignore_ascii_case(&p.pat[..data.len()])
            .then_some(FtpResult::Partial);
    }
    if !data[..plen].eq_ignore_ascii_case(p.pat) {
        return None;
    }
    let mut i = plen;
    if p.skip != 0 {
        loop {
            if data[i] == p.skip {
                break;
            }
            if i == data.len() - 1 {
                return Some(FtpResult::Partial);
            }
            i += 1;
        }
        i += 1;
    }
    Some(match (p.get)(&data[i..], family, p.term) {
        Some((addr, port, len)) if len > 0 => {
            // 227: the numbers start at the first digit (Linux's
            // `try_rfc1123` moves the match offset there).
            let skip = if p.cmd == FtpCmd::Pasv {
                data[i..].iter().position(u8::is_ascii_digit).unwrap_or(0)
            } else {
                0
            };
            FtpResult::Found(FtpFound {
                cmd: p.cmd,
                addr,
                port,
                match_off: i + skip,
                match_len: len - skip,
            })
        }
        _ => FtpResult::Partial,
    })
}

/// Linux's `try_number`: `N` numbers separated by `sep`, ending at `term`
/// (or anything else when `term` is 0) after the last. Each at most `max`.
/// Returns the length consumed (up to, not including, the terminator).
fn try_number<const N: usize>(
    data: &[u8],
    sep: u8,
    term: u8,
    max: u32,
) -> Option<([u32; N], usize)> {
    let mut a = [0u32; N];
    let mut i = 0;
    let mut digits = false;
    for (len, &c) in data.iter().enumerate() {
        if c.is_ascii_digit() {
            a[i] = a[i] * 10 + u32::from(c - b'0');
            if a[i] > max {
                return None;
            }
            digits = true;
        } else if c == sep && i + 1 < N && digits {
            i += 1;
            digits = false;
        } else {
            return ((c == term || term == 0) && i == N - 1 && digits).then_some((a, len));
        }
    }
    None
}

/// `h1,h2,h3,h4,p1,p2` (PORT, RFC 959).
fn try_rfc959(data: &[u8], family: Family, term: u8) -> Option<(Option<Addr>, u16, usize)> {
    let (a, len) = try_number::<6>(data, b',', term, 255)?;
    let port = (a[4] << 8 | a[5]) as u16;
    if port == 0 {
        return None;
    }
    let addr = Addr::from_v4([a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8]);
    // An IPv4 address in an IPv6 connection's PORT: Linux compares it with
    // the connection's (it differs) and creates nothing.
    let _ = family;
    Some((Some(addr), port, len))
}

/// 227: RFC 1123 says to scan for the first digit.
fn try_rfc1123(data: &[u8], family: Family, _term: u8) -> Option<(Option<Addr>, u16, usize)> {
    let start = data.iter().position(|c| c.is_ascii_digit())?;
    let (addr, port, len) = try_rfc959(&data[start..], family, 0)?;
    // The match offset is relative to the digit; report from `data`'s start.
    Some((addr, port, start + len))
}

/// Linux's `get_port`: decimal digits up to `delim`, 1..=65535.
fn get_port(data: &[u8], start: usize, delim: u8) -> Option<(u16, usize)> {
    let mut port = 0u32;
    for (i, &c) in data.iter().enumerate().skip(start) {
        if c == delim {
            if port == 0 {
                return None;
            }
            return Some((port as u16, i + 1));
        } else if c.is_ascii_digit() {
            port = port * 10 + u32::from(c - b'0');
            if port > 65535 {
                return None;
            }
        } else {
            return None;
        }
    }
    None
}

fn valid_delim(c: u8) -> bool {
    !c.is_ascii_digit() && (33..=126).contains(&c)
}

/// `EPRT |1|a.b.c.d|port|` or `|2|v6|port|` (RFC 2428): the family must be
/// the connection's.
fn try_eprt(data: &[u8], family: Family, _term: u8) -> Option<(Option<Addr>, u16, usize)> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[2] != delim {
        return None;
    }
    let want = match family {
        Family::V4 => b'1',
        Family::V6 => b'2',
    };
    if data[1] != want {
        return None;
    }
    let rest = &data[3..];
    let end = rest.iter().position(|&c| c == delim)?;
    let text = core::str::from_utf8(&rest[..end]).ok()?;
    let addr = match family {
        Family::V4 => Addr::from_v4(text.parse::<std::net::Ipv4Addr>().ok()?.octets()),
        Family::V6 => Addr::from_v6(text.parse::<std::net::Ipv6Addr>().ok()?.octets()),
    };
    let (port, len) = get_port(data, 3 + end + 1, delim)?;
    Some((Some(addr), port, len))
}

/// `229 Entering Extended Passive Mode (|||port|)` (RFC 2428), from after `(`.
fn try_epsv(data: &[u8], _family: Family, _term: u8) -> Option<(Option<Addr>, u16, usize)> {
    if data.len() <= 3 {
        return None;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[1] != delim || data[2] != delim {
        return None;
    }
    let (port, len) = get_port(data, 3, delim)?;
    Some((None, port, len))
}

/// Longest text [`format_for_nat`] writes (`|2|` + a full IPv6 address +
/// `|65535|`).
pub const NAT_TEXT_MAX: usize = 64;

/// The text that replaces an announcement's address/port match under NAT,
/// as Linux's `nf_nat_ftp_fmt_cmd` writes it: `PORT`/`227`
/// `h1,h2,h3,h4,p1,p2`; `EPRT` `|1|a.b.c.d|port|` or `|2|x:x:x:x:x:x:x:x|port|`
/// (Linux's `%pI6`: eight groups of four hex digits); `EPSV` `|||port|`.
/// Written into `buf`; returns its length. `None` for an IPv6 address in a
/// `PORT`/`227` (which cannot carry one).
pub fn format_for_nat(
    cmd: FtpCmd,
    family: Family,
    addr: Addr,
    port: u16,
    buf: &mut [u8; NAT_TEXT_MAX],
) -> Option<usize> {
    use std::io::Write;
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let r = match cmd {
        FtpCmd::Port | FtpCmd::Pasv => {
            if family != Family::V4 {
                return None;
            }
            let a = &addr.0[12..];
            write!(
                w,
                "{},{},{},{},{},{}",
                a[0],
                a[1],
                a[2],
                a[3],
                port >> 8,
                port & 0xff
            )
        }
        FtpCmd::Eprt => match family {
            Family::V4 => {
                let a = &addr.0[12..];
                write!(w, "|1|{}.{}.{}.{}|{}|", a[0], a[1], a[2], a[3], port)
            }
            Family::V6 => {
                let g: [u16; 8] = core::array::from_fn(|i| {
                    u16::from_be_bytes([addr.0[2 * i], addr.0[2 * i + 1]])
                });
                write!(
                    w,
                    "|2|{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}|{}|",
                    g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], port
                )
            }
        },
        FtpCmd::Epsv => write!(w, "|||{port}|"),
    };
    r.ok()?;
    Some(w.position() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state that has seen a line end at `seq` in both directions.
    fn primed(seq: u32) -> FtpState {
        let mut s = FtpState::default();
        update_nl_seq(&mut s, 0, seq);
        update_nl_seq(&mut s, 1, seq);
        s
    }

    fn found(r: FtpResult) -> FtpFound {
        match r {
            FtpResult::Found(f) => f,
            other => panic!("expected a match, got {other:?}"),
        }
    }

    #[test]
    fn port_command() {
        let mut s = primed(100);
        let f = found(help(
            &mut s,
            0,
            Family::V4,
            100,
            b"PORT 192,168,1,2,7,138\r\n",
        ));
        assert_eq!(f.cmd, FtpCmd::Port);
        assert_eq!(f.addr, Some(Addr::from_v4([192, 168, 1, 2])));
        assert_eq!(f.port, 7 * 256 + 138);
        assert_eq!(
            &b"PORT 192,168,1,2,7,138\r\n"[f.match_off..f.match_off + f.match_len],
            b"192,168,1,2,7,138"
        );
        // Lower case, as some clients send it.
        let f = found(help(&mut s, 0, Family::V4, 124, b"port 10,0,0,1,0,21\r\n"));
        assert_eq!(f.port, 21);
    }

    #[test]
    fn pasv_reply_with_and_without_parentheses() {
        let mut s = primed(7);
        let f = found(help(
            &mut s,
            1,
            Family::V4,
            7,
            b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n",
        ));
        assert_eq!(f.cmd, FtpCmd::Pasv);
        assert_eq!(f.addr, Some(Addr::from_v4([10, 0, 0, 2])));
        assert_eq!(f.port, 195 * 256 + 80);
        // The match is the numbers alone (what NAT rewrites).
        assert_eq!(
            &b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n"
                [f.match_off..f.match_off + f.match_len],
            b"10,0,0,2,195,80"
        );
        let mut s = primed(7);
        let f = found(help(
            &mut s,
            1,
            Family::V4,
            7,
            b"227 Entering Passive Mode 10,0,0,2,4,1\r\n",
        ));
        assert_eq!(f.port, 1025);
        // vsftpd's form, as curl sees it.
        let mut s = primed(7);
        let f = found(help(
            &mut s,
            1,
            Family::V4,
            7,
            b"227 Entering Passive Mode (127,0,0,1,117,49).\r\n",
        ));
        assert_eq!(f.port, 117 * 256 + 49);
    }

    #[test]
    fn eprt_v4_and_v6() {
        let mut s = primed(1);
        let f = found(help(
            &mut s,
            0,
            Family::V4,
            1,
            b"EPRT |1|132.235.1.2|6275|\r\n",
        ));
        assert_eq!(f.cmd, FtpCmd::Eprt);
        assert_eq!(f.addr, Some(Addr::from_v4([132, 235, 1, 2])));
        assert_eq!(f.port, 6275);
        let mut s = primed(1);
        let f = found(help(
            &mut s,
            0,
            Family::V6,
            1,
            b"EPRT |2|1080::8:800:200C:417A|5282|\r\n",
        ));
        let want: std::net::Ipv6Addr = "1080::8:800:200C:417A".parse().unwrap();
        assert_eq!(f.addr, Some(Addr::from_v6(want.octets())));
        assert_eq!(f.port, 5282);
        // The wrong family for the connection: no match, dropped as Linux.
        let mut s = primed(1);
        assert_eq!(
            help(&mut s, 0, Family::V4, 1, b"EPRT |2|::1|5282|\r\n"),
            FtpResult::Partial
        );
    }

    #[test]
    fn nat_text_as_linux_writes_it() {
        let mut b = [0u8; NAT_TEXT_MAX];
        let a = Addr::from_v4([198, 51, 100, 1]);
        let n = format_for_nat(FtpCmd::Port, Family::V4, a, 0x1234, &mut b).unwrap();
        assert_eq!(&b[..n], b"198,51,100,1,18,52");
        let n = format_for_nat(FtpCmd::Eprt, Family::V4, a, 6275, &mut b).unwrap();
        assert_eq!(&b[..n], b"|1|198.51.100.1|6275|");
        let n = format_for_nat(FtpCmd::Epsv, Family::V4, a, 65535, &mut b).unwrap();
        assert_eq!(&b[..n], b"|||65535|");
        let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let n = format_for_nat(
            FtpCmd::Eprt,
            Family::V6,
            Addr::from_v6(v6.octets()),
            65535,
            &mut b,
        )
        .unwrap();
        assert_eq!(
            &b[..n],
            b"|2|2001:0db8:0000:0000:0000:0000:0000:0001|65535|"
        );
        assert!(
            format_for_nat(
                FtpCmd::Port,
                Family::V6,
                Addr::from_v6(v6.octets()),
                1,
                &mut b
            )
            .is_none()
        );
    }

    #[test]
    fn epsv_reply() {
        let mut s = primed(5);
        let f = found(help(
            &mut s,
            1,
            Family::V6,
            5,
            b"229 Entering Extended Passive Mode (|||6446|)\r\n",
        ));
        assert_eq!(f.cmd, FtpCmd::Epsv);
        assert_eq!(f.addr, None);
        assert_eq!(f.port, 6446);
    }

    #[test]
    fn only_after_a_line_end_and_the_first_line_is_not_parsed() {
        let mut s = FtpState::default();
        // No line end seen: not parsed, but its own end is remembered.
        assert_eq!(
            help(&mut s, 0, Family::V4, 1, b"PORT 1,2,3,4,5,6\r\n"),
            FtpResult::Nothing
        );
        let next = 1 + 18;
        assert!(matches!(
            help(&mut s, 0, Family::V4, next, b"PORT 1,2,3,4,5,6\r\n"),
            FtpResult::Found(_)
        ));
        // A segment in the middle of a line: not looked at.
        assert_eq!(
            help(&mut s, 0, Family::V4, 5000, b"PORT 1,2,3,4,5,6\r\n"),
            FtpResult::Nothing
        );
        // The other direction keeps its own line ends.
        assert_eq!(
            help(&mut s, 1, Family::V4, next, b"227 (1,2,3,4,5,6)\r\n"),
            FtpResult::Nothing
        );
    }

    #[test]
    fn split_command_is_dropped_until_whole() {
        let mut s = primed(10);
        // "PO" then "RT ...": the first part is dropped (partial) and the
        // line end is not advanced, so the retransmission, whole, matches.
        assert_eq!(help(&mut s, 0, Family::V4, 10, b"PO"), FtpResult::Partial);
        assert_eq!(
            help(&mut s, 0, Family::V4, 10, b"PORT 1,2,3,4"),
            FtpResult::Partial
        );
        assert!(matches!(
            help(&mut s, 0, Family::V4, 10, b"PORT 1,2,3,4,5,6\r\n"),
            FtpResult::Found(_)
        ));
    }

    #[test]
    fn hostile_numbers_are_refused() {
        for bad in [
            &b"PORT 1,2,3,4,5\r\n"[..],
            b"PORT 1,2,3,999,5,6\r\n",
            b"PORT 1,2,3,4,0,0\r\n",
            b"PORT 1,2,3,4,5,6\n",
            b"PORT 99999999999999999999,1,1,1,1,1\r\n",
            b"PORT ,,,,,\r\n",
            b"EPRT |1|1.2.3.4|70000|\r\n",
            b"EPRT |1|1.2.3.4|0|\r\n",
            b"EPRT |1|1.2.3.999|21|\r\n",
        ] {
            let mut s = primed(0);
            assert_eq!(
                help(&mut s, 0, Family::V4, 0, bad),
                FtpResult::Partial,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut s = primed(0);
        assert_eq!(
            help(&mut s, 1, Family::V4, 0, b"229 (|||99999|)\r\n"),
            FtpResult::Partial
        );
    }

    #[test]
    fn other_lines_pass_and_advance() {
        let mut s = primed(0);
        assert_eq!(
            help(&mut s, 0, Family::V4, 0, b"USER anonymous\r\n"),
            FtpResult::Nothing
        );
        assert!(matches!(
            help(&mut s, 0, Family::V4, 16, b"PORT 1,2,3,4,5,6\r\n"),
            FtpResult::Found(_)
        ));
        // A reply keyword in the client's direction means nothing.
        let mut s = primed(0);
        assert_eq!(
            help(&mut s, 0, Family::V4, 0, b"227 (1,2,3,4,5,6)\r\n"),
            FtpResult::Nothing
        );
    }

    #[test]
    fn remembers_the_two_latest_line_ends() {
        let mut s = FtpState::default();
        update_nl_seq(&mut s, 0, 10);
        update_nl_seq(&mut s, 0, 20);
        update_nl_seq(&mut s, 0, 30);
        assert_eq!(s.num[0], 2);
        assert!(s.seq_aft_nl[0].contains(&20) && s.seq_aft_nl[0].contains(&30));
        // Wrapping sequence numbers order as TCP's.
        update_nl_seq(&mut s, 0, 5u32.wrapping_sub(10));
        assert!(!s.seq_aft_nl[0].contains(&5u32.wrapping_sub(10)));
    }
}
