//! Traffic as files and as generated frames, outside the production
//! dataplane: [`pcap`] is a file format (classic pcap, read and written
//! sans-io over `std::io`, and the link-layer parsing of records),
//! [`capture`] reads any capture a user brings (pcap or pcapng, gzip or not,
//! through the `pcap-file` and `flate2` crates), [`synth`] a generator of
//! whole connections. The
//! users are `ctrack generate` and `ctrack replay`, the end-to-end tests, the
//! benchmarks and the fuzz seeds; the worker and its I/O never are.
#![deny(unsafe_code)]

pub mod capture;
pub mod pcap;
pub mod synth;
