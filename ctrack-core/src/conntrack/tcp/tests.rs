//! The TCP tracker's tests: the state table, window checks and properties.

use super::*;
use crate::flow::tcp_flags::{ACK, ECE, FIN, PSH, RST, SYN, URG};
use proptest::prelude::*;

const A: u32 = 1000; // originator's ISN
const B: u32 = 500_000; // responder's ISN
const O: Dir = Dir::Orig;
const R: Dir = Dir::Reply;

fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpInfo {
    TcpInfo {
        seq,
        ack,
        flags,
        window: 65535,
        wscale: None,
        sack_perm: false,
        payload_len: len,
    }
}

fn syn(seq: u32, wscale: Option<u8>) -> TcpInfo {
    TcpInfo {
        wscale,
        ..seg(SYN, seq, 0, 0)
    }
}

fn synack(seq: u32, ack: u32, wscale: Option<u8>) -> TcpInfo {
    TcpInfo {
        wscale,
        ..seg(SYN | ACK, seq, ack, 0)
    }
}

#[track_caller]
fn accept(c: &mut TcpConn, dir: Dir, info: TcpInfo) -> TcpOutcome {
    match c.handle(dir, &info, true) {
        TcpResult::Accept(o) => {
            assert_eq!(o.state, c.state());
            o
        }
        other => panic!(
            "expected accept of {info:?} in {:?}, got {other:?}",
            c.state()
        ),
    }
}

#[track_caller]
fn step(c: &mut TcpConn, dir: Dir, info: TcpInfo, want: TcpState) {
    let o = accept(c, dir, info);
    assert_eq!(o.state, want, "after {info:?}");
}

#[track_caller]
fn invalid(c: &mut TcpConn, dir: Dir, info: TcpInfo) -> TcpInvalid {
    let before = *c;
    match c.handle(dir, &info, true) {
        TcpResult::Invalid(why) => {
            assert_eq!(*c, before, "invalid segment changed the connection");
            why
        }
        other => panic!(
            "expected invalid for {info:?} in {:?}, got {other:?}",
            c.state()
        ),
    }
}

fn syn_sent() -> TcpConn {
    TcpConn::new(&syn(A, None), false).unwrap()
}

fn syn_received() -> TcpConn {
    let mut c = syn_sent();
    step(&mut c, R, synack(B, A + 1, None), TcpState::SynReceived);
    c
}

fn established() -> TcpConn {
    let mut c = syn_received();
    step(&mut c, O, seg(ACK, A + 1, B + 1, 0), TcpState::Established);
    c
}

/// Originator closed first: fin-wait, close-wait, last-ack, time-wait.
fn closing(upto: TcpState) -> TcpConn {
    let mut c = established();
    let path = [
        (O, seg(FIN | ACK, A + 1, B + 1, 0), TcpState::FinWait),
        (R, seg(ACK, B + 1, A + 2, 0), TcpState::CloseWait),
        (R, seg(FIN | ACK, B + 1, A + 2, 0), TcpState::LastAck),
        (O, seg(ACK, A + 2, B + 2, 0), TcpState::TimeWait),
    ];
    for (dir, info, want) in path {
        step(&mut c, dir, info, want);
        if want == upto {
            return c;
        }
    }
    panic!("not a closing state: {upto:?}");
}

#[test]
fn names_and_indices() {
    for (i, s) in TcpState::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
    }
    let names: Vec<_> = TcpState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "none",
            "syn-sent",
            "syn-received",
            "established",
            "fin-wait",
            "close-wait",
            "last-ack",
            "time-wait",
            "close",
            "syn-sent2"
        ]
    );
    assert_eq!(TcpInvalid::COUNT, TcpInvalid::ALL.len());
    for (i, r) in TcpInvalid::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    assert!(core::mem::size_of::<TcpConn>() <= 44);
}

