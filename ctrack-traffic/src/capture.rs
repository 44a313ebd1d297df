//! Reading captures in any form a user brings: classic pcap (micro- or
//! nanosecond, either byte order) and pcapng, through the `pcap-file`
//! crate, each possibly gzip-compressed (`.pcap.gz`, `.pcapng.gz`, through
//! `flate2`). The form is told by the content, not the file name.
//!
//! [`CaptureReader`] gives records as [`PcapReader`](crate::pcap::PcapReader)
//! does, each with its link type (a pcapng file may mix interfaces of
//! different link types). Writing stays with
//! [`PcapWriter`](crate::pcap::PcapWriter) (classic pcap, which every tool
//! reads).
//!
//! A malformed capture is a [`PcapError`], never a panic; a record longer
//! than [`MAX_RECORD_LEN`] is refused (the `pcap-file` readers bound their
//! buffers themselves, so a corrupt length does not allocate without limit).

use std::io::{self, BufReader, Cursor, Read};

use flate2::read::MultiGzDecoder;
use pcap_file::pcap::PcapReader as FilePcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::pcap::{LinkType, MAX_RECORD_LEN, PcapError, RecordHeader};

/// The container of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// One record of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureRecord {
    pub header: RecordHeader,
    /// The link type of the interface it was captured on.
    pub link: LinkType,
}

enum Inner<'a> {
    Pcap(FilePcapReader<Box<dyn Read + 'a>>, LinkType),
    /// The reader and the link type of each interface of the section.
    PcapNg(PcapNgReader<Box<dyn Read + 'a>>, Vec<u32>),
}

/// A capture reader over pcap or pcapng, gzip-compressed or not.
pub struct CaptureReader<'a> {
    inner: Inner<'a>,
    gzip: bool,
    index: u64,
}

impl std::fmt::Debug for CaptureReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format())
            .field("gzip", &self.gzip)
            .field("index", &self.index)
            .finish()
    }
}

/// Reads up to `buf.len()` bytes; how many.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
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

/// `r` with its first bytes read (into `head`) and put back in front.
fn peek<'a, R: Read + 'a>(mut r: R, head: &mut [u8]) -> io::Result<(usize, Box<dyn Read + 'a>)> {
    let n = read_up_to(&mut r, head)?;
    Ok((n, Box::new(Cursor::new(head[..n].to_vec()).chain(r))))
}

fn file_error(index: u64, e: pcap_file::PcapError) -> PcapError {
    match e {
        pcap_file::PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            PcapError::TruncatedRecord { index }
        }
        pcap_file::PcapError::IoError(io) => PcapError::Io(io),
        pcap_file::PcapError::IncompleteBuffer => PcapError::TruncatedRecord { index },
        other => PcapError::Malformed {
            index,
            problem: other.to_string(),
        },
    }
}

fn link_of(raw: u32) -> Result<LinkType, PcapError> {
    LinkType::from_u32(raw).ok_or(PcapError::UnsupportedLinkType(raw))
}

