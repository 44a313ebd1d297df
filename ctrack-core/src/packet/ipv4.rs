//! IPv4 headers (RFC 791), options included.

use super::{ParseError, be_u16};

mod field {
    use crate::packet::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// A read-only view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic unless
    /// [`Packet::check_len`] (or [`Packet::check_header_len`] for the
    /// accessors it covers) returned `Ok`.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and runs [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header and the lengths it declares, but allows the buffer to
    /// end before the total length: what an ICMP error quotes. After `Ok`,
    /// every accessor is safe to call, and [`Packet::payload`] returns the
    /// part of the payload that is present.
    ///
    /// Does not look at the version field.
    pub fn check_header_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Ipv4Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(ParseError::Ipv4BadHeaderLength);
        }
        if len < hl {
            return Err(ParseError::Ipv4Truncated);
        }
        if usize::from(self.total_len()) < hl {
            return Err(ParseError::Ipv4BadTotalLength);
        }
        Ok(())
    }

    /// [`Packet::check_header_len`], and the buffer holds the whole total
    /// length (it may be longer, e.g. Ethernet padding). As Linux's
    /// `ip_rcv_core`, a total length beyond the buffer counts as truncated, one
    /// below the header length as a bad total length.
    pub fn check_len(&self) -> Result<(), ParseError> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < usize::from(self.total_len()) {
            return Err(ParseError::Ipv4Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    pub fn total_len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        be_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }

    pub fn more_frags(&self) -> bool {
        be_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff
    }

    /// `true` for any fragment: MF set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum as sent; never verified by the parser.
    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        a
    }

    pub fn dst_addr(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        a
    }

    /// The options bytes (between the fixed header and the payload). They
    /// are skipped, not interpreted.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload up to the total length, or up to the end of the buffer if
    /// that comes first (a quoted packet).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_range()]
    }

    /// Where [`Packet::payload`] lies in the buffer.
    pub fn payload_range(&self) -> core::ops::Range<usize> {
        let end = usize::from(self.total_len()).min(self.buffer.as_ref().len());
        self.header_len()..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 -> 10.0.0.2, UDP, total length 28, DF.
    pub(crate) const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 10, 0,
        0, 2,
    ];

    fn with_payload(h: &[u8], n: usize) -> Vec<u8> {
        let mut v = h.to_vec();
        v.resize(h.len() + n, 0xaa);
        v
    }

    #[test]
    fn fields() {
        let buf = with_payload(&HEADER, 8);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [10, 0, 0, 2]);
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: one NOP NOP NOP EOL option word; total 24 + 8.
        let mut h = HEADER.to_vec();
        h[0] = 0x46;
        h[3] = 32;
        h.extend_from_slice(&[1, 1, 1, 0]);
        let buf = with_payload(&h, 8);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xaa; 8]);
    }

    #[test]
    fn truncated_and_bad_lengths() {
        let buf = with_payload(&HEADER, 8);
        for n in 0..20 {
            assert_eq!(
                Packet::new_unchecked(&buf[..n]).check_len(),
                Err(ParseError::Ipv4Truncated)
            );
        }
        for n in 20..28 {
            let p = Packet::new_unchecked(&buf[..n]);
            assert_eq!(p.check_len(), Err(ParseError::Ipv4Truncated));
            assert_eq!(p.check_header_len(), Ok(()));
            assert_eq!(p.payload().len(), n - 20);
        }
        // Padding after the total length is fine and not part of the payload.
        let padded = with_payload(&HEADER, 30);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload().len(), 8);

        for ihl in 0..5u8 {
            let mut b = buf.clone();
            b[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_unchecked(&b[..]).check_len(),
                Err(ParseError::Ipv4BadHeaderLength)
            );
        }
        // IHL 15 (60 bytes) in a 28-byte buffer.
        let mut b = buf.clone();
        b[0] = 0x4f;
        assert_eq!(
            Packet::new_unchecked(&b[..]).check_len(),
            Err(ParseError::Ipv4Truncated)
        );
        // Total length below the header length.
        let mut b = buf.clone();
        b[3] = 19;
        assert_eq!(
            Packet::new_unchecked(&b[..]).check_len(),
            Err(ParseError::Ipv4BadTotalLength)
        );
    }

    #[test]
    fn fragment_bits() {
        let mut b = with_payload(&HEADER, 8);
        b[6] = 0x20; // MF
        assert!(Packet::new_unchecked(&b[..]).is_fragment());
        b[6] = 0x00;
        b[7] = 0x01; // offset 8 bytes
        let p = Packet::new_unchecked(&b[..]);
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 1);
    }
}
