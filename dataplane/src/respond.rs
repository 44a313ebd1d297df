//! Answering a received frame with a generated packet: the TCP reset or
//! ICMP error of `action=reject`, the segments of `action=tarpit`.
//!
//! [`Responder::respond`] builds the answer with
//! [`ctrack_core::packet::respond`] into a scratch buffer, applies Linux's
//! ICMP rate limit to ICMP errors (not to resets or tarpit segments, which
//! Linux does not limit either), and copies it into a new packet from the
//! I/O ([`PacketIo::alloc`]). The caller sends that packet on the port the
//! frame came in on ([`PacketIo::ingress`]) the way it forwards any packet
//! (the worker's TX burst of that port, or a handoff to the worker that owns
//! its TX queue). Every outcome is counted ([`RespondTotals`]).
//!
//! One [`Responder`] per worker: its rate limit is therefore per worker
//! (Linux's `icmp_msgs_per_sec` is per network namespace). Nothing is
//! allocated per packet besides the packet itself (a pool buffer on DPDK).

use ctrack_core::conntrack::Instant;
use ctrack_core::packet::respond::{
    Answer, IcmpParams, IcmpRateLimiter, MAX_ANSWER, answer_destination, build, needs_rate_limit,
};

use crate::io::PacketIo;

/// What a [`Responder`] did, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RespondTotals {
    /// Answers built and handed to the caller to send.
    pub sent: u64,
    /// ICMP errors not sent: over Linux's rate limit.
    pub rate_limited: u64,
    /// Answers not sent: no packet buffer was free.
    pub alloc_failed: u64,
    /// Frames Linux would not answer (an ICMP error, a reset, a non-first
    /// fragment, a bad checksum, broadcast or multicast, an answer of the
    /// other family; see `ctrack_core::packet::respond`).
    pub not_due: u64,
}

impl RespondTotals {
    /// `[sent, rate_limited, alloc_failed, not_due]`, the order of
    /// [`crate::stats::WorkerTotals::fw_answers`].
    pub fn as_array(&self) -> [u64; 4] {
        [
            self.sent,
            self.rate_limited,
            self.alloc_failed,
            self.not_due,
        ]
    }
}

/// Builds, rate-limits and allocates the answers of one worker.
#[derive(Debug)]
pub struct Responder {
    limiter: IcmpRateLimiter,
    /// Per port: the addresses its ICMP errors come from.
    sources: Vec<IcmpParams>,
    /// The next IPv4 ID of an ICMP error.
    ident: u16,
    scratch: Box<[u8]>,
    totals: RespondTotals,
}

impl Responder {
    /// A responder for `ports` ports, with Linux's default ICMP rate limit
    /// and no interface addresses (errors come from the original
    /// destination until [`Responder::set_address`]).
    pub fn new(ports: usize) -> Self {
        Responder {
            limiter: IcmpRateLimiter::linux_default(),
            sources: vec![IcmpParams::default(); ports],
            ident: 0,
            scratch: vec![0; MAX_ANSWER].into_boxed_slice(),
            totals: RespondTotals::default(),
        }
    }

    /// Replaces the rate limiter (e.g. other `icmp_msgs_per_sec` values).
    pub fn with_limiter(mut self, limiter: IcmpRateLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The addresses of port `port`'s interface: the source of the ICMP
    /// errors sent out of it, as Linux takes the interface's. Ignored for a
    /// port beyond those given to [`Responder::new`].
    pub fn set_address(&mut self, port: u16, v4: Option<[u8; 4]>, v6: Option<[u8; 16]>) {
        if let Some(s) = self.sources.get_mut(usize::from(port)) {
            s.v4 = v4;
            s.v6 = v6;
        }
    }

    /// Whether packets are routed (their TTL decremented) before the rules
    /// that answer them: ICMP errors then quote them as Linux's FORWARD
    /// hook does ([`IcmpParams::forwarded`]). Off by default (ctrack
    /// forwards frames unchanged).
    pub fn set_forwarded(&mut self, forwarded: bool) {
        for s in &mut self.sources {
            s.forwarded = forwarded;
        }
    }

    /// The packet answering `frame` (received on port `port`) with
    /// `answer`, to be sent on `port`; `None` (counted) when none is due,
    /// the rate limit holds it back, or no buffer is free.
    pub fn respond<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        answer: Answer,
        port: u16,
        now: Instant,
    ) -> Option<I::Packet> {
        self.respond_quoting(io, frame, answer, port, now, None)
    }

