//! Classic pcap files: a reader and a writer, sans-io over
//! `std::io::Read` / `Write`, with no dependency beyond `std`, and the
//! link-layer parsing of records. Reading what users bring (pcapng too, and
//! gzip-compressed captures) is [`crate::capture`]'s, through the `pcap-file`
//! crate; this reader stays for the fuzz targets and as the reference its
//! tests compare against.
//!
//! Supported: magic 0xa1b2c3d4 (microsecond timestamps) and 0xa1b23c4d
//! (nanosecond timestamps) in either byte order; link types Ethernet (1), raw
//! IP (101), IPv4 (228), IPv6 (229), Linux cooked capture SLL (113) and SLL2
//! (276). [`parse_link`] turns a record of any of them into a
//! [`FlowRepr`] through [`ctrack_core::packet`]; [`verify_link`] checks its
//! checksums as the worker does (a capture carries no NIC flags, so always
//! in software).
//!
//! A malformed file is a [`PcapError`], never a panic: a bad magic, a record
//! longer than [`MAX_RECORD_LEN`] (a corrupt length would otherwise make us
//! allocate gigabytes) or a file that ends inside a record.

use std::io::{self, Read, Write};

use ctrack_core::flow::FlowRepr;
use ctrack_core::packet::checksum::{self, BadChecksum, RxChecksum};
use ctrack_core::packet::{self, ParseError};

/// Largest record accepted (and written): 256 KiB, libpcap's own maximum
/// snapshot length.
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// The link types this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101): IPv4 or IPv6, by the version nibble.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL (113), `tcpdump -i any` before libpcap 1.10.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
}

impl LinkType {
    /// The LINKTYPE_ number, as in a file header.
    pub const fn to_u32(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
        }
    }

    /// The link type for a LINKTYPE_ number, if supported.
    pub const fn from_u32(v: u32) -> Option<LinkType> {
        Some(match v {
            1 => LinkType::Ethernet,
            101 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// Why a capture could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The underlying reader or writer failed.
    #[error("pcap I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with a magic number of a capture form read
    /// here ([`PcapReader`]: classic pcap; [`crate::capture::CaptureReader`]:
    /// also pcapng and gzip).
    #[error("not a pcap or pcapng capture, nor a gzip-compressed one (magic number {0:#010x})")]
    BadMagic(u32),
    /// The file ends inside its 24-byte header.
    #[error("pcap file header truncated")]
    TruncatedHeader,
    /// The file's link type is not one this reader handles.
    #[error("unsupported pcap link type {0}")]
    UnsupportedLinkType(u32),
    /// A record claims more bytes than [`MAX_RECORD_LEN`].
    #[error("pcap record {index}: captured length {caplen} exceeds {MAX_RECORD_LEN} bytes")]
    RecordTooLong { index: u64, caplen: u64 },
    /// The file ends inside a record (its header or its data).
    #[error("pcap record {index} truncated: file ends inside it")]
    TruncatedRecord { index: u64 },
    /// A capture the `pcap-file` crate refused (pcapng's blocks, or a
    /// classic file's records), in its words.
    #[error("capture record {index}: {problem}")]
    Malformed { index: u64, problem: String },
    /// A timestamp that does not fit the format (seconds beyond u32).
    #[error("timestamp {0} ns does not fit a pcap record")]
    TimestampOutOfRange(u64),
}

/// One record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordHeader {
    /// Capture time in nanoseconds since the Unix epoch (microsecond files
    /// are scaled up).
    pub ts_nanos: u64,
    /// Bytes captured (the length of the data returned).
    pub caplen: u32,
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

/// Reads `buf.len()` bytes unless the reader ends first; returns how many were
/// read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A classic pcap reader.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    reader: R,
    big_endian: bool,
    nanos: bool,
    link_type: LinkType,
    snaplen: u32,
    index: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the file header.
    pub fn new(mut reader: R) -> Result<Self, PcapError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut reader, &mut h)?;
        if n < 4 {
            return Err(PcapError::TruncatedHeader);
        }
        let magic_le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let magic_be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let (big_endian, nanos) = match (magic_le, magic_be) {
            (MAGIC_MICROS, _) => (false, false),
            (MAGIC_NANOS, _) => (false, true),
            (_, MAGIC_MICROS) => (true, false),
            (_, MAGIC_NANOS) => (true, true),
            _ => return Err(PcapError::BadMagic(magic_be)),
        };
        if n < FILE_HEADER_LEN {
            return Err(PcapError::TruncatedHeader);
        }
        let u32_at = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let snaplen = u32_at(16);
        // The low 16 bits are the link type; the upper bits carry FCS
        // information, which does not matter here (a trailing FCS reads as
        // padding after the IP packet).
        let network = u32_at(20) & 0xffff;
        let link_type =
            LinkType::from_u32(network).ok_or(PcapError::UnsupportedLinkType(network))?;
        Ok(PcapReader {
            reader,
            big_endian,
            nanos,
            link_type,
            snaplen,
            index: 0,
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    /// Timestamps in the file are nanoseconds (magic 0xa1b23c4d).
    pub fn is_nanos(&self) -> bool {
        self.nanos
    }

    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Reads the next record into `buf` (cleared and resized to the captured
    /// length; its capacity is reused). `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordHeader>, PcapError> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&mut self.reader, &mut h)?;
        if n == 0 {
            return Ok(None);
        }
        let index = self.index;
        if n < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecord { index });
        }
        let u32_at = |i: usize| {
            let b = [h[i], h[i + 1], h[i + 2], h[i + 3]];
            if self.big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (sec, frac, caplen, orig_len) = (u32_at(0), u32_at(4), u32_at(8), u32_at(12));
        if caplen > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLong {
                index,
                caplen: u64::from(caplen),
            });
        }
        buf.clear();
        buf.resize(caplen as usize, 0);
        if read_full(&mut self.reader, buf)? < buf.len() {
            return Err(PcapError::TruncatedRecord { index });
        }
        self.index += 1;
        let scale = if self.nanos { 1 } else { 1_000 };
        Ok(Some(RecordHeader {
            ts_nanos: u64::from(sec) * 1_000_000_000 + u64::from(frac) * scale,
            caplen,
            orig_len,
        }))
    }
}

