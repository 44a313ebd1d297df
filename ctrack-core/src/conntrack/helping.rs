//! The table's side of the connection helpers: which ports get a helper,
//! the helpers' per-connection state, the expectations, and the packet
//! calls that tie them together (see [`crate::helper`] for the parsers and
//! [`super::expect`] for the expectation table; `docs/helpers.md`).
//!
//! Off until [`Shard::set_service_ports`] names a port (nothing is
//! allocated before that, and a table without helpers pays one branch per
//! new connection). The maps are allocated there, between bursts, with
//! their final capacity.

use std::collections::HashMap;

use super::entry::{ConnId, flag};
use super::expect::{
    ExpectKey, ExpectMsg, ExpectNat, ExpectRefused, ExpectStats, ExpectTable, Expectation, gre_key,
};
use super::seqadj::SeqAdj;
use super::{Dir, Instant, Key, Shard};
use crate::flow::{FlowRepr, proto};
use crate::helper::{HelperKind, HelperState, ServicePorts, ftp, pptp, pptp_nat, tftp};

/// Expectations a shard holds at most (each worker holds a copy of all).
pub const EXPECT_MAX: usize = 2048;
/// Connections with a helper state a shard holds at most (more are tracked
/// without their helper, counted in [`ExpectStats::no_room`]).
pub const HELPED_MAX: usize = 4096;
/// Changes for the other workers queued between two drains at most.
pub const EXPECT_OUTBOX: usize = 256;

/// What [`Shard::help`] says of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelpVerdict {
    Accept,
    /// Drop it, as Linux's helper does (FTP: a command's keyword without
    /// the whole, well-formed command in the segment).
    Drop,
    /// Accept it with its payload changed (FTP through NAT, Linux's
    /// `nf_nat_ftp`): the caller replaces the text, then applies the
    /// connection's sequence adjustment ([`Shard::seq_adjust`]), which
    /// already counts this change.
    Mangle(FtpMangle),
}

/// An FTP announcement's text to rewrite: payload bytes `off..off + len`
/// become `text()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FtpMangle {
    pub off: usize,
    pub len: usize,
    text: [u8; ftp::NAT_TEXT_MAX],
    text_len: u8,
}

impl FtpMangle {
    pub fn text(&self) -> &[u8] {
        &self.text[..usize::from(self.text_len)]
    }
}

/// The shard's helper state (see the module doc).
#[derive(Debug)]
pub(crate) struct HelperSide {
    ports: ServicePorts,
    expect: ExpectTable,
    /// By arena slot, for live connections with a helper (not expected
    /// ones).
    states: HashMap<u32, HelperState>,
    /// Sequence adjustments (FTP through NAT), by arena slot, for
    /// connections whose payload a helper changed the length of; at most
    /// one per helper state.
    seqadj: HashMap<u32, SeqAdj>,
    out: Vec<ExpectMsg>,
    next_sweep: u64,
}

impl Default for HelperSide {
    fn default() -> Self {
        HelperSide {
            ports: ServicePorts::none(),
            expect: ExpectTable::new(0),
            states: HashMap::new(),
            seqadj: HashMap::new(),
            out: Vec::new(),
            next_sweep: 0,
        }
    }
}

impl HelperSide {
    fn enabled(&self) -> bool {
        self.expect.max() > 0
    }

    fn push_out(out: &mut Vec<ExpectMsg>, stats: &mut ExpectStats, m: ExpectMsg) {
        if out.len() < EXPECT_OUTBOX {
            out.push(m);
        } else {
            stats.msgs_lost += 1;
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        if !self.enabled() {
            return 0;
        }
        let exp = core::mem::size_of::<(ExpectKey, Expectation)>() + 1;
        let master = core::mem::size_of::<(ConnId, [Option<ExpectKey>; 2])>() + 1;
        let st = core::mem::size_of::<(u32, HelperState)>() + 1;
        let adj = core::mem::size_of::<(u32, SeqAdj)>() + 1;
        2 * EXPECT_MAX * (exp + master)
            + 2 * HELPED_MAX * (st + adj)
            + EXPECT_OUTBOX * core::mem::size_of::<ExpectMsg>()
    }
}

impl Shard {
    /// Sets which ports get which helper (`/ip firewall service-port`);
    /// the first call with any port allocates the helper maps. Live
    /// connections keep the helper they have (as Linux keeps an assigned
    /// helper). Between bursts.
    pub fn set_service_ports(&mut self, ports: ServicePorts) {
        let h = &mut self.helpers;
        if !h.enabled() && !ports.ranges().is_empty() {
            let stats = h.expect.stats;
            h.expect = ExpectTable::new(EXPECT_MAX);
            h.expect.stats = stats;
            h.states = HashMap::with_capacity(2 * HELPED_MAX);
            h.seqadj = HashMap::with_capacity(2 * HELPED_MAX);
            h.out = Vec::with_capacity(EXPECT_OUTBOX);
        }
        h.ports = ports;
    }

    pub fn service_ports(&self) -> &ServicePorts {
        &self.helpers.ports
    }

