//! The worker uses the NIC's RSS hash for dispatch exactly when its I/O says
//! the link's hash is the symmetric Toeplitz (`PacketIo::nic_hash`), and
//! only for TCP and UDP. The NIC here is played by an in-memory link whose
//! every packet carries one fixed hash, so where connections end up shows
//! which hash dispatch used.

use std::sync::Arc;

use ctrack_traffic::synth::{Mix, Side};
use dataplane::conntrack::{Dir, Instant, Settings, Shard, TableConfig};
use dataplane::io::mem::{MemBurst, MemIo, MemLink};
use dataplane::io::{Burst, PacketIo};
use dataplane::rss::Reta;
use dataplane::worker::{Mesh, Worker};

/// [`MemBurst`] whose packets all carry `hash` as their RSS hash.
struct HashedBurst {
    inner: MemBurst,
    hash: u32,
}

impl Burst for HashedBurst {
    type Packet = Vec<u8>;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn is_full(&self) -> bool {
        self.inner.is_full()
    }
    fn data(&self, i: usize) -> &[u8] {
        self.inner.data(i)
    }
    fn data_mut(&mut self, i: usize) -> &mut [u8] {
        self.inner.data_mut(i)
    }
    fn rss_hash(&self, _i: usize) -> Option<u32> {
        Some(self.hash)
    }
    fn push(&mut self, p: Vec<u8>) -> Result<(), Vec<u8>> {
        self.inner.push(p)
    }
    fn drain_each(&mut self, f: impl FnMut(usize, Vec<u8>)) {
        self.inner.drain_each(f)
    }
    fn clear(&mut self) -> usize {
        self.inner.clear()
    }
}

/// [`MemIo`] as a NIC port whose RSS hash is `hash` for every packet, and
/// trusted (or not) for dispatch.
struct HashedIo {
    inner: MemIo,
    hash: u32,
    trusted: bool,
}

impl PacketIo for HashedIo {
    type Packet = Vec<u8>;
    type Burst = HashedBurst;
    fn new_burst(&self) -> HashedBurst {
        HashedBurst {
            inner: self.inner.new_burst(),
            hash: self.hash,
        }
    }
    fn links(&self) -> usize {
        self.inner.links()
    }
    fn egress(&self, link: usize) -> u16 {
        self.inner.egress(link)
    }
    fn rx(&mut self, link: usize, burst: &mut HashedBurst) -> usize {
        self.inner.rx(link, &mut burst.inner)
    }
    fn nic_hash(&self, _link: usize) -> bool {
        self.trusted
    }
    fn ports(&self) -> usize {
        self.inner.ports()
    }
    fn has_tx(&self, port: u16) -> bool {
        self.inner.has_tx(port)
    }
    fn tx(&mut self, port: u16, burst: &mut HashedBurst) -> usize {
        self.inner.tx(port, &mut burst.inner)
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn alloc(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        self.inner.alloc(data)
    }

    fn packet_data_mut<'a>(&self, p: &'a mut Vec<u8>) -> &'a mut [u8] {
        p
    }

    fn packet_data<'a>(&self, p: &'a Vec<u8>) -> &'a [u8] {
        p
    }
}

fn mix() -> Mix {
    Mix {
        tcp: 20,
        udp: 10,
        icmp: 6,
        exchanges: 3,
        payload: 64,
        keep_open: true,
        ..Mix::default()
    }
}

/// Two workers, one single-queue port each (as `ctrack run` plans
/// single-queue ports); returns each shard's connections by protocol.
fn run(trusted: bool, hash: u32) -> Vec<Vec<String>> {
    let packets = mix().packets();
    let side = |s: Side| -> Vec<Vec<u8>> {
        packets
            .iter()
            .filter(|p| p.side == s)
            .map(|p| p.frame.clone())
            .collect()
    };
    let (orig, reply) = (side(Side::Orig), side(Side::Reply));
    let mesh = Mesh::new(2, vec![1, 0]);
    let mut senders = Vec::new();
    let mut workers: Vec<Worker<HashedIo>> = (0..2u16)
        .map(|id| {
            let input = if id == 0 { orig.clone() } else { reply.clone() };
            let links = vec![MemLink {
                port: id,
                input: input.into(),
                ..MemLink::default()
            }];
            let io = HashedIo {
                inner: MemIo::new(links, 2, &[id ^ 1], 32),
                hash,
                trusted,
            };
            let (tx, rx) = crossbeam::channel::bounded(4);
            senders.push(tx);
            let shard = Shard::new(
                TableConfig::new(4096),
                Settings::default(),
                id,
                dataplane::worker::random_seed(),
            );
            Worker::new(id, io, shard, Arc::clone(&mesh), rx, Arc::default())
        })
        .collect();
    let mut idle = 0;
    while idle < 3 {
        let work: usize = workers.iter_mut().map(Worker::poll_once).sum();
        idle = if work == 0 { idle + 1 } else { 0 };
    }
    let out1 = workers[0].io().inner.output(1).len();
    let out0 = workers[1].io().inner.output(0).len();
    assert_eq!(
        (out1, out0),
        (orig.len(), reply.len()),
        "every packet forwarded"
    );
    drop(senders);
    workers
        .iter()
        .map(|w| {
            let mut protos = Vec::new();
            w.shard().for_each_snapshot(Instant::ZERO, |c| {
                let e = c.entry();
                assert!(e.packets(Dir::Orig) > 0 && e.packets(Dir::Reply) > 0);
                protos.push(ctrack_model::protocol_name(e.protocol()));
            });
            protos
        })
        .collect()
}

fn count(protos: &[String], p: &str) -> usize {
    protos.iter().filter(|x| x.as_str() == p).count()
}

#[test]
fn a_trusted_nic_hash_decides_the_owner_of_tcp_and_udp() {
    let m = mix();
    // A hash the (default-size, even) table gives to worker 1.
    let hash = (0..128u32)
        .find(|&h| Reta::even(Reta::DEFAULT_SIZE, 2).queue_for(h) == 1)
        .unwrap();
    let shards = run(true, hash);
    assert_eq!(count(&shards[0], "tcp") + count(&shards[0], "udp"), 0);
    assert_eq!(count(&shards[1], "tcp"), m.tcp as usize);
    assert_eq!(count(&shards[1], "udp"), m.udp as usize);
    // ICMP is hashed in software whatever the NIC says.
    let icmp = count(&shards[0], "icmp") + count(&shards[1], "icmp");
    assert_eq!(icmp, m.icmp as usize);

    // Untrusted, the same hash is ignored: software spreads TCP and UDP.
    let shards = run(false, hash);
    let tcp_udp = |s: &[String]| count(s, "tcp") + count(s, "udp");
    assert!(
        tcp_udp(&shards[0]) > 0 && tcp_udp(&shards[1]) > 0,
        "{shards:?}"
    );
    assert_eq!(
        tcp_udp(&shards[0]) + tcp_udp(&shards[1]),
        (m.tcp + m.udp) as usize
    );
}
