//! Tests of the table, the per-protocol keying, timers, management calls and
//! the typed records they copy out. Packets are built as `FlowRepr` values;
//! time is an argument. (The RouterOS rows made of those records are tested
//! in `ctrack-model`.)

use proptest::prelude::*;

use super::key::HashSeed;
use super::tcp::{TcpInvalid, TcpState};
use super::*;
use crate::flow::{
    Addr, Family, FlowRepr, GreInfo, IcmpInfo, L4, TcpInfo, Tuple, proto, tcp_flags::*,
};

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
    table::Shard::new(
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

fn key_of(p: &FlowRepr) -> Key {
    Key::of_packet(&p.tuple, &p.l4)
}

#[test]
fn one_entry_found_by_both_tuples_and_counters_add_up() {
    let mut s = shard(16);
    let out = udp(A, 1000, B, 53);
    let back = udp(B, 53, A, 1000);
    let (id, dir, created) = tracked(s.handle_packet(at(0), &out));
    assert_eq!((dir, created), (Dir::Orig, true));
    for _ in 0..2 {
        assert_eq!(
            tracked(s.handle_packet(at(1), &out)),
            (id, Dir::Orig, false)
        );
    }
    for _ in 0..2 {
        assert_eq!(
            tracked(s.handle_packet(at(1), &back)),
            (id, Dir::Reply, false)
        );
    }
    assert_eq!(s.total_entries(), 1);
    assert_eq!(s.lookup(&key_of(&out)), Some((id, Dir::Orig)));
    assert_eq!(s.lookup(&key_of(&back)), Some((id, Dir::Reply)));
    let e = s.get(id).unwrap();
    assert_eq!((e.packets(Dir::Orig), e.bytes(Dir::Orig)), (3, 300));
    assert_eq!((e.packets(Dir::Reply), e.bytes(Dir::Reply)), (2, 200));
    assert_eq!(s.stats().insert, 1);
    assert_eq!(s.stats().found, 4);
    let raw = s.snapshot(id, at(1)).unwrap();
    assert_eq!(raw.id(), id);
    assert_eq!(*raw.entry().key(), key_of(&out));
    assert_eq!(raw.entry().reply_key(), key_of(&back));
    s.check_invariants().unwrap();
}

#[test]
fn udp_one_way_then_stream() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1000, B, 53)));
    assert_eq!(s.remaining(id, at(0)), Some(Duration::from_secs(10)));
    assert!(!s.get(id).unwrap().assured());
    tracked(s.handle_packet(at(5), &udp(A, 1000, B, 53)));
    assert_eq!(s.remaining(id, at(5)), Some(Duration::from_secs(10)));
    assert!(!s.get(id).unwrap().seen_reply());
    tracked(s.handle_packet(at(6), &udp(B, 53, A, 1000)));
    let e = s.get(id).unwrap();
    assert!(e.assured() && e.seen_reply());
    assert_eq!(s.remaining(id, at(6)), Some(Duration::from_secs(180)));
    assert_eq!(
        s.snapshot(id, at(7)).unwrap().remaining(),
        Duration::from_secs(179)
    );

    // A one-way flow times out after udp-timeout.
    let (one, ..) = tracked(s.handle_packet(at(10), &udp(A, 2000, B, 53)));
    assert_eq!(s.poll_expired(at(19), 100), 0);
    assert!(s.get(one).is_some());
    assert_eq!(s.poll_expired(at(21), 100), 1);
    assert!(s.get(one).is_none());
    assert!(s.get(id).is_some());
    assert_eq!(s.stats().expired, 1);
    s.check_invariants().unwrap();
}

#[test]
fn icmp_echo_by_id() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &icmp(A, B, 8, 7, None)));
    assert_eq!(
        tracked(s.handle_packet(at(0), &icmp(B, A, 0, 7, None))),
        (id, Dir::Reply, false)
    );
    // A reply nobody asked for.
    assert_eq!(
        s.handle_packet(at(0), &icmp(B, A, 0, 8, None)),
        Verdict::Invalid(InvalidReason::Other(OtherInvalid::IcmpUnsolicitedReply))
    );
    // Another id is another connection.
    let (id2, _, created) = tracked(s.handle_packet(at(0), &icmp(A, B, 8, 8, None)));
    assert!(created && id2 != id);
    // Timestamp request/reply pair (13 <-> 14).
    let (ts, ..) = tracked(s.handle_packet(at(0), &icmp(A, B, 13, 1, None)));
    assert_eq!(
        tracked(s.handle_packet(at(0), &icmp(B, A, 14, 1, None))).0,
        ts
    );
    let raw = s.snapshot(id, at(1)).unwrap();
    let k = raw.entry().key();
    // The id in the source port, type and code in the destination port.
    assert_eq!((k.proto, k.sport, k.dport), (proto::ICMP, 7, 8 << 8));
    assert_eq!(k.src, Addr::from_v4(A));
    assert_eq!(raw.remaining(), Duration::from_secs(9));
    assert!(!raw.entry().assured() && raw.entry().seen_reply());
    assert_eq!(
        s.stats().invalid[InvalidReason::Other(OtherInvalid::IcmpUnsolicitedReply).index()],
        1
    );
    s.check_invariants().unwrap();
}

#[test]
fn icmp_errors_are_related() {
    let mut s = shard(16);
    let syn = tcp(A, 1000, B, 80, SYN, 100, 0);
    let (tid, ..) = tracked(s.handle_packet(at(0), &syn));
    let (uid, ..) = tracked(s.handle_packet(at(0), &udp(A, 5000, B, 53)));
    // A router on the way reports that A's packet could not be delivered:
    // the error travels towards A, i.e. in the reply direction.
    let err = icmp(C, A, 3, 0, Some(syn.tuple));
    assert_eq!(
        s.handle_packet(at(1), &err),
        Verdict::Related {
            id: tid,
            dir: Dir::Reply
        }
    );
    // As in Linux, the error is counted nowhere on the connection, and
    // does not refresh its timeout.
    let e = s.get(tid).unwrap();
    assert_eq!((e.packets(Dir::Reply), e.bytes(Dir::Reply)), (0, 0));
    assert_eq!(
        (e.packets(Dir::Orig), e.bytes(Dir::Orig)),
        (1, u64::from(syn.ip_len))
    );
    assert_eq!(e.last_seen(), at(0));
    assert_eq!(s.stats().packets, [2, 0]);
    // An error about B's answer travels towards B: the original direction.
    let err = icmp(C, B, 11, 0, Some(udp(B, 53, A, 5000).tuple));
    assert_eq!(
        s.handle_packet(at(1), &err),
        Verdict::Related {
            id: uid,
            dir: Dir::Orig
        }
    );
    // An error quoting no known connection.
    let err = icmp(C, A, 3, 0, Some(udp(A, 1, B, 2).tuple));
    assert_eq!(
        s.handle_packet(at(1), &err),
        Verdict::Invalid(InvalidReason::Other(OtherInvalid::IcmpErrorNoConnection))
    );
    // Errors never create connections.
    assert_eq!(s.total_entries(), 2);
    assert_eq!(s.stats().related, 2);
    // ICMPv6 neighbour discovery is left alone.
    let mut ns = icmp(A, B, 135, 0, None);
    ns.tuple.proto = proto::ICMPV6;
    assert_eq!(
        s.handle_packet(at(1), &ns),
        Verdict::Untracked(UntrackedReason::Icmpv6NdMld)
    );
    s.check_invariants().unwrap();
}

