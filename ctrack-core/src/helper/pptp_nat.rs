//! PPTP through source NAT, as Linux's `nf_nat_pptp`: two PNS behind one
//! translated address may each pick the same call id, and the PAC sends
//! its GRE to that one address carrying the PNS's call id, so the call id
//! must be unique on the translated address. The PNS's call id is
//! translated in its control messages, and back in the PAC's; the GRE
//! packets to the PNS get their call id back too (the key field's low 16
//! bits; GRE version 1 has no checksum).
//!
//! - **The translated id** is the control connection's translated source
//!   port (Linux: "for now we use TCP source port"): unique among the
//!   control connections from the translated address to one PAC, so among
//!   their calls, with nothing to reserve. As Linux, one call per control
//!   connection.
//! - **PNS to PAC** (the PNS's own id to the translated one):
//!   Outgoing-Call-Request's and Incoming-Call-Reply's Call ID (where the
//!   PNS assigns it; Linux translates only the former), Call-Clear-Request's
//!   Call ID.
//! - **PAC to PNS** (the translated id back): Outgoing-Call-Reply's,
//!   Incoming-Call-Connected's, WAN-Error-Notify's and Set-Link-Info's
//!   Peer's Call ID. **Differs from Linux:** Call-Disconnect-Notify's Call
//!   ID is the PAC's own (RFC 2637 2.13), which NAT does not change, so it is
//!   left as it is; Linux writes the PNS's id over it.
//! - A field is rewritten only when it holds the id being translated; the
//!   message length never changes (2-byte fields), so TCP needs no sequence
//!   adjustment, only its checksum updated (RFC 1624).
//!
//! The helper ([`super::pptp::help`]) parses each message as it arrives;
//! [`after_help`] then switches the state to the translated id, so that the
//! PAC's replies (which carry it) match, and the expectations name the
//! translated id on the PAC's side. The rewrite itself is the worker's,
//! after the packet's address translation ([`rewrite_frame`]).

use super::pptp::{self, PptpAction, PptpState};
use crate::flow::{FlowRepr, L4, proto};

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// After [`pptp::help`] returned `action` for message `data` in direction
/// `dir_index` (0: PNS to PAC) of a control connection whose source is
/// translated, with `nat_id` the PNS's call id on the translated side:
/// a call id the PNS just assigned is switched to `nat_id` (its own kept in
/// `orig_pns_call_id`).
pub fn after_help(
    st: &mut PptpState,
    dir_index: usize,
    data: &[u8],
    action: PptpAction,
    nat_id: u16,
) {
    if dir_index & 1 != 0 || action == PptpAction::Ignored {
        return;
    }
    let Some((msg, body)) = pptp::control_message(data) else {
        return;
    };
    let assigned = match msg {
        pptp::OUT_CALL_REQUEST => st.call == pptp::Call::OutReq,
        pptp::IN_CALL_REPLY => st.call == pptp::Call::InRep,
        _ => false,
    };
    if assigned && be16(body, 0) == st.pns_call_id {
        st.orig_pns_call_id = Some(st.pns_call_id);
        st.pns_call_id = nat_id;
    }
}

/// [`pptp::help`], then, for a control connection whose source is
/// translated (`nat_id`: the PNS's call id on the translated side),
/// [`after_help`].
pub fn help(st: &mut PptpState, dir_index: usize, data: &[u8], nat_id: Option<u16>) -> PptpAction {
    let action = pptp::help(st, dir_index, data);
    if let Some(id) = nat_id {
        after_help(st, dir_index, data, action, id);
    }
    action
}

/// The call id field (offset in the message) that message `msg` carries
/// for the PNS, by direction.
fn pns_field(dir_index: usize, msg: u16) -> Option<usize> {
    let body = pptp::HEADER_LEN;
    if dir_index & 1 == 0 {
        match msg {
            pptp::OUT_CALL_REQUEST | pptp::IN_CALL_REPLY | pptp::CALL_CLEAR_REQUEST => Some(body),
            _ => None,
        }
    } else {
        match msg {
            pptp::OUT_CALL_REPLY => Some(body + 2),
            pptp::IN_CALL_CONNECT | pptp::WAN_ERROR_NOTIFY | pptp::SET_LINK_INFO => Some(body),
            _ => None,
        }
    }
}