    /// The expectation a packet that opens a connection (`Verdict::New`)
    /// matches: its helper and the `connection-mark` the connection
    /// inherits. The firewall asks it to see the packet as `related`.
    #[inline]
    pub fn expected_for(&self, pkt: &FlowRepr, now: Instant) -> Option<(HelperKind, u32)> {
        if self.helpers.expect.is_empty() {
            return None;
        }
        self.helpers
            .expect
            .find(pkt, now.nanos())
            .map(|e| (e.helper, e.mark))
    }

    /// The key the table looks `pkt` up by: [`Key::of_packet`], and for a
    /// GRE version 1 packet of a call PPTP announced both call ids (the
    /// sender's from the keymap; see [`super::gre_keymap`]).
    #[inline]
    pub fn key_of(&self, pkt: &FlowRepr) -> Key {
        let mut k = Key::of_packet(&pkt.tuple, &pkt.l4);
        if let crate::flow::L4::Gre(g) = pkt.l4
            && let Some(carried) = g.call_id()
            && let Some((src_id, _)) = self
                .helpers
                .expect
                .keymap
                .find(k.family, k.src, k.dst, carried)
        {
            k.sport = src_id;
            k.dport = carried;
        }
        k
    }

    /// The worker that owns a GRE version 1 packet of an announced call:
    /// its control connection's (the call's packets both ways, whatever
    /// their addresses hash to, so that one worker holds its connection
    /// through NAT). `None` for any other packet.
    #[inline]
    pub fn gre_call_owner(&self, pkt: &FlowRepr) -> Option<u16> {
        let crate::flow::L4::Gre(g) = pkt.l4 else {
            return None;
        };
        let t = &pkt.tuple;
        self.helpers
            .expect
            .keymap
            .find(t.family, t.src, t.dst, g.call_id()?)
            .map(|(_, master)| master.worker())
    }

    /// The NAT binding of a new GRE connection keyed by a call that goes
    /// through NAT (its original key `orig`, from [`Shard::key_of`]): the
    /// reply key, the call's other direction (Linux's `pptp_nat_expected`;
    /// the NAT rules are not asked). `None` otherwise.
    pub fn gre_call_binding(&self, orig: &Key) -> Option<Key> {
        self.helpers.expect.keymap.binding(orig)
    }

    /// The translation of the connection `pkt` opens, when it is expected
    /// by a translated master (see [`ExpectNat`]).
    #[inline]
    pub fn expected_nat(&self, pkt: &FlowRepr, now: Instant) -> Option<ExpectNat> {
        if self.helpers.expect.is_empty() {
            return None;
        }
        self.helpers.expect.find(pkt, now.nanos())?.nat
    }

    /// Whether any connection has a sequence adjustment (one load).
    #[inline]
    pub fn has_seqadj(&self) -> bool {
        !self.helpers.seqadj.is_empty()
    }

    /// Applies connection `id`'s sequence adjustment to its TCP segment in
    /// `frame` travelling in direction `dir` (seq, ack and SACK edges, the
    /// checksum updated incrementally; Linux's `nf_ct_seq_adjust`). A
    /// connection without one is left alone. Call before the NAT rewrite
    /// or after it: the two touch different fields.
    pub fn seq_adjust(
        &self,
        id: ConnId,
        dir: Dir,
        frame: &mut [u8],
    ) -> Result<(), crate::packet::nat::RewriteError> {
        let Some(i) = self.resolve_id(id) else {
            return Ok(());
        };
        let Some(a) = self.helpers.seqadj.get(&i) else {
            return Ok(());
        };
        crate::packet::mangle::rewrite_seq(frame, a.map(dir.index()))
    }

    /// Packet `pkt` of entry `i` in `dir` as the TCP tracker sees it: an
    /// acknowledgement taken back into the acknowledged sender's numbers
    /// when the entry has a sequence adjustment (see
    /// [`SeqAdj::ack_for_tracker`]). Off the fast path: called only while
    /// some connection has one.
    #[cold]
    #[inline(never)]
    pub(super) fn ack_adjusted(&self, i: u32, dir: Dir, pkt: &FlowRepr) -> FlowRepr {
        let mut p = *pkt;
        if let crate::flow::L4::Tcp(ref mut info) = p.l4
            && info.flags & crate::flow::tcp_flags::ACK != 0
            && let Some(a) = self.helpers.seqadj.get(&i)
        {
            info.ack = a.ack_for_tracker(dir.index(), info.ack);
        }
        p
    }

    /// The helper a connection that `pkt` opens gets from its port.
    #[inline]
    pub fn helper_for_new(&self, pkt: &FlowRepr) -> Option<HelperKind> {
        self.helpers
            .ports
            .helper_for(pkt.tuple.proto, pkt.tuple.dst_port)
    }

    /// At creation of entry `i` by `pkt`: an expected connection (taking
    /// its expectation) or one with a helper from its port. Returns the
    /// mark inherited from the master, if expected.
    pub(super) fn helper_on_create(&mut self, i: u32, pkt: &FlowRepr, now: Instant) -> Option<u32> {
        let h = &mut self.helpers;
        if !h.enabled() {
            return None;
        }
        if !h.expect.is_empty() {
            let (out, expect) = (&mut h.out, &mut h.expect);
            let mut lost = 0;
            let taken = expect.take(pkt, now.nanos(), &mut |m| {
                if out.len() < EXPECT_OUTBOX {
                    out.push(m);
                } else {
                    lost += 1;
                }
            });
            expect.stats.msgs_lost += lost;
            if let Some(x) = taken {
                self.sync_expect_stats();
                let e = self.e_mut(i);
                e.flags |= flag::EXPECTED;
                e.helper = x.helper as u8;
                return Some(x.mark);
            }
        }
        if let Some(k) = h.ports.helper_for(pkt.tuple.proto, pkt.tuple.dst_port) {
            if h.states.len() < HELPED_MAX {
                h.states.insert(i, HelperState::new(k));
                self.e_mut(i).helper = k as u8;
            } else {
                h.expect.stats.no_room += 1;
                self.sync_expect_stats();
            }
        }
        None
    }

