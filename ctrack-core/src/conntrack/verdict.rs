//! What the table answers per packet, why, and the shard's counters.

use super::Dir;
use super::entry::ConnId;
use super::tcp::TcpInvalid;

/// The table's answer for one packet. `Copy`, 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The packet belongs to connection `id` in direction `dir`; `created` if
    /// it opened the connection. The entry may already be gone again (a
    /// connection whose only answer was an RST is removed at once).
    Tracked { id: ConnId, dir: Dir, created: bool },
    /// An ICMP error about connection `id` (Linux's "related"), sent in
    /// direction `dir` of it. As in Linux, it is counted nowhere on the
    /// connection (not in its packets or bytes) and does not refresh its
    /// timeout; only [`ShardStats::related`] counts it.
    Related { id: ConnId, dir: Dir },
    /// Refused by a protocol tracker: the firewall's `connection-state=invalid`.
    Invalid(InvalidReason),
    /// Not tracked, by design (tracking off, a protocol we leave alone).
    Untracked(UntrackedReason),
    /// No room for a new connection.
    Dropped(DropReason),
    /// Only between [`super::Shard::lookup_burst`] and
    /// [`super::Shard::commit_burst`]: the packet would open a connection
    /// (or belongs to one that an earlier packet of the burst opens) and
    /// waits for the caller's [`Decision`]. The commit replaces it.
    New,
    /// The caller's [`Decision`] dropped this first packet of a connection,
    /// with the caller's reason code: nothing was inserted or evicted, and the
    /// table counted nothing.
    Refused(u16),
}

/// What the caller decided for a packet that would open a connection
/// ([`Verdict::New`]): its rules, NAT and mangle, applied in
/// [`super::Shard::commit_burst`]. Small and `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision {
    pub action: Action,
    /// The new connection's `connection-mark`.
    pub mark: u32,
    /// Put the new connection on the short path at once (after its first
    /// packet).
    pub fasttrack: bool,
    /// NAT: the key that the connection's reply packets carry, when it is
    /// not the inverse of the original ([`super::Key::reply`]); the
    /// connection is then found by both keys. It must be no other
    /// connection's key (the NAT picks a free one): a taken one refuses the
    /// connection ([`DropReason::ReplyTaken`]).
    pub reply: Option<super::Key>,
    /// The port the connection's first packet entered on (the caller's
    /// numbering), or [`Decision::UNKNOWN_PORT`]. The table does not store
    /// it: only the connection's `New` event carries it
    /// ([`super::ConnEvent::in_port`]), for flow export's `interfaces`.
    pub in_port: u16,
}

/// Whether a new connection is created.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Accept,
    /// Drop the packet, create nothing; the code is the caller's (returned
    /// in [`Verdict::Refused`], for the caller to count).
    Drop(u16),
}

impl Decision {
    /// [`Decision::in_port`] when the caller does not say.
    pub const UNKNOWN_PORT: u16 = u16::MAX;

    /// Accept, no mark, not fast-tracked: what the table did before rules.
    pub const ACCEPT: Decision = Decision {
        action: Action::Accept,
        mark: 0,
        fasttrack: false,
        reply: None,
        in_port: Decision::UNKNOWN_PORT,
    };

    /// Drop with the caller's reason code.
    pub const fn drop(reason: u16) -> Decision {
        Decision {
            action: Action::Drop(reason),
            mark: 0,
            fasttrack: false,
            reply: None,
            in_port: Decision::UNKNOWN_PORT,
        }
    }
}

impl Default for Decision {
    fn default() -> Self {
        Decision::ACCEPT
    }
}

const _: () = assert!(core::mem::size_of::<Verdict>() <= 16);