#[test]
fn three_way_handshake_assures() {
    let mut c = TcpConn::new(&syn(A, None), false).unwrap();
    assert_eq!(c.state(), TcpState::SynSent);
    assert!(!c.seen_reply());
    let o = accept(&mut c, R, synack(B, A + 1, None));
    assert_eq!(
        o,
        TcpOutcome {
            state: TcpState::SynReceived,
            became_assured: false,
            remove_now: false
        }
    );
    assert!(c.seen_reply());
    let o = accept(&mut c, O, seg(ACK, A + 1, B + 1, 0));
    assert_eq!(
        o,
        TcpOutcome {
            state: TcpState::Established,
            became_assured: true,
            remove_now: false
        }
    );
    assert!(c.assured());
    // Data both ways; assured is reported once.
    let o = accept(&mut c, O, seg(ACK | PSH, A + 1, B + 1, 100));
    assert!(!o.became_assured);
    step(
        &mut c,
        R,
        seg(ACK | PSH, B + 1, A + 101, 200),
        TcpState::Established,
    );
    step(
        &mut c,
        O,
        seg(ACK, A + 101, B + 201, 0),
        TcpState::Established,
    );
}

#[test]
fn reply_ack_to_syn_is_ignored_and_first_ack_before_synack_invalid() {
    let mut c = syn_sent();
    // The originator cannot ACK before the SYN-ACK.
    assert_eq!(
        invalid(&mut c, O, seg(ACK, A + 1, B + 1, 0)),
        TcpInvalid::InvalidTransition
    );
    assert_eq!(
        invalid(&mut c, O, seg(FIN | ACK, A + 1, B + 1, 0)),
        TcpInvalid::InvalidTransition
    );
    // A bare ACK from the responder may be a challenge ACK: let through.
    step(&mut c, R, seg(ACK, B, A + 1, 0), TcpState::SynSent);
}

#[test]
fn retransmitted_syn() {
    let mut c = syn_sent();
    let o = accept(&mut c, O, syn(A, None));
    assert_eq!(o.state, TcpState::SynSent);
    // A new SYN with a higher ISN restarts the attempt.
    step(&mut c, O, syn(A + 10, None), TcpState::SynSent);
    assert_eq!(
        invalid(&mut c, R, synack(B, A + 1 + 10 + 1, None)),
        TcpInvalid::AckOutOfWindow
    );
    step(&mut c, R, synack(B, A + 11, None), TcpState::SynReceived);
    // A late SYN after the SYN-ACK is let through, state unchanged.
    step(&mut c, O, syn(A + 10, None), TcpState::SynReceived);
    step(&mut c, O, seg(ACK, A + 11, B + 1, 0), TcpState::Established);
    assert!(c.assured());
}

#[test]
fn retransmitted_synack() {
    let mut c = syn_received();
    step(&mut c, R, synack(B, A + 1, None), TcpState::SynReceived);
    step(&mut c, O, seg(ACK, A + 1, B + 1, 0), TcpState::Established);
    // A late retransmission after the handshake is let through too.
    step(&mut c, R, synack(B, A + 1, None), TcpState::Established);
    // The originator must not send a SYN-ACK.
    assert_eq!(
        invalid(&mut c, O, synack(A, B + 1, None)),
        TcpInvalid::InvalidTransition
    );
}

#[test]
fn simultaneous_open() {
    let mut c = syn_sent();
    step(&mut c, R, syn(B, None), TcpState::SynSent2);
    assert_eq!(TcpState::SynSent2.name(), "syn-sent2");
    step(&mut c, R, syn(B, None), TcpState::SynSent2); // retransmitted
    step(&mut c, O, synack(A, B + 1, None), TcpState::SynReceived);
    step(&mut c, R, synack(B, A + 1, None), TcpState::SynReceived);
    // The responder's ACK completes it (the table alone would not).
    let o = accept(&mut c, R, seg(ACK, B + 1, A + 1, 0));
    assert_eq!(o.state, TcpState::Established);
    assert!(o.became_assured);
}

#[test]
fn half_close_originator_first() {
    let c = closing(TcpState::TimeWait);
    assert_eq!(c.state(), TcpState::TimeWait);
    // Data still flows the other way in fin-wait/close-wait.
    let mut c = closing(TcpState::CloseWait);
    step(
        &mut c,
        R,
        seg(ACK | PSH, B + 1, A + 2, 50),
        TcpState::CloseWait,
    );
    step(&mut c, O, seg(ACK, A + 2, B + 51, 0), TcpState::CloseWait);
    step(
        &mut c,
        R,
        seg(FIN | ACK, B + 51, A + 2, 0),
        TcpState::LastAck,
    );
    step(
        &mut c,
        R,
        seg(FIN | ACK, B + 51, A + 2, 0),
        TcpState::LastAck,
    ); // retransmitted
    step(&mut c, O, seg(ACK, A + 2, B + 52, 0), TcpState::TimeWait);
    step(&mut c, O, seg(ACK, A + 2, B + 52, 0), TcpState::TimeWait); // retransmitted
}

