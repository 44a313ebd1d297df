//! RouterOS firewall scripts for ctrack: read, keep, print and evaluate.
//!
//! - [`parse`] reads a script in RouterOS `/export` form (`.rsc`) into a
//!   [`Config`] value, or fails naming the line and the word; nothing is
//!   half-applied. [`parse_with`] has a lenient mode.
//! - [`export`] prints a [`Config`] back in `/export` form; parsing the output
//!   gives the same [`Config`].
//! - [`Ruleset::compile`] turns a [`Config`] into an immutable, `Send + Sync`
//!   rule engine. The engine is sans-io like `ctrack-core`: it reads no clock
//!   (time comes in as an argument), does no I/O and takes no lock; the worker
//!   calls it per burst with one [`PacketCtx`] per packet and gets a
//!   [`Verdict`] per packet, counting into its own [`WorkerState`].
//!
//! See `docs/firewall.md` for the RouterOS semantics, where they come from,
//! and where ctrack differs.
#![deny(unsafe_code)]

mod classify;
pub mod engine;
pub mod error;
pub mod export;
pub mod lex;
pub mod lists;
pub mod model;
pub mod parse;
pub mod value;

pub use engine::{
    ConnCtx, ConnState, Env, Final, Hook, L7State, Names, NoEnv, PacketCtx, Prefilter, RuleCounter,
    RuleId, RuleInfo, Ruleset, Uses, Verdict, WorkerState,
};
pub use error::{CompileError, ParseError};
pub use export::export;
pub use model::{Action, Config, Firewall, Matcher, Rule, Table};
pub use parse::{Options, Parsed, parse, parse_with};
pub use value::Fam;
