//! GRE headers: version 0 (RFC 2784 with RFC 2890 key and sequence number;
//! RFC 1701's routing bit is tolerated) and version 1 (PPTP's enhanced GRE,
//! RFC 2637).

use super::{ParseError, be_u16, be_u32};

mod field {
    use crate::packet::Field;
    pub const FLAGS: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    pub const OPTIONAL: usize = 4;
}

/// Flag bits of the first 16 bits.
pub mod flags {
    pub const CHECKSUM: u16 = 0x8000;
    pub const ROUTING: u16 = 0x4000;
    pub const KEY: u16 = 0x2000;
    pub const SEQUENCE: u16 = 0x1000;
    /// Version 1 only: acknowledgment number present.
    pub const ACK: u16 = 0x0080;
    pub const VERSION: u16 = 0x0007;
}

/// Length of the fixed part (flags, version, protocol).
pub const BASE_LEN: usize = field::OPTIONAL;

/// A read-only view of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic unless
    /// [`Packet::check_len`] returned `Ok`.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The fixed part is present, the version is 0 or 1, a version 1 header
    /// has K set and C, R clear (RFC 2637), and every optional field the
    /// flags announce is present.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < BASE_LEN {
            return Err(ParseError::GreTruncated);
        }
        match self.version() {
            0 => {}
            1 => {
                let f = self.flags();
                if f & flags::KEY == 0 || f & (flags::CHECKSUM | flags::ROUTING) != 0 {
                    return Err(ParseError::GreBadFlags);
                }
            }
            _ => return Err(ParseError::GreBadVersion),
        }
        if len < self.header_len() {
            return Err(ParseError::GreTruncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The first 16 bits: flags and version.
    pub fn flags(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::FLAGS)
    }

    pub fn version(&self) -> u8 {
        (self.flags() & flags::VERSION) as u8
    }

    /// The encapsulated protocol (an EtherType).
    pub fn protocol(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Offset of the key field, if the K bit is set.
    fn key_offset(&self) -> Option<usize> {
        let f = self.flags();
        if f & flags::KEY == 0 {
            return None;
        }
        let mut off = BASE_LEN;
        // Version 0: checksum + offset word present if C or R is set.
        if self.version() == 0 && f & (flags::CHECKSUM | flags::ROUTING) != 0 {
            off += 4;
        }
        Some(off)
    }

    /// Length of the header: the fixed part and every optional field the
    /// flags announce (version 0: RFC 1701 routing entries, if R is set, are
    /// not counted).
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        let mut len = BASE_LEN;
        if self.version() == 0 && f & (flags::CHECKSUM | flags::ROUTING) != 0 {
            len += 4;
        }
        if f & flags::KEY != 0 {
            len += 4;
        }
        if f & flags::SEQUENCE != 0 {
            len += 4;
        }
        if self.version() == 1 && f & flags::ACK != 0 {
            len += 4;
        }
        len
    }

    /// The key field: version 0 the key, version 1 `payload_len << 16 |
    /// call_id`. `None` if K is clear.
    pub fn key(&self) -> Option<u32> {
        let off = self.key_offset()?;
        Some(be_u32(self.buffer.as_ref(), off..off + 4))
    }

    /// PPTP call id (version 1).
    pub fn call_id(&self) -> Option<u16> {
        if self.version() == 1 {
            self.key().map(|k| k as u16)
        } else {
            None
        }
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 0, C and K and S set, IPv4 inside.
    const V0: [u8; 16] = [
        0xb0, 0x00, 0x08, 0x00, // C K S, ver 0, proto IPv4
        0x12, 0x34, 0x00, 0x00, // checksum, reserved
        0xde, 0xad, 0xbe, 0xef, // key
        0x00, 0x00, 0x00, 0x07, // seq
    ];

    /// Version 1 (PPTP), K S A set, PPP inside, payload length 0x20, call id 0x4242.
    const V1: [u8; 16] = [
        0x30, 0x81, 0x88, 0x0b, //
        0x00, 0x20, 0x42, 0x42, // payload length, call id
        0x00, 0x00, 0x00, 0x01, // seq
        0x00, 0x00, 0x00, 0x00, // ack
    ];

    #[test]
    fn version_0() {
        let p = Packet::new_checked(&V0[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert_eq!(p.protocol(), 0x0800);
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.key(), Some(0xdeadbeef));
        assert_eq!(p.call_id(), None);
        // Only K.
        let b = [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 9];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.header_len(), p.key()), (8, Some(9)));
        // No optional fields.
        let b = [0x00, 0x00, 0x86, 0xdd];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.header_len(), p.key()), (4, None));
        for n in 0..16 {
            assert_eq!(
                Packet::new_unchecked(&V0[..n]).check_len(),
                Err(ParseError::GreTruncated)
            );
        }
    }

    #[test]
    fn version_1() {
        let p = Packet::new_checked(&V1[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.protocol(), 0x880b);
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.key(), Some(0x0020_4242));
        assert_eq!(p.call_id(), Some(0x4242));
        // No S, no A: 8 bytes.
        let b = [0x20, 0x01, 0x88, 0x0b, 0x00, 0x00, 0x00, 0x05];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.header_len(), p.call_id()), (8, Some(5)));
        for n in 0..16 {
            assert_eq!(
                Packet::new_unchecked(&V1[..n]).check_len(),
                Err(ParseError::GreTruncated)
            );
        }
        // K must be set; C must be clear.
        let b = [0x10, 0x01, 0x88, 0x0b, 0, 0, 0, 1];
        assert_eq!(
            Packet::new_unchecked(&b[..]).check_len(),
            Err(ParseError::GreBadFlags)
        );
        let b = [0xa0, 0x01, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            Packet::new_unchecked(&b[..]).check_len(),
            Err(ParseError::GreBadFlags)
        );
    }

    #[test]
    fn bad_version() {
        for v in 2..8u8 {
            let b = [0x00, v, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(
                Packet::new_unchecked(&b[..]).check_len(),
                Err(ParseError::GreBadVersion)
            );
        }
    }
}