impl<'a> CaptureReader<'a> {
    /// Reads the start of `reader` to tell gzip, pcap and pcapng apart, and
    /// the file header.
    pub fn new<R: Read + 'a>(reader: R) -> Result<CaptureReader<'a>, PcapError> {
        let mut magic = [0u8; 4];
        let (n, r) = peek(reader, &mut magic[..2])?;
        let gzip = n == 2 && magic[..2] == [0x1f, 0x8b];
        let r: Box<dyn Read + 'a> = if gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(r)))
        } else {
            r
        };
        let (n, r) = peek(r, &mut magic)?;
        if n < 4 {
            return Err(PcapError::TruncatedHeader);
        }
        let inner = match u32::from_le_bytes(magic) {
            0x0a0d_0d0a => Inner::PcapNg(
                PcapNgReader::new(r).map_err(|e| file_error(0, e))?,
                Vec::new(),
            ),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let p = FilePcapReader::new(r).map_err(|e| match e {
                    pcap_file::PcapError::IoError(io)
                        if io.kind() == io::ErrorKind::UnexpectedEof =>
                    {
                        PcapError::TruncatedHeader
                    }
                    e => file_error(0, e),
                })?;
                let link = link_of(u32::from(p.header().datalink))?;
                Inner::Pcap(p, link)
            }
            m => return Err(PcapError::BadMagic(m)),
        };
        Ok(CaptureReader {
            inner,
            gzip,
            index: 0,
        })
    }

    pub fn format(&self) -> Format {
        match self.inner {
            Inner::Pcap(..) => Format::Pcap,
            Inner::PcapNg(..) => Format::PcapNg,
        }
    }

    /// Whether the capture was gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The next packet record into `buf` (replacing its contents), or `None`
    /// at the end. pcapng blocks that are not packets are skipped.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> Result<Option<CaptureRecord>, PcapError> {
        let index = self.index;
        let rec = match &mut self.inner {
            Inner::Pcap(r, link) => {
                let Some(p) = r.next_packet() else {
                    return Ok(None);
                };
                let p = p.map_err(|e| file_error(index, e))?;
                fill(buf, &p.data, index)?;
                CaptureRecord {
                    header: RecordHeader {
                        ts_nanos: nanos(p.timestamp),
                        caplen: p.data.len() as u32,
                        orig_len: p.orig_len,
                    },
                    link: *link,
                }
            }
            Inner::PcapNg(r, links) => loop {
                let Some(b) = r.next_block() else {
                    return Ok(None);
                };
                let b = b.map_err(|e| file_error(index, e))?;
                match b {
                    // A new section starts its interfaces anew.
                    Block::SectionHeader(_) => links.clear(),
                    Block::InterfaceDescription(i) => links.push(u32::from(i.linktype)),
                    Block::EnhancedPacket(p) => {
                        let raw = links.get(p.interface_id as usize).copied().ok_or_else(|| {
                            PcapError::Malformed {
                                index,
                                problem: format!("no interface {}", p.interface_id),
                            }
                        })?;
                        fill(buf, &p.data, index)?;
                        break CaptureRecord {
                            header: RecordHeader {
                                ts_nanos: nanos(p.timestamp),
                                caplen: p.data.len() as u32,
                                orig_len: p.original_len,
                            },
                            link: link_of(raw)?,
                        };
                    }
                    Block::SimplePacket(p) => {
                        let raw = links.first().copied().ok_or_else(|| PcapError::Malformed {
                            index,
                            problem: "a packet before any interface".into(),
                        })?;
                        fill(buf, &p.data, index)?;
                        // A simple packet block has no timestamp.
                        break CaptureRecord {
                            header: RecordHeader {
                                ts_nanos: 0,
                                caplen: p.data.len() as u32,
                                orig_len: p.original_len,
                            },
                            link: link_of(raw)?,
                        };
                    }
                    _ => continue,
                }
            },
        };
        self.index += 1;
        Ok(Some(rec))
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn fill(buf: &mut Vec<u8>, data: &[u8], index: u64) -> Result<(), PcapError> {
    if data.len() > MAX_RECORD_LEN as usize {
        return Err(PcapError::RecordTooLong {
            index,
            caplen: data.len() as u64,
        });
    }
    buf.clear();
    buf.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::io::Write;
    use std::time::Duration;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

    use super::*;
    use crate::pcap::PcapWriter;

    /// Three frames of different lengths, at whole microseconds (what every
    /// form can hold).
    fn frames() -> Vec<(u64, Vec<u8>)> {
        (0..3u8)
            .map(|i| {
                let ts = 1_700_000_000_000_000_000 + u64::from(i) * 1_234_000;
                (ts, vec![i; 60 + usize::from(i) * 10])
            })
            .collect()
    }

    fn pcap(nanos: bool) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, nanos).unwrap();
        for (ts, f) in frames() {
            w.write_packet(ts, &f).unwrap();
        }
        w.into_inner()
    }

    fn pcapng(link: DataLink) -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: link,
            snaplen: 0xffff,
            options: vec![],
        })
        .unwrap();
        for (ts, f) in frames() {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(ts),
                original_len: f.len() as u32,
                data: Cow::Borrowed(&f),
                options: vec![],
            })
            .unwrap();
        }
        w.into_inner()
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    /// The form, whether gzip, and the records (timestamp, frame).
    type ReadBack = (Format, bool, Vec<(u64, Vec<u8>)>);

    fn read_all(bytes: &[u8]) -> Result<ReadBack, PcapError> {
        let mut r = CaptureReader::new(bytes)?;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(rec) = r.next_record(&mut buf)? {
            assert_eq!(rec.link, LinkType::Ethernet);
            assert_eq!(rec.header.caplen as usize, buf.len());
            out.push((rec.header.ts_nanos, buf.clone()));
        }
        Ok((r.format(), r.is_gzip(), out))
    }

    #[test]
    fn every_form_reads_the_same_records() {
        for (name, bytes, format, gz) in [
            ("pcap us", pcap(false), Format::Pcap, false),
            ("pcap ns", pcap(true), Format::Pcap, false),
            ("pcap.gz", gzip(&pcap(true)), Format::Pcap, true),
            ("pcapng", pcapng(DataLink::ETHERNET), Format::PcapNg, false),
            (
                "pcapng.gz",
                gzip(&pcapng(DataLink::ETHERNET)),
                Format::PcapNg,
                true,
            ),
        ] {
            let (f, g, recs) = read_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((f, g), (format, gz), "{name}");
            assert_eq!(recs, frames(), "{name}");
        }
    }

    #[test]
    fn bad_captures_are_errors_not_panics() {
        assert!(matches!(
            CaptureReader::new(&b"not a pcap at all"[..]),
            Err(PcapError::BadMagic(_))
        ));
        assert!(matches!(
            CaptureReader::new(&b""[..]),
            Err(PcapError::TruncatedHeader)
        ));
        assert!(matches!(
            CaptureReader::new(&pcap(false)[..10]),
            Err(PcapError::TruncatedHeader)
        ));
        // Gzip of garbage, and a cut gzip stream.
        assert!(CaptureReader::new(&gzip(b"garbage!")[..]).is_err());
        let gz = gzip(&pcap(false));
        let cut = &gz[..gz.len() / 2];
        assert!(read_all(cut).is_err());
        // Cut inside a record, in each form.
        for bytes in [pcap(false), pcapng(DataLink::ETHERNET)] {
            let e = read_all(&bytes[..bytes.len() - 5]).unwrap_err();
            assert!(
                matches!(
                    e,
                    PcapError::TruncatedRecord { index: 2 } | PcapError::Malformed { index: 2, .. }
                ),
                "{e}"
            );
        }
        // A link type ctrack does not parse.
        let e = read_all(&pcapng(DataLink::IEEE802_11)).unwrap_err();
        assert!(matches!(e, PcapError::UnsupportedLinkType(105)), "{e}");
        // A corrupt record length (4 GiB) is refused without allocating it.
        let mut b = pcap(false);
        b[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_all(&b).is_err());
    }
}
