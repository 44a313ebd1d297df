//! The sans-io connection tracking core (skeleton; see issue 3).

pub mod tcp;

/// Direction of a packet relative to the connection that it belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum Dir {
    /// From the connection's originator (the sender of its first packet).
    Orig = 0,
    /// From the responder.
    Reply = 1,
}

impl Dir {
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn flip(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }
}

/// Conntrack's notion of time: nanoseconds since an arbitrary epoch chosen by
/// the driver (the worker's TSC-derived clock, or a capture's timestamps).
/// Conntrack never reads a clock itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct Instant(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms * 1_000_000)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    pub const fn saturating_sub(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub const fn add_nanos(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
}