    /// As [`Responder::respond`], quoting `frame` exactly as received
    /// whatever [`Responder::set_forwarded`] says: the errors a router
    /// sends before forwarding (no route, TTL exceeded), as Linux's
    /// `ip_error` and `ip_forward` do.
    pub fn respond_as_received<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        answer: Answer,
        port: u16,
        now: Instant,
    ) -> Option<I::Packet> {
        self.respond_quoting(io, frame, answer, port, now, Some(false))
    }

    fn respond_quoting<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        answer: Answer,
        port: u16,
        now: Instant,
        forwarded: Option<bool>,
    ) -> Option<I::Packet> {
        let mut src = self
            .sources
            .get(usize::from(port))
            .copied()
            .unwrap_or_default();
        src.ident = self.ident;
        if let Some(f) = forwarded {
            src.forwarded = f;
        }
        let Some(n) = build(answer, frame, &src, &mut self.scratch) else {
            self.totals.not_due += 1;
            return None;
        };
        if needs_rate_limit(answer) {
            // The builder only answers IP frames, so there is a source.
            let dst = answer_destination(frame).unwrap_or_default();
            if !self.limiter.allow(dst, now) {
                self.totals.rate_limited += 1;
                return None;
            }
            self.ident = self.ident.wrapping_add(1);
        }
        match io.alloc(&self.scratch[..n]) {
            Some(p) => {
                self.totals.sent += 1;
                Some(p)
            }
            None => {
                self.totals.alloc_failed += 1;
                None
            }
        }
    }

    /// The counts so far.
    pub fn totals(&self) -> RespondTotals {
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Burst;
    use crate::io::mem::{MemIo, MemLink};
    use crate::packet::checksum::fill_ip;
    use crate::packet::parse_ethernet;
    use ctrack_core::flow::{L4, tcp_flags};
    use ctrack_core::packet::respond::{Unreachable4, Unreachable6};

    fn io() -> MemIo {
        MemIo::new(
            vec![
                MemLink {
                    port: 0,
                    ..MemLink::default()
                },
                MemLink {
                    port: 1,
                    ..MemLink::default()
                },
            ],
            2,
            &[0, 1],
            8,
        )
    }

    /// UDP 10.0.0.`host` -> 10.0.1.1:53 in an Ethernet frame.
    fn udp(host: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, host, 0x08, 0];
        let mut ip = vec![
            0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, host, 10, 0, 1, 1,
        ];
        ip.extend_from_slice(&[0x9c, 0x41, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        fill_ip(&mut ip);
        f.extend_from_slice(&ip);
        f
    }

    /// A TCP SYN 10.0.0.1:40000 -> 10.0.1.1:81.
    fn syn() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 1, 0x08, 0];
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1,
        ];
        ip.extend_from_slice(&[
            0x9c, 0x40, 0, 81, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 2, 0xff, 0xff,
        ]);
        ip.extend_from_slice(&[0, 0, 0, 0]);
        fill_ip(&mut ip);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn answers_are_allocated_sent_on_the_ingress_port_and_counted() {
        let mut io = io();
        let mut r = Responder::new(2);
        r.set_address(1, Some([10, 0, 0, 254]), None);
        let port = io.ingress(1);
        assert_eq!(port, 1);
        let p = r
            .respond(
                &mut io,
                &udp(1),
                Answer::Icmp4(Unreachable4::Port),
                port,
                Instant::ZERO,
            )
            .expect("an ICMP error");
        let parsed = parse_ethernet(&p).unwrap();
        assert_eq!(parsed.tuple.src_ip().to_string(), "10.0.0.254");
        assert!(matches!(parsed.l4, L4::Icmp(i) if i.icmp_type == 3 && i.code == 3));
        // Sent like a forwarded packet: into the port's TX burst.
        let mut b = io.new_burst();
        b.push(p).unwrap();
        assert_eq!(io.tx(port, &mut b), 1);
        assert_eq!(io.output(1).len(), 1);

        let rst = r
            .respond(&mut io, &syn(), Answer::TcpReset, 0, Instant::ZERO)
            .expect("a reset");
        let parsed = parse_ethernet(&rst).unwrap();
        assert!(matches!(parsed.l4, L4::Tcp(t) if t.flags == tcp_flags::RST | tcp_flags::ACK));
        // Port 0 has no address: the original destination is the source.
        assert_eq!(r.totals().sent, 2);
    }

    #[test]
    fn not_due_rate_limited_and_alloc_failed_are_counted() {
        let mut io = io();
        let mut r = Responder::new(2);
        // The other family's code, and a reset for UDP: nothing to send.
        assert!(
            r.respond(
                &mut io,
                &udp(1),
                Answer::Icmp6(Unreachable6::Port),
                0,
                Instant::ZERO
            )
            .is_none()
        );
        assert!(
            r.respond(&mut io, &udp(1), Answer::TcpReset, 0, Instant::ZERO)
                .is_none()
        );
        assert_eq!(r.totals().not_due, 2);

        // One destination: a burst of 6 errors, then none within the second.
        let sent = (0..10)
            .filter_map(|_| {
                r.respond(
                    &mut io,
                    &udp(1),
                    Answer::Icmp4(Unreachable4::Host),
                    0,
                    Instant::ZERO,
                )
            })
            .collect::<Vec<_>>();
        assert_eq!(sent.len(), 6);
        assert_eq!(r.totals().rate_limited, 4);
        // Each error has its own IPv4 ID.
        let ids: std::collections::BTreeSet<_> = sent.iter().map(|p| [p[18], p[19]]).collect();
        assert_eq!(ids.len(), 6);
        // Resets are not limited.
        let resets = (0..10)
            .filter(|_| {
                r.respond(&mut io, &syn(), Answer::TcpReset, 0, Instant::ZERO)
                    .is_some()
            })
            .count();
        assert_eq!(resets, 10);

        // An empty pool.
        io.alloc_limit = Some(0);
        assert!(
            r.respond(
                &mut io,
                &udp(2),
                Answer::Icmp4(Unreachable4::Host),
                0,
                Instant::ZERO
            )
            .is_none()
        );
        assert_eq!(
            r.totals(),
            RespondTotals {
                sent: 16,
                rate_limited: 4,
                alloc_failed: 1,
                not_due: 2,
            }
        );
    }

    #[test]
    fn data_mut_rewrites_in_place() {
        let mut io = io();
        io.links[0].input.push_back(udp(1));
        let mut b = io.new_burst();
        assert_eq!(io.rx(0, &mut b), 1);
        b.data_mut(0)[0] = 0xaa;
        assert_eq!(b.data(0)[0], 0xaa);
    }
}
