//! Synthetic traffic: well-formed Ethernet/IPv4 frames for whole connections
//! (TCP handshake, data both ways, FIN close; UDP request/response; ICMP echo),
//! for tests, benchmarks, `ctrack generate` and the demo. Checksums are valid,
//! so the frames also read cleanly in tcpdump and Wireshark.

use ctrack_core::flow::proto;

/// Which way a packet travels relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// From the connection's originator (client).
    Orig,
    /// From the responder (server).
    Reply,
}

/// One generated frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthPacket {
    /// Nanoseconds since the start of the capture.
    pub ts_nanos: u64,
    pub side: Side,
    pub frame: Vec<u8>,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn checksum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 frame around `l4` (whose checksum field, at
/// `l4_csum_at`, is filled in when given; TCP and UDP include the pseudo-header).
pub fn ipv4_frame(
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    l4: &[u8],
    l4_csum_at: Option<usize>,
    from_client: bool,
) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut f = Vec::with_capacity(14 + total);
    let (smac, dmac) = if from_client {
        (CLIENT_MAC, SERVER_MAC)
    } else {
        (SERVER_MAC, CLIENT_MAC)
    };
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum_fold(checksum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let l4_start = f.len();
    f.extend_from_slice(l4);
    if let Some(at) = l4_csum_at {
        let mut sum = checksum_add(0, &src);
        sum = checksum_add(sum, &dst);
        if protocol != proto::ICMP {
            sum += u32::from(protocol) + l4.len() as u32;
        } else {
            sum = 0;
        }
        let c = checksum_fold(checksum_add(sum, l4));
        let c = if protocol == proto::UDP && c == 0 {
            0xffff
        } else {
            c
        };
        f[l4_start + at..l4_start + at + 2].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// A TCP segment in an Ethernet/IPv4 frame. `wscale` adds a window-scale
/// option (SYN segments).
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload_len: usize,
    wscale: Option<u8>,
    from_client: bool,
) -> Vec<u8> {
    let opt_len = if wscale.is_some() { 4 } else { 0 };
    let hdr = 20 + opt_len;
    let mut t = vec![0u8; hdr + payload_len];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hdr / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    if let Some(ws) = wscale {
        t[20..24].copy_from_slice(&[1, 3, 3, ws]); // NOP, window scale
    }
    for (i, b) in t[hdr..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    ipv4_frame(src, dst, proto::TCP, &t, Some(16), from_client)
}

/// A UDP datagram in an Ethernet/IPv4 frame.
pub fn udp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload_len: usize,
    from_client: bool,
) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload_len];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in u[8..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    ipv4_frame(src, dst, proto::UDP, &u, Some(6), from_client)
}

/// An ICMP echo request (`reply == false`) or reply in an Ethernet/IPv4 frame.
pub fn icmp_echo_frame(
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    seq: u16,
    reply: bool,
    from_client: bool,
) -> Vec<u8> {
    let mut m = vec![0u8; 8 + 56];
    m[0] = if reply { 0 } else { 8 };
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    ipv4_frame(src, dst, proto::ICMP, &m, Some(2), from_client)
}

/// A mix of whole connections between clients in 10.1.0.0/16 and servers in
/// 10.2.0.0/16 (inside the generated capture only).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub tcp: u32,
    pub udp: u32,
    pub icmp: u32,
    /// Data segments each way per TCP connection, datagrams each way per UDP
    /// flow, echo exchanges per ICMP flow.
    pub exchanges: u32,
    /// Bytes of payload per data packet.
    pub payload: usize,
    /// Leave TCP connections open (no FIN) at the end.
    pub keep_open: bool,
    /// TCP connections seen mid-stream: the data exchanges only, no
    /// handshake and no FIN (tracked by loose pickup, `loose-tcp-tracking`).
    pub midstream: bool,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            tcp: 64,
            udp: 32,
            icmp: 8,
            exchanges: 4,
            payload: 200,
            keep_open: false,
            midstream: false,
        }
    }
}

fn client(i: u32) -> [u8; 4] {
    let h = i + 1;
    [10, 1, (h >> 8) as u8, h as u8]
}

fn server(i: u32) -> [u8; 4] {
    [10, 2, 0, (1 + i % 200) as u8]
}

impl Mix {
    /// The packets of every flow, flows interleaved round-robin (one packet of
    /// each flow in turn), 10 µs apart. Holds them all: [`Mix::iter`] gives
    /// the same packets one at a time.
    pub fn packets(&self) -> Vec<SynthPacket> {
        self.iter().collect()
    }

