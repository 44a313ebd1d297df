//! TCP connection tracking: the per-connection state machine and the
//! sequence/window checks, after Linux's `nf_conntrack_proto_tcp.c`.
//!
//! Pure and sans-io: a [`TcpConn`] is fed [`TcpInfo`] summaries and answers
//! with a [`TcpResult`]. It reads no clock and allocates nothing; timeouts are
//! the caller's (it maps [`TcpState`] to the `tcp-*-timeout` settings).
//!
//! The rules (see `docs/tcp-tracking.md` for where and why we differ from Linux):
//!
//! - A segment is classified as SYN, SYN-ACK, FIN, ACK, RST (or none) and the
//!   next state is looked up in a per-direction transition table. A table entry
//!   is a state, "invalid" (the segment is refused and changes nothing) or
//!   "ignore" (the segment may be valid but we cannot tell: it is let through,
//!   the state stays, and it is noted so that a later answer can resynchronise).
//! - A segment that makes it past the table must also lie in the window that
//!   the tracker computed for its direction (`end`, `maxend`, `maxwin`, as
//!   Linux's `td_*`); otherwise it is invalid and changes nothing, or, for
//!   segments that are merely old (retransmissions), accepted without effect.
//! - An RST closes an established connection only when its sequence number is
//!   exactly the highest ACK its receiver sent (RFC 5961); other in-window
//!   RSTs are let through (the peer answers with a challenge ACK) and change
//!   nothing.
//!
//! Invalid segments never change a [`TcpConn`].

use super::Dir;
use crate::flow::{TcpInfo, tcp_flags};

/// TCP connection states, as Linux's conntrack has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    SynSent = 1,
    SynReceived = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    /// Simultaneous open: a SYN was seen from both ends.
    SynSent2 = 9,
}

impl TcpState {
    pub const ALL: [TcpState; 10] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::SynSent2,
    ];

    /// The name RouterOS shows as `tcp-state`. `SynSent2` (simultaneous open,
    /// which RouterOS does not list) is `"syn-sent2"`, so names stay unique.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn-sent",
            TcpState::SynReceived => "syn-received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin-wait",
            TcpState::CloseWait => "close-wait",
            TcpState::LastAck => "last-ack",
            TcpState::TimeWait => "time-wait",
            TcpState::Close => "close",
            TcpState::SynSent2 => "syn-sent2",
        }
    }

    /// Position in [`TcpState::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// States in which both ends may already have torn the connection down
    /// (Linux's "can early drop" set).
    const fn closing(self) -> bool {
        matches!(
            self,
            TcpState::FinWait
                | TcpState::CloseWait
                | TcpState::LastAck
                | TcpState::TimeWait
                | TcpState::Close
        )
    }
}

/// Why a segment was found invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpInvalid {
    /// A flag combination that no TCP sends (e.g. SYN+FIN, SYN+RST, FIN
    /// without ACK, no flags at all).
    BadFlags = 0,
    /// A first segment that cannot start a connection (SYN-ACK, FIN).
    InvalidNew = 1,
    /// A first segment that is an RST.
    RstOnNew = 2,
    /// A first segment that is not a SYN while loose tracking is off.
    NotSynLooseOff = 3,
    /// The transition table refuses this segment in this state and direction.
    InvalidTransition = 4,
    /// The segment lies beyond the receiver's window.
    SeqOutOfWindow = 5,
    /// The segment acknowledges data that was never sent.
    AckOutOfWindow = 6,
    /// An RST outside the window.
    RstOutOfWindow = 7,
    /// An RST whose sequence number lies before what its receiver already
    /// acknowledged.
    RstBehindAck = 8,
}

impl TcpInvalid {
    pub const ALL: [TcpInvalid; 9] = [
        TcpInvalid::BadFlags,
        TcpInvalid::InvalidNew,
        TcpInvalid::RstOnNew,
        TcpInvalid::NotSynLooseOff,
        TcpInvalid::InvalidTransition,
        TcpInvalid::SeqOutOfWindow,
        TcpInvalid::AckOutOfWindow,
        TcpInvalid::RstOutOfWindow,
        TcpInvalid::RstBehindAck,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            TcpInvalid::BadFlags => "bad_flags",
            TcpInvalid::InvalidNew => "invalid_new",
            TcpInvalid::RstOnNew => "rst_on_new",
            TcpInvalid::NotSynLooseOff => "not_syn_loose_off",
            TcpInvalid::InvalidTransition => "invalid_transition",
            TcpInvalid::SeqOutOfWindow => "seq_out_of_window",
            TcpInvalid::AckOutOfWindow => "ack_out_of_window",
            TcpInvalid::RstOutOfWindow => "rst_out_of_window",
            TcpInvalid::RstBehindAck => "rst_behind_ack",
        }
    }

    /// Position in [`TcpInvalid::ALL`] (for per-reason counters).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What an accepted segment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOutcome {
    /// The state after the segment (unchanged for ignored segments).
    pub state: TcpState,
    /// The connection became assured with this segment (reported once).
    pub became_assured: bool,
    /// Remove the entry now: the only answer to the connection was an RST.
    pub remove_now: bool,
}