/// A classic pcap writer (little-endian files).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    writer: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: version 2.4, snaplen [`MAX_RECORD_LEN`],
    /// nanosecond timestamps if `nanos`, microsecond otherwise.
    pub fn new(mut writer: W, link_type: LinkType, nanos: bool) -> Result<Self, PcapError> {
        let magic = if nanos { MAGIC_NANOS } else { MAGIC_MICROS };
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs: 0.
        h[16..20].copy_from_slice(&MAX_RECORD_LEN.to_le_bytes());
        h[20..24].copy_from_slice(&link_type.to_u32().to_le_bytes());
        writer.write_all(&h)?;
        Ok(PcapWriter { writer, nanos })
    }

    /// Appends one record; `data` longer than [`MAX_RECORD_LEN`] is cut
    /// there (with the original length kept in the record header), as a
    /// capture with that snaplen would.
    pub fn write_packet(&mut self, ts_nanos: u64, data: &[u8]) -> Result<(), PcapError> {
        let sec = u32::try_from(ts_nanos / 1_000_000_000)
            .map_err(|_| PcapError::TimestampOutOfRange(ts_nanos))?;
        let sub = ts_nanos % 1_000_000_000;
        let frac = if self.nanos { sub } else { sub / 1_000 } as u32;
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let data = &data[..data.len().min(MAX_RECORD_LEN as usize)];
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.writer.write_all(&h)?;
        self.writer.write_all(data)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.writer.flush()?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.writer
    }
}

/// Linux cooked capture v1 (SLL): packet type, ARPHRD type, address length,
/// 8 address bytes, protocol.
mod sll {
    pub const PROTOCOL: core::ops::Range<usize> = 14..16;
    pub const HEADER_LEN: usize = 16;
}

/// Linux cooked capture v2 (SLL2): protocol, reserved, interface index,
/// ARPHRD type, packet type, address length, 8 address bytes.
mod sll2 {
    pub const PROTOCOL: core::ops::Range<usize> = 0..2;
    pub const HEADER_LEN: usize = 20;
}

