//! Connection helpers through NAT in the worker (Linux's `nf_nat_ftp`,
//! `nf_nat_tftp`): the packet side of what the table decides in
//! [`crate::conntrack::helping`].
//!
//! - An FTP announcement (`PORT`, `EPRT`, `227`, `229`) on a translated
//!   control connection: the table builds the expectation from the
//!   translated tuple, picks its port, and answers
//!   [`HelpVerdict::Mangle`](crate::conntrack::helping::HelpVerdict) with
//!   the text that replaces the announced address and port; [`mangle`]
//!   writes it. When the length changes the frame is rebuilt into a new
//!   buffer from the port's pool (rare: one per announcement).
//! - Every later segment of such a connection: [`seq_adjust`] shifts its
//!   sequence number, acknowledgement number and SACK edges by the
//!   connection's recorded changes ([`crate::conntrack::seqadj`]).
//! - The expected data connection (FTP or TFTP): its first packet gets the
//!   NAT bindings of [`follow_master`] instead of the NAT rules', so it
//!   reaches the announcer's real address and port.
//!
//! The address rewrite of `crate::nat` runs after these.

use crate::conntrack::Shard;
use crate::conntrack::Verdict;
use crate::conntrack::expect::ExpectNat;
use crate::conntrack::helping::FtpMangle;
use crate::conntrack::nat::{Binding, Manip};
use crate::io::PacketIo;
use crate::nat::Pending;

/// Largest frame a helper's text change is written for (a longer one is
/// dropped and counted as `rewrite_failed`): an FTP control segment of a
/// 1500-byte MTU, with VLAN tags and the longest text growth.
pub const MANGLE_FRAME_MAX: usize = 2048;

/// The NAT bindings of a connection expected by a translated master
/// (Linux's `nf_nat_follow_master`): the source to `x.src` (its port kept
/// when free, else another this worker owns), the destination to
/// `x.dst`:`x.dport`.
pub fn follow_master(x: &ExpectNat) -> Pending {
    Pending {
        dst: Some(Binding {
            manip: Manip::Dst,
            addrs: Some((x.dst, x.dst)),
            ports: Some((x.dport, x.dport)),
            persistent: false,
        }),
        src: Some(Binding {
            manip: Manip::Src,
            addrs: Some((x.src, x.src)),
            ports: None,
            persistent: false,
        }),
        drop: None,
    }
}

/// Writes `m` into packet `pkt`'s TCP payload: in place when the length
/// stays, else into a new packet (the old one freed). `None`: the frame is
/// not a whole TCP segment, too long, or no buffer was free; the caller
/// drops and counts it.
pub fn mangle<I: PacketIo>(io: &mut I, mut pkt: I::Packet, m: &FtpMangle) -> Option<I::Packet> {
    let mut buf = [0u8; MANGLE_FRAME_MAX];
    let frame = io.packet_data(&pkt);
    let n = ctrack_core::packet::mangle::replace_payload(frame, m.off, m.len, m.text(), &mut buf)
        .ok()?;
    if m.text().len() == m.len {
        io.packet_data_mut(&mut pkt)[..n].copy_from_slice(&buf[..n]);
        return Some(pkt);
    }
    io.alloc(&buf[..n])
}

/// Applies the sequence adjustment of the connection of verdict `v` to its
/// segment in `frame` (nothing for a connection without one).
#[inline]
pub fn seq_adjust(
    shard: &Shard,
    v: Verdict,
    frame: &mut [u8],
) -> Result<(), ctrack_core::packet::nat::RewriteError> {
    match v {
        Verdict::Tracked { id, dir, .. } => shard.seq_adjust(id, dir, frame),
        _ => Ok(()),
    }
}

/// FTP and TFTP through `masquerade` in one and two MemIo workers: the
/// rewritten text, the shifted numbers both ways, the data connection
/// translated to the inside host.
#[cfg(test)]
mod tests {

    use crate::conntrack::{Instant, TableConfig};

    use crate::flow::tcp_flags::{ACK, PSH, SYN};

    use crate::io::mem::MemIo;

    use crate::packet::checksum::{RxChecksum, fill_ip, verify_ethernet};
    use crate::packet::parse_ethernet;
    use crate::worker::Worker;
    use ctrack_core::helper::HelperKind;

    use ctrack_traffic::synth::{ipv4_frame, udp_frame};

