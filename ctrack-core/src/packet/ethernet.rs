//! Ethernet II frames and 802.1Q / 802.1ad (QinQ) VLAN tags.

use super::{ParseError, be_u16};

/// EtherTypes the parser dispatches on.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag; also the inner tag of QinQ.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag used by some vendors.
    pub const QINQ_OLD: u16 = 0x9100;
    pub const LLDP: u16 = 0x88cc;
}

mod field {
    use crate::packet::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an Ethernet II header without tags.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read-only view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may panic unless
    /// [`Frame::check_len`] returned `Ok`.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer and checks that the header fits.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, ParseError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Ok` if the buffer holds the 14-byte header.
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(ParseError::EthernetTruncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        a
    }

    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        a
    }

    pub fn ethertype(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

mod tag_field {
    use crate::packet::Field;
    pub const TCI: Field = 0..2;
    pub const ETHERTYPE: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of one VLAN tag after the tag's TPID (TCI + inner EtherType).
pub const TAG_LEN: usize = tag_field::PAYLOAD;

/// A read-only view of a VLAN tag body: the TCI and the EtherType that follows
/// it. The buffer starts right after the TPID (the EtherType that announced the
/// tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const fn new_unchecked(buffer: T) -> VlanTag<T> {
        VlanTag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<VlanTag<T>, ParseError> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(ParseError::EthernetTruncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Tag control information: PCP (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub fn tci(&self) -> u16 {
        be_u16(self.buffer.as_ref(), tag_field::TCI)
    }

    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    pub fn priority(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// The EtherType after this tag.
    pub fn ethertype(&self) -> u16 {
        be_u16(self.buffer.as_ref(), tag_field::ETHERTYPE)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[tag_field::PAYLOAD..]
    }
}

/// The VLAN ids of up to two tags (outer first) and what follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Untagged<'a> {
    /// EtherType of the payload after all tags.
    pub ethertype: u16,
    /// VLAN ids, outer first; `None` where there was no tag.
    pub vlans: [Option<u16>; 2],
    pub payload: &'a [u8],
}

/// Reads the Ethernet header and at most two VLAN tags.
///
/// The first tag may use TPID 0x8100, 0x88a8 or 0x9100; a second tag must be
/// 0x8100 (the customer tag of QinQ). A VLAN TPID where no further tag is
/// allowed gives [`ParseError::VlanTooDeep`].
pub fn strip(frame: &[u8]) -> Result<Untagged<'_>, ParseError> {
    let eth = Frame::new_checked(frame)?;
    let mut out = Untagged {
        ethertype: eth.ethertype(),
        vlans: [None, None],
        payload: &frame[HEADER_LEN..],
    };
    if matches!(
        out.ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        let tag = VlanTag::new_checked(out.payload)?;
        out.vlans[0] = Some(tag.vlan_id());
        out.ethertype = tag.ethertype();
        out.payload = &out.payload[TAG_LEN..];
        if out.ethertype == ethertype::VLAN {
            let tag = VlanTag::new_checked(out.payload)?;
            out.vlans[1] = Some(tag.vlan_id());
            out.ethertype = tag.ethertype();
            out.payload = &out.payload[TAG_LEN..];
        } else if matches!(out.ethertype, ethertype::QINQ | ethertype::QINQ_OLD) {
            return Err(ParseError::VlanTooDeep);
        }
        if matches!(
            out.ethertype,
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
        ) {
            return Err(ParseError::VlanTooDeep);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    const ONE_TAG: [u8; 20] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, //
        0x81, 0x00, 0x20, 0x64, // VLAN 100, PCP 1
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    const QINQ: [u8; 24] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, //
        0x88, 0xa8, 0x00, 0x0a, // S-tag 10
        0x81, 0x00, 0x00, 0x14, // C-tag 20
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    #[test]
    fn untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        let u = strip(&UNTAGGED).unwrap();
        assert_eq!(u.ethertype, ethertype::IPV4);
        assert_eq!(u.vlans, [None, None]);
        assert_eq!(u.payload, &[0x45, 0x00]);
    }

    #[test]
    fn single_tag() {
        let u = strip(&ONE_TAG).unwrap();
        assert_eq!(u.ethertype, ethertype::IPV6);
        assert_eq!(u.vlans, [Some(100), None]);
        assert_eq!(u.payload, &[0x60, 0x00]);
        let t = VlanTag::new_checked(&ONE_TAG[14..]).unwrap();
        assert_eq!(t.priority(), 1);
    }

    #[test]
    fn qinq_outer_tpids() {
        for tpid in [[0x88, 0xa8], [0x91, 0x00], [0x81, 0x00]] {
            let mut f = QINQ;
            f[12..14].copy_from_slice(&tpid);
            let u = strip(&f).unwrap();
            assert_eq!(u.ethertype, ethertype::IPV4);
            assert_eq!(u.vlans, [Some(10), Some(20)]);
            assert_eq!(u.payload, &[0x45, 0x00]);
        }
    }

    #[test]
    fn three_tags_too_deep() {
        let mut f = QINQ.to_vec();
        f.splice(20..20, [0x81, 0x00, 0x00, 0x1e]);
        assert_eq!(strip(&f), Err(ParseError::VlanTooDeep));
        // A service tag in the inner position is not accepted either.
        let mut f = QINQ;
        f[16..18].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(strip(&f), Err(ParseError::VlanTooDeep));
    }

    #[test]
    fn truncated_at_each_boundary() {
        for n in 0..14 {
            assert_eq!(strip(&UNTAGGED[..n]), Err(ParseError::EthernetTruncated));
        }
        assert!(strip(&UNTAGGED[..14]).is_ok());
        for n in 14..18 {
            assert_eq!(strip(&ONE_TAG[..n]), Err(ParseError::EthernetTruncated));
        }
        for n in 14..22 {
            assert_eq!(strip(&QINQ[..n]), Err(ParseError::EthernetTruncated));
        }
        assert!(strip(&QINQ[..22]).is_ok());
    }
}