#[test]
fn half_close_responder_first_and_both_fins() {
    let mut c = established();
    step(
        &mut c,
        R,
        seg(FIN | ACK, B + 1, A + 1, 0),
        TcpState::FinWait,
    );
    step(&mut c, O, seg(ACK, A + 1, B + 2, 0), TcpState::CloseWait);
    step(
        &mut c,
        O,
        seg(FIN | ACK, A + 1, B + 2, 0),
        TcpState::LastAck,
    );
    step(&mut c, R, seg(ACK, B + 2, A + 2, 0), TcpState::TimeWait);

    let mut c = established();
    step(
        &mut c,
        O,
        seg(FIN | ACK, A + 1, B + 1, 0),
        TcpState::FinWait,
    );
    step(
        &mut c,
        R,
        seg(FIN | ACK, B + 1, A + 1, 0),
        TcpState::LastAck,
    );
    step(&mut c, O, seg(ACK, A + 2, B + 2, 0), TcpState::TimeWait);
}

#[test]
fn rst_in_syn_sent() {
    // The only answer is an RST: close and remove now.
    let mut c = syn_sent();
    assert_eq!(
        invalid(&mut c, R, seg(RST | ACK, 0, A + 5000, 0)),
        TcpInvalid::RstOutOfWindow
    );
    let o = accept(&mut c, R, seg(RST | ACK, 0, A + 1, 0));
    assert_eq!(
        o,
        TcpOutcome {
            state: TcpState::Close,
            became_assured: false,
            remove_now: true
        }
    );
    // The originator giving up also removes it.
    let mut c = syn_sent();
    let o = accept(&mut c, O, seg(RST, A + 1, 0, 0));
    assert!(o.remove_now);
}

#[test]
fn rst_in_syn_received() {
    let mut c = syn_received();
    assert_eq!(
        invalid(&mut c, O, seg(RST, A + 1 + 10_000_000, 0, 0)),
        TcpInvalid::RstOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, O, seg(RST, A - 100, 0, 0)),
        TcpInvalid::RstBehindAck
    );
    let o = accept(&mut c, O, seg(RST, A + 1, 0, 0));
    assert_eq!(
        o,
        TcpOutcome {
            state: TcpState::Close,
            became_assured: false,
            remove_now: false
        }
    );
    let mut c = syn_received();
    step(&mut c, R, seg(RST, B + 1, 0, 0), TcpState::Close);
}

#[test]
fn rst_in_established() {
    let mut c = established();
    // Out of window, behind the peer's ACK, or in window but not exact.
    assert_eq!(
        invalid(&mut c, R, seg(RST, B + 1 + 10_000_000, 0, 0)),
        TcpInvalid::RstOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, R, seg(RST | ACK, B - 50, A + 1, 0)),
        TcpInvalid::RstBehindAck
    );
    assert_eq!(
        invalid(&mut c, O, seg(RST, A + 1 + 10_000_000, 0, 0)),
        TcpInvalid::RstOutOfWindow
    );
    step(&mut c, R, seg(RST, B + 100, 0, 0), TcpState::Established);
    // Exactly where the receiver expects it: close.
    let mut c = established();
    let o = accept(&mut c, R, seg(RST, B + 1, 0, 0));
    assert_eq!(
        o,
        TcpOutcome {
            state: TcpState::Close,
            became_assured: false,
            remove_now: false
        }
    );
    let mut c = established();
    step(&mut c, O, seg(RST | ACK, A + 1, B + 1, 0), TcpState::Close);
    // An RST right after the sender's own data ("RST train") closes too.
    let mut c = established();
    step(
        &mut c,
        R,
        seg(ACK | PSH, B + 1, A + 1, 19),
        TcpState::Established,
    );
    step(&mut c, R, seg(RST | ACK, B + 20, A + 1, 0), TcpState::Close);
}