    /// Entry `i` (with a helper, not expected) is being freed: its state
    /// and expectations go.
    pub(super) fn helper_on_free(&mut self, i: u32) {
        let id = self.id_of(i);
        let h = &mut self.helpers;
        h.states.remove(&i);
        h.seqadj.remove(&i);
        if h.expect.has_master(id) {
            h.expect.remove_master(id);
            HelperSide::push_out(&mut h.out, &mut h.expect.stats, ExpectMsg::RemoveMaster(id));
            self.sync_expect_stats();
        }
    }

    fn sync_expect_stats(&mut self) {
        let h = &self.helpers;
        self.stats.expect = h.expect.stats;
        self.stats.expect.live = h.expect.len() as u64;
    }

    /// The helper state of connection `id` (a control connection with a
    /// helper): what the worker's rewrite reads (PPTP's call ids).
    pub fn helper_state(&self, id: ConnId) -> Option<&HelperState> {
        let i = self.resolve_id(id)?;
        self.helpers.states.get(&i)
    }

    /// Whether packets of connection `id` go to its helper: it has one, is
    /// not itself expected, and has its state. Cheap (the entry the lookup
    /// just read).
    #[inline]
    pub fn wants_help(&self, id: ConnId) -> bool {
        if self.helpers.states.is_empty() {
            return false;
        }
        self.resolve_id(id).is_some_and(|i| {
            let e = self.e(i);
            e.helper != 0 && !e.has(flag::EXPECTED)
        })
    }

    /// Runs the helper of connection `id` on a packet of it (`pkt`, tracked
    /// in direction `dir`, with L4 payload `payload`), after the table
    /// counted it: creates the expectations it announces (queued for the
    /// other workers too). No allocation.
    pub fn help(
        &mut self,
        now: Instant,
        id: ConnId,
        dir: Dir,
        pkt: &FlowRepr,
        payload: &[u8],
    ) -> HelpVerdict {
        let Some(i) = self.resolve_id(id) else {
            return HelpVerdict::Accept;
        };
        let e = *self.e(i);
        let Some(kind) = e.helper() else {
            return HelpVerdict::Accept;
        };
        if e.has(flag::EXPECTED) || payload.is_empty() {
            return HelpVerdict::Accept;
        }
        // Linux helps FTP and PPTP only once the connection is established
        // both ways (`IP_CT_ESTABLISHED*`); TFTP's request is its first packet.
        if kind != HelperKind::Tftp && dir == Dir::Orig && !e.has(flag::SEEN_REPLY) {
            return HelpVerdict::Accept;
        }
        let Some(mut state) = self.helpers.states.get(&i).copied() else {
            return HelpVerdict::Accept;
        };
        let mark = self.c(i).mark;
        let reply = self.reply_of(i);
        let deadline = now.nanos().saturating_add(kind.expect_timeout_ns());
        let t = &pkt.tuple;
        let mut new: [Option<Expectation>; 2] = [None, None];
        let base = Expectation {
            key: ExpectKey {
                family: t.family,
                proto: t.proto,
                src: t.dst,
                dst: t.src,
                dport: 0,
            },
            sport: None,
            master: id,
            helper: kind,
            mark,
            deadline,
            group: 0,
            nat: None,
        };
        // Linux's NAT helpers act only on a translated master.
        let natted = e.srcnat() || e.dstnat();
        let mut verdict = HelpVerdict::Accept;
        match &mut state {
            HelperState::Ftp(st) => {
                let seq = match pkt.l4 {
                    crate::flow::L4::Tcp(tcp) => tcp.seq,
                    _ => return HelpVerdict::Accept,
                };
                match ftp::help(st, dir.index(), t.family, seq, payload) {
                    ftp::FtpResult::Nothing => {}
                    ftp::FtpResult::Partial => {
                        self.helpers.states.insert(i, state);
                        self.helpers.expect.stats.dropped += 1;
                        self.sync_expect_stats();
                        return HelpVerdict::Drop;
                    }
                    ftp::FtpResult::Found(f) => {
                        self.helpers.expect.stats.announced += 1;
                        // The data connection goes from the peer to the
                        // announcer: an address other than the announcer's
                        // own is refused (Linux without `loose`).
                        if f.addr.is_some_and(|a| a != t.src) {
                            self.helpers.expect.stats.third_party += 1;
                        } else if natted {
                            match self.ftp_nat(i, dir, seq, &f, &base) {
                                Some(m) => verdict = HelpVerdict::Mangle(m),
                                None => {
                                    // Linux: no port, or no text: dropped.
                                    self.helpers.states.insert(i, state);
                                    self.helpers.expect.stats.dropped += 1;
                                    self.sync_expect_stats();
                                    return HelpVerdict::Drop;
                                }
                            }
                        } else {
                            new[0] = Some(Expectation {
                                key: ExpectKey {
                                    dport: f.port,
                                    proto: proto::TCP,
                                    ..base.key
                                },
                                ..base
                            });
                        }
                    }
                }
            }
            HelperState::Tftp => {
                if tftp::is_request(payload) {
                    self.helpers.expect.stats.announced += 1;
                    // The server answers from a port of its own to the
                    // client's: the reply tuple with its source port open.
                    // Through NAT the reply tuple is the translated one, and
                    // the answer goes on to the client's own address and
                    // port (Linux's `nf_nat_tftp`: `nf_nat_follow_master`).
                    let r = reply;
                    let o = e.key;
                    new[0] = Some(Expectation {
                        key: ExpectKey {
                            family: r.family,
                            proto: proto::UDP,
                            src: r.src,
                            dst: r.dst,
                            dport: r.dport,
                        },
                        nat: natted.then_some(ExpectNat {
                            src: o.dst,
                            dst: o.src,
                            dport: o.sport,
                        }),
                        ..base
                    });
                }
            }
            // Through source NAT the PNS's call id is translated to the
            // control connection's translated port (pptp_nat).
            HelperState::Pptp(st) => {
                match pptp_nat::help(st, dir.index(), payload, e.srcnat().then_some(reply.dport)) {
                    pptp::PptpAction::ExpectGre {
                        pns_call_id,
                        pac_call_id,
                    } => {
                        self.helpers.expect.stats.announced += 1;
                        let group = self.helpers.expect.new_group();
                        let fam = t.family;
                        // Each direction as its sender sends it, with the
                        // sender's call id for the GRE keymap: the PNS with its
                        // own id, the PAC to the translated address with the
                        // translated one (the control connection's reply tuple).
                        new[0] = Some(Expectation {
                            key: gre_key(fam, e.key.src, e.key.dst, pac_call_id),
                            sport: Some(st.orig_pns_call_id.unwrap_or(pns_call_id)),
                            group,
                            ..base
                        });
                        new[1] = Some(Expectation {
                            key: gre_key(fam, reply.src, reply.dst, pns_call_id),
                            sport: Some(pac_call_id),
                            group,
                            ..base
                        });
                    }
                    pptp::PptpAction::Clear => {
                        let h = &mut self.helpers;
                        if h.expect.has_master(id) {
                            h.expect.remove_master(id);
                            HelperSide::push_out(
                                &mut h.out,
                                &mut h.expect.stats,
                                ExpectMsg::RemoveMaster(id),
                            );
                        }
                    }
                    pptp::PptpAction::Ignored => self.helpers.expect.stats.ignored += 1,
                    pptp::PptpAction::Nothing => {}
                }
            }
        }
        self.helpers.states.insert(i, state);
        for x in new.into_iter().flatten() {
            let h = &mut self.helpers;
            let (out, expect) = (&mut h.out, &mut h.expect);
            let mut lost = 0;
            let _ = expect.add_local(x, &mut |m| {
                if out.len() < EXPECT_OUTBOX {
                    out.push(m);
                } else {
                    lost += 1;
                }
            });
            expect.stats.msgs_lost += lost;
        }
        self.sync_expect_stats();
        verdict
    }

