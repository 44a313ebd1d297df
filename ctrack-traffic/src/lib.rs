//! Traffic as files and as generated frames, outside the production
//! dataplane: [`pcap`] is a file format (classic pcap, read and written
//! sans-io over `std::io`), [`synth`] a generator of whole connections. The
//! users are `ctrack generate` and `ctrack replay`, the end-to-end tests, the
//! benchmarks and the fuzz seeds; the worker and its I/O never are.
#![deny(unsafe_code)]

pub mod pcap;
pub mod synth;