macro_rules! reason_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        pub enum $name { $($(#[$vm])* $v,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)*];
            pub const COUNT: usize = Self::ALL.len();
            /// Metric label value (snake case).
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
            /// Position in [`Self::ALL`], for counter arrays.
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

reason_enum!(
    /// Why a packet was left untracked.
    UntrackedReason {
        /// `enabled=no`.
        TrackingDisabled => "tracking_disabled",
        /// A TCP segment of no known connection that is not a SYN, while
        /// `loose-tcp-tracking=no`.
        TcpNotSynLooseOff => "tcp_not_syn_loose_off",
        /// ICMPv6 neighbour discovery and MLD (link-local; Linux does not track them).
        Icmpv6NdMld => "icmpv6_nd_mld",
    }
);

reason_enum!(
    /// Why a packet was dropped by the table.
    DropReason {
        /// The table is at max-entries and no entry could be evicted.
        TableFull => "table_full",
        /// The index found no free slot within its probe limit (not expected
        /// below max-entries; counted as `insert_failed` too).
        IndexFull => "index_full",
        /// A decision's NAT reply key is already another connection's key
        /// (counted as `insert_failed` too).
        ReplyTaken => "reply_taken",
    }
);

reason_enum!(
    /// Why a non-TCP packet was invalid (TCP reasons come from the tracker).
    OtherInvalid {
        /// An ICMP reply type (echo reply, ...) with no query to answer.
        IcmpUnsolicitedReply => "icmp_unsolicited_reply",
        /// An ICMP error quoting a packet of no known connection.
        IcmpErrorNoConnection => "icmp_error_no_connection",
        /// An ICMP error type whose quote was too short to read.
        IcmpErrorTruncated => "icmp_error_truncated",
        /// An ICMP type that is neither a query, its reply, nor an error.
        IcmpBadType => "icmp_bad_type",
        /// GRE with a version other than 0 or 1.
        GreBadVersion => "gre_bad_version",
        /// The parsed L4 summary does not fit the IP protocol number.
        L4Mismatch => "l4_mismatch",
        /// A bad IPv4 header, TCP, UDP, ICMP or ICMPv6 checksum
        /// (`checksum-verify=yes`; Linux's "bad checksum"). Counted by the
        /// caller that verified it ([`super::Shard::count_invalid`]), before
        /// the table sees the packet.
        BadChecksum => "bad_checksum",
    }
);

/// Why a packet was invalid.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum InvalidReason {
    Tcp(TcpInvalid),
    Other(OtherInvalid),
}

impl InvalidReason {
    pub const COUNT: usize = TcpInvalid::COUNT + OtherInvalid::COUNT;

    pub const ALL: [InvalidReason; Self::COUNT] = {
        let mut all = [InvalidReason::Other(OtherInvalid::L4Mismatch); Self::COUNT];
        let mut i = 0;
        while i < TcpInvalid::COUNT {
            all[i] = InvalidReason::Tcp(TcpInvalid::ALL[i]);
            i += 1;
        }
        let mut j = 0;
        while j < OtherInvalid::COUNT {
            all[TcpInvalid::COUNT + j] = InvalidReason::Other(OtherInvalid::ALL[j]);
            j += 1;
        }
        all
    };

    pub const fn index(self) -> usize {
        match self {
            InvalidReason::Tcp(t) => t.index(),
            InvalidReason::Other(o) => TcpInvalid::COUNT + o.index(),
        }
    }

    /// Metric label value: TCP reasons prefixed `tcp_`.
    pub const fn name(self) -> &'static str {
        match self {
            InvalidReason::Other(o) => o.name(),
            InvalidReason::Tcp(t) => match t {
                TcpInvalid::BadFlags => "tcp_bad_flags",
                TcpInvalid::InvalidNew => "tcp_invalid_new",
                TcpInvalid::RstOnNew => "tcp_rst_on_new",
                TcpInvalid::NotSynLooseOff => "tcp_not_syn_loose_off",
                TcpInvalid::InvalidTransition => "tcp_invalid_transition",
                TcpInvalid::SeqOutOfWindow => "tcp_seq_out_of_window",
                TcpInvalid::AckOutOfWindow => "tcp_ack_out_of_window",
                TcpInvalid::RstOutOfWindow => "tcp_rst_out_of_window",
                TcpInvalid::RstBehindAck => "tcp_rst_behind_ack",
            },
        }
    }
}

/// Per-shard counters: plain `u64`s owned by the worker, which publishes them.
/// Names follow Linux's `nf_conntrack` statistics where they exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Packets that matched an existing connection (Linux `found`).
    pub found: u64,
    /// Invalid packets, by [`InvalidReason::index`] (Linux `invalid`).
    pub invalid: [u64; InvalidReason::COUNT],
    /// Connections created (Linux `insert`).
    pub insert: u64,
    /// Connections that could not be indexed (Linux `insert_failed`).
    pub insert_failed: u64,
    /// Packets dropped because the table was full (Linux `drop`).
    pub drop: u64,
    /// Non-assured connections evicted to make room (Linux `early_drop`).
    pub early_drop: u64,
    /// Connections removed because their timeout passed.
    pub expired: u64,
    /// Connections removed by the management API.
    pub removed: u64,
    /// Connections removed by their tracker (RST answer to a SYN, reopened
    /// time-wait) rather than by timeout.
    pub closed: u64,
    /// ICMP errors related to a connection.
    pub related: u64,
    /// Untracked packets, by [`UntrackedReason::index`].
    pub untracked: [u64; UntrackedReason::COUNT],
    /// Dropped packets, by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    /// Packets and bytes counted on connections, by [`Dir::index`]
    /// (tracked and fast-tracked packets; related ones are not counted).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Packets that had been counted on connections that are gone: with the
    /// live entries' counters this adds up to `packets[0] + packets[1]`.
    pub packets_retired: u64,
    /// Packets and bytes that took the fasttrack path (also in `packets`/`bytes`),
    /// by [`Dir::index`].
    pub fasttrack_packets: [u64; 2],
    pub fasttrack_bytes: [u64; 2],
    /// Connection helpers and their expectations.
    pub expect: super::expect::ExpectStats,
}

impl ShardStats {
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().sum()
    }

    pub fn untracked_total(&self) -> u64 {
        self.untracked.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_tables_are_consistent() {
        for (i, r) in InvalidReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.name().is_empty());
        }
        let mut names: Vec<&str> = InvalidReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), InvalidReason::COUNT);
        for (i, r) in UntrackedReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
