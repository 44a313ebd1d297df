//! ctrack's dataplane.
//!
//! - [`packet`]: zero-copy header views and [`flow::FlowRepr`], the validated
//!   summary of one packet that conntrack consumes.
//! - [`conntrack`]: the sans-io connection tracking core. It contains no I/O and
//!   reads no clock: time comes in as an argument ([`conntrack::Instant`]).
//! - `hugemem` and `prefetch`: the crate's two audited `unsafe` spots (huge
//!   page arrays for the table, a cache prefetch hint).
//! - [`worker`]: the poll-mode loop, generic over [`io::PacketIo`]; DPDK queues
//!   are one implementation (feature `dpdk`), in-memory ones serve tests.
#![deny(unsafe_code)]

pub mod conntrack;
pub mod flow;
pub(crate) mod hugemem;
pub mod io;
pub mod packet;
pub(crate) mod prefetch;
pub mod rss;
pub mod stats;
pub mod synth;
pub mod worker;
