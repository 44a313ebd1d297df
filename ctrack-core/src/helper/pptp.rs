//! PPTP control connections (RFC 2637, TCP 1723), as Linux's
//! `nf_conntrack_pptp`: the call management messages tell which two call
//! ids a call uses, and a call that is set up expects its GRE version 1
//! packets (each direction carries the receiver's call id in its key).
//!
//! As Linux, the originator of the control connection is taken for the PNS
//! (client) and the responder for the PAC (server); one message is read per
//! segment, from its first byte; a message shorter than its type's size is
//! ignored; messages out of order for the session and call state are
//! ignored (Linux's "invalid": accepted, nothing changes). Linux keeps one
//! call per control connection (its `pns_call_id`/`pac_call_id`), and so do
//! we.

/// PPTP message type 1: control message.
pub const PACKET_CONTROL: u16 = 1;
/// The magic cookie of every PPTP message.
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// Bytes of the PPTP header and control header before a message's body.
pub const HEADER_LEN: usize = 12;

pub const START_SESSION_REQUEST: u16 = 1;
pub const START_SESSION_REPLY: u16 = 2;
pub const STOP_SESSION_REQUEST: u16 = 3;
pub const STOP_SESSION_REPLY: u16 = 4;
pub const ECHO_REQUEST: u16 = 5;
pub const ECHO_REPLY: u16 = 6;
pub const OUT_CALL_REQUEST: u16 = 7;
pub const OUT_CALL_REPLY: u16 = 8;
pub const IN_CALL_REQUEST: u16 = 9;
pub const IN_CALL_REPLY: u16 = 10;
pub const IN_CALL_CONNECT: u16 = 11;
pub const CALL_CLEAR_REQUEST: u16 = 12;
pub const CALL_DISCONNECT_NOTIFY: u16 = 13;
pub const WAN_ERROR_NOTIFY: u16 = 14;
pub const SET_LINK_INFO: u16 = 15;

/// Body sizes per message type (Linux's `pptp_msg_size`, the structures of
/// RFC 2637 without the 12 header bytes).
const MSG_SIZE: [usize; 16] = [
    0, 144, 144, 4, 4, 4, 8, 156, 20, 196, 12, 16, 4, 136, 40, 20,
];

/// The control connection's session state (Linux's `pptp_ctrlsess_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Session {
    #[default]
    None,
    Error,
    StopReq,
    Requested,
    Confirmed,
}

/// The call's state (Linux's `pptp_ctrlcall_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Call {
    #[default]
    None,
    Error,
    OutReq,
    OutConf,
    InReq,
    InRep,
    InConf,
    ClearReq,
}

/// The per-connection state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PptpState {
    pub session: Session,
    pub call: Call,
    /// The PNS's call id as the PAC knows it (translated through NAT:
    /// [`super::pptp_nat`]).
    pub pns_call_id: u16,
    pub pac_call_id: u16,
    /// Through source NAT: the PNS's own call id, which its packets carry
    /// (`pns_call_id` is then the translated one; Linux's
    /// `nf_nat_pptp.pns_call_id`). `None` without NAT.
    pub orig_pns_call_id: Option<u16>,
}

/// What a message asks of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PptpAction {
    Nothing,
    /// A call is up: expect GRE from the PNS to the PAC carrying
    /// `pac_call_id`, and from the PAC to the PNS carrying `pns_call_id`.
    ExpectGre {
        pns_call_id: u16,
        pac_call_id: u16,
    },
    /// The call or the session is gone: forget its expectations.
    Clear,
    /// Out of order, or too short: ignored (Linux accepts it, changes nothing).
    Ignored,
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// The control message at the start of `data`: its type and body, when
/// the headers are right and the body is as long as its type's size.
pub fn control_message(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < HEADER_LEN
        || be16(data, 2) != PACKET_CONTROL
        || u32::from_be_bytes([data[4], data[5], data[6], data[7]]) != MAGIC_COOKIE
    {
        return None;
    }
    let msg = be16(data, 8);
    let body = &data[HEADER_LEN..];
    match MSG_SIZE.get(usize::from(msg)) {
        Some(&size) if msg > 0 && body.len() >= size => Some((msg, body)),
        _ => None,
    }
}