    /// The packets of [`Mix::packets`], in the same order, built as they are
    /// asked for: a capture of any size is written in constant memory.
    pub fn iter(&self) -> MixIter {
        let tcp_len = if self.tcp == 0 {
            0
        } else {
            let ends = if self.midstream { 0 } else { 3 };
            let fin = if self.keep_open || self.midstream {
                0
            } else {
                3
            };
            ends + 2 * self.exchanges as usize + fin
        };
        let udp_len = if self.udp == 0 {
            0
        } else {
            2 * self.exchanges as usize
        };
        let icmp_len = if self.icmp == 0 {
            0
        } else {
            2 * usize::from(self.exchanges as u16)
        };
        MixIter {
            mix: *self,
            rounds: tcp_len.max(udp_len).max(icmp_len),
            round: 0,
            flow: 0,
            sent: 0,
        }
    }

    /// Packet `k` of flow `f` (TCP flows first, then UDP, then ICMP).
    fn flow_packet(&self, f: u32, k: usize) -> Option<(Side, Vec<u8>)> {
        if f < self.tcp {
            return self.tcp_packet(f, k);
        }
        let f = f - self.tcp;
        let (j, reply) = (k / 2, k % 2 == 1);
        if f < self.udp {
            let (c, s) = (client(1000 + f), server(f));
            let cp = 30000 + (f % 30000) as u16;
            return (j < self.exchanges as usize).then(|| {
                if reply {
                    (Side::Reply, udp_frame(s, c, 53, cp, self.payload, false))
                } else {
                    (Side::Orig, udp_frame(c, s, cp, 53, self.payload, true))
                }
            });
        }
        let i = f - self.udp;
        if i >= self.icmp || j >= usize::from(self.exchanges as u16) {
            return None;
        }
        let (c, s) = (client(2000 + i), server(i));
        let (id, seq) = (0x100 + i as u16, j as u16);
        Some(if reply {
            (Side::Reply, icmp_echo_frame(s, c, id, seq, true, false))
        } else {
            (Side::Orig, icmp_echo_frame(c, s, id, seq, false, true))
        })
    }

    /// Packet `k` of TCP connection `i`: handshake, data exchanges, close.
    fn tcp_packet(&self, i: u32, k: usize) -> Option<(Side, Vec<u8>)> {
        use ctrack_core::flow::tcp_flags::*;
        let (c, s) = (client(i), server(i));
        let (cp, sp) = (20000 + (i % 40000) as u16, 80);
        let (cs0, ss0) = (1000u32.wrapping_mul(i + 1), 5000u32.wrapping_mul(i + 7));
        let n = self.payload;
        let orig = |seq, ack, flags, len, ws| {
            (
                Side::Orig,
                tcp_frame(c, s, cp, sp, seq, ack, flags, len, ws, true),
            )
        };
        let reply = |seq, ack, flags, len, ws| {
            (
                Side::Reply,
                tcp_frame(s, c, sp, cp, seq, ack, flags, len, ws, false),
            )
        };
        let mut k = k;
        if !self.midstream {
            match k {
                0 => return Some(orig(cs0, 0, SYN, 0, Some(7))),
                1 => return Some(reply(ss0, cs0.wrapping_add(1), SYN | ACK, 0, Some(7))),
                2 => return Some(orig(cs0.wrapping_add(1), ss0.wrapping_add(1), ACK, 0, None)),
                _ => k -= 3,
            }
        }
        let (cs, ss) = if self.midstream {
            (cs0, ss0)
        } else {
            (cs0.wrapping_add(1), ss0.wrapping_add(1))
        };
        let ex = self.exchanges as usize;
        if k < 2 * ex {
            let j = (k / 2) as u32;
            let cj = cs.wrapping_add((n as u32).wrapping_mul(j));
            let sj = ss.wrapping_add((n as u32).wrapping_mul(j));
            return Some(if k % 2 == 1 {
                reply(sj, cj.wrapping_add(n as u32), PSH | ACK, n, None)
            } else {
                orig(cj, sj, PSH | ACK, n, None)
            });
        }
        if self.keep_open || self.midstream {
            return None;
        }
        let ce = cs.wrapping_add((n as u32).wrapping_mul(ex as u32));
        let se = ss.wrapping_add((n as u32).wrapping_mul(ex as u32));
        match k - 2 * ex {
            0 => Some(orig(ce, se, FIN | ACK, 0, None)),
            1 => Some(reply(se, ce.wrapping_add(1), FIN | ACK, 0, None)),
            2 => Some(orig(ce.wrapping_add(1), se.wrapping_add(1), ACK, 0, None)),
            _ => None,
        }
    }
}