    const PUB: [u8; 4] = [198, 51, 100, 1];
    const C: [u8; 4] = [10, 0, 0, 2];
    /// An inside client whose address text is longer than the public one's.
    const C_LONG: [u8; 4] = [10, 100, 200, 222];
    const S: [u8; 4] = [203, 0, 113, 9];
    const MASQ: &str = "/ip address\n\
        add address=10.0.0.1/8 interface=ether1\n\
        add address=198.51.100.1/24 interface=ether2\n\
        /ip firewall nat\n\
        add chain=srcnat action=masquerade out-interface=ether2\n";

    struct Net {
        w: Vec<Worker<MemIo>>,
    }

    impl Net {
        fn new(workers: u16) -> Net {
            Net::with(MASQ, workers)
        }

        fn with(script: &str, workers: u16) -> Net {
            Net {
                w: crate::nat::scripted_workers(script, workers, TableConfig::new(4096), true),
            }
        }

        /// Sends `frame` in on `port`; returns the one frame that left (on
        /// the other port), checked against a full checksum recomputation.
        fn send(&mut self, port: u16, frame: Vec<u8>) -> Option<Vec<u8>> {
            let n = self.w.len();
            let w = if n == 1 { 0 } else { usize::from(port) };
            let link = if n == 1 { usize::from(port) } else { 0 };
            self.w[w].io_mut().links[link].input.push_back(frame);
            let mut idle = 0;
            while idle < 3 {
                let work: usize = self.w.iter_mut().map(Worker::poll_once).sum();
                idle = if work == 0 { idle + 1 } else { 0 };
            }
            let mut out = Vec::new();
            for w in &mut self.w {
                for p in 0..2 {
                    if let Some(Some(tx)) = w.io_mut().tx.get_mut(p) {
                        assert!(p != usize::from(port) || tx.output.is_empty(), "sent back");
                        out.append(&mut tx.output);
                    }
                }
            }
            assert!(out.len() <= 1, "{} frames out", out.len());
            let f = out.pop()?;
            verify_ethernet(&f, RxChecksum::UNKNOWN).unwrap();
            let mut g = f.clone();
            fill_ip(&mut g[14..]);
            assert_eq!(
                f, g,
                "incremental checksums differ from a full recomputation"
            );
            Some(f)
        }

        fn rewrite_failed(&self) -> u64 {
            self.w.iter().map(|w| w.totals().nat_rewrite_failed).sum()
        }
    }