    /// FTP through NAT (Linux's `nf_nat_ftp`) for announcement `f` in a
    /// segment at `seq` of entry `i` in `dir`: the expectation from
    /// the translated tuple (the peer's view: the other direction's key),
    /// for the announced port or, taken by another master, the next free
    /// one; the data connection translated to the announcer's real address
    /// and port; the text that replaces the announcement's, and the
    /// sequence adjustment its length change needs. `None`: no port or no
    /// room (Linux drops the packet).
    fn ftp_nat(
        &mut self,
        i: u32,
        dir: Dir,
        seq: u32,
        f: &ftp::FtpFound,
        base: &Expectation,
    ) -> Option<FtpMangle> {
        let orig = self.e(i).key;
        let reply = self.reply_of(i);
        // This direction's key and the other's.
        let (this, other) = match dir {
            Dir::Orig => (orig, reply),
            Dir::Reply => (reply, orig),
        };
        let mut x = Expectation {
            key: ExpectKey {
                family: other.family,
                proto: proto::TCP,
                src: other.src,
                dst: other.dst,
                dport: f.port,
            },
            nat: Some(ExpectNat {
                src: this.dst,
                dst: this.src,
                dport: f.port,
            }),
            ..*base
        };
        // Linux: the announced port, then the next ones while another
        // master's expectation holds the tuple.
        let mut port = f.port;
        let h = &mut self.helpers;
        loop {
            x.key.dport = port;
            let (out, expect) = (&mut h.out, &mut h.expect);
            let mut lost = 0;
            let r = expect.add_local(x, &mut |m| {
                if out.len() < EXPECT_OUTBOX {
                    out.push(m);
                } else {
                    lost += 1;
                }
            });
            expect.stats.msgs_lost += lost;
            match r {
                Ok(()) => break,
                Err(ExpectRefused::Clash) => port = port.checked_add(1)?,
                Err(ExpectRefused::Full) => return None,
            }
        }
        let mut text = [0u8; ftp::NAT_TEXT_MAX];
        let n = ftp::format_for_nat(f.cmd, other.family, other.dst, port, &mut text)?;
        let delta = n as i32 - f.match_len as i32;
        if delta != 0 {
            if h.seqadj.len() >= HELPED_MAX && !h.seqadj.contains_key(&i) {
                return None;
            }
            h.seqadj.entry(i).or_default().set(dir.index(), seq, delta);
        }
        Some(FtpMangle {
            off: f.match_off,
            len: f.match_len,
            text,
            text_len: n as u8,
        })
    }