#[test]
fn gre_v0_by_key_and_v1_by_addresses() {
    let mut s = shard(16);
    let (k1, ..) = tracked(s.handle_packet(at(0), &gre(A, B, 0, Some(0x0001_0002), 0x0800)));
    assert_eq!(
        tracked(s.handle_packet(at(0), &gre(B, A, 0, Some(0x0001_0002), 0x0800))),
        (k1, Dir::Reply, false)
    );
    let (k2, _, created) = tracked(s.handle_packet(at(0), &gre(A, B, 0, Some(7), 0x0800)));
    assert!(created && k2 != k1);
    let raw = s.snapshot(k1, at(0)).unwrap();
    assert_eq!(raw.entry().gre_key(), Some(0x0001_0002));
    assert_eq!(raw.entry().key().ver, 1, "version 0, stored plus one");
    assert!(matches!(
        raw.entry().proto_state(),
        ProtoState::Gre {
            protocol: 0x0800,
            ..
        }
    ));
    assert!(raw.entry().assured());
    // Linux's GRE timeouts, not generic-timeout: 3 min once both directions
    // were seen, 30 s before.
    assert_eq!(raw.remaining(), Duration::from_secs(180));
    assert_eq!(
        s.snapshot(k2, at(0)).unwrap().remaining(),
        Duration::from_secs(30)
    );
    // PPTP: each direction carries the peer's call id; keyed by addresses.
    let (p, ..) = tracked(s.handle_packet(at(0), &gre(A, C, 1, Some(5), 0x880b)));
    assert_eq!(
        tracked(s.handle_packet(at(0), &gre(C, A, 1, Some(9), 0x880b))),
        (p, Dir::Reply, false)
    );
    let raw = s.snapshot(p, at(0)).unwrap();
    assert_eq!(raw.entry().gre_key(), Some(5));
    assert_eq!(raw.entry().key().ver, 2, "version 1, stored plus one");
    assert!(matches!(
        raw.entry().proto_state(),
        ProtoState::Gre {
            protocol: 0x880b,
            ..
        }
    ));
    assert_eq!(raw.remaining(), Duration::from_secs(180));
    // An unreplied GRE connection is gone after 30 s.
    s.poll_expired(at(31), usize::MAX);
    assert!(s.get(k2).is_none() && s.get(p).is_some());
    assert_eq!(
        s.handle_packet(at(0), &gre(A, C, 2, None, 0)),
        Verdict::Invalid(InvalidReason::Other(OtherInvalid::GreBadVersion))
    );
    s.check_invariants().unwrap();
}

#[test]
fn generic_protocol_by_addresses() {
    let mut s = shard(16);
    let esp = |src, dst| FlowRepr {
        tuple: tuple(src, 0, dst, 0, 50),
        ip_len: 120,
        l4: L4::Other,
    };
    let (id, ..) = tracked(s.handle_packet(at(0), &esp(A, B)));
    assert_eq!(
        tracked(s.handle_packet(at(1), &esp(B, A))),
        (id, Dir::Reply, false)
    );
    let raw = s.snapshot(id, at(1)).unwrap();
    assert_eq!(raw.entry().protocol(), 50);
    assert_eq!(raw.remaining(), Duration::from_secs(600));
    assert!(raw.entry().seen_reply() && !raw.entry().assured());
    // L4 that does not fit the protocol number is refused.
    let bad = FlowRepr {
        tuple: tuple(A, 1, B, 2, proto::TCP),
        ip_len: 40,
        l4: L4::Udp,
    };
    assert_eq!(
        s.handle_packet(at(1), &bad),
        Verdict::Invalid(InvalidReason::Other(OtherInvalid::L4Mismatch))
    );
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
fn tcp_handshake_establishes_and_assures() {
    let mut s = shard(16);
    let id = handshake(&mut s, at(0));
    let e = s.get(id).unwrap();
    assert!(e.assured() && e.seen_reply());
    assert_eq!(s.remaining(id, at(0)), Some(Duration::from_secs(86_400)));
    let raw = s.snapshot(id, at(2)).unwrap();
    assert_eq!(raw.entry().tcp_state(), Some(TcpState::Established));
    assert_eq!(raw.remaining(), Duration::from_secs(86_398));
    // An out-of-window RST changes nothing and is invalid.
    let v = s.handle_packet(at(1), &tcp(B, 80, A, 1000, RST, 900_000_000, 0));
    assert!(
        matches!(v, Verdict::Invalid(InvalidReason::Tcp(_))),
        "{v:?}"
    );
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::Established));
    // Closing: the timer follows the shorter timeout at once.
    tracked(s.handle_packet(at(3), &tcp(A, 1000, B, 80, FIN | ACK, 101, 501)));
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::FinWait));
    assert_eq!(s.remaining(id, at(3)), Some(Duration::from_secs(10)));
    assert_eq!(s.poll_expired(at(14), 10), 1);
    assert!(s.get(id).is_none());
    s.check_invariants().unwrap();
}

#[test]
fn rst_answer_to_syn_removes_at_once() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &tcp(A, 1000, B, 81, SYN, 100, 0)));
    let v = s.handle_packet(at(0), &tcp(B, 81, A, 1000, RST | ACK, 0, 101));
    assert_eq!(tracked(v), (id, Dir::Reply, false));
    assert_eq!(s.total_entries(), 0);
    assert!(s.get(id).is_none());
    assert_eq!(s.stats().closed, 1);
    s.check_invariants().unwrap();
}

#[test]
fn syn_on_time_wait_reopens() {
    let mut s = shard(16);
    let id = handshake(&mut s, at(0));
    tracked(s.handle_packet(at(1), &tcp(A, 1000, B, 80, FIN | ACK, 101, 501)));
    tracked(s.handle_packet(at(1), &tcp(B, 80, A, 1000, FIN | ACK, 501, 102)));
    tracked(s.handle_packet(at(1), &tcp(A, 1000, B, 80, ACK, 102, 502)));
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::TimeWait));
    let (id2, dir, created) =
        tracked(s.handle_packet(at(2), &tcp(A, 1000, B, 80, SYN, 200_000, 0)));
    assert!(created && id2 != id);
    assert_eq!(dir, Dir::Orig);
    assert!(s.get(id).is_none());
    let e = s.get(id2).unwrap();
    assert_eq!(e.tcp_state(), Some(TcpState::SynSent));
    assert_eq!(e.packets(Dir::Orig), 1);
    assert_eq!(s.total_entries(), 1);
    s.check_invariants().unwrap();
}

#[test]
fn loose_tracking_off_leaves_midstream_untracked() {
    let mut s = shard(16);
    let mid = tcp(A, 1000, B, 80, ACK, 5000, 7000);
    let (id, ..) = tracked(s.handle_packet(at(0), &mid));
    assert_eq!(s.get(id).unwrap().tcp_state(), Some(TcpState::Established));
    let set = Settings {
        loose_tcp_tracking: false,
        ..Settings::default()
    };
    s.apply_settings(&set);
    let v = s.handle_packet(at(0), &tcp(A, 1001, B, 80, ACK, 5000, 7000));
    assert_eq!(v, Verdict::Untracked(UntrackedReason::TcpNotSynLooseOff));
    let v = s.handle_packet(at(0), &tcp(A, 1001, B, 80, SYN | FIN, 5000, 0));
    assert_eq!(
        v,
        Verdict::Invalid(InvalidReason::Tcp(TcpInvalid::BadFlags))
    );
}

#[test]
fn enabled_no_tracks_nothing() {
    let mut s = shard(16);
    let set = Settings {
        enabled: Enabled::No,
        ..Settings::default()
    };
    s.apply_settings(&set);
    assert_eq!(
        s.handle_packet(at(0), &udp(A, 1, B, 2)),
        Verdict::Untracked(UntrackedReason::TrackingDisabled)
    );
    assert_eq!(s.total_entries(), 0);
    assert_eq!(
        s.stats().untracked[UntrackedReason::TrackingDisabled.index()],
        1
    );
}

#[test]
fn table_full_early_drop_and_drop() {
    let mut s = shard(4);
    let ids: Vec<ConnId> = (0..4)
        .map(|p| tracked(s.handle_packet(at(0), &udp(A, 1000 + p, B, 53))).0)
        .collect();
    // Full of non-assured entries: a new one evicts one of them.
    let (_, _, created) = tracked(s.handle_packet(at(1), &udp(A, 2000, B, 53)));
    assert!(created);
    assert_eq!(s.total_entries(), 4);
    assert_eq!(s.stats().early_drop, 1);
    assert_eq!(ids.iter().filter(|id| s.get(**id).is_none()).count(), 1);
    // Make every entry assured (a reply each).
    let mut live: Vec<u16> = (1000..1004)
        .filter(|p| s.lookup(&key_of(&udp(A, *p, B, 53))).is_some())
        .collect();
    live.push(2000);
    for p in &live {
        tracked(s.handle_packet(at(2), &udp(B, 53, A, *p)));
    }
    assert_eq!(
        s.handle_packet(at(3), &udp(A, 3000, B, 53)),
        Verdict::Dropped(DropReason::TableFull)
    );
    assert_eq!(s.stats().drop, 1);
    assert_eq!(s.stats().dropped[DropReason::TableFull.index()], 1);
    assert_eq!(s.total_entries(), 4);
    // Assured entries were never evicted.
    for p in &live {
        assert!(s.lookup(&key_of(&udp(A, *p, B, 53))).is_some());
    }
    // An entry whose timeout passed makes room even if assured.
    assert!(tracked(s.handle_packet(at(200), &udp(A, 3000, B, 53))).2);
    s.check_invariants().unwrap();
}

