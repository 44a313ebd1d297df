//! UDP headers (RFC 768).

use super::{ParseError, be_u16};

mod field {
    use crate::packet::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read-only view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic unless
    /// [`Packet::check_header_len`] or [`Packet::check_len`] returned `Ok`.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The 8-byte header is present.
    pub fn check_header_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::UdpTruncated)
        } else {
            Ok(())
        }
    }

    /// The header is present and its length field is between 8 and the
    /// buffer length (Linux `udp_error`'s check).
    pub fn check_len(&self) -> Result<(), ParseError> {
        self.check_header_len()?;
        let l = usize::from(self.length());
        if l < HEADER_LEN || l > self.buffer.as_ref().len() {
            return Err(ParseError::UdpBadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field (header + payload).
    pub fn length(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The checksum as sent; never verified by the parser.
    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload up to the length field (needs [`Packet::check_len`]).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5353 -> 53, length 12, 4 payload bytes.
    const DGRAM: [u8; 12] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x34, 1, 2, 3, 4];

    #[test]
    fn fields() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 5353);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.length(), 12);
        assert_eq!(p.checksum(), 0x1234);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn truncated_and_bad_lengths() {
        for n in 0..8 {
            assert_eq!(
                Packet::new_unchecked(&DGRAM[..n]).check_len(),
                Err(ParseError::UdpTruncated)
            );
        }
        for n in 8..12 {
            assert_eq!(
                Packet::new_unchecked(&DGRAM[..n]).check_len(),
                Err(ParseError::UdpBadLength)
            );
        }
        for l in 0..8u8 {
            let mut b = DGRAM;
            b[5] = l;
            assert_eq!(
                Packet::new_unchecked(&b[..]).check_len(),
                Err(ParseError::UdpBadLength)
            );
        }
    }
}
