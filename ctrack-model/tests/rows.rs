//! The RouterOS rows of real connections: a shard of the core tracks
//! packets built as `FlowRepr` values, and the model turns its typed
//! records into rows, JSON, `where` matches and the `print` table. (These
//! assertions lived in the core's tests before the view moved here.)

use ctrack_core::conntrack::key::HashSeed;
use ctrack_core::conntrack::tcp::TcpState;
use ctrack_core::conntrack::{
    ConnId, Decision, Dir, Duration, Instant, Settings, Shard, TableConfig, Verdict,
};
use ctrack_core::flow::{
    Addr, Family, FlowRepr, GreInfo, IcmpInfo, L4, TcpInfo, Tuple, proto, tcp_flags::*,
};
use ctrack_model::{ConnSnapshot, check_property, format_table};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [10, 0, 0, 3];

fn at(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn tuple(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, p: u8) -> Tuple {
    Tuple {
        src: Addr::from_v4(src),
        dst: Addr::from_v4(dst),
        src_port: sp,
        dst_port: dp,
        proto: p,
        family: Family::V4,
    }
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> FlowRepr {
    FlowRepr {
        tuple: tuple(src, sp, dst, dp, proto::UDP),
        ip_len: 100,
        l4: L4::Udp,
    }
}

fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8, seq: u32, ack: u32) -> FlowRepr {
    FlowRepr {
        tuple: tuple(src, sp, dst, dp, proto::TCP),
        ip_len: 60,
        l4: L4::Tcp(TcpInfo {
            seq,
            ack,
            flags,
            window: 65535,
            wscale: None,
            sack_perm: false,
            payload_len: 0,
        }),
    }
}

fn icmp(src: [u8; 4], dst: [u8; 4], t: u8, id: u16, inner: Option<Tuple>) -> FlowRepr {
    FlowRepr {
        tuple: tuple(src, 0, dst, 0, proto::ICMP),
        ip_len: 84,
        l4: L4::Icmp(IcmpInfo {
            icmp_type: t,
            code: if inner.is_some() { 1 } else { 0 },
            id,
            inner,
        }),
    }
}

fn gre(src: [u8; 4], dst: [u8; 4], version: u8, key: Option<u32>, protocol: u16) -> FlowRepr {
    FlowRepr {
        tuple: tuple(src, 0, dst, 0, proto::GRE),
        ip_len: 200,
        l4: L4::Gre(GreInfo {
            version,
            key,
            protocol,
        }),
    }
}

fn shard(max: u32) -> Shard {
    Shard::new(
        TableConfig::new(max),
        Settings::default(),
        1,
        HashSeed::from_u64(42),
    )
}

#[track_caller]
fn tracked(v: Verdict) -> (ConnId, Dir, bool) {
    match v {
        Verdict::Tracked { id, dir, created } => (id, dir, created),
        other => panic!("expected tracked, got {other:?}"),
    }
}

/// The row of connection `id` as of `t`.
fn row(s: &Shard, id: ConnId, t: Instant) -> ConnSnapshot {
    ConnSnapshot::from_raw(&s.snapshot(id, t).unwrap())
}

/// SYN, SYN-ACK, ACK: returns the connection's id.
fn handshake(s: &mut Shard, t: Instant) -> ConnId {
    let (id, _, created) = tracked(s.handle_packet(t, &tcp(A, 1000, B, 80, SYN, 100, 0)));
    assert!(created);
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::SynSent));
    assert_eq!(s.remaining(id, t), Some(Duration::from_secs(5)));
    tracked(s.handle_packet(t, &tcp(B, 80, A, 1000, SYN | ACK, 500, 101)));
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::SynReceived));
    tracked(s.handle_packet(t, &tcp(A, 1000, B, 80, ACK, 101, 501)));
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::Established));
    id
}