/// One segment's payload `data` in direction `dir_index` (0: PNS to PAC).
pub fn help(state: &mut PptpState, dir_index: usize, data: &[u8]) -> PptpAction {
    if data.len() < HEADER_LEN {
        return PptpAction::Nothing;
    }
    let ptype = be16(data, 2);
    let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if ptype != PACKET_CONTROL || cookie != MAGIC_COOKIE {
        return PptpAction::Nothing;
    }
    let msg = be16(data, 8);
    let body = &data[HEADER_LEN..];
    match MSG_SIZE.get(usize::from(msg)) {
        Some(&size) if msg > 0 && body.len() >= size => {}
        _ => return PptpAction::Ignored,
    }
    if dir_index & 1 == 0 {
        outbound(state, msg, body)
    } else {
        inbound(state, msg, body)
    }
}

/// PNS to PAC.
fn outbound(s: &mut PptpState, msg: u16, b: &[u8]) -> PptpAction {
    match msg {
        START_SESSION_REQUEST => s.session = Session::Requested,
        STOP_SESSION_REQUEST => s.session = Session::StopReq,
        OUT_CALL_REQUEST => {
            if s.session != Session::Confirmed {
                return PptpAction::Ignored;
            }
            s.call = Call::OutReq;
            s.pns_call_id = be16(b, 0);
        }
        IN_CALL_REPLY => {
            if s.session != Session::Confirmed
                || s.call != Call::InReq
                || be16(b, 2) != s.pac_call_id
            {
                return PptpAction::Ignored;
            }
            if b[4] == 1 {
                s.call = Call::InRep;
                s.pns_call_id = be16(b, 0);
            } else {
                s.call = Call::None;
            }
        }
        CALL_CLEAR_REQUEST => {
            if s.session != Session::Confirmed {
                return PptpAction::Ignored;
            }
            s.call = Call::ClearReq;
        }
        SET_LINK_INFO | ECHO_REQUEST | ECHO_REPLY => {}
        _ => return PptpAction::Ignored,
    }
    PptpAction::Nothing
}

/// PAC to PNS.
fn inbound(s: &mut PptpState, msg: u16, b: &[u8]) -> PptpAction {
    match msg {
        START_SESSION_REPLY => {
            if s.session < Session::Requested {
                return PptpAction::Ignored;
            }
            s.session = if b[2] == 1 {
                Session::Confirmed
            } else {
                Session::Error
            };
        }
        STOP_SESSION_REPLY => {
            if s.session > Session::StopReq {
                return PptpAction::Ignored;
            }
            s.session = if b[0] == 1 {
                Session::None
            } else {
                Session::Error
            };
            return PptpAction::Clear;
        }
        OUT_CALL_REPLY => {
            if s.session != Session::Confirmed
                || !matches!(s.call, Call::OutReq | Call::OutConf)
                || be16(b, 2) != s.pns_call_id
            {
                return PptpAction::Ignored;
            }
            if b[4] == 1 {
                s.call = Call::OutConf;
                s.pac_call_id = be16(b, 0);
                return PptpAction::ExpectGre {
                    pns_call_id: s.pns_call_id,
                    pac_call_id: s.pac_call_id,
                };
            }
            s.call = Call::None;
        }
        IN_CALL_REQUEST => {
            if s.session != Session::Confirmed {
                return PptpAction::Ignored;
            }
            s.call = Call::InReq;
            s.pac_call_id = be16(b, 0);
        }
        IN_CALL_CONNECT => {
            if s.session != Session::Confirmed
                || !matches!(s.call, Call::InRep | Call::InConf)
                || be16(b, 0) != s.pns_call_id
            {
                return PptpAction::Ignored;
            }
            s.call = Call::InConf;
            return PptpAction::ExpectGre {
                pns_call_id: s.pns_call_id,
                pac_call_id: s.pac_call_id,
            };
        }
        CALL_DISCONNECT_NOTIFY => {
            s.call = Call::None;
            return PptpAction::Clear;
        }
        WAN_ERROR_NOTIFY | SET_LINK_INFO | ECHO_REQUEST | ECHO_REPLY => {}
        _ => return PptpAction::Ignored,
    }
    PptpAction::Nothing
}

