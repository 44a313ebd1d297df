//! Shards on cores (issue 15: "two shards on two cores >= 1.9x one"): one
//! thread per shard, each pinned to its own CPU, each driving its own
//! `Shard` with its own packets through `Shard::handle_burst` (bursts of
//! 32, in-memory `FlowRepr`, no parsing, no I/O), as the workers of `ctrack
//! run` do: shards share nothing, so the only coupling between the threads
//! is the machine's (shared last-level cache, memory bandwidth, the
//! hypervisor's scheduling of the vCPUs).
//!
//! Weak scaling: with T threads there are T shards of `CONNS` connections
//! each, so each thread does the same work as the single thread does alone.
//! The single thread and the T threads run in alternation, round after round
//! (load from other processes hits both alike), and the figure is the median
//! of the per-round ratios of packets per second (all threads together, over
//! the slowest thread's time) to one thread's.
//!
//!   cargo run --release -p dataplane --no-default-features --example shards -- [MODE] [CONNS] [THREADS]
//!
//! - `MODE` `est` (default): established UDP streams (one datagram each way
//!   at set-up), packets of both directions in random order over the set.
//!   `ovs`: the shape of OVS's `ovstest test-conntrack benchmark N_THREADS
//!   ...`: one one-way UDP flow per thread, sent over and over (in cache).
//! - `CONNS` per shard (default 1000000; `est` only); `THREADS` (default
//!   2, at most the CPUs this process may run on).
//!
//! `ROUNDS` (default 7) and `ROUND_MS` (default 300) set the alternation.
//! Prints one line per thread count, `shards: mode=... conns=... threads=T
//! mpps=... ratio=...`, which `scripts/bench-conntrack.sh` and
//! `scripts/plot-benchmarks.sh` read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant as Wall;

use dataplane::conntrack::{Instant, Settings, Shard, TableConfig, UntrackedReason, Verdict};
use dataplane::flow::{Addr, Family, FlowRepr, L4, Tuple, proto};

const BURST: usize = 32;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> FlowRepr {
    FlowRepr {
        tuple: Tuple {
            src: Addr::from_v4(src),
            dst: Addr::from_v4(dst),
            src_port: sp,
            dst_port: dp,
            proto: proto::UDP,
            family: Family::V4,
        },
        ip_len: 128,
        l4: L4::Udp,
    }
}