#[test]
fn udp_rows_show_addresses_both_ways_and_the_time_left() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1000, B, 53)));
    tracked(s.handle_packet(at(6), &udp(B, 53, A, 1000)));
    let snap = row(&s, id, at(1));
    assert_eq!(snap.src_address, "10.0.0.1:1000");
    assert_eq!(snap.reply_src_address, "10.0.0.2:53");
    assert_eq!(snap.reply_dst_address, "10.0.0.1:1000");
    assert_eq!(row(&s, id, at(7)).timeout, "2m59s");
}

#[test]
fn a_translated_rows_reply_addresses_are_its_stored_reply_tuple() {
    let mut s = shard(16);
    let first = udp(A, 1000, B, 53);
    // Source NAT to 192.0.2.1:4000: the reply comes back there.
    let mut reply = ctrack_core::conntrack::Key::of_packet(&first.tuple, &first.l4).reply();
    reply.dst = Addr::from_v4([192, 0, 2, 1]);
    reply.dport = 4000;
    let pkts = [first];
    let mut out = [Verdict::New];
    assert_eq!(s.lookup_burst(at(0), &pkts, &mut out), 1);
    let d = Decision {
        reply: Some(reply),
        ..Decision::ACCEPT
    };
    s.commit_burst(at(0), &pkts, &[d], &mut out);
    let (id, ..) = tracked(out[0]);
    let snap = row(&s, id, at(1));
    assert_eq!(snap.src_address, "10.0.0.1:1000");
    assert_eq!(snap.reply_src_address, "10.0.0.2:53");
    assert_eq!(snap.reply_dst_address, "192.0.2.1:4000");
}

#[test]
fn icmp_rows_show_id_type_and_code() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &icmp(A, B, 8, 7, None)));
    tracked(s.handle_packet(at(0), &icmp(B, A, 0, 7, None)));
    let snap = row(&s, id, at(1));
    assert_eq!(
        (snap.icmp_id, snap.icmp_type, snap.icmp_code),
        (Some(7), Some(8), Some(0))
    );
    assert_eq!(snap.src_address, "10.0.0.1");
    assert_eq!(snap.protocol, "icmp");
    assert_eq!(snap.timeout, "9s");
    assert!(!snap.assured && snap.seen_reply);
}

#[test]
fn gre_rows_show_key_version_and_protocol() {
    let mut s = shard(16);
    let (k1, ..) = tracked(s.handle_packet(at(0), &gre(A, B, 0, Some(0x0001_0002), 0x0800)));
    tracked(s.handle_packet(at(0), &gre(B, A, 0, Some(0x0001_0002), 0x0800)));
    let snap = row(&s, k1, at(0));
    assert_eq!(snap.gre_key, Some(0x0001_0002));
    assert_eq!(snap.gre_version.as_deref(), Some("0"));
    assert_eq!(snap.gre_protocol.as_deref(), Some("ip"));
    assert!(snap.assured);
    let (p, ..) = tracked(s.handle_packet(at(0), &gre(A, C, 1, Some(5), 0x880b)));
    tracked(s.handle_packet(at(0), &gre(C, A, 1, Some(9), 0x880b)));
    let snap = row(&s, p, at(0));
    assert_eq!(snap.gre_key, Some(5));
    assert_eq!(snap.gre_version.as_deref(), Some("1"));
    assert_eq!(snap.gre_protocol.as_deref(), Some("ppp"));
    // Linux's GRE timeout once both directions were seen (not generic-timeout).
    assert_eq!(snap.timeout, "3m");
}

#[test]
fn generic_and_tcp_rows() {
    let mut s = shard(16);
    let esp = |src, dst| FlowRepr {
        tuple: tuple(src, 0, dst, 0, 50),
        ip_len: 120,
        l4: L4::Other,
    };
    let (id, ..) = tracked(s.handle_packet(at(0), &esp(A, B)));
    tracked(s.handle_packet(at(1), &esp(B, A)));
    let snap = row(&s, id, at(1));
    assert_eq!(snap.protocol, "ipsec-esp");
    assert_eq!(snap.timeout, "10m");
    assert!(snap.seen_reply && !snap.assured);

    let id = handshake(&mut s, at(0));
    let snap = row(&s, id, at(2));
    assert_eq!(snap.tcp_state.as_deref(), Some("established"));
    assert_eq!(snap.timeout, "23h59m58s");
}

