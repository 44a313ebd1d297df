//! ctrack's RouterOS view of the connection tracker: what the operator reads
//! and types, kept out of the sans-io core.
//!
//! - [`connection`]: `/ip firewall connection` rows ([`ConnSnapshot`], made
//!   from the core's typed [`ctrack_core::conntrack::RawConn`]), their JSON
//!   form (`Serialize` and `Deserialize`, so the API and the CLI client share
//!   one type) and the `PROP=VALUE` matcher.
//! - [`expect`]: expectations of the connection helpers as rows
//!   (`conntrack -L expect`).
//! - [`print`]: the `print` table (RouterOS v7's flags and columns),
//!   `print detail`, `print stats`, and rows read back from JSON.
//! - [`query`]: the `print where` language (`!=`, `<`, `>`, `~`, `in`,
//!   `and`/`or`/`not`, parentheses).
//! - [`settings`]: `/ip firewall connection tracking` as `KEY=VALUE` text:
//!   parsing, printing, and [`settings::apply`], the one path every textual
//!   change takes to the core's single validation.
//!
//! The core never depends on this crate; `control` (server and CLI) does.
//! Nothing here names DPDK.
#![deny(unsafe_code)]

pub mod connection;
pub mod expect;
pub mod print;
pub mod query;
pub mod settings;

pub use connection::{
    ConnSnapshot, FLAGS, FilterError, FilterValueError, check_filter_value, check_property,
    protocol_name,
};
pub use print::{TableWriter, format_detail, format_table, row_from_json};
pub use query::{Expr, WhereError};
pub use settings::{SettingsError, SettingsExt};
