//! A thin safe layer over `dpdk-sys`: EAL, lcores, mempools, mbufs, ports and
//! queues, `rte_hash` (for baselines), `rte_acl` (the packet classifier), `rte_lpm`/`rte_lpm6`
//! (longest-prefix match) and `rte_ip_frag` (reassembly).
//!
//! With `dpdk-sys`, this is the only crate that writes `unsafe` besides two
//! audited spots in `ctrack-core` (`hugemem.rs`, `prefetch.rs`). Every unsafe
//! block names the invariant it relies on in a `// SAFETY:` line.
//!
//! Safe code cannot reach a use-after-free or a queue polled twice:
//! - each queue has one handle at a time ([`Port::take_rx_queue`]), `Send`
//!   but not `Sync` nor `Clone`, so one thread polls one queue;
//! - a queue keeps its port open; a port keeps its mempool;
//! - [`Mbuf`] owns its buffer and frees it on drop, into its pool, which is
//!   therefore never freed while the EAL runs: dropping a [`Mempool`] retires
//!   it, and [`Eal::cleanup`] frees it;
//! - [`Eal::cleanup`] consumes the `Eal` and refuses while any port, queue,
//!   pool handle, hash table, registered thread or mbuf is alive; objects
//!   cannot be created before init or after cleanup.

mod acl;
mod eal;
mod error;
mod frag;
mod hash;
mod lpm;
mod mbuf;
mod mempool;
mod port;

pub use acl::{Acl, AclFamily, AclRule};
pub use eal::{
    Eal, LcoreId, ThreadRegistration, TscClock, lcore_id, main_lcore, rdtsc, register_thread,
    tsc_hz, worker_lcores,
};
pub use error::{DpdkError, Result};
pub use frag::{FragCounts, FragTable, Reassembly};
pub use hash::RteHash;
pub use lpm::{Lpm, Lpm6, MAX_NEXT_HOP, MAX_NEXT_HOP6};
pub use mbuf::{MAX_BURST, Mbuf, MbufBurst, RxCksum};
pub use mempool::Mempool;
pub use port::{
    Port, PortConfig, PortId, PortInfo, PortStats, QueueId, RssProblem, RssStatus, RxQueue, TxQueue,
};