#[test]
fn rst_in_closing_states_skips_window_checks() {
    // As Linux: once closing, the tuple may be reused and our window
    // data stale, so any RST closes (all these timeouts are short).
    for s in [
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
    ] {
        let mut c = closing(s);
        step(&mut c, R, seg(RST, B + 123_456_789, 0, 0), TcpState::Close);
        step(&mut c, O, seg(RST, 7, 0, 0), TcpState::Close);
    }
    // Still bad flags are refused everywhere.
    let mut c = closing(TcpState::FinWait);
    assert_eq!(
        invalid(&mut c, R, seg(RST | SYN, B + 1, 0, 0)),
        TcpInvalid::BadFlags
    );
}

#[test]
fn out_of_window_data_and_acks() {
    let mut c = established();
    // Beyond the advertised window.
    assert_eq!(
        invalid(&mut c, O, seg(ACK, A + 1 + 1_000_000, B + 1, 100)),
        TcpInvalid::SeqOutOfWindow
    );
    // Acknowledging data never sent.
    assert_eq!(
        invalid(&mut c, O, seg(ACK, A + 1, B + 5000, 0)),
        TcpInvalid::AckOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, R, seg(ACK, B + 1, A + 2, 0)),
        TcpInvalid::AckOutOfWindow
    );
    // A stray ACK far from anything.
    assert_eq!(
        invalid(&mut c, R, seg(ACK, 0x8000_0000, 0x4000_0000, 0)),
        TcpInvalid::SeqOutOfWindow
    );
    // No flags at all.
    assert_eq!(
        invalid(&mut c, R, seg(0, B + 1, A + 1, 0)),
        TcpInvalid::BadFlags
    );
    // Retransmitted data (old) is let through and changes no state.
    step(
        &mut c,
        O,
        seg(ACK | PSH, A + 1, B + 1, 1000),
        TcpState::Established,
    );
    step(
        &mut c,
        R,
        seg(ACK, B + 1, A + 1001, 0),
        TcpState::Established,
    );
    step(
        &mut c,
        O,
        seg(ACK | PSH, A + 1, B + 1, 1000),
        TcpState::Established,
    );
    // Slight overshoot of the window is let through (as Linux).
    step(
        &mut c,
        O,
        seg(ACK | PSH | ECE, A + 1001, B + 1, 65535 + 10),
        TcpState::Established,
    );
}

#[test]
fn forged_fin_out_of_window() {
    let mut c = established();
    assert_eq!(
        invalid(&mut c, R, seg(FIN | ACK, B + 1 + 5_000_000, A + 1, 0)),
        TcpInvalid::SeqOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, O, seg(FIN | ACK, A + 1, B + 99_999, 0)),
        TcpInvalid::AckOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, O, seg(FIN, A + 1, 0, 0)),
        TcpInvalid::BadFlags
    );
    assert_eq!(c.state(), TcpState::Established);
}

#[test]
fn syn_on_time_wait_reopens() {
    let mut c = closing(TcpState::TimeWait);
    let before = c;
    assert_eq!(
        c.handle(O, &syn(A + 100_000, None), true),
        TcpResult::Reopen
    );
    assert_eq!(c, before);
    // The responder may also reopen with roles swapped.
    assert_eq!(
        c.handle(R, &syn(B + 100_000, None), true),
        TcpResult::Reopen
    );
    // The caller then starts a new connection from that SYN.
    assert_eq!(
        TcpConn::new(&syn(A + 100_000, None), false)
            .unwrap()
            .state(),
        TcpState::SynSent
    );
}

#[test]
fn syn_on_close() {
    // Aborted by the same end that now sends a SYN: reopen.
    let mut c = established();
    step(&mut c, O, seg(RST | ACK, A + 1, B + 1, 0), TcpState::Close);
    assert_eq!(c.handle(O, &syn(A + 7, None), true), TcpResult::Reopen);
    // Aborted by the other end: the SYN is let through and noted, and
    // the responder's SYN-ACK to it resynchronises the entry.
    let mut c = established();
    step(&mut c, R, seg(RST, B + 1, 0, 0), TcpState::Close);
    step(&mut c, O, syn(9_000_000, Some(3)), TcpState::Close);
    step(
        &mut c,
        R,
        synack(70_000, 9_000_001, Some(5)),
        TcpState::SynReceived,
    );
    assert_eq!(c.wscale(O), 3);
    assert_eq!(c.wscale(R), 5);
    step(
        &mut c,
        O,
        seg(ACK, 9_000_001, 70_001, 0),
        TcpState::Established,
    );
}