/// The verdict on one segment of a known connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpResult {
    /// The segment is valid (or cannot be told invalid) and was applied.
    Accept(TcpOutcome),
    /// The segment is invalid; the connection is unchanged.
    Invalid(TcpInvalid),
    /// SYN on a closed/time-wait entry: delete the entry, then call
    /// [`TcpConn::new`] with this packet (its sender becomes the originator).
    Reopen,
}

/// The flag class that indexes the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Class {
    Syn = 0,
    SynAck = 1,
    Fin = 2,
    Ack = 3,
    Rst = 4,
    None = 5,
}

impl Class {
    const fn from_bits(b: u8) -> Class {
        match b {
            0 => Class::Syn,
            1 => Class::SynAck,
            2 => Class::Fin,
            3 => Class::Ack,
            4 => Class::Rst,
            _ => Class::None,
        }
    }
}

/// Classify a segment, or `None` for a flag combination no TCP sends.
/// PSH, ECE and CWR never matter; URG only on SYN, FIN+ACK or ACK.
fn classify(flags: u8) -> Option<Class> {
    use tcp_flags::*;
    let f = flags & !(PSH | ECE | CWR);
    let valid = f == SYN
        || f == SYN | URG
        || f == SYN | ACK
        || f == RST
        || f == RST | ACK
        || f == FIN | ACK
        || f == FIN | ACK | URG
        || f == ACK
        || f == ACK | URG;
    if !valid {
        return Option::None;
    }
    Some(if f & RST != 0 {
        Class::Rst
    } else if f & SYN != 0 {
        if f & ACK != 0 {
            Class::SynAck
        } else {
            Class::Syn
        }
    } else if f & FIN != 0 {
        Class::Fin
    } else if f & ACK != 0 {
        Class::Ack
    } else {
        Class::None
    })
}

/// A transition table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    To(TcpState),
    /// Let through without a state change (we may be out of sync).
    Ignore,
    /// Refuse.
    Invalid,
}

const SS: Next = Next::To(TcpState::SynSent);
const SR: Next = Next::To(TcpState::SynReceived);
const ES: Next = Next::To(TcpState::Established);
const FW: Next = Next::To(TcpState::FinWait);
const CW: Next = Next::To(TcpState::CloseWait);
const LA: Next = Next::To(TcpState::LastAck);
const TW: Next = Next::To(TcpState::TimeWait);
const CL: Next = Next::To(TcpState::Close);
const S2: Next = Next::To(TcpState::SynSent2);
const IV: Next = Next::Invalid;
const IG: Next = Next::Ignore;