    /// A TCP segment with options `opts` (a multiple of 4 bytes) and
    /// `payload`, checksums filled.
    #[allow(clippy::too_many_arguments)]
    fn seg(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        opts: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut t = vec![0u8; hl];
        t[0..2].copy_from_slice(&src.1.to_be_bytes());
        t[2..4].copy_from_slice(&dst.1.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = ((hl / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[20..].copy_from_slice(opts);
        t.extend_from_slice(payload);
        let mut f = ipv4_frame(src.0, dst.0, 6, &t, Some(16), true);
        fill_ip(&mut f[14..]);
        f
    }

    /// (seq, ack, payload, SACK edges) of a TCP frame.
    fn read(f: &[u8]) -> (u32, u32, Vec<u8>, Vec<u32>) {
        let s = ctrack_core::packet::mangle::tcp_segment(f).unwrap();
        let at = |o: usize| u32::from_be_bytes(f[o..o + 4].try_into().unwrap());
        let mut sack = Vec::new();
        let mut i = s.l4 + 20;
        while i < s.payload() {
            match f[i] {
                0 => break,
                1 => i += 1,
                k => {
                    let n = usize::from(f[i + 1]);
                    if k == 5 {
                        sack.extend((0..(n - 2) / 4).map(|b| at(i + 2 + 4 * b)));
                    }
                    i += n;
                }
            }
        }
        (
            at(s.l4 + 4),
            at(s.l4 + 8),
            f[s.payload()..s.end].to_vec(),
            sack,
        )
    }

    fn sack(edges: &[u32]) -> Vec<u8> {
        let mut o = vec![1, 1, 5, (2 + 4 * edges.len()) as u8];
        for e in edges {
            o.extend_from_slice(&e.to_be_bytes());
        }
        o
    }

    /// A control connection `client`:`cport` -> S:21 through the NAT,
    /// handshake and greeting done; returns the public port and the
    /// next sequence numbers (client, server).
    fn control(n: &mut Net, client: [u8; 4], cport: u16) -> (u16, u32, u32) {
        let out = n
            .send(0, seg((client, cport), (S, 21), 100, 0, SYN, &[], b""))
            .expect("SYN out");
        let t = parse_ethernet(&out).unwrap().tuple;
        assert_eq!(t.src.0[12..], PUB);
        let pp = t.src_port;
        n.send(1, seg((S, 21), (PUB, pp), 5000, 101, SYN | ACK, &[], b""))
            .expect("SYN-ACK in");
        n.send(0, seg((client, cport), (S, 21), 101, 5001, ACK, &[], b""))
            .unwrap();
        let greet = b"220 ready\r\n";
        n.send(1, seg((S, 21), (PUB, pp), 5001, 101, ACK | PSH, &[], greet))
            .unwrap();
        let user = b"USER ftp\r\n";
        let o = n
            .send(
                0,
                seg((client, cport), (S, 21), 101, 5012, ACK | PSH, &[], user),
            )
            .unwrap();
        assert_eq!(read(&o).2, user, "the first line is not looked at");
        (pp, 111, 5012)
    }

    fn port_text(a: [u8; 4], port: u16) -> String {
        format!(
            "PORT {},{},{},{},{},{}\r\n",
            a[0],
            a[1],
            a[2],
            a[3],
            port >> 8,
            port & 0xff
        )
    }

    fn active_ftp(workers: u16) {
        let mut n = Net::new(workers);
        let (pp, cseq, sseq) = control(&mut n, C, 40000);
        // PORT with the inside address: 4 bytes longer once rewritten.
        let cmd = port_text(C, 40001);
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    cseq,
                    sseq,
                    ACK | PSH,
                    &[],
                    cmd.as_bytes(),
                ),
            )
            .expect("PORT passes");
        let (seq, _, payload, _) = read(&o);
        assert_eq!(seq, cseq, "the changed segment's own start does not move");
        assert_eq!(payload, port_text(PUB, 40001).as_bytes());
        let grown = (payload.len() - cmd.len()) as u32;
        assert_eq!(grown, 4);
        let cseq2 = cseq + cmd.len() as u32;
        // The server acknowledges what it received (4 more bytes), with a
        // SACK block in its numbers too: both come back by 4.
        let o = n
            .send(
                1,
                seg(
                    (S, 21),
                    (PUB, pp),
                    sseq,
                    cseq2 + grown,
                    ACK,
                    &sack(&[cseq2 + grown + 10, cseq2 + grown + 20]),
                    b"",
                ),
            )
            .expect("the server's ACK passes (the tracker sees consistent numbers)");
        let (_, ack, _, edges) = read(&o);
        assert_eq!(ack, cseq2);
        assert_eq!(edges, vec![cseq2 + 10, cseq2 + 20]);
        // The changed segment retransmitted (still at a remembered line
        // start): rewritten the same, its start unmoved, nothing recorded
        // twice (the next segment below moves by 4, not 8).
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    cseq,
                    sseq,
                    ACK | PSH,
                    &[],
                    cmd.as_bytes(),
                ),
            )
            .unwrap();
        assert_eq!(
            (read(&o).0, read(&o).2),
            (cseq, port_text(PUB, 40001).into_bytes())
        );
        // The data connection from the server's port 20 to the announced
        // public port reaches the client's own, as related/expected ftp.
        let o = n
            .send(1, seg((S, 20), (PUB, 40001), 9000, 0, SYN, &[], b""))
            .expect("the data connection passes");
        let t = parse_ethernet(&o).unwrap().tuple;
        assert_eq!((t.dst.0[12..].to_vec(), t.dst_port), (C.to_vec(), 40001));
        assert_eq!(t.src.0[12..], S);
        let mut found = false;
        for w in &n.w {
            w.shard().for_each_snapshot(Instant::ZERO, |r| {
                let e = r.entry();
                if e.key().dport == 40001 {
                    found = true;
                    assert!(e.expected());
                    assert_eq!(e.helper(), Some(HelperKind::Ftp));
                    assert!(e.dstnat());
                }
            });
        }
        assert!(found, "the data connection is tracked");
        // The client's next segment moves by 4; a retransmission of the
        // line before the change does not.
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    cseq2,
                    sseq,
                    ACK | PSH,
                    &[],
                    b"LIST\r\n",
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, cseq2 + 4);
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    101,
                    sseq,
                    ACK | PSH,
                    &[],
                    b"USER ftp\r\n",
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, 101);
        // A second PORT later: two changes in a row, 8 bytes in all.
        let cseq3 = cseq2 + 6;
        let cmd2 = port_text(C, 40002);
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    cseq3,
                    sseq,
                    ACK | PSH,
                    &[],
                    cmd2.as_bytes(),
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, cseq3 + 4);
        let cseq4 = cseq3 + cmd2.len() as u32;
        let o = n
            .send(
                0,
                seg(
                    (C, 40000),
                    (S, 21),
                    cseq4,
                    sseq,
                    ACK | PSH,
                    &[],
                    b"LIST\r\n",
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, cseq4 + 8);
        let o = n
            .send(
                1,
                seg((S, 21), (PUB, pp), sseq, cseq4 + 8 + 6, ACK, &[], b""),
            )
            .unwrap();
        assert_eq!(read(&o).1, cseq4 + 6);
        // The server's own numbers are not touched (nothing changed its way).
        let o = n
            .send(
                1,
                seg(
                    (S, 21),
                    (PUB, pp),
                    sseq,
                    cseq4 + 14,
                    ACK | PSH,
                    &[],
                    b"200 ok\r\n",
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, sseq);
        assert_eq!(n.rewrite_failed(), 0);
    }

    #[test]
    fn active_ftp_through_masquerade_one_worker() {
        active_ftp(1);
    }

    #[test]
    fn active_ftp_through_masquerade_two_workers() {
        active_ftp(2);
    }

    #[test]
    fn port_text_shorter_than_the_inside_one() {
        let mut n = Net::new(1);
        let (pp, cseq, sseq) = control(&mut n, C_LONG, 40000);
        let cmd = port_text(C_LONG, 40001);
        let o = n
            .send(
                0,
                seg(
                    (C_LONG, 40000),
                    (S, 21),
                    cseq,
                    sseq,
                    ACK | PSH,
                    &[],
                    cmd.as_bytes(),
                ),
            )
            .unwrap();
        assert_eq!(read(&o).2, port_text(PUB, 40001).as_bytes());
        let next = cseq + cmd.len() as u32;
        let o = n
            .send(
                0,
                seg(
                    (C_LONG, 40000),
                    (S, 21),
                    next,
                    sseq,
                    ACK | PSH,
                    &[],
                    b"LIST\r\n",
                ),
            )
            .unwrap();
        assert_eq!(read(&o).0, next - 2);
        let o = n
            .send(
                1,
                seg((S, 21), (PUB, pp), sseq, next - 2 + 6, ACK, &[], b""),
            )
            .unwrap();
        assert_eq!(read(&o).1, next + 6);
    }

    #[test]
    fn passive_ftp_data_connection_is_masqueraded() {
        let mut n = Net::new(1);
        let (pp, cseq, sseq) = control(&mut n, C, 40000);
        let o = n
            .send(
                0,
                seg((C, 40000), (S, 21), cseq, sseq, ACK | PSH, &[], b"PASV\r\n"),
            )
            .unwrap();
        assert_eq!(read(&o).2, b"PASV\r\n");
        let pasv = b"227 Entering Passive Mode (203,0,113,9,19,137).\r\n";
        let o = n
            .send(
                1,
                seg((S, 21), (PUB, pp), sseq, cseq + 6, ACK | PSH, &[], pasv),
            )
            .unwrap();
        // The server's address is not translated: the same text.
        assert_eq!(read(&o).2, pasv);
        let o = n
            .send(0, seg((C, 40005), (S, 19 * 256 + 137), 1, 0, SYN, &[], b""))
            .expect("the data connection passes");
        let t = parse_ethernet(&o).unwrap().tuple;
        assert_eq!(t.src.0[12..], PUB);
        assert_eq!(t.dst_port, 19 * 256 + 137);
        let answer = n
            .send(
                1,
                seg(
                    (S, 19 * 256 + 137),
                    (PUB, t.src_port),
                    7,
                    2,
                    SYN | ACK,
                    &[],
                    b"",
                ),
            )
            .expect("the answer comes back");
        let r = parse_ethernet(&answer).unwrap().tuple;
        assert_eq!((r.dst.0[12..].to_vec(), r.dst_port), (C.to_vec(), 40005));
    }

    /// A server behind `dst-nat` (Linux's `nf_nat_ftp` for a port
    /// forward): its `227` names its inside address, rewritten to the
    /// public one (4 bytes longer); its later segments move, the client's
    /// acknowledgements come back; the data connection reaches the server.
    #[test]
    fn pasv_of_a_server_behind_dst_nat() {
        const OUT: [u8; 4] = [203, 0, 113, 50];
        const INSIDE: [u8; 4] = [10, 0, 0, 2];
        let script = "/ip firewall nat\n\
            add chain=dstnat action=dst-nat in-interface=ether2 protocol=tcp dst-port=21 \
            to-addresses=10.0.0.2\n";
        for workers in [1, 2] {
            let mut n = Net::with(script, workers);
            let o = n
                .send(1, seg((OUT, 40000), (PUB, 21), 100, 0, SYN, &[], b""))
                .expect("SYN forwarded");
            assert_eq!(parse_ethernet(&o).unwrap().tuple.dst.0[12..], INSIDE);
            n.send(
                0,
                seg((INSIDE, 21), (OUT, 40000), 5000, 101, SYN | ACK, &[], b""),
            )
            .expect("SYN-ACK back");
            n.send(1, seg((OUT, 40000), (PUB, 21), 101, 5001, ACK, &[], b""))
                .unwrap();
            let greet = b"220 ready\r\n";
            n.send(
                0,
                seg((INSIDE, 21), (OUT, 40000), 5001, 101, ACK | PSH, &[], greet),
            )
            .unwrap();
            let pasv = b"227 Entering Passive Mode (10,0,0,2,19,137).\r\n";
            let sseq = 5012;
            let o = n
                .send(
                    0,
                    seg((INSIDE, 21), (OUT, 40000), sseq, 101, ACK | PSH, &[], pasv),
                )
                .unwrap();
            let (seq, _, payload, _) = read(&o);
            assert_eq!(seq, sseq);
            assert_eq!(
                payload,
                b"227 Entering Passive Mode (198,51,100,1,19,137).\r\n"
            );
            let next = sseq + pasv.len() as u32;
            let o = n
                .send(
                    1,
                    seg((OUT, 40000), (PUB, 21), 101, next + 4, ACK, &[], b""),
                )
                .expect("the client's ACK passes");
            assert_eq!(read(&o).1, next);
            let o = n
                .send(
                    0,
                    seg(
                        (INSIDE, 21),
                        (OUT, 40000),
                        next,
                        101,
                        ACK | PSH,
                        &[],
                        b"150 go\r\n",
                    ),
                )
                .unwrap();
            assert_eq!(read(&o).0, next + 4);
            let o = n
                .send(
                    1,
                    seg((OUT, 40001), (PUB, 19 * 256 + 137), 1, 0, SYN, &[], b""),
                )
                .expect("the data connection reaches the server");
            let t = parse_ethernet(&o).unwrap().tuple;
            assert_eq!(
                (t.dst.0[12..].to_vec(), t.dst_port),
                (INSIDE.to_vec(), 19 * 256 + 137)
            );
            assert_eq!(n.rewrite_failed(), 0);
        }
    }

    #[test]
    fn tftp_answer_from_another_port_reaches_the_client() {
        for workers in [1, 2] {
            let mut n = Net::new(workers);
            let mut rrq = udp_frame(C, S, 3000, 69, 12, true);
            let l = rrq.len();
            rrq[l - 12..].copy_from_slice(b"\x00\x01f\x00octet\x00\x00\x00");
            fill_ip(&mut rrq[14..]);
            let o = n.send(0, rrq).expect("RRQ out");
            let t = parse_ethernet(&o).unwrap().tuple;
            assert_eq!(t.src.0[12..], PUB);
            let o = n
                .send(1, udp_frame(S, PUB, 41234, t.src_port, 516, false))
                .expect("the answer from the server's new port comes in");
            let r = parse_ethernet(&o).unwrap().tuple;
            assert_eq!(
                (r.dst.0[12..].to_vec(), r.dst_port, r.src_port),
                (C.to_vec(), 3000, 41234)
            );
        }
    }
}
