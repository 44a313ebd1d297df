//! Packet I/O behind the worker loop.
pub mod pcap;
