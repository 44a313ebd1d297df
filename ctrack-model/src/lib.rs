//! ctrack's RouterOS view of the connection tracker: what the operator reads
//! and types, kept out of the sans-io core.
//!
//! - [`connection`]: `/ip firewall connection` rows ([`ConnSnapshot`], made
//!   from the core's typed [`ctrack_core::conntrack::RawConn`]), their JSON
//!   form (`Serialize` and `Deserialize`, so the API and the CLI client share
//!   one type), the `where PROP=VALUE` matcher and the `print` table.
//! - [`settings`]: `/ip firewall connection tracking` as `KEY=VALUE` text:
//!   parsing, printing, and [`settings::apply`], the one path every textual
//!   change takes to the core's single validation.
//!
//! The core never depends on this crate; `control` (server and CLI) does.
//! Nothing here names DPDK.
#![deny(unsafe_code)]

pub mod connection;
pub mod settings;

pub use connection::{
    ConnSnapshot, FilterError, FilterValueError, check_filter_value, check_property, format_table,
    protocol_name,
};
pub use settings::{SettingsError, SettingsExt};