/// `TABLE[dir][class][state]`, states in [`TcpState::ALL`] order:
/// none, syn-sent, syn-received, established, fin-wait, close-wait, last-ack,
/// time-wait, close, syn-sent2. The same facts as Linux's table.
#[rustfmt::skip]
const TABLE: [[[Next; 10]; 6]; 2] = [
    // From the originator.
    [
        // SYN: a new attempt from none; a retransmission in syn-sent(2);
        // a reopen from time-wait/close; otherwise we may be out of sync.
        [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // SYN-ACK: only the originator's answer in a simultaneous open.
        [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // FIN: starts or completes the close once the peer answered.
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ACK: mid-stream pickup from none; completes the handshake.
        [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // RST
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // no flags
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    // From the responder.
    [
        // SYN: simultaneous open; a reopen with roles swapped from time-wait.
        [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // SYN-ACK: the answer; later ones are retransmissions, let through.
        [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // FIN
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ACK: in syn-sent(2) possibly a challenge ACK to a stale SYN.
        [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // RST
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // no flags
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

/// `before(a, b)` in sequence space: `a` precedes `b` (mod 2^32).
#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// The sequence number just after the segment (SYN and FIN count one each).
#[inline]
fn seg_end(info: &TcpInfo) -> u32 {
    let f = info.flags;
    info.seq
        .wrapping_add(info.payload_len)
        .wrapping_add(u32::from(f & tcp_flags::SYN != 0))
        .wrapping_add(u32::from(f & tcp_flags::FIN != 0))
}

/// Largest window shift RFC 7323 allows.
const MAX_WSCALE: u8 = 14;
/// Lower bound of how far behind an ACK may be (Linux's MAXACKWINCONST).
const MAX_ACK_WIN_CONST: u32 = 66000;

// Per-direction flags (low nibble of `Side::flags`; the high nibble holds the
// window scale).
/// The SYN of this direction carried a window scale option.
const F_WSCALE: u8 = 0x01;
/// This direction sent the first FIN.
const F_CLOSE_INIT: u8 = 0x02;
/// `maxack` holds a value.
const F_MAXACK: u8 = 0x04;
/// Picked up mid-stream: window failures of non-RST segments are tolerated.
const F_LIBERAL: u8 = 0x08;

// Connection flags.
const C_SEEN_REPLY: u8 = 0x01;
const C_ASSURED: u8 = 0x02;
/// The last noted segment came from the responder.
const C_LAST_REPLY: u8 = 0x04;
/// The last ignored SYN carried a window scale option.
const C_LAST_WSCALE: u8 = 0x08;
/// An ignored SYN in last-ack may be answered by a challenge ACK.
const C_CHALLENGE: u8 = 0x10;
/// A SYN was seen from both ends.
const C_SIMOPEN: u8 = 0x20;
/// A direction sent data its receiver has not acknowledged yet (Linux's
/// `IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED`): this bit for the originator, the
/// next one up (shifted by [`Dir::index`]) for the responder.
const C_UNACKED: u8 = 0x40;

/// What the tracker knows about one direction's sender (Linux's `td_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Side {
    /// Highest sequence number sent, plus one (`td_end`).
    end: u32,
    /// Highest right edge of the peer's advertised window (`td_maxend`).
    maxend: u32,
    /// Largest window this sender advertised, scaled (`td_maxwin`); 0 until
    /// the direction was first seen.
    maxwin: u32,
    /// Highest ACK this sender sent (`td_maxack`, valid with [`F_MAXACK`]).
    ///
    /// The responder's `maxack` doubles as Linux's `last_ack` in syn-sent
    /// (see [`TcpConn::last_ack`]).
    maxack: u32,
}

/// The settings a segment is tracked under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOpts {
    /// `loose-tcp-tracking` (Linux's `nf_conntrack_tcp_loose`): a
    /// connection may start mid-stream (only read when one is created).
    pub loose: bool,
    /// `liberal-tcp-tracking` (Linux's `nf_conntrack_tcp_be_liberal`): only
    /// out-of-window RSTs are invalid; other segments outside the window
    /// pass, without moving it.
    pub liberal: bool,
}

/// Which of Linux's shorter TCP timeouts caps a connection's state timeout
/// now (`nf_conntrack_proto_tcp.c`, `tcp_packet`): the state's timeout is
/// replaced by the cap's when that is shorter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutCap {
    /// The state's timeout applies.
    None,
    /// The same segment came [`MAX_RETRANS`] times or more in a row:
    /// `tcp-max-retrans-timeout` (Linux's `_timeout_max_retrans`).
    MaxRetrans,
    /// Some data is not acknowledged yet: `tcp-unacked-timeout` (Linux's
    /// `_timeout_unacknowledged`).
    Unacked,
}

/// Linux's `nf_conntrack_tcp_max_retrans` default: repeats of one segment
/// before [`TimeoutCap::MaxRetrans`] applies. (RouterOS has no setting
/// for the count.)
pub const MAX_RETRANS: u8 = 3;

/// Connection tracking data of one TCP connection (44 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConn {
    side: [Side; 2],
    /// The last noted segment's end (seq + len) ...
    last_end: u32,
    /// ... and its raw window. (Its ACK, which only matters in syn-sent, is
    /// kept in the responder's `maxack`: see [`TcpConn::last_ack`].)
    last_win: u16,
    /// Per direction: flags in the low nibble, window scale in the high one.
    dflags: [u8; 2],
    state: TcpState,
    /// `C_*` flags.
    cflags: u8,
    /// Class of the last noted segment (low nibble) and window scale of the
    /// last ignored SYN (high nibble).
    last: u8,
    /// Plain ACK segments in a row that repeated the last one (same
    /// direction, end and window): Linux's `retrans` (see
    /// [`TcpConn::timeout_cap`]). Saturates.
    retrans: u8,
}

const _: () = assert!(core::mem::size_of::<TcpConn>() == 44);

/// The outcome of [`TcpConn::step`].
enum Step {
    Accept {
        became_assured: bool,
        remove_now: bool,
    },
    /// Let through; the state stays.
    Ignore,
    Invalid(TcpInvalid),
    Reopen,
}

/// The outcome of the window check.
enum Win {
    Ok,
    Ignore,
    Invalid(TcpInvalid),
}

impl TcpConn {
    /// First packet of a would-be connection (orig direction).
    pub fn new(info: &TcpInfo, loose: bool) -> Result<TcpConn, TcpInvalid> {
        TcpConn::new_with(
            info,
            TcpOpts {
                loose,
                liberal: false,
            },
        )
    }

    /// [`TcpConn::new`] under the settings `opts`.
    pub fn new_with(info: &TcpInfo, opts: TcpOpts) -> Result<TcpConn, TcpInvalid> {
        let class = classify(info.flags).ok_or(TcpInvalid::BadFlags)?;
        let mut c = TcpConn {
            side: [Side::default(); 2],
            last_end: 0,
            last_win: 0,
            dflags: [0; 2],
            state: TcpState::None,
            cflags: 0,
            last: Class::None as u8,
            retrans: 0,
        };
        let end = seg_end(info);
        let win = u32::from(info.window).max(1);
        match TABLE[Dir::Orig.index()][class as usize][TcpState::None.index()] {
            Next::To(TcpState::SynSent) => {
                c.side[0] = Side {
                    end,
                    maxend: end,
                    maxwin: win,
                    maxack: 0,
                };
                c.set_options(0, info.wscale);
            }
            Next::To(_) => {
                if !opts.loose {
                    return Err(TcpInvalid::NotSynLooseOff);
                }
                // Mid-stream: the history is lost; start from this segment.
                // The window scale is unknown, so window checks are liberal.
                c.side[0] = Side {
                    end,
                    maxend: end.wrapping_add(win),
                    maxwin: win,
                    maxack: 0,
                };
                c.dflags = [F_LIBERAL; 2];
            }
            _ if class == Class::Rst => return Err(TcpInvalid::RstOnNew),
            _ => return Err(TcpInvalid::InvalidNew),
        }
        match c.step(Dir::Orig, info, class, opts.liberal) {
            Step::Accept { .. } | Step::Ignore => Ok(c),
            Step::Invalid(why) => Err(why),
            Step::Reopen => Err(TcpInvalid::InvalidNew),
        }
    }

    /// A later packet of the connection in direction `dir`.
    ///
    /// `loose` (the `loose-tcp-tracking` setting) only matters when a
    /// connection is created; it is taken here so the caller need not care.
    pub fn handle(&mut self, dir: Dir, info: &TcpInfo, loose: bool) -> TcpResult {
        self.handle_with(
            dir,
            info,
            TcpOpts {
                loose,
                liberal: false,
            },
        )
    }

    /// [`TcpConn::handle`] under the settings `opts`.
    #[inline]
    pub fn handle_with(&mut self, dir: Dir, info: &TcpInfo, opts: TcpOpts) -> TcpResult {
        let Some(class) = classify(info.flags) else {
            return TcpResult::Invalid(TcpInvalid::BadFlags);
        };
        // Stepped in place, restored from `saved` if refused: stepping a
        // copy and writing it back costs a store-forwarding stall on every
        // accepted segment (see `Shard::update_full`).
        let saved = *self;
        let (became_assured, remove_now) = match self.step(dir, info, class, opts.liberal) {
            Step::Invalid(why) => {
                *self = saved;
                return TcpResult::Invalid(why);
            }
            Step::Reopen => {
                *self = saved;
                return TcpResult::Reopen;
            }
            Step::Ignore => (false, false),
            Step::Accept {
                became_assured,
                remove_now,
            } => (became_assured, remove_now),
        };
        if dir == Dir::Reply {
            self.cflags |= C_SEEN_REPLY;
        }
        TcpResult::Accept(TcpOutcome {
            state: self.state,
            became_assured,
            remove_now,
        })
    }

    pub fn state(&self) -> TcpState {
        self.state
    }

    /// The connection was assured (see [`TcpOutcome::became_assured`]).
    pub fn assured(&self) -> bool {
        self.cflags & C_ASSURED != 0
    }

    /// A segment from the responder was accepted.
    pub fn seen_reply(&self) -> bool {
        self.cflags & C_SEEN_REPLY != 0
    }

    /// The window scale in use for `dir`'s advertised windows (0 unless both
    /// SYNs carried the option).
    pub fn wscale(&self, dir: Dir) -> u8 {
        self.scale(dir.index())
    }

    /// Which shorter timeout applies now: repeats first, then unacknowledged
    /// data, as Linux checks them.
    #[inline]
    pub fn timeout_cap(&self) -> TimeoutCap {
        if self.retrans >= MAX_RETRANS {
            TimeoutCap::MaxRetrans
        } else if self.cflags & (C_UNACKED | C_UNACKED << 1) != 0 {
            TimeoutCap::Unacked
        } else {
            TimeoutCap::None
        }
    }

    /// True for a segment with FIN or RST (the fast path uses this to give the
    /// connection back to the full path).
    pub fn closes(info: &TcpInfo) -> bool {
        info.flags & (tcp_flags::FIN | tcp_flags::RST) != 0
    }

    // ---- small accessors ------------------------------------------------

    fn flags(&self, s: usize) -> u8 {
        self.dflags[s] & 0x0f
    }

    fn set_flag(&mut self, s: usize, f: u8) {
        self.dflags[s] |= f;
    }

    fn scale(&self, s: usize) -> u8 {
        self.dflags[s] >> 4
    }

    fn set_scale(&mut self, s: usize, scale: u8) {
        self.dflags[s] = (self.dflags[s] & 0x0f) | (scale.min(MAX_WSCALE) << 4);
    }

    fn last_class(&self) -> Class {
        Class::from_bits(self.last & 0x0f)
    }

    fn last_dir(&self) -> Dir {
        if self.cflags & C_LAST_REPLY != 0 {
            Dir::Reply
        } else {
            Dir::Orig
        }
    }

    fn note_last(&mut self, dir: Dir, class: Class) {
        self.last = (self.last & 0xf0) | class as u8;
        if dir == Dir::Reply {
            self.cflags |= C_LAST_REPLY;
        } else {
            self.cflags &= !C_LAST_REPLY;
        }
    }

    /// The ACK of the responder's last ignored ACK in syn-sent (Linux's
    /// `last_ack`: an RST with this sequence number from the originator
    /// answers a challenge ACK to its SYN).
    ///
    /// It is only read and written in syn-sent, where it lives in the
    /// responder's `maxack`: that field is unused there, because it is only
    /// read once [`F_MAXACK`] is set for the responder, which only an
    /// accepted responder segment with an ACK does, and every such segment
    /// leaves syn-sent (SYN-ACK to syn-received, RST to close; its SYN has no
    /// ACK and its plain ACKs are ignored). The first `maxack` the responder
    /// then sets overwrites it. Syn-sent is only ever entered through
    /// [`TcpConn::new`], where the responder's flags are clear.
    fn last_ack(&self) -> u32 {
        self.side[Dir::Reply.index()].maxack
    }

    fn set_last_ack(&mut self, ack: u32) {
        debug_assert!(
            self.state == TcpState::SynSent && self.flags(Dir::Reply.index()) & F_MAXACK == 0
        );
        self.side[Dir::Reply.index()].maxack = ack;
    }

    fn established(&self) -> bool {
        self.state == TcpState::Established && self.assured()
    }

    /// Take a SYN's options: the window scale, dropping all other flags but
    /// liberal.
    fn set_options(&mut self, s: usize, wscale: Option<u8>) {
        self.dflags[s] &= F_LIBERAL;
        if let Some(w) = wscale {
            self.set_scale(s, w);
            self.set_flag(s, F_WSCALE);
        }
    }

    /// (Re)initialise a direction from its SYN or SYN-ACK.
    fn init_sender(&mut self, dir: Dir, end: u32, win: u32, wscale: Option<u8>) {
        let (s, r) = (dir.index(), dir.flip().index());
        self.side[s].end = end;
        self.side[s].maxend = end;
        self.side[s].maxwin = win.max(1);
        self.set_options(s, wscale);
        // Scaling is on only if both SYNs asked for it.
        if dir == Dir::Reply && self.flags(s) & self.flags(r) & F_WSCALE == 0 {
            self.set_scale(s, 0);
            self.set_scale(r, 0);
        }
    }

    // ---- the state machine ----------------------------------------------

    /// Apply one classified segment to `self` (a scratch copy: the caller
    /// throws it away unless the result is an accept or an ignore).
    fn step(&mut self, dir: Dir, info: &TcpInfo, class: Class, liberal: bool) -> Step {
        let old = self.state;
        let mut new = match TABLE[dir.index()][class as usize][old.index()] {
            Next::Invalid => return Step::Invalid(TcpInvalid::InvalidTransition),
            Next::Ignore => match self.ignore(dir, info, class, old) {
                Some(step) => return step,
                None => TcpState::SynReceived,
            },
            Next::To(s) => s,
        };
        let mut check_window = true;
        match new {
            TcpState::SynSent if matches!(old, TcpState::TimeWait | TcpState::Close) => {
                // A new connection on the tuple of a finished one: reopen if
                // it was closed by FIN, or aborted by RST from this same end.
                let closed = (self.flags(0) | self.flags(1)) & F_CLOSE_INIT != 0;
                let aborted = self.last_dir() == dir && self.last_class() == Class::Rst;
                if closed || aborted {
                    return Step::Reopen;
                }
                match self.ignore(dir, info, class, old) {
                    Some(step) => return step,
                    None => new = TcpState::SynReceived,
                }
            }
            TcpState::TimeWait
                if old == TcpState::LastAck
                    && class == Class::Ack
                    && self.last_dir() != dir
                    && self.last_class() == Class::Syn
                    && self.cflags & C_CHALLENGE != 0 =>
            {
                // A challenge ACK answering a SYN we let through: it does
                // not acknowledge the last FIN.
                self.cflags &= !C_CHALLENGE;
                return Step::Ignore;
            }
            TcpState::SynSent2 => self.cflags |= C_SIMOPEN,
            TcpState::SynReceived
                if dir == Dir::Reply && class == Class::Ack && self.cflags & C_SIMOPEN != 0 =>
            {
                // The table cannot tell a simultaneous open's last ACK.
                new = TcpState::Established;
            }
            TcpState::Close if class == Class::Rst => match self.rst_check(dir, info, old) {
                RstCheck::Invalid(why) => return Step::Invalid(why),
                RstCheck::Window => {}
                RstCheck::KeepState => new = old,
                RstCheck::SkipWindow => check_window = false,
                RstCheck::KeepSkipWindow => {
                    new = old;
                    check_window = false;
                }
            },
            _ => {}
        }

        if check_window {
            match self.in_window(dir, info, class, liberal) {
                Win::Ok => {}
                Win::Ignore => return Step::Ignore,
                Win::Invalid(why) => return Step::Invalid(why),
            }
        }

        self.note_last(dir, class);
        self.state = new;
        if old != new && new == TcpState::FinWait {
            self.set_flag(dir.index(), F_CLOSE_INIT);
        }
        let mut became_assured = false;
        let mut remove_now = false;
        if !self.seen_reply() {
            // The only answer is an RST: no connection to speak of.
            remove_now = class == Class::Rst;
        } else if !self.assured()
            && matches!(old, TcpState::SynReceived | TcpState::Established)
            && new == TcpState::Established
        {
            self.cflags |= C_ASSURED;
            became_assured = true;
        }
        Step::Accept {
            became_assured,
            remove_now,
        }
    }

    /// A segment the table says to let through without a state change.
    /// Returns `None` when it is a SYN-ACK answering a SYN we ignored
    /// earlier: then the ends are in sync and we are not, so resynchronise
    /// and go on as from syn-sent to syn-received.
    fn ignore(&mut self, dir: Dir, info: &TcpInfo, class: Class, old: TcpState) -> Option<Step> {
        if class == Class::SynAck
            && self.last_class() == Class::Syn
            && self.last_dir() != dir
            && info.ack == self.last_end
        {
            let l = self.last_dir().index();
            self.side[l] = Side {
                end: self.last_end,
                maxend: self.last_end,
                maxwin: u32::from(self.last_win).max(1),
                maxack: 0,
            };
            self.dflags[l] = if self.cflags & C_LAST_WSCALE != 0 {
                F_WSCALE
            } else {
                0
            };
            self.set_scale(l, self.last >> 4);
            self.cflags &= !C_CHALLENGE;
            let s = dir.index();
            self.side[s] = Side::default();
            self.dflags[s] &= F_LIBERAL;
            return Option::None;
        }
        self.note_last(dir, class);
        self.last_end = seg_end(info);
        self.last_win = info.window;
        if class == Class::Syn && dir == Dir::Orig {
            // Note the SYN's options, to resynchronise if it is answered.
            self.cflags &= !(C_LAST_WSCALE | C_CHALLENGE | C_SIMOPEN);
            self.last &= 0x0f;
            if let Some(w) = info.wscale {
                self.cflags |= C_LAST_WSCALE;
                self.last |= w.min(MAX_WSCALE) << 4;
            }
            if old == TcpState::LastAck {
                self.cflags |= C_CHALLENGE;
            }
        }
        if old == TcpState::SynSent && class == Class::Ack && dir == Dir::Reply {
            // Possibly a challenge ACK to our SYN.
            self.set_last_ack(info.ack);
        }
        Some(Step::Ignore)
    }

    /// The extra checks for an RST that would close the connection.
    fn rst_check(&self, dir: Dir, info: &TcpInfo, old: TcpState) -> RstCheck {
        if old.closing() {
            // The tuple may already be reused and our window data stale.
            return RstCheck::SkipWindow;
        }
        let peer = &self.side[dir.flip().index()];
        let mut keep = false;
        if self.flags(dir.flip().index()) & F_MAXACK != 0 && self.last_class() != Class::Syn {
            let established = self.established();
            if info.seq == 0 && !established {
                return RstCheck::Window;
            }
            if before(info.seq, peer.maxack) {
                return RstCheck::Invalid(TcpInvalid::RstBehindAck);
            }
            if !established || info.seq == peer.maxack {
                return RstCheck::Window;
            }
            let train = self.last_class() == Class::Ack
                && self.last_dir() == dir
                && info.seq == self.last_end;
            if train {
                return RstCheck::Window;
            }
            // In window but not exactly where the peer expects it: the peer
            // will answer with a challenge ACK; keep the state.
            keep = true;
        }
        let answers_ignored = ((self.seen_reply() && self.last_class() == Class::Syn)
            || (!self.assured() && self.last_class() == Class::Ack))
            && info.ack == self.last_end;
        if answers_ignored {
            // An RST to a SYN or ACK we let through: it may acknowledge
            // segments we did not track.
            return if keep {
                RstCheck::KeepSkipWindow
            } else {
                RstCheck::SkipWindow
            };
        }
        if old == TcpState::SynSent
            && self.last_class() == Class::Ack
            && self.last_dir() == Dir::Reply
            && info.seq == self.last_ack()
        {
            // The originator resets after a challenge ACK to its SYN.
            return if keep {
                RstCheck::KeepSkipWindow
            } else {
                RstCheck::SkipWindow
            };
        }
        if keep {
            RstCheck::KeepState
        } else {
            RstCheck::Window
        }
    }

    /// The sequence and window checks, updating the window data on success.
    fn in_window(&mut self, dir: Dir, info: &TcpInfo, class: Class, liberal: bool) -> Win {
        let (s, r) = (dir.index(), dir.flip().index());
        let flags = info.flags;
        let syn = flags & tcp_flags::SYN != 0;
        let has_ack = flags & tcp_flags::ACK != 0;
        let rst = class == Class::Rst;
        let mut seq = info.seq;
        let mut ack = info.ack;
        let mut win = u32::from(info.window);
        let mut end = seg_end(info);

        if self.side[s].maxwin == 0 {
            if syn {
                // The responder's SYN-ACK, or its SYN in a simultaneous open.
                self.init_sender(dir, end, win, info.wscale);
                if !has_ack {
                    return Win::Ok;
                }
            } else {
                // First segment of this direction, mid-stream.
                let swin = (win << self.scale(s)).max(1);
                self.side[s].end = end;
                self.side[s].maxwin = swin;
                self.side[s].maxend = end.wrapping_add(swin);
                if self.side[r].maxwin == 0 {
                    // Nothing seen the other way yet: let the ACK pass.
                    self.side[r].end = ack;
                    self.side[r].maxend = ack;
                } else if ack == self.side[r].end.wrapping_add(1) {
                    // Likely the answer to a keepalive.
                    self.side[r].end = ack;
                }
            }
        } else if syn
            && after(end, self.side[s].end)
            && matches!(self.state, TcpState::SynSent | TcpState::SynReceived)
        {
            // A new SYN (or SYN-ACK) with a higher sequence number: the end
            // restarted; take it as the first one.
            self.init_sender(dir, end, win, info.wscale);
            if dir == Dir::Reply && !has_ack {
                return Win::Ok;
            }
        }

        if !has_ack || (rst && ack == 0) {
            // No ACK (or a broken stack's zero ACK on an RST): pretend it
            // acknowledges everything.
            ack = self.side[r].end;
        }
        if rst && seq == 0 && self.state == TcpState::SynSent {
            // An RST answering a SYN.
            seq = self.side[s].end;
            end = seq;
        }

        let max_ack_win = self.side[s].maxwin.max(MAX_ACK_WIN_CONST);
        let ack_lower = self.side[r].end.wrapping_sub(max_ack_win).wrapping_sub(1);
        let seq_lower = self.side[s]
            .end
            .wrapping_sub(self.side[r].maxwin)
            .wrapping_sub(1);

        if !before(seq, self.side[s].maxend.wrapping_add(1)) {
            let overshot = end.wrapping_sub(self.side[s].maxend).wrapping_add(1);
            let in_recv_win = self.side[r].maxwin != 0 && after(end, seq_lower);
            if in_recv_win
                && after(ack, ack_lower)
                && overshot <= self.side[r].maxwin
                && before(ack, self.side[r].end.wrapping_add(1))
            {
                // A sender overshooting the window a little: let it pass
                // and follow it, so the ACK for it is in window.
                self.side[s].end = end;
                return self.window_failed(s, rst, liberal, Win::Ignore);
            }
            return self.window_failed(s, rst, liberal, Win::Invalid(TcpInvalid::SeqOutOfWindow));
        }
        if !before(ack, self.side[r].end.wrapping_add(1)) {
            return self.window_failed(s, rst, liberal, Win::Invalid(TcpInvalid::AckOutOfWindow));
        }
        if self.side[r].maxwin != 0 && !after(end, seq_lower) {
            // Old data, already acknowledged: a retransmission.
            return self.window_failed(s, rst, liberal, Win::Ignore);
        }
        if !after(ack, ack_lower) {
            // A very late ACK.
            return self.window_failed(s, rst, liberal, Win::Ignore);
        }

        if !syn {
            win <<= self.scale(s);
        }
        let sender = &mut self.side[s];
        sender.maxwin = sender.maxwin.max(win);
        if after(end, sender.end) {
            sender.end = end;
            // New data, not acknowledged yet.
            self.cflags |= C_UNACKED << s;
        }
        let sender_maxend = sender.maxend;
        // The ACK this sender sent last, if this is a repeat (its highest).
        let prev_maxack = (self.dflags[s] & F_MAXACK != 0).then_some(self.side[s].maxack);
        if has_ack {
            if self.dflags[s] & F_MAXACK == 0 {
                self.side[s].maxack = ack;
                self.set_flag(s, F_MAXACK);
            } else if after(ack, self.side[s].maxack) {
                self.side[s].maxack = ack;
            }
        }
        if has_ack && ack == self.side[r].end {
            // Everything the receiver sent is acknowledged.
            self.cflags &= !(C_UNACKED << r);
        }
        let receiver = &mut self.side[r];
        if receiver.maxwin != 0 && after(end, sender_maxend) {
            receiver.maxwin = receiver
                .maxwin
                .wrapping_add(end.wrapping_sub(sender_maxend));
        }
        let right = ack.wrapping_add(win);
        if after(right, receiver.maxend.wrapping_sub(1)) {
            receiver.maxend = if win == 0 {
                right.wrapping_add(1)
            } else {
                right
            };
        }
        if class == Class::Ack {
            // A repeat of the last plain ACK, from the same end: a
            // retransmission, or the same ACK again. Linux compares seq,
            // ack, end and window; here end and window, and the ACK
            // against the highest this end sent (which a repeat's is).
            let repeat = self.last_class() == Class::Ack
                && self.last_dir() == dir
                && self.last_end == end
                && self.last_win == info.window
                && prev_maxack == Some(ack);
            self.retrans = if repeat {
                self.retrans.saturating_add(1)
            } else {
                0
            };
            // Remember the last plain ACK (an RST right after it, from the
            // same end, is the end of a "train").
            self.note_last(dir, class);
            // (Linux also notes its ACK as `last_ack`, which it only reads in
            // syn-sent, where no plain ACK is ever accepted.)
            self.last_end = end;
            self.last_win = info.window;
        }
        Win::Ok
    }

    /// A window check failed with `res`. A connection picked up mid-stream
    /// does not know the window scale, so it lets such segments through
    /// (without learning from them), except RSTs.
    /// With `liberal` (`liberal-tcp-tracking`, Linux's
    /// `nf_conntrack_tcp_be_liberal`) every connection does so.
    fn window_failed(&self, s: usize, rst: bool, liberal: bool, res: Win) -> Win {
        if !rst && (liberal || self.flags(s) & F_LIBERAL != 0) {
            return Win::Ok;
        }
        match res {
            Win::Invalid(_) if rst => Win::Invalid(TcpInvalid::RstOutOfWindow),
            other => other,
        }
    }
}

/// The outcome of [`TcpConn::rst_check`].
enum RstCheck {
    Invalid(TcpInvalid),
    /// Close, if the window check passes.
    Window,
    /// Keep the state, if the window check passes.
    KeepState,
    /// Close without a window check.
    SkipWindow,
    /// Keep the state, without a window check.
    KeepSkipWindow,
}

#[cfg(test)]
mod tests;