#[test]
fn expiry_is_bounded_by_budget() {
    let mut s = shard(128);
    for p in 0..50 {
        tracked(s.handle_packet(at(0), &udp(A, p, B, 53)));
    }
    assert!(s.next_deadline().unwrap() <= at(11));
    assert_eq!(s.poll_expired(at(5), 10), 0);
    assert_eq!(s.poll_expired(at(11), 10), 10);
    assert_eq!(s.total_entries(), 40);
    let mut total = 10;
    for _ in 0..10 {
        total += s.poll_expired(at(11), 10);
    }
    assert_eq!(total, 50);
    assert_eq!(s.total_entries(), 0);
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.stats().expired, 50);
    s.check_invariants().unwrap();
}

#[test]
fn long_gaps_and_parked_timers() {
    let mut s = shard(16);
    let id = handshake(&mut s, at(0));
    // Established (1d) is parked past the wheel's horizon and re-slotted.
    let mut t = 0;
    while t < 86_000 {
        t += 500;
        assert_eq!(s.poll_expired(at(t), 100), 0, "at {t}");
    }
    assert!(s.get(id).is_some());
    assert_eq!(s.poll_expired(at(86_401), 100), 1);
    // A replay can jump far ahead in one step.
    tracked(s.handle_packet(at(100_000), &udp(A, 1, B, 2)));
    assert_eq!(s.poll_expired(at(10_000_000), 100), 1);
    s.check_invariants().unwrap();
}

/// `tcp` with a payload.
fn tcp_data(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    seq: u32,
    ack: u32,
    len: u32,
) -> FlowRepr {
    let mut p = tcp(src, sp, dst, dp, ACK | PSH, seq, ack);
    if let L4::Tcp(info) = &mut p.l4 {
        info.payload_len = len;
    }
    p.ip_len += len;
    p
}

#[test]
fn unacked_data_and_repeats_cap_the_tcp_timeout() {
    let mut s = shard(16);
    s.apply_settings(&Settings {
        tcp_unacked_timeout: Duration::from_secs(120),
        tcp_max_retrans_timeout: Duration::from_secs(30),
        ..Settings::default()
    });
    let id = handshake(&mut s, at(0));
    assert_eq!(s.remaining(id, at(0)), Some(Duration::from_secs(86_400)));
    // Data not acknowledged yet: tcp-unacked-timeout.
    tracked(s.handle_packet(at(1), &tcp_data(A, 1000, B, 80, 101, 501, 100)));
    assert_eq!(s.remaining(id, at(1)), Some(Duration::from_secs(120)));
    // The same segment three more times: tcp-max-retrans-timeout.
    for t in 2..5 {
        tracked(s.handle_packet(at(t), &tcp_data(A, 1000, B, 80, 101, 501, 100)));
    }
    assert_eq!(s.remaining(id, at(4)), Some(Duration::from_secs(30)));
    // Acknowledged: the state's own timeout again, and the entry outlives
    // the shorter deadlines it had.
    tracked(s.handle_packet(at(5), &tcp(B, 80, A, 1000, ACK, 501, 201)));
    assert_eq!(s.remaining(id, at(5)), Some(Duration::from_secs(86_400)));
    assert_eq!(s.poll_expired(at(200), 100), 0);
    assert!(s.get(id).is_some());
    // A cap never lengthens a shorter state timeout.
    tracked(s.handle_packet(at(201), &tcp(A, 1000, B, 80, FIN | ACK, 201, 501)));
    assert_eq!(s.remaining(id, at(201)), Some(Duration::from_secs(10)));
    s.check_invariants().unwrap();
}

#[test]
fn liberal_tracking_is_applied_live() {
    let mut s = shard(16);
    let id = handshake(&mut s, at(0));
    // Far beyond the window: invalid, then passed once liberal is on.
    let far = tcp_data(A, 1000, B, 80, 101 + 10_000_000, 501, 10);
    assert!(matches!(
        s.handle_packet(at(1), &far),
        Verdict::Invalid(InvalidReason::Tcp(_))
    ));
    s.apply_settings(&Settings {
        liberal_tcp_tracking: true,
        ..Settings::default()
    });
    assert_eq!(tracked(s.handle_packet(at(2), &far)).0, id);
    s.check_invariants().unwrap();
}

#[test]
fn settings_change_applies_to_live_entries() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    let mut set = Settings {
        udp_timeout: Duration::from_secs(3600),
        ..Settings::default()
    };
    s.apply_settings(&set);
    assert_eq!(s.poll_expired(at(20), 100), 0);
    assert_eq!(s.remaining(id, at(20)), Some(Duration::from_secs(3580)));
    // Shorter: the entry's last packet was 20 s ago, so it is overdue and
    // goes within a second.
    set.udp_timeout = Duration::from_secs(5);
    s.apply_settings(&set);
    assert_eq!(s.remaining(id, at(20)), Some(Duration::ZERO));
    assert!(s.snapshot(id, at(20)).unwrap().dying());
    let mut gone = 0;
    for ms in 0..10 {
        gone += s.poll_expired(Instant::from_millis(20_000 + ms * 100), 100);
    }
    assert_eq!(gone, 1);
    // Shorter but not yet due: expires at last packet + new timeout.
    let (id, ..) = tracked(s.handle_packet(at(100), &udp(A, 1, B, 2)));
    set.udp_timeout = Duration::from_secs(3600);
    s.apply_settings(&set);
    assert_eq!(s.poll_expired(at(101), 100), 0);
    set.udp_timeout = Duration::from_secs(30);
    s.apply_settings(&set);
    assert_eq!(s.poll_expired(at(102), 100), 0);
    assert_eq!(s.poll_expired(at(129), 100), 0);
    assert!(s.get(id).is_some());
    assert_eq!(s.poll_expired(at(131), 100), 1);
    s.check_invariants().unwrap();
}

#[test]
fn remove_mark_and_stale_ids() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    assert!(s.set_connection_mark(id, 7));
    assert_eq!(s.snapshot(id, at(0)).unwrap().mark(), 7);
    assert!(s.remove(id));
    assert!(!s.remove(id));
    assert!(s.get(id).is_none());
    assert_eq!(s.stats().removed, 1);
    // The slot is reused with a new generation: the old id stays dead.
    let (id2, ..) = tracked(s.handle_packet(at(0), &udp(A, 3, B, 4)));
    assert_eq!(id2.slot(), id.slot());
    assert_ne!(id2, id);
    assert!(s.get(id).is_none());
    assert_eq!(s.snapshot(id2, at(0)).unwrap().mark(), 0);
    assert!(!s.set_connection_mark(ConnId::new(9, id2.slot(), id2.generation()), 1));
    s.check_invariants().unwrap();
}

#[test]
fn conn_id_text_round_trips() {
    let id = ConnId::new(3, 0x1f2a, 5);
    assert_eq!(id.to_string(), "*3000500001f2a");
    assert_eq!("*3000500001F2A".parse::<ConnId>(), Ok(id));
    assert_eq!("*1f2a".parse::<ConnId>(), Ok(ConnId(0x1f2a)));
    for bad in ["", "*", "1f2a", "*xyz", "*11112222333344445"] {
        assert!(bad.parse::<ConnId>().is_err(), "{bad}");
    }
}

#[test]
fn fasttrack_counters_and_rate() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    assert!(s.set_fasttrack(id, true));
    assert!(s.handle_fasttrack(Instant::from_millis(500), id, Dir::Orig, 1000));
    assert!(s.handle_fasttrack(Instant::from_millis(900), id, Dir::Reply, 400));
    let raw = s.snapshot(id, Instant::from_millis(1200)).unwrap();
    let e = raw.entry();
    assert!(e.fasttrack());
    let ft = raw.fasttrack_counters();
    assert_eq!((ft.packets[0], ft.bytes[0]), (1, 1000));
    assert_eq!((ft.packets[1], ft.bytes[1]), (1, 400));
    assert_eq!((e.packets(Dir::Orig), e.bytes(Dir::Orig)), (2, 1100));
    // Rates: the last complete 1 s window (second 0) held 1100 / 400 bytes.
    assert_eq!((raw.rate(Dir::Orig), raw.rate(Dir::Reply)), (8800, 3200));
    // A packet in second 1 moves the window; second 0 stays the last complete.
    tracked(s.handle_packet(Instant::from_millis(1500), &udp(A, 1, B, 2)));
    let raw = s.snapshot(id, Instant::from_millis(1600)).unwrap();
    assert_eq!(raw.rate(Dir::Orig), 8800);
    let raw = s.snapshot(id, Instant::from_millis(2100)).unwrap();
    assert_eq!(raw.rate(Dir::Orig), 800);
    assert_eq!(s.snapshot(id, at(5)).unwrap().rate(Dir::Orig), 0);
    assert!(s.remove(id));
    assert!(!s.handle_fasttrack(at(5), id, Dir::Orig, 1));
    s.check_invariants().unwrap();
}

