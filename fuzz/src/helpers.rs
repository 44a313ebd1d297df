//! The connection helpers' parsers and the table's helper path, on
//! arbitrary bytes: no panic, and the expectations stay within their bounds.
//!
//! - [`ftp`]: the input is split into segments at `\n` boundaries and at
//!   the first byte's offsets; each is fed to the FTP parser in both
//!   directions and IPv4/IPv6, and to a shard's FTP control connection.
//! - [`pptp`]: the input as control messages (also through the NAT
//!   rewrite of the call ids), alternating directions, after
//!   a confirmed session, through the parser and a shard.
//! - [`tftp`]: the request test and a shard's TFTP connection.

use dataplane::conntrack::helping::{EXPECT_MAX, HelpVerdict};
use dataplane::conntrack::key::HashSeed;
use dataplane::conntrack::{Dir, Instant, Settings, Shard, TableConfig, Verdict};
use dataplane::flow::{Addr, Family, FlowRepr, L4, TcpInfo, Tuple, proto, tcp_flags};
use dataplane::helper::{
    ServicePorts, ftp as hftp, pptp as hpptp, pptp_nat as hpptp_nat, tftp as htftp,
};

fn shard() -> Shard {
    let mut s = Shard::new(
        TableConfig::new(256),
        Settings::default(),
        0,
        HashSeed::from_u64(3),
    );
    s.set_service_ports(ServicePorts::default());
    s
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    src: u8,
    sport: u16,
    dst: u8,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u32,
) -> FlowRepr {
    FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4([10, 0, 0, src]),
            dst: Addr::from_v4([10, 0, 0, dst]),
            src_port: sport,
            dst_port: dport,
            proto: proto::TCP,
            family: Family::V4,
        },
        ip_len: 40 + len,
        l4: L4::Tcp(TcpInfo {
            seq,
            ack,
            flags,
            window: 65535,
            wscale: None,
            sack_perm: false,
            payload_len: len,
        }),
    }
}

/// A shard with an established control connection 10.0.0.1:40000 ->
/// 10.0.0.2:`port`; client's next seq 101, server's 5001.
fn control(port: u16) -> Shard {
    let mut s = shard();
    let now = Instant::from_secs(1);
    s.handle_packet(now, &tcp(1, 40000, 2, port, tcp_flags::SYN, 100, 0, 0));
    s.handle_packet(
        now,
        &tcp(
            2,
            port,
            1,
            40000,
            tcp_flags::SYN | tcp_flags::ACK,
            5000,
            101,
            0,
        ),
    );
    s.handle_packet(now, &tcp(1, 40000, 2, port, tcp_flags::ACK, 101, 5001, 0));
    s
}

/// Feeds `segs` alternately (by `dirs` bits) through the shard's helper.
fn drive(s: &mut Shard, port: u16, segs: &[&[u8]], dirs: u8) {
    let mut seq = [101u32, 5001u32];
    let now = Instant::from_secs(2);
    for (n, seg) in segs.iter().enumerate() {
        let d = usize::from((dirs >> (n % 8)) & 1);
        let p = if d == 0 {
            tcp(
                1,
                40000,
                2,
                port,
                tcp_flags::ACK,
                seq[0],
                seq[1],
                seg.len() as u32,
            )
        } else {
            tcp(
                2,
                port,
                1,
                40000,
                tcp_flags::ACK,
                seq[1],
                seq[0],
                seg.len() as u32,
            )
        };
        if let Verdict::Tracked { id, dir, .. } = s.handle_packet(now, &p) {
            let r = s.help(now, id, dir, &p, seg);
            if r == HelpVerdict::Accept {
                seq[d] = seq[d].wrapping_add(seg.len() as u32);
            }
            let _ = (dir == Dir::Orig, r);
        }
        assert!(s.stats().expect.live as usize <= EXPECT_MAX);
        // FTP: one expectation per master at most.
        assert!(s.stats().expect.live <= 2);
    }
}

fn segments(data: &[u8]) -> Vec<&[u8]> {
    data.split_inclusive(|&b| b == b'\n').collect()
}

pub fn ftp(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let segs = segments(rest);
    for fam in [Family::V4, Family::V6] {
        for d in 0..2 {
            let mut st = hftp::FtpState::default();
            let mut seq = 7u32;
            for seg in &segs {
                match hftp::help(&mut st, d, fam, seq, seg) {
                    hftp::FtpResult::Found(f) => {
                        assert!(f.port != 0);
                        assert!(f.match_off + f.match_len <= seg.len());
                        nat_rewrite(&f, fam, seg, seq, ctl);
                    }
                    hftp::FtpResult::Partial | hftp::FtpResult::Nothing => {}
                }
                seq = seq.wrapping_add(seg.len() as u32);
            }
        }
    }
    let mut s = control(21);
    drive(&mut s, 21, &segs, ctl);
    s.check_invariants().unwrap();
}

