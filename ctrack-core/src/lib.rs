//! ctrack's sans-io core, a crate of its own so that the compiler enforces
//! the boundary: nothing here can name the worker, the I/O adapters or DPDK.
//!
//! - [`packet`]: zero-copy header views and [`flow::FlowRepr`], the validated
//!   summary of one packet that conntrack consumes.
//! - [`conntrack`]: the connection tracking core. It contains no I/O and reads
//!   no clock: time comes in as an argument ([`conntrack::Instant`]).
//! - [`helper`]: connection helpers (FTP, TFTP, PPTP): what a control
//!   connection announces, for the table's expectations.
//! - [`router`]: router mode's neighbour tables (ARP, IPv6 ND).
//! - `hugemem` and `prefetch`: the crate's two audited `unsafe` spots (huge
//!   page arrays for the table, a cache prefetch hint).
#![deny(unsafe_code)]

pub mod conntrack;
pub mod flow;
pub mod helper;
pub(crate) mod hugemem;
pub mod packet;
pub(crate) mod prefetch;
pub mod router;
