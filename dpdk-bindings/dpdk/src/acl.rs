//! DPDK's packet classifier, `rte_acl`: a multi-trie, SIMD classifier over
//! fixed-layout keys. Here for one layout, the 5-tuple of firewall rules
//! (protocol, source and destination address, source and destination port),
//! IPv4 or IPv6, one category: [`Acl::classify`] gives, per key, the
//! `userdata` of the highest-priority rule that matches, or 0.
//!
//! Build once, classify from any number of threads: the context is
//! immutable after [`Acl::build`] (DPDK's classify only reads it), `Send +
//! Sync`, and freed on drop. Like every DPDK object here it needs a running
//! EAL and keeps [`Eal::cleanup`](crate::Eal::cleanup) from running while it
//! lives.
//!
//! Keys are packed by [`Acl::write_key`] in network byte order (as DPDK
//! wants input data), rules are given as host integers.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use dpdk_sys::{
    RTE_ACL_FIELD_TYPE_BITMASK, RTE_ACL_FIELD_TYPE_MASK, RTE_ACL_FIELD_TYPE_RANGE,
    RTE_ACL_MAX_PRIORITY, rte_acl_config, rte_acl_field, rte_acl_field_def, rte_acl_field_types,
    rte_acl_rule, rte_acl_rule_data,
};

use crate::eal::Live;
use crate::error::{DpdkError, Result};

/// The address family of an [`Acl`] and its keys.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AclFamily {
    V4,
    V6,
}

/// One rule. Ranges are inclusive; an IPv4 address is in the low 32 bits.
/// A field matching anything is the full range (`(0, u32::MAX as u128)` for
/// IPv4, `(0, u128::MAX)` for IPv6, `(0, 65535)` for ports).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AclRule {
    /// `None`: any protocol.
    pub proto: Option<u8>,
    pub src: (u128, u128),
    pub dst: (u128, u128),
    pub src_port: (u16, u16),
    pub dst_port: (u16, u16),
    /// `1..=Acl::MAX_PRIORITY`; of two matching rules the higher wins.
    pub priority: u32,
    /// What [`Acl::classify`] returns for a key this rule decides; not 0.
    pub userdata: u32,
}

impl AclRule {
    /// A rule matching every key of `family`.
    pub fn any(family: AclFamily, priority: u32, userdata: u32) -> AclRule {
        let top = match family {
            AclFamily::V4 => u32::MAX as u128,
            AclFamily::V6 => u128::MAX,
        };
        AclRule {
            proto: None,
            src: (0, top),
            dst: (0, top),
            src_port: (0, u16::MAX),
            dst_port: (0, u16::MAX),
            priority,
            userdata,
        }
    }
}

/// Fields of an IPv4 rule: proto, src, dst, sport, dport.
const FIELDS_V4: usize = 5;
/// Fields of an IPv6 rule: proto, src (4 words), dst (4 words), sport, dport.
const FIELDS_V6: usize = 11;

/// A rule in DPDK's layout (`RTE_ACL_RULE_DEF(name, N)`).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawRule<const N: usize> {
    data: rte_acl_rule_data,
    field: [rte_acl_field; N],
}

/// Rules an address range may expand to (IPv6 ranges become prefixes).
const MAX_EXPANDED: usize = 1 << 20;

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// A built `rte_acl` context (see the module docs).
#[derive(Debug)]
pub struct Acl {
    /// `None` for an empty rule set (DPDK refuses to build one).
    raw: Option<NonNull<dpdk_sys::rte_acl_ctx>>,
    family: AclFamily,
    rules: usize,
    _live: Live,
}

// SAFETY: after rte_acl_build the context is never written: classify only
// reads it (DPDK documents classify as safe from several lcores on one
// context), and the only other call is rte_acl_free in Drop, through the
// single owner.
unsafe impl Send for Acl {}
// SAFETY: see Send; &self gives only classify, a read.
unsafe impl Sync for Acl {}

impl Acl {
    /// Highest rule priority.
    pub const MAX_PRIORITY: u32 = RTE_ACL_MAX_PRIORITY;

    /// Bytes of a key of `family` (what [`Acl::write_key`] writes).
    pub const fn key_len(family: AclFamily) -> usize {
        match family {
            AclFamily::V4 => 16,
            AclFamily::V6 => 40,
        }
    }