#[test]
fn listing_in_chunks_visits_each_connection_once() {
    let mut s = shard(64);
    for p in 0..10 {
        tracked(s.handle_packet(at(0), &udp(A, p, B, 53)));
    }
    tracked(s.handle_packet(at(0), &tcp(A, 1000, B, 80, SYN, 1, 0)));
    let mut rows = Vec::new();
    let mut cursor = Some(0);
    let mut calls = 0;
    while let Some(c) = cursor {
        cursor = s.raw_chunk(at(1), c, 3, &mut rows);
        calls += 1;
    }
    assert_eq!(rows.len(), 11);
    assert!(calls >= 4);
    let mut ids: Vec<ConnId> = rows.iter().map(RawConn::id).collect();
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    assert_eq!(ids.len(), 11);
    let tcp_row = rows.iter().find(|r| r.entry().protocol() == proto::TCP);
    assert_eq!(
        tcp_row.unwrap().entry().tcp_state(),
        Some(TcpState::SynSent)
    );
    let mut all = Vec::new();
    s.for_each_snapshot(at(1), |r| all.push(r.id()));
    assert_eq!(all.len(), 11);
    let mut sorted = all.clone();
    sorted.sort_by_key(|id| id.0);
    assert_eq!(sorted, ids);
}

#[test]
fn burst_matches_packet_by_packet() {
    let pkts: Vec<FlowRepr> = (0..100u16)
        .map(|i| match i % 4 {
            0 => udp(A, i % 17, B, 53),
            1 => udp(B, 53, A, i % 17),
            2 => icmp(A, B, 8, i % 5, None),
            _ => tcp(A, 1000 + i % 7, B, 80, SYN, 1, 0),
        })
        .collect();
    let mut one = shard(64);
    let mut many = shard(64);
    let mut two = shard(64);
    let a: Vec<Verdict> = pkts.iter().map(|p| one.handle_packet(at(0), p)).collect();
    let mut b = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); pkts.len()];
    many.handle_burst(at(0), &pkts, &mut b);
    assert_eq!(a, b);
    assert_eq!(one.stats(), many.stats());
    many.check_invariants().unwrap();
    assert_eq!(two_phases(&mut two, at(0), &pkts), a);
    assert_eq!(one.stats(), two.stats());
}

/// A burst through [`Shard::lookup_burst`] and [`Shard::commit_burst`],
/// every new connection accepted, until every packet is done.
fn two_phases(s: &mut Shard, now: Instant, pkts: &[FlowRepr]) -> Vec<Verdict> {
    let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); pkts.len()];
    let mut done = 0;
    while done < pkts.len() {
        let m = s.lookup_burst(now, &pkts[done..], &mut out[done..]);
        let (p, o) = (&pkts[done..done + m], &mut out[done..done + m]);
        s.commit_burst(now, p, &vec![Decision::ACCEPT; m], o);
        done += m;
    }
    out
}

#[test]
fn memory_per_connection() {
    let max = 1 << 16;
    let mut s = shard(max);
    for i in 0..max {
        let p = udp([10, 1, (i >> 8) as u8, i as u8], 1000, B, 53);
        tracked(s.handle_packet(at(0), &p));
    }
    assert_eq!(s.total_entries(), max);
    let per = s.memory_bytes() as f64 / f64::from(max);
    println!(
        "entry {} B (tcp {} B, proto state {} B), index+entry at max: {per:.1} B/connection (estimate {})",
        core::mem::size_of::<Entry>(),
        core::mem::size_of::<super::tcp::TcpConn>(),
        core::mem::size_of::<ProtoState>(),
        TableConfig::bytes_per_entry()
    );
    // Issue 3's target: at most 160 bytes per tracked connection. The entry
    // is 128 (hot) + 24 (cold), `const`-asserted in entry.rs, and the index
    // about 7.1 (one key per connection at 90% load).
    assert!(per <= 160.0, "{per}");
    assert!(TableConfig::bytes_per_entry() <= 160);
    assert!(TableConfig::from_memory(1 << 30).max_entries > 6_500_000);
    s.check_invariants().unwrap();
}

// ---- property tests ------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Packet {
        pkt: FlowRepr,
        dt_ms: u64,
    },
    Poll {
        budget: usize,
    },
    Remove {
        nth: usize,
    },
    Settings {
        udp_s: u64,
        tcp_est_s: u64,
        loose: bool,
    },
}

fn addr_strategy() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![Just(A), Just(B), Just(C)]
}

