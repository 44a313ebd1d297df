//! A thin safe layer over `dpdk-sys`: EAL, lcores, mempools, mbufs, ports and
//! queues, and `rte_hash` (for baselines).
//!
//! With `dpdk-sys`, this is the only crate that writes `unsafe`. Every unsafe
//! block names the invariant it relies on in a `// SAFETY:` line.
//!
//! Thread-safety follows DPDK's: an [`RxQueue`]/[`TxQueue`] handle is `Send`
//! but not `Sync`, so one thread polls one queue; mempools are multi-thread
//! safe; [`Mbuf`] owns its buffer and frees it on drop.

mod eal;
mod error;
mod hash;
mod mbuf;
mod mempool;
mod port;

pub use eal::{
    Eal, LcoreId, TscClock, lcore_id, main_lcore, rdtsc, register_thread, tsc_hz, worker_lcores,
};
pub use error::{DpdkError, Result};
pub use hash::RteHash;
pub use mbuf::{MAX_BURST, Mbuf, MbufBurst, RxCksum};
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortId, PortInfo, PortStats, QueueId, RxQueue, TxQueue};