#[test]
fn dying_and_connection_mark_rows() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    assert!(!row(&s, id, at(0)).dying);
    assert!(row(&s, id, at(20)).dying);
    assert!(s.set_connection_mark(id, 7));
    assert_eq!(row(&s, id, at(0)).connection_mark, "7");
    let (id2, ..) = tracked(s.handle_packet(at(0), &udp(A, 3, B, 4)));
    assert_eq!(row(&s, id2, at(0)).connection_mark, "");
}

#[test]
fn fasttrack_counters_and_rates_in_rows() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    assert!(s.set_fasttrack(id, true));
    assert!(s.handle_fasttrack(Instant::from_millis(500), id, Dir::Orig, 1000));
    assert!(s.handle_fasttrack(Instant::from_millis(900), id, Dir::Reply, 400));
    let snap = row(&s, id, Instant::from_millis(1200));
    assert!(snap.fasttrack);
    assert_eq!(
        (snap.orig_fasttrack_packets, snap.orig_fasttrack_bytes),
        (1, 1000)
    );
    assert_eq!(
        (snap.repl_fasttrack_packets, snap.repl_fasttrack_bytes),
        (1, 400)
    );
    assert_eq!((snap.orig_packets, snap.orig_bytes), (2, 1100));
    assert_eq!((snap.orig_rate, snap.repl_rate), (8800, 3200));
}