/// Parses one record of a capture with link type `link_type`.
///
/// For SLL and SLL2 the protocol field (an EtherType) picks IPv4 or IPv6 and
/// the cooked header is skipped; any other protocol is
/// [`ParseError::NotIp`]; a record shorter than the cooked header is
/// [`ParseError::LinkTruncated`].
pub fn parse_link(link_type: LinkType, data: &[u8]) -> Result<FlowRepr, ParseError> {
    let (proto, header_len) = match link_type {
        LinkType::Ethernet => return packet::parse_ethernet(data),
        LinkType::RawIp => return packet::parse_ip(data),
        LinkType::Ipv4 => return packet::parse_ipv4(data),
        LinkType::Ipv6 => return packet::parse_ipv6(data),
        LinkType::LinuxSll => (sll::PROTOCOL, sll::HEADER_LEN),
        LinkType::LinuxSll2 => (sll2::PROTOCOL, sll2::HEADER_LEN),
    };
    let (Some(p), Some(payload)) = (data.get(proto), data.get(header_len..)) else {
        return Err(ParseError::LinkTruncated);
    };
    match u16::from_be_bytes([p[0], p[1]]) {
        0x0800 => packet::parse_ipv4(payload),
        0x86dd => packet::parse_ipv6(payload),
        _ => Err(ParseError::NotIp),
    }
}

