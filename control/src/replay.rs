//! `ctrack replay`: the conntrack core over a capture (pcap or pcapng,
//! gzip-compressed or not: [`CaptureReader`]), with the capture's
//! timestamps as the clock.
//!
//! With `workers > 1` every packet goes to the shard that would own it in
//! the dataplane ([`dataplane::rss::Dispatch`]: the symmetric Toeplitz hash
//! and an even RETA), and each shard sees its packets in capture order; the
//! resulting table is the same as with one shard (ids and `worker` aside).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use ctrack_model::ConnSnapshot;
use ctrack_traffic::capture::CaptureReader;
use ctrack_traffic::pcap::{parse_link, verify_link};
use dataplane::conntrack::{
    DropReason, Instant, InvalidReason, OtherInvalid, Settings, Shard, ShardStats, TableConfig,
    UntrackedReason,
};
use dataplane::packet::ParseError;
use dataplane::rss::Dispatch;
use serde::Serialize;

/// What a replay found.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The table after the last packet, sorted by protocol and addresses.
    pub connections: Vec<ConnSnapshot>,
    pub packets: u64,
    pub counters: Counters,
}

/// Packets not counted on a connection, by reason, and the table's events.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub tracked: u64,
    pub related: u64,
    pub inserted: u64,
    pub expired: u64,
    pub early_dropped: u64,
    /// Parse failures (malformed, non-IP, fragments), by reason.
    pub parse: Vec<(&'static str, u64)>,
    pub invalid: Vec<(&'static str, u64)>,
    pub untracked: Vec<(&'static str, u64)>,
    pub dropped: Vec<(&'static str, u64)>,
}

/// Captures from this size on show a progress bar (on a terminal).
pub const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Runs the conntrack core over the capture at `path`. A capture of
/// [`PROGRESS_MIN_BYTES`] or more shows a progress bar on stderr when stderr
/// is a terminal, and nothing otherwise (pipes, logs, tests).
pub fn replay_file(
    path: &Path,
    workers: u16,
    settings: &Settings,
    max_entries: u32,
) -> Result<ReplayOutcome> {
    use std::io::IsTerminal;
    check_bounds(workers, max_entries)?;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if size >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal() {
        progress_bar(size, path)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let out = replay(
        std::io::BufReader::new(bar.wrap_read(file)),
        workers,
        settings,
        max_entries,
    )
    .with_context(|| format!("replaying {}", path.display()));
    bar.finish_and_clear();
    out
}

/// Bytes of the capture read so far, with rate and time left.
fn progress_bar(size: u64, path: &Path) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(
        "replaying {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    indicatif::ProgressBar::with_draw_target(Some(size), indicatif::ProgressDrawTarget::stderr())
        .with_style(style)
        .with_message(name)
}

/// Refuses `workers` or `max_entries` outside `run`'s bounds
/// ([`crate::config::check_workers`], [`crate::config::check_max_entries`])
/// before anything is allocated, with a message naming the flag.
fn check_bounds(workers: u16, max_entries: u32) -> Result<()> {
    crate::config::check_workers(workers).context("--workers")?;
    crate::config::check_max_entries(max_entries).context("--max-entries")?;
    Ok(())
}

/// Runs the conntrack core over a capture read from `input`; `workers` and
/// `max_entries` are bounded as [`replay_file`]'s.
pub fn replay<R: Read>(
    input: R,
    workers: u16,
    settings: &Settings,
    max_entries: u32,
) -> Result<ReplayOutcome> {
    check_bounds(workers, max_entries)?;
    // pcap or pcapng, gzip-compressed or not; the link type by record.
    let mut reader = CaptureReader::new(input)?;
    let dispatch = Dispatch::new(workers);
    let mut shards: Vec<Shard> = (0..workers)
        .map(|w| {
            Shard::new(
                TableConfig::new(max_entries),
                settings.clone(),
                w,
                dataplane::worker::random_seed(),
            )
        })
        .collect();
    let mut parse_errors = [0u64; ParseError::COUNT];
    let mut buf = Vec::new();
    let mut packets = 0u64;
    let mut now = Instant::ZERO;
    while let Some(rec) = reader.next_record(&mut buf)? {
        packets += 1;
        let link = rec.link;
        // The capture's clock; it never runs backwards for the table.
        now = now.max(Instant(rec.header.ts_nanos));
        for s in &mut shards {
            s.poll_expired(now, usize::MAX);
        }
        match parse_link(link, &buf) {
            Ok(pkt) => {
                let shard = &mut shards[dispatch.owner(&pkt) as usize];
                // As the worker: checksums first (Linux's nf_conntrack_checksum).
                let s = shard.settings();
                if s.checksum_verify && s.enabled.is_tracking() && verify_link(link, &buf).is_err()
                {
                    shard.count_invalid(InvalidReason::Other(OtherInvalid::BadChecksum));
                } else {
                    shard.handle_packet(now, &pkt);
                }
            }
            Err(e) => parse_errors[e.index()] += 1,
        }
    }
    for s in &mut shards {
        s.poll_expired(now, usize::MAX);
    }
    let mut connections = Vec::new();
    for s in &shards {
        s.for_each_snapshot(now, |c| connections.push(ConnSnapshot::from_raw(&c)));
    }
    connections.sort_by(|a, b| {
        (&a.protocol, &a.src_address, &a.dst_address).cmp(&(
            &b.protocol,
            &b.src_address,
            &b.dst_address,
        ))
    });
    let counters = Counters::collect(packets, &parse_errors, shards.iter().map(Shard::stats));
    Ok(ReplayOutcome {
        connections,
        packets,
        counters,
    })
}

impl Counters {
    pub(crate) fn collect<'a>(
        packets: u64,
        parse: &[u64],
        stats: impl Iterator<Item = &'a ShardStats>,
    ) -> Counters {
        let mut c = Counters {
            packets,
            ..Default::default()
        };
        let mut invalid = [0u64; InvalidReason::COUNT];
        let mut untracked = [0u64; UntrackedReason::COUNT];
        let mut dropped = [0u64; DropReason::COUNT];
        for s in stats {
            c.tracked += s.found + s.insert;
            c.related += s.related;
            c.inserted += s.insert;
            c.expired += s.expired;
            c.early_dropped += s.early_drop;
            add(&mut invalid, &s.invalid);
            add(&mut untracked, &s.untracked);
            add(&mut dropped, &s.dropped);
        }
        c.parse = nonzero(ParseError::ALL.iter().map(|r| r.name()), parse);
        c.invalid = nonzero(InvalidReason::ALL.iter().map(|r| r.name()), &invalid);
        c.untracked = nonzero(UntrackedReason::ALL.iter().map(|r| r.name()), &untracked);
        c.dropped = nonzero(DropReason::ALL.iter().map(|r| r.name()), &dropped);
        c
    }

    /// One line per non-zero counter, `name: value`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "packets: {}, tracked: {}, related: {}, connections created: {}, expired: {}, early-dropped: {}\n",
            self.packets,
            self.tracked,
            self.related,
            self.inserted,
            self.expired,
            self.early_dropped
        );
        for (kind, list) in [
            ("not parsed", &self.parse),
            ("invalid", &self.invalid),
            ("untracked", &self.untracked),
            ("dropped", &self.dropped),
        ] {
            for (name, n) in list {
                out.push_str(&format!("{kind} ({name}): {n}\n"));
            }
        }
        out
    }
}

fn add(acc: &mut [u64], v: &[u64]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

fn nonzero(names: impl Iterator<Item = &'static str>, values: &[u64]) -> Vec<(&'static str, u64)> {
    names
        .zip(values.iter().copied())
        .filter(|&(_, v)| v > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_traffic::pcap::{LinkType, PcapWriter};
    use ctrack_traffic::synth::Mix;

    fn capture(mix: &Mix) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, true).unwrap();
        for p in mix.packets() {
            w.write_packet(p.ts_nanos, &p.frame).unwrap();
        }
        w.into_inner()
    }

    fn strip_ids(mut rows: Vec<ConnSnapshot>) -> Vec<ConnSnapshot> {
        for r in &mut rows {
            r.id.clear();
            r.worker = 0;
        }
        rows
    }

    #[test]
    fn replay_counts_every_packet_of_every_connection() {
        let mix = Mix {
            tcp: 10,
            udp: 5,
            icmp: 2,
            exchanges: 3,
            payload: 100,
            keep_open: true,
            ..Mix::default()
        };
        let n = mix.packets().len() as u64;
        let out = replay(&capture(&mix)[..], 1, &Settings::default(), 1024).unwrap();
        assert_eq!(out.connections.len(), 17);
        assert_eq!(out.packets, n);
        let counted: u64 = out
            .connections
            .iter()
            .map(|c| c.orig_packets + c.repl_packets)
            .sum();
        assert_eq!(counted, n);
        assert!(out.counters.invalid.is_empty(), "{:?}", out.counters);
        let tcp: Vec<_> = out
            .connections
            .iter()
            .filter(|c| c.protocol == "tcp")
            .collect();
        assert_eq!(tcp.len(), 10);
        assert!(
            tcp.iter()
                .all(|c| c.tcp_state.as_deref() == Some("established") && c.assured)
        );
        let udp: Vec<_> = out
            .connections
            .iter()
            .filter(|c| c.protocol == "udp")
            .collect();
        assert!(udp.iter().all(|c| c.seen_reply && c.assured));
    }

    #[test]
    fn more_workers_give_the_same_table() {
        let mix = Mix {
            tcp: 40,
            udp: 20,
            icmp: 4,
            exchanges: 2,
            payload: 50,
            keep_open: false,
            ..Mix::default()
        };
        let cap = capture(&mix);
        let one = replay(&cap[..], 1, &Settings::default(), 4096).unwrap();
        let four = replay(&cap[..], 4, &Settings::default(), 4096).unwrap();
        let workers: std::collections::HashSet<u16> =
            four.connections.iter().map(|c| c.worker).collect();
        assert!(workers.len() > 1, "connections should spread over shards");
        assert_eq!(strip_ids(one.connections), strip_ids(four.connections));
        assert_eq!(one.counters, four.counters);
    }

    #[test]
    fn workers_and_max_entries_are_bounded_like_runs() {
        // Refused before the file is opened or anything allocated (the
        // path does not exist: a bound error must come first).
        let path = Path::new("/nonexistent/ctrack-replay-bounds.pcap");
        let s = Settings::default();
        for (workers, max, flag) in [
            (1000, 1024, "--workers"),
            (0, 1024, "--workers"),
            (1, u32::MAX, "--max-entries"),
            (1, 0, "--max-entries"),
        ] {
            let e = format!("{:#}", replay_file(path, workers, &s, max).unwrap_err());
            assert!(e.contains(flag) && e.contains("outside"), "{e}");
            let e = format!("{:#}", replay(&b""[..], workers, &s, max).unwrap_err());
            assert!(e.contains(flag), "{e}");
        }
        let e = format!("{:#}", replay_file(path, 128, &s, 1 << 28).unwrap_err());
        assert!(e.contains("opening"), "the largest bounds are taken: {e}");
    }

    #[test]
    fn a_bad_capture_is_an_error_not_a_panic() {
        let err = replay(&b"not a pcap at all"[..], 1, &Settings::default(), 16).unwrap_err();
        assert!(err.to_string().contains("magic") || !err.to_string().is_empty());
    }

    #[test]
    fn a_gzip_compressed_capture_replays_as_the_plain_one() {
        use std::io::Write;
        let mix = Mix {
            tcp: 6,
            udp: 3,
            icmp: 1,
            ..Mix::default()
        };
        let plain = capture(&mix);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let a = replay(&plain[..], 1, &Settings::default(), 1024).unwrap();
        let b = replay(&gz[..], 1, &Settings::default(), 1024).unwrap();
        assert_eq!(b.packets, a.packets);
        assert_eq!(strip_ids(b.connections), strip_ids(a.connections));
        assert_eq!(a.packets, mix.packets().len() as u64);
    }

    /// A SYN and a UDP datagram with bad checksums, then the same two intact.
    fn bad_then_good() -> Vec<u8> {
        use ctrack_traffic::synth::{tcp_frame, udp_frame};
        use dataplane::flow::tcp_flags::SYN;
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let syn = tcp_frame(a, b, 40000, 80, 1, 0, SYN, 0, None, true);
        let dgram = udp_frame(a, b, 5000, 53, 10, true);
        let mut bad_syn = syn.clone();
        bad_syn[14 + 20 + 16] ^= 0x55;
        let mut bad_dgram = dgram.clone();
        *bad_dgram.last_mut().unwrap() ^= 1;
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet, true).unwrap();
        for (i, f) in [bad_syn, bad_dgram, syn, dgram].iter().enumerate() {
            w.write_packet(i as u64 * 1000, f).unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn bad_checksums_are_invalid_unless_verification_is_off() {
        let cap = bad_then_good();
        let out = replay(&cap[..], 1, &Settings::default(), 16).unwrap();
        assert_eq!(out.counters.invalid, vec![("bad_checksum", 2)]);
        assert_eq!(out.counters.inserted, 2);
        // Only the intact packets are counted on the connections.
        assert!(
            out.connections
                .iter()
                .all(|c| (c.orig_packets, c.repl_packets) == (1, 0)),
            "{:?}",
            out.connections
        );
        let off = Settings {
            checksum_verify: false,
            ..Settings::default()
        };
        let out = replay(&cap[..], 1, &off, 16).unwrap();
        assert!(out.counters.invalid.is_empty(), "{:?}", out.counters);
        assert!(
            out.connections
                .iter()
                .all(|c| (c.orig_packets, c.repl_packets) == (2, 0)),
            "{:?}",
            out.connections
        );
    }
}