fn json_keys(s: &ConnSnapshot) -> Vec<String> {
    let v = serde_json::to_value(s).unwrap();
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn snapshot_json_has_exactly_the_documented_keys() {
    let common = [
        "id",
        "worker",
        "protocol",
        "src-address",
        "dst-address",
        "reply-src-address",
        "reply-dst-address",
        "timeout",
        "orig-packets",
        "orig-bytes",
        "orig-fasttrack-packets",
        "orig-fasttrack-bytes",
        "orig-rate",
        "repl-packets",
        "repl-bytes",
        "repl-fasttrack-packets",
        "repl-fasttrack-bytes",
        "repl-rate",
        "assured",
        "confirmed",
        "seen-reply",
        "dying",
        "expected",
        "fasttrack",
        "srcnat",
        "dstnat",
        "connection-mark",
        "connection-type",
    ];
    let want = |extra: &[&str]| {
        let mut k: Vec<String> = common.iter().chain(extra).map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    let mut s = shard(16);
    let cases: [(FlowRepr, &[&str]); 5] = [
        (tcp(A, 1, B, 2, SYN, 1, 0), &["tcp-state"]),
        (udp(A, 1, B, 2), &[]),
        (
            icmp(A, B, 8, 1, None),
            &["icmp-id", "icmp-type", "icmp-code"],
        ),
        (
            gre(A, B, 0, Some(1), 0x0800),
            &["gre-key", "gre-version", "gre-protocol"],
        ),
        (
            FlowRepr {
                tuple: tuple(A, 0, B, 0, 89),
                ip_len: 60,
                l4: L4::Other,
            },
            &[],
        ),
    ];
    for (p, extra) in cases {
        let (id, ..) = tracked(s.handle_packet(at(0), &p));
        let snap = row(&s, id, at(0));
        assert_eq!(json_keys(&snap), want(extra), "{}", snap.protocol);
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["confirmed"], true);
        assert!(v["orig-packets"].is_u64() && v["orig-rate"].is_u64());
        assert_eq!(v["worker"], 1);
        assert!(v["id"].as_str().unwrap().starts_with('*'));
        assert_eq!(v["connection-mark"], "");
        assert_eq!(v["connection-type"], "");
        for prop in ConnSnapshot::PROPERTIES {
            snap.get(prop).unwrap();
        }
    }
    let v6 = FlowRepr {
        tuple: Tuple {
            src: Addr::from_v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            dst: Addr::from_v6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            src_port: 5555,
            dst_port: 443,
            proto: proto::UDP,
            family: Family::V6,
        },
        ip_len: 1280,
        l4: L4::Udp,
    };
    let (id, ..) = tracked(s.handle_packet(at(0), &v6));
    let snap = row(&s, id, at(0));
    assert_eq!(snap.src_address, "[2001:db8::1]:5555");
    assert_eq!(snap.reply_src_address, "[2001:db8::2]:443");
}

#[test]
fn listing_in_chunks_filters_and_print() {
    let mut s = shard(64);
    for p in 0..10 {
        tracked(s.handle_packet(at(0), &udp(A, p, B, 53)));
    }
    tracked(s.handle_packet(at(0), &tcp(A, 1000, B, 80, SYN, 1, 0)));
    let mut rows: Vec<ConnSnapshot> = Vec::new();
    let mut cursor = Some(0);
    let mut calls = 0;
    let mut raw = Vec::new();
    while let Some(c) = cursor {
        cursor = s.raw_chunk(at(1), c, 3, &mut raw);
        calls += 1;
    }
    rows.extend(raw.iter().map(ConnSnapshot::from_raw));
    assert_eq!(rows.len(), 11);
    assert!(calls >= 4);
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 11);
    let tcp_row = rows.iter().find(|r| r.protocol == "tcp").unwrap();
    assert!(tcp_row.matches("tcp-state", "syn-sent").unwrap());
    assert!(tcp_row.matches("dst-address", "10.0.0.2").unwrap());
    assert!(tcp_row.matches("dst-address", "10.0.0.2:80").unwrap());
    assert!(!tcp_row.matches("dst-address", "10.0.0.2:81").unwrap());
    assert!(tcp_row.matches("assured", "no").unwrap());
    assert!(tcp_row.matches("confirmed", "yes").unwrap());
    assert!(tcp_row.matches("timeout", "4s").unwrap());
    let udp_row = rows.iter().find(|r| r.protocol == "udp").unwrap();
    assert!(!udp_row.matches("tcp-state", "syn-sent").unwrap());
    let err = udp_row.matches("tcp-sate", "x").unwrap_err();
    assert!(err.to_string().contains("tcp-sate"));
    let mut all = Vec::new();
    s.for_each_snapshot(at(1), |r| all.push(ConnSnapshot::from_raw(&r)));
    assert_eq!(all.len(), 11);
    let text = format_table(&rows);
    assert!(text.contains("PROTOCOL") && text.contains("SRC-ADDRESS") && text.contains("syn-sent"));
    // The legend, the `Columns:` line, the heading, one line per row.
    assert_eq!(text.lines().count(), 14);
}

#[test]
fn every_listed_property_is_known_to_get() {
    let mut s = shard(4);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    let snap = row(&s, id, at(0));
    for p in ConnSnapshot::PROPERTIES {
        assert!(snap.get(p).is_ok(), "{p}");
        check_property(p).unwrap();
    }
    assert!(check_property("bogus").is_err());
    assert!(snap.get("bogus").is_err());
}

#[test]
fn rows_round_trip_through_json() {
    let mut s = shard(16);
    let (u, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    let (i, ..) = tracked(s.handle_packet(at(0), &icmp(A, B, 8, 7, None)));
    let (g, ..) = tracked(s.handle_packet(at(0), &gre(A, C, 1, Some(5), 0x880b)));
    let t = handshake(&mut s, at(0));
    for id in [u, i, g, t] {
        let r = row(&s, id, at(1));
        let text = serde_json::to_string(&r).unwrap();
        let back: ConnSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