/// The packets of a [`Mix`], one at a time (see [`Mix::iter`]).
#[derive(Debug, Clone)]
pub struct MixIter {
    mix: Mix,
    /// Packets of the longest flow: the rounds of the round-robin.
    rounds: usize,
    round: usize,
    /// The next flow to ask for a packet in this round.
    flow: u32,
    sent: u64,
}

impl Iterator for MixIter {
    type Item = SynthPacket;

    fn next(&mut self) -> Option<SynthPacket> {
        let flows = self.mix.tcp + self.mix.udp + self.mix.icmp;
        while self.round < self.rounds {
            if self.flow >= flows {
                self.flow = 0;
                self.round += 1;
                continue;
            }
            let f = self.flow;
            self.flow += 1;
            if let Some((side, frame)) = self.mix.flow_packet(f, self.round) {
                let ts_nanos = self.sent * 10_000;
                self.sent += 1;
                return Some(SynthPacket {
                    ts_nanos,
                    side,
                    frame,
                });
            }
        }
        None
    }
}

/// The eager form [`Mix::iter`] replaced, kept as its reference: every
/// flow built whole, then interleaved.
#[cfg(test)]
impl Mix {
    fn packets_reference(&self) -> Vec<SynthPacket> {
        let mut flows: Vec<Vec<(Side, Vec<u8>)>> = Vec::new();
        for i in 0..self.tcp {
            flows.push(self.tcp_flow(i));
        }
        for i in 0..self.udp {
            flows.push(self.udp_flow(i));
        }
        for i in 0..self.icmp {
            flows.push(self.icmp_flow(i));
        }
        let mut out = Vec::new();
        let longest = flows.iter().map(Vec::len).max().unwrap_or(0);
        let mut iters: Vec<_> = flows.into_iter().map(Vec::into_iter).collect();
        for _ in 0..longest {
            for it in &mut iters {
                if let Some((side, frame)) = it.next() {
                    out.push(SynthPacket {
                        ts_nanos: out.len() as u64 * 10_000,
                        side,
                        frame,
                    });
                }
            }
        }
        out
    }

    fn tcp_flow(&self, i: u32) -> Vec<(Side, Vec<u8>)> {
        use ctrack_core::flow::tcp_flags::*;
        let (c, s) = (client(i), server(i));
        let (cp, sp) = (20000 + (i % 40000) as u16, 80);
        let (mut cs, mut ss) = (1000u32.wrapping_mul(i + 1), 5000u32.wrapping_mul(i + 7));
        let n = self.payload;
        let mut v = Vec::new();
        if !self.midstream {
            v.push((
                Side::Orig,
                tcp_frame(c, s, cp, sp, cs, 0, SYN, 0, Some(7), true),
            ));
            v.push((
                Side::Reply,
                tcp_frame(s, c, sp, cp, ss, cs + 1, SYN | ACK, 0, Some(7), false),
            ));
            cs += 1;
            ss += 1;
            v.push((
                Side::Orig,
                tcp_frame(c, s, cp, sp, cs, ss, ACK, 0, None, true),
            ));
        }
        for _ in 0..self.exchanges {
            v.push((
                Side::Orig,
                tcp_frame(c, s, cp, sp, cs, ss, PSH | ACK, n, None, true),
            ));
            cs = cs.wrapping_add(n as u32);
            v.push((
                Side::Reply,
                tcp_frame(s, c, sp, cp, ss, cs, PSH | ACK, n, None, false),
            ));
            ss = ss.wrapping_add(n as u32);
        }
        if !self.keep_open && !self.midstream {
            v.push((
                Side::Orig,
                tcp_frame(c, s, cp, sp, cs, ss, FIN | ACK, 0, None, true),
            ));
            cs += 1;
            v.push((
                Side::Reply,
                tcp_frame(s, c, sp, cp, ss, cs, FIN | ACK, 0, None, false),
            ));
            ss += 1;
            v.push((
                Side::Orig,
                tcp_frame(c, s, cp, sp, cs, ss, ACK, 0, None, true),
            ));
        }
        v
    }

    fn udp_flow(&self, i: u32) -> Vec<(Side, Vec<u8>)> {
        let (c, s) = (client(1000 + i), server(i));
        let cp = 30000 + (i % 30000) as u16;
        let mut v = Vec::new();
        for _ in 0..self.exchanges {
            v.push((Side::Orig, udp_frame(c, s, cp, 53, self.payload, true)));
            v.push((Side::Reply, udp_frame(s, c, 53, cp, self.payload, false)));
        }
        v
    }