fn pkt_strategy() -> impl Strategy<Value = FlowRepr> {
    let ports = prop_oneof![Just(53u16), Just(80), Just(1000), Just(1001)];
    (
        addr_strategy(),
        addr_strategy(),
        ports.clone(),
        ports,
        0u8..8,
        any::<u8>(),
        0u32..4,
        0u32..4,
        0u8..4,
    )
        .prop_map(|(s, d, sp, dp, kind, flags, seq, ack, small)| {
            let seq = seq * 1000;
            let ack = ack * 1000;
            match kind {
                0 | 1 => tcp(s, sp, d, dp, flags, seq, ack),
                2 => tcp(
                    s,
                    sp,
                    d,
                    dp,
                    [SYN, SYN | ACK, ACK, FIN | ACK][small as usize],
                    seq,
                    ack,
                ),
                3 => udp(s, sp, d, dp),
                4 => icmp(s, d, [0, 8, 13, 14][small as usize], sp % 3, None),
                5 => icmp(
                    s,
                    d,
                    3,
                    0,
                    Some(tuple(
                        d,
                        dp,
                        s,
                        sp,
                        [proto::TCP, proto::UDP, proto::ICMP, 50][small as usize],
                    )),
                ),
                6 => gre(s, d, small % 3, Some(u32::from(sp)), 0x880b),
                _ => FlowRepr {
                    tuple: tuple(s, 0, d, 0, 50 + small),
                    ip_len: 99,
                    l4: L4::Other,
                },
            }
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (pkt_strategy(), prop_oneof![Just(0u64), 0u64..2_000, 0u64..300_000]).prop_map(|(pkt, dt_ms)| Op::Packet { pkt, dt_ms }),
        1 => (0usize..20).prop_map(|budget| Op::Poll { budget }),
        1 => (0usize..8).prop_map(|nth| Op::Remove { nth }),
        1 => (1u64..30, 1u64..100, any::<bool>()).prop_map(|(udp_s, tcp_est_s, loose)| Op::Settings { udp_s, tcp_est_s, loose }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_keeps_invariants(ops in proptest::collection::vec(op_strategy(), 1..200), max in 1u32..12) {
        let mut s = shard(max);
        let mut now = 0u64;
        let mut fed = 0u64;
        for op in ops {
            match op {
                Op::Packet { pkt, dt_ms } => {
                    now += dt_ms * 1_000_000;
                    let v = s.handle_packet(Instant(now), &pkt);
                    // Related ICMP errors are counted on no connection.
                    if matches!(v, Verdict::Tracked { .. }) {
                        fed += 1;
                    }
                }
                Op::Poll { budget } => {
                    let before = s.total_entries();
                    let n = s.poll_expired(Instant(now), budget);
                    prop_assert!(n <= budget);
                    prop_assert_eq!(s.total_entries() as usize, before as usize - n);
                }
                Op::Remove { nth } => {
                    let mut rows = Vec::new();
                    s.raw_chunk(Instant(now), 0, nth + 1, &mut rows);
                    if let Some(r) = rows.get(nth) {
                        prop_assert!(s.remove(r.id()));
                    }
                }
                Op::Settings { udp_s, tcp_est_s, loose } => {
                    let mut set = s.settings().clone();
                    set.udp_timeout = Duration::from_secs(udp_s);
                    set.tcp_established_timeout = Duration::from_secs(tcp_est_s);
                    set.loose_tcp_tracking = loose;
                    s.apply_settings(&set);
                }
            }
            prop_assert!(s.total_entries() <= s.max_entries());
            if let Err(e) = s.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
        }
        let st = s.stats();
        prop_assert_eq!(st.packets[0] + st.packets[1], fed);
        // Everything eventually expires.
        now += 100 * 86_400 * 1_000_000_000;
        for _ in 0..1000 {
            s.poll_expired(Instant(now), 64);
        }
        prop_assert_eq!(s.total_entries(), 0);
        prop_assert_eq!(s.next_deadline(), None);
        s.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn index_holds_max_entries_under_churn() {
    let max = 40_000u32;
    let mut s = shard(max);
    let pkt = |i: u32| {
        udp(
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1000 + (i % 7) as u16,
            B,
            53,
        )
    };
    let mut ids = Vec::with_capacity(max as usize);
    for i in 0..max {
        ids.push(tracked(s.handle_packet(at(0), &pkt(i))).0);
    }
    // Remove one, add one: the index must always find room.
    let mut x = 12345u64;
    for n in 0..100_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % u64::from(max)) as usize;
        assert!(s.remove(ids[j]));
        ids[j] = tracked(s.handle_packet(at(0), &pkt(max + n))).0;
    }
    assert_eq!(s.total_entries(), max);
    assert_eq!(s.stats().insert_failed, 0);
    s.check_invariants().unwrap();
}

#[test]
fn extreme_times_do_not_panic() {
    let mut s = shard(8);
    let end = Instant(u64::MAX - 1);
    tracked(s.handle_packet(end, &udp(A, 1, B, 2)));
    tracked(s.handle_packet(end, &tcp(A, 1, B, 2, SYN, 1, 0)));
    let _ = s.next_deadline();
    assert_eq!(s.poll_expired(Instant(u64::MAX), 100), 0);
    let snap = s.raw_chunk(Instant(u64::MAX), 0, 10, &mut Vec::new());
    assert_eq!(snap, None);
    s.check_invariants().unwrap();
}

/// A rough figure, not an assertion: `cargo test --release -p dataplane
/// --no-default-features -- --ignored bench_smoke --nocapture`.
#[test]
#[ignore]
fn bench_smoke() {
    let n: u32 = 1 << 20;
    let mut s = Shard::new(
        TableConfig::new(n),
        Settings::default(),
        0,
        HashSeed::from_u64(7),
    );
    let pkt = |i: u32| udp([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1000, B, 53);
    let flows: Vec<FlowRepr> = (0..n).map(pkt).collect();
    let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); 32];
    let t = std::time::Instant::now();
    for chunk in flows.chunks(32) {
        s.handle_burst(at(0), chunk, &mut out);
    }
    let new_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    // Established traffic in random order over all connections.
    let mut x = 88172645463325252u64;
    let order: Vec<FlowRepr> = (0..4 * n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            flows[(x % u64::from(n)) as usize]
        })
        .collect();
    let t = std::time::Instant::now();
    for p in &order {
        s.handle_packet(at(1), p);
    }
    let one_ns = t.elapsed().as_nanos() as f64 / f64::from(4 * n);
    let t = std::time::Instant::now();
    for chunk in order.chunks(32) {
        s.handle_burst(at(1), chunk, &mut out);
    }
    let est_ns = t.elapsed().as_nanos() as f64 / f64::from(4 * n);
    println!(
        "{n} connections: new {new_ns:.1} ns/pkt, established burst {est_ns:.1} ns/pkt, \
         established one-by-one {one_ns:.1} ns/pkt, {:.1} B/connection",
        s.memory_bytes() as f64 / f64::from(n)
    );
}

#[test]
fn fasttrack_mode_established_takes_the_short_path_until_fin() {
    let mut s = shard(16);
    s.set_fasttrack_established(true);
    let id = handshake(&mut s, at(0));
    // The ACK that established it marked it.
    assert!(s.get(id).unwrap().fasttrack());
    // Data both ways: counted, fast-tracked, no tracker run. A segment far
    // out of window would be invalid on the full path; here it is counted.
    for k in 0..3u32 {
        tracked(s.handle_packet(at(1), &tcp(A, 1000, B, 80, ACK | PSH, 101 + k, 501)));
        tracked(s.handle_packet(at(1), &tcp(B, 80, A, 1000, ACK, 900_000_000, 101)));
    }
    let raw = s.snapshot(id, at(1)).unwrap();
    assert!(raw.entry().fasttrack());
    let ft = raw.fasttrack_counters();
    assert_eq!((ft.packets[0], ft.packets[1]), (3, 3));
    assert_eq!(raw.entry().packets(Dir::Orig), 2 + 3);
    assert_eq!(s.stats().fasttrack_packets, [3, 3]);
    // A FIN returns the connection to the full path, which tracks the close.
    tracked(s.handle_packet(at(2), &tcp(A, 1000, B, 80, FIN | ACK, 104, 501)));
    let e = s.get(id).unwrap();
    assert!(!e.fasttrack());
    assert_eq!(e.tcp_state(), Some(TcpState::FinWait));
    // And it is not marked again: no longer established.
    tracked(s.handle_packet(at(2), &tcp(B, 80, A, 1000, ACK, 501, 105)));
    assert!(!s.get(id).unwrap().fasttrack());
    s.check_invariants().unwrap();
}

#[test]
fn fasttrack_mode_marks_udp_streams_not_one_way_flows() {
    let mut s = shard(16);
    s.set_fasttrack_established(true);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 5000, B, 53)));
    tracked(s.handle_packet(at(0), &udp(A, 5000, B, 53)));
    assert!(!s.get(id).unwrap().fasttrack());
    tracked(s.handle_packet(at(0), &udp(B, 53, A, 5000)));
    assert!(s.get(id).unwrap().fasttrack());
    // Switching the mode off gives every connection back to the full path.
    s.set_fasttrack_established(false);
    assert!(!s.get(id).unwrap().fasttrack());
}

#[test]
fn census_counts_live_connections_by_protocol_and_state_in_chunks() {
    let mut s = shard(64);
    handshake(&mut s, at(0));
    tracked(s.handle_packet(at(0), &tcp(A, 2000, B, 80, SYN, 1, 0)));
    for p in 0..5 {
        tracked(s.handle_packet(at(0), &udp(A, 6000 + p, B, 53)));
    }
    let mut census = Census::default();
    let mut cursor = Some(0);
    let mut calls = 0;
    while let Some(c) = cursor {
        cursor = s.census_chunk(c, 2, &mut census);
        calls += 1;
    }
    assert!(calls >= 4, "bounded chunks");
    let est = TcpState::Established.index() as u8;
    let syn = TcpState::SynSent.index() as u8;
    assert_eq!(census.counts.get(&(proto::TCP, est)), Some(&1));
    assert_eq!(census.counts.get(&(proto::TCP, syn)), Some(&1));
    assert_eq!(census.counts.get(&(proto::UDP, u8::MAX)), Some(&5));
    assert_eq!(
        census.counts.values().sum::<u64>(),
        u64::from(s.total_entries())
    );
}

// ---- two-phase creation ----------------------------------------------------

/// `lookup_burst` over the whole burst (it must not end early here).
fn lookup_all(s: &mut Shard, now: Instant, pkts: &[FlowRepr]) -> Vec<Verdict> {
    let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); pkts.len()];
    assert_eq!(s.lookup_burst(now, pkts, &mut out), pkts.len());
    out
}

#[test]
fn two_first_packets_of_one_tuple_in_a_burst_share_one_connection() {
    for proto_tcp in [false, true] {
        let mut s = shard(16);
        let (first, again, reply) = if proto_tcp {
            (
                tcp(A, 1000, B, 80, SYN, 1, 0),
                tcp(A, 1000, B, 80, SYN, 1, 0),
                tcp(B, 80, A, 1000, SYN | ACK, 500, 2),
            )
        } else {
            (
                udp(A, 1000, B, 53),
                udp(A, 1000, B, 53),
                udp(B, 53, A, 1000),
            )
        };
        let pkts = [first, again, reply];
        let mut out = lookup_all(&mut s, at(1), &pkts);
        // Nothing is inserted before the decision; all three wait for it.
        assert_eq!(out, vec![Verdict::New; 3]);
        assert_eq!(s.total_entries(), 0);
        let decisions = [
            Decision {
                mark: 7,
                ..Decision::ACCEPT
            },
            Decision {
                mark: 9,
                ..Decision::ACCEPT
            },
            Decision::ACCEPT,
        ];
        s.commit_burst(at(1), &pkts, &decisions, &mut out);
        let (id, dir, created) = tracked(out[0]);
        assert_eq!((dir, created), (Dir::Orig, true));
        assert_eq!(
            tracked(out[1]),
            (id, Dir::Orig, false),
            "second first packet"
        );
        assert_eq!(
            tracked(out[2]),
            (id, Dir::Reply, false),
            "reply in the same burst"
        );
        assert_eq!(s.total_entries(), 1);
        assert_eq!(s.stats().insert, 1);
        // The first packet's decision holds: the second's mark is ignored.
        assert_eq!(s.connection_mark(id), Some(7));
        let e = s.get(id).unwrap();
        assert_eq!((e.packets(Dir::Orig), e.packets(Dir::Reply)), (2, 1));
        s.check_invariants().unwrap();
    }
}

