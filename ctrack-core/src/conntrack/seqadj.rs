//! Sequence adjustment (Linux's `nf_ct_seqadj`): after a helper changed
//! the length of a segment's payload under NAT (FTP's address text), every
//! later segment of the connection in that direction has its sequence
//! number shifted by the sum of the changes, and every segment of the
//! other direction its acknowledgement number (and SACK edges) shifted
//! back.
//!
//! Per direction: a correction position (the sequence number, as the
//! sender sent it, of the last segment changed), the offset before it and
//! the offset after it. A segment starting at or before the position gets
//! the offset before (a retransmission of an earlier segment, or of the
//! changed one itself, whose own start did not move), one after it the
//! offset after. As Linux, a new change is recorded only when it is past
//! the position (or the first): a retransmitted changed segment records
//! nothing twice.
//!
//! The TCP tracker tracks each sender's numbers as sent (before the
//! adjustment, as Linux's: the helper and the adjustment run after it), and
//! takes an acknowledgement back into the acknowledged sender's space
//! first ([`SeqAdj::ack_for_tracker`], Linux's `nf_ct_seq_offset` in
//! `tcp_in_window`).

use crate::packet::mangle::SeqField;

/// One direction's correction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdjDir {
    pub correction_pos: u32,
    pub offset_before: i32,
    pub offset_after: i32,
}

/// A connection's corrections, by direction index (`Dir::index()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdj {
    pub dirs: [SeqAdjDir; 2],
}

/// TCP sequence order: `a` after `b`.
#[inline]
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

impl SeqAdj {
    /// Records a change of `off` bytes in the segment at sequence number
    /// `seq` (as sent) of direction `dir` (Linux's `nf_ct_seqadj_set`).
    pub fn set(&mut self, dir: usize, seq: u32, off: i32) {
        if off == 0 {
            return;
        }
        let w = &mut self.dirs[dir & 1];
        if w.offset_before == w.offset_after || after(seq, w.correction_pos) {
            w.correction_pos = seq;
            w.offset_before = w.offset_after;
            w.offset_after = w.offset_after.wrapping_add(off);
        }
    }

    /// Whether any change was recorded.
    pub fn is_active(&self) -> bool {
        self.dirs
            .iter()
            .any(|d| d.offset_before != 0 || d.offset_after != 0)
    }

    /// The sequence number segment `seq` of direction `dir` leaves with.
    pub fn seq_out(&self, dir: usize, seq: u32) -> u32 {
        let w = &self.dirs[dir & 1];
        let off = if after(seq, w.correction_pos) {
            w.offset_after
        } else {
            w.offset_before
        };
        seq.wrapping_add(off as u32)
    }

    /// An acknowledgement number (or SACK edge) travelling in direction
    /// `dir`, which acknowledges the other direction's adjusted numbers,
    /// taken back to what that sender sent (Linux's `nf_ct_seq_adjust` and
    /// `nf_ct_sack_block_adjust`).
    pub fn ack_out(&self, dir: usize, ack: u32) -> u32 {
        let o = &self.dirs[(dir & 1) ^ 1];
        let off = if after(ack.wrapping_sub(o.offset_before as u32), o.correction_pos) {
            o.offset_after
        } else {
            o.offset_before
        };
        ack.wrapping_sub(off as u32)
    }

    /// The mapping [`crate::packet::mangle::rewrite_seq`] applies to a
    /// segment of direction `dir`.
    pub fn map(&self, dir: usize) -> impl Fn(SeqField, u32) -> u32 + '_ {
        move |f, v| match f {
            SeqField::Seq => self.seq_out(dir, v),
            SeqField::Ack | SeqField::SackEdge => self.ack_out(dir, v),
        }
    }

    /// The acknowledgement number the TCP tracker should see for a segment
    /// of direction `dir` carrying `ack` (Linux's `tcp_in_window`:
    /// `ack -= nf_ct_seq_offset(ct, !dir, ack - 1)`).
    pub fn ack_for_tracker(&self, dir: usize, ack: u32) -> u32 {
        let o = &self.dirs[(dir & 1) ^ 1];
        let off = if after(ack.wrapping_sub(1), o.correction_pos) {
            o.offset_after
        } else {
            o.offset_before
        };
        ack.wrapping_sub(off as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_shifts_later_segments_and_acks() {
        let mut a = SeqAdj::default();
        assert!(!a.is_active());
        // The client's segment at 1000 grew by 4 bytes.
        a.set(0, 1000, 4);
        assert!(a.is_active());
        // That segment itself and earlier ones keep their numbers.
        assert_eq!(a.seq_out(0, 1000), 1000);
        assert_eq!(a.seq_out(0, 900), 900);
        // Later ones move.
        assert_eq!(a.seq_out(0, 1030), 1034);
        // The server's acks come back by 4 once past the change.
        assert_eq!(a.ack_out(1, 1034), 1030);
        assert_eq!(a.ack_out(1, 1000), 1000);
        assert_eq!(a.ack_for_tracker(1, 1034), 1030);
        // The other direction is untouched.
        assert_eq!(a.seq_out(1, 5000), 5000);
        assert_eq!(a.ack_out(0, 5000), 5000);
    }

    #[test]
    fn two_changes_and_a_retransmission() {
        let mut a = SeqAdj::default();
        a.set(0, 1000, 4);
        // The changed segment retransmitted: nothing recorded twice.
        a.set(0, 1000, 4);
        assert_eq!(a.dirs[0].offset_after, 4);
        // A second change, shorter by 2, later.
        a.set(0, 1100, -2);
        assert_eq!(a.dirs[0].offset_before, 4);
        assert_eq!(a.dirs[0].offset_after, 2);
        assert_eq!(a.seq_out(0, 1100), 1104);
        assert_eq!(a.seq_out(0, 1200), 1202);
        assert_eq!(a.ack_out(1, 1202), 1200);
        assert_eq!(a.ack_out(1, 1104), 1100);
        // Wrapping sequence numbers.
        let mut w = SeqAdj::default();
        w.set(1, u32::MAX - 2, 3);
        assert_eq!(w.seq_out(1, 5), 8);
        assert_eq!(w.ack_out(0, 8), 5);
    }
}
