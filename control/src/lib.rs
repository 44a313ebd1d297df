//! ctrack's control plane: configuration, the run composition, and on top
//! settings, stats aggregation, Prometheus metrics and the management API.
//! `main.rs` is only the command-line front end.
#![deny(unsafe_code)]

pub mod api;
pub mod bridge_replay;
pub mod client;
pub mod config;
pub mod firewall;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod replay;
#[cfg(feature = "dpdk")]
pub mod run;
pub mod workers;