/// Rewrites the PNS's call id in control message `data` (direction
/// `dir_index`) of a connection in state `st`: its own id to the
/// translated one towards the PAC, back towards the PNS. Returns the
/// offset in `data` and the old and new values, if it changed anything.
pub fn rewrite(st: &PptpState, dir_index: usize, data: &mut [u8]) -> Option<(usize, u16, u16)> {
    let orig = st.orig_pns_call_id?;
    let nat = st.pns_call_id;
    let (msg, _) = pptp::control_message(data)?;
    let off = pns_field(dir_index, msg)?;
    let (from, to) = if dir_index & 1 == 0 {
        (orig, nat)
    } else {
        (nat, orig)
    };
    if be16(data, off) != from || from == to {
        return None;
    }
    data[off..off + 2].copy_from_slice(&to.to_be_bytes());
    Some((off, from, to))
}

/// Why a frame was not rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PptpNatError {
    /// Its headers are not where `repr` says (or IPv6 extension headers
    /// before the TCP/GRE header: not looked into).
    Malformed,
}

/// Offsets of the IP packet in `frame` and of its L4 header, for IPv4 and
/// for IPv6 without extension headers.
fn l4_offset(frame: &[u8], l4_proto: u8) -> Result<(usize, usize), PptpNatError> {
    let ip = crate::packet::ethernet::strip(frame)
        .map_err(|_| PptpNatError::Malformed)?
        .payload;
    let at = frame.len() - ip.len();
    let l4 = match ip.first().map(|b| b >> 4) {
        Some(4) => at + usize::from(ip[0] & 0x0f) * 4,
        Some(6) if ip.get(6) == Some(&l4_proto) => at + 40,
        _ => return Err(PptpNatError::Malformed),
    };
    Ok((at, l4))
}