#[test]
fn a_dropped_decision_inserts_and_evicts_nothing() {
    let mut s = shard(2);
    let a = tracked(s.handle_packet(at(1), &udp(A, 1, B, 53))).0;
    let b = tracked(s.handle_packet(at(1), &udp(A, 2, B, 53))).0;
    let pkts = [udp(A, 3, B, 53)];
    let mut out = lookup_all(&mut s, at(2), &pkts);
    assert_eq!(out[0], Verdict::New);
    let before = s.stats().clone();
    s.commit_burst(at(2), &pkts, &[Decision::drop(5)], &mut out);
    assert_eq!(out[0], Verdict::Refused(5));
    assert_eq!(s.total_entries(), 2);
    assert!(
        s.get(a).is_some() && s.get(b).is_some(),
        "something was evicted"
    );
    assert_eq!(s.stats(), &before, "a refused packet changed the counters");
    s.check_invariants().unwrap();
    // Accepted, the same packet evicts the oldest unassured connection.
    let mut out = lookup_all(&mut s, at(3), &pkts);
    s.commit_burst(at(3), &pkts, &[Decision::ACCEPT], &mut out);
    assert!(tracked(out[0]).2);
    assert_eq!(s.stats().early_drop, 1);
    assert_eq!(s.total_entries(), 2);
    s.check_invariants().unwrap();
}

#[test]
fn a_decision_sets_the_new_connections_mark_and_fasttrack() {
    let mut s = shard(16);
    let pkts = [udp(A, 1, B, 53), udp(A, 2, B, 53)];
    let mut out = lookup_all(&mut s, at(1), &pkts);
    let d = Decision {
        mark: 0x42,
        fasttrack: true,
        ..Decision::ACCEPT
    };
    s.commit_burst(at(1), &pkts, &[d, Decision::ACCEPT], &mut out);
    let (x, y) = (tracked(out[0]).0, tracked(out[1]).0);
    assert_eq!(s.connection_mark(x), Some(0x42));
    assert_eq!(s.connection_mark(y), Some(0));
    assert!(s.get(x).unwrap().fasttrack());
    assert!(!s.get(y).unwrap().fasttrack());
    // The next packet of the fast-tracked one takes the short path.
    tracked(s.handle_packet(at(2), &udp(A, 1, B, 53)));
    assert_eq!(s.stats().fasttrack_packets, [1, 0]);
    s.check_invariants().unwrap();
}

#[test]
fn a_full_table_ends_the_lookup_phase_before_a_packet_the_eviction_may_touch() {
    let mut s = shard(2);
    tracked(s.handle_packet(at(1), &udp(A, 1, B, 53)));
    let pkts = [udp(A, 2, B, 53), udp(A, 3, B, 53), udp(A, 1, B, 53)];
    let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); 3];
    // The first new one fits; the second needs an eviction: the phase ends
    // before the third, which finds a connection, so that its lookup sees
    // what the eviction did.
    assert_eq!(s.lookup_burst(at(2), &pkts, &mut out), 2);
    assert_eq!(&out[..2], &[Verdict::New, Verdict::New]);
    s.commit_burst(at(2), &pkts[..2], &[Decision::ACCEPT; 2], &mut out[..2]);
    assert!(tracked(out[0]).2 && tracked(out[1]).2);
    assert_eq!(s.stats().early_drop, 1);
    s.check_invariants().unwrap();
}

#[test]
fn new_connections_into_a_full_table_share_one_lookup_phase() {
    let mut s = shard(2);
    let mut one = shard(2);
    for sp in [1, 2] {
        tracked(s.handle_packet(at(1), &udp(A, sp, B, 53)));
        tracked(one.handle_packet(at(1), &udp(A, sp, B, 53)));
    }
    // Four new ones, each needing an eviction: one phase, evictions at
    // commit in packet order, as packet by packet.
    let pkts = [
        udp(A, 3, B, 53),
        udp(A, 4, B, 53),
        udp(A, 5, B, 53),
        udp(A, 6, B, 53),
    ];
    let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); 4];
    assert_eq!(s.lookup_burst(at(2), &pkts, &mut out), 4);
    s.commit_burst(at(2), &pkts, &[Decision::ACCEPT; 4], &mut out);
    let each: Vec<Verdict> = pkts.iter().map(|p| one.handle_packet(at(2), p)).collect();
    assert_eq!(out, each);
    assert_eq!(s.stats(), one.stats());
    assert_eq!(s.stats().early_drop, 4);
    s.check_invariants().unwrap();
}

fn burst_op_strategy() -> impl Strategy<Value = (FlowRepr, u64, bool, usize)> {
    (
        pkt_strategy(),
        prop_oneof![4 => Just(0u64), 1 => 0u64..300_000],
        prop::bool::weighted(0.2),
        0usize..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Bursts through the two phases, and through the one pass of a decision
    /// known in advance (`handle_burst`), give exactly the verdicts, ids and
    /// counters of packet-by-packet handling (small tables: early drop and
    /// table-full happen inside bursts).
    #[test]
    fn bursts_match_packets_through_the_two_phases(
        ops in proptest::collection::vec(burst_op_strategy(), 1..150),
        max in 1u32..8,
    ) {
        let mut one = shard(max);
        let mut many = shard(max);
        let mut two = shard(max);
        let mut now = 0u64;
        let mut burst: Vec<FlowRepr> = Vec::new();
        let flush = |one: &mut Shard, many: &mut Shard, two: &mut Shard, burst: &mut Vec<FlowRepr>, now: u64| {
            let a: Vec<Verdict> = burst.iter().map(|p| one.handle_packet(Instant(now), p)).collect();
            let mut b = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); burst.len()];
            many.handle_burst(Instant(now), burst, &mut b);
            let c = two_phases(two, Instant(now), burst);
            burst.clear();
            (a, b, c)
        };
        for (pkt, dt_ms, cut, budget) in ops {
            burst.push(pkt);
            if cut || dt_ms > 0 {
                let (a, b, c) = flush(&mut one, &mut many, &mut two, &mut burst, now);
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(&a, &c);
                prop_assert_eq!(one.stats(), many.stats());
                prop_assert_eq!(one.stats(), two.stats());
                many.check_invariants().map_err(TestCaseError::fail)?;
                two.check_invariants().map_err(TestCaseError::fail)?;
                now += dt_ms * 1_000_000;
                let expired = one.poll_expired(Instant(now), budget);
                prop_assert_eq!(expired, many.poll_expired(Instant(now), budget));
                prop_assert_eq!(expired, two.poll_expired(Instant(now), budget));
            }
        }
        let (a, b, c) = flush(&mut one, &mut many, &mut two, &mut burst, now);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        prop_assert_eq!(one.stats(), many.stats());
        prop_assert_eq!(one.stats(), two.stats());
        many.check_invariants().map_err(TestCaseError::fail)?;
        two.check_invariants().map_err(TestCaseError::fail)?;
    }
}

// ---- NAT: connections with a stored reply key ------------------------------

/// A decision that source-NATs the connection to `C:port`: its replies come
/// back to `C:port`, not to the original source.
fn snat(orig: &FlowRepr, port: u16) -> Decision {
    let k = key_of(orig);
    let mut r = k.reply();
    r.dst = Addr::from_v4(C);
    r.dport = port;
    Decision {
        reply: Some(r),
        ..Decision::ACCEPT
    }
}

/// Creates the connection of `p` with decision `d`, through the two phases.
fn create_with(s: &mut Shard, now: Instant, p: &FlowRepr, d: Decision) -> Verdict {
    let pkts = [*p];
    let mut out = lookup_all(s, now, &pkts);
    assert_eq!(out[0], Verdict::New);
    s.commit_burst(now, &pkts, &[d], &mut out);
    out[0]
}

