//! PPTP through NAT in the worker (Linux's `nf_nat_pptp`): the three
//! places where a PPTP call differs from other NAT connections. The state
//! and the byte-level rewrites are the core's
//! ([`ctrack_core::helper::pptp_nat`], the GRE keymap in
//! [`ctrack_core::conntrack::gre_keymap`]); this is the wiring.
//!
//! - **Owner** ([`owner`]): the GRE packets of a call PPTP announced belong
//!   to its control connection's worker. Packets are spread by their
//!   addresses for GRE, and through NAT a call's two sides have different
//!   addresses (the PNS's and the translated one), so they could hash to
//!   two workers; every worker holds the keymap, so each sends a call's
//!   packets to the one that holds it. Other packets pay one compare of the
//!   protocol.
//! - **Binding** ([`binding`]): a new GRE connection of a call through NAT
//!   takes the call's translation (the keymap's other direction), not the
//!   NAT rules' (Linux's `pptp_nat_expected`).
//! - **Rewrite** ([`rewrite`]): after the address translation, a control
//!   connection's messages get the PNS's call id translated (and back), and
//!   a GRE packet of a NAT connection the call id of the tuple it leaves
//!   with (towards the PNS: its own id again).
//!
//! See docs/helpers.md (PPTP through NAT).

use crate::conntrack::key::Key;
use crate::conntrack::{Shard, Verdict};
use crate::flow::{FlowRepr, L4, proto};
use crate::helper::{HelperState, pptp_nat};
use crate::nat::{NatDrop, Rewrite};

/// The worker that owns `pkt`: `hashed` (the dispatch's choice), unless it
/// is a GRE version 1 packet of a call the keymap knows.
#[inline]
pub fn owner(shard: &Shard, pkt: &FlowRepr, hashed: u16) -> u16 {
    if pkt.tuple.proto != proto::GRE {
        return hashed;
    }
    shard.gre_call_owner(pkt).unwrap_or(hashed)
}

/// The reply key of a new connection `orig` (keyed by [`Shard::key_of`])
/// that is a PPTP call's GRE through NAT: `None` for any other connection
/// (the NAT rules decide), else the call's binding, refused when another
/// connection holds it.
#[cold]
pub fn binding(shard: &Shard, orig: &Key) -> Option<Result<Key, NatDrop>> {
    if orig.proto != proto::GRE {
        return None;
    }
    let r = shard.gre_call_binding(orig)?;
    Some(if shard.lookup(&r).is_none() {
        Ok(r)
    } else {
        Err(NatDrop::Exhausted)
    })
}

