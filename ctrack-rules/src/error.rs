//! Errors of the parser and of the compiler.

use core::fmt;

/// A script that cannot be read: names the line and the offending word.
///
/// In lenient parsing the same value describes a skipped line (a warning).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseError {
    /// 1-based line number where the statement starts.
    pub line: usize,
    /// The word that is wrong: a menu, command, property name or value.
    pub word: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParseError {
    pub fn new(line: usize, word: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            word: word.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: `{}`: {}", self.line, self.word, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// A model that parses but cannot be turned into a [`crate::Ruleset`].
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CompileError {
    /// Chains jump into each other in a loop (the path is listed).
    #[error("{family} firewall {table}: jump loop {path}")]
    JumpLoop {
        family: &'static str,
        table: &'static str,
        path: String,
    },
    /// Nested jumps deeper than the engine's stack.
    #[error("{family} firewall {table}: jumps nest deeper than {max} chains ({path})")]
    TooDeep {
        family: &'static str,
        table: &'static str,
        max: usize,
        path: String,
    },
    /// A rule names an interface that the dataplane does not have.
    #[error("{family} firewall {table} rule {position}: unknown interface `{name}`")]
    UnknownInterface {
        family: &'static str,
        table: &'static str,
        position: usize,
        name: String,
    },
    /// A rule names an interface list that is not defined in `/interface list`.
    #[error("{family} firewall {table} rule {position}: unknown interface list `{name}`")]
    UnknownInterfaceList {
        family: &'static str,
        table: &'static str,
        position: usize,
        name: String,
    },
    /// A rule names a layer7 protocol that is not defined.
    #[error("{family} firewall {table} rule {position}: unknown layer7-protocol `{name}`")]
    UnknownLayer7 {
        family: &'static str,
        table: &'static str,
        position: usize,
        name: String,
    },
    /// A layer7 protocol's regexp does not compile.
    #[error("layer7-protocol `{name}`: bad regexp: {reason}")]
    BadRegexp { name: String, reason: String },
    /// More distinct names (marks, lists) than the engine's ids can hold.
    #[error("too many {what} (at most {max})")]
    TooMany { what: &'static str, max: usize },
}