/// Connection `c` of an established set: client `10.x.y.z`, server
/// 192.168.1.1:443.
fn conn(c: u32) -> FlowRepr {
    udp(
        [10, (c >> 16) as u8, (c >> 8) as u8, c as u8],
        1024 + (c % 60_000) as u16,
        [192, 168, 1, 1],
        443,
    )
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One thread's shard and packet sequence, set up inside the thread that
/// drives it (its memory is then first touched by that thread's CPU).
struct Load {
    shard: Shard,
    seq: Vec<FlowRepr>,
    pos: usize,
    now: u64,
    out: [Verdict; BURST],
}

impl Load {
    fn new(mode: &str, conns: u32, thread: usize) -> Load {
        let max = if mode == "ovs" { 1024 } else { conns };
        let mut shard = Shard::new(
            TableConfig::new(max),
            Settings::default(),
            thread as u16,
            dataplane::worker::random_seed(),
        );
        let mut out = [Verdict::Untracked(UntrackedReason::TrackingDisabled); BURST];
        let mut now = 1_000_000_000u64;
        let seq: Vec<FlowRepr> = if mode == "ovs" {
            // OVS's benchmark: thread `tid` sends UDP 1+tid -> 2 between the
            // same two hosts, one flow per thread.
            vec![udp([10, 1, 1, 1], 1 + thread as u16, [10, 1, 1, 2], 2); 1 << 16]
        } else {
            // Set-up: one datagram each way per connection (a stream).
            for start in (0..conns).step_by(BURST) {
                let end = (start + BURST as u32).min(conns);
                for dir in 0..2 {
                    let burst: Vec<FlowRepr> = (start..end)
                        .map(|c| {
                            let p = conn(c);
                            if dir == 0 {
                                p
                            } else {
                                FlowRepr {
                                    tuple: p.tuple.reversed(),
                                    ..p
                                }
                            }
                        })
                        .collect();
                    shard.handle_burst(Instant(now), &burst, &mut out[..burst.len()]);
                    now += 1_000;
                }
            }
            assert_eq!(shard.total_entries(), conns, "set-up");
            let len = (2 * conns as usize).clamp(1 << 16, 8 << 20) / BURST * BURST;
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (thread as u64 + 1);
            (0..len)
                .map(|_| {
                    let r = xorshift(&mut x);
                    let p = conn((r % u64::from(conns)) as u32);
                    if r >> 63 == 0 {
                        p
                    } else {
                        FlowRepr {
                            tuple: p.tuple.reversed(),
                            ..p
                        }
                    }
                })
                .collect()
        };
        Load {
            shard,
            seq,
            pos: 0,
            now,
            out,
        }
    }

    #[inline]
    fn step(&mut self) {
        let burst = &self.seq[self.pos..self.pos + BURST];
        self.shard
            .handle_burst(Instant(self.now), burst, &mut self.out);
        std::hint::black_box(&self.out);
        self.now += 10 * BURST as u64;
        self.pos += BURST;
        if self.pos + BURST > self.seq.len() {
            self.pos = 0;
        }
    }

    /// Every packet of a burst finds its connection (none created).
    fn check(&mut self) {
        self.step();
        for v in &self.out {
            assert!(
                matches!(v, Verdict::Tracked { created: false, .. }),
                "{v:?}"
            );
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_else(|| "est".into());
    assert!(
        mode == "est" || mode == "ovs",
        "mode {mode:?}: expected est or ovs"
    );
    let conns: u32 = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads: usize = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .clamp(1, cores.len().max(1));
    let rounds: usize = env_or("ROUNDS", 7);
    let round_ms: f64 = env_or("ROUND_MS", 300.0);

    // Workers: each builds its shard, then per round waits at `start`, runs
    // `bursts` bursts if its index is below `active`, and waits at `done`.
    let start = Arc::new(Barrier::new(threads + 1));
    let done = Arc::new(Barrier::new(threads + 1));
    let active = Arc::new(AtomicUsize::new(0));
    let bursts = Arc::new(AtomicU64::new(0));
    let quit = Arc::new(AtomicUsize::new(0));
    let elapsed: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let t0 = Wall::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (start, done, active, bursts, quit, elapsed) = (
                start.clone(),
                done.clone(),
                active.clone(),
                bursts.clone(),
                quit.clone(),
                elapsed.clone(),
            );
            let mode = mode.clone();
            let core = cores.get(t).copied();
            std::thread::spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let mut load = Load::new(&mode, conns, t);
                if mode == "ovs" {
                    // The first burst creates the flow's connection.
                    load.step();
                }
                load.check();
                loop {
                    start.wait();
                    if quit.load(Ordering::Acquire) != 0 {
                        return;
                    }
                    if t < active.load(Ordering::Acquire) {
                        let n = bursts.load(Ordering::Acquire);
                        let w = Wall::now();
                        for _ in 0..n {
                            load.step();
                        }
                        elapsed[t].store(w.elapsed().as_nanos() as u64, Ordering::Release);
                    }
                    done.wait();
                }
            })
        })
        .collect();
    // One run of `k` threads of `n` bursts each: packets per second of all
    // of them over the slowest one's time.
    let run = |k: usize, n: u64| -> f64 {
        active.store(k, Ordering::Release);
        bursts.store(n, Ordering::Release);
        start.wait();
        done.wait();
        let slowest = (0..k)
            .map(|t| elapsed[t].load(Ordering::Acquire))
            .max()
            .unwrap_or(1)
            .max(1);
        (k as u64 * n * BURST as u64) as f64 / (slowest as f64 * 1e-9)
    };
    let setup_s = t0.elapsed().as_secs_f64();
    // Calibrate: bursts per round for one thread.
    let pps = run(1, 20_000);
    let n = ((round_ms * 1e-3 * pps / BURST as f64) as u64).max(1000);
    let mut one = Vec::new();
    let mut many: Vec<Vec<f64>> = vec![Vec::new(); threads + 1];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); threads + 1];
    for _ in 0..rounds {
        let r1 = run(1, n);
        one.push(r1);
        for k in 2..=threads {
            let rk = run(k, n);
            many[k].push(rk);
            ratios[k].push(rk / r1);
        }
    }
    quit.store(1, Ordering::Release);
    start.wait();
    for w in workers {
        w.join().expect("worker thread");
    }
    let conns_label = if mode == "ovs" { 1 } else { conns };
    println!(
        "# {rounds} rounds of ~{round_ms} ms, {threads} thread(s) pinned to CPUs {:?}, set-up {setup_s:.1} s",
        cores.iter().take(threads).map(|c| c.id).collect::<Vec<_>>()
    );
    println!(
        "shards: mode={mode} conns={conns_label} threads=1 mpps={:.2} ratio=1.00",
        median(one) / 1e6
    );
    for k in 2..=threads {
        println!(
            "shards: mode={mode} conns={conns_label} threads={k} mpps={:.2} ratio={:.2}",
            median(many[k].clone()) / 1e6,
            median(ratios[k].clone())
        );
    }
}