#[test]
fn syn_in_established_is_ignored_then_resyncs() {
    // Conntrack missed the close; the ends start over on the same tuple.
    let mut c = established();
    step(&mut c, O, syn(A + 77_777, None), TcpState::Established);
    step(
        &mut c,
        R,
        synack(B + 99_999, A + 77_778, None),
        TcpState::SynReceived,
    );
    step(
        &mut c,
        O,
        seg(ACK, A + 77_778, B + 100_000, 0),
        TcpState::Established,
    );
}

#[test]
fn challenge_ack_in_last_ack_does_not_close() {
    let mut c = closing(TcpState::LastAck);
    step(&mut c, O, syn(A + 50_000, None), TcpState::LastAck);
    // The responder's challenge ACK: not the last ACK.
    step(&mut c, R, seg(ACK, B + 2, A + 2, 0), TcpState::LastAck);
}

#[test]
fn first_packet_rules() {
    assert_eq!(
        TcpConn::new(&seg(RST, A, 0, 0), true),
        Err(TcpInvalid::RstOnNew)
    );
    assert_eq!(
        TcpConn::new(&seg(RST | ACK, A, B, 0), true),
        Err(TcpInvalid::RstOnNew)
    );
    assert_eq!(
        TcpConn::new(&seg(SYN | RST, A, 0, 0), true),
        Err(TcpInvalid::BadFlags)
    );
    assert_eq!(
        TcpConn::new(&seg(SYN | FIN, A, 0, 0), true),
        Err(TcpInvalid::BadFlags)
    );
    assert_eq!(
        TcpConn::new(&seg(0, A, 0, 0), true),
        Err(TcpInvalid::BadFlags)
    );
    assert_eq!(
        TcpConn::new(&synack(A, B, None), true),
        Err(TcpInvalid::InvalidNew)
    );
    assert_eq!(
        TcpConn::new(&seg(FIN | ACK, A, B, 0), true),
        Err(TcpInvalid::InvalidNew)
    );
    assert_eq!(
        TcpConn::new(&seg(ACK, A, B, 0), false),
        Err(TcpInvalid::NotSynLooseOff)
    );
    assert_eq!(
        TcpConn::new(&seg(SYN | URG | PSH, A, 0, 0), false)
            .unwrap()
            .state(),
        TcpState::SynSent
    );
    assert!(TcpConn::closes(&seg(FIN | ACK, 0, 0, 0)));
    assert!(TcpConn::closes(&seg(RST, 0, 0, 0)));
    assert!(!TcpConn::closes(&seg(ACK | URG, 0, 0, 0)));
}

#[test]
fn loose_pickup() {
    let mut c = TcpConn::new(&seg(ACK | PSH, A, B, 100), true).unwrap();
    assert_eq!(c.state(), TcpState::Established);
    assert!(!c.assured());
    // The reply is seen: not yet assured (as Linux: the next valid
    // segment after a reply assures it).
    let o = accept(&mut c, R, seg(ACK, B, A + 100, 0));
    assert!(!o.became_assured);
    let o = accept(&mut c, O, seg(ACK, A + 100, B, 0));
    assert!(o.became_assured);
    // Window scale unknown: data beyond the unscaled window passes.
    step(
        &mut c,
        O,
        seg(ACK, A + 100 + 1_000_000, B, 1000),
        TcpState::Established,
    );
    // But an out-of-window RST does not.
    assert_eq!(
        invalid(&mut c, R, seg(RST, B + 900_000_000, 0, 0)),
        TcpInvalid::RstOutOfWindow
    );
    step(&mut c, R, seg(RST, B, 0, 0), TcpState::Close);

    // A picked-up connection whose only answer is an RST is removed.
    let mut c = TcpConn::new(&seg(ACK, A, B, 0), true).unwrap();
    let o = accept(&mut c, R, seg(RST, B, 0, 0));
    assert!(o.remove_now);
}