#[test]
fn a_nat_connection_is_found_by_both_keys_with_counters_per_direction() {
    let mut s = shard(16);
    let first = udp(A, 1000, B, 53);
    let (id, _, created) = tracked(create_with(&mut s, at(1), &first, snat(&first, 4000)));
    assert!(created);
    let r = s.reply_key(id).unwrap();
    assert_ne!(r, key_of(&first).reply());
    assert_eq!(s.lookup(&key_of(&first)), Some((id, Dir::Orig)));
    assert_eq!(s.lookup(&r), Some((id, Dir::Reply)));
    // The translated reply is the connection's reply direction.
    let reply = udp(B, 53, C, 4000);
    assert_eq!(key_of(&reply), r);
    assert_eq!(
        tracked(s.handle_packet(at(2), &reply)),
        (id, Dir::Reply, false)
    );
    assert_eq!(
        tracked(s.handle_packet(at(3), &first)),
        (id, Dir::Orig, false)
    );
    let e = s.get(id).unwrap();
    assert_eq!((e.packets(Dir::Orig), e.packets(Dir::Reply)), (2, 1));
    assert!(e.assured(), "a UDP stream once both directions were seen");
    // Listings carry the stored reply key, not the original's inverse.
    assert_eq!(*s.snapshot(id, at(3)).unwrap().reply_key(), r);
    let mut listed = Vec::new();
    s.for_each_snapshot(at(3), |c| listed.push(*c.reply_key()));
    assert_eq!(listed, vec![r]);
    // The un-translated inverse is not this connection's, and cannot open
    // one: its reply would be this connection's original key.
    let stray = udp(B, 53, A, 1000);
    assert_eq!(
        s.handle_packet(at(4), &stray),
        Verdict::Dropped(DropReason::ReplyTaken)
    );
    let other = tracked(s.handle_packet(at(4), &udp(B, 53, A, 1001))).0;
    s.check_invariants().unwrap();
    // Removal takes both slots out.
    assert!(s.remove(id));
    assert_eq!(s.lookup(&key_of(&first)), None);
    assert_eq!(s.lookup(&r), None);
    assert_eq!(
        s.lookup(&key_of(&udp(B, 53, A, 1001))).map(|f| f.0),
        Some(other)
    );
    // With no NAT connection left, the inverse opens one.
    tracked(s.handle_packet(at(5), &stray));
    s.check_invariants().unwrap();
}

#[test]
fn nat_connections_leave_the_index_whole_on_expiry_and_early_drop() {
    let mut s = shard(2);
    let a = udp(A, 1, B, 53);
    let b = udp(A, 2, B, 53);
    let ida = tracked(create_with(&mut s, at(1), &a, snat(&a, 4001))).0;
    let idb = tracked(create_with(&mut s, at(1), &b, snat(&b, 4002))).0;
    let (ra, rb) = (s.reply_key(ida).unwrap(), s.reply_key(idb).unwrap());
    s.check_invariants().unwrap();
    // Full: a third connection early-drops one of them (neither is assured).
    let c = udp(A, 3, B, 53);
    tracked(create_with(&mut s, at(2), &c, snat(&c, 4003)));
    assert_eq!(s.stats().early_drop, 1);
    assert_eq!(s.total_entries(), 2);
    let gone = if s.get(ida).is_none() { ra } else { rb };
    assert_eq!(s.lookup(&gone), None, "an evicted connection's reply key");
    s.check_invariants().unwrap();
    // Everything expires; the index is empty again.
    assert_eq!(s.poll_expired(at(1_000), 100), 2);
    assert_eq!(s.total_entries(), 0);
    s.check_invariants().unwrap();
    for k in [ra, rb] {
        assert_eq!(s.lookup(&k), None);
    }
}

#[test]
fn a_taken_nat_reply_key_refuses_the_connection() {
    let mut s = shard(16);
    let existing = udp(B, 53, C, 4000);
    let id = tracked(s.handle_packet(at(1), &existing)).0;
    let first = udp(A, 1000, B, 53);
    // Replies to C:4000 from B:53 would be the existing connection's.
    let v = create_with(&mut s, at(2), &first, snat(&first, 4000));
    assert_eq!(v, Verdict::Dropped(DropReason::ReplyTaken));
    assert_eq!(s.total_entries(), 1);
    assert_eq!(s.lookup(&key_of(&existing)), Some((id, Dir::Orig)));
    assert_eq!(s.lookup(&key_of(&first)), None);
    s.check_invariants().unwrap();
}

