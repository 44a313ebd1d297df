//! IPv6 headers (RFC 8200) and the extension-header walk to the upper layer.

use super::{ParseError, be_u16, be_u32};

mod field {
    use crate::packet::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// Next-header values of the extension headers the walk steps over or stops at
/// (the set of Linux's `ipv6_ext_hdr()`).
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DEST_OPTIONS: u8 = 60;
}

/// A read-only view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic unless
    /// [`Packet::check_len`] or [`Packet::check_header_len`] returned `Ok`.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The fixed header is present; the payload may be cut short (an ICMPv6
    /// error's quote). Every accessor is then safe.
    pub fn check_header_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::Ipv6Truncated)
        } else {
            Ok(())
        }
    }

    /// The fixed header and the whole payload length are present (the buffer
    /// may be longer, e.g. Ethernet padding).
    pub fn check_len(&self) -> Result<(), ParseError> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < HEADER_LEN + usize::from(self.payload_len()) {
            Err(ParseError::Ipv6Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (be_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    pub fn payload_len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        a
    }

    pub fn dst_addr(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        a
    }

    /// The payload (extension headers included) up to the payload length, or
    /// to the end of the buffer if that comes first.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_range()]
    }

    /// Where [`Packet::payload`] lies in the buffer.
    pub fn payload_range(&self) -> core::ops::Range<usize> {
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len());
        HEADER_LEN..end
    }
}

/// A fragment header the walk stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// Where the extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// The upper-layer protocol (or ESP / no-next-header, which end the walk;
    /// or, after a fragment, the header following the fragment header).
    pub protocol: u8,
    /// Offset of that protocol's header in the walked bytes.
    pub offset: usize,
    /// Set if the walk stopped at a fragment header.
    pub fragment: Option<Fragment>,
}

/// Steps over extension headers starting with `next` at the start of
/// `payload` (the bytes after the fixed header).
///
/// Hop-by-hop, routing and destination options have their length in 8-byte
/// units not counting the first 8; AH in 4-byte units not counting the first
/// 8. ESP (50) and no-next-header (59) end the walk: what follows is opaque.
/// A fragment header with a nonzero offset or the M flag stops the walk with
/// [`Walk::fragment`] set and `offset` just past it; an atomic fragment
/// (offset 0, M clear; RFC 6946) is stepped over like any other header. The
/// walk is bounded: every header advances at least 8 bytes.
pub fn walk(mut next: u8, payload: &[u8]) -> Result<Walk, ParseError> {
    use next_header::*;
    let mut off = 0usize;
    loop {
        let rest = payload.get(off..).unwrap_or(&[]);
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTIONS => {
                let Some(&n) = rest.get(1) else {
                    return Err(ParseError::Ipv6ExtensionTruncated);
                };
                (usize::from(n) + 1) * 8
            }
            AH => {
                let Some(&n) = rest.get(1) else {
                    return Err(ParseError::Ipv6ExtensionTruncated);
                };
                (usize::from(n) + 2) * 4
            }
            FRAGMENT => 8,
            _ => {
                return Ok(Walk {
                    protocol: next,
                    offset: off,
                    fragment: None,
                });
            }
        };
        let Some(hdr) = rest.get(..len) else {
            return Err(ParseError::Ipv6ExtensionTruncated);
        };
        let following = hdr[0];
        off += len;
        if next == FRAGMENT {
            let fo = be_u16(hdr, 2..4);
            let frag = Fragment {
                offset: fo >> 3,
                more: fo & 1 != 0,
                ident: be_u32(hdr, 4..8),
            };
            if frag.offset != 0 || frag.more {
                return Ok(Walk {
                    protocol: following,
                    offset: off,
                    fragment: Some(frag),
                });
            }
        }
        next = following;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::1 -> 2001:db8::2, next header UDP, payload length 8.
    pub(crate) const HEADER: [u8; 40] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x08, 17, 64, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];

    #[test]
    fn fields() {
        let mut b = HEADER.to_vec();
        b.extend_from_slice(&[0; 8]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 2);
        assert_eq!(p.payload().len(), 8);
        for n in 0..48 {
            assert_eq!(
                Packet::new_unchecked(&b[..n]).check_len(),
                Err(ParseError::Ipv6Truncated)
            );
        }
    }

    /// Hop-by-hop (8) -> dest opts (16) -> routing (8) -> AH (12) -> TCP.
    const CHAIN: [u8; 44] = [
        60, 0, 1, 4, 0, 0, 0, 0, // HBH: next DO, len 0, PadN
        43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DO: next RH, 16 bytes
        51, 0, 0, 0, 0, 0, 0, 0, // RH: next AH, type 0, segleft 0
        6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, // AH: next TCP, (1+2)*4 = 12
    ];

    #[test]
    fn walks_a_chain() {
        let w = walk(0, &CHAIN).unwrap();
        assert_eq!(
            w,
            Walk {
                protocol: 6,
                offset: 44,
                fragment: None
            }
        );
    }

    #[test]
    fn chain_truncated_anywhere() {
        // Cut at every length: the walk fails with a truncated extension
        // header unless the cut falls exactly at the end.
        for n in 0..44 {
            assert_eq!(
                walk(0, &CHAIN[..n]),
                Err(ParseError::Ipv6ExtensionTruncated),
                "cut at {n}"
            );
        }
    }

    #[test]
    fn esp_and_no_next_header_end_the_walk() {
        let b = [50, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad];
        assert_eq!(walk(0, &b).unwrap().protocol, 50);
        assert_eq!(walk(0, &b).unwrap().offset, 8);
        assert_eq!(walk(59, &[]).unwrap().protocol, 59);
    }

    #[test]
    fn fragments() {
        // First fragment: offset 0, M set.
        let f = [17, 0, 0x00, 0x01, 0, 0, 0, 7];
        let w = walk(44, &f).unwrap();
        assert_eq!(w.protocol, 17);
        assert_eq!(w.offset, 8);
        assert_eq!(
            w.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                ident: 7
            })
        );
        // Later fragment.
        let f = [17, 0, 0x00, 0x08, 0, 0, 0, 7];
        assert_eq!(walk(44, &f).unwrap().fragment.unwrap().offset, 1);
        // Atomic fragment is stepped over.
        let f = [17, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(
            walk(44, &f).unwrap(),
            Walk {
                protocol: 17,
                offset: 8,
                fragment: None
            }
        );
        assert_eq!(walk(44, &f[..7]), Err(ParseError::Ipv6ExtensionTruncated));
    }
}
