//! TCP headers (RFC 9293) and their options.

use super::{ParseError, be_u16, be_u32};

mod field {
    use crate::packet::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// Option kinds the parser reads.
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// A read-only view of a TCP segment.
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

    /// The fixed header is present, the data offset is at least 5 words and
    /// the options it announces are present (Linux `tcp_error`'s checks).
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TcpTruncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(ParseError::TcpBadDataOffset);
        }
        if len < hl {
            return Err(ParseError::TcpTruncated);
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

    pub fn seq_number(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag byte: see [`crate::flow::tcp_flags`].
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn window_len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// The checksum as sent; never verified by the parser.
    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The raw option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options this parser understands; see [`Options::parse`].
    pub fn parsed_options(&self) -> Options {
        Options::parse(self.options())
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// The TCP options conntrack may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub mss: Option<u16>,
    /// The shift count as sent (RFC 7323 caps its use at 14; conntrack clamps,
    /// as Linux does).
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    /// TSval, TSecr.
    pub timestamps: Option<(u32, u32)>,
    /// Number of SACK blocks in a SACK option, if one was present.
    pub sack_blocks: u8,
    /// The highest right edge among the SACK blocks, if any (what Linux's
    /// `tcp_sack()` uses as the acknowledged sequence for window tracking).
    pub sack_right_edge: Option<u32>,
}

impl Options {
    /// Walks the option bytes as Linux's `tcp_options()` does: END stops, NOP
    /// is one byte, any other kind needs a length byte of at least 2 that
    /// fits in what is left, or the walk stops there (what was read before is
    /// kept). A known kind with an unexpected length is skipped, not
    /// interpreted. Never fails, never panics.
    #[inline]
    pub fn parse(mut opts: &[u8]) -> Options {
        let mut out = Options::default();
        while let Some((&kind, rest)) = opts.split_first() {
            match kind {
                option::END => break,
                option::NOP => {
                    opts = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&len) = rest.first() else { break };
            let len = usize::from(len);
            if len < 2 || len > opts.len() {
                break;
            }
            let body = &opts[2..len];
            match (kind, body.len()) {
                (option::MSS, 2) => out.mss = Some(be_u16(body, 0..2)),
                (option::WINDOW_SCALE, 1) => out.wscale = Some(body[0]),
                (option::SACK_PERMITTED, 0) => out.sack_perm = true,
                (option::TIMESTAMPS, 8) => {
                    out.timestamps = Some((be_u32(body, 0..4), be_u32(body, 4..8)));
                }
                (option::SACK, n) if n % 8 == 0 && n > 0 => {
                    out.sack_blocks = (n / 8) as u8;
                    for block in body.chunks_exact(8) {
                        let right = be_u32(block, 4..8);
                        out.sack_right_edge = Some(match out.sack_right_edge {
                            // Sequence-space comparison, as Linux's after().
                            Some(r) if (right.wrapping_sub(r) as i32) <= 0 => r,
                            _ => right,
                        });
                    }
                }
                _ => {}
            }
            opts = &opts[len..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tcp_flags;

    /// 40000 -> 80, SYN, data offset 10 (20 bytes of options): MSS 1460,
    /// SACK-permitted, timestamps, NOP, window scale 7 (a Linux SYN).
    pub(crate) const SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, //
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn fields_and_options() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1000);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), tcp_flags::SYN);
        assert_eq!(p.window_len(), 64240);
        assert!(p.payload().is_empty());
        let o = p.parsed_options();
        assert_eq!(o.mss, Some(1460));
        assert_eq!(o.wscale, Some(7));
        assert!(o.sack_perm);
        assert_eq!(o.timestamps, Some((1, 0)));
    }

    #[test]
    fn truncated_and_bad_offset() {
        for n in 0..20 {
            assert_eq!(
                Packet::new_unchecked(&SYN[..n]).check_len(),
                Err(ParseError::TcpTruncated)
            );
        }
        for n in 20..40 {
            assert_eq!(
                Packet::new_unchecked(&SYN[..n]).check_len(),
                Err(ParseError::TcpTruncated)
            );
        }
        for off in 0..5u8 {
            let mut b = SYN;
            b[12] = off << 4;
            assert_eq!(
                Packet::new_unchecked(&b[..]).check_len(),
                Err(ParseError::TcpBadDataOffset)
            );
        }
    }

    #[test]
    fn option_walk_is_robust() {
        // END stops the walk.
        assert_eq!(Options::parse(&[0, 3, 3, 7]).wscale, None);
        // NOPs are skipped.
        assert_eq!(Options::parse(&[1, 1, 1, 3, 3, 7]).wscale, Some(7));
        // A length below 2 stops the walk (no infinite loop).
        assert!(Options::parse(&[4, 2, 99, 0, 3, 3, 7]).sack_perm);
        assert_eq!(Options::parse(&[4, 2, 99, 0, 3, 3, 7]).wscale, None);
        assert_eq!(Options::parse(&[99, 1, 3, 3, 7]), Options::default());
        // A length past the end stops the walk.
        assert_eq!(Options::parse(&[3, 4, 7]).wscale, None);
        // Kind with no room for the length byte.
        assert_eq!(Options::parse(&[3]), Options::default());
        // Wrong length for a known kind: skipped, walk continues.
        let o = Options::parse(&[3, 4, 7, 7, 4, 2]);
        assert_eq!(o.wscale, None);
        assert!(o.sack_perm);
        // Unknown kinds are skipped by their length.
        assert_eq!(Options::parse(&[30, 4, 0, 0, 3, 3, 14]).wscale, Some(14));
        // SACK blocks: highest right edge in sequence space.
        let o = Options::parse(&[
            5, 18, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 1, 0, 0, 0, 5,
        ]);
        assert_eq!(o.sack_blocks, 2);
        assert_eq!(o.sack_right_edge, Some(5));
    }
}