/// [`checksum::verify_ip`] on one record of a capture with link type
/// `link_type` (cooked headers skipped as [`parse_link`] skips them), in
/// software: a capture has no NIC flags. A record that is not IP is `Ok`.
///
/// A capture taken on the sending host with TX checksum offload holds
/// checksums the NIC was yet to fill in: replay it with
/// `checksum-verify=no`.
pub fn verify_link(link_type: LinkType, data: &[u8]) -> Result<(), BadChecksum> {
    let nic = RxChecksum::UNKNOWN;
    let header_len = match link_type {
        LinkType::Ethernet => return checksum::verify_ethernet(data, nic),
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => 0,
        LinkType::LinuxSll => sll::HEADER_LEN,
        LinkType::LinuxSll2 => sll2::HEADER_LEN,
    };
    data.get(header_len..)
        .map_or(Ok(()), |ip| checksum::verify_ip(ip, nic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_core::flow::L4;

    /// IPv4 UDP 10.0.0.1:1000 -> 10.0.0.2:53, 4 bytes of payload.
    const IPV4_UDP: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 10, 0,
        0, 2, 0x03, 0xe8, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4,
    ];

    fn ethernet_frame() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&IPV4_UDP);
        f
    }

    fn round_trip(nanos: bool) {
        let frames = [ethernet_frame(), vec![0xff; 60], vec![]];
        let stamps = [1_700_000_000_123_456_789u64, 1_700_000_001_000_000_999, 5];
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, nanos).unwrap();
        for (f, t) in frames.iter().zip(stamps) {
            w.write_packet(t, f).unwrap();
        }
        let bytes = w.into_inner();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.link_type(), LinkType::Ethernet);
        assert_eq!(r.is_nanos(), nanos);
        assert!(!r.is_big_endian());
        let mut buf = Vec::with_capacity(2048);
        for (f, t) in frames.iter().zip(stamps) {
            let h = r.next_record(&mut buf).unwrap().unwrap();
            let want_ts = if nanos { t } else { t / 1000 * 1000 };
            assert_eq!(h.ts_nanos, want_ts);
            assert_eq!(h.caplen as usize, f.len());
            assert_eq!(h.orig_len as usize, f.len());
            assert_eq!(&buf, f);
        }
        assert!(buf.capacity() >= 2048);
        assert!(r.next_record(&mut buf).unwrap().is_none());
        assert!(r.next_record(&mut buf).unwrap().is_none());
    }

    #[test]
    fn round_trip_micros() {
        round_trip(false);
    }

    #[test]
    fn round_trip_nanos() {
        round_trip(true);
    }

    /// A big-endian file written by hand: header, then one record.
    fn big_endian_file(magic: u32, frac: u32, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&magic.to_be_bytes());
        v.extend_from_slice(&2u16.to_be_bytes());
        v.extend_from_slice(&4u16.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&65535u32.to_be_bytes());
        v.extend_from_slice(&link.to_be_bytes());
        v.extend_from_slice(&10u32.to_be_bytes()); // seconds
        v.extend_from_slice(&frac.to_be_bytes());
        v.extend_from_slice(&(IPV4_UDP.len() as u32).to_be_bytes());
        v.extend_from_slice(&1500u32.to_be_bytes());
        v.extend_from_slice(&IPV4_UDP);
        v
    }

    #[test]
    fn big_endian_both_resolutions() {
        for (magic, frac, ts) in [
            (MAGIC_MICROS, 250_000, 10_250_000_000),
            (MAGIC_NANOS, 250_000, 10_000_250_000),
        ] {
            let file = big_endian_file(magic, frac, 101);
            let mut r = PcapReader::new(&file[..]).unwrap();
            assert!(r.is_big_endian());
            assert_eq!(r.is_nanos(), magic == MAGIC_NANOS);
            assert_eq!(r.link_type(), LinkType::RawIp);
            assert_eq!(r.snaplen(), 65535);
            let mut buf = Vec::new();
            let h = r.next_record(&mut buf).unwrap().unwrap();
            assert_eq!(
                h,
                RecordHeader {
                    ts_nanos: ts,
                    caplen: 32,
                    orig_len: 1500
                }
            );
            let repr = parse_link(r.link_type(), &buf).unwrap();
            assert_eq!((repr.tuple.src_port, repr.tuple.dst_port), (1000, 53));
            assert!(r.next_record(&mut buf).unwrap().is_none());
        }
    }

    #[test]
    fn bad_magic_and_link_type() {
        let mut file = big_endian_file(MAGIC_MICROS, 0, 1);
        file[0] = 0x0a; // pcapng's section header block starts 0a 0d 0d 0a
        assert!(matches!(
            PcapReader::new(&file[..]),
            Err(PcapError::BadMagic(_))
        ));
        let file = big_endian_file(MAGIC_MICROS, 0, 147);
        assert!(matches!(
            PcapReader::new(&file[..]),
            Err(PcapError::UnsupportedLinkType(147))
        ));
        let err = PcapReader::new(&[0u8; 24][..]).unwrap_err();
        assert!(err.to_string().contains("magic"));
    }

    #[test]
    fn truncated_files() {
        let file = big_endian_file(MAGIC_NANOS, 0, 1);
        for n in 0..FILE_HEADER_LEN {
            assert!(
                matches!(PcapReader::new(&file[..n]), Err(PcapError::TruncatedHeader)),
                "{n}"
            );
        }
        let mut buf = Vec::new();
        for n in FILE_HEADER_LEN + 1..file.len() {
            let mut r = PcapReader::new(&file[..n]).unwrap();
            assert!(
                matches!(
                    r.next_record(&mut buf),
                    Err(PcapError::TruncatedRecord { index: 0 })
                ),
                "{n}"
            );
        }
        let mut r = PcapReader::new(&file[..FILE_HEADER_LEN]).unwrap();
        assert!(r.next_record(&mut buf).unwrap().is_none());
    }

    #[test]
    fn record_too_long() {
        let mut file = big_endian_file(MAGIC_MICROS, 0, 1);
        file[32..36].copy_from_slice(&(MAX_RECORD_LEN + 1).to_be_bytes());
        let mut r = PcapReader::new(&file[..]).unwrap();
        let mut buf = Vec::new();
        let err = r.next_record(&mut buf).unwrap_err();
        assert!(matches!(err, PcapError::RecordTooLong { index: 0, .. }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn writer_limits() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::RawIp, true).unwrap();
        assert!(matches!(
            w.write_packet(u64::MAX, &IPV4_UDP),
            Err(PcapError::TimestampOutOfRange(_))
        ));
        let big = vec![0u8; MAX_RECORD_LEN as usize + 10];
        w.write_packet(0, &big).unwrap();
        let bytes = w.into_inner();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let mut buf = Vec::new();
        let h = r.next_record(&mut buf).unwrap().unwrap();
        assert_eq!(h.caplen, MAX_RECORD_LEN);
        assert_eq!(h.orig_len, MAX_RECORD_LEN + 10);
    }

    #[test]
    fn verify_link_types() {
        let mut good = IPV4_UDP.to_vec();
        ctrack_core::packet::checksum::fill_ip(&mut good);
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        for (ip, want) in [(&good, Ok(())), (&bad, Err(BadChecksum::L4))] {
            assert_eq!(verify_link(LinkType::RawIp, ip), want);
            assert_eq!(verify_link(LinkType::Ipv4, ip), want);
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(ip);
            assert_eq!(verify_link(LinkType::Ethernet, &f), want);
            let mut sll = vec![0u8; sll::HEADER_LEN];
            sll[sll::PROTOCOL].copy_from_slice(&[0x08, 0x00]);
            sll.extend_from_slice(ip);
            assert_eq!(verify_link(LinkType::LinuxSll, &sll), want);
            let mut sll2 = vec![0u8; sll2::HEADER_LEN];
            sll2[sll2::PROTOCOL].copy_from_slice(&[0x08, 0x00]);
            sll2.extend_from_slice(ip);
            assert_eq!(verify_link(LinkType::LinuxSll2, &sll2), want);
        }
        // Too short for the cooked header: nothing to verify.
        assert_eq!(verify_link(LinkType::LinuxSll2, &[0; 3]), Ok(()));
    }

    #[test]
    fn parse_link_types() {
        let f = ethernet_frame();
        let want = parse_link(LinkType::RawIp, &IPV4_UDP).unwrap();
        assert_eq!(want.l4, L4::Udp);
        assert_eq!(parse_link(LinkType::Ethernet, &f), Ok(want));
        assert_eq!(parse_link(LinkType::Ipv4, &IPV4_UDP), Ok(want));
        assert_eq!(
            parse_link(LinkType::Ipv6, &IPV4_UDP),
            Err(ParseError::BadIpVersion)
        );

        // SLL: outgoing (4), ARPHRD_ETHER, 6-byte address, protocol IPv4.
        let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&IPV4_UDP);
        assert_eq!(parse_link(LinkType::LinuxSll, &sll), Ok(want));
        sll[14..16].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse_link(LinkType::LinuxSll, &sll), Err(ParseError::NotIp));
        for n in 0..16 {
            assert_eq!(
                parse_link(LinkType::LinuxSll, &sll[..n]),
                Err(ParseError::LinkTruncated)
            );
        }

        // SLL2: protocol IPv4, reserved, ifindex 2, ARPHRD_ETHER, host (0), 6.
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(&IPV4_UDP);
        assert_eq!(parse_link(LinkType::LinuxSll2, &sll2), Ok(want));
        for n in 0..20 {
            assert_eq!(
                parse_link(LinkType::LinuxSll2, &sll2[..n]),
                Err(ParseError::LinkTruncated)
            );
        }
        for lt in [1, 101, 228, 229, 113, 276] {
            assert_eq!(LinkType::from_u32(lt).unwrap().to_u32(), lt);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_files_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            magic in proptest::sample::select(vec![MAGIC_MICROS, MAGIC_NANOS]),
            big in proptest::prelude::any::<bool>(),
            link in proptest::sample::select(vec![1u32, 101, 228, 229, 113, 276]),
        ) {
            let mut file = Vec::new();
            if big {
                file.extend_from_slice(&magic.to_be_bytes());
                file.extend_from_slice(&[0; 16]);
                file.extend_from_slice(&link.to_be_bytes());
            } else {
                file.extend_from_slice(&magic.to_le_bytes());
                file.extend_from_slice(&[0; 16]);
                file.extend_from_slice(&link.to_le_bytes());
            }
            file.extend_from_slice(&body);
            let mut r = PcapReader::new(&file[..]).unwrap();
            let mut buf = Vec::new();
            while let Ok(Some(h)) = r.next_record(&mut buf) {
                proptest::prop_assert_eq!(h.caplen as usize, buf.len());
                let _ = parse_link(r.link_type(), &buf);
            }
            let _ = PcapReader::new(&body[..]);
        }
    }
}
