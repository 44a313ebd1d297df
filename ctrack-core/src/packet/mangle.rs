//! TCP segments changed for a connection helper under NAT, as Linux's
//! `nf_nat_mangle_tcp_packet` and `nf_ct_seq_adjust` change them:
//!
//! - [`replace_payload`]: part of the payload replaced by a text of another
//!   length (the FTP helper's address/port), into a new frame: the IP
//!   length fields follow, and the checksums are recomputed over the
//!   packet (Linux recomputes too after a length change);
//! - [`rewrite_seq`]: the sequence number, the acknowledgement number and
//!   the SACK blocks' edges mapped by the caller (the connection's sequence
//!   adjustment), the TCP checksum updated incrementally (RFC 1624). Other
//!   options (MSS, timestamps, window scale) are left alone.
//!
//! Nothing panics on any input: a frame that is not a whole, unfragmented
//! TCP segment is an error for the caller to count.

use super::checksum::fill_ip;
use super::nat::{RewriteError, adjust, delta, l3_offset, locate};
use crate::flow::{Family, proto};

/// Where a TCP segment's parts are in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The IP header's offset.
    pub l3: usize,
    pub family: Family,
    /// The TCP header's offset.
    pub l4: usize,
    /// The TCP header's length (with options).
    pub hdr_len: usize,
    /// The IP packet's end (padding after it is not the packet's).
    pub end: usize,
}

impl Segment {
    /// The payload's offset in the frame.
    pub fn payload(&self) -> usize {
        self.l4 + self.hdr_len
    }
}

/// Locates the TCP segment in Ethernet frame `frame`.
pub fn tcp_segment(frame: &[u8]) -> Result<Segment, RewriteError> {
    let (l3, _) = l3_offset(frame).ok_or(RewriteError::Malformed)?;
    let ip = locate(frame, l3, false)?;
    if ip.proto != proto::TCP || ip.end < ip.l4 + 20 {
        return Err(RewriteError::Malformed);
    }
    let hdr_len = usize::from(frame[ip.l4 + 12] >> 4) * 4;
    if hdr_len < 20 || ip.l4 + hdr_len > ip.end {
        return Err(RewriteError::Malformed);
    }
    Ok(Segment {
        l3,
        family: ip.family,
        l4: ip.l4,
        hdr_len,
        end: ip.end,
    })
}

/// Writes into `out` the frame `frame` with its TCP payload's bytes
/// `off..off + len` replaced by `text`; returns the new frame's length.
/// The Ethernet padding after the IP packet is not copied. The IP length
/// field (IPv4 total length, IPv6 payload length) follows the change; the
/// IPv4 header and TCP checksums are recomputed. `out` too short, or the
/// range outside the payload: an error.
pub fn replace_payload(
    frame: &[u8],
    off: usize,
    len: usize,
    text: &[u8],
    out: &mut [u8],
) -> Result<usize, RewriteError> {
    let s = tcp_segment(frame)?;
    let p = s.payload();
    let start = p.checked_add(off).ok_or(RewriteError::Malformed)?;
    let stop = start.checked_add(len).ok_or(RewriteError::Malformed)?;
    if stop > s.end {
        return Err(RewriteError::Malformed);
    }
    let new_end = s.end - len + text.len();
    if new_end > out.len() {
        return Err(RewriteError::Malformed);
    }
    out[..start].copy_from_slice(&frame[..start]);
    out[start..start + text.len()].copy_from_slice(text);
    out[start + text.len()..new_end].copy_from_slice(&frame[stop..s.end]);
    let ip_len = new_end - s.l3;
    match s.family {
        Family::V4 => {
            let n = u16::try_from(ip_len).map_err(|_| RewriteError::Malformed)?;
            out[s.l3 + 2..s.l3 + 4].copy_from_slice(&n.to_be_bytes());
        }
        Family::V6 => {
            let n = u16::try_from(ip_len - 40).map_err(|_| RewriteError::Malformed)?;
            out[s.l3 + 4..s.l3 + 6].copy_from_slice(&n.to_be_bytes());
        }
    }
    fill_ip(&mut out[s.l3..new_end]);
    Ok(new_end)
}

/// Which sequence-space field [`rewrite_seq`] asks the mapping of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqField {
    /// The segment's sequence number (the sender's space).
    Seq,
    /// The acknowledgement number (the receiver's space).
    Ack,
    /// A SACK block's start or end (the receiver's space, as the ack).
    SackEdge,
}