    /// Packs a key: protocol (byte 0, then 3 bytes of padding), source,
    /// destination, source port, destination port, all big-endian.
    /// `out` must hold [`Acl::key_len`] bytes; returns that length.
    pub fn write_key(
        family: AclFamily,
        proto: u8,
        src: u128,
        dst: u128,
        src_port: u16,
        dst_port: u16,
        out: &mut [u8],
    ) -> usize {
        let n = Acl::key_len(family);
        let out = &mut out[..n];
        out[..4].copy_from_slice(&[proto, 0, 0, 0]);
        let a = match family {
            AclFamily::V4 => {
                out[4..8].copy_from_slice(&(src as u32).to_be_bytes());
                out[8..12].copy_from_slice(&(dst as u32).to_be_bytes());
                12
            }
            AclFamily::V6 => {
                out[4..20].copy_from_slice(&src.to_be_bytes());
                out[20..36].copy_from_slice(&dst.to_be_bytes());
                36
            }
        };
        out[a..a + 2].copy_from_slice(&src_port.to_be_bytes());
        out[a + 2..a + 4].copy_from_slice(&dst_port.to_be_bytes());
        n
    }

    /// Builds a context over `rules`. Fails on a priority out of range, a
    /// zero `userdata`, an inverted range, or DPDK's refusal (out of memory).
    pub fn build(family: AclFamily, rules: &[AclRule]) -> Result<Acl> {
        for r in rules {
            let bad = r.userdata == 0
                || r.priority == 0
                || r.priority > Acl::MAX_PRIORITY
                || r.src.0 > r.src.1
                || r.dst.0 > r.dst.1
                || r.src_port.0 > r.src_port.1
                || r.dst_port.0 > r.dst_port.1
                || (family == AclFamily::V4
                    && (r.src.1 > u32::MAX as u128 || r.dst.1 > u32::MAX as u128));
            if bad {
                return Err(DpdkError::new("rte_acl_add_rules", libc::EINVAL));
            }
        }
        let live = Live::enter("rte_acl_create")?;
        if rules.is_empty() {
            return Ok(Acl {
                raw: None,
                family,
                rules: 0,
                _live: live,
            });
        }
        match family {
            AclFamily::V4 => {
                let raw: Vec<RawRule<FIELDS_V4>> = rules.iter().map(rule_v4).collect();
                Acl::create(family, &raw, &defs_v4(), live)
            }
            AclFamily::V6 => {
                let mut raw: Vec<RawRule<FIELDS_V6>> = Vec::new();
                for r in rules {
                    let (s, d) = (prefixes(r.src.0, r.src.1), prefixes(r.dst.0, r.dst.1));
                    if raw.len() + s.len() * d.len() > MAX_EXPANDED {
                        return Err(DpdkError::new("rte_acl_add_rules", libc::E2BIG));
                    }
                    for &sp in &s {
                        for &dp in &d {
                            raw.push(rule_v6(r, sp, dp));
                        }
                    }
                }
                Acl::create(family, &raw, &defs_v6(), live)
            }
        }
    }