#[test]
fn two_first_packets_of_one_tuple_keep_the_first_translation() {
    for proto_tcp in [false, true] {
        let mut s = shard(16);
        let first = if proto_tcp {
            tcp(A, 1000, B, 80, SYN, 1, 0)
        } else {
            udp(A, 1000, B, 80)
        };
        let pkts = [first, first];
        let mut out = lookup_all(&mut s, at(1), &pkts);
        assert_eq!(out, vec![Verdict::New; 2]);
        let (d1, d2) = (snat(&first, 4000), snat(&first, 5000));
        s.commit_burst(at(1), &pkts, &[d1, d2], &mut out);
        let (id, _, created) = tracked(out[0]);
        assert!(created);
        assert_eq!(
            tracked(out[1]),
            (id, Dir::Orig, false),
            "both forwarded, one connection"
        );
        assert_eq!(s.total_entries(), 1);
        assert_eq!(s.reply_key(id), d1.reply, "the first packet's translation");
        let reply = if proto_tcp {
            tcp(B, 80, C, 4000, SYN | ACK, 500, 2)
        } else {
            udp(B, 80, C, 4000)
        };
        assert_eq!(
            tracked(s.handle_packet(at(2), &reply)),
            (id, Dir::Reply, false)
        );
        s.check_invariants().unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random traffic through the two phases with random decisions (drop,
    /// NAT to one of a few reply keys, mark): the table's invariants hold
    /// after every commit and expiry, and every tracked packet is found on
    /// its connection in its direction.
    #[test]
    fn random_decisions_keep_invariants(
        ops in proptest::collection::vec((burst_op_strategy(), 0u8..8, 0u16..4), 1..150),
        max in 1u32..10,
    ) {
        let mut s = shard(max);
        let mut now = 0u64;
        let mut burst: Vec<(FlowRepr, Decision)> = Vec::new();
        let run = |s: &mut Shard, burst: &mut Vec<(FlowRepr, Decision)>, now: u64| -> Result<(), TestCaseError> {
            let pkts: Vec<FlowRepr> = burst.iter().map(|b| b.0).collect();
            let decisions: Vec<Decision> = burst.iter().map(|b| b.1).collect();
            let mut out = vec![Verdict::Untracked(UntrackedReason::TrackingDisabled); pkts.len()];
            let mut done = 0;
            while done < pkts.len() {
                let m = s.lookup_burst(Instant(now), &pkts[done..], &mut out[done..]);
                prop_assert!(m >= 1);
                s.commit_burst(Instant(now), &pkts[done..done + m], &decisions[done..done + m], &mut out[done..done + m]);
                s.check_invariants().map_err(TestCaseError::fail)?;
                done += m;
            }
            for (p, v) in pkts.iter().zip(&out) {
                prop_assert!(!matches!(v, Verdict::New), "left waiting: {p:?}");
                if let Verdict::Tracked { id, dir, .. } = *v
                    && s.get(id).is_some()
                    && !matches!(p.l4, L4::Icmp(_))
                {
                    let k = key_of(p);
                    let found = s.lookup(&k);
                    prop_assert_eq!(found.map(|f| f.0), Some(id), "{:?}", p);
                    if k != k.reply() {
                        prop_assert_eq!(found.map(|f| f.1), Some(dir), "{:?}", p);
                    }
                }
            }
            burst.clear();
            Ok(())
        };
        for ((pkt, dt_ms, cut, budget), what, port) in ops {
            let d = match what {
                0 => Decision::drop(port),
                1 | 2 => {
                    let mut r = key_of(&pkt).reply();
                    r.dst = Addr::from_v4([192, 0, 2, 1]);
                    r.dport = 4000 + port;
                    Decision { reply: Some(r), mark: u32::from(port), ..Decision::ACCEPT }
                }
                3 => Decision { fasttrack: true, ..Decision::ACCEPT },
                _ => Decision::ACCEPT,
            };
            burst.push((pkt, d));
            if cut || dt_ms > 0 {
                run(&mut s, &mut burst, now)?;
                now += dt_ms * 1_000_000;
                s.poll_expired(Instant(now), budget);
                s.check_invariants().map_err(TestCaseError::fail)?;
            }
        }
        run(&mut s, &mut burst, now)?;
        now += 100 * 86_400 * 1_000_000_000;
        for _ in 0..1000 {
            s.poll_expired(Instant(now), 64);
        }
        prop_assert_eq!(s.total_entries(), 0);
        s.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_lookup_phase_without_its_commit_leaks_nothing() {
    let mut s = shard(4);
    // A dead entry reaped after a waiting packet is released at the next
    // lookup phase even though this phase's commit never comes.
    let old = udp(A, 9, B, 53);
    tracked(s.handle_packet(at(0), &old));
    let pkts = [udp(A, 1, B, 53), old];
    let mut out = lookup_all(&mut s, at(100), &pkts);
    assert_eq!(out, vec![Verdict::New; 2]);
    let again = lookup_all(&mut s, at(100), &pkts[..1]);
    assert_eq!(again, vec![Verdict::New]);
    s.commit_burst(at(100), &pkts[..1], &[Decision::ACCEPT], &mut out[..1]);
    assert!(tracked(out[0]).2);
    assert_eq!(s.total_entries(), 1);
    s.check_invariants().unwrap();
    // All four slots are usable.
    for p in 2..5 {
        tracked(s.handle_packet(at(100), &udp(A, p, B, 53)));
    }
    assert_eq!(s.total_entries(), 4);
    s.check_invariants().unwrap();
}

// ---- events ---------------------------------------------------------------

fn drained(s: &mut Shard) -> Vec<(EventKind, ConnId)> {
    s.drain_events().map(|e| (e.kind, e.id)).collect()
}

#[test]
fn events_off_by_default_record_nothing() {
    let mut s = shard(16);
    assert!(!s.events_on());
    handshake(&mut s, at(0));
    assert_eq!(s.events_pending(), 0);
    assert_eq!(s.events_overflow(), 0);
}

#[test]
fn events_report_new_updates_and_destroy_of_a_tcp_connection() {
    let mut s = shard(16);
    s.set_events(64);
    let id = handshake(&mut s, at(1));
    let evs: Vec<ConnEvent> = s.drain_events().collect();
    let kinds: Vec<EventKind> = evs.iter().map(|e| e.kind).collect();
    // SYN: new; SYN-ACK: syn-received + seen-reply; ACK: established + assured.
    assert_eq!(
        kinds,
        [EventKind::New, EventKind::Update, EventKind::Update]
    );
    assert!(evs.iter().all(|e| e.id == id && e.time == at(1)));
    assert_eq!(evs[0].packets(Dir::Orig), 1);
    assert_eq!(evs[0].entry.tcp_state(), Some(TcpState::SynSent));
    assert_eq!(evs[2].entry.tcp_state(), Some(TcpState::Established));
    assert!(evs[2].entry.assured());
    assert_eq!(*evs[2].key(), key_of(&tcp(A, 1000, B, 80, SYN, 100, 0)));
    assert_eq!(evs[2].reply, evs[2].key().reply());
    // A data packet changes nothing shown: no event.
    tracked(s.handle_packet(at(2), &tcp(A, 1000, B, 80, ACK, 101, 501)));
    assert_eq!(s.events_pending(), 0);
    // FIN: fin-wait (update); expiry: destroy with the final counters.
    tracked(s.handle_packet(at(3), &tcp(A, 1000, B, 80, FIN | ACK, 101, 501)));
    assert_eq!(drained(&mut s), [(EventKind::Update, id)]);
    assert_eq!(s.poll_expired(at(14), 10), 1);
    let evs: Vec<ConnEvent> = s.drain_events().collect();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].kind, EventKind::Destroy(DestroyReason::Expired));
    assert_eq!(evs[0].id, id);
    assert_eq!(evs[0].time, at(14));
    assert_eq!(
        (evs[0].packets(Dir::Orig), evs[0].packets(Dir::Reply)),
        (4, 1)
    );
    assert_eq!(evs[0].bytes(Dir::Orig), 4 * 60);
    assert_eq!(evs[0].last_seen(), at(3));
    s.check_invariants().unwrap();
}

#[test]
fn events_name_each_destroy_reason() {
    let mut s = shard(2);
    s.set_events(64);
    // RST answering a SYN: closed.
    let (id, ..) = tracked(s.handle_packet(at(0), &tcp(A, 1000, B, 81, SYN, 100, 0)));
    tracked(s.handle_packet(at(0), &tcp(B, 81, A, 1000, RST | ACK, 0, 101)));
    assert_eq!(
        drained(&mut s),
        [
            (EventKind::New, id),
            (EventKind::Destroy(DestroyReason::Closed), id)
        ]
    );
    // Management remove.
    let (id, ..) = tracked(s.handle_packet(at(1), &udp(A, 1, B, 53)));
    assert!(s.remove(id));
    assert_eq!(
        drained(&mut s),
        [
            (EventKind::New, id),
            (EventKind::Destroy(DestroyReason::Removed), id)
        ]
    );
    // Early drop: a full table of unassured entries.
    let (a, ..) = tracked(s.handle_packet(at(2), &udp(A, 2, B, 53)));
    let (b, ..) = tracked(s.handle_packet(at(2), &udp(A, 3, B, 53)));
    let (c, ..) = tracked(s.handle_packet(at(2), &udp(A, 4, B, 53)));
    let evs = drained(&mut s);
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(evs[..2], [(EventKind::New, a), (EventKind::New, b)]);
    assert!(
        evs[2] == (EventKind::Destroy(DestroyReason::EarlyDrop), a)
            || evs[2] == (EventKind::Destroy(DestroyReason::EarlyDrop), b),
        "{evs:?}"
    );
    assert_eq!(evs[3], (EventKind::New, c));
    // A UDP reply: seen-reply and assured, one update.
    let live = if s.get(a).is_some() { 2 } else { 3 };
    tracked(s.handle_packet(at(3), &udp(B, 53, A, live)));
    assert_eq!(drained(&mut s).len(), 1);
    tracked(s.handle_packet(at(3), &udp(B, 53, A, live)));
    assert_eq!(s.events_pending(), 0);
    s.check_invariants().unwrap();
}

#[test]
fn a_full_event_buffer_counts_what_it_loses() {
    let mut s = shard(64);
    s.set_events(4);
    for p in 0..10 {
        tracked(s.handle_packet(at(0), &udp(A, p, B, 53)));
    }
    assert_eq!(s.events_pending(), 4);
    assert_eq!(s.events_overflow(), 6);
    assert_eq!(drained(&mut s).len(), 4);
    // Room again after the drain; off frees the buffer and records nothing.
    tracked(s.handle_packet(at(0), &udp(A, 100, B, 53)));
    assert_eq!(s.events_pending(), 1);
    s.set_events(0);
    assert_eq!(s.events_pending(), 0);
    tracked(s.handle_packet(at(0), &udp(A, 101, B, 53)));
    assert_eq!(s.events_pending(), 0);
    assert_eq!(s.events_overflow(), 6);
}

#[test]
fn burst_events_match_packet_by_packet() {
    let pkts: Vec<FlowRepr> = (0..40)
        .flat_map(|p| [udp(A, p, B, 53), udp(B, 53, A, p)])
        .collect();
    let mut one = shard(32);
    let mut burst = shard(32);
    one.set_events(1024);
    burst.set_events(1024);
    for p in &pkts {
        one.handle_packet(at(0), p);
    }
    let mut out = vec![Verdict::New; pkts.len()];
    burst.handle_burst(at(0), &pkts, &mut out);
    let a: Vec<_> = drained(&mut one);
    let b: Vec<_> = drained(&mut burst);
    assert!(a.len() > 40, "{}", a.len());
    assert_eq!(a, b);
}

#[test]
fn layer7_state_lives_beside_the_entry_and_goes_with_it() {
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    assert_eq!(s.conn_view(id, at(0)).unwrap().l7, 0);
    assert!(s.set_l7_state(id, 0b101));
    assert_eq!(s.conn_view(id, at(0)).unwrap().l7, 0b101);
    assert!(s.remove(id));
    assert!(!s.set_l7_state(id, 1));
    // The slot's next connection starts without the old bits.
    let (id2, ..) = tracked(s.handle_packet(at(0), &udp(A, 3, B, 4)));
    assert_eq!(id2.slot(), id.slot());
    assert_eq!(s.conn_view(id2, at(0)).unwrap().l7, 0);
    s.check_invariants().unwrap();
}

#[test]
fn conncount_follows_connections_from_live_to_freed() {
    use std::sync::Arc;
    let mut s = shard(16);
    let (id, ..) = tracked(s.handle_packet(at(0), &udp(A, 1, B, 2)));
    // A table installed later counts what is live already.
    let c = Arc::new(super::ConnCount::new(&[(Family::V4, 32)], 64));
    s.set_conncount(Some(Arc::clone(&c)));
    let a = udp(A, 1, B, 2).tuple.src;
    assert_eq!(c.count(Family::V4, &a, 32), 1);
    // The same table again adds nothing.
    s.set_conncount(Some(Arc::clone(&c)));
    assert_eq!(c.count(Family::V4, &a, 32), 1);
    let (id2, ..) = tracked(s.handle_packet(at(0), &udp(A, 3, B, 4)));
    assert_eq!(c.count(Family::V4, &a, 32), 2);
    // The reply direction is the same connection.
    s.handle_packet(at(0), &udp(B, 2, A, 1));
    assert_eq!(c.count(Family::V4, &a, 32), 2);
    assert!(s.remove(id));
    assert_eq!(c.count(Family::V4, &a, 32), 1);
    assert!(s.remove(id2));
    assert_eq!(c.count(Family::V4, &a, 32), 0);
}
