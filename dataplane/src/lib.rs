//! ctrack's dataplane: the poll-mode worker and its I/O adapters, around the
//! sans-io core of the `ctrack-core` crate (re-exported here as [`conntrack`],
//! [`flow`] and [`packet`], so callers keep one path).
//!
//! - [`worker`]: the poll-mode loop, generic over [`io::PacketIo`]; DPDK queues
//!   are one implementation (feature `dpdk`), in-memory ones serve tests.
//! - [`rss`]: the symmetric Toeplitz hash and software dispatch to the owner.
//! - [`stats`]: per-worker counters.
//! - [`respond`]: answers the firewall generates (reject, tarpit), rate-limited
//!   and allocated from the I/O.
//! - [`router`]: router mode's per-worker plane (ARP/ND, routes, TTL, ICMP).
//! - [`frag`]: IP reassembly before tracking and fragmenting again on the
//!   way out.
//! - [`nat`]: NAT rules' bindings and the rewrite of NAT connections' packets;
//!   [`nat_owners`]: which worker holds a NAT connection created away from
//!   its original tuple's worker (port forwards on several workers).
//! - [`events`]: the rings that carry connection events to the control side.
//! - [`helpers`]: connection helpers' ports and the expectation rings
//!   between workers.
#![deny(unsafe_code)]

pub use ctrack_core::{conntrack, flow, helper, packet};
/// A ruleset's chain as an rte_acl context (benchmarks; see the module).
#[cfg(feature = "dpdk")]
pub mod acl;
pub mod events;
pub mod firewall;
pub mod frag;
pub mod ftp_nat;
pub mod helpers;
pub mod io;
pub mod layer7;
pub mod nat;
pub mod nat_owners;
pub mod policy;
pub mod pptp_nat;
pub mod respond;
pub mod router;
pub mod rss;
pub mod stats;
pub mod worker;