fn scaled_handshake(orig: Option<u8>, reply: Option<u8>) -> TcpConn {
    let mut c = TcpConn::new(
        &TcpInfo {
            window: 1000,
            ..syn(A, orig)
        },
        false,
    )
    .unwrap();
    step(
        &mut c,
        R,
        TcpInfo {
            window: 1000,
            ..synack(B, A + 1, reply)
        },
        TcpState::SynReceived,
    );
    step(
        &mut c,
        O,
        TcpInfo {
            window: 1000,
            ..seg(ACK, A + 1, B + 1, 0)
        },
        TcpState::Established,
    );
    // The responder advertises 1000 (<< scale).
    step(
        &mut c,
        R,
        TcpInfo {
            window: 1000,
            ..seg(ACK, B + 1, A + 1, 0)
        },
        TcpState::Established,
    );
    c
}

#[test]
fn window_scaling_both_sides() {
    let mut c = scaled_handshake(Some(7), Some(7));
    assert_eq!((c.wscale(O), c.wscale(R)), (7, 7));
    // 100 KB ahead fits in 1000 << 7 = 128000.
    step(
        &mut c,
        O,
        TcpInfo {
            window: 1000,
            ..seg(ACK, A + 1 + 100_000, B + 1, 1000)
        },
        TcpState::Established,
    );
    assert_eq!(
        invalid(
            &mut c,
            O,
            TcpInfo {
                window: 1000,
                ..seg(ACK, A + 1 + 400_000, B + 1, 1000)
            }
        ),
        TcpInvalid::SeqOutOfWindow
    );
}

#[test]
fn window_scaling_one_side_only() {
    for (o, r) in [(Some(7), None), (None, Some(7))] {
        let mut c = scaled_handshake(o, r);
        assert_eq!((c.wscale(O), c.wscale(R)), (0, 0));
        assert_eq!(
            invalid(
                &mut c,
                O,
                TcpInfo {
                    window: 1000,
                    ..seg(ACK, A + 1 + 100_000, B + 1, 1000)
                }
            ),
            TcpInvalid::SeqOutOfWindow
        );
        step(
            &mut c,
            O,
            TcpInfo {
                window: 1000,
                ..seg(ACK, A + 1, B + 1, 1000)
            },
            TcpState::Established,
        );
    }
}

#[test]
fn sequence_wraparound() {
    let a = u32::MAX - 5;
    let b = u32::MAX - 100;
    let mut c = TcpConn::new(&syn(a, Some(2)), false).unwrap();
    step(
        &mut c,
        R,
        synack(b, a.wrapping_add(1), Some(2)),
        TcpState::SynReceived,
    );
    step(
        &mut c,
        O,
        seg(ACK, a.wrapping_add(1), b.wrapping_add(1), 0),
        TcpState::Established,
    );
    // Data across 2^32 both ways.
    step(
        &mut c,
        O,
        seg(ACK | PSH, a.wrapping_add(1), b.wrapping_add(1), 1000),
        TcpState::Established,
    );
    let a2 = a.wrapping_add(1001);
    step(
        &mut c,
        R,
        seg(ACK | PSH, b.wrapping_add(1), a2, 1000),
        TcpState::Established,
    );
    let b2 = b.wrapping_add(1001);
    step(&mut c, O, seg(ACK, a2, b2, 0), TcpState::Established);
    // Window checks still work past the wrap.
    assert_eq!(
        invalid(&mut c, O, seg(ACK, a2, b2.wrapping_add(10), 0)),
        TcpInvalid::AckOutOfWindow
    );
    assert_eq!(
        invalid(&mut c, R, seg(RST, b2.wrapping_add(50_000_000), 0, 0)),
        TcpInvalid::RstOutOfWindow
    );
    step(&mut c, O, seg(FIN | ACK, a2, b2, 0), TcpState::FinWait);
    step(
        &mut c,
        R,
        seg(FIN | ACK, b2, a2.wrapping_add(1), 0),
        TcpState::LastAck,
    );
    step(
        &mut c,
        O,
        seg(ACK, a2.wrapping_add(1), b2.wrapping_add(1), 0),
        TcpState::TimeWait,
    );
}