    fn icmp_flow(&self, i: u32) -> Vec<(Side, Vec<u8>)> {
        let (c, s) = (client(2000 + i), server(i));
        let id = 0x100 + i as u16;
        let mut v = Vec::new();
        for seq in 0..self.exchanges as u16 {
            v.push((Side::Orig, icmp_echo_frame(c, s, id, seq, false, true)));
            v.push((Side::Reply, icmp_echo_frame(s, c, id, seq, true, false)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iter_gives_the_packets_of_the_eager_reference() {
        let base = Mix {
            tcp: 5,
            udp: 3,
            icmp: 2,
            exchanges: 3,
            payload: 100,
            ..Mix::default()
        };
        let mixes = [
            base,
            Mix::default(),
            Mix {
                keep_open: true,
                ..base
            },
            Mix {
                midstream: true,
                ..base
            },
            Mix { tcp: 0, ..base },
            Mix {
                udp: 0,
                icmp: 0,
                ..base
            },
            Mix {
                exchanges: 0,
                ..base
            },
            Mix {
                exchanges: 9,
                payload: 1400,
                ..base
            },
            Mix {
                tcp: 0,
                udp: 0,
                icmp: 0,
                ..base
            },
        ];
        for m in mixes {
            let want = m.packets_reference();
            let got: Vec<SynthPacket> = m.iter().collect();
            assert_eq!(got.len(), want.len(), "{m:?}");
            assert!(got == want, "{m:?}: packets differ");
            assert_eq!(m.packets(), want, "{m:?}");
        }
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = udp_frame([10, 1, 0, 1], [10, 2, 0, 1], 1000, 53, 10, true);
        let ip = &f[14..34];
        assert_eq!(checksum_fold(checksum_add(0, ip)), 0);
        assert_eq!(f.len(), 14 + 20 + 8 + 10);
    }

    #[test]
    fn mix_counts() {
        let m = Mix {
            tcp: 2,
            udp: 3,
            icmp: 1,
            exchanges: 2,
            payload: 10,
            keep_open: false,
            ..Mix::default()
        };
        let p = m.packets();
        // TCP: 3 handshake + 2*2 data + 3 close = 10 each; UDP 4 each; ICMP 4.
        assert_eq!(p.len(), 2 * 10 + 3 * 4 + 4);
        assert!(p.windows(2).all(|w| w[0].ts_nanos < w[1].ts_nanos));
        assert_eq!(
            p.iter().filter(|x| x.side == Side::Reply).count(),
            2 * 4 + 3 * 2 + 2
        );
    }

    #[test]
    fn midstream_tcp_is_picked_up_established_and_fast_tracked_on_replay() {
        use ctrack_core::conntrack::{
            Dir, Instant, Settings, Shard, TableConfig, Verdict, tcp::TcpState,
        };
        let m = Mix {
            tcp: 3,
            udp: 0,
            icmp: 0,
            exchanges: 1,
            payload: 18,
            keep_open: false,
            midstream: true,
        };
        let p = m.packets();
        // Data each way only: no SYN, no FIN.
        assert_eq!(p.len(), 3 * 2);
        let mut s = Shard::new(
            TableConfig::new(16),
            Settings::default(),
            0,
            ctrack_core::conntrack::key::HashSeed::from_u64(1),
        );
        s.set_fasttrack_established(true);
        let mut at = 0;
        for pass in 0..3 {
            for pkt in &p {
                let repr = ctrack_core::packet::parse_ethernet(&pkt.frame).unwrap();
                at += 1000;
                let v = s.handle_packet(Instant(at), &repr);
                let Verdict::Tracked { created, dir, .. } = v else {
                    panic!("pass {pass}: {v:?}");
                };
                assert_eq!(created, pass == 0 && pkt.side == Side::Orig);
                assert_eq!(dir == Dir::Orig, pkt.side == Side::Orig);
            }
        }
        assert_eq!(s.total_entries(), 3);
        let mut rows = Vec::new();
        s.for_each_snapshot(Instant(at), |r| rows.push(r));
        for r in &rows {
            let e = r.entry();
            assert_eq!(e.tcp_state(), Some(TcpState::Established));
            assert!(e.assured() && e.fasttrack(), "{r:?}");
            let ft = r.fasttrack_counters();
            assert!(ft.packets[0] > 0 && ft.packets[1] > 0);
        }
        assert_eq!(s.stats().invalid.iter().sum::<u64>(), 0);
    }
}
