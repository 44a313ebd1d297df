//! Raw bindings to the system DPDK (22.11), generated at build time by bindgen
//! over the headers found through pkg-config, plus `ctrack_*` wrappers (from
//! `shim/shim.c`) for DPDK's static inline functions and thread-local variables.
//!
//! Nothing here is hand-written: use the safe `dpdk` crate instead.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(dead_code, improper_ctypes, clippy::all, unsafe_op_in_unsafe_fn)]
#![allow(clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