/// Builds a control message (for tests and the end-to-end script): the
/// headers and `body`, zero-padded to the type's size.
pub fn message(msg: u16, body: &[u8]) -> Vec<u8> {
    let size = MSG_SIZE
        .get(usize::from(msg))
        .copied()
        .unwrap_or(0)
        .max(body.len());
    let total = HEADER_LEN + size;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(&(total as u16).to_be_bytes());
    v.extend_from_slice(&PACKET_CONTROL.to_be_bytes());
    v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    v.extend_from_slice(&msg.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(body);
    v.resize(total, 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed() -> PptpState {
        let mut s = PptpState::default();
        assert_eq!(
            help(&mut s, 0, &message(START_SESSION_REQUEST, &[1, 0])),
            PptpAction::Nothing
        );
        assert_eq!(
            help(&mut s, 1, &message(START_SESSION_REPLY, &[1, 0, 1])),
            PptpAction::Nothing
        );
        assert_eq!(s.session, Session::Confirmed);
        s
    }

    #[test]
    fn outgoing_call_expects_gre_with_both_ids() {
        let mut s = confirmed();
        help(&mut s, 0, &message(OUT_CALL_REQUEST, &[0x12, 0x34, 0, 1]));
        assert_eq!(s.call, Call::OutReq);
        let a = help(
            &mut s,
            1,
            &message(OUT_CALL_REPLY, &[0xab, 0xcd, 0x12, 0x34, 1]),
        );
        assert_eq!(
            a,
            PptpAction::ExpectGre {
                pns_call_id: 0x1234,
                pac_call_id: 0xabcd
            }
        );
        assert_eq!(
            help(&mut s, 0, &message(CALL_CLEAR_REQUEST, &[0x12, 0x34])),
            PptpAction::Nothing
        );
        assert_eq!(
            help(
                &mut s,
                1,
                &message(CALL_DISCONNECT_NOTIFY, &[0xab, 0xcd, 1])
            ),
            PptpAction::Clear
        );
    }

    #[test]
    fn incoming_call_expects_gre_once_connected() {
        let mut s = confirmed();
        help(&mut s, 1, &message(IN_CALL_REQUEST, &[0x00, 0x07]));
        help(
            &mut s,
            0,
            &message(IN_CALL_REPLY, &[0x00, 0x09, 0x00, 0x07, 1]),
        );
        assert_eq!(s.call, Call::InRep);
        let a = help(&mut s, 1, &message(IN_CALL_CONNECT, &[0x00, 0x09]));
        assert_eq!(
            a,
            PptpAction::ExpectGre {
                pns_call_id: 9,
                pac_call_id: 7
            }
        );
    }

    #[test]
    fn out_of_order_and_short_messages_are_ignored() {
        // A call before the session is confirmed.
        let mut s = PptpState::default();
        assert_eq!(
            help(&mut s, 0, &message(OUT_CALL_REQUEST, &[0, 1])),
            PptpAction::Ignored
        );
        // A reply naming another call id.
        let mut s = confirmed();
        help(&mut s, 0, &message(OUT_CALL_REQUEST, &[0, 1]));
        assert_eq!(
            help(&mut s, 1, &message(OUT_CALL_REPLY, &[0, 2, 0, 9, 1])),
            PptpAction::Ignored
        );
        // A refused call expects nothing.
        assert_eq!(
            help(&mut s, 1, &message(OUT_CALL_REPLY, &[0, 2, 0, 1, 2])),
            PptpAction::Nothing
        );
        assert_eq!(s.call, Call::None);
        // Too short for its type.
        let mut m = message(OUT_CALL_REPLY, &[0, 2, 0, 1, 1]);
        m.truncate(HEADER_LEN + 10);
        assert_eq!(help(&mut s, 1, &m), PptpAction::Ignored);
        // Not a control message, a bad cookie, unknown types.
        let mut m = message(OUT_CALL_REPLY, &[0, 2, 0, 1, 1]);
        m[4] = 0;
        assert_eq!(help(&mut s, 1, &m), PptpAction::Nothing);
        assert_eq!(
            help(&mut s, 1, &message(99, &[0; 200])),
            PptpAction::Ignored
        );
        assert_eq!(help(&mut s, 1, &message(0, &[0; 200])), PptpAction::Ignored);
    }
}