    fn create<const N: usize>(
        family: AclFamily,
        rules: &[RawRule<N>],
        defs: &[rte_acl_field_def; N],
        live: Live,
    ) -> Result<Acl> {
        const { assert!(N <= dpdk_sys::RTE_ACL_MAX_FIELDS as usize) };
        let rule_size =
            std::mem::size_of::<rte_acl_rule>() + N * std::mem::size_of::<rte_acl_field>();
        assert_eq!(
            rule_size,
            std::mem::size_of::<RawRule<N>>(),
            "RTE_ACL_RULE_SZ"
        );
        let n = u32::try_from(rules.len())
            .map_err(|_| DpdkError::new("rte_acl_create", libc::E2BIG))?;
        // A process-unique name: rte_acl_create returns the existing context
        // of a name already in use, which two owners would then both free.
        let name = format!("ctrack_acl_{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
        let cname =
            CString::new(name).map_err(|_| DpdkError::new("rte_acl_create", libc::EINVAL))?;
        let param = dpdk_sys::rte_acl_param {
            name: cname.as_ptr(),
            socket_id: -1,
            rule_size: rule_size as u32,
            max_rule_num: n,
        };
        // SAFETY: the EAL runs (live); param and its name are valid for the
        // call (DPDK copies the name); the result is checked.
        let raw = unsafe { dpdk_sys::rte_acl_create(&param) };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno("rte_acl_create"))?;
        // Owned from here: dropped (freed) on every error path below.
        let acl = Acl {
            raw: Some(raw),
            family,
            rules: rules.len(),
            _live: live,
        };
        // SAFETY: the context is ours and was created for `n` rules of
        // `rule_size` bytes; `rules` holds `n` such rules (RawRule<N> is
        // RTE_ACL_RULE_DEF(.., N), size checked above), read during the call.
        let rc = unsafe { dpdk_sys::rte_acl_add_rules(raw.as_ptr(), rules.as_ptr().cast(), n) };
        crate::error::check("rte_acl_add_rules", rc)?;
        let mut cfg = rte_acl_config {
            num_categories: 1,
            num_fields: N as u32,
            ..Default::default()
        };
        cfg.defs[..N].copy_from_slice(defs);
        // SAFETY: our context, with rules added; cfg is valid for the call.
        let rc = unsafe { dpdk_sys::rte_acl_build(raw.as_ptr(), &cfg) };
        crate::error::check("rte_acl_build", rc)?;
        Ok(acl)
    }

    pub fn family(&self) -> AclFamily {
        self.family
    }

