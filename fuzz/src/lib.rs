//! The fuzz targets' bodies, as plain functions so that the seed corpus can
//! also be replayed by `cargo test` and the seed generator can share the
//! input format.
//!
//! - [`parse::run`]: the `parse_only` target.
//! - [`track::run`]: the `parse_track` target (input format in [`track`]).
//! - [`helpers`]: the `helper_ftp`, `helper_pptp` and `helper_tftp` targets.
//! - [`rules::run`]: the `rules_script` target (RouterOS scripts: parse,
//!   export, compile, evaluate).
//! - [`seeds`]: the seed corpus, built from `ctrack_traffic::synth` frames.

pub mod helpers;
pub mod parse;
pub mod rules;
pub mod seeds;
pub mod track;
