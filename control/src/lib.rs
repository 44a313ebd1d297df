//! ctrack's control plane: configuration, the run composition, and on top
//! settings, stats aggregation, Prometheus metrics and the management API.
//! `main.rs` is only the command-line front end.
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bridge_replay;
pub mod client;
pub mod config;
pub mod events;
pub mod firewall;
pub mod flow_client;
pub mod flow_export;
pub mod flow_ops;
pub mod flow_rest;
pub mod fw_client;
pub mod fw_manage;
pub mod fw_rest;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod ops;
pub mod out;
pub mod plan;
pub mod replay;
pub mod rest;
pub mod route_client;
pub mod route_ops;
pub mod route_rest;
pub mod router;
#[cfg(feature = "dpdk")]
pub mod run;
pub mod workers;