#[test]
fn urg_is_fine_where_linux_allows_it() {
    let mut c = established();
    step(
        &mut c,
        O,
        seg(ACK | URG | PSH, A + 1, B + 1, 1),
        TcpState::Established,
    );
    assert_eq!(
        invalid(&mut c, O, seg(URG, A + 2, B + 1, 0)),
        TcpInvalid::BadFlags
    );
}

// ---- property test --------------------------------------------------

#[derive(Clone, Debug)]
struct Seg {
    reply: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    wscale: Option<u8>,
    len: u32,
}

fn flags_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(SYN),
        Just(SYN | ACK),
        Just(ACK),
        Just(ACK | PSH),
        Just(FIN | ACK),
        Just(RST),
        Just(RST | ACK),
        any::<u8>(),
    ]
}

/// Sequence numbers near the two ISNs (so many segments are in window),
/// near 2^32, or anywhere.
fn seq_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        (0u32..3000).prop_map(|d| A.wrapping_add(d)),
        (0u32..3000).prop_map(|d| B.wrapping_add(d)),
        (0u32..3000).prop_map(|d| d.wrapping_sub(1500)),
        Just(0u32),
        any::<u32>(),
    ]
}

fn seg_strategy() -> impl Strategy<Value = Seg> {
    (
        any::<bool>(),
        flags_strategy(),
        seq_strategy(),
        seq_strategy(),
        prop_oneof![Just(0u16), Just(65535u16), any::<u16>()],
        prop_oneof![Just(None), (0u8..20).prop_map(Some)],
        prop_oneof![Just(0u32), 1u32..2000, any::<u32>()],
    )
        .prop_map(|(reply, flags, seq, ack, window, wscale, len)| Seg {
            reply,
            flags,
            seq,
            ack,
            window,
            wscale,
            len,
        })
}