/// After `frame` (tracked as `repr`, verdict `v`) got its address rewrite
/// `rw`: the PPTP call ids. `Err` when the frame cannot be rewritten (to
/// drop, as Linux drops what it cannot mangle).
pub fn rewrite(
    shard: &Shard,
    repr: &FlowRepr,
    v: Verdict,
    rw: &Rewrite,
    frame: &mut [u8],
) -> Result<(), pptp_nat::PptpNatError> {
    match (repr.l4, rw) {
        (L4::Gre(g), Rewrite::To(t)) if g.version == 1 && t.dst_port != 0 => {
            // Keyed by call ids: the destination "port" is the call id
            // the receiver knows.
            pptp_nat::set_gre_call_id(frame, t.dst_port).map(drop)
        }
        (L4::Tcp(_), Rewrite::To(_)) => {
            let Verdict::Tracked { id, dir, .. } = v else {
                return Ok(());
            };
            if !shard.wants_help(id) {
                return Ok(());
            }
            match shard.helper_state(id) {
                Some(HelperState::Pptp(st)) => {
                    pptp_nat::rewrite_frame(st, dir.index(), frame, repr).map(drop)
                }
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::conntrack::{Settings, TableConfig};
    use crate::firewall::FirewallUpdate;
    use crate::flow::tcp_flags::{ACK, PSH, SYN};
    use crate::helper::pptp::*;
    use crate::helpers::service_ports;
    use crate::io::mem::MemIo;
    use crate::worker::{Command, Mesh, Worker, random_seed};
    use ctrack_core::packet::checksum::{RxChecksum, fill_ip, verify_ethernet};
    use ctrack_rules::{Names, Ruleset, parse};
    use ctrack_traffic::synth::tcp_frame;

    use super::*;

    const PNS: [u8; 4] = [10, 0, 0, 1];
    const PAC: [u8; 4] = [10, 0, 0, 2];
    const NAT: [u8; 4] = [10, 0, 0, 100];

    const RULES: &str = "/ip firewall nat\n\
        add chain=srcnat action=src-nat to-addresses=10.0.0.100 out-interface=ether2\n\
        /ip firewall filter\n\
        add chain=forward action=accept connection-state=established,related\n\
        add chain=forward action=accept connection-state=new protocol=tcp dst-port=1723\n\
        add chain=forward action=drop\n";

    fn worker() -> Worker<MemIo> {
        let cfg = parse(RULES).unwrap();
        let ifaces = cfg.interface_names(&["ether1", "ether2"]);
        let rs = Arc::new(Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap());
        let (tx, rx) = crossbeam::channel::bounded(4);
        let mut shard = Shard::new(
            TableConfig::new(1024),
            Settings::default(),
            0,
            random_seed(),
        );
        shard.set_service_ports(service_ports(&cfg.service_ports));
        let io = MemIo::pair();
        let mut w = Worker::new(0, io, shard, Mesh::new(1, vec![0, 0]), rx, Arc::default());
        tx.send(Command::Firewall(Box::new(FirewallUpdate {
            ruleset: Some(rs),
            generation: 1,
            auto_tracking: true,
            reply: None,
            lists_out: None,
            conncount: None,
            addresses: None,
        })))
        .unwrap();
        w.poll_once();
        w
    }

    fn seg(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), flags: u8, payload: &[u8]) -> Vec<u8> {
        let (sport, dport) = ports;
        let mut f = tcp_frame(
            src,
            dst,
            sport,
            dport,
            1,
            1,
            flags,
            payload.len(),
            None,
            true,
        );
        let n = f.len();
        f[n - payload.len()..].copy_from_slice(payload);
        fill_ip(&mut f[14..]);
        f
    }

    /// GRE version 1 (K, S) from `src` to `dst` carrying `call`.
    fn gre(src: [u8; 4], dst: [u8; 4], call: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let [c0, c1] = call.to_be_bytes();
        let body = [0x30, 0x01, 0x88, 0x0b, 0, 3, c0, c1, 0, 0, 0, 1, 1, 2, 3];
        f.extend_from_slice(&[0x45, 0, 0, 20 + body.len() as u8, 0, 1, 0, 0, 64, 47, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&body);
        fill_ip(&mut f[14..]);
        f
    }

    /// Sends `frame` in from the PNS's side (0) or the PAC's (1); the
    /// frame that went out of the other, checksums verified.
    fn send(w: &mut Worker<MemIo>, from_pac: bool, frame: Vec<u8>) -> Vec<u8> {
        let (inp, out) = if from_pac { (1, 0u16) } else { (0, 1u16) };
        let before = w.io().output(out).len();
        w.io_mut().links[inp].input.push_back(frame);
        while w.poll_once() > 0 {}
        let sent = w.io().output(out);
        assert_eq!(sent.len(), before + 1, "not forwarded");
        let f = sent[before].clone();
        assert_eq!(verify_ethernet(&f, RxChecksum::UNKNOWN), Ok(()));
        f
    }

    fn be(f: &[u8], off: usize) -> u16 {
        u16::from_be_bytes([f[off], f[off + 1]])
    }

    /// Offset of the PPTP message in a frame of `seg` (IPv4, TCP 20 bytes).
    const MSG: usize = 14 + 20 + 20;
    const SRC: usize = 14 + 12;
    const DST: usize = 14 + 16;

    #[test]
    fn a_call_through_src_nat_in_the_worker() {
        let mut w = worker();
        let out = send(&mut w, false, seg(PNS, PAC, (40000, 1723), SYN, b""));
        assert_eq!(out[SRC..SRC + 4], NAT);
        // One worker: the source port is kept (free), so it is the id.
        let port = be(&out, 14 + 20);
        send(&mut w, true, seg(PAC, NAT, (1723, port), SYN | ACK, b""));
        send(&mut w, false, seg(PNS, PAC, (40000, 1723), ACK, b""));
        let m = message(START_SESSION_REQUEST, &[1, 0]);
        send(&mut w, false, seg(PNS, PAC, (40000, 1723), ACK | PSH, &m));
        let m = message(START_SESSION_REPLY, &[1, 0, 1]);
        send(&mut w, true, seg(PAC, NAT, (1723, port), ACK | PSH, &m));
        // The PNS's call id leaves as the translated port, and comes back.
        let m = message(OUT_CALL_REQUEST, &[0x12, 0x34]);
        let out = send(&mut w, false, seg(PNS, PAC, (40000, 1723), ACK | PSH, &m));
        assert_eq!(be(&out, MSG + HEADER_LEN), port);
        let [p0, p1] = port.to_be_bytes();
        let m = message(OUT_CALL_REPLY, &[0xab, 0xcd, p0, p1, 1]);
        let out = send(&mut w, true, seg(PAC, NAT, (1723, port), ACK | PSH, &m));
        assert_eq!(out[DST..DST + 4], PNS);
        assert_eq!(be(&out, MSG + HEADER_LEN + 2), 0x1234);
        assert_eq!(w.shard().stats().expect.live, 2);
        // The PAC's GRE to the translated address with the translated id
        // reaches the PNS with its own; the PNS's answer leaves translated.
        let out = send(&mut w, true, gre(PAC, NAT, port));
        assert_eq!(out[DST..DST + 4], PNS);
        assert_eq!(be(&out, 14 + 20 + 6), 0x1234);
        let out = send(&mut w, false, gre(PNS, PAC, 0xabcd));
        assert_eq!(out[SRC..SRC + 4], NAT);
        assert_eq!(be(&out, 14 + 20 + 6), 0xabcd);
        assert_eq!(w.shard().stats().expect.live, 0);
        // A GRE with a call id nobody announced is no call's: dropped.
        w.io_mut().links[1].input.push_back(gre(PAC, NAT, 0x7777));
        let before = w.io().output(0).len();
        while w.poll_once() > 0 {}
        assert_eq!(w.io().output(0).len(), before);
    }
}