/// Maps the TCP segment's sequence number, acknowledgement number (when
/// ACK is set) and SACK block edges through `map`, updating the TCP
/// checksum incrementally. Fields `map` leaves equal are not touched.
pub fn rewrite_seq(
    frame: &mut [u8],
    mut map: impl FnMut(SeqField, u32) -> u32,
) -> Result<(), RewriteError> {
    let s = tcp_segment(frame)?;
    let l4 = s.l4;
    let mut d = 0u64;
    let mut set = |frame: &mut [u8], at: usize, f: SeqField, d: &mut u64| {
        let old = u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
        let new = map(f, old);
        if new == old {
            return;
        }
        // The checksum's 16-bit words are aligned to the TCP header; a SACK
        // edge may sit at an odd offset: take the aligned bytes around it.
        let a = l4 + ((at - l4) & !1);
        let b = (l4 + ((at + 4 - l4 + 1) & !1)).min(s.end);
        let mut before = [0u8; 6];
        let n = b - a;
        before[..n].copy_from_slice(&frame[a..b]);
        frame[at..at + 4].copy_from_slice(&new.to_be_bytes());
        *d += delta(&before[..n], &frame[a..b]);
    };
    set(frame, l4 + 4, SeqField::Seq, &mut d);
    let flags = frame[l4 + 13];
    if flags & 0x10 != 0 {
        set(frame, l4 + 8, SeqField::Ack, &mut d);
        // SACK blocks (kind 5) among the options.
        let mut i = l4 + 20;
        let opt_end = l4 + s.hdr_len;
        while i < opt_end {
            match frame[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let Some(&olen) = frame.get(i + 1) else { break };
                    let olen = usize::from(olen);
                    if olen < 2 || i + olen > opt_end {
                        break;
                    }
                    if kind == 5 && (olen - 2) % 8 == 0 {
                        let mut b = i + 2;
                        while b + 8 <= i + olen {
                            set(frame, b, SeqField::SackEdge, &mut d);
                            set(frame, b + 4, SeqField::SackEdge, &mut d);
                            b += 8;
                        }
                    }
                    i += olen;
                }
            }
        }
    }
    if d != 0 {
        adjust(frame, l4 + 16, d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::{RxChecksum, fill_ip, verify_ethernet};

    /// An IPv4 TCP frame with ACK, the given options and payload.
    fn frame(opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let hl = 20 + opts.len();
        let total = 20 + hl + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 0, 0, 1, 198, 51, 100, 7]);
        f.extend_from_slice(&ip);
        let mut tcp = vec![0x9c, 0x40, 0, 21];
        tcp.extend_from_slice(&1000u32.to_be_bytes());
        tcp.extend_from_slice(&2000u32.to_be_bytes());
        tcp.extend_from_slice(&[((hl / 4) << 4) as u8, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(opts);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        fill_ip(&mut f[14..]);
        f
    }

    fn full_recompute_agrees(f: &[u8]) {
        let mut g = f.to_vec();
        fill_ip(&mut g[14..]);
        assert_eq!(f, &g[..], "incremental and full checksums differ");
        verify_ethernet(f, RxChecksum::UNKNOWN).unwrap();
    }

    #[test]
    fn seq_ack_and_sack_edges_at_odd_offsets() {
        // NOP, then SACK with two blocks: the edges at odd offsets.
        let mut opts = vec![1, 5, 18];
        for v in [100u32, 200, 300, 400] {
            opts.extend_from_slice(&v.to_be_bytes());
        }
        opts.extend_from_slice(&[1, 1, 1, 1, 0]); // to a multiple of 4
        assert_eq!(opts.len(), 24);
        let mut f = frame(&opts, b"hello\r\n");
        rewrite_seq(&mut f, |k, v| match k {
            SeqField::Seq => v + 3,
            SeqField::Ack => v - 5,
            SeqField::SackEdge => v.wrapping_sub(5),
        })
        .unwrap();
        let s = tcp_segment(&f).unwrap();
        let at = |o: usize| u32::from_be_bytes(f[o..o + 4].try_into().unwrap());
        assert_eq!(at(s.l4 + 4), 1003);
        assert_eq!(at(s.l4 + 8), 1995);
        assert_eq!(
            [at(s.l4 + 23), at(s.l4 + 27), at(s.l4 + 31), at(s.l4 + 35)],
            [95, 195, 295, 395]
        );
        full_recompute_agrees(&f);
    }

    #[test]
    fn payload_longer_and_shorter() {
        let f = frame(&[2, 4, 5, 0xb4], b"PORT 10,0,0,1,4,1\r\n");
        let mut out = [0u8; 256];
        let n = replace_payload(&f, 5, 12, b"198,51,100,1,4,1", &mut out).unwrap();
        let g = &out[..n];
        assert_eq!(n, f.len() + 4);
        assert!(g.ends_with(b"PORT 198,51,100,1,4,1\r\n"));
        assert_eq!(usize::from(u16::from_be_bytes([g[16], g[17]])), n - 14);
        full_recompute_agrees(g);
        // MSS option untouched.
        assert_eq!(&g[14 + 40..14 + 44], &[2, 4, 5, 0xb4]);
        let n = replace_payload(g, 5, 16, b"1,2,3,4,4,1", &mut out.clone()).unwrap();
        assert_eq!(n, f.len() - 1);
        // Out of the payload, or no room: errors, no panic.
        assert!(replace_payload(&f, 10, 100, b"x", &mut out).is_err());
        assert!(replace_payload(&f, 0, 1, b"xx", &mut [0u8; 10]).is_err());
        assert!(rewrite_seq(&mut [0u8; 20], |_, v| v).is_err());
    }
}