/// RFC 1624 eqn. 3: the checksum `hc` after a 16-bit word went from `m`
/// to `m2`.
fn adjust(hc: u16, m: u16, m2: u16) -> u16 {
    let mut s = u32::from(!hc) + u32::from(!m) + u32::from(m2);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// Rewrites the PNS's call id in the control message of TCP segment
/// `frame` (parsed as `repr`, direction `dir_index`), with the TCP
/// checksum updated. `Ok(false)` when nothing needed changing.
pub fn rewrite_frame(
    st: &PptpState,
    dir_index: usize,
    frame: &mut [u8],
    repr: &FlowRepr,
) -> Result<bool, PptpNatError> {
    let L4::Tcp(t) = repr.l4 else {
        return Ok(false);
    };
    if st.orig_pns_call_id.is_none() || t.payload_len == 0 {
        return Ok(false);
    }
    let (off, l4) = l4_offset(frame, proto::TCP)?;
    // The segment's payload: the last `payload_len` bytes of the IP packet.
    let end = off + repr.ip_len as usize;
    let start = end
        .checked_sub(t.payload_len as usize)
        .filter(|&s| s >= l4 + 20 && end <= frame.len())
        .ok_or(PptpNatError::Malformed)?;
    let Some((at, old, new)) = rewrite(st, dir_index, &mut frame[start..end]) else {
        return Ok(false);
    };
    // The field sits at an even offset from the TCP header (headers are
    // multiples of 4 bytes, the field's offset in the message is even), so
    // it is one word of the checksum.
    if (start + at - l4) % 2 != 0 {
        return Err(PptpNatError::Malformed);
    }
    let hc = be16(frame, l4 + 16);
    frame[l4 + 16..l4 + 18].copy_from_slice(&adjust(hc, old, new).to_be_bytes());
    Ok(true)
}

/// Sets the call id in the key field of the GRE version 1 packet in
/// `frame` (after its addresses were translated: the IP header checksum is
/// that translation's; GRE version 1 has no checksum). `Ok(false)` when it
/// already carries it.
pub fn set_gre_call_id(frame: &mut [u8], call_id: u16) -> Result<bool, PptpNatError> {
    let (_, g) = l4_offset(frame, proto::GRE)?;
    let hdr = frame.get(g..g + 8).ok_or(PptpNatError::Malformed)?;
    let flags = be16(hdr, 0);
    // Version 1 with K: the key is right after the fixed part.
    if flags & 0x0007 != 1 || flags & crate::packet::gre::flags::KEY == 0 {
        return Err(PptpNatError::Malformed);
    }
    if be16(hdr, 6) == call_id {
        return Ok(false);
    }
    frame[g + 6..g + 8].copy_from_slice(&call_id.to_be_bytes());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::pptp::*;

    fn confirmed() -> PptpState {
        let mut s = PptpState::default();
        pptp::help(&mut s, 0, &message(START_SESSION_REQUEST, &[1, 0]));
        pptp::help(&mut s, 1, &message(START_SESSION_REPLY, &[1, 0, 1]));
        s
    }

    /// Parses then rewrites, as the table and the worker do.
    fn pass(s: &mut PptpState, dir: usize, m: &mut [u8], nat_id: u16) -> PptpAction {
        let a = super::help(s, dir, m, Some(nat_id));
        rewrite(s, dir, m);
        a
    }

    #[test]
    fn outgoing_call_ids_are_translated_both_ways() {
        let mut s = confirmed();
        let mut ocrq = message(OUT_CALL_REQUEST, &[0x12, 0x34, 0, 1]);
        pass(&mut s, 0, &mut ocrq, 40001);
        // The PAC sees the translated id.
        assert_eq!(be16(&ocrq, HEADER_LEN), 40001);
        assert_eq!(s.orig_pns_call_id, Some(0x1234));
        let mut ocrp = message(OUT_CALL_REPLY, &[0xab, 0xcd, 0x9c, 0x41, 1]);
        let a = pass(&mut s, 1, &mut ocrp, 40001);
        assert_eq!(
            a,
            PptpAction::ExpectGre {
                pns_call_id: 40001,
                pac_call_id: 0xabcd
            }
        );
        // The PNS sees its own id as the peer's.
        assert_eq!(be16(&ocrp, HEADER_LEN + 2), 0x1234);
        assert_eq!(be16(&ocrp, HEADER_LEN), 0xabcd);
        // Clear from the PNS: translated; a WAN error to it: back.
        let mut ccrq = message(CALL_CLEAR_REQUEST, &[0x12, 0x34]);
        pass(&mut s, 0, &mut ccrq, 40001);
        assert_eq!(be16(&ccrq, HEADER_LEN), 40001);
        let mut wen = message(WAN_ERROR_NOTIFY, &[0x9c, 0x41]);
        pass(&mut s, 1, &mut wen, 40001);
        assert_eq!(be16(&wen, HEADER_LEN), 0x1234);
        // The PAC's own id in Call-Disconnect-Notify stays.
        let mut cdn = message(CALL_DISCONNECT_NOTIFY, &[0xab, 0xcd, 1]);
        assert_eq!(pass(&mut s, 1, &mut cdn, 40001), PptpAction::Clear);
        assert_eq!(be16(&cdn, HEADER_LEN), 0xabcd);
    }

    #[test]
    fn incoming_call_and_untranslated_connections() {
        let mut s = confirmed();
        pass(&mut s, 1, &mut message(IN_CALL_REQUEST, &[0, 7]), 999);
        let mut icrp = message(IN_CALL_REPLY, &[0, 9, 0, 7, 1]);
        pass(&mut s, 0, &mut icrp, 999);
        assert_eq!(be16(&icrp, HEADER_LEN), 999);
        let mut iccn = message(IN_CALL_CONNECT, &[0x03, 0xe7]);
        assert_eq!(
            pass(&mut s, 1, &mut iccn, 999),
            PptpAction::ExpectGre {
                pns_call_id: 999,
                pac_call_id: 7
            }
        );
        assert_eq!(be16(&iccn, HEADER_LEN), 9);

        // Without NAT (no `after_help`), nothing is rewritten.
        let mut s = confirmed();
        let mut ocrq = message(OUT_CALL_REQUEST, &[0x12, 0x34]);
        pptp::help(&mut s, 0, &ocrq);
        assert_eq!(rewrite(&s, 0, &mut ocrq), None);
        // Ignored messages assign nothing; short ones are left alone.
        let mut s = PptpState::default();
        let mut early = message(OUT_CALL_REQUEST, &[0x12, 0x34]);
        assert_eq!(pass(&mut s, 0, &mut early, 5), PptpAction::Ignored);
        assert_eq!(s.orig_pns_call_id, None);
        assert_eq!(be16(&early, HEADER_LEN), 0x1234);
        let st = PptpState {
            orig_pns_call_id: Some(1),
            pns_call_id: 2,
            ..confirmed()
        };
        let mut short = message(OUT_CALL_REQUEST, &[0, 1]);
        short.truncate(HEADER_LEN + 10);
        assert_eq!(rewrite(&st, 0, &mut short), None);
    }

    /// An Ethernet + IPv4 frame of protocol `proto` with `l4` after the
    /// IP header, checksums filled.
    fn frame(proto_: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        let [hi, lo] = total.to_be_bytes();
        f.extend_from_slice(&[
            0x45, 0, hi, lo, 0, 1, 0x40, 0, 64, proto_, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(l4);
        crate::packet::checksum::fill_ip(&mut f[14..]);
        f
    }

    #[test]
    fn frames_keep_valid_checksums() {
        use crate::packet::checksum::{RxChecksum, verify_ethernet};
        use crate::packet::parse_ethernet;
        let mut st = confirmed();
        let ocrq = message(OUT_CALL_REQUEST, &[0x12, 0x34, 0, 1]);
        let a = pptp::help(&mut st, 0, &ocrq);
        after_help(&mut st, 0, &ocrq, a, 40001);
        // TCP: 20-byte header (data offset 5, ACK|PSH), then the message.
        let mut tcp = vec![
            0x9c, 0x40, 0x06, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff,
        ];
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&ocrq);
        let mut f = frame(proto::TCP, &tcp);
        assert_eq!(verify_ethernet(&f, RxChecksum::UNKNOWN), Ok(()));
        let repr = parse_ethernet(&f).unwrap();
        assert_eq!(rewrite_frame(&st, 0, &mut f, &repr), Ok(true));
        assert_eq!(verify_ethernet(&f, RxChecksum::UNKNOWN), Ok(()));
        let at = 14 + 20 + 20 + HEADER_LEN;
        assert_eq!(be16(&f, at), 40001);
        // Once more: already translated, nothing to do.
        assert_eq!(rewrite_frame(&st, 0, &mut f, &repr), Ok(false));
        // A truncated frame is an error, not a panic.
        let mut short = f[..f.len() - 10].to_vec();
        assert!(rewrite_frame(&st, 0, &mut short, &repr).is_err());

        // GRE v1 (K, S), call id 0x9c41 set back to 0x1234.
        let gre = [
            0x30, 0x01, 0x88, 0x0b, 0, 3, 0x9c, 0x41, 0, 0, 0, 1, 1, 2, 3,
        ];
        let mut f = frame(proto::GRE, &gre);
        assert_eq!(set_gre_call_id(&mut f, 0x1234), Ok(true));
        assert_eq!(be16(&f, 14 + 20 + 6), 0x1234);
        assert_eq!(verify_ethernet(&f, RxChecksum::UNKNOWN), Ok(()));
        assert_eq!(set_gre_call_id(&mut f, 0x1234), Ok(false));
        // Version 0 is not PPTP's.
        let v0 = [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 9];
        let mut f = frame(proto::GRE, &v0);
        assert!(set_gre_call_id(&mut f, 1).is_err());
    }

    #[test]
    fn checksum_adjustment_matches_a_full_sum() {
        use crate::packet::checksum::{checksum_of, sum};
        let mut data = vec![0u8; 64];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 37 + 11) as u8;
        }
        let before = checksum_of(sum(&data, 0));
        let old = be16(&data, 20);
        data[20..22].copy_from_slice(&0x9c41u16.to_be_bytes());
        let after = checksum_of(sum(&data, 0));
        let adj = adjust(before, old, 0x9c41);
        // 0x0000 and 0xffff are the same one's-complement number.
        assert!(adj == after || (adj, after) == (0, 0xffff) || (adj, after) == (0xffff, 0));
    }
}