    /// DPDK rules (an IPv6 range counts once per prefix pair it became).
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Classifies `keys` (each at least [`Acl::key_len`] bytes, as
    /// [`Acl::write_key`] packs them): `results[i]` gets the `userdata` of
    /// the highest-priority rule matching `keys[i]`, or 0. Fails with
    /// `EINVAL` on a short key or when `results` is shorter than `keys`.
    /// No allocation; up to 64 keys are passed to DPDK at once.
    pub fn classify(&self, keys: &[&[u8]], results: &mut [u32]) -> Result<()> {
        let len = Acl::key_len(self.family);
        if results.len() < keys.len() || keys.iter().any(|k| k.len() < len) {
            return Err(DpdkError::new("rte_acl_classify", libc::EINVAL));
        }
        let Some(raw) = self.raw else {
            results[..keys.len()].fill(0);
            return Ok(());
        };
        for (ks, rs) in keys.chunks(64).zip(results.chunks_mut(64)) {
            let mut ptrs = [std::ptr::null::<u8>(); 64];
            for (p, k) in ptrs.iter_mut().zip(ks) {
                *p = k.as_ptr();
            }
            // DPDK reads key_len bytes of each key (its last 4-byte input
            // word ends at key_len).
            // SAFETY: a built context (read only); ks.len() <= 64 pointers to keys of key_len bytes (checked above); rs has at least ks.len() slots for one category.
            let rc = unsafe {
                dpdk_sys::rte_acl_classify(
                    raw.as_ptr(),
                    ptrs.as_mut_ptr(),
                    rs.as_mut_ptr(),
                    ks.len() as u32,
                    1,
                )
            };
            crate::error::check("rte_acl_classify", rc)?;
        }
        Ok(())
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        if let Some(raw) = self.raw {
            // SAFETY: we own the context (unique name) and nothing else
            // holds it: classify borrows self.
            unsafe { dpdk_sys::rte_acl_free(raw.as_ptr()) }
        }
    }
}

fn def(ty: u32, size: u8, field: u8, input: u8, offset: u32) -> rte_acl_field_def {
    rte_acl_field_def {
        type_: ty as u8,
        size,
        field_index: field,
        input_index: input,
        offset,
    }
}

/// The key layout of [`Acl::write_key`] for IPv4. DPDK wants the first field
/// one byte long and the others grouped in 4-byte input words.
fn defs_v4() -> [rte_acl_field_def; FIELDS_V4] {
    [
        def(RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, 0),
        def(RTE_ACL_FIELD_TYPE_RANGE, 4, 1, 1, 4),
        def(RTE_ACL_FIELD_TYPE_RANGE, 4, 2, 2, 8),
        def(RTE_ACL_FIELD_TYPE_RANGE, 2, 3, 3, 12),
        def(RTE_ACL_FIELD_TYPE_RANGE, 2, 4, 3, 14),
    ]
}

fn defs_v6() -> [rte_acl_field_def; FIELDS_V6] {
    let mut d = [rte_acl_field_def::default(); FIELDS_V6];
    d[0] = def(RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, 0);
    for w in 0..8u8 {
        d[1 + w as usize] = def(RTE_ACL_FIELD_TYPE_MASK, 4, 1 + w, 1 + w, 4 + 4 * w as u32);
    }
    d[9] = def(RTE_ACL_FIELD_TYPE_RANGE, 2, 9, 9, 36);
    d[10] = def(RTE_ACL_FIELD_TYPE_RANGE, 2, 10, 9, 38);
    d
}

fn field(value: u64, mask_range: u64, size: u8) -> rte_acl_field {
    let mut v = rte_acl_field_types::default();
    let mut m = rte_acl_field_types::default();
    match size {
        1 => (v.u8_, m.u8_) = (value as u8, mask_range as u8),
        2 => (v.u16_, m.u16_) = (value as u16, mask_range as u16),
        _ => (v.u32_, m.u32_) = (value as u32, mask_range as u32),
    }
    rte_acl_field {
        value: v,
        mask_range: m,
    }
}

fn data(r: &AclRule) -> rte_acl_rule_data {
    rte_acl_rule_data {
        category_mask: 1,
        priority: r.priority as i32,
        userdata: r.userdata,
    }
}

fn proto_field(r: &AclRule) -> rte_acl_field {
    match r.proto {
        Some(p) => field(p as u64, 0xff, 1),
        None => field(0, 0, 1),
    }
}

fn rule_v4(r: &AclRule) -> RawRule<FIELDS_V4> {
    RawRule {
        data: data(r),
        field: [
            proto_field(r),
            field(r.src.0 as u64, r.src.1 as u64, 4),
            field(r.dst.0 as u64, r.dst.1 as u64, 4),
            field(r.src_port.0 as u64, r.src_port.1 as u64, 2),
            field(r.dst_port.0 as u64, r.dst_port.1 as u64, 2),
        ],
    }
}

/// An IPv6 rule for one source and one destination prefix `(addr, len)`.
fn rule_v6(r: &AclRule, src: (u128, u32), dst: (u128, u32)) -> RawRule<FIELDS_V6> {
    let mut f = [field(0, 0, 1); FIELDS_V6];
    f[0] = proto_field(r);
    for (base, (addr, len)) in [(1, src), (5, dst)] {
        for w in 0..4u32 {
            let word = (addr >> (96 - 32 * w)) as u32;
            let bits = len.saturating_sub(32 * w).min(32);
            f[base + w as usize] = field(word as u64, bits as u64, 4);
        }
    }
    f[9] = field(r.src_port.0 as u64, r.src_port.1 as u64, 2);
    f[10] = field(r.dst_port.0 as u64, r.dst_port.1 as u64, 2);
    RawRule {
        data: data(r),
        field: f,
    }
}

/// The fewest prefixes `(address, length)` covering `lo..=hi` exactly.
fn prefixes(lo: u128, hi: u128) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    let mut a = lo;
    loop {
        // The largest aligned block at `a` that stays within `hi`.
        let mut len = 128 - a.trailing_zeros().min(128);
        loop {
            let size_m1 = if len == 0 {
                u128::MAX
            } else {
                (1u128 << (128 - len)) - 1
            };
            if a.checked_add(size_m1).is_some_and(|end| end <= hi) {
                out.push((a, len));
                match a.checked_add(size_m1).and_then(|e| e.checked_add(1)) {
                    Some(next) if next <= hi => a = next,
                    _ => return out,
                }
                break;
            }
            len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefixes;

    #[test]
    fn ranges_become_exact_prefixes() {
        assert_eq!(prefixes(0, u128::MAX), vec![(0, 0)]);
        assert_eq!(prefixes(5, 5), vec![(5, 128)]);
        assert_eq!(prefixes(4, 7), vec![(4, 126)]);
        assert_eq!(prefixes(3, 8), vec![(3, 128), (4, 126), (8, 128)]);
        let top = u128::MAX;
        assert_eq!(prefixes(top - 1, top), vec![(top - 1, 127)]);
    }
}
