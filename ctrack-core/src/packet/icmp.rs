//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: the first 8 bytes, which
//! have the same layout in both, and the quoted packet of error messages.

use super::{ParseError, be_u16};

mod field {
    use crate::packet::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const SEQ_NO: Field = 6..8;
}

/// Length of the ICMP header; error messages quote the offending packet after it.
pub const HEADER_LEN: usize = field::SEQ_NO.end;

/// A read-only view of an ICMP or ICMPv6 message.
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

    /// The 8-byte header is present (Linux `icmp_error` requires as much).
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::IcmpTruncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum as sent; never verified by the parser.
    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier field of query messages (meaningless for errors).
    pub fn ident(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn seq_number(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::SEQ_NO)
    }

    /// Everything after the 8-byte header: for errors, the quoted packet.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// ICMPv4 messages with an identifier that conntrack keys on: echo,
/// timestamp, information and address-mask requests and replies.
pub fn v4_has_id(msg_type: u8) -> bool {
    matches!(msg_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// ICMPv4 error messages, which quote the offending packet: destination
/// unreachable, source quench, redirect, time exceeded, parameter problem.
pub fn v4_is_error(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 messages with an identifier: echo request/reply, node information
/// query/response.
pub fn v6_has_id(msg_type: u8) -> bool {
    matches!(msg_type, 128 | 129 | 139 | 140)
}

/// ICMPv6 error messages: destination unreachable, packet too big, time
/// exceeded, parameter problem.
pub fn v6_is_error(msg_type: u8) -> bool {
    matches!(msg_type, 1..=4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: [u8; 12] = [8, 0, 0xf7, 0xfe, 0x12, 0x34, 0x00, 0x01, 1, 2, 3, 4];

    #[test]
    fn fields() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), 8);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0xf7fe);
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        for n in 0..8 {
            assert_eq!(
                Packet::new_unchecked(&ECHO[..n]).check_len(),
                Err(ParseError::IcmpTruncated)
            );
        }
    }

    #[test]
    fn classes() {
        assert!(v4_has_id(0) && v4_has_id(8) && v4_has_id(18) && !v4_has_id(3));
        assert!(v4_is_error(3) && v4_is_error(11) && !v4_is_error(8));
        assert!(v6_has_id(128) && v6_has_id(140) && !v6_has_id(1));
        assert!(v6_is_error(1) && v6_is_error(4) && !v6_is_error(128));
    }
}