fn info(s: &Seg) -> TcpInfo {
    TcpInfo {
        seq: s.seq,
        ack: s.ack,
        flags: s.flags,
        window: s.window,
        wscale: s.wscale,
        sack_perm: false,
        payload_len: s.len,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_segments_never_panic_and_invalid_changes_nothing(
        first in seg_strategy(),
        loose in any::<bool>(),
        segs in proptest::collection::vec(seg_strategy(), 0..40),
    ) {
        let mut conn = match TcpConn::new(&info(&first), loose) {
            Ok(c) => c,
            Err(_) => TcpConn::new(&syn(A, Some(7)), false).unwrap(),
        };
        prop_assert_ne!(conn.state(), TcpState::None);
        for s in &segs {
            let dir = if s.reply { Dir::Reply } else { Dir::Orig };
            let before = conn;
            match conn.handle(dir, &info(s), loose) {
                TcpResult::Invalid(why) => {
                    prop_assert_eq!(conn, before, "{:?} changed it", why);
                }
                TcpResult::Reopen => {
                    prop_assert_eq!(conn, before);
                    prop_assert!(matches!(conn.state(), TcpState::TimeWait | TcpState::Close));
                    prop_assert!(s.flags & SYN != 0);
                    // (Refused only for absurd payload lengths.)
                    conn = TcpConn::new(&info(s), loose)
                        .unwrap_or_else(|_| TcpConn::new(&syn(A, None), false).unwrap());
                }
                TcpResult::Accept(o) => {
                    prop_assert_eq!(o.state, conn.state());
                    prop_assert_ne!(o.state, TcpState::None);
                    if o.became_assured {
                        prop_assert!(!before.assured() && conn.assured());
                    }
                    if o.remove_now {
                        prop_assert!(s.flags & RST != 0);
                    }
                }
            }
        }
    }
}

const LIBERAL: TcpOpts = TcpOpts {
    loose: true,
    liberal: true,
};

#[test]
fn liberal_lets_out_of_window_segments_pass_but_not_rsts() {
    // The same segments `out_of_window_data_and_acks` finds invalid.
    let mut c = established();
    let before = c;
    for (dir, info) in [
        (O, seg(ACK, A + 1 + 1_000_000, B + 1, 100)),
        (O, seg(ACK, A + 1, B + 5000, 0)),
        (R, seg(ACK, B + 1, A + 2, 0)),
    ] {
        assert!(
            matches!(c.handle(dir, &info, true), TcpResult::Invalid(_)),
            "{info:?}"
        );
        match c.handle_with(dir, &info, LIBERAL) {
            TcpResult::Accept(o) => assert_eq!(o.state, TcpState::Established),
            other => panic!("liberal refused {info:?}: {other:?}"),
        }
    }
    // Passing taught the window nothing: the strict check still refuses.
    assert_eq!(
        invalid(&mut c, O, seg(ACK, A + 1 + 1_000_000, B + 1, 100)),
        TcpInvalid::SeqOutOfWindow
    );
    assert_eq!(c.side, before.side);
    // An RST out of the window stays invalid, liberal or not.
    let rst = seg(RST | ACK, A + 1 + 1_000_000, B + 1, 0);
    assert_eq!(
        c.handle_with(O, &rst, LIBERAL),
        TcpResult::Invalid(TcpInvalid::RstOutOfWindow)
    );
    // A new connection under liberal tracking starts as any other.
    let c = TcpConn::new_with(&syn(A, None), LIBERAL).unwrap();
    assert_eq!(c.state(), TcpState::SynSent);
}

#[test]
fn unacknowledged_data_caps_the_timeout_until_acked() {
    let mut c = established();
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
    step(
        &mut c,
        O,
        seg(ACK | PSH, A + 1, B + 1, 100),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::Unacked);
    // A partial ACK leaves data unacknowledged.
    step(&mut c, R, seg(ACK, B + 1, A + 51, 0), TcpState::Established);
    assert_eq!(c.timeout_cap(), TimeoutCap::Unacked);
    step(
        &mut c,
        R,
        seg(ACK, B + 1, A + 101, 0),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
    // The other way round.
    step(
        &mut c,
        R,
        seg(ACK | PSH, B + 1, A + 101, 10),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::Unacked);
    step(
        &mut c,
        O,
        seg(ACK, A + 101, B + 11, 0),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
}

#[test]
fn the_same_segment_three_times_caps_the_timeout() {
    let mut c = established();
    let data = seg(ACK | PSH, A + 1, B + 1, 100);
    step(&mut c, O, data, TcpState::Established);
    // Two repeats: not yet.
    for _ in 0..2 {
        step(&mut c, O, data, TcpState::Established);
        assert_ne!(c.timeout_cap(), TimeoutCap::MaxRetrans);
    }
    step(&mut c, O, data, TcpState::Established);
    assert_eq!(c.timeout_cap(), TimeoutCap::MaxRetrans);
    // An answer that moves on ends the run.
    step(
        &mut c,
        R,
        seg(ACK, B + 1, A + 101, 0),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
    // A repeat from the other end does not continue a run of this one's.
    for _ in 0..3 {
        step(
            &mut c,
            O,
            seg(ACK, A + 101, B + 1, 0),
            TcpState::Established,
        );
    }
    step(
        &mut c,
        R,
        seg(ACK, B + 1, A + 101, 0),
        TcpState::Established,
    );
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
}

#[test]
fn acks_that_move_on_are_not_repeats() {
    // A download's pure ACKs: same end and window, a higher ACK each time.
    let mut c = established();
    let mut acked = 0;
    for _ in 0..6 {
        step(
            &mut c,
            R,
            seg(ACK | PSH, B + 1 + acked, A + 1, 100),
            TcpState::Established,
        );
        acked += 100;
        step(
            &mut c,
            O,
            seg(ACK, A + 1, B + 1 + acked, 0),
            TcpState::Established,
        );
        step(
            &mut c,
            O,
            seg(ACK, A + 1, B + 1 + acked, 0),
            TcpState::Established,
        );
    }
    assert_eq!(c.timeout_cap(), TimeoutCap::None);
    // The same ACK three more times is a run.
    for _ in 0..3 {
        step(
            &mut c,
            O,
            seg(ACK, A + 1, B + 1 + acked, 0),
            TcpState::Established,
        );
    }
    assert_eq!(c.timeout_cap(), TimeoutCap::MaxRetrans);
}