/// FTP through NAT on a found announcement: the text as Linux writes it,
/// replaced in a frame carrying `seg`, then the sequence adjustment that
/// change records, applied to the new frame: no panic, the checksums as a
/// full recomputation gives them, the text where it was announced.
fn nat_rewrite(f: &hftp::FtpFound, fam: Family, seg: &[u8], seq: u32, ctl: u8) {
    use dataplane::conntrack::seqadj::SeqAdj;
    use dataplane::packet::checksum::fill_ip;
    use dataplane::packet::mangle::{replace_payload, rewrite_seq};
    let addr = match fam {
        Family::V4 => Addr::from_v4([198, 51, 100, ctl]),
        Family::V6 => Addr([ctl; 16]),
    };
    let mut text = [0u8; hftp::NAT_TEXT_MAX];
    let Some(n) = hftp::format_for_nat(f.cmd, fam, addr, f.port, &mut text) else {
        return;
    };
    // An IPv4 frame with `seg` as its TCP payload (ACK set).
    let mut frame = vec![0u8; 14 + 40 + seg.len()];
    frame[12] = 0x08;
    let total = (40 + seg.len()) as u16;
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    frame[22] = 64;
    frame[23] = 6;
    frame[38..42].copy_from_slice(&seq.to_be_bytes());
    frame[46] = 0x50;
    frame[47] = 0x10;
    frame[54..].copy_from_slice(seg);
    fill_ip(&mut frame[14..]);
    let mut out = vec![0u8; frame.len() + hftp::NAT_TEXT_MAX];
    let len = replace_payload(&frame, f.match_off, f.match_len, &text[..n], &mut out)
        .expect("a whole segment");
    let out = &mut out[..len];
    assert_eq!(&out[54 + f.match_off..54 + f.match_off + n], &text[..n]);
    let mut adj = SeqAdj::default();
    adj.set(usize::from(ctl & 1), seq, n as i32 - f.match_len as i32);
    rewrite_seq(out, adj.map(usize::from(ctl >> 1 & 1))).expect("a whole segment");
    let mut full = out.to_vec();
    fill_ip(&mut full[14..]);
    assert_eq!(&full[..], &out[..], "incremental checksum differs");
}

pub fn pptp(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    // Messages by their own length field, as on the wire (bounded).
    let mut msgs: Vec<&[u8]> = Vec::new();
    let mut r = rest;
    while r.len() >= 2 && msgs.len() < 64 {
        let n = usize::from(u16::from_be_bytes([r[0], r[1]])).clamp(2, r.len());
        msgs.push(&r[..n]);
        r = &r[n..];
    }
    let mut st = hpptp::PptpState::default();
    for (i, m) in msgs.iter().enumerate() {
        let dir = usize::from((ctl >> (i % 8)) & 1);
        let a = hpptp::help(&mut st, dir, m);
        // Through source NAT too: the state switch and the rewrite, which
        // changes a call id field at most.
        hpptp_nat::after_help(&mut st, dir, m, a, 0x9c41);
        let mut copy = m.to_vec();
        if let Some((off, old, new)) = hpptp_nat::rewrite(&st, dir, &mut copy) {
            assert_eq!(copy[off..off + 2], new.to_be_bytes());
            assert_eq!(m[off..off + 2], old.to_be_bytes());
            assert_eq!(copy.len(), m.len());
        }
    }
    let mut s = control(1723);
    let start = hpptp::message(hpptp::START_SESSION_REQUEST, &[1, 0]);
    let reply = hpptp::message(hpptp::START_SESSION_REPLY, &[1, 0, 1]);
    let mut all: Vec<&[u8]> = vec![&start, &reply];
    all.extend(msgs);
    drive(&mut s, 1723, &all, 0b10 | (ctl & !3));
    s.check_invariants().unwrap();
}

pub fn tftp(data: &[u8]) {
    let _ = htftp::is_request(data);
    let mut s = shard();
    let now = Instant::from_secs(1);
    let p = FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4([10, 0, 0, 1]),
            dst: Addr::from_v4([10, 0, 0, 2]),
            src_port: 3000,
            dst_port: 69,
            proto: proto::UDP,
            family: Family::V4,
        },
        ip_len: 28 + data.len() as u32,
        l4: L4::Udp,
    };
    if let Verdict::Tracked { id, dir, .. } = s.handle_packet(now, &p) {
        assert_eq!(s.help(now, id, dir, &p, data), HelpVerdict::Accept);
    }
    assert!(s.stats().expect.live <= 1);
}

/// Seeds: real command variants.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut v = vec![];
    let ftp = |s: &str| {
        let mut d = vec![0b10u8];
        d.extend_from_slice(s.as_bytes());
        d
    };
    v.push((
        "helper_ftp",
        "pasv",
        ftp("220 hi\r\n227 Entering Passive Mode (10,0,0,2,19,137).\r\n"),
    ));
    v.push((
        "helper_ftp",
        "epsv",
        ftp("220 hi\r\n229 Entering Extended Passive Mode (|||6446|)\r\n"),
    ));
    let mut port = vec![0u8];
    port.extend_from_slice(b"USER a\r\nPORT 10,0,0,1,7,138\r\nEPRT |1|10.0.0.1|6275|\r\n");
    v.push(("helper_ftp", "port", port));
    let mut p = vec![0b0110u8];
    p.extend(hpptp::message(hpptp::OUT_CALL_REQUEST, &[0x12, 0x34]));
    p.extend(hpptp::message(
        hpptp::OUT_CALL_REPLY,
        &[0xab, 0xcd, 0x12, 0x34, 1],
    ));
    p.extend(hpptp::message(
        hpptp::CALL_DISCONNECT_NOTIFY,
        &[0xab, 0xcd, 1],
    ));
    v.push(("helper_pptp", "out_call", p));
    v.push(("helper_tftp", "rrq", b"\x00\x01file\x00octet\x00".to_vec()));
    v
}