    /// Drops expectations that timed out, about once a second (a scan of
    /// the table; called from [`Shard::poll_expired`]).
    pub(super) fn helper_sweep(&mut self, now: Instant) {
        let h = &mut self.helpers;
        if h.expect.is_empty() || now.nanos() < h.next_sweep {
            return;
        }
        h.next_sweep = now.nanos().saturating_add(1_000_000_000);
        h.expect.expire(now.nanos());
        self.sync_expect_stats();
    }

    /// The changes of this shard's expectations since the last call, for
    /// the other workers' shards ([`Shard::apply_expect`]). Between bursts.
    pub fn drain_expect_msgs(&mut self) -> std::vec::Drain<'_, ExpectMsg> {
        self.helpers.out.drain(..)
    }

    /// Applies another worker's expectation change. Between bursts.
    pub fn apply_expect(&mut self, m: ExpectMsg) {
        if self.helpers.enabled() {
            self.helpers.expect.apply(m);
            self.sync_expect_stats();
        }
    }

    /// Counts a change that could not be passed on (a full queue).
    pub fn count_expect_msg_lost(&mut self) {
        self.helpers.expect.stats.msgs_lost += 1;
        self.sync_expect_stats();
    }

    /// This shard's live expectations whose master it owns (each worker
    /// holds copies of the others'; listing the owners' gives each once),
    /// with the time left.
    pub fn for_each_expectation(&self, now: Instant, mut f: impl FnMut(&Expectation, u64)) {
        for e in self.helpers.expect.iter() {
            if e.master.worker() == self.worker() && e.deadline > now.nanos() {
                f(e, e.deadline - now.nanos());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::key::HashSeed;
    use crate::conntrack::{Settings, TableConfig, Verdict};
    use crate::flow::{Addr, Family, L4, TcpInfo, Tuple, tcp_flags::*};

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn shard(worker: u16) -> Shard {
        let mut s = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            worker,
            HashSeed::from_u64(7),
        );
        s.set_service_ports(ServicePorts::default());
        s
    }

    fn t(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, p: u8) -> Tuple {
        Tuple {
            src: Addr::from_v4(src),
            dst: Addr::from_v4(dst),
            src_port: sp,
            dst_port: dp,
            proto: p,
            family: Family::V4,
        }
    }

    fn tcp(
        src: [u8; 4],
        sp: u16,
        dst: [u8; 4],
        dp: u16,
        flags: u8,
        seq: u32,
        len: u32,
    ) -> FlowRepr {
        FlowRepr {
            tuple: t(src, sp, dst, dp, proto::TCP),
            ip_len: 40 + len,
            l4: L4::Tcp(TcpInfo {
                seq,
                ack: 0,
                flags,
                window: 65535,
                wscale: None,
                sack_perm: false,
                payload_len: len,
            }),
        }
    }

    fn id_of(v: Verdict) -> (ConnId, Dir) {
        match v {
            Verdict::Tracked { id, dir, .. } => (id, dir),
            other => panic!("not tracked: {other:?}"),
        }
    }

    /// A control connection A:40000 -> B:21, handshake done; returns its id.
    fn ftp_control(s: &mut Shard) -> ConnId {
        let now = Instant::from_secs(1);
        let (id, _) = id_of(s.handle_packet(now, &tcp(A, 40000, B, 21, SYN, 100, 0)));
        let mut synack = tcp(B, 21, A, 40000, SYN | ACK, 5000, 0);
        if let L4::Tcp(ref mut i) = synack.l4 {
            i.ack = 101;
        }
        s.handle_packet(now, &synack);
        let mut ack = tcp(A, 40000, B, 21, ACK, 101, 0);
        if let L4::Tcp(ref mut i) = ack.l4 {
            i.ack = 5001;
        }
        s.handle_packet(now, &ack);
        assert_eq!(s.get(id).unwrap().helper(), Some(HelperKind::Ftp));
        assert!(s.wants_help(id));
        id
    }

    /// The server's segment `data` at `seq`, tracked and helped.
    fn server_says(s: &mut Shard, seq: u32, data: &[u8]) -> HelpVerdict {
        let now = Instant::from_secs(2);
        let mut p = tcp(B, 21, A, 40000, ACK | PSH, seq, data.len() as u32);
        if let L4::Tcp(ref mut i) = p.l4 {
            i.ack = 101;
        }
        let (id, dir) = id_of(s.handle_packet(now, &p));
        s.help(now, id, dir, &p, data)
    }

    #[test]
    fn pasv_opens_an_expected_related_connection_with_the_masters_mark() {
        let mut s = shard(0);
        let master = ftp_control(&mut s);
        s.set_connection_mark(master, 5);
        let greeting = b"220 ready\r\n";
        assert_eq!(server_says(&mut s, 5001, greeting), HelpVerdict::Accept);
        let pasv = b"227 Entering Passive Mode (10,0,0,2,19,137).\r\n";
        assert_eq!(
            server_says(&mut s, 5001 + greeting.len() as u32, pasv),
            HelpVerdict::Accept
        );
        assert_eq!(s.stats().expect.live, 1);
        let msgs: Vec<ExpectMsg> = s.drain_expect_msgs().collect();
        assert_eq!(msgs.len(), 1);

        // Another worker's copy sees it too.
        let mut other = shard(1);
        for m in &msgs {
            other.apply_expect(*m);
        }
        let data_syn = tcp(A, 40001, B, 19 * 256 + 137, SYN, 1, 0);
        let now = Instant::from_secs(3);
        assert_eq!(
            other.expected_for(&data_syn, now),
            Some((HelperKind::Ftp, 5))
        );
        // From another address, or to another port: nothing.
        assert_eq!(
            s.expected_for(&tcp(B, 40001, A, 19 * 256 + 137, SYN, 1, 0), now),
            None
        );
        assert_eq!(
            s.expected_for(&tcp(A, 40001, B, 5002, SYN, 1, 0), now),
            None
        );

        let (data, _) = id_of(s.handle_packet(now, &data_syn));
        let e = *s.get(data).unwrap();
        assert!(e.expected());
        assert_eq!(e.helper(), Some(HelperKind::Ftp));
        assert_eq!(s.connection_mark(data), Some(5));
        assert!(!s.wants_help(data));
        assert_eq!(s.stats().expect.used, 1);
        assert_eq!(s.stats().expect.live, 0);
        // Used: the other workers are told.
        let msgs: Vec<ExpectMsg> = s.drain_expect_msgs().collect();
        assert!(matches!(msgs[..], [ExpectMsg::Remove(_)]));
        other.apply_expect(msgs[0]);
        assert_eq!(other.expected_for(&data_syn, now), None);
    }

    #[test]
    fn expectations_go_with_their_master_and_time_out() {
        let mut s = shard(0);
        let master = ftp_control(&mut s);
        server_says(&mut s, 5001, b"220 ready\r\n");
        server_says(
            &mut s,
            5012,
            b"229 Entering Extended Passive Mode (|||6446|)\r\n",
        );
        assert_eq!(s.stats().expect.live, 1);
        s.drain_expect_msgs().for_each(drop);
        assert!(s.remove(master));
        assert_eq!(s.stats().expect.live, 0);
        assert_eq!(
            s.drain_expect_msgs().collect::<Vec<_>>(),
            vec![ExpectMsg::RemoveMaster(master)]
        );

        let mut s = shard(0);
        ftp_control(&mut s);
        server_says(&mut s, 5001, b"220 ready\r\n");
        server_says(
            &mut s,
            5012,
            b"229 Entering Extended Passive Mode (|||6446|)\r\n",
        );
        s.poll_expired(Instant::from_secs(2 + 299), 64);
        assert_eq!(s.stats().expect.live, 1);
        s.poll_expired(Instant::from_secs(2 + 301), 64);
        assert_eq!(s.stats().expect.live, 0);
        assert_eq!(s.stats().expect.expired, 1);
    }

    #[test]
    fn third_party_address_and_malformed_commands() {
        let mut s = shard(0);
        ftp_control(&mut s);
        server_says(&mut s, 5001, b"220 ready\r\n");
        let bad = b"227 Entering Passive Mode (192,168,9,9,19,137).\r\n";
        assert_eq!(server_says(&mut s, 5012, bad), HelpVerdict::Accept);
        assert_eq!(s.stats().expect.third_party, 1);
        assert_eq!(s.stats().expect.live, 0);
        let next = 5012 + bad.len() as u32;
        assert_eq!(server_says(&mut s, next, b"227 (1,2"), HelpVerdict::Drop);
        assert_eq!(s.stats().expect.dropped, 1);
    }

    #[test]
    fn tftp_request_expects_the_servers_answer_from_any_port() {
        let mut s = shard(0);
        let now = Instant::from_secs(1);
        let rrq = FlowRepr {
            tuple: t(A, 3000, B, 69, proto::UDP),
            ip_len: 48,
            l4: L4::Udp,
        };
        let (id, dir) = id_of(s.handle_packet(now, &rrq));
        assert_eq!(
            s.help(now, id, dir, &rrq, b"\x00\x01f\x00octet\x00"),
            HelpVerdict::Accept
        );
        let answer = FlowRepr {
            tuple: t(B, 41234, A, 3000, proto::UDP),
            ip_len: 544,
            l4: L4::Udp,
        };
        assert_eq!(s.expected_for(&answer, now), Some((HelperKind::Tftp, 0)));
        let (data, _) = id_of(s.handle_packet(now, &answer));
        assert!(s.get(data).unwrap().expected());
        assert_eq!(s.get(data).unwrap().helper(), Some(HelperKind::Tftp));
    }

    #[test]
    fn pptp_call_expects_gre_both_ways() {
        use crate::flow::GreInfo;
        use crate::helper::pptp::*;
        let mut s = shard(0);
        let now = Instant::from_secs(1);
        let (id, _) = id_of(s.handle_packet(now, &tcp(A, 40000, B, 1723, SYN, 100, 0)));
        let mut synack = tcp(B, 1723, A, 40000, SYN | ACK, 5000, 0);
        if let L4::Tcp(ref mut i) = synack.l4 {
            i.ack = 101;
        }
        s.handle_packet(now, &synack);
        let mut seq = [101u32, 5001u32];
        let mut say = |s: &mut Shard, from_pac: bool, m: Vec<u8>| {
            let d = usize::from(from_pac);
            let p = if from_pac {
                tcp(B, 1723, A, 40000, ACK, seq[1], m.len() as u32)
            } else {
                tcp(A, 40000, B, 1723, ACK, seq[0], m.len() as u32)
            };
            seq[d] = seq[d].wrapping_add(m.len() as u32);
            let (cid, dir) = id_of(s.handle_packet(now, &p));
            assert_eq!(cid, id);
            s.help(now, cid, dir, &p, &m)
        };
        say(&mut s, false, message(START_SESSION_REQUEST, &[1, 0]));
        say(&mut s, true, message(START_SESSION_REPLY, &[1, 0, 1]));
        say(&mut s, false, message(OUT_CALL_REQUEST, &[0x12, 0x34]));
        say(
            &mut s,
            true,
            message(OUT_CALL_REPLY, &[0xab, 0xcd, 0x12, 0x34, 1]),
        );
        assert_eq!(s.stats().expect.live, 2);
        let gre = |src, dst, call: u16| FlowRepr {
            tuple: t(src, 0, dst, 0, proto::GRE),
            ip_len: 100,
            l4: L4::Gre(GreInfo {
                version: 1,
                key: Some(u32::from(call)),
                protocol: 0x880b,
            }),
        };
        // The PAC's GRE to the PNS carries the PNS's call id.
        assert_eq!(
            s.expected_for(&gre(B, A, 0x1234), now),
            Some((HelperKind::Pptp, 0))
        );
        assert_eq!(s.expected_for(&gre(B, A, 0x9999), now), None);
        let (g, _) = id_of(s.handle_packet(now, &gre(A, B, 0xabcd)));
        assert!(s.get(g).unwrap().expected());
        assert_eq!(s.get(g).unwrap().helper(), Some(HelperKind::Pptp));
        // Both directions' expectations went with the one used.
        assert_eq!(s.stats().expect.live, 0);
        // A second call, then the disconnect: its expectations go.
        say(&mut s, false, message(OUT_CALL_REQUEST, &[0x00, 0x02]));
        say(
            &mut s,
            true,
            message(OUT_CALL_REPLY, &[0x00, 0x03, 0x00, 0x02, 1]),
        );
        assert_eq!(s.stats().expect.live, 2);
        say(
            &mut s,
            true,
            message(CALL_DISCONNECT_NOTIFY, &[0x00, 0x03, 1]),
        );
        assert_eq!(s.stats().expect.live, 0);
    }

    /// Two PNS (A, C) behind one source-NAT address (P) to one PAC (B),
    /// both with call id 0x1234: the call ids are translated to the control
    /// connections' translated ports, the GRE is keyed by call ids both
    /// ways and bound to the translation, and a disconnect forgets the
    /// call.
    #[test]
    fn two_pns_behind_one_srcnat_address_hold_calls_at_once() {
        use crate::conntrack::Decision;
        use crate::flow::GreInfo;
        use crate::helper::pptp::*;
        const C: [u8; 4] = [10, 0, 0, 3];
        const P: [u8; 4] = [10, 0, 0, 100];
        let now = Instant::from_secs(1);
        let mut s = shard(0);
        let create = |s: &mut Shard, p: &FlowRepr, reply: Option<Key>| {
            let pkts = [*p];
            let mut out = [Verdict::New];
            s.lookup_burst(now, &pkts, &mut out);
            let d = Decision {
                reply,
                ..Decision::ACCEPT
            };
            s.commit_burst(now, &pkts, &[d], &mut out);
            id_of(out[0]).0
        };
        let nat_reply = |port: u16| Key {
            src: Addr::from_v4(B),
            dst: Addr::from_v4(P),
            sport: 1723,
            dport: port,
            proto: proto::TCP,
            family: Family::V4,
            ver: 0,
        };
        // Control connections A:40000 -> B:1723 as P:40000, C:40000 as P:40001.
        let pns = [(A, 40000u16), (C, 40001u16)];
        let mut ids = Vec::new();
        for &(addr, port) in &pns {
            let id = create(
                &mut s,
                &tcp(addr, 40000, B, 1723, SYN, 100, 0),
                Some(nat_reply(port)),
            );
            let mut synack = tcp(B, 1723, P, port, SYN | ACK, 5000, 0);
            if let L4::Tcp(ref mut i) = synack.l4 {
                i.ack = 101;
            }
            assert_eq!(id_of(s.handle_packet(now, &synack)), (id, Dir::Reply));
            assert!(s.get(id).unwrap().srcnat());
            ids.push(id);
        }
        // One message, helped and rewritten as the worker does; returns
        // what leaves.
        let say = |s: &mut Shard, k: usize, from_pac: bool, mut m: Vec<u8>| {
            let (addr, port) = pns[k];
            let p = if from_pac {
                tcp(B, 1723, P, port, ACK, 6000, m.len() as u32)
            } else {
                tcp(addr, 40000, B, 1723, ACK, 200, m.len() as u32)
            };
            let (id, dir) = id_of(s.handle_packet(now, &p));
            assert_eq!(id, ids[k]);
            assert_eq!(s.help(now, id, dir, &p, &m), HelpVerdict::Accept);
            if let Some(HelperState::Pptp(st)) = s.helper_state(id) {
                pptp_nat::rewrite(st, dir.index(), &mut m);
            }
            m
        };
        let be = |m: &[u8], off: usize| u16::from_be_bytes([m[off], m[off + 1]]);
        let pac_ids = [0xa001u16, 0xa002];
        for k in 0..2 {
            say(&mut s, k, false, message(START_SESSION_REQUEST, &[1, 0]));
            say(&mut s, k, true, message(START_SESSION_REPLY, &[1, 0, 1]));
            let out = say(&mut s, k, false, message(OUT_CALL_REQUEST, &[0x12, 0x34]));
            // The PAC sees the translated port as the PNS's call id.
            assert_eq!(be(&out, HEADER_LEN), pns[k].1);
            let [hi, lo] = pns[k].1.to_be_bytes();
            let [phi, plo] = pac_ids[k].to_be_bytes();
            let out = say(
                &mut s,
                k,
                true,
                message(OUT_CALL_REPLY, &[phi, plo, hi, lo, 1]),
            );
            // The PNS sees its own.
            assert_eq!(be(&out, HEADER_LEN + 2), 0x1234);
        }
        // Both calls up at once: two pairs.
        assert_eq!(s.stats().expect.live, 4);
        let gre = |src, dst, call: u16| FlowRepr {
            tuple: t(src, 0, dst, 0, proto::GRE),
            ip_len: 100,
            l4: L4::Gre(GreInfo {
                version: 1,
                key: Some(u32::from(call)),
                protocol: 0x880b,
            }),
        };
        let mut gre_ids = Vec::new();
        for k in 0..2 {
            // The PNS's GRE, keyed by both call ids, bound to the PAC's side.
            let g = gre(pns[k].0, B, pac_ids[k]);
            let key = s.key_of(&g);
            assert_eq!((key.sport, key.dport), (0x1234, pac_ids[k]));
            assert_eq!(s.gre_call_owner(&g), Some(0));
            let bind = s.gre_call_binding(&key).unwrap();
            assert_eq!(
                (bind.src, bind.dst, bind.sport, bind.dport),
                (Addr::from_v4(B), Addr::from_v4(P), pac_ids[k], pns[k].1)
            );
            assert_eq!(s.expected_for(&g, now), Some((HelperKind::Pptp, 0)));
            let id = create(&mut s, &g, Some(bind));
            assert!(s.get(id).unwrap().expected());
            gre_ids.push(id);
        }
        assert_ne!(gre_ids[0], gre_ids[1]);
        assert_eq!(s.stats().expect.live, 0);
        // The PAC's GRE to P, with each translated id, reaches its call.
        for k in 0..2 {
            let v = s.handle_packet(now, &gre(B, P, pns[k].1));
            assert_eq!(id_of(v), (gre_ids[k], Dir::Reply));
        }
        // A call id nobody announced is not taken for a call.
        let stray = gre(B, P, 0x7777);
        assert_eq!(s.key_of(&stray).sport, 0);
        assert_eq!(s.gre_call_owner(&stray), None);
        assert_eq!(s.expected_for(&stray, now), None);
        let v = s.handle_packet(now, &stray);
        assert!(!gre_ids.contains(&id_of(v).0));

        // The other worker's copy keys the calls alike and owns them here.
        let msgs: Vec<ExpectMsg> = s.drain_expect_msgs().collect();
        let mut other = shard(1);
        for m in &msgs {
            other.apply_expect(*m);
        }
        let g = gre(B, P, pns[1].1);
        assert_eq!(other.gre_call_owner(&g), Some(0));
        assert_eq!(other.key_of(&g), s.key_of(&g));

        // The PAC disconnects the first call: its keys go, the second's stay.
        let [phi, plo] = pac_ids[0].to_be_bytes();
        let out = say(
            &mut s,
            0,
            true,
            message(CALL_DISCONNECT_NOTIFY, &[phi, plo, 1]),
        );
        assert_eq!(be(&out, HEADER_LEN), pac_ids[0]);
        assert_eq!(s.key_of(&gre(B, P, pns[0].1)).sport, 0);
        assert_eq!(s.key_of(&gre(B, P, pns[1].1)).sport, pac_ids[1]);
        let msgs: Vec<ExpectMsg> = s.drain_expect_msgs().collect();
        assert_eq!(msgs, vec![ExpectMsg::RemoveMaster(ids[0])]);
        other.apply_expect(msgs[0]);
        assert_eq!(other.gre_call_owner(&gre(B, P, pns[0].1)), None);
        assert_eq!(other.gre_call_owner(&g), Some(0));
    }

    #[test]
    fn no_service_ports_no_helper() {
        let mut s = Shard::new(
            TableConfig::new(64),
            Settings::default(),
            0,
            HashSeed::from_u64(1),
        );
        let (id, _) = id_of(s.handle_packet(Instant::ZERO, &tcp(A, 1, B, 21, SYN, 1, 0)));
        assert_eq!(s.get(id).unwrap().helper(), None);
        assert!(!s.wants_help(id));
        assert_eq!(s.helpers.memory_bytes(), 0);
    }
}
